//! Fuzzing (issue 14) with proptest: the config resolver (random TOML-ish text, and random
//! structured configs written as TOML), the control-request parser and the agent frame decoder
//! are fed generated input. None may panic, and none may allocate without bound: the counting
//! allocator of the test build (sys/alloc_count.rs) measures the peak of each call.
//!
//! Each test runs `PROPTEST_CASES` cases (the default below when unset) within a fixed time
//! budget: cases past the budget are skipped, so CI time stays bounded on a slow machine (all
//! of them together stay well under 30 s).

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

use crate::agent::frame;
use crate::config::load::load_str;
use crate::config::raw::{PROGRAM_KEYS, SUPERVISOR_KEYS, basic_string};
use crate::control::protocol::{COMMANDS, parse_request};
use crate::sys::alloc_count::peak_during;

/// Wall-clock budget of one fuzz test.
const BUDGET: Duration = Duration::from_secs(5);

/// Run `test` on `cases` inputs of `strategy` (PROPTEST_CASES overrides `cases`), skipping
/// what is left when the budget is spent.
fn fuzz<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let started = Instant::now();
    let ran = std::cell::Cell::new(0u32);
    let result = runner.run(&strategy, |input| {
        if started.elapsed() > BUDGET {
            return Ok(());
        }
        ran.set(ran.get() + 1);
        test(input)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("{} cases in {:?}", ran.get(), started.elapsed());
}

/// A bound on what one call may allocate at once: `per_byte` times the input plus `base`.
fn assert_bounded(peak: usize, input_len: usize, per_byte: usize, base: usize) -> Result<(), TestCaseError> {
    let bound = input_len * per_byte + base;
    prop_assert!(peak <= bound, "{peak} bytes allocated for {input_len} bytes of input");
    Ok(())
}

// ---- the config resolver ----

/// A TOML value of any type, with values that mean something to holden among them.
fn toml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (-5i64..2_000_000).prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| {
            if f.is_nan() {
                "nan".to_string()
            } else if f.is_infinite() {
                if f > 0.0 { "inf" } else { "-inf" }.to_string()
            } else {
                format!("{f:?}")
            }
        }),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::sample::select(vec![
            "10s",
            "0s",
            "1ms",
            "99999999999h",
            "30MB",
            "99999999TiB",
            "0.5",
            "max",
            "TERM",
            "KILL",
            "SIGHUP",
            "always",
            "never",
            "on-failure",
            "auto",
            "off",
            "required",
            "/supervisor",
            "",
            "/",
            "..",
            "web",
            "root",
            "nobody",
            "0644",
            "{index}",
            "{{index}}",
            "{index",
            "w@{index}",
            "sleep 10",
            "sh -c 'exit 1'",
            "'unclosed",
            "inherit",
            "null",
            "stdout",
            "a\u{0}b",
            "\u{7f}",
            "ünï",
            "debug",
        ])
        .prop_map(basic_string),
        "[ -~]{0,24}".prop_map(|s| basic_string(&s)),
    ];
    scalar.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-zA-Z_]{1,6}", inner), 0..3).prop_map(|kv| {
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", body.join(", "))
            }),
        ]
    })
}

/// A value that suits `key`, as the docs would write it.
fn good_value(key: &str) -> &'static [&'static str] {
    match key {
        "command" => &["\"sleep 10\"", "[\"sh\", \"-c\", \"exit {index}\"]", "\"echo 'a b' c\""],
        "directory" | "stdout" | "stderr" | "logfile" | "socket" | "agent" => {
            &["\"/tmp\"", "\"w{index}.log\"", "\"null\"", "\"inherit\""]
        }
        "environment" => &["{ A = \"1\", B = \"{index}\" }"],
        "user" | "group" => &["\"root\"", "\"nobody\""],
        "autostart" | "log_timestamps" => &["true", "false"],
        "autorestart" => &["\"always\"", "\"never\"", "\"on-failure\""],
        "exit_codes" => &["[0, 2]", "[]"],
        "min_uptime" | "restart_delay" | "max_restart_delay" | "start_limit_interval" | "stop_timeout" => {
            &["\"1s\"", "\"100ms\"", "\"0s\""]
        }
        "max_restarts" | "start_limit_burst" | "log_backups" | "instance_start" => &["0", "3", "1000"],
        "instances" => &["1", "3", "1024"],
        "stop_signal" => &["\"TERM\"", "\"SIGINT\"", "9"],
        "memory_limit" | "log_max_bytes" => &["\"30MB\"", "\"1GiB\"", "\"0\""],
        "cpu_limit" => &["0.5", "2"],
        "pids_limit" => &["20", "4194304"],
        "depends_on" => &["[\"web\"]", "[\"a\", \"a\"]", "[]"],
        "socket_mode" => &["\"0600\"", "\"0666\""],
        "allow_uids" => &["[0, 65534]", "[]"],
        "log_level" => &["\"info\"", "\"debug\""],
        "cgroup_path" => &["\"/supervisor\"", "\"programs\""],
        "cgroups" => &["\"off\"", "\"auto\""],
        _ => &["[\"web\"]", "[\"a\", \"b@1\"]"],
    }
}

/// `key = value` lines, each key once: mostly known keys with fitting values, sometimes not.
fn entries(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    let key = prop_oneof![
        8 => prop::sample::select(known).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
    ];
    let entry = (
        key,
        any::<prop::sample::Index>(),
        prop::bool::weighted(0.9),
        toml_value(),
    );
    prop::collection::vec(entry, 0..8).prop_map(|kv| {
        let mut seen = std::collections::BTreeSet::new();
        kv.into_iter()
            .filter(|(k, ..)| seen.insert(k.clone()))
            .map(|(k, pick, good, random)| {
                let goods = good_value(&k);
                let v = if good {
                    goods[pick.index(goods.len())].to_string()
                } else {
                    random
                };
                format!("{k} = {v}\n")
            })
            .collect()
    })
}

/// A whole config: a `[supervisor]` table, a few programs, sometimes groups.
fn structured_config() -> impl Strategy<Value = String> {
    let program = (
        prop_oneof![
            12 => "[a-z][a-z0-9_-]{0,8}",
            1 => prop::sample::select(vec!["cgroup.procs", "tasks", "a.b", "x@1", "", "..", "-", "ü"]).prop_map(str::to_string),
        ],
        entries(PROGRAM_KEYS),
        prop::option::of(toml_value()),
    );
    (
        prop::option::weighted(0.3, entries(SUPERVISOR_KEYS)),
        prop::collection::vec(program, 0..4),
        prop::option::weighted(0.2, entries(&["web", "all", "g"])),
    )
        .prop_map(|(sup, mut programs, groups)| {
            let mut names = std::collections::BTreeSet::new();
            programs.retain(|(name, ..)| names.insert(name.clone()));
            let mut text = String::new();
            if let Some(s) = sup {
                text.push_str("[supervisor]\n");
                text.push_str(&s);
            }
            for (name, body, command) in programs {
                text.push_str(&format!("[programs.{}]\n", basic_string(&name)));
                if let Some(c) = command.filter(|_| !body.contains("command =")) {
                    text.push_str(&format!("command = {c}\n"));
                }
                text.push_str(&body);
            }
            if let Some(g) = groups {
                text.push_str("[groups]\n");
                text.push_str(&g);
            }
            text
        })
}

/// Text that looks a little like TOML: its punctuation, keys and words in random order.
fn tomlish_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "[",
            "]",
            "[[",
            "]]",
            "=",
            "\"",
            "'",
            "\"\"\"",
            "{",
            "}",
            ",",
            ".",
            "#",
            "\n",
            " ",
            "\\",
            "\\u",
            "-",
            "programs",
            "supervisor",
            "groups",
            "command",
            "instances",
            "depends_on",
            "1024",
            "1e400",
            "0x10",
            "true",
            "\u{0}",
            "\r",
        ])
        .prop_map(str::to_string),
        prop::sample::select(PROGRAM_KEYS).prop_map(str::to_string),
        "[ -~]{1,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..120).prop_map(|p| p.concat())
}

fn resolve_checked(text: &str) -> Result<(), TestCaseError> {
    let (result, peak) = peak_during(|| load_str(Path::new("fz.toml"), text));
    if let Err(e) = result {
        prop_assert!(!e.problems.is_empty(), "an error without a message for {text:?}");
        for m in &e.lines() {
            prop_assert!(
                m.starts_with("fz.toml"),
                "an error without its file: {m:?} for {text:?}"
            );
        }
    }
    // Up to 1024 instances of a program, each a full copy of it.
    assert_bounded(peak, text.len(), 4096, 32 << 20)
}

#[test]
fn fuzz_the_config_resolver_with_structured_configs() {
    fuzz(20_000, structured_config(), |text| resolve_checked(&text));
}

#[test]
fn fuzz_the_config_resolver_with_tomlish_text() {
    fuzz(10_000, tomlish_text(), |text| resolve_checked(&text));
}

// ---- the control-request parser ----

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec!["web", "max", "TERM", "9", "", "..", "/", "always", "x@1", "30MB"])
            .prop_map(|s| Value::String(s.to_string())),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const REQUEST_FIELDS: &[&str] = &[
    "v",
    "names",
    "name",
    "all",
    "signal",
    "memory",
    "cpu",
    "pids",
    "command",
    "restart",
    "stdout",
    "directory",
    "environment",
    "follow",
    "lines",
    "x",
];

/// `{"cmd": ..., field: value, ...}`, keys sometimes repeated, as text.
fn request_line() -> impl Strategy<Value = Vec<u8>> {
    let cmd = prop_oneof![
        4 => prop::sample::select(COMMANDS).prop_map(|c| serde_json::Value::String(c.to_string())),
        1 => json_value(),
    ];
    let field = (prop::sample::select(REQUEST_FIELDS), json_value());
    (cmd, prop::collection::vec(field, 0..5)).prop_map(|(cmd, fields)| {
        let mut parts = vec![format!("\"cmd\":{cmd}")];
        parts.extend(fields.iter().map(|(k, v)| format!("\"{k}\":{v}")));
        format!("{{{}}}", parts.join(",")).into_bytes()
    })
}

fn parse_checked(line: &[u8]) -> Result<(), TestCaseError> {
    let (result, peak) = peak_during(|| {
        let parsed = parse_request(line);
        if let Ok(request) = &parsed {
            let _ = request.validate();
            // What parses is written back as a line that parses to the same request.
            let again = parse_request(request.to_line().trim_end().as_bytes());
            return (parsed.clone(), Some(again));
        }
        (parsed, None)
    });
    if let (Ok(request), Some(again)) = &result {
        prop_assert_eq!(again.as_ref().ok(), Some(request), "{}", String::from_utf8_lossy(line));
    }
    assert_bounded(peak, line.len(), 64, 256 << 10)
}

#[test]
fn fuzz_the_control_request_parser_with_json_requests() {
    fuzz(20_000, request_line(), |line| parse_checked(&line));
}

#[test]
fn fuzz_the_control_request_parser_with_bytes() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        // Deep nesting and long lines: bounded by the line limit and the JSON depth limit.
        (1usize..100_000).prop_map(|n| "[".repeat(n).into_bytes()),
        (60_000usize..70_000).prop_map(|n| format!("{{\"cmd\":\"{}\"}}", "a".repeat(n)).into_bytes()),
    ];
    fuzz(3000, bytes, |line| parse_checked(&line));
}

// ---- the agent frame decoder ----

/// A header with the right magic and version, a random type and flags, and a payload of the
/// length it claims (or not).
fn agent_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..8,
        prop::collection::vec(any::<u8>(), 0..2),
        prop::collection::vec(any::<u8>(), 0..600),
        prop_oneof![4 => Just(None), 1 => any::<u32>().prop_map(Some)],
    )
        .prop_map(|(kind, reserved, payload, claimed)| {
            let mut f = frame::MAGIC.to_vec();
            f.push(frame::VERSION);
            f.push(kind);
            f.extend_from_slice(&[reserved.first().copied().unwrap_or(0) & 1, 0]);
            let len = claimed.unwrap_or(payload.len() as u32);
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(&payload);
            f
        })
}

/// A START_PROCESS payload made of length-prefixed pieces, some lengths lying.
fn start_process_frame() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..20).prop_map(|b| {
            let mut out = (b.len() as u32).to_le_bytes().to_vec();
            out.extend(b);
            out
        }),
        any::<u32>().prop_map(|n| n.to_le_bytes().to_vec()),
        (0u32..5000).prop_map(|n| n.to_le_bytes().to_vec()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| {
        let payload = pieces.concat();
        let mut f = frame::MAGIC.to_vec();
        f.extend_from_slice(&[frame::VERSION, frame::TYPE_START_PROCESS, 0, 0]);
        f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend(payload);
        f
    })
}

fn decode_checked(buf: &[u8]) -> Result<(), TestCaseError> {
    let (result, peak) = peak_during(|| frame::decode(buf));
    if let Ok(Some((msg, len))) = &result {
        prop_assert!(*len <= buf.len());
        // What decodes encodes back to the same frame.
        let again = frame::encode(msg).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(frame::decode(&again).ok().flatten().map(|(m, _)| m), Some(msg.clone()));
    }
    // Every prefix is either incomplete or refused, never a panic.
    for cut in [0, 1, 4, 11, 12, buf.len() / 2, buf.len().saturating_sub(1)] {
        if cut < buf.len() {
            let _ = frame::decode(&buf[..cut]);
        }
    }
    assert_bounded(peak, buf.len(), 16, 64 << 10)
}

#[test]
fn fuzz_the_agent_frame_decoder() {
    let input = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..64),
        agent_frame(),
        start_process_frame(),
    ];
    fuzz(50_000, input, |buf| decode_checked(&buf));
}

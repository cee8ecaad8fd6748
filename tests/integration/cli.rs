//! SPEC "Commands", as a newcomer meets them: help and usage, the status and monitor tables,
//! `add` and `logs` of a transient program, completions, the man page and `--version`. Each
//! runs the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

/// Wait until program `name` is in `state`; returns its status.
fn wait_state(sup: &Supervisor, name: &str, state: &str) -> Value {
    wait_state_within(T, sup, name, state)
}

/// The row of `name` in `holden status`'s table.
fn status_row(sup: &Supervisor, name: &str) -> String {
    let out = sup.ctl(&["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .to_string()
}

/// `holden add --socket S ARGS`: the socket before ARGS, which end in the command.
fn add(sup: &Supervisor, args: &[&str]) -> std::process::Output {
    let sock = sup.socket.display().to_string();
    let mut full = vec!["add", "--socket", &sock];
    full.extend_from_slice(args);
    holden_in(Some(sup.dir.path()), &full, &[])
}

#[test]
fn stop_start_and_restart_need_names_or_all_and_help_says_so() {
    for verb in ["stop", "start", "restart"] {
        let out = holden(&[verb]);
        assert_eq!(out.status.code(), Some(2), "{verb}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("<NAME|--all>"), "{verb}: {err}");
        let help = text(&holden(&[verb, "--help"]).stdout);
        assert!(
            help.contains(&format!("Usage: holden {verb} [OPTIONS] <NAME|--all>")),
            "{help}"
        );
        let out = holden(&[verb, "web", "--all"]);
        assert_eq!(out.status.code(), Some(2), "{verb} NAME --all: {}", text(&out.stderr));
    }
}

#[test]
fn add_waits_until_running_and_logs_of_it_point_at_add_stdout() {
    let sup = Supervisor::start("");
    let out = add(&sup, &["job", "--", "sleep", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("job: added\njob: RUNNING (pid "), "{said}");
    // add returned at RUNNING, as start does: no waiting needed here.
    let st = sup.program_status("job");
    assert_eq!(st["state"], "RUNNING", "{st}");

    let out = sup.ctl(&["logs", "job"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("add it again with `holden add job --stdout PATH -- ...` (after `holden remove job`)"),
        "{err}"
    );
    assert!(!err.contains("[programs.job]"), "{err}");
}

#[test]
fn add_of_a_program_that_cannot_start_fails_like_start_and_no_wait_returns_at_once() {
    let sup = Supervisor::start("");
    let out = add(&sup, &["bad", "--restart", "never", "--", "/nonexistent/cmd"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.starts_with("holden: bad did not start: FATAL"), "{err}");

    let started = Instant::now();
    let out = add(&sup, &["slow", "--no-wait", "--", "sleep", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "slow: added\n");
    assert!(started.elapsed() < T);
    wait_state(&sup, "slow", "RUNNING");
}

#[test]
fn the_log_counts_programs_in_proper_english() {
    let mut one = Supervisor::start("[programs.web]\ncommand = \"sleep 1000\"\n");
    one.wait_log("supervising 1 program from", T);
    let mut two = Supervisor::start("[programs.a]\ncommand = \"sleep 1000\"\n[programs.b]\ncommand = \"sleep 1000\"\n");
    two.wait_log("supervising 2 programs from", T);
}

#[test]
fn uptime_counts_from_the_process_start_not_the_last_transition() {
    let sup = Supervisor::start("[programs.web]\ncommand = \"sleep 1000\"\nmin_uptime = \"2s\"\n");
    let st = wait_state(&sup, "web", "RUNNING");
    let row = status_row(&sup, "web");
    let uptime = row.split_whitespace().nth(3).expect("an UPTIME cell").to_string();
    // RUNNING after min_uptime = 2s alive: the process is at least 2s old, though it became
    // RUNNING just now.
    let secs: u64 = uptime
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(secs >= 2, "UPTIME {uptime} in {row}");
    // SPEC's `since` stays the time of the last transition (to RUNNING, after the 2s).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let since = st["since"].as_f64().expect("since");
    assert!(
        now - since < 2.0 + T.as_secs_f64() && since <= now,
        "since {since}, now {now}"
    );
}

#[test]
fn sizes_show_in_the_unit_family_of_the_limit_and_stopped_programs_use_no_memory() {
    if skip_unless_root("sizes_show_in_the_unit_family_of_the_limit_and_stopped_programs_use_no_memory") {
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::start_with(
        &cgroup_extra(&cg),
        r#"
[programs.si]
command = "sleep 1000"
min_uptime = "100ms"
memory_limit = "30MB"

[programs.iec]
command = "sleep 1000"
min_uptime = "100ms"
memory_limit = "64MiB"
"#,
    );
    wait_state(&sup, "si", "RUNNING");
    wait_state(&sup, "iec", "RUNNING");
    // The use in the limit's family: `262.1 kB / 30 MB (1%)`, `256 KiB / 64 MiB (0%)`.
    let si = status_row(&sup, "si");
    let used = si.split(" / 30 MB (").next().unwrap_or_default();
    assert!(
        si.contains(" / 30 MB (") && [" B", "kB", "MB"].iter().any(|u| used.ends_with(u)),
        "{si}"
    );
    let iec = status_row(&sup, "iec");
    let used = iec.split(" / 64 MiB (").next().unwrap_or_default();
    assert!(
        iec.contains(" / 64 MiB (") && [" B", "KiB", "MiB"].iter().any(|u| used.ends_with(u)),
        "{iec}"
    );
    let out = sup.ctl(&["stop", "si"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let si = status_row(&sup, "si");
    assert!(si.ends_with("  - / 30 MB"), "a STOPPED program uses no memory: {si}");
    // check says the same.
    let out = holden(&["check", "-c", sup.config.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("memory_limit = 30000000  # 30 MB"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("memory_limit = 67108864  # 64 MiB"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn monitor_shows_current_and_max_pids_and_cpu_as_a_number_in_its_first_frame() {
    if skip_unless_root("monitor_shows_current_and_max_pids_and_cpu_as_a_number_in_its_first_frame") {
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::start_with(
        &cgroup_extra(&cg),
        r#"
[programs.spin]
command = ["sh", "-c", "while :; do :; done"]
min_uptime = "100ms"
cpu_limit = 0.5
pids_limit = 16
"#,
    );
    wait_state(&sup, "spin", "RUNNING");
    let mut child = Command::new(HOLDEN)
        .args(["monitor", "--interval", "1s", "--socket"])
        .arg(&sup.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn holden monitor");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first frame: a time stamp, the header, the rows, a blank line.
    let deadline = Instant::now() + T;
    let mut frame = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.is_empty() && frame.len() > 1 {
            break;
        }
        frame.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let frame = frame.join("\n");
    let header = frame
        .lines()
        .find(|l| l.starts_with("NAME"))
        .unwrap_or_else(|| panic!("{frame}"));
    let row = frame
        .lines()
        .find(|l| l.starts_with("spin "))
        .unwrap_or_else(|| panic!("{frame}"));
    let at = |col: &str| header.find(col).unwrap_or_else(|| panic!("no {col} in {header}"));
    let cpu = row[at("CPU")..at("MEMORY")].trim();
    let first = cpu.split_whitespace().next().unwrap_or("");
    assert!(
        first.ends_with('%') && first.trim_end_matches('%').parse::<f64>().is_ok(),
        "the first frame shows CPU as a number: {row}"
    );
    assert!(cpu.ends_with("% / 50%"), "{row}");
    assert_eq!(row[at("PIDS")..].trim(), "1 / 16", "PIDS is current / max: {row}");
}

#[test]
fn completions_are_accepted_by_bash_zsh_and_fish() {
    let bash = holden(&["completions", "bash"]);
    assert!(bash.status.success(), "{}", text(&bash.stderr));
    let dir = tempdir();
    let script = dir.path().join("holden.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let check = |shell: &str, args: &[&str]| {
        let out = Command::new(shell)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{shell} is needed to check its completions ({e}): apt-get install {shell}"));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{shell} {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let s = script.to_str().unwrap();
    check("bash", &["-n", s]);
    let registered = check("bash", &["-c", &format!("source {s} && complete -p holden")]);
    assert!(registered.contains("holden"), "{registered}");
    for shell in ["zsh", "fish"] {
        let out = holden(&["completions", shell]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let file = dir.path().join(format!("holden.{shell}"));
        std::fs::write(&file, &out.stdout).unwrap();
        check(shell, &["-n", file.to_str().unwrap()]);
    }
    // fish accepts the completions it is given as real `complete` commands too.
    let out = check(
        "fish",
        &[
            "-c",
            &format!(
                "source {}; complete -C 'holden sto'",
                dir.path().join("holden.fish").display()
            ),
        ],
    );
    assert!(out.lines().any(|l| l.starts_with("stop")), "{out}");
}

#[test]
fn the_man_page_is_accepted_by_man_without_warnings() {
    let out = holden(&["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
    let dir = tempdir();
    let file = dir.path().join("holden.1");
    std::fs::write(&file, &out.stdout).unwrap();
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&file)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .stdin(Stdio::null())
        .output()
        .expect("man (apt-get install man-db) is needed to check the man page");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "man warned");
    let shown = text(&out.stdout);
    for needle in ["COMMANDS", "holden constrain", "--memory SIZE", "holden completions"] {
        assert!(shown.contains(needle), "no {needle:?} in\n{shown}");
    }
}

#[test]
fn version_names_the_git_commit_of_the_build() {
    let out = holden(&["--version"]);
    assert!(out.status.success());
    let version = text(&out.stdout);
    let pkg = env!("CARGO_PKG_VERSION");
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_string());
    match head {
        // The binary may be older than HEAD (built, then committed): it names a commit.
        Some(_) => {
            let rest = version
                .trim()
                .strip_prefix(&format!("holden {pkg} ("))
                .unwrap_or_else(|| panic!("{version}"));
            let commit = rest.trim_end_matches(')').trim_end_matches("-dirty");
            assert!(
                commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
                "{version}"
            );
        }
        None => assert_eq!(version.trim(), format!("holden {pkg}")),
    }
}

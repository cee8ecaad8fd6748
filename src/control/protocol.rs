//! The control protocol: what travels over the control socket, as serde types.
//!
//! Newline-delimited JSON. A client writes one request per line and gets one response per
//! line, in order. A connection that asked to `watch` also receives events (state changes),
//! one per line, interleaved with its responses: an event has an `"event"` key, a response an
//! `"ok"` key, so a reader never confuses them. `docs/control-protocol.md` is the reference
//! for users; this file is the reference for the code.
//!
//! Versioning: a request may carry `"v": 1`; absent means 1. A request for a version this
//! holden does not speak is refused with `unsupported_version` rather than half understood.
//! Within a version, fields are only ever added to responses and events (readers ignore
//! unknown keys), while requests are strict (an unknown key is `bad_request`), so that a newer
//! client never silently loses an argument to an older holden.
//!
//! Parsing is split in steps so that each failure gets its own stable code: not UTF-8 or not
//! JSON (`bad_request`), an unknown `cmd` (`unknown_command`), the wrong version
//! (`unsupported_version`), wrong fields (`bad_request`), values that cannot be right whatever
//! the supervisor holds (`invalid_argument`). Whether a named program exists is the
//! supervisor's to say (`unknown_program`).

use std::fmt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::config::{self, RestartPolicy};
use crate::process::ExitKind;

/// The protocol version this holden speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line accepted, newline excluded. Requests are small (the largest is
/// `add` with its argv); anything longer is a mistake or an attack and gets `too_large`.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// The largest cpu limit accepted, in CPUs: far above any machine, and far below what makes
/// the kernel's quota overflow (ERANGE, which would reach a user as "errno 34").
pub const MAX_CPUS: f64 = 1_000_000.0;

/// The largest pids limit accepted: the kernel's PID_MAX_LIMIT.
pub const MAX_PIDS: u64 = 4_194_304;

/// Every `cmd` this version knows, in the order of [`Request`].
pub const COMMANDS: &[&str] = &[
    "status",
    "start",
    "stop",
    "restart",
    "signal",
    "constrain",
    "add",
    "remove",
    "reopen",
    "reload",
    "shutdown",
    "watch",
    "log_paths",
];

/// A request, as the line `{"cmd": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The status of the named programs, or of every program for an empty list.
    Status {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    /// Start the named programs (or every program with `all`). Answered at once; the client
    /// follows the programs through `watch` events.
    Start {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
    },
    Stop {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
    },
    Restart {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
    },
    /// Send `signal` (`HUP`, `SIGHUP` or a number) to each program's main process.
    Signal { signal: String, names: Vec<String> },
    /// Change limits of a running program, live. Absent: unchanged; `"max"`: lifted.
    Constrain {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory: Option<Limit<u64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu: Option<Limit<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pids: Option<Limit<u64>>,
    },
    /// Supervise a transient program that is not in the config file.
    Add {
        name: String,
        command: Vec<String>,
        #[serde(default = "default_restart")]
        restart: RestartPolicy,
        /// Bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory: Option<u64>,
        /// CPUs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pids: Option<u64>,
        /// Log file for stdout and stderr (absolute); absent: holden's own stderr.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdout: Option<PathBuf>,
        /// Working directory (absolute): the client's own.
        directory: PathBuf,
    },
    /// Stop a transient program and forget it.
    Remove { name: String },
    /// Close and reopen every log file.
    Reopen,
    /// Re-read the config file and apply the difference.
    Reload,
    /// Graceful shutdown of the supervisor.
    Shutdown,
    /// Answered with the status of every program; from then on this connection also
    /// receives every [`Event`].
    Watch,
    /// Where a program's output is written, for `holden logs`.
    LogPaths { name: String },
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_restart() -> RestartPolicy {
    RestartPolicy::OnFailure
}

impl Request {
    /// The `cmd` string of this request.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status { .. } => "status",
            Request::Start { .. } => "start",
            Request::Stop { .. } => "stop",
            Request::Restart { .. } => "restart",
            Request::Signal { .. } => "signal",
            Request::Constrain { .. } => "constrain",
            Request::Add { .. } => "add",
            Request::Remove { .. } => "remove",
            Request::Reopen => "reopen",
            Request::Reload => "reload",
            Request::Shutdown => "shutdown",
            Request::Watch => "watch",
            Request::LogPaths { .. } => "log_paths",
        }
    }

    /// Checks that need no knowledge of the running programs.
    pub fn validate(&self) -> Result<(), ErrorBody> {
        let invalid = |m: String| Err(ErrorBody::new(ErrorCode::InvalidArgument, m));
        match self {
            Request::Status { .. } | Request::Reopen | Request::Reload | Request::Shutdown | Request::Watch => Ok(()),
            Request::Start { names, all } | Request::Stop { names, all } | Request::Restart { names, all } => {
                match (names.is_empty(), *all) {
                    (true, false) => invalid(format!("{} needs program names or \"all\": true", self.command())),
                    (false, true) => invalid(format!(
                        "{} takes program names or \"all\": true, not both",
                        self.command()
                    )),
                    (false, false) | (true, true) => Ok(()),
                }
            }
            Request::Signal { signal, names } => {
                if config::Signal::parse(signal).is_none() {
                    return invalid(format!(
                        "{signal:?} is not a signal; use a name like HUP or a number from 1 to 64"
                    ));
                }
                if names.is_empty() {
                    return invalid("signal needs program names".to_string());
                }
                Ok(())
            }
            Request::Constrain {
                name,
                memory,
                cpu,
                pids,
            } => {
                if memory.is_none() && cpu.is_none() && pids.is_none() {
                    return invalid(format!("constrain {name}: give at least one of memory, cpu, pids"));
                }
                if let Some(Limit::Value(0)) = memory {
                    return invalid("a memory limit of 0 bytes would kill the program; use \"max\" to lift it".into());
                }
                if let Some(Limit::Value(c)) = cpu
                    && !(c.is_finite() && *c > 0.0)
                {
                    return invalid(format!("a cpu limit must be a number of CPUs above 0, not {c}"));
                }
                if let Some(Limit::Value(0)) = pids {
                    return invalid(
                        "a pids limit of 0 would forbid the program any task; use \"max\" to lift it".into(),
                    );
                }
                if let Some(Limit::Value(c)) = cpu
                    && *c > MAX_CPUS
                {
                    return invalid(format!(
                        "a cpu limit of {} CPUs is out of range; the most is {MAX_CPUS}, or \"max\" to lift it",
                        cpus_text(*c)
                    ));
                }
                if let Some(Limit::Value(n)) = pids
                    && *n > MAX_PIDS
                {
                    return invalid(format!(
                        "a pids limit of {n} is out of range; the kernel's most is {MAX_PIDS}, or \"max\" to lift it"
                    ));
                }
                Ok(())
            }
            Request::Add {
                name,
                command,
                memory,
                cpu,
                pids,
                stdout,
                directory,
                ..
            } => {
                if !config::valid_program_name(name) {
                    return invalid(format!(
                        "{name:?} is not a program name: use 1 to 64 of A-Za-z0-9_.- (not . or ..)"
                    ));
                }
                if let Some(why) = config::cgroup_reserved(name) {
                    return invalid(format!(
                        "add {name}: {why}, and each program gets a cgroup of its name; choose another name"
                    ));
                }
                if command.is_empty() || command[0].is_empty() {
                    return invalid(format!("add {name}: the command is empty"));
                }
                if command.iter().any(|a| a.contains('\0'))
                    || directory.as_os_str().as_encoded_bytes().contains(&0)
                    || stdout
                        .as_ref()
                        .is_some_and(|p| p.as_os_str().as_encoded_bytes().contains(&0))
                {
                    return invalid(format!(
                        "add {name}: a NUL byte in the command or a path; exec and paths cannot carry one"
                    ));
                }
                if *memory == Some(0) || *pids == Some(0) {
                    return invalid(format!("add {name}: a limit of 0 would stop the program from running"));
                }
                if let Some(c) = cpu
                    && !(c.is_finite() && *c > 0.0)
                {
                    return invalid(format!(
                        "add {name}: a cpu limit must be a number of CPUs above 0, not {c}"
                    ));
                }
                if let Some(c) = cpu
                    && *c > MAX_CPUS
                {
                    return invalid(format!(
                        "add {name}: a cpu limit of {} CPUs is out of range; the most is {MAX_CPUS}",
                        cpus_text(*c)
                    ));
                }
                if let Some(n) = pids
                    && *n > MAX_PIDS
                {
                    return invalid(format!(
                        "add {name}: a pids limit of {n} is out of range; the kernel's most is {MAX_PIDS}"
                    ));
                }
                if !directory.is_absolute() {
                    return invalid(format!("add {name}: directory {} is not absolute", directory.display()));
                }
                if let Some(p) = stdout
                    && !p.is_absolute()
                {
                    return invalid(format!("add {name}: stdout {} is not absolute", p.display()));
                }
                Ok(())
            }
            Request::Remove { name } | Request::LogPaths { name } => {
                if name.is_empty() {
                    return invalid(format!("{} needs a program name", self.command()));
                }
                Ok(())
            }
        }
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a request always serializes");
        s.push('\n');
        s
    }
}

/// A number of CPUs for a message: `1e308`, not 309 digits.
fn cpus_text(c: f64) -> String {
    if c.abs() >= 1e9 {
        format!("{c:e}")
    } else {
        c.to_string()
    }
}

/// Parse one request line (without its newline). Every failure is an error response to send
/// back, with the stable code that says what was wrong.
pub fn parse_request(line: &[u8]) -> Result<Request, ErrorBody> {
    let bad = |m: String| ErrorBody::new(ErrorCode::BadRequest, m);
    if line.len() > MAX_REQUEST_LINE {
        return Err(ErrorBody::too_large());
    }
    let text = std::str::from_utf8(line).map_err(|_| bad("the request is not UTF-8 text".into()))?;
    let value = match serde_json::from_str::<StrictValue>(text) {
        Ok(v) => v.0,
        // Only a repeated key is a data error here: everything else is syntax.
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(bad(format!("the request {e}; each key may appear once")));
        }
        Err(e) => return Err(bad(format!("the request is not JSON ({e})"))),
    };
    let serde_json::Value::Object(mut map) = value else {
        return Err(bad("the request is not a JSON object like {\"cmd\":\"status\"}".into()));
    };
    if let Some(v) = map.remove("v") {
        match v.as_u64() {
            Some(n) if n == u64::from(PROTOCOL_VERSION) => {}
            Some(_) | None => {
                return Err(ErrorBody::new(
                    ErrorCode::UnsupportedVersion,
                    format!("protocol version {v} is not supported; this holden speaks version {PROTOCOL_VERSION}"),
                ));
            }
        }
    }
    let cmd = match map.get("cmd") {
        Some(serde_json::Value::String(c)) => c.clone(),
        Some(_) => return Err(bad("\"cmd\" must be a string".into())),
        None => return Err(bad("the request has no \"cmd\"".into())),
    };
    if !COMMANDS.contains(&cmd.as_str()) {
        return Err(ErrorBody::new(
            ErrorCode::UnknownCommand,
            format!("unknown command {cmd:?}; known: {}", COMMANDS.join(", ")),
        ));
    }
    // serde ignores extra keys beside the tag of a unit variant; strictness must not depend
    // on which command it is.
    if matches!(cmd.as_str(), "reopen" | "reload" | "shutdown" | "watch")
        && let Some(extra) = map.keys().find(|k| *k != "cmd")
    {
        return Err(bad(format!(
            "bad {cmd} request: unknown field `{extra}`, {cmd} takes none"
        )));
    }
    let request: Request = match serde_json::from_value(serde_json::Value::Object(map.clone())) {
        Ok(r) => r,
        Err(e) => return Err(bad(wrong_field(&cmd, &map, &e))),
    };
    request.validate()?;
    Ok(request)
}

/// One sentence for a request whose fields do not fit its command. serde_json's errors from a
/// `Value` name no field, so the field is found by leaving each one out in turn: the one
/// whose absence makes the error go away (or become "missing field") is the culprit.
fn wrong_field(cmd: &str, map: &serde_json::Map<String, serde_json::Value>, e: &serde_json::Error) -> String {
    let message = e.to_string();
    if message.starts_with("unknown field") || message.starts_with("missing field") {
        return format!("bad {cmd} request: {message}");
    }
    for key in map.keys().filter(|k| *k != "cmd") {
        let mut without = map.clone();
        let value = without.remove(key).unwrap_or(serde_json::Value::Null);
        let culprit = match serde_json::from_value::<Request>(serde_json::Value::Object(without)) {
            Ok(_) => true,
            Err(e2) => e2.to_string() == format!("missing field `{key}`"),
        };
        if culprit {
            let found = match &value {
                serde_json::Value::Null => "null".to_string(),
                serde_json::Value::Bool(b) => format!("the boolean {b}"),
                serde_json::Value::Number(n) => format!("the number {n}"),
                serde_json::Value::String(t) => format!("the string {t:?}"),
                serde_json::Value::Array(_) => "a list".to_string(),
                serde_json::Value::Object(_) => "an object".to_string(),
            };
            let detail = message
                .split_once(", expected ")
                .map_or(String::new(), |(_, x)| format!(", expected {x}"));
            return format!("bad {cmd} request: field `{key}` has {found}{detail}");
        }
    }
    format!("bad {cmd} request: {message}")
}

/// A JSON value that refuses a key repeated within one object, at any depth (serde_json
/// keeps the last one, so `{"cmd":"status","cmd":"shutdown"}` would shut down).
struct StrictValue(serde_json::Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = StrictValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<StrictValue, E> {
                Ok(StrictValue(b.into()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<StrictValue, E> {
                Ok(StrictValue(n.into()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<StrictValue, E> {
                Ok(StrictValue(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<StrictValue, E> {
                Ok(StrictValue(
                    serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into),
                ))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StrictValue, E> {
                Ok(StrictValue(s.into()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<StrictValue, E> {
                Ok(StrictValue(s.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
                Ok(StrictValue(serde_json::Value::Null))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
                let mut v = Vec::new();
                while let Some(StrictValue(x)) = seq.next_element()? {
                    v.push(x);
                }
                Ok(StrictValue(serde_json::Value::Array(v)))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
                let mut m = serde_json::Map::new();
                while let Some(k) = map.next_key::<String>()? {
                    if m.contains_key(&k) {
                        return Err(de::Error::custom(format_args!("has the key {k:?} twice")));
                    }
                    let StrictValue(v) = map.next_value()?;
                    m.insert(k, v);
                }
                Ok(StrictValue(serde_json::Value::Object(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A limit that can be set to a value or lifted: `500000000` or `"max"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit<T> {
    Value(T),
    Max,
}

impl<T: Serialize> Serialize for Limit<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Value(v) => v.serialize(s),
            Limit::Max => s.serialize_str("max"),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Limit<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through a Value rather than an untagged enum, whose error ("data did not match any
        // variant of untagged enum") says nothing to a user.
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(t) if t == "max" => Ok(Limit::Max),
            v @ serde_json::Value::Number(_) => T::deserialize(v.clone())
                .map(Limit::Value)
                .map_err(|_| de::Error::custom(format!("invalid value: {v}, expected a number in range or \"max\""))),
            v => Err(de::Error::custom(format!(
                "invalid type: {v}, expected a number or \"max\""
            ))),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Limit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Value(v) => v.fmt(f),
            Limit::Max => f.write_str("max"),
        }
    }
}

/// One program, as `status` and `watch` report it: SPEC's "Status fields", plus `started` and
/// `pids_current` for the tables of `status` and `monitor` (a client of an older holden reads
/// them as null). `holden status --json` prints SPEC's fields, `program` and `groups`: see
/// [`SpecStatus`].
/// Unknown values are null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramStatus {
    pub name: String,
    /// SPEC's state names: STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL.
    pub state: String,
    /// The main process, while there is one.
    pub pid: Option<i32>,
    /// Unix time of the last transition (see [`unix_time`]).
    pub since: f64,
    /// Restarts since holden started.
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    pub memory_bytes: Option<u64>,
    pub memory_limit: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    /// CPUs.
    pub cpu_limit: Option<f64>,
    pub pids_limit: Option<u64>,
    /// The program's cgroup path (from the root of the hierarchy), when it has one.
    pub cgroup: Option<String>,
    /// Added with `holden add`.
    pub transient: bool,
    /// Unix time the current main process was spawned (STARTING, RUNNING, STOPPING), for uptime.
    #[serde(default)]
    pub started: Option<f64>,
    /// Tasks in the program's cgroup now (`pids.current`).
    #[serde(default)]
    pub pids_current: Option<u64>,
    /// The program's name in the file: the base name of an instance (`worker` for `worker@2`),
    /// else `name`. Empty from a holden that predates instances.
    #[serde(default)]
    pub program: String,
    /// The index of an instance; null for a program without `instances`.
    #[serde(default)]
    pub instance: Option<u32>,
    /// The first of `groups`, or null.
    #[serde(default)]
    pub group: Option<String>,
    /// The `[groups]` that name the program (by its name or its base name), in name order.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Ready (RUNNING): its readiness said so.
    #[serde(default)]
    pub ready: bool,
    /// The liveness probe's (or watchdog's) view; null without either.
    #[serde(default)]
    pub health: Option<Health>,
    /// The last sd_notify `STATUS=` text.
    #[serde(default)]
    pub status_text: Option<String>,
}

/// SPEC's `health`: `{"ok": bool, "failures": n, "last": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub ok: bool,
    /// Consecutive failed probes now.
    pub failures: u32,
    /// What the last probe (or watchdog) said.
    pub last: String,
}

/// A [`ProgramStatus`] as `holden status --json` prints it: SPEC's status fields (`group` and
/// `instance` included) in SPEC's order, then `program` (the base name) and `groups` (all of
/// them, where SPEC's `group` is the first).
pub struct SpecStatus<'a>(pub &'a ProgramStatus);

impl Serialize for SpecStatus<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let p = self.0;
        let mut st = s.serialize_struct("ProgramStatus", 20)?;
        st.serialize_field("name", &p.name)?;
        st.serialize_field("state", &p.state)?;
        st.serialize_field("pid", &p.pid)?;
        st.serialize_field("since", &p.since)?;
        st.serialize_field("restarts", &p.restarts)?;
        st.serialize_field("last_exit", &p.last_exit)?;
        st.serialize_field("memory_bytes", &p.memory_bytes)?;
        st.serialize_field("memory_limit", &p.memory_limit)?;
        st.serialize_field("cpu_usage_usec", &p.cpu_usage_usec)?;
        st.serialize_field("cpu_limit", &p.cpu_limit)?;
        st.serialize_field("pids_limit", &p.pids_limit)?;
        st.serialize_field("cgroup", &p.cgroup)?;
        st.serialize_field("transient", &p.transient)?;
        st.serialize_field("ready", &p.ready)?;
        st.serialize_field("health", &p.health)?;
        st.serialize_field("status_text", &p.status_text)?;
        st.serialize_field("group", &p.group)?;
        st.serialize_field("instance", &p.instance)?;
        st.serialize_field("program", &p.program)?;
        st.serialize_field("groups", &p.groups)?;
        st.end()
    }
}

/// How the last run ended. `{"code": 1, "signal": null, "oom_killed": false}`; a signal by
/// name (`"KILL"`, or the number as text for signals without one); an OOM kill is signal
/// `KILL` with `oom_killed`; all null and false when the kernel could not tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    pub code: Option<i32>,
    pub signal: Option<String>,
    pub oom_killed: bool,
}

impl From<ExitKind> for LastExit {
    fn from(exit: ExitKind) -> LastExit {
        match exit {
            ExitKind::Code(c) => LastExit {
                code: Some(c),
                signal: None,
                oom_killed: false,
            },
            ExitKind::Signal(s) => LastExit {
                code: None,
                signal: Some(config::Signal(s).name()),
                oom_killed: false,
            },
            ExitKind::Oom => LastExit {
                code: None,
                signal: Some(config::Signal(9).name()),
                oom_killed: true,
            },
            ExitKind::Unknown => LastExit {
                code: None,
                signal: None,
                oom_killed: false,
            },
        }
    }
}

impl LastExit {
    /// Short form for tables: `exit 1`, `signal KILL`, `oom-killed`, `unknown`.
    pub fn short(&self) -> String {
        match (self.code, &self.signal, self.oom_killed) {
            (_, _, true) => "oom-killed".to_string(),
            (Some(c), _, false) => format!("exit {c}"),
            (None, Some(s), false) => format!("signal {s}"),
            (None, None, false) => "unknown".to_string(),
        }
    }
}

/// Unix time as a float, for `since`.
pub fn unix_time(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// What `reload` changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// Where a program's output goes: absolute file paths, or null when that stream is not
/// written to a file (`inherit`, `null`). With `stderr = "stdout"` both are the same path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPaths {
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
}

/// The payload of a successful response, by request:
///
/// | request | reply |
/// |---|---|
/// | status, watch | `Status` |
/// | start, stop, restart, signal | `Targets` (the programs acted on) or `Done` |
/// | reload | `Reload` |
/// | log_paths | `LogPaths` |
/// | constrain, add, remove, reopen, shutdown | `Done` |
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Status { programs: Vec<ProgramStatus> },
    Targets { targets: Vec<String> },
    Reload(ReloadSummary),
    LogPaths { logs: LogPaths },
    Done {},
}

/// One response line: `{"ok":true, ...reply}` or `{"ok":false,"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ok(Reply),
    Err(ErrorBody),
}

impl Response {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::Err(ErrorBody::new(code, message))
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("a response always serializes");
        v.push(b'\n');
        v
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct OkWire<'a> {
            ok: bool,
            #[serde(flatten)]
            reply: &'a Reply,
        }
        #[derive(Serialize)]
        struct ErrWire<'a> {
            ok: bool,
            error: &'a ErrorBody,
        }
        match self {
            Response::Ok(reply) => OkWire { ok: true, reply }.serialize(s),
            Response::Err(error) => ErrWire { ok: false, error }.serialize(s),
        }
    }
}

/// Read in one pass into typed fields (no `serde_json::Value` tree in between: a status
/// reply with hundreds of programs is the client's main cost after process start). Unknown
/// fields are ignored; the fields present pick the reply, as `Reply`'s table says.
impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            ok: Option<bool>,
            error: Option<ErrorBody>,
            programs: Option<Vec<ProgramStatus>>,
            targets: Option<Vec<String>>,
            added: Option<Vec<String>>,
            removed: Option<Vec<String>>,
            changed: Option<Vec<String>>,
            logs: Option<LogPaths>,
        }
        let w = Wire::deserialize(d)?;
        let ok =
            w.ok.ok_or_else(|| de::Error::custom("a response has \"ok\": true or false"))?;
        if !ok {
            return w
                .error
                .map(Response::Err)
                .ok_or_else(|| de::Error::missing_field("error"));
        }
        let reply = if let Some(programs) = w.programs {
            Reply::Status { programs }
        } else if let Some(targets) = w.targets {
            Reply::Targets { targets }
        } else if let Some(added) = w.added {
            Reply::Reload(ReloadSummary {
                added,
                removed: w.removed.ok_or_else(|| de::Error::missing_field("removed"))?,
                changed: w.changed.ok_or_else(|| de::Error::missing_field("changed"))?,
            })
        } else if let Some(logs) = w.logs {
            Reply::LogPaths { logs }
        } else {
            Reply::Done {}
        };
        Ok(Response::Ok(reply))
    }
}

/// An error response's body: a stable code for programs, a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
        }
    }

    pub fn too_large() -> ErrorBody {
        ErrorBody::new(
            ErrorCode::TooLarge,
            format!("the request is longer than {MAX_REQUEST_LINE} bytes; closing the connection"),
        )
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Stable error codes. New codes may appear in later versions; a client reads one it does
/// not know as `Other` and shows the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not UTF-8, not JSON, not an object, no `cmd`, wrong or unknown fields.
    BadRequest,
    /// A `cmd` this version does not know.
    UnknownCommand,
    /// A `v` other than [`PROTOCOL_VERSION`].
    UnsupportedVersion,
    /// A request line over [`MAX_REQUEST_LINE`] bytes; the connection is closed.
    TooLarge,
    /// The peer's uid is not root, holden's own, or in any of the grant lists; the connection
    /// is closed.
    NotPermitted,
    /// Too many connections at once; the connection is closed.
    Busy,
    /// No complete request within the idle timeout; the connection is closed.
    Timeout,
    /// A value that cannot be right: a bad signal, name, limit or path.
    InvalidArgument,
    /// No program by that name.
    UnknownProgram,
    /// `add` of a name that exists.
    AlreadyExists,
    /// `remove` of a program from the config file.
    NotTransient,
    /// `signal` or `constrain` of a program that has no running process.
    NotRunning,
    /// `reload` of a file that does not parse or validate; nothing was changed.
    InvalidConfig,
    /// Limits were asked for where cgroups cannot be used.
    CgroupsUnavailable,
    /// holden is shutting down and takes no new work.
    ShuttingDown,
    /// The request was valid but carrying it out failed (a cgroup write, a log reopen).
    Failed,
    /// The peer may use the socket but not for this request (an operate or admin request
    /// from a peer that lacks the grant); the connection stays open.
    Forbidden,
    /// A code from a newer holden.
    #[serde(other)]
    Other,
}

/// A state change, pushed to every connection that asked to `watch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `{"event":"transition","name":"web","from":"STARTING","to":"RUNNING","reason":null,
    /// "since":1763884860.12,"pid":4242}`: the same change as holden's log line.
    Transition {
        name: String,
        from: String,
        to: String,
        reason: Option<String>,
        /// Unix time of the transition.
        since: f64,
        /// The main process after the transition, if any.
        pid: Option<i32>,
    },
    /// A program was added (`holden add`, reload).
    Added { name: String },
    /// A program was forgotten (`holden remove`, reload).
    Removed { name: String },
}

impl Event {
    /// The event as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("an event always serializes");
        v.push(b'\n');
        v
    }

    pub fn name(&self) -> &str {
        match self {
            Event::Transition { name, .. } | Event::Added { name } | Event::Removed { name } => name,
        }
    }
}

/// One line read by a client: a response to its request, or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Response(Response),
    Event(Event),
}

impl Incoming {
    /// An event has an `"event"` key. The probe skips everything else without building it.
    pub fn parse(line: &str) -> Result<Incoming, serde_json::Error> {
        #[derive(Deserialize)]
        struct Probe {
            event: Option<de::IgnoredAny>,
        }
        if serde_json::from_str::<Probe>(line)?.event.is_some() {
            serde_json::from_str(line).map(Incoming::Event)
        } else {
            serde_json::from_str(line).map(Incoming::Response)
        }
    }
}

#[cfg(test)]
impl ProgramStatus {
    /// A program named `name` in `state`, every other field empty: the tests' starting point.
    pub(crate) fn bare(name: &str, state: &str) -> ProgramStatus {
        ProgramStatus {
            name: name.into(),
            state: state.into(),
            pid: None,
            since: 0.0,
            restarts: 0,
            last_exit: None,
            memory_bytes: None,
            memory_limit: None,
            cpu_usage_usec: None,
            cpu_limit: None,
            pids_limit: None,
            cgroup: None,
            transient: false,
            ready: false,
            health: None,
            status_text: None,
            started: None,
            pids_current: None,
            program: name.into(),
            instance: None,
            group: None,
            groups: Vec::new(),
        }
    }
}

/// The fields of each program in `status --json`: SPEC's (with its `group` and `instance`),
/// then `program` (the base name) and `groups` (all of them). The wire has two more, for the
/// tables (`started`, `pids_current`), which `status --json` leaves out.
#[cfg(test)]
pub(crate) const STATUS_JSON_FIELDS: &[&str] = &[
    "name",
    "state",
    "pid",
    "since",
    "restarts",
    "last_exit",
    "memory_bytes",
    "memory_limit",
    "cpu_usage_usec",
    "cpu_limit",
    "pids_limit",
    "cgroup",
    "transient",
    "ready",
    "health",
    "status_text",
    "program",
    "instance",
    "group",
    "groups",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn every_request() -> Vec<Request> {
        vec![
            Request::Status { names: vec![] },
            Request::Status {
                names: vec!["web".into(), "db".into()],
            },
            Request::Start {
                names: vec!["web".into()],
                all: false,
            },
            Request::Start {
                names: vec![],
                all: true,
            },
            Request::Stop {
                names: vec!["web".into()],
                all: false,
            },
            Request::Restart {
                names: vec![],
                all: true,
            },
            Request::Signal {
                signal: "HUP".into(),
                names: vec!["web".into()],
            },
            Request::Constrain {
                name: "web".into(),
                memory: Some(Limit::Value(500_000_000)),
                cpu: Some(Limit::Max),
                pids: None,
            },
            Request::Constrain {
                name: "web".into(),
                memory: Some(Limit::Max),
                cpu: Some(Limit::Value(0.5)),
                pids: Some(Limit::Value(64)),
            },
            Request::Add {
                name: "job".into(),
                command: vec!["/bin/sleep".into(), "100".into()],
                restart: RestartPolicy::Never,
                memory: Some(1 << 20),
                cpu: Some(1.5),
                pids: Some(10),
                stdout: Some("/tmp/job.log".into()),
                directory: "/tmp".into(),
            },
            Request::Add {
                name: "job".into(),
                command: vec!["true".into()],
                restart: RestartPolicy::OnFailure,
                memory: None,
                cpu: None,
                pids: None,
                stdout: None,
                directory: "/".into(),
            },
            Request::Remove { name: "job".into() },
            Request::Reopen,
            Request::Reload,
            Request::Shutdown,
            Request::Watch,
            Request::LogPaths { name: "web".into() },
        ]
    }

    #[test]
    fn every_request_round_trips_through_one_line() {
        let mut seen = std::collections::BTreeSet::new();
        for req in every_request() {
            let line = req.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "{line}");
            let back = parse_request(line.trim_end().as_bytes()).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            assert_eq!(back, req, "{line}");
            seen.insert(req.command());
        }
        let all: std::collections::BTreeSet<_> = COMMANDS.iter().copied().collect();
        assert_eq!(
            seen, all,
            "every command is covered by the round trip and listed in COMMANDS"
        );
    }

    #[test]
    fn requests_look_as_documented() {
        assert_eq!(Request::Status { names: vec![] }.to_line(), "{\"cmd\":\"status\"}\n");
        assert_eq!(
            Request::Constrain {
                name: "web".into(),
                memory: Some(Limit::Value(500_000_000)),
                cpu: Some(Limit::Max),
                pids: None
            }
            .to_line(),
            "{\"cmd\":\"constrain\",\"name\":\"web\",\"memory\":500000000,\"cpu\":\"max\"}\n"
        );
        assert_eq!(
            parse_request(br#"{"v":1,"cmd":"log_paths","name":"web"}"#),
            Ok(Request::LogPaths { name: "web".into() })
        );
    }

    fn code_of(line: &[u8]) -> ErrorCode {
        match parse_request(line) {
            Ok(r) => panic!("{} parsed as {r:?}", String::from_utf8_lossy(line)),
            Err(e) => e.code,
        }
    }

    #[test]
    fn malformed_lines_get_the_right_error_codes() {
        use ErrorCode::*;
        let cases: &[(&[u8], ErrorCode)] = &[
            (b"", BadRequest),
            (b"hello", BadRequest),
            (b"\xff\xfe{}", BadRequest),
            (b"[1,2]", BadRequest),
            (b"{}", BadRequest),
            (b"{\"cmd\":7}", BadRequest),
            (b"{\"cmd\":\"status\"", BadRequest),
            (b"{\"cmd\":\"launch\"}", UnknownCommand),
            (b"{\"cmd\":\"Status\"}", UnknownCommand),
            (b"{\"v\":2,\"cmd\":\"status\"}", UnsupportedVersion),
            (b"{\"v\":\"1\",\"cmd\":\"status\"}", UnsupportedVersion),
            (b"{\"cmd\":\"status\",\"names\":\"web\"}", BadRequest),
            (b"{\"cmd\":\"status\",\"name\":[\"web\"]}", BadRequest),
            (b"{\"cmd\":\"remove\"}", BadRequest),
            (b"{\"cmd\":\"reload\",\"force\":true}", BadRequest),
            (b"{\"cmd\":\"start\"}", InvalidArgument),
            (b"{\"cmd\":\"stop\",\"names\":[\"a\"],\"all\":true}", InvalidArgument),
            (b"{\"cmd\":\"signal\",\"signal\":\"NOPE\",\"names\":[\"a\"]}", InvalidArgument),
            (b"{\"cmd\":\"signal\",\"signal\":\"HUP\",\"names\":[]}", InvalidArgument),
            (b"{\"cmd\":\"constrain\",\"name\":\"a\"}", InvalidArgument),
            (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"memory\":\"lots\"}", BadRequest),
            (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"cpu\":0}", InvalidArgument),
            (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"cpu\":1e308}", InvalidArgument),
            (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"pids\":4194305}", InvalidArgument),
            (b"{\"cmd\":\"status\",\"cmd\":\"shutdown\"}", BadRequest),
            (b"{\"cmd\":\"status\",\"names\":[\"a\"],\"names\":[\"b\"]}", BadRequest),
            (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"cpu\":-1.5}", InvalidArgument),
            (b"{\"cmd\":\"constrain\",\"name\":\"a\",\"memory\":-5}", BadRequest),
            (b"{\"cmd\":\"add\",\"name\":\"../x\",\"command\":[\"true\"],\"directory\":\"/\"}", InvalidArgument),
            (b"{\"cmd\":\"add\",\"name\":\"x\",\"command\":[],\"directory\":\"/\"}", InvalidArgument),
            (b"{\"cmd\":\"add\",\"name\":\"x\",\"command\":[\"true\"],\"directory\":\"tmp\"}", InvalidArgument),
            (b"{\"cmd\":\"add\",\"name\":\"x\",\"command\":[\"true\"],\"directory\":\"/\",\"restart\":\"sometimes\"}", BadRequest),
        ];
        for (line, code) in cases {
            assert_eq!(code_of(line), *code, "{}", String::from_utf8_lossy(line));
        }
        let long = vec![b' '; MAX_REQUEST_LINE + 1];
        assert_eq!(code_of(&long), TooLarge);
    }

    #[test]
    fn responses_serialize_flat_with_ok_and_parse_back() {
        let status = Response::Ok(Reply::Status {
            programs: vec![ProgramStatus {
                name: "web".into(),
                state: "RUNNING".into(),
                pid: Some(42),
                since: 1_763_884_860.5,
                restarts: 2,
                last_exit: Some(ExitKind::Oom.into()),
                memory_bytes: Some(1024),
                memory_limit: None,
                cpu_usage_usec: Some(7),
                cpu_limit: Some(0.5),
                pids_limit: None,
                cgroup: Some("/supervisor/web".into()),
                transient: false,
                ready: false,
                health: None,
                status_text: None,
                started: None,
                pids_current: None,
                program: "web".into(),
                instance: Some(1),
                group: Some("stack".into()),
                groups: vec!["stack".into(), "z".into()],
            }],
        });
        let cases = vec![
            (Response::Ok(Reply::Done {}), "{\"ok\":true}"),
            (
                Response::error(ErrorCode::UnknownProgram, "no program named \"x\""),
                "{\"ok\":false,\"error\":{\"code\":\"unknown_program\",\"message\":\"no program named \\\"x\\\"\"}}",
            ),
            (
                Response::Ok(Reply::Targets {
                    targets: vec!["a".into()],
                }),
                "{\"ok\":true,\"targets\":[\"a\"]}",
            ),
            (
                Response::Ok(Reply::Reload(ReloadSummary {
                    added: vec!["n".into()],
                    removed: vec![],
                    changed: vec!["c".into()],
                })),
                "{\"ok\":true,\"added\":[\"n\"],\"removed\":[],\"changed\":[\"c\"]}",
            ),
            (
                Response::Ok(Reply::LogPaths {
                    logs: LogPaths {
                        stdout: Some("/l/web.log".into()),
                        stderr: None,
                    },
                }),
                "{\"ok\":true,\"logs\":{\"stdout\":\"/l/web.log\",\"stderr\":null}}",
            ),
        ];
        for (resp, wire) in cases {
            let line = resp.to_line();
            assert_eq!(std::str::from_utf8(&line).unwrap(), format!("{wire}\n"));
            assert_eq!(Incoming::parse(wire).unwrap(), Incoming::Response(resp));
        }
        let line = String::from_utf8(status.to_line()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let p = &v["programs"][0];
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        // On the wire, besides what `status --json` shows: the two fields of the tables.
        let mut expected = STATUS_JSON_FIELDS.to_vec();
        expected.extend(["started", "pids_current"]);
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        expected.sort();
        assert_eq!(
            keys_sorted, expected,
            "SPEC's status fields, the two for the tables, program and groups"
        );
        assert_eq!(
            p["last_exit"],
            serde_json::json!({"code": null, "signal": "KILL", "oom_killed": true})
        );
        assert_eq!(Incoming::parse(&line).unwrap(), Incoming::Response(status));
    }

    #[test]
    fn unknown_error_codes_from_a_newer_holden_are_read_as_other() {
        let r = Incoming::parse("{\"ok\":false,\"error\":{\"code\":\"quota_exceeded\",\"message\":\"m\"}}").unwrap();
        assert_eq!(r, Incoming::Response(Response::error(ErrorCode::Other, "m")));
    }

    #[test]
    fn responses_from_a_newer_holden_keep_working_and_malformed_ones_are_refused() {
        let r = Incoming::parse("{\"ok\":true,\"targets\":[\"web\"],\"took_ms\":3,\"extra\":{\"a\":[1]}}").unwrap();
        assert_eq!(
            r,
            Incoming::Response(Response::Ok(Reply::Targets {
                targets: vec!["web".into()]
            }))
        );
        let done = Incoming::parse("{\"ok\":true,\"note\":\"x\"}").unwrap();
        assert_eq!(done, Incoming::Response(Response::Ok(Reply::Done {})));
        for bad in [
            "{\"targets\":[]}",
            "{\"ok\":false}",
            "{\"ok\":true,\"added\":[]}",
            "[1]",
            "{\"ok\":true,\"programs\":[{\"name\":1}]}",
        ] {
            assert!(Incoming::parse(bad).is_err(), "{bad} is refused");
        }
        let e = Incoming::parse("{\"targets\":[]}").unwrap_err().to_string();
        assert!(e.contains("\"ok\": true or false"), "{e}");
    }

    #[test]
    fn events_are_told_apart_from_responses() {
        let ev = Event::Transition {
            name: "web".into(),
            from: "STARTING".into(),
            to: "RUNNING".into(),
            reason: None,
            since: 12.25,
            pid: Some(4242),
        };
        let line = String::from_utf8(ev.to_line()).unwrap();
        assert_eq!(
            line,
            "{\"event\":\"transition\",\"name\":\"web\",\"from\":\"STARTING\",\"to\":\"RUNNING\",\"reason\":null,\"since\":12.25,\"pid\":4242}\n"
        );
        assert_eq!(Incoming::parse(&line).unwrap(), Incoming::Event(ev));
        let removed = Event::Removed { name: "job".into() };
        assert_eq!(
            Incoming::parse(std::str::from_utf8(&removed.to_line()).unwrap()).unwrap(),
            Incoming::Event(removed)
        );
    }

    #[test]
    fn last_exit_says_how_a_run_ended() {
        assert_eq!(LastExit::from(ExitKind::Code(3)).short(), "exit 3");
        assert_eq!(LastExit::from(ExitKind::Signal(15)).short(), "signal TERM");
        assert_eq!(LastExit::from(ExitKind::Oom).short(), "oom-killed");
        assert_eq!(LastExit::from(ExitKind::Unknown).short(), "unknown");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_parser(line in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(&line);
        }

        #[test]
        fn random_json_objects_never_panic_the_parser(
            cmd in prop_oneof![Just("status".to_string()), Just("add".to_string()), Just("constrain".to_string()), "[a-z_]{0,10}"],
            key in "[a-z_]{1,8}",
            val in prop_oneof![Just("null".to_string()), Just("\"max\"".to_string()), Just("-1".to_string()), Just("1e400".to_string()), Just("[\"x\"]".to_string()), "\"[ -~]{0,12}\""],
        ) {
            let line = format!("{{\"cmd\":\"{cmd}\",\"{key}\":{val},\"name\":\"web\"}}");
            let _ = parse_request(line.as_bytes());
        }
    }
}

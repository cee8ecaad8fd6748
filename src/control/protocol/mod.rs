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

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::config::{self, RestartPolicy};

/// The protocol version this holden speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line accepted, newline excluded. Requests are small (the largest is
/// `add` with its argv); anything longer is a mistake or an attack and gets `too_large`.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// The largest cpu limit accepted, in CPUs: far above any machine, and far below what makes
/// the kernel's quota overflow (ERANGE, which would reach a user as "errno 34").
pub const MAX_CPUS: f64 = 1_000_000.0;

pub use crate::config::MAX_PIDS;

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
                        "{signal:?} is not a signal; use a name like HUP or a number from 1 to 64 but 32 and 33"
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

mod response;
mod status;
#[cfg(test)]
mod tests;

pub use response::{ErrorBody, ErrorCode, Event, Incoming, Reply, Response};
#[cfg(test)]
pub(crate) use status::STATUS_JSON_FIELDS;
pub use status::{Health, LastExit, LogPaths, ProgramStatus, ReloadSummary, SpecStatus, unix_time};

//! What `status` answers for each program, and the other replies' bodies: the records a
//! client renders (`cli::table`) or prints as JSON (`status --json`).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config;
use crate::process::ExitKind;

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

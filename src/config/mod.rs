//! The configuration: what `supervisor.toml` means once every default is filled in.
//!
//! `raw` mirrors the file as typed (with spans for error messages); `resolve` turns it into
//! the types below, checks every value and reports all errors of a file at once, as a
//! structured `ConfigError` (`error.rs`). Resolving reads no file: `load.rs` holds everything
//! the configuration reads from the file system (the config file, environment files, whether a
//! path is a stream) and hands it to `resolve`. The rest of holden only ever sees these
//! resolved types.

pub mod envfile;
pub mod error;
pub mod load;
pub mod placeholder;
pub mod probe;
pub mod raw;
pub mod resolve;
pub mod vars;
pub mod words;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::sys::signal::Signal;
pub use error::ConfigError;
pub use load::{is_stream, load};

/// A whole, valid configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (as given, not canonicalized).
    pub path: PathBuf,
    pub supervisor: SupervisorSettings,
    /// Programs in name order (a `BTreeMap` in the file's sense: order in the file does not
    /// matter); the instances of a program (`worker@0`, `worker@1`, ...) in index order.
    pub programs: Vec<Program>,
    /// `[groups]`: each group's members as written (program, base or instance names), without
    /// duplicates.
    pub groups: BTreeMap<String, Vec<String>>,
    /// The programs with `instances`, by base name, as written (placeholders kept): what
    /// `holden check` prints for them.
    pub instanced: BTreeMap<String, Instanced>,
}

impl Config {
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// The groups that `program` is a member of (by its own name or its base name), in name order.
    pub fn groups_of(&self, program: &Program) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, members)| members.iter().any(|m| program.answers_to(m)))
            .map(|(g, _)| g.clone())
            .collect()
    }
}

/// A program with `instances`, before it is expanded into one `Program` per instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instanced {
    /// Named by the base name, with `{index}` placeholders as written.
    pub template: Program,
    pub count: u32,
    pub start: u32,
}

/// Which program an instance is an instance of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The base name (`worker` for `worker@2`).
    pub program: String,
    pub index: u32,
}

/// The `[supervisor]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorSettings {
    /// Control socket path. Default `/run/holden/holden.sock` for root, else
    /// `$XDG_RUNTIME_DIR/holden/holden.sock` (falling back to `/tmp/holden-<uid>/holden.sock`).
    pub socket: PathBuf,
    /// Permission bits of the socket file, e.g. `0o600`.
    pub socket_mode: u32,
    /// Uids besides root and holden's own that may read and operate (start, stop, restart,
    /// signal) on the control socket.
    pub allow_uids: Vec<u32>,
    /// holden's own log level; `RUST_LOG` overrides.
    pub log_level: log::LevelFilter,
    pub logfile: LogFile,
    /// As written (`/supervisor` or `programs`); absolute = from the root of each hierarchy,
    /// relative = below holden's own cgroup. Never empty, never contains `..`.
    pub cgroup_path: String,
    pub cgroups: CgroupMode,
    /// Uids that may do everything on the control socket, as root may (add, reload, ...).
    pub admin_uids: Vec<u32>,
    /// Uids that may only read (status, watch, log paths).
    pub read_uids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    Stderr,
    Path(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    Auto,
    Required,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }

    /// Whether a run that ended, a success or not, is started again: the one rule for the
    /// supervisor and `holden spawn`.
    pub fn restarts(self, success: bool) -> bool {
        match self {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Always => true,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "never" => Some(RestartPolicy::Never),
            "on-failure" => Some(RestartPolicy::OnFailure),
            "always" => Some(RestartPolicy::Always),
            _ => None,
        }
    }
}

/// Where one output stream of a program goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Appended to this file (absolute path, already resolved against the config's folder).
    File(PathBuf),
    /// holden's own stderr, every line prefixed `name | `.
    Inherit,
    /// /dev/null.
    Null,
    /// Only for `stderr`: same destination as stdout, interleaved in order.
    Stdout,
}

/// The most `log_backups` a program may keep: each rotation renames every backup it has, so the
/// count bounds the work one rotation does inside the event loop (SPEC: bounded work per event).
pub const MAX_LOG_BACKUPS: u32 = 1000;

/// The largest pids limit accepted (config and `constrain`): the kernel's PID_MAX_LIMIT.
pub const MAX_PIDS: u64 = 4_194_304;

/// One `[programs.NAME]` table, every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub name: String,
    /// argv; never empty. A string command is split like a POSIX shell would (quotes,
    /// backslashes), without running a shell.
    pub command: Vec<String>,
    /// Absolute working directory.
    pub directory: PathBuf,
    /// Added to holden's own environment.
    pub environment: BTreeMap<String, String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub autostart: bool,
    pub autorestart: RestartPolicy,
    pub exit_codes: Vec<i32>,
    pub min_uptime: Duration,
    pub restart_delay: Duration,
    pub max_restart_delay: Duration,
    pub max_restarts: u32,
    /// Failed runs restarted within `start_limit_interval` before FATAL (0: no limit): the
    /// crash loop whose every run outlives min_uptime.
    pub start_limit_burst: u32,
    pub start_limit_interval: Duration,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// Bytes.
    pub memory_limit: Option<u64>,
    /// CPUs (1.5 = one and a half).
    pub cpu_limit: Option<f64>,
    pub pids_limit: Option<u64>,
    pub stdout: Output,
    /// Never `Output::Stdout` when `stdout` is the same file: resolve turns "stderr = same path
    /// as stdout" into `Output::Stdout` so that the two streams share one file.
    pub stderr: Output,
    /// 0 = never rotate.
    pub log_max_bytes: u64,
    pub log_backups: u32,
    pub log_timestamps: bool,
    pub depends_on: Vec<String>,
    /// Spawn through this agent socket instead of forking here.
    pub agent: Option<PathBuf>,
    /// Set on each of the `instances` of a program (named `BASE@INDEX`).
    pub instance: Option<Instance>,
    /// File mode creation mask of the program (holden's own when unset).
    pub umask: Option<u32>,
    /// Niceness, -20 to 19 (holden's own when unset).
    pub nice: Option<i32>,
    /// Written to /proc/self/oom_score_adj, -1000 to 1000 (holden's own when unset).
    pub oom_score_adj: Option<i32>,
    /// Resource limits set before exec, in `RLIMITS` order (holden's own for the others).
    pub rlimits: Vec<Rlimit>,
    /// When the program counts as ready (STARTING -> RUNNING).
    pub readiness: probe::Readiness,
    /// Not ready by then (readiness other than uptime): a failure.
    pub start_timeout: Duration,
    pub liveness: Option<probe::Probe>,
    /// With readiness "notify": WATCHDOG=1 expected at least this often.
    pub watchdog: Option<Duration>,
    /// The names in `depends_on` that wait for a run that completed with success, not ready.
    pub depends_completed: Vec<String>,
}

/// One resource limit of a program. `None` is unlimited (RLIM_INFINITY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The lowercase name: `nofile` for RLIMIT_NOFILE; one of `RLIMITS`.
    pub name: &'static str,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Every `RLIMIT_*` by its lowercase name, and whether its values are bytes (a size like
/// "64MiB" is accepted for those).
pub const RLIMITS: &[(&str, bool)] = &[
    ("as", true),
    ("core", true),
    ("cpu", false),
    ("data", true),
    ("fsize", true),
    ("locks", false),
    ("memlock", true),
    ("msgqueue", true),
    ("nice", false),
    ("nofile", false),
    ("nproc", false),
    ("rss", true),
    ("rtprio", false),
    ("rttime", false),
    ("sigpending", false),
    ("stack", true),
];

impl Program {
    pub fn has_limits(&self) -> bool {
        self.memory_limit.is_some() || self.cpu_limit.is_some() || self.pids_limit.is_some()
    }

    /// A program with every default, as `holden add` builds one.
    pub fn with_defaults(name: &str, command: Vec<String>, directory: &Path) -> Program {
        Program {
            name: name.to_string(),
            command,
            directory: directory.to_path_buf(),
            environment: BTreeMap::new(),
            user: None,
            group: None,
            autostart: true,
            autorestart: RestartPolicy::OnFailure,
            exit_codes: vec![0],
            min_uptime: Duration::from_secs(1),
            restart_delay: Duration::from_secs(1),
            max_restart_delay: Duration::from_secs(30),
            max_restarts: 5,
            start_limit_burst: 10,
            start_limit_interval: Duration::from_secs(60),
            stop_signal: Signal(15),
            stop_timeout: Duration::from_secs(10),
            memory_limit: None,
            cpu_limit: None,
            pids_limit: None,
            stdout: Output::Inherit,
            stderr: Output::Inherit,
            log_max_bytes: 50_000_000,
            log_backups: 10,
            log_timestamps: false,
            depends_on: Vec::new(),
            agent: None,
            instance: None,
            umask: None,
            nice: None,
            oom_score_adj: None,
            rlimits: Vec::new(),
            readiness: probe::Readiness::Uptime,
            start_timeout: Duration::from_secs(90),
            liveness: None,
            watchdog: None,
            depends_completed: Vec::new(),
        }
    }

    /// The name in the file: the base name of an instance, else the name.
    pub fn base_name(&self) -> &str {
        self.instance.as_ref().map_or(&self.name, |i| &i.program)
    }

    /// Is `name` this program's name, or the base name of the program it is an instance of?
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.instance.as_ref().is_some_and(|i| i.program == name)
    }

    /// What holden adds to the environment of every process it spawns, after (over) the
    /// program's own `environment`: `HOLDEN_PROGRAM` (the base name), and for an instance
    /// `HOLDEN_INSTANCE` (its index).
    pub fn holden_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("HOLDEN_PROGRAM", self.base_name().to_string())];
        if let Some(i) = &self.instance {
            env.push(("HOLDEN_INSTANCE", i.index.to_string()));
        }
        env
    }
}

/// Is `name` a valid program name: 1 to 64 of `A-Za-z0-9_.-`, not `.` or `..`.
pub fn valid_program_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Prefixes of cgroup interface files (`cgroup.procs`, `memory.max`, `pids.max`, ... in v1 and
/// v2): a program's cgroup directory is named after the program, and the kernel has a file of
/// that name already, or reserves the prefix for its controller's files.
pub const CGROUP_RESERVED_PREFIXES: &[&str] = &[
    "cgroup.",
    "memory.",
    "pids.",
    "cpu.",
    "cpuacct.",
    "cpuset.",
    "io.",
    "blkio.",
    "hugetlb.",
    "rdma.",
    "misc.",
    "freezer.",
    "devices.",
    "net_cls.",
    "net_prio.",
    "perf_event.",
];

/// Names of cgroup v1 interface files without a controller prefix.
pub const CGROUP_RESERVED_NAMES: &[&str] = &["tasks", "notify_on_release", "release_agent"];

/// Why `name` cannot be a program's cgroup directory, if it cannot: it is, or may be, the name
/// of a cgroup interface file. Compared as the kernel does, case-sensitively.
pub fn cgroup_reserved(name: &str) -> Option<String> {
    if CGROUP_RESERVED_NAMES.contains(&name) {
        return Some(format!("{name:?} is a cgroup interface file"));
    }
    CGROUP_RESERVED_PREFIXES
        .iter()
        .find(|p| name.starts_with(*p))
        .map(|p| format!("names starting with {p:?} are cgroup interface files"))
}

/// Is `name` the name of a supervised unit: a program name, or an instance name `BASE@INDEX`
/// (a program name, `@`, a decimal index without leading zeros).
pub fn valid_unit_name(name: &str) -> bool {
    match name.split_once('@') {
        None => valid_program_name(name),
        Some((base, index)) => {
            valid_program_name(base)
                && !index.is_empty()
                && index.len() <= 10
                && index.bytes().all(|b| b.is_ascii_digit())
                && (index == "0" || !index.starts_with('0'))
                && index.parse::<u32>().is_ok()
        }
    }
}

/// Where the config file is: `-c`, else `$HOLDEN_CONFIG`, else `./supervisor.toml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("HOLDEN_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("supervisor.toml"),
    }
}

/// The default control socket for this user (SPEC: root `/run/holden/holden.sock`,
/// others `$XDG_RUNTIME_DIR/holden/holden.sock`).
pub fn default_socket() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/run/holden/holden.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Path::new(&d).join("holden/holden.sock"),
        // SPEC: silent when XDG_RUNTIME_DIR is unset; a per-uid folder in /tmp is the usual answer.
        _ => PathBuf::from(format!(
            "/tmp/holden-{}/holden.sock",
            rustix::process::geteuid().as_raw()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names() {
        assert!(valid_program_name("web-1.a_b"));
        assert!(!valid_program_name(""));
        assert!(!valid_program_name("."));
        assert!(!valid_program_name(".."));
        assert!(!valid_program_name("a/b"));
        assert!(!valid_program_name(&"x".repeat(65)));
        // `@` separates an instance's index; it is never part of a program name.
        assert!(!valid_program_name("worker@1"));
        assert!(valid_unit_name("worker@1"));
        assert!(valid_unit_name("worker@0"));
        assert!(valid_unit_name("worker"));
        assert!(!valid_unit_name("worker@"));
        assert!(!valid_unit_name("worker@01"));
        assert!(!valid_unit_name("worker@1@2"));
        assert!(!valid_unit_name("@1"));
        assert!(!valid_unit_name("w@99999999999"));
    }
}

//! The file as typed: structures that mirror `supervisor.toml`, every value with its span.
//!
//! This layer knows which keys exist and what TOML type each one takes; it knows nothing of
//! what the values mean (durations, sizes, paths, defaults: see `resolve.rs`). It walks the
//! spanned document of `toml::de::DeTable` by hand rather than deriving `Deserialize`,
//! because serde stops at the first error and the file's author should see every unknown key
//! and every wrong type of the file at once. A value of the wrong type is reported here and
//! then left out, so that `resolve.rs` falls back to its default and reports nothing twice.

use std::fmt::Write as _;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

mod value;

use value::{
    boolean, command, environment, integer, integers, mode, name_or_id, number, paths, rlimits, signal, size, string,
    strings, table, to_i64,
};

use super::error::Detail;

/// Byte offsets into the file.
pub type Span = Range<usize>;

/// What a duration is expected to look like, for every duration key.
pub const DURATION: &str = "a duration like \"10s\"";
/// What a size is expected to look like, for every size key.
pub const SIZE: &str = "a size like \"500MB\" (KB = 1000, KiB = 1024) or a number of bytes";
/// What `environment_file` is expected to be.
pub const ENV_FILE: &str = "a path like \".env\" or an array of paths (a leading '-' makes a missing file fine)";
/// What one resource limit is expected to be.
pub const RLIMIT: &str =
    "a number, \"unlimited\", a size like \"64MiB\" (for byte limits) or { soft = ..., hard = ... }";
/// What an output is expected to be, for `stdout`.
pub const STDOUT: &str = "a path, \"inherit\" or \"null\"";
/// What an output is expected to be, for `stderr`.
pub const STDERR: &str = "a path, \"inherit\", \"null\" or \"stdout\"";

/// One thing wrong with the file: where (in bytes), under which key, and what, normally
/// "found ..., expected ...". `resolve` turns it into a `ConfigProblem` (line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Span,
    /// Dotted key path like `programs.web.stop_timeout`; empty for a TOML syntax error.
    pub key: String,
    pub detail: Detail,
}

impl Problem {
    pub fn found(span: Span, key: &str, found: impl std::fmt::Display, expected: impl std::fmt::Display) -> Problem {
        Problem {
            span,
            key: key.to_string(),
            detail: Detail::Found {
                found: found.to_string(),
                expected: expected.to_string(),
            },
        }
    }
}

/// The whole file. Programs come in name order (the document's tables are sorted maps).
#[derive(Debug, Default)]
pub struct RawConfig {
    pub supervisor: RawSupervisor,
    pub programs: Vec<RawProgram>,
    /// `[groups]`: each group's name and members, in name order.
    pub groups: Vec<(Spanned<String>, Vec<Spanned<String>>)>,
}

/// The `[supervisor]` table.
#[derive(Debug, Default)]
pub struct RawSupervisor {
    pub socket: Option<Spanned<String>>,
    pub socket_mode: Option<Spanned<RawMode>>,
    pub allow_uids: Option<Vec<Spanned<i64>>>,
    pub log_level: Option<Spanned<String>>,
    pub logfile: Option<Spanned<String>>,
    pub cgroup_path: Option<Spanned<String>>,
    pub cgroups: Option<Spanned<String>>,
    pub admin_uids: Option<Vec<Spanned<i64>>>,
    pub read_uids: Option<Vec<Spanned<i64>>>,
}

/// One `[programs.NAME]` table.
#[derive(Debug)]
pub struct RawProgram {
    /// The name with the span of its key (`web` in `[programs.web]`).
    pub name: Spanned<String>,
    pub command: Option<Spanned<RawCommand>>,
    /// `command` was written, even if with a wrong type (so "missing" is not reported too).
    pub command_written: bool,
    pub directory: Option<Spanned<String>>,
    pub environment: Vec<(Spanned<String>, Spanned<String>)>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub autostart: Option<Spanned<bool>>,
    pub autorestart: Option<Spanned<String>>,
    pub exit_codes: Option<Vec<Spanned<i64>>>,
    pub min_uptime: Option<Spanned<String>>,
    pub restart_delay: Option<Spanned<String>>,
    pub max_restart_delay: Option<Spanned<String>>,
    pub max_restarts: Option<Spanned<i64>>,
    pub start_limit_burst: Option<Spanned<i64>>,
    pub start_limit_interval: Option<Spanned<String>>,
    pub stop_signal: Option<Spanned<RawSignal>>,
    pub stop_timeout: Option<Spanned<String>>,
    pub memory_limit: Option<Spanned<RawSize>>,
    pub cpu_limit: Option<Spanned<f64>>,
    pub pids_limit: Option<Spanned<i64>>,
    pub stdout: Option<Spanned<String>>,
    pub stderr: Option<Spanned<String>>,
    pub log_max_bytes: Option<Spanned<RawSize>>,
    pub log_backups: Option<Spanned<i64>>,
    pub log_timestamps: Option<Spanned<bool>>,
    pub depends_on: Option<Vec<Spanned<String>>>,
    pub agent: Option<Spanned<String>>,
    pub instances: Option<Spanned<i64>>,
    pub instance_start: Option<Spanned<i64>>,
    /// One path or several, each with its span; a leading `-` makes a missing file fine.
    pub environment_file: Option<Vec<Spanned<String>>>,
    pub umask: Option<Spanned<RawMode>>,
    pub nice: Option<Spanned<i64>>,
    pub oom_score_adj: Option<Spanned<i64>>,
    /// `rlimits = { nofile = 65536, ... }`: each name (with its span) and value.
    pub rlimits: Vec<(Spanned<String>, Spanned<RawRlimit>)>,
    pub readiness: Option<Spanned<RawCheck>>,
    pub start_timeout: Option<Spanned<String>>,
    pub liveness: Option<Spanned<RawCheck>>,
    pub watchdog: Option<Spanned<String>>,
    /// The names of `depends_on`'s table form whose condition is "completed".
    pub depends_completed: Vec<Spanned<String>>,
}

/// `readiness` or `liveness` as written: a word, or a table of simple values.
#[derive(Debug)]
pub enum RawCheck {
    Word(String),
    Table(Vec<(Spanned<String>, Spanned<RawValue>)>),
}

/// A value inside a `readiness`/`liveness` table.
#[derive(Debug)]
pub enum RawValue {
    Str(String),
    Int(i64),
    Strs(Vec<String>),
    /// Any other TOML value, described for the message.
    Other(String),
}

impl RawValue {
    pub fn describe(&self) -> String {
        match self {
            RawValue::Str(s) => format!("{s:?}"),
            RawValue::Int(n) => n.to_string(),
            RawValue::Strs(_) => "an array".into(),
            RawValue::Other(d) => d.clone(),
        }
    }
}

impl RawProgram {
    fn new(name: Spanned<String>) -> RawProgram {
        RawProgram {
            name,
            command: None,
            command_written: false,
            directory: None,
            environment: Vec::new(),
            user: None,
            group: None,
            autostart: None,
            autorestart: None,
            exit_codes: None,
            min_uptime: None,
            restart_delay: None,
            max_restart_delay: None,
            max_restarts: None,
            start_limit_burst: None,
            start_limit_interval: None,
            stop_signal: None,
            stop_timeout: None,
            memory_limit: None,
            cpu_limit: None,
            pids_limit: None,
            stdout: None,
            stderr: None,
            log_max_bytes: None,
            log_backups: None,
            log_timestamps: None,
            depends_on: None,
            agent: None,
            instances: None,
            instance_start: None,
            environment_file: None,
            umask: None,
            nice: None,
            oom_score_adj: None,
            rlimits: Vec::new(),
            readiness: None,
            start_timeout: None,
            liveness: None,
            watchdog: None,
            depends_completed: Vec::new(),
        }
    }
}

/// One resource limit: a single value for soft and hard, or both.
#[derive(Debug, Clone, PartialEq)]
pub enum RawRlimit {
    Both(RawLimit),
    Pair {
        soft: Spanned<RawLimit>,
        hard: Spanned<RawLimit>,
    },
}

/// A limit value: an integer, or text (`"unlimited"`, a size like `"64MiB"`).
#[derive(Debug, Clone, PartialEq)]
pub enum RawLimit {
    Number(i64),
    Text(String),
}

/// `command`: one string to split into words, or an argv array.
#[derive(Debug, Clone, PartialEq)]
pub enum RawCommand {
    Line(String),
    Argv(Vec<Spanned<String>>),
}

/// A size: text like `"500MB"`, or an integer number of bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum RawSize {
    Text(String),
    Bytes(i64),
}

/// A signal: a name like `"TERM"`, or a number.
#[derive(Debug, Clone, PartialEq)]
pub enum RawSignal {
    Name(String),
    Number(i64),
}

/// `socket_mode`: text like `"0600"`, or an integer with the radix it was written in
/// (`0o600` is fine, a decimal `600` is almost certainly a mistake).
#[derive(Debug, Clone, PartialEq)]
pub enum RawMode {
    Text(String),
    Integer { value: i64, radix: u32 },
}

pub const TOP_KEYS: &[&str] = &["supervisor", "programs", "groups"];

pub const SUPERVISOR_KEYS: &[&str] = &[
    "socket",
    "socket_mode",
    "allow_uids",
    "log_level",
    "logfile",
    "cgroup_path",
    "cgroups",
    "admin_uids",
    "read_uids",
];

pub const PROGRAM_KEYS: &[&str] = &[
    "command",
    "directory",
    "environment",
    "user",
    "group",
    "autostart",
    "autorestart",
    "exit_codes",
    "min_uptime",
    "restart_delay",
    "max_restart_delay",
    "max_restarts",
    "start_limit_burst",
    "start_limit_interval",
    "stop_signal",
    "stop_timeout",
    "memory_limit",
    "cpu_limit",
    "pids_limit",
    "stdout",
    "stderr",
    "log_max_bytes",
    "log_backups",
    "log_timestamps",
    "depends_on",
    "agent",
    "instances",
    "instance_start",
    "environment_file",
    "umask",
    "nice",
    "oom_score_adj",
    "rlimits",
    "readiness",
    "start_timeout",
    "liveness",
    "watchdog",
];

/// Parse `text`. `Err`: TOML syntax errors (every one the parser found), nothing else is
/// checked then. `Ok`: the raw file and the unknown keys and wrong types found in it.
pub fn parse(text: &str) -> Result<(RawConfig, Vec<Problem>), Vec<Problem>> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                let mut message = format!("invalid TOML: {}", e.message().trim_end());
                // The parser's sentence does not quote what it stumbled on ("duplicate key").
                if let Some(seen) = text
                    .get(span.clone())
                    .filter(|t| (1..=40).contains(&t.len()) && !t.contains('\n'))
                {
                    let _ = write!(message, " (at `{seen}`)");
                }
                Problem {
                    span,
                    key: String::new(),
                    detail: Detail::Sentence(message),
                }
            })
            .collect());
    }
    let mut problems = Vec::new();
    let mut raw = RawConfig::default();
    for (key, value) in doc.get_ref().iter() {
        let path = segment(key.get_ref());
        match key.get_ref().as_ref() {
            "supervisor" => {
                if let Some(table) = table(&path, value, "a table [supervisor]", &mut problems) {
                    raw.supervisor = supervisor(table, &mut problems);
                }
            }
            "programs" => {
                if let Some(table) = table(&path, value, "a table of programs like [programs.web]", &mut problems) {
                    for (name, body) in table.iter() {
                        if let Some(program) = program(name, body, &mut problems) {
                            raw.programs.push(program);
                        }
                    }
                }
            }
            "groups" => {
                let expected = "a table of groups like [groups] web = [\"app\", \"worker\"]";
                if let Some(table) = table(&path, value, expected, &mut problems) {
                    for (name, members) in table.iter() {
                        let group_path = format!("groups.{}", segment(name.get_ref()));
                        let expected = "an array of program names like [\"app\", \"worker\"]";
                        if let Some(members) = strings(&group_path, members, expected, &mut problems) {
                            raw.groups
                                .push((Spanned::new(name.span(), name.get_ref().to_string()), members));
                        }
                    }
                }
            }
            _ => problems.push(unknown_key(key, &path, TOP_KEYS)),
        }
    }
    Ok((raw, problems))
}

fn supervisor(table: &DeTable<'_>, p: &mut Vec<Problem>) -> RawSupervisor {
    let mut raw = RawSupervisor::default();
    for (key, v) in table.iter() {
        let path = format!("supervisor.{}", segment(key.get_ref()));
        let path = path.as_str();
        match key.get_ref().as_ref() {
            "socket" => raw.socket = string(path, v, "a path", p),
            "socket_mode" => raw.socket_mode = mode(path, v, p),
            "allow_uids" => raw.allow_uids = integers(path, v, "an array of uids like [1000]", p),
            "admin_uids" => raw.admin_uids = integers(path, v, "an array of uids like [1000]", p),
            "read_uids" => raw.read_uids = integers(path, v, "an array of uids like [1000]", p),
            "log_level" => {
                raw.log_level = string(
                    path,
                    v,
                    "one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
                    p,
                )
            }
            "logfile" => raw.logfile = string(path, v, "\"stderr\" or a path", p),
            "cgroup_path" => raw.cgroup_path = string(path, v, "a cgroup path like \"/supervisor\"", p),
            "cgroups" => raw.cgroups = string(path, v, "one of \"auto\", \"required\", \"off\"", p),
            _ => p.push(unknown_key(key, path, SUPERVISOR_KEYS)),
        }
    }
    raw
}

fn program(name: &Spanned<DeString<'_>>, value: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) -> Option<RawProgram> {
    let prefix = format!("programs.{}", segment(name.get_ref()));
    let table = table(&prefix, value, "a table like [programs.web]", p)?;
    let mut raw = RawProgram::new(Spanned::new(name.span(), name.get_ref().to_string()));
    for (key, v) in table.iter() {
        let path = format!("{prefix}.{}", segment(key.get_ref()));
        let path = path.as_str();
        match key.get_ref().as_ref() {
            "command" => {
                raw.command_written = true;
                raw.command = command(path, v, p);
            }
            "directory" => raw.directory = string(path, v, "a path", p),
            "environment" => raw.environment = environment(path, v, p),
            "user" => raw.user = name_or_id(path, v, "a user name or uid", p),
            "group" => raw.group = name_or_id(path, v, "a group name or gid", p),
            "autostart" => raw.autostart = boolean(path, v, p),
            "autorestart" => raw.autorestart = string(path, v, "one of \"never\", \"on-failure\", \"always\"", p),
            "exit_codes" => raw.exit_codes = integers(path, v, "an array of exit codes like [0, 2]", p),
            "min_uptime" => raw.min_uptime = string(path, v, DURATION, p),
            "restart_delay" => raw.restart_delay = string(path, v, DURATION, p),
            "max_restart_delay" => raw.max_restart_delay = string(path, v, DURATION, p),
            "max_restarts" => raw.max_restarts = integer(path, v, "a number of restarts like 5", p),
            "start_limit_burst" => raw.start_limit_burst = integer(path, v, "a number of failed runs like 10", p),
            "start_limit_interval" => raw.start_limit_interval = string(path, v, DURATION, p),
            "stop_signal" => raw.stop_signal = signal(path, v, p),
            "stop_timeout" => raw.stop_timeout = string(path, v, DURATION, p),
            "memory_limit" => raw.memory_limit = size(path, v, p),
            "cpu_limit" => raw.cpu_limit = number(path, v, "a number of CPUs like 0.5", p),
            "pids_limit" => raw.pids_limit = integer(path, v, "a number of processes like 256", p),
            "stdout" => raw.stdout = string(path, v, STDOUT, p),
            "stderr" => raw.stderr = string(path, v, STDERR, p),
            "log_max_bytes" => raw.log_max_bytes = size(path, v, p),
            "log_backups" => raw.log_backups = integer(path, v, "a number of files like 10", p),
            "log_timestamps" => raw.log_timestamps = boolean(path, v, p),
            "depends_on" => depends_on(&mut raw, path, v, p),
            "agent" => raw.agent = string(path, v, "the path of an agent socket", p),
            "instances" => raw.instances = integer(path, v, "a number of instances like 4", p),
            "instance_start" => raw.instance_start = integer(path, v, "the first instance's index like 0", p),
            "environment_file" => raw.environment_file = paths(path, v, ENV_FILE, p),
            "umask" => raw.umask = mode(path, v, p),
            "nice" => raw.nice = integer(path, v, "a niceness from -20 to 19", p),
            "oom_score_adj" => raw.oom_score_adj = integer(path, v, "an OOM score adjustment from -1000 to 1000", p),
            "rlimits" => raw.rlimits = rlimits(path, v, p),
            "readiness" => raw.readiness = check(path, v, p),
            "start_timeout" => raw.start_timeout = string(path, v, DURATION, p),
            "liveness" => raw.liveness = check(path, v, p),
            "watchdog" => raw.watchdog = string(path, v, DURATION, p),
            _ => p.push(unknown_key(key, path, PROGRAM_KEYS)),
        }
    }
    Some(raw)
}

/// `depends_on = ["db"]` (each "ready") or `{ db = "ready", migrate = "completed" }`.
fn depends_on(raw: &mut RawProgram, path: &str, v: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) {
    const EXPECTED: &str =
        "an array of program names like [\"db\"] or a table like { db = \"ready\", migrate = \"completed\" }";
    let DeValue::Table(t) = v.get_ref() else {
        raw.depends_on = strings(path, v, EXPECTED, p);
        return;
    };
    let mut names = Vec::new();
    for (key, value) in t.iter() {
        let dep_path = format!("{path}.{}", segment(key.get_ref()));
        let name = Spanned::new(key.span(), key.get_ref().to_string());
        match value.get_ref() {
            DeValue::String(s) if s.as_ref() == "ready" => names.push(name),
            DeValue::String(s) if s.as_ref() == "completed" => {
                raw.depends_completed.push(name.clone());
                names.push(name);
            }
            _ => p.push(wrong(&dep_path, value, "\"ready\" or \"completed\"")),
        }
    }
    raw.depends_on = Some(names);
}

/// `readiness`/`liveness`: a word or a table of strings, integers and string arrays.
fn check(path: &str, v: &Spanned<DeValue<'_>>, p: &mut Vec<Problem>) -> Option<Spanned<RawCheck>> {
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), RawCheck::Word(s.to_string()))),
        DeValue::Table(t) => {
            let mut entries = Vec::new();
            for (key, value) in t.iter() {
                let sub = format!("{path}.{}", segment(key.get_ref()));
                let raw = match value.get_ref() {
                    DeValue::String(s) => RawValue::Str(s.to_string()),
                    DeValue::Integer(_) => match to_i64(value) {
                        Some(n) => RawValue::Int(n),
                        None => RawValue::Other(describe(value.get_ref())),
                    },
                    DeValue::Array(_) => RawValue::Strs(
                        strings(&sub, value, "an array of strings", p)?
                            .into_iter()
                            .map(|s| s.into_inner())
                            .collect(),
                    ),
                    other => RawValue::Other(describe(other)),
                };
                entries.push((
                    Spanned::new(key.span(), key.get_ref().to_string()),
                    Spanned::new(value.span(), raw),
                ));
            }
            Some(Spanned::new(v.span(), RawCheck::Table(entries)))
        }
        _ => {
            p.push(wrong(
                path,
                v,
                "a string like \"notify\" or a table like { http = \"http://127.0.0.1:8080/\" }",
            ));
            None
        }
    }
}

/// How a found value reads in a message: strings quoted, numbers as written, the rest by kind.
pub fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("{:?}", s.as_ref()),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => format!("the date-time {d}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// A key as it appears in a dotted path: bare when TOML allows, quoted otherwise.
pub fn segment(key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        key.to_string()
    } else {
        basic_string(key)
    }
}

/// `s` as a TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL escaped.
pub fn basic_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| format!("{s:?}"))
        .replace('\u{7f}', "\\u007F")
}

fn wrong(path: &str, v: &Spanned<DeValue<'_>>, expected: &str) -> Problem {
    Problem::found(v.span(), path, describe(v.get_ref()), expected)
}

fn unknown_key(key: &Spanned<DeString<'_>>, path: &str, known: &[&str]) -> Problem {
    let name = key.get_ref().as_ref();
    let expected = match closest(name, known) {
        Some(k) => format!("a known key like {k:?}"),
        None => format!("one of {}", known.join(", ")),
    };
    Problem::found(key.span(), path, format!("unknown key {name:?}"), expected)
}

/// The known key nearest to a misspelt one, when it is near enough to be a likely typo.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;

//! supervisord's sections and options, mapped to holden's TOML. Everything is decided here:
//! what each option becomes, what has no equivalent (a `# supervisord:` comment at its place and
//! one warning), and which values wait for load time (see `expand`). The output keeps the INI's
//! order of sections, with `[supervisor]` first and `[groups]` last, and a fixed key order inside
//! each program. docs/migrating-from-supervisord.md is the table of this file.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use super::expand::{Expanded, Piece, Value, expand};
use super::ini::{Diag, Entry, Ini, Section};
use super::shlex;
use crate::config::raw::{basic_string, segment};
use crate::config::{Signal, valid_program_name};

/// The TOML text and the warnings (one line each, without a prefix).
#[derive(Debug, Default)]
pub struct Outcome {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// How the importer sees the machine: the environment (`%(ENV_X)s`) and the host name.
pub struct Host<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub node_name: String,
}

/// Convert the sections read into `ini` (the main file first, then its includes).
pub fn convert(ini: &Ini, host: &Host<'_>, mut warnings: Vec<String>) -> Result<Outcome, Vec<Diag>> {
    let mut c = Conv {
        ini,
        host,
        errors: Vec::new(),
        warnings: Vec::new(),
        sup_env: Vec::new(),
        childlogdir: None,
    };
    let toml = c.run();
    if c.errors.is_empty() {
        warnings.append(&mut c.warnings);
        Ok(Outcome { toml, warnings })
    } else {
        Err(c.errors)
    }
}

struct Conv<'a> {
    ini: &'a Ini,
    host: &'a Host<'a>,
    errors: Vec<Diag>,
    warnings: Vec<String>,
    /// `[supervisord] environment`, which supervisord adds to every program's.
    sup_env: Vec<(String, Expanded)>,
    /// `[supervisord] childlogdir`: where AUTO logs go.
    childlogdir: Option<String>,
}

/// What `%(name)s` can refer to in one section.
#[derive(Default)]
struct Vars {
    program_name: Option<String>,
    group_name: Option<String>,
    process_num: Option<Value>,
    numprocs: Option<i64>,
    /// `ENV_X` defined by the config itself (the program's own environment, then supervisord's).
    env: Vec<(String, Expanded)>,
}

/// A program's TOML, gathered before it is written in a fixed order.
#[derive(Default)]
struct ProgramOut {
    keys: Vec<(&'static str, String)>,
    comments: Vec<String>,
    environment: Vec<(String, String)>,
}

impl ProgramOut {
    fn set(&mut self, key: &'static str, value: String) {
        match self.keys.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.keys.push((key, value)),
        }
    }
}

/// `[groups]`: each group's holden name and its members' holden names, in the INI's order.
type Groups = Vec<(String, Vec<String>)>;

/// The order keys are written in.
const PROGRAM_ORDER: &[&str] = &[
    "command",
    "directory",
    "user",
    "umask",
    "autostart",
    "autorestart",
    "exit_codes",
    "min_uptime",
    "max_restarts",
    "stop_signal",
    "stop_timeout",
    "instances",
    "instance_start",
    "stdout",
    "stderr",
    "log_max_bytes",
    "log_backups",
];

/// supervisord's default `startretries`, written as `max_restarts` when a program does not set
/// it (holden's own default is 5).
const SUPERVISORD_STARTRETRIES: u32 = 3;

/// Sections that holden has nothing for, with why.
fn unsupported_section(name: &str) -> Option<&'static str> {
    let kind = name.split(':').next().unwrap_or(name);
    Some(match kind {
        "inet_http_server" => {
            "holden has no HTTP or XML-RPC server; its control socket is a local Unix socket ([supervisor] socket)"
        }
        "supervisorctl" => {
            "holden's own commands are the client; they find the socket in this file's [supervisor] socket"
        }
        "rpcinterface" => {
            "holden has no XML-RPC interface or plugins; its control protocol is in docs/control-protocol.md"
        }
        "ctlplugin" => "holden's client has no plugins",
        "eventlistener" => "holden has no event listener protocol; watch `holden status --json` or the log instead",
        "fcgi-program" => {
            "holden does not open FastCGI sockets for a program; run the program with its own socket, as a [programs] entry"
        }
        _ => return None,
    })
}

impl Conv<'_> {
    fn file(&self, index: usize) -> &Path {
        &self.ini.files[index]
    }

    fn here(&self, index: usize) -> String {
        let f = self.file(index);
        // `supervisord.conf`'s parent is "", which `absolute` refuses: it is the working directory.
        let dir = f
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::path::absolute(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string()
    }

    fn error(&mut self, file: usize, line: usize, message: String) {
        let file = self.file(file).to_path_buf();
        self.errors.push(Diag { file, line, message });
    }

    fn entry_error(&mut self, section: &Section, e: &Entry, message: impl std::fmt::Display) {
        self.error(e.file, e.line, format!("[{}] {}: {}", section.name, e.key, message));
    }

    fn warn(&mut self, file: usize, line: usize, message: String) {
        let w = format!("{}:{}: {}", self.file(file).display(), line, message);
        self.warnings.push(w);
    }

    /// An option with no equivalent: a comment in `comments` and one warning.
    fn no_equivalent(&mut self, comments: &mut Vec<String>, section: &Section, e: &Entry, why: &str) {
        comments.push(format!("# supervisord: {} = {}  ({why})", e.key, shown_value(e)));
        self.warn(
            e.file,
            e.line,
            format!(
                "[{}] {}: no equivalent in holden ({why}); written as a comment",
                section.name, e.key
            ),
        );
    }

    /// Expand an entry's value with supervisord's `%(name)s` rules.
    fn expand(&mut self, section: &Section, e: &Entry, vars: &Vars) -> Option<Expanded> {
        let here = self.here(e.file);
        let host = self.host.node_name.clone();
        let env = self.host.env;
        let unset = std::cell::RefCell::new(None::<String>);
        let lookup = |name: &str| -> Option<Value> {
            let text = |s: &str| Some(Value::Pieces(vec![Piece::Text(s.to_string())]));
            match name {
                "here" => text(&here),
                "host_node_name" => text(&host),
                "program_name" => vars.program_name.as_deref().and_then(text),
                "group_name" => vars.group_name.as_deref().and_then(text),
                "process_num" => vars.process_num.clone(),
                "numprocs" => vars.numprocs.map(Value::Int),
                _ => {
                    let var = name.strip_prefix("ENV_")?;
                    if let Some((_, v)) = vars.env.iter().rev().find(|(k, _)| k == var) {
                        return Some(Value::Pieces(v.0.clone()));
                    }
                    if env(var).is_none() {
                        *unset.borrow_mut() = Some(var.to_string());
                    }
                    Some(Value::Pieces(vec![Piece::Env(var.to_string())]))
                }
            }
        };
        let result = expand(&e.value, &lookup);
        match result {
            Ok(x) => {
                if let Some(var) = unset.into_inner() {
                    self.warn(
                        e.file,
                        e.line,
                        format!(
                            "[{}] {}: %(ENV_{var})s became ${{{var}}}, which holden reads when it loads the file; {var} is not set here",
                            section.name, e.key
                        ),
                    );
                }
                if x.index_in_braces() {
                    self.warn(
                        e.file,
                        e.line,
                        format!(
                            "[{}] {}: a literal {{ right before %(process_num) and }} right after it cannot be written for holden, which reads {{{{index}}}} as the literal text {{index}}; the result needs a look",
                            section.name, e.key
                        ),
                    );
                }
                Some(x)
            }
            Err(m) => {
                self.entry_error(section, e, m);
                None
            }
        }
    }

    /// Expand and take the value as text now, for settings holden has no `${VAR}` in.
    fn plain(&mut self, section: &Section, e: &Entry, vars: &Vars) -> Option<String> {
        let x = self.expand(section, e, vars)?;
        match x.resolve(self.host.env) {
            Ok(s) => Some(s),
            Err(m) => {
                self.entry_error(section, e, m);
                None
            }
        }
    }

    fn integer(
        &mut self,
        section: &Section,
        e: &Entry,
        vars: &Vars,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let s = self.plain(section, e, vars)?;
        match s.trim().parse::<i64>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.entry_error(
                    section,
                    e,
                    format!(
                        "found {s:?}, expected a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    fn boolean(&mut self, section: &Section, e: &Entry, vars: &Vars) -> Option<bool> {
        let s = self.plain(section, e, vars)?;
        match s.to_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Some(true),
            "no" | "false" | "off" | "0" => Some(false),
            _ => {
                self.entry_error(section, e, format!("found {s:?}, expected true or false"));
                None
            }
        }
    }

    /// `KEY="val",KEY2=val2`, with load-time pieces carried through the tokenizer as
    /// private-use characters.
    fn env_pairs(&mut self, section: &Section, e: &Entry, vars: &Vars) -> Vec<(String, Expanded)> {
        let Some(x) = self.expand(section, e, vars) else {
            return Vec::new();
        };
        let mut text = String::new();
        let mut held = Vec::new();
        for p in x.0 {
            match p {
                Piece::Text(t) => text.push_str(&t),
                other => {
                    let c = char::from_u32(0xe000 + held.len() as u32).unwrap_or('\u{e000}');
                    held.push(other);
                    text.push(c);
                }
            }
        }
        let pairs = match shlex::key_value_pairs(&text) {
            Ok(p) => p,
            Err(m) => {
                self.entry_error(section, e, m);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (k, v) in pairs {
            if k.chars().any(|c| ('\u{e000}'..='\u{f8ff}').contains(&c)) {
                self.entry_error(
                    section,
                    e,
                    format!("the variable name in {:?} must be written out", e.value),
                );
                continue;
            }
            let mut value = Expanded::default();
            let mut run = String::new();
            for c in v.chars() {
                match (c as u32).checked_sub(0xe000).and_then(|i| held.get(i as usize)) {
                    Some(p) if ('\u{e000}'..='\u{f8ff}').contains(&c) => {
                        if !run.is_empty() {
                            value.0.push(Piece::Text(std::mem::take(&mut run)));
                        }
                        value.0.push(p.clone());
                    }
                    _ => run.push(c),
                }
            }
            if !run.is_empty() {
                value.0.push(Piece::Text(run));
            }
            out.push((k, value));
        }
        out
    }

    fn run(&mut self) -> String {
        let ini = self.ini;
        let mut out = String::new();
        let main = ini.files.first().map(|f| f.display().to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "# Converted by `holden import` from the supervisord configuration {main}"
        );
        for f in ini.files.iter().skip(1) {
            let _ = writeln!(out, "# and its include {}", f.display());
        }
        out.push_str(
            "# Lines starting with \"# supervisord:\" are settings holden has no equivalent for;\n\
             # docs/migrating-from-supervisord.md says what each one meant and what to use instead.\n",
        );

        // Program names first: groups and the [supervisor] table need them.
        let programs: Vec<&Section> = ini.sections.iter().filter(|s| s.name.starts_with("program:")).collect();
        let mut names: HashMap<String, String> = HashMap::new();
        for s in &programs {
            let name = s.name["program:".len()..].trim().to_string();
            if name.is_empty() || name.contains([' ', ':', '/']) {
                self.error(
                    s.file,
                    s.line,
                    format!("[{}]: a program name without spaces, ':' or '/'", s.name),
                );
                continue;
            }
            let holden = holden_name(&name);
            if holden != name {
                self.warn(
                    s.file,
                    s.line,
                    format!(
                        "[{}]: holden program names are 1 to 64 of A-Za-z0-9_.-; named {holden:?}",
                        s.name
                    ),
                );
            }
            names.insert(name, holden);
        }

        let (groups, group_of) = self.groups(&names);
        self.supervisor_table(&mut out);

        for s in &ini.sections {
            let kind = s.name.split(':').next().unwrap_or(&s.name);
            match kind {
                "supervisord" | "unix_http_server" | "group" => {}
                "program" => {
                    let name = s.name["program:".len()..].trim();
                    if let Some(holden) = names.get(name).cloned() {
                        let group = group_of.get(name).cloned().unwrap_or_else(|| name.to_string());
                        self.program(&mut out, s, name, &holden, &group);
                    }
                }
                "include" => {
                    let files = s.get("files").map(|e| e.value.replace('\n', " ")).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "\n# supervisord: [include] files = {files}  (read and merged into this file)"
                    );
                }
                "DEFAULT" => {
                    let _ = writeln!(
                        out,
                        "\n# supervisord: [DEFAULT]  (its keys were applied to every section, as ConfigParser does)"
                    );
                }
                _ => {
                    let why = unsupported_section(&s.name)
                        .unwrap_or("holden does not know this section, nor does supervisord");
                    let _ = writeln!(out, "\n# supervisord: [{}]  ({why})", s.name);
                    for e in &s.entries {
                        let _ = writeln!(out, "#   {} = {}", e.key, shown_value(e));
                    }
                    self.warn(
                        s.file,
                        s.line,
                        format!("[{}]: no equivalent in holden ({why}); written as a comment", s.name),
                    );
                }
            }
        }

        if !groups.is_empty() {
            out.push_str("\n[groups]\n");
            for (name, members) in &groups {
                let list: Vec<String> = members.iter().map(|m| basic_string(m)).collect();
                let _ = writeln!(out, "{} = [{}]", segment(name), list.join(", "));
            }
        }
        out
    }

    /// `[group:x] programs = a,b`: the `[groups]` entries, and each program's (first) group.
    fn groups(&mut self, names: &HashMap<String, String>) -> (Groups, HashMap<String, String>) {
        let ini = self.ini;
        let mut groups = Vec::new();
        let mut group_of = HashMap::new();
        for s in ini.sections.iter().filter(|s| s.name.starts_with("group:")) {
            let name = s.name["group:".len()..].trim().to_string();
            let mut holden = holden_name(&name);
            if names.values().any(|p| *p == holden) {
                let renamed = format!("{holden}-group");
                self.warn(
                    s.file,
                    s.line,
                    format!(
                        "[{}]: a holden group cannot share a program's name; named {renamed:?}",
                        s.name
                    ),
                );
                holden = renamed;
            } else if holden != name {
                self.warn(
                    s.file,
                    s.line,
                    format!(
                        "[{}]: holden group names are 1 to 64 of A-Za-z0-9_.-; named {holden:?}",
                        s.name
                    ),
                );
            }
            let vars = Vars::default();
            let mut members = Vec::new();
            let mut seen_programs = false;
            for e in entries(self.ini, s) {
                match e.key.as_str() {
                    "programs" => {
                        seen_programs = true;
                        let Some(list) = self.plain(s, e, &vars) else { continue };
                        for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                            if let Some(p) = names.get(m) {
                                group_of.entry(m.to_string()).or_insert_with(|| name.clone());
                                if !members.contains(p) {
                                    members.push(p.clone());
                                }
                            } else if ini.section(&format!("fcgi-program:{m}")).is_some() {
                                self.warn(
                                    e.file,
                                    e.line,
                                    format!("[{}] programs: {m} is an [fcgi-program], which holden has no equivalent for; left out of the group", s.name),
                                );
                            } else {
                                self.entry_error(s, e, format!("names {m:?}, which is not a [program:{m}]"));
                            }
                        }
                    }
                    "priority" => {
                        self.warn(
                            e.file,
                            e.line,
                            format!("[{}] priority: no equivalent in holden (it starts programs in parallel; use depends_on for an order); dropped", s.name),
                        );
                    }
                    _ => self.warn(
                        e.file,
                        e.line,
                        format!("[{}] {}: not a [group] option; dropped", s.name, e.key),
                    ),
                }
            }
            if !seen_programs {
                self.error(s.file, s.line, format!("[{}]: a group needs a programs = line", s.name));
            }
            if !members.is_empty() {
                groups.push((holden, members));
            }
        }
        (groups, group_of)
    }

    /// `[supervisord]` and `[unix_http_server]` become `[supervisor]`.
    fn supervisor_table(&mut self, out: &mut String) {
        let ini = self.ini;
        let mut keys: Vec<(&str, String)> = Vec::new();
        let mut comments = Vec::new();
        let vars = Vars::default();
        let sections: Vec<&Section> = ini
            .sections
            .iter()
            .filter(|s| s.name == "supervisord" || s.name == "unix_http_server")
            .collect();
        if let Some(s) = ini.section("supervisord") {
            // The environment first: ENV_ of its variables is usable in every later value.
            if let Some(e) = get(self.ini, s, "environment") {
                let pairs = self.env_pairs(s, e, &vars);
                self.sup_env = pairs;
            }
            if let Some(e) = get(self.ini, s, "childlogdir") {
                self.childlogdir = self.plain(s, e, &vars);
            }
        }
        let vars = Vars {
            env: self.sup_env.clone(),
            ..Vars::default()
        };
        for s in sections {
            for e in entries(self.ini, s) {
                match (s.name.as_str(), e.key.as_str()) {
                    ("supervisord", "logfile") => {
                        let Some(v) = self.plain(s, e, &vars) else { continue };
                        if v.trim() == "syslog" {
                            // supervisord's special value: its log to the syslog service.
                            self.no_equivalent(
                                &mut comments,
                                s,
                                e,
                                "holden writes no syslog; its own log goes to stderr, which journald or the container runtime collects",
                            );
                        } else {
                            keys.push(("logfile", basic_string(&v)));
                        }
                    }
                    ("supervisord", "logfile_maxbytes" | "logfile_backups") if self.own_log_unrotated(s) => {
                        comments.push(format!(
                            "# supervisord: {} = {}  (logfile_maxbytes = 0: no rotation, as holden does not rotate its own log)",
                            e.key,
                            shown_value(e)
                        ));
                    }
                    ("supervisord", "loglevel") => {
                        let Some(v) = self.plain(s, e, &vars) else { continue };
                        let level = match v.trim().to_lowercase().as_str() {
                            "critical" | "error" => "error",
                            "warn" => "warn",
                            "info" => "info",
                            "debug" => "debug",
                            "trace" | "blather" => "trace",
                            other => {
                                self.entry_error(s, e, format!("found {other:?}, expected one of critical, error, warn, info, debug, trace, blather"));
                                continue;
                            }
                        };
                        keys.push(("log_level", basic_string(level)));
                    }
                    ("supervisord", "environment") => {
                        comments.push(format!(
                            "# supervisord: environment = {}  (added to every program's environment below)",
                            shown_value(e)
                        ));
                    }
                    ("supervisord", "childlogdir") => {
                        comments.push(format!(
                            "# supervisord: childlogdir = {}  (used for the AUTO log paths below)",
                            shown_value(e)
                        ));
                    }
                    ("supervisord", "user") if matches!(e.value.trim(), "root" | "0") => {
                        // Containers set it to silence supervisord's warning about running as root.
                        comments.push(format!(
                            "# supervisord: user = {}  (holden runs as the user that starts it, root here too)",
                            shown_value(e)
                        ));
                    }
                    ("supervisord", "nodaemon") => {
                        comments.push(format!(
                            "# supervisord: nodaemon = {}  (holden always runs in the foreground)",
                            shown_value(e)
                        ));
                    }
                    ("supervisord", key) => {
                        let why = match key {
                            "logfile_maxbytes" | "logfile_backups" => {
                                "holden does not rotate its own log; use logrotate with `holden reopen`"
                            }
                            "pidfile" => {
                                "holden runs in the foreground and writes no pid file; its service manager knows the pid"
                            }
                            "umask" => "set umask per program; programs inherit holden's otherwise",
                            "minfds" => "set rlimits = { nofile = N } per program",
                            "minprocs" => "set rlimits = { nproc = N } per program",
                            "user" => {
                                "holden does not drop its own privileges; run it as that user, or set user per program"
                            }
                            "directory" => "holden does not change its own directory; set directory per program",
                            "identifier" => "holden has no RPC identifier",
                            "nocleanup" => "AUTO child logs are not used",
                            "strip_ansi" => "holden writes program output as it is",
                            "silent" => "holden's own log goes to logfile or stderr",
                            _ => "not a [supervisord] option",
                        };
                        self.no_equivalent(&mut comments, s, e, why);
                    }
                    ("unix_http_server", "file") => {
                        if let Some(v) = self.plain(s, e, &vars) {
                            keys.push(("socket", basic_string(v.trim())));
                        }
                    }
                    ("unix_http_server", "chmod") => {
                        let Some(v) = self.plain(s, e, &vars) else { continue };
                        match parse_octal(&v) {
                            Some(m) if m <= 0o7777 => keys.push(("socket_mode", format!("\"{m:04o}\""))),
                            _ => self.entry_error(s, e, format!("found {v:?}, expected an octal mode like 0700")),
                        }
                    }
                    ("unix_http_server", key) => {
                        let why = match key {
                            "chown" => {
                                "holden creates the socket as its own user; grant others with [supervisor] read_uids, allow_uids (start/stop) or admin_uids"
                            }
                            "username" | "password" => {
                                "holden checks who connects by peer credentials, not passwords; see read_uids, allow_uids, admin_uids"
                            }
                            _ => "not a [unix_http_server] option",
                        };
                        self.no_equivalent(&mut comments, s, e, why);
                    }
                    _ => {}
                }
            }
        }
        if keys.is_empty() && comments.is_empty() {
            return;
        }
        out.push_str("\n[supervisor]\n");
        for (k, v) in keys {
            let _ = writeln!(out, "{k} = {v}");
        }
        for c in comments {
            let _ = writeln!(out, "{c}");
        }
    }

    /// `[supervisord] logfile_maxbytes = 0`: supervisord does not rotate its own log either.
    fn own_log_unrotated(&self, s: &Section) -> bool {
        let Some(e) = get(self.ini, s, "logfile_maxbytes") else {
            return false;
        };
        let env = self.host.env;
        expand(&e.value, &|_| None)
            .ok()
            .and_then(|x| x.resolve(env).ok())
            .and_then(|v| byte_size(&v))
            .is_some_and(|v| v == "0")
    }

    fn program(&mut self, out: &mut String, s: &Section, name: &str, holden: &str, group: &str) {
        let mut p = ProgramOut::default();
        let base = Vars {
            program_name: Some(name.to_string()),
            group_name: Some(group.to_string()),
            env: self.sup_env.clone(),
            ..Vars::default()
        };
        let numprocs = match get(self.ini, s, "numprocs") {
            Some(e) => self.integer(s, e, &base, 1..=1000).unwrap_or(1),
            None => 1,
        };
        let start = match get(self.ini, s, "numprocs_start") {
            Some(e) => self.integer(s, e, &base, 0..=i64::from(u32::MAX)).unwrap_or(0),
            None => 0,
        };
        let instanced = numprocs > 1;
        let mut vars = Vars {
            process_num: Some(if instanced {
                Value::Pieces(vec![Piece::Index { width: None }])
            } else {
                Value::Int(start)
            }),
            numprocs: Some(numprocs),
            ..base
        };
        // The environment before the rest: its variables are ENV_ names for the other options.
        let mut environment = self.sup_env.clone();
        if let Some(e) = get(self.ini, s, "environment") {
            for (k, v) in self.env_pairs(s, e, &vars) {
                environment.retain(|(key, _)| *key != k);
                environment.push((k, v));
            }
        }
        vars.env = environment.clone();
        p.environment = environment.iter().map(|(k, v)| (k.clone(), v.template())).collect();
        if instanced {
            p.set("instances", numprocs.to_string());
            if start != 0 {
                p.set("instance_start", start.to_string());
            }
        }

        // supervisord's startretries defaults to 3, holden's max_restarts to 5: keep supervisord's.
        if get(self.ini, s, "startretries").is_none() {
            p.set("max_restarts", SUPERVISORD_STARTRETRIES.to_string());
        }

        let mut stdout = Log::Auto;
        let mut stderr = Log::Auto;
        let mut redirect = false;
        let mut sizes: [Option<(&Entry, String)>; 2] = [None, None];
        let mut backups: [Option<(&Entry, i64)>; 2] = [None, None];
        let mut command_seen = false;
        for e in entries(self.ini, s) {
            let key = e.key.as_str();
            match key {
                "command" => {
                    command_seen = true;
                    if let Some(x) = self.expand(s, e, &vars) {
                        let t = x.template().replace('\n', " ");
                        if t.trim().is_empty() {
                            self.entry_error(s, e, "the command is empty");
                        }
                        p.set("command", basic_string(t.trim()));
                    }
                }
                "directory" => {
                    if let Some(x) = self.expand(s, e, &vars) {
                        p.set("directory", basic_string(&x.template()));
                    }
                }
                "user" => {
                    if let Some(v) = self.plain(s, e, &vars) {
                        p.set("user", basic_string(v.trim()));
                    }
                }
                "umask" => {
                    let Some(v) = self.plain(s, e, &vars) else { continue };
                    match parse_octal(&v) {
                        Some(m) if m <= 0o777 => p.set("umask", format!("\"{m:03o}\"")),
                        _ => self.entry_error(s, e, format!("found {v:?}, expected an octal umask like 022")),
                    }
                }
                "autostart" => {
                    if let Some(b) = self.boolean(s, e, &vars) {
                        p.set("autostart", b.to_string());
                    }
                }
                "autorestart" => {
                    let Some(v) = self.plain(s, e, &vars) else { continue };
                    let policy = match v.trim().to_lowercase().as_str() {
                        "yes" | "true" | "on" | "1" => "always",
                        "no" | "false" | "off" | "0" => "never",
                        "unexpected" => "on-failure",
                        _ => {
                            self.entry_error(s, e, format!("found {v:?}, expected true, false or unexpected"));
                            continue;
                        }
                    };
                    p.set("autorestart", basic_string(policy));
                }
                "exitcodes" => {
                    let Some(v) = self.plain(s, e, &vars) else { continue };
                    let codes: Result<Vec<u8>, _> = v.split(',').map(|c| c.trim().parse::<u8>()).collect();
                    match codes {
                        Ok(codes) => {
                            let list: Vec<String> = codes.iter().map(u8::to_string).collect();
                            p.set("exit_codes", format!("[{}]", list.join(", ")));
                        }
                        Err(_) => self.entry_error(s, e, format!("found {v:?}, expected exit codes 0 to 255 separated by commas")),
                    }
                }
                "startsecs" => {
                    if let Some(n) = self.integer(s, e, &vars, 0..=i64::from(u32::MAX)) {
                        p.set("min_uptime", format!("\"{n}s\""));
                    }
                }
                "startretries" => {
                    if let Some(n) = self.integer(s, e, &vars, 0..=i64::from(u32::MAX)) {
                        p.set("max_restarts", n.to_string());
                    }
                }
                "stopsignal" => {
                    let Some(v) = self.plain(s, e, &vars) else { continue };
                    match Signal::parse(&v) {
                        Some(sig) => p.set("stop_signal", basic_string(&sig.name())),
                        None => self.entry_error(s, e, format!("found {v:?}, expected a signal like TERM, HUP, INT, QUIT, KILL, USR1 or USR2")),
                    }
                }
                "stopwaitsecs" => {
                    if let Some(n) = self.integer(s, e, &vars, 0..=i64::from(u32::MAX)) {
                        p.set("stop_timeout", format!("\"{n}s\""));
                    }
                }
                "stopasgroup" | "killasgroup" => {
                    if self.boolean(s, e, &vars).is_some() {
                        p.comments.push(format!(
                            "# supervisord: {key} = {}  (holden sends stop_signal to the main process; after stop_timeout it kills every process left in the program's cgroup)",
                            shown_value(e)
                        ));
                    }
                }
                "redirect_stderr" => {
                    if let Some(b) = self.boolean(s, e, &vars) {
                        redirect = b;
                    }
                }
                "stdout_logfile" | "stderr_logfile" => {
                    let Some(x) = self.expand(s, e, &vars) else { continue };
                    let log = match x.plain().ok().map(|t| t.trim().to_lowercase()).as_deref() {
                        Some("auto") => Log::Auto,
                        Some("none" | "off") => Log::Null,
                        Some("syslog") => Log::Syslog(e),
                        _ => Log::Path(x, e),
                    };
                    if key == "stdout_logfile" {
                        stdout = log;
                    } else {
                        stderr = log;
                    }
                }
                "stdout_logfile_maxbytes" | "stderr_logfile_maxbytes" => {
                    let Some(v) = self.plain(s, e, &vars) else { continue };
                    match byte_size(&v) {
                        Some(size) => sizes[usize::from(key.starts_with("stderr"))] = Some((e, size)),
                        None => self.entry_error(s, e, format!("found {v:?}, expected a size like 50MB")),
                    }
                }
                "stdout_logfile_backups" | "stderr_logfile_backups" => {
                    if let Some(n) = self.integer(s, e, &vars, 0..=i64::from(u32::MAX)) {
                        backups[usize::from(key.starts_with("stderr"))] = Some((e, n));
                    }
                }
                "stdout_syslog" | "stderr_syslog" => match self.boolean(s, e, &vars) {
                    Some(true) => self.no_equivalent(
                        &mut p.comments,
                        s,
                        e,
                        "holden writes no syslog; use stdout = \"inherit\" and let journald or the container runtime collect holden's output",
                    ),
                    Some(false) => p.comments.push(format!("# supervisord: {key} = {}", shown_value(e))),
                    None => {}
                },
                "process_name" => {
                    if instanced {
                        p.comments.push(format!(
                            "# supervisord: process_name = {}  (holden names the instances {holden}@INDEX)",
                            shown_value(e)
                        ));
                    } else if let Some(v) = self.plain(s, e, &vars)
                        && v != name
                    {
                        self.no_equivalent(&mut p.comments, s, e, &format!("holden names the program after its section: {holden}"));
                    }
                }
                "numprocs" | "numprocs_start" => {
                    if !instanced && get(self.ini, s, key).is_some() {
                        p.comments.push(format!("# supervisord: {key} = {}  (one process)", shown_value(e)));
                    }
                }
                "environment" => {}
                "priority" => self.no_equivalent(
                    &mut p.comments,
                    s,
                    e,
                    "holden starts independent programs in parallel; write depends_on = [...] where one must wait for another",
                ),
                "stdout_capture_maxbytes" | "stderr_capture_maxbytes" => {
                    self.no_equivalent(&mut p.comments, s, e, "holden has no capture mode or process communication events")
                }
                "stdout_events_enabled" | "stderr_events_enabled" => {
                    self.no_equivalent(&mut p.comments, s, e, "holden has no event listeners")
                }
                "serverurl" => self.no_equivalent(
                    &mut p.comments,
                    s,
                    e,
                    "holden passes no SUPERVISOR_SERVER_URL; a program can run `holden` commands with the socket of [supervisor]",
                ),
                _ => self.no_equivalent(&mut p.comments, s, e, "not a supervisord [program] option"),
            }
        }
        if !command_seen {
            self.error(
                s.file,
                s.line,
                format!("[{}]: a program needs a command = line", s.name),
            );
        }

        // Logs: supervisord's AUTO is a file in childlogdir that `supervisorctl tail` reads.
        let dir = self.childlogdir.clone().unwrap_or_else(|| "logs".to_string());
        let stem = if instanced {
            format!("{holden}-{{index}}")
        } else {
            holden.to_string()
        };
        let auto = |suffix: &str| basic_string(&format!("{}/{stem}{suffix}", escape_template(&dir)));
        let value = self.log_value(s, &stdout, instanced, &mut p.comments, || auto(".log"));
        p.set("stdout", value);
        if redirect {
            if let Log::Path(_, e) | Log::Syslog(e) = &stderr {
                self.warn(
                    e.file,
                    e.line,
                    format!(
                        "[{}] stderr_logfile: ignored because redirect_stderr = true, as supervisord ignores it",
                        s.name
                    ),
                );
            }
            p.set("stderr", basic_string("stdout"));
        } else {
            let value = self.log_value(s, &stderr, instanced, &mut p.comments, || auto(".err.log"));
            p.set("stderr", value);
        }
        let streams = [!matches!(stdout, Log::Null), !redirect && !matches!(stderr, Log::Null)];
        self.log_limit(s, &mut p, "log_max_bytes", &sizes, streams);
        let backups = backups.map(|b| b.map(|(e, n)| (e, n.to_string())));
        self.log_limit(s, &mut p, "log_backups", &backups, streams);

        let _ = writeln!(out, "\n[programs.{}]", segment(holden));
        for key in PROGRAM_ORDER {
            if let Some((_, v)) = p.keys.iter().find(|(k, _)| k == key) {
                let _ = writeln!(out, "{key} = {v}");
            }
        }
        for c in &p.comments {
            let _ = writeln!(out, "{c}");
        }
        if !p.environment.is_empty() {
            let _ = writeln!(out, "\n[programs.{}.environment]", segment(holden));
            for (k, v) in &p.environment {
                let _ = writeln!(out, "{} = {}", segment(k), basic_string(v));
            }
        }
    }

    /// One of holden's per-program log settings, from supervisord's per-stream pair.
    fn log_limit(
        &mut self,
        s: &Section,
        p: &mut ProgramOut,
        key: &'static str,
        values: &[Option<(&Entry, String)>; 2],
        streams: [bool; 2],
    ) {
        match values {
            [Some((_, a)), Some((e, b))] if a != b && streams[1] => {
                p.set(key, a.clone());
                self.no_equivalent(
                    &mut p.comments,
                    s,
                    e,
                    &format!("holden has one {key} for both streams; the stdout value is used"),
                );
            }
            [Some((_, a)), _] => p.set(key, a.clone()),
            [None, Some((_, b))] => p.set(key, b.clone()),
            [None, None] => {}
        }
    }

    fn log_value(
        &mut self,
        s: &Section,
        log: &Log<'_>,
        instanced: bool,
        comments: &mut Vec<String>,
        auto: impl Fn() -> String,
    ) -> String {
        match log {
            Log::Auto => auto(),
            Log::Null => basic_string("null"),
            Log::Syslog(e) => {
                self.no_equivalent(
                    comments,
                    s,
                    e,
                    "holden writes no syslog; \"inherit\" sends the lines to holden's own stderr, for journald or the container runtime",
                );
                basic_string("inherit")
            }
            Log::Path(x, e) => {
                let t = x.template();
                let stream = ["/dev/", "/proc/"].iter().any(|d| t.starts_with(d));
                if instanced && !x.has_index() && !stream {
                    let with = with_index(&t);
                    self.warn(
                        e.file,
                        e.line,
                        format!(
                            "[{}] {}: holden's instances each need their own log file; {:?} became {with:?}",
                            s.name, e.key, t
                        ),
                    );
                    basic_string(&with)
                } else {
                    basic_string(&t)
                }
            }
        }
    }
}

enum Log<'e> {
    Auto,
    Null,
    Syslog(&'e Entry),
    Path(Expanded, &'e Entry),
}

/// The entries of a section, with `[DEFAULT]`'s for keys it does not set (ConfigParser's rule).
fn entries<'s>(ini: &'s Ini, section: &'s Section) -> Vec<&'s Entry> {
    let mut out: Vec<&Entry> = section.entries.iter().collect();
    if let Some(d) = ini.section("DEFAULT")
        && d.name != section.name
    {
        out.extend(d.entries.iter().filter(|e| section.get(&e.key).is_none()));
    }
    out
}

fn get<'s>(ini: &'s Ini, section: &'s Section, key: &str) -> Option<&'s Entry> {
    section
        .get(key)
        .or_else(|| ini.section("DEFAULT").and_then(|d| d.get(key)))
}

/// `a/b.log` -> `a/b-{index}.log`; `a/b` -> `a/b-{index}`.
fn with_index(path: &str) -> String {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_start..].rfind('.') {
        Some(dot) if dot > 0 => {
            let at = name_start + dot;
            format!("{}-{{index}}{}", &path[..at], &path[at..])
        }
        _ => format!("{path}-{{index}}"),
    }
}

/// A literal text for a template field.
fn escape_template(s: &str) -> String {
    Expanded(vec![Piece::Text(s.to_string())]).template()
}

/// A program or group name as holden allows it.
fn holden_name(name: &str) -> String {
    if valid_program_name(name) {
        return name.to_string();
    }
    let mut n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if n.is_empty() || n == "." || n == ".." {
        n = "program".to_string();
    }
    n
}

/// Python's `int(s, 8)`: optional `0o` prefix, underscores between digits.
fn parse_octal(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")).unwrap_or(t);
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    u32::from_str_radix(&t.replace('_', ""), 8).ok()
}

/// supervisord's `byte_size`: a number with an optional KB, MB or GB (powers of 1024), as
/// holden's size text (`50MiB`) or a plain number of bytes.
fn byte_size(s: &str) -> Option<String> {
    let t = s.trim().to_lowercase();
    for (suffix, unit) in [("kb", "KiB"), ("mb", "MiB"), ("gb", "GiB")] {
        if let Some(n) = t.strip_suffix(suffix) {
            let n: u64 = n.trim().parse().ok()?;
            return Some(format!("\"{n}{unit}\""));
        }
    }
    let n: u64 = t.parse().ok()?;
    Some(n.to_string())
}

/// A value as shown in a comment: one line, and no password.
fn shown_value(e: &Entry) -> String {
    if e.key == "password" {
        return "(not copied)".to_string();
    }
    e.value.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_str(text: &str, env: &[(&str, &str)]) -> Result<Outcome, Vec<Diag>> {
        let mut ini = Ini::default();
        ini.read_str(text, Path::new("/etc/supervisor/supervisord.conf"))
            .unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let host = Host {
            env: &lookup,
            node_name: "box".to_string(),
        };
        convert(&ini, &host, Vec::new())
    }

    fn ok(text: &str) -> Outcome {
        convert_str(text, &[("HOME", "/root")]).unwrap()
    }

    fn errors(text: &str) -> Vec<String> {
        convert_str(text, &[])
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_plain_program_maps_option_by_option() {
        let o = ok(
            "[program:web]\ncommand=/usr/bin/web --port 80\ndirectory=/srv\nuser=www-data\numask=22\n\
                    autostart=false\nautorestart=unexpected\nexitcodes=0,2\nstartsecs=5\nstartretries=7\n\
                    stopsignal=QUIT\nstopwaitsecs=30\nredirect_stderr=true\nstdout_logfile=/var/log/web.log\n\
                    stdout_logfile_maxbytes=10MB\nstdout_logfile_backups=3\n",
        );
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        let expected = "[programs.web]\ncommand = \"/usr/bin/web --port 80\"\ndirectory = \"/srv\"\nuser = \"www-data\"\n\
                        umask = \"022\"\nautostart = false\nautorestart = \"on-failure\"\nexit_codes = [0, 2]\n\
                        min_uptime = \"5s\"\nmax_restarts = 7\nstop_signal = \"QUIT\"\nstop_timeout = \"30s\"\n\
                        stdout = \"/var/log/web.log\"\nstderr = \"stdout\"\nlog_max_bytes = \"10MiB\"\nlog_backups = 3\n";
        assert!(o.toml.contains(expected), "{}", o.toml);
    }

    #[test]
    fn an_unset_startretries_keeps_supervisords_default_of_three() {
        let o = ok("[program:a]\ncommand=a\n[program:b]\ncommand=b\nstartretries=0\n");
        assert!(
            o.toml.contains("[programs.a]\ncommand = \"a\"\nmax_restarts = 3\n"),
            "{}",
            o.toml
        );
        assert!(
            o.toml.contains("[programs.b]\ncommand = \"b\"\nmax_restarts = 0\n"),
            "{}",
            o.toml
        );
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    }

    #[test]
    fn autorestart_values() {
        for (v, want) in [("true", "always"), ("false", "never"), ("unexpected", "on-failure")] {
            let o = ok(&format!("[program:a]\ncommand=x\nautorestart={v}\n"));
            assert!(o.toml.contains(&format!("autorestart = \"{want}\"")), "{}", o.toml);
        }
    }

    #[test]
    fn numprocs_become_instances_with_index_templates() {
        let o = ok(
            "[program:worker]\ncommand=celery worker -n w%(process_num)02d@%(host_node_name)s\n\
                    process_name=%(program_name)s_%(process_num)02d\nnumprocs=4\nnumprocs_start=1\n\
                    environment=SLOT=\"%(process_num)d\"\nstdout_logfile=/var/log/%(program_name)s-%(process_num)d.log\n\
                    stderr_logfile=/var/log/worker.err\n",
        );
        assert!(
            o.toml.contains("command = \"celery worker -n w{index:02}@box\""),
            "{}",
            o.toml
        );
        assert!(o.toml.contains("instances = 4\ninstance_start = 1\n"), "{}", o.toml);
        assert!(
            o.toml.contains("stdout = \"/var/log/worker-{index}.log\""),
            "{}",
            o.toml
        );
        assert!(
            o.toml.contains("stderr = \"/var/log/worker-{index}.err\""),
            "{}",
            o.toml
        );
        assert!(o.toml.contains("SLOT = \"{index}\""), "{}", o.toml);
        assert!(
            o.toml.contains("(holden names the instances worker@INDEX)"),
            "{}",
            o.toml
        );
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        assert!(
            o.warnings[0].contains("each need their own log file"),
            "{:?}",
            o.warnings
        );
    }

    #[test]
    fn a_numprocs_stack_passes_holden_check_with_its_instances_and_group() {
        let o = ok(
            "[program:web]\ncommand=gunicorn app.wsgi -b 127.0.0.1:8000 --name {index}\nstdout_logfile=/var/log/web.log\n\
             [program:celery]\ncommand=celery -A app worker -n w%(process_num)02d@%(host_node_name)s\n\
             process_name=%(program_name)s_%(process_num)02d\nnumprocs=4\nnumprocs_start=1\n\
             environment=SLOT=\"%(process_num)d\",TPL=\"{{.Name}}\"\n\
             stdout_logfile=/var/log/celery-%(process_num)d.log\nredirect_stderr=true\n\
             [program:redis]\ncommand=redis-server --port 6379\n\
             [group:stack]\nprograms=web,celery\n",
        );
        let config = crate::config::load::load_str(Path::new("/etc/holden/supervisor.toml"), &o.toml)
            .unwrap_or_else(|e| panic!("{e}\n{}", o.toml));
        let names: Vec<&str> = config.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["celery@1", "celery@2", "celery@3", "celery@4", "redis", "web"],
            "{}",
            o.toml
        );
        let c3 = config.program("celery@3").expect("celery@3");
        assert_eq!(c3.command.last().map(String::as_str), Some("w03@box"));
        assert_eq!(c3.environment["SLOT"], "3");
        assert_eq!(c3.environment["TPL"], "{{.Name}}");
        assert_eq!(c3.stdout, crate::config::Output::File("/var/log/celery-3.log".into()));
        // A literal `{index}` in supervisord's command stays literal.
        let web = config.program("web").expect("web");
        assert_eq!(web.command.last().map(String::as_str), Some("{index}"));
        assert_eq!(config.groups_of(c3), ["stack"]);
    }

    #[test]
    fn one_process_takes_process_num_literally() {
        let o = ok("[program:w]\ncommand=run %(process_num)02d of %(numprocs)d\nnumprocs_start=3\n");
        assert!(o.toml.contains("command = \"run 03 of 1\""), "{}", o.toml);
        assert!(!o.toml.contains("instances"), "{}", o.toml);
    }

    #[test]
    fn env_expansions_wait_for_load_time_unless_the_config_defines_them() {
        let o = ok(
            "[supervisord]\nenvironment=STAGE=prod\n[program:a]\ncommand=%(ENV_HOME)s/bin/a --stage %(ENV_STAGE)s\n\
                    environment=DB=\"%(ENV_DATABASE_URL)s\",LOG=\"%(ENV_STAGE)s.log\"\nuser=%(ENV_HOME)s\n",
        );
        assert!(
            o.toml.contains("command = \"${HOME}/bin/a --stage prod\""),
            "{}",
            o.toml
        );
        assert!(
            o.toml
                .contains("STAGE = \"prod\"\nDB = \"${DATABASE_URL}\"\nLOG = \"prod.log\""),
            "{}",
            o.toml
        );
        assert!(o.toml.contains("user = \"/root\""), "{}", o.toml);
        assert!(
            o.warnings.iter().any(|w| w.contains("DATABASE_URL is not set here")),
            "{:?}",
            o.warnings
        );
    }

    #[test]
    fn here_is_the_folder_of_the_file() {
        let o = ok("[program:a]\ncommand=%(here)s/bin/a\ndirectory=%(here)s\n");
        assert!(
            o.toml
                .contains("command = \"/etc/supervisor/bin/a\"\ndirectory = \"/etc/supervisor\""),
            "{}",
            o.toml
        );
    }

    #[test]
    fn auto_logs_go_to_files_holden_can_tail() {
        let o = ok("[program:a]\ncommand=a\n[program:b]\ncommand=b\nstdout_logfile=NONE\nstderr_logfile=AUTO\n");
        assert!(
            o.toml.contains("stdout = \"logs/a.log\"\nstderr = \"logs/a.err.log\""),
            "{}",
            o.toml
        );
        assert!(
            o.toml.contains("stdout = \"null\"\nstderr = \"logs/b.err.log\""),
            "{}",
            o.toml
        );
    }

    #[test]
    fn no_equivalent_options_are_comments_and_one_warning_each() {
        let o = ok(
            "[program:a]\ncommand=a\npriority=10\nstdout_events_enabled=true\nstdout_capture_maxbytes=1MB\n\
                    serverurl=AUTO\nstopasgroup=true\nkillasgroup=true\nstdout_syslog=true\nbogus=1\n",
        );
        for key in [
            "priority = 10",
            "stdout_events_enabled = true",
            "stdout_capture_maxbytes = 1MB",
            "serverurl = AUTO",
            "stdout_syslog = true",
            "bogus = 1",
            "stopasgroup = true",
            "killasgroup = true",
        ] {
            assert!(o.toml.contains(&format!("# supervisord: {key}")), "{key}: {}", o.toml);
        }
        // stopasgroup and killasgroup are what holden does anyway: no warning for them.
        assert_eq!(o.warnings.len(), 6, "{:?}", o.warnings);
        assert!(
            o.warnings[0].starts_with("/etc/supervisor/supervisord.conf:3: [program:a] priority: no equivalent"),
            "{:?}",
            o.warnings
        );
    }

    #[test]
    fn supervisor_table_and_unsupported_sections() {
        let o = ok(
            "[unix_http_server]\nfile=/run/supervisor.sock\nchmod=0770\npassword=secret\n[supervisord]\n\
                    logfile=/var/log/supervisord.log\nloglevel=blather\npidfile=/run/s.pid\n\
                    [inet_http_server]\nport=127.0.0.1:9001\npassword=hunter2\n[eventlistener:mem]\ncommand=memmon\nevents=TICK_60\n\
                    [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        );
        assert!(
            o.toml
                .contains("[supervisor]\nsocket = \"/run/supervisor.sock\"\nsocket_mode = \"0770\"\n"),
            "{}",
            o.toml
        );
        assert!(
            o.toml
                .contains("logfile = \"/var/log/supervisord.log\"\nlog_level = \"trace\"\n"),
            "{}",
            o.toml
        );
        assert!(o.toml.contains("# supervisord: [eventlistener:mem]"), "{}", o.toml);
        assert!(!o.toml.contains("secret") && !o.toml.contains("hunter2"), "{}", o.toml);
        // password, pidfile, inet_http_server, eventlistener, rpcinterface.
        assert_eq!(o.warnings.len(), 5, "{:?}", o.warnings);
    }

    #[test]
    fn supervisords_own_log_and_user_as_containers_write_them() {
        let o = ok("[supervisord]\nlogfile=syslog\n[program:a]\ncommand=a\n");
        assert!(!o.toml.contains("\nlogfile = "), "{}", o.toml);
        assert!(
            o.toml
                .contains("# supervisord: logfile = syslog  (holden writes no syslog;"),
            "{}",
            o.toml
        );
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        assert!(
            o.warnings[0].contains("[supervisord] logfile: no equivalent"),
            "{:?}",
            o.warnings
        );

        // The container pattern: no rotation is what holden does; comments, no warnings.
        let o = ok("[supervisord]\nlogfile=/dev/null\nlogfile_maxbytes=0\nlogfile_backups=5\n[program:a]\ncommand=a\n");
        assert!(o.toml.contains("logfile = \"/dev/null\"\n"), "{}", o.toml);
        assert!(
            o.toml
                .contains("# supervisord: logfile_maxbytes = 0  (logfile_maxbytes = 0: no rotation"),
            "{}",
            o.toml
        );
        assert!(o.toml.contains("# supervisord: logfile_backups = 5  ("), "{}", o.toml);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);

        // user=root, as containers write it: a comment, no warning; another user: a warning.
        let o = ok("[supervisord]\nuser=root\n[program:a]\ncommand=a\n");
        assert!(o.toml.contains("# supervisord: user = root  ("), "{}", o.toml);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        let o = ok("[supervisord]\nuser=supervisor\n[program:a]\ncommand=a\n");
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);

        // Rotation on: holden does not do it for its own log, which is worth a warning.
        let o = ok("[supervisord]\nlogfile=/var/log/s.log\nlogfile_maxbytes=1MB\n[program:a]\ncommand=a\n");
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    }

    #[test]
    fn groups_collect_programs_and_avoid_program_names() {
        let o = ok(
            "[group:web]\nprograms=web,worker\npriority=5\n[program:web]\ncommand=w\n[program:worker]\ncommand=k\n\
                    [group:all]\nprograms=web\n",
        );
        assert!(
            o.toml
                .contains("[groups]\nweb-group = [\"web\", \"worker\"]\nall = [\"web\"]\n"),
            "{}",
            o.toml
        );
        assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
    }

    #[test]
    fn output_is_toml_with_escapes() {
        let o = ok("[program:q]\ncommand=sh -c 'echo \"{a}\" $$ \\n'\n");
        assert!(
            o.toml.contains(r#"command = "sh -c 'echo \"{a}\" $$$ \\n'""#),
            "{}",
            o.toml
        );
        let _: toml::Table = toml::from_str(&o.toml).unwrap();
    }

    #[test]
    fn bad_values_name_file_line_section_and_key() {
        let e = errors(
            "[program:a]\ncommand=a\nautostart=maybe\nnumprocs=0\nstartsecs=soon\nenvironment=A=x@y\numask=9\n\
                        stopsignal=NOPE\nexitcodes=1,300\ndirectory=%(nope)s\n[program:b]\n[group:g]\nprograms=zz\n[program:c d]\ncommand=x\n",
        );
        let want = [
            "/etc/supervisor/supervisord.conf:14: [program:c d]: a program name without spaces, ':' or '/'",
            "/etc/supervisor/supervisord.conf:13: [group:g] programs: names \"zz\", which is not a [program:zz]",
            "/etc/supervisor/supervisord.conf:4: [program:a] numprocs: found \"0\", expected a whole number from 1 to 1000",
        ];
        for w in want {
            assert!(e.iter().any(|x| x == w), "{w}\n{e:#?}");
        }
        for key in [
            "autostart",
            "startsecs",
            "environment",
            "umask",
            "stopsignal",
            "exitcodes",
            "directory",
        ] {
            assert!(
                e.iter().any(|x| x.contains(&format!("[program:a] {key}: "))),
                "{key}: {e:#?}"
            );
        }
        assert!(
            e.iter()
                .any(|x| x == "/etc/supervisor/supervisord.conf:11: [program:b]: a program needs a command = line"),
            "{e:#?}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(with_index("/var/log/w.log"), "/var/log/w-{index}.log");
        assert_eq!(with_index("/var/log.d/w"), "/var/log.d/w-{index}");
        assert_eq!(with_index(".hidden"), ".hidden-{index}");
        assert_eq!(byte_size("50MB").unwrap(), "\"50MiB\"");
        assert_eq!(byte_size("1024").unwrap(), "1024");
        assert_eq!(byte_size("0").unwrap(), "0");
        assert!(byte_size("lots").is_none());
        assert_eq!(parse_octal("022"), Some(0o22));
        assert_eq!(parse_octal("0o777"), Some(0o777));
        assert_eq!(parse_octal("8"), None);
        assert_eq!(holden_name("my app"), "my_app");
    }
}

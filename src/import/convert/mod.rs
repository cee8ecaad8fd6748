//! supervisord's sections and options, mapped to holden's TOML. Everything is decided here:
//! what each option becomes, what has no equivalent (a `# supervisord:` comment at its place and
//! one warning), and which values wait for load time (see `expand`). The output keeps the INI's
//! order of sections, with `[supervisor]` first and `[groups]` last, and a fixed key order inside
//! each program. docs/migrating-from-supervisord.md is the table of this file.

mod program;
mod supervisor;

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
mod tests;

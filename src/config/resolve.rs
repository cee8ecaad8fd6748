//! From the raw file to `Config`: defaults, paths, validation, all errors at once.
//!
//! Every value of `raw.rs` is checked here for what it means (a duration, a size, a known
//! program, ...), relative paths are made absolute against the config file's own folder, and
//! each problem becomes one line `FILE:LINE:COL: KEY: found ..., expected ...`, FILE being the
//! path as the user gave it. Nothing stops at the first problem: a bad value is reported and
//! its default used, so that the next key is still checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use toml::Spanned;

use super::raw::{
    self, Problem, RawCommand, RawLimit, RawMode, RawProgram, RawRlimit, RawSignal, RawSize, RawSupervisor,
};
use super::{
    CgroupMode, Config, Instance, Instanced, LogFile, Output, Program, RLIMITS, RestartPolicy, Rlimit, Signal,
    SupervisorSettings, envfile, placeholder, vars, words,
};

/// The most `instances` a program may have.
pub const MAX_INSTANCES: u32 = 1024;
/// The highest `instance_start`.
pub const MAX_INSTANCE_START: u32 = 1_000_000;

/// Every error found in one config file, each with file:line:col, key, found and expected.
#[derive(Debug, thiserror::Error)]
#[error("{}", .messages.join("\n"))]
pub struct ConfigError {
    pub messages: Vec<String>,
}

/// Read and resolve the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        messages: vec![format!(
            "cannot read the config file {}: {}; give another with -c FILE or $HOLDEN_CONFIG",
            path.display(),
            io_reason(&e)
        )],
    })?;
    load_str(path, &text)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::InvalidData => "it is not UTF-8 text".to_string(),
        _ => crate::error::os_text(e),
    }
}

/// Resolve `text` as if it were the contents of `path` (relative paths are against its folder).
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let located = |problems: Vec<Problem>| ConfigError {
        messages: locate(&file, text, problems),
    };
    let (raw, mut problems) = raw::parse(text).map_err(located)?;
    let base = match std::path::absolute(path) {
        Ok(abs) => abs.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
        Err(e) => {
            return Err(ConfigError {
                messages: vec![format!("{file}: cannot make the path absolute: {e}")],
            });
        }
    };
    let supervisor = supervisor(&raw.supervisor, &base, &mut problems);
    // Each program of the file, then its instances (or itself, placeholders filled with 0),
    // each with the index of its table in `raw.programs`.
    let mut units: Vec<(usize, Program)> = Vec::new();
    let mut instanced = BTreeMap::new();
    for (r, raw_program) in raw.programs.iter().enumerate() {
        let template = program(raw_program, &base, &mut problems);
        let (expanded, set) = expand(raw_program, template, &mut problems);
        units.extend(expanded.into_iter().map(|p| (r, p)));
        if let Some(set) = set {
            instanced.insert(set.template.name.clone(), set);
        }
    }
    // Every name a program can be addressed by (its own, or its base name) -> its base name.
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    for (_, p) in &units {
        known.insert(p.name.clone(), p.base_name().to_string());
        known.insert(p.base_name().to_string(), p.base_name().to_string());
    }
    dependencies(&raw.programs, &known, &mut problems);
    shared_log_files(&raw.programs, &units, &mut problems);
    let groups = groups(&raw, &known, &mut problems);
    if !problems.is_empty() {
        return Err(located(problems));
    }
    let mut programs: Vec<Program> = units.into_iter().map(|(_, p)| p).collect();
    programs.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    Ok(Config {
        path: path.to_path_buf(),
        supervisor,
        programs,
        groups,
        instanced,
    })
}

/// Programs by name, the instances of one program together in index order.
fn order_key(p: &Program) -> (&str, u32) {
    match &p.instance {
        Some(i) => (&i.program, i.index),
        None => (&p.name, 0),
    }
}

/// `instances` and `instance_start`: the program's instances, or the program alone (with
/// `{index}` as 0), and for instances the template they came from.
fn expand(raw: &RawProgram, template: Program, p: &mut Vec<Problem>) -> (Vec<Program>, Option<Instanced>) {
    let prefix = format!("programs.{}", raw::segment(&template.name));
    let count = raw.instances.as_ref().and_then(|v| match u32::try_from(*v.get_ref()) {
        Ok(n) if (1..=MAX_INSTANCES).contains(&n) => Some(n),
        Ok(_) | Err(_) => {
            p.push(Problem::found(
                v.span(),
                &format!("{prefix}.instances"),
                v.get_ref(),
                format!("a number of instances from 1 to {MAX_INSTANCES} (leave it out for one plain program)"),
            ));
            None
        }
    });
    let start = match &raw.instance_start {
        Some(v) if raw.instances.is_none() => {
            p.push(Problem::found(
                v.span(),
                &format!("{prefix}.instance_start"),
                format!("instance_start = {} without instances", v.get_ref()),
                "instances = N beside it (or no instance_start)",
            ));
            0
        }
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if n <= MAX_INSTANCE_START => n,
            Ok(_) | Err(_) => {
                p.push(Problem::found(
                    v.span(),
                    &format!("{prefix}.instance_start"),
                    v.get_ref(),
                    format!("the first instance's index, from 0 to {MAX_INSTANCE_START}"),
                ));
                0
            }
        },
        None => 0,
    };
    let Some(count) = count else {
        return (vec![instance_of(&template, None)], None);
    };
    if count > 1 {
        let streams = [
            ("stdout", &template.stdout, &raw.stdout),
            ("stderr", &template.stderr, &raw.stderr),
        ];
        for (stream, out, written) in streams {
            if let (Output::File(path), Some(written)) = (out, written)
                && !crate::logs::is_stream(path)
                && !placeholder::has_index(&path.to_string_lossy())
            {
                p.push(Problem::found(
                    written.span(),
                    &format!("{prefix}.{stream}"),
                    format!("{:?}, one file for {count} instances", written.get_ref()),
                    "a path with {index} in it like \"logs/worker-{index}.log\" (two instances cannot share a log file)",
                ));
            }
        }
    }
    let programs = (start..start + count)
        .map(|i| instance_of(&template, Some(i)))
        .collect();
    (programs, Some(Instanced { template, count, start }))
}

/// The program `template` stands for as instance `index` (None: the plain program itself, with
/// `{index}` as 0): its name, and its placeholders filled in.
fn instance_of(template: &Program, index: Option<u32>) -> Program {
    let mut p = template.clone();
    let n = index.unwrap_or(0);
    if let Some(i) = index {
        p.name = format!("{}@{i}", template.name);
        p.instance = Some(Instance {
            program: template.name.clone(),
            index: i,
        });
    }
    let fill = |s: &str| placeholder::substitute(s, n);
    let fill_path = |path: &Path| PathBuf::from(fill(&path.to_string_lossy()));
    p.command = p.command.iter().map(|w| fill(w)).collect();
    for value in p.environment.values_mut() {
        *value = fill(value);
    }
    p.directory = fill_path(&p.directory);
    if let Output::File(path) = &mut p.stdout {
        *path = fill_path(path);
    }
    if let Output::File(path) = &mut p.stderr {
        *path = fill_path(path);
    }
    if matches!((&p.stdout, &p.stderr), (Output::File(a), Output::File(b)) if a == b) {
        p.stderr = Output::Stdout;
    }
    p
}

/// A plain program as the file would say it: each literal `{index}` of its values escaped.
fn escaped(program: &Program) -> Program {
    let mut p = program.clone();
    let esc = |path: &Path| PathBuf::from(placeholder::escape(&path.to_string_lossy()));
    p.command = p.command.iter().map(|w| placeholder::escape(w)).collect();
    for value in p.environment.values_mut() {
        *value = placeholder::escape(value);
    }
    p.directory = esc(&p.directory);
    if let Output::File(path) = &mut p.stdout {
        *path = esc(path);
    }
    if let Output::File(path) = &mut p.stderr {
        *path = esc(path);
    }
    p
}

/// `[groups]`: valid names that no program has, members that are programs or instances.
fn groups(
    raw: &raw::RawConfig,
    known: &BTreeMap<String, String>,
    p: &mut Vec<Problem>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (name, members) in &raw.groups {
        let key = format!("groups.{}", raw::segment(name.get_ref()));
        if !super::valid_program_name(name.get_ref()) {
            p.push(Problem::found(
                name.span(),
                &key,
                format!("the group name {:?}", name.get_ref()),
                "a name of 1 to 64 letters, digits, '_', '.' or '-' (not \".\" or \"..\")",
            ));
        } else if known.contains_key(name.get_ref()) {
            p.push(Problem::found(
                name.span(),
                &key,
                format!("the group name {:?}, also the name of a program", name.get_ref()),
                "a group name that no program has",
            ));
        }
        let mut list: Vec<String> = Vec::new();
        for (i, m) in members.iter().enumerate() {
            if !known.contains_key(m.get_ref()) {
                let programs: Vec<&str> = raw.programs.iter().map(|r| r.name.get_ref().as_str()).collect();
                p.push(Problem::found(
                    m.span(),
                    &format!("{key}[{i}]"),
                    format!("{:?}", m.get_ref()),
                    format!(
                        "the name of a program or instance in this file ({})",
                        programs.join(", ")
                    ),
                ));
            } else if !list.contains(m.get_ref()) {
                list.push(m.get_ref().clone());
            }
        }
        out.insert(name.get_ref().clone(), list);
    }
    out
}

/// Turn problems into `file:line:col: key: message` lines, in file order.
fn locate(file: &str, text: &str, mut problems: Vec<Problem>) -> Vec<String> {
    problems.sort_by_key(|p| p.span.start);
    problems
        .iter()
        .map(|p| {
            let (line, col) = line_col(text, p.span.start);
            if p.key.is_empty() {
                format!("{file}:{line}:{col}: {}", p.message)
            } else {
                format!("{file}:{line}:{col}: {}: {}", p.key, p.message)
            }
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// `p` made absolute against `base`, with `.` components dropped (`..` is kept: without the
/// file system one cannot know what it means across a symlink).
pub fn absolute_from(base: &Path, p: &str) -> PathBuf {
    let joined = base.join(p);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::Prefix(_) | Component::RootDir | Component::ParentDir | Component::Normal(_) => out.push(c),
        }
    }
    out
}

fn path_value(v: &Spanned<String>, key: &str, base: &Path, expected: &str, p: &mut Vec<Problem>) -> Option<PathBuf> {
    let s = v.get_ref();
    if s.is_empty() || s.contains('\0') {
        p.push(Problem::found(v.span(), key, format!("{s:?}"), expected));
        return None;
    }
    Some(absolute_from(base, s))
}

/// A list of uids (`supervisor.KEY`), each from 0 to 4294967294.
fn uids(raw: &Option<Vec<Spanned<i64>>>, key: &str, p: &mut Vec<Problem>) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, uid) in raw.iter().flatten().enumerate() {
        match u32::try_from(*uid.get_ref()) {
            Ok(u) if u != u32::MAX => out.push(u),
            Ok(_) | Err(_) => p.push(Problem::found(
                uid.span(),
                &format!("supervisor.{key}[{i}]"),
                uid.get_ref(),
                "a uid from 0 to 4294967294",
            )),
        }
    }
    out
}

fn supervisor(raw: &RawSupervisor, base: &Path, p: &mut Vec<Problem>) -> SupervisorSettings {
    let socket = raw
        .socket
        .as_ref()
        .and_then(|v| path_value(v, "supervisor.socket", base, "a path", p))
        .unwrap_or_else(super::default_socket);
    let socket_mode = raw
        .socket_mode
        .as_ref()
        .and_then(|v| mode(v, "supervisor.socket_mode", "an octal mode like \"0600\"", p))
        .unwrap_or(0o600);
    let allow_uids = uids(&raw.allow_uids, "allow_uids", p);
    let admin_uids = uids(&raw.admin_uids, "admin_uids", p);
    let read_uids = uids(&raw.read_uids, "read_uids", p);
    let log_level = match &raw.log_level {
        Some(v) => match v.get_ref().as_str() {
            "off" | "error" | "warn" | "info" | "debug" | "trace" => {
                log::LevelFilter::from_str(v.get_ref()).unwrap_or(log::LevelFilter::Info)
            }
            other => {
                p.push(Problem::found(
                    v.span(),
                    "supervisor.log_level",
                    format!("{other:?}"),
                    "one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
                ));
                log::LevelFilter::Info
            }
        },
        None => log::LevelFilter::Info,
    };
    let logfile = match &raw.logfile {
        Some(v) if v.get_ref() == "stderr" => LogFile::Stderr,
        Some(v) => {
            path_value(v, "supervisor.logfile", base, "\"stderr\" or a path", p).map_or(LogFile::Stderr, LogFile::Path)
        }
        None => LogFile::Stderr,
    };
    let cgroup_path = match &raw.cgroup_path {
        Some(v) => {
            let s = v.get_ref();
            // SPEC: "/" alone is refused too: the programs' cgroups need a parent of their own.
            let bad = s.trim_matches('/').is_empty() || s.contains('\0') || s.split('/').any(|c| c == "..");
            if bad {
                p.push(Problem::found(
                    v.span(),
                    "supervisor.cgroup_path",
                    format!("{s:?}"),
                    "a cgroup path like \"/supervisor\" or \"programs\", not the root and without \"..\"",
                ));
            }
            s.clone()
        }
        None => "/supervisor".to_string(),
    };
    let cgroups = match &raw.cgroups {
        Some(v) => match v.get_ref().as_str() {
            "auto" => CgroupMode::Auto,
            "required" => CgroupMode::Required,
            "off" => CgroupMode::Off,
            other => {
                p.push(Problem::found(
                    v.span(),
                    "supervisor.cgroups",
                    format!("{other:?}"),
                    "one of \"auto\", \"required\", \"off\"",
                ));
                CgroupMode::Auto
            }
        },
        None => CgroupMode::Auto,
    };
    SupervisorSettings {
        socket,
        socket_mode,
        allow_uids,
        log_level,
        logfile,
        cgroup_path,
        cgroups,
        admin_uids,
        read_uids,
    }
}

fn mode(v: &Spanned<RawMode>, key: &str, expected: &str, p: &mut Vec<Problem>) -> Option<u32> {
    let parsed = match v.get_ref() {
        RawMode::Text(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(s);
            let ok = (1..=4).contains(&digits.len()) && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
            ok.then(|| u32::from_str_radix(digits, 8).ok()).flatten()
        }
        RawMode::Integer { value, radix: 8 } => u32::try_from(*value).ok(),
        // 0 is 0 in any radix.
        RawMode::Integer { value: 0, .. } => Some(0),
        RawMode::Integer { .. } => None,
    };
    match parsed {
        Some(m) if m <= 0o777 => Some(m),
        Some(_) | None => {
            let found = match v.get_ref() {
                RawMode::Text(s) => format!("{s:?}"),
                RawMode::Integer { value, radix: 8 } => format!("0o{value:o}"),
                RawMode::Integer { value, .. } => value.to_string(),
            };
            p.push(Problem::found(v.span(), key, found, expected));
            None
        }
    }
}

/// One program, every default filled in. With problems, the result is a placeholder that is
/// never used: only the problems count then.
fn program(raw: &RawProgram, base: &Path, p: &mut Vec<Problem>) -> Program {
    let name = raw.name.get_ref().clone();
    let prefix = format!("programs.{}", raw::segment(&name));
    let key = |field: &str| format!("{prefix}.{field}");
    if !super::valid_program_name(&name) {
        p.push(Problem::found(
            raw.name.span(),
            &prefix,
            format!("the program name {name:?}"),
            "a name of 1 to 64 letters, digits, '_', '.' or '-' (not \".\" or \"..\")",
        ));
    } else if let Some(why) = super::cgroup_reserved(&name) {
        p.push(Problem::found(
            raw.name.span(),
            &prefix,
            format!("the program name {name:?} ({why}; each program gets a cgroup of its name)"),
            "another name, for example with '_' instead of '.'",
        ));
    }
    no_nul(raw, &key, p);
    let command = match &raw.command {
        Some(c) => command(c, &key("command"), base, p),
        None => {
            if !raw.command_written {
                p.push(Problem::found(
                    raw.name.span(),
                    &prefix,
                    "no command",
                    "a command = \"...\" for every program",
                ));
            }
            None
        }
    };
    let mut program = Program::with_defaults(&name, command.unwrap_or_default(), base);
    if let Some(dir) = raw
        .directory
        .as_ref()
        .and_then(|d| expanded(d, &key("directory"), p))
        .and_then(|d| path_value(&d, &key("directory"), base, "a directory", p))
    {
        program.directory = dir;
    }
    // SPEC: the files in order, then `environment` over them.
    let files = raw.environment_file.as_deref().unwrap_or_default();
    for (i, f) in files.iter().enumerate() {
        let file_key = if files.len() > 1 {
            format!("{}[{i}]", key("environment_file"))
        } else {
            key("environment_file")
        };
        for (k, v) in environment_file(f, &file_key, base, p) {
            program.environment.insert(k, v);
        }
    }
    for (k, v) in &raw.environment {
        let var_key = format!("{}.{}", key("environment"), raw::segment(k.get_ref()));
        if k.get_ref().is_empty() || k.get_ref().contains(['=', '\0']) {
            p.push(Problem::found(
                k.span(),
                &var_key,
                format!("the variable name {:?}", k.get_ref()),
                "a name without '=' or NUL",
            ));
        } else if v.get_ref().contains('\0') {
            p.push(Problem::found(
                v.span(),
                &var_key,
                format!("{:?}", v.get_ref()),
                "a string without NUL",
            ));
        } else if let Some(v) = expanded(v, &var_key, p) {
            program.environment.insert(k.get_ref().clone(), v.into_inner());
        }
    }
    program.user = id_name(raw.user.as_ref(), &key("user"), "a user name or uid", p);
    program.group = id_name(raw.group.as_ref(), &key("group"), "a group name or gid", p);
    if let Some(v) = &raw.autostart {
        program.autostart = *v.get_ref();
    }
    if let Some(v) = &raw.autorestart {
        match RestartPolicy::parse(v.get_ref()) {
            Some(policy) => program.autorestart = policy,
            None => p.push(Problem::found(
                v.span(),
                &key("autorestart"),
                format!("{:?}", v.get_ref()),
                "one of \"never\", \"on-failure\", \"always\"",
            )),
        }
    }
    if let Some(codes) = &raw.exit_codes {
        program.exit_codes.clear();
        for (i, c) in codes.iter().enumerate() {
            match i32::try_from(*c.get_ref()) {
                Ok(code) if (0..=255).contains(&code) => program.exit_codes.push(code),
                Ok(_) | Err(_) => p.push(Problem::found(
                    c.span(),
                    &format!("{}[{i}]", key("exit_codes")),
                    c.get_ref(),
                    "an exit code from 0 to 255",
                )),
            }
        }
    }
    if let Some(d) = duration(raw.min_uptime.as_ref(), &key("min_uptime"), p) {
        program.min_uptime = d;
    }
    let restart_delay = duration(raw.restart_delay.as_ref(), &key("restart_delay"), p);
    if let Some(d) = restart_delay {
        program.restart_delay = d;
    }
    match (
        &raw.max_restart_delay,
        duration(raw.max_restart_delay.as_ref(), &key("max_restart_delay"), p),
    ) {
        (Some(v), Some(max)) => {
            if max < program.restart_delay {
                p.push(Problem::found(
                    v.span(),
                    &key("max_restart_delay"),
                    format!("{:?}", v.get_ref()),
                    format!(
                        "at least restart_delay ({})",
                        humantime::format_duration(program.restart_delay)
                    ),
                ));
            }
            program.max_restart_delay = max;
        }
        // Written but invalid: already reported.
        (Some(_), None) => {}
        (None, _) => program.max_restart_delay = program.max_restart_delay.max(program.restart_delay),
    }
    if let Some(v) = &raw.max_restarts {
        match u32::try_from(*v.get_ref()) {
            Ok(n) => program.max_restarts = n,
            Err(_) => p.push(Problem::found(
                v.span(),
                &key("max_restarts"),
                v.get_ref(),
                "a number of restarts from 0 to 4294967295",
            )),
        }
    }
    if let Some(v) = &raw.start_limit_burst {
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n <= 1_000_000 => program.start_limit_burst = n,
            _ => p.push(Problem::found(
                v.span(),
                &key("start_limit_burst"),
                v.get_ref(),
                "a number of failed runs from 0 (no limit) to 1000000",
            )),
        }
    }
    match (
        &raw.start_limit_interval,
        duration(raw.start_limit_interval.as_ref(), &key("start_limit_interval"), p),
    ) {
        (Some(v), Some(d)) if d.is_zero() => p.push(Problem::found(
            v.span(),
            &key("start_limit_interval"),
            format!("{:?}", v.get_ref()),
            "a duration above zero like \"60s\" (start_limit_burst = 0 turns the limit off)",
        )),
        (_, Some(d)) => program.start_limit_interval = d,
        (_, None) => {}
    }
    if let Some(v) = &raw.stop_signal {
        let parsed = match v.get_ref() {
            RawSignal::Name(s) => Signal::parse(s).filter(|_| !s.trim().is_empty()),
            RawSignal::Number(n) => i32::try_from(*n).ok().and_then(|n| Signal::parse(&n.to_string())),
        };
        match parsed {
            Some(sig) => program.stop_signal = sig,
            None => {
                let found = match v.get_ref() {
                    RawSignal::Name(s) => format!("{s:?}"),
                    RawSignal::Number(n) => n.to_string(),
                };
                p.push(Problem::found(
                    v.span(),
                    &key("stop_signal"),
                    found,
                    "a signal name like \"TERM\" or \"SIGHUP\", or a number from 1 to 64",
                ));
            }
        }
    }
    if let Some(d) = duration(raw.stop_timeout.as_ref(), &key("stop_timeout"), p) {
        program.stop_timeout = d;
    }
    if let Some(v) = &raw.memory_limit {
        match size(v, &key("memory_limit"), p) {
            Some(0) => p.push(Problem::found(
                v.span(),
                &key("memory_limit"),
                "0",
                "a size above 0 (leave it out for no limit)",
            )),
            Some(n) => program.memory_limit = Some(n),
            None => {}
        }
    }
    if let Some(v) = &raw.cpu_limit {
        let cpus = *v.get_ref();
        if cpus.is_finite() && cpus > 0.0 {
            program.cpu_limit = Some(cpus);
        } else {
            p.push(Problem::found(
                v.span(),
                &key("cpu_limit"),
                cpus,
                "a number of CPUs above 0 like 0.5 (leave it out for no limit)",
            ));
        }
    }
    if let Some(v) = &raw.pids_limit {
        match u64::try_from(*v.get_ref()) {
            Ok(n) if n > crate::control::protocol::MAX_PIDS => p.push(Problem::found(
                v.span(),
                &key("pids_limit"),
                n,
                format!(
                    "at most {} (the kernel's pid_max limit; leave it out for no limit)",
                    crate::control::protocol::MAX_PIDS
                ),
            )),
            Ok(n) if n > 0 => program.pids_limit = Some(n),
            Ok(_) | Err(_) => p.push(Problem::found(
                v.span(),
                &key("pids_limit"),
                v.get_ref(),
                "a number of processes above 0 like 256 (leave it out for no limit)",
            )),
        }
    }
    let stdout = raw.stdout.as_ref().and_then(|v| expanded(v, &key("stdout"), p));
    if let Some(out) = output(stdout.as_ref(), &key("stdout"), base, false, p) {
        program.stdout = out;
    }
    let stderr = raw.stderr.as_ref().and_then(|v| expanded(v, &key("stderr"), p));
    if let Some(err) = output(stderr.as_ref(), &key("stderr"), base, true, p) {
        program.stderr = err;
    }
    if matches!((&program.stdout, &program.stderr), (Output::File(a), Output::File(b)) if a == b) {
        program.stderr = Output::Stdout;
    }
    if let Some(n) = raw
        .log_max_bytes
        .as_ref()
        .and_then(|v| size(v, &key("log_max_bytes"), p))
    {
        program.log_max_bytes = n;
    }
    if let Some(v) = &raw.log_backups {
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n <= super::MAX_LOG_BACKUPS => program.log_backups = n,
            _ => p.push(Problem::found(
                v.span(),
                &key("log_backups"),
                v.get_ref(),
                format!("a number of files from 0 to {}", super::MAX_LOG_BACKUPS),
            )),
        }
    }
    if let Some(v) = &raw.log_timestamps {
        program.log_timestamps = *v.get_ref();
    }
    for dep in raw.depends_on.iter().flatten() {
        // SPEC: a name written twice counts once.
        if !program.depends_on.contains(dep.get_ref()) {
            program.depends_on.push(dep.get_ref().clone());
        }
    }
    if let Some(v) = &raw.agent {
        program.agent = path_value(v, &key("agent"), base, "the path of an agent socket", p);
    }
    process_settings(raw, &mut program, &key, p);
    if let Some(r) = raw
        .readiness
        .as_ref()
        .and_then(|v| super::probe::readiness(v, &key("readiness"), p))
    {
        program.readiness = r;
    }
    match (
        &raw.start_timeout,
        duration(raw.start_timeout.as_ref(), &key("start_timeout"), p),
    ) {
        (Some(v), Some(d)) if d.is_zero() => p.push(Problem::found(
            v.span(),
            &key("start_timeout"),
            format!("{:?}", v.get_ref()),
            "a duration above zero like \"90s\"",
        )),
        (_, Some(d)) => program.start_timeout = d,
        (_, None) => {}
    }
    program.liveness = raw
        .liveness
        .as_ref()
        .and_then(|v| super::probe::liveness(v, &key("liveness"), p));
    match (&raw.watchdog, duration(raw.watchdog.as_ref(), &key("watchdog"), p)) {
        (Some(v), Some(d)) if d.is_zero() || program.readiness != super::probe::Readiness::Notify => {
            p.push(Problem::found(
                v.span(),
                &key("watchdog"),
                format!("{:?}", v.get_ref()),
                "a duration above zero like \"30s\", with readiness = \"notify\"",
            ))
        }
        (_, Some(d)) => program.watchdog = Some(d),
        (_, None) => {}
    }
    program.depends_completed = raw.depends_completed.iter().map(|n| n.get_ref().clone()).collect();
    // An agent's program lives in another mount (and PID) namespace: a notify socket or a pipe
    // of holden's cannot reach it, and an exec probe would run here, not beside it.
    if program.agent.is_some() {
        use super::probe::{Check, Readiness};
        let exec = |p: &Option<&super::probe::Probe>| p.is_some_and(|p| matches!(p.check, Check::Exec(_)));
        let readiness_probe = match &program.readiness {
            Readiness::Probe(p) => Some(p),
            _ => None,
        };
        if let Some(v) = &raw.readiness
            && (matches!(program.readiness, Readiness::Notify | Readiness::Fd(_)) || exec(&readiness_probe))
        {
            p.push(Problem::found(
                v.span(),
                &key("readiness"),
                "a way that cannot reach a program spawned through an agent",
                "\"uptime\", a tcp or an http probe with agent",
            ));
        }
        if let Some(v) = &raw.liveness
            && exec(&program.liveness.as_ref())
        {
            p.push(Problem::found(
                v.span(),
                &key("liveness"),
                "an exec probe",
                "a tcp or an http probe with agent (an exec probe would run beside holden, not the program)",
            ));
        }
    }
    program
}

/// `v` with `${VAR}` expanded from holden's environment; the problem names the variable.
fn expanded(v: &Spanned<String>, key: &str, p: &mut Vec<Problem>) -> Option<Spanned<String>> {
    expand_text(v.get_ref(), v.span(), key, p).map(|s| Spanned::new(v.span(), s))
}

fn expand_text(s: &str, span: raw::Span, key: &str, p: &mut Vec<Problem>) -> Option<String> {
    match vars::expand(s, &vars::process_env) {
        Ok(s) => Some(s),
        Err(e) => {
            p.push(Problem::found(span, key, e, vars::EXPECTED));
            None
        }
    }
}

/// The assignments of one `environment_file` entry: `${VAR}` expanded in its path, relative to
/// the config's folder, a leading `-` for "missing is fine". Each problem names the file and
/// its line besides the config's own place.
fn environment_file(v: &Spanned<String>, key: &str, base: &Path, p: &mut Vec<Problem>) -> Vec<(String, String)> {
    const EXPECTED: &str = "a readable file of KEY=value lines (a leading '-' makes a missing file fine)";
    let (optional, written) = match v.get_ref().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.get_ref().as_str()),
    };
    let Some(text) = expand_text(written, v.span(), key, p) else {
        return Vec::new();
    };
    let Some(path) = path_value(&Spanned::new(v.span(), text), key, base, EXPECTED, p) else {
        return Vec::new();
    };
    let content = match read_env_file(&path) {
        Ok(c) => c,
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            p.push(Problem::found(
                v.span(),
                key,
                format!("{}, which cannot be read: {}", path.display(), io_reason(&e)),
                EXPECTED,
            ));
            return Vec::new();
        }
    };
    match envfile::parse(&content) {
        Ok(pairs) => pairs,
        Err(e) => {
            p.push(Problem::found(
                v.span(),
                key,
                format!("{}:{}: {}", path.display(), e.line, e.message),
                "KEY=value lines, # comments and blank lines (quotes as in systemd's EnvironmentFile)",
            ));
            Vec::new()
        }
    }
}

/// The most an environment file may hold.
pub const ENV_FILE_MAX: u64 = 1 << 20;

/// An environment file's text. Only a regular file of at most `ENV_FILE_MAX` bytes: the file is
/// read inside holden's loop at a reload, where a FIFO with no writer (or `/dev/zero`) would
/// block or never end. Opened non-blocking, so that opening a FIFO does not wait either.
fn read_env_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if meta.len() > ENV_FILE_MAX {
        return Err(std::io::Error::other(format!(
            "it is larger than {} bytes",
            ENV_FILE_MAX
        )));
    }
    let mut text = String::new();
    file.take(ENV_FILE_MAX + 1).read_to_string(&mut text)?;
    Ok(text)
}

/// umask, nice, oom_score_adj and rlimits.
fn process_settings(raw: &RawProgram, program: &mut Program, key: &dyn Fn(&str) -> String, p: &mut Vec<Problem>) {
    if let Some(v) = &raw.umask {
        program.umask = mode(
            v,
            &key("umask"),
            "an octal umask like \"027\" or 0o027, at most 0777",
            p,
        );
    }
    if let Some(v) = &raw.nice {
        match i32::try_from(*v.get_ref()) {
            Ok(n) if (-20..=19).contains(&n) => program.nice = Some(n),
            Ok(_) | Err(_) => p.push(Problem::found(
                v.span(),
                &key("nice"),
                v.get_ref(),
                "a niceness from -20 to 19",
            )),
        }
    }
    if let Some(v) = &raw.oom_score_adj {
        match i32::try_from(*v.get_ref()) {
            Ok(n) if (-1000..=1000).contains(&n) => program.oom_score_adj = Some(n),
            Ok(_) | Err(_) => p.push(Problem::found(
                v.span(),
                &key("oom_score_adj"),
                v.get_ref(),
                "an OOM score adjustment from -1000 to 1000",
            )),
        }
    }
    for (name, value) in &raw.rlimits {
        let limit_key = format!("{}.{}", key("rlimits"), raw::segment(name.get_ref()));
        let Some(&(known, bytes)) = RLIMITS.iter().find(|(n, _)| *n == name.get_ref()) else {
            let names: Vec<&str> = RLIMITS.iter().map(|(n, _)| *n).collect();
            p.push(Problem::found(
                name.span(),
                &limit_key,
                format!("the unknown limit {:?}", name.get_ref()),
                format!("one of {}", names.join(", ")),
            ));
            continue;
        };
        let (soft, hard) = match value.get_ref() {
            RawRlimit::Both(l) => {
                let v = limit_value(&Spanned::new(value.span(), l.clone()), &limit_key, bytes, p);
                (v, v)
            }
            RawRlimit::Pair { soft, hard } => (
                limit_value(soft, &format!("{limit_key}.soft"), bytes, p),
                limit_value(hard, &format!("{limit_key}.hard"), bytes, p),
            ),
        };
        let (Some(soft), Some(hard)) = (soft, hard) else {
            continue;
        };
        let show = |l: Option<u64>| l.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
        if soft.unwrap_or(u64::MAX) > hard.unwrap_or(u64::MAX) {
            p.push(Problem::found(
                value.span(),
                &limit_key,
                format!("the soft limit {} above the hard limit {}", show(soft), show(hard)),
                "a soft limit at most the hard one",
            ));
            continue;
        }
        // The kernel refuses a nofile limit above fs.nr_open (and "unlimited" is above it).
        if known == "nofile"
            && let Some(max) = nr_open()
            && hard.is_none_or(|h| h > max)
        {
            p.push(Problem::found(
                value.span(),
                &limit_key,
                format!("{}, above this kernel's fs.nr_open ({max})", show(hard)),
                format!("a number of files up to {max}"),
            ));
            continue;
        }
        program.rlimits.push(Rlimit {
            name: known,
            soft,
            hard,
        });
    }
    if let Some(agent) = &raw.agent {
        let settings = [
            ("umask", raw.umask.as_ref().map(Spanned::span)),
            ("nice", raw.nice.as_ref().map(Spanned::span)),
            ("oom_score_adj", raw.oom_score_adj.as_ref().map(Spanned::span)),
            ("rlimits", raw.rlimits.first().map(|(n, _)| n.span())),
        ];
        for (setting, span) in settings {
            if let Some(span) = span {
                p.push(Problem::found(
                    span,
                    &key(setting),
                    format!("{setting} on a program spawned through the agent {:?}", agent.get_ref()),
                    "no umask, nice, oom_score_adj or rlimits with agent (the agent protocol does not carry them: set them on the agent itself)",
                ));
            }
        }
    }
}

/// `/proc/sys/fs/nr_open`, the most open files any process may be allowed.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// One limit: `Some(None)` for unlimited, `Some(Some(n))` for a number, `None` after a problem.
fn limit_value(v: &Spanned<RawLimit>, key: &str, bytes: bool, p: &mut Vec<Problem>) -> Option<Option<u64>> {
    let parsed = match v.get_ref() {
        RawLimit::Number(n) => u64::try_from(*n).ok().map(Some),
        RawLimit::Text(t) => {
            let t = t.trim();
            if t == "unlimited" || t == "infinity" {
                Some(None)
            } else if let Ok(n) = t.parse::<u64>() {
                Some(Some(n))
            } else if bytes && !t.starts_with(['-', '+']) {
                bytesize::ByteSize::from_str(t).ok().map(|b| Some(b.as_u64()))
            } else {
                None
            }
        }
    };
    match parsed {
        // RLIM_INFINITY is all ones: the same as unlimited.
        Some(Some(u64::MAX)) => Some(None),
        Some(l) => Some(l),
        None => {
            let found = match v.get_ref() {
                RawLimit::Number(n) => n.to_string(),
                RawLimit::Text(t) => format!("{t:?}"),
            };
            let expected = if bytes {
                "a number of bytes, a size like \"64MiB\", or \"unlimited\""
            } else {
                "a number or \"unlimited\""
            };
            p.push(Problem::found(v.span(), key, found, expected));
            None
        }
    }
}

/// `NAME=value` with NAME a shell variable name.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// SPEC: a relative program path with a `/` in it (`bin/server`) is a path in the file, so it
/// is made absolute against the config's folder, like every other path, whatever `directory`
/// is (std leaves a relative program with another working directory unspecified). A bare name
/// (`python3`) is looked up in `PATH` when spawned.
fn argv_from(base: &Path, mut argv: Vec<String>) -> Vec<String> {
    if argv[0].contains('/') && !argv[0].starts_with('/') {
        argv[0] = absolute_from(base, &argv[0]).display().to_string();
    }
    argv
}

fn command(c: &Spanned<RawCommand>, key: &str, base: &Path, p: &mut Vec<Problem>) -> Option<Vec<String>> {
    match c.get_ref() {
        RawCommand::Line(line) => match words::split(line) {
            // SPEC: a shell would take a leading `NAME=value` as a variable for the command;
            // holden runs no shell, so it says where variables go instead of running `NAME=value`.
            Ok(argv) if argv.first().is_some_and(|w| is_assignment(w)) => {
                p.push(Problem::found(
                    c.span(),
                    key,
                    format!("the variable assignment {:?} in {line:?}", argv[0]),
                    "a command line that starts with the program (set variables with environment = { NAME = \"value\" })",
                ));
                None
            }
            // SPEC (docs/config.md): `${VAR}` is expanded in each word after the split, so a
            // value with blanks stays one word and its quotes are not read again.
            Ok(argv) if argv.first().is_some_and(|w| !w.is_empty()) => {
                let before = p.len();
                let argv: Vec<String> = argv.iter().filter_map(|w| expand_text(w, c.span(), key, p)).collect();
                (p.len() == before).then(|| argv_from(base, argv))
            }
            Ok(_) => {
                p.push(Problem::found(
                    c.span(),
                    key,
                    format!("{line:?}"),
                    "a command line that names a program",
                ));
                None
            }
            Err(e) => {
                p.push(Problem::found(
                    c.span(),
                    key,
                    format!("{e} in {line:?}"),
                    "a command line split like a shell would, without running one (write [\"sh\", \"-c\", \"...\"] to run a shell)",
                ));
                None
            }
        },
        RawCommand::Argv(argv) => match argv.first() {
            Some(first) if !first.get_ref().is_empty() => {
                let before = p.len();
                let words: Vec<String> = argv
                    .iter()
                    .enumerate()
                    .filter_map(|(i, a)| expand_text(a.get_ref(), a.span(), &format!("{key}[{i}]"), p))
                    .collect();
                (p.len() == before).then(|| argv_from(base, words))
            }
            Some(first) => {
                p.push(Problem::found(
                    first.span(),
                    &format!("{key}[0]"),
                    "\"\"",
                    "the program to run",
                ));
                None
            }
            None => {
                p.push(Problem::found(
                    c.span(),
                    key,
                    "[]",
                    "an array that names a program like [\"sleep\", \"10\"]",
                ));
                None
            }
        },
    }
}

fn id_name(v: Option<&Spanned<String>>, key: &str, expected: &str, p: &mut Vec<Problem>) -> Option<String> {
    let v = v?;
    let s = v.get_ref();
    if s.is_empty() || s.contains(['\0', ':', '\n']) {
        p.push(Problem::found(v.span(), key, format!("{s:?}"), expected));
        return None;
    }
    Some(s.clone())
}

/// SPEC: a duration needs its unit; a bare `10` is refused (seconds? milliseconds?).
fn duration(v: Option<&Spanned<String>>, key: &str, p: &mut Vec<Problem>) -> Option<Duration> {
    let v = v?;
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) => Some(d),
        Err(_) => {
            p.push(Problem::found(
                v.span(),
                key,
                format!("{:?}", v.get_ref()),
                raw::DURATION,
            ));
            None
        }
    }
}

/// A NUL byte cannot be passed to exec, nor be in a path: refuse it in the command, the
/// directory, the user and the group, where `run` would fail to spawn.
fn no_nul(raw: &RawProgram, key: &dyn Fn(&str) -> String, p: &mut Vec<Problem>) {
    let mut check = |span: raw::Span, k: String, v: &str| {
        if v.contains('\0') {
            p.push(Problem::found(
                span,
                &k,
                format!("{v:?}, with a NUL byte"),
                "text without NUL bytes (exec and paths cannot carry them)",
            ));
        }
    };
    if let Some(c) = &raw.command {
        match c.get_ref() {
            RawCommand::Line(line) => check(c.span(), key("command"), line),
            RawCommand::Argv(argv) => {
                for (i, a) in argv.iter().enumerate() {
                    check(a.span(), key(&format!("command[{i}]")), a.get_ref());
                }
            }
        }
    }
    // The environment is checked where it is resolved.
    for (field, v) in [
        ("directory", &raw.directory),
        ("user", &raw.user),
        ("group", &raw.group),
    ] {
        if let Some(v) = v {
            check(v.span(), key(field), v.get_ref());
        }
    }
}

fn size(v: &Spanned<RawSize>, key: &str, p: &mut Vec<Problem>) -> Option<u64> {
    let parsed = match v.get_ref() {
        RawSize::Bytes(n) => u64::try_from(*n).ok(),
        RawSize::Text(s) => {
            let t = s.trim();
            // bytesize accepts an empty number ("MB") as an error already; refuse a sign here.
            if t.starts_with(['-', '+']) {
                None
            } else {
                // bytesize saturates what overflows at u64::MAX: "99999999TiB" is not 16 EiB.
                bytesize::ByteSize::from_str(t)
                    .ok()
                    .map(|b| b.as_u64())
                    .filter(|&n| n != u64::MAX)
            }
        }
    };
    if parsed.is_none() {
        let found = match v.get_ref() {
            RawSize::Bytes(n) => n.to_string(),
            RawSize::Text(s) => format!("{s:?}"),
        };
        p.push(Problem::found(v.span(), key, found, raw::SIZE));
    }
    parsed
}

fn output(
    v: Option<&Spanned<String>>,
    key: &str,
    base: &Path,
    is_stderr: bool,
    p: &mut Vec<Problem>,
) -> Option<Output> {
    let v = v?;
    let expected = if is_stderr { raw::STDERR } else { raw::STDOUT };
    match v.get_ref().as_str() {
        "inherit" => Some(Output::Inherit),
        "null" => Some(Output::Null),
        "stdout" if is_stderr => Some(Output::Stdout),
        "stdout" => {
            p.push(Problem::found(
                v.span(),
                key,
                "\"stdout\"",
                format!("{expected} (stdout cannot go to itself)"),
            ));
            None
        }
        _ => path_value(v, key, base, expected, p).map(Output::File),
    }
}

/// Two programs cannot write the same log file: each rotates its own files, and two
/// rotating one file would lose lines. (One program's stdout and stderr may share one.) A
/// stream (`/dev/stdout` in a container, a FIFO: `logs::is_stream`) is never rotated, and any
/// number of programs may write there, each line whole.
fn shared_log_files(raw: &[RawProgram], programs: &[(usize, Program)], p: &mut Vec<Problem>) {
    let mut owner: BTreeMap<&Path, &str> = BTreeMap::new();
    for (r, prog) in programs {
        let r = &raw[*r];
        let streams = [("stdout", &prog.stdout, &r.stdout), ("stderr", &prog.stderr, &r.stderr)];
        for (stream, out, written) in streams {
            let (Output::File(path), Some(written)) = (out, written) else {
                continue;
            };
            if crate::logs::is_stream(path) {
                continue;
            }
            match owner.get(path.as_path()) {
                // Instances that share a file are reported once, by `expand`.
                Some(_) if p.iter().any(|q| q.span == written.span()) => {}
                Some(other) if *other != prog.name => p.push(Problem::found(
                    written.span(),
                    &format!("programs.{}.{stream}", raw::segment(prog.base_name())),
                    format!("{:?}, the log file of {other}", written.get_ref()),
                    "a file that no other program writes to",
                )),
                Some(_) => {}
                None => {
                    owner.insert(path, &prog.name);
                }
            }
        }
    }
}

/// `depends_on`: every name known, none itself, no cycle (each cycle named once).
/// A name may be a program, the base name of one with instances (all of them), or one instance.
fn dependencies(programs: &[RawProgram], known: &BTreeMap<String, String>, p: &mut Vec<Problem>) {
    let names: BTreeSet<&str> = programs.iter().map(|r| r.name.get_ref().as_str()).collect();
    // name -> [(dependency, span of its mention)], only the edges that are fine on their own.
    let mut edges: BTreeMap<&str, Vec<(&str, raw::Span)>> = BTreeMap::new();
    for prog in programs {
        let name = prog.name.get_ref().as_str();
        let key = format!("programs.{}.depends_on", raw::segment(name));
        for (i, dep) in prog.depends_on.iter().flatten().enumerate() {
            let dep_key = format!("{key}[{i}]");
            let Some(d) = known.get(dep.get_ref()).map(String::as_str) else {
                p.push(Problem::found(
                    dep.span(),
                    &dep_key,
                    format!("{:?}", dep.get_ref()),
                    format!(
                        "the name of a program in this file ({})",
                        names.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
                continue;
            };
            if d == name {
                p.push(Problem::found(
                    dep.span(),
                    &dep_key,
                    format!("{:?}", dep.get_ref()),
                    "the name of another program (a program cannot depend on itself)",
                ));
            } else if names.contains(d) {
                edges.entry(name).or_default().push((d, dep.span()));
            }
        }
    }
    for cycle in cycles(&edges) {
        let first = cycle[0];
        let span = edges[first]
            .iter()
            .find(|(d, _)| *d == cycle[1])
            .map_or(0..0, |(_, s)| s.clone());
        p.push(Problem::found(
            span,
            &format!("programs.{}.depends_on", raw::segment(first)),
            format!("the dependency cycle {}", cycle.join(" -> ")),
            "programs that do not depend on each other in a circle",
        ));
    }
}

/// Every distinct cycle of the graph, each as `[a, b, ..., a]` starting at its smallest name.
fn cycles<'a>(edges: &BTreeMap<&'a str, Vec<(&'a str, raw::Span)>>) -> Vec<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<(&'a str, raw::Span)>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        found: &mut BTreeSet<Vec<&'a str>>,
    ) {
        marks.insert(node, Mark::Active);
        stack.push(node);
        for (next, _) in edges.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Active) => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut ring: Vec<&str> = stack[start..].to_vec();
                    let min = ring.iter().enumerate().min_by_key(|(_, n)| **n).map_or(0, |(i, _)| i);
                    ring.rotate_left(min);
                    ring.push(ring[0]);
                    found.insert(ring);
                }
                Some(Mark::Done) => {}
                None => visit(next, edges, marks, stack, found),
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = BTreeSet::new();
    for node in edges.keys() {
        if !marks.contains_key(node) {
            visit(node, edges, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found.into_iter().collect()
}

/// The resolved programs as `holden check` prints them, every default filled in: a TOML file
/// that means the same as the one read.
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    let s = &config.supervisor;
    let _ = writeln!(
        out,
        "# {}: valid. Every setting resolved: defaults filled in, paths absolute.",
        config.path.display()
    );
    let _ = writeln!(out, "\n[supervisor]");
    let _ = writeln!(out, "socket = {}", quote(&s.socket.display().to_string()));
    let _ = writeln!(out, "socket_mode = \"{:04o}\"", s.socket_mode);
    for (key, list) in [
        ("read_uids", &s.read_uids),
        ("allow_uids", &s.allow_uids),
        ("admin_uids", &s.admin_uids),
    ] {
        let uids: Vec<String> = list.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "{key} = [{}]", uids.join(", "));
    }
    let _ = writeln!(out, "log_level = \"{}\"", s.log_level.as_str().to_ascii_lowercase());
    let logfile = match &s.logfile {
        LogFile::Stderr => "stderr".to_string(),
        LogFile::Path(p) => p.display().to_string(),
    };
    let _ = writeln!(out, "logfile = {}", quote(&logfile));
    let _ = writeln!(out, "cgroup_path = {}", quote(&s.cgroup_path));
    let cgroups = match s.cgroups {
        CgroupMode::Auto => "auto",
        CgroupMode::Required => "required",
        CgroupMode::Off => "off",
    };
    let _ = writeln!(out, "cgroups = \"{cgroups}\"");
    for p in &config.programs {
        match &p.instance {
            None => {
                render_program(&mut out, &escaped(p));
                let _ = writeln!(out, "# instances: not set (one process)");
            }
            Some(i) => {
                if let Some(set) = config.instanced.get(&i.program).filter(|set| set.start == i.index) {
                    render_program(&mut out, &set.template);
                    let _ = writeln!(out, "instances = {}", set.count);
                    let _ = writeln!(
                        out,
                        "instance_start = {}  # {}@{} to {}@{}",
                        set.start,
                        i.program,
                        set.start,
                        i.program,
                        set.start + set.count - 1
                    );
                }
            }
        }
    }
    if !config.groups.is_empty() {
        let _ = writeln!(out, "\n[groups]");
        for (name, members) in &config.groups {
            let members: Vec<String> = members.iter().map(|m| quote(m)).collect();
            let _ = writeln!(out, "{} = [{}]", raw::segment(name), members.join(", "));
        }
    }
    out
}

fn render_program(out: &mut String, p: &Program) {
    let _ = writeln!(out, "\n[programs.{}]", raw::segment(&p.name));
    if let Some(agent) = &p.agent {
        let _ = writeln!(
            out,
            "# Spawned through the agent at {}: memory_limit, cpu_limit, pids_limit, stdout and stderr\n\
             # do not apply to it (the agent's own cgroup and output hold).",
            agent.display()
        );
    }
    // Values are shown expanded, with `$` doubled where it would be read as `$$` or `${`, so
    // that the text reads back the same; `environment` includes what environment_file gave.
    let argv: Vec<String> = p.command.iter().map(|a| quote_expanded(a)).collect();
    let _ = writeln!(out, "command = [{}]", argv.join(", "));
    let _ = writeln!(
        out,
        "directory = {}",
        quote_expanded(&p.directory.display().to_string())
    );
    let env: Vec<String> = p
        .environment
        .iter()
        .map(|(k, v)| format!("{} = {}", raw::segment(k), quote_expanded(v)))
        .collect();
    if env.is_empty() {
        let _ = writeln!(out, "environment = {{}}");
    } else {
        let _ = writeln!(out, "environment = {{ {} }}", env.join(", "));
    }
    optional(out, "user", p.user.as_deref().map(quote), "run as holden's own user");
    optional(out, "group", p.group.as_deref().map(quote), "the user's group");
    let _ = writeln!(out, "autostart = {}", p.autostart);
    let _ = writeln!(out, "autorestart = \"{}\"", p.autorestart.as_str());
    let codes: Vec<String> = p.exit_codes.iter().map(i32::to_string).collect();
    let _ = writeln!(out, "exit_codes = [{}]", codes.join(", "));
    let _ = writeln!(out, "min_uptime = \"{}\"", humantime::format_duration(p.min_uptime));
    let _ = writeln!(
        out,
        "restart_delay = \"{}\"",
        humantime::format_duration(p.restart_delay)
    );
    let _ = writeln!(
        out,
        "max_restart_delay = \"{}\"",
        humantime::format_duration(p.max_restart_delay)
    );
    let _ = writeln!(out, "max_restarts = {}", p.max_restarts);
    let _ = writeln!(out, "start_limit_burst = {}", p.start_limit_burst);
    let _ = writeln!(
        out,
        "start_limit_interval = \"{}\"",
        humantime::format_duration(p.start_limit_interval)
    );
    let _ = writeln!(out, "stop_signal = \"{}\"", p.stop_signal.name());
    let _ = writeln!(out, "stop_timeout = \"{}\"", humantime::format_duration(p.stop_timeout));
    optional(
        out,
        "memory_limit",
        p.memory_limit.map(|b| format!("{b}  # {}", crate::size::limit_size(b))),
        "no limit",
    );
    optional(out, "cpu_limit", p.cpu_limit.map(|c| format!("{c:?}")), "no limit");
    optional(out, "pids_limit", p.pids_limit.map(|n| n.to_string()), "no limit");
    let _ = writeln!(out, "stdout = {}", output_text(&p.stdout));
    let stderr = match (&p.stderr, &p.stdout) {
        (Output::Stdout, Output::File(_)) => format!(
            "{}  # the same file: lines interleaved in order",
            output_text(&p.stdout)
        ),
        (Output::Stdout, Output::Inherit | Output::Null | Output::Stdout) => "\"stdout\"".to_string(),
        (Output::File(_) | Output::Inherit | Output::Null, _) => output_text(&p.stderr),
    };
    let _ = writeln!(out, "stderr = {stderr}");
    if p.log_max_bytes == 0 {
        let _ = writeln!(out, "log_max_bytes = 0  # never rotate");
    } else {
        let _ = writeln!(
            out,
            "log_max_bytes = {}  # {}",
            p.log_max_bytes,
            crate::size::limit_size(p.log_max_bytes)
        );
    }
    let _ = writeln!(out, "log_backups = {}", p.log_backups);
    let _ = writeln!(out, "log_timestamps = {}", p.log_timestamps);
    if p.depends_completed.is_empty() {
        let deps: Vec<String> = p.depends_on.iter().map(|d| quote(d)).collect();
        let _ = writeln!(out, "depends_on = [{}]", deps.join(", "));
    } else {
        let deps: Vec<String> = p
            .depends_on
            .iter()
            .map(|d| {
                let how = if p.depends_completed.contains(d) {
                    "completed"
                } else {
                    "ready"
                };
                format!("{} = \"{how}\"", raw::segment(d))
            })
            .collect();
        let _ = writeln!(out, "depends_on = {{ {} }}", deps.join(", "));
    }
    optional(
        out,
        "agent",
        p.agent.as_ref().map(|a| quote(&a.display().to_string())),
        "spawned by holden itself",
    );
    optional(out, "umask", p.umask.map(|m| format!("\"{m:04o}\"")), "holden's own");
    optional(out, "nice", p.nice.map(|n| n.to_string()), "holden's own");
    optional(
        out,
        "oom_score_adj",
        p.oom_score_adj.map(|n| n.to_string()),
        "holden's own",
    );
    let show = |l: Option<u64>| l.map_or_else(|| "\"unlimited\"".to_string(), |n| n.to_string());
    let limits: Vec<String> = p
        .rlimits
        .iter()
        .map(|r| {
            if r.soft == r.hard {
                format!("{} = {}", r.name, show(r.hard))
            } else {
                format!("{} = {{ soft = {}, hard = {} }}", r.name, show(r.soft), show(r.hard))
            }
        })
        .collect();
    if limits.is_empty() {
        let _ = writeln!(out, "# rlimits: not set (holden's own)");
    } else {
        let _ = writeln!(out, "rlimits = {{ {} }}", limits.join(", "));
    }
    let _ = writeln!(out, "readiness = {}", p.readiness.render());
    let _ = writeln!(
        out,
        "start_timeout = \"{}\"",
        humantime::format_duration(p.start_timeout)
    );
    optional(
        out,
        "liveness",
        p.liveness.as_ref().map(|l| l.render(true)),
        "no liveness probe",
    );
    optional(
        out,
        "watchdog",
        p.watchdog.map(|d| format!("\"{}\"", humantime::format_duration(d))),
        "no watchdog",
    );
}

fn optional(out: &mut String, key: &str, value: Option<String>, unset: &str) {
    let _ = match value {
        Some(v) => writeln!(out, "{key} = {v}"),
        None => writeln!(out, "# {key}: not set ({unset})"),
    };
}

fn output_text(o: &Output) -> String {
    match o {
        Output::File(p) => quote_expanded(&p.display().to_string()),
        Output::Inherit => "\"inherit\"".to_string(),
        Output::Null => "\"null\"".to_string(),
        Output::Stdout => "\"stdout\"".to_string(),
    }
}

fn quote(s: &str) -> String {
    raw::basic_string(s)
}

/// A value that `${VAR}` expansion reads, quoted so that it reads back as itself.
fn quote_expanded(s: &str) -> String {
    raw::basic_string(&vars::escape(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Config {
        load_str(Path::new("/etc/holden/supervisor.toml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(text: &str) -> Vec<String> {
        match load_str(Path::new("sv.toml"), text) {
            Ok(c) => panic!("accepted: {c:#?}"),
            Err(e) => e.messages,
        }
    }

    fn one_error(text: &str) -> String {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        e[0].clone()
    }

    fn program_with(line: &str) -> String {
        format!("[programs.web]\ncommand = \"sleep 1\"\n{line}\n")
    }

    #[test]
    fn an_empty_file_is_valid_with_default_settings() {
        let c = ok("");
        assert!(c.programs.is_empty());
        assert_eq!(c.supervisor.socket, super::super::default_socket());
        assert_eq!(c.supervisor.socket_mode, 0o600);
        assert_eq!(c.supervisor.allow_uids, Vec::<u32>::new());
        assert_eq!(c.supervisor.log_level, log::LevelFilter::Info);
        assert_eq!(c.supervisor.logfile, LogFile::Stderr);
        assert_eq!(c.supervisor.cgroup_path, "/supervisor");
        assert_eq!(c.supervisor.cgroups, CgroupMode::Auto);
    }

    #[test]
    fn a_program_gets_every_default() {
        let c = ok("[programs.web]\ncommand = \"python3 -m http.server\"\n");
        let want = Program::with_defaults(
            "web",
            vec!["python3".into(), "-m".into(), "http.server".into()],
            Path::new("/etc/holden"),
        );
        assert_eq!(c.programs, vec![want]);
    }

    #[test]
    fn every_value_type_resolves() {
        let c = ok(r#"
[supervisor]
socket = "run/h.sock"
socket_mode = "0660"
allow_uids = [1000, 0]
log_level = "debug"
logfile = "/var/log/holden.log"
cgroup_path = "programs"
cgroups = "off"

[programs.db]
command = ["postgres", "-D", "data dir"]

[programs.web]
command = "python3 -m 'http.server' 8080"
directory = "www"
environment = { PORT = "8080", MODE = "prod" }
user = "www-data"
group = 33
autostart = false
autorestart = "always"
exit_codes = [0, 2, 255]
min_uptime = "500ms"
restart_delay = "2s"
max_restart_delay = "1m"
max_restarts = 0
stop_signal = "SIGINT"
stop_timeout = "1m 30s"
memory_limit = "1.5GiB"
cpu_limit = 1.5
pids_limit = 64
stdout = "logs/web.log"
stderr = "./logs/web.log"
log_max_bytes = "10KB"
log_backups = 0
log_timestamps = true
depends_on = ["db"]
agent = "/run/holden/agent.sock"
"#);
        let s = &c.supervisor;
        assert_eq!(s.socket, PathBuf::from("/etc/holden/run/h.sock"));
        assert_eq!(s.socket_mode, 0o660);
        assert_eq!(s.allow_uids, vec![1000, 0]);
        assert_eq!(s.log_level, log::LevelFilter::Debug);
        assert_eq!(s.logfile, LogFile::Path("/var/log/holden.log".into()));
        assert_eq!(s.cgroup_path, "programs");
        assert_eq!(s.cgroups, CgroupMode::Off);
        assert_eq!(
            c.programs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["db", "web"]
        );
        assert_eq!(c.programs[0].command, ["postgres", "-D", "data dir"]);
        let w = &c.programs[1];
        assert_eq!(w.command, ["python3", "-m", "http.server", "8080"]);
        assert_eq!(w.directory, PathBuf::from("/etc/holden/www"));
        assert_eq!(w.environment.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(w.user.as_deref(), Some("www-data"));
        assert_eq!(w.group.as_deref(), Some("33"));
        assert!(!w.autostart);
        assert_eq!(w.autorestart, RestartPolicy::Always);
        assert_eq!(w.exit_codes, [0, 2, 255]);
        assert_eq!(w.min_uptime, Duration::from_millis(500));
        assert_eq!(w.restart_delay, Duration::from_secs(2));
        assert_eq!(w.max_restart_delay, Duration::from_secs(60));
        assert_eq!(w.max_restarts, 0);
        assert_eq!(w.stop_signal, Signal(2));
        assert_eq!(w.stop_timeout, Duration::from_secs(90));
        assert_eq!(w.memory_limit, Some(1_610_612_736));
        assert_eq!(w.cpu_limit, Some(1.5));
        assert_eq!(w.pids_limit, Some(64));
        assert_eq!(w.stdout, Output::File("/etc/holden/logs/web.log".into()));
        assert_eq!(w.stderr, Output::Stdout);
        assert_eq!(w.log_max_bytes, 10_000);
        assert_eq!(w.log_backups, 0);
        assert!(w.log_timestamps);
        assert_eq!(w.depends_on, ["db"]);
        assert_eq!(w.agent, Some(PathBuf::from("/run/holden/agent.sock")));
    }

    #[test]
    fn sizes_follow_si_and_iec_units_and_integers_are_bytes() {
        for (text, bytes) in [
            ("\"30MB\"", 30_000_000),
            ("\"30 MiB\"", 31_457_280),
            ("\"1KB\"", 1000),
            ("\"1KiB\"", 1024),
            ("\"0\"", 0),
            ("4096", 4096),
        ] {
            let c = ok(&program_with(&format!("log_max_bytes = {text}")));
            assert_eq!(c.programs[0].log_max_bytes, bytes, "{text}");
        }
        assert!(one_error(&program_with("memory_limit = \"lots\"")).contains("found \"lots\", expected a size like"));
        assert!(one_error(&program_with("memory_limit = -5")).contains("found -5, expected a size"));
        assert!(one_error(&program_with("memory_limit = \"-5MB\"")).contains("found \"-5MB\""));
        assert_eq!(
            one_error(&program_with("memory_limit = 0")),
            "sv.toml:3:16: programs.web.memory_limit: found 0, expected a size above 0 (leave it out for no limit)"
        );
    }

    #[test]
    fn stderr_and_stdout_outputs() {
        let c = ok(&program_with("stdout = \"null\"\nstderr = \"stdout\""));
        assert_eq!(
            (c.programs[0].stdout.clone(), c.programs[0].stderr.clone()),
            (Output::Null, Output::Stdout)
        );
        let c = ok(&program_with("stdout = \"a.log\"\nstderr = \"b.log\""));
        assert_eq!(c.programs[0].stderr, Output::File("/etc/holden/b.log".into()));
        let c = ok(&program_with("stderr = \"inherit\""));
        assert_eq!(c.programs[0].stderr, Output::Inherit);
        assert!(
            one_error(&program_with("stdout = \"stdout\""))
                .contains("programs.web.stdout: found \"stdout\", expected a path, \"inherit\" or \"null\"")
        );
        assert!(one_error(&program_with("stderr = \"\"")).contains("programs.web.stderr: found \"\", expected a path"));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        assert_eq!(
            absolute_from(Path::new("/a/b"), "logs/x.log"),
            PathBuf::from("/a/b/logs/x.log")
        );
        assert_eq!(absolute_from(Path::new("/a/b"), "./x/./y"), PathBuf::from("/a/b/x/y"));
        assert_eq!(absolute_from(Path::new("/a/b"), "/abs"), PathBuf::from("/abs"));
        // A relative config path is first joined to the cwd.
        let cwd = std::env::current_dir().expect("cwd");
        let c = load_str(
            Path::new("conf/sv.toml"),
            "[programs.a]\ncommand = \"x\"\nstdout = \"o.log\"\n",
        )
        .expect("valid");
        assert_eq!(c.path, PathBuf::from("conf/sv.toml"));
        assert_eq!(c.programs[0].directory, cwd.join("conf"));
        assert_eq!(c.programs[0].stdout, Output::File(cwd.join("conf/o.log")));
        let c = ok("[programs.a]\ncommand = \"bin/x --flag ./y\"\n[programs.b]\ncommand = [\"../b\"]\n");
        assert_eq!(c.programs[0].command, ["/etc/holden/bin/x", "--flag", "./y"]);
        assert_eq!(c.programs[1].command, ["/etc/holden/../b"]);
    }

    #[test]
    fn max_restart_delay_follows_a_large_restart_delay_unless_set() {
        let c = ok(&program_with("restart_delay = \"1m\""));
        assert_eq!(c.programs[0].max_restart_delay, Duration::from_secs(60));
        assert_eq!(
            one_error(&program_with("restart_delay = \"10s\"\nmax_restart_delay = \"5s\"")),
            "sv.toml:4:21: programs.web.max_restart_delay: found \"5s\", expected at least restart_delay (10s)"
        );
    }

    #[test]
    fn each_bad_value_is_named_with_found_and_expected() {
        let cases = [
            (
                "stop_timeout = \"ten\"",
                "sv.toml:3:16: programs.web.stop_timeout: found \"ten\", expected a duration like \"10s\"",
            ),
            (
                "stop_timeout = 10",
                "sv.toml:3:16: programs.web.stop_timeout: found 10, expected a duration like \"10s\"",
            ),
            (
                "autorestart = \"sometimes\"",
                "sv.toml:3:15: programs.web.autorestart: found \"sometimes\", expected one of \"never\", \"on-failure\", \"always\"",
            ),
            (
                "stop_signal = \"TERMINATE\"",
                "sv.toml:3:15: programs.web.stop_signal: found \"TERMINATE\", expected a signal name like \"TERM\" or \"SIGHUP\", or a number from 1 to 64",
            ),
            (
                "exit_codes = [0, 256]",
                "sv.toml:3:18: programs.web.exit_codes[1]: found 256, expected an exit code from 0 to 255",
            ),
            (
                "cpu_limit = 0",
                "sv.toml:3:13: programs.web.cpu_limit: found 0, expected a number of CPUs above 0 like 0.5 (leave it out for no limit)",
            ),
            (
                "cpu_limit = nan",
                "sv.toml:3:13: programs.web.cpu_limit: found NaN, expected a number of CPUs above 0 like 0.5 (leave it out for no limit)",
            ),
            (
                "pids_limit = 0",
                "sv.toml:3:14: programs.web.pids_limit: found 0, expected a number of processes above 0 like 256 (leave it out for no limit)",
            ),
            (
                "max_restarts = -1",
                "sv.toml:3:16: programs.web.max_restarts: found -1, expected a number of restarts from 0 to 4294967295",
            ),
            (
                "autostart = 1",
                "sv.toml:3:13: programs.web.autostart: found 1, expected true or false",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(one_error(&program_with(line)), want, "{line}");
        }
    }

    #[test]
    fn supervisor_values_are_checked() {
        let cases = [
            (
                "socket_mode = \"rw\"",
                "sv.toml:2:15: supervisor.socket_mode: found \"rw\", expected an octal mode like \"0600\"",
            ),
            (
                "socket_mode = 600",
                "sv.toml:2:15: supervisor.socket_mode: found 600, expected an octal mode like \"0600\"",
            ),
            (
                "log_level = \"loud\"",
                "sv.toml:2:13: supervisor.log_level: found \"loud\", expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
            ),
            (
                "cgroup_path = \"\"",
                "sv.toml:2:15: supervisor.cgroup_path: found \"\", expected a cgroup path like \"/supervisor\" or \"programs\", not the root and without \"..\"",
            ),
            (
                "cgroup_path = \"/a/../b\"",
                "sv.toml:2:15: supervisor.cgroup_path: found \"/a/../b\", expected a cgroup path like \"/supervisor\" or \"programs\", not the root and without \"..\"",
            ),
            (
                "cgroups = \"maybe\"",
                "sv.toml:2:11: supervisor.cgroups: found \"maybe\", expected one of \"auto\", \"required\", \"off\"",
            ),
            (
                "allow_uids = [-1]",
                "sv.toml:2:15: supervisor.allow_uids[0]: found -1, expected a uid from 0 to 4294967294",
            ),
            (
                "logfile = 3",
                "sv.toml:2:11: supervisor.logfile: found 3, expected \"stderr\" or a path",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(one_error(&format!("[supervisor]\n{line}\n")), want, "{line}");
        }
        assert_eq!(ok("[supervisor]\nsocket_mode = 0o640\n").supervisor.socket_mode, 0o640);
    }

    #[test]
    fn commands_are_split_or_refused() {
        assert_eq!(
            one_error("[programs.web]\ncommand = \"echo 'oops\"\n"),
            "sv.toml:2:11: programs.web.command: found a ' without its closing ' in \"echo 'oops\", expected a command line split like a shell would, without running one (write [\"sh\", \"-c\", \"...\"] to run a shell)"
        );
        assert!(
            one_error("[programs.web]\ncommand = \"a | b\"\n")
                .contains("found the unquoted shell operator | in \"a | b\"")
        );
        assert!(
            one_error("[programs.web]\ncommand = \"  \"\n")
                .contains("programs.web.command: found \"  \", expected a command line that names a program")
        );
        assert!(
            one_error("[programs.web]\ncommand = []\n").contains("programs.web.command: found [], expected an array")
        );
        assert!(
            one_error("[programs.web]\ncommand = [\"\", \"x\"]\n")
                .contains("sv.toml:2:12: programs.web.command[0]: found \"\", expected the program to run")
        );
        assert_eq!(
            one_error("[programs.web]\nautostart = true\n"),
            "sv.toml:1:11: programs.web: found no command, expected a command = \"...\" for every program"
        );
    }

    #[test]
    fn a_leading_variable_assignment_in_a_command_is_refused() {
        assert!(
            one_error("[programs.web]\ncommand = \"PORT=80 server\"\n")
                .contains("found the variable assignment \"PORT=80\" in \"PORT=80 server\", expected a command line that starts with the program")
        );
        assert_eq!(
            ok("[programs.web]\ncommand = \"env PORT=80 server --x=1\"\n").programs[0].command,
            ["env", "PORT=80", "server", "--x=1"]
        );
        assert_eq!(
            ok("[programs.web]\ncommand = [\"./a=b\"]\n").programs[0].command,
            ["/etc/holden/a=b"]
        );
    }

    #[test]
    fn two_programs_cannot_share_a_log_file() {
        let text = "[programs.a]\ncommand = \"x\"\nstdout = \"logs/all.log\"\nstderr = \"logs/all.log\"\n\
                    [programs.b]\ncommand = \"x\"\nstderr = \"./logs/all.log\"\n";
        assert_eq!(
            one_error(text),
            "sv.toml:7:10: programs.b.stderr: found \"./logs/all.log\", the log file of a, expected a file that no other program writes to"
        );
    }

    #[test]
    fn programs_may_share_a_path_that_is_not_a_regular_file() {
        // /dev/null stands for /dev/stdout here: a test's stdout may be a regular file.
        let text = "[programs.a]\ncommand = \"x\"\nstdout = \"/dev/null\"\n\
                    [programs.b]\ncommand = \"x\"\nstdout = \"/dev/null\"\nstderr = \"/dev/null\"\n";
        assert_eq!(ok(text).programs.len(), 2);
    }

    #[test]
    fn bad_program_names_are_refused() {
        assert_eq!(
            one_error("[programs.\"a b\"]\ncommand = \"x\"\n"),
            "sv.toml:1:11: programs.\"a b\": found the program name \"a b\", expected a name of 1 to 64 letters, digits, '_', '.' or '-' (not \".\" or \"..\")"
        );
        assert_eq!(errors("[programs.\"..\"]\ncommand = \"x\"\n").len(), 1);
    }

    #[test]
    fn dependencies_must_exist_and_not_form_a_cycle() {
        assert_eq!(
            one_error("[programs.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n"),
            "sv.toml:3:15: programs.a.depends_on[0]: found \"b\", expected the name of a program in this file (a)"
        );
        assert!(one_error("[programs.a]\ncommand = \"x\"\ndepends_on = [\"a\"]\n").contains("cannot depend on itself"));
        let text = "
[programs.a]
command = \"x\"
depends_on = [\"b\"]
[programs.b]
command = \"x\"
depends_on = [\"c\"]
[programs.c]
command = \"x\"
depends_on = [\"a\"]
[programs.d]
command = \"x\"
depends_on = [\"e\", \"a\"]
[programs.e]
command = \"x\"
depends_on = [\"d\"]
";
        assert_eq!(
            errors(text),
            [
                "sv.toml:4:15: programs.a.depends_on: found the dependency cycle a -> b -> c -> a, expected programs that do not depend on each other in a circle",
                "sv.toml:13:15: programs.d.depends_on: found the dependency cycle d -> e -> d, expected programs that do not depend on each other in a circle",
            ]
        );
        let c = ok("[programs.a]\ncommand = \"x\"\ndepends_on = [\"b\", \"b\"]\n[programs.b]\ncommand = \"x\"\n");
        assert_eq!(c.programs[0].depends_on, ["b"]);
    }

    #[test]
    fn all_errors_of_a_file_are_reported_at_once_in_file_order() {
        let text = "
[supervisor]
cgroups = \"sometimes\"
colour = \"red\"

[programs.web]
command = \"x\"
stop_timeout = \"ten\"
memory_limit = \"lots\"
depends_on = [\"nope\"]

[programs.worker]
stop_signal = \"NOPE\"
";
        let e = errors(text);
        assert_eq!(e.len(), 7, "{e:#?}");
        let keys: Vec<&str> = e.iter().map(|l| l.split(": ").nth(1).unwrap_or("")).collect();
        assert_eq!(
            keys,
            [
                "supervisor.cgroups",
                "supervisor.colour",
                "programs.web.stop_timeout",
                "programs.web.memory_limit",
                "programs.web.depends_on[0]",
                "programs.worker",
                "programs.worker.stop_signal",
            ],
            "{e:#?}"
        );
        assert!(e[5].contains("no command"));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = errors("[programs.web]\ncommand = \"x\"\nautostart = yes\n");
        assert!(e[0].starts_with("sv.toml:3:13: invalid TOML: "), "{e:#?}");
    }

    proptest::proptest! {
        #[test]
        fn render_reads_back_any_command_environment_and_name(
            name in "[A-Za-z0-9_.-]{1,20}",
            argv in proptest::collection::vec("[^/\\x00]+", 1..4),
            env in proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_. -]{0,8}", "[^\\x00]*", 0..3),
        ) {
            proptest::prop_assume!(super::super::valid_program_name(&name));
            let mut program = Program::with_defaults(&name, argv, Path::new("/etc/holden"));
            program.environment = env;
            let config = Config {
                path: PathBuf::from("/etc/holden/supervisor.toml"),
                supervisor: ok("").supervisor,
                programs: vec![program],
                groups: BTreeMap::new(),
                instanced: BTreeMap::new(),
            };
            let text = render(&config);
            let again = load_str(&config.path, &text).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}\n{text}")))?;
            proptest::prop_assert_eq!(again, config);
        }
    }

    #[test]
    fn line_col_counts_characters_from_one() {
        let t = "ab\nçd\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 5), (2, 2));
        assert_eq!(line_col(t, 100), (3, 1));
    }

    #[test]
    fn render_shows_every_resolved_value_and_reads_back_the_same() {
        let text = "[programs.web]\ncommand = \"echo 'hi there'\"\nstdout = \"w.log\"\nstderr = \"w.log\"\nmemory_limit = \"30MB\"\n\
                    [programs.remote]\ncommand = \"x\"\nagent = \"/run/a.sock\"\n";
        let c = ok(text);
        let r = render(&c);
        for needle in [
            "command = [\"echo\", \"hi there\"]",
            "directory = \"/etc/holden\"",
            "autorestart = \"on-failure\"",
            "exit_codes = [0]",
            "min_uptime = \"1s\"",
            "max_restart_delay = \"30s\"",
            "stop_signal = \"TERM\"",
            "stop_timeout = \"10s\"",
            "memory_limit = 30000000",
            "# cpu_limit: not set (no limit)",
            "stdout = \"/etc/holden/w.log\"",
            "stderr = \"/etc/holden/w.log\"  # the same file",
            "log_max_bytes = 50000000",
            "log_backups = 10",
            "log_timestamps = false",
            "do not apply",
            "socket_mode = \"0600\"",
            "cgroups = \"auto\"",
        ] {
            assert!(r.contains(needle), "{needle:?} not in\n{r}");
        }
        let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
        assert_eq!(again.programs, c.programs);
        assert_eq!(again.supervisor, c.supervisor);
    }

    #[test]
    fn instances_expand_into_programs_with_their_index_filled_in() {
        let text = "[programs.worker]\ncommand = \"work --id {index} --pad {index:03} --lit {{index}} {{.Name}}\"\n\
                    instances = 11\ninstance_start = 1\ndirectory = \"/srv/w{index}\"\n\
                    environment = { SLOT = \"s{index:02}\" }\nstdout = \"logs/w-{index}.log\"\nstderr = \"logs/w-{index}.log\"\n\
                    [programs.web]\ncommand = [\"sh\", \"-c\", \"{ echo {index}; }\"]\n";
        let c = ok(text);
        let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names[0], "web");
        assert_eq!(names[1..4], ["worker@1", "worker@2", "worker@3"]);
        assert_eq!(names[11], "worker@11");
        assert_eq!(names.len(), 12);
        let w = c.program("worker@2").expect("worker@2");
        assert_eq!(
            w.instance,
            Some(Instance {
                program: "worker".into(),
                index: 2
            })
        );
        assert_eq!(
            w.command,
            ["work", "--id", "2", "--pad", "002", "--lit", "{index}", "{{.Name}}"]
        );
        assert_eq!(w.directory, PathBuf::from("/srv/w2"));
        assert_eq!(w.environment["SLOT"], "s02");
        assert_eq!(w.stdout, Output::File("/etc/holden/logs/w-2.log".into()));
        assert_eq!(w.stderr, Output::Stdout);
        // A plain program: `{index}` is 0, other braces are left alone.
        let web = c.program("web").expect("web");
        assert_eq!(web.instance, None);
        assert_eq!(web.command, ["sh", "-c", "{ echo 0; }"]);
        assert_eq!(c.instanced["worker"].count, 11);
        assert_eq!(c.instanced["worker"].start, 1);
        assert_eq!(c.instanced["worker"].template.command[2], "{index}");
        assert_eq!(
            w.holden_env(),
            [
                ("HOLDEN_PROGRAM", "worker".to_string()),
                ("HOLDEN_INSTANCE", "2".to_string())
            ]
        );
        assert_eq!(web.holden_env(), [("HOLDEN_PROGRAM", "web".to_string())]);
        // One instance is still an instance.
        let c = ok("[programs.w]\ncommand = \"x\"\ninstances = 1\n");
        assert_eq!(c.programs[0].name, "w@0");
    }

    #[test]
    fn instances_are_checked() {
        assert_eq!(
            one_error(&program_with("instances = 0")),
            "sv.toml:3:13: programs.web.instances: found 0, expected a number of instances from 1 to 1024 (leave it out for one plain program)"
        );
        assert!(one_error(&program_with("instances = 1025")).contains("programs.web.instances: found 1025"));
        assert!(one_error(&program_with("instances = \"4\"")).contains("programs.web.instances: found \"4\""));
        assert_eq!(
            one_error(&program_with("instance_start = 1")),
            "sv.toml:3:18: programs.web.instance_start: found instance_start = 1 without instances, expected instances = N beside it (or no instance_start)"
        );
        assert!(
            one_error(&program_with("instances = 2\ninstance_start = -1")).starts_with(
                "sv.toml:4:18: programs.web.instance_start: found -1, expected the first instance's index"
            )
        );
        assert_eq!(
            one_error(&program_with("instances = 3\nstdout = \"logs/w.log\"")),
            "sv.toml:4:10: programs.web.stdout: found \"logs/w.log\", one file for 3 instances, expected a path with {index} in it like \"logs/worker-{index}.log\" (two instances cannot share a log file)"
        );
        assert!(
            one_error(&program_with(
                "instances = 3\nstdout = \"w{index}.log\"\nstderr = \"w.err\""
            ))
            .starts_with("sv.toml:5:10: programs.web.stderr: found \"w.err\", one file for 3 instances")
        );
        // An escaped placeholder is no placeholder.
        assert!(
            one_error(&program_with("instances = 2\nstdout = \"w{{index}}.log\"")).contains("one file for 2 instances")
        );
        // One instance may have any file; so may instances writing a stream.
        ok(&program_with("instances = 1\nstdout = \"logs/w.log\""));
        ok(&program_with("instances = 4\nstdout = \"/dev/null\""));
        // `@` is the instance separator, never part of a program's name.
        assert!(one_error("[programs.\"w@1\"]\ncommand = \"x\"\n").contains("found the program name \"w@1\""));
    }

    #[test]
    fn dependencies_on_instances_name_all_of_them_or_one() {
        let text = "[programs.worker]\ncommand = \"x\"\ninstances = 2\n\
                    [programs.web]\ncommand = \"x\"\ndepends_on = [\"worker\", \"worker@1\"]\n";
        let c = ok(text);
        assert_eq!(c.program("web").expect("web").depends_on, ["worker", "worker@1"]);
        assert_eq!(
            one_error(&format!(
                "{text}[programs.api]\ncommand = \"x\"\ndepends_on = [\"worker@2\"]\n"
            )),
            "sv.toml:9:15: programs.api.depends_on[0]: found \"worker@2\", expected the name of a program in this file (api, web, worker)"
        );
        assert!(
            one_error("[programs.w]\ncommand = \"x\"\ninstances = 2\ndepends_on = [\"w@0\"]\n")
                .contains("programs.w.depends_on[0]: found \"w@0\", expected the name of another program")
        );
        assert!(
            one_error(&text.replace("instances = 2\n", "instances = 2\ndepends_on = [\"web\"]\n"))
                .contains("found the dependency cycle web -> worker -> web")
        );
    }

    #[test]
    fn groups_name_programs_and_instances() {
        let text = "[programs.worker]\ncommand = \"x\"\ninstances = 2\n[programs.app]\ncommand = \"x\"\n\
                    [groups]\nweb = [\"app\", \"worker\", \"app\"]\none = [\"worker@1\"]\n";
        let c = ok(text);
        assert_eq!(c.groups["web"], ["app", "worker"]);
        assert_eq!(c.groups["one"], ["worker@1"]);
        let w1 = c.program("worker@1").expect("worker@1");
        assert_eq!(c.groups_of(w1), ["one", "web"]);
        assert_eq!(c.groups_of(c.program("worker@0").expect("worker@0")), ["web"]);
        let base = "[programs.worker]\ncommand = \"x\"\ninstances = 2\n[programs.app]\ncommand = \"x\"\n[groups]\n";
        assert_eq!(
            one_error(&format!("{base}web = [\"app\", \"nope\"]\n")),
            "sv.toml:7:15: groups.web[1]: found \"nope\", expected the name of a program or instance in this file (app, worker)"
        );
        assert!(
            one_error(&format!("{base}web = [\"worker@2\"]\n"))
                .starts_with("sv.toml:7:8: groups.web[0]: found \"worker@2\"")
        );
        assert_eq!(
            one_error(&format!("{base}app = [\"worker\"]\n")),
            "sv.toml:7:1: groups.app: found the group name \"app\", also the name of a program, expected a group name that no program has"
        );
        assert!(
            one_error(&format!("{base}worker = [\"app\"]\n"))
                .starts_with("sv.toml:7:1: groups.worker: found the group name \"worker\", also the name of a program")
        );
        assert!(
            one_error(&format!("{base}\"a b\" = [\"app\"]\n"))
                .starts_with("sv.toml:7:1: groups.\"a b\": found the group name \"a b\", expected a name of 1 to 64")
        );
        assert!(
            one_error(&format!("{base}web = \"app\"\n"))
                .starts_with("sv.toml:7:7: groups.web: found \"app\", expected an array")
        );
        assert!(one_error("groups = 3\n").starts_with("sv.toml:1:10: groups: found 3, expected a table of groups"));
    }

    #[test]
    fn render_reads_back_instances_groups_and_literal_placeholders() {
        let text = "[programs.worker]\ncommand = \"work {index:02} {{index}}\"\ninstances = 3\ninstance_start = 5\n\
                    stdout = \"w{index}.log\"\n\
                    [programs.web]\ncommand = [\"echo\", \"{{index}}\", \"{{{index}}}\", \"{index}\"]\n\
                    environment = { A = \"{{index:02}}\" }\n\
                    [groups]\nall = [\"web\", \"worker\"]\n";
        let c = ok(text);
        assert_eq!(
            c.program("web").expect("web").command,
            ["echo", "{index}", "{{index}}", "0"]
        );
        let r = render(&c);
        for needle in [
            "[programs.worker]\ncommand = [\"work\", \"{index:02}\", \"{{index}}\"]",
            "stdout = \"/etc/holden/w{index}.log\"",
            "instances = 3\ninstance_start = 5  # worker@5 to worker@7",
            "command = [\"echo\", \"{{index}}\", \"{{{index}}}\", \"0\"]",
            "A = \"{{index:02}}\"",
            "[groups]\nall = [\"web\", \"worker\"]",
        ] {
            assert!(r.contains(needle), "{needle:?} not in\n{r}");
        }
        let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
        assert_eq!(again, c);
    }

    const UNSET: &str = "HOLDEN_TEST_SURELY_UNSET_VARIABLE";

    #[test]
    fn variables_expand_in_commands_environment_and_paths() {
        let path = std::env::var("PATH").expect("PATH is set");
        let text = r#"[programs.web]
command = "echo ${PATH} '${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-a b}' $$HOME $1 ${PATH}$${X}"
directory = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-/srv}/app"
environment = { P = "${PATH}:/x", L = "$${PATH}", S = "cost: 5$" }
stdout = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-logs}/web.log"
stderr = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-null}"
[programs.argv]
command = ["sh", "-c", "echo $HOME ${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-}x"]
"#;
        let c = ok(text);
        let web = c.program("web").expect("web");
        assert_eq!(
            web.command,
            vec![
                "echo".to_string(),
                path.clone(),
                "a b".into(),
                "$HOME".into(),
                "$1".into(),
                format!("{path}${{X}}"),
            ]
        );
        assert_eq!(web.directory, PathBuf::from("/srv/app"));
        assert_eq!(web.environment["P"], format!("{path}:/x"));
        assert_eq!(web.environment["L"], "${PATH}");
        assert_eq!(web.environment["S"], "cost: 5$");
        assert_eq!(web.stdout, Output::File(PathBuf::from("/etc/holden/logs/web.log")));
        assert_eq!(web.stderr, Output::Null);
        let argv = c.program("argv").expect("argv");
        assert_eq!(argv.command, vec!["sh", "-c", "echo $HOME x"]);
        // What check prints reads back the same, `$` and all.
        let r = render(&c);
        assert!(r.contains("L = \"$${PATH}\""), "{r}");
        let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
        assert_eq!(again.programs, c.programs);
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_it() {
        let e = errors(&format!(
            "[programs.web]\ncommand = [\"echo\", \"${{{UNSET}}}\"]\nenvironment = {{ A = \"x${{{UNSET}}}\" }}\ndirectory = \"${{A\"\n"
        ));
        assert_eq!(
            e,
            vec![
                format!(
                    "sv.toml:2:20: programs.web.command[1]: found ${{{UNSET}}}, but {UNSET} is not set in holden's environment, expected {}",
                    vars::EXPECTED
                ),
                format!(
                    "sv.toml:3:21: programs.web.environment.A: found ${{{UNSET}}}, but {UNSET} is not set in holden's environment, expected {}",
                    vars::EXPECTED
                ),
                format!(
                    "sv.toml:4:13: programs.web.directory: found a ${{ without its closing }}, expected {}",
                    vars::EXPECTED
                ),
            ]
        );
        let e = one_error(&program_with(&format!("stdout = \"${{{UNSET}}}/x.log\"")));
        assert!(
            e.starts_with("sv.toml:3:10: programs.web.stdout: found ${HOLDEN_TEST"),
            "{e}"
        );
        let e = one_error(&format!("[programs.web]\ncommand = \"run ${{{UNSET}}}\"\n"));
        assert!(
            e.starts_with("sv.toml:2:11: programs.web.command: found ${HOLDEN_TEST"),
            "{e}"
        );
    }

    fn in_dir(dir: &Path, text: &str) -> Result<Config, Vec<String>> {
        load_str(&dir.join("sv.toml"), text).map_err(|e| e.messages)
    }

    #[test]
    fn environment_files_in_order_then_the_environment_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".env"), "# base\nA=1\nB='two words'\nC=\"x\\ny\"\n").expect("write");
        std::fs::create_dir(dir.path().join("more")).expect("mkdir");
        std::fs::write(dir.path().join("more/over.env"), "export B=2\nD=$A\n").expect("write");
        let text = format!(
            "[programs.web]\ncommand = \"sleep 1\"\nenvironment_file = [\".env\", \"-missing.env\", \"${{{UNSET}:-more}}/over.env\"]\nenvironment = {{ D = \"table\" }}\n"
        );
        let c = in_dir(dir.path(), &text).unwrap_or_else(|e| panic!("{e:#?}"));
        let env = &c.programs[0].environment;
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "2");
        assert_eq!(env["C"], "x\ny");
        assert_eq!(env["D"], "table");
        assert_eq!(env.len(), 4);
        // One path alone is fine too.
        let c = in_dir(
            dir.path(),
            "[programs.web]\ncommand = \"x\"\nenvironment_file = \".env\"\n",
        )
        .expect("valid");
        assert_eq!(c.programs[0].environment["A"], "1");
    }

    #[test]
    fn environment_file_problems_name_the_file_its_line_and_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bad.env"), "A=1\n# fine\nB C\n").expect("write");
        let file = dir.path().join("sv.toml").display().to_string();
        let bad = dir.path().join("bad.env").display().to_string();
        let missing = dir.path().join("missing.env").display().to_string();
        let e = in_dir(
            dir.path(),
            "[programs.web]\ncommand = \"x\"\nenvironment_file = [\"bad.env\", \"missing.env\", \"\"]\n",
        )
        .expect_err("refused");
        assert_eq!(e.len(), 3, "{e:#?}");
        assert_eq!(
            e[0],
            format!(
                "{file}:3:21: programs.web.environment_file[0]: found {bad}:3: \"B C\" has no '=', expected KEY=value lines, # comments and blank lines (quotes as in systemd's EnvironmentFile)"
            )
        );
        assert!(
            e[1].starts_with(&format!(
                "{file}:3:32: programs.web.environment_file[1]: found {missing}, which cannot be read: no such file"
            )),
            "{e:#?}"
        );
        assert!(e[2].contains("programs.web.environment_file[2]: found \"\""), "{e:#?}");
        // Not a regular file: refused at once, never read (a FIFO would block the loop).
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let e = in_dir(
            dir.path(),
            "[programs.web]\ncommand = \"x\"\nenvironment_file = [\"/dev/zero\", \"-.\", \"fifo\"]\n",
        )
        .expect_err("refused");
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[2].contains("fifo, which cannot be read: it is not a regular file"),
            "{e:#?}"
        );
        assert!(
            e[0].contains("found /dev/zero, which cannot be read: it is not a regular file"),
            "{e:#?}"
        );
        assert!(
            e[1].contains("which cannot be read: it is not a regular file"),
            "{e:#?}"
        );
        std::fs::write(dir.path().join("big.env"), vec![b'#'; (ENV_FILE_MAX + 1) as usize]).expect("write");
        let e = in_dir(
            dir.path(),
            "[programs.web]\ncommand = \"x\"\nenvironment_file = \"big.env\"\n",
        )
        .expect_err("refused");
        assert!(e[0].contains("it is larger than 1048576 bytes"), "{e:#?}");
    }

    #[test]
    fn process_settings_resolve() {
        let c = ok(&program_with(
            "umask = \"027\"\nnice = 5\noom_score_adj = -100\nrlimits = { nofile = 4096, core = \"unlimited\", memlock = \"64MiB\", nproc = { soft = 100, hard = 200 }, cpu = \"30\" }",
        ));
        let p = &c.programs[0];
        assert_eq!(p.umask, Some(0o27));
        assert_eq!(p.nice, Some(5));
        assert_eq!(p.oom_score_adj, Some(-100));
        let limit = |name: &str| p.rlimits.iter().find(|r| r.name == name).map(|r| (r.soft, r.hard));
        assert_eq!(limit("nofile"), Some((Some(4096), Some(4096))));
        assert_eq!(limit("core"), Some((None, None)));
        assert_eq!(limit("memlock"), Some((Some(64 << 20), Some(64 << 20))));
        assert_eq!(limit("nproc"), Some((Some(100), Some(200))));
        assert_eq!(limit("cpu"), Some((Some(30), Some(30))));
        assert_eq!(ok(&program_with("umask = 0o077")).programs[0].umask, Some(0o77));
        assert_eq!(ok(&program_with("umask = 0")).programs[0].umask, Some(0));
        let r = render(&c);
        for needle in [
            "umask = \"0027\"",
            "nice = 5",
            "oom_score_adj = -100",
            "nproc = { soft = 100, hard = 200 }",
            "core = \"unlimited\"",
        ] {
            assert!(r.contains(needle), "{needle:?} not in\n{r}");
        }
        let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
        assert_eq!(again.programs, c.programs);
    }

    #[test]
    fn bad_process_settings_are_refused_with_their_place() {
        let cases = [
            (
                "umask = \"999\"",
                "sv.toml:3:9: programs.web.umask: found \"999\", expected an octal umask like \"027\" or 0o027, at most 0777",
            ),
            (
                "umask = 0o1777",
                "sv.toml:3:9: programs.web.umask: found 0o1777, expected an octal umask like \"027\" or 0o027, at most 0777",
            ),
            (
                "umask = 22",
                "sv.toml:3:9: programs.web.umask: found 22, expected an octal umask like \"027\" or 0o027, at most 0777",
            ),
            (
                "nice = 40",
                "sv.toml:3:8: programs.web.nice: found 40, expected a niceness from -20 to 19",
            ),
            (
                "oom_score_adj = -1001",
                "sv.toml:3:17: programs.web.oom_score_adj: found -1001, expected an OOM score adjustment from -1000 to 1000",
            ),
            (
                "rlimits = { nofiles = 10 }",
                "sv.toml:3:13: programs.web.rlimits.nofiles: found the unknown limit \"nofiles\", expected one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack",
            ),
            (
                "rlimits = { nproc = { soft = 200, hard = 100 } }",
                "sv.toml:3:21: programs.web.rlimits.nproc: found the soft limit 200 above the hard limit 100, expected a soft limit at most the hard one",
            ),
            (
                "rlimits = { nproc = { soft = \"unlimited\", hard = 100 } }",
                "sv.toml:3:21: programs.web.rlimits.nproc: found the soft limit unlimited above the hard limit 100, expected a soft limit at most the hard one",
            ),
            (
                "rlimits = { nofile = \"1MiB\" }",
                "sv.toml:3:22: programs.web.rlimits.nofile: found \"1MiB\", expected a number or \"unlimited\"",
            ),
            (
                "rlimits = { core = -1 }",
                "sv.toml:3:20: programs.web.rlimits.core: found -1, expected a number of bytes, a size like \"64MiB\", or \"unlimited\"",
            ),
            (
                "rlimits = { nproc = { soft = 1 } }",
                "sv.toml:3:21: programs.web.rlimits.nproc: found a table, expected both soft and hard, like { soft = 1024, hard = 4096 }",
            ),
            (
                "rlimits = { nproc = { soft = 1, max = 2 } }",
                "sv.toml:3:33: programs.web.rlimits.nproc.max: found unknown key \"max\", expected one of soft, hard",
            ),
            (
                "rlimits = 5",
                "sv.toml:3:11: programs.web.rlimits: found 5, expected a table of limits like { nofile = 65536, core = \"unlimited\" }",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(one_error(&program_with(line)), want, "{line}");
        }
        if let Some(max) = nr_open() {
            let e = one_error(&program_with(&format!("rlimits = {{ nofile = {} }}", max + 1)));
            assert!(e.contains(&format!("above this kernel's fs.nr_open ({max})")), "{e}");
            let e = one_error(&program_with("rlimits = { nofile = \"unlimited\" }"));
            assert!(e.contains("found unlimited, above this kernel's fs.nr_open"), "{e}");
        }
    }

    #[test]
    fn process_settings_are_refused_with_an_agent() {
        let e = errors("[programs.web]\ncommand = \"x\"\nagent = \"/run/a.sock\"\nnice = 1\nrlimits = { core = 0 }\n");
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].starts_with(
                "sv.toml:4:8: programs.web.nice: found nice on a program spawned through the agent \"/run/a.sock\""
            ),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with("sv.toml:5:13: programs.web.rlimits: found rlimits"),
            "{e:#?}"
        );
    }
}

use std::path::Path;

use toml::Spanned;

use super::*;

/// One program, every default filled in. With problems, the result is a placeholder that is
/// never used: only the problems count then.
pub(super) fn program(raw: &RawProgram, base: &Path, files: &dyn Files, p: &mut Vec<Problem>) -> Program {
    let name = raw.name.get_ref().clone();
    let prefix = format!("programs.{}", raw::segment(&name));
    let key = |field: &str| format!("{prefix}.{field}");
    if !crate::config::valid_program_name(&name) {
        p.push(Problem::found(
            raw.name.span(),
            &prefix,
            format!("the program name {name:?}"),
            "a name of 1 to 64 letters, digits, '_', '.' or '-' (not \".\" or \"..\")",
        ));
    } else if let Some(why) = crate::config::cgroup_reserved(&name) {
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
        program.directory_set = true;
    }
    // SPEC: the files in order, then `environment` over them.
    let env_files = raw.environment_file.as_deref().unwrap_or_default();
    for (i, f) in env_files.iter().enumerate() {
        let file_key = if env_files.len() > 1 {
            format!("{}[{i}]", key("environment_file"))
        } else {
            key("environment_file")
        };
        for (k, v) in environment_file(f, &file_key, base, files, p) {
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
                    "a signal name like \"TERM\" or \"SIGHUP\", or a number from 1 to 64 but 32 and 33",
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
            Ok(n) if n > crate::config::MAX_PIDS => p.push(Problem::found(
                v.span(),
                &key("pids_limit"),
                n,
                format!(
                    "at most {} (the kernel's pid_max limit; leave it out for no limit)",
                    crate::config::MAX_PIDS
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
            Ok(n) if n <= crate::config::MAX_LOG_BACKUPS => program.log_backups = n,
            _ => p.push(Problem::found(
                v.span(),
                &key("log_backups"),
                v.get_ref(),
                format!("a number of files from 0 to {}", crate::config::MAX_LOG_BACKUPS),
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
    process_settings(raw, &mut program, &key, files, p);
    if let Some(r) = raw
        .readiness
        .as_ref()
        .and_then(|v| crate::config::probe::readiness(v, &key("readiness"), p))
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
        .and_then(|v| crate::config::probe::liveness(v, &key("liveness"), p));
    match (&raw.watchdog, duration(raw.watchdog.as_ref(), &key("watchdog"), p)) {
        (Some(v), Some(d)) if d.is_zero() || program.readiness != crate::config::probe::Readiness::Notify => {
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
        use crate::config::probe::{Check, Readiness};
        let exec = |p: &Option<&crate::config::probe::Probe>| p.is_some_and(|p| matches!(p.check, Check::Exec(_)));
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

/// The assignments of one `environment_file` entry: `${VAR}` expanded in its path, relative to
/// the config's folder, a leading `-` for "missing is fine". Each problem names the file and
/// its line besides the config's own place.
pub(super) fn environment_file(
    v: &Spanned<String>,
    key: &str,
    base: &Path,
    files: &dyn Files,
    p: &mut Vec<Problem>,
) -> Vec<(String, String)> {
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
    let content = match files.env_file(&path) {
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

/// `NAME=value` with NAME a shell variable name.
pub(super) fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// SPEC: a relative program path with a `/` in it (`bin/server`) is a path in the file, so it
/// is made absolute against the config's folder, like every other path, whatever `directory`
/// is (std leaves a relative program with another working directory unspecified). A bare name
/// (`python3`) is looked up in `PATH` when spawned.
pub(super) fn argv_from(base: &Path, mut argv: Vec<String>) -> Vec<String> {
    if argv[0].contains('/') && !argv[0].starts_with('/') {
        argv[0] = absolute_from(base, &argv[0]).display().to_string();
    }
    argv
}

pub(super) fn command(c: &Spanned<RawCommand>, key: &str, base: &Path, p: &mut Vec<Problem>) -> Option<Vec<String>> {
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

/// A NUL byte cannot be passed to exec, nor be in a path: refuse it in the command, the
/// directory, the user and the group, where `run` would fail to spawn.
pub(super) fn no_nul(raw: &RawProgram, key: &dyn Fn(&str) -> String, p: &mut Vec<Problem>) {
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

pub(super) fn output(
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

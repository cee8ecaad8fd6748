use super::*;

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

pub(super) fn render_program(out: &mut String, p: &Program) {
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
    // Written only when the file sets it, so that the text reads back the same; the default
    // is shown as a comment.
    let directory = quote_expanded(&p.directory.display().to_string());
    let _ = if p.directory_set {
        writeln!(out, "directory = {directory}")
    } else {
        writeln!(out, "# directory: not set (this file's folder, {directory})")
    };
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

pub(super) fn optional(out: &mut String, key: &str, value: Option<String>, unset: &str) {
    let _ = match value {
        Some(v) => writeln!(out, "{key} = {v}"),
        None => writeln!(out, "# {key}: not set ({unset})"),
    };
}

pub(super) fn output_text(o: &Output) -> String {
    match o {
        Output::File(p) => quote_expanded(&p.display().to_string()),
        Output::Inherit => "\"inherit\"".to_string(),
        Output::Null => "\"null\"".to_string(),
        Output::Stdout => "\"stdout\"".to_string(),
    }
}

pub(super) fn quote(s: &str) -> String {
    raw::basic_string(s)
}

/// A value that `${VAR}` expansion reads, quoted so that it reads back as itself.
pub(super) fn quote_expanded(s: &str) -> String {
    raw::basic_string(&vars::escape(s))
}

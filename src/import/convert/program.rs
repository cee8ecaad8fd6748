//! One `[program:x]` into `[programs.x]`, its logs included.

use super::*;

impl Conv<'_> {
    pub(super) fn program(&mut self, out: &mut String, s: &Section, name: &str, holden: &str, group: &str) {
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
    pub(super) fn log_limit(
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

    pub(super) fn log_value(
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

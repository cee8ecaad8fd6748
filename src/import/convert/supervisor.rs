//! `[supervisord]` and `[unix_http_server]` into `[supervisor]`.

use super::*;

impl Conv<'_> {
    /// `[supervisord]` and `[unix_http_server]` become `[supervisor]`.
    pub(super) fn supervisor_table(&mut self, out: &mut String) {
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
    pub(super) fn own_log_unrotated(&self, s: &Section) -> bool {
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
}

//! `readiness` and `liveness`: how holden tells that a program is ready, and that it is still
//! healthy (SPEC "Readiness and health"). `raw.rs` keeps the value as written (a word or a
//! small table); this module checks it and fills the defaults.

use std::time::Duration;

use toml::Spanned;

use super::raw::{Problem, RawCheck, RawValue};

/// When a program counts as ready (STARTING -> RUNNING).
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// After `min_uptime` alive (the default; holden's rule before readiness existed).
    Uptime,
    /// `READY=1` on `$NOTIFY_SOCKET` (sd_notify).
    Notify,
    /// A newline written to this fd of the program (s6's notification-fd).
    Fd(i32),
    /// The first success of a probe.
    Probe(Probe),
}

impl Readiness {
    /// As `holden check` prints it.
    pub fn render(&self) -> String {
        match self {
            Readiness::Uptime => "\"uptime\"".into(),
            Readiness::Notify => "\"notify\"".into(),
            Readiness::Fd(n) => format!("{{ fd = {n} }}"),
            Readiness::Probe(p) => p.render(false),
        }
    }
}

/// A probe: what to try, how often, how long one try may take.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    /// Liveness only: consecutive failed tries that make the program fail.
    pub failures: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Run this argv (in the program's cgroup, as its user); exit 0 is a success.
    Exec(Vec<String>),
    /// Connect to `host:port`.
    Tcp(String),
    /// GET `path` from `host:port`; `status` expected (None: any 2xx).
    Http {
        url: String,
        authority: String,
        path: String,
        status: Option<u16>,
    },
}

impl Check {
    /// `exec`, `tcp` or `http`, for reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Exec(_) => "exec",
            Check::Tcp(_) => "tcp",
            Check::Http { .. } => "http",
        }
    }
}

impl Probe {
    pub fn render(&self, liveness: bool) -> String {
        let what = match &self.check {
            Check::Exec(argv) => {
                let words: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
                format!("exec = [{}]", words.join(", "))
            }
            Check::Tcp(a) => format!("tcp = {a:?}"),
            Check::Http { url, status, .. } => match status {
                Some(s) => format!("http = {url:?}, status = {s}"),
                None => format!("http = {url:?}"),
            },
        };
        let mut out = format!(
            "{{ {what}, interval = \"{}\", timeout = \"{}\"",
            humantime::format_duration(self.interval),
            humantime::format_duration(self.timeout)
        );
        if liveness {
            out.push_str(&format!(", failures = {}", self.failures));
        }
        out.push_str(" }");
        out
    }
}

const READINESS: &str = "\"uptime\", \"notify\", { fd = 3 }, { exec = [...] }, { tcp = \"host:port\" } or { http = \"http://host:port/path\" }";
const LIVENESS: &str = "{ exec = [...] }, { tcp = \"host:port\" } or { http = \"http://host:port/path\" }, with interval, timeout, failures";

pub fn readiness(v: &Spanned<RawCheck>, key: &str, p: &mut Vec<Problem>) -> Option<Readiness> {
    match v.get_ref() {
        RawCheck::Word(w) => match w.as_str() {
            "uptime" => Some(Readiness::Uptime),
            "notify" => Some(Readiness::Notify),
            other => {
                p.push(Problem::found(v.span(), key, format!("{other:?}"), READINESS));
                None
            }
        },
        RawCheck::Table(entries) => {
            if let Some((k, fd)) = entries.iter().find(|(k, _)| k.get_ref() == "fd") {
                if entries.len() > 1 {
                    p.push(Problem::found(v.span(), key, "fd with other keys", "{ fd = N } alone"));
                    return None;
                }
                let fdkey = format!("{key}.fd");
                return match fd.get_ref() {
                    RawValue::Int(n) if (3..=1023).contains(n) => Some(Readiness::Fd(*n as i32)),
                    other => {
                        let _ = k;
                        p.push(Problem::found(
                            fd.span(),
                            &fdkey,
                            other.describe(),
                            "an fd number from 3 to 1023",
                        ));
                        None
                    }
                };
            }
            probe(v, entries, key, false, p).map(Readiness::Probe)
        }
    }
}

pub fn liveness(v: &Spanned<RawCheck>, key: &str, p: &mut Vec<Problem>) -> Option<Probe> {
    match v.get_ref() {
        RawCheck::Word(w) => {
            p.push(Problem::found(v.span(), key, format!("{w:?}"), LIVENESS));
            None
        }
        RawCheck::Table(entries) => probe(v, entries, key, true, p),
    }
}

fn probe(
    v: &Spanned<RawCheck>,
    entries: &[(Spanned<String>, Spanned<RawValue>)],
    key: &str,
    liveness: bool,
    p: &mut Vec<Problem>,
) -> Option<Probe> {
    let before = p.len();
    let mut check = None;
    let mut status = None;
    let mut interval = None;
    let mut timeout = None;
    let mut failures = None;
    for (k, value) in entries {
        let sub = format!("{key}.{}", k.get_ref());
        let bad = |p: &mut Vec<Problem>, expected: &str| {
            p.push(Problem::found(value.span(), &sub, value.get_ref().describe(), expected));
        };
        match (k.get_ref().as_str(), value.get_ref()) {
            ("exec", RawValue::Strs(argv)) if !argv.is_empty() && !argv[0].is_empty() => {
                check = Some(Check::Exec(argv.clone()))
            }
            ("exec", _) => bad(p, "a command as an array like [\"pg_isready\", \"-q\"]"),
            ("tcp", RawValue::Str(a)) if socket_addr(a).is_some() => check = Some(Check::Tcp(a.clone())),
            ("tcp", _) => bad(p, ADDRESS),
            ("http", RawValue::Str(url)) => match parse_http(url) {
                Some((authority, _)) if socket_addr(&authority).is_none() => bad(p, ADDRESS),
                Some((authority, path)) => {
                    check = Some(Check::Http {
                        url: url.clone(),
                        authority,
                        path,
                        status: None,
                    })
                }
                None => bad(
                    p,
                    "an URL like \"http://127.0.0.1:8080/healthz\" (http only, host:port)",
                ),
            },
            ("http", _) => bad(p, "an URL like \"http://127.0.0.1:8080/healthz\""),
            ("status", RawValue::Int(n)) if (100..=599).contains(n) => status = Some(*n as u16),
            ("status", _) => bad(p, "an HTTP status like 200"),
            ("interval" | "timeout", RawValue::Str(s)) => match humantime::parse_duration(s.trim()) {
                Ok(d) if !d.is_zero() => {
                    if k.get_ref() == "interval" {
                        interval = Some(d)
                    } else {
                        timeout = Some(d)
                    }
                }
                _ => bad(p, "a duration above zero like \"10s\""),
            },
            ("interval" | "timeout", _) => bad(p, "a duration above zero like \"10s\""),
            ("failures", RawValue::Int(n)) if liveness && (1..=1000).contains(n) => failures = Some(*n as u32),
            ("failures", _) if liveness => bad(p, "a number of failed probes in a row from 1 to 1000"),
            (other, _) => {
                let known = if liveness {
                    "exec, tcp, http, status, interval, timeout or failures"
                } else {
                    "fd, exec, tcp, http, status, interval or timeout"
                };
                p.push(Problem::found(
                    k.span(),
                    &sub,
                    format!("the unknown key {other:?}"),
                    known,
                ));
            }
        }
    }
    let kinds = entries
        .iter()
        .filter(|(k, _)| matches!(k.get_ref().as_str(), "exec" | "tcp" | "http"))
        .count();
    if kinds != 1 {
        p.push(Problem::found(
            v.span(),
            key,
            format!("{kinds} of exec, tcp, http"),
            "exactly one of them",
        ));
    }
    if status.is_some() && !matches!(check, Some(Check::Http { .. })) && kinds == 1 {
        p.push(Problem::found(
            v.span(),
            key,
            "status without http",
            "status only with http",
        ));
    }
    if p.len() > before {
        return None;
    }
    let mut check = check?;
    if let Check::Http { status: s, .. } = &mut check {
        *s = status;
    }
    let interval = interval.unwrap_or(if liveness {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(1)
    });
    let timeout = timeout.unwrap_or_else(|| {
        interval.min(if liveness {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(1)
        })
    });
    Some(Probe {
        check,
        interval,
        timeout,
        failures: failures.unwrap_or(3),
    })
}

/// What a tcp probe or the host of an http one must be.
const ADDRESS: &str = "an IP address or localhost with a port, like \"127.0.0.1:5432\" or \"http://[::1]:8080/healthz\" (holden looks no name up: a DNS query could block its loop)";

/// The address of a probe's `host:port`: an IP address, or `localhost` (127.0.0.1). Names are
/// refused rather than looked up, because a lookup can block holden's one thread.
pub fn socket_addr(authority: &str) -> Option<std::net::SocketAddr> {
    let (host, port) = split_host_port(authority)?;
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        other => other.parse().ok()?,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

/// `host:port` (`[v6]:port` too) with a port above 0.
pub fn split_host_port(a: &str) -> Option<(&str, u16)> {
    let (host, port) = a.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

/// `http://host:port/path` -> (`host:port`, `/path`); port 80 when left out.
fn parse_http(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if split_host_port(authority).is_some() {
        authority.to_string()
    } else if !authority.is_empty() && !authority.contains(':') {
        format!("{authority}:80")
    } else {
        return None;
    };
    if path.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return None;
    }
    Some((authority, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_addresses() {
        assert_eq!(
            parse_http("http://127.0.0.1:8080/healthz"),
            Some(("127.0.0.1:8080".into(), "/healthz".into()))
        );
        assert_eq!(
            parse_http("http://localhost"),
            Some(("localhost:80".into(), "/".into()))
        );
        assert_eq!(parse_http("https://x:1/"), None);
        assert_eq!(parse_http("http://x:0/"), None);
        assert_eq!(split_host_port("[::1]:5432"), Some(("::1", 5432)));
        assert_eq!(socket_addr("localhost:80"), Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(socket_addr("[::1]:5432"), Some("[::1]:5432".parse().unwrap()));
        assert_eq!(socket_addr("db.internal:5432"), None, "names are not looked up");
        assert_eq!(split_host_port("db"), None);
    }
}

#[cfg(test)]
mod config_tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::load::load_str;

    fn web(line: &str) -> Result<crate::config::Program, Vec<String>> {
        let text = format!("[programs.db]\ncommand = \"true\"\n[programs.web]\ncommand = \"sleep 1\"\n{line}\n");
        load_str(Path::new("sv.toml"), &text)
            .map(|c| c.program("web").unwrap().clone())
            .map_err(|e| e.lines())
    }

    #[test]
    fn readiness_forms_and_defaults() {
        assert_eq!(web("").unwrap().readiness, Readiness::Uptime);
        assert_eq!(web("").unwrap().start_timeout, Duration::from_secs(90));
        assert_eq!(web("readiness = \"notify\"").unwrap().readiness, Readiness::Notify);
        assert_eq!(web("readiness = { fd = 3 }").unwrap().readiness, Readiness::Fd(3));
        let Readiness::Probe(p) = web("readiness = { http = \"http://127.0.0.1:8080/up\" }")
            .unwrap()
            .readiness
        else {
            panic!()
        };
        assert_eq!(
            (p.interval, p.timeout),
            (Duration::from_secs(1), Duration::from_secs(1))
        );
        assert!(matches!(p.check, Check::Http { ref path, status: None, .. } if path == "/up"));
        let l = web("liveness = { exec = [\"pg_isready\"], status = 200 }").unwrap_err();
        assert!(l[0].contains("status only with http"), "{l:?}");
        let l = web("liveness = { tcp = \"10.0.0.5:5432\" }").unwrap().liveness.unwrap();
        assert_eq!(
            (l.interval, l.timeout, l.failures),
            (Duration::from_secs(10), Duration::from_secs(2), 3)
        );
    }

    #[test]
    fn bad_readiness_names_file_line_and_key() {
        let e = web("readiness = \"ready\"").unwrap_err();
        assert!(
            e[0].starts_with("sv.toml:5:13: programs.web.readiness: found \"ready\""),
            "{e:?}"
        );
        let e = web("readiness = { fd = 1 }").unwrap_err();
        assert!(
            e[0].contains("programs.web.readiness.fd: found 1, expected an fd number from 3"),
            "{e:?}"
        );
        let e = web("readiness = { tcp = \"db.internal:5432\" }").unwrap_err();
        assert!(e[0].contains("holden looks no name up"), "{e:?}");
        let e = web("readiness = { tcp = \"nope\" }").unwrap_err();
        assert!(e[0].contains("programs.web.readiness.tcp"), "{e:?}");
        let e = web("readiness = { tcp = \"127.0.0.1:1\", http = \"http://127.0.0.1:1/\" }").unwrap_err();
        assert!(e[0].contains("exactly one"), "{e:?}");
        let e = web("readiness = { exec = [\"x\"], failures = 2 }").unwrap_err();
        assert!(e[0].contains("unknown key \"failures\""), "{e:?}");
        let e = web("liveness = { http = \"http://127.0.0.1:1/\", interval = \"0s\" }").unwrap_err();
        assert!(e[0].contains("liveness.interval"), "{e:?}");
        let e = web("watchdog = \"30s\"").unwrap_err();
        assert!(e[0].contains("with readiness = \"notify\""), "{e:?}");
        let e = web("depends_on = { db = \"healthy\" }").unwrap_err();
        assert!(e[0].contains("programs.web.depends_on.db: found \"healthy\""), "{e:?}");
    }

    #[test]
    fn depends_on_table_form() {
        let p = web("depends_on = { db = \"completed\" }").unwrap();
        assert_eq!(p.depends_on, ["db"]);
        assert_eq!(p.depends_completed, ["db"]);
        let p = web("depends_on = [\"db\"]").unwrap();
        assert!(p.depends_completed.is_empty());
    }
}

#[cfg(test)]
mod agent_tests {
    use std::path::Path;

    #[test]
    fn an_agents_program_cannot_use_notify_fd_or_exec() {
        for line in [
            "readiness = \"notify\"",
            "readiness = { fd = 3 }",
            "readiness = { exec = [\"true\"] }",
            "liveness = { exec = [\"true\"] }",
        ] {
            let text = format!("[programs.web]\ncommand = \"sleep 1\"\nagent = \"/run/a.sock\"\n{line}\n");
            let e = crate::config::load::load_str(Path::new("sv.toml"), &text).unwrap_err();
            assert!(e.lines()[0].contains("with agent"), "{line}: {e}");
        }
        let text =
            "[programs.web]\ncommand = \"sleep 1\"\nagent = \"/run/a.sock\"\nreadiness = { tcp = \"127.0.0.1:80\" }\n";
        assert!(crate::config::load::load_str(Path::new("sv.toml"), text).is_ok());
    }
}

//! Probes in flight: an exec probe is a child process (in the program's cgroups, as its user)
//! whose output is read from a pipe; tcp and http probes are non-blocking sockets. Each is
//! driven by the reactor (`Kind::Probe`) and ends with an `Outcome`, or at its timeout.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Instant;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::config::Program;
use crate::config::probe::{Check, Probe};
use crate::sys::exec::{self, ChildSetup};

/// Output of an exec probe kept for the reason text.
pub const MAX_OUTPUT: usize = 4096;
/// The most of an HTTP response read (status line and headers are all that count).
const MAX_RESPONSE: usize = 16 * 1024;

#[derive(Debug)]
pub enum Stage {
    Connecting,
    Reading,
}

/// A probe that has been started and not yet decided.
#[derive(Debug)]
pub struct InFlight {
    /// Liveness (the program is RUNNING) rather than readiness.
    pub liveness: bool,
    pub deadline: Instant,
    pub what: What,
}

#[derive(Debug)]
pub enum What {
    Exec {
        pid: i32,
        /// Read end of its stdout+stderr; None once at EOF.
        out: Option<OwnedFd>,
        output: Vec<u8>,
        /// Its exit, once reaped.
        exit: Option<crate::process::ExitKind>,
    },
    Net {
        sock: OwnedFd,
        stage: Stage,
        /// http: the request to send and the status wanted.
        http: Option<(Vec<u8>, Option<u16>)>,
        buf: Vec<u8>,
    },
}

/// How a probe ended: success or failure, with a short text (`http 503`, `tcp: connection
/// refused`, `exec exit status 1: <output>`).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(String),
    Fail(String),
}

impl InFlight {
    /// The fd to register in the reactor, and for which readiness.
    pub fn fd(&self) -> Option<(std::os::fd::BorrowedFd<'_>, crate::reactor::Interest)> {
        use crate::reactor::Interest;
        match &self.what {
            What::Exec { out, .. } => out.as_ref().map(|o| (o.as_fd(), Interest::Read)),
            What::Net { sock, stage, .. } => Some((
                sock.as_fd(),
                match stage {
                    Stage::Connecting => Interest::Write,
                    Stage::Reading => Interest::Read,
                },
            )),
        }
    }
}

/// Start `probe` for `program`; `cgroup_procs`: the cgroup.procs files an exec probe joins.
pub fn start(
    program: &Program,
    probe: &Probe,
    liveness: bool,
    cgroup_procs: Vec<OwnedFd>,
    now: Instant,
) -> Result<InFlight, String> {
    let deadline = now + probe.timeout;
    let what = match &probe.check {
        Check::Exec(argv) => start_exec(program, argv, cgroup_procs)?,
        Check::Tcp(addr) => start_net(addr, None)?,
        Check::Http {
            authority,
            path,
            status,
            ..
        } => {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: holden\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            );
            start_net(authority, Some((request.into_bytes(), *status)))?
        }
    };
    Ok(InFlight {
        liveness,
        deadline,
        what,
    })
}

fn start_exec(program: &Program, argv: &[String], cgroup_procs: Vec<OwnedFd>) -> Result<What, String> {
    let identity = crate::process::users::resolve(program.user.as_deref(), program.group.as_deref())?;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("exec: cannot create a pipe: {e}"))?;
    rustix::fs::fcntl_setfl(&read, rustix::fs::OFlags::NONBLOCK).map_err(|e| format!("exec: {e}"))?;
    let write2 = write.try_clone().map_err(|e| format!("exec: {e}"))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(&program.directory)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2));
    if let Some(id) = &identity {
        cmd.env("USER", &id.name).env("LOGNAME", &id.name);
        if let Some(home) = &id.home {
            cmd.env("HOME", home);
        }
    }
    cmd.envs(&program.environment);
    cmd.envs(program.holden_env());
    exec::install(
        &mut cmd,
        ChildSetup {
            cgroup_procs,
            new_session: true,
            credentials: identity.map(|i| i.credentials),
            // A probe gets fds 0, 1 and 2 only, as the program does.
            close_other_fds: true,
            fd_bound: exec::fd_bound(),
            ..ChildSetup::default()
        },
    );
    let child = cmd
        .spawn()
        .map_err(|e| format!("exec: cannot run {}: {}", argv[0], crate::error::os_text(&e)))?;
    let pid = child.id() as i32;
    // Reaped by the loop's reap_all, like every child.
    drop(child);
    drop(cmd);
    Ok(What::Exec {
        pid,
        out: Some(read),
        output: Vec::new(),
        exit: None,
    })
}

/// `host:port` to an address, without a lookup (the config refuses names).
fn resolve(authority: &str) -> Result<SocketAddr, String> {
    crate::config::probe::socket_addr(authority).ok_or_else(|| format!("{authority} is not an IP address and port"))
}

fn start_net(authority: &str, http: Option<(Vec<u8>, Option<u16>)>) -> Result<What, String> {
    let kind = if http.is_some() { "http" } else { "tcp" };
    let addr = resolve(authority).map_err(|e| format!("{kind}: {e}"))?;
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let sock = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| format!("{kind}: socket: {e}"))?;
    match rustix::net::connect(&sock, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(format!("{kind}: {}", crate::error::errno_text(e.raw_os_error()))),
    }
    Ok(What::Net {
        sock,
        stage: Stage::Connecting,
        http,
        buf: Vec::new(),
    })
}

/// The reactor reported the probe's fd. Returns the outcome once decided.
pub fn on_ready(p: &mut InFlight) -> Option<Outcome> {
    match &mut p.what {
        What::Exec { out, output, exit, .. } => {
            let fd = out.as_ref()?;
            let mut buf = [0u8; 4096];
            loop {
                match rustix::io::read(fd, &mut buf) {
                    Ok(0) => {
                        *out = None;
                        break;
                    }
                    Ok(n) => {
                        let room = MAX_OUTPUT.saturating_sub(output.len());
                        output.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => break,
                }
            }
            // Decided once it exited and its output is at EOF.
            match (out.is_none(), *exit) {
                (true, Some(e)) => Some(exec_outcome(e, output)),
                _ => None,
            }
        }
        What::Net { sock, stage, http, buf } => match stage {
            Stage::Connecting => {
                let kind = if http.is_some() { "http" } else { "tcp" };
                match rustix::net::sockopt::socket_error(&*sock) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return Some(Outcome::Fail(format!(
                            "{kind}: {}",
                            crate::error::errno_text(e.raw_os_error())
                        )));
                    }
                    Err(e) => {
                        return Some(Outcome::Fail(format!(
                            "{kind}: {}",
                            crate::error::errno_text(e.raw_os_error())
                        )));
                    }
                }
                let Some((request, _)) = http else {
                    return Some(Outcome::Ok("tcp: connected".into()));
                };
                // A fresh connection's send buffer takes a small request whole.
                let mut stream = std::net::TcpStream::from(sock.try_clone().ok()?);
                if let Err(e) = stream.write_all(request) {
                    return Some(Outcome::Fail(format!("http: send: {e}")));
                }
                *stage = Stage::Reading;
                None
            }
            Stage::Reading => {
                let mut chunk = [0u8; 4096];
                let mut eof = false;
                loop {
                    match rustix::io::read(&*sock, &mut chunk) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            if buf.len() >= MAX_RESPONSE {
                                break;
                            }
                        }
                        Err(rustix::io::Errno::INTR) => {}
                        Err(rustix::io::Errno::AGAIN) => break,
                        Err(e) => {
                            return Some(Outcome::Fail(format!(
                                "http: {}",
                                crate::error::errno_text(e.raw_os_error())
                            )));
                        }
                    }
                }
                let want = http.as_ref().and_then(|(_, s)| *s);
                http_outcome(buf, want, eof || buf.len() >= MAX_RESPONSE)
            }
        },
    }
}

/// An exec probe's process was reaped.
pub fn on_exit(p: &mut InFlight, e: crate::process::ExitKind) -> Option<Outcome> {
    match &mut p.what {
        What::Exec { out, output, exit, .. } => {
            *exit = Some(e);
            // Drain what is left now: a grandchild holding the pipe must not delay the verdict.
            if let Some(fd) = out.as_ref() {
                let mut buf = [0u8; 4096];
                while let Ok(n) = rustix::io::read(fd, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = MAX_OUTPUT.saturating_sub(output.len());
                    output.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            Some(exec_outcome(e, output))
        }
        What::Net { .. } => None,
    }
}

fn exec_outcome(e: crate::process::ExitKind, output: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    let last = text.lines().last().unwrap_or("").chars().take(200).collect::<String>();
    match e {
        crate::process::ExitKind::Code(0) => Outcome::Ok(if last.is_empty() {
            "exec ok".into()
        } else {
            format!("exec ok: {last}")
        }),
        other => Outcome::Fail(if last.is_empty() {
            format!("exec {}", other.describe())
        } else {
            format!("exec {}: {last}", other.describe())
        }),
    }
}

/// Parse what was read of an HTTP response: the status decides. `done`: nothing more comes.
pub fn http_outcome(buf: &[u8], want: Option<u16>, done: bool) -> Option<Outcome> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            let code = resp.code.unwrap_or(0);
            let ok = match want {
                Some(w) => code == w,
                None => (200..300).contains(&code),
            };
            let text = format!("http {code}");
            Some(if ok { Outcome::Ok(text) } else { Outcome::Fail(text) })
        }
        Ok(httparse::Status::Partial) if done => Some(Outcome::Fail(if buf.is_empty() {
            "http: no response".into()
        } else {
            "http: incomplete response".into()
        })),
        Ok(httparse::Status::Partial) => None,
        Err(e) => Some(Outcome::Fail(format!("http: bad response ({e})"))),
    }
}

/// End a probe that timed out or is no longer wanted: kill an exec probe's processes.
pub fn kill(p: &InFlight) {
    if let What::Exec { pid, exit: None, .. } = &p.what
        && let Some(pid) = rustix::process::Pid::from_raw(*pid)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_decides_and_partial_waits() {
        assert_eq!(
            http_outcome(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", None, false),
            Some(Outcome::Ok("http 200".into()))
        );
        assert_eq!(
            http_outcome(b"HTTP/1.1 503 Service Unavailable\r\n\r\n", None, false),
            Some(Outcome::Fail("http 503".into()))
        );
        assert_eq!(
            http_outcome(b"HTTP/1.1 204 No Content\r\n\r\n", Some(200), false),
            Some(Outcome::Fail("http 204".into()))
        );
        assert_eq!(http_outcome(b"HTTP/1.1 200 O", None, false), None);
        assert_eq!(
            http_outcome(b"", None, true),
            Some(Outcome::Fail("http: no response".into()))
        );
        assert!(matches!(
            http_outcome(b"SSH-2.0-OpenSSH\r\n\r\n", None, false),
            Some(Outcome::Fail(_))
        ));
    }

    #[test]
    fn exec_outcome_keeps_the_last_line() {
        use crate::process::ExitKind;
        assert_eq!(
            exec_outcome(ExitKind::Code(2), b"checking\nno route to db\n"),
            Outcome::Fail("exec exit status 2: no route to db".into())
        );
        assert_eq!(exec_outcome(ExitKind::Code(0), b""), Outcome::Ok("exec ok".into()));
    }
}

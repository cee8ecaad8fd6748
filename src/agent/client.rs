//! The client side of the agent protocol, for `holden spawn`, `holden ping` and the supervisor's
//! programs with `agent = "PATH"`.
//!
//! `start_process` and `ping` are blocking, one connection per call, every step bounded by the
//! caller's timeout: the socket's SO_SNDTIMEO bounds `connect` (a Unix stream connect waits on
//! it when the agent's backlog is full) and the writes, SO_RCVTIMEO each read, re-armed with
//! what is left of the deadline. The supervisor drives the same `Conn` non-blocking from its
//! reactor. The pidfd arrives with the answer by SCM_RIGHTS, received close-on-exec.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags,
    SocketType, sockopt,
};

use super::codec::{self, Inbox};
use super::frame::{FrameError, Message};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "cannot connect to {}: no agent is listening there (start one with `holden agent`)",
        socket.display()
    )]
    NotListening { socket: PathBuf },
    #[error(
        "cannot connect to {}: permission denied; run as root or as the agent's user",
        socket.display()
    )]
    PermissionDenied { socket: PathBuf },
    #[error("cannot connect to {}: {reason}", socket.display())]
    Connect { socket: PathBuf, reason: String },
    #[error(
        "the agent at {} did not answer within {}; it may be stopped or overloaded",
        socket.display(),
        humantime::format_duration(*timeout)
    )]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("lost the connection to the agent at {}: {reason}", socket.display())]
    Connection { socket: PathBuf, reason: String },
    #[error(
        "the agent at {} answered with an invalid frame ({error}); are the agent and this holden the same version?",
        socket.display()
    )]
    Protocol { socket: PathBuf, error: FrameError },
    /// The agent answered PROCESS_ERROR: it could not spawn, or it refused this client.
    #[error("{message}")]
    Refused {
        socket: PathBuf,
        errno: i32,
        message: String,
    },
    #[error("cannot ask the agent to spawn: {0}")]
    Request(FrameError),
}

impl AgentError {
    /// The errno of a PROCESS_ERROR answer.
    pub fn errno(&self) -> Option<i32> {
        match self {
            AgentError::Refused { errno, .. } => Some(*errno),
            AgentError::NotListening { .. }
            | AgentError::PermissionDenied { .. }
            | AgentError::Connect { .. }
            | AgentError::Timeout { .. }
            | AgentError::Connection { .. }
            | AgentError::Protocol { .. }
            | AgentError::Request(_) => None,
        }
    }

    /// A later try could succeed: the agent is down, busy or short of resources. False when
    /// the command cannot be spawned (missing, not executable, bad directory) or the request
    /// is wrong, which retrying cannot help.
    pub fn retryable(&self) -> bool {
        match self {
            AgentError::NotListening { .. }
            | AgentError::Connect { .. }
            | AgentError::Timeout { .. }
            | AgentError::Connection { .. } => true,
            AgentError::PermissionDenied { .. } | AgentError::Protocol { .. } | AgentError::Request(_) => false,
            AgentError::Refused { errno, .. } => {
                let e = Errno::from_raw_os_error(*errno);
                e == Errno::AGAIN || e == Errno::NOMEM || e == Errno::MFILE || e == Errno::NFILE
            }
        }
    }
}

/// Ask the agent at `socket` to spawn `argv` with `env` added to its environment, in `cwd`
/// (else the agent's own), with the agent's stdout and stderr. Returns the process's pid as
/// seen from this process's PID namespace (the agent's own pid for it when this kernel cannot
/// translate), and its pidfd.
pub fn start_process(
    socket: &Path,
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<(i32, OwnedFd), AgentError> {
    let request = codec::start_request(argv, env, cwd)?;
    let (answer, fds) = call(socket, request, timeout)?;
    codec::started(socket, answer, fds)
}

/// Check that an agent answers at `socket` within `timeout`.
pub fn ping(socket: &Path, timeout: Duration) -> Result<(), AgentError> {
    let request = codec::ping_request()?;
    let (answer, _) = call(socket, request, timeout)?;
    codec::ponged(socket, answer)
}

/// One request and its answer on a fresh blocking connection, every step bounded by what is
/// left of `timeout`.
fn call(socket: &Path, request: Vec<u8>, timeout: Duration) -> Result<(Message, Vec<OwnedFd>), AgentError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || AgentError::Timeout {
        socket: socket.into(),
        timeout,
    };
    // Set the socket timeout `which` to what is left of the deadline.
    let arm = |conn: &Conn, which: sockopt::Timeout| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        // Zero would mean "no timeout": keep at least a microsecond.
        let left = left.max(Duration::from_micros(1));
        sockopt::set_socket_timeout(&conn.fd, which, Some(left)).map_err(|e| conn.lost(e))
    };
    let mut conn = Conn::new(socket, request, false)?;
    arm(&conn, sockopt::Timeout::Send)?;
    if !conn.connect()? {
        return Err(timed_out());
    }
    arm(&conn, sockopt::Timeout::Send)?;
    if !conn.flush()? {
        return Err(timed_out());
    }
    loop {
        arm(&conn, sockopt::Timeout::Recv)?;
        match conn.receive()? {
            Progress::Answer(answer, fds) => return Ok((answer, fds)),
            Progress::More => continue,
            Progress::WouldBlock => return Err(timed_out()),
        }
    }
}

/// What a read brought.
pub enum Progress {
    /// The whole answer, with the fds that came along.
    Answer(Message, Vec<OwnedFd>),
    /// Part of it: read again.
    More,
    /// Nothing yet: the socket's timeout passed (blocking), or wait for readiness.
    WouldBlock,
}

/// One connection to an agent, carrying one request and its answer: blocking, with the
/// caller's socket timeouts, or non-blocking, driven by readiness (the supervisor's reactor).
pub struct Conn {
    socket: PathBuf,
    fd: OwnedFd,
    request: Vec<u8>,
    sent: usize,
    /// The agent hung up before taking the whole request (it refused this client): its answer
    /// is still read, it says why.
    send_failed: Option<AgentError>,
    inbox: Inbox,
}

impl Conn {
    /// A socket for `request` to the agent at `socket`, not connected yet.
    pub fn new(socket: &Path, request: Vec<u8>, nonblocking: bool) -> Result<Conn, AgentError> {
        let fail = |e: Errno| AgentError::Connect {
            socket: socket.into(),
            reason: crate::error::errno_text(e.raw_os_error()),
        };
        let flags = if nonblocking {
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK
        } else {
            SocketFlags::CLOEXEC
        };
        let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None).map_err(fail)?;
        Ok(Conn {
            socket: socket.into(),
            fd,
            request,
            sent: 0,
            send_failed: None,
            inbox: Inbox::default(),
        })
    }

    /// Connect: true once connected, false when the agent's backlog is full (EAGAIN: a Unix
    /// connect never is in progress; try again later, or it timed out when blocking).
    pub fn connect(&self) -> Result<bool, AgentError> {
        let socket = &self.socket;
        let fail = |e: Errno| AgentError::Connect {
            socket: socket.clone(),
            reason: crate::error::errno_text(e.raw_os_error()),
        };
        let addr = SocketAddrUnix::new(socket.as_path()).map_err(fail)?;
        loop {
            return match rustix::net::connect(&self.fd, &addr) {
                Ok(()) => Ok(true),
                Err(Errno::INTR) => continue,
                Err(Errno::NOENT) | Err(Errno::CONNREFUSED) => Err(AgentError::NotListening { socket: socket.clone() }),
                Err(Errno::ACCESS) | Err(Errno::PERM) => Err(AgentError::PermissionDenied { socket: socket.clone() }),
                Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => Ok(false),
                Err(e) => Err(fail(e)),
            };
        }
    }

    /// Send what is left of the request: true once all of it is sent (or the agent hung up,
    /// whose answer then says why), false when the socket is full.
    pub fn flush(&mut self) -> Result<bool, AgentError> {
        while self.sent < self.request.len() && self.send_failed.is_none() {
            match rustix::net::send(&self.fd, &self.request[self.sent..], SendFlags::NOSIGNAL) {
                Ok(n) => self.sent += n,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(false),
                Err(e) => self.send_failed = Some(self.lost(e)),
            }
        }
        Ok(true)
    }

    /// Read once; the answer once it is whole.
    pub fn receive(&mut self) -> Result<Progress, AgentError> {
        if let Some((answer, fds)) = self.inbox.answer(&self.socket)? {
            return Ok(Progress::Answer(answer, fds));
        }
        let mut buf = [0u8; 4096];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let n = match rustix::net::recvmsg(&self.fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(r) => r.bytes,
            Err(Errno::INTR) => return Ok(Progress::More),
            Err(Errno::AGAIN) => return Ok(Progress::WouldBlock),
            Err(e) => return Err(self.send_failed.take().unwrap_or_else(|| self.lost(e))),
        };
        let mut fds = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
        self.inbox.push(&buf[..n], fds);
        if n == 0 {
            return Err(self.send_failed.take().unwrap_or_else(|| AgentError::Connection {
                socket: self.socket.clone(),
                reason: "the agent closed the connection without answering".into(),
            }));
        }
        match self.inbox.answer(&self.socket)? {
            Some((answer, fds)) => Ok(Progress::Answer(answer, fds)),
            None => Ok(Progress::More),
        }
    }

    /// The agent's socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn lost(&self, e: Errno) -> AgentError {
        AgentError::Connection {
            socket: self.socket.clone(),
            reason: crate::error::errno_text(e.raw_os_error()),
        }
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

// The error paths are unit-tested here without an agent; the exchanges with a real agent are
// in tests/integration/agent.rs.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_says_no_agent_is_listening() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let e = ping(&sock, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, AgentError::NotListening { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot connect to {}: no agent is listening there (start one with `holden agent`)",
                sock.display()
            )
        );
        assert!(e.retryable());
    }

    #[test]
    fn a_silent_agent_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let started = Instant::now();
        let e = ping(&sock, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, AgentError::Timeout { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(e.to_string().contains("did not answer within 200ms"), "{e}");
    }

    #[test]
    fn an_empty_command_is_refused_before_connecting() {
        let e = start_process(Path::new("/nonexistent"), &[], &[], None, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, AgentError::Request(_)), "{e:?}");
    }
}

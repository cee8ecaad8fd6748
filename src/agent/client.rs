//! The client side of the agent protocol, for `holden spawn`, `holden ping` and the supervisor's
//! programs with `agent = "PATH"`.
//!
//! Blocking, one connection per call, every step bounded by the caller's timeout: the socket's
//! SO_SNDTIMEO bounds `connect` (a Unix stream connect waits on it when the agent's backlog is
//! full) and the writes, SO_RCVTIMEO each read, re-armed with what is left of the deadline.
//! The pidfd arrives with the answer by SCM_RIGHTS, received close-on-exec.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags,
    SocketType, sockopt,
};

use super::frame::{self, FrameError, Message, StartProcess};
use crate::sys::pidfd;

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
    let request = StartProcess {
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        cwd: cwd.map(|c| c.as_os_str().as_bytes().to_vec()),
        clear_env: false,
        null_stdio: false,
    };
    let frame = frame::encode(&Message::StartProcess(request)).map_err(AgentError::Request)?;
    let mut call = Call::connect(socket, timeout)?;
    let (answer, mut fds) = call.exchange(&frame)?;
    match answer {
        Message::ProcessStarted { pid } => {
            let Some(pidfd) = fds.pop() else {
                return Err(call.protocol("PROCESS_STARTED came without its pidfd"));
            };
            let own = match pidfd::pid_in_own_namespace(pidfd.as_fd()) {
                Ok(Some(p)) => p,
                // Not visible from here, already reaped, or an old kernel: the agent's pid
                // is the best there is.
                Ok(None) | Err(_) => pid,
            };
            Ok((own, pidfd))
        }
        Message::ProcessError { errno, message } => Err(AgentError::Refused {
            socket: socket.into(),
            errno,
            message,
        }),
        Message::Ping | Message::Pong | Message::StartProcess(_) => {
            Err(call.protocol("the answer to START_PROCESS is neither PROCESS_STARTED nor PROCESS_ERROR"))
        }
    }
}

/// Check that an agent answers at `socket` within `timeout`.
pub fn ping(socket: &Path, timeout: Duration) -> Result<(), AgentError> {
    let frame = frame::encode(&Message::Ping).map_err(AgentError::Request)?;
    let mut call = Call::connect(socket, timeout)?;
    match call.exchange(&frame)?.0 {
        Message::Pong => Ok(()),
        Message::ProcessError { errno, message } => Err(AgentError::Refused {
            socket: socket.into(),
            errno,
            message,
        }),
        Message::Ping | Message::StartProcess(_) | Message::ProcessStarted { .. } => {
            Err(call.protocol("the answer to PING is not PONG"))
        }
    }
}

/// One request and its answer on a fresh connection.
struct Call<'a> {
    socket: &'a Path,
    fd: OwnedFd,
    deadline: Instant,
    timeout: Duration,
    input: Vec<u8>,
}

impl<'a> Call<'a> {
    fn connect(socket: &'a Path, timeout: Duration) -> Result<Call<'a>, AgentError> {
        let deadline = Instant::now() + timeout;
        let fail = |e: Errno| AgentError::Connect {
            socket: socket.into(),
            reason: crate::error::errno_text(e.raw_os_error()),
        };
        let addr = SocketAddrUnix::new(socket).map_err(fail)?;
        let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
            .map_err(fail)?;
        let call = Call {
            socket,
            fd,
            deadline,
            timeout,
            input: Vec::new(),
        };
        call.arm(sockopt::Timeout::Send)?;
        match rustix::net::connect(&call.fd, &addr) {
            Ok(()) => Ok(call),
            Err(Errno::NOENT) | Err(Errno::CONNREFUSED) => Err(AgentError::NotListening { socket: socket.into() }),
            Err(Errno::ACCESS) | Err(Errno::PERM) => Err(AgentError::PermissionDenied { socket: socket.into() }),
            Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => Err(call.timed_out()),
            Err(e) => Err(fail(e)),
        }
    }

    /// Set the socket timeout `which` to what is left of the deadline.
    fn arm(&self, which: sockopt::Timeout) -> Result<(), AgentError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        // Zero would mean "no timeout": keep at least a microsecond.
        let left = left.max(Duration::from_micros(1));
        sockopt::set_socket_timeout(&self.fd, which, Some(left)).map_err(|e| self.lost(e))
    }

    /// Send a request and receive its answer. When the agent has hung up before taking the
    /// whole request (it refused this client), its answer is still read: it says why.
    fn exchange(&mut self, request: &[u8]) -> Result<(Message, Vec<OwnedFd>), AgentError> {
        match self.send(request) {
            Ok(()) => self.receive(),
            Err(e @ AgentError::Connection { .. }) => self.receive().map_err(|_| e),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, mut bytes: &[u8]) -> Result<(), AgentError> {
        while !bytes.is_empty() {
            self.arm(sockopt::Timeout::Send)?;
            match rustix::net::send(&self.fd, bytes, SendFlags::NOSIGNAL) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Err(self.timed_out()),
                Err(e) => return Err(self.lost(e)),
            }
        }
        Ok(())
    }

    /// Read until one whole frame is in; return it with the fds that came along.
    fn receive(&mut self) -> Result<(Message, Vec<OwnedFd>), AgentError> {
        let mut fds = Vec::new();
        loop {
            match frame::decode(&self.input) {
                Ok(Some((msg, _))) => return Ok((msg, fds)),
                Ok(None) => {}
                Err(error) => {
                    return Err(AgentError::Protocol {
                        socket: self.socket.into(),
                        error,
                    });
                }
            }
            self.arm(sockopt::Timeout::Recv)?;
            let mut buf = [0u8; 4096];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let n = match rustix::net::recvmsg(&self.fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
                Ok(r) => r.bytes,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Err(self.timed_out()),
                Err(e) => return Err(self.lost(e)),
            };
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(rights) = msg {
                    fds.extend(rights);
                }
            }
            if n == 0 {
                return Err(AgentError::Connection {
                    socket: self.socket.into(),
                    reason: "the agent closed the connection without answering".into(),
                });
            }
            self.input.extend_from_slice(&buf[..n]);
        }
    }

    fn timed_out(&self) -> AgentError {
        AgentError::Timeout {
            socket: self.socket.into(),
            timeout: self.timeout,
        }
    }

    fn lost(&self, e: Errno) -> AgentError {
        AgentError::Connection {
            socket: self.socket.into(),
            reason: crate::error::errno_text(e.raw_os_error()),
        }
    }

    fn protocol(&self, what: &str) -> AgentError {
        AgentError::Protocol {
            socket: self.socket.into(),
            error: FrameError::Unencodable(what.into()),
        }
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

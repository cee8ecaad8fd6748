//! The requests and replies of the agent protocol without I/O, for both clients: the blocking
//! one (`holden spawn`, `holden ping`, client.rs) and the supervisor's, whose connection the
//! reactor owns (supervisor/remote.rs). Frames themselves are frame.rs's.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::client::AgentError;
use super::frame::{self, FrameError, Message, StartProcess};
use crate::sys::pidfd;

/// The START_PROCESS frame for `argv` with `env` added to the agent's environment, in `cwd`
/// (else the agent's own), with the agent's stdout and stderr.
pub fn start_request(argv: &[String], env: &[(String, String)], cwd: Option<&Path>) -> Result<Vec<u8>, AgentError> {
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
    frame::encode(&Message::StartProcess(request)).map_err(AgentError::Request)
}

/// The PING frame.
pub fn ping_request() -> Result<Vec<u8>, AgentError> {
    frame::encode(&Message::Ping).map_err(AgentError::Request)
}

/// The answer to START_PROCESS: the process's pid as seen from this process's PID namespace
/// (the agent's own pid for it when this kernel cannot translate), and its pidfd.
pub fn started(socket: &Path, answer: Message, mut fds: Vec<OwnedFd>) -> Result<(i32, OwnedFd), AgentError> {
    match answer {
        Message::ProcessStarted { pid } => {
            let Some(pidfd) = fds.pop() else {
                return Err(protocol(socket, "PROCESS_STARTED came without its pidfd"));
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
        Message::Ping | Message::Pong | Message::StartProcess(_) => Err(protocol(
            socket,
            "the answer to START_PROCESS is neither PROCESS_STARTED nor PROCESS_ERROR",
        )),
    }
}

/// The answer to PING.
pub fn ponged(socket: &Path, answer: Message) -> Result<(), AgentError> {
    match answer {
        Message::Pong => Ok(()),
        Message::ProcessError { errno, message } => Err(AgentError::Refused {
            socket: socket.into(),
            errno,
            message,
        }),
        Message::Ping | Message::StartProcess(_) | Message::ProcessStarted { .. } => {
            Err(protocol(socket, "the answer to PING is not PONG"))
        }
    }
}

/// What came in so far on one connection: bytes until they make a whole frame, and the fds
/// that came along.
#[derive(Default)]
pub struct Inbox {
    input: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Inbox {
    pub fn push(&mut self, bytes: &[u8], fds: impl IntoIterator<Item = OwnedFd>) {
        self.input.extend_from_slice(bytes);
        self.fds.extend(fds);
    }

    /// The answer, once a whole frame is in, with the fds that came with it.
    pub fn answer(&mut self, socket: &Path) -> Result<Option<(Message, Vec<OwnedFd>)>, AgentError> {
        match frame::decode(&self.input) {
            Ok(Some((msg, _))) => Ok(Some((msg, std::mem::take(&mut self.fds)))),
            Ok(None) => Ok(None),
            Err(error) => Err(AgentError::Protocol {
                socket: socket.into(),
                error,
            }),
        }
    }
}

fn protocol(socket: &Path, what: &str) -> AgentError {
    AgentError::Protocol {
        socket: socket.into(),
        error: FrameError::Unencodable(what.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_taken_only_once_its_frame_is_whole() {
        let sock = Path::new("/x.sock");
        let pong = frame::encode(&Message::Pong).unwrap();
        let mut inbox = Inbox::default();
        inbox.push(&pong[..pong.len() - 1], []);
        assert!(inbox.answer(sock).unwrap().is_none());
        inbox.push(&pong[pong.len() - 1..], []);
        let (msg, fds) = inbox.answer(sock).unwrap().unwrap();
        assert!(ponged(sock, msg).is_ok());
        assert!(fds.is_empty());
    }

    #[test]
    fn process_started_without_a_pidfd_is_a_protocol_error() {
        let e = started(Path::new("/x.sock"), Message::ProcessStarted { pid: 5 }, Vec::new()).unwrap_err();
        assert!(matches!(e, AgentError::Protocol { .. }), "{e:?}");
    }
}

//! A thin typed client of the control socket: connect, send a request, read replies and
//! events. What the commands do with them is `cli`'s; every failure here is a [`ClientError`]
//! that keeps its cause, and `cli::error` turns it into the sentence and exit code.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{ErrorBody, Event, Incoming, Reply, Request, Response};

/// How long a request may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest line the client accepts from holden (a status of thousands of programs fits).
const MAX_RESPONSE_LINE: u64 = 64 * 1024 * 1024;

/// Why talking to holden failed. Each variant names the socket; the sentences are for users.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", connect_text(path, source))]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot send to holden on {}: {}", path.display(), crate::error::os_text(source))]
    Send {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read from holden on {}: {}", path.display(), crate::error::os_text(source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("holden on {} sent a line longer than {MAX_RESPONSE_LINE} bytes; is it holden?", path.display())]
    LineTooLong { path: PathBuf },
    #[error("holden on {} answered something this client cannot read ({source}); are client and holden the same version?", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("holden on {} did not answer in time; it may be stuck (see its log)", path.display())]
    Timeout { path: PathBuf },
    #[error("holden on {} closed the connection without an answer (is it shutting down?)", path.display())]
    Closed { path: PathBuf },
    /// holden answered with an error response.
    #[error("{}", refused_text(path, body))]
    Refused { path: PathBuf, body: ErrorBody },
}

fn connect_text(path: &Path, e: &io::Error) -> String {
    let p = path.display();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            format!("cannot connect to {p}: no holden is running there (start one with `holden run`)")
        }
        io::ErrorKind::PermissionDenied => {
            format!("permission denied on {p}: the socket's file mode keeps you out; run as root or as holden's user")
        }
        io::ErrorKind::InvalidInput => format!("cannot connect to {p}: the path is too long for a Unix socket"),
        _ => format!("cannot connect to {p}: {}", crate::error::os_text(e)),
    }
}

fn refused_text(path: &Path, body: &ErrorBody) -> String {
    use super::protocol::ErrorCode;
    match body.code {
        ErrorCode::NotPermitted | ErrorCode::Forbidden => {
            format!("permission denied on {}: {}", path.display(), body.message)
        }
        ErrorCode::InvalidConfig => format!("the config file is invalid, nothing was changed:\n{}", body.message),
        _ => body.message.clone(),
    }
}

/// One connection to holden's control socket.
pub struct Connection {
    path: PathBuf,
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Connection {
    pub fn open(path: &Path) -> Result<Connection, ClientError> {
        let failed = |source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(failed)?;
        let reader = BufReader::new(stream.try_clone().map_err(failed)?);
        Ok(Connection {
            path: path.to_path_buf(),
            stream,
            reader,
        })
    }

    /// The socket this connection is to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        match self.stream.write_all(request.to_line().as_bytes()) {
            Ok(()) => Ok(()),
            // holden may have refused us (peer credentials) and closed: its reason is still
            // waiting to be read, and beats "broken pipe".
            Err(source) => match self.next(Instant::now() + Duration::from_secs(1)) {
                Ok(Some(Incoming::Response(Response::Err(body)))) => Err(self.refused(body)),
                Ok(_) | Err(_) => Err(ClientError::Send {
                    path: self.path.clone(),
                    source,
                }),
            },
        }
    }

    /// The next line from holden, before `deadline`; `None` when holden closed the connection.
    pub fn next(&mut self, deadline: Instant) -> Result<Option<Incoming>, ClientError> {
        let mut line = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout());
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|source| self.read_error(source))?;
            let limit = MAX_RESPONSE_LINE - line.len() as u64;
            match (&mut self.reader).take(limit).read_until(b'\n', &mut line) {
                Ok(0) if line.is_empty() => return Ok(None),
                Ok(_) if line.ends_with(b"\n") => break,
                Ok(0) => return Ok(None),
                Ok(_) if line.len() as u64 >= MAX_RESPONSE_LINE => {
                    return Err(ClientError::LineTooLong {
                        path: self.path.clone(),
                    });
                }
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(self.timeout());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // After a refusal the kernel reports ECONNRESET once the reason was read.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(self.read_error(e)),
            }
        }
        let text = String::from_utf8_lossy(&line);
        Incoming::parse(text.trim_end())
            .map(Some)
            .map_err(|source| ClientError::Unreadable {
                path: self.path.clone(),
                source,
            })
    }

    /// Send `request` and wait for its answer, passing any events to `on_event`.
    pub fn call_with(
        &mut self,
        request: &Request,
        timeout: Duration,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Reply, ClientError> {
        self.send(request)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline)? {
                Some(Incoming::Event(e)) => on_event(e),
                Some(Incoming::Response(Response::Ok(reply))) => return Ok(reply),
                Some(Incoming::Response(Response::Err(body))) => return Err(self.refused(body)),
                None => {
                    return Err(ClientError::Closed {
                        path: self.path.clone(),
                    });
                }
            }
        }
    }

    pub fn call(&mut self, request: &Request) -> Result<Reply, ClientError> {
        self.call_with(request, REQUEST_TIMEOUT, &mut |_| {})
    }

    fn timeout(&self) -> ClientError {
        ClientError::Timeout {
            path: self.path.clone(),
        }
    }

    fn read_error(&self, source: io::Error) -> ClientError {
        ClientError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn refused(&self, body: ErrorBody) -> ClientError {
        ClientError::Refused {
            path: self.path.clone(),
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connecting_where_nobody_listens_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holden.sock");
        let Err(e) = Connection::open(&path) else {
            panic!("connected to nothing")
        };
        assert!(matches!(&e, ClientError::Connect { source, .. } if source.kind() == io::ErrorKind::NotFound));
        assert_eq!(
            e.to_string(),
            format!(
                "cannot connect to {}: no holden is running there (start one with `holden run`)",
                path.display()
            )
        );
    }
}

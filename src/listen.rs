//! The one Unix-socket listener of the control socket (`control::server`) and the agent
//! (`agent::server`): the socket file's whole life and the accepting, without the protocol.
//!
//! - **Bind**: parent folders created; the socket created with permission bits `mode` from the
//!   start (a umask covers the window between bind and chmod, so no other user can connect
//!   in between), then chmod to exactly `mode`.
//! - **A taken path**: bind first, and only on EADDRINUSE look at what holds the path. A socket
//!   file nobody listens on (connecting is refused) is removed and the bind tried again; one
//!   that answers is refused ([`BindError::Live`]); another bind winning the race for the path
//!   just cleared is refused the same way; anything else is left alone ([`BindError::NotSocket`]).
//! - **The end**: dropping the listener removes the socket file, only if it is still the one
//!   it created (a successor may have replaced it after this one was declared dead).
//! - **Accepting**: a bounded batch per wakeup (the listener is level-triggered and reports the
//!   rest); each connection comes with its peer's credentials (SO_PEERCRED, `sys::peer`) for
//!   the caller's access check. Out of open files (EMFILE, ENFILE) or memory, a level-triggered
//!   listener would report the same connection again at once: accepting pauses instead, for
//!   [`ACCEPT_PAUSE`], out of the reactor, and resumes at [`Listener::on_deadline`].
//! - **Budgets**: [`connection_budget`] (connections past it are refused by the caller, with
//!   its protocol's "busy"), [`WarnLimit`] (refusals logged at most once per interval), and
//!   [`idle`] (the connections silent past their idle timeout).
//!
//! Binding may wait (up to [`STALE_GRACE`], once, at start); nothing else here blocks.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{self, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::reactor::{Interest, Reactor, Token};
use crate::sys::peer::{PeerCred, peer_cred};

/// How long a socket must keep answering before it is taken for a live server's. A server
/// SIGKILLed while it was spawning leaves a child between fork and exec that holds a copy of
/// every descriptor, the listening socket included, until its exec closes them (close-on-exec):
/// the socket looks alive for that long (a join of a v1 cgroup can take tens of milliseconds).
pub const STALE_GRACE: Duration = Duration::from_secs(2);
/// How long accepting pauses after EMFILE, ENFILE, ENOBUFS or ENOMEM.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Connections accepted per wakeup.
const ACCEPT_BATCH: usize = 64;
/// How often a kind of refused connection is logged at most.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Open files kept for supervision whatever the clients do: stdio, epoll, signalfd, the
/// listener, holden's log, the cgroup lock, an agent's sockets, one accept to answer `busy`.
pub const FD_RESERVE_BASE: u64 = 32;
/// Open files kept per program: two output pipes, a pidfd, log files, cgroup files.
pub const FD_RESERVE_PER_PROGRAM: u64 = 8;
/// Connections served whatever the budget, so that an operator can always reach the server.
pub const MIN_CONNECTIONS: usize = 4;

/// How many connections fit in `fd_limit` open files with `programs` programs supervised
/// (never fewer than [`MIN_CONNECTIONS`]).
pub fn connection_budget(fd_limit: u64, programs: usize) -> usize {
    let reserve = FD_RESERVE_BASE.saturating_add(FD_RESERVE_PER_PROGRAM.saturating_mul(programs as u64));
    usize::try_from(fd_limit.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(MIN_CONNECTIONS)
}

/// The soft open files limit of this process (`u64::MAX` for unlimited).
pub fn nofile_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// The connections of `conns` (id, last activity) silent for `timeout` at `now`, and the
/// earliest moment one of the others will be.
pub fn idle<K>(
    conns: impl Iterator<Item = (K, Instant)>,
    timeout: Duration,
    now: Instant,
) -> (Vec<K>, Option<Instant>) {
    let mut gone = Vec::new();
    let mut next: Option<Instant> = None;
    for (id, last) in conns {
        let at = last + timeout;
        if at <= now {
            gone.push(id);
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    (gone, next)
}

/// At most one WARN line per interval for a kind of refusal, with a count of the ones it kept
/// quiet, so that a flood of refused clients cannot flood the log.
#[derive(Debug)]
pub struct WarnLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimit {
    pub fn new(interval: Duration) -> WarnLimit {
        WarnLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(note)`: log now, with `note` (empty, or the count of the lines kept quiet since the
    /// last one) at the end of the line. `None`: stay quiet (counted).
    pub fn check(&mut self, now: Instant) -> Option<String> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(suppressed_note(std::mem::take(&mut self.suppressed), self.interval))
            }
        }
    }
}

/// " (N more like it since the last such line, within 10s, not logged)", or nothing.
fn suppressed_note(n: u64, interval: Duration) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(
            " ({n} more like it since the last such line, within {}, not logged)",
            humantime::format_duration(interval)
        )
    }
}

/// Why the socket cannot be set up. Each server words it for its users (with the option or
/// key that chooses the path).
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot create {}: {}", .path.display(), crate::error::os_text(.source))]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("the socket path {} is too long for a Unix socket (at most 107 bytes)", .path.display())]
    PathTooLong { path: PathBuf },
    #[error("something is listening on {}", .path.display())]
    Live { path: PathBuf },
    #[error("{} exists and is not a socket", .path.display())]
    NotSocket { path: PathBuf },
    #[error("cannot create the socket {}: {}", .path.display(), crate::error::os_text(.source))]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set mode {mode:04o} on the socket {}: {}", .path.display(), crate::error::os_text(.source))]
    Chmod {
        path: PathBuf,
        mode: u32,
        source: io::Error,
    },
}

/// A connection just accepted: non-blocking and close-on-exec, with its peer's credentials.
pub struct Accepted {
    pub fd: OwnedFd,
    pub cred: io::Result<PeerCred>,
}

/// A listening Unix stream socket and the file it created.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file created: only that file is removed at the end.
    ident: Option<(u64, u64)>,
    /// Set by [`Listener::register`].
    token: Option<Token>,
    /// Accepting paused until then (the listener is out of the reactor).
    paused_until: Option<Instant>,
    /// Put before its log lines ("control: ", or nothing).
    log_prefix: &'static str,
    warn_accept: WarnLimit,
}

impl Listener {
    /// Listen on `path` with permission bits `mode` (see the module's comment).
    pub fn bind(path: &Path, mode: u32, log_prefix: &'static str) -> Result<Listener, BindError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| BindError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let addr = SocketAddrUnix::new(path).map_err(|_| BindError::PathTooLong { path: path.into() })?;
        let bind_err = |e: Errno| BindError::Bind {
            path: path.into(),
            source: e.into(),
        };
        let fd = new_socket().map_err(bind_err)?;
        match bind_masked(&fd, &addr, mode) {
            Ok(()) => {}
            Err(Errno::ADDRINUSE) => {
                replace_stale(path, &addr, log_prefix)?;
                bind_masked(&fd, &addr, mode).map_err(|e| match e {
                    // Another server won the race for the path just cleared.
                    Errno::ADDRINUSE => BindError::Live { path: path.into() },
                    e => bind_err(e),
                })?;
            }
            Err(e) => return Err(bind_err(e)),
        }
        let ident = std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
        // From here on, dropping the listener removes the file again.
        let listener = Listener {
            fd,
            path: path.into(),
            ident,
            token: None,
            paused_until: None,
            log_prefix,
            warn_accept: WarnLimit::new(WARN_INTERVAL),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| BindError::Chmod {
            path: path.into(),
            mode,
            source,
        })?;
        net::listen(&listener.fd, 256).map_err(bind_err)?;
        Ok(listener)
    }

    /// Watch the listener in `reactor` under `token`.
    pub fn register(&mut self, reactor: &Reactor, token: Token) -> io::Result<()> {
        reactor.add(self.fd.as_fd(), token, Interest::Read)?;
        self.token = Some(token);
        Ok(())
    }

    /// Accept up to a batch of waiting connections. Out of open files or memory, accepting
    /// pauses (see the module's comment).
    pub fn accept(&mut self, reactor: &Reactor, now: Instant) -> Vec<Accepted> {
        let mut accepted = Vec::new();
        for _ in 0..ACCEPT_BATCH {
            match net::accept_with(&self.fd, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => {
                    let cred = peer_cred(fd.as_fd());
                    accepted.push(Accepted { fd, cred });
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) | Err(Errno::CONNABORTED) => continue,
                Err(e @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                    if let Some(note) = self.warn_accept.check(now) {
                        log::warn!(
                            "{}cannot accept a connection on {}: {e}; pausing for {}{note}",
                            self.log_prefix,
                            self.path.display(),
                            humantime::format_duration(ACCEPT_PAUSE),
                        );
                    }
                    reactor.delete(self.fd.as_fd());
                    self.paused_until = Some(now + ACCEPT_PAUSE);
                    break;
                }
                Err(e) => {
                    if let Some(note) = self.warn_accept.check(now) {
                        log::warn!(
                            "{}cannot accept a connection on {}: {e}{note}",
                            self.log_prefix,
                            self.path.display()
                        );
                    }
                    break;
                }
            }
        }
        accepted
    }

    /// When accepting resumes after a pause.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Resume accepting once a pause is over.
    pub fn on_deadline(&mut self, reactor: &Reactor, now: Instant) {
        if let (Some(until), Some(token)) = (self.paused_until, self.token)
            && until <= now
        {
            self.paused_until = None;
            if let Err(e) = reactor.add(self.fd.as_fd(), token, Interest::Read) {
                log::warn!(
                    "{}cannot resume accepting on {}: {e}",
                    self.log_prefix,
                    self.path.display()
                );
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let (Some(ident), Ok(meta)) = (self.ident, std::fs::symlink_metadata(&self.path))
            && (meta.dev(), meta.ino()) == ident
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            log::warn!(
                "{}cannot remove the socket {}: {}",
                self.log_prefix,
                self.path.display(),
                crate::error::os_text(&e)
            );
        }
    }
}

fn new_socket() -> Result<OwnedFd, Errno> {
    net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
}

/// Bind with a umask that leaves at most the owner's bits of `mode`: until the chmod that
/// follows, nobody else may connect. (The umask is the process's: holden and the agent bind
/// on their one thread, before anything else runs.)
fn bind_masked(fd: &OwnedFd, addr: &SocketAddrUnix, mode: u32) -> Result<(), Errno> {
    let mask = rustix::fs::Mode::from_raw_mode(0o777 & !(mode & 0o600));
    let old = rustix::process::umask(mask);
    let bound = net::bind(fd, addr);
    rustix::process::umask(old);
    bound
}

/// `path` is taken: remove it if it is a socket nobody listens on; refuse otherwise.
fn replace_stale(path: &Path, addr: &SocketAddrUnix, log_prefix: &str) -> Result<(), BindError> {
    let bind_err = |source: io::Error| BindError::Bind {
        path: path.into(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {}
        Ok(_) => return Err(BindError::NotSocket { path: path.into() }),
        // Gone meanwhile: nothing to replace.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bind_err(e)),
    }
    // "Alive" must last STALE_GRACE before it is believed (see there).
    let deadline = Instant::now() + STALE_GRACE;
    let connected = loop {
        let probe = new_socket().map_err(|e| bind_err(e.into()))?;
        match net::connect(&probe, addr) {
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other,
        }
    };
    match connected {
        // Someone accepts (or would, once its backlog drains): a live server.
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => Err(BindError::Live { path: path.into() }),
        Err(Errno::CONNREFUSED) | Err(Errno::NOENT) => {
            log::info!(
                "{log_prefix}replacing the stale socket {}: nothing listens on it",
                path.display()
            );
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(bind_err(e)),
            }
        }
        Err(e) => Err(bind_err(e.into())),
    }
}

#[cfg(test)]
mod tests;

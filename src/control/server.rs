//! The control socket's server side, driven by the supervisor's loop.
//!
//! Owns the listening socket and every connection: accepting (with the peer's uid checked by
//! SO_PEERCRED), reading and splitting lines, parsing requests, answering malformed ones
//! itself, buffering responses and events, idle timeouts, and the socket file's life (a stale
//! one from a dead holden replaced, a live one refused, ours removed at the end). Leaves to the
//! supervisor what each well-formed request means: `on_ready` hands them over, `reply`
//! carries the answers back.
//!
//! Nothing here blocks. Sockets are non-blocking and level-triggered; each wakeup reads at
//! most one chunk per connection and parses at most [`Limits::batch`] requests, so one busy
//! client cannot starve the others or the loop. Memory is bounded per connection: a request
//! line over [`Limits::max_line`] gets `too_large` and the connection is closed; a client that
//! does not read its responses stops being read (backpressure) and a watcher that falls
//! [`Limits::watch_buffer`] behind is dropped. A half-written request simply waits, and an
//! idle connection is closed after [`Limits::idle_timeout`] (watchers excepted).
//!
//! Responses go out in request order even though malformed requests are answered here and
//! well-formed ones by the supervisor: each parsed line takes a slot in the connection's
//! queue, and only the filled slots at its head are written.
//!
//! Kernel facts that shaped it: writes use MSG_NOSIGNAL so a vanished client is EPIPE, not a
//! SIGPIPE; a Unix socket closed with unread data still lets its peer read what was sent
//! before (the peer sees ECONNRESET only after that), so a refusal or `too_large` reply is
//! read by a client that is still writing; accept can fail with EMFILE, which a
//! level-triggered listener would report again at once, so accepting pauses briefly instead.

use std::collections::{HashMap, VecDeque};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{self, RecvFlags, SendFlags};

use super::protocol::{ErrorBody, ErrorCode, Event, MAX_REQUEST_LINE, Request, Response, parse_request};
use crate::listen::{
    Accepted, BindError, FD_RESERVE_BASE, FD_RESERVE_PER_PROGRAM, Listener, WARN_INTERVAL, WarnLimit, connection_budget,
};
use crate::reactor::{Interest, Owner, Reactor, Ready, Token};

mod access;
mod conn;
pub use access::{Access, Grants, forbidden_message, required};
use conn::Conn;

/// A connection, as the supervisor sees it: where to send the reply. Ids are never reused, so
/// a reply to a connection that closed meanwhile goes nowhere instead of to a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// Bounds that keep one client from costing holden more than its share.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line, newline excluded.
    pub max_line: usize,
    /// A connection that neither sends a complete request nor reads for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more are answered `busy` and closed.
    pub max_connections: usize,
    /// Requests parsed per connection per wakeup.
    pub batch: usize,
    /// A client with this much unread output is not read until it catches up.
    pub soft_output: usize,
    /// A client with this much unread output is dropped.
    pub max_output: usize,
    /// A watcher with this much unread output is dropped.
    pub watch_buffer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: MAX_REQUEST_LINE,
            idle_timeout: Duration::from_secs(30),
            max_connections: 1000,
            batch: 32,
            soft_output: 256 * 1024,
            max_output: 16 * 1024 * 1024,
            watch_buffer: 1024 * 1024,
        }
    }
}

/// Why the control socket cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot create {}: {}; run as root or set [supervisor] socket to a path you may write", .path.display(), crate::error::os_text(.source))]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("the control socket path {} is too long for a Unix socket (at most 107 bytes); set a shorter [supervisor] socket", .path.display())]
    PathTooLong { path: PathBuf },
    #[error("another holden is running on {}; stop it first, or set another [supervisor] socket", .path.display())]
    AlreadyRunning { path: PathBuf },
    #[error("{} exists and is not a socket; remove it, or set another [supervisor] socket", .path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot create the control socket {}: {}; run as root or set [supervisor] socket to a path you may write", .path.display(), crate::error::os_text(.source))]
    Bind { path: PathBuf, source: std::io::Error },
    #[error("cannot set mode {mode:04o} on the control socket {}: {}", .path.display(), crate::error::os_text(.source))]
    Chmod {
        path: PathBuf,
        mode: u32,
        source: std::io::Error,
    },
    #[error("cannot watch the control socket {}: {}", .path.display(), crate::error::os_text(.source))]
    Register { path: PathBuf, source: std::io::Error },
}

impl ControlError {
    /// The listener's error, worded for holden's users (the `[supervisor] socket` key).
    fn from_bind(e: BindError, path: &Path) -> ControlError {
        let path = path.to_path_buf();
        match e {
            BindError::CreateDir { path, source } => ControlError::CreateDir { path, source },
            BindError::PathTooLong { .. } => ControlError::PathTooLong { path },
            BindError::Live { .. } => ControlError::AlreadyRunning { path },
            BindError::NotSocket { .. } => ControlError::NotASocket { path },
            BindError::Bind { source, .. } => ControlError::Bind { path, source },
            BindError::Chmod { mode, source, .. } => ControlError::Chmod { path, mode, source },
        }
    }
}

/// What became of a connection after it was handled.
enum Fate {
    Keep,
    Close(&'static str),
}

/// The control socket. Dropping it closes every connection and removes the socket file, if
/// that file is still the one it created.
pub struct Server {
    /// Removes the socket file when dropped, if that file is still the one it created.
    listener: Listener,
    own_uid: u32,
    grants: Grants,
    limits: Limits,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    /// holden's soft RLIMIT_NOFILE, and the programs supervised: connections past
    /// [`connection_budget`] are told `busy`, so that clients never starve a spawn.
    fd_limit: u64,
    programs: usize,
    warn_busy: WarnLimit,
    warn_refused: WarnLimit,
    warn_forbidden: WarnLimit,
}

/// The listener's token; connections count from 1.
const LISTENER: Token = Token {
    owner: Owner::Control,
    id: 0,
};

impl Server {
    /// Create the socket at `path` (parent folders created) with permission bits `mode`, and
    /// register it with `reactor`. A stale socket file from a dead holden (connecting is
    /// refused) is replaced; a live one is refused with [`ControlError::AlreadyRunning`].
    pub fn bind(path: &Path, mode: u32, grants: &Grants, reactor: &Reactor) -> Result<Server, ControlError> {
        Server::bind_with(path, mode, grants, reactor, Limits::default())
    }

    /// [`Server::bind`] with other bounds (tests use a short idle timeout).
    pub fn bind_with(
        path: &Path,
        mode: u32,
        grants: &Grants,
        reactor: &Reactor,
        limits: Limits,
    ) -> Result<Server, ControlError> {
        let mut listener = Listener::bind(path, mode, "control: ").map_err(|e| ControlError::from_bind(e, path))?;
        listener
            .register(reactor, LISTENER)
            .map_err(|source| ControlError::Register {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Server {
            listener,
            own_uid: rustix::process::geteuid().as_raw(),
            grants: grants.clone(),
            limits,
            conns: HashMap::new(),
            next_id: 1,
            fd_limit: u64::MAX,
            programs: 0,
            warn_busy: WarnLimit::new(WARN_INTERVAL),
            warn_refused: WarnLimit::new(WARN_INTERVAL),
            warn_forbidden: WarnLimit::new(WARN_INTERVAL),
        })
    }

    /// Handle a readiness of the listener or of a connection (`Owner::Control`): accept, read, split
    /// lines, parse. Malformed requests are answered here; the well-formed ones are returned,
    /// in order, for the supervisor to answer with [`Server::reply`].
    pub fn on_ready(&mut self, reactor: &Reactor, ready: &Ready, now: Instant) -> Vec<(ConnId, Request)> {
        let mut requests = Vec::new();
        match ready.token.id {
            0 => self.accept(reactor, now),
            id => {
                let fate = match self.conns.get_mut(&id) {
                    Some(conn) => handle(
                        conn,
                        id,
                        ready,
                        now,
                        &self.limits,
                        &mut self.warn_forbidden,
                        &mut requests,
                    ),
                    None => Fate::Keep,
                };
                self.settle(reactor, id, fate);
            }
        }
        requests
    }

    /// Send the response to the oldest unanswered request of `conn`. Never blocks: what the
    /// socket does not take now is buffered and written when it turns writable.
    pub fn reply(&mut self, reactor: &Reactor, conn: ConnId, response: &Response) {
        let Some(c) = self.conns.get_mut(&conn.0) else {
            return;
        };
        let line = response.to_line();
        c.queued_bytes += line.len();
        match c.queue.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(line),
            None => {
                log::debug!("control: a reply to connection {} that asked nothing", conn.0);
                c.queue.push_back(Some(line));
            }
        }
        c.move_ready();
        let fate = if c.buffered() > self.limits.max_output {
            Fate::Close("its unread output passed the bound")
        } else {
            match c.flush(Instant::now()) {
                Ok(()) => Fate::Keep,
                Err(_) => Fate::Close("it went away"),
            }
        };
        self.settle(reactor, conn.0, fate);
    }

    /// Set the open files limit and the number of programs the connection budget is taken from.
    pub fn set_fd_budget(&mut self, fd_limit: u64, programs: usize) {
        self.fd_limit = fd_limit;
        self.programs = programs;
    }

    /// The grants in force.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// New grants (a reload): they apply to every request from now on, on open connections
    /// too; a connection whose peer lost every grant is told `not_permitted` and closed.
    pub fn set_grants(&mut self, reactor: &Reactor, grants: Grants) {
        self.grants = grants;
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.closing {
                continue;
            }
            match self.grants.access(c.uid, self.own_uid) {
                Some(access) => c.access = access,
                None => {
                    let uid = c.uid;
                    refuse(
                        c,
                        ErrorCode::NotPermitted,
                        format!("uid {uid} may no longer use this socket: a reload took its grant away"),
                    );
                    let fate = match c.flush(Instant::now()) {
                        Ok(()) => Fate::Keep,
                        Err(_) => Fate::Close("it went away"),
                    };
                    self.settle(reactor, id, fate);
                }
            }
        }
    }

    /// The number of programs supervised changed (add, remove, reload).
    pub fn update_programs(&mut self, programs: usize) {
        self.programs = programs;
    }

    /// Connections served at once now: the configured bound, or fewer where the open files
    /// limit keeps a reserve for supervision.
    pub fn max_connections(&self) -> usize {
        self.limits
            .max_connections
            .min(connection_budget(self.fd_limit, self.programs))
    }

    /// Make `conn` a watcher: it receives every broadcast event from now on, and is exempt
    /// from the idle timeout. The supervisor calls this for `Request::Watch`, after replying
    /// with the snapshot.
    pub fn watch(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn.0) {
            c.watcher = true;
        }
    }

    /// Send `event` to every watcher. A watcher too slow to keep up is dropped.
    pub fn broadcast(&mut self, reactor: &Reactor, event: &Event) {
        let line = event.to_line();
        let now = Instant::now();
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.watcher)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            c.push_line(line.clone());
            let fate = if c.buffered() > self.limits.watch_buffer {
                Fate::Close("a watcher fell too far behind")
            } else {
                match c.flush(now) {
                    Ok(()) => Fate::Keep,
                    Err(_) => Fate::Close("it went away"),
                }
            };
            self.settle(reactor, id, fate);
        }
    }

    /// Are there watchers (so that the supervisor can skip building events nobody reads)?
    pub fn has_watchers(&self) -> bool {
        self.conns.values().any(|c| c.watcher)
    }

    /// The nearest idle timeout or end of an accept pause, for the loop's epoll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (_, idle) = self.idle(Instant::now());
        match (idle, self.listener.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Close the connections idle past their timeout; resume accepting after a pause.
    pub fn on_deadline(&mut self, reactor: &Reactor, now: Instant) {
        self.listener.on_deadline(reactor, now);
        let timeout = self.limits.idle_timeout;
        let (idle, _) = self.idle(now);
        for id in idle {
            if let Some(c) = self.conns.get_mut(&id)
                && c.buffered() == 0
            {
                // Best effort: a client with a half-written request learns why it was cut off.
                let line = Response::error(
                    ErrorCode::Timeout,
                    format!(
                        "no complete request within {}; closing the connection",
                        humantime::format_duration(timeout)
                    ),
                )
                .to_line();
                let _ = net::send(&c.fd, &line, SendFlags::NOSIGNAL | SendFlags::DONTWAIT);
            }
            self.settle(reactor, id, Fate::Close("it was idle too long"));
        }
    }

    /// The connections idle past the timeout (watchers are never idle), and when the next one
    /// will be.
    fn idle(&self, now: Instant) -> (Vec<u64>, Option<Instant>) {
        let conns = self.conns.iter().filter(|(_, c)| !c.watcher);
        crate::listen::idle(conns.map(|(id, c)| (*id, c.last_active)), self.limits.idle_timeout, now)
    }

    fn accept(&mut self, reactor: &Reactor, now: Instant) {
        for Accepted { fd, cred } in self.listener.accept(reactor, now) {
            let id = self.next_id;
            self.next_id += 1;
            let mut conn = Conn {
                fd,
                inbuf: Vec::new(),
                out: Vec::new(),
                out_pos: 0,
                queue: VecDeque::new(),
                queued_bytes: 0,
                watcher: false,
                eof: false,
                closing: false,
                last_active: now,
                registered: None,
                uid: u32::MAX,
                access: Access::Read,
            };
            // Not rustix's socket_peercred (see sys::peer): the uid is right even when the peer
            // is outside holden's PID namespace.
            match cred {
                Ok(cred) => match self.grants.access(cred.uid, self.own_uid) {
                    Some(access) => {
                        conn.uid = cred.uid;
                        conn.access = access;
                        let max = self.max_connections();
                        if self.conns.len() >= max {
                            if let Some(note) = self.warn_busy.check(now) {
                                log::warn!(
                                    "control: {} connections already open (at most {max}: {} of the open files limit {} are kept for supervising {} program{}); refusing one more with busy{}",
                                    self.conns.len(),
                                    FD_RESERVE_BASE + FD_RESERVE_PER_PROGRAM * self.programs as u64,
                                    self.fd_limit,
                                    self.programs,
                                    if self.programs == 1 { "" } else { "s" },
                                    note
                                );
                            }
                            refuse(
                                &mut conn,
                                ErrorCode::Busy,
                                format!("holden is serving too many connections ({max} at most); try again"),
                            );
                        }
                    }
                    None => {
                        let uid = cred.uid;
                        if let Some(note) = self.warn_refused.check(now) {
                            log::warn!(
                                "control: refused a connection from uid {uid} (pid {}): not root, not holden's uid, not in read_uids, allow_uids or admin_uids{}",
                                cred.pid,
                                note
                            );
                        }
                        refuse(
                            &mut conn,
                            ErrorCode::NotPermitted,
                            format!(
                                "uid {uid} may not use this socket; run as root, or ask for uid {uid} in read_uids (status, logs) or allow_uids (also start, stop, restart, signal)"
                            ),
                        );
                    }
                },
                Err(e) => {
                    if let Some(note) = self.warn_refused.check(now) {
                        log::warn!("control: cannot read a peer's credentials ({e}); refusing it{}", note);
                    }
                    refuse(
                        &mut conn,
                        ErrorCode::NotPermitted,
                        "holden cannot tell who you are; refusing".into(),
                    );
                }
            }
            let fate = match conn.flush(now) {
                Ok(()) => Fate::Keep,
                Err(_) => Fate::Close("it went away"),
            };
            self.conns.insert(id, conn);
            self.settle(reactor, id, fate);
        }
    }

    /// Bring a connection's registration in line with what it needs, or close it.
    fn settle(&mut self, reactor: &Reactor, id: u64, fate: Fate) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let done = match fate {
            Fate::Close(why) => Some(why),
            Fate::Keep => {
                let drained = c.buffered() == 0 && !c.awaiting();
                if c.closing && drained {
                    Some("refused or too large")
                } else if c.eof && !c.watcher && drained && !c.has_pending_line() {
                    Some("the client finished")
                } else {
                    None
                }
            }
        };
        if let Some(why) = done {
            log::debug!("control: closing connection {id}: {why}");
            let c = self.conns.remove(&id).expect("present above");
            if c.registered.is_some() {
                reactor.delete(c.fd.as_fd());
            }
            if c.closing {
                // Let the client read what it was told before it sees the end.
                let _ = net::shutdown(&c.fd, net::Shutdown::Write);
            }
            return;
        }
        let room = c.buffered() < self.limits.soft_output;
        let pending = c.has_pending_line();
        let want_read = !c.eof && !c.closing && room && !pending;
        let want_write = c.unwritten() > 0 || (pending && room);
        let interest = match (want_read, want_write) {
            (true, true) => Some(Interest::ReadWrite),
            (true, false) => Some(Interest::Read),
            (false, true) => Some(Interest::Write),
            (false, false) => None,
        };
        if interest == c.registered {
            return;
        }
        let token = Token::new(Owner::Control, id);
        let result = match (c.registered, interest) {
            (None, Some(i)) => reactor.add(c.fd.as_fd(), token, i),
            (Some(_), Some(i)) => reactor.modify(c.fd.as_fd(), token, i),
            (Some(_), None) => {
                reactor.delete(c.fd.as_fd());
                Ok(())
            }
            (None, None) => Ok(()),
        };
        match result {
            Ok(()) => c.registered = interest,
            Err(e) => {
                log::warn!("control: cannot watch connection {id}: {e}; closing it");
                let c = self.conns.remove(&id).expect("present above");
                reactor.delete(c.fd.as_fd());
            }
        }
    }
}

/// Queue one error line and close after it is written.
fn refuse(conn: &mut Conn, code: ErrorCode, message: String) {
    conn.push_line(Response::Err(ErrorBody::new(code, message)).to_line());
    conn.closing = true;
}

/// One readiness of one connection: write, read a chunk, parse lines.
fn handle(
    conn: &mut Conn,
    id: u64,
    ready: &Ready,
    now: Instant,
    limits: &Limits,
    warn: &mut WarnLimit,
    requests: &mut Vec<(ConnId, Request)>,
) -> Fate {
    if conn.unwritten() > 0 && conn.flush(now).is_err() {
        return Fate::Close("it went away");
    }
    let reading = !conn.eof && !conn.closing && conn.buffered() < limits.soft_output && !conn.has_pending_line();
    if reading && (ready.readable || ready.hangup) {
        // Read at most one chunk: past the line bound there is nothing more to learn.
        let want = (limits.max_line + 1)
            .saturating_sub(conn.inbuf.len())
            .clamp(1, 64 * 1024);
        let start = conn.inbuf.len();
        conn.inbuf.resize(start + want, 0);
        match net::recv(&conn.fd, &mut conn.inbuf[start..], RecvFlags::DONTWAIT) {
            Ok((0, _)) => {
                conn.inbuf.truncate(start);
                conn.eof = true;
            }
            Ok((n, _)) => {
                conn.inbuf.truncate(start + n);
                conn.last_active = now;
            }
            Err(Errno::AGAIN) | Err(Errno::INTR) => conn.inbuf.truncate(start),
            Err(_) => return Fate::Close("it went away"),
        }
    }
    parse_lines(conn, id, limits, warn, now, requests);
    if conn.unwritten() > 0 && conn.flush(now).is_err() {
        return Fate::Close("it went away");
    }
    Fate::Keep
}

/// Parse up to `limits.batch` complete lines of `conn`'s input.
fn parse_lines(
    conn: &mut Conn,
    id: u64,
    limits: &Limits,
    warn: &mut WarnLimit,
    now: Instant,
    requests: &mut Vec<(ConnId, Request)>,
) {
    for _ in 0..limits.batch {
        if conn.closing {
            return;
        }
        let line: Vec<u8> = match conn.inbuf.iter().position(|&b| b == b'\n') {
            Some(pos) if pos > limits.max_line => {
                too_large(conn, limits);
                return;
            }
            Some(pos) => {
                let mut line: Vec<u8> = conn.inbuf.drain(..=pos).collect();
                line.pop();
                line
            }
            None if conn.inbuf.len() > limits.max_line => {
                too_large(conn, limits);
                return;
            }
            None if conn.eof && !conn.inbuf.is_empty() => std::mem::take(&mut conn.inbuf),
            None => return,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_request(line) {
            Ok(request) if required(&request) > conn.access => {
                let need = required(&request);
                if let Some(note) = warn.check(now) {
                    log::info!(
                        "control: refused {} from uid {}: it needs {} access{}",
                        request.command(),
                        conn.uid,
                        need.word(),
                        note
                    );
                }
                let body = ErrorBody::new(
                    ErrorCode::Forbidden,
                    forbidden_message(conn.uid, request.command(), need),
                );
                conn.push_line(Response::Err(body).to_line());
            }
            Ok(request) => {
                conn.queue.push_back(None);
                requests.push((ConnId(id), request));
            }
            Err(body) => conn.push_line(Response::Err(body).to_line()),
        }
    }
}

fn too_large(conn: &mut Conn, limits: &Limits) {
    conn.inbuf = Vec::new();
    let body = ErrorBody::new(
        ErrorCode::TooLarge,
        format!(
            "the request is longer than {} bytes; closing the connection",
            limits.max_line
        ),
    );
    refuse(conn, body.code, body.message);
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_support;

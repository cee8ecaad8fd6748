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
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{self, RecvFlags, SendFlags};

use super::protocol::{ErrorBody, ErrorCode, Event, MAX_REQUEST_LINE, Request, Response, parse_request};
use crate::listen::{
    Accepted, BindError, FD_RESERVE_BASE, FD_RESERVE_PER_PROGRAM, Listener, WARN_INTERVAL, WarnLimit, connection_budget,
};
use crate::reactor::{Interest, Owner, Reactor, Ready, Token};

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

/// What a peer may ask for: each level includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// status, watch, log_paths.
    Read,
    /// Read, and start, stop, restart, signal.
    Operate,
    /// Everything: add, remove, constrain, reload, reopen, shutdown too.
    Admin,
}

impl Access {
    /// The word used in messages and docs.
    pub fn word(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Operate => "operate",
            Access::Admin => "admin",
        }
    }
}

/// The access a request needs.
pub fn required(request: &Request) -> Access {
    match request {
        Request::Status { .. } | Request::Watch | Request::LogPaths { .. } => Access::Read,
        Request::Start { .. } | Request::Stop { .. } | Request::Restart { .. } | Request::Signal { .. } => {
            Access::Operate
        }
        Request::Constrain { .. }
        | Request::Add { .. }
        | Request::Remove { .. }
        | Request::Reopen
        | Request::Reload
        | Request::Shutdown => Access::Admin,
    }
}

/// Who may do what on the socket, from `[supervisor]`: root and holden's own uid may do
/// everything, and so may `admin_uids`; `allow_uids` may read and operate; `read_uids` may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub read_uids: Vec<u32>,
    pub allow_uids: Vec<u32>,
    pub admin_uids: Vec<u32>,
}

impl Grants {
    /// The grants of a `[supervisor]` table.
    pub fn from_settings(s: &crate::config::SupervisorSettings) -> Grants {
        Grants {
            read_uids: s.read_uids.clone(),
            allow_uids: s.allow_uids.clone(),
            admin_uids: s.admin_uids.clone(),
        }
    }

    /// The access of a peer with `uid`, or `None`: it may not use the socket at all.
    pub fn access(&self, uid: u32, own_uid: u32) -> Option<Access> {
        if uid == 0 || uid == own_uid || self.admin_uids.contains(&uid) {
            Some(Access::Admin)
        } else if self.allow_uids.contains(&uid) {
            Some(Access::Operate)
        } else if self.read_uids.contains(&uid) {
            Some(Access::Read)
        } else {
            None
        }
    }
}

/// The sentence for a request that needs more than the peer has.
pub fn forbidden_message(uid: u32, command: &str, need: Access) -> String {
    match need {
        Access::Read => format!("uid {uid} may not {command}: reading needs read_uids, allow_uids or admin_uids"),
        Access::Operate => format!(
            "uid {uid} may not {command}: start, stop, restart and signal need uid {uid} in allow_uids (or admin_uids) in [supervisor]"
        ),
        Access::Admin => format!(
            "uid {uid} may not {command}: add, remove, constrain, reload, reopen and shutdown are for root, holden's own uid and admin_uids only (an admin can run programs as holden's user)"
        ),
    }
}

struct Conn {
    fd: OwnedFd,
    /// Bytes read and not yet parsed.
    inbuf: Vec<u8>,
    /// Bytes ready to write; `out[out_pos..]` is unwritten.
    out: Vec<u8>,
    out_pos: usize,
    /// Lines waiting for their turn: `None` is a request the supervisor has not answered yet.
    queue: VecDeque<Option<Vec<u8>>>,
    queued_bytes: usize,
    watcher: bool,
    /// The peer shut down its writing side: answer what was asked, read nothing more.
    eof: bool,
    /// Close once everything queued is written (refused, too large, busy).
    closing: bool,
    /// The peer's uid and what it may ask for.
    uid: u32,
    access: Access,
    last_active: Instant,
    registered: Option<Interest>,
}

impl Conn {
    fn unwritten(&self) -> usize {
        self.out.len() - self.out_pos
    }

    fn buffered(&self) -> usize {
        self.unwritten() + self.queued_bytes
    }

    fn awaiting(&self) -> bool {
        self.queue.iter().any(Option::is_none)
    }

    /// A complete line (or, after EOF, a last unterminated one) waits to be parsed.
    fn has_pending_line(&self) -> bool {
        !self.closing && (self.inbuf.contains(&b'\n') || (self.eof && !self.inbuf.is_empty()))
    }

    fn push_line(&mut self, line: Vec<u8>) {
        self.queued_bytes += line.len();
        self.queue.push_back(Some(line));
        self.move_ready();
    }

    /// Move the filled slots at the head of the queue to the output buffer.
    fn move_ready(&mut self) {
        while let Some(Some(_)) = self.queue.front() {
            let Some(Some(line)) = self.queue.pop_front() else {
                unreachable!("checked above")
            };
            self.queued_bytes -= line.len();
            if self.out_pos > 0 && self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            self.out.extend_from_slice(&line);
        }
    }

    /// Write what can be written now. Err: the peer is gone.
    fn flush(&mut self, now: Instant) -> Result<(), Errno> {
        while self.out_pos < self.out.len() {
            match net::send(
                &self.fd,
                &self.out[self.out_pos..],
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Ok(0) => return Err(Errno::PIPE),
                Ok(n) => {
                    self.out_pos += n;
                    self.last_active = now;
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 && self.out_pos * 2 > self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
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
mod tests {
    use super::test_support::TestServer;
    use super::*;
    use crate::control::protocol::{ProgramStatus, Reply};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn peers_are_served_when_root_own_uid_or_allowed() {
        let g = Grants {
            read_uids: vec![7],
            allow_uids: vec![65534],
            admin_uids: vec![42],
        };
        assert_eq!(g.access(0, 1000), Some(Access::Admin));
        assert_eq!(g.access(1000, 1000), Some(Access::Admin));
        assert_eq!(g.access(42, 0), Some(Access::Admin));
        assert_eq!(g.access(65534, 0), Some(Access::Operate));
        assert_eq!(g.access(7, 0), Some(Access::Read));
        assert_eq!(g.access(8, 0), None);
        assert_eq!(Grants::default().access(65534, 1000), None);
        assert_eq!(required(&Request::Status { names: vec![] }), Access::Read);
        assert_eq!(required(&Request::Watch), Access::Read);
        assert_eq!(
            required(&Request::Stop {
                names: vec!["a".into()],
                all: false
            }),
            Access::Operate
        );
        assert_eq!(required(&Request::Shutdown), Access::Admin);
        assert_eq!(required(&Request::Remove { name: "a".into() }), Access::Admin);
        assert!(!forbidden_message(5, "add", Access::Admin).contains("allow_uids"));
    }

    /// A server answering `status` with one fake program, `watch` with the same plus a
    /// subscription, `shutdown` by broadcasting an event to watchers, and `reopen` by
    /// broadcasting a hundred.
    struct Harness(TestServer);

    fn fake_status() -> Response {
        Response::Ok(Reply::Status {
            programs: vec![ProgramStatus {
                name: "web".into(),
                state: "RUNNING".into(),
                pid: Some(1),
                since: 0.0,
                restarts: 0,
                last_exit: None,
                memory_bytes: None,
                memory_limit: None,
                cpu_usage_usec: None,
                cpu_limit: None,
                pids_limit: None,
                cgroup: None,
                transient: false,
                ready: false,
                health: None,
                status_text: None,
                started: None,
                pids_current: None,
                program: "web".into(),
                instance: None,
                group: None,
                groups: Vec::new(),
            }],
        })
    }

    impl Harness {
        fn start(limits: Limits) -> Harness {
            Harness(TestServer::start(limits, |server, reactor, conn, req| match req {
                Request::Status { .. } => server.reply(reactor, conn, &fake_status()),
                Request::Watch => {
                    server.reply(reactor, conn, &fake_status());
                    server.watch(conn);
                }
                Request::Reopen => {
                    server.reply(reactor, conn, &Response::Ok(Reply::Done {}));
                    for _ in 0..100 {
                        server.broadcast(reactor, &Event::Removed { name: "web".into() });
                    }
                }
                Request::Shutdown => {
                    server.reply(reactor, conn, &Response::Ok(Reply::Done {}));
                    server.broadcast(reactor, &Event::Removed { name: "web".into() });
                }
                other => server.reply(
                    reactor,
                    conn,
                    &Response::error(ErrorCode::Failed, format!("test has no {}", other.command())),
                ),
            }))
        }

        fn connect(&self) -> UnixStream {
            let s = UnixStream::connect(&self.0.path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        }
    }

    fn read_line(r: &mut BufReader<UnixStream>) -> String {
        let mut s = String::new();
        r.read_line(&mut s).expect("a line within the timeout");
        s
    }

    fn ask(h: &Harness, line: &[u8]) -> String {
        let mut s = h.connect();
        s.write_all(line).unwrap();
        read_line(&mut BufReader::new(s))
    }

    fn assert_serving(h: &Harness) {
        let l = ask(h, b"{\"cmd\":\"status\"}\n");
        assert!(l.starts_with("{\"ok\":true,\"programs\":[{\"name\":\"web\""), "{l}");
    }

    #[test]
    fn serves_root_and_answers_in_request_order() {
        let h = Harness::start(Limits::default());
        let s = h.connect();
        let mut w = s.try_clone().unwrap();
        // Good and bad requests pipelined in one write: answers come back in order.
        w.write_all(
            b"{\"cmd\":\"status\"}\nnot json\n{\"cmd\":\"fly\"}\n\n{\"cmd\":\"reload\"}\r\n{\"cmd\":\"status\"}\n",
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let lines: Vec<String> = (0..5).map(|_| read_line(&mut r)).collect();
        assert!(lines[0].contains("\"programs\""), "{lines:?}");
        assert!(lines[1].contains("\"bad_request\""), "{lines:?}");
        assert!(lines[2].contains("\"unknown_command\""), "{lines:?}");
        assert!(lines[3].contains("test has no reload"), "{lines:?}");
        assert!(lines[4].contains("\"programs\""), "{lines:?}");
    }

    #[test]
    fn a_request_without_newline_is_answered_when_the_client_shuts_down_writing() {
        let h = Harness::start(Limits::default());
        let s = h.connect();
        (&s).write_all(b"{\"cmd\":\"status\"}").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut all = String::new();
        (&s).read_to_string(&mut all).unwrap();
        assert!(all.starts_with("{\"ok\":true,\"programs\""), "{all}");
        assert_eq!(
            all.matches('\n').count(),
            1,
            "one answer, then the server closes: {all}"
        );
    }

    #[test]
    fn garbage_and_a_ten_mib_line_leave_it_serving_others() {
        let h = Harness::start(Limits::default());
        let l = ask(&h, b"\x00\x01\x02garbage\xff\n");
        assert!(l.contains("\"bad_request\""), "{l}");

        let big = h.connect();
        let writer = {
            let mut w = big.try_clone().unwrap();
            std::thread::spawn(move || {
                let chunk = vec![b'x'; 1024 * 1024];
                // The server stops reading and closes after its answer: writing fails then.
                for _ in 0..10 {
                    if w.write_all(&chunk).is_err() {
                        return;
                    }
                }
                let _ = w.write_all(b"\n");
            })
        };
        let mut r = BufReader::new(big);
        let l = read_line(&mut r);
        assert!(l.contains("\"too_large\""), "{l}");
        writer.join().unwrap();
        assert_serving(&h);
    }

    #[test]
    fn a_half_written_request_waits_and_others_are_served_meanwhile() {
        let h = Harness::start(Limits::default());
        let slow = h.connect();
        (&slow).write_all(b"{\"cmd\":\"sta").unwrap();
        assert_serving(&h);
        (&slow).write_all(b"tus\"}\n").unwrap();
        let l = read_line(&mut BufReader::new(slow));
        assert!(l.contains("\"programs\""), "{l}");
    }

    #[test]
    fn idle_connections_time_out_and_watchers_do_not() {
        let h = Harness::start(Limits {
            idle_timeout: Duration::from_millis(200),
            ..Limits::default()
        });
        let idle = h.connect();
        (&idle).write_all(b"{\"cmd\":").unwrap();
        let watcher = h.connect();
        (&watcher).write_all(b"{\"cmd\":\"watch\"}\n").unwrap();
        let mut wr = BufReader::new(watcher.try_clone().unwrap());
        assert!(read_line(&mut wr).contains("\"programs\""));
        // The idle one is told and closed (read returns the error line, then EOF).
        let mut all = String::new();
        (&idle).read_to_string(&mut all).unwrap();
        assert!(all.contains("\"timeout\""), "{all}");
        // The watcher outlived that timeout and still receives events.
        let l = ask(&h, b"{\"cmd\":\"shutdown\"}\n");
        assert_eq!(l, "{\"ok\":true}\n");
        assert_eq!(read_line(&mut wr), "{\"event\":\"removed\",\"name\":\"web\"}\n");
    }

    #[test]
    fn two_hundred_idle_connections_leave_it_serving_others() {
        let h = Harness::start(Limits::default());
        let idle: Vec<UnixStream> = (0..200).map(|_| h.connect()).collect();
        for (i, s) in idle.iter().enumerate() {
            if i % 2 == 0 {
                let mut s = s;
                s.write_all(b"{\"cmd\"").unwrap();
            }
        }
        for _ in 0..5 {
            assert_serving(&h);
        }
        // Each idle one is still connected and served once it completes its request.
        let mut last = idle.into_iter().last().unwrap();
        last.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
        assert!(read_line(&mut BufReader::new(last)).contains("\"programs\""));
    }

    #[test]
    fn connections_past_the_bound_are_told_busy_and_closed() {
        let h = Harness::start(Limits {
            max_connections: 3,
            ..Limits::default()
        });
        // The harness keeps none open; these two plus one fill the bound.
        let _a = h.connect();
        let _b = h.connect();
        let c = h.connect();
        (&c).write_all(b"{\"cmd\":\"status\"}\n").unwrap();
        assert!(read_line(&mut BufReader::new(c.try_clone().unwrap())).contains("\"programs\""));
        let d = h.connect();
        let mut all = String::new();
        (&d).read_to_string(&mut all).unwrap();
        assert!(all.contains("\"code\":\"busy\""), "{all}");
        drop(_a);
        // A freed place is served again (the close may take a wakeup to be noticed).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = h.connect();
            (&e).write_all(b"{\"cmd\":\"status\"}\n").unwrap();
            if read_line(&mut BufReader::new(e)).contains("\"programs\"") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never served again after a connection closed"
            );
        }
    }

    #[test]
    fn a_client_that_never_reads_does_not_stall_others() {
        let h = Harness::start(Limits::default());
        let hog = h.connect();
        let mut w = hog.try_clone().unwrap();
        w.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
        // Thousands of status requests, never reading an answer: the server stops reading
        // it once its unread output passes the bound, so our writes eventually stall.
        let line = b"{\"cmd\":\"status\"}\n".repeat(1000);
        let mut stalled = false;
        for _ in 0..1000 {
            if w.write_all(&line).is_err() {
                stalled = true;
                break;
            }
        }
        assert!(stalled, "the server kept reading a client that never reads");
        assert_serving(&h);
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holden.sock");
        let reactor = Reactor::new().unwrap();
        {
            // A socket file nobody listens on: what a killed holden leaves.
            let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
            drop(l);
        }
        assert!(path.exists());
        let first = Server::bind(&path, 0o600, &Grants::default(), &reactor).expect("stale socket replaced");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        match Server::bind(&path, 0o600, &Grants::default(), &reactor) {
            Err(e @ ControlError::AlreadyRunning { .. }) => {
                assert_eq!(
                    e.to_string(),
                    format!(
                        "another holden is running on {}; stop it first, or set another [supervisor] socket",
                        path.display()
                    )
                );
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a live socket was taken over"),
        }
        // The refused attempt did not remove the live socket.
        assert!(UnixStream::connect(&path).is_ok());
        drop(first);
        assert!(!path.exists(), "close removes the socket file");

        std::fs::write(&path, "not a socket").unwrap();
        assert!(matches!(
            Server::bind(&path, 0o600, &Grants::default(), &reactor),
            Err(ControlError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
    }

    #[test]
    fn close_leaves_a_socket_file_that_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holden.sock");
        let reactor = Reactor::new().unwrap();
        let server = Server::bind(&path, 0o660, &Grants::default(), &reactor).unwrap();
        std::fs::remove_file(&path).unwrap();
        let newer = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(server);
        assert!(path.exists(), "a newer holden's socket was removed");
        drop(newer);
    }

    #[test]
    fn a_watcher_that_does_not_read_is_dropped_and_others_keep_events() {
        let h = Harness::start(Limits {
            watch_buffer: 4096,
            ..Limits::default()
        });
        let slow = h.connect();
        (&slow).write_all(b"{\"cmd\":\"watch\"}\n").unwrap();
        let good = h.connect();
        (&good).write_all(b"{\"cmd\":\"watch\"}\n").unwrap();
        let mut gr = BufReader::new(good.try_clone().unwrap());
        assert!(read_line(&mut gr).contains("\"programs\""));
        let mut sr = BufReader::new(slow.try_clone().unwrap());
        assert!(read_line(&mut sr).contains("\"programs\""));
        // Enough events to fill the socket buffers and the 4 KiB bound many times over.
        let mut ctl = h.connect();
        let mut cr = BufReader::new(ctl.try_clone().unwrap());
        for _ in 0..200 {
            ctl.write_all(b"{\"cmd\":\"reopen\"}\n").unwrap();
            assert_eq!(read_line(&mut cr), "{\"ok\":true}\n");
            for _ in 0..100 {
                assert_eq!(read_line(&mut gr), "{\"event\":\"removed\",\"name\":\"web\"}\n");
            }
        }
        // The slow one was cut off: reading it to the end finishes (EOF) instead of blocking.
        let mut rest = Vec::new();
        sr.read_to_end(&mut rest).expect("the slow watcher was closed");
        assert!(rest.len() < 20_000 * 36, "the slow watcher got every event");
    }
}

/// A server on a temp socket, driven by a reactor loop in a thread, answering with `handler`:
/// for tests of the server and of the client against a real socket.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};

    pub(crate) struct TestServer {
        _dir: tempfile::TempDir,
        pub(crate) path: PathBuf,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl TestServer {
        pub(crate) fn start(
            limits: Limits,
            mut handler: impl FnMut(&mut Server, &Reactor, ConnId, Request) + Send + 'static,
        ) -> TestServer {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("sub/holden.sock");
            let (tx, rx) = mpsc::channel();
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let p = path.clone();
            let thread = std::thread::spawn(move || {
                let mut reactor = Reactor::new().unwrap();
                let mut server = Server::bind_with(&p, 0o600, &Grants::default(), &reactor, limits).unwrap();
                tx.send(()).unwrap();
                while !stop2.load(Ordering::Relaxed) {
                    let ready = reactor.wait(server.next_deadline()).unwrap();
                    for r in &ready {
                        for (conn, req) in server.on_ready(&reactor, r, Instant::now()) {
                            handler(&mut server, &reactor, conn, req);
                        }
                    }
                    server.on_deadline(&reactor, Instant::now());
                }
                drop(server);
            });
            rx.recv_timeout(Duration::from_secs(10)).expect("server bound");
            TestServer {
                _dir: dir,
                path,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            // A new connection wakes the loop so that it sees `stop`.
            let _ = UnixStream::connect(&self.path);
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }
}

//! `holden agent`: the stateless spawner's event loop.
//!
//! One thread, one epoll loop over the listening socket, the client connections and the signal
//! self-pipe. Every socket is non-blocking, every connection has a bounded input buffer (one
//! frame at most) and at most one answer waiting to be written: while an answer is pending the
//! connection is not read, so a client that does not read its answers only stalls itself. A
//! connection silent for `idle_timeout` is closed. Nothing a client sends can block the loop.
//!
//! Per START_PROCESS the agent spawns the command, opens its pidfd, sends it with the answer
//! (SCM_RIGHTS) and closes its own copy: it keeps no record of what it spawned. It reaps every
//! child that dies (SIGCHLD through the self-pipe, then `wait(WNOHANG)` until nothing is left),
//! only on the loop's thread. That discipline is what makes `pidfd_open(pid)` right after
//! `spawn()` safe: nothing else can reap the child and let its pid be reused in between.
//! Reaping also records the exit status in the pidfd, which is how callers (who are not the
//! parent) learn it. As PID 1 of a container the same loop reaps every orphan.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions};

use super::frame::{self, HEADER_LEN, MAX_PAYLOAD, Message, StartProcess};
use crate::listen::{Accepted, BindError, Listener, WARN_INTERVAL, WarnLimit, connection_budget, nofile_limit};
use crate::reactor::{Interest, Owner, Reactor, Signals, Token};

/// How long a connection may stay silent before the agent closes it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are accepted, answered with a PROCESS_ERROR `EAGAIN`
/// frame and closed (docs/agent-protocol.md).
pub const MAX_CONNECTIONS: usize = 1024;
/// Requests served from one connection per turn of the loop, so that a client that pipelines
/// thousands of requests takes turns with the others instead of holding the loop.
const REQUESTS_PER_TURN: usize = 16;
/// The listener's token id; connections count from 1.
const LISTENER_ID: u64 = 0;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create {}: {source}; create it or choose another --socket", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "another agent is listening on {}; stop it or choose another --socket",
        path.display()
    )]
    Live { path: PathBuf },
    #[error(
        "{} exists and is not a socket; remove it or choose another --socket",
        path.display()
    )]
    NotSocket { path: PathBuf },
    #[error("the socket path {} is too long for a Unix socket (at most 107 bytes); choose a shorter --socket", path.display())]
    PathTooLong { path: PathBuf },
    #[error("cannot listen on {}: {}", path.display(), crate::error::os_text(source))]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the agent's event loop failed: {0}")]
    Loop(#[source] io::Error),
}

/// Who may use the agent, besides root and the agent's own uid.
#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub allow_uids: Vec<u32>,
    pub idle_timeout: Duration,
}

/// Serve until SIGTERM or SIGINT, then remove the socket. Spawned processes live on.
pub fn serve(opts: &Options) -> Result<(), ServerError> {
    // Spawned processes get exactly fds 0, 1 and 2: what the agent inherited (fds from its
    // caller) is marked close-on-exec once here, and everything it opens itself already is.
    // Doing it once keeps spawns on posix_spawn (a pre_exec step would force a fork each).
    crate::sys::exec::cloexec_inherited();
    // Removes the socket when dropped, unless a successor's has replaced it.
    let listener = bind(&opts.socket)?;
    Server::new(listener, opts)
        .and_then(|mut s| s.run())
        .map_err(ServerError::Loop)
}

/// Listen on `path` (mode 0600), worded for the agent's users (the `--socket` option).
fn bind(path: &Path) -> Result<Listener, ServerError> {
    let path_buf = path.to_path_buf();
    Listener::bind(path, 0o600, "").map_err(|e| match e {
        BindError::CreateDir { path, source } => ServerError::Dir { path, source },
        BindError::PathTooLong { .. } => ServerError::PathTooLong { path: path_buf },
        BindError::Live { .. } => ServerError::Live { path: path_buf },
        BindError::NotSocket { .. } => ServerError::NotSocket { path: path_buf },
        BindError::Bind { source, .. } | BindError::Chmod { source, .. } => {
            ServerError::Bind { path: path_buf, source }
        }
    })
}

struct Outgoing {
    bytes: Vec<u8>,
    sent: usize,
    /// Sent with the first byte of `bytes`, then closed.
    fd: Option<OwnedFd>,
}

struct Conn {
    stream: UnixStream,
    input: Vec<u8>,
    output: VecDeque<Outgoing>,
    last_activity: Instant,
    /// Close once the output is written (peer finished, framing lost, or peer refused).
    closing: bool,
    interest: Interest,
}

struct Server<'a> {
    opts: &'a Options,
    listener: Listener,
    reactor: Reactor,
    signals: Signals,
    conns: HashMap<u64, Conn>,
    /// Connections with complete requests left over from their last turn.
    busy: VecDeque<u64>,
    next_id: u64,
    own_uid: u32,
    /// [`MAX_CONNECTIONS`], or fewer where the open files limit keeps a reserve for the
    /// listener, the loop and the pidfds in flight.
    max_conns: usize,
    /// Refusals are logged at most once per interval, with a count.
    warn_full: WarnLimit,
    warn_refused: WarnLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Keep,
    /// Complete requests are still buffered: serve them on the next turn, after the others.
    More,
    Close,
}

impl<'a> Server<'a> {
    fn new(mut listener: Listener, opts: &'a Options) -> io::Result<Server<'a>> {
        let reactor = Reactor::new()?;
        listener.register(&reactor, Token::new(Owner::Agent, LISTENER_ID))?;
        let signals = Signals::install(
            &reactor,
            &[
                signal_hook::consts::SIGCHLD,
                signal_hook::consts::SIGTERM,
                signal_hook::consts::SIGINT,
            ],
        )?;
        Ok(Server {
            opts,
            listener,
            reactor,
            signals,
            conns: HashMap::new(),
            busy: VecDeque::new(),
            next_id: 1,
            own_uid: rustix::process::getuid().as_raw(),
            max_conns: MAX_CONNECTIONS.min(connection_budget(nofile_limit(), 0)),
            warn_full: WarnLimit::new(WARN_INTERVAL),
            warn_refused: WarnLimit::new(WARN_INTERVAL),
        })
    }

    fn run(&mut self) -> io::Result<()> {
        log::info!(
            "listening on {} (uids served: root, {}{})",
            self.opts.socket.display(),
            self.own_uid,
            self.opts
                .allow_uids
                .iter()
                .map(|u| format!(", {u}"))
                .collect::<String>()
        );
        // Children of an earlier life (as PID 1 after an exec) or orphans reparented before
        // the handler was installed.
        reap();
        loop {
            let deadline = if self.busy.is_empty() {
                let (_, idle) = self.idle(Instant::now());
                match (idle, self.listener.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            } else {
                // Requests are waiting: look at new events without sleeping, then serve them.
                Some(Instant::now())
            };
            for ready in self.reactor.wait(deadline)? {
                match ready.token.owner {
                    Owner::Signal => {
                        for sig in self.signals.drain() {
                            match sig {
                                signal_hook::consts::SIGCHLD => reap(),
                                _ => {
                                    log::info!("signal {sig}: stopping; spawned processes live on");
                                    reap();
                                    return Ok(());
                                }
                            }
                        }
                    }
                    Owner::Agent if ready.token.id == LISTENER_ID => self.accept(),
                    Owner::Agent => {
                        let id = ready.token.id;
                        let flow = match self.conns.get_mut(&id) {
                            Some(conn) => conn.on_ready(ready.readable, ready.hangup),
                            None => continue,
                        };
                        self.settle(id, flow);
                    }
                    Owner::Supervisor | Owner::Logs | Owner::Control => {}
                }
            }
            for id in std::mem::take(&mut self.busy) {
                let flow = match self.conns.get_mut(&id) {
                    Some(conn) if conn.output.is_empty() => conn.serve_buffered(),
                    // Its answer is still being written: it comes back through Write readiness.
                    Some(_) => Flow::Keep,
                    None => continue,
                };
                self.settle(id, flow);
            }
            let now = Instant::now();
            self.listener.on_deadline(&self.reactor, now);
            let (idle, _) = self.idle(now);
            for id in idle {
                log::debug!("connection {id}: idle, closed");
                self.close(id);
            }
        }
    }

    /// The connections silent past the idle timeout, and when the next one will be.
    fn idle(&self, now: Instant) -> (Vec<u64>, Option<Instant>) {
        let conns = self.conns.iter().map(|(id, c)| (*id, c.last_activity));
        crate::listen::idle(conns, self.opts.idle_timeout, now)
    }

    fn accept(&mut self) {
        for Accepted { fd, cred } in self.listener.accept(&self.reactor, Instant::now()) {
            let stream = UnixStream::from(fd);
            if self.conns.len() >= self.max_conns {
                let max = self.max_conns;
                if let Some(note) = self.warn_full.check(Instant::now()) {
                    log::warn!("{max} connections open; refusing one more with EAGAIN{}", note);
                }
                let refusal = Message::ProcessError {
                    errno: Errno::AGAIN.raw_os_error(),
                    message: format!("the agent is serving {max} connections, its most; try again"),
                };
                // Best effort, without blocking: a short frame into an empty socket buffer.
                if let Ok(bytes) = frame::encode(&refusal) {
                    let _ = rustix::net::send(&stream, &bytes, SendFlags::NOSIGNAL | SendFlags::DONTWAIT);
                }
                continue;
            }
            let mut conn = Conn {
                stream,
                input: Vec::new(),
                output: VecDeque::new(),
                last_activity: Instant::now(),
                closing: false,
                interest: Interest::Read,
            };
            match cred {
                Ok(cred) => {
                    let uid = cred.uid;
                    if !(uid == 0 || uid == self.own_uid || self.opts.allow_uids.contains(&uid)) {
                        if let Some(note) = self.warn_refused.check(Instant::now()) {
                            log::warn!(
                                "refused a client with uid {uid} (pid {}; 0: outside this PID namespace){}",
                                cred.pid,
                                note
                            );
                        }
                        conn.answer(Message::ProcessError {
                            errno: Errno::ACCESS.raw_os_error(),
                            message: format!(
                                "the agent refuses uid {uid}: it serves root, uid {} and the uids \
                                 given with --allow-uid",
                                self.own_uid
                            ),
                        });
                        conn.closing = true;
                    }
                }
                Err(e) => {
                    log::warn!("cannot read a client's credentials, refusing it: {e}");
                    continue;
                }
            }
            let id = self.next_id;
            self.next_id += 1;
            let flow = conn.flush();
            conn.interest = conn.wanted_interest();
            if let Err(e) = self
                .reactor
                .add(conn.stream.as_fd(), Token::new(Owner::Agent, id), conn.interest)
            {
                log::warn!("cannot watch a connection: {e}");
                continue;
            }
            self.conns.insert(id, conn);
            self.settle(id, flow);
        }
    }

    /// Close the connection, or make its registration match what it waits for.
    fn settle(&mut self, id: u64, flow: Flow) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match flow {
            Flow::Close => {
                self.close(id);
                return;
            }
            Flow::More => {
                if !self.busy.contains(&id) {
                    self.busy.push_back(id);
                }
            }
            Flow::Keep => {
                if conn.closing && conn.output.is_empty() {
                    self.close(id);
                    return;
                }
            }
        }
        let want = conn.wanted_interest();
        if want != conn.interest {
            if let Err(e) = self
                .reactor
                .modify(conn.stream.as_fd(), Token::new(Owner::Agent, id), want)
            {
                log::warn!("connection {id}: cannot change its registration: {e}");
                self.close(id);
                return;
            }
            conn.interest = want;
        }
    }

    fn close(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            self.reactor.delete(conn.stream.as_fd());
        }
    }
}

impl Conn {
    /// Read while no answer is pending; write while one is.
    fn wanted_interest(&self) -> Interest {
        if self.output.is_empty() {
            Interest::Read
        } else {
            Interest::Write
        }
    }

    fn on_ready(&mut self, readable: bool, hangup: bool) -> Flow {
        self.last_activity = Instant::now();
        if !self.output.is_empty() {
            if let Flow::Close = self.flush() {
                return Flow::Close;
            }
            if !self.output.is_empty() {
                return Flow::Keep;
            }
            // The answer is out: serve what is already buffered before reading more.
            return self.serve_buffered();
        }
        if readable || hangup {
            let room = HEADER_LEN + MAX_PAYLOAD - self.input.len();
            if room == 0 {
                // A whole frame is buffered (none is larger): serve it before reading more.
                return Flow::More;
            }
            let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
            let want = room.min(buf.len());
            match rustix::io::read(&self.stream, &mut buf[..want]) {
                Ok(([], _)) => {
                    // End of the requests: answer what is complete. A truncated tail stays
                    // unanswered; the connection closes once the output is written.
                    self.closing = true;
                    return self.serve_buffered();
                }
                Ok((read, _)) => self.input.extend_from_slice(read),
                Err(Errno::AGAIN) | Err(Errno::INTR) => return Flow::Keep,
                Err(e) => {
                    log::debug!("read from a client: {e}");
                    return Flow::Close;
                }
            }
            return self.serve_buffered();
        }
        Flow::Keep
    }

    /// Answer the complete frames in the input, one at a time: stop as soon as an answer cannot
    /// be written at once (the rest waits for the client to read).
    fn serve_buffered(&mut self) -> Flow {
        let mut served = 0;
        while self.output.is_empty() && !self.input.is_empty() {
            if served == REQUESTS_PER_TURN {
                return Flow::More;
            }
            served += 1;
            match frame::decode(&self.input) {
                Ok(None) => break,
                Ok(Some((msg, len))) => {
                    self.input.drain(..len);
                    self.handle(msg);
                }
                Err(e) => match e.skip_len() {
                    Some(len) => {
                        self.input.drain(..len);
                        self.answer(Message::ProcessError {
                            errno: Errno::INVAL.raw_os_error(),
                            message: format!("invalid request: {e}"),
                        });
                    }
                    None => {
                        log::debug!("a client lost the framing: {e}");
                        self.input.clear();
                        self.closing = true;
                        self.answer(Message::ProcessError {
                            errno: Errno::PROTO.raw_os_error(),
                            message: format!("invalid frame, closing the connection: {e}"),
                        });
                    }
                },
            }
            if let Flow::Close = self.flush() {
                return Flow::Close;
            }
        }
        Flow::Keep
    }

    fn handle(&mut self, msg: Message) {
        match msg {
            Message::Ping => self.answer(Message::Pong),
            Message::StartProcess(sp) => match spawn(&sp) {
                Ok((pid, pidfd)) => {
                    log::debug!("spawned {} as pid {pid}", String::from_utf8_lossy(&sp.argv[0]));
                    self.answer_with_fd(Message::ProcessStarted { pid }, pidfd);
                }
                Err((errno, message)) => {
                    log::debug!("{message}");
                    self.answer(Message::ProcessError { errno, message });
                }
            },
            Message::Pong | Message::ProcessStarted { .. } | Message::ProcessError { .. } => {
                self.answer(Message::ProcessError {
                    errno: Errno::INVAL.raw_os_error(),
                    message: "invalid request: the agent only answers PING and START_PROCESS".into(),
                })
            }
        }
    }

    fn answer(&mut self, msg: Message) {
        self.queue(msg, None);
    }

    fn answer_with_fd(&mut self, msg: Message, fd: OwnedFd) {
        self.queue(msg, Some(fd));
    }

    fn queue(&mut self, msg: Message, fd: Option<OwnedFd>) {
        match frame::encode(&msg) {
            Ok(bytes) => self.output.push_back(Outgoing { bytes, sent: 0, fd }),
            // Answers are built within the bounds (messages are cut), so this is a bug.
            Err(e) => {
                log::error!("cannot encode an answer: {e}");
                self.closing = true;
            }
        }
    }

    /// Write what is pending without blocking; a pidfd goes with the first byte of its frame.
    fn flush(&mut self) -> Flow {
        while let Some(out) = self.output.front_mut() {
            let iov = [IoSlice::new(&out.bytes[out.sent..])];
            let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
            let result = match &out.fd {
                Some(fd) => {
                    let fds = [fd.as_fd()];
                    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                    let mut control = SendAncillaryBuffer::new(&mut space);
                    control.push(SendAncillaryMessage::ScmRights(&fds));
                    rustix::net::sendmsg(&self.stream, &iov, &mut control, flags)
                }
                None => rustix::net::sendmsg(&self.stream, &iov, &mut SendAncillaryBuffer::default(), flags),
            };
            match result {
                Ok(n) => {
                    // The kernel attached the fd to the bytes it took: our copy can go.
                    out.fd = None;
                    out.sent += n;
                    if out.sent == out.bytes.len() {
                        self.output.pop_front();
                    }
                }
                Err(Errno::AGAIN) => return Flow::Keep,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    log::debug!("write to a client: {e}");
                    return Flow::Close;
                }
            }
        }
        Flow::Keep
    }
}

/// Spawn what `sp` asks for, in a new session, and open its pidfd. The error is an errno and
/// one sentence for the caller.
fn spawn(sp: &StartProcess) -> Result<(i32, OwnedFd), (i32, String)> {
    let program = OsStr::from_bytes(&sp.argv[0]);
    let mut cmd = Command::new(program);
    cmd.args(sp.argv[1..].iter().map(|a| OsStr::from_bytes(a)));
    if sp.clear_env {
        cmd.env_clear();
    }
    for (k, v) in &sp.env {
        cmd.env(OsStr::from_bytes(k), OsStr::from_bytes(v));
    }
    if let Some(cwd) = &sp.cwd {
        cmd.current_dir(OsStr::from_bytes(cwd));
    }
    cmd.stdin(Stdio::null());
    if sp.null_stdio {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    // Its own process group: a terminal's ^C or a signal to the agent's group never reaches
    // the spawned process; its supervisor signals it through the pidfd. process_group (not a
    // pre_exec setsid) keeps std on posix_spawn (vfork-like, no page-table copy), which is
    // what makes thousands of spawns per second possible.
    cmd.process_group(0);
    let what = match &sp.cwd {
        Some(cwd) => format!("{} in {}", program.to_string_lossy(), String::from_utf8_lossy(cwd)),
        None => program.to_string_lossy().into_owned(),
    };
    let child = cmd.spawn().map_err(|e| {
        let errno = e.raw_os_error().unwrap_or(Errno::INVAL.raw_os_error());
        (
            errno,
            format!("cannot spawn {what}: {}", crate::error::errno_text(errno)),
        )
    })?;
    let raw = child.id() as i32;
    // std's Child neither waits nor kills on drop; the loop reaps it when it dies.
    drop(child);
    let pid = Pid::from_raw(raw).expect("a child's pid is positive");
    match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => Ok((raw, fd)),
        Err(e) => {
            // Nobody could supervise it: end it rather than leave it running unseen.
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            Err((
                e.raw_os_error(),
                format!(
                    "spawned {what} but cannot open its pidfd: {}; it was killed",
                    crate::error::errno_text(e.raw_os_error())
                ),
            ))
        }
    }
}

/// Reap every child that has ended. The agent does not know them: the callers hold the pidfds.
fn reap() {
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some(_)) => continue,
            Ok(None) | Err(Errno::CHILD) => return,
            Err(Errno::INTR) => continue,
            Err(e) => {
                log::warn!("wait: {e}");
                return;
            }
        }
    }
}

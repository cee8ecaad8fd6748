//! Programs with `agent = "PATH"`: spawned by a `holden agent` (inside a container, say), and
//! supervised here through the pidfd it hands back.
//!
//! holden is not their parent, so it cannot wait for them: the pidfd turns readable when the
//! process exits, and its exit status is read with PIDFD_GET_INFO (Linux 6.15+). The kernel
//! fills that in only once the agent has reaped the process, which it does within
//! milliseconds; until then the status is asked again on short loop deadlines (never a sleep),
//! for a bounded time, after which it is reported as unknown. Older kernels report unknown at
//! once: a status is never invented. Signals go through the pidfd; holden sees only the main
//! process, so limits and output capture do not apply.
//!
//! The spawn request itself never blocks the loop: it is a non-blocking connection in the
//! reactor (`AgentCall`), with the program's token and a deadline. Meanwhile the program has no
//! pid and status shows it STARTING. An answer for a program stopped or removed meanwhile is
//! not lost: the call goes on without it (`abandoned`), and the process the agent started is
//! killed; it never becomes the program's run, not even one started again meanwhile, which
//! asks anew. So is an answer that comes after `AGENT_TIMEOUT`, once the program has gone to
//! BACKOFF: a parked call waits `LATE_ANSWER_WAIT` for it (no longer than its own deadline while
//! holden shuts down).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::agent::client::{AgentError, Conn, Progress};
use crate::agent::codec;
use crate::agent::frame::Message;
use crate::process::reap::{PidfdExit, pidfd_exit};
use crate::reactor::{Interest, Reactor, Token};

use super::process::Proc;
use super::slot::Role;
use super::{Event, ExitWait, Supervisor};

/// How long one request to the agent may take. An agent is local and answers in well under a
/// millisecond; one that does not within this is treated as down. The loop does not wait for
/// it: the request is a connection in the reactor with this deadline.
const AGENT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a call whose program no longer waits for it (stopped, removed, or given up on at
/// `AGENT_TIMEOUT`) stays open for a late answer, whose process is then killed. Past this the
/// connection is closed: an answer after that is the agent's to deal with.
const LATE_ANSWER_WAIT: Duration = Duration::from_secs(30);

/// How soon to connect again when the agent's backlog is full (a Unix connect is never in
/// progress: it succeeds, fails, or says EAGAIN).
const CONNECT_RETRY: Duration = Duration::from_millis(10);

/// A spawn request to an agent in flight: a non-blocking connection the reactor watches.
pub(super) struct AgentCall {
    conn: Conn,
    deadline: Instant,
    /// Not connected yet: connect (again) then.
    connect_at: Option<Instant>,
    /// How the connection is registered in the reactor, once connected.
    interest: Option<Interest>,
    /// The program's name, for the log once it is abandoned.
    name: String,
    /// Once abandoned: since when no program waits for it ("it was stopped").
    abandoned: &'static str,
}

impl AgentCall {
    /// When the loop must drive it without a readiness.
    pub(super) fn next(&self) -> Instant {
        self.connect_at.map_or(self.deadline, |c| c.min(self.deadline))
    }

    /// Connect, send, read what arrived: the answer once it is whole, or why it failed.
    fn drive(
        &mut self,
        reactor: &Reactor,
        token: Token,
        now: Instant,
    ) -> Option<Result<(Message, Vec<OwnedFd>), AgentError>> {
        let outcome = self.step(reactor, token, now);
        if outcome.is_none() && now >= self.deadline {
            return Some(Err(AgentError::Timeout {
                socket: self.conn.socket().into(),
                timeout: AGENT_TIMEOUT,
            }));
        }
        outcome
    }

    fn step(
        &mut self,
        reactor: &Reactor,
        token: Token,
        now: Instant,
    ) -> Option<Result<(Message, Vec<OwnedFd>), AgentError>> {
        if let Some(at) = self.connect_at {
            if now < at {
                return None;
            }
            match self.conn.connect() {
                Ok(true) => self.connect_at = None,
                Ok(false) => {
                    self.connect_at = Some(now + CONNECT_RETRY);
                    return None;
                }
                Err(e) => return Some(Err(e)),
            }
        }
        let interest = match self.conn.flush() {
            Ok(true) => Interest::Read,
            Ok(false) => Interest::ReadWrite,
            Err(e) => return Some(Err(e)),
        };
        if self.interest != Some(interest) {
            let done = match self.interest {
                None => reactor.add(self.conn.as_fd(), token, interest),
                Some(_) => reactor.modify(self.conn.as_fd(), token, interest),
            };
            if let Err(e) = done {
                return Some(Err(AgentError::Connection {
                    socket: self.conn.socket().into(),
                    reason: format!("cannot watch the connection: {e}"),
                }));
            }
            self.interest = Some(interest);
        }
        loop {
            match self.conn.receive() {
                Ok(Progress::Answer(answer, fds)) => return Some(Ok((answer, fds))),
                Ok(Progress::More) => continue,
                Ok(Progress::WouldBlock) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Supervisor {
    /// Ask the agent to spawn program `i`: the request goes out and the loop goes on; the
    /// answer is an event (`on_agent_call`). Returns the event only when the request failed at
    /// once (no agent listening, say).
    pub(super) fn spawn_remote(&mut self, i: usize, now: Instant) -> Option<Event> {
        let program = &self.live(i)?.program;
        let socket = program.agent.clone()?;
        let env: Vec<(String, String)> = program
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(program.holden_env().into_iter().map(|(k, v)| (k.to_string(), v)))
            .collect();
        let name = program.name.clone();
        // SPEC: the default `directory` (the config file's folder) is a path of this host,
        // which seldom exists where the agent runs: only an explicit one is passed on, else
        // the program starts in the agent's own working directory.
        let cwd = program.directory_set.then_some(program.directory.as_path());
        let call = codec::start_request(&program.command, &env, cwd)
            .and_then(|request| Conn::new(&socket, request, true))
            .map(|conn| AgentCall {
                conn,
                deadline: now + AGENT_TIMEOUT,
                connect_at: Some(now),
                interest: None,
                name,
                abandoned: "",
            });
        match call {
            Ok(call) => {
                self.live_mut(i)?.agent_call = Some(call);
                self.drive_agent_call(i, now)
            }
            Err(e) => Some(spawn_failed(&socket, e)),
        }
    }

    /// Program `i`'s agent call is ready or due: drive it, and feed its outcome once there is one.
    pub(super) fn on_agent_call(&mut self, i: usize, now: Instant) {
        if let Some(event) = self.drive_agent_call(i, now) {
            self.apply(i, event, now);
        }
    }

    fn drive_agent_call(&mut self, i: usize, now: Instant) -> Option<Event> {
        let slot = self.slots[i].as_mut()?;
        let token = slot.token(i, Role::AgentCall);
        let result = slot.agent_call.as_mut()?.drive(&self.reactor, token, now)?;
        let call = slot.agent_call.take()?;
        if let Err(e @ AgentError::Timeout { .. }) = result {
            // The agent may still answer: a process it starts late is killed, not left unseen.
            let event = spawn_failed(call.conn.socket(), e);
            self.park_agent_call(call, "holden gave up waiting for it", now);
            return Some(event);
        }
        self.reactor.delete(call.conn.as_fd());
        let socket = call.conn.socket();
        match result.and_then(|(answer, fds)| codec::started(socket, answer, fds)) {
            Ok((pid, pidfd)) => {
                let token = slot.token(i, Role::Pidfd);
                if let Err(e) = self.reactor.add(pidfd.as_fd(), token, Interest::Read) {
                    log::warn!("{}: cannot watch the pidfd from the agent: {e}", call.name);
                }
                Some(Event::Spawned(Proc {
                    pid,
                    pidfd,
                    pgid: None,
                    oom_before: None,
                    exit_wait: None,
                    exec: None,
                }))
            }
            Err(e) => Some(spawn_failed(socket, e)),
        }
    }

    /// Program `i` was stopped or is being removed while its agent call is in flight: the call
    /// goes on without it, and the process the agent may start is killed (nothing is left
    /// unsupervised). Returns whether a call was in flight.
    pub(super) fn abandon_agent_call(&mut self, i: usize) -> bool {
        let Some(call) = self.slots[i].as_mut().and_then(|s| s.agent_call.take()) else {
            return false;
        };
        log::debug!("{}: its agent call goes on without it", call.name);
        self.park_agent_call(call, "it was stopped", self.now());
        true
    }

    /// Keep `call`, which no program waits for any more, open for a late answer until
    /// `LATE_ANSWER_WAIT` from `now`: the answer's process is killed (`on_abandoned_call`).
    /// `since` ends the sentence "killed pid N, which its agent started after ...". While
    /// holden shuts down it waits no longer than the call's own deadline.
    fn park_agent_call(&mut self, mut call: AgentCall, since: &'static str, now: Instant) {
        let k = match self.abandoned.iter().position(Option::is_none) {
            Some(k) => k,
            None => {
                self.abandoned.push(None);
                self.abandoned.len() - 1
            }
        };
        if let Some(interest) = call.interest
            && self
                .reactor
                .modify(call.conn.as_fd(), abandoned_token(k), interest)
                .is_err()
        {
            call.interest = None;
        }
        if call.interest.is_none() {
            // Not connected, or no longer watched: the agent has not the whole request.
            self.reactor.delete(call.conn.as_fd());
            return;
        }
        if !self.shutting_down {
            call.deadline = call.deadline.max(now + LATE_ANSWER_WAIT);
        }
        call.abandoned = since;
        self.abandoned[k] = Some(call);
    }

    /// An abandoned agent call is ready or due: an answer's process is killed.
    pub(super) fn on_abandoned_call(&mut self, k: usize, now: Instant) {
        let Some(Some(call)) = self.abandoned.get_mut(k) else {
            return;
        };
        let Some(result) = call.drive(&self.reactor, abandoned_token(k), now) else {
            return;
        };
        let Some(call) = self.abandoned[k].take() else { return };
        self.reactor.delete(call.conn.as_fd());
        if let Ok((pid, pidfd)) = result.and_then(|(answer, fds)| codec::started(call.conn.socket(), answer, fds)) {
            match rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL) {
                Ok(()) => log::info!(
                    "{}: killed pid {pid}, which its agent started after {}",
                    call.name,
                    call.abandoned
                ),
                Err(e) => log::warn!(
                    "{}: cannot kill pid {pid}, which its agent started after {}: {e}",
                    call.name,
                    call.abandoned
                ),
            }
        }
    }

    /// holden shuts down: a late answer is waited for no longer than its request's own
    /// deadline (`AGENT_TIMEOUT` from now at most), so that holden can exit.
    pub(super) fn cut_late_answer_waits(&mut self, now: Instant) {
        for call in self.abandoned.iter_mut().flatten() {
            call.deadline = call.deadline.min(now + AGENT_TIMEOUT);
        }
    }

    /// The abandoned agent calls that are due.
    pub(super) fn fire_abandoned_calls(&mut self, now: Instant) {
        for k in 0..self.abandoned.len() {
            if self.abandoned[k].as_ref().is_some_and(|c| c.next() <= now) {
                self.on_abandoned_call(k, now);
            }
        }
    }

    /// The pidfd of program `i` turned readable. For a program spawned by holden itself the
    /// reap that follows says how it ended; for an agent's, the pidfd must tell.
    pub(super) fn on_pidfd(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        if slot.program.agent.is_none() {
            return;
        }
        let Some(p) = slot.machine.state.process_mut() else {
            return;
        };
        if p.exit_wait.is_some() {
            return;
        }
        // Level-triggered and readable for good: out of the reactor until it is read.
        self.reactor.delete(p.pidfd.as_fd());
        p.exit_wait = Some(ExitWait { since: now, next: now });
        self.poll_remote_exit(i, now);
    }

    /// Ask the pidfd of program `i` how its process ended; try again later if the agent has not
    /// reaped it yet.
    pub(super) fn poll_remote_exit(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        let name = &slot.program.name;
        let Some(p) = slot.machine.state.process_mut() else {
            return;
        };
        let Some(wait) = p.exit_wait else { return };
        let exit = match pidfd_exit(p.pidfd.as_fd(), now.saturating_duration_since(wait.since)) {
            PidfdExit::Ended(exit) => exit,
            PidfdExit::NotYet(pause) => {
                p.exit_wait = Some(ExitWait {
                    since: wait.since,
                    next: now + pause,
                });
                return;
            }
            PidfdExit::Lost(why) => {
                log::warn!("{name}: {why}; its exit status is unknown");
                crate::process::ExitKind::Unknown
            }
        };
        // The state lets go of the process (and its pidfd) with this event.
        self.apply(i, Event::Exited(exit), now);
        // holden sees only the main process of an agent's program: it is the whole program.
        if matches!(
            self.slots[i].as_ref().map(|s| &s.machine.state),
            Some(super::State::Stopping { process: None, .. })
        ) {
            self.apply(i, Event::Emptied, now);
        }
    }
}

/// The token of abandoned call `k`: no program's (slot 0 of generation 0, a role of its own).
fn abandoned_token(k: usize) -> Token {
    Token::new(
        crate::reactor::Owner::Supervisor,
        super::slot::token_id(Role::AbandonedCall, k, 0),
    )
}

fn spawn_failed(socket: &std::path::Path, e: AgentError) -> Event {
    Event::SpawnFailed {
        reason: format!("agent {}: {e}", socket.display()),
        retry: e.retryable(),
    }
}

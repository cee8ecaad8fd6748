//! The supervisor: the programs of the config, their machines, and the one loop that keeps them
//! running.
//!
//! One thread, one `epoll_wait` (the reactor) over: one pidfd per running main process (and its
//! exec outcome while it is pending: a spawn never waits for the exec), the signal self-pipe,
//! output pipes and the control socket. The wait's timeout is the nearest
//! deadline of any program (min_uptime, backoff, stop_timeout), so an idle holden with every
//! program running sleeps with no timeout at all: zero wakeups.
//!
//! Reaping is done here and only here (`process::reap_all`), after a pidfd or SIGCHLD woke the
//! loop: a pid cannot be reused before its exit is matched to its program. holden is a child
//! subreaper when it is not PID 1, so every process a program forks stays below it; that is
//! also how "every process of a program is gone" is noticed without polling: each death is a
//! SIGCHLD, and after each reap the programs that are stopping check whether their cgroup (or
//! process group) is empty.

mod deps;
mod kill;
pub mod logger;
mod notify;
mod ops;
mod process;
mod reload;
mod remote;
mod requests;
mod run;
mod slot;
pub mod state;
#[cfg(test)]
mod tests;
mod watch;

use std::path::Path;
use std::time::{Instant, SystemTime};

use crate::cgroup::Cgroups;
use crate::config::{self, Config};
use crate::control::protocol::Event as ControlEvent;
use crate::control::server::Server;
use crate::reactor::{Owner, Reactor, Signals};
use process::{ExitWait, Proc};
use slot::{After, Intent, Role, Slot};

/// The machine's events and states, over the supervisor's main process.
type Event = state::Event<Proc>;
type State = state::State<Proc>;
use state::Transition;

const SIGNALS: &[i32] = &[
    signal_hook::consts::SIGCHLD,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGUSR1,
];

/// Why `holden run` did not start or did not end well.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file does not load: nothing was started.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The `[supervisor]` log settings cannot be used: nothing was started.
    #[error("{0}")]
    Logging(String),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

/// `holden run`: load the config, start the programs, serve until a graceful shutdown.
pub fn run(path: Option<&Path>) -> Result<(), RunError> {
    let path = config::config_path(path);
    let config = config::load(&path)?;
    logger::init(&config.supervisor).map_err(RunError::Logging)?;
    // Before anything could start a thread: it removes NOTIFY_SOCKET from the environment.
    let notifier = notify::Notifier::from_env();
    let mut sup = Supervisor::new(config)?;
    sup.notify = notifier;
    sup.run()?;
    Ok(())
}

/// Why holden itself stops with an error (a program failing is a state, not this).
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot set up the event loop: {0}")]
    Setup(#[source] std::io::Error),
    #[error("the event loop failed: {0}")]
    Loop(#[source] std::io::Error),
    #[error("{0}")]
    Cgroups(#[from] crate::cgroup::CgroupError),
    #[error("{0}")]
    Control(#[from] crate::control::server::ControlError),
}

pub struct Supervisor {
    /// The config file's settings, groups and instanced programs; its `programs` are empty
    /// once they moved into `slots` (their one copy).
    config: Config,
    reactor: Reactor,
    signals: Signals,
    slots: Vec<Option<Slot>>,
    /// The generation the next new slot gets.
    generations: u32,
    /// SIGTERM/SIGINT seen: stopping everything, then exit.
    shutting_down: bool,
    cgroups: Option<Cgroups>,
    /// The control socket.
    control: Server,
    /// Watch events produced during this turn of the loop, pushed to watchers at its end.
    events: Vec<ControlEvent>,
    /// Output pipes and log files of every program.
    logs: crate::logs::Logs,
    /// The service manager's `$NOTIFY_SOCKET` (systemd `Type=notify`), when holden has one.
    notify: Option<notify::Notifier>,
    /// Agent calls whose program was stopped or removed while they were in flight: their
    /// answer's process is killed (remote.rs).
    abandoned: Vec<Option<remote::AgentCall>>,
    /// Kill jobs (no `cgroup.kill`) of programs forgotten while they ran (kill.rs).
    orphan_kills: Vec<crate::cgroup::KillJob>,
    /// Unit tests: a fake clock, and spawns that start nothing.
    #[cfg(test)]
    fake: Option<tests::Fake>,
}

impl Supervisor {
    pub fn new(config: Config) -> Result<Supervisor, SupervisorError> {
        let reactor = Reactor::new().map_err(SupervisorError::Setup)?;
        let signals = Signals::install(&reactor, SIGNALS).map_err(SupervisorError::Setup)?;
        if rustix::process::getpid().is_init() {
            log::info!("running as PID 1: reaping every orphan");
        } else if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            log::warn!("cannot become a child subreaper ({e}); daemonizing programs will escape holden");
        }
        // SPEC: a program with limits where cgroups cannot be used stops holden with the reason.
        let mut mode = config.supervisor.cgroups;
        if mode == config::CgroupMode::Auto && config.programs.iter().any(|p| p.has_limits() && p.agent.is_none()) {
            mode = config::CgroupMode::Required;
        }
        // The socket first: a second holden on the same config stops here, before it could
        // start any program a second time.
        let settings = &config.supervisor;
        let grants = crate::control::server::Grants::from_settings(settings);
        let mut control = Server::bind(&settings.socket, settings.socket_mode, &grants, &reactor)?;
        let fd_limit = crate::process::nofile::raise_nofile();
        control.set_fd_budget(fd_limit, config.programs.len());
        log::info!("control socket: {}", settings.socket.display());
        let cgroups = Cgroups::setup(mode, &config.supervisor.cgroup_path)?;
        if let Some(c) = &cgroups {
            log::info!(
                "cgroups: {} layout, programs below {} (controllers: {})",
                c.layout(),
                c.parent_path().display(),
                c.controllers().join(", ")
            );
            // SPEC "nothing unsupervised": the lock says no other holden owns these cgroups, so
            // one that is not a program of the file is a leftover of an earlier run (a removed
            // or transient program of a holden that was killed). Transient programs are not
            // resurrected: they are stopped like the removed ones.
            for (name, result) in c.stop_strangers(|name| config.programs.iter().any(|p| p.name == name)) {
                match result {
                    Ok(n) => log::warn!("leftover cgroup {name} of an earlier run: stopped {n} process(es), removed"),
                    Err(e) => log::error!("leftover cgroup {name} of an earlier run: {e}"),
                }
            }
        }
        Ok(Supervisor::assemble(config, reactor, signals, control, cgroups))
    }

    /// The supervisor of `config` over what `new` set up (tests set up less: no signal
    /// handlers, no cgroups).
    fn assemble(
        mut config: Config,
        reactor: Reactor,
        signals: Signals,
        control: Server,
        cgroups: Option<Cgroups>,
    ) -> Supervisor {
        let now = Instant::now();
        // The programs move into their slots: the slots are the one copy of each (reload diffs
        // against them), so the config keeps none (issue 13: 200 programs cost 200 KiB twice).
        let slots: Vec<Option<Slot>> = (0u32..)
            .zip(std::mem::take(&mut config.programs))
            .map(|(generation, p)| Some(Slot::new(p, false, generation, now)))
            .collect();
        Supervisor {
            generations: slots.len() as u32,
            config,
            reactor,
            signals,
            slots,
            shutting_down: false,
            cgroups,
            control,
            events: Vec::new(),
            logs: crate::logs::Logs::new(),
            notify: None,
            abandoned: Vec::new(),
            orphan_kills: Vec::new(),
            #[cfg(test)]
            fake: None,
        }
    }

    /// Unit tests whose spawns start nothing.
    fn faked(&self) -> bool {
        #[cfg(test)]
        return self.fake.is_some();
        #[cfg(not(test))]
        false
    }

    /// The time now; in unit tests, the fake clock's.
    fn now(&self) -> Instant {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.now;
        }
        Instant::now()
    }

    pub fn run(&mut self) -> Result<(), SupervisorError> {
        let n = self.slots.len();
        log::info!(
            "holden {} supervising {n} program{} from {}",
            crate::version::VERSION,
            if n == 1 { "" } else { "s" },
            self.config.path.display()
        );
        for i in 0..self.slots.len() {
            if self.slots[i].as_ref().is_some_and(|s| s.program.autostart) {
                self.request_start(i);
            }
        }
        self.settle();
        // Start-up is over: the parsed config's trees and the first spawns' scratch are free.
        crate::sys::mem::trim_heap();
        loop {
            self.notify_ready();
            if self.shutting_down
                && self
                    .slots
                    .iter()
                    .flatten()
                    .all(|s| s.machine.state.is_down() && s.leftovers.kill_at.is_none())
                && self.abandoned.iter().all(Option::is_none)
            {
                self.logs.drain_all(&self.reactor);
                log::info!("every program stopped; exiting");
                // Processes killed through cgroup.kill leave their cgroup before they are
                // reaped: reap what is left so no zombie outlives holden.
                self.reap();
                if let Some(c) = &self.cgroups {
                    c.cleanup();
                }
                self.remove_notify_dir();
                return Ok(());
            }
            let deadline = self.next_deadline();
            let ready = self.reactor.wait(deadline).map_err(SupervisorError::Loop)?;
            let now = self.now();
            let mut reap = false;
            let mut pidfds = Vec::new();
            for r in &ready {
                match r.token.owner {
                    Owner::Signal => reap |= self.on_signals(),
                    Owner::Supervisor => {
                        if let Some((slot::Role::AbandonedCall, k, _)) = slot::parse_token_id(r.token.id) {
                            self.on_abandoned_call(k, now);
                            continue;
                        }
                        // A readiness for a program that is gone (its slot reused since) is dropped.
                        let Some((role, i)) = self.route(r.token.id) else {
                            log::debug!("readiness for a program that is gone: {:?}", r.token);
                            continue;
                        };
                        match role {
                            Role::Pidfd => {
                                reap = true;
                                pidfds.push(i);
                                self.on_pidfd(i, now);
                            }
                            Role::CgroupEvents => self.on_cgroup_events(i, r),
                            Role::Notify => self.on_notify(i, now),
                            Role::ReadyFd => self.on_ready_fd(i, now),
                            Role::Probe => self.on_probe(i, now),
                            Role::AgentCall => self.on_agent_call(i, now),
                            Role::Exec => self.on_exec_status(i, now),
                            Role::AbandonedCall => {}
                        }
                    }
                    Owner::Control => {
                        let programs = self.slots.iter().flatten().count();
                        self.control.update_programs(programs);
                        let requests = self.control.on_ready(&self.reactor, r, now);
                        for (conn, request) in requests {
                            self.on_request(conn, request);
                        }
                    }
                    Owner::Logs => self.logs.on_ready(&self.reactor, r.token.id, r),
                    Owner::Agent => log::debug!("readiness for the agent in the supervisor: {:?}", r.token),
                }
            }
            if reap {
                self.reap();
                for i in pidfds {
                    self.foreign_main_exit(i, now);
                }
            }
            if self.control.next_deadline().is_some_and(|d| d <= now) {
                self.control.on_deadline(&self.reactor, now);
            }
            self.fire_deadlines();
            self.settle();
            self.flush_events();
        }
    }

    /// The role and the live slot a token id stands for; None when the slot is empty or was
    /// reused since the fd was registered.
    fn route(&self, id: u64) -> Option<(Role, usize)> {
        let (role, i, generation) = slot::parse_token_id(id)?;
        let slot = self.slots.get(i)?.as_ref()?;
        slot::same_generation(generation, slot.generation).then_some((role, i))
    }

    /// The program whose main process is the child `pid` that holden reaped: its state says
    /// so (no map to keep in step). A child's pid cannot be reused before holden reaps it, so
    /// this is unambiguous; an agent's program is not a child (its pid may even be of another
    /// pid namespace), so it never matches.
    fn slot_of_pid(&self, pid: i32) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|s| s.program.agent.is_none() && s.machine.state.pid() == Some(pid))
        })
    }

    /// Program `i`'s slot, unless it is empty (a program removed meanwhile).
    fn live(&self, i: usize) -> Option<&Slot> {
        self.slots.get(i)?.as_ref()
    }

    fn live_mut(&mut self, i: usize) -> Option<&mut Slot> {
        self.slots.get_mut(i)?.as_mut()
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.program.name == name))
    }

    fn next_deadline(&self) -> Option<Instant> {
        let programs = self.slots.iter().flatten().filter_map(|s| {
            // A spawn that waits for leftovers happens when they are gone, not at the deadline;
            // one asked of an agent, when it answers or its call's deadline passes.
            let state = s
                .state_deadline()
                .into_iter()
                .chain(s.leftovers.kill_at)
                .chain(s.agent_call.as_ref().map(remote::AgentCall::next))
                .min();
            // An agent's program whose exit status is still being read.
            let exit_wait = s.machine.state.process().and_then(|p| p.exit_wait).map(|w| w.next);
            // An earlier holden's processes in its cgroup, re-checked.
            let inherited = s.inherited.as_ref().map(|w| w.next.min(w.give_up));
            state
                .into_iter()
                .chain(exit_wait)
                .chain(inherited)
                .chain(s.watch.next_deadline())
                .min()
        });
        let abandoned = self.abandoned.iter().flatten().map(remote::AgentCall::next);
        programs
            .chain(abandoned)
            .chain(self.next_kill())
            .chain(self.control.next_deadline())
            .min()
    }

    /// Push this turn's events to the watchers.
    fn flush_events(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        for event in &events {
            self.control.broadcast(&self.reactor, event);
        }
    }

    /// SIGHUP (systemd's `ExecReload=/bin/kill -HUP $MAINPID`): the same reload as `holden
    /// reload`; an invalid file is refused whole and logged, the running set stays as it was.
    fn reload_on_signal(&mut self) {
        if let Err(e) = self.op_reload() {
            log::error!("SIGHUP: reload refused, the running programs stay as they were: {e}");
        }
    }

    fn reopen_logs(&mut self) {
        log::info!("reopening log files");
        logger::reopen();
        self.logs.reopen();
    }

    /// Returns true when a SIGCHLD asks for a reap.
    fn on_signals(&mut self) -> bool {
        let mut reap = false;
        for sig in self.signals.drain() {
            match sig {
                signal_hook::consts::SIGCHLD => reap = true,
                signal_hook::consts::SIGTERM | signal_hook::consts::SIGINT => self.on_shutdown_signal(sig),
                signal_hook::consts::SIGHUP => self.reload_on_signal(),
                signal_hook::consts::SIGUSR1 => self.reopen_logs(),
                other => log::debug!("signal {other} ignored"),
            }
        }
        reap
    }

    fn on_shutdown_signal(&mut self, sig: i32) {
        let name = config::Signal(sig).name();
        if self.shutting_down {
            log::warn!("second SIG{name}: killing every program now");
            let now = self.now();
            for i in 0..self.slots.len() {
                if let Some(slot) = self.slots[i].as_mut() {
                    slot.intent = std::mem::replace(&mut slot.intent, Intent::None).stop_sent();
                    if slot.leftovers.kill_at.is_some() {
                        slot.leftovers.kill_at = Some(now);
                    }
                    self.apply(i, Event::Kill, now);
                }
            }
            self.fire_deadlines();
            return;
        }
        self.begin_shutdown(&format!("SIG{name}"));
    }

    /// Graceful shutdown: every program is stopped (dependents first), then holden exits.
    fn begin_shutdown(&mut self, why: &str) {
        if self.shutting_down {
            return;
        }
        log::info!("{why}: shutting down");
        self.shutting_down = true;
        self.cut_late_answer_waits(self.now());
        if let Some(n) = self.notify.as_mut() {
            n.stopping(&format!("{why}: stopping every program"));
        }
        for slot in self.slots.iter_mut().flatten() {
            slot.intent = Intent::Stop(After::Rest);
        }
    }

    fn fire_deadlines(&mut self) {
        let now = self.now();
        self.fire_abandoned_calls(now);
        self.fire_kills(now);
        for i in 0..self.slots.len() {
            if self.slots[i]
                .as_ref()
                .and_then(|s| s.machine.state.process()?.exit_wait)
                .is_some_and(|w| w.next <= now)
            {
                self.poll_remote_exit(i, now);
            }
            if self.slots[i]
                .as_ref()
                .and_then(|s| s.leftovers.kill_at)
                .is_some_and(|d| d <= now)
            {
                self.kill_leftovers(i, now);
            }
            if self.slots[i]
                .as_ref()
                .and_then(|s| s.agent_call.as_ref())
                .is_some_and(|c| c.next() <= now)
            {
                self.on_agent_call(i, now);
            }
            if self.slots[i]
                .as_ref()
                .and_then(|s| s.inherited.as_ref())
                .is_some_and(|w| w.next.min(w.give_up) <= now)
            {
                self.check_inherited(i, now);
            }
            let due = self.slots[i]
                .as_ref()
                .and_then(Slot::state_deadline)
                .is_some_and(|d| d <= now);
            if due {
                self.apply(i, Event::Deadline, now);
            }
            if self.slots[i].is_some() {
                self.watch_deadlines(i, now);
            }
        }
    }

    /// sd_notify `READY=1` once every autostart program has been spawned (see notify.rs).
    fn notify_ready(&mut self) {
        if self.shutting_down || self.notify.as_ref().is_none_or(|n| n.ready_sent()) {
            return;
        }
        let waiting = (0..self.slots.len())
            .any(|i| self.slots[i].as_ref().is_some_and(|s| s.intent.is_start()) && !self.never_starts(i, 0));
        if waiting {
            return;
        }
        let status = notify::status_line(self.slots.iter().flatten().map(|s| s.machine.state.name()));
        log::debug!("every autostart program spawned: {status}");
        if let Some(n) = self.notify.as_mut() {
            n.ready(&status);
        }
    }

    /// Feed `event` to program `i`, log its transition, perform its effects (which may feed
    /// further events, e.g. Spawn -> Spawned).
    fn apply(&mut self, i: usize, event: Event, now: Instant) {
        let Some(slot) = self.live_mut(i) else { return };
        if matches!(event, Event::Stop | Event::Kill) {
            // A stop cancels a spawn that waited for leftovers; they still end as planned.
            slot.leftovers.spawn_deferred = false;
            // And one asked of an agent: what it starts is killed.
            let abandoned = self.abandon_agent_call(i);
            if let Some(slot) = self.live(i).filter(|s| abandoned && s.machine.state.is_down()) {
                // Status showed it STARTING; its machine never left rest.
                let (name, to) = (slot.program.name.clone(), slot.machine.state.name());
                let reason = "stopped before its agent answered".to_string();
                log::info!("{name}: STARTING -> {to} ({reason})");
                self.push_transition(i, "STARTING", to, Some(reason));
            }
        }
        let mut queue = vec![event];
        while let Some(ev) = queue.pop() {
            let spawned = matches!(ev, Event::Spawned(_));
            let Some(slot) = self.live_mut(i) else { return };
            let state::Handled {
                effects,
                transition,
                released,
            } = slot.machine.handle(&slot.policy, ev, now);
            // What watched a process the state let go of leaves with it, before any effect
            // (KillLeftovers) looks for what it left.
            if let Some(process) = released {
                self.release(i, process);
            }
            let Some(slot) = self.live_mut(i) else { return };
            let became_down = transition.as_ref().is_some_and(|_| slot.machine.state.is_down());
            if let Some(t) = transition {
                // The wall time of `now`, not of this line: a spawn may have taken a while since,
                // and uptime must agree with the min_uptime counted from `now`.
                slot.since_wall = SystemTime::now()
                    .checked_sub(now.elapsed())
                    .unwrap_or_else(SystemTime::now);
                if t.to == "STARTING" && t.from != "STARTING" {
                    slot.started_wall = Some(slot.since_wall);
                }
                self.log_transition(i, &t);
                self.watch_transition(i, t.to, now);
                if t.from != t.to {
                    self.push_transition(i, t.from, t.to, t.reason);
                }
            }
            for effect in effects {
                if let Some(next) = self.perform(i, effect, now) {
                    queue.push(next);
                }
            }
            // Its exec outcome: known at once (CLONE_VFORK), else an event of its own later.
            if spawned && let Some(next) = self.first_look_at_exec(i) {
                queue.push(next);
            }
            if became_down {
                self.after_down(i);
                if self.slots[i].is_none() {
                    return;
                }
            }
        }
    }

    fn log_transition(&mut self, i: usize, t: &Transition) {
        let Some(slot) = self.live(i) else { return };
        let name = &slot.program.name;
        let line = match &t.reason {
            Some(r) if t.from == t.to => format!("{name}: {} ({r})", t.from),
            Some(r) => format!("{name}: {} -> {} ({r})", t.from, t.to),
            None => format!("{name}: {} -> {}", t.from, t.to),
        };
        if t.from == t.to {
            log::warn!("{line}");
        } else {
            log::info!("{line}");
        }
        #[cfg(test)]
        if let Some(fake) = &mut self.fake {
            fake.lines.push(line);
        }
    }
}

const SIGKILL: i32 = 9;

/// How often to say that leftovers are still there after SIGKILL (uninterruptible sleep).
const LEFTOVER_KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

//! The supervisor: the programs of the config, their machines, and the one loop that keeps them
//! running.
//!
//! One thread, one `epoll_wait` (the reactor) over: one pidfd per running main process, the
//! signal self-pipe, output pipes and the control socket. The wait's timeout is the nearest
//! deadline of any program (min_uptime, backoff, stop_timeout), so an idle holden with every
//! program running sleeps with no timeout at all: zero wakeups.
//!
//! Reaping is done here and only here (`process::reap_all`), after a pidfd or SIGCHLD woke the
//! loop: a pid cannot be reused before its exit is matched to its program. holden is a child
//! subreaper when it is not PID 1, so every process a program forks stays below it; that is
//! also how "every process of a program is gone" is noticed without polling: each death is a
//! SIGCHLD, and after each reap the programs that are stopping check whether their cgroup (or
//! process group) is empty.

pub(crate) mod budget;
mod deps;
pub mod logger;
mod notify;
mod ops;
mod remote;
mod requests;
mod slot;
pub mod state;
mod watch;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Instant, SystemTime};

use rustix::process::Pid;

use crate::cgroup::{Cgroups, ProgramCgroup};
use crate::config::{self, Config};
use crate::control::protocol::Event as ControlEvent;
use crate::control::server::Server;
use crate::process;
use crate::reactor::{Owner, Reactor, Ready, Signals, Token};
use slot::{After, ExitWait, Intent, Leftovers, Role, Slot};
use state::{Effect, Event, State, Transition};

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
    config: Config,
    reactor: Reactor,
    signals: Signals,
    slots: Vec<Option<Slot>>,
    by_pid: HashMap<i32, usize>,
    /// The generation the next new slot gets.
    generations: u32,
    /// SIGTERM/SIGINT seen: stopping everything, then exit.
    shutting_down: bool,
    cgroups: Option<Cgroups>,
    /// The control socket (None only where it could not matter: never, once running).
    control: Option<Server>,
    /// Watch events produced during this turn of the loop, pushed to watchers at its end.
    events: Vec<ControlEvent>,
    /// Output pipes and log files of every program.
    logs: crate::logs::Logs,
    /// The service manager's `$NOTIFY_SOCKET` (systemd `Type=notify`), when holden has one.
    notify: Option<notify::Notifier>,
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
        let now = Instant::now();
        let slots: Vec<Option<Slot>> = (0u32..)
            .zip(&config.programs)
            .map(|(generation, p)| Some(Slot::new(p.clone(), false, generation, now)))
            .collect();
        let generations = slots.len() as u32;
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
        let fd_limit = budget::raise_nofile();
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
        Ok(Supervisor {
            config,
            reactor,
            signals,
            slots,
            by_pid: HashMap::new(),
            generations,
            shutting_down: false,
            cgroups,
            control: Some(control),
            events: Vec::new(),
            logs: crate::logs::Logs::new(),
            notify: None,
        })
    }

    pub fn run(&mut self) -> Result<(), SupervisorError> {
        let n = self.config.programs.len();
        log::info!(
            "holden {} supervising {n} program{} from {}",
            crate::VERSION,
            if n == 1 { "" } else { "s" },
            self.config.path.display()
        );
        for i in 0..self.slots.len() {
            if self.slot(i).program.autostart {
                self.request_start(i);
            }
        }
        self.settle();
        loop {
            self.notify_ready();
            if self.shutting_down
                && self
                    .slots
                    .iter()
                    .flatten()
                    .all(|s| s.machine.state.is_down() && s.leftovers.kill_at.is_none())
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
            let now = Instant::now();
            let mut reap = false;
            let mut pidfds = Vec::new();
            for r in &ready {
                match r.token.owner {
                    Owner::Signal => reap |= self.on_signals(),
                    Owner::Supervisor => {
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
                        }
                    }
                    Owner::Control => {
                        let programs = self.slots.iter().flatten().count();
                        let requests = match &mut self.control {
                            Some(server) => {
                                server.update_programs(programs);
                                server.on_ready(&self.reactor, r, now)
                            }
                            None => Vec::new(),
                        };
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
            if let Some(server) = &mut self.control
                && server.next_deadline().is_some_and(|d| d <= now)
            {
                server.on_deadline(&self.reactor, now);
            }
            self.fire_deadlines();
            self.settle();
            self.flush_events();
        }
    }

    /// The token of program `i`'s fd in `role`, carrying the slot's generation.
    fn token(&self, i: usize, role: Role) -> Token {
        Token::new(Owner::Supervisor, slot::token_id(role, i, self.slot(i).generation))
    }

    /// The role and the live slot a token id stands for; None when the slot is empty or was
    /// reused since the fd was registered.
    fn route(&self, id: u64) -> Option<(Role, usize)> {
        let (role, i, generation) = slot::parse_token_id(id)?;
        let slot = self.slots.get(i)?.as_ref()?;
        slot::same_generation(generation, slot.generation).then_some((role, i))
    }

    fn slot(&self, i: usize) -> &Slot {
        self.slots[i].as_ref().expect("live slot")
    }

    fn slot_mut(&mut self, i: usize) -> &mut Slot {
        self.slots[i].as_mut().expect("live slot")
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.program.name == name))
    }

    fn next_deadline(&self) -> Option<Instant> {
        let programs = self.slots.iter().flatten().filter_map(|s| {
            // A spawn that waits for leftovers happens when they are gone, not at the deadline.
            let state = s
                .machine
                .state
                .deadline()
                .filter(|_| !s.leftovers.spawn_deferred)
                .into_iter()
                .chain(s.leftovers.kill_at)
                .min();
            // An agent's program whose exit status is still being read.
            let exit_wait = s.exit_wait.map(|w| w.next);
            state.into_iter().chain(exit_wait).chain(s.watch.next_deadline()).min()
        });
        programs
            .chain(self.control.as_ref().and_then(Server::next_deadline))
            .min()
    }

    /// Push this turn's events to the watchers.
    fn flush_events(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        if let Some(server) = &mut self.control {
            for event in &events {
                server.broadcast(&self.reactor, event);
            }
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
            let now = Instant::now();
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
        if let Some(n) = self.notify.as_mut() {
            n.stopping(&format!("{why}: stopping every program"));
        }
        for slot in self.slots.iter_mut().flatten() {
            slot.intent = Intent::Stop(After::Rest);
        }
    }

    /// EPOLLPRI on program `i`'s cgroup.events: how kernfs says it changed.
    fn on_cgroup_events(&mut self, i: usize, r: &Ready) {
        if !r.priority {
            return;
        }
        let slot = self.slot(i);
        // Re-read it whatever the state: a kernfs file stays ready until read.
        let empty = slot.events.as_ref().and_then(ProgramCgroup::events_populated) == Some(false);
        let waiting = matches!(slot.machine.state, State::Stopping { pid: None, .. });
        if empty && waiting && self.tree_empty(i) {
            self.apply(i, Event::Emptied, Instant::now());
        }
        if empty {
            self.check_leftovers(i, Instant::now());
        }
    }

    /// Reap every exited child and feed the exits to their programs.
    fn reap(&mut self) {
        let now = Instant::now();
        let mut any = false;
        for (pid, exit) in process::reap_all() {
            any = true;
            match self.by_pid.remove(&pid) {
                Some(i) => {
                    if let Some(fd) = self.slot_mut(i).pidfd.take() {
                        self.reactor.delete(fd.as_fd());
                    }
                    // Everything it wrote goes to its log before its death's transition line.
                    let name = self.slot(i).program.name.clone();
                    self.logs.drain(&self.reactor, &name);
                    let slot = self.slot(i);
                    let exit = match &slot.cgroup {
                        Some(cg) => exit.or_oom(slot.oom_before, cg.oom_kills()),
                        None => exit,
                    };
                    self.apply(i, Event::Exited(exit), now);
                }
                None if self.on_probe_exit(pid, exit, now) => {}
                None => log::debug!("reaped orphan {pid} ({})", exit.describe()),
            }
        }
        if any {
            // Every process of a program is a descendant of holden: after each death, the
            // programs whose main process is gone check whether the rest is gone too.
            for i in 0..self.slots.len() {
                let waiting = matches!(
                    self.slots[i].as_ref().map(|s| &s.machine.state),
                    Some(State::Stopping { pid: None, .. })
                );
                if waiting && self.tree_empty(i) {
                    self.apply(i, Event::Emptied, now);
                }
                self.check_leftovers(i, now);
            }
        }
    }

    fn fire_deadlines(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i]
                .as_ref()
                .and_then(|s| s.exit_wait)
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
            let due = self.slots[i]
                .as_ref()
                .filter(|s| !s.leftovers.spawn_deferred)
                .and_then(|s| s.machine.state.deadline())
                .is_some_and(|d| d <= now);
            if due {
                self.apply(i, Event::Deadline, now);
            }
            if self.slots[i].is_some() {
                self.watch_deadlines(i, now);
            }
        }
    }

    /// Requests that wait on other programs: starts on dependencies, stops on dependents.
    fn settle(&mut self) {
        let now = Instant::now();
        // Until nothing changes: a start can make another program's dependencies complete
        // only later (RUNNING needs min_uptime), but a stop of a dependent that is already
        // down frees its dependency at once.
        loop {
            let mut progressed = false;
            for i in 0..self.slots.len() {
                let Some(slot) = self.slots[i].as_ref() else {
                    continue;
                };
                let deps = if slot.intent.is_start() {
                    self.deps(i)
                } else {
                    deps::Deps::Waiting
                };
                if let deps::Deps::Failed(why) = deps {
                    self.refuse_start(i, why);
                    progressed = true;
                } else if slot.intent.is_start() && deps == deps::Deps::Satisfied {
                    self.slot_mut(i).intent = Intent::None;
                    self.apply(i, Event::Start, now);
                    progressed = true;
                } else if slot.intent.is_stop() && !self.has_live_dependents(i) {
                    let slot = self.slot_mut(i);
                    slot.intent = std::mem::replace(&mut slot.intent, Intent::None).stop_sent();
                    self.apply(i, Event::Stop, now);
                    progressed = true;
                }
            }
            if !progressed {
                break;
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

    /// Program `i` waits for its dependencies, and one of them will not be RUNNING unless a
    /// user starts it (FATAL, EXITED, STOPPED and not about to start, or waiting in vain too).
    fn never_starts(&self, i: usize, depth: usize) -> bool {
        if depth > self.slots.len() {
            return true;
        }
        let program = &self.slot(i).program;
        program.depends_on.iter().any(|d| {
            let found = self.program_named(d);
            let completed = program.depends_completed.contains(d);
            found.is_empty()
                || found.into_iter().any(|j| {
                    let dep = self.slot(j);
                    match dep.machine.state {
                        State::Exited if completed => !self.completed_ok(j),
                        State::Fatal | State::Exited => true,
                        State::Stopped => !dep.intent.is_start() || self.never_starts(j, depth + 1),
                        _ => false,
                    }
                })
        })
    }

    /// Is every program that `i` depends on RUNNING? A dependency on a program with
    /// instances waits for all of them.
    fn deps_running(&self, i: usize) -> bool {
        self.deps(i) == deps::Deps::Satisfied
    }

    /// Programs that depend on `i` and are being stopped too but are not down yet.
    fn has_live_dependents(&self, i: usize) -> bool {
        let program = &self.slot(i).program;
        self.slots.iter().flatten().any(|s| {
            s.program.depends_on.iter().any(|d| program.answers_to(d))
                && (s.intent.is_stop() || matches!(s.machine.state, State::Stopping { .. }))
                && !s.machine.state.is_down()
        })
    }

    fn request_start(&mut self, i: usize) {
        let slot = self.slot_mut(i);
        if matches!(slot.intent, Intent::Stop(After::Replace(_) | After::Remove)) {
            // A reload or `holden remove` stops it first; the new settings decide its start.
            return;
        }
        slot.intent = Intent::Start;
        let (completed, ready): (Vec<String>, Vec<String>) = slot
            .program
            .depends_on
            .iter()
            .cloned()
            .partition(|d| slot.program.depends_completed.contains(d));
        if !self.deps_running(i) {
            let mut what = Vec::new();
            if !ready.is_empty() {
                what.push(format!("{} to be RUNNING", ready.join(", ")));
            }
            if !completed.is_empty() {
                what.push(format!("{} to complete", completed.join(", ")));
            }
            log::info!("{}: waiting for {}", self.slot(i).program.name, what.join(" and "));
        }
    }

    /// Feed `event` to program `i`, log its transition, perform its effects (which may feed
    /// further events, e.g. Spawn -> Spawned).
    fn apply(&mut self, i: usize, event: Event, now: Instant) {
        if matches!(event, Event::Stop | Event::Kill) {
            // A stop cancels a spawn that waited for leftovers; they still end as planned.
            self.slot_mut(i).leftovers.spawn_deferred = false;
        }
        let mut queue = vec![event];
        while let Some(ev) = queue.pop() {
            let slot = self.slot_mut(i);
            let (effects, transition) = slot.machine.handle(&slot.policy, ev, now);
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
            if became_down {
                self.after_down(i);
                if self.slots[i].is_none() {
                    return;
                }
            }
        }
    }

    fn log_transition(&self, i: usize, t: &Transition) {
        let name = &self.slot(i).program.name;
        match &t.reason {
            Some(r) if t.from == t.to => log::warn!("{name}: {} ({r})", t.from),
            Some(r) => log::info!("{name}: {} -> {} ({r})", t.from, t.to),
            None => log::info!("{name}: {} -> {}", t.from, t.to),
        }
    }

    /// Carry out one effect; returns the event it produced, if any.
    fn perform(&mut self, i: usize, effect: Effect, now: Instant) -> Option<Event> {
        match effect {
            Effect::Spawn if self.slot(i).leftovers.kill_at.is_some() => {
                log::info!(
                    "{}: waiting for the processes of its last run to end before it starts again",
                    self.slot(i).program.name
                );
                self.slot_mut(i).leftovers.spawn_deferred = true;
                None
            }
            Effect::Spawn => Some(self.spawn(i)),
            Effect::Signal(sig) => {
                self.signal_tree(i, sig.0);
                None
            }
            Effect::KillAll => {
                self.signal_tree(i, SIGKILL);
                None
            }
            Effect::KillLeftovers => {
                self.stop_leftovers(i, now);
                None
            }
        }
    }

    fn spawn(&mut self, i: usize) -> Event {
        let program = self.slot(i).program.clone();
        if let Some(socket) = &program.agent {
            return self.spawn_remote(i, socket);
        }
        let (stdout, stderr) = match self.logs.attach(&program, &self.reactor) {
            Ok(s) => (s.stdout, s.stderr),
            Err(e) if e.short_of_resources() => return Event::SpawnShort { reason: e.to_string() },
            Err(e) => {
                return Event::SpawnFailed {
                    reason: e.to_string(),
                    retry: false,
                };
            }
        };
        let procs = match self.prepare_cgroup(i) {
            Ok(procs) => procs,
            Err(e) if e.short_of_resources() => return Event::SpawnShort { reason: e.to_string() },
            Err(e) => {
                return Event::SpawnFailed {
                    reason: e.to_string(),
                    retry: false,
                };
            }
        };
        let extra = match self.prepare_watch(i) {
            Ok(extra) => extra,
            Err(reason) => return Event::SpawnFailed { reason, retry: false },
        };
        match process::spawn::spawn_with(&program, stdout, stderr, procs, extra) {
            Ok(spawned) => {
                let token = self.token(i, Role::Pidfd);
                if let Err(e) = self
                    .reactor
                    .add(spawned.pidfd.as_fd(), token, crate::reactor::Interest::Read)
                {
                    // Without its pidfd registered, SIGCHLD still reports the death.
                    log::warn!("{}: cannot watch pidfd: {e}", program.name);
                }
                self.by_pid.insert(spawned.pid, i);
                let slot = self.slot_mut(i);
                slot.pidfd = Some(spawned.pidfd);
                slot.pgid = Some(spawned.pid);
                Event::Spawned { pid: spawned.pid }
            }
            Err(e) if e.retryable() => Event::SpawnShort { reason: e.to_string() },
            Err(e) => Event::SpawnFailed {
                reason: e.to_string(),
                retry: false,
            },
        }
    }

    /// Program `i`'s cgroup, created (with its limits) at its first spawn and after a reload
    /// changed it; returns the cgroup.procs files the child joins before exec. Limits are not
    /// rewritten at each restart, so a live `constrain` lasts until a reload changes the program.
    fn prepare_cgroup(&mut self, i: usize) -> Result<Vec<OwnedFd>, crate::cgroup::CgroupError> {
        let Some(cgroups) = &self.cgroups else {
            return Ok(Vec::new());
        };
        let slot = self.slot(i);
        if slot.program.agent.is_some() {
            return Ok(Vec::new());
        }
        let cg = match &slot.cgroup {
            Some(cg) => cg.clone(),
            None => {
                let program = &slot.program;
                let (cg, leftovers) = cgroups.program(&program.name)?;
                if leftovers > 0 {
                    log::warn!(
                        "{}: killed {leftovers} leftover process(es) of an earlier run in {}",
                        program.name,
                        cg.path().display()
                    );
                }
                cg.set_limits(slot.limits.0, slot.limits.1, slot.limits.2)?;
                if program.has_limits() {
                    log::info!("{}: limits applied in {}", program.name, cg.path().display());
                }
                cg
            }
        };
        let procs = cg.procs_files()?;
        let name = slot.program.name.clone();
        let slot = self.slot_mut(i);
        slot.oom_before = cg.oom_kills();
        if slot.events.is_none()
            && let Some(f) = cg.events_file()
        {
            let token = self.token(i, Role::CgroupEvents);
            match self.reactor.add(f.as_fd(), token, crate::reactor::Interest::Priority) {
                Ok(()) => self.slot_mut(i).events = Some(f),
                Err(e) => log::warn!("{name}: cannot watch cgroup.events: {e}"),
            }
        }
        self.slot_mut(i).cgroup = Some(cg);
        Ok(procs)
    }

    /// Send `sig` to every process of program `i`: its process group (the program runs in
    /// its own session, so the group is its main process's pid, and outlives it while any
    /// member lives).
    fn signal_tree(&self, i: usize, sig: i32) {
        let slot = self.slot(i);
        if slot.program.agent.is_some() {
            // Only the main process is known: signal it through its pidfd.
            if let (Some(fd), Some(sig)) = (&slot.pidfd, crate::sys::signal::Signal(sig).to_rustix())
                && slot.exit_wait.is_none()
                && let Err(e) = rustix::process::pidfd_send_signal(fd, sig)
                && e != rustix::io::Errno::SRCH
            {
                log::warn!("{}: cannot signal it through its pidfd: {e}", slot.program.name);
            }
            return;
        }
        if let Some(cg) = &slot.cgroup {
            if sig == SIGKILL {
                if let Err(e) = cg.kill_all() {
                    log::warn!("{}: {e}", slot.program.name);
                }
            } else {
                cg.signal_all(sig);
            }
            return;
        }
        let (Some(sig), Some(pgid)) = (crate::sys::signal::Signal(sig).to_rustix(), slot.pgid) else {
            return;
        };
        if let Some(pid) = Pid::from_raw(pgid) {
            match rustix::process::kill_process_group(pid, sig) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => log::warn!("{}: cannot signal process group {pgid}: {e}", slot.program.name),
            }
        }
    }

    /// The main process of program `i` exited on its own: whatever it left behind (a daemon
    /// that forked) gets the stop_signal now and SIGKILL after stop_timeout.
    fn stop_leftovers(&mut self, i: usize, now: Instant) {
        let slot = self.slot(i);
        if slot.program.agent.is_some() || self.tree_empty(i) {
            return;
        }
        let n = self.leftover_count(i);
        let (sig, timeout) = (slot.policy.stop_signal, slot.policy.stop_timeout);
        self.signal_tree(i, sig.0);
        log::warn!(
            "{}: {n} process(es) left after the main process exited: sent SIG{}",
            slot.program.name,
            sig.name()
        );
        self.slot_mut(i).leftovers = Leftovers {
            kill_at: Some(now + timeout),
            killed: false,
            spawn_deferred: false,
        };
        self.check_leftovers(i, now);
    }

    /// The leftovers of program `i` outlived stop_timeout (or SIGKILL): SIGKILL (again).
    fn kill_leftovers(&mut self, i: usize, now: Instant) {
        if self.check_leftovers(i, now) {
            return;
        }
        let slot = self.slot(i);
        let name = slot.program.name.clone();
        let n = self.leftover_count(i);
        if slot.leftovers.killed {
            log::warn!(
                "{name}: {n} leftover process(es) still alive {} after SIGKILL",
                humantime::format_duration(LEFTOVER_KILL_GRACE)
            );
        } else {
            log::warn!(
                "{name}: {n} leftover process(es) still alive after stop_timeout {}: sent SIGKILL",
                humantime::format_duration(slot.policy.stop_timeout)
            );
        }
        self.signal_tree(i, SIGKILL);
        let left = &mut self.slot_mut(i).leftovers;
        left.killed = true;
        left.kill_at = Some(now + LEFTOVER_KILL_GRACE);
        self.check_leftovers(i, now);
    }

    /// Are the leftovers of program `i` gone (or were there none)? When they just went, the
    /// spawn that waited for them happens now.
    fn check_leftovers(&mut self, i: usize, now: Instant) -> bool {
        let Some(slot) = self.slots[i].as_ref() else {
            return true;
        };
        if slot.leftovers.kill_at.is_none() {
            return true;
        }
        if !self.tree_empty(i) {
            return false;
        }
        let deferred = slot.leftovers.spawn_deferred;
        log::debug!("{}: the processes of its last run are gone", slot.program.name);
        self.slot_mut(i).leftovers = Leftovers::default();
        if deferred && !self.shutting_down {
            let event = self.spawn(i);
            self.apply(i, event, now);
        }
        true
    }

    /// How many processes program `i` has: in its cgroup, else in its process group.
    fn leftover_count(&self, i: usize) -> usize {
        let slot = self.slot(i);
        if let Some(cg) = &slot.cgroup {
            return cg.pids().len();
        }
        slot.pgid.map_or(0, process::group_members)
    }

    /// Are all processes of program `i` gone?
    fn tree_empty(&self, i: usize) -> bool {
        if let Some(cg) = &self.slot(i).cgroup {
            return !cg.populated();
        }
        match self.slot(i).pgid.and_then(Pid::from_raw) {
            Some(p) => rustix::process::test_kill_process_group(p) == Err(rustix::io::Errno::SRCH),
            None => true,
        }
    }
}

const SIGKILL: i32 = 9;

/// How often to say that leftovers are still there after SIGKILL (uninterruptible sleep).
const LEFTOVER_KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

//! The life of one program: SPEC's states as a pure machine. `Machine::handle` takes an event
//! and `now` and returns the effects for the supervisor to perform plus the transition to log
//! (even a line about a state that stays, such as a kill that is taking long); it performs no
//! I/O and logs nothing, so it is tested as tables on a fake clock.
//!
//! The match is over (state, event) with no catch-all arm, so a new event or state forces a
//! decision everywhere (the `actions[state][event]` table of s6-supervise).
//!
//! Restart rules (SPEC "When a program ends on its own"): a run that reached RUNNING resets
//! the consecutive count; each restart increments it and waits restart_delay doubled per
//! previous consecutive restart, capped at max_restart_delay; a restart past max_restarts is
//! FATAL instead.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{RestartPolicy, Signal};

mod policy;
use crate::process::ExitKind;
pub use policy::{Policy, backoff};

/// What the machine knows of a main process: its pid. The supervisor's is `Proc` (its pidfd,
/// process group, pending exec outcome: supervisor/process.rs); the table tests use a bare pid.
/// The state owns it while the process lives, and lets go of it (`Handled::released`) when it
/// ends or never ran, so that what watched it leaves with it.
pub trait Process {
    fn pid(&self) -> i32;
}

impl Process for i32 {
    fn pid(&self) -> i32 {
        *self
    }
}

/// SPEC's states, with the data each one needs; `P` is the main process.
#[derive(Debug, Clone, PartialEq)]
pub enum State<P> {
    Stopped,
    /// Spawned, not ready yet. `ready_by`: readiness "uptime": when min_uptime has passed (then
    /// RUNNING); any other: the start_timeout (then a failure), moved by EXTEND_TIMEOUT_USEC.
    Starting {
        process: P,
        since: Instant,
        ready_by: Instant,
    },
    Running {
        process: P,
        since: Instant,
    },
    /// Waiting to restart.
    Backoff {
        until: Instant,
    },
    /// Stop signal sent. `process` is None once the main process is gone (the rest of the
    /// program's processes may still be ending). `killed`: SIGKILL was sent.
    Stopping {
        process: Option<P>,
        deadline: Instant,
        killed: bool,
        /// Stopped by holden because the program failed (not ready in time, liveness,
        /// watchdog): once down, the restart policy applies as to a failed exit.
        failure: Option<String>,
    },
    /// Ended on its own; the policy does not restart it.
    Exited,
    /// Gave up: too many restarts, or it cannot be spawned.
    Fatal,
}

impl<P: Process> State<P> {
    pub fn name(&self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting { .. } => "STARTING",
            State::Running { .. } => "RUNNING",
            State::Backoff { .. } => "BACKOFF",
            State::Stopping { .. } => "STOPPING",
            State::Exited => "EXITED",
            State::Fatal => "FATAL",
        }
    }

    /// The main process, while there is one.
    pub fn process(&self) -> Option<&P> {
        match self {
            State::Starting { process, .. } | State::Running { process, .. } => Some(process),
            State::Stopping { process, .. } => process.as_ref(),
            State::Stopped | State::Backoff { .. } | State::Exited | State::Fatal => None,
        }
    }

    /// The main process, to change what the supervisor keeps of it (`MAINPID=`: another
    /// process of the program is its main process now).
    pub fn process_mut(&mut self) -> Option<&mut P> {
        match self {
            State::Starting { process, .. } | State::Running { process, .. } => Some(process),
            State::Stopping { process, .. } => process.as_mut(),
            State::Stopped | State::Backoff { .. } | State::Exited | State::Fatal => None,
        }
    }

    /// The main process's pid, while there is one.
    pub fn pid(&self) -> Option<i32> {
        self.process().map(P::pid)
    }

    /// When this state wants a `Deadline` event.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            State::Starting { ready_by, .. } => Some(*ready_by),
            State::Backoff { until } => Some(*until),
            State::Stopping { deadline, .. } => Some(*deadline),
            State::Stopped | State::Running { .. } | State::Exited | State::Fatal => None,
        }
    }

    /// At rest: nothing will happen to it without a request.
    pub fn is_down(&self) -> bool {
        matches!(self, State::Stopped | State::Exited | State::Fatal)
    }
}

/// What happened to a program; `P` is the main process.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<P> {
    /// Start requested (autostart, `holden start`, dependencies now running).
    Start,
    /// Stop requested (`holden stop`, shutdown, reload removed it).
    Stop,
    /// Stop at once with SIGKILL (a second SIGTERM during shutdown).
    Kill,
    /// The supervisor made the main process asked for by `Effect::Spawn` (it may not have
    /// exec'd yet: a failure to exec comes as `SpawnFailed` or `SpawnShort` in STARTING).
    Spawned(P),
    /// `Effect::Spawn` failed, before the child existed or when it could not exec; `retry`
    /// when a later try could succeed (an agent down).
    SpawnFailed { reason: String, retry: bool },
    /// `Effect::Spawn` failed for lack of a resource that comes back (EMFILE, ENFILE, ENOMEM,
    /// EAGAIN from fork): backed off and tried again however often, never counted toward
    /// `max_restarts`, never FATAL.
    SpawnShort { reason: String },
    /// The main process ended.
    Exited(ExitKind),
    /// Every process of the program is gone (its cgroup or process group is empty).
    Emptied,
    /// `State::deadline` has passed.
    Deadline,
    /// The program said or showed it is ready (READY=1, its fd, a probe); `how` for the log.
    Ready { how: String },
    /// The program failed while alive (liveness, watchdog): stop it, then apply the policy.
    Fail { reason: String },
    /// EXTEND_TIMEOUT_USEC: the current start or stop may take this much longer from now.
    Extend(Duration),
}

/// What the supervisor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Spawn,
    /// Send to every process of the program (its cgroup, else its process group).
    Signal(Signal),
    /// SIGKILL every process of the program.
    KillAll,
    /// The main process ended on its own: stop what it left behind (a daemon that forked):
    /// the stop_signal, SIGKILL after stop_timeout. The supervisor holds any spawn of the
    /// program until they are gone, so a restart never runs the program twice.
    KillLeftovers,
}

/// A state change, for holden's log: `web: STARTING -> BACKOFF (exit status 1; restart 2/5 in 2s)`.
/// `from == to` for an event worth a line that does not change the state (`web: STOPPING
/// (stop_timeout 10s passed; sent SIGKILL)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: &'static str,
    pub to: &'static str,
    pub reason: Option<String>,
}

/// What one event did to a machine.
#[derive(Debug)]
pub struct Handled<P> {
    pub effects: Vec<Effect>,
    /// The line to log, if any.
    pub transition: Option<Transition>,
    /// The main process the state let go of: it ended, or it never ran (its exec failed). The
    /// supervisor closes what watched it.
    pub released: Option<P>,
}

/// After SIGKILL, how long to wait before saying so again (a process in D state).
const KILL_GRACE: Duration = Duration::from_secs(5);

/// One program's machine; `P` is its main process.
#[derive(Debug, Clone)]
pub struct Machine<P> {
    pub state: State<P>,
    /// When the state last changed.
    pub since: Instant,
    /// Consecutive restarts since the last run that reached RUNNING.
    pub consecutive: u32,
    /// Restarts since holden started (status `restarts`).
    pub restarts: u32,
    pub last_exit: Option<ExitKind>,
    /// When the failed runs restarted within the last `start_limit_interval` ended.
    failures: VecDeque<Instant>,
    /// Spawns in a row that failed for lack of a resource (fds, memory): their delay doubles
    /// up to `max_restart_delay`, so that a long shortage costs a line per that delay. A run
    /// that ran (its main process ended) or a fresh start ends the row.
    short_tries: u32,
    /// What the last readiness probe of this run said, for the "not ready" reason.
    pub ready_hint: Option<String>,
}

/// What one event makes of a state: the state after it (`changed`: a new one, or the same one
/// with something worth a line), the effects, the line's reason, the process let go of.
struct Step<P> {
    next: State<P>,
    changed: bool,
    effects: Vec<Effect>,
    reason: Option<String>,
    released: Option<P>,
}

impl<P> Step<P> {
    /// The state stays as it was.
    fn keep(state: State<P>) -> Step<P> {
        Step {
            next: state,
            changed: false,
            effects: vec![],
            reason: None,
            released: None,
        }
    }

    /// The state becomes `next` (a line when its name changes, or when there is a reason).
    fn to(next: State<P>, reason: Option<String>) -> Step<P> {
        Step {
            next,
            changed: true,
            effects: vec![],
            reason,
            released: None,
        }
    }

    fn with(mut self, effects: Vec<Effect>) -> Step<P> {
        self.effects = effects;
        self
    }

    /// The main process leaves the state with this step.
    fn release(mut self, process: Option<P>) -> Step<P> {
        self.released = process;
        self
    }

    /// The main process of a program being stopped is gone: still STOPPING until the rest of
    /// its processes are gone too (Emptied).
    fn main_gone(process: Option<P>, deadline: Instant, killed: bool, failure: Option<String>) -> Step<P> {
        let next = State::Stopping {
            process: None,
            deadline,
            killed,
            failure,
        };
        Step::to(next, None).release(process)
    }
}

impl<P: Process> Machine<P> {
    pub fn new(now: Instant) -> Machine<P> {
        Machine {
            state: State::Stopped,
            since: now,
            consecutive: 0,
            restarts: 0,
            last_exit: None,
            failures: VecDeque::new(),
            short_tries: 0,
            ready_hint: None,
        }
    }

    /// Apply `event` at `now`; returns the effects to perform, the transition if the state
    /// changed, and the main process if the state let go of it.
    pub fn handle(&mut self, policy: &Policy, event: Event<P>, now: Instant) -> Handled<P> {
        let from = self.state.name();
        let state = std::mem::replace(&mut self.state, State::Stopped);
        let Step {
            next,
            changed,
            effects,
            reason,
            released,
        } = self.step(policy, state, event, now);
        let to = next.name();
        self.state = next;
        let transition = if !changed {
            None
        } else if from != to {
            self.since = now;
            Some(Transition { from, to, reason })
        } else {
            // Same state, something worth a line (SIGKILL after stop_timeout).
            reason.map(|r| Transition {
                from,
                to,
                reason: Some(r),
            })
        };
        Handled {
            effects,
            transition,
            released,
        }
    }

    fn step(&mut self, policy: &Policy, state: State<P>, event: Event<P>, now: Instant) -> Step<P> {
        use Effect::{KillAll, Spawn};
        use Event as E;
        use State as S;
        match (state, event) {
            // A start from rest begins a fresh count; from BACKOFF it is a restart now.
            (s @ (S::Stopped | S::Exited | S::Fatal), E::Start) => {
                self.consecutive = 0;
                self.short_tries = 0;
                self.failures.clear();
                Step::keep(s).with(vec![Spawn])
            }
            (s @ S::Backoff { .. }, E::Start) => Step::keep(s).with(vec![Spawn]),
            (s @ (S::Starting { .. } | S::Running { .. } | S::Stopping { .. }), E::Start) => Step::keep(s),

            (s @ (S::Stopped | S::Exited | S::Fatal), E::Stop) => Step::keep(s),
            (S::Backoff { .. }, E::Stop) => Step::to(S::Stopped, Some("stop requested".into())),
            (S::Starting { process, .. } | S::Running { process, .. }, E::Stop) => Step::to(
                S::Stopping {
                    process: Some(process),
                    deadline: now + policy.stop_timeout,
                    killed: false,
                    failure: None,
                },
                Some(format!("sent SIG{}", policy.stop_signal.name())),
            )
            .with(vec![Effect::Signal(policy.stop_signal)]),
            // A stop asked while holden stops a failed program: no restart after it.
            (
                S::Stopping {
                    process,
                    deadline,
                    killed,
                    failure: Some(_),
                },
                E::Stop,
            ) => Step::to(
                S::Stopping {
                    process,
                    deadline,
                    killed,
                    failure: None,
                },
                None,
            ),
            (s @ S::Stopping { failure: None, .. }, E::Stop) => Step::keep(s),

            (s @ (S::Stopped | S::Exited | S::Fatal), E::Kill) => Step::keep(s),
            (S::Backoff { .. }, E::Kill) => Step::to(S::Stopped, Some("killed".into())),
            (S::Starting { process, .. } | S::Running { process, .. }, E::Kill) => Step::to(
                S::Stopping {
                    process: Some(process),
                    deadline: now + KILL_GRACE,
                    killed: true,
                    failure: None,
                },
                Some("sent SIGKILL".into()),
            )
            .with(vec![KillAll]),
            (S::Stopping { process, .. }, E::Kill) => Step::to(
                S::Stopping {
                    process,
                    deadline: now + KILL_GRACE,
                    killed: true,
                    failure: None,
                },
                Some("sent SIGKILL".into()),
            )
            .with(vec![KillAll]),

            (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. }, E::Spawned(process)) => {
                self.ready_hint = None;
                let ready_by = now
                    + if policy.ready_on_uptime {
                        policy.min_uptime
                    } else {
                        policy.start_timeout
                    };
                let line = format!("pid {}", process.pid());
                Step::to(
                    S::Starting {
                        process,
                        since: now,
                        ready_by,
                    },
                    Some(line),
                )
            }
            // Spawned is only ever the answer to our own Spawn effect, which these states never ask.
            (s @ (S::Starting { .. } | S::Running { .. } | S::Stopping { .. }), E::Spawned(process)) => {
                Step::keep(s).release(Some(process))
            }

            (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. }, E::SpawnFailed { reason, retry }) => {
                self.spawn_failed(policy, reason, retry, now)
            }
            // Its exec failed (found once the child existed): the same policy as a spawn that
            // failed before. RUNNING only if min_uptime passed before the outcome was read.
            (S::Starting { process, .. } | S::Running { process, .. }, E::SpawnFailed { reason, retry }) => {
                self.spawn_failed(policy, reason, retry, now).release(Some(process))
            }
            (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. }, E::SpawnShort { reason }) => {
                self.spawn_short(policy, reason, now)
            }
            (S::Starting { process, .. } | S::Running { process, .. }, E::SpawnShort { reason }) => {
                self.spawn_short(policy, reason, now).release(Some(process))
            }
            // Stopped while its exec was pending, and the exec failed: the main process is gone
            // (it never ran), quietly.
            (
                S::Stopping {
                    process,
                    deadline,
                    killed,
                    failure,
                },
                E::SpawnFailed { .. } | E::SpawnShort { .. },
            ) => Step::main_gone(process, deadline, killed, failure),

            (S::Starting { process, .. } | S::Running { process, .. }, E::Exited(exit)) => {
                self.last_exit = Some(exit);
                self.short_tries = 0;
                self.after_exit(policy, exit, now).release(Some(process))
            }
            (
                S::Stopping {
                    process,
                    deadline,
                    killed,
                    failure,
                },
                E::Exited(exit),
            ) => {
                self.last_exit = Some(exit);
                self.short_tries = 0;
                Step::main_gone(process, deadline, killed, failure)
            }
            (s @ (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. }), E::Exited(_)) => Step::keep(s),

            (
                S::Stopping {
                    process: None,
                    failure: Some(reason),
                    ..
                },
                E::Emptied,
            ) => self.after_failure(policy, reason, now),
            (
                S::Stopping {
                    process: None,
                    failure: None,
                    ..
                },
                E::Emptied,
            ) => Step::to(S::Stopped, self.last_exit.map(ExitKind::describe)),
            // The main process is what decides for a running program; its leftovers are killed
            // when it exits.
            (
                s @ (S::Stopped
                | S::Exited
                | S::Fatal
                | S::Backoff { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Stopping { process: Some(_), .. }),
                E::Emptied,
            ) => Step::keep(s),

            (S::Starting { process, .. }, E::Deadline) if policy.ready_on_uptime => {
                // A run that reached RUNNING resets the count and the delay.
                self.consecutive = 0;
                Step::to(S::Running { process, since: now }, None)
            }
            (S::Starting { process, since, .. }, E::Deadline) => {
                let waited = Duration::from_secs(now.saturating_duration_since(since).as_secs());
                let mut reason = format!("not ready after {}", humantime::format_duration(waited));
                if let Some(hint) = &self.ready_hint {
                    reason.push_str(&format!(" ({hint})"));
                }
                self.fail(policy, process, reason, now)
            }
            (s @ S::Backoff { .. }, E::Deadline) => Step::keep(s).with(vec![Spawn]),
            (
                S::Stopping {
                    process,
                    killed: false,
                    failure,
                    ..
                },
                E::Deadline,
            ) => Step::to(
                S::Stopping {
                    process,
                    deadline: now + KILL_GRACE,
                    killed: true,
                    failure,
                },
                Some(format!(
                    "stop_timeout {} passed; sent SIGKILL",
                    humantime::format_duration(policy.stop_timeout)
                )),
            )
            .with(vec![KillAll]),
            (
                S::Stopping {
                    process,
                    killed: true,
                    failure,
                    ..
                },
                E::Deadline,
            ) => {
                // Still there after SIGKILL (uninterruptible sleep): keep waiting, say so.
                let reason = format!(
                    "processes still alive {} after SIGKILL",
                    humantime::format_duration(KILL_GRACE)
                );
                Step::to(
                    S::Stopping {
                        process,
                        deadline: now + KILL_GRACE,
                        killed: true,
                        failure,
                    },
                    Some(reason),
                )
                .with(vec![KillAll])
            }
            (s @ (S::Stopped | S::Exited | S::Fatal | S::Running { .. }), E::Deadline) => Step::keep(s),

            (S::Starting { process, .. }, E::Ready { how }) => {
                // A run that reached RUNNING resets the count and the delay.
                self.consecutive = 0;
                Step::to(S::Running { process, since: now }, Some(format!("ready: {how}")))
            }
            (
                s @ (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. } | S::Running { .. } | S::Stopping { .. }),
                E::Ready { .. },
            ) => Step::keep(s),

            (S::Starting { process, .. } | S::Running { process, .. }, E::Fail { reason }) => {
                self.fail(policy, process, reason, now)
            }
            (s @ (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. } | S::Stopping { .. }), E::Fail { .. }) => {
                Step::keep(s)
            }

            (
                S::Starting {
                    process,
                    since,
                    ready_by,
                },
                E::Extend(d),
            ) if !policy.ready_on_uptime => Step::to(
                S::Starting {
                    process,
                    since,
                    ready_by: ready_by.max(now + d),
                },
                None,
            ),
            (
                S::Stopping {
                    process,
                    deadline,
                    killed: false,
                    failure,
                },
                E::Extend(d),
            ) => Step::to(
                S::Stopping {
                    process,
                    deadline: deadline.max(now + d),
                    killed: false,
                    failure,
                },
                None,
            ),
            (
                s @ (S::Stopped
                | S::Exited
                | S::Fatal
                | S::Backoff { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Stopping { .. }),
                E::Extend(_),
            ) => Step::keep(s),
        }
    }

    /// A spawn failed: FATAL when it cannot succeed, else a restart as after a failed run.
    fn spawn_failed(&mut self, policy: &Policy, reason: String, retry: bool, now: Instant) -> Step<P> {
        if retry {
            self.restart_or_give_up(policy, now, reason)
        } else {
            Step::to(State::Fatal, Some(reason))
        }
    }

    /// A spawn failed for lack of a resource: back off, however often, never FATAL.
    fn spawn_short(&mut self, policy: &Policy, reason: String, now: Instant) -> Step<P> {
        self.short_tries = self.short_tries.saturating_add(1);
        let delay = policy.delay(self.consecutive.max(1).saturating_add(self.short_tries - 1));
        let reason = format!(
            "{reason}; out of a resource, trying again in {}",
            humantime::format_duration(delay)
        );
        Step::to(State::Backoff { until: now + delay }, Some(reason))
    }

    /// The main process ended on its own: EXITED, BACKOFF or FATAL by the policy.
    fn after_exit(&mut self, policy: &Policy, exit: ExitKind, now: Instant) -> Step<P> {
        let how = exit.describe();
        let restart = policy.autorestart.restarts(policy.is_success(exit));
        let mut step = if restart && !policy.is_success(exit) && self.start_limit_hit(policy, now) {
            let reason = format!(
                "{how}; gave up: {} failed runs within {} (start_limit_burst)",
                self.failures.len(),
                humantime::format_duration(policy.start_limit_interval)
            );
            Step::to(State::Fatal, Some(reason))
        } else if restart {
            self.restart_or_give_up(policy, now, how)
        } else {
            Step::to(State::Exited, Some(how))
        };
        step.effects.insert(0, Effect::KillLeftovers);
        step
    }

    /// Holden decided the program failed: stop it by its stop sequence; the policy applies
    /// once it is down.
    fn fail(&mut self, policy: &Policy, process: P, reason: String, now: Instant) -> Step<P> {
        let line = format!("{reason}; sent SIG{}", policy.stop_signal.name());
        Step::to(
            State::Stopping {
                process: Some(process),
                deadline: now + policy.stop_timeout,
                killed: false,
                failure: Some(reason),
            },
            Some(line),
        )
        .with(vec![Effect::Signal(policy.stop_signal)])
    }

    /// A program that holden stopped because it failed is down: restart it as after a failed
    /// exit, or leave it EXITED (autorestart = "never").
    fn after_failure(&mut self, policy: &Policy, how: String, now: Instant) -> Step<P> {
        if policy.autorestart == RestartPolicy::Never {
            return Step::to(State::Exited, Some(how));
        }
        if self.start_limit_hit(policy, now) {
            let reason = format!(
                "{how}; gave up: {} failed runs within {} (start_limit_burst)",
                self.failures.len(),
                humantime::format_duration(policy.start_limit_interval)
            );
            return Step::to(State::Fatal, Some(reason));
        }
        self.restart_or_give_up(policy, now, how)
    }

    /// Count a failed run that ended at `now`: has the program failed more than
    /// `start_limit_burst` times within `start_limit_interval`?
    fn start_limit_hit(&mut self, policy: &Policy, now: Instant) -> bool {
        if policy.start_limit_burst == 0 {
            return false;
        }
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= policy.start_limit_interval)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        self.failures.len() > policy.start_limit_burst as usize
    }

    fn restart_or_give_up(&mut self, policy: &Policy, now: Instant, how: String) -> Step<P> {
        if self.consecutive >= policy.max_restarts {
            let reason = format!("{how}; gave up after {} restarts", self.consecutive);
            return Step::to(State::Fatal, Some(reason));
        }
        self.consecutive += 1;
        self.restarts += 1;
        let delay = policy.delay(self.consecutive);
        let reason = format!(
            "{how}; restart {}/{} in {}",
            self.consecutive,
            policy.max_restarts,
            humantime::format_duration(delay)
        );
        Step::to(State::Backoff { until: now + delay }, Some(reason))
    }
}

#[cfg(test)]
mod tests;

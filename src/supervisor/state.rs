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

use crate::config::{Program, RestartPolicy, Signal};
use crate::process::ExitKind;

/// SPEC's states, with the data each one needs.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Stopped,
    /// Spawned, not ready yet. `ready_by`: readiness "uptime": when min_uptime has passed (then
    /// RUNNING); any other: the start_timeout (then a failure), moved by EXTEND_TIMEOUT_USEC.
    Starting {
        pid: i32,
        since: Instant,
        ready_by: Instant,
    },
    Running {
        pid: i32,
        since: Instant,
    },
    /// Waiting to restart.
    Backoff {
        until: Instant,
    },
    /// Stop signal sent. `pid` is None once the main process is gone (the rest of the
    /// program's processes may still be ending). `killed`: SIGKILL was sent.
    Stopping {
        pid: Option<i32>,
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

impl State {
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
    pub fn pid(&self) -> Option<i32> {
        match self {
            State::Starting { pid, .. } | State::Running { pid, .. } => Some(*pid),
            State::Stopping { pid, .. } => *pid,
            State::Stopped | State::Backoff { .. } | State::Exited | State::Fatal => None,
        }
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

    /// `MAINPID=`: another process of the program is its main process now.
    pub fn set_pid(&mut self, new: i32) {
        match self {
            State::Starting { pid, .. } | State::Running { pid, .. } => *pid = new,
            State::Stopping { pid: Some(pid), .. } => *pid = new,
            State::Stopping { pid: None, .. }
            | State::Stopped
            | State::Backoff { .. }
            | State::Exited
            | State::Fatal => {}
        }
    }

    /// At rest: nothing will happen to it without a request.
    pub fn is_down(&self) -> bool {
        matches!(self, State::Stopped | State::Exited | State::Fatal)
    }
}

/// What happened to a program.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Start requested (autostart, `holden start`, dependencies now running).
    Start,
    /// Stop requested (`holden stop`, shutdown, reload removed it).
    Stop,
    /// Stop at once with SIGKILL (a second SIGTERM during shutdown).
    Kill,
    /// The supervisor spawned the main process asked for by `Effect::Spawn`.
    Spawned { pid: i32 },
    /// `Effect::Spawn` failed; `retry` when a later try could succeed (an agent down, EAGAIN).
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

/// The settings the machine needs, taken from the program's config.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub autorestart: RestartPolicy,
    pub exit_codes: Vec<i32>,
    pub min_uptime: Duration,
    pub restart_delay: Duration,
    pub max_restart_delay: Duration,
    pub max_restarts: u32,
    pub start_limit_burst: u32,
    pub start_limit_interval: Duration,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// Readiness "uptime": ready after min_uptime. Otherwise a Ready event must come within
    /// start_timeout.
    pub ready_on_uptime: bool,
    pub start_timeout: Duration,
}

impl Policy {
    pub fn of(p: &Program) -> Policy {
        Policy {
            autorestart: p.autorestart,
            exit_codes: p.exit_codes.clone(),
            min_uptime: p.min_uptime,
            restart_delay: p.restart_delay,
            max_restart_delay: p.max_restart_delay,
            max_restarts: p.max_restarts,
            start_limit_burst: p.start_limit_burst,
            start_limit_interval: p.start_limit_interval,
            stop_signal: p.stop_signal,
            stop_timeout: p.stop_timeout,
            ready_on_uptime: p.readiness == crate::config::probe::Readiness::Uptime,
            start_timeout: p.start_timeout,
        }
    }

    fn is_success(&self, exit: ExitKind) -> bool {
        match exit {
            ExitKind::Code(c) => self.exit_codes.contains(&c),
            ExitKind::Signal(_) | ExitKind::Oom | ExitKind::Unknown => false,
        }
    }

    /// The delay before consecutive restart number `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.restart_delay
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max_restart_delay)
            .min(self.max_restart_delay.max(self.restart_delay))
    }
}

/// After SIGKILL, how long to wait before saying so again (a process in D state).
const KILL_GRACE: Duration = Duration::from_secs(5);

/// One program's machine.
#[derive(Debug, Clone)]
pub struct Machine {
    pub state: State,
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
    /// up to `max_restart_delay`, so that a long shortage costs a line per that delay.
    short_tries: u32,
    /// What the last readiness probe of this run said, for the "not ready" reason.
    pub ready_hint: Option<String>,
}

impl Machine {
    pub fn new(now: Instant) -> Machine {
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

    /// Apply `event` at `now`; returns the effects to perform and the transition, if the state
    /// changed.
    pub fn handle(&mut self, policy: &Policy, event: Event, now: Instant) -> (Vec<Effect>, Option<Transition>) {
        use Event as E;
        use State as S;
        let (next, effects, reason): (Option<State>, Vec<Effect>, Option<String>) = match (&self.state, event) {
            // A start from rest begins a fresh count; from BACKOFF it is a restart now.
            (S::Stopped | S::Exited | S::Fatal, E::Start) => {
                self.consecutive = 0;
                self.failures.clear();
                (None, vec![Effect::Spawn], None)
            }
            (S::Backoff { .. }, E::Start) => (None, vec![Effect::Spawn], None),
            (S::Starting { .. } | S::Running { .. } | S::Stopping { .. }, E::Start) => (None, vec![], None),

            (S::Stopped | S::Exited | S::Fatal, E::Stop) => (None, vec![], None),
            (S::Backoff { .. }, E::Stop) => (Some(S::Stopped), vec![], Some("stop requested".into())),
            (S::Starting { pid, .. } | S::Running { pid, .. }, E::Stop) => (
                Some(S::Stopping {
                    pid: Some(*pid),
                    deadline: now + policy.stop_timeout,
                    killed: false,
                    failure: None,
                }),
                vec![Effect::Signal(policy.stop_signal)],
                Some(format!("sent SIG{}", policy.stop_signal.name())),
            ),
            // A stop asked while holden stops a failed program: no restart after it.
            (
                S::Stopping {
                    pid,
                    deadline,
                    killed,
                    failure: Some(_),
                },
                E::Stop,
            ) => (
                Some(S::Stopping {
                    pid: *pid,
                    deadline: *deadline,
                    killed: *killed,
                    failure: None,
                }),
                vec![],
                None,
            ),
            (S::Stopping { failure: None, .. }, E::Stop) => (None, vec![], None),

            (S::Stopped | S::Exited | S::Fatal, E::Kill) => (None, vec![], None),
            (S::Backoff { .. }, E::Kill) => (Some(S::Stopped), vec![], Some("killed".into())),
            (S::Starting { pid, .. } | S::Running { pid, .. }, E::Kill) => (
                Some(S::Stopping {
                    pid: Some(*pid),
                    deadline: now + KILL_GRACE,
                    killed: true,
                    failure: None,
                }),
                vec![Effect::KillAll],
                Some("sent SIGKILL".into()),
            ),
            (S::Stopping { pid, .. }, E::Kill) => (
                Some(S::Stopping {
                    pid: *pid,
                    deadline: now + KILL_GRACE,
                    killed: true,
                    failure: None,
                }),
                vec![Effect::KillAll],
                Some("sent SIGKILL".into()),
            ),

            (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. }, E::Spawned { pid }) => {
                self.short_tries = 0;
                self.ready_hint = None;
                let ready_by = now
                    + if policy.ready_on_uptime {
                        policy.min_uptime
                    } else {
                        policy.start_timeout
                    };
                (
                    Some(S::Starting {
                        pid,
                        since: now,
                        ready_by,
                    }),
                    vec![],
                    Some(format!("pid {pid}")),
                )
            }
            // Spawned is only ever the answer to our own Spawn effect, which these states never ask.
            (S::Starting { .. } | S::Running { .. } | S::Stopping { .. }, E::Spawned { .. }) => (None, vec![], None),

            (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. }, E::SpawnFailed { reason, retry }) => {
                if retry {
                    self.restart_or_give_up(policy, now, reason)
                } else {
                    (Some(S::Fatal), vec![], Some(reason))
                }
            }
            (S::Starting { .. } | S::Running { .. } | S::Stopping { .. }, E::SpawnFailed { .. }) => {
                (None, vec![], None)
            }
            (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. }, E::SpawnShort { reason }) => {
                self.short_tries = self.short_tries.saturating_add(1);
                let delay = policy.delay(self.consecutive.max(1).saturating_add(self.short_tries - 1));
                let reason = format!(
                    "{reason}; out of a resource, trying again in {}",
                    humantime::format_duration(delay)
                );
                (Some(S::Backoff { until: now + delay }), vec![], Some(reason))
            }
            (S::Starting { .. } | S::Running { .. } | S::Stopping { .. }, E::SpawnShort { .. }) => (None, vec![], None),

            (S::Starting { .. }, E::Exited(exit)) => {
                self.last_exit = Some(exit);
                self.after_exit(policy, exit, now)
            }
            (S::Running { .. }, E::Exited(exit)) => {
                self.last_exit = Some(exit);
                self.after_exit(policy, exit, now)
            }
            (
                S::Stopping {
                    deadline,
                    killed,
                    failure,
                    ..
                },
                E::Exited(exit),
            ) => {
                self.last_exit = Some(exit);
                // Still STOPPING until the rest of its processes are gone (Emptied).
                (
                    Some(S::Stopping {
                        pid: None,
                        deadline: *deadline,
                        killed: *killed,
                        failure: failure.clone(),
                    }),
                    vec![],
                    None,
                )
            }
            (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. }, E::Exited(_)) => (None, vec![], None),

            (
                S::Stopping {
                    pid: None,
                    failure: Some(reason),
                    ..
                },
                E::Emptied,
            ) => {
                let reason = reason.clone();
                self.after_failure(policy, reason, now)
            }
            (
                S::Stopping {
                    pid: None,
                    failure: None,
                    ..
                },
                E::Emptied,
            ) => {
                let reason = self.last_exit.map(ExitKind::describe);
                (Some(S::Stopped), vec![], reason)
            }
            // The main process is what decides for a running program; its leftovers are killed
            // when it exits.
            (
                S::Stopped
                | S::Exited
                | S::Fatal
                | S::Backoff { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Stopping { pid: Some(_), .. },
                E::Emptied,
            ) => (None, vec![], None),

            (S::Starting { pid, .. }, E::Deadline) if policy.ready_on_uptime => {
                // A run that reached RUNNING resets the count and the delay.
                self.consecutive = 0;
                (Some(S::Running { pid: *pid, since: now }), vec![], None)
            }
            (S::Starting { pid, since, .. }, E::Deadline) => {
                let waited = Duration::from_secs(now.saturating_duration_since(*since).as_secs());
                let mut reason = format!("not ready after {}", humantime::format_duration(waited));
                if let Some(hint) = &self.ready_hint {
                    reason.push_str(&format!(" ({hint})"));
                }
                self.fail(policy, *pid, reason, now)
            }
            (S::Backoff { .. }, E::Deadline) => (None, vec![Effect::Spawn], None),
            (
                S::Stopping {
                    pid,
                    killed: false,
                    failure,
                    ..
                },
                E::Deadline,
            ) => (
                Some(S::Stopping {
                    pid: *pid,
                    deadline: now + KILL_GRACE,
                    killed: true,
                    failure: failure.clone(),
                }),
                vec![Effect::KillAll],
                Some(format!(
                    "stop_timeout {} passed; sent SIGKILL",
                    humantime::format_duration(policy.stop_timeout)
                )),
            ),
            (
                S::Stopping {
                    pid,
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
                (
                    Some(S::Stopping {
                        pid: *pid,
                        deadline: now + KILL_GRACE,
                        killed: true,
                        failure: failure.clone(),
                    }),
                    vec![Effect::KillAll],
                    Some(reason),
                )
            }
            (S::Stopped | S::Exited | S::Fatal | S::Running { .. }, E::Deadline) => (None, vec![], None),

            (S::Starting { pid, .. }, E::Ready { how }) => {
                // A run that reached RUNNING resets the count and the delay.
                self.consecutive = 0;
                (
                    Some(S::Running { pid: *pid, since: now }),
                    vec![],
                    Some(format!("ready: {how}")),
                )
            }
            (
                S::Stopped | S::Exited | S::Fatal | S::Backoff { .. } | S::Running { .. } | S::Stopping { .. },
                E::Ready { .. },
            ) => (None, vec![], None),

            (S::Starting { pid, .. } | S::Running { pid, .. }, E::Fail { reason }) => {
                self.fail(policy, *pid, reason, now)
            }
            (S::Stopped | S::Exited | S::Fatal | S::Backoff { .. } | S::Stopping { .. }, E::Fail { .. }) => {
                (None, vec![], None)
            }

            (S::Starting { pid, since, ready_by }, E::Extend(d)) if !policy.ready_on_uptime => (
                Some(S::Starting {
                    pid: *pid,
                    since: *since,
                    ready_by: (*ready_by).max(now + d),
                }),
                vec![],
                None,
            ),
            (
                S::Stopping {
                    pid,
                    deadline,
                    killed: false,
                    failure,
                },
                E::Extend(d),
            ) => (
                Some(S::Stopping {
                    pid: *pid,
                    deadline: (*deadline).max(now + d),
                    killed: false,
                    failure: failure.clone(),
                }),
                vec![],
                None,
            ),
            (
                S::Stopped
                | S::Exited
                | S::Fatal
                | S::Backoff { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Stopping { .. },
                E::Extend(_),
            ) => (None, vec![], None),
        };
        let transition = next.and_then(|next| {
            let from = self.state.name();
            let to = next.name();
            self.state = next;
            if from != to {
                self.since = now;
                Some(Transition { from, to, reason })
            } else {
                // Same state, something worth a line (SIGKILL after stop_timeout).
                reason.map(|r| Transition {
                    from,
                    to,
                    reason: Some(r),
                })
            }
        });
        (effects, transition)
    }

    /// The main process ended on its own: EXITED, BACKOFF or FATAL by the policy.
    fn after_exit(
        &mut self,
        policy: &Policy,
        exit: ExitKind,
        now: Instant,
    ) -> (Option<State>, Vec<Effect>, Option<String>) {
        let how = exit.describe();
        let restart = policy.autorestart.restarts(policy.is_success(exit));
        let (next, mut effects, reason) = if restart && !policy.is_success(exit) && self.start_limit_hit(policy, now) {
            let reason = format!(
                "{how}; gave up: {} failed runs within {} (start_limit_burst)",
                self.failures.len(),
                humantime::format_duration(policy.start_limit_interval)
            );
            (Some(State::Fatal), vec![], Some(reason))
        } else if restart {
            self.restart_or_give_up(policy, now, how)
        } else {
            (Some(State::Exited), vec![], Some(how))
        };
        effects.insert(0, Effect::KillLeftovers);
        (next, effects, reason)
    }

    /// Holden decided the program failed: stop it by its stop sequence; the policy applies
    /// once it is down.
    fn fail(
        &mut self,
        policy: &Policy,
        pid: i32,
        reason: String,
        now: Instant,
    ) -> (Option<State>, Vec<Effect>, Option<String>) {
        let line = format!("{reason}; sent SIG{}", policy.stop_signal.name());
        (
            Some(State::Stopping {
                pid: Some(pid),
                deadline: now + policy.stop_timeout,
                killed: false,
                failure: Some(reason),
            }),
            vec![Effect::Signal(policy.stop_signal)],
            Some(line),
        )
    }

    /// A program that holden stopped because it failed is down: restart it as after a failed
    /// exit, or leave it EXITED (autorestart = "never").
    fn after_failure(
        &mut self,
        policy: &Policy,
        how: String,
        now: Instant,
    ) -> (Option<State>, Vec<Effect>, Option<String>) {
        if policy.autorestart == RestartPolicy::Never {
            return (Some(State::Exited), vec![], Some(how));
        }
        if self.start_limit_hit(policy, now) {
            let reason = format!(
                "{how}; gave up: {} failed runs within {} (start_limit_burst)",
                self.failures.len(),
                humantime::format_duration(policy.start_limit_interval)
            );
            return (Some(State::Fatal), vec![], Some(reason));
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

    fn restart_or_give_up(
        &mut self,
        policy: &Policy,
        now: Instant,
        how: String,
    ) -> (Option<State>, Vec<Effect>, Option<String>) {
        if self.consecutive >= policy.max_restarts {
            let reason = format!("{how}; gave up after {} restarts", self.consecutive);
            return (Some(State::Fatal), vec![], Some(reason));
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
        (Some(State::Backoff { until: now + delay }), vec![], Some(reason))
    }
}

#[cfg(test)]
mod tests;

//! A program's restart policy as the machine reads it (`Policy`, from its config), and the
//! delay of the n-th restart in a row (`backoff`), which `holden spawn` waits too.

use std::time::Duration;

use crate::config::{Program, RestartPolicy, Signal};
use crate::process::ExitKind;

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

    pub(super) fn is_success(&self, exit: ExitKind) -> bool {
        match exit {
            ExitKind::Code(c) => self.exit_codes.contains(&c),
            ExitKind::Signal(_) | ExitKind::Oom | ExitKind::Unknown => false,
        }
    }

    /// The delay before consecutive restart number `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        backoff(self.restart_delay, self.max_restart_delay, n)
    }
}

/// The delay before restart number `n` (1-based) of a run of quick failures: `first`, doubled
/// for each restart before it, capped at `max` (never below `first`). The supervisor's
/// restart_delay and `holden spawn`'s restarts both wait this.
pub fn backoff(first: Duration, max: Duration, n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(31);
    first.checked_mul(1u32 << doublings).unwrap_or(max).min(max.max(first))
}

//! Readiness and health of a program's current run (SPEC "Readiness and health"): its
//! sd_notify socket, its notification fd, its probes and its watchdog. The supervisor owns one
//! `Watch` per program and feeds the machine `Ready`, `Fail` and `Extend` events from it
//! (src/supervisor/watch.rs).

pub mod notify;
pub mod probe;

use std::os::fd::OwnedFd;
use std::time::Instant;

use crate::control::protocol::Health;

/// What holden watches of one program's current run. Dropping it closes every fd and removes
/// the notify socket; the supervisor deregisters the fds from the reactor first.
#[derive(Debug, Default)]
pub struct Watch {
    /// `readiness = "notify"`: the socket of this run.
    pub notify: Option<notify::NotifySocket>,
    /// The uid a notify message must come from (the program's user, or holden's own).
    pub notify_uid: u32,
    /// `readiness = { fd = N }`: the read end of the pipe whose write end is the program's fd N.
    pub ready_fd: Option<OwnedFd>,
    /// Bytes read from the ready fd so far without a newline (bounded).
    pub ready_fd_seen: usize,
    /// The last `STATUS=` of the current run.
    pub status_text: Option<String>,
    /// Consecutive failed liveness probes (or 1 after a missed watchdog).
    pub failures: u32,
    /// What the last liveness probe (or the watchdog) said; None until the first.
    pub last: Option<String>,
    /// When the watchdog fires without a `WATCHDOG=1` before.
    pub watchdog_due: Option<Instant>,
    /// Bad notify datagrams of this program since holden started.
    pub bad: u64,
    /// The probe in flight (readiness while STARTING, liveness while RUNNING).
    pub probe: Option<probe::InFlight>,
    /// When the next probe starts; None without one.
    pub next_probe: Option<Instant>,
    /// The main process came from `MAINPID=` and may not be holden's child: its end is seen
    /// on its pidfd, not by a reap.
    pub foreign_main: bool,
}

impl Watch {
    /// SPEC's `health` status field.
    pub fn health(&self) -> Option<Health> {
        self.last.as_ref().map(|last| Health {
            ok: self.failures == 0,
            failures: self.failures,
            last: last.clone(),
        })
    }

    /// The next time something of this watch is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let in_flight = self.probe.as_ref().map(|p| p.deadline);
        // While a probe is in flight the next one waits for it.
        let next = if self.probe.is_some() { None } else { self.next_probe };
        [self.watchdog_due, in_flight, next].into_iter().flatten().min()
    }

    /// Count one bad notify datagram; true when it deserves a warning (the 1st, 10th, 100th...).
    pub fn count_bad(&mut self) -> bool {
        self.bad += 1;
        let mut n = self.bad;
        while n > 0 && n.is_multiple_of(10) {
            n /= 10;
        }
        n == 1
    }
}

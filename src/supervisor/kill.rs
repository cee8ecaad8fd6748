//! SIGKILL to every process of a program's cgroup, without ever waiting in the loop.
//!
//! Where the kernel has `cgroup.kill` that is one write. Where it has not (before Linux 5.14, a
//! pure v1 host), `ProgramCgroup::kill_all` hands back a `KillJob` (freeze, SIGKILL every pid,
//! thaw, in rounds) that the slot keeps and the loop steps: at the instant it asks for
//! (`next_deadline`, `fire_deadlines`), or sooner when the program's `cgroup.events` says the
//! freeze took hold (`on_cgroup_events`). Meanwhile every other program, signal and request is
//! served. One job per program at a time: a SIGKILL asked for while one runs is that job's.
//!
//! A job ends when a round finds nobody, or at its budget; the stop's own deadlines (KILL_GRACE,
//! LEFTOVER_KILL_GRACE) send SIGKILL again to what outlived it, as to any process in
//! uninterruptible sleep. A program removed while its job runs hands the job to the supervisor
//! (`orphan_kills`), which steps it to its end. A spawn drops the job of the last run: it
//! happens only once that run's processes are gone, and the job must not take the new run's
//! process for one of them.

use std::time::Instant;

use crate::cgroup::{KillJob, ProgramCgroup, Step};

use super::Supervisor;

impl Supervisor {
    /// SIGKILL every process in `cg`, program `i`'s cgroup (or the one an earlier holden left
    /// it): at once through `cgroup.kill`, else by a job the loop steps.
    pub(super) fn kill_cgroup(&mut self, i: usize, cg: &ProgramCgroup, now: Instant) {
        let Some(slot) = self.slots[i].as_mut() else {
            return;
        };
        if slot.kill.is_some() {
            // The job that runs kills whatever is there at its next round.
            return;
        }
        match cg.kill_all(now) {
            Ok(None) => {}
            Ok(Some(job)) => {
                log::debug!(
                    "{}: no cgroup.kill: freezing, killing and thawing its cgroup",
                    slot.program.name
                );
                slot.kill = Some(job);
                self.step_kill(i, now);
            }
            Err(e) => log::warn!("{}: {e}", slot.program.name),
        }
    }

    /// Step program `i`'s kill job, if it has one; it is dropped once done.
    pub(super) fn step_kill(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_mut() else {
            return;
        };
        let Some(job) = slot.kill.as_mut() else {
            return;
        };
        if job.step(now) == Step::Done {
            log::debug!(
                "{}: its kill job ended after {} round(s)",
                slot.program.name,
                job.rounds()
            );
            slot.kill = None;
        }
    }

    /// Program `i` is being forgotten: its kill job, if one runs, goes on without it.
    pub(super) fn orphan_kill(&mut self, i: usize) {
        if let Some(job) = self.slots[i].as_mut().and_then(|s| s.kill.take()) {
            self.orphan_kills.push(job);
        }
    }

    /// Step the kill jobs that are due: the programs' and those of programs forgotten since.
    pub(super) fn fire_kills(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            if self.slots[i]
                .as_ref()
                .and_then(|s| s.kill.as_ref())
                .is_some_and(|k| k.next() <= now)
            {
                self.step_kill(i, now);
            }
        }
        self.orphan_kills
            .retain_mut(|job| job.next() > now || job.step(now) != Step::Done);
    }

    /// The nearest instant a kill job asks to be stepped at.
    pub(super) fn next_kill(&self) -> Option<Instant> {
        let programs = self.slots.iter().flatten().filter_map(|s| s.kill.as_ref());
        programs.chain(&self.orphan_kills).map(KillJob::next).min()
    }
}

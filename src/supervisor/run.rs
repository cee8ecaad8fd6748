//! A program's runs: spawning its main process (with its output pipes, cgroup and readiness
//! fds ready), signalling every process of it, reaping, and what a main process that exited on
//! its own left behind. The machine (state.rs) decides; this is where its effects meet the
//! kernel.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::process::Pid;

use crate::cgroup::ProgramCgroup;
use crate::process;
use crate::process::spawn::ExecOutcome;
use crate::reactor::Ready;

use super::process::{Exec, Leftovers, Proc};
use super::slot::{Inherited, Role};
use super::state::Effect;
use super::{Event, LEFTOVER_KILL_GRACE, SIGKILL, State, Supervisor};

impl Supervisor {
    /// EPOLLPRI on program `i`'s cgroup.events: how kernfs says it changed.
    pub(super) fn on_cgroup_events(&mut self, i: usize, r: &Ready) {
        if !r.priority {
            return;
        }
        let Some(slot) = self.live(i) else { return };
        // Re-read it whatever the state: a kernfs file stays ready until read.
        let empty = slot.events.as_ref().and_then(ProgramCgroup::events_populated) == Some(false);
        let waiting = matches!(slot.machine.state, State::Stopping { process: None, .. });
        if empty && waiting && self.tree_empty(i) {
            self.apply(i, Event::Emptied, self.now());
        }
        if empty {
            self.check_leftovers(i, self.now());
            self.check_inherited(i, self.now());
        }
        // cgroup.events also says when a freeze took hold: a kill job's round goes on.
        self.step_kill(i, self.now());
    }

    /// Reap every exited child and feed the exits to their programs.
    pub(super) fn reap(&mut self) {
        let now = self.now();
        let reaped = process::reap_all();
        for &(pid, exit) in &reaped {
            self.on_reaped(pid, exit, now);
        }
        if !reaped.is_empty() {
            self.after_reaps(now);
        }
    }

    /// Child `pid` ended with `exit`: feed it to the program whose main process it was.
    pub(super) fn on_reaped(&mut self, pid: i32, exit: process::ExitKind, now: Instant) {
        match self.slot_of_pid(pid) {
            Some(i) => {
                // Reaped before its exec outcome was handled: the outcome is final now, and a
                // child that could not exec is a spawn failure, not an exit status 127.
                if let Some(ExecOutcome::Failed(e)) = self.take_exec_outcome(i) {
                    self.apply(i, spawn_error(e), now);
                    return;
                }
                let Some(slot) = self.slots[i].as_ref() else { return };
                // Everything it wrote goes to its log before its death's transition line.
                self.logs.drain(&self.reactor, &slot.program.name);
                let exit = match (&slot.cgroup, slot.machine.state.process()) {
                    (Some(cg), Some(p)) => exit.or_oom(p.oom_before, cg.oom_kills()),
                    _ => exit,
                };
                self.apply(i, Event::Exited(exit), now);
            }
            None if self.on_probe_exit(pid, exit, now) => {}
            None => log::debug!("reaped orphan {pid} ({})", exit.describe()),
        }
    }

    /// Every process of a program is a descendant of holden: after deaths, the programs whose
    /// main process is gone check whether the rest is gone too.
    pub(super) fn after_reaps(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let waiting = matches!(
                self.slots[i].as_ref().map(|s| &s.machine.state),
                Some(State::Stopping { process: None, .. })
            );
            if waiting && self.tree_empty(i) {
                self.apply(i, Event::Emptied, now);
            }
            self.check_leftovers(i, now);
            self.check_inherited(i, now);
        }
    }

    /// The exec outcome of program `i`'s main process, if one is pending: when it is known, its
    /// fd is closed and leaves the reactor.
    fn take_exec_outcome(&mut self, i: usize) -> Option<ExecOutcome> {
        let slot = self.slots[i].as_mut()?;
        let main = slot.machine.state.process_mut()?;
        let outcome = process::spawn::exec_outcome(&slot.program, &main.exec.as_ref()?.status);
        if !matches!(outcome, ExecOutcome::NotYet)
            && let Some(exec) = main.exec.take()
        {
            // Its child has exec'd or is exiting: its memory (`in_flight`) is freed once done.
            self.reactor.delete(exec.status.as_fd());
        }
        Some(outcome)
    }

    /// Program `i` was just spawned: its exec outcome if it is known already (with CLONE_VFORK
    /// it is), else its fd is watched and the outcome is an event of its own
    /// (`on_exec_status`). Returns the spawn's failure when it could not exec.
    pub(super) fn first_look_at_exec(&mut self, i: usize) -> Option<Event> {
        match self.take_exec_outcome(i)? {
            ExecOutcome::Ran => None,
            ExecOutcome::Failed(e) => Some(spawn_error(e)),
            ExecOutcome::NotYet => {
                let slot = self.slots[i].as_mut()?;
                let token = slot.token(i, Role::Exec);
                let main = slot.machine.state.process_mut()?;
                let fd = &main.exec.as_ref()?.status;
                if let Err(e) = self.reactor.add(fd.as_fd(), token, crate::reactor::Interest::Read) {
                    // Unwatched, its outcome is not waited for: a failed exec then shows as
                    // the child's exit status (127).
                    log::warn!("{}: cannot watch its exec: {e}", slot.program.name);
                    main.exec = None;
                }
                None
            }
        }
    }

    /// The exec outcome of program `i`'s main process is readable: it runs (nothing more), or
    /// it could not, which the machine takes as the spawn's failure (quietly once stopping).
    pub(super) fn on_exec_status(&mut self, i: usize, now: Instant) {
        if let Some(ExecOutcome::Failed(e)) = self.take_exec_outcome(i) {
            self.apply(i, spawn_error(e), now);
        }
    }

    /// Carry out one effect; returns the event it produced, if any.
    pub(super) fn perform(&mut self, i: usize, effect: Effect, now: Instant) -> Option<Event> {
        let faked = self.faked();
        let slot = self.live_mut(i)?;
        match effect {
            Effect::Spawn if slot.leftovers.kill_at.is_some() => {
                log::info!(
                    "{}: waiting for the processes of its last run to end before it starts again",
                    slot.program.name
                );
                slot.leftovers.spawn_deferred = true;
                None
            }
            // Already asked of its agent: the answer is the event.
            Effect::Spawn if slot.agent_call.is_some() => None,
            Effect::Spawn if slot.program.agent.is_some() && !faked => self.spawn_remote(i, now),
            Effect::Spawn => self.spawn(i),
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

    /// Spawn program `i`'s main process; None when the spawn waits for the processes an
    /// earlier holden left in its cgroup (`Inherited`): it happens once they are gone.
    pub(super) fn spawn(&mut self, i: usize) -> Option<Event> {
        #[cfg(test)]
        if let Some(fake) = &mut self.fake {
            return Some(fake.spawn());
        }
        let program = self.live(i)?.program.clone();
        match self.claim_cgroup(i, self.now()) {
            Ok(true) => {}
            Ok(false) => {
                self.live_mut(i)?.leftovers.spawn_deferred = true;
                return None;
            }
            Err(e) => return Some(cgroup_failure(e)),
        }
        let (stdout, stderr) = match self.logs.attach(&program, &self.reactor) {
            Ok(s) => (s.stdout, s.stderr),
            Err(e) => return Some(spawn_failure(e.to_string(), e.short_of_resources())),
        };
        let procs = match self.prepare_cgroup(i) {
            Ok(procs) => procs,
            Err(e) => return Some(cgroup_failure(e)),
        };
        let oom_before = self.live(i)?.cgroup.as_ref().and_then(ProgramCgroup::oom_kills);
        let extra = match self.prepare_watch(i) {
            Ok(extra) => extra,
            Err(reason) => return Some(spawn_failure(reason, false)),
        };
        // The child is made and the loop goes on: its exec outcome comes later (`apply` looks
        // at it once the machine has it STARTING).
        match process::spawn::start(&program, stdout, stderr, procs, extra) {
            Ok(pending) => {
                let token = self.live(i)?.token(i, Role::Pidfd);
                if let Err(e) = self
                    .reactor
                    .add(pending.pidfd.as_fd(), token, crate::reactor::Interest::Read)
                {
                    // Without its pidfd registered, SIGCHLD still reports the death.
                    log::warn!("{}: cannot watch pidfd: {e}", program.name);
                }
                Some(Event::Spawned(Proc {
                    pid: pending.pid,
                    pidfd: pending.pidfd,
                    pgid: Some(pending.pid),
                    oom_before,
                    exit_wait: None,
                    exec: Some(Exec {
                        status: pending.exec_status,
                        _in_flight: pending.in_flight,
                    }),
                }))
            }
            Err(e) => Some(spawn_error(e)),
        }
    }

    /// Before program `i`'s first spawn into its cgroup: create it, and SIGKILL what an earlier
    /// holden left in it. True when the spawn can go on; false while those processes are
    /// still there (the spawn waits for `check_inherited`, the loop serves the rest).
    fn claim_cgroup(&mut self, i: usize, now: Instant) -> Result<bool, crate::cgroup::CgroupError> {
        let (Some(cgroups), Some(slot)) = (&self.cgroups, self.live(i)) else {
            return Ok(true);
        };
        if slot.cgroup.is_some() || slot.program.agent.is_some() {
            return Ok(true);
        }
        if let Some(w) = &slot.inherited {
            return Ok(!w.cg.populated());
        }
        let (cg, leftovers) = cgroups.program(&slot.program.name)?;
        let name = slot.program.name.clone();
        if leftovers > 0 {
            self.kill_cgroup(i, &cg, now);
            log::warn!(
                "{name}: killed {leftovers} leftover process(es) of an earlier run in {}",
                cg.path().display()
            );
        }
        let gone = leftovers == 0 || !cg.populated();
        if !gone {
            log::info!("{name}: waiting for them to end before it starts");
            self.watch_cgroup_events(i, &cg);
        }
        if let Some(slot) = self.live_mut(i) {
            slot.inherited = Some(Inherited {
                cg,
                give_up: now + crate::cgroup::LEFTOVER_WAIT,
                next: now + INHERITED_RECHECK,
            });
        }
        Ok(gone)
    }

    /// Are the processes an earlier holden left in program `i`'s cgroup gone? Then the spawn
    /// that waited for them happens; at `give_up`, it fails as a cgroup that will not empty.
    pub(super) fn check_inherited(&mut self, i: usize, now: Instant) {
        let shutting_down = self.shutting_down;
        let Some(slot) = self.slots[i].as_mut() else {
            return;
        };
        let Some(w) = &mut slot.inherited else {
            return;
        };
        let deferred = slot.leftovers.spawn_deferred && !shutting_down;
        if w.cg.populated() {
            if now < w.give_up {
                if now >= w.next {
                    let cg = w.cg.clone();
                    w.next = now + INHERITED_RECHECK;
                    self.kill_cgroup(i, &cg, now);
                }
                return;
            }
            let e = crate::cgroup::CgroupError::NotEmpty {
                path: w.cg.path(),
                count: w.cg.pids().len(),
            };
            slot.inherited = None;
            if let Some(f) = slot.events.take() {
                self.reactor.delete(f.as_fd());
            }
            if deferred {
                slot.leftovers.spawn_deferred = false;
                self.apply(i, cgroup_failure(e), now);
            }
            return;
        }
        log::debug!("{}: the processes of an earlier run are gone", slot.program.name);
        if !deferred {
            // Nothing waits for it any more (a stop came): the next spawn claims it again.
            slot.inherited = None;
        } else {
            slot.leftovers.spawn_deferred = false;
            if let Some(event) = self.spawn(i) {
                self.apply(i, event, now);
            }
        }
    }

    /// Register `cg`'s v2 cgroup.events for program `i`, once.
    fn watch_cgroup_events(&mut self, i: usize, cg: &ProgramCgroup) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        if slot.events.is_some() {
            return;
        }
        let Some(f) = cg.events_file() else {
            return;
        };
        let token = slot.token(i, Role::CgroupEvents);
        match self.reactor.add(f.as_fd(), token, crate::reactor::Interest::Priority) {
            Ok(()) => slot.events = Some(f),
            Err(e) => log::warn!("{}: cannot watch cgroup.events: {e}", slot.program.name),
        }
    }

    /// Program `i`'s cgroup, created (with its limits) at its first spawn and after a reload
    /// changed it; returns the cgroup.procs files the child joins before exec. Limits are not
    /// rewritten at each restart, so a live `constrain` lasts until a reload changes the program.
    pub(super) fn prepare_cgroup(&mut self, i: usize) -> Result<Vec<OwnedFd>, crate::cgroup::CgroupError> {
        let (Some(cgroups), Some(slot)) = (&self.cgroups, self.slots[i].as_mut()) else {
            return Ok(Vec::new());
        };
        if slot.program.agent.is_some() {
            return Ok(Vec::new());
        }
        // The kill job of the last run (or of an earlier holden's processes) is over: the
        // spawn happens once they are gone, and its next round must not take the new run for
        // one of them.
        slot.kill = None;
        let cg = match slot.cgroup.clone() {
            Some(cg) => cg,
            None => {
                // Claimed by `claim_cgroup` just before, its leftovers gone.
                let cg = match slot.inherited.take() {
                    Some(w) => w.cg,
                    None => cgroups.program(&slot.program.name)?.0,
                };
                let program = &slot.program;
                cg.set_limits(slot.limits.0, slot.limits.1, slot.limits.2)?;
                if program.has_limits() {
                    log::info!("{}: limits applied in {}", program.name, cg.path().display());
                }
                cg
            }
        };
        let procs = cg.procs_files()?;
        self.watch_cgroup_events(i, &cg);
        if let Some(slot) = self.live_mut(i) {
            slot.cgroup = Some(cg);
        }
        Ok(procs)
    }

    /// Send `sig` to every process of program `i`: its process group (the program runs in
    /// its own session, so the group is its main process's pid, and outlives it while any
    /// member lives).
    pub(super) fn signal_tree(&mut self, i: usize, sig: i32) {
        let Some(slot) = self.live(i) else { return };
        if slot.program.agent.is_some() {
            // Only the main process is known: signal it through its pidfd.
            let alive = slot.machine.state.process().filter(|p| p.exit_wait.is_none());
            if let (Some(p), Some(sig)) = (alive, crate::sys::signal::Signal(sig).to_rustix())
                && let Err(e) = rustix::process::pidfd_send_signal(&p.pidfd, sig)
                && e != rustix::io::Errno::SRCH
            {
                log::warn!("{}: cannot signal it through its pidfd: {e}", slot.program.name);
            }
            return;
        }
        // A main process that has not exec'd yet may not be in its cgroup or process group yet
        // (it joins them before its exec): it gets the signal itself too.
        if let Some(main) = slot.machine.state.process().filter(|p| p.exec.is_some())
            && let Some(rsig) = crate::sys::signal::Signal(sig).to_rustix()
            && let Err(e) = rustix::process::pidfd_send_signal(&main.pidfd, rsig)
            && e != rustix::io::Errno::SRCH
        {
            log::warn!(
                "{}: cannot signal its main process {}: {e}",
                slot.program.name,
                main.pid
            );
        }
        if let Some(cg) = &slot.cgroup {
            if sig == SIGKILL {
                let cg = cg.clone();
                self.kill_cgroup(i, &cg, self.now());
            } else {
                cg.signal_all(sig);
            }
            return;
        }
        let (Some(sig), Some(pgid)) = (crate::sys::signal::Signal(sig).to_rustix(), slot.group()) else {
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
    pub(super) fn stop_leftovers(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.live(i) else { return };
        if slot.program.agent.is_some() || self.tree_empty(i) {
            return;
        }
        let n = self.leftover_count(i);
        let (sig, timeout) = (slot.policy.stop_signal, slot.policy.stop_timeout);
        log::warn!(
            "{}: {n} process(es) left after the main process exited: sent SIG{}",
            slot.program.name,
            sig.name()
        );
        self.signal_tree(i, sig.0);
        let Some(slot) = self.live_mut(i) else { return };
        let left = &mut slot.leftovers;
        *left = Leftovers {
            kill_at: Some(now + timeout),
            killed: false,
            spawn_deferred: false,
            ..*left
        };
        self.check_leftovers(i, now);
    }

    /// The leftovers of program `i` outlived stop_timeout (or SIGKILL): SIGKILL (again).
    pub(super) fn kill_leftovers(&mut self, i: usize, now: Instant) {
        if self.check_leftovers(i, now) {
            return;
        }
        let Some(slot) = self.live(i) else { return };
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
        let Some(slot) = self.live_mut(i) else { return };
        let left = &mut slot.leftovers;
        left.killed = true;
        left.kill_at = Some(now + LEFTOVER_KILL_GRACE);
        self.check_leftovers(i, now);
    }

    /// Are the leftovers of program `i` gone (or were there none)? When they just went, the
    /// spawn that waited for them happens now.
    pub(super) fn check_leftovers(&mut self, i: usize, now: Instant) -> bool {
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
        // Gone: nothing is left of the last run, its process group neither.
        if let Some(slot) = self.live_mut(i) {
            slot.leftovers = Leftovers::default();
        }
        if deferred
            && !self.shutting_down
            && let Some(event) = self.spawn(i)
        {
            self.apply(i, event, now);
        }
        true
    }

    /// How many processes program `i` has: in its cgroup, else in its process group.
    pub(super) fn leftover_count(&self, i: usize) -> usize {
        let Some(slot) = self.live(i) else { return 0 };
        if let Some(cg) = &slot.cgroup {
            return cg.pids().len();
        }
        slot.group().map_or(0, process::group_members)
    }

    /// Are all processes of program `i` gone?
    pub(super) fn tree_empty(&self, i: usize) -> bool {
        let Some(slot) = self.live(i) else { return true };
        if let Some(cg) = &slot.cgroup {
            return !cg.populated();
        }
        match slot.group().and_then(Pid::from_raw) {
            Some(p) => rustix::process::test_kill_process_group(p) == Err(rustix::io::Errno::SRCH),
            None => true,
        }
    }
}

/// How often the emptying of a cgroup an earlier holden left is re-checked where no
/// `cgroup.events` tells (a v1 hierarchy), and SIGKILL sent again.
const INHERITED_RECHECK: std::time::Duration = std::time::Duration::from_millis(20);

/// A spawn that failed, before its child existed or when it could not exec: retried later
/// when it lacked a resource that comes back, else FATAL.
fn spawn_error(e: process::spawn::SpawnError) -> Event {
    spawn_failure(e.to_string(), e.retryable())
}

/// A cgroup step of a spawn that failed: retried later when it lacked a resource that comes back.
fn cgroup_failure(e: crate::cgroup::CgroupError) -> Event {
    spawn_failure(e.to_string(), e.short_of_resources())
}

/// A spawn failed for `reason`: `short` of a resource that comes back (backoff), else FATAL.
fn spawn_failure(reason: String, short: bool) -> Event {
    if short {
        Event::SpawnShort { reason }
    } else {
        Event::SpawnFailed { reason, retry: false }
    }
}

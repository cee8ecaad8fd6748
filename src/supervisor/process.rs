//! A program's main process as its state carries it (`State<Proc>`, see state.rs): its pid,
//! pidfd, process group, what its spawn noted, and its exec outcome until it is known. The state owns it while the process lives;
//! when the machine lets go of it (`Handled::released`: it ended, or it never ran),
//! `Supervisor::release` takes its fds out of the reactor in one place. What the process leaves
//! behind, its process group where no cgroup holds the program, outlives it in `Leftovers`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use super::Supervisor;
use super::slot::Slot;
use super::state::Process;

/// A program's main process.
#[derive(Debug)]
pub(super) struct Proc {
    pub(super) pid: i32,
    /// Registered in the reactor (`Role::Pidfd`) while the state holds the process.
    pub(super) pidfd: OwnedFd,
    /// Its process group (its pid: it runs in its own session); None for an agent's.
    pub(super) pgid: Option<i32>,
    /// Its cgroup's OOM-kill counter at its spawn: a SIGKILL with a grown counter is an OOM kill.
    pub(super) oom_before: Option<u64>,
    /// An agent's process ended: its exit status is being read from its pidfd.
    pub(super) exit_wait: Option<ExitWait>,
    /// Its exec, while the outcome is not read yet.
    pub(super) exec: Option<Exec>,
}

/// A main process's exec whose outcome is not read yet.
#[derive(Debug)]
pub(super) struct Exec {
    /// `process::spawn::Pending::exec_status`: watched in the reactor (`Role::Exec`) until it
    /// says the program runs (then closed) or could not.
    pub(super) status: OwnedFd,
    /// On a v1 or hybrid host, a child not waited for (`Pending::in_flight`) runs in holden's
    /// memory until it execs: held, never read, to keep its stack and prepared image alive
    /// until then (dropped sooner, they are kept aside until the child is done).
    pub(super) _in_flight: Option<crate::sys::clone::Detached>,
}

impl Process for Proc {
    fn pid(&self) -> i32 {
        self.pid
    }
}

/// Reading an agent-spawned process's exit status, which appears once its agent reaped it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExitWait {
    pub(super) since: Instant,
    pub(super) next: Instant,
}

/// What a main process left behind: its process group, and, when it exited on its own (a
/// daemon that forked), how they are being stopped: the program's stop_signal, SIGKILL after
/// its stop_timeout, and the program is not spawned again until they are all gone (its cgroup,
/// else its process group, is empty): no program ever runs twice.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Leftovers {
    /// The process group of the last main process (None for an agent's): it outlives the
    /// main process while any member lives.
    pub(super) group: Option<i32>,
    /// While some are alive: when to send SIGKILL (again).
    pub(super) kill_at: Option<Instant>,
    /// SIGKILL was sent.
    pub(super) killed: bool,
    /// A spawn was asked for while they lived: it happens once they are gone.
    pub(super) spawn_deferred: bool,
}

impl Slot {
    /// The process group of the program's processes: its main process's while there is one,
    /// else the one the last main process left.
    pub(super) fn group(&self) -> Option<i32> {
        match self.machine.state.process() {
            Some(p) => p.pgid,
            None => self.leftovers.group,
        }
    }
}

impl Supervisor {
    /// Program `i`'s state let go of its main process: what watched it leaves the reactor; its
    /// process group stays, for what it left behind.
    pub(super) fn release(&mut self, i: usize, process: Proc) {
        self.reactor.delete(process.pidfd.as_fd());
        if let Some(exec) = &process.exec {
            self.reactor.delete(exec.status.as_fd());
        }
        if let Some(slot) = self.slots[i].as_mut() {
            slot.leftovers.group = process.pgid;
        }
    }
}

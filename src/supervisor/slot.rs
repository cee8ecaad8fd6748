//! One program under supervision (`Slot`): its config, its machine (whose state carries the
//! main process: process.rs), the cgroup and readiness fds of its runs, and what is wanted of
//! it next (`Intent`). The supervisor keeps slots in a vector whose indexes are reused; a
//! slot's `generation` tells it apart from the earlier occupants of its index, and every
//! reactor token of a program carries both (`Role`, `token_id`), so a readiness that was
//! queued for a program that is gone is dropped instead of reaching the one that took its
//! place.

use std::time::{Instant, SystemTime};

use crate::cgroup::ProgramCgroup;
use crate::config::Program;

use super::process::{Leftovers, Proc};
use super::state::{Machine, Policy};

/// One program under supervision.
pub(super) struct Slot {
    /// Told apart from the earlier occupants of its index: tokens carry it.
    pub(super) generation: u32,
    pub(super) program: Program,
    pub(super) policy: Policy,
    /// Its state, which carries its main process while there is one.
    pub(super) machine: Machine<Proc>,
    /// What is wanted of it beyond what its machine is doing.
    pub(super) intent: Intent,
    /// Wall-clock time of the last transition, for status.
    pub(super) since_wall: SystemTime,
    /// Wall-clock time the current main process was spawned (entering STARTING), for uptime.
    pub(super) started_wall: Option<SystemTime>,
    /// Added with `holden add`: not in the file, left alone by reload.
    pub(super) transient: bool,
    /// The program's cgroup(s), from its first spawn on.
    pub(super) cgroup: Option<ProgramCgroup>,
    /// Its v2 `cgroup.events`, registered for EPOLLPRI.
    pub(super) events: Option<std::fs::File>,
    /// Limits in force (memory bytes, CPUs, pids): the config's, or a live `constrain`'s.
    pub(super) limits: (Option<u64>, Option<f64>, Option<u64>),
    /// Its spawn request to its agent, in flight.
    pub(super) agent_call: Option<super::remote::AgentCall>,
    /// What its last main process left behind; a spawn waits for them.
    pub(super) leftovers: Leftovers,
    /// Processes of an earlier holden found in its cgroup at its first spawn: SIGKILLed, and
    /// the spawn waits (its state stays what it was: STOPPED, EXITED, BACKOFF) until they are
    /// gone.
    pub(super) inherited: Option<Inherited>,
    /// SIGKILL to its cgroup where the kernel has no `cgroup.kill`, under way (kill.rs).
    pub(super) kill: Option<crate::cgroup::KillJob>,
    /// Readiness and health of the current run: notify socket, fd, probes, watchdog.
    pub(super) watch: crate::health::Watch,
}

impl Slot {
    /// When its state wants a `Deadline` event, unless something else must come first: the end
    /// of the leftovers a spawn waits for, its agent's answer, or its exec's outcome (a program
    /// is not RUNNING, nor failed for not being ready, before it runs at all).
    pub(super) fn state_deadline(&self) -> Option<Instant> {
        let exec_pending = matches!(
            &self.machine.state,
            super::State::Starting { process, .. } if process.exec.is_some()
        );
        if self.leftovers.spawn_deferred || self.agent_call.is_some() || exec_pending {
            return None;
        }
        self.machine.state.deadline()
    }

    /// The token of its fd in `role`, the slot being at `index`: it carries its generation.
    pub(super) fn token(&self, index: usize, role: Role) -> crate::reactor::Token {
        crate::reactor::Token::new(
            crate::reactor::Owner::Supervisor,
            token_id(role, index, self.generation),
        )
    }

    pub(super) fn new(program: Program, transient: bool, generation: u32, now: Instant) -> Slot {
        Slot {
            generation,
            policy: Policy::of(&program),
            limits: (program.memory_limit, program.cpu_limit, program.pids_limit),
            program,
            machine: Machine::new(now),
            intent: Intent::None,
            since_wall: SystemTime::now(),
            started_wall: None,
            transient,
            cgroup: None,
            events: None,
            agent_call: None,
            leftovers: Leftovers::default(),
            inherited: None,
            kill: None,
            watch: crate::health::Watch::default(),
        }
    }
}

/// What is wanted of a program that its machine cannot do yet, or what follows once it is
/// down: one value, so that a start and a stop can never both be pending.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Intent {
    /// Nothing waits.
    None,
    /// Start once its `depends_on` are met.
    Start,
    /// Stop once the programs that depend on it are down, then `After`.
    Stop(After),
    /// It is being stopped: once it is down, `After` (never `After::Rest`).
    Then(After),
}

/// What follows a stop once the program is down.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum After {
    /// It stays down.
    Rest,
    /// `holden restart`, or `holden start` while it was stopping.
    Start,
    /// Reload changed its settings: take these, then start it if it should run.
    Replace(Box<Program>),
    /// Reload removed it, or `holden remove`: forget it.
    Remove,
}

impl Intent {
    /// A stop that waited for dependents is sent now: what remains is what follows it.
    pub(super) fn stop_sent(self) -> Intent {
        match self {
            Intent::Stop(After::Rest) => Intent::None,
            Intent::Stop(after) => Intent::Then(after),
            other => other,
        }
    }

    pub(super) fn is_start(&self) -> bool {
        matches!(self, Intent::Start)
    }

    pub(super) fn is_stop(&self) -> bool {
        matches!(self, Intent::Stop(_))
    }
}

/// A program's cgroup that held processes of an earlier holden, SIGKILLed: it is used once it
/// is empty (kernfs `cgroup.events` says so on v2, a re-check at `next` finds it on v1), and
/// the spawn that waits for it fails at `give_up`.
pub(super) struct Inherited {
    pub(super) cg: ProgramCgroup,
    pub(super) give_up: Instant,
    pub(super) next: Instant,
}

/// The role of one of a program's fds in the reactor: the supervisor's part of a token id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Role {
    /// The main process's pidfd.
    Pidfd = 1,
    /// The program's cgroup.events (EPOLLPRI).
    CgroupEvents = 2,
    /// Its sd_notify socket.
    Notify = 3,
    /// Its notification fd pipe, `readiness = { fd = N }`.
    ReadyFd = 4,
    /// Its probe in flight: socket or exec output pipe.
    Probe = 5,
    /// Its spawn request to its agent, in flight.
    AgentCall = 6,
    /// A spawn request whose program was stopped or removed meanwhile: the index is the
    /// supervisor's list of them, the generation 0.
    AbandonedCall = 7,
    /// Its main process's exec outcome, pending (`process::spawn::Pending::exec_status`).
    Exec = 8,
}

/// A supervisor token id: role (8 bits) | slot generation (24 bits) | slot index (24 bits).
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const ROLE_SHIFT: u32 = 2 * SLOT_BITS;
const _: () = assert!(ROLE_SHIFT + 8 <= crate::reactor::ID_BITS);

/// The token id of the fd in `role` of the program in slot `index` of `generation`.
pub(super) fn token_id(role: Role, index: usize, generation: u32) -> u64 {
    debug_assert!(index as u64 <= SLOT_MASK);
    ((role as u64) << ROLE_SHIFT) | ((u64::from(generation) & SLOT_MASK) << SLOT_BITS) | index as u64
}

/// What `token_id` packed: role, index and generation (its low 24 bits).
pub(super) fn parse_token_id(id: u64) -> Option<(Role, usize, u32)> {
    let role = match id >> ROLE_SHIFT {
        1 => Role::Pidfd,
        2 => Role::CgroupEvents,
        3 => Role::Notify,
        4 => Role::ReadyFd,
        5 => Role::Probe,
        6 => Role::AgentCall,
        7 => Role::AbandonedCall,
        8 => Role::Exec,
        _ => return None,
    };
    Some((role, (id & SLOT_MASK) as usize, ((id >> SLOT_BITS) & SLOT_MASK) as u32))
}

/// Does a token's generation (its low 24 bits) name the slot's current generation?
pub(super) fn same_generation(token: u32, slot: u32) -> bool {
    u64::from(token) == u64::from(slot) & SLOT_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_round_trip_and_keep_generations_apart() {
        for role in [
            Role::Pidfd,
            Role::CgroupEvents,
            Role::Notify,
            Role::ReadyFd,
            Role::Probe,
            Role::AgentCall,
            Role::AbandonedCall,
            Role::Exec,
        ] {
            let id = token_id(role, 7, 3);
            assert_eq!(parse_token_id(id), Some((role, 7, 3)));
            assert_ne!(id, token_id(role, 7, 4), "a reused slot gets other tokens");
        }
        let (_, _, wrapped) = parse_token_id(token_id(Role::Pidfd, 1, (1 << 24) + 5)).unwrap();
        assert!(same_generation(wrapped, (1 << 24) + 5));
        assert!(!same_generation(wrapped, 5 + 1));
        assert_eq!(parse_token_id(0), None);
    }

    #[test]
    fn a_stop_sent_leaves_what_follows_it() {
        assert_eq!(Intent::Stop(After::Rest).stop_sent(), Intent::None);
        assert_eq!(Intent::Stop(After::Start).stop_sent(), Intent::Then(After::Start));
        assert_eq!(Intent::Start.stop_sent(), Intent::Start);
    }
}

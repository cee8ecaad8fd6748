//! `depends_on` conditions: "ready" (RUNNING) or "completed" (EXITED with a success, docker
//! compose's `service_completed_successfully`). A dependency that went FATAL, or a one-shot
//! that completed with a failure, refuses the start of its dependents.

use super::{State, Supervisor};
use crate::process::ExitKind;

/// Where the dependencies of a program stand.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Deps {
    Satisfied,
    Waiting,
    /// A dependency cannot be met without a user's help: why.
    Failed(String),
}

impl Supervisor {
    /// Has program `j` completed: EXITED with a success of its `exit_codes`?
    pub(super) fn completed_ok(&self, j: usize) -> bool {
        let dep = self.slot(j);
        matches!(dep.machine.state, State::Exited)
            && matches!(dep.machine.last_exit, Some(ExitKind::Code(c)) if dep.program.exit_codes.contains(&c))
    }

    /// The dependencies of program `i`. A dependency on a program with instances is on all
    /// of them.
    pub(super) fn deps(&self, i: usize) -> Deps {
        let program = &self.slot(i).program;
        let mut verdict = Deps::Satisfied;
        for d in &program.depends_on {
            let completed = program.depends_completed.contains(d);
            let found = self.program_named(d);
            if found.is_empty() {
                verdict = Deps::Waiting;
            }
            for j in found {
                let dep = self.slot(j);
                let name = &dep.program.name;
                let how = dep.machine.last_exit.map(ExitKind::describe).unwrap_or_default();
                match (&dep.machine.state, completed) {
                    (State::Fatal, _) => return Deps::Failed(format!("dependency {name} is FATAL")),
                    (State::Exited, true) if !self.completed_ok(j) => {
                        return Deps::Failed(format!("dependency {name} completed with a failure ({how})"));
                    }
                    (State::Exited, true) | (State::Running { .. }, false) => {}
                    _ => verdict = Deps::Waiting,
                }
            }
        }
        verdict
    }

    /// Program `i` wanted to start, and a dependency failed: it stays down, with the reason
    /// (a line in the log, and an event for `holden start` waiting on it).
    pub(super) fn refuse_start(&mut self, i: usize, why: String) {
        let slot = self.slot_mut(i);
        slot.intent = super::Intent::None;
        let (name, state) = (slot.program.name.clone(), slot.machine.state.name());
        log::warn!("{name}: {state} (not started: {why})");
        self.push_transition(i, state, state, Some(format!("not started: {why}")));
    }
}

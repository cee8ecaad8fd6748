//! `depends_on` conditions: "ready" (RUNNING) or "completed" (EXITED with a success, docker
//! compose's `service_completed_successfully`). A dependency that went FATAL, or a one-shot
//! that completed with a failure, refuses the start of its dependents.

use super::slot::{After, Intent};
use super::{Event, State, Supervisor};
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
        self.live(j).is_some_and(|dep| {
            matches!(dep.machine.state, State::Exited)
                && matches!(dep.machine.last_exit, Some(ExitKind::Code(c)) if dep.program.exit_codes.contains(&c))
        })
    }

    /// The dependencies of program `i`. A dependency on a program with instances is on all
    /// of them.
    pub(super) fn deps(&self, i: usize) -> Deps {
        let Some(slot) = self.live(i) else {
            return Deps::Waiting;
        };
        let program = &slot.program;
        let mut verdict = Deps::Satisfied;
        for d in &program.depends_on {
            let completed = program.depends_completed.contains(d);
            let found = self.program_named(d);
            if found.is_empty() {
                verdict = Deps::Waiting;
            }
            for (j, dep) in found.into_iter().filter_map(|j| Some((j, self.live(j)?))) {
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
        let Some(slot) = self.live_mut(i) else { return };
        slot.intent = super::Intent::None;
        let (name, state) = (slot.program.name.clone(), slot.machine.state.name());
        log::warn!("{name}: {state} (not started: {why})");
        self.push_transition(i, state, state, Some(format!("not started: {why}")));
    }

    /// Requests that wait on other programs: starts on dependencies, stops on dependents.
    pub(super) fn settle(&mut self) {
        let now = self.now();
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
                    Deps::Waiting
                };
                if let Deps::Failed(why) = deps {
                    self.refuse_start(i, why);
                    progressed = true;
                } else if slot.intent.is_start() && deps == Deps::Satisfied {
                    if let Some(slot) = self.live_mut(i) {
                        slot.intent = Intent::None;
                    }
                    self.apply(i, Event::Start, now);
                    progressed = true;
                } else if slot.intent.is_stop() && !self.has_live_dependents(i) {
                    if let Some(slot) = self.live_mut(i) {
                        slot.intent = std::mem::replace(&mut slot.intent, Intent::None).stop_sent();
                    }
                    self.apply(i, Event::Stop, now);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
    }

    /// Program `i` waits for its dependencies, and one of them will not be RUNNING unless a
    /// user starts it (FATAL, EXITED, STOPPED and not about to start, or waiting in vain too).
    pub(super) fn never_starts(&self, i: usize, depth: usize) -> bool {
        if depth > self.slots.len() {
            return true;
        }
        let Some(slot) = self.live(i) else {
            return true;
        };
        let program = &slot.program;
        program.depends_on.iter().any(|d| {
            let found = self.program_named(d);
            let completed = program.depends_completed.contains(d);
            found.is_empty()
                || found
                    .into_iter()
                    .filter_map(|j| Some((j, self.live(j)?)))
                    .any(|(j, dep)| match dep.machine.state {
                        State::Exited if completed => !self.completed_ok(j),
                        State::Fatal | State::Exited => true,
                        State::Stopped => !dep.intent.is_start() || self.never_starts(j, depth + 1),
                        _ => false,
                    })
        })
    }

    /// Is every program that `i` depends on RUNNING? A dependency on a program with
    /// instances waits for all of them.
    pub(super) fn deps_running(&self, i: usize) -> bool {
        self.deps(i) == Deps::Satisfied
    }

    /// Programs that depend on `i` and are being stopped too but are not down yet.
    pub(super) fn has_live_dependents(&self, i: usize) -> bool {
        let Some(slot) = self.live(i) else {
            return false;
        };
        let program = &slot.program;
        self.slots.iter().flatten().any(|s| {
            s.program.depends_on.iter().any(|d| program.answers_to(d))
                && (s.intent.is_stop() || matches!(s.machine.state, State::Stopping { .. }))
                && !s.machine.state.is_down()
        })
    }

    pub(super) fn request_start(&mut self, i: usize) {
        let Some(slot) = self.live_mut(i) else { return };
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
        let name = slot.program.name.clone();
        if !self.deps_running(i) {
            let mut what = Vec::new();
            if !ready.is_empty() {
                what.push(format!("{} to be RUNNING", ready.join(", ")));
            }
            if !completed.is_empty() {
                what.push(format!("{} to complete", completed.join(", ")));
            }
            log::info!("{name}: waiting for {}", what.join(" and "));
        }
    }
}

//! What users ask of a running supervisor (through the control socket or signals): start,
//! stop, restart, signal, add, remove, reload. Each is a request on the programs' machines;
//! the loop carries it out, honouring `depends_on` in both directions.

use std::os::fd::AsFd;

use crate::config::{Program, Signal};
use crate::control::protocol::Event;

use super::State;
use super::Supervisor;
use super::slot::{After, Intent, Slot};
use super::state::Policy;

/// A request about a program that cannot be carried out, as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no program named {0:?} (see `holden status`)")]
    UnknownProgram(String),
    #[error("a program or group named {0:?} already exists")]
    AlreadyExists(String),
    #[error("{0:?} is in the config file, not transient: remove it from the file and reload")]
    NotTransient(String),
    #[error("{name} has no running process to signal (state {state})")]
    NotRunning { name: String, state: &'static str },
    #[error("cannot signal {name}: {reason}")]
    Signal { name: String, reason: String },
    #[error("holden is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    InvalidConfig(String),
}

impl Supervisor {
    /// The slots named, or every slot for an empty list (the file's programs in name order,
    /// instances together in index order, then the transient ones). A name is a program or an
    /// instance (that one), the base name of a program with instances (all of them, in index
    /// order) or a group (all its members' programs). Duplicates are removed, the order kept;
    /// an unknown name refuses the whole request.
    pub(super) fn resolve_names(&self, names: &[String]) -> Result<Vec<usize>, OpError> {
        if names.is_empty() {
            let mut all: Vec<(usize, &Slot)> = (0..self.slots.len()).filter_map(|i| Some((i, self.live(i)?))).collect();
            all.sort_by_key(|(_, slot)| {
                let p = &slot.program;
                (
                    slot.transient,
                    p.base_name(),
                    p.instance.as_ref().map_or(0, |x| x.index),
                )
            });
            return Ok(all.into_iter().map(|(i, _)| i).collect());
        }
        let mut out = Vec::new();
        for n in names {
            let found = self.units_named(n);
            if found.is_empty() {
                return Err(OpError::UnknownProgram(n.clone()));
            }
            for i in found {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        Ok(out)
    }

    /// The slots a program, instance or base name stands for (see `resolve_names`), or a
    /// group's.
    fn units_named(&self, name: &str) -> Vec<usize> {
        let direct = self.program_named(name);
        if !direct.is_empty() {
            return direct;
        }
        let mut out = Vec::new();
        for member in self.config.groups.get(name).into_iter().flatten() {
            for i in self.program_named(member) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        out
    }

    /// The slot of the program or instance `name`, else every instance of the program `name`
    /// in index order.
    pub(super) fn program_named(&self, name: &str) -> Vec<usize> {
        if let Some(i) = self.index_of(name) {
            return vec![i];
        }
        let mut found: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i]
                    .as_ref()
                    .is_some_and(|s| s.program.instance.as_ref().is_some_and(|x| x.program == name))
            })
            .collect();
        found.sort_by_key(|&i| {
            self.live(i)
                .and_then(|s| s.program.instance.as_ref())
                .map_or(0, |x| x.index)
        });
        found
    }

    pub(super) fn op_start(&mut self, targets: &[usize]) -> Result<(), OpError> {
        if self.shutting_down {
            return Err(OpError::ShuttingDown);
        }
        for &i in targets {
            let Some(slot) = self.live_mut(i) else { continue };
            if matches!(slot.machine.state, State::Stopping { .. }) {
                slot.intent = match slot.intent {
                    // Still waiting for its dependents to stop: that stop comes first.
                    Intent::Stop(_) => Intent::Stop(After::Start),
                    _ => Intent::Then(After::Start),
                };
            } else {
                self.request_start(i);
            }
        }
        self.settle();
        Ok(())
    }

    pub(super) fn op_stop(&mut self, targets: &[usize]) {
        for &i in targets {
            if let Some(slot) = self.live_mut(i) {
                slot.intent = Intent::Stop(After::Rest);
            }
        }
        self.settle();
    }

    pub(super) fn op_restart(&mut self, targets: &[usize]) -> Result<(), OpError> {
        if self.shutting_down {
            return Err(OpError::ShuttingDown);
        }
        for &i in targets {
            let Some(slot) = self.live_mut(i) else { continue };
            if slot.machine.state.is_down() {
                self.request_start(i);
            } else {
                slot.intent = Intent::Stop(After::Start);
            }
        }
        self.settle();
        Ok(())
    }

    /// Send `sig` to the main process of each target, through its pidfd.
    pub(super) fn op_signal(&mut self, targets: &[usize], sig: Signal) -> Result<(), OpError> {
        let Some(rsig) = sig.to_rustix() else {
            let names = self.names(targets);
            return Err(OpError::Signal {
                name: names.join(", "),
                reason: format!(
                    "signal {} cannot be sent (the C library keeps 32 and 33 for itself)",
                    sig.0
                ),
            });
        };
        for slot in targets.iter().filter_map(|&i| self.live(i)) {
            let name = slot.program.name.clone();
            match slot.machine.state.process() {
                Some(p) => rustix::process::pidfd_send_signal(&p.pidfd, rsig).map_err(|e| OpError::Signal {
                    name,
                    reason: e.to_string(),
                })?,
                None => {
                    return Err(OpError::NotRunning {
                        name,
                        state: slot.machine.state.name(),
                    });
                }
            }
            log::info!("{}: sent SIG{}", slot.program.name, sig.name());
        }
        Ok(())
    }

    /// `holden add`: supervise a program that is not in the file.
    pub(super) fn op_add(&mut self, program: Program) -> Result<(), OpError> {
        if self.shutting_down {
            return Err(OpError::ShuttingDown);
        }
        if !self.units_named(&program.name).is_empty() {
            return Err(OpError::AlreadyExists(program.name));
        }
        log::info!("{}: added (transient): {}", program.name, program.command.join(" "));
        let autostart = program.autostart;
        let i = self.insert_slot(program, true);
        if autostart {
            self.request_start(i);
        }
        self.settle();
        Ok(())
    }

    /// `holden remove`: stop a transient program and forget it.
    pub(super) fn op_remove(&mut self, name: &str) -> Result<(), OpError> {
        let unknown = || OpError::UnknownProgram(name.to_string());
        let i = self.index_of(name).ok_or_else(unknown)?;
        if !self.live(i).ok_or_else(unknown)?.transient {
            return Err(OpError::NotTransient(name.to_string()));
        }
        self.stop_then(i, After::Remove);
        Ok(())
    }

    /// Stop slot `i`, then do `then` once it is down (at once if it is down already).
    pub(super) fn stop_then(&mut self, i: usize, then: After) {
        let Some(slot) = self.live_mut(i) else { return };
        if slot.machine.state.is_down() {
            slot.intent = Intent::Then(then);
            self.after_down(i);
        } else {
            slot.intent = Intent::Stop(then);
        }
        self.settle();
    }

    pub(super) fn insert_slot(&mut self, program: Program, transient: bool) -> usize {
        let slot = Slot::new(program, transient, self.generations, self.now());
        self.generations = self.generations.wrapping_add(1);
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        }
    }

    /// Program `i` just came to rest: carry out what was waiting for that.
    pub(super) fn after_down(&mut self, i: usize) {
        let Some(slot) = self.live_mut(i) else { return };
        let then = match std::mem::replace(&mut slot.intent, Intent::None) {
            // A stop that waited for its dependents is moot once it is down on its own.
            Intent::Stop(after) | Intent::Then(after) => after,
            wanted @ (Intent::None | Intent::Start) => {
                slot.intent = wanted;
                return;
            }
        };
        match then {
            After::Rest => {}
            After::Start => {
                if !self.shutting_down {
                    self.request_start(i);
                }
            }
            After::Replace(program) => {
                let _ = self.abandon_agent_call(i);
                let Some(slot) = self.live_mut(i) else { return };
                slot.policy = Policy::of(&program);
                slot.program = *program;
                // Its cgroup is set up again, with the new limits, at the next spawn; a
                // constrain ends here.
                slot.cgroup = None;
                slot.limits = (
                    slot.program.memory_limit,
                    slot.program.cpu_limit,
                    slot.program.pids_limit,
                );
                if slot.program.autostart && !self.shutting_down {
                    self.request_start(i);
                }
            }
            After::Remove => {
                if self.live(i).is_some_and(|s| s.leftovers.kill_at.is_some()) {
                    // Forgotten programs leave nothing behind: what its last run left ends now.
                    self.signal_tree(i, 9);
                }
                self.orphan_kill(i);
                let _ = self.abandon_agent_call(i);
                let Some(slot) = self.slots[i].take() else { return };
                let name = slot.program.name;
                self.logs.forget(&self.reactor, &name);
                if let Some(events) = &slot.events {
                    self.reactor.delete(events.as_fd());
                }
                if let Some(cg) = &slot.cgroup
                    && let Err(e) = cg.remove()
                {
                    log::warn!("{name}: {e}");
                }
                log::info!("{name}: removed");
                self.events.push(Event::Removed { name });
            }
        }
    }
}

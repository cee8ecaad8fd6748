//! Answering the control socket: each well-formed request (the server already refused what is
//! malformed, oversized or from a stranger) becomes one of the supervisor's operations and one
//! response. Requests are answered at once; clients that wait (`start`, `stop`) follow the
//! programs through `watch` events, so nothing here ever blocks the loop.

use std::time::SystemTime;

use crate::config::{self, Output, Program, RestartPolicy};
use crate::control::protocol::{
    ErrorBody, ErrorCode, Event, LastExit, Limit, LogPaths, ProgramStatus, Reply, Request, Response, unix_time,
};
use crate::control::server::ConnId;

use super::ops::OpError;
use super::{Slot, Supervisor};

impl Supervisor {
    /// Answer one request from connection `conn`.
    pub(super) fn on_request(&mut self, conn: ConnId, request: Request) {
        let watch = matches!(request, Request::Watch);
        let response = match self.answer(request) {
            Ok(reply) => Response::Ok(reply),
            Err(e) => Response::Err(e),
        };
        self.control.reply(&self.reactor, conn, &response);
        if watch {
            self.control.watch(conn);
        }
    }

    fn answer(&mut self, request: Request) -> Result<Reply, ErrorBody> {
        match request {
            Request::Status { names } => {
                let targets = self.resolve_names(&names)?;
                Ok(Reply::Status {
                    programs: targets
                        .iter()
                        .filter_map(|&i| self.live(i))
                        .map(|s| self.status_of(s))
                        .collect(),
                })
            }
            Request::Watch => {
                let targets = self.resolve_names(&[])?;
                Ok(Reply::Status {
                    programs: targets
                        .iter()
                        .filter_map(|&i| self.live(i))
                        .map(|s| self.status_of(s))
                        .collect(),
                })
            }
            Request::Start { names, all } => {
                let targets = self.resolve_names(if all { &[] } else { &names })?;
                self.op_start(&targets)?;
                Ok(self.targets_reply(&targets))
            }
            Request::Stop { names, all } => {
                let targets = self.resolve_names(if all { &[] } else { &names })?;
                self.op_stop(&targets);
                Ok(self.targets_reply(&targets))
            }
            Request::Restart { names, all } => {
                let targets = self.resolve_names(if all { &[] } else { &names })?;
                self.op_restart(&targets)?;
                Ok(self.targets_reply(&targets))
            }
            Request::Signal { signal, names } => {
                let sig = config::Signal::parse(&signal).ok_or_else(|| {
                    ErrorBody::new(
                        ErrorCode::InvalidArgument,
                        format!("{signal:?} is not a signal name or number"),
                    )
                })?;
                let targets = self.resolve_names(&names)?;
                self.op_signal(&targets, sig)?;
                Ok(self.targets_reply(&targets))
            }
            Request::Constrain {
                name,
                memory,
                cpu,
                pids,
            } => {
                // A base name or a group: each of its programs gets the same limits.
                for i in self.resolve_names(std::slice::from_ref(&name))? {
                    self.op_constrain(i, memory, cpu, pids)?;
                }
                Ok(Reply::Done {})
            }
            Request::Add {
                name,
                command,
                restart,
                memory,
                cpu,
                pids,
                stdout,
                directory,
            } => {
                if (memory.is_some() || cpu.is_some() || pids.is_some()) && self.cgroups.is_none() {
                    return Err(ErrorBody::new(
                        ErrorCode::CgroupsUnavailable,
                        "limits need cgroups, which this holden does not use (see its log for why)",
                    ));
                }
                let mut program = Program::with_defaults(&name, command, &directory);
                program.autorestart = restart;
                program.memory_limit = memory;
                program.cpu_limit = cpu;
                program.pids_limit = pids;
                if let Some(path) = stdout {
                    program.stdout = Output::File(path);
                    program.stderr = Output::Stdout;
                }
                if restart == RestartPolicy::Never {
                    program.max_restarts = 0;
                }
                self.op_add(program)?;
                self.events.push(Event::Added { name });
                Ok(Reply::Done {})
            }
            Request::Remove { name } => {
                self.op_remove(&name)?;
                Ok(Reply::Done {})
            }
            Request::Reopen => {
                self.reopen_logs();
                Ok(Reply::Done {})
            }
            Request::Reload => {
                let summary = self.op_reload()?;
                Ok(Reply::Reload(summary))
            }
            Request::Shutdown => {
                self.begin_shutdown("holden shutdown");
                Ok(Reply::Done {})
            }
            Request::LogPaths { name } => {
                let targets = self.resolve_names(std::slice::from_ref(&name))?;
                let [i] = targets[..] else {
                    let names = self.names(&targets);
                    return Err(ErrorBody::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "{name} names {} programs ({}): name one of them for its log",
                            names.len(),
                            names.join(", ")
                        ),
                    ));
                };
                let p = &self
                    .live(i)
                    .ok_or_else(|| ErrorBody::new(ErrorCode::UnknownProgram, format!("no program named {name:?}")))?
                    .program;
                let file = |o: &Output| match o {
                    Output::File(path) => Some(path.clone()),
                    Output::Inherit | Output::Null | Output::Stdout => None,
                };
                let stdout = file(&p.stdout);
                let stderr = match &p.stderr {
                    Output::Stdout => stdout.clone(),
                    other => file(other),
                };
                Ok(Reply::LogPaths {
                    logs: LogPaths { stdout, stderr },
                })
            }
        }
    }

    fn targets_reply(&self, targets: &[usize]) -> Reply {
        Reply::Targets {
            targets: self.names(targets),
        }
    }

    /// The names of the programs in `targets` (of those still there).
    pub(super) fn names(&self, targets: &[usize]) -> Vec<String> {
        targets
            .iter()
            .filter_map(|&i| self.live(i))
            .map(|s| s.program.name.clone())
            .collect()
    }

    /// Change the live limits of program `i` through its cgroup; kept (also across restarts)
    /// until a reload changes the program.
    fn op_constrain(
        &mut self,
        i: usize,
        memory: Option<Limit<u64>>,
        cpu: Option<Limit<f64>>,
        pids: Option<Limit<u64>>,
    ) -> Result<(), ErrorBody> {
        let unknown = || ErrorBody::new(ErrorCode::UnknownProgram, "no such program".to_string());
        let slot = self.live(i).ok_or_else(unknown)?;
        let name = slot.program.name.clone();
        if self.cgroups.is_none() || slot.program.agent.is_some() {
            return Err(ErrorBody::new(
                ErrorCode::CgroupsUnavailable,
                format!("{name} has no cgroup: limits need cgroups (and a program not spawned through an agent)"),
            ));
        }
        let memory = apply_limit(memory, slot.limits.0);
        let cpu = apply_limit(cpu, slot.limits.1);
        let pids = apply_limit(pids, slot.limits.2);
        if let Some(cg) = &slot.cgroup {
            cg.set_limits(memory, cpu, pids)
                .map_err(|e| ErrorBody::new(ErrorCode::Failed, e.to_string()))?;
        }
        let show = |v: Option<String>| v.unwrap_or_else(|| "max".into());
        log::info!(
            "{name}: constrained: memory {}, cpu {}, pids {}",
            show(memory.map(|m| m.to_string())),
            show(cpu.map(|c| c.to_string())),
            show(pids.map(|p| p.to_string()))
        );
        self.live_mut(i).ok_or_else(unknown)?.limits = (memory, cpu, pids);
        Ok(())
    }

    /// SPEC's "Status fields" for a program. Usage is read from the cgroup now, on demand.
    pub(super) fn status_of(&self, slot: &Slot) -> ProgramStatus {
        let usage = slot.cgroup.as_ref().map(|cg| cg.usage());
        let groups = self.config.groups_of(&slot.program);
        ProgramStatus {
            name: slot.program.name.clone(),
            program: slot.program.base_name().to_string(),
            instance: slot.program.instance.as_ref().map(|x| x.index),
            group: groups.first().cloned(),
            groups,
            // Asked of its agent, not answered yet: starting, without a pid.
            state: if slot.agent_call.is_some() {
                "STARTING"
            } else {
                slot.machine.state.name()
            }
            .to_string(),
            pid: slot.machine.state.pid(),
            since: unix_time(slot.since_wall),
            restarts: slot.machine.restarts,
            last_exit: slot.machine.last_exit.map(LastExit::from),
            memory_bytes: usage.and_then(|u| u.memory_bytes),
            memory_limit: slot.limits.0,
            cpu_usage_usec: usage.and_then(|u| u.cpu_usage_usec),
            cpu_limit: slot.limits.1,
            pids_limit: slot.limits.2,
            cgroup: slot.cgroup.as_ref().map(|cg| cg.path().display().to_string()),
            transient: slot.transient,
            started: slot
                .started_wall
                .filter(|_| slot.machine.state.pid().is_some())
                .map(unix_time),
            pids_current: usage.and_then(|u| u.pids_current),
            ready: matches!(slot.machine.state, super::State::Running { .. }),
            health: slot.watch.health(),
            status_text: slot.watch.status_text.clone(),
        }
    }

    /// Queue the watch event for a transition of program `i`.
    pub(super) fn push_transition(&mut self, i: usize, from: &str, to: &str, reason: Option<String>) {
        if !self.control.has_watchers() {
            return;
        }
        let Some(slot) = self.live(i) else { return };
        self.events.push(Event::Transition {
            name: slot.program.name.clone(),
            from: from.to_string(),
            to: to.to_string(),
            reason,
            since: unix_time(SystemTime::now()),
            pid: slot.machine.state.pid(),
        });
    }
}

/// A limit after a `constrain`: unchanged when absent, lifted by `max`, else the new value.
fn apply_limit<T>(change: Option<Limit<T>>, current: Option<T>) -> Option<T> {
    match change {
        None => current,
        Some(Limit::Max) => None,
        Some(Limit::Value(v)) => Some(v),
    }
}

impl From<OpError> for ErrorBody {
    fn from(e: OpError) -> ErrorBody {
        let code = match &e {
            OpError::UnknownProgram(_) => ErrorCode::UnknownProgram,
            OpError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            OpError::NotTransient(_) => ErrorCode::NotTransient,
            OpError::NotRunning { .. } => ErrorCode::NotRunning,
            OpError::Signal { .. } => ErrorCode::Failed,
            OpError::ShuttingDown => ErrorCode::ShuttingDown,
            OpError::InvalidConfig(_) => ErrorCode::InvalidConfig,
        };
        ErrorBody::new(code, e.to_string())
    }
}

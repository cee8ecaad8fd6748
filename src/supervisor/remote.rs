//! Programs with `agent = "PATH"`: spawned by a `holden agent` (inside a container, say), and
//! supervised here through the pidfd it hands back.
//!
//! holden is not their parent, so it cannot wait for them: the pidfd turns readable when the
//! process exits, and its exit status is read with PIDFD_GET_INFO (Linux 6.15+). The kernel
//! fills that in only once the agent has reaped the process, which it does within
//! milliseconds; until then the status is asked again on short loop deadlines (never a sleep),
//! for a bounded time, after which it is reported as unknown. Older kernels report unknown at
//! once: a status is never invented. Signals go through the pidfd; holden sees only the main
//! process, so limits and output capture do not apply.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::process::reap::{PidfdExit, pidfd_exit};

use super::state::Event;
use super::{ExitWait, Supervisor};

/// How long one request to the agent may take. The loop waits for it: an agent is local and
/// answers in well under a millisecond; one that does not within this is treated as down.
const AGENT_TIMEOUT: Duration = Duration::from_secs(2);

impl Supervisor {
    /// Ask the agent to spawn program `i`.
    pub(super) fn spawn_remote(&mut self, i: usize, socket: &std::path::Path) -> Event {
        let program = &self.slot(i).program;
        let env: Vec<(String, String)> = program
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(program.holden_env().into_iter().map(|(k, v)| (k.to_string(), v)))
            .collect();
        let name = program.name.clone();
        // SPEC: the default `directory` (the config file's folder) is a path of this host,
        // which seldom exists where the agent runs: only an explicit one is passed on, else
        // the program starts in the agent's own working directory.
        let config_dir = std::path::absolute(&self.config.path)
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_path_buf()));
        let cwd = (Some(&program.directory) != config_dir.as_ref()).then_some(program.directory.as_path());
        match crate::agent::client::start_process(socket, &program.command, &env, cwd, AGENT_TIMEOUT) {
            Ok((pid, pidfd)) => {
                let token = self.token(i, super::Role::Pidfd);
                if let Err(e) = self.reactor.add(pidfd.as_fd(), token, crate::reactor::Interest::Read) {
                    log::warn!("{name}: cannot watch the pidfd from the agent: {e}");
                }
                let slot = self.slot_mut(i);
                slot.pidfd = Some(pidfd);
                slot.pgid = None;
                slot.exit_wait = None;
                Event::Spawned { pid }
            }
            Err(e) => Event::SpawnFailed {
                reason: format!("agent {}: {e}", socket.display()),
                retry: e.retryable(),
            },
        }
    }

    /// The pidfd of program `i` turned readable. For a program spawned by holden itself the
    /// reap that follows says how it ended; for an agent's, the pidfd must tell.
    pub(super) fn on_pidfd(&mut self, i: usize, now: Instant) {
        let is_remote = self
            .slots
            .get(i)
            .and_then(|s| s.as_ref())
            .is_some_and(|s| s.program.agent.is_some());
        if !is_remote || self.slot(i).pidfd.is_none() || self.slot(i).exit_wait.is_some() {
            return;
        }
        // Level-triggered and readable for good: out of the reactor until it is read.
        if let Some(fd) = &self.slot(i).pidfd {
            self.reactor.delete(fd.as_fd());
        }
        self.slot_mut(i).exit_wait = Some(ExitWait { since: now, next: now });
        self.poll_remote_exit(i, now);
    }

    /// Ask the pidfd of program `i` how its process ended; try again later if the agent has not
    /// reaped it yet.
    pub(super) fn poll_remote_exit(&mut self, i: usize, now: Instant) {
        let Some(wait) = self.slot(i).exit_wait else { return };
        let Some(fd) = &self.slot(i).pidfd else { return };
        let exit = match pidfd_exit(fd.as_fd(), now.saturating_duration_since(wait.since)) {
            PidfdExit::Ended(exit) => exit,
            PidfdExit::NotYet(pause) => {
                self.slot_mut(i).exit_wait = Some(ExitWait {
                    since: wait.since,
                    next: now + pause,
                });
                return;
            }
            PidfdExit::Lost(why) => {
                log::warn!("{}: {why}; its exit status is unknown", self.slot(i).program.name);
                crate::process::ExitKind::Unknown
            }
        };
        let slot = self.slot_mut(i);
        slot.exit_wait = None;
        slot.pidfd = None;
        self.apply(i, Event::Exited(exit), now);
        // holden sees only the main process of an agent's program: it is the whole program.
        if matches!(
            self.slots[i].as_ref().map(|s| &s.machine.state),
            Some(super::State::Stopping { pid: None, .. })
        ) {
            self.apply(i, Event::Emptied, now);
        }
    }
}

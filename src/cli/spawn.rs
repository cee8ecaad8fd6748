//! `holden agent`, `holden spawn` and `holden ping`: their arguments, output and exit codes
//! (the agent itself, its protocol and its client are `agent`'s).
//!
//! `holden spawn` runs one command through an agent and supervises it from outside, by its pidfd.
//!
//! This process is not the command's parent (the agent is), so it cannot `waitid` it. It waits
//! for the pidfd to turn readable (the process ended), then reads the exit status through
//! PIDFD_GET_INFO. The kernel records that status only when the parent reaps the process, a
//! moment after the pidfd turned readable, so the status is asked again for a short bounded
//! time; when it never comes (older kernels) the status is reported as unknown, never guessed.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::Signal;

use crate::agent::client::{self, AgentError};
use crate::agent::{server, socket_path};
use crate::config::RestartPolicy;
use crate::error::Failure;
use crate::process::ExitKind;
use crate::process::reap::{PidfdExit, pidfd_exit};
use crate::reactor::{Interest, Owner, Reactor, Signals, Token};
use crate::supervisor::state::backoff;

/// How long `holden ping` waits for the answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A run at least this long resets the delay to `FIRST_DELAY`.
const RESET_AFTER: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// What `holden spawn` exits with: the code, 128 + the signal, or 1 (with a sentence) when
/// the status is unknown.
fn exit_code(ended: ExitKind, command: &str) -> Result<u8, Failure> {
    match ended.shell_status() {
        Some(status) => Ok(status.clamp(0, 255) as u8),
        None => Err(Failure::runtime(format!(
            "{command} ended, but this kernel cannot tell its exit status (PIDFD_INFO_EXIT needs Linux 6.15)"
        ))),
    }
}

/// Whether the policy starts the command again after this run: a run succeeds by exit code 0.
fn restarts(policy: RestartPolicy, ended: ExitKind) -> bool {
    policy.restarts(ended == ExitKind::Code(0))
}

/// The number of the next restart in a row, after a run of `ran` (a start that failed ran
/// nothing): a long run begins a new row. It waits `backoff(FIRST_DELAY, MAX_DELAY, n)`, the
/// supervisor's doubling.
fn next_restart(n: u32, ran: Duration) -> u32 {
    if ran >= RESET_AFTER { 1 } else { n.saturating_add(1) }
}

fn init_logging() {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(log::LevelFilter::Info);
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    builder.format(|buf, record| {
        use std::io::Write;
        writeln!(
            buf,
            "{} {:<5} agent: {}",
            humantime::format_rfc3339_millis(std::time::SystemTime::now()),
            record.level(),
            record.args()
        )
    });
    let _ = builder.try_init();
}

pub fn run_agent(socket: Option<PathBuf>, allow_uids: Vec<u32>) -> Result<u8, Failure> {
    init_logging();
    // SPEC: the idle timeout is not a flag; $HOLDEN_AGENT_IDLE_TIMEOUT (a humantime duration)
    // tunes it for tests and unusual clients (docs/agent-protocol.md).
    let idle_timeout = match std::env::var("HOLDEN_AGENT_IDLE_TIMEOUT") {
        Ok(v) => humantime::parse_duration(&v).map_err(|_| {
            Failure::usage(format!(
                "HOLDEN_AGENT_IDLE_TIMEOUT: found {v:?}, expected a duration like \"10s\""
            ))
        })?,
        Err(_) => server::DEFAULT_IDLE_TIMEOUT,
    };
    let opts = server::Options {
        socket: socket_path(socket),
        allow_uids,
        idle_timeout,
    };
    server::serve(&opts).map_err(|e| Failure::runtime(e.to_string()))?;
    Ok(0)
}

pub fn spawn_main(agent: Option<PathBuf>, restart: &str, command: Vec<String>) -> Result<u8, Failure> {
    let policy = RestartPolicy::parse(restart).ok_or_else(|| {
        Failure::usage(format!(
            "--restart: found {restart:?}, expected never, on-failure or always"
        ))
    })?;
    if command.is_empty() {
        return Err(Failure::usage("no command given; usage: holden spawn -- CMD [ARG...]"));
    }
    run(&socket_path(agent), policy, &command)
}

pub fn ping_main(agent: Option<PathBuf>) -> Result<u8, Failure> {
    let socket = socket_path(agent);
    client::ping(&socket, PING_TIMEOUT).map_err(|e| Failure::runtime(e.to_string()))?;
    Ok(0)
}

fn run(socket: &Path, policy: RestartPolicy, command: &[String]) -> Result<u8, Failure> {
    let name = command[0].clone();
    let loop_err = |e: std::io::Error| Failure::runtime(format!("holden spawn's event loop failed: {e}"));
    let mut reactor = Reactor::new().map_err(loop_err)?;
    let signals =
        Signals::install(&reactor, &[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]).map_err(loop_err)?;
    // Restarts in a row, and the delay before the next one.
    let mut restart = 0;
    let mut last: Option<ExitKind> = None;
    loop {
        let started = Instant::now();
        let pidfd = match client::start_process(socket, command, &[], None, REQUEST_TIMEOUT) {
            Ok((_, pidfd)) => pidfd,
            Err(e) => {
                // The first start tells the user at once; a restart keeps trying while the
                // agent is down, and gives up when the command cannot be spawned at all.
                if last.is_none() || !e.retryable() {
                    return Err(start_failure(e));
                }
                restart = next_restart(restart, Duration::ZERO);
                let delay = backoff(FIRST_DELAY, MAX_DELAY, restart);
                eprintln!("holden: {e}; trying again in {}", humantime::format_duration(delay));
                if wait_before_restart(&mut reactor, &signals, delay).map_err(loop_err)? {
                    return exit_code(last.unwrap_or(ExitKind::Unknown), &name);
                }
                continue;
            }
        };
        let (ended, stopped) = supervise(&mut reactor, &signals, &pidfd).map_err(loop_err)?;
        last = Some(ended);
        if stopped || !restarts(policy, ended) {
            return exit_code(ended, &name);
        }
        restart = next_restart(restart, started.elapsed());
        let delay = backoff(FIRST_DELAY, MAX_DELAY, restart);
        eprintln!(
            "holden: {name} ended ({}); restarting in {}",
            ended.describe(),
            humantime::format_duration(delay)
        );
        if wait_before_restart(&mut reactor, &signals, delay).map_err(loop_err)? {
            return exit_code(ended, &name);
        }
    }
}

fn start_failure(e: AgentError) -> Failure {
    // Like a shell: 127 when the command is not found, 126 when it cannot be executed.
    let code = match e.errno().map(Errno::from_raw_os_error) {
        Some(Errno::NOENT) => 127,
        Some(Errno::ACCESS) | Some(Errno::NOEXEC) | Some(Errno::PERM) => 126,
        _ => 1,
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

/// Wait until the process of `pidfd` ends, forwarding SIGINT and SIGTERM to it. Returns how
/// it ended and whether a signal was forwarded (then it is not restarted).
fn supervise(reactor: &mut Reactor, signals: &Signals, pidfd: &OwnedFd) -> std::io::Result<(ExitKind, bool)> {
    let token = Token::new(Owner::Agent, 0);
    reactor.add(pidfd.as_fd(), token, Interest::Read)?;
    let mut stopped = false;
    let mut ended = false;
    while !ended {
        for ready in reactor.wait(None)? {
            match ready.token.owner {
                Owner::Signal => stopped |= forward(signals, pidfd),
                Owner::Agent => ended = true,
                Owner::Supervisor | Owner::Logs | Owner::Control => {}
            }
        }
    }
    // Level-triggered: a readable pidfd stays readable; it must leave before the waits below.
    reactor.delete(pidfd.as_fd());
    // The exit status appears once the agent has reaped the process, usually within
    // microseconds: ask again after the pauses `pidfd_exit` says, for a bounded time.
    let since = Instant::now();
    loop {
        let pause = match pidfd_exit(pidfd.as_fd(), since.elapsed()) {
            PidfdExit::Ended(exit) => return Ok((exit, stopped)),
            PidfdExit::Lost(why) => {
                eprintln!("holden: {why}; its exit status is unknown");
                return Ok((ExitKind::Unknown, stopped));
            }
            PidfdExit::NotYet(pause) => pause,
        };
        for ready in reactor.wait(Some(Instant::now() + pause))? {
            if ready.token.owner == Owner::Signal {
                stopped |= forward(signals, pidfd);
            }
        }
    }
}

/// Forward the SIGINT/SIGTERM that arrived to the process; true when there was one.
fn forward(signals: &Signals, pidfd: &OwnedFd) -> bool {
    let mut any = false;
    for sig in signals.drain() {
        any = true;
        let Some(signal) = Signal::from_named_raw(sig) else {
            continue;
        };
        match rustix::process::pidfd_send_signal(pidfd, signal) {
            // ESRCH: it has already ended (and been reaped).
            Ok(()) | Err(Errno::SRCH) => {}
            Err(e) => eprintln!("holden: cannot forward signal {sig}: {e}"),
        }
    }
    any
}

/// Wait `delay` before a restart. True when SIGINT or SIGTERM arrived meanwhile: do not restart.
fn wait_before_restart(reactor: &mut Reactor, signals: &Signals, delay: Duration) -> std::io::Result<bool> {
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        for ready in reactor.wait(Some(deadline))? {
            if ready.token.owner == Owner::Signal && !signals.drain().is_empty() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        let k = |e| exit_code(e, "x").unwrap();
        assert_eq!(k(ExitKind::Code(3)), 3);
        assert_eq!(k(ExitKind::Signal(15)), 143);
        let e = exit_code(ExitKind::Unknown, "x").unwrap_err();
        assert_eq!(e.code, 1);
    }

    #[test]
    fn policies_decide_restarts() {
        let ok = ExitKind::Code(0);
        let bad = ExitKind::Code(1);
        let table = [
            (RestartPolicy::Never, ok, false),
            (RestartPolicy::Never, bad, false),
            (RestartPolicy::OnFailure, ok, false),
            (RestartPolicy::OnFailure, bad, true),
            (RestartPolicy::OnFailure, ExitKind::Signal(9), true),
            (RestartPolicy::OnFailure, ExitKind::Unknown, true),
            (RestartPolicy::Always, ok, true),
            (RestartPolicy::Always, ExitKind::Unknown, true),
        ];
        for (policy, ended, want) in table {
            assert_eq!(restarts(policy, ended), want, "{policy:?} {ended:?}");
        }
    }

    #[test]
    fn the_delay_doubles_to_the_cap_and_a_long_run_resets_it() {
        let quick = Duration::from_millis(10);
        let mut n = 0;
        let mut delays = Vec::new();
        for _ in 0..7 {
            n = next_restart(n, quick);
            delays.push(backoff(FIRST_DELAY, MAX_DELAY, n).as_secs());
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30]);
        n = next_restart(n, Duration::from_secs(5));
        assert_eq!(backoff(FIRST_DELAY, MAX_DELAY, n), FIRST_DELAY);
    }
}

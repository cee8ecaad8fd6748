//! `holden agent`, `holden spawn`, `holden ping`: the stateless pidfd-passing spawner and its
//! clients.
//!
//! - `frame`: the binary wire format, pure functions (docs/agent-protocol.md).
//! - `server`: the agent's event loop: spawn, pidfd_open, send by SCM_RIGHTS, forget, reap.
//! - `client`: `start_process` and `ping`, blocking and bounded by a timeout; used by
//!   `holden spawn`, `holden ping` and the supervisor's programs with `agent = "PATH"`.
//! - `spawn`: `holden spawn`, a one-program supervisor over a pidfd it did not create.
//!
//! The exit status of a process the caller did not spawn itself comes from the pidfd
//! (`sys::pidfd::exit_info`), never from `waitid`, which only the parent may call.

pub mod client;
pub mod frame;
pub mod server;
pub mod spawn;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::RestartPolicy;
use crate::error::Failure;

/// Where the agent listens when neither `--socket`/`--agent` nor `$HOLDEN_SOCKET_PATH` says.
pub const DEFAULT_SOCKET: &str = "/run/holden/agent.sock";
/// How long `holden ping` waits for the answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's socket: the option, else `$HOLDEN_SOCKET_PATH`, else the default.
pub fn socket_path(option: Option<PathBuf>) -> PathBuf {
    option
        .or_else(|| {
            std::env::var_os("HOLDEN_SOCKET_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
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
    spawn::run(&socket_path(agent), policy, &command)
}

pub fn ping_main(agent: Option<PathBuf>) -> Result<u8, Failure> {
    let socket = socket_path(agent);
    client::ping(&socket, PING_TIMEOUT).map_err(|e| Failure::runtime(e.to_string()))?;
    Ok(0)
}

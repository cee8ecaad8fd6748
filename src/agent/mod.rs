//! The agent: the stateless pidfd-passing spawner (`holden agent`) and the library its clients
//! use (`holden spawn`, `holden ping`, whose command line is `cli::spawn`'s, and the
//! supervisor's programs with `agent = "PATH"`).
//!
//! - `frame`: the binary wire format, pure functions (docs/agent-protocol.md).
//! - `server`: the agent's event loop: spawn, pidfd_open, send by SCM_RIGHTS, forget, reap.
//! - `client`: `start_process` and `ping`, blocking and bounded by a timeout; used by
//!   `holden spawn`, `holden ping` and the supervisor's programs with `agent = "PATH"`.
//!
//! The exit status of a process the caller did not spawn itself comes from the pidfd
//! (`process::reap::pidfd_exit`), never from `waitid`, which only the parent may call.

pub mod client;
pub mod frame;
pub mod server;

use std::path::PathBuf;

/// Where the agent listens when neither `--socket`/`--agent` nor `$HOLDEN_SOCKET_PATH` says.
pub const DEFAULT_SOCKET: &str = "/run/holden/agent.sock";

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

//! The command line: every subcommand, from its arguments to its output and exit code.
//!
//! - `args`: the clap definitions (SPEC's Commands table).
//! - `error`: the one table from an error to its exit code and stderr text.
//! - `commands`: the short client commands (`status`, `signal`, `constrain`, `reload`, ...).
//! - `wait`: `start`, `stop`, `restart` and `add`, which follow events until done.
//! - `monitor`, `logs`: the two long-running views.
//! - `table`: how programs are rendered for people; `units`: size and CPU arguments.
//! - `man`: completions and the man page; `import`: `holden import`'s entry.
//!
//! Arguments are checked before connecting (a bad size or signal is a usage error, exit 2, and
//! holden is not bothered). Every failure is one sentence with what to do, never an `os error`.
//! The control socket itself is `control::client`'s; `spawn`: `agent`, `spawn` and `ping`.

mod args;
mod commands;
pub mod error;
mod import;
mod logs;
mod man;
mod monitor;
mod spawn;
pub mod table;
mod units;
mod wait;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

pub use args::Cli;
use args::{ClientArgs, Command};
use error::{Error, Result};

use crate::config;
use crate::control::client::Connection;
use crate::control::protocol::{ProgramStatus, Reply, Request, unix_time};

/// Run the parsed command line: its output on stdout, a failure on stderr, the exit code.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(report) = e.report() {
                eprintln!("{report}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(command: Command) -> Result {
    match command {
        Command::Run { config } => {
            crate::supervisor::run(config.as_deref())?;
            Ok(0)
        }
        Command::Check { config } => check(config.as_deref()),
        Command::Agent { socket, allow_uid } => Ok(spawn::run_agent(socket, allow_uid)?),
        Command::Spawn {
            agent,
            restart,
            command,
        } => Ok(spawn::spawn_main(agent, &restart, command)?),
        Command::Ping { agent } => Ok(spawn::ping_main(agent)?),
        Command::Completions { shell } => man::completions(shell),
        Command::Man => man::man(),
        Command::Import { file, output } => import::import(file.as_deref(), output.as_deref()),
        Command::Status { names, json, client } => commands::status(&client, names, json),
        Command::Start(t) => wait::act(wait::Action::Start, t),
        Command::Stop(t) => wait::act(wait::Action::Stop, t),
        Command::Restart(t) => wait::act(wait::Action::Restart, t),
        Command::Signal { signal, names, client } => commands::signal(&client, &signal, names),
        Command::Constrain {
            name,
            memory,
            cpu,
            pids,
            client,
        } => commands::constrain(&client, name, memory, cpu, pids),
        Command::Monitor { interval, client } => monitor::monitor(&client, &interval),
        Command::Logs {
            name,
            follow,
            lines,
            stderr,
            client,
        } => logs::logs(&client, &name, follow, lines, stderr),
        Command::Add {
            name,
            restart,
            memory,
            cpu,
            pids,
            stdout,
            no_wait,
            command,
            client,
        } => wait::add(&client, name, &restart, (memory, cpu, pids), stdout, !no_wait, command),
        Command::Remove { name, client } => commands::simple(
            &client,
            Request::Remove { name: name.clone() },
            &format!("{name}: removed"),
        ),
        Command::Reopen { client } => commands::simple(&client, Request::Reopen, "log files reopened"),
        Command::Reload { client } => commands::reload(&client),
        Command::Shutdown { client } => commands::shutdown(&client),
    }
}

/// `holden check`: the resolved config on stdout, or its problems on stderr (exit 2).
fn check(path: Option<&Path>) -> Result {
    let cfg = config::load(&config::config_path(path))?;
    out(&config::resolve::render(&cfg))?;
    Ok(0)
}

/// The control socket: `--socket`, else `$HOLDEN_CONTROL_SOCKET`, else the `[supervisor]
/// socket` of the config file (`-c`, `$HOLDEN_CONFIG`, `./supervisor.toml`), else the default.
fn socket_path(args: &ClientArgs) -> PathBuf {
    if let Some(p) = &args.socket {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("HOLDEN_CONTROL_SOCKET")
        && !p.is_empty()
    {
        return PathBuf::from(p);
    }
    let explicit = args.config.is_some() || std::env::var_os("HOLDEN_CONFIG").is_some_and(|v| !v.is_empty());
    let file = config::config_path(args.config.as_deref());
    if explicit || file.exists() {
        match config::load(&file) {
            Ok(cfg) => return cfg.supervisor.socket,
            // SPEC: the socket is all a client needs from the file; a file that does not
            // parse (being edited, say) should not stop `holden stop`.
            Err(e) if explicit => eprintln!(
                "holden: warning: cannot read the socket path from {} ({}); trying {}",
                file.display(),
                e.to_string().lines().next().unwrap_or("invalid"),
                config::default_socket().display()
            ),
            Err(_) => {}
        }
    }
    config::default_socket()
}

fn connect(args: &ClientArgs) -> Result<Connection> {
    Ok(Connection::open(&socket_path(args))?)
}

/// Write to stdout; a closed stdout (`holden status | head -1`) ends quietly. In unit tests,
/// to a per-thread buffer instead (`tests::take_output`), which the tests check.
fn out(text: &str) -> Result<()> {
    out_bytes(text.as_bytes())
}

fn out_bytes(bytes: &[u8]) -> Result<()> {
    #[cfg(test)]
    {
        tests::OUTPUT.with(|o| o.borrow_mut().push_str(&String::from_utf8_lossy(bytes)));
        Ok(())
    }
    #[cfg(not(test))]
    write_stdout(bytes)
}

#[cfg_attr(test, allow(dead_code))]
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut o = io::stdout().lock();
    match o.write_all(bytes).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Error::StdoutClosed),
        Err(e) => Err(error::runtime(format!(
            "cannot write to stdout: {}",
            crate::error::os_text(&e)
        ))),
    }
}

fn now_unix() -> f64 {
    unix_time(SystemTime::now())
}

fn expect_status(reply: Reply) -> Result<Vec<ProgramStatus>> {
    match reply {
        Reply::Status { programs } => Ok(programs),
        Reply::Targets { .. } | Reply::Reload(_) | Reply::LogPaths { .. } | Reply::Done {} => Err(error::runtime(
            "holden answered status without programs; are client and holden the same version?",
        )),
    }
}

#[cfg(test)]
mod tests;

//! holden: a process supervisor. Parse the command line, run the command, print one sentence
//! on failure, choose the exit code.

mod agent;
mod cgroup;
mod cli;
mod config;
mod control;
mod error;
mod health;
mod import;
mod listen;
mod logs;
mod process;
mod reactor;
mod supervisor;
#[allow(unsafe_code)]
mod sys;

#[cfg(test)]
mod fuzz;

/// Tests count what each thread allocates (sys/alloc_count.rs): the fuzz tests bound it.
#[cfg(test)]
#[global_allocator]
static ALLOC: sys::alloc_count::Counting = sys::alloc_count::Counting;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use error::Failure;

/// `0.1.0 (1a2b3c4)`: the package version and, when built in a git checkout, the commit
/// (see build.rs).
pub const VERSION: &str = env!("HOLDEN_VERSION");

/// `holden import`: warnings on stderr, the TOML on stdout or in OUT; exit 2 on a bad input.
fn import_main(file: Option<&std::path::Path>, output: Option<&std::path::Path>) -> Result<u8, Failure> {
    use import::ImportError;
    let result = import::find(file).and_then(|f| import::import(&f));
    let imported = match result {
        Ok(i) => i,
        Err(e @ ImportError::Input(_)) => {
            // One `file:line: ...` per line, like config errors.
            eprintln!("{e}");
            return Err(Failure::usage(""));
        }
        Err(e) => return Err(Failure::usage(e.to_string())),
    };
    for w in &imported.warnings {
        eprintln!("holden: warning: {w}");
    }
    match output {
        Some(out) => std::fs::write(out, &imported.toml).map_err(|source| {
            Failure::runtime(
                ImportError::Write {
                    path: out.to_path_buf(),
                    source,
                }
                .to_string(),
            )
        })?,
        None => print!("{}", imported.toml),
    }
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => supervisor::run(config.as_deref()),
        Command::Check { config } => supervisor::check(config.as_deref()),
        Command::Agent { socket, allow_uid } => agent::run_agent(socket, allow_uid),
        Command::Spawn {
            agent,
            restart,
            command,
        } => agent::spawn_main(agent, &restart, command),
        Command::Ping { agent } => agent::ping_main(agent),
        Command::Completions { shell } => cli::completions(shell),
        Command::Man => cli::man(),
        Command::Import { file, output } => import_main(file.as_deref(), output.as_deref()),
        client => control::client::main(client),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("holden: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

//! The command line: every subcommand of SPEC's Commands table, as clap derive types.
//! Parsing only; `main.rs` dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "holden",
    version,
    about = "A process supervisor: keeps the programs of a TOML file running, each in its own cgroup",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// How a client finds the control socket: `--socket`, else `$HOLDEN_CONTROL_SOCKET`, else the
/// `[supervisor] socket` of the config file, else the default.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Control socket of the running holden.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file to find the socket in (default: $HOLDEN_CONFIG, else ./supervisor.toml).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the supervisor in the foreground.
    Run {
        /// Config file (default: $HOLDEN_CONFIG, else ./supervisor.toml).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate the config file and print the resolved programs.
    Check {
        /// Config file (default: $HOLDEN_CONFIG, else ./supervisor.toml).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show the programs: state, pid, uptime, restarts, last exit, CPU, memory.
    Status {
        /// Only these programs.
        names: Vec<String>,
        /// Print JSON: {"programs":[...]}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start programs and wait until they are RUNNING (or failed).
    Start(Targets),
    /// Stop programs and wait until they are STOPPED.
    Stop(Targets),
    /// Stop then start programs, waiting until they are RUNNING (or failed).
    Restart(Targets),
    /// Send a signal to programs' main processes.
    Signal {
        /// Signal name (HUP, SIGHUP) or number.
        signal: String,
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change the limits of a running program, live.
    Constrain {
        name: String,
        /// Memory limit, e.g. 500MB, 1GiB, or "max" to lift it.
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        /// CPU limit in CPUs, e.g. 0.5, or "max" to lift it.
        #[arg(long, value_name = "CPUS")]
        cpu: Option<String>,
        /// Maximum number of tasks, or "max" to lift it.
        #[arg(long, value_name = "N")]
        pids: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Live view of every program's CPU and memory against its limits.
    Monitor {
        /// Refresh interval.
        #[arg(long, value_name = "DURATION", default_value = "1s")]
        interval: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the end of a program's log.
    Logs {
        name: String,
        /// Follow the log across restarts and rotations.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Number of lines to print.
        #[arg(short = 'n', long = "lines", value_name = "LINES", default_value_t = 10)]
        lines: usize,
        /// Show the stderr log instead of stdout.
        #[arg(long)]
        stderr: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Supervise a transient program that is not in the config file.
    Add {
        name: String,
        /// never, on-failure or always.
        #[arg(long = "restart", value_name = "POLICY", default_value = "on-failure")]
        restart: String,
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        #[arg(long, value_name = "CPUS")]
        cpu: Option<String>,
        #[arg(long, value_name = "N")]
        pids: Option<String>,
        /// Log file for stdout and stderr (default: holden's own stderr).
        #[arg(long, value_name = "PATH")]
        stdout: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a transient program and forget it.
    Remove {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Close and reopen every log file (same as SIGUSR1).
    Reopen {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Re-read the config file and apply the difference (same as SIGHUP).
    Reload {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop every program and the supervisor (same as SIGTERM).
    Shutdown {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Convert a supervisord configuration into holden's TOML.
    Import {
        /// supervisord.conf to read (default: ./supervisord.conf, ./etc/supervisord.conf,
        /// /etc/supervisord.conf, /etc/supervisor/supervisord.conf, the first that exists).
        file: Option<PathBuf>,
        /// Write the TOML here instead of to stdout.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// The stateless spawner: spawns commands on request and hands back their pidfds.
    Agent {
        /// Socket to listen on (default: $HOLDEN_SOCKET_PATH, else /run/holden/agent.sock).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// A uid besides root and the agent's own that may use the socket.
        #[arg(long = "allow-uid", value_name = "UID")]
        allow_uid: Vec<u32>,
    },
    /// Ask an agent to spawn a command, then supervise it through its pidfd.
    Spawn {
        /// Agent socket (default: $HOLDEN_SOCKET_PATH, else /run/holden/agent.sock).
        #[arg(long, value_name = "PATH")]
        agent: Option<PathBuf>,
        /// never, on-failure or always.
        #[arg(long = "restart", value_name = "POLICY", default_value = "never")]
        restart: String,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Check that an agent answers.
    Ping {
        /// Agent socket (default: $HOLDEN_SOCKET_PATH, else /run/holden/agent.sock).
        #[arg(long, value_name = "PATH")]
        agent: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Targets {
    /// Program names.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Every program.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}

//! The command line: every subcommand of SPEC's Commands table, as clap derive types.
//! Parsing only; `cli::run` dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "holden",
    version = crate::version::VERSION,
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
        /// Only these programs, instances or groups (default: every program).
        #[arg(value_name = "NAME")]
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
        /// Programs, instances or groups to signal.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change the limits of a running program, live.
    Constrain {
        /// The running program to change (an instance, or a program with instances or a
        /// group: each of its programs).
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
        /// The program or instance whose log to print.
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
        /// Name for the new program: 1 to 64 of A-Za-z0-9_.- (not . or ..).
        name: String,
        /// When to restart it: never, on-failure or always.
        #[arg(long = "restart", value_name = "POLICY", default_value = "on-failure")]
        restart: String,
        /// Memory limit, e.g. 500MB or 1GiB (KB = 1000, KiB = 1024).
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        /// CPU limit in CPUs, e.g. 0.5 or 2.
        #[arg(long, value_name = "CPUS")]
        cpu: Option<String>,
        /// Maximum number of tasks (processes and threads).
        #[arg(long, value_name = "N")]
        pids: Option<String>,
        /// Log file for stdout and stderr (default: holden's own stderr).
        #[arg(long, value_name = "PATH")]
        stdout: Option<PathBuf>,
        /// Return once holden accepted it, without waiting until it is RUNNING or failed.
        #[arg(long)]
        no_wait: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a transient program and forget it.
    Remove {
        /// The transient program (added with `holden add`) to remove.
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
    /// Print a shell completion script, e.g. `holden completions bash > /etc/bash_completion.d/holden`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), e.g. `holden man | man -l -`.
    Man,
}

/// Shells `holden completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `NAME...` or `--all`, one of them required (SPEC).
#[derive(Debug, Clone, Args)]
#[group(id = "targets", required = true, multiple = false, args = ["names", "all"])]
pub struct Targets {
    /// Programs, instances or groups to act on (give at least one, or --all).
    #[arg(value_name = "NAME")]
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

    /// Every argument of every command says what it is in `--help` (clap's own --help and
    /// --version aside).
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("{path} (the command)"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, format!("{path} {}", sub.get_name()).trim(), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "no help text for: {missing:?}");
        // The walk saw the arguments the issue named.
        let add = cmd.find_subcommand("add").expect("add");
        for id in ["name", "memory", "cpu", "pids"] {
            assert!(add.get_arguments().any(|a| a.get_id() == id), "add has no {id}");
        }
    }
}

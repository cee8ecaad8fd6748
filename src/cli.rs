//! The command line: every subcommand of SPEC's Commands table, as clap derive types.
//! Parsing only; `main.rs` dispatches.

use std::path::PathBuf;

use std::io::Write;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::error::Failure;

#[derive(Debug, Parser)]
#[command(
    name = "holden",
    version = crate::VERSION,
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

/// Write `text` to stdout; a closed stdout (`holden man | head`) ends quietly.
fn print(bytes: &[u8]) -> Result<u8, Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Failure::runtime(format!("cannot write to stdout: {}", e.kind()))),
    }
}

/// `holden completions SHELL`: the script clap_complete writes from these definitions.
pub fn completions(shell: Shell) -> Result<u8, Failure> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "holden", &mut buf),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "holden", &mut buf),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "holden", &mut buf),
    }
    print(&buf)
}

/// `holden man`: holden(1) in roff, from these definitions: clap_mangen's page for the top
/// level, and a COMMANDS section with each command's usage, description and arguments.
pub fn man() -> Result<u8, Failure> {
    print(&man_page())
}

fn man_page() -> Vec<u8> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone()).date(MAN_DATE);
    let mut buf = Vec::new();
    type Part = fn(&clap_mangen::Man, &mut dyn Write) -> std::io::Result<()>;
    let parts: [Part; 5] = [
        clap_mangen::Man::render_title,
        clap_mangen::Man::render_name_section,
        clap_mangen::Man::render_synopsis_section,
        clap_mangen::Man::render_description_section,
        clap_mangen::Man::render_options_section,
    ];
    for part in parts {
        part(&page, &mut buf).expect("writing to a Vec cannot fail");
    }
    buf.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        buf.extend_from_slice(format!(".SS \"{}\"\n", roff_text(usage)).as_bytes());
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            buf.extend_from_slice(format!("{}\n", roff_line(&about.to_string())).as_bytes());
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let value = arg
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| id.to_uppercase(), ToString::to_string);
            let head = match (arg.get_short(), arg.get_long()) {
                (Some(s), Some(l)) if arg.get_action().takes_values() => format!(
                    "\\fB\\-{s}\\fR, \\fB\\-\\-{}\\fR \\fI{}\\fR",
                    roff_text(l),
                    roff_text(&value)
                ),
                (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR, \\fB\\-\\-{}\\fR", roff_text(l)),
                (None, Some(l)) if arg.get_action().takes_values() => {
                    format!("\\fB\\-\\-{}\\fR \\fI{}\\fR", roff_text(l), roff_text(&value))
                }
                (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", roff_text(l)),
                (Some(s), None) => format!("\\fB\\-{s}\\fR"),
                (None, None) => format!("\\fI{}\\fR", roff_text(&value)),
            };
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            buf.extend_from_slice(format!(".TP\n{head}\n{}\n", roff_line(&help)).as_bytes());
        }
    }
    clap_mangen::Man::new(cmd)
        .render_version_section(&mut buf)
        .expect("writing to a Vec cannot fail");
    buf
}

/// The date on the man page: fixed, so the page is the same at every build.
const MAN_DATE: &str = "2026";

/// Text for roff: backslashes and hyphens escaped.
fn roff_text(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// A line of roff text that cannot be taken for a request (`.` or `'` first).
fn roff_line(s: &str) -> String {
    let t = roff_text(s.trim());
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn roff_escapes_what_roff_would_read_as_requests() {
        assert_eq!(roff_text("a-b\\c"), "a\\-b\\ec");
        assert_eq!(roff_line(".hidden"), "\\&.hidden");
        assert_eq!(roff_line("'quote"), "\\&'quote");
    }
}

//! Spawning a program's main process.
//!
//! Everything is prepared before the fork: argv, environment, working directory, credentials,
//! the cgroup.procs fds and stdio. std's `Command` forks (it uses fork+exec, never posix_spawn,
//! once a pre_exec step is set), the child runs `sys::exec`'s setup and execs; an exec failure
//! comes back through std's close-on-exec pipe as the child's errno, so a missing command is
//! known at once, not after a retry loop.
//!
//! Race: `pidfd_open(pid)` right after `spawn()` is safe only because every child of holden is
//! reaped by the event loop's one thread (`reap::reap_all`), never concurrently: until that
//! reap, the pid is at worst a zombie and cannot be reused.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use rustix::process::{Pid, PidfdFlags, Resource, Rlimit, pidfd_open};

use crate::config::Program;
use crate::sys::exec::{self, ChildSetup, Step};

use super::users;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The command cannot be run at all (missing, not executable, bad user): retrying cannot help.
    #[error("cannot spawn {command}: {reason}")]
    Exec { command: String, reason: String },
    /// fork or pidfd_open failed for lack of resources: worth retrying.
    #[error("cannot spawn {command}: {reason}")]
    Resources { command: String, reason: String },
}

impl SpawnError {
    /// A later try could succeed (EAGAIN, ENOMEM, EMFILE ...).
    pub fn retryable(&self) -> bool {
        matches!(self, SpawnError::Resources { .. })
    }
}

/// A freshly spawned main process.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// What a spawn adds for readiness: `NOTIFY_SOCKET`, the notification fd.
#[derive(Debug, Default)]
pub struct Extra {
    pub env: Vec<(String, String)>,
    /// (source, the fd number the program gets it at).
    pub fds: Vec<(OwnedFd, i32)>,
}

/// Spawn `program` with `stdout`/`stderr`, joining the cgroups whose `cgroup.procs` are given.
#[allow(dead_code)]
pub fn spawn(
    program: &Program,
    stdout: Stdio,
    stderr: Stdio,
    cgroup_procs: Vec<OwnedFd>,
) -> Result<Spawned, SpawnError> {
    spawn_with(program, stdout, stderr, cgroup_procs, Extra::default())
}

/// `spawn` with readiness additions.
pub fn spawn_with(
    program: &Program,
    stdout: Stdio,
    stderr: Stdio,
    cgroup_procs: Vec<OwnedFd>,
    extra: Extra,
) -> Result<Spawned, SpawnError> {
    let command = program.command[0].clone();
    let exec_error = |reason: String| SpawnError::Exec {
        command: command.clone(),
        reason,
    };
    let identity = users::resolve(program.user.as_deref(), program.group.as_deref()).map_err(exec_error)?;

    let mut cmd = Command::new(&program.command[0]);
    cmd.args(&program.command[1..])
        .current_dir(&program.directory)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if let Some(id) = &identity {
        // What login(1) would set, so that programs find their own files; the config's
        // environment still overrides.
        cmd.env("USER", &id.name).env("LOGNAME", &id.name);
        if let Some(home) = &id.home {
            cmd.env("HOME", home);
        }
    }
    cmd.envs(&program.environment);
    // Set last: the config's environment does not override them.
    cmd.envs(program.holden_env());
    cmd.envs(extra.env);
    exec::install(
        &mut cmd,
        ChildSetup {
            cgroup_procs,
            new_session: true,
            rlimits: program
                .rlimits
                .iter()
                .map(|r| {
                    (
                        resource(r.name),
                        Rlimit {
                            current: r.soft,
                            maximum: r.hard,
                        },
                    )
                })
                // holden raised its own soft open files limit: the program gets the one holden
                // was started with, unless its rlimits say otherwise. Last, so that a failed
                // step's index still names the config's entry.
                .chain(
                    super::nofile::programs_nofile()
                        .filter(|_| !program.rlimits.iter().any(|r| r.name == "nofile"))
                        .map(|l| (rustix::process::Resource::Nofile, l)),
                )
                .collect(),
            nice: program.nice,
            oom_score_adj: program.oom_score_adj.map(|n| n.to_string().into_bytes()),
            umask: program.umask,
            credentials: identity.map(|i| i.credentials),
            close_other_fds: true,
            fd_bound: exec::fd_bound(),
            dup_fds: extra.fds,
        },
    );
    let child = cmd.spawn().map_err(|e| {
        let reason = match exec::failed_step(&e) {
            Some((step, errno)) => step_text(program, step, &errno),
            None => crate::error::os_text(&e),
        };
        match exec::errno(&e).map(rustix::io::Errno::from_raw_os_error) {
            Some(
                rustix::io::Errno::AGAIN
                | rustix::io::Errno::NOMEM
                | rustix::io::Errno::MFILE
                | rustix::io::Errno::NFILE,
            ) => SpawnError::Resources {
                command: command.clone(),
                reason,
            },
            // The child's chdir and exec both report ENOENT, EACCES, ENOTDIR: the working
            // directory is named when it is the one at fault.
            _ => SpawnError::Exec {
                command: command.clone(),
                reason: match directory_fault(&program.directory) {
                    Some(why) => why,
                    None => reason,
                },
            },
        }
    })?;
    let pid = child.id() as i32;
    // The `Child` is dropped without waiting: reaping belongs to `reap_all`.
    drop(child);
    let child_pid = Pid::from_raw(pid).expect("spawned pid is positive");
    let pidfd = pidfd_open(child_pid, PidfdFlags::NONBLOCK).map_err(|e| {
        // Unwatched, it would run unsupervised beside the copy a retry starts: end it now.
        // Not reaped yet, so the pid is still this child's.
        let _ = rustix::process::kill_process(child_pid, rustix::process::Signal::KILL);
        SpawnError::Resources {
            command: command.clone(),
            reason: format!("pidfd_open: {}", crate::error::os_text(&e.into())),
        }
    })?;
    Ok(Spawned { pid, pidfd })
}

/// The `RLIMIT_*` of a name of `config::RLIMITS`.
fn resource(name: &str) -> Resource {
    match name {
        "as" => Resource::As,
        "core" => Resource::Core,
        "cpu" => Resource::Cpu,
        "data" => Resource::Data,
        "fsize" => Resource::Fsize,
        "locks" => Resource::Locks,
        "memlock" => Resource::Memlock,
        "msgqueue" => Resource::Msgqueue,
        "nice" => Resource::Nice,
        "nofile" => Resource::Nofile,
        "nproc" => Resource::Nproc,
        "rss" => Resource::Rss,
        "rtprio" => Resource::Rtprio,
        "rttime" => Resource::Rttime,
        "sigpending" => Resource::Sigpending,
        "stack" => Resource::Stack,
        other => unreachable!("config::RLIMITS has no {other:?}"),
    }
}

/// What a failed pre-exec step means, as a sentence fragment naming the setting.
fn step_text(program: &Program, step: Step, errno: &std::io::Error) -> String {
    let why = crate::error::os_text(errno);
    let show = |l: Option<u64>| l.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    let denied = errno.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error());
    match step {
        Step::Cgroup => format!("cannot join its cgroup: {why}"),
        Step::Setsid => format!("cannot start a new session: {why}"),
        Step::Rlimit(i) => match program.rlimits.get(i) {
            Some(r) => {
                let hint = match (denied, r.name) {
                    (true, "nofile") => {
                        " (raising a hard limit needs CAP_SYS_RESOURCE, and nofile cannot exceed fs.nr_open)"
                    }
                    (true, _) => " (raising a hard limit needs CAP_SYS_RESOURCE)",
                    (false, _) => "",
                };
                format!(
                    "the kernel refused rlimits.{} = {{ soft = {}, hard = {} }}: {why}{hint}",
                    r.name,
                    show(r.soft),
                    show(r.hard)
                )
            }
            None => format!("the kernel refused a resource limit: {why}"),
        },
        Step::Nice => {
            let hint = if denied {
                " (a niceness below holden's own needs CAP_SYS_NICE)"
            } else {
                ""
            };
            format!(
                "the kernel refused nice = {}: {why}{hint}",
                program.nice.unwrap_or_default()
            )
        }
        Step::OomScoreAdj => {
            let hint = if denied || errno.raw_os_error() == Some(rustix::io::Errno::ACCESS.raw_os_error()) {
                " (an oom_score_adj below holden's own needs CAP_SYS_RESOURCE)"
            } else {
                ""
            };
            format!(
                "the kernel refused oom_score_adj = {}: {why}{hint}",
                program.oom_score_adj.unwrap_or_default()
            )
        }
        Step::Groups => format!("cannot set the supplementary groups: {why}"),
        Step::Gid => format!("cannot switch to the group: {why}"),
        Step::Uid => format!("cannot switch to the user: {why}"),
        Step::CloseRange => format!("cannot close holden's other file descriptors (close_range, Linux 5.11+): {why}"),
    }
}

/// "working directory /x: no such file or directory" when `dir` cannot be a working directory.
fn directory_fault(dir: &std::path::Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Err(e) => Some(format!(
            "working directory {}: {}",
            dir.display(),
            crate::error::os_text(&e)
        )),
        Ok(m) if !m.is_dir() => Some(format!("working directory {}: Not a directory", dir.display())),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_name_of_the_config_has_its_resource() {
        let all: Vec<Resource> = crate::config::RLIMITS.iter().map(|(name, _)| resource(name)).collect();
        assert_eq!(all.len(), 16);
        assert_eq!(resource("nofile"), Resource::Nofile);
        assert_eq!(resource("as"), Resource::As);
    }
}

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

use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::config::Program;
use crate::sys::exec::{self, ChildSetup};

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
            credentials: identity.map(|i| i.credentials),
            dup_fds: extra.fds,
        },
    );
    let child = cmd.spawn().map_err(|e| {
        let reason = io_text(&e);
        match e.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
            Some(
                rustix::io::Errno::AGAIN
                | rustix::io::Errno::NOMEM
                | rustix::io::Errno::MFILE
                | rustix::io::Errno::NFILE,
            ) => SpawnError::Resources {
                command: command.clone(),
                reason,
            },
            _ => SpawnError::Exec {
                command: command.clone(),
                reason,
            },
        }
    })?;
    let pid = child.id() as i32;
    // The `Child` is dropped without waiting: reaping belongs to `reap_all`.
    drop(child);
    let pidfd = pidfd_open(
        Pid::from_raw(pid).expect("spawned pid is positive"),
        PidfdFlags::NONBLOCK,
    )
    .map_err(|e| SpawnError::Resources {
        command: command.clone(),
        reason: format!("pidfd_open: {}", io_text(&e.into())),
    })?;
    Ok(Spawned { pid, pidfd })
}

/// An io::Error as a sentence fragment, without std's " (os error N)" tail.
pub fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

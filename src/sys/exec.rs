//! What a forked child does between fork and exec, installed with std's `CommandExt::pre_exec`.
//!
//! std forks and, in the child, sets up stdio, the working directory, resets the signal mask
//! and SIGPIPE, then runs our closure, then execs; an error returned by the closure (or by
//! exec) travels back through std's close-on-exec pipe and comes out of `Command::spawn` as an
//! `io::Error` with the child's errno. The closure runs in a forked copy of a (possibly
//! multi-threaded) process, so it only makes raw syscalls through rustix on data prepared
//! before the fork: no allocation, no locks, no formatting.
//!
//! Order matters: join the cgroups first (while still privileged; the procs files were opened
//! by holden beforehand), then a new session, then drop supplementary groups, gid, uid.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{Gid, Uid};

/// Everything the child does before exec, prepared by the parent.
#[derive(Debug, Default)]
pub struct ChildSetup {
    /// `cgroup.procs` of each hierarchy, opened for writing; the child writes "0" (itself).
    pub cgroup_procs: Vec<OwnedFd>,
    /// Start a new session (and process group) so that signals to the group reach only the
    /// program's own processes, and a terminal's ^C never does.
    pub new_session: bool,
    /// Credentials to switch to: supplementary groups, gid, uid.
    pub credentials: Option<Credentials>,
    /// Fds the program gets at a given number (`readiness = { fd = N }`): (source, N). Done
    /// as the very last step, after anything that closes fds, so N stays open across exec.
    /// A `close_range` before it must leave the sources open: `CLOSE_RANGE_CLOEXEC` (they are
    /// close-on-exec already), or a range that skips them.
    pub dup_fds: Vec<(OwnedFd, i32)>,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
}

/// Install `setup` as the pre-exec step of `cmd`.
pub fn install(cmd: &mut Command, setup: ChildSetup) {
    let ChildSetup {
        cgroup_procs,
        new_session,
        credentials,
        dup_fds,
    } = setup;
    let closure = move || -> std::io::Result<()> {
        for fd in &cgroup_procs {
            // "0" names the writing process itself: no pid to format after fork.
            rustix::io::write(fd, b"0")?;
        }
        if new_session {
            rustix::process::setsid()?;
        }
        if let Some(c) = &credentials {
            // After fork the child has a single thread, so the per-thread credential syscalls
            // (what the kernel really has) change the whole process.
            rustix::thread::set_thread_groups(&c.groups)?;
            rustix::thread::set_thread_gid(c.gid)?;
            rustix::thread::set_thread_uid(c.uid)?;
        }
        // Last: dup2 gives fd N without FD_CLOEXEC, so it survives exec.
        for (src, target) in &dup_fds {
            if src.as_raw_fd() == *target {
                rustix::io::fcntl_setfd(src, rustix::io::FdFlags::empty())?;
            } else {
                // SAFETY: `target` is a plain fd number owned by nobody in this child; dup2
                // (re)opens it, and `forget` keeps the OwnedFd from closing it again.
                let mut fd = unsafe { OwnedFd::from_raw_fd(*target) };
                let r = rustix::io::dup2(src, &mut fd);
                std::mem::forget(fd);
                r?;
            }
        }
        Ok(())
    };
    // SAFETY: the closure only makes raw syscalls (write, setsid, setgroups, setgid, setuid,
    // fcntl, dup2)
    // through rustix's linux_raw backend, on fds and vectors allocated before the fork; it
    // allocates nothing, takes no lock and touches no state shared with other threads, so it
    // is async-signal-safe as pre_exec requires.
    unsafe {
        cmd.pre_exec(closure);
    }
}

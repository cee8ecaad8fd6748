//! What a forked child does between fork and exec, installed with std's `CommandExt::pre_exec`.
//!
//! std forks and, in the child, sets up stdio, the working directory, resets the signal mask
//! and SIGPIPE, then runs our closure, then execs; an error returned by the closure (or by
//! exec) travels back through std's close-on-exec pipe and comes out of `Command::spawn` as an
//! `io::Error` with the child's errno. The closure runs in a forked copy of a (possibly
//! multi-threaded) process, so it only makes raw syscalls through rustix (and `close_range`
//! through libc's `syscall`) on data prepared before the fork: no allocation, no locks, no
//! formatting.
//!
//! Order matters: join the cgroups first (while still privileged; the procs files were opened
//! by holden beforehand), then a new session, then resource limits, niceness and
//! oom_score_adj (raising a hard limit, lowering the niceness or the OOM score need privilege,
//! so they come before the drop), the umask, then drop supplementary groups, gid, uid, and
//! last mark every fd above 2 close-on-exec, so the program gets exactly 0, 1 and 2 (std's
//! own error pipe is close-on-exec already and keeps working until the exec).
//!
//! Which step failed is sent back with the errno: std passes the closure's raw error code
//! through its pipe unchanged, so a failed step returns `STEP_MARK | step << 12 | errno`, and
//! `failed_step` takes it apart again in the parent.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::fs::{Mode, OFlags};
use rustix::process::{Gid, Resource, Rlimit, Uid};

/// Everything the child does before exec, prepared by the parent.
#[derive(Debug, Default)]
pub struct ChildSetup {
    /// `cgroup.procs` of each hierarchy, opened for writing; the child writes "0" (itself).
    pub cgroup_procs: Vec<OwnedFd>,
    /// The cgroup2 (unified) hierarchy's cgroup: created in it when the kernel allows it,
    /// else joined like the others.
    pub cgroup2: Option<Cgroup2>,
    /// Start a new session (and process group) so that signals to the group reach only the
    /// program's own processes, and a terminal's ^C never does.
    pub new_session: bool,
    /// setrlimit, in order.
    pub rlimits: Vec<(Resource, Rlimit)>,
    /// setpriority(PRIO_PROCESS, 0, nice).
    pub nice: Option<i32>,
    /// The text to write to /proc/self/oom_score_adj (a number, already formatted).
    pub oom_score_adj: Option<Vec<u8>>,
    pub umask: Option<u32>,
    /// Credentials to switch to: supplementary groups, gid, uid.
    pub credentials: Option<Credentials>,
    /// Mark every fd from 3 up close-on-exec (close_range, Linux 5.11; before that, each fd
    /// below `fd_bound` one by one).
    pub close_other_fds: bool,
    /// Above every fd the process has: its RLIMIT_NOFILE soft limit, taken before the fork.
    pub fd_bound: u32,
    /// Fds the program gets at a given number (`readiness = { fd = N }`): (source, N). Done
    /// as the very last step, after anything that closes fds, so N stays open across exec.
    /// A `close_range` before it must leave the sources open: `CLOSE_RANGE_CLOEXEC` (they are
    /// close-on-exec already), or a range that skips them.
    pub dup_fds: Vec<(OwnedFd, i32)>,
}

/// A cgroup2 directory and its `cgroup.procs`, both open.
#[derive(Debug)]
pub struct Cgroup2 {
    pub dir: OwnedFd,
    pub procs: OwnedFd,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
}

/// The pre-exec step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Cgroup,
    Setsid,
    /// The index into `ChildSetup::rlimits`.
    Rlimit(usize),
    Nice,
    OomScoreAdj,
    Groups,
    Gid,
    Uid,
    CloseRange,
}

const STEP_MARK: i32 = 1 << 24;
const ERRNO_BITS: u32 = 12;
const ERRNO_MASK: i32 = (1 << ERRNO_BITS) - 1;

impl Step {
    fn code(self) -> i32 {
        match self {
            Step::Cgroup => 1,
            Step::Setsid => 2,
            Step::Nice => 3,
            Step::OomScoreAdj => 4,
            Step::Groups => 5,
            Step::Gid => 6,
            Step::Uid => 7,
            Step::CloseRange => 8,
            // At most RLIM_NLIMITS (16) entries: 16..32, within the 12 bits above the errno.
            Step::Rlimit(i) => 16 + (i as i32 & 0xff),
        }
    }

    fn from_code(code: i32) -> Option<Step> {
        Some(match code {
            1 => Step::Cgroup,
            2 => Step::Setsid,
            3 => Step::Nice,
            4 => Step::OomScoreAdj,
            5 => Step::Groups,
            6 => Step::Gid,
            7 => Step::Uid,
            8 => Step::CloseRange,
            16.. => Step::Rlimit((code - 16) as usize),
            _ => return None,
        })
    }
}

/// `errno` of `step`, as one raw error code (no allocation: `io::Error`'s OS variant).
fn fail(step: Step) -> impl Fn(rustix::io::Errno) -> io::Error {
    move |e| io::Error::from_raw_os_error(STEP_MARK | (step.code() << ERRNO_BITS) | (e.raw_os_error() & ERRNO_MASK))
}

/// The step that failed and its errno, for an error of `Command::spawn` with a setup
/// installed; `None` for a plain error (the exec itself, or the fork).
pub fn failed_step(e: &io::Error) -> Option<(Step, io::Error)> {
    let code = e.raw_os_error()?;
    if code & STEP_MARK == 0 {
        return None;
    }
    let step = Step::from_code((code & !STEP_MARK) >> ERRNO_BITS)?;
    Some((step, io::Error::from_raw_os_error(code & ERRNO_MASK)))
}

/// The raw errno of `e`, the step's when a setup step failed.
pub fn errno(e: &io::Error) -> Option<i32> {
    match failed_step(e) {
        Some((_, inner)) => inner.raw_os_error(),
        None => e.raw_os_error(),
    }
}

/// Install `setup` as the pre-exec step of `cmd`.
pub fn install(cmd: &mut Command, setup: ChildSetup) {
    let closure = move || -> io::Result<()> { setup.apply(false) };
    // SAFETY: `apply` only makes raw syscalls (write, setsid, setrlimit, setpriority,
    // open/write/close, umask, setgroups, setgid, setuid, close_range or fcntl, dup2) through
    // rustix's linux_raw backend and libc's `syscall`, on fds, vectors and a static path
    // prepared before the fork; it allocates nothing (an `io::Error` from a raw code is not
    // boxed), takes no lock and touches no state shared with other threads, so it is
    // async-signal-safe as pre_exec requires.
    unsafe {
        cmd.pre_exec(closure);
    }
}

impl ChildSetup {
    /// The steps, in the child. `placed`: the child was created in `cgroup2`'s directory
    /// already (CLONE_INTO_CGROUP), so its cgroup.procs is not written.
    pub(super) fn apply(&self, placed: bool) -> io::Result<()> {
        if let Some(c) = &self.cgroup2
            && !placed
        {
            rustix::io::write(&c.procs, b"0").map_err(fail(Step::Cgroup))?;
        }
        for fd in &self.cgroup_procs {
            // "0" names the writing process itself: no pid to format after fork.
            rustix::io::write(fd, b"0").map_err(fail(Step::Cgroup))?;
        }
        if self.new_session {
            rustix::process::setsid().map_err(fail(Step::Setsid))?;
        }
        for (i, (resource, limit)) in self.rlimits.iter().enumerate() {
            rustix::process::setrlimit(*resource, *limit).map_err(fail(Step::Rlimit(i)))?;
        }
        if let Some(n) = self.nice {
            rustix::process::setpriority_process(None, n).map_err(fail(Step::Nice))?;
        }
        if let Some(text) = &self.oom_score_adj {
            let fd = rustix::fs::open(
                c"/proc/self/oom_score_adj",
                OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(fail(Step::OomScoreAdj))?;
            rustix::io::write(&fd, text).map_err(fail(Step::OomScoreAdj))?;
            // Dropping `fd` is close(2).
        }
        if let Some(mask) = self.umask {
            rustix::process::umask(Mode::from_bits_retain(mask));
        }
        if let Some(c) = &self.credentials {
            // After fork the child has a single thread, so the per-thread credential syscalls
            // (what the kernel really has) change the whole process.
            rustix::thread::set_thread_groups(&c.groups).map_err(fail(Step::Groups))?;
            rustix::thread::set_thread_gid(c.gid).map_err(fail(Step::Gid))?;
            rustix::thread::set_thread_uid(c.uid).map_err(fail(Step::Uid))?;
        }
        if self.close_other_fds {
            match cloexec_from(3) {
                Ok(()) => {}
                // Before Linux 5.11 (no close_range, or no CLOSE_RANGE_CLOEXEC): one by one.
                Err(rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL) => cloexec_each(3, self.fd_bound),
                Err(e) => return Err(fail(Step::CloseRange)(e)),
            }
        }
        // Last: dup2 gives fd N without FD_CLOEXEC, so it survives exec.
        for (src, target) in &self.dup_fds {
            dup_to(src, *target)?;
        }
        Ok(())
    }
}

/// `src` at fd number `target`, open across exec (dup2, or clearing FD_CLOEXEC when it is
/// that number already).
pub(super) fn dup_to(src: &OwnedFd, target: i32) -> io::Result<()> {
    if src.as_raw_fd() == target {
        rustix::io::fcntl_setfd(src, rustix::io::FdFlags::empty())?;
    } else {
        // SAFETY: `target` is a plain fd number owned by nobody in this child; dup2 (re)opens
        // it, and `forget` keeps the OwnedFd from closing it again.
        let mut fd = unsafe { OwnedFd::from_raw_fd(target) };
        let r = rustix::io::dup2(src, &mut fd);
        std::mem::forget(fd);
        r?;
    }
    Ok(())
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC): every fd from `first` up is closed at the next
/// exec. Errno-free (`sys::raw`).
pub fn cloexec_from(first: u32) -> Result<(), rustix::io::Errno> {
    super::raw::cloexec_from(first)
}

/// fcntl(fd, F_SETFD, FD_CLOEXEC) for every fd in `first..bound` (those not open fail with
/// EBADF, which is fine): what close_range does in one call on Linux 5.11+. Through rustix,
/// which leaves errno alone.
fn cloexec_each(first: u32, bound: u32) {
    for fd in first..bound {
        let Ok(fd) = libc::c_int::try_from(fd) else {
            return;
        };
        // SAFETY: the borrowed number is used for one fcntl(F_SETFD) only: on a number that is
        // not an open fd it fails with EBADF, on one that is it only sets close-on-exec.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
}

/// Mark every fd from 3 up close-on-exec in this process, with close_range or, before Linux
/// 5.11, one by one (for `holden agent` at start: what it spawns gets only 0, 1 and 2).
pub fn cloexec_inherited() {
    if cloexec_from(3).is_err() {
        cloexec_each(3, fd_bound());
    }
}

/// The bound for `ChildSetup::fd_bound`: this process's RLIMIT_NOFILE soft limit (an fd is
/// always below the limit it was opened under), at most fs.nr_open's ceiling.
pub fn fd_bound() -> u32 {
    const CEILING: u64 = 1 << 30;
    let soft = rustix::process::getrlimit(Resource::Nofile).current.unwrap_or(CEILING);
    u32::try_from(soft.min(CEILING)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fds_are_marked_close_on_exec_one_by_one_or_all_at_once() {
        let open = || rustix::fs::open(c"/dev/null", OFlags::RDONLY, Mode::empty()).expect("open /dev/null");
        let cloexec = |fd: &OwnedFd| {
            rustix::io::fcntl_getfd(fd)
                .expect("getfd")
                .contains(rustix::io::FdFlags::CLOEXEC)
        };
        let a = open();
        assert!(!cloexec(&a));
        let raw = u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&a)).expect("an fd");
        cloexec_each(raw, raw + 1);
        assert!(cloexec(&a));
        let b = open();
        assert!(!cloexec(&b));
        cloexec_inherited();
        assert!(cloexec(&b));
        assert!(fd_bound() > raw);
    }

    #[test]
    fn a_failed_step_travels_as_one_code_and_back() {
        for step in [
            Step::Cgroup,
            Step::Setsid,
            Step::Rlimit(0),
            Step::Rlimit(15),
            Step::Nice,
            Step::OomScoreAdj,
            Step::Groups,
            Step::Gid,
            Step::Uid,
            Step::CloseRange,
        ] {
            let e = fail(step)(rustix::io::Errno::PERM);
            let (got, inner) = failed_step(&e).expect("a step");
            assert_eq!(got, step);
            assert_eq!(inner.raw_os_error(), Some(libc::EPERM));
            assert_eq!(errno(&e), Some(libc::EPERM));
        }
        let plain = io::Error::from_raw_os_error(libc::ENOENT);
        assert!(failed_step(&plain).is_none());
        assert_eq!(errno(&plain), Some(libc::ENOENT));
    }
}

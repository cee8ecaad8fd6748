//! Starting a program without std's `Command`: the program image (argv, environment, the paths
//! execvp would try, working directory, stdio) prepared in the parent, then a `CLONE_VM |
//! CLONE_VFORK` child (`sys::clone`) that resets its signals, takes its stdio, changes directory,
//! runs `sys::exec`'s setup and execs.
//!
//! The outcome travels on a close-on-exec pipe, as with std: end of file when the exec
//! succeeded; else the child writes its error code (an errno, or `sys::exec`'s step-marked code)
//! as 4 bytes and exits 127. `outcome` reads it. With a waited-for child (`CLONE_VFORK`) the
//! pipe is readable when `start` returns; a child that must write a v1 cgroup.procs first is
//! detached (`clone::spawn_detached`, see `start`) and the outcome comes later: the caller
//! watches the pipe, or `outcome` blocks until it comes.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString, c_char, c_int};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::process::Pid;

use super::clone;
use super::exec::ChildSetup;

/// What the child execs, all prepared before the clone: the child allocates nothing.
pub struct Image {
    /// The paths execve is tried on, in order: the command itself when it names a path (has a
    /// '/'), else each directory of the environment's PATH (glibc's "/bin:/usr/bin" without
    /// one) joined with it, as execvp searches.
    paths: Vec<CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    /// execvp's retry of a file without a `#!` line (ENOEXEC): `/bin/sh PATH ARGS...`, with
    /// slot 1 set by the child to the path that failed.
    script: Vec<*const c_char>,
    /// Owns what `argv`, `envp` and `script` point into.
    _strings: Vec<CString>,
    dir: CString,
    /// What the child gets as fds 0, 1 and 2 (a Vec, so that a detached child's can be
    /// taken apart without closing them: `ChildSide`).
    stdio: Vec<OwnedFd>,
}

/// A started child: exec'd, or exited after writing why not to `status`.
#[derive(Debug)]
pub struct Started {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// The read end of the close-on-exec pipe: EOF, or the child's 4-byte error code.
    pub status: OwnedFd,
    /// A child that joins v1 cgroups runs in our memory while we go on: its stack and image,
    /// kept until it has exec'd or exited (`clone::Detached`). None when `start` waited.
    pub detached: Option<clone::Detached>,
}

fn c_string(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte found in provided data"))
}

impl Image {
    /// `argv` (its first element the command, searched for in `env`'s PATH unless it has a '/'),
    /// run in `dir` with exactly `env` and `stdio` as fds 0, 1, 2.
    pub fn new(
        argv: &[impl AsRef<OsStr>],
        env: &BTreeMap<OsString, OsString>,
        dir: &Path,
        stdio: [OwnedFd; 3],
    ) -> io::Result<Image> {
        let command = argv
            .first()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?
            .as_ref();
        let bytes = command.as_bytes();
        let paths = if bytes.contains(&b'/') {
            vec![c_string(command)?]
        } else if bytes.is_empty() {
            Vec::new()
        } else {
            let search = env
                .get(OsStr::new("PATH"))
                .map_or(b"/bin:/usr/bin".as_slice(), |p| p.as_bytes());
            search
                .split(|&b| b == b':')
                .map(|d| {
                    // An empty entry is the working directory.
                    let mut p = d.to_vec();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(bytes);
                    c_string(OsStr::from_bytes(&p))
                })
                .collect::<io::Result<_>>()?
        };
        let mut strings = Vec::with_capacity(argv.len() + env.len() + 1);
        for a in argv {
            strings.push(c_string(a.as_ref())?);
        }
        for (k, v) in env {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            strings.push(c_string(OsStr::from_bytes(&kv))?);
        }
        strings.push(c"/bin/sh".to_owned());
        let ptrs = |r: std::ops::Range<usize>| -> Vec<*const c_char> {
            strings[r]
                .iter()
                .map(|s| s.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        let argv_ptrs = ptrs(0..argv.len());
        let envp = ptrs(argv.len()..argv.len() + env.len());
        let sh = strings[strings.len() - 1].as_ptr();
        let script = [sh, std::ptr::null()]
            .into_iter()
            .chain(argv_ptrs[1..].iter().copied())
            .collect();
        Ok(Image {
            paths,
            argv: argv_ptrs,
            envp,
            script,
            _strings: strings,
            dir: c_string(dir.as_os_str())?,
            stdio: stdio.into(),
        })
    }

    /// In the child: everything up to and including the exec. Returns only on failure, with
    /// the error code to report.
    fn exec_in_child(&mut self, setup: &ChildSetup, placed: bool) -> c_int {
        super::raw::reset_signals();
        let prepared = (|| -> io::Result<()> {
            for (n, fd) in (0..).zip(&self.stdio) {
                super::exec::dup_to(fd, n)?;
            }
            rustix::process::chdir(self.dir.as_c_str())?;
            setup.apply(placed)
        })();
        if let Err(e) = prepared {
            return e.raw_os_error().unwrap_or(libc::EINVAL);
        }
        let mut denied = false;
        let mut last = libc::ENOENT;
        for path in &self.paths {
            let mut err = execve(path.as_ptr(), &self.argv, &self.envp);
            if err == libc::ENOEXEC {
                self.script[1] = path.as_ptr();
                err = execve(self.script[0], &self.script, &self.envp);
            }
            match err {
                libc::EACCES => denied = true,
                // Not here: try the next directory, as execvp does.
                libc::ENOENT | libc::ESTALE | libc::ENOTDIR | libc::ENODEV | libc::ETIMEDOUT => {}
                other => return other,
            }
            last = err;
        }
        if denied { libc::EACCES } else { last }
    }
}

/// execve; returns its errno (it returns only on failure). Errno-free (`sys::raw`).
fn execve(path: *const c_char, argv: &[*const c_char], envp: &[*const c_char]) -> c_int {
    // SAFETY: `path` and the elements of `argv` and `envp` point to NUL-terminated strings
    // owned by the `Image` (alive for the call), and both arrays end with a null pointer.
    unsafe { super::raw::execve(path, argv, envp) }
}

/// Start `image` with `setup` in a new process; the outcome comes on `Started::status` (see
/// `outcome`).
///
/// When the child has no cgroup.procs to write (no cgroups, or only the unified one, which it
/// is created in), this thread waits until it has exec'd (`CLONE_VFORK`): microseconds. When it
/// must write one (a v1 hierarchy on a hybrid or v1 host; clone3 refused; a cgroup that kills
/// its children at birth, below) the write can wait for an RCU grace period (tens of
/// milliseconds, docs/benchmarks.md), so the child is detached (`clone::spawn_detached`): this
/// returns at once and the child migrates and execs while the caller serves others.
pub fn start(image: Image, setup: ChildSetup) -> io::Result<Started> {
    let mut cgroup = setup
        .cgroup2
        .as_ref()
        .map(|c| c.dir.as_fd())
        .filter(|dir| !killed_at_birth_in(*dir));
    let writes =
        !setup.cgroup_procs.is_empty() || (setup.cgroup2.is_some() && (cgroup.is_none() || clone::clone3_refused()));
    if super::raw::DETACHED_SUPPORTED && (writes || force_detached()) {
        return start_detached(image, setup);
    }
    let mut image = image;
    loop {
        let (status, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let mut run = |placed: bool| -> c_int {
            if placed {
                let _ = rustix::io::write(&write, b"+");
            }
            let code = image.exec_in_child(&setup, placed);
            // A pipe write of 4 bytes is atomic: the parent reads all of it or nothing.
            let _ = rustix::io::write(&write, &code.to_ne_bytes());
            127
        };
        let child = clone::vfork(cgroup, &mut run)?;
        // Only the child's copy stays open until its exec: EOF then.
        drop(write);
        if child.placed {
            let mut hello = [0u8; 1];
            if read_some(&status, &mut hello)? == 0 {
                reap(&child.pidfd);
                if let Some(dir) = cgroup.take() {
                    remember_killed_at_birth(dir);
                }
                continue;
            }
        }
        return Ok(Started {
            pid: child.pid,
            pidfd: child.pidfd,
            status,
            detached: None,
        });
    }
}

/// `start` for a child that writes cgroup.procs: detached, joining every hierarchy by the
/// write (never created in a cgroup, so it cannot be killed at birth).
fn start_detached(image: Image, setup: ChildSetup) -> io::Result<Started> {
    let (status, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let done = rustix::io::fcntl_dupfd_cloexec(&status, 0)?;
    let write_fd = write.as_raw_fd();
    let mut side = ChildSide { image, setup };
    let fds = side.fds();
    let job: clone::Job = Box::new(move || {
        let code = side.image.exec_in_child(&side.setup, false);
        // SAFETY: `write_fd` is the pipe's write end in this child's own fd table (a copy of
        // the parent's at the clone, where it was open); the parent closing its copy does not
        // close ours.
        let write = unsafe { BorrowedFd::borrow_raw(write_fd) };
        let _ = rustix::io::write(write, &code.to_ne_bytes());
        127
    });
    let made = clone::spawn_detached(job, done);
    // Only the child's copies stay open until its exec: EOF then, on the status pipe and on
    // the program's stdio (a reader of its output must not wait for holden's copy).
    drop(write);
    for fd in fds {
        // SAFETY: `fd` is one of the image's or setup's fds, open in this process until now;
        // `ChildSide` never closes them (its drop forgets them), so this is their one close,
        // and the child, if made, has its own copies.
        unsafe { rustix::io::close(fd) };
    }
    let (child, detached) = made?;
    Ok(Started {
        pid: child.pid,
        pidfd: child.pidfd,
        status,
        detached: Some(detached),
    })
}

/// What a detached child reads in our memory. Its fds are closed in the parent right after
/// the clone (`start_detached`), so when it is freed they are forgotten, not closed again.
struct ChildSide {
    image: Image,
    setup: ChildSetup,
}

impl ChildSide {
    /// Every fd number the image and setup own.
    fn fds(&self) -> Vec<std::os::fd::RawFd> {
        let setup = &self.setup;
        let cgroup2 = setup.cgroup2.iter().flat_map(|c| [&c.dir, &c.procs]);
        let dup = setup.dup_fds.iter().map(|(fd, _)| fd);
        let stdio = self.image.stdio.iter();
        stdio
            .chain(&setup.cgroup_procs)
            .chain(cgroup2)
            .chain(dup)
            .map(AsRawFd::as_raw_fd)
            .collect()
    }
}

impl Drop for ChildSide {
    fn drop(&mut self) {
        use std::os::fd::IntoRawFd;
        let setup = &mut self.setup;
        let cgroup2 = setup.cgroup2.take().into_iter().flat_map(|c| [c.dir, c.procs]);
        let dup = std::mem::take(&mut setup.dup_fds).into_iter().map(|(fd, _)| fd);
        let stdio = std::mem::take(&mut self.image.stdio);
        for fd in stdio
            .into_iter()
            .chain(std::mem::take(&mut setup.cgroup_procs))
            .chain(cgroup2)
            .chain(dup)
        {
            let _ = fd.into_raw_fd();
        }
    }
}

thread_local! {
    /// Tests take the detached path with this set, with or without cgroups.
    static FORCE_DETACHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn force_detached() -> bool {
    FORCE_DETACHED.with(std::cell::Cell::get)
}

/// Make this thread's spawns detached (`spawn_detached`) even with no cgroup.procs to write.
/// For tests.
#[cfg(test)]
pub fn set_force_detached(on: bool) {
    FORCE_DETACHED.with(|f| f.set(on));
}

/// Cgroup directories (device, inode) whose children created in them are killed at birth.
static KILLED_AT_BIRTH: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

fn dir_id(dir: BorrowedFd<'_>) -> Option<(u64, u64)> {
    rustix::fs::fstat(dir).ok().map(|st| (st.st_dev, st.st_ino))
}

fn killed_at_birth_in(dir: BorrowedFd<'_>) -> bool {
    let list = KILLED_AT_BIRTH.lock().unwrap_or_else(|e| e.into_inner());
    !list.is_empty() && dir_id(dir).is_some_and(|id| list.contains(&id))
}

fn remember_killed_at_birth(dir: BorrowedFd<'_>) {
    log::debug!(
        "a child created in its cgroup (clone3 CLONE_INTO_CGROUP) was killed at birth: the cgroup had a cgroup.kill; its children join it by cgroup.procs from now on"
    );
    if let Some(id) = dir_id(dir) {
        KILLED_AT_BIRTH.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    }
}

/// read(2), again after EINTR.
fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// Read a started child's outcome from its status pipe: `Ok` when it exec'd, else the error
/// (reaped already: the child has exited). Blocks until the outcome is known.
pub fn outcome(started: &Started) -> io::Result<()> {
    let mut code = [0u8; 4];
    let n = read_some(&started.status, &mut code)?;
    if n == 0 {
        return Ok(());
    }
    // The child wrote its code and exits (or has): reap it, as std's spawn does, so that no
    // zombie of a failed spawn is left for the loop to find. Through its pidfd: by pid, a
    // child the loop reaped already could stand for another one.
    reap(&started.pidfd);
    if n < code.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "short error code from the child",
        ));
    }
    Err(io::Error::from_raw_os_error(i32::from_ne_bytes(code)))
}

/// Wait for the process of `pidfd` to exit (it is about to) and reap it; nothing if it was
/// reaped already.
fn reap(pidfd: &OwnedFd) {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    while let Err(rustix::io::Errno::INTR) = poll(&mut fds, None) {}
    let _ = rustix::process::waitid(
        rustix::process::WaitId::PidFd(pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOHANG,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::exec::{Cgroup2, failed_step};
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;

    fn null() -> OwnedFd {
        rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).expect("open /dev/null")
    }

    fn env(path: &str) -> BTreeMap<OsString, OsString> {
        [("PATH", path), ("FOO", "bar baz")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    /// Run `argv` in `dir` with `setup`; (the outcome, what it wrote to stdout).
    fn run(argv: &[&str], dir: &Path, setup: ChildSetup) -> (io::Result<()>, String) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        let image = Image::new(argv, &env("/nonexistent:/usr/bin:/bin"), dir, [null(), w, null()]).expect("image");
        let started = start(image, setup).expect("start");
        let outcome = outcome(&started);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).expect("read");
        if outcome.is_ok() {
            reap(&started.pidfd);
        }
        (outcome, out)
    }

    #[test]
    fn a_started_child_gets_its_argv_environment_directory_and_stdout() {
        let (outcome, out) = run(
            &["sh", "-c", r#"echo "$0 $1 $FOO"; pwd"#, "zero", "one"],
            Path::new("/tmp"),
            ChildSetup::default(),
        );
        outcome.expect("exec'd");
        assert_eq!(out, "zero one bar baz\n/tmp\n");
    }

    #[test]
    fn exec_failures_come_back_with_their_errno() {
        let setup = ChildSetup::default;
        let (e, _) = run(&["/nonexistent/command"], Path::new("/"), setup());
        assert_eq!(e.expect_err("missing").raw_os_error(), Some(libc::ENOENT));
        let (e, _) = run(&["holden-no-such-command"], Path::new("/"), setup());
        assert_eq!(e.expect_err("not on PATH").raw_os_error(), Some(libc::ENOENT));
        let (e, _) = run(&["/etc/passwd"], Path::new("/"), setup());
        assert_eq!(e.expect_err("not executable").raw_os_error(), Some(libc::EACCES));
        let (e, _) = run(&["/bin/true"], Path::new("/nonexistent-dir"), setup());
        assert_eq!(e.expect_err("no directory").raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn a_failed_setup_step_comes_back_as_that_step() {
        // Writing a read-only fd fails: the cgroup step reports EBADF.
        let ro = rustix::fs::open(c"/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).expect("open");
        let setup = ChildSetup {
            cgroup_procs: vec![ro],
            ..ChildSetup::default()
        };
        let (e, _) = run(&["/bin/true"], Path::new("/"), setup);
        let (step, errno) = failed_step(&e.expect_err("the step fails")).expect("a step");
        assert_eq!(step, crate::sys::exec::Step::Cgroup);
        assert_eq!(errno.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn a_script_without_an_interpreter_line_runs_with_sh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("script");
        std::fs::write(&script, "echo from the script \"$1\"\n").expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let (outcome, out) = run(
            &[script.to_str().expect("utf-8"), "arg"],
            dir.path(),
            ChildSetup::default(),
        );
        outcome.expect("exec'd");
        assert_eq!(out, "from the script arg\n");
    }

    #[test]
    fn the_fallback_without_clone3_spawns_and_reports_the_same() {
        clone::force_fallback(true);
        let (outcome, out) = run(&["sh", "-c", "echo fallback"], Path::new("/"), ChildSetup::default());
        let (e, _) = run(&["/nonexistent/command"], Path::new("/"), ChildSetup::default());
        clone::force_fallback(false);
        outcome.expect("exec'd");
        assert_eq!(out, "fallback\n");
        assert_eq!(e.expect_err("missing").raw_os_error(), Some(libc::ENOENT));
    }

    /// The cgroup2 mount point (/sys/fs/cgroup on a pure v2 host, .../unified on a hybrid one).
    fn cgroup2_root() -> Option<std::path::PathBuf> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[2] == "cgroup2")
            .map(|f| f[1].into())
    }

    /// The unified hierarchy's line of /proc/PID/cgroup, run in a child of `setup` by `sh`.
    fn cgroup_of_child(setup: ChildSetup) -> String {
        let (outcome, out) = run(&["sh", "-c", "grep '^0::' /proc/self/cgroup"], Path::new("/"), setup);
        outcome.expect("exec'd");
        out
    }

    #[test]
    fn a_child_is_created_in_its_cgroup2_directory_with_or_without_clone3() {
        let Some(root) = cgroup2_root() else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let dir = root.join(format!("holden-unit-clone-{}", std::process::id()));
        if std::fs::create_dir(&dir).is_err() {
            eprintln!("skipped: cannot create {} (not root?)", dir.display());
            return;
        }
        let setup = || {
            let open = |p: &Path, flags| rustix::fs::open(p, flags | OFlags::CLOEXEC, Mode::empty()).expect("open");
            ChildSetup {
                cgroup2: Some(Cgroup2 {
                    dir: open(&dir, OFlags::RDONLY | OFlags::DIRECTORY),
                    procs: open(&dir.join("cgroup.procs"), OFlags::WRONLY),
                }),
                ..ChildSetup::default()
            }
        };
        let name = dir.file_name().expect("a name").to_str().expect("utf-8").to_string();
        let placed = cgroup_of_child(setup());
        clone::force_fallback(true);
        let written = cgroup_of_child(setup());
        clone::force_fallback(false);
        // After a cgroup.kill, children created in the cgroup die at birth on some kernels:
        // the spawn still succeeds, and lands in the cgroup.
        let killed = std::fs::write(dir.join("cgroup.kill"), "1");
        let after_kill = cgroup_of_child(setup());
        let again = cgroup_of_child(setup());
        let _ = std::fs::remove_dir(&dir);
        for out in [placed, written, after_kill, again] {
            assert!(out.trim_end().ends_with(&format!("/{name}")), "{out}");
        }
        killed.expect("cgroup.kill (Linux 5.14+)");
    }

    /// Every test of the plain path again, with the child detached (`CLONE_VM` without
    /// `CLONE_VFORK`): the same outcomes, the same errors, nothing of ours left in use after.
    #[test]
    fn a_detached_child_runs_and_fails_as_a_waited_for_one_does() {
        set_force_detached(true);
        let (outcome, out) = run(
            &["sh", "-c", r#"echo "$0 $1 $FOO"; pwd"#, "zero", "one"],
            Path::new("/tmp"),
            ChildSetup::default(),
        );
        let (missing, _) = run(&["/nonexistent/command"], Path::new("/"), ChildSetup::default());
        let (denied, _) = run(&["/etc/passwd"], Path::new("/"), ChildSetup::default());
        let (no_dir, _) = run(&["/bin/true"], Path::new("/nonexistent-dir"), ChildSetup::default());
        let ro = rustix::fs::open(c"/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).expect("open");
        let setup = ChildSetup {
            cgroup_procs: vec![ro],
            ..ChildSetup::default()
        };
        let (step, _) = run(&["/bin/true"], Path::new("/"), setup);
        let closing = ChildSetup {
            close_other_fds: true,
            fd_bound: crate::sys::exec::fd_bound(),
            ..ChildSetup::default()
        };
        let (fds, listing) = run(&["ls", "/proc/self/fd"], Path::new("/"), closing);
        set_force_detached(false);
        outcome.expect("exec'd");
        assert_eq!(out, "zero one bar baz\n/tmp\n");
        assert_eq!(missing.expect_err("missing").raw_os_error(), Some(libc::ENOENT));
        assert_eq!(denied.expect_err("not executable").raw_os_error(), Some(libc::EACCES));
        assert_eq!(no_dir.expect_err("no directory").raw_os_error(), Some(libc::ENOENT));
        let (step, errno) = failed_step(&step.expect_err("the step fails")).expect("a step");
        assert_eq!(step, crate::sys::exec::Step::Cgroup);
        assert_eq!(errno.raw_os_error(), Some(libc::EBADF));
        fds.expect("exec'd");
        // 0-2, and the directory ls reads: none of the test process's fds.
        assert_eq!(
            listing.split_whitespace().collect::<Vec<_>>(),
            ["0", "1", "2", "3"],
            "{listing}"
        );
    }

    /// The mount point of the v1 hierarchy with `controller`, if any.
    fn v1_root(controller: &str) -> Option<std::path::PathBuf> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == controller))
            .map(|f| f[1].into())
    }

    #[test]
    fn a_child_joining_a_v1_cgroup_is_detached_and_lands_there_while_the_parent_works_on() {
        let (Some(memory), Some(unified)) = (v1_root("memory"), cgroup2_root()) else {
            eprintln!("skipped: no v1 memory hierarchy with a cgroup2 mount (not a hybrid host)");
            return;
        };
        let name = format!("holden-unit-detached-{}", std::process::id());
        let dirs = [memory.join(&name), unified.join(&name)];
        if dirs.iter().any(|d| std::fs::create_dir(d).is_err()) {
            for d in &dirs {
                let _ = std::fs::remove_dir(d);
            }
            eprintln!("skipped: cannot create the cgroups (not root?)");
            return;
        }
        let open = |p: &Path, flags| rustix::fs::open(p, flags | OFlags::CLOEXEC, Mode::empty()).expect("open");
        let setup = ChildSetup {
            cgroup_procs: vec![open(&dirs[0].join("cgroup.procs"), OFlags::WRONLY)],
            cgroup2: Some(Cgroup2 {
                dir: open(&dirs[1], OFlags::RDONLY | OFlags::DIRECTORY),
                procs: open(&dirs[1].join("cgroup.procs"), OFlags::WRONLY),
            }),
            ..ChildSetup::default()
        };
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        let argv = ["sh", "-c", "grep -e '^0::' -e ':memory:' /proc/self/cgroup"];
        let image = Image::new(&argv, &env("/usr/bin:/bin"), Path::new("/"), [null(), w, null()]).expect("image");
        let started = start(image, setup).expect("start");
        let detached = started.detached.is_some();
        // Other work while that child migrates and execs: a whole second spawn, waited for.
        let (other, other_out) = run(&["echo", "meanwhile"], Path::new("/"), ChildSetup::default());
        let outcome = outcome(&started);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).expect("read");
        reap(&started.pidfd);
        let done = started.detached.as_ref().is_some_and(clone::Detached::done);
        drop(started);
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        assert!(detached, "a v1 cgroup.procs to write: the child is detached");
        other.expect("the other spawn exec'd");
        assert_eq!(other_out, "meanwhile\n");
        outcome.expect("exec'd");
        assert!(done, "exec'd: the child no longer uses our memory");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        for line in lines {
            assert!(line.ends_with(&format!("/{name}")), "{out}");
        }
    }
}

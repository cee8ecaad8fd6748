//! Spawning a program's main process.
//!
//! Everything is prepared before the child is made: argv, environment, the paths to try, the
//! working directory, credentials, the cgroup fds and stdio (`sys::image::Image`,
//! `sys::exec::ChildSetup`). The child is a `CLONE_VM | CLONE_VFORK` clone on its own stack
//! (`sys::clone`): holden's page tables are not copied, however big it has grown, and it waits
//! only until the child has exec'd. Where the program's cgroup is on the unified (v2)
//! hierarchy the child is created in it (`CLONE_INTO_CGROUP`); cgroup.procs writes remain for
//! v1 hierarchies, and everywhere clone3 is refused (then holden does not wait: below).
//!
//! `start` returns a `Pending` child at once; its `exec_status` fd turns readable when the exec
//! outcome is known. The supervisor watches it in its event loop and reads it with
//! `exec_outcome`, which never waits; `finish` waits for it. Both say what failed in the same
//! sentences. `spawn` does `start` and `finish`. Without v1 cgroups to join (cgroups off, a pure
//! v2 host) the outcome is known by the time `start` returns (CLONE_VFORK: microseconds). On a
//! v1 or hybrid host the child's cgroup.procs write can wait an RCU grace period (tens of ms):
//! there `start` does not wait for the child (`Pending::in_flight`), which migrates and execs
//! while holden serves the rest, and the outcome arrives later on `exec_status`.
//!
//! Race: the pidfd comes from clone3 itself, or from `pidfd_open(pid)` right after the clone,
//! which is safe only because every child of holden is reaped by the event loop's one thread
//! (`reap::reap_all`), never concurrently: until that reap, the pid is at worst a zombie and
//! cannot be reused.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};

use rustix::process::{Resource, Rlimit};

use crate::config::Program;
use crate::sys::exec::{self, Cgroup2, ChildSetup, Step};
use crate::sys::image::{self, Image, Started};

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

/// A freshly spawned main process, exec'd: what `spawn` and `finish`, which wait for the exec,
/// return (tests use them; the supervisor reads the outcome in its loop, `exec_outcome`).
#[derive(Debug)]
#[allow(dead_code)]
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// A child made, its exec outcome not read yet.
#[derive(Debug)]
pub struct Pending {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Readable once the outcome is known: end of file when the program was exec'd, else the
    /// child's error code. Close-on-exec, blocking.
    pub exec_status: OwnedFd,
    /// On hybrid and v1 hosts the child joins its v1 cgroups while holden goes on, in holden's
    /// memory: this keeps what it uses there (its stack, the prepared image) until it has
    /// exec'd or exited. Keep it until `exec_status` gave the outcome; dropped sooner, it is
    /// kept aside and freed later, never while the child uses it. None when `start` waited
    /// for the exec (no cgroup.procs to write: cgroups off, or a pure v2 host).
    pub in_flight: Option<crate::sys::clone::Detached>,
}

/// What a spawn adds for readiness: `NOTIFY_SOCKET`, the notification fd.
#[derive(Debug, Default)]
pub struct Extra {
    pub env: Vec<(String, String)>,
    /// (source, the fd number the program gets it at).
    pub fds: Vec<(OwnedFd, i32)>,
}

/// Spawn `program` with `stdout`/`stderr` (None: /dev/null), joining the cgroups whose
/// `cgroup.procs` are given; waits for the exec.
#[cfg_attr(not(test), allow(dead_code))]
pub fn spawn(
    program: &Program,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    cgroup_procs: Vec<OwnedFd>,
) -> Result<Spawned, SpawnError> {
    start(program, stdout, stderr, cgroup_procs, Extra::default())?.finish(program)
}

/// Make the child of `program` and return without reading its exec outcome; errors here are
/// those found before the child exists (user lookup, fds, clone).
pub fn start(
    program: &Program,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    cgroup_procs: Vec<OwnedFd>,
    extra: Extra,
) -> Result<Pending, SpawnError> {
    let identity =
        users::resolve(program.user.as_deref(), program.group.as_deref()).map_err(|reason| SpawnError::Exec {
            command: program.command[0].clone(),
            reason,
        })?;

    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    let mut set = |k: &str, v: &str| {
        env.insert(k.into(), v.into());
    };
    if let Some(id) = &identity {
        // What login(1) would set, so that programs find their own files; the config's
        // environment still overrides.
        set("USER", &id.name);
        set("LOGNAME", &id.name);
        if let Some(home) = &id.home {
            set("HOME", home);
        }
    }
    for (k, v) in &program.environment {
        set(k, v);
    }
    // Set last: the config's environment does not override them.
    for (k, v) in program.holden_env() {
        set(k, &v);
    }
    for (k, v) in &extra.env {
        set(k, v);
    }

    let io_error = |e: std::io::Error| error(program, &e);
    let null = || {
        rustix::fs::open(
            c"/dev/null",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
    };
    let stdio = [
        null().map_err(|e| io_error(e.into()))?,
        stdout.map_or_else(null, Ok).map_err(|e| io_error(e.into()))?,
        stderr.map_or_else(null, Ok).map_err(|e| io_error(e.into()))?,
    ];
    let image = Image::new(&program.command, &env, &program.directory, stdio).map_err(io_error)?;
    let (cgroup2, cgroup_procs) = split_cgroup2(cgroup_procs);
    let setup = ChildSetup {
        cgroup_procs,
        cgroup2,
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
            // holden raised its own soft open files limit: the program gets the one holden was
            // started with, unless its rlimits say otherwise. Last, so that a failed step's
            // index still names the config's entry.
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
    };
    let started = image::start(image, setup).map_err(io_error)?;
    Ok(Pending {
        pid: started.pid.as_raw_nonzero().get(),
        pidfd: started.pidfd,
        exec_status: started.status,
        in_flight: started.detached,
    })
}

impl Pending {
    /// Read the exec outcome (blocks until `exec_status` is readable) and turn it into the
    /// spawn's result: the program runs, or the error says why not, in today's words.
    pub fn finish(self, program: &Program) -> Result<Spawned, SpawnError> {
        let Pending {
            pid,
            pidfd,
            exec_status,
            in_flight,
        } = self;
        let started = Started {
            pid: rustix::process::Pid::from_raw(pid).expect("a spawned pid is positive"),
            pidfd,
            status: exec_status,
            detached: in_flight,
        };
        match image::outcome(&started) {
            Ok(()) => Ok(Spawned {
                pid,
                pidfd: started.pidfd,
            }),
            Err(e) => Err(error(program, &e)),
        }
    }
}

/// What the `exec_status` of a child made by `start` says now.
#[derive(Debug)]
pub enum ExecOutcome {
    /// Not known yet: the fd is not readable.
    NotYet,
    /// It exec'd: the program runs.
    Ran,
    /// It could not (it exits, or has): why, in the words `finish` would use.
    Failed(SpawnError),
}

/// Look at the exec outcome of `program`'s child without waiting for it (the event loop calls
/// this when `exec_status` is readable, or once right after `start`). The failed child is not
/// reaped here: it is the loop's child like any other.
pub fn exec_outcome(program: &Program, exec_status: &OwnedFd) -> ExecOutcome {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(exec_status, PollFlags::IN)];
    let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    loop {
        match poll(&mut fds, Some(&zero)) {
            Ok(0) => return ExecOutcome::NotYet,
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return ExecOutcome::Failed(error(program, &e.into())),
        }
    }
    let mut code = [0u8; 4];
    let n = loop {
        match rustix::io::read(exec_status, &mut code) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return ExecOutcome::NotYet,
            Err(e) => return ExecOutcome::Failed(error(program, &e.into())),
            Ok(n) => break n,
        }
    };
    match n {
        0 => ExecOutcome::Ran,
        // A pipe write of 4 bytes is atomic: all of it or nothing.
        4 => ExecOutcome::Failed(error(
            program,
            &std::io::Error::from_raw_os_error(i32::from_ne_bytes(code)),
        )),
        _ => ExecOutcome::Failed(error(
            program,
            &std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short error code from the child"),
        )),
    }
}

/// What `e`, from making the child or from the child itself, means for `program`.
fn error(program: &Program, e: &std::io::Error) -> SpawnError {
    let command = program.command[0].clone();
    let reason = match exec::failed_step(e) {
        Some((step, errno)) => step_text(program, step, &errno),
        None => crate::error::os_text(e),
    };
    match exec::errno(e).map(rustix::io::Errno::from_raw_os_error) {
        Some(
            rustix::io::Errno::AGAIN | rustix::io::Errno::NOMEM | rustix::io::Errno::MFILE | rustix::io::Errno::NFILE,
        ) => SpawnError::Resources { command, reason },
        // The child's chdir and exec both report ENOENT, EACCES, ENOTDIR: the working
        // directory is named when it is the one at fault.
        _ => SpawnError::Exec {
            command,
            reason: directory_fault(&program.directory).unwrap_or(reason),
        },
    }
}

/// The cgroup.procs file of the unified (cgroup2) hierarchy among `procs`, with its directory
/// opened for CLONE_INTO_CGROUP; the others (v1) are joined by writing. Found by the file
/// system each fd is on: the supervisor hands over only the procs files.
fn split_cgroup2(procs: Vec<OwnedFd>) -> (Option<Cgroup2>, Vec<OwnedFd>) {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let mut cgroup2 = None;
    let mut rest = Vec::with_capacity(procs.len());
    for fd in procs {
        let on_v2 = rustix::fs::fstatfs(&fd).is_ok_and(|s| s.f_type == CGROUP2_SUPER_MAGIC);
        if cgroup2.is_none()
            && on_v2
            && let Some(dir) = cgroup2_dir(&fd)
        {
            cgroup2 = Some(Cgroup2 { dir, procs: fd });
        } else {
            rest.push(fd);
        }
    }
    (cgroup2, rest)
}

/// The directory of an open `cgroup.procs`, opened (through /proc/self/fd: a file fd has no
/// parent to open relative to).
fn cgroup2_dir(procs: &OwnedFd) -> Option<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = std::fs::read_link(format!("/proc/self/fd/{}", procs.as_fd().as_raw_fd())).ok()?;
    let dir = path.parent()?;
    rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
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

    fn program(command: &[&str]) -> Program {
        Program::with_defaults(
            "t",
            command.iter().map(|s| s.to_string()).collect(),
            std::path::Path::new("/"),
        )
    }

    #[test]
    fn a_pending_spawn_returns_before_its_outcome_is_read_and_finishes_running() {
        let p = program(&["sleep", "30"]);
        let pending = start(&p, None, None, Vec::new(), Extra::default()).expect("start");
        let pidfd = pending.pidfd.try_clone().expect("dup pidfd");
        let spawned = pending.finish(&p).expect("exec'd");
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", spawned.pid)).expect("stat");
        rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL).expect("kill");
        let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, None).expect("poll");
        let status = rustix::process::waitid(
            rustix::process::WaitId::PidFd(pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        )
        .expect("waitid")
        .expect("a status");
        assert!(stat.contains("(sleep)"), "{stat}");
        assert_eq!(status.terminating_signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_command_that_cannot_run_fails_at_finish_with_the_same_sentence() {
        let p = program(&["/nonexistent/holden-command"]);
        let pending = start(&p, None, None, Vec::new(), Extra::default()).expect("the child is made");
        let e = pending.finish(&p).expect_err("no such command");
        assert!(!e.retryable());
        assert_eq!(
            e.to_string(),
            "cannot spawn /nonexistent/holden-command: no such file or directory"
        );
        let e = spawn(&p, None, None, Vec::new()).expect_err("the blocking wrapper says the same");
        assert_eq!(
            e.to_string(),
            "cannot spawn /nonexistent/holden-command: no such file or directory"
        );
        let mut p = program(&["/bin/true"]);
        p.directory = "/nonexistent-holden-dir".into();
        let e = spawn(&p, None, None, Vec::new()).expect_err("no working directory");
        assert_eq!(
            e.to_string(),
            "cannot spawn /bin/true: working directory /nonexistent-holden-dir: no such file or directory"
        );
    }

    #[test]
    fn the_exec_outcome_is_read_without_waiting() {
        let p = program(&["sleep", "30"]);
        let pending = start(&p, None, None, Vec::new(), Extra::default()).expect("start");
        // With CLONE_VFORK it is known at once; without, within the child's setup.
        let mut fds = [rustix::event::PollFd::new(
            &pending.exec_status,
            rustix::event::PollFlags::IN,
        )];
        rustix::event::poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 5, tv_nsec: 0 })).expect("poll");
        assert!(matches!(exec_outcome(&p, &pending.exec_status), ExecOutcome::Ran));
        rustix::process::pidfd_send_signal(&pending.pidfd, rustix::process::Signal::KILL).expect("kill");
        let mut fds = [rustix::event::PollFd::new(&pending.pidfd, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, None).expect("poll");
        let _ = rustix::process::waitid(
            rustix::process::WaitId::PidFd(pending.pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        );

        let p = program(&["/nonexistent/holden-command"]);
        let pending = start(&p, None, None, Vec::new(), Extra::default()).expect("the child is made");
        let mut fds = [rustix::event::PollFd::new(
            &pending.exec_status,
            rustix::event::PollFlags::IN,
        )];
        rustix::event::poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 5, tv_nsec: 0 })).expect("poll");
        match exec_outcome(&p, &pending.exec_status) {
            ExecOutcome::Failed(e) => {
                assert!(!e.retryable());
                assert_eq!(
                    e.to_string(),
                    "cannot spawn /nonexistent/holden-command: no such file or directory"
                );
            }
            other => panic!("{other:?}"),
        }
        // Not reaped by the look: the caller's child, reaped here (unless a test that reaps
        // every child of this process, running at the same time, got it first).
        let _ = rustix::process::waitid(
            rustix::process::WaitId::PidFd(pending.pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        );

        let (read, _write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        assert!(
            matches!(exec_outcome(&p, &read), ExecOutcome::NotYet),
            "nothing written, not closed"
        );
    }

    #[test]
    fn a_failed_step_names_the_setting() {
        let mut p = program(&["/bin/true"]);
        // Above the hard limit of fs.nr_open: refused even to root.
        p.rlimits = vec![crate::config::Rlimit {
            name: "nofile",
            soft: Some(1 << 40),
            hard: Some(1 << 40),
        }];
        let e = spawn(&p, None, None, Vec::new()).expect_err("refused");
        assert!(
            e.to_string()
                .starts_with("cannot spawn /bin/true: the kernel refused rlimits.nofile = { soft = 1099511627776"),
            "{e}"
        );
    }

    #[test]
    fn every_limit_name_of_the_config_has_its_resource() {
        let all: Vec<Resource> = crate::config::RLIMITS.iter().map(|(name, _)| resource(name)).collect();
        assert_eq!(all.len(), 16);
        assert_eq!(resource("nofile"), Resource::Nofile);
        assert_eq!(resource("as"), Resource::As);
    }
}

//! The library on the host's real hierarchies (hybrid here), as root. Each test owns a unique
//! `/holden-test-<pid>-k<n>` and removes it when done, also when it fails.

use super::*;
use crate::reactor::{Interest, Owner, Reactor, Token};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Not root: say so, and count the skip where test.sh counts the integration tests' ones
/// (`holden-skips.txt` in the target dir, see tests/integration/harness.rs).
fn root_or_skip(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        use std::io::Write;
        eprintln!("SKIP {test}: needs root to create cgroups");
        let root_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root_dir.join("target"), |d| root_dir.join(d));
        let _ = std::fs::create_dir_all(&target);
        let line = format!("cgroup::tests::{test}: needs root to create cgroups\n");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(target.join("holden-skips.txt"))
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .expect("record the skip in holden-skips.txt");
    }
    root
}

/// A unique cgroup path, removed with everything in it from every hierarchy on drop.
struct TestPath {
    path: String,
    /// Extra directories to remove (a relative path's place below holden's own cgroup).
    extra: Vec<PathBuf>,
}

impl TestPath {
    fn new() -> TestPath {
        static N: AtomicU32 = AtomicU32::new(0);
        TestPath {
            path: format!(
                "/holden-test-{}-k{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
            extra: Vec::new(),
        }
    }

    fn setup(&self) -> Cgroups {
        Cgroups::setup(CgroupMode::Required, &self.path)
            .unwrap()
            .expect("Required gives cgroups or an error")
    }
}

impl Drop for TestPath {
    fn drop(&mut self) {
        let mut dirs = self.extra.clone();
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                dirs.push(e.path().join(self.path.trim_start_matches('/')));
            }
        }
        for d in dirs.iter().filter(|d| d.is_dir()) {
            remove_tree(d);
        }
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::remove_dir(dir).is_err() && Instant::now() < deadline {
        let mut pids = BTreeSet::new();
        procs_below(dir, &mut pids);
        for p in pids.into_iter().filter_map(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// `sh -c SCRIPT`, held at a `read` until `go` so that it can be moved first.
    fn gated(script: &str) -> (Proc, ChildStdin) {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        (Proc(child), stdin)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for(timeout, "the child to exit", || {
            self.0.try_wait().unwrap().ok_or("still running".to_string())
        })
    }
}

fn go(stdin: &mut ChildStdin) {
    stdin.write_all(b"go\n").unwrap();
}

/// Move `pid` into every hierarchy through `procs_files`, as the forked child does with "0".
fn move_in(pg: &ProgramCgroup, pid: i32) {
    for fd in pg.procs_files().unwrap() {
        rustix::io::write(&fd, pid.to_string().as_bytes()).unwrap();
    }
}

/// SIGKILL every process of `pg` as the supervisor does: `cgroup.kill`, or the fallback's job
/// stepped to its end.
fn kill(pg: &ProgramCgroup) {
    if let Some(job) = pg.kill_all(Instant::now()).unwrap() {
        job.finish();
    }
}

/// Step `job` to its end as the supervisor's loop does: an epoll wait on `events` (EPOLLPRI,
/// re-read after each wakeup) until the instant each step asks for. Returns the rounds it took.
fn drive(mut job: KillJob, events: Option<&File>) -> u32 {
    let mut reactor = Reactor::new().unwrap();
    if let Some(e) = events {
        reactor
            .add(e.as_fd(), Token::new(Owner::Supervisor, 1), Interest::Priority)
            .unwrap();
    }
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match job.step(Instant::now()) {
            Step::Done => return job.rounds(),
            Step::Again(at) => {
                assert!(Instant::now() < give_up, "the job has not ended after 10 s");
                let ready = reactor.wait(Some(at)).unwrap();
                if let Some(e) = events.filter(|_| ready.iter().any(|r| r.priority)) {
                    ProgramCgroup::events_populated(e);
                }
            }
        }
    }
}

fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[test]
fn kernel_limits_are_written_to_the_files_and_read_back() {
    if !root_or_skip("kernel_limits_are_written_to_the_files_and_read_back") {
        return;
    }
    let tp = TestPath::new();
    let cg = tp.setup();
    let (pg, killed) = cg.program("lim").unwrap();
    assert_eq!(killed, 0);
    pg.set_limits(Some(64 << 20), Some(0.5), Some(20)).unwrap();
    let want = Limits {
        memory: Some(64 << 20),
        cpu: Some(0.5),
        pids: Some(20),
    };
    assert_eq!(pg.limits(), want);
    match cg.layout() {
        Layout::V2 => {
            let d = cg.parent_path().join("lim");
            assert_eq!(fs::read_to_string(d.join("cpu.max")).unwrap(), "50000 100000\n");
        }
        Layout::Hybrid | Layout::V1 => {
            let cpu = Path::new("/sys/fs/cgroup/cpu").join(&tp.path[1..]).join("lim");
            assert_eq!(fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap(), "50000\n");
            let mem = pg.path().join("memory.limit_in_bytes");
            assert_eq!(fs::read_to_string(mem).unwrap(), "67108864\n");
        }
    }
    pg.set_limits(None, None, None).unwrap();
    assert_eq!(pg.limits(), Limits::default());
    pg.remove().unwrap();
    cg.cleanup();
    assert!(!cg.parent_path().exists(), "cleanup removes the empty parent");
}

#[test]
fn kernel_a_process_put_in_by_procs_files_is_killed_and_the_events_file_says_so() {
    if !root_or_skip("kernel_a_process_put_in_by_procs_files_is_killed_and_the_events_file_says_so") {
        return;
    }
    let tp = TestPath::new();
    let cg = tp.setup();
    let (pg, _) = cg.program("ev").unwrap();
    let events = pg.events_file().expect("a cgroup2 directory exists on this host");
    let mut reactor = Reactor::new().unwrap();
    reactor
        .add(events.as_fd(), Token::new(Owner::Supervisor, 1), Interest::Priority)
        .unwrap();
    assert_eq!(ProgramCgroup::events_populated(&events), Some(false));
    assert!(!pg.populated());

    let (mut child, _stdin) = Proc::gated("sleep 30");
    move_in(&pg, child.pid());
    let own = fs::read_to_string(format!("/proc/{}/cgroup", child.pid())).unwrap();
    for hier in ["memory", "pids", ":cpu:", "0::"] {
        let line = own.lines().find(|l| l.contains(hier)).unwrap_or_default();
        assert!(line.ends_with(&format!("{}/ev", tp.path)), "{hier}: {own}");
    }
    assert!(pg.populated());
    assert_eq!(pg.pids(), vec![child.pid()]);
    // populated flipped to 1: EPOLLPRI, and re-reading clears it.
    let ready = reactor.wait(Some(Instant::now() + Duration::from_secs(5))).unwrap();
    assert!(ready.iter().any(|r| r.priority), "{ready:?}");
    assert_eq!(ProgramCgroup::events_populated(&events), Some(true));
    let again = reactor.wait(Some(Instant::now() + Duration::from_millis(50))).unwrap();
    assert!(again.is_empty(), "a read re-arms the kernfs file: {again:?}");
    let usage = pg.usage();
    assert!(
        usage.memory_bytes.is_some() && usage.cpu_usage_usec.is_some(),
        "{usage:?}"
    );

    kill(&pg);
    let ready = reactor.wait(Some(Instant::now() + Duration::from_secs(5))).unwrap();
    assert!(ready.iter().any(|r| r.priority), "{ready:?}");
    assert_eq!(ProgramCgroup::events_populated(&events), Some(false));
    assert!(!pg.populated());
    assert_eq!(child.wait_exit(Duration::from_secs(5)).signal(), Some(9));
    pg.remove().unwrap();
    cg.cleanup();
}

#[test]
fn kernel_usage_read_through_the_kept_files_grows_as_the_program_allocates_and_runs() {
    if !root_or_skip("kernel_usage_read_through_the_kept_files_grows_as_the_program_allocates_and_runs") {
        return;
    }
    let tp = TestPath::new();
    let cg = tp.setup();
    let (pg, _) = cg.program("use").unwrap();
    // The shell holds ~24 MB of output in memory, then waits; producing it costs CPU time.
    let (mut child, mut stdin) = Proc::gated("x=$(head -c 24000000 /dev/zero | tr '\\0' a); read done");
    move_in(&pg, child.pid());
    let before = pg.usage();
    let (mem0, cpu0) = (before.memory_bytes.unwrap(), before.cpu_usage_usec.unwrap());
    go(&mut stdin);
    let after = wait_for(Duration::from_secs(20), "memory to grow by 20 MB", || {
        let u = pg.usage();
        match u.memory_bytes {
            Some(m) if m >= mem0 + 20_000_000 => Ok(u),
            _ => Err(format!("{u:?}, before {before:?}")),
        }
    });
    assert!(after.cpu_usage_usec.unwrap() > cpu0, "{after:?} vs {before:?}");
    assert_eq!(pg.usage.kept(), 2, "both files are kept open under the fd budget");
    // Past the fd budget the same values are read by path.
    let by_path = UsageFiles::open(cg.layout(), &pg.dirs, 0);
    assert_eq!(by_path.kept(), 0);
    let u = by_path.read();
    assert!(
        u.memory_bytes.unwrap() >= mem0 + 20_000_000 && u.cpu_usage_usec.unwrap() > cpu0,
        "{u:?}"
    );
    // A fresh open of the same file says the same as the kept fd, once the shell waits.
    let fresh = || {
        let file = match cg.layout() {
            Layout::V2 => pg.path().join(v2::MEMORY_CURRENT),
            Layout::Hybrid | Layout::V1 => pg.path().join(v1::MEMORY_USAGE),
        };
        fs::read_to_string(file).unwrap().trim().parse::<u64>().unwrap()
    };
    wait_for(Duration::from_secs(5), "the kept fd to agree with a fresh open", || {
        let (kept, now) = (pg.usage().memory_bytes, fresh());
        if kept == Some(now) && kept == pg.usage().memory_bytes {
            Ok(())
        } else {
            Err(format!("kept {kept:?}, fresh {now}"))
        }
    });

    go(&mut stdin);
    child.wait_exit(Duration::from_secs(5));
    wait_for(Duration::from_secs(5), "the cgroup to empty", || {
        if pg.populated() {
            Err("populated".into())
        } else {
            Ok(())
        }
    });
    pg.remove().unwrap();
    assert_eq!(
        pg.usage(),
        Usage::default(),
        "a removed cgroup's kept files read nothing"
    );
    cg.cleanup();
}

#[test]
fn kernel_signal_all_reaches_children_of_the_program() {
    if !root_or_skip("kernel_signal_all_reaches_children_of_the_program") {
        return;
    }
    let tp = TestPath::new();
    let cg = tp.setup();
    let (pg, _) = cg.program("sig").unwrap();
    let (mut child, mut stdin) = Proc::gated("sleep 30 & sleep 30 & wait");
    move_in(&pg, child.pid());
    go(&mut stdin);
    wait_for(Duration::from_secs(5), "sh and two sleeps", || {
        let pids = pg.pids();
        (pids.len() == 3).then_some(()).ok_or(format!("{pids:?}"))
    });
    assert_eq!(pg.signal_all(15), 3);
    wait_for(Duration::from_secs(5), "an empty cgroup", || {
        (!pg.populated()).then_some(()).ok_or(format!("{:?}", pg.pids()))
    });
    assert_eq!(child.wait_exit(Duration::from_secs(5)).signal(), Some(15));
    cg.cleanup();
}

/// A shell that ignores SIGTERM (as its children do: SIG_IGN survives exec) and forks sleeps
/// as fast as it can, in `pg`, which bounds it at 40 processes should the kill fail.
fn fork_loop(pg: &ProgramCgroup) -> Proc {
    pg.set_limits(None, None, Some(40)).unwrap();
    let (child, mut stdin) = Proc::gated("trap '' TERM; while :; do sleep 30 & done");
    move_in(pg, child.pid());
    go(&mut stdin);
    wait_for(Duration::from_secs(5), "a few sleeps", || {
        let n = pg.pids().len();
        (n >= 5).then_some(()).ok_or(format!("{n} pids"))
    });
    assert!(pg.signal_all(15) >= 5, "SIGTERM reaches them, and is ignored");
    child
}

#[test]
fn kernel_a_kill_job_without_cgroup_kill_empties_a_forking_program_that_ignores_sigterm() {
    if !root_or_skip("kernel_a_kill_job_without_cgroup_kill_empties_a_forking_program_that_ignores_sigterm") {
        return;
    }
    let tp = TestPath::new();
    let cg = tp.setup();
    let (pg, _) = cg.program("fork").unwrap();
    let mut child = fork_loop(&pg);
    let events = pg.events_file();
    let job = pg
        .kill_all_with(false, Instant::now())
        .unwrap()
        .expect("the fallback is a job");
    assert!(drive(job, events.as_ref()) >= 1, "at least one round froze and killed");
    // The job ended because a round found nobody: nothing is left, and nothing is frozen.
    wait_for(Duration::from_secs(5), "an empty cgroup", || {
        (!pg.populated()).then_some(()).ok_or(format!("{:?}", pg.pids()))
    });
    if let Some(u) = &pg.dirs.unified {
        assert_eq!(fs::read_to_string(u.join(v2::CGROUP_FREEZE)).unwrap().trim(), "0");
    }
    // The shell is gone with its sleeps (killed, or ended by a fork refused at pids.max).
    child.wait_exit(Duration::from_secs(5));
    cg.cleanup();
}

#[test]
fn kernel_a_kill_job_with_the_v1_freezer_empties_a_forking_program() {
    let test = "kernel_a_kill_job_with_the_v1_freezer_empties_a_forking_program";
    if !root_or_skip(test) {
        return;
    }
    let freezer = Path::new("/sys/fs/cgroup").join(detect::V1_FREEZER);
    let pids = Path::new("/sys/fs/cgroup/pids");
    if !freezer.join(v1::CGROUP_PROCS).exists() || !pids.join(v1::CGROUP_PROCS).exists() {
        eprintln!("SKIP {test}: needs the v1 freezer and pids hierarchies");
        return;
    }
    // A pure v1 host's program cgroup: no cgroup2 directory, so the v1 freezer is used.
    let tp = TestPath::new();
    let rel = Path::new(&tp.path[1..]).join("v1");
    let dirs = Dirs {
        unified: None,
        v1: vec![
            (freezer.join(&rel), vec![detect::V1_FREEZER.to_string()]),
            (pids.join(&rel), vec!["pids".to_string()]),
        ],
    };
    for (d, _) in &dirs.v1 {
        fs::create_dir_all(d).unwrap();
    }
    let pg = ProgramCgroup {
        layout: Layout::V1,
        usage: Rc::new(UsageFiles::open(Layout::V1, &Dirs::default(), 0)),
        dirs,
        cgroup_kill: true,
    };
    let mut child = fork_loop(&pg);
    let job = pg
        .kill_all(Instant::now())
        .unwrap()
        .expect("no cgroup2 directory: a job");
    assert!(drive(job, None) >= 1, "at least one round froze and killed");
    wait_for(Duration::from_secs(5), "an empty cgroup", || {
        (!pg.populated()).then_some(()).ok_or(format!("{:?}", pg.pids()))
    });
    let state = fs::read_to_string(freezer.join(&rel).join(v1::FREEZER_STATE)).unwrap();
    assert_eq!(state.trim(), "THAWED");
    child.wait_exit(Duration::from_secs(5));
}

#[test]
fn kernel_cgroup_events_tells_by_epollpri_when_a_freeze_has_taken_hold() {
    if !root_or_skip("kernel_cgroup_events_tells_by_epollpri_when_a_freeze_has_taken_hold") {
        return;
    }
    let tp = TestPath::new();
    let cg = tp.setup();
    let (pg, _) = cg.program("ice").unwrap();
    let (_child, _stdin) = {
        let (child, stdin) = Proc::gated("sleep 30");
        move_in(&pg, child.pid());
        (child, stdin)
    };
    let events = pg.events_file().expect("a cgroup2 directory exists on this host");
    let mut reactor = Reactor::new().unwrap();
    reactor
        .add(events.as_fd(), Token::new(Owner::Supervisor, 1), Interest::Priority)
        .unwrap();
    // Registered before the freeze: the change to "frozen 1" must come as a readiness.
    ProgramCgroup::events_populated(&events);
    let freeze = pg.dirs.unified.as_ref().unwrap().join(v2::CGROUP_FREEZE);
    fs::write(&freeze, "1").unwrap();
    let frozen = || {
        let mut buf = [0u8; 256];
        let n = events.read_at(&mut buf, 0).unwrap();
        v2::keyed(std::str::from_utf8(&buf[..n]).unwrap(), "frozen") == Some(1)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut woken = 0;
    while !frozen() {
        assert!(Instant::now() < deadline, "not frozen after 5 s ({woken} wakeups)");
        let ready = reactor.wait(Some(deadline)).unwrap();
        woken += ready.iter().filter(|r| r.priority).count();
    }
    if woken == 0 {
        // Frozen before the first wait: the readiness is pending all the same.
        let ready = reactor.wait(Some(Instant::now() + Duration::from_secs(5))).unwrap();
        woken += ready.iter().filter(|r| r.priority).count();
    }
    assert!(woken >= 1, "the freeze was told by EPOLLPRI");
    fs::write(&freeze, "0").unwrap();
    kill(&pg);
    cg.cleanup();
}

#[test]
fn kernel_oom_kills_grow_when_a_process_exceeds_its_memory_limit() {
    if !root_or_skip("kernel_oom_kills_grow_when_a_process_exceeds_its_memory_limit") {
        return;
    }
    let tp = TestPath::new();
    let cg = tp.setup();
    let (pg, _) = cg.program("oom").unwrap();
    pg.set_limits(Some(20 << 20), None, None).unwrap();
    assert_eq!(pg.oom_kills(), Some(0));
    let (mut child, mut stdin) = Proc::gated("x=a; while :; do x=$x$x; done");
    move_in(&pg, child.pid());
    go(&mut stdin);
    let st = child.wait_exit(Duration::from_secs(30));
    assert_eq!(st.signal(), Some(9), "{st:?}");
    assert!(pg.oom_kills().unwrap_or(0) >= 1, "{:?}", pg.oom_kills());
    cg.cleanup();
}

#[test]
fn kernel_a_memory_limit_below_usage_is_refused_with_the_errno() {
    if !root_or_skip("kernel_a_memory_limit_below_usage_is_refused_with_the_errno") {
        return;
    }
    let tp = TestPath::new();
    let cg = tp.setup();
    if cg.layout() == Layout::V2 {
        eprintln!("SKIP: v2 memory.max accepts a limit below usage (it reclaims or OOM-kills)");
        return;
    }
    let (pg, _) = cg.program("big").unwrap();
    pg.set_limits(Some(100 << 20), None, None).unwrap();
    // The shell holds 20 MB in a variable while it waits for its `sleep`.
    let (child, mut stdin) = Proc::gated("x=$(head -c 20000000 /dev/zero | tr '\\0' a); sleep 30");
    move_in(&pg, child.pid());
    go(&mut stdin);
    wait_for(Duration::from_secs(10), "20 MB held by sh and its sleep", || {
        let used = pg.usage().memory_bytes.unwrap_or(0);
        let n = pg.pids().len();
        (used >= 15_000_000 && n == 2)
            .then_some(())
            .ok_or(format!("{used} bytes, {n} processes"))
    });
    let err = pg.set_limits(Some(1 << 20), None, None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("memory.limit_in_bytes")
            && text.contains("device or resource busy")
            && text.contains("raise memory_limit"),
        "{text}"
    );
    assert_eq!(pg.limits().memory, Some(100 << 20), "the old limit stays");
    kill(&pg);
    cg.cleanup();
}

#[test]
fn kernel_program_counts_the_leftovers_of_an_earlier_holden_and_kill_all_ends_them() {
    if !root_or_skip("kernel_program_counts_the_leftovers_of_an_earlier_holden_and_kill_all_ends_them") {
        return;
    }
    let tp = TestPath::new();
    let earlier = tp.setup();
    let (pg, _) = earlier.program("left").unwrap();
    let (mut a, _sa) = Proc::gated("sleep 30");
    let (mut b, _sb) = Proc::gated("sleep 30");
    move_in(&pg, a.pid());
    move_in(&pg, b.pid());
    // The earlier holden died without cleaning up: its lock went with it. (A fork by a
    // test running in parallel may hold a copy of the lock's fd until its exec: retry.)
    drop(earlier);
    let deadline = Instant::now() + Duration::from_secs(5);
    let later = loop {
        match Cgroups::setup(CgroupMode::Required, &tp.path) {
            Ok(c) => break c.expect("Required gives cgroups or an error"),
            Err(CgroupError::Taken { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    };
    let (again, leftovers) = later.program("left").unwrap();
    assert_eq!(leftovers, 2);
    assert_eq!(again.pids().len(), 2, "program() only counts them");
    kill(&again);
    // SIGKILL was sent; the caller waits for the cgroup to empty.
    let deadline = Instant::now() + Duration::from_secs(5);
    while again.populated() {
        assert!(Instant::now() < deadline, "the leftovers are still in the cgroup");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(a.wait_exit(Duration::from_secs(5)).signal(), Some(9));
    assert_eq!(b.wait_exit(Duration::from_secs(5)).signal(), Some(9));
    later.cleanup();
}

#[test]
fn kernel_stop_strangers_ends_and_removes_every_cgroup_that_is_no_program() {
    if !root_or_skip("kernel_stop_strangers_ends_and_removes_every_cgroup_that_is_no_program") {
        return;
    }
    let tp = TestPath::new();
    let earlier = tp.setup();
    let (keep, _) = earlier.program("keep").unwrap();
    let (gone, _) = earlier.program("gone").unwrap();
    let (stubborn, _) = earlier.program("stubborn").unwrap();
    let (mut k, _sk) = Proc::gated("sleep 30");
    let (mut g, _sg) = Proc::gated("sleep 30");
    // Ignores SIGTERM: SIGKILL after the grace ends it.
    let (mut s, mut ss) = Proc::gated("trap '' TERM; sleep 30 & wait");
    move_in(&keep, k.pid());
    move_in(&gone, g.pid());
    move_in(&stubborn, s.pid());
    go(&mut ss);
    wait_for(Duration::from_secs(5), "the stubborn shell and its sleep", || {
        let n = stubborn.pids().len();
        (n == 2).then_some(()).ok_or(format!("{n}"))
    });
    // An empty sub-cgroup below a stranger goes with it.
    for d in gone.dirs.all() {
        fs::create_dir(d.join("sub")).unwrap();
    }
    drop(earlier);
    let later = tp.setup();
    let mut done = later.stop_strangers(|name| name == "keep");
    done.sort_by(|a, b| a.0.cmp(&b.0));
    let done: Vec<(String, usize)> = done.into_iter().map(|(n, r)| (n, r.unwrap())).collect();
    assert_eq!(done, vec![("gone".to_string(), 1), ("stubborn".to_string(), 2)]);
    assert_eq!(g.wait_exit(Duration::from_secs(5)).signal(), Some(15), "SIGTERM first");
    assert_eq!(s.wait_exit(Duration::from_secs(5)).signal(), Some(9), "then SIGKILL");
    for d in gone.dirs.all().chain(stubborn.dirs.all()) {
        assert!(!d.exists(), "{} is removed", d.display());
    }
    assert_eq!(keep.pids(), vec![k.pid()], "a program of the file is left alone");
    kill(&keep);
    k.wait_exit(Duration::from_secs(5));
    later.cleanup();
}

#[test]
fn kernel_relative_path_lives_below_our_own_cgroup() {
    if !root_or_skip("kernel_relative_path_lives_below_our_own_cgroup") {
        return;
    }
    let mut tp = TestPath::new();
    let rel = tp.path.trim_start_matches('/').to_string();
    let me = fs::read_to_string("/proc/self/cgroup").unwrap();
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = detect::detect(&mi, &me, Path::new("/")).unwrap();
    for h in d.v1.iter().chain(d.unified.as_ref()) {
        tp.extra.push(h.own.clone().unwrap().join(&rel));
    }
    let cg = Cgroups::setup(CgroupMode::Required, &rel).unwrap().unwrap();
    let mem_own = d.v1.iter().find(|h| h.controllers.contains(&"memory".to_string()));
    if let Some(h) = mem_own {
        assert_eq!(cg.parent_path(), h.own.clone().unwrap().join(&rel));
    }
    for dir in &tp.extra {
        assert!(dir.is_dir(), "{}", dir.display());
    }
    let (pg, _) = cg.program("p").unwrap();
    assert!(pg.path().starts_with(cg.parent_path()));
    cg.cleanup();
    for dir in &tp.extra {
        assert!(!dir.exists(), "{}", dir.display());
    }
}

//! Integration tests: SPEC "Resources" (issue 4), through the real binary on this host's real
//! cgroups (hybrid here; v2 under the VM suite). Each test owns a unique `cgroup_path`
//! (`/holden-test-<pid>-<n>`) that the harness removes on drop, also when the test fails. They
//! need root and say so when they skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;

const T: Duration = Duration::from_secs(20);

/// A program's cgroup directory holding `controller` (v1 hierarchy if mounted, else the v2 tree).
fn cgroup_dir(path: &str, program: &str, controller: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    let root = if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    root.join(path.trim_start_matches('/')).join(program)
}

/// The program's cgroup2 directory (`unified` on hybrid hosts, the v2 tree otherwise).
fn cgroup2_dir(path: &str, program: &str) -> PathBuf {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let root = if unified.is_dir() {
        unified.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    root.join(path.trim_start_matches('/')).join(program)
}

fn pids_in(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// `key value` from a flat keyed file (`cpu.stat`, `pids.events`).
fn keyed(file: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Wait for the program to be RUNNING with a pid; returns the status entry.
fn wait_running(sup: &Supervisor, name: &str) -> serde_json::Value {
    wait_for(T, &format!("{name} RUNNING"), || {
        let st = sup.program_status(name);
        if st["state"] == "RUNNING" && st["pid"].is_u64() {
            Ok(st)
        } else {
            Err(format!("{st}"))
        }
    })
}

#[test]
fn a_memory_hog_is_oom_killed_at_its_limit_restarted_then_fatal() {
    if skip_unless_root("a_memory_hog_is_oom_killed_at_its_limit_restarted_then_fatal") {
        return;
    }
    let cg = unique_cgroup_path();
    let mut sup = Supervisor::start_with(
        &cgroup_extra(&cg),
        r#"
[programs.hog]
command = ["sh", "-c", "x=a; while :; do x=$x$x; done"]
memory_limit = "30MB"
autorestart = "on-failure"
min_uptime = "10s"
restart_delay = "100ms"
max_restart_delay = "100ms"
max_restarts = 2
"#,
    );
    let log = sup.wait_log("-> FATAL", T);
    assert!(
        log.matches("killed by the kernel's OOM killer").count() >= 3,
        "every run ends in an OOM kill:\n{log}"
    );
    let st = sup.program_status("hog");
    assert_eq!(st["state"], "FATAL", "{st}");
    assert_eq!(st["last_exit"]["oom_killed"], true, "{st}");
    assert_eq!(st["memory_limit"], 30_000_000, "{st}");
    let limit = fs::read_to_string(cgroup_dir(&cg, "hog", "memory").join("memory.limit_in_bytes"))
        .or_else(|_| fs::read_to_string(cgroup_dir(&cg, "hog", "memory").join("memory.max")))
        .unwrap();
    // The kernel rounds the limit down to whole pages.
    assert_eq!(limit.trim(), (30_000_000 / 4096 * 4096).to_string());
}

#[test]
fn a_busy_loop_is_held_to_its_cpu_limit() {
    if skip_unless_root("a_busy_loop_is_held_to_its_cpu_limit") {
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::start_with(
        &cgroup_extra(&cg),
        r#"
[programs.busy]
command = ["sh", "-c", "while :; do :; done"]
cpu_limit = 0.5
# First in line for a CPU, so that it reaches its quota on a loaded machine too.
nice = -20
"#,
    );
    wait_running(&sup, "busy");
    let stat = cgroup2_dir(&cg, "busy").join("cpu.stat");
    let usage = || keyed(&stat, "usage_usec").expect("cpu.stat usage_usec");
    let (u0, t0) = (usage(), Instant::now());
    // The measurement window itself, not a wait for a condition.
    std::thread::sleep(Duration::from_secs(2));
    let (u1, t1) = (usage(), Instant::now());
    let cpus = (u1 - u0) as f64 / (t1 - t0).as_micros() as f64;
    assert!(
        (0.02..=0.65).contains(&cpus),
        "the busy loop used {cpus:.3} CPUs with cpu_limit = 0.5"
    );
    // What holds it is the kernel's quota: it was throttled. (On a busy machine the loop may
    // get less than its limit, so its usage alone cannot show that.)
    let throttled = keyed(&cgroup_dir(&cg, "busy", "cpu").join("cpu.stat"), "nr_throttled");
    assert!(
        throttled.unwrap_or(0) > 0,
        "the busy loop was never throttled: {throttled:?}"
    );
    let st = sup.program_status("busy");
    assert_eq!(st["cpu_limit"], 0.5, "{st}");
    assert!(st["cpu_usage_usec"].as_u64().unwrap_or(0) > 0, "{st}");
}

#[test]
fn pids_limit_stops_a_fork_bomb_at_its_limit() {
    if skip_unless_root("pids_limit_stops_a_fork_bomb_at_its_limit") {
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::start_with(
        &cgroup_extra(&cg),
        r#"
[programs.bomb]
command = ["sh", "-c", "f() { f & f; }; f 2>/dev/null"]
pids_limit = 20
cpu_limit = 0.2
memory_limit = "100MB"
stop_timeout = "1s"
"#,
    );
    let pids = cgroup_dir(&cg, "bomb", "pids");
    wait_for(T, "the pids limit to refuse a fork", || {
        match keyed(&pids.join("pids.events"), "max") {
            Some(n) if n > 0 => Ok(()),
            seen => Err(format!("pids.events max = {seen:?}")),
        }
    });
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let current: u64 = fs::read_to_string(pids.join("pids.current"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(current <= 20, "{current} tasks with pids_limit = 20");
    }
    let out = sup.ctl(&["stop", "bomb"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(pids_in(&pids).is_empty(), "a STOPPED program's cgroup is empty");
}

#[test]
fn stop_kills_a_daemonized_grandchild_that_ignores_sigterm() {
    if skip_unless_root("stop_kills_a_daemonized_grandchild_that_ignores_sigterm") {
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::prepare(
        &cgroup_extra(&cg),
        r#"
[programs.d]
command = ["sh", "{dir}/daemon.sh", "{dir}/grandchild.pid"]
stop_timeout = "500ms"
"#,
    );
    // Double fork and setsid: the grandchild leaves the program's process group and session,
    // is reparented, and ignores SIGTERM. Only the cgroup still knows it belongs to `d`.
    fs::write(
        sup.path("daemon.sh"),
        "( trap '' TERM; setsid sh -c 'trap \"\" TERM; echo $$ > \"$1\"; exec sleep 600' sh \"$1\" & )\nexec sleep 600\n",
    )
    .unwrap();
    let sup = sup.spawn();
    wait_running(&sup, "d");
    let gc: u32 = wait_for(T, "the grandchild's pid file", || {
        fs::read_to_string(sup.path("grandchild.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| "no pid yet".to_string())
    });
    assert!(alive(gc));
    assert!(pids_in(&cgroup_dir(&cg, "d", "memory")).contains(&gc));
    let out = sup.ctl(&["stop", "d"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!alive(gc), "the daemonized grandchild {gc} survived the stop");
    assert_eq!(sup.program_status("d")["state"], "STOPPED");
}

#[test]
fn a_new_holden_after_kill_9_leaves_exactly_one_instance() {
    if skip_unless_root("a_new_holden_after_kill_9_leaves_exactly_one_instance") {
        return;
    }
    let cg = unique_cgroup_path();
    let mut sup = Supervisor::start_with(
        &cgroup_extra(&cg),
        r#"
[programs.one]
command = "sleep 600"
"#,
    );
    let first = wait_running(&sup, "one")["pid"].as_u64().unwrap() as u32;
    sup.signal(9);
    sup.wait_exit(T);
    assert!(alive(first), "a program outlives holden killed by SIGKILL");
    let sup = sup.spawn();
    let second = wait_running(&sup, "one")["pid"].as_u64().unwrap() as u32;
    assert_ne!(first, second);
    wait_for(T, "the leftover to be gone", || {
        (!alive(first)).then_some(()).ok_or(format!("{first} alive"))
    });
    for ctrl in ["memory", "cpu", "pids"] {
        let dir = cgroup_dir(&cg, "one", ctrl);
        assert_eq!(pids_in(&dir), vec![second], "{}", dir.display());
    }
    assert!(
        sup.log_text().contains("leftover"),
        "the log says leftovers were killed:\n{}",
        sup.log_text()
    );
}

#[test]
fn the_program_is_in_its_cgroup_before_its_first_instruction() {
    if skip_unless_root("the_program_is_in_its_cgroup_before_its_first_instruction") {
        return;
    }
    let cg = unique_cgroup_path();
    let mut sup = Supervisor::start_with(
        &cgroup_extra(&cg),
        r#"
[programs.first]
command = "cat /proc/self/cgroup"
stdout = "{dir}/cgroup.txt"
autorestart = "never"
"#,
    );
    sup.wait_log("first: STARTING -> EXITED (exit status 0)", T);
    let seen = fs::read_to_string(sup.path("cgroup.txt")).unwrap();
    let want = format!("{cg}/first");
    for hier in [":memory:", ":cpu:", ":pids:", "0::"] {
        let line = seen.lines().find(|l| l.contains(hier));
        assert!(
            line.is_some_and(|l| l.ends_with(&want)),
            "{hier} line of /proc/self/cgroup is not {want}:\n{seen}"
        );
    }
}

#[test]
fn a_memory_limit_below_usage_is_refused_without_harm() {
    if skip_unless_root("a_memory_limit_below_usage_is_refused_without_harm") {
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::start_with(
        &cgroup_extra(&cg),
        r#"
[programs.big]
command = ["sh", "-c", "x=$(head -c 20000000 /dev/zero | tr '\\0' a); echo held; sleep 600"]
stdout = "{dir}/big.out"
memory_limit = "100MB"
"#,
    );
    wait_for(T, "big to hold its memory", || {
        let out = fs::read_to_string(sup.path("big.out")).unwrap_or_default();
        out.contains("held").then_some(()).ok_or(out)
    });
    let before = sup.program_status("big");
    let out = sup.ctl(&["constrain", "big", "--memory", "1MB"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v1 = Path::new("/sys/fs/cgroup/memory").is_dir();
    if v1 {
        // v1 refuses a limit below usage with EBUSY; v2 accepts it and reclaims or OOM-kills.
        assert!(!out.status.success(), "constrain below usage succeeded on v1");
        assert!(stderr.contains("memory"), "{stderr}");
        let after = sup.program_status("big");
        assert!(after["state"] == "STARTING" || after["state"] == "RUNNING", "{after}");
        assert_eq!(after["pid"], before["pid"], "{after}");
        assert_eq!(after["memory_limit"], 100_000_000, "{after}");
    }
    let out = sup.ctl(&["constrain", "big", "--memory", "200MB"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sup.program_status("big")["memory_limit"], 200_000_000);
}

/// Where a relative `cgroup_path` lands for a holden started by this test process (it inherits
/// our cgroups): below our own cgroup in each hierarchy. Removed on drop.
struct RelativeDirs(Vec<PathBuf>);

impl RelativeDirs {
    fn of(rel: &str) -> RelativeDirs {
        RelativeDirs(own_cgroup_dirs().into_iter().map(|(_, dir)| dir.join(rel)).collect())
    }
}

impl Drop for RelativeDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let under = d.strip_prefix("/sys/fs/cgroup").unwrap().to_string_lossy().to_string();
            // remove_cgroup_tree takes a path below each hierarchy's root.
            let rel = under.split_once('/').map(|(_, r)| r.to_string()).unwrap_or(under);
            if d.is_dir() {
                remove_cgroup_tree(&rel);
            }
        }
    }
}

#[test]
fn a_relative_cgroup_path_lives_below_holdens_own_cgroup_and_is_removed_at_exit() {
    if skip_unless_root("a_relative_cgroup_path_lives_below_holdens_own_cgroup_and_is_removed_at_exit") {
        return;
    }
    let rel = unique_cgroup_path().trim_start_matches('/').to_string();
    let dirs = RelativeDirs::of(&rel);
    let mut sup = Supervisor::start_with(
        &format!("cgroups = \"required\"\ncgroup_path = \"{rel}\"\n"),
        r#"
[programs.r]
command = "sleep 600"
"#,
    );
    // The child writes itself into one hierarchy after the other before exec: wait for all.
    let pid = wait_for(T, "r in its cgroup below ours in every hierarchy", || {
        let seen: Vec<Vec<u32>> = dirs.0.iter().map(|d| pids_in(&d.join("r"))).collect();
        match seen.first() {
            Some(first) if first.len() == 1 && seen.iter().all(|s| s == first) => Ok(first[0]),
            _ => Err(format!("{seen:?} in {:?}", dirs.0)),
        }
    });
    assert!(alive(pid));
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
    for d in &dirs.0 {
        assert!(!d.exists(), "{} is left after holden's exit", d.display());
    }
}

// ---- Without cgroup.kill: the freeze-and-kill fallback (HOLDEN_TEST_NO_CGROUP_KILL) ----

/// The test knob that makes holden use the fallback of kernels without `cgroup.kill`.
const NO_CGROUP_KILL: (&str, &str) = ("HOLDEN_TEST_NO_CGROUP_KILL", "1");
const JOB_STARTS: &str = "no cgroup.kill: freezing, killing and thawing its cgroup";
const JOB_ENDS: &str = "its kill job ended after";

#[test]
fn without_cgroup_kill_stop_ends_a_forking_program_that_ignores_sigterm() {
    if skip_unless_root("without_cgroup_kill_stop_ends_a_forking_program_that_ignores_sigterm") {
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::prepare(
        &cgroup_extra(&cg),
        r#"
[programs.forks]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 600 & sleep 0.01; done"]
pids_limit = 1000
stop_timeout = "200ms"
"#,
    );
    let mut sup = sup.spawn_with_env(&[NO_CGROUP_KILL]);
    wait_running(&sup, "forks");
    let pids = cgroup_dir(&cg, "forks", "pids");
    wait_for(T, "a few sleeps", || {
        let n = pids_in(&pids).len();
        (n >= 5).then_some(()).ok_or(format!("{n} processes"))
    });
    let out = sup.ctl(&["stop", "forks"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sup.program_status("forks")["state"], "STOPPED");
    assert!(pids_in(&pids).is_empty(), "a STOPPED program's cgroup is empty");
    let log = sup.log_text();
    assert!(log.contains(&format!("forks: {JOB_STARTS}")), "{log}");
    assert!(log.contains(&format!("forks: {JOB_ENDS}")), "{log}");
    assert!(!log.contains("cannot"), "{log}");
    let freeze = fs::read_to_string(cgroup2_dir(&cg, "forks").join("cgroup.freeze")).unwrap();
    assert_eq!(freeze.trim(), "0", "left thawed");
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
}

/// The lines of holden's log from the start of a kill job to its end, for each job.
fn kill_job_windows(log: &str, name: &str) -> Vec<Vec<String>> {
    let (starts, ends) = (format!("{name}: {JOB_STARTS}"), format!("{name}: {JOB_ENDS}"));
    let mut windows = Vec::new();
    let mut open: Option<Vec<String>> = None;
    for line in log.lines() {
        if line.contains(&starts) {
            open = Some(Vec::new());
        } else if line.contains(&ends) {
            windows.extend(open.take());
        } else if let Some(w) = open.as_mut() {
            w.push(line.to_string());
        }
    }
    windows
}

#[test]
fn while_a_kill_job_waits_for_a_freeze_the_loop_serves_status_and_a_crash_loop() {
    let test = "while_a_kill_job_waits_for_a_freeze_the_loop_serves_status_and_a_crash_loop";
    if skip_unless_root(test) {
        return;
    }
    if !Ice::available() || !Path::new("/sys/fs/cgroup/unified").is_dir() {
        skip(
            test,
            "needs a hybrid host: the v1 freezer holds a process that cgroup2's freeze then never reaches",
        );
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::prepare(
        &cgroup_extra(&cg),
        r#"
[programs.stuck]
command = "sleep 1000"
stop_timeout = "100ms"

[programs.crash]
command = "sh -c 'exit 1'"
autorestart = "always"
restart_delay = "0s"
max_restarts = 1000000
start_limit_burst = 0
"#,
    );
    let mut sup = sup.spawn_with_env(&[NO_CGROUP_KILL]);
    let pid = wait_running(&sup, "stuck")["pid"].as_u64().unwrap() as u32;
    // Frozen by the v1 freezer, `stuck` never reaches cgroup2's frozen state: each round of
    // the job waits for the freeze until it gives up on it, and SIGKILL waits for the thaw.
    let ice = Ice::freeze(&format!("{cg}-ice"), pid);
    let stop = sup.ctl_spawn(&["stop", "stuck"]);
    sup.wait_log(&format!("stuck: {JOB_STARTS}"), T);
    // Ask for status again and again until a job's window in the log holds both a status
    // served and a crash-loop transition: the loop went on while the job waited.
    let served = wait_for(T, "status and the crash loop served during a kill job", || {
        let status = sup.status();
        assert!(status.iter().any(|p| p["name"] == "stuck"), "{status:?}");
        let log = sup.log_text();
        kill_job_windows(&log, "stuck")
            .into_iter()
            .find(|w| {
                w.iter().any(|l| l.contains("control: closing connection")) && w.iter().any(|l| l.contains("crash: "))
            })
            .ok_or(format!("{} job(s) ended so far", log.matches(JOB_ENDS).count()))
    });
    assert!(
        ice.frozen(),
        "the program was still held while the loop served: {served:?}"
    );
    assert_ne!(sup.program_status("stuck")["state"], "STOPPED");
    // Thawed, it dies of the SIGKILL it has pending, and the stop completes.
    ice.thaw();
    let out = wait_output(stop, T, "holden stop stuck");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sup.program_status("stuck")["state"], "STOPPED");
    assert!(!alive(pid));
    let freeze = fs::read_to_string(cgroup2_dir(&cg, "stuck").join("cgroup.freeze")).unwrap();
    assert_eq!(freeze.trim(), "0", "no job leaves its cgroup frozen");
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
    drop(ice);
}

//! The short form of the soak (issue 14; the long one is bench/soak.py): crash-looping
//! programs leave holden's fd count and memory flat; holden SIGKILLed at random moments and
//! started again never runs a program twice and leaks no cgroup; a full disk under a log file
//! is reported once and writing resumes when space returns; a low fd limit still works.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::*;

const T: Duration = Duration::from_secs(30);

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sum of `restarts` over every program, and whether every program is in `state`.
fn totals(sup: &Supervisor, state: &str) -> (u64, bool) {
    let programs = sup.status();
    let restarts = programs.iter().map(|p| p["restarts"].as_u64().unwrap_or(0)).sum();
    (restarts, programs.iter().all(|p| p["state"] == state))
}

/// The fd count once it holds still (a client that just left may not have been closed yet).
fn settled_fds(pid: u32) -> usize {
    wait_for(T, "holden's fd count to settle", || {
        let a = fd_count(pid);
        std::thread::sleep(Duration::from_millis(100));
        let b = fd_count(pid);
        (a == b).then_some(a).ok_or(format!("{a} then {b}"))
    })
}

/// `count` programs that each run a little while (a different while each), print a line and
/// fail, restarting for ever.
fn crashers(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                r#"
[programs.c{i}]
command = ["sh", "-c", "echo run; sleep 0.{}{}; exit 1"]
stdout = "{{dir}}/c{i}.log"
min_uptime = "20ms"
restart_delay = "10ms"
max_restart_delay = "10ms"
max_restarts = 100000000
start_limit_burst = 0
"#,
                1 + i % 3,
                i % 10
            )
        })
        .collect()
}

#[test]
fn fifty_crash_looping_programs_leave_holdens_fd_count_and_memory_flat() {
    let sup = Supervisor::start(&crashers(50));
    // Every program has run once: its log file and its state exist.
    wait_for(T, "every program to have restarted", || {
        let programs = sup.status();
        let all = programs.len() == 50 && programs.iter().all(|p| p["restarts"].as_u64().unwrap_or(0) >= 1);
        all.then_some(()).ok_or(format!("{} programs", programs.len()))
    });
    let stop_all = |sup: &Supervisor| {
        let out = sup.ctl(&["stop", "--all"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        wait_for(T, "every program STOPPED", || {
            let (_, all) = totals(sup, "STOPPED");
            all.then_some(()).ok_or("not yet".to_string())
        });
    };
    stop_all(&sup);
    let (fds0, rss0) = (settled_fds(sup.pid), rss_kib(sup.pid));
    let (restarts0, _) = totals(&sup, "STOPPED");
    let out = sup.ctl(&["start", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let churn = 1500;
    let started = Instant::now();
    wait_for(Duration::from_secs(120), &format!("{churn} more restarts"), || {
        let (r, _) = totals(&sup, "");
        (r >= restarts0 + churn)
            .then_some(())
            .ok_or(format!("{} restarts", r - restarts0))
    });
    let took = started.elapsed();
    stop_all(&sup);
    let (restarts1, _) = totals(&sup, "STOPPED");
    let fds1 = wait_for(T, "the fd count to come back to where it was", || {
        let n = settled_fds(sup.pid);
        (n == fds0).then_some(n).ok_or(format!("{n} fds, {fds0} before"))
    });
    let rss1 = rss_kib(sup.pid);
    eprintln!(
        "soak: {} restarts of 50 programs in {took:.1?}; fds {fds0} -> {fds1}; RSS {rss0} KiB -> {rss1} KiB",
        restarts1 - restarts0
    );
    assert_eq!(fds1, fds0);
    assert!(rss1 <= rss0 + rss0 / 2 + 2048, "RSS grew from {rss0} KiB to {rss1} KiB");
    assert!(!sup.log_text().contains("panicked"), "{}", sup.log_text());
}

/// Per program cgroup below `cg` (in the hierarchy that holds the memory controller, else the
/// v2 one), the processes in it.
fn procs_per_program(cg: &str) -> Vec<(String, Vec<u32>)> {
    let v1 = Path::new("/sys/fs/cgroup/memory");
    let root = if v1.is_dir() {
        v1.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    let parent = root.join(cg.trim_start_matches('/'));
    let mut out = Vec::new();
    for e in fs::read_dir(parent).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let procs: Vec<u32> = fs::read_to_string(e.path().join("cgroup.procs"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            out.push((e.file_name().to_string_lossy().into_owned(), procs));
        }
    }
    out
}

/// A number from the clock, for moments that differ from run to run.
fn random_below(n: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    (nanos / 1000) % n
}

#[test]
fn holden_killed_at_random_moments_never_runs_a_program_twice_and_leaks_no_cgroup() {
    if skip_unless_root("holden_killed_at_random_moments_never_runs_a_program_twice_and_leaks_no_cgroup") {
        return;
    }
    let cg = unique_cgroup_path();
    let mut programs = String::new();
    for i in 0..5 {
        programs.push_str(&format!(
            "[programs.s{i}]\ncommand = \"sleep 1000\"\nmin_uptime = \"50ms\"\n"
        ));
        // One process each: perl sleeps a while and fails.
        programs.push_str(&format!(
            "[programs.c{i}]\ncommand = [\"perl\", \"-e\", \"select(undef, undef, undef, 0.05 + rand(0.3)); exit 1\"]\nmin_uptime = \"20ms\"\nrestart_delay = \"10ms\"\nmax_restarts = 100000000\nstart_limit_burst = 0\n"
        ));
    }
    let extra = format!("cgroups = \"required\"\ncgroup_path = \"{cg}\"\n");
    let mut sup = Supervisor::start_with(&extra, &programs);
    let mut seen = std::collections::BTreeSet::new();
    let watch = |how_long: Duration, seen: &mut std::collections::BTreeSet<u32>| {
        let until = Instant::now() + how_long;
        while Instant::now() < until {
            for (name, procs) in procs_per_program(&cg) {
                assert!(procs.len() <= 1, "{name} runs twice: {procs:?}");
                seen.extend(procs);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    for round in 0..5 {
        watch(Duration::from_millis(100 + random_below(500)), &mut seen);
        sup.signal(9);
        sup.wait_exit(T);
        eprintln!("soak: holden killed in round {round}");
        sup = sup.spawn();
    }
    for i in 0..5 {
        wait_state_within(T, &sup, &format!("s{i}"), "RUNNING");
    }
    watch(Duration::from_millis(500), &mut seen);
    let log = sup.log_text();
    sup.signal(15);
    assert!(sup.wait_exit(T).success(), "{log}");
    for pid in &seen {
        assert!(!alive(*pid), "{pid} outlived the last holden");
    }
    let leaked: Vec<PathBuf> = hierarchies()
        .into_iter()
        .map(|h| h.join(cg.trim_start_matches('/')))
        .filter(|p| p.exists())
        .collect();
    assert!(leaked.is_empty(), "cgroups leaked: {leaked:?}");
}

/// A 1 MiB tmpfs at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf) -> Option<Tmpfs> {
        fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "holden-test",
                &dir.display().to_string(),
            ])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_under_a_log_is_reported_once_and_writing_resumes_when_space_returns() {
    if skip_unless_root("a_full_disk_under_a_log_is_reported_once_and_writing_resumes_when_space_returns") {
        return;
    }
    let mut sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        r#"
[programs.writer]
command = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.01; done"]
stdout = "{dir}/small/w.log"
log_max_bytes = "0"

[programs.tick]
command = ["sh", "-c", "sleep 0.1; exit 1"]
min_uptime = "10ms"
restart_delay = "10ms"
max_restarts = 100000000
start_limit_burst = 0
"#,
    );
    let small = sup.path("small");
    let Some(_tmpfs) = Tmpfs::mount(small.clone()) else {
        skip(
            "a_full_disk_under_a_log_is_reported_once_and_writing_resumes_when_space_returns",
            "cannot mount a tmpfs",
        );
        return;
    };
    sup = sup.spawn();
    let log_file = small.join("w.log");
    wait_for(T, "the first lines", || {
        let n = fs::metadata(&log_file).map(|m| m.len()).unwrap_or(0);
        (n > 100).then_some(()).ok_or(format!("{n} bytes"))
    });
    // Fill the disk.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=1024"])
        .arg(format!("of={}", small.join("filler").display()))
        .stderr(Stdio::null())
        .status();
    let warned = sup.wait_log("no space left on device", T);
    let (tick0, _) = totals(&sup, "");
    // Still supervising while the log cannot be written: tick restarts, status answers.
    wait_for(T, "tick to restart 10 more times", || {
        let (r, _) = totals(&sup, "");
        (r >= tick0 + 10).then_some(()).ok_or(format!("{r}"))
    });
    assert_eq!(sup.program_status("writer")["state"], "RUNNING");
    let full_at = fs::metadata(&log_file).unwrap().len();
    fs::remove_file(small.join("filler")).unwrap();
    sup.wait_log("writing to", T);
    wait_for(T, "lines after the space came back", || {
        let n = fs::metadata(&log_file).map(|m| m.len()).unwrap_or(0);
        (n > full_at + 100)
            .then_some(())
            .ok_or(format!("{n} bytes, {full_at} when full"))
    });
    let log = sup.log_text();
    assert_eq!(
        log.matches("no space left on device").count(),
        1,
        "reported once:\n{warned}\n{log}"
    );
    assert!(log.contains("bytes of output lost while it failed"), "{log}");
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
}

#[test]
fn holden_under_a_soft_fd_limit_of_256_keeps_supervising() {
    let mut programs = String::from(&crashers(5));
    for i in 0..30 {
        programs.push_str(&format!(
            "[programs.s{i}]\ncommand = \"sleep 1000\"\nmin_uptime = \"50ms\"\n"
        ));
    }
    let mut sup = Supervisor::prepare("cgroups = \"off\"\n", &programs);
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 256 && exec \"$0\" run -c \"$1\"")
        .arg(HOLDEN)
        .arg(&sup.config)
        .current_dir(sup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(sup.path("holden.stderr")).unwrap())
        .env_remove("HOLDEN_CONFIG")
        .env_remove("HOLDEN_CONTROL_SOCKET")
        .spawn()
        .unwrap();
    sup.pid = child.id();
    sup.child = Some(child);
    for i in 0..30 {
        wait_state_within(T, &sup, &format!("s{i}"), "RUNNING");
    }
    let (r0, _) = totals(&sup, "");
    wait_for(T, "the crashers to restart 20 more times", || {
        let (r, _) = totals(&sup, "");
        (r >= r0 + 20).then_some(()).ok_or(format!("{r}"))
    });
    let limits = fs::read_to_string(format!("/proc/{}/limits", sup.pid)).unwrap();
    eprintln!(
        "soak: under ulimit -Sn 256: {} fds; {}",
        fd_count(sup.pid),
        limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or("")
    );
    let log = sup.log_text();
    assert!(!log.contains("FATAL"), "{log}");
    sup.signal(15);
    assert!(sup.wait_exit(T).success(), "{}", sup.log_text());
}

//! Integration tests for issue 14, "nothing unsupervised": leftovers of a killed holden that are
//! no program of the file are stopped at start, program cgroups are removed at a clean exit, and
//! what a main process leaves behind when it exits is stopped before the program runs again.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

/// `[supervisor]` keys for a test: cgroups required, below a path of its own.
fn required_cgroups(path: &str) -> String {
    format!("cgroups = \"required\"\ncgroup_path = \"{path}\"\n")
}

/// `<hierarchy>/<cgroup_path>/<rel>` that exist, in any hierarchy.
fn existing(cg: &str, rel: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(cg.trim_start_matches('/')).join(rel))
        .filter(|p| p.exists())
        .collect()
}

/// The pids in `<cgroup_path>/<program>` of the memory hierarchy (v1), else of the v2 tree.
fn pids_of(cg: &str, program: &str) -> Vec<u32> {
    let v1 = PathBuf::from("/sys/fs/cgroup/memory");
    let root = if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    let dir = root.join(cg.trim_start_matches('/')).join(program);
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// `holden add NAME -- COMMAND...` (the socket before `--`).
fn add(sup: &Supervisor, name: &str, command: &[&str]) {
    let sock = sup.socket.display().to_string();
    let mut args = vec!["add", "--socket", &sock, name, "--"];
    args.extend_from_slice(command);
    let out = holden_in(Some(sup.dir.path()), &args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn running_pid(sup: &Supervisor, name: &str) -> u32 {
    wait_state_within(T, sup, name, "RUNNING")["pid"].as_u64().unwrap() as u32
}

/// A program that notes SIGTERM in `{dir}/NAME.term` and keeps a child `sleep`.
fn trapping(name: &str) -> String {
    format!(
        r#"
[programs.{name}]
command = ["sh", "-c", "trap 'echo TERM >> {{dir}}/{name}.term; exit 0' TERM; sleep 1000 & wait"]
min_uptime = "100ms"
"#
    )
}

#[test]
fn leftovers_of_removed_and_transient_programs_are_stopped_and_their_cgroups_removed_at_start() {
    if skip_unless_root("leftovers_of_removed_and_transient_programs_are_stopped_and_their_cgroups_removed_at_start") {
        return;
    }
    let cg = unique_cgroup_path();
    let a = "\n[programs.a]\ncommand = \"sleep 1000\"\nmin_uptime = \"100ms\"\n";
    let mut sup = Supervisor::start_with(&required_cgroups(&cg), &format!("{a}{}", trapping("b")));
    let a1 = running_pid(&sup, "a");
    let b_main = running_pid(&sup, "b");
    add(&sup, "c", &["sleep", "1000"]);
    let c_main = running_pid(&sup, "c");
    let b_all = wait_for(T, "b's shell and its sleep", || {
        let p = pids_of(&cg, "b");
        (p.len() == 2).then_some(p.clone()).ok_or(format!("{p:?}"))
    });
    assert!(b_all.contains(&b_main));
    sup.signal(9);
    sup.wait_exit(T);
    for pid in b_all.iter().chain([&a1, &c_main]) {
        assert!(alive(*pid), "{pid} outlives holden killed by SIGKILL");
    }

    // The next run has only `a` in its file.
    let body = fs::read_to_string(&sup.config).unwrap();
    let cut = body.find("[programs.b]").unwrap();
    fs::write(&sup.config, &body[..cut]).unwrap();
    let mut sup = sup.spawn();
    let a2 = running_pid(&sup, "a");
    let log = sup.wait_log("leftover cgroup c of an earlier run", T);
    assert!(
        log.contains("leftover cgroup b of an earlier run: stopped 2 process(es), removed"),
        "{log}"
    );
    assert!(
        log.contains("leftover cgroup c of an earlier run: stopped 1 process(es), removed"),
        "{log}"
    );
    for pid in b_all.iter().chain([&c_main, &a1]) {
        wait_for(T, &format!("{pid} to be gone"), || {
            (!alive(*pid)).then_some(()).ok_or("alive".to_string())
        });
    }
    // TERM came first: b's trap ran.
    let term = fs::read_to_string(sup.path("b.term")).unwrap_or_default();
    assert!(term.contains("TERM"), "b got SIGTERM before SIGKILL: {term:?}");
    for name in ["b", "c"] {
        let left = existing(&cg, name);
        assert!(left.is_empty(), "{name}'s cgroups are removed: {left:?}");
    }
    // `a` runs once, the new one.
    assert_ne!(a1, a2);
    assert_eq!(pids_of(&cg, "a"), vec![a2]);
    assert_eq!(sup.status().len(), 1, "transient c is not resurrected");

    // A clean shutdown removes every program cgroup and the parent.
    assert!(!existing(&cg, "a").is_empty());
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
    let left = existing(&cg, "");
    assert!(left.is_empty(), "cgroups left after a clean exit: {left:?}");
}

#[test]
fn a_clean_shutdown_removes_every_program_cgroup_added_ones_included() {
    if skip_unless_root("a_clean_shutdown_removes_every_program_cgroup_added_ones_included") {
        return;
    }
    let cg = unique_cgroup_path();
    let mut sup = Supervisor::start_with(
        &required_cgroups(&cg),
        "[programs.a]\ncommand = \"sleep 1000\"\nmin_uptime = \"100ms\"\n[programs.once]\ncommand = \"true\"\nautorestart = \"never\"\n",
    );
    running_pid(&sup, "a");
    wait_state_within(T, &sup, "once", "EXITED");
    add(&sup, "c", &["sleep", "1000"]);
    running_pid(&sup, "c");
    for name in ["a", "c", "once"] {
        assert!(!existing(&cg, name).is_empty(), "{name} has cgroups while holden runs");
    }
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
    let left = existing(&cg, "");
    assert!(left.is_empty(), "cgroups left after a clean exit: {left:?}");
}

/// A main process that leaves two children behind and exits 0. Each child notes SIGTERM in
/// `term.log` (after lingering 300 ms, just before it exits); each run notes in `runs.log` how
/// many TERM lines there were when it started.
const DAEMON: &str = r#"
[programs.web]
command = ["sh", "-c", "echo $(cat {dir}/term.log 2>/dev/null | wc -l) >> {dir}/runs.log; for n in 1 2; do perl -e '$SIG{TERM} = sub { select(undef, undef, undef, 0.3); open(my $f, \">>\", \"{dir}/term.log\"); print $f \"TERM $$$$\\n\"; close $f; exit 0 }; sleep 1000' & done; sleep 0.2; exit 0"]
autorestart = "always"
min_uptime = "50ms"
restart_delay = "50ms"
max_restarts = 1000
start_limit_burst = 0
stop_timeout = "10s"

[programs.stubborn]
command = ["sh", "-c", "perl -e '$SIG{TERM} = \"IGNORE\"; open(my $f, \">\", \"{dir}/stubborn.pid\"); print $f \"$$$$\\n\"; close $f; sleep 1000' & sleep 0.2; exit 0"]
autorestart = "never"
stop_timeout = "300ms"
"#;

fn daemonized_leftovers_get_the_stop_signal_and_the_restart_waits_for_them(extra: &str) {
    let mut sup = Supervisor::start_with(extra, DAEMON);
    wait_for(T, "three runs of web", || {
        let runs = fs::read_to_string(sup.path("runs.log")).unwrap_or_default();
        (runs.lines().count() >= 3).then_some(()).ok_or(runs)
    });
    let log = sup.wait_log("web: 2 process(es) left after the main process exited: sent SIGTERM", T);
    // Each run started only once both children of the one before had ended on SIGTERM.
    let runs = fs::read_to_string(sup.path("runs.log")).unwrap();
    for (k, line) in runs.lines().enumerate().take(3) {
        assert_eq!(line.trim(), (2 * k).to_string(), "run {k} started early: {runs}\n{log}");
    }
    let term = fs::read_to_string(sup.path("term.log")).unwrap();
    assert!(term.lines().count() >= 4, "{term}");

    // One that ignores SIGTERM gets SIGKILL after stop_timeout.
    let log = sup.wait_log(
        "stubborn: 1 leftover process(es) still alive after stop_timeout 300ms: sent SIGKILL",
        T,
    );
    assert!(
        log.contains("stubborn: 1 process(es) left after the main process exited: sent SIGTERM"),
        "{log}"
    );
    let pid: u32 = fs::read_to_string(sup.path("stubborn.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(T, "stubborn's child to be gone", || {
        (!alive(pid)).then_some(()).ok_or("alive".to_string())
    });
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
}

#[test]
fn daemonized_leftovers_get_the_stop_signal_and_the_restart_waits_for_them_with_cgroups() {
    if skip_unless_root("daemonized_leftovers_get_the_stop_signal_and_the_restart_waits_for_them_with_cgroups") {
        return;
    }
    let cg = unique_cgroup_path();
    daemonized_leftovers_get_the_stop_signal_and_the_restart_waits_for_them(&required_cgroups(&cg));
}

#[test]
fn daemonized_leftovers_get_the_stop_signal_and_the_restart_waits_for_them_without_cgroups() {
    daemonized_leftovers_get_the_stop_signal_and_the_restart_waits_for_them("cgroups = \"off\"\n");
}

#[test]
fn a_stop_cancels_a_restart_that_waits_for_leftovers_and_they_still_end() {
    let mut sup = Supervisor::start(
        r#"
[programs.d]
command = ["sh", "-c", "perl -e '$SIG{TERM} = \"IGNORE\"; open(my $f, \">\", \"{dir}/child.pid\"); print $f \"$$$$\\n\"; close $f; sleep 1000' & sleep 0.2; exit 1"]
min_uptime = "50ms"
restart_delay = "10ms"
stop_timeout = "2s"
"#,
    );
    sup.wait_log(
        "d: waiting for the processes of its last run to end before it starts again",
        T,
    );
    let pid: u32 = fs::read_to_string(sup.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    assert_eq!(sup.program_status("d")["state"], "BACKOFF");
    let out = sup.ctl(&["stop", "d"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sup.program_status("d")["state"], "STOPPED");
    let log = sup.wait_log(
        "d: 1 leftover process(es) still alive after stop_timeout 2s: sent SIGKILL",
        T,
    );
    wait_for(T, "the leftover to be gone", || {
        (!alive(pid)).then_some(()).ok_or("alive".to_string())
    });
    assert_eq!(log.matches("-> STARTING").count(), 1, "it ran once:\n{log}");
    assert_eq!(sup.program_status("d")["state"], "STOPPED");
    // It starts again on request.
    let out = sup.ctl(&["start", "d"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for(T, "a second run", || {
        let n = sup.log_count("-> STARTING");
        (n == 2).then_some(()).ok_or(format!("{n} runs"))
    });
}

#[test]
fn removing_a_program_whose_leftovers_are_ending_kills_them_at_once() {
    let mut sup = Supervisor::start("");
    let script = format!(
        "perl -e '$SIG{{TERM}} = \"IGNORE\"; open(my $f, \">\", \"{}\"); print $f \"$$\\n\"; close $f; sleep 1000' & while [ ! -e {} ]; do sleep 0.01; done; exit 1",
        sup.path("child.pid").display(),
        sup.path("go").display()
    );
    add(&sup, "x", &["sh", "-c", &script]);
    fs::write(sup.path("go"), "").unwrap();
    sup.wait_log("x: 1 process(es) left after the main process exited: sent SIGTERM", T);
    let pid: u32 = fs::read_to_string(sup.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sock = sup.socket.display().to_string();
    let out = holden_in(Some(sup.dir.path()), &["remove", "x", "--socket", &sock], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    sup.wait_log("x: removed", T);
    // Long before its stop_timeout (10s): a forgotten program leaves nothing behind.
    wait_for(Duration::from_secs(3), "the leftover to be gone", || {
        (!alive(pid)).then_some(()).ok_or("alive".to_string())
    });
}

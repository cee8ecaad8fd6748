//! Integration tests: SPEC "States", "When a program ends on its own" and "Supervisor duties",
//! through the real binary. They watch holden's log (one line per transition), /proc and the
//! files programs write.

use std::time::Duration;

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

/// The transition lines of program `name`, in order, without timestamps: "A -> B (reason)".
fn transitions(log: &str, name: &str) -> Vec<String> {
    let key = format!(" {name}: ");
    log.lines()
        .filter_map(|l| l.split_once(&key).map(|(_, rest)| rest.to_string()))
        .filter(|rest| rest.contains(" -> "))
        .collect()
}

/// Timestamp (as a Duration since the epoch) of the first log line containing `needle`.
fn time_of(log: &str, needle: &str) -> Duration {
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}"));
    let stamp = line.split_whitespace().next().unwrap();
    humantime::parse_rfc3339(stamp)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

fn index_of(log: &str, needle: &str) -> usize {
    log.find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in log:\n{log}"))
}

#[test]
fn never_policy_leaves_an_exited_program_exited() {
    let mut sup = Supervisor::start(
        r#"
[programs.once]
command = "sh -c 'exit 3'"
autorestart = "never"
"#,
    );
    let log = sup.wait_log("once: STARTING -> EXITED (exit status 3)", T);
    assert_eq!(transitions(&log, "once").len(), 2, "{log}");
}

#[test]
fn on_failure_restarts_failures_but_not_listed_exit_codes() {
    let mut sup = Supervisor::start(
        r#"
[programs.ok]
command = "sh -c 'exit 3'"
autorestart = "on-failure"
exit_codes = [0, 3]

[programs.bad]
command = "sh -c 'exit 4'"
autorestart = "on-failure"
restart_delay = "50ms"
max_restarts = 2
"#,
    );
    sup.wait_log("ok: STARTING -> EXITED (exit status 3)", T);
    let log = sup.wait_log("bad: STARTING -> FATAL (exit status 4; gave up after 2 restarts)", T);
    assert!(
        log.contains("bad: STARTING -> BACKOFF (exit status 4; restart 1/2 in 50ms)"),
        "{log}"
    );
    assert_eq!(sup.log_count("ok: STOPPED -> STARTING"), 1);
}

#[test]
fn always_restarts_a_program_that_exits_successfully() {
    let mut sup = Supervisor::start(
        r#"
[programs.loop]
command = "sh -c 'echo run >> {dir}/runs; exit 0'"
autorestart = "always"
restart_delay = "10ms"
max_restarts = 3
"#,
    );
    sup.wait_log("loop: STARTING -> FATAL (exit status 0; gave up after 3 restarts)", T);
    let runs = std::fs::read_to_string(sup.path("runs")).unwrap();
    assert_eq!(runs.lines().count(), 4, "one start and three restarts");
}

#[test]
fn backoff_doubles_per_quick_exit_up_to_max_restart_delay_then_fatal() {
    let mut sup = Supervisor::start(
        r#"
[programs.crash]
command = "sh -c 'exit 1'"
restart_delay = "100ms"
max_restart_delay = "300ms"
max_restarts = 4
"#,
    );
    let log = sup.wait_log("crash: STARTING -> FATAL", T);
    let t = transitions(&log, "crash");
    let backoffs: Vec<&String> = t.iter().filter(|l| l.starts_with("STARTING -> BACKOFF")).collect();
    assert_eq!(
        backoffs,
        vec![
            "STARTING -> BACKOFF (exit status 1; restart 1/4 in 100ms)",
            "STARTING -> BACKOFF (exit status 1; restart 2/4 in 200ms)",
            "STARTING -> BACKOFF (exit status 1; restart 3/4 in 300ms)",
            "STARTING -> BACKOFF (exit status 1; restart 4/4 in 300ms)",
        ],
        "{log}"
    );
    assert!(
        t.last().unwrap().ends_with("(exit status 1; gave up after 4 restarts)"),
        "{log}"
    );
    // The waits really happened: each BACKOFF -> STARTING came no earlier than its delay.
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" crash: ")).collect();
    let mut gaps = Vec::new();
    for w in lines.windows(2) {
        if w[0].contains("-> BACKOFF") && w[1].contains("BACKOFF -> STARTING") {
            gaps.push(time_of(w[1], "crash") - time_of(w[0], "crash"));
        }
    }
    let want = [100, 200, 300, 300];
    assert_eq!(gaps.len(), 4, "{log}");
    for (gap, ms) in gaps.iter().zip(want) {
        assert!(
            *gap >= Duration::from_millis(ms - 2),
            "gap {gap:?} shorter than {ms}ms\n{log}"
        );
    }
}

#[test]
fn a_run_that_reached_running_resets_the_restart_count() {
    // Runs 1 and 2 exit at once, run 3 lives past min_uptime then fails, run 4+ exit at once.
    let mut sup = Supervisor::start(
        r#"
[programs.flaky]
command = ["sh", "-c", "n=$(cat {dir}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > {dir}/n; if [ $n -eq 3 ]; then sleep 0.5; fi; exit 1"]
min_uptime = "200ms"
restart_delay = "20ms"
max_restarts = 3
"#,
    );
    let log = sup.wait_log("flaky: RUNNING -> BACKOFF", T);
    let t = transitions(&log, "flaky");
    let reasons: Vec<&str> = t
        .iter()
        .filter(|l| l.contains("-> BACKOFF"))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "STARTING -> BACKOFF (exit status 1; restart 1/3 in 20ms)",
            "STARTING -> BACKOFF (exit status 1; restart 2/3 in 40ms)",
            "RUNNING -> BACKOFF (exit status 1; restart 1/3 in 20ms)",
        ],
        "{log}"
    );
}

#[test]
fn a_missing_command_is_fatal_at_once_with_the_reason() {
    let mut sup = Supervisor::start(
        r#"
[programs.nope]
command = "/usr/bin/nope-not-here"
autorestart = "always"

[programs.noexec]
command = "{dir}/not-executable"
"#,
    );
    std::fs::write(sup.path("not-executable"), "#!/bin/sh\n").unwrap();
    // The child exists (STARTING with its pid) before its exec fails: the loop does not wait
    // for the exec, whose outcome is an event of its own.
    let log = sup.wait_log(
        "nope: STARTING -> FATAL (cannot spawn /usr/bin/nope-not-here: no such file or directory)",
        T,
    );
    let lines = transitions(&log, "nope");
    assert_eq!(lines.len(), 2, "no retry loop: {log}");
    assert!(lines[0].starts_with("STOPPED -> STARTING (pid "), "{log}");
    // The file is created after holden started, so the program may have raced it: either
    // reason names the OS's error.
    let log = sup.wait_log("noexec: STARTING -> FATAL (cannot spawn", T);
    assert!(
        log.contains("not-executable: permission denied)")
            || log.contains("not-executable: no such file or directory)"),
        "{log}"
    );
}

#[test]
fn depends_on_starts_after_dependencies_run_and_stops_before_them() {
    let mut sup = Supervisor::start(
        r#"
[programs.app]
command = "sleep 30"
depends_on = ["db"]
min_uptime = "50ms"

[programs.db]
command = "sleep 30"
min_uptime = "300ms"
"#,
    );
    let log = sup.wait_log("app: STARTING -> RUNNING", T);
    assert!(
        index_of(&log, "db: STARTING -> RUNNING") < index_of(&log, "app: STOPPED -> STARTING"),
        "{log}"
    );
    sup.signal(libc::SIGTERM);
    let st = sup.wait_exit(T);
    assert_eq!(st.code(), Some(0));
    let log = sup.log_text();
    assert!(
        index_of(&log, "app: STOPPING -> STOPPED") < index_of(&log, "db: RUNNING -> STOPPING"),
        "{log}"
    );
}

#[test]
fn stop_timeout_escalates_to_sigkill_for_a_program_that_ignores_sigterm() {
    let mut sup = Supervisor::start(
        r#"
[programs.stubborn]
command = ["sh", "-c", "trap '' TERM; echo ready > {dir}/ready; while :; do sleep 1; done"]
stop_timeout = "300ms"
"#,
    );
    wait_for(T, "the program to be ready", || {
        sup.path("ready").exists().then_some(()).ok_or_else(String::new)
    });
    let pids = sup.descendants();
    assert!(!pids.is_empty());
    sup.signal(libc::SIGTERM);
    let st = sup.wait_exit(T);
    assert_eq!(st.code(), Some(0));
    let log = sup.log_text();
    assert!(log.contains("-> STOPPING (sent SIGTERM)"), "{log}");
    assert!(
        log.contains("stubborn: STOPPING (stop_timeout 300ms passed; sent SIGKILL)"),
        "{log}"
    );
    assert!(
        log.contains("stubborn: STOPPING -> STOPPED (killed by signal KILL)"),
        "{log}"
    );
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the shutdown");
    }
}

#[test]
fn sigterm_shuts_down_gracefully_leaving_no_process_and_exits_0() {
    let mut sup = Supervisor::start(
        r#"
[programs.a]
command = "sleep 30"
min_uptime = "0s"

[programs.b]
command = ["sh", "-c", "sleep 30 & sleep 30 & wait"]
min_uptime = "0s"

[programs.c]
command = "sleep 30"
autostart = false
"#,
    );
    sup.wait_log("a: STARTING -> RUNNING", T);
    sup.wait_log("b: STARTING -> RUNNING", T);
    wait_for(T, "b's two sleeps", || {
        let n = sup.descendants().len();
        if n >= 4 {
            Ok(())
        } else {
            Err(format!("{n} descendants"))
        }
    });
    let pids = sup.descendants();
    sup.signal(libc::SIGTERM);
    let st = sup.wait_exit(T);
    assert_eq!(st.code(), Some(0), "{}", sup.log_text());
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the shutdown");
    }
    let log = sup.log_text();
    assert!(log.contains("a: STOPPING -> STOPPED (killed by signal TERM)"), "{log}");
    assert!(!log.contains("c: STOPPED -> STARTING"), "autostart = false: {log}");
}

#[test]
fn a_second_sigterm_kills_everything_at_once() {
    let mut sup = Supervisor::start(
        r#"
[programs.stubborn]
command = ["sh", "-c", "trap '' TERM INT; echo ready > {dir}/ready; while :; do sleep 1; done"]
stop_timeout = "60s"
"#,
    );
    wait_for(T, "the program to be ready", || {
        sup.path("ready").exists().then_some(()).ok_or_else(String::new)
    });
    sup.signal(libc::SIGTERM);
    sup.wait_log("stubborn: STARTING -> STOPPING", T);
    sup.signal(libc::SIGINT);
    let st = sup.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0));
    assert!(sup.log_text().contains("second SIGINT: killing every program now"));
}

#[test]
fn orphans_of_a_daemonizing_program_are_reaped() {
    let mut sup = Supervisor::start(
        r#"
[programs.forker]
command = ["sh", "-c", "for i in $(seq 50); do (sleep 0.2 &); done; echo spawned > {dir}/spawned; exec sleep 30"]
"#,
    );
    wait_for(T, "the orphans to be spawned", || {
        sup.path("spawned").exists().then_some(()).ok_or_else(String::new)
    });
    // The 50 orphans were re-parented to holden (a subreaper) and reaped by it.
    sup.wait_log("reaped orphan", T);
    wait_for(T, "50 orphans reaped", || {
        let n = sup.log_count("reaped orphan");
        if n >= 50 { Ok(()) } else { Err(format!("{n} reaped")) }
    });
    let zombies: Vec<u32> = sup
        .descendants()
        .into_iter()
        .filter(|p| proc_state(*p) == Some('Z'))
        .collect();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
}

#[test]
fn every_output_line_reaches_the_log_file() {
    let mut sup = Supervisor::start(
        r#"
[programs.talker]
command = ["sh", "-c", "seq 1 20000; echo done >&2"]
autorestart = "never"
stdout = "out/talker.log"
stderr = "out/talker.log"
"#,
    );
    sup.wait_log("talker: STARTING -> EXITED (exit status 0)", T);
    let text = std::fs::read_to_string(sup.path("out/talker.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20001, "every line once");
    for (i, l) in lines[..20000].iter().enumerate() {
        assert_eq!(*l, (i + 1).to_string());
    }
    assert_eq!(lines[20000], "done");
}

#[test]
fn working_directory_and_environment_are_set() {
    let sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        r#"
[programs.env]
command = ["sh", "-c", "pwd > {dir}/pwd; echo \"$GREETING\" > {dir}/greeting"]
directory = "sub"
environment = { GREETING = "hello there" }
autorestart = "never"
"#,
    );
    std::fs::create_dir_all(sup.path("sub")).unwrap();
    let mut sup = sup.spawn();
    sup.wait_log("env: STARTING -> EXITED (exit status 0)", T);
    assert_eq!(
        std::fs::read_to_string(sup.path("pwd")).unwrap().trim(),
        sup.path("sub").display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(sup.path("greeting")).unwrap().trim(),
        "hello there"
    );
}

#[test]
fn a_program_runs_as_its_configured_user() {
    if skip_unless_root("a_program_runs_as_its_configured_user") {
        return;
    }
    let mut sup = Supervisor::start(
        r#"
[programs.nobody]
command = "sleep 30"
user = "65534"
"#,
    );
    sup.wait_log("nobody: STARTING -> RUNNING", T);
    let pid = sup.descendants()[0];
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.split_whitespace().skip(1).all(|u| u == "65534"), "{uid_line}");
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(
        !groups.split_whitespace().skip(1).any(|g| g == "0"),
        "root group kept: {groups}"
    );
}

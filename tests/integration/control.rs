//! Integration tests: SPEC "Commands" (the client commands) and "Control socket", through the
//! real binary: `holden run` in a temp dir, driven by the `holden` CLI and by raw sockets.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

/// Wait until program `name` is in `state`; returns its status.
fn wait_state(sup: &Supervisor, name: &str, state: &str) -> Value {
    wait_state_within(T, sup, name, state)
}

fn pid_of(p: &Value) -> u32 {
    p["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {p}")) as u32
}

/// Replace the `[programs.*]` part of the running holden's config file.
fn rewrite_programs(sup: &Supervisor, programs: &str) {
    let old = fs::read_to_string(&sup.config).unwrap();
    let head = &old[..old.find("[programs.").unwrap_or(old.len())];
    fs::write(&sup.config, format!("{head}{programs}")).unwrap();
}

fn raw_connect(sup: &Supervisor) -> UnixStream {
    let s = UnixStream::connect(&sup.socket).expect("connect to the control socket");
    s.set_read_timeout(Some(T)).unwrap();
    s
}

fn read_line(s: &UnixStream) -> String {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("a line from holden");
    line
}

const SLEEPER: &str = r#"
[programs.web]
command = "sleep 1000"
min_uptime = "100ms"
"#;

#[test]
fn status_json_has_every_spec_field_with_the_right_types() {
    let sup = Supervisor::start(
        r#"
[programs.web]
command = "sleep 1000"
min_uptime = "100ms"

[programs.once]
command = "sh -c 'exit 3'"
autorestart = "never"
"#,
    );
    wait_state(&sup, "web", "RUNNING");
    wait_state(&sup, "once", "EXITED");
    let out = sup.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc.as_object().unwrap().len(), 1, "only `programs`: {doc}");
    let programs = doc["programs"].as_array().unwrap();
    assert_eq!(programs.len(), 2);
    let fields = [
        "name",
        "state",
        "pid",
        "since",
        "restarts",
        "last_exit",
        "memory_bytes",
        "memory_limit",
        "cpu_usage_usec",
        "cpu_limit",
        "pids_limit",
        "cgroup",
        "transient",
        "ready",
        "health",
        "status_text",
        // SPEC's `group` and `instance`, and `program` and `groups` (docs/control-protocol.md).
        "program",
        "instance",
        "group",
        "groups",
    ];
    for p in programs {
        let obj = p.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        let mut want = fields.to_vec();
        want.sort();
        assert_eq!(keys, want, "{p}");
        assert!(p["name"].is_string() && p["state"].is_string(), "{p}");
        assert!(p["pid"].is_null() || p["pid"].is_u64(), "{p}");
        assert!(p["since"].is_f64(), "since is a float: {p}");
        assert!(p["restarts"].is_u64(), "{p}");
        for k in ["memory_bytes", "memory_limit", "cpu_usage_usec", "pids_limit"] {
            assert!(p[k].is_null() || p[k].is_u64(), "{k}: {p}");
        }
        assert!(p["cpu_limit"].is_null() || p["cpu_limit"].is_number(), "{p}");
        assert!(p["cgroup"].is_null() || p["cgroup"].is_string(), "{p}");
        assert_eq!(p["transient"], false, "{p}");
        assert_eq!(p["ready"], p["state"] == "RUNNING", "{p}");
        assert_eq!(p["health"], Value::Null, "{p}");
        assert_eq!(p["status_text"], Value::Null, "{p}");
        assert_eq!(p["program"], p["name"], "{p}");
        assert_eq!(p["instance"], Value::Null, "{p}");
        assert_eq!(p["group"], Value::Null, "{p}");
        assert_eq!(p["groups"], serde_json::json!([]), "{p}");
    }
    let web = &programs.iter().find(|p| p["name"] == "web").unwrap();
    assert!(alive(pid_of(web)));
    let since = web["since"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(since <= now && now - since < 60.0, "since {since} is Unix time");
    let once = &programs.iter().find(|p| p["name"] == "once").unwrap();
    assert_eq!(once["pid"], Value::Null);
    assert_eq!(
        once["last_exit"],
        serde_json::json!({"code": 3, "signal": null, "oom_killed": false})
    );
    // The table has the same programs, one line each under the header.
    let out = sup.ctl(&["status"]);
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME "), "{table}");
    for col in ["STATE", "PID", "UPTIME", "RESTARTS", "LAST-EXIT", "CPU", "MEMORY"] {
        assert!(table.lines().next().unwrap().contains(col), "{table}");
    }
    assert!(
        table.lines().any(|l| l.starts_with("once ") && l.contains("exit 3")),
        "{table}"
    );
}

#[test]
fn start_stop_restart_and_signal_change_what_proc_shows() {
    let sup = Supervisor::start(
        r#"
[programs.web]
command = "sleep 1000"
min_uptime = "100ms"

[programs.trap]
command = ["sh", "-c", "trap 'echo got >> {dir}/usr1' USR1; while true; do sleep 0.05; done"]
min_uptime = "100ms"
"#,
    );
    let first = pid_of(&wait_state(&sup, "web", "RUNNING"));

    let out = sup.ctl(&["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "web: STOPPED\n");
    wait_for(T, "the stopped program's process to be gone", || {
        if alive(first) { Err("alive".into()) } else { Ok(()) }
    });

    let out = sup.ctl(&["start", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = pid_of(&sup.program_status("web"));
    assert_eq!(text(&out.stdout), format!("web: RUNNING (pid {second})\n"));
    assert!(alive(second) && second != first);
    let cmdline = fs::read(format!("/proc/{second}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x001000\x00");

    let out = sup.ctl(&["restart", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let third = pid_of(&sup.program_status("web"));
    assert_eq!(text(&out.stdout), format!("web: RUNNING (pid {third})\n"));
    assert_ne!(third, second);
    wait_for(T, "the restarted program's old process to be gone", || {
        if alive(second) { Err("alive".into()) } else { Ok(()) }
    });

    wait_state(&sup, "trap", "RUNNING");
    let out = sup.ctl(&["signal", "SIGUSR1", "trap"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "trap: sent SIGUSR1\n");
    wait_for(T, "the program to record USR1", || {
        let got = fs::read_to_string(sup.path("usr1")).unwrap_or_default();
        if got == "got\n" { Ok(()) } else { Err(got) }
    });

    let out = sup.ctl(&["stop", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "trap: STOPPED\nweb: STOPPED\n");
}

/// Real-time signals (34-64) reach a program and are named `RTMIN+n` where a name is shown;
/// 65 is no signal.
#[test]
fn signal_sends_real_time_signals_up_to_64() {
    let sup = Supervisor::start(
        r#"
[programs.rt]
command = "sleep 1000"
autorestart = "never"
min_uptime = "100ms"
"#,
    );
    wait_state(&sup, "rt", "RUNNING");
    let out = sup.ctl(&["signal", "65", "rt"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = sup.ctl(&["signal", "40", "rt"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "rt: sent SIGRTMIN+6\n");
    // sleep does not handle signal 40: its default action ends the process.
    let rt = wait_state(&sup, "rt", "EXITED");
    assert_eq!(
        rt["last_exit"],
        serde_json::json!({"code": null, "signal": "RTMIN+6", "oom_killed": false})
    );
}

#[test]
fn a_start_that_fails_exits_1_with_the_reason() {
    let sup = Supervisor::start(
        r#"
[programs.bad]
command = "sh -c 'exit 3'"
autostart = false
restart_delay = "50ms"
"#,
    );
    wait_state(&sup, "bad", "STOPPED");
    let out = sup.ctl(&["start", "bad"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("holden: bad did not start: BACKOFF (exit status 3; restart 1/5 in 50ms)"),
        "{err}"
    );
    let out = sup.ctl(&["start", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("\"nosuch\""), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_exit_2_without_a_holden() {
    let dir = tempdir();
    let sock = dir.path().join("none.sock");
    let s = sock.to_str().unwrap();
    let out = holden(&["signal", "NOPE", "web", "--socket", s]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "holden: \"NOPE\" is not a signal; use a name like HUP or SIGHUP, or a number from 1 to 64 but 32 and 33\n"
    );
    let out = holden(&["constrain", "web", "--memory", "lots", "--socket", s]);
    assert_eq!(out.status.code(), Some(2));
    let out = holden(&["status", "--socket", s]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("holden: cannot connect to {s}: no holden is running there (start one with `holden run`)\n")
    );
}

#[test]
fn the_socket_is_found_through_the_environment_and_the_config_file() {
    let sup = Supervisor::start(SLEEPER);
    wait_state(&sup, "web", "RUNNING");
    let sock = sup.socket.to_str().unwrap().to_string();
    let out = holden_in(Some(sup.dir.path()), &["status"], &[("HOLDEN_CONTROL_SOCKET", &sock)]);
    assert!(out.status.success(), "env: {}", text(&out.stderr));
    // ./supervisor.toml in the current folder.
    let out = holden_in(Some(sup.dir.path()), &["status"], &[]);
    assert!(out.status.success(), "./supervisor.toml: {}", text(&out.stderr));
    let cfg = sup.config.to_str().unwrap().to_string();
    let out = holden_in(None, &["status", "-c", &cfg], &[]);
    assert!(out.status.success(), "-c: {}", text(&out.stderr));
    let out = holden_in(None, &["status"], &[("HOLDEN_CONFIG", &cfg)]);
    assert!(out.status.success(), "$HOLDEN_CONFIG: {}", text(&out.stderr));
}

#[test]
fn add_and_remove_supervise_a_transient_program() {
    let sup = Supervisor::start(SLEEPER);
    wait_state(&sup, "web", "RUNNING");
    let out = sup.ctl(&[
        "add",
        "job",
        "--stdout",
        "job.log",
        "--",
        "sh",
        "-c",
        "echo hello; sleep 1000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job = wait_state(&sup, "job", "RUNNING");
    assert_eq!(job["transient"], true);
    wait_for(T, "the transient program's output in job.log", || {
        let s = fs::read_to_string(sup.path("job.log")).unwrap_or_default();
        if s.contains("hello") { Ok(()) } else { Err(s) }
    });
    let out = sup.ctl(&["add", "job", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already exists"), "{}", text(&out.stderr));
    let out = sup.ctl(&["remove", "web"]);
    assert_eq!(out.status.code(), Some(1), "a program of the file cannot be removed");
    let out = sup.ctl(&["remove", "job"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = pid_of(&job);
    wait_for(T, "the removed program to be gone", || {
        let names: Vec<Value> = sup.status().iter().map(|p| p["name"].clone()).collect();
        if names == [Value::from("web")] && !alive(pid) {
            Ok(())
        } else {
            Err(format!("{names:?}, pid alive: {}", alive(pid)))
        }
    });
}

#[test]
fn reload_adds_removes_and_restarts_exactly_the_right_programs() {
    let sup = Supervisor::start(
        r#"
[programs.same]
command = "sleep 1001"
min_uptime = "100ms"

[programs.gone]
command = "sleep 1002"
min_uptime = "100ms"

[programs.changed]
command = "sleep 1003"
min_uptime = "100ms"
"#,
    );
    let same = pid_of(&wait_state(&sup, "same", "RUNNING"));
    let gone = pid_of(&wait_state(&sup, "gone", "RUNNING"));
    let changed = pid_of(&wait_state(&sup, "changed", "RUNNING"));
    rewrite_programs(
        &sup,
        r#"
[programs.same]
command = "sleep 1001"
min_uptime = "100ms"

[programs.changed]
command = "sleep 1004"
min_uptime = "100ms"

[programs.new]
command = "sleep 1005"
min_uptime = "100ms"
"#,
    );
    let out = sup.ctl(&["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "added: new\nremoved: gone\nchanged: changed\n");
    let new = pid_of(&wait_state(&sup, "new", "RUNNING"));
    let changed2 = wait_for(T, "changed to run its new command", || {
        let p = sup.program_status("changed");
        match p["pid"].as_u64() {
            Some(pid) if pid as u32 != changed && p["state"] == "RUNNING" => Ok(pid as u32),
            _ => Err(p.to_string()),
        }
    });
    assert_eq!(
        fs::read(format!("/proc/{changed2}/cmdline")).unwrap(),
        b"sleep\x001004\x00"
    );
    assert_eq!(fs::read(format!("/proc/{new}/cmdline")).unwrap(), b"sleep\x001005\x00");
    wait_for(T, "gone to be forgotten and its process ended", || {
        let names: Vec<String> = sup
            .status()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        if !names.contains(&"gone".to_string()) && !alive(gone) && !alive(changed) {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
    let after = sup.program_status("same");
    assert_eq!(pid_of(&after), same, "an unchanged program keeps its process");
    assert_eq!(after["state"], "RUNNING");

    // Reloading the same file again changes nothing.
    let out = sup.ctl(&["reload"]);
    assert_eq!(text(&out.stdout), "reloaded: nothing changed\n");
}

#[test]
fn an_invalid_reload_is_refused_and_the_running_set_is_untouched() {
    let sup = Supervisor::start(SLEEPER);
    let pid = pid_of(&wait_state(&sup, "web", "RUNNING"));
    rewrite_programs(
        &sup,
        r#"
[programs.web]
command = "sleep 1000"
stop_timeout = "ten"

[programs.other]
command = "sleep 1"
"#,
    );
    let out = sup.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        err.contains("supervisor.toml:") && err.contains("stop_timeout"),
        "{err}"
    );
    let programs = sup.status();
    assert_eq!(programs.len(), 1, "{programs:?}");
    assert_eq!(pid_of(&programs[0]), pid);
    assert!(alive(pid));
}

#[test]
fn a_second_holden_on_the_same_socket_is_refused() {
    let sup = Supervisor::start(SLEEPER);
    let pid = pid_of(&wait_state(&sup, "web", "RUNNING"));
    let out = holden(&["run", "-c", sup.config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "another holden is running on {}; stop it first",
            sup.socket.display()
        )),
        "{}",
        text(&out.stderr)
    );
    // The first one still serves, and nothing ran twice.
    let programs = sup.status();
    assert_eq!(pid_of(&programs[0]), pid);
    let sleepers = sup
        .descendants()
        .into_iter()
        .filter(|p| fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default() == b"sleep\x001000\x00")
        .count();
    assert_eq!(sleepers, 1);
}

#[test]
fn a_stale_socket_from_a_killed_holden_is_replaced() {
    let mut sup = Supervisor::start(SLEEPER);
    wait_state(&sup, "web", "RUNNING");
    sup.signal(9);
    sup.wait_exit(T);
    assert!(sup.socket.exists(), "a SIGKILLed holden leaves its socket file");
    let sup = sup.spawn();
    wait_state(&sup, "web", "RUNNING");
}

#[test]
fn a_stranger_is_refused_and_served_once_in_allow_uids() {
    if skip_unless_root("a_stranger_is_refused_and_served_once_in_allow_uids") {
        return;
    }
    let as_nobody = |sup: &Supervisor| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            HOLDEN,
            "status",
            "--socket",
        ])
        .arg(&sup.socket)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("HOLDEN_CONTROL_SOCKET")
        .env_remove("HOLDEN_CONFIG");
        wait_output(cmd.spawn().expect("setpriv"), T, "holden status as uid 65534")
    };
    // The socket file lets anyone connect: the peer's uid is what refuses.
    let open = "cgroups = \"off\"\nsocket_mode = \"0666\"\n";
    let sup = Supervisor::start_with(open, SLEEPER);
    fs::set_permissions(sup.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    wait_state(&sup, "web", "RUNNING");
    let out = as_nobody(&sup);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "holden: permission denied on {}: uid 65534 may not use this socket; run as root, or ask for uid 65534 in read_uids (status, logs) or allow_uids (also start, stop, restart, signal)\n",
            sup.socket.display()
        )
    );
    assert!(out.stdout.is_empty());
    drop(sup);

    let allowed = "cgroups = \"off\"\nsocket_mode = \"0666\"\nallow_uids = [65534]\n";
    let sup = Supervisor::start_with(allowed, SLEEPER);
    fs::set_permissions(sup.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    wait_state(&sup, "web", "RUNNING");
    let out = as_nobody(&sup);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with("web ")),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn garbage_a_huge_line_a_half_request_and_200_idle_connections_leave_holden_serving() {
    let sup = Supervisor::start(SLEEPER);
    let pid = pid_of(&wait_state(&sup, "web", "RUNNING"));

    let mut junk = raw_connect(&sup);
    junk.write_all(b"\x00\xffnot json at all\n").unwrap();
    assert!(read_line(&junk).contains("\"code\":\"bad_request\""));
    junk.write_all(b"{\"cmd\":\"explode\"}\n").unwrap();
    assert!(read_line(&junk).contains("\"code\":\"unknown_command\""));

    // 10 MiB without a newline: holden answers too_large and closes, whatever we still write.
    let huge = raw_connect(&sup);
    let mut w = huge.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..10 {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    assert!(read_line(&huge).contains("\"code\":\"too_large\""));
    writer.join().unwrap();

    let mut half = raw_connect(&sup);
    half.write_all(b"{\"cmd\":\"sta").unwrap();
    let idle: Vec<UnixStream> = (0..200).map(|_| raw_connect(&sup)).collect();

    let started = Instant::now();
    let programs = sup.status();
    assert_eq!(pid_of(&programs[0]), pid);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "status took {:?}",
        started.elapsed()
    );

    // The half-written request is completed and answered; the idle ones are still open.
    half.write_all(b"tus\"}\n").unwrap();
    assert!(read_line(&half).starts_with("{\"ok\":true,\"programs\":[{"));
    let mut last = idle.last().unwrap();
    last.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    assert!(read_line(last).starts_with("{\"ok\":true"));
    drop(idle);
    assert!(sup.ctl(&["status"]).status.success());
}

#[test]
fn monitor_through_a_pipe_prints_one_snapshot_per_interval() {
    let sup = Supervisor::start(SLEEPER);
    let pid = pid_of(&wait_state(&sup, "web", "RUNNING"));
    let mut child = Command::new(HOLDEN)
        .args(["monitor", "--interval", "200ms", "--socket"])
        .arg(&sup.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + T;
    let mut lines = Vec::new();
    while lines.iter().filter(|l: &&String| l.starts_with("web ")).count() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("monitor printed only {lines:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    assert!(!all.contains('\x1b'), "no terminal escapes into a pipe: {all:?}");
    // Each snapshot: a time stamp, the header, the program, a blank line.
    let stamps: Vec<&String> = lines.iter().filter(|l| humantime::parse_rfc3339(l).is_ok()).collect();
    assert!(stamps.len() >= 3, "{all}");
    let rows: Vec<&String> = lines.iter().filter(|l| l.starts_with("web ")).collect();
    assert!(rows.len() >= 3, "{all}");
    assert!(
        rows.iter()
            .all(|r| r.contains("RUNNING") && r.contains(&pid.to_string())),
        "{all}"
    );
}

#[test]
fn shutdown_waits_until_holden_has_exited() {
    let mut sup = Supervisor::start(SLEEPER);
    let pid = pid_of(&wait_state(&sup, "web", "RUNNING"));
    let out = sup.ctl(&["shutdown"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "holden is shutting down\nholden stopped\n");
    let st = sup.wait_exit(T);
    assert_eq!(st.code(), Some(0));
    assert!(!alive(pid));
    assert!(!sup.socket.exists(), "holden removes its socket at exit");
}

#[test]
fn watchers_receive_state_changes_as_events() {
    let sup = Supervisor::start(SLEEPER);
    wait_state(&sup, "web", "RUNNING");
    let mut w = raw_connect(&sup);
    w.write_all(b"{\"cmd\":\"watch\"}\n").unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"ok\":true,\"programs\":["), "{line}");
    let out = sup.ctl(&["stop", "web"]);
    assert!(out.status.success());
    let mut events = Vec::new();
    while !events.iter().any(|e: &Value| e["to"] == "STOPPED") {
        let mut line = String::new();
        r.read_line(&mut line).expect("an event");
        events.push(serde_json::from_str(&line).unwrap());
    }
    assert_eq!(events[0]["event"], "transition");
    assert_eq!(events[0]["name"], "web");
    assert_eq!(events[0]["from"], "RUNNING");
    assert_eq!(events[0]["to"], "STOPPING");
    let mut rest = Vec::new();
    w.write_all(b"{\"cmd\":\"status\",\"names\":[\"web\"]}\n").unwrap();
    r.read_until(b'\n', &mut rest).unwrap();
    assert!(text(&rest).contains("\"state\":\"STOPPED\""), "{}", text(&rest));
}

#[test]
fn constrain_memory_changes_the_cgroup_file_and_keeps_the_pid() {
    if skip_unless_root("constrain_memory_changes_the_cgroup_file_and_keeps_the_pid") {
        return;
    }
    let cg = unique_cgroup_path();
    let sup = Supervisor::start_with(
        &format!("cgroups = \"required\"\ncgroup_path = \"{cg}\"\n"),
        r#"
[programs.web]
command = "sleep 1000"
min_uptime = "100ms"
memory_limit = "100MB"
"#,
    );
    let pid = pid_of(&wait_state(&sup, "web", "RUNNING"));
    let out = sup.ctl(&["constrain", "web", "--memory", "50MB", "--pids", "32"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let limit = fs::read_to_string(format!("/sys/fs/cgroup/memory{cg}/web/memory.limit_in_bytes")).unwrap();
    // v1 rounds to the page size.
    assert_eq!(limit.trim().parse::<u64>().unwrap() / 4096, 50_000_000 / 4096);
    let pids = fs::read_to_string(format!("/sys/fs/cgroup/pids{cg}/web/pids.max")).unwrap();
    assert_eq!(pids.trim(), "32");
    let p = sup.program_status("web");
    assert_eq!(pid_of(&p), pid, "constrain does not restart");
    assert_eq!(p["memory_limit"].as_u64().unwrap() / 4096, 50_000_000 / 4096);
    assert_eq!(p["pids_limit"], 32);
    assert!(p["cgroup"].as_str().unwrap().ends_with(&format!("{cg}/web")), "{p}");
    assert!(p["memory_bytes"].is_u64(), "{p}");

    // Kept across a restart (until a reload changes the program); "max" lifts it.
    let out = sup.ctl(&["restart", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        sup.program_status("web")["memory_limit"].as_u64().unwrap() / 4096,
        50_000_000 / 4096
    );
    let out = sup.ctl(&["constrain", "web", "--memory", "max"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sup.program_status("web")["memory_limit"], Value::Null);
    assert_eq!(sup.program_status("web")["pids_limit"], 32, "other limits unchanged");
}

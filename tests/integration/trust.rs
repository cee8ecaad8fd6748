//! Integration tests for issue 14's trust boundary, through the real binary: who may do what on
//! the control socket, the fd budget, what `check` refuses, bounded warnings.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

const SLEEPER: &str = r#"
[programs.web]
command = "sleep 1000"
min_uptime = "100ms"
"#;

/// Run `holden ARGS --socket SOCKET` as uid and gid 65534, with no supplementary groups.
fn as_nobody(sup: &Supervisor, args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        HOLDEN,
        args[0],
        "--socket",
    ])
    .arg(&sup.socket)
    .args(&args[1..])
    .current_dir("/")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .env_remove("HOLDEN_CONTROL_SOCKET")
    .env_remove("HOLDEN_CONFIG");
    wait_output(
        cmd.spawn().expect("setpriv"),
        T,
        &format!("holden {args:?} as uid 65534"),
    )
}

/// A holden whose socket anyone may connect to, with `grants` in `[supervisor]`.
fn open_holden(grants: &str) -> Supervisor {
    let sup = Supervisor::start_with(
        &format!("cgroups = \"off\"\nsocket_mode = \"0666\"\n{grants}\n"),
        SLEEPER,
    );
    fs::set_permissions(sup.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    wait_state_within(T, &sup, "web", "RUNNING");
    sup
}

fn assert_refused(out: &Output, sup: &Supervisor, verb: &str) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{verb}: {err}");
    let want = format!(
        "holden: permission denied on {}: uid 65534 may not {verb}: ",
        sup.socket.display()
    );
    assert!(err.starts_with(&want), "{want:?} is not the start of {err:?}");
    err
}

#[test]
fn allow_uids_may_read_and_operate_but_only_admin_uids_may_administer() {
    if skip_unless_root("allow_uids_may_read_and_operate_but_only_admin_uids_may_administer") {
        return;
    }
    let sup = open_holden("allow_uids = [65534]");
    let out = as_nobody(&sup, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).lines().any(|l| l.starts_with("web ")));

    // Administering is refused with a sentence that does not send people to allow_uids.
    let pwned = sup.path("pwned");
    let add = ["add", "x", "--", "/bin/sh", "-c", &format!("id > {}", pwned.display())];
    for (args, verb) in [
        (&add[..], "add"),
        (&["shutdown"][..], "shutdown"),
        (&["constrain", "web", "--pids", "10"][..], "constrain"),
        (&["reload"][..], "reload"),
        (&["reopen"][..], "reopen"),
        (&["remove", "web"][..], "remove"),
    ] {
        let err = assert_refused(&as_nobody(&sup, args), &sup, verb);
        assert!(err.contains("admin_uids"), "{err}");
        assert!(!err.contains("allow_uids"), "{err}");
    }
    assert!(!pwned.exists(), "a refused add ran its command");
    assert_eq!(sup.program_status("web")["state"], "RUNNING");
    let log = sup.log_text();
    assert!(
        log.contains("control: refused add from uid 65534: it needs admin access"),
        "{log}"
    );

    // Operating is allowed.
    let out = as_nobody(&sup, &["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sup.program_status("web")["state"], "STOPPED");
    let out = as_nobody(&sup, &["start", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    drop(sup);

    // An administrator may add.
    let sup = open_holden("admin_uids = [65534]");
    let out = as_nobody(&sup, &["add", "x", "--", "sleep", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(wait_state_within(T, &sup, "x", "RUNNING")["transient"], true);
}

#[test]
fn read_uids_may_only_read() {
    if skip_unless_root("read_uids_may_only_read") {
        return;
    }
    let sup = open_holden("read_uids = [65534]");
    let out = as_nobody(&sup, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"web\""));
    for (args, verb) in [
        (&["stop", "web"][..], "stop"),
        (&["signal", "HUP", "web"][..], "signal"),
    ] {
        let err = assert_refused(&as_nobody(&sup, args), &sup, verb);
        assert!(err.contains("allow_uids"), "{err}");
    }
    let err = assert_refused(&as_nobody(&sup, &["shutdown"]), &sup, "shutdown");
    assert!(!err.contains("allow_uids"), "{err}");
    assert_eq!(sup.program_status("web")["state"], "RUNNING");

    // A reload changes the grants at once: operating is allowed, then nothing is.
    let reload_with = |from: &str, to: &str| {
        let text = fs::read_to_string(&sup.config).unwrap();
        assert!(text.contains(from), "{text}");
        fs::write(&sup.config, text.replace(from, to)).unwrap();
        let out = sup.ctl(&["reload"]);
        assert!(out.status.success(), "{}", self::text(&out.stderr));
    };
    reload_with("read_uids = [65534]", "allow_uids = [65534]");
    let out = as_nobody(&sup, &["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    reload_with("allow_uids = [65534]", "");
    let out = as_nobody(&sup, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("may not use this socket"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        sup.log_text()
            .contains("reload: control socket grants now read_uids [], allow_uids [], admin_uids []"),
        "{}",
        sup.log_text()
    );
}

/// Start `holden run` on `sup`'s config under `prlimit ARGS --`, and wait for its socket.
fn spawn_under_prlimit(mut sup: Supervisor, limit: &str) -> Supervisor {
    let child = Command::new("prlimit")
        .arg(limit)
        .arg("--")
        .arg(HOLDEN)
        .arg("run")
        .arg("-c")
        .arg(&sup.config)
        .current_dir(sup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(sup.path("holden.stderr")).unwrap())
        .env_remove("HOLDEN_CONFIG")
        .env_remove("HOLDEN_CONTROL_SOCKET")
        .env("RUST_LOG", "debug")
        .process_group(0)
        .spawn()
        .expect("prlimit holden run");
    // prlimit execs holden: same pid.
    sup.pid = child.id();
    sup.child = Some(child);
    let socket = sup.socket.clone();
    wait_for(T, "holden to bind its control socket", || {
        UnixStream::connect(&socket).map(drop).map_err(|e| e.to_string())
    });
    sup
}

fn pid_of(v: &serde_json::Value) -> u64 {
    v["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {v}"))
}

fn kill9(pid: u64) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

const LOGGED: &str = r#"
[programs.web]
command = "sleep 1000"
min_uptime = "100ms"
restart_delay = "50ms"
max_restarts = 2
stdout = "web.log"
"#;

#[test]
fn clients_past_the_fd_budget_get_busy_and_a_dying_program_still_restarts() {
    let sup = spawn_under_prlimit(Supervisor::prepare("cgroups = \"off\"", LOGGED), "--nofile=64:64");
    let first = pid_of(&wait_state_within(T, &sup, "web", "RUNNING"));
    // 64 open files, 32 + 8 for one program kept: 24 clients at once. Hold 60 idle ones.
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(UnixStream::connect(&sup.socket).expect("connect"));
    }
    let last = held.last().unwrap();
    last.set_read_timeout(Some(T)).unwrap();
    let mut line = String::new();
    BufReader::new(last).read_line(&mut line).expect("an answer");
    assert!(line.contains("\"code\":\"busy\""), "{line}");
    assert!(line.contains("too many connections (24 at most)"), "{line}");
    let out = sup.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("too many connections"),
        "{}",
        text(&out.stderr)
    );
    let log = sup.log_text();
    assert!(
        log.contains("kept for supervising 1 program); refusing one more with busy"),
        "{log}"
    );
    assert!(
        log.matches("refusing one more with busy").count() <= 2,
        "busy WARN lines are not rate-limited:\n{log}"
    );

    // The program dies while the clients hold their connections: it restarts, no FATAL.
    kill9(first);
    wait_for(T, "web to be RUNNING again", || {
        let log = sup.log_text();
        match log.matches("web: STARTING -> RUNNING").count() {
            2 => Ok(()),
            _ => Err(log),
        }
    });
    assert!(!sup.log_text().contains("FATAL"), "{}", sup.log_text());

    // The clients go: everyone is served again.
    drop(held);
    let again = wait_for(T, "status to be served again", || {
        let out = sup.ctl(&["status", "--json"]);
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(text(&out.stderr))
        }
    });
    let v: serde_json::Value = serde_json::from_slice(&again).unwrap();
    let web = &v["programs"][0];
    assert_eq!(web["state"], "RUNNING", "{web}");
    assert_ne!(pid_of(web), first);
}

#[test]
fn a_spawn_out_of_fds_is_retried_until_they_come_back_never_fatal() {
    if skip_unless_root("a_spawn_out_of_fds_is_retried_until_they_come_back_never_fatal") {
        return;
    }
    let sup = Supervisor::start(LOGGED);
    let first = pid_of(&wait_state_within(T, &sup, "web", "RUNNING"));
    let pid = sup.pid.to_string();
    let prlimit = |limit: &str| {
        let out = Command::new("prlimit")
            .args(["--pid", &pid, limit])
            .output()
            .expect("prlimit");
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    // Fewer open files than holden holds now: no new pipe can be made.
    let held = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    prlimit(&format!("--nofile={}:1024", held - 2));
    kill9(first);
    // More tries than max_restarts = 2, each one backing off (50ms doubling up to 1s) and logged.
    wait_for(T, "several retries", || {
        let log = sup.log_text();
        match log.matches("out of a resource, trying again in").count() {
            n if n > 3 => Ok(()),
            _ => Err(log),
        }
    });
    let log = sup.log_text();
    assert!(log.contains("Too many open files"), "{log}");
    assert!(!log.contains("FATAL"), "{log}");
    prlimit("--nofile=1024:1024");
    wait_for(T, "web to run again", || {
        let log = sup.log_text();
        match log.matches("web: STARTING -> RUNNING").count() {
            2 => Ok(()),
            _ => Err(log),
        }
    });
    let web = sup.program_status("web");
    assert_eq!(web["state"], "RUNNING", "{web}");
    assert_eq!(web["restarts"], 1, "{web}");
}

/// `holden check` on `text`: exit 2 with nothing on stdout; the error lines.
fn check_errors(text: &str) -> Vec<String> {
    let dir = tempdir();
    fs::write(dir.path().join("bad.toml"), text).expect("write config");
    let out = holden_in(Some(dir.path()), &["check", "-c", "bad.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "holden check accepted:\n{text}\n{out:?}");
    assert!(out.stdout.is_empty());
    text_lines(&out.stderr)
}

fn text_lines(b: &[u8]) -> Vec<String> {
    text(b).lines().map(str::to_string).collect()
}

#[test]
fn check_refuses_cgroup_file_names_huge_limits_and_nul_bytes_with_file_line_col() {
    for name in [
        "cgroup.procs",
        "tasks",
        "pids.max",
        "memory.limit_in_bytes",
        "cpu.x",
        "notify_on_release",
        "release_agent",
        "io.weight",
        "perf_event.y",
    ] {
        let lines = check_errors(&format!("[programs.\"{name}\"]\ncommand = \"sleep 10\"\n"));
        assert_eq!(lines.len(), 1, "{name}: {lines:#?}");
        assert!(lines[0].starts_with("bad.toml:1:11: programs."), "{lines:?}");
        assert!(
            lines[0].contains(&format!(": found the program name \"{name}\" (")),
            "{lines:?}"
        );
        assert!(lines[0].contains("cgroup interface file"), "{lines:?}");
    }
    // Names merely containing a dot, or a controller's name without one, are fine.
    let dir = tempdir();
    fs::write(
        dir.path().join("ok.toml"),
        "[programs.\"web.1\"]\ncommand = \"sleep 1\"\n[programs.memory]\ncommand = \"sleep 1\"\n[programs.\"my.cpu.x\"]\ncommand = \"sleep 1\"\n",
    )
    .unwrap();
    let out = holden_in(Some(dir.path()), &["check", "-c", "ok.toml"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let lines = check_errors("[programs.web]\ncommand = \"sleep 10\"\npids_limit = 4194305\n");
    assert_eq!(
        lines,
        [
            "bad.toml:3:14: programs.web.pids_limit: found 4194305, expected at most 4194304 (the kernel's pid_max limit; leave it out for no limit)"
        ]
    );
    let lines = check_errors("[programs.web]\ncommand = \"sleep 10\"\nmemory_limit = \"99999999TiB\"\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("bad.toml:3:16: programs.web.memory_limit: found \"99999999TiB\", expected a size"),
        "{lines:?}"
    );

    let lines =
        check_errors("[programs.web]\ncommand = [\"sleep\", \"1\\u0000\"]\nenvironment = { A = \"x\\u0000y\" }\n");
    assert_eq!(
        lines,
        [
            "bad.toml:2:21: programs.web.command[1]: found \"1\\0\", with a NUL byte, expected text without NUL bytes (exec and paths cannot carry them)",
            "bad.toml:3:21: programs.web.environment.A: found \"x\\0y\", expected a string without NUL",
        ]
    );
    let lines = check_errors("[programs.web]\ncommand = \"sleep\\u00001\"\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("bad.toml:2:11: programs.web.command: found"),
        "{lines:?}"
    );
}

#[test]
fn a_missing_directory_is_named_and_add_refuses_cgroup_names_and_nul() {
    let mut sup = Supervisor::start(
        r#"
[programs.web]
command = "sleep 1000"
directory = "/nonexistent-holden-dir"
"#,
    );
    sup.wait_log(
        "web: STARTING -> FATAL (cannot spawn sleep: working directory /nonexistent-holden-dir: no such file or directory)",
        T,
    );
    for (args, want) in [
        (
            &["add", "cgroup.procs", "--", "sleep", "1"][..],
            "holden: add cgroup.procs: names starting with \"cgroup.\" are cgroup interface files, and each program gets a cgroup of its name; choose another name\n",
        ),
        (
            &["add", "tasks", "--", "sleep", "1"][..],
            "holden: add tasks: \"tasks\" is a cgroup interface file, and each program gets a cgroup of its name; choose another name\n",
        ),
    ] {
        let out = sup.ctl(args);
        assert_eq!(text(&out.stderr), want, "{args:?}");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // Values out of range get a sentence, with the number readable.
    let out = sup.ctl(&["constrain", "web", "--memory", "99999999TiB"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "holden: --memory \"99999999TiB\" is too large (past 16 EiB); use max to lift the limit\n"
    );
    let out = sup.ctl(&["constrain", "web", "--cpu", "1e308"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "holden: a cpu limit of 1e308 CPUs is out of range; the most is 1000000, or \"max\" to lift it\n"
    );
    // A NUL cannot be passed on a command line: straight to the socket.
    let mut s = UnixStream::connect(&sup.socket).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"{\"cmd\":\"add\",\"name\":\"x\",\"command\":[\"sleep\",\"1\\u0000\"],\"directory\":\"/\"}\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert_eq!(
        line,
        "{\"ok\":false,\"error\":{\"code\":\"invalid_argument\",\"message\":\"add x: a NUL byte in the command or a path; exec and paths cannot carry one\"}}\n"
    );
    assert_eq!(sup.status().len(), 1);
}

#[test]
fn refused_connections_are_logged_once_per_interval() {
    if skip_unless_root("refused_connections_are_logged_once_per_interval") {
        return;
    }
    let sup = open_holden("");
    for _ in 0..5 {
        let out = as_nobody(&sup, &["status"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("may not use this socket"),
            "{}",
            text(&out.stderr)
        );
    }
    let log = sup.log_text();
    assert_eq!(
        log.matches("control: refused a connection from uid 65534").count(),
        1,
        "{log}"
    );
    assert_eq!(sup.program_status("web")["state"], "RUNNING");
}

#[test]
fn holden_raises_its_open_files_limit_and_programs_keep_the_one_it_was_started_with() {
    let sup = spawn_under_prlimit(
        Supervisor::prepare(
            "cgroups = \"off\"",
            r#"
[programs.plain]
command = ["sh", "-c", "ulimit -Sn > {dir}/plain.nofile; exec sleep 1000"]
[programs.own]
command = ["sh", "-c", "ulimit -Sn > {dir}/own.nofile; exec sleep 1000"]
rlimits = { nofile = 200 }
"#,
        ),
        "--nofile=100:4096",
    );
    let limits = fs::read_to_string(format!("/proc/{}/limits", sup.pid)).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["Max", "open", "files", "4096", "4096", "files"],
        "{limits}"
    );
    let read = |name: &str| {
        let path = sup.path(name);
        wait_for(T, &format!("{name} written"), || {
            fs::read_to_string(&path)
                .ok()
                .filter(|s| s.ends_with('\n'))
                .ok_or_else(|| "not yet".to_string())
        })
    };
    assert_eq!(read("plain.nofile"), "100\n");
    assert_eq!(read("own.nofile"), "200\n");
    assert!(
        sup.log_text()
            .contains("open files limit raised from 100 to 4096 (the hard limit)"),
        "{}",
        sup.log_text()
    );
}

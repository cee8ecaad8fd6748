//! Integration tests: readiness and health (SPEC "Readiness and health"), through the real
//! binary: sd_notify from `systemd-notify` in a shell script, the notification fd, probes,
//! start timeout, watchdog, liveness, and `depends_on` waiting for ready.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const T: Duration = Duration::from_secs(20);

fn has_systemd_notify(test: &str) -> bool {
    if std::process::Command::new("systemd-notify")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    skip(test, "systemd-notify is not installed (.ci/setup-systemd.sh)");
    false
}

/// The value of `var` in the environment of process `pid`.
fn env_of(pid: u32, var: &str) -> Option<String> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|b| *b == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(&format!("{var}=")).map(str::to_string)
    })
}

fn pid_of(p: &Value) -> u32 {
    p["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {p}")) as u32
}

/// The time of a log line containing `needle` (RFC 3339 at its start), as seconds of the day.
fn log_time(log: &str, needle: &str) -> f64 {
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{log}"));
    // 2026-11-23T07:41:00.123Z
    let t = &line[11..23];
    let h: f64 = t[0..2].parse().unwrap();
    let m: f64 = t[3..5].parse().unwrap();
    let s: f64 = t[6..12].parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

#[test]
fn systemd_notify_from_a_script_makes_it_running_and_min_uptime_does_not() {
    if !has_systemd_notify("systemd_notify_from_a_script_makes_it_running_and_min_uptime_does_not") {
        return;
    }
    let mut sup = Supervisor::start(
        r#"
[programs.db]
command = ["sh", "-c", "while [ ! -e {dir}/go ]; do sleep 0.05; done; s=$(date +%s%N); systemd-notify --ready --status='accepting connections'; echo $(( $(date +%s%N) - s )) > {dir}/took; exec sleep 1000"]
readiness = "notify"
min_uptime = "100ms"
"#,
    );
    let p = wait_state_within(T, &sup, "db", "STARTING");
    let pid = pid_of(&p);
    let socket = env_of(pid, "NOTIFY_SOCKET").expect("NOTIFY_SOCKET in the program's environment");
    let meta = fs::metadata(std::path::Path::new(&socket).parent().unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o700, "its directory is private");
    // Well past min_uptime, still not ready.
    let started = Instant::now();
    wait_for(T, "min_uptime to pass", || {
        (started.elapsed() > Duration::from_millis(600))
            .then_some(())
            .ok_or("not yet".to_string())
    });
    let p = sup.program_status("db");
    assert_eq!(p["state"], "STARTING", "{p}");
    assert_eq!(p["ready"], false, "{p}");
    // A stranger (this test, not a process of db) is not heard.
    let stranger = UnixDatagram::unbound().unwrap();
    stranger.send_to(b"READY=1", &socket).unwrap();
    sup.wait_log("from a stranger", T);
    assert_eq!(sup.program_status("db")["state"], "STARTING");

    fs::write(sup.path("go"), "").unwrap();
    let p = wait_state_within(T, &sup, "db", "RUNNING");
    assert_eq!(p["ready"], true, "{p}");
    assert_eq!(p["status_text"], "accepting connections", "{p}");
    assert_eq!(p["health"], Value::Null, "{p}");
    sup.wait_log("db: STARTING -> RUNNING (ready: READY=1)", T);
    // systemd-notify waits for its BARRIER=1 fd to be closed (5 s at most): holden closes it.
    let took: u64 = wait_for(T, "systemd-notify to return", || {
        fs::read_to_string(sup.path("took"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or("not yet".to_string())
    });
    assert!(
        took < 2_000_000_000,
        "systemd-notify took {took} ns: its barrier was not answered"
    );
    // The socket goes with the run.
    assert!(sup.ctl(&["stop", "db"]).status.success());
    wait_for(T, "the notify socket to be removed", || {
        (!std::path::Path::new(&socket).exists())
            .then_some(())
            .ok_or(socket.clone())
    });
}

#[test]
fn a_short_lived_systemd_notify_is_never_lost() {
    if !has_systemd_notify("a_short_lived_systemd_notify_is_never_lost") {
        return;
    }
    // --no-block: systemd-notify sends and exits at once, before holden reads the datagram:
    // the race that makes systemd drop READY=1. Ten instances, ten READY=1 heard.
    let sup = Supervisor::start(
        r#"
[programs.quick]
command = ["sh", "-c", "systemd-notify --no-block --ready; exec sleep 1000"]
readiness = "notify"
start_timeout = "15s"
instances = 10
"#,
    );
    for i in 0..10 {
        wait_state_within(T, &sup, &format!("quick@{i}"), "RUNNING");
    }
    assert_eq!(sup.log_count("(ready: READY=1)"), 10, "{}", sup.log_text());
    assert_eq!(sup.log_count("not ready after"), 0);
}

#[test]
fn garbage_on_the_notify_socket_is_counted_and_ignored() {
    let mut sup = Supervisor::start(
        r#"
[programs.noisy]
command = ["python3", "-c", "import os, socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\np = os.environ['NOTIFY_SOCKET']\nfor m in [b'\\xff\\xfe', b'A' * 10000, b'', b'FOO=bar\\nREADY=2', b'MAINPID=1', b'EXTEND_TIMEOUT_USEC=x']:\n    s.sendto(m, p)\ns.sendto(b'STATUS=fine\\nREADY=1', p)\nimport time\ntime.sleep(1000)\n"]
readiness = "notify"
"#,
    );
    let p = wait_state_within(T, &sup, "noisy", "RUNNING");
    assert_eq!(p["status_text"], "fine");
    let log = sup.wait_log("not UTF-8", T);
    assert!(log.contains("oversized"), "{log}");
    assert!(log.contains("FOO=bar"), "{log}");
    assert!(log.contains("MAINPID=1 is not a process of noisy"), "{log}");
    assert_eq!(p["pid"], sup.program_status("noisy")["pid"], "MAINPID=1 was refused");
}

#[test]
fn a_newline_on_the_notification_fd_makes_it_running() {
    let mut sup = Supervisor::start(
        r#"
[programs.s6]
command = ["sh", "-c", "while [ ! -e {dir}/go ]; do sleep 0.05; done; echo >&5; exec sleep 1000"]
readiness = { fd = 5 }
min_uptime = "50ms"
"#,
    );
    let p = wait_state_within(T, &sup, "s6", "STARTING");
    let pid = pid_of(&p);
    assert!(
        fs::read_link(format!("/proc/{pid}/fd/5"))
            .unwrap()
            .to_string_lossy()
            .starts_with("pipe:"),
        "fd 5 is the notification pipe"
    );
    fs::write(sup.path("go"), "").unwrap();
    wait_state_within(T, &sup, "s6", "RUNNING");
    sup.wait_log("s6: STARTING -> RUNNING (ready: newline on fd 5)", T);
}

#[test]
fn not_ready_within_start_timeout_is_a_failure_and_start_says_why() {
    let mut sup = Supervisor::start(
        r#"
[programs.mute]
command = ["sleep", "1000"]
readiness = "notify"
start_timeout = "1s"
autostart = false
max_restarts = 1
restart_delay = "100ms"
"#,
    );
    let t0 = Instant::now();
    let out = sup.ctl(&["start", "mute"]);
    assert!(!out.status.success(), "start of a program that is never ready fails");
    let said = text(&out.stderr) + &text(&out.stdout);
    assert!(said.contains("not ready after 1s"), "{said}");
    assert!(t0.elapsed() >= Duration::from_millis(900));
    sup.wait_log("mute: STARTING -> STOPPING (not ready after 1s; sent SIGTERM)", T);
    sup.wait_log("mute: STOPPING -> BACKOFF (not ready after 1s; restart 1/1", T);
    // Never ready counts as a quick exit: max_restarts = 1 gives up at the second.
    wait_state_within(T, &sup, "mute", "FATAL");
    sup.wait_log("not ready after 1s; gave up after 1 restarts", T);
}

#[test]
fn start_returns_once_the_program_is_ready() {
    if !has_systemd_notify("start_returns_once_the_program_is_ready") {
        return;
    }
    let sup = Supervisor::start(
        r#"
[programs.slow]
command = ["sh", "-c", "sleep 1.5; systemd-notify --ready; exec sleep 1000"]
readiness = "notify"
autostart = false
min_uptime = "100ms"
"#,
    );
    let t0 = Instant::now();
    let out = sup.ctl(&["start", "slow"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(t0.elapsed() >= Duration::from_millis(1400), "returned before READY=1");
    assert_eq!(sup.program_status("slow")["state"], "RUNNING");
}

#[test]
fn a_missed_watchdog_stops_and_restarts_it() {
    let mut sup = Supervisor::start(
        r#"
[programs.dog]
command = ["python3", "-c", "import os, socket, time\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\np = os.environ['NOTIFY_SOCKET']\ns.sendto(b'READY=1', p)\nfor _ in range(6):\n    time.sleep(0.2)\n    s.sendto(b'WATCHDOG=1', p)\ntime.sleep(1000)\n"]
readiness = "notify"
watchdog = "1s"
restart_delay = "100ms"
"#,
    );
    let p = wait_state_within(T, &sup, "dog", "RUNNING");
    assert_eq!(env_of(pid_of(&p), "WATCHDOG_USEC").as_deref(), Some("1000000"));
    let p = sup.program_status("dog");
    assert_eq!(p["health"]["ok"], true, "{p}");
    let log = sup.wait_log(
        "dog: RUNNING -> STOPPING (watchdog: no WATCHDOG=1 for 1s; sent SIGTERM)",
        T,
    );
    let ready = log_time(&log, "dog: STARTING -> RUNNING");
    let stopped = log_time(&log, "dog: RUNNING -> STOPPING");
    // Pets for 1.2 s, then 1 s of silence.
    assert!(stopped - ready > 1.9, "{ready} {stopped}");
    sup.wait_log(
        "dog: STOPPING -> BACKOFF (watchdog: no WATCHDOG=1 for 1s; restart 1/5",
        T,
    );
}

#[test]
fn watchdog_trigger_is_a_failure_at_once() {
    let mut sup = Supervisor::start(
        r#"
[programs.trig]
command = ["sh", "-c", "systemd-notify --ready 2>/dev/null || python3 -c \"import os,socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\"; while [ ! -e {dir}/go ]; do sleep 0.05; done; python3 -c \"import os,socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'WATCHDOG=trigger', os.environ['NOTIFY_SOCKET'])\"; exec sleep 1000"]
readiness = "notify"
watchdog = "30s"
autorestart = "never"
"#,
    );
    wait_state_within(T, &sup, "trig", "RUNNING");
    fs::write(sup.path("go"), "").unwrap();
    wait_state_within(T, &sup, "trig", "EXITED");
    sup.wait_log("trig: STOPPING -> EXITED (watchdog: WATCHDOG=trigger)", T);
}

/// A free TCP port on 127.0.0.1 (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny HTTP server: /healthz answers 200 until the file `sick` exists, then 503.
const HEALTH_SERVER: &str = r#"
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 503 if os.path.exists(sys.argv[2]) else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'ok' if code == 200 else b'sick')
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

#[test]
fn an_http_server_that_turns_unhealthy_is_stopped_and_restarted() {
    let port = free_port();
    let mut sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        &format!(
            r#"
[programs.web]
command = ["sh", "-c", "sleep 1; exec python3 {{dir}}/server.py {port} {{dir}}/sick"]
readiness = {{ http = "http://127.0.0.1:{port}/healthz", interval = "100ms" }}
liveness = {{ http = "http://127.0.0.1:{port}/healthz", interval = "200ms", timeout = "1s", failures = 3 }}
min_uptime = "100ms"
restart_delay = "100ms"
"#
        ),
    );
    fs::write(sup.path("server.py"), HEALTH_SERVER).unwrap();
    sup = sup.spawn();
    let log = sup.wait_log("web: STARTING -> RUNNING (ready: probe http 200)", T);
    let started = log_time(&log, "web: STOPPED -> STARTING");
    let ready = log_time(&log, "web: STARTING -> RUNNING");
    assert!(ready - started >= 0.9, "ready only once it listens: {started} {ready}");
    wait_for(T, "a passing liveness probe in status", || {
        let p = sup.program_status("web");
        (p["health"]["ok"] == true && p["health"]["last"] == "http 200" && p["ready"] == true)
            .then_some(())
            .ok_or(p.to_string())
    });
    fs::write(sup.path("sick"), "").unwrap();
    sup.wait_log("web: liveness probe failed 1/3: http 503", T);
    wait_for(T, "failing health in status", || {
        let p = sup.program_status("web");
        (p["health"]["ok"] == false && p["health"]["last"] == "http 503")
            .then_some(())
            .ok_or(p.to_string())
    });
    sup.wait_log("web: RUNNING -> STOPPING (liveness: http 503 3/3; sent SIGTERM)", T);
    sup.wait_log("web: STOPPING -> BACKOFF (liveness: http 503 3/3; restart 1/5", T);
    fs::remove_file(sup.path("sick")).unwrap();
    wait_for(T, "web back to RUNNING", || {
        (sup.log_count("web: STARTING -> RUNNING (ready: probe http 200)") == 2)
            .then_some(())
            .ok_or(sup.log_text())
    });
}

#[test]
fn a_tcp_port_that_opens_late_is_ready_only_then() {
    let port = free_port();
    let mut sup = Supervisor::start(&format!(
        r#"
[programs.late]
command = ["sh", "-c", "sleep 1.5; exec python3 -m http.server {port} --bind 127.0.0.1"]
readiness = {{ tcp = "127.0.0.1:{port}", interval = "100ms" }}
min_uptime = "100ms"
stdout = "null"
stderr = "null"
"#
    ));
    let log = sup.wait_log("late: STARTING -> RUNNING (ready: probe tcp: connected)", T);
    let started = log_time(&log, "late: STOPPED -> STARTING");
    let ready = log_time(&log, "late: STARTING -> RUNNING");
    assert!(ready - started >= 1.4, "{started} {ready}");
    assert!(ready - started < 5.0, "{started} {ready}");
}

#[test]
fn exec_probes_run_in_the_programs_cgroup_and_their_output_is_the_reason() {
    let root = is_root();
    let cg = unique_cgroup_path();
    let extra = if root {
        format!("cgroups = \"auto\"\ncgroup_path = \"{cg}\"\n")
    } else {
        "cgroups = \"off\"\n".to_string()
    };
    let mut sup = Supervisor::start_with(
        &extra,
        r#"
[programs.job]
command = ["sleep", "1000"]
readiness = { exec = ["sh", "-c", "cat /proc/self/cgroup > {dir}/probe-cgroup; test -e {dir}/ready"], interval = "100ms" }
liveness = { exec = ["sh", "-c", "test ! -e {dir}/down || { echo checking; echo db unreachable; exit 2; }"], interval = "100ms", failures = 2 }
autorestart = "never"
"#,
    );
    // The shell creates the file before cat fills it: wait for its content.
    wait_for(T, "a readiness probe to run", || {
        match fs::read_to_string(sup.path("probe-cgroup")).map_err(|e| e.to_string())? {
            seen if seen.is_empty() => Err("empty so far".to_string()),
            seen => Ok(seen),
        }
    });
    assert_eq!(sup.program_status("job")["state"], "STARTING");
    if root {
        let seen = fs::read_to_string(sup.path("probe-cgroup")).unwrap();
        assert!(
            seen.contains(&format!("{cg}/job")),
            "the probe ran in job's cgroup: {seen}"
        );
    }
    fs::write(sup.path("ready"), "").unwrap();
    sup.wait_log("job: STARTING -> RUNNING (ready: probe exec ok)", T);
    fs::write(sup.path("down"), "").unwrap();
    sup.wait_log(
        "job: RUNNING -> STOPPING (liveness: exec exit status 2: db unreachable 2/2; sent SIGTERM)",
        T,
    );
    wait_state_within(T, &sup, "job", "EXITED");
    sup.wait_log(
        "job: STOPPING -> EXITED (liveness: exec exit status 2: db unreachable 2/2)",
        T,
    );
}

#[test]
fn a_probe_that_hangs_is_killed_at_its_timeout() {
    let mut sup = Supervisor::start(
        r#"
[programs.hang]
command = ["sleep", "1000"]
readiness = { exec = ["sh", "-c", "echo $$ >> {dir}/probe-pids; exec sleep 1000"], interval = "200ms", timeout = "300ms" }
start_timeout = "30s"
"#,
    );
    sup.wait_log("hang: readiness probe: exec: timed out after 300ms", T);
    let pids = wait_for(T, "two probes", || {
        let t = fs::read_to_string(sup.path("probe-pids")).unwrap_or_default();
        let pids: Vec<u32> = t.lines().filter_map(|l| l.parse().ok()).collect();
        if pids.len() >= 2 { Ok(pids) } else { Err(t) }
    });
    wait_for(T, "the first probe to be gone", || {
        (!alive(pids[0])).then_some(()).ok_or(format!("{} alive", pids[0]))
    });
    assert_eq!(sup.program_status("hang")["state"], "STARTING");
}

#[test]
fn a_dependent_starts_only_after_its_dependency_is_ready_or_completed() {
    let mut sup = Supervisor::start(
        r#"
[programs.db]
command = ["sh", "-c", "sleep 1; python3 -c \"import os,socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\"; exec sleep 1000"]
readiness = "notify"
min_uptime = "100ms"

[programs.migrate]
command = ["sh", "-c", "sleep 0.5; exit 0"]
autorestart = "never"

[programs.web]
command = "sleep 1000"
depends_on = { db = "ready", migrate = "completed" }
min_uptime = "100ms"
"#,
    );
    wait_state_within(T, &sup, "web", "RUNNING");
    let log = sup.wait_log("web: STOPPED -> STARTING", T);
    assert!(
        log.contains("web: waiting for db to be RUNNING and migrate to complete"),
        "{log}"
    );
    let db_ready = log_time(&log, "db: STARTING -> RUNNING (ready: READY=1)");
    let migrated = log_time(&log, "migrate: STARTING -> EXITED (exit status 0)");
    let web = log_time(&log, "web: STOPPED -> STARTING");
    assert!(
        web >= db_ready && web >= migrated,
        "db {db_ready} migrate {migrated} web {web}"
    );
    // db is ready only after its 1 s, not at min_uptime.
    let db_started = log_time(&log, "db: STOPPED -> STARTING");
    assert!(db_ready - db_started >= 0.9, "{db_started} {db_ready}");
}

#[test]
fn a_failed_one_shot_or_a_fatal_dependency_leaves_the_dependent_stopped() {
    let mut sup = Supervisor::start(
        r#"
[programs.migrate]
command = ["sh", "-c", "exit 3"]
autorestart = "never"

[programs.broken]
command = "/nonexistent/command"

[programs.web]
command = "sleep 1000"
depends_on = { migrate = "completed" }

[programs.app]
command = "sleep 1000"
depends_on = ["broken"]
autostart = false
"#,
    );
    sup.wait_log(
        "web: STOPPED (not started: dependency migrate completed with a failure (exit status 3))",
        T,
    );
    assert_eq!(sup.program_status("web")["state"], "STOPPED");
    wait_state_within(T, &sup, "broken", "FATAL");
    let out = sup.ctl(&["start", "app"]);
    assert!(!out.status.success());
    let said = text(&out.stderr) + &text(&out.stdout);
    assert!(said.contains("dependency broken is FATAL"), "{said}");
    assert_eq!(sup.program_status("app")["state"], "STOPPED");
}

#[test]
fn a_real_daemon_speaking_sd_notify_dbus_daemon() {
    // Debian's dbus-daemon is built with libsystemd: it sends READY=1 once its bus listens.
    if std::process::Command::new("dbus-daemon")
        .arg("--version")
        .output()
        .is_err()
    {
        skip(
            "a_real_daemon_speaking_sd_notify_dbus_daemon",
            "dbus-daemon is not installed",
        );
        return;
    }
    let mut sup = Supervisor::start(
        r#"
[programs.bus]
command = ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--address=unix:path={dir}/bus"]
readiness = "notify"
start_timeout = "15s"
min_uptime = "10ms"
stderr = "null"
"#,
    );
    wait_state_within(T, &sup, "bus", "RUNNING");
    sup.wait_log("bus: STARTING -> RUNNING (ready: READY=1)", T);
    // Ready means listening: its socket answers.
    std::os::unix::net::UnixStream::connect(sup.path("bus")).expect("the bus listens once READY=1 came");
}

#[test]
fn a_real_daemon_as_another_user_postgres() {
    // Debian's postgres is built --with-systemd: READY=1 once it accepts connections. It runs
    // as the user postgres, so the notify socket's directory is that user's.
    let initdb = "/usr/lib/postgresql/15/bin/initdb";
    if !is_root()
        || !std::path::Path::new(initdb).exists()
        || !fs::read_to_string("/etc/passwd").unwrap().contains("\npostgres:")
    {
        skip(
            "a_real_daemon_as_another_user_postgres",
            "needs root, the user postgres and PostgreSQL 15",
        );
        return;
    }
    let port = free_port();
    let data = tempdir();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(data.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let pg = data.path().join("pg");
    let mut sup = Supervisor::start(&format!(
        r#"
[programs.db]
command = ["sh", "-c", "{initdb} -A trust -U postgres -D {pg} >/dev/null && exec /usr/lib/postgresql/15/bin/postgres -D {pg} -k {sock} -p {port} -c listen_addresses=''"]
user = "postgres"
directory = "/"
readiness = "notify"
start_timeout = "60s"
stop_signal = "INT"
stdout = "null"
stderr = "null"
"#,
        pg = pg.display(),
        sock = data.path().display(),
    ));
    let p = wait_state_within(Duration::from_secs(60), &sup, "db", "RUNNING");
    sup.wait_log("db: STARTING -> RUNNING (ready: READY=1)", T);
    let pid = pid_of(&p);
    let socket = env_of(pid, "NOTIFY_SOCKET").unwrap();
    use std::os::unix::fs::MetadataExt;
    let dir = fs::metadata(std::path::Path::new(&socket).parent().unwrap()).unwrap();
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let uid: u32 = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|u| u.parse().ok())
        .unwrap();
    assert_eq!(dir.uid(), uid, "the socket's directory belongs to postgres");
    assert!(
        data.path().join(format!(".s.PGSQL.{port}")).exists(),
        "ready means it listens"
    );
    assert!(sup.ctl(&["stop", "db"]).status.success());
}

/// A program that sends `lines` (one datagram each, `\n` inside a line for several
/// assignments) to its NOTIFY_SOCKET, then runs `then` (a shell command line).
fn notifier(lines: &[&str], then: &str) -> String {
    let sends: Vec<String> = lines
        .iter()
        .map(|l| format!("python3 -c \\\"import os,socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'{l}', os.environ['NOTIFY_SOCKET'])\\\""))
        .collect();
    format!("[\"sh\", \"-c\", \"{}; {then}\"]", sends.join("; "))
}

#[test]
fn extend_timeout_usec_moves_the_start_timeout() {
    let cmd = notifier(
        &["EXTEND_TIMEOUT_USEC=4000000"],
        "sleep 2; exec python3 -c \\\"import os,socket,time; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', os.environ['NOTIFY_SOCKET']); time.sleep(1000)\\\"",
    );
    let mut sup = Supervisor::start(&format!(
        "[programs.slow]\ncommand = {cmd}\nreadiness = \"notify\"\nstart_timeout = \"1s\"\n"
    ));
    sup.wait_log("slow: STARTING -> RUNNING (ready: READY=1)", T);
    assert_eq!(sup.log_count("not ready after"), 0, "{}", sup.log_text());
}

#[test]
fn mainpid_hands_the_program_to_another_of_its_processes() {
    // The shell starts the real server in the background, names it with MAINPID= and exits:
    // holden follows the server, and its end is the program's end.
    let cmd = "[\"sh\", \"-c\", \"sleep 1000 & python3 -c \\\"import os,socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(('MAINPID=%s\\\\\\\\nREADY=1' % sys.argv[1]).encode(), os.environ['NOTIFY_SOCKET'])\\\" $!; wait\"]";
    let mut sup = Supervisor::start(&format!(
        "[programs.fork]\ncommand = {cmd}\nreadiness = \"notify\"\nautorestart = \"never\"\n"
    ));
    let log = sup.wait_log("(MAINPID)", T);
    let p = wait_state_within(T, &sup, "fork", "RUNNING");
    let server = pid_of(&p);
    assert_eq!(
        fs::read_to_string(format!("/proc/{server}/comm")).unwrap().trim(),
        "sleep",
        "{log}"
    );
    // The sleep is the shell's child, not holden's: its death is seen on its pidfd.
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(server as i32).unwrap(),
        rustix::process::Signal::TERM,
    );
    wait_state_within(T, &sup, "fork", "EXITED");
}

/// Context switches of process `pid` so far (each wakeup of a sleeping holden is one).
fn switches(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_probe_wakes_holden_only_at_its_interval_and_no_probe_costs_nothing() {
    let port = free_port();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let sup = Supervisor::start(&format!(
        r#"
[programs.plain]
command = "sleep 1000"
min_uptime = "10ms"

[programs.probed]
command = "sleep 1000"
autostart = false
readiness = {{ tcp = "127.0.0.1:{port}", interval = "100ms" }}
liveness = {{ tcp = "127.0.0.1:{port}", interval = "250ms" }}
"#
    ));
    wait_state_within(T, &sup, "plain", "RUNNING");
    // holden's main thread: the only one.
    let measure = || {
        let before = switches(sup.pid);
        let t0 = Instant::now();
        wait_for(T, "a 2 s window", || {
            (t0.elapsed() >= Duration::from_secs(2))
                .then_some(())
                .ok_or(String::new())
        });
        switches(sup.pid) - before
    };
    let idle = measure();
    assert!(idle <= 1, "{idle} wakeups in 2 s with no probe");
    assert!(sup.ctl(&["start", "probed"]).status.success());
    let probing = measure();
    // 8 probes of a connect each: a few wakeups per probe, not a busy loop.
    assert!(
        (4..=60).contains(&probing),
        "{probing} wakeups in 2 s with a 250 ms probe"
    );
    drop(listener);
}

#[test]
fn not_ready_says_what_the_last_probe_saw() {
    let port = free_port();
    let mut sup = Supervisor::start(&format!(
        r#"
[programs.closed]
command = "sleep 1000"
readiness = {{ tcp = "127.0.0.1:{port}", interval = "100ms" }}
start_timeout = "1s"
autorestart = "never"
"#
    ));
    sup.wait_log(
        "closed: STARTING -> STOPPING (not ready after 1s (last probe: tcp: connection refused); sent SIGTERM)",
        T,
    );
    wait_state_within(T, &sup, "closed", "EXITED");
}

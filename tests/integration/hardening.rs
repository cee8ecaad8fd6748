//! Integration tests for issue 14 (hardening), through the real binary: strict requests, no
//! inherited fds, an fd budget, one holden per cgroup_path, nothing left unsupervised.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

const SLEEPER: &str = r#"
[programs.web]
command = "sleep 1000"
min_uptime = "100ms"
"#;

/// Send one raw line, read one response line.
fn ask(sup: &Supervisor, line: &str) -> Value {
    let mut s = UnixStream::connect(&sup.socket).expect("connect to the control socket");
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).expect("a line from holden");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{reply:?}: {e}"))
}

fn error_of(v: &Value) -> (String, String) {
    assert_eq!(v["ok"], false, "{v}");
    (
        v["error"]["code"].as_str().unwrap().to_string(),
        v["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn duplicate_keys_out_of_range_values_and_wrong_types_get_one_clear_sentence() {
    let mut sup = Supervisor::start(SLEEPER);
    sup.wait_log("web: STARTING -> RUNNING", T);

    let (code, msg) = error_of(&ask(&sup, r#"{"cmd":"status","cmd":"shutdown"}"#));
    assert_eq!(code, "bad_request", "{msg}");
    assert!(msg.contains("\"cmd\" twice"), "{msg}");
    let (code, msg) = error_of(&ask(&sup, r#"{"cmd":"status","names":["web"],"names":["x"]}"#));
    assert_eq!(code, "bad_request", "{msg}");
    assert!(msg.contains("\"names\" twice"), "{msg}");

    let (code, msg) = error_of(&ask(&sup, r#"{"cmd":"constrain","name":"web","cpu":1e308}"#));
    assert_eq!(code, "invalid_argument", "{msg}");
    assert!(msg.contains("out of range"), "{msg}");
    let (code, msg) = error_of(&ask(&sup, r#"{"cmd":"constrain","name":"web","pids":99999999}"#));
    assert_eq!(code, "invalid_argument", "{msg}");

    for (line, field) in [
        (r#"{"cmd":"constrain","name":"web","memory":true}"#, "memory"),
        (r#"{"cmd":"constrain","name":"web","cpu":[1]}"#, "cpu"),
        (r#"{"cmd":"constrain","name":"web","memory":-5}"#, "memory"),
        (r#"{"cmd":"status","names":"web"}"#, "names"),
        (r#"{"cmd":"signal","signal":9,"names":["web"]}"#, "signal"),
    ] {
        let (code, msg) = error_of(&ask(&sup, line));
        assert_eq!(code, "bad_request", "{line}: {msg}");
        assert!(msg.contains(&format!("field `{field}`")), "{line}: {msg}");
        assert!(!msg.contains("untagged") && !msg.contains("variant"), "{line}: {msg}");
    }

    // Still serving, and the program was never touched.
    let p = sup.program_status("web");
    assert_eq!(p["state"], "RUNNING");
    assert_eq!(p["cpu_limit"], Value::Null);
}

#[test]
fn a_second_holden_on_the_same_cgroup_path_refuses_to_start_and_names_the_first() {
    if skip_unless_root("a_second_holden_on_the_same_cgroup_path_refuses_to_start_and_names_the_first") {
        return;
    }
    let path = unique_cgroup_path();
    let first = Supervisor::start_with(&format!("cgroup_path = \"{path}\"\ncgroups = \"required\""), SLEEPER);
    let pid = wait_state_within(T, &first, "web", "RUNNING")["pid"].clone();
    // A literal string: the harness does not record the path for the second one, so its
    // clean-up cannot touch the first one's cgroups.
    let mut second = Supervisor::start_with(&format!("cgroup_path = '{path}'\ncgroups = \"required\""), SLEEPER);
    let status = second.wait_exit(T);
    assert_eq!(status.code(), Some(1), "the second holden fails");
    let stderr = std::fs::read_to_string(second.path("holden.stderr")).unwrap();
    let want = format!(
        "another holden (pid {}, socket {}) already supervises programs in",
        first.pid,
        first.socket.display()
    );
    assert!(stderr.contains(&want), "{want:?} not in:\n{stderr}");
    // The first one's program was not touched.
    assert_eq!(wait_state_within(T, &first, "web", "RUNNING")["pid"], pid);
    assert_eq!(first.log_count("leftover"), 0, "{}", first.log_text());
}

#[test]
fn a_crash_loop_whose_runs_outlive_min_uptime_ends_fatal_at_the_start_limit() {
    let sup = Supervisor::start(
        r#"
[programs.loop]
command = ["sh", "-c", "sleep 0.2; exit 3"]
min_uptime = "50ms"
restart_delay = "50ms"
start_limit_burst = 3
start_limit_interval = "1m"
"#,
    );
    let st = wait_state_within(T, &sup, "loop", "FATAL");
    assert_eq!(st["restarts"], 3, "{st}");
    let log = sup.log_text();
    assert!(
        log.contains("loop: RUNNING -> FATAL (exit status 3; gave up: 4 failed runs within 1m (start_limit_burst))"),
        "{log}"
    );
}

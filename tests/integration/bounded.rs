//! Integration tests for issue 14, "bounded work per event": a rotation's cost has a bound
//! (`log_backups` at most 1000, only existing backups renamed).

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

#[test]
fn check_refuses_more_than_1000_log_backups() {
    let dir = tempdir();
    let text = "[programs.web]\ncommand = \"sleep 10\"\nlog_backups = 100000000\n";
    fs::write(dir.path().join("bad.toml"), text).unwrap();
    let out = holden_in(Some(dir.path()), &["check", "-c", "bad.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "bad.toml:3:15: programs.web.log_backups: found 100000000, expected a number of files from 0 to 1000"
        ),
        "{err}"
    );
    fs::write(dir.path().join("ok.toml"), text.replace("100000000", "1000")).unwrap();
    let out = holden_in(Some(dir.path()), &["check", "-c", "ok.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_rotation_through_a_full_set_of_1000_backups_keeps_the_loop_answering() {
    let sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        r#"
[programs.web]
command = ["sh", "-c", "while [ ! -e go ]; do sleep 0.01; done; seq 1 2000; sleep 1000"]
stdout = "web.log"
log_max_bytes = "4KB"
log_backups = 1000
"#,
    );
    let live = sup.path("web.log");
    for n in 1..=999 {
        fs::write(format!("{}.{n}", live.display()), format!("old {n}\n")).unwrap();
    }
    let sup = sup.spawn();
    wait_state_within(T, &sup, "web", "RUNNING");
    fs::write(sup.path("go"), "").unwrap();
    // seq 1 2000 is 8893 bytes: two rotations, each through the whole chain.
    let top = format!("{}.1000", live.display());
    wait_for(T, "the chain to reach web.log.1000", || {
        let t = fs::read_to_string(&top).unwrap_or_default();
        (t == "old 998\n").then_some(()).ok_or(format!("{t:?}"))
    });
    let started = Instant::now();
    assert_eq!(sup.program_status("web")["state"], "RUNNING");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        started.elapsed()
    );
    assert!(!std::path::Path::new(&format!("{}.1001", live.display())).exists());
    let newest = fs::read_to_string(format!("{}.1", live.display())).unwrap();
    assert!(newest.ends_with('\n') && !newest.starts_with("old"), "{newest:?}");
    let live_text = fs::read_to_string(&live).unwrap();
    assert!(live_text.ends_with("2000\n"), "{live_text:?}");
}

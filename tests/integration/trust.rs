//! Integration tests for issue 14's trust boundary, through the real binary: who may do what on
//! the control socket, the fd budget, what `check` refuses, bounded warnings.

use std::fs;
use std::os::unix::fs::PermissionsExt;
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
}

//! Integration tests: program output (SPEC `stdout`, `stderr`, `log_max_bytes`, `log_backups`,
//! `log_timestamps`, SIGUSR1, `holden logs`), through the real binary. They check what a user
//! would: the log files, holden's stderr, holden's memory in /proc.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::harness::*;

const T: Duration = Duration::from_secs(30);

fn backup(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The backups, oldest first, then the live file.
fn files_of(path: &Path) -> Vec<Vec<u8>> {
    let mut files = vec![std::fs::read(path).unwrap_or_default()];
    let mut k = 1;
    while let Ok(b) = std::fs::read(backup(path, k)) {
        files.push(b);
        k += 1;
    }
    files.reverse();
    files
}

fn seq(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("{i}\n")).collect()
}

/// `2026-11-23T07:41:00.123Z rest` -> (time, rest).
fn split_stamp(line: &str) -> (SystemTime, &str) {
    let (stamp, rest) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
    assert_eq!(stamp.len(), 24, "not RFC 3339 with milliseconds: {stamp:?}");
    let t = humantime::parse_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp:?} is not RFC 3339: {e}"));
    (t, rest)
}

/// Wait until program `name` went to EXITED (from STARTING or RUNNING: a slow machine may
/// take longer than `min_uptime`). Returns holden's log.
fn wait_exited(sup: &Supervisor, name: &str) -> String {
    let needle = format!(" {name}: ");
    wait_for(T, &format!("{name} to exit"), || {
        let log = sup.log_text();
        match log.lines().any(|l| l.contains(&needle) && l.contains(" -> EXITED")) {
            true => Ok(log),
            false => Err(format!("\n{log}")),
        }
    })
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn two_million_lines_with_1mb_rotation_are_all_logged_once_in_order() {
    let sup = Supervisor::start(
        r#"
[programs.counter]
command = "seq 1 2000000"
autorestart = "never"
stdout = "logs/counter.log"
stderr = "null"
log_max_bytes = "1MB"
log_backups = 100
"#,
    );
    wait_exited(&sup, "counter");
    let path = sup.path("logs/counter.log");
    let files = files_of(&path);
    assert!(files.len() >= 15, "expected 15 files of 1 MB, found {}", files.len());
    for (i, f) in files.iter().enumerate() {
        assert!(f.len() <= 1_000_000, "file {i} has {} bytes", f.len());
        assert_eq!(f.last(), Some(&b'\n'), "file {i} ends in the middle of a line");
    }
    let all = String::from_utf8(files.concat()).unwrap();
    // Compare line by line first, for a readable failure.
    for (n, line) in all.lines().enumerate() {
        assert_eq!(line, (n + 1).to_string(), "line {} is wrong", n + 1);
    }
    assert_eq!(all, seq(1, 2_000_000));
}

#[test]
fn stdout_and_stderr_in_one_rotated_file_keep_every_line_whole_and_in_order() {
    let sup = Supervisor::start(
        r#"
[programs.both]
# sed writes 4 KiB blocks, cutting lines anywhere: only a line-aware merge keeps them whole.
command = ["sh", "-c", "seq 1 500000 | sed s/^/out/ & seq 1 500000 | sed s/^/err/ >&2; wait"]
autorestart = "never"
stdout = "both.log"
stderr = "stdout"
log_max_bytes = "1MB"
log_backups = 100
"#,
    );
    wait_exited(&sup, "both");
    let files = files_of(&sup.path("both.log"));
    assert!(files.len() >= 8, "expected rotations, found {} files", files.len());
    let all = String::from_utf8(files.concat()).unwrap();
    let (mut out, mut err) = (0u32, 0u32);
    for line in all.lines() {
        let (counter, n) = match (line.strip_prefix("out"), line.strip_prefix("err")) {
            (Some(n), None) => (&mut out, n),
            (None, Some(n)) => (&mut err, n),
            _ => panic!("torn line {line:?}"),
        };
        *counter += 1;
        assert_eq!(n.parse::<u32>().ok(), Some(*counter), "torn or reordered line {line:?}");
    }
    assert_eq!((out, err), (500_000, 500_000));
}

#[test]
fn a_program_that_writes_1mb_and_exits_at_once_has_all_of_it_logged_before_its_exit_line() {
    let sup = Supervisor::start(
        r#"
[programs.burst]
command = ["sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' y"]
autorestart = "never"
stdout = "burst.log"
"#,
    );
    wait_exited(&sup, "burst");
    // Read at once: the transition line is written only after the pipe was drained.
    let got = std::fs::read(sup.path("burst.log")).unwrap();
    assert_eq!(got.len(), 1_000_000);
    assert!(got.iter().all(|&b| b == b'y'));
}

/// dash's `echo` is a builtin: one `write(2)` per line, the writer whose output holden reads
/// in batches (docs/logs.md, "Batches").
const LINE_WRITER: &str = "i=0; while [ $i -lt 20000 ]; do echo $i; i=$((i+1)); done";

#[test]
fn a_line_writer_that_dies_in_the_middle_of_a_batch_has_every_line_logged_in_order() {
    let sup = Supervisor::start(&format!(
        r#"
[programs.lines]
command = ["sh", "-c", "{LINE_WRITER}"]
autorestart = "never"
stdout = "lines.log"
"#
    ));
    wait_exited(&sup, "lines");
    let got = std::fs::read_to_string(sup.path("lines.log")).unwrap();
    assert_eq!(got, seq(0, 19_999));
}

#[test]
fn the_last_line_before_a_pause_reaches_the_file_while_the_program_still_runs() {
    let sup = Supervisor::start(&format!(
        r#"
[programs.pause]
command = ["sh", "-c", "{LINE_WRITER}; echo last; exec sleep 600"]
stdout = "pause.log"
"#
    ));
    // Batches hold output for at most 1 ms: "last" must not wait for more output or a death.
    let log = sup.path("pause.log");
    wait_for(Duration::from_secs(10), "the last line in the file", || {
        let got = std::fs::read_to_string(&log).unwrap_or_default();
        match got.ends_with("19999\nlast\n") {
            true => Ok(()),
            false => Err(format!(
                "{} bytes, ending {:?}",
                got.len(),
                &got[got.len().saturating_sub(20)..]
            )),
        }
    });
    let state = sup.program_status("pause")["state"].clone();
    assert!(
        state == "STARTING" || state == "RUNNING",
        "the program still sleeps: {state}"
    );
    let got = std::fs::read_to_string(&log).unwrap();
    assert_eq!(got, format!("{}last\n", seq(0, 19_999)));
}

#[test]
fn a_line_on_stderr_after_a_burst_on_stdout_comes_after_it_in_a_shared_file() {
    let sup = Supervisor::start(&format!(
        r#"
[programs.both]
command = ["sh", "-c", "{LINE_WRITER}; echo mark >&2; sleep 0.3; echo after"]
autorestart = "never"
stdout = "both.log"
stderr = "both.log"
"#
    ));
    wait_exited(&sup, "both");
    let got = std::fs::read_to_string(sup.path("both.log")).unwrap();
    assert_eq!(got, format!("{}mark\nafter\n", seq(0, 19_999)));
}

#[test]
fn inherit_prefixes_each_line_with_the_program_name_on_holdens_stderr() {
    let sup = Supervisor::start(
        r#"
[programs.web]
command = ["sh", "-c", "echo hello; echo oops >&2; printf 'no newline'"]
autorestart = "never"
"#,
    );
    wait_exited(&sup, "web");
    let stderr = std::fs::read_to_string(sup.path("holden.stderr")).unwrap();
    for want in ["web | hello\n", "web | oops\n", "web | no newline\n"] {
        assert!(
            stderr.contains(want),
            "{want:?} missing from holden's stderr:\n{stderr}"
        );
    }
}

#[test]
fn timestamps_are_rfc3339_with_milliseconds_and_monotonic() {
    let sup = Supervisor::start(
        r#"
[programs.stamped]
command = ["sh", "-c", "seq 1 20000; sleep 0.1; seq 20001 40000"]
autorestart = "never"
stdout = "stamped.log"
log_timestamps = true
"#,
    );
    wait_exited(&sup, "stamped");
    let text = std::fs::read_to_string(sup.path("stamped.log")).unwrap();
    let mut last = SystemTime::UNIX_EPOCH;
    let mut n = 0;
    for line in text.lines() {
        let (t, rest) = split_stamp(line);
        assert!(t >= last, "time went back at {line:?}");
        n += 1;
        assert_eq!(rest, n.to_string());
        last = t;
    }
    assert_eq!(n, 40_000);
    let first = split_stamp(text.lines().next().unwrap()).0;
    // The two batches were read at different times (100 ms apart when the machine is idle;
    // the exact gap depends on load, so only its sign is asserted).
    assert!(last.duration_since(first).unwrap() > Duration::ZERO);
    let age = SystemTime::now().duration_since(last).unwrap();
    assert!(
        age < Duration::from_secs(60),
        "the timestamps are not now (UTC): {age:?} old"
    );
}

/// How a reopen is asked for.
enum Reopen {
    Signal,
    Command,
}

#[test]
fn sigusr1_after_an_external_mv_makes_holden_write_to_a_new_file() {
    reopen_after_mv(Reopen::Signal);
}

#[test]
fn holden_reopen_after_an_external_mv_makes_holden_write_to_a_new_file() {
    reopen_after_mv(Reopen::Command);
}

fn reopen_after_mv(how: Reopen) {
    let mut sup = Supervisor::start(
        r#"
[programs.ticker]
command = ["sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); echo $i; sleep 0.01; done"]
stdout = "ticker.log"
"#,
    );
    let path = sup.path("ticker.log");
    let moved = sup.path("ticker.log.rotated");
    wait_for(T, "the first lines", || {
        let n = std::fs::read_to_string(&path).unwrap_or_default().lines().count();
        if n >= 5 { Ok(()) } else { Err(format!("{n} lines")) }
    });
    std::fs::rename(&path, &moved).unwrap();
    // Until the reopen, holden goes on writing to the moved file.
    match how {
        Reopen::Signal => sup.signal(libc_sigusr1()),
        Reopen::Command => {
            let out = sup.ctl(&["reopen"]);
            assert!(
                out.status.success(),
                "holden reopen: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    wait_for(T, "lines in a new ticker.log", || {
        let n = std::fs::read_to_string(&path).unwrap_or_default().lines().count();
        if n >= 5 { Ok(()) } else { Err(format!("{n} lines")) }
    });
    sup.log_text()
        .contains("reopen")
        .then_some(())
        .expect("holden logged the reopen");
    let old = std::fs::read_to_string(&moved).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    let last_old: u32 = old.lines().last().unwrap().parse().unwrap();
    let first_new: u32 = new.lines().next().unwrap().parse().unwrap();
    assert_eq!(first_new, last_old + 1, "a line was lost or doubled at the reopen");
    assert_eq!(old, seq(1, last_old));
}

fn libc_sigusr1() -> i32 {
    rustix::process::Signal::USR1.as_raw()
}

#[test]
fn a_10mb_line_without_newline_does_not_grow_holdens_memory() {
    let mut sup = Supervisor::start(
        r#"
[programs.long]
command = ["sh", "-c", "while [ ! -e go ]; do sleep 0.01; done; head -c 10000000 /dev/zero | tr '\\0' x; sleep 30"]
stdout = "long.log"
log_timestamps = true
"#,
    );
    sup.wait_log("long: STOPPED -> STARTING", T);
    let before = vm_hwm_kib(sup.pid);
    std::fs::write(sup.path("go"), "").unwrap();
    let path = sup.path("long.log");
    wait_for(T, "10 MB of x in the log", || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let xs: usize = text.lines().map(|l| split_stamp(l).1.len()).sum();
        // The last piece stays held (no newline yet): at most 64 KiB short.
        if xs + 64 * 1024 >= 10_000_000 {
            Ok(())
        } else {
            Err(format!("{xs} bytes"))
        }
    });
    let after = vm_hwm_kib(sup.pid);
    assert!(
        after < before + 4 * 1024,
        "holden's peak memory grew from {before} KiB to {after} KiB for one long line"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines()
            .all(|l| split_stamp(l).1.len() <= 64 * 1024 && split_stamp(l).1.bytes().all(|b| b == b'x'))
    );
}

#[test]
fn logs_follow_shows_every_line_once_across_rotations() {
    let sup = Supervisor::start(
        r#"
[programs.fast]
command = ["sh", "-c", "echo ready; while [ ! -e go ]; do sleep 0.01; done; seq 1 300000; sleep 30"]
stdout = "fast.log"
log_max_bytes = "100KB"
log_backups = 1000
"#,
    );
    wait_for(T, "the first line", || {
        let t = std::fs::read_to_string(sup.path("fast.log")).unwrap_or_default();
        if t == "ready\n" { Ok(()) } else { Err(format!("{t:?}")) }
    });
    let mut follower = std::process::Command::new(HOLDEN)
        .args(["logs", "fast", "-f", "-n", "1", "--socket"])
        .arg(&sup.socket)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // "ready" printed: the follower watches the file before the program goes on.
    assert_eq!(rx.recv_timeout(T).ok().as_deref(), Some("ready"));
    std::fs::write(sup.path("go"), "").unwrap();
    let mut lines = Vec::new();
    while lines.last().map(String::as_str) != Some("300000") {
        match rx.recv_timeout(T) {
            Ok(l) => lines.push(l),
            Err(e) => panic!("logs -f stopped after {} lines: {e}", lines.len()),
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let expected: Vec<String> = (1..=300_000).map(|i| i.to_string()).collect();
    assert_eq!(lines.len(), expected.len(), "lines lost or doubled");
    assert!(lines == expected, "lines out of order");
    let files = files_of(&sup.path("fast.log"));
    assert!(files.len() > 10, "the test meant to rotate: {} files", files.len());
}

#[test]
fn logs_prints_the_last_lines_reaching_back_into_rotated_files() {
    let sup = Supervisor::start(
        r#"
[programs.counter]
command = "seq 1 50000"
autorestart = "never"
stdout = "counter.log"
log_max_bytes = "100KB"
log_backups = 100
"#,
    );
    wait_exited(&sup, "counter");
    assert!(files_of(&sup.path("counter.log")).len() > 2, "the test meant to rotate");
    let out = sup.ctl(&["logs", "counter", "-n", "30000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), seq(20_001, 50_000));
    let out = sup.ctl(&["logs", "counter"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        seq(49_991, 50_000),
        "10 lines by default"
    );
}

#[test]
fn sigusr1_after_an_external_mv_reopens_holdens_own_logfile_too() {
    let mut sup = Supervisor::start(
        r#"
[programs.idle]
command = "sleep 600"
min_uptime = "0s"
"#,
    );
    sup.wait_log("idle: STARTING -> RUNNING", T);
    let moved = sup.path("holden.log.1");
    std::fs::rename(&sup.log, &moved).unwrap();
    sup.signal(libc::SIGUSR1);
    // The reopen itself is logged before the swap: it lands in the moved file.
    wait_for(T, "the reopen in the moved log", || {
        let t = std::fs::read_to_string(&moved).unwrap_or_default();
        if t.contains("reopening log files") {
            Ok(())
        } else {
            Err(t)
        }
    });
    let out = sup.ctl(&["stop", "idle"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh = std::fs::read_to_string(&sup.log).expect("holden created its logfile again");
    assert!(fresh.contains("idle: RUNNING -> STOPPING"), "{fresh}");
    assert!(
        !std::fs::read_to_string(&moved)
            .unwrap()
            .contains("idle: RUNNING -> STOPPING")
    );
}

/// supervisord users' `stdout_logfile=/dev/stdout`: holden's stdout is a pipe here, as under a
/// container runtime. Two programs share it: every line arrives once, whole, in each program's
/// order; a pipe is never rotated (no rename of /dev/stdout), and `holden logs` says there is
/// no file to read instead of reading its own stdout.
#[test]
fn dev_stdout_as_a_log_path_goes_to_holdens_stdout_pipe_whole_and_unrotated() {
    let mut sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        r#"
[programs.a]
command = ["sh", "-c", "seq 1 100000 | sed s/^/a/"]
autorestart = "never"
stdout = "/dev/stdout"
log_max_bytes = "100KB"

[programs.b]
command = ["sh", "-c", "seq 1 100000 | sed s/^/b/"]
autorestart = "never"
stdout = "/dev/stdout"
log_max_bytes = "100KB"
"#,
    )
    .spawn_with_stdout(std::process::Stdio::piped());
    let mut pipe = sup.child.as_mut().unwrap().stdout.take().unwrap();
    // Read along, so holden never blocks on a full pipe; the text is complete at holden's exit.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut pipe, &mut text).unwrap();
        text
    });
    wait_exited(&sup, "a");
    let log = wait_exited(&sup, "b");
    let refused = sup.ctl(&["logs", "a"]);
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
    let text = reader.join().unwrap();

    for (prefix, name) in [('a', "a"), ('b', "b")] {
        let got: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
        let want: Vec<String> = (1..=100_000).map(|i| format!("{prefix}{i}")).collect();
        assert!(got == want, "{name}: {} lines, not 1..100000 in order", got.len());
    }
    assert_eq!(text.lines().count(), 200_000, "a torn or foreign line");
    assert!(!log.contains("cannot write"), "{log}");
    assert!(!Path::new("/dev/stdout.1").exists(), "holden rotated /dev/stdout");

    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("/dev/stdout") && err.contains("not a log file"), "{err}");
}

/// holden's stdout a regular file (systemd's `StandardOutput=file:`), and a program's stdout
/// "/dev/stdout" with a small limit: appended after what the file held, never rotated (that
/// would rename /dev/stdout itself).
#[test]
fn dev_stdout_on_a_regular_file_is_appended_to_and_never_rotated() {
    let sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        r#"
[programs.a]
command = ["seq", "1", "20000"]
autorestart = "never"
stdout = "/dev/stdout"
log_max_bytes = "10KB"
"#,
    );
    let out_path = sup.path("holden.stdout");
    std::fs::write(&out_path, "before\n").unwrap();
    let out = std::fs::OpenOptions::new().append(true).open(&out_path).unwrap();
    let mut sup = sup.spawn_with_stdout(out.into());
    let log = wait_exited(&sup, "a");
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(text, format!("before\n{}", seq(1, 20_000)), "{log}");
    assert!(
        std::fs::symlink_metadata("/dev/stdout")
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!Path::new("/dev/stdout.1").exists(), "holden rotated /dev/stdout");
}

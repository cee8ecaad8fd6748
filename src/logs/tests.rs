use super::rotate::backup_name;
use super::*;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

#[test]
fn a_line_writer_keeps_the_full_batch_delay() {
    // 500 MiB/s of lines: 0.5 MiB in the 1 ms batch, half the pipe.
    let d = batch_delay(BATCH_DELAY, BATCH_DELAY, MIB / 2, MIB);
    assert_eq!(d, BATCH_DELAY);
    // A slow writer too, and an empty batch.
    assert_eq!(batch_delay(BATCH_DELAY, BATCH_DELAY, 4096, MIB), BATCH_DELAY);
    assert_eq!(batch_delay(MIN_BATCH_DELAY, BATCH_DELAY, 0, MIB), BATCH_DELAY);
}

#[test]
fn a_faster_writer_gets_the_delay_that_fills_half_the_pipe() {
    // 0.75 MiB in 1 ms: half the pipe takes 2/3 ms.
    let d = batch_delay(BATCH_DELAY, BATCH_DELAY, 3 * MIB / 4, MIB);
    assert_eq!(d.as_micros(), 666);
    // and back up to the bound once it slows down
    let d = batch_delay(d, d, MIB / 8, MIB);
    assert_eq!(d, BATCH_DELAY);
}

#[test]
fn a_pipe_found_full_cuts_the_delay_to_a_quarter_then_to_reading_at_once() {
    let mut d = BATCH_DELAY;
    for want in [250, 62, 0] {
        d = batch_delay(d, d, MIB, MIB);
        assert_eq!(d.as_micros(), want);
    }
    // A pipe of the default 64 KiB (no F_SETPIPE_SZ) is judged by its own size.
    assert_eq!(
        batch_delay(BATCH_DELAY, BATCH_DELAY, 60 * 1024, 64 * 1024).as_micros(),
        250
    );
}

fn program(dir: &Path, stdout: Output, stderr: Output) -> Program {
    let mut p = Program::with_defaults("web", vec!["true".into()], dir);
    p.stdout = stdout;
    p.stderr = stderr;
    p
}

/// Spawn `cmd` with its output attached, register its pidfd, and drive the reactor
/// until the program died and every stream reached EOF; `each` runs after every event.
fn capture(logs: &mut Logs, reactor: &mut Reactor, p: &Program, cmd: &mut Command, mut each: impl FnMut(&mut Logs)) {
    let mut child = spawn(logs, reactor, p, cmd);
    drive(logs, reactor, &p.name, &mut child, &mut each);
}

fn spawn(logs: &mut Logs, reactor: &Reactor, p: &Program, cmd: &mut Command) -> Child {
    let stdio = logs.attach(p, reactor).expect("attach");
    let stdio_of = |end: Option<OwnedFd>| end.map_or_else(Stdio::null, Stdio::from);
    cmd.stdout(stdio_of(stdio.stdout)).stderr(stdio_of(stdio.stderr));
    let child = cmd.spawn().expect("spawn the test writer");
    // Our copies of the write ends live in `cmd`: without dropping them, no EOF.
    *cmd = Command::new("true");
    child
}

fn drive(logs: &mut Logs, reactor: &mut Reactor, name: &str, child: &mut Child, each: &mut dyn FnMut(&mut Logs)) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
    reactor
        .add(pidfd.as_fd(), Token::new(Owner::Supervisor, 0), Interest::Read)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dead = false;
    while !dead || logs.open_streams(name) > 0 {
        assert!(Instant::now() < deadline, "capture did not finish in time");
        for r in reactor.wait(Some(deadline)).unwrap() {
            match r.token.owner {
                Owner::Logs => logs.on_ready(reactor, r.token.id, &r),
                Owner::Supervisor if !dead => {
                    let status = child.wait().unwrap();
                    assert!(status.success(), "the writer failed: {status}");
                    reactor.delete(pidfd.as_fd());
                    logs.drain(reactor, name);
                    dead = true;
                }
                other => panic!("unexpected readiness {other:?}"),
            }
            each(logs);
        }
    }
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// The live file and its backups, oldest first.
fn files_of(path: &Path) -> Vec<Vec<u8>> {
    let mut files = vec![std::fs::read(path).unwrap()];
    let mut k = 1;
    while let Ok(b) = std::fs::read(backup_name(path, k)) {
        files.push(b);
        k += 1;
    }
    files.reverse();
    files
}

fn seq(n: u32) -> Vec<u8> {
    (1..=n).map(|i| format!("{i}\n")).collect::<String>().into_bytes()
}

fn strip_stamp(line: &str) -> (std::time::SystemTime, &str) {
    let (stamp, rest) = line.split_at(24);
    let t = humantime::parse_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp:?} is not RFC 3339: {e}"));
    (t, rest.strip_prefix(' ').expect("a space after the time"))
}

/// `seq 1 LINES` captured with `log_max_bytes = MAX`: at least `min_files` files, each
/// within the limit and ending with a whole line, every line once and in order.
fn every_line_once_in_order_across_rotations(timestamps: bool, max: u64, lines: u32, min_files: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/web.log");
    let mut p = program(dir.path(), Output::File(path.clone()), Output::Null);
    p.log_max_bytes = max;
    p.log_backups = 100_000;
    p.log_timestamps = timestamps;
    let (mut logs, mut reactor) = (Logs::new(), Reactor::new().unwrap());
    capture(&mut logs, &mut reactor, &p, &mut sh(&format!("seq 1 {lines}")), |_| {});
    let files = files_of(&path);
    assert!(
        files.len() >= min_files,
        "expected rotations, got {} files",
        files.len()
    );
    for f in &files {
        assert!(f.len() as u64 <= max, "a file of {} bytes passed the limit", f.len());
        assert_eq!(f.last(), Some(&b'\n'), "a file ends in the middle of a line");
    }
    let all = files.concat();
    if timestamps {
        let text = String::from_utf8(all).unwrap();
        let rest: String = text.lines().map(|l| format!("{}\n", strip_stamp(l).1)).collect();
        assert_eq!(rest.into_bytes(), seq(lines));
    } else {
        assert_eq!(all, seq(lines));
        assert!(logs.sinks.is_empty(), "the file stays open after EOF");
    }
}

/// A limit smaller than one batch of lines: the batch waiting for its write counts, so a
/// fresh file is not filled past the limit before its first write.
#[test]
fn a_limit_below_one_batch_holds_for_every_file() {
    every_line_once_in_order_across_rotations(false, 10_000, 100_000, 51);
    every_line_once_in_order_across_rotations(true, 10_000, 100_000, 51);
}

#[test]
fn every_line_arrives_once_and_in_order_across_rotations_by_splice() {
    every_line_once_in_order_across_rotations(false, 1_000_000, 1_000_000, 7);
}

#[test]
fn every_line_arrives_once_and_in_order_across_rotations_with_timestamps() {
    every_line_once_in_order_across_rotations(true, 1_000_000, 1_000_000, 7);
}

#[test]
fn stdout_and_stderr_into_one_file_keep_lines_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("both.log");
    let p = program(dir.path(), Output::File(path.clone()), Output::Stdout);
    let (mut logs, mut reactor) = (Logs::new(), Reactor::new().unwrap());
    // sed writes 4 KiB blocks to a pipe, cutting lines anywhere: only a line-aware
    // merge keeps them whole.
    let script = "seq 1 200000 | sed s/^/out/ & seq 1 200000 | sed s/^/err/ >&2; wait";
    capture(&mut logs, &mut reactor, &p, &mut sh(script), |_| {});
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut out, mut err) = (0u32, 0u32);
    for line in text.lines() {
        let (counter, n) = match (line.strip_prefix("out"), line.strip_prefix("err")) {
            (Some(n), None) => (&mut out, n),
            (None, Some(n)) => (&mut err, n),
            _ => panic!("torn line {line:?}"),
        };
        *counter += 1;
        assert_eq!(n.parse::<u32>().ok(), Some(*counter), "torn or reordered: {line:?}");
    }
    assert_eq!((out, err), (200_000, 200_000));
}

#[test]
fn timestamps_are_rfc3339_and_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.log");
    let mut p = program(dir.path(), Output::File(path.clone()), Output::Null);
    p.log_timestamps = true;
    let (mut logs, mut reactor) = (Logs::new(), Reactor::new().unwrap());
    let script = "seq 1 5000; sleep 0.05; seq 5001 10000";
    capture(&mut logs, &mut reactor, &p, &mut sh(script), |_| {});
    let text = std::fs::read_to_string(&path).unwrap();
    let mut last = std::time::UNIX_EPOCH;
    let mut n = 0;
    for line in text.lines() {
        let (t, rest) = strip_stamp(line);
        assert!(t >= last, "time went back at {line:?}");
        n += 1;
        assert_eq!(rest, n.to_string());
        last = t;
    }
    assert_eq!(n, 10_000);
    let first = strip_stamp(text.lines().next().unwrap()).0;
    assert!(last.duration_since(first).unwrap() >= Duration::from_millis(50));
}

#[test]
fn a_10_mb_line_without_newline_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.log");
    let mut p = program(dir.path(), Output::File(path.clone()), Output::Null);
    p.log_timestamps = true;
    let (mut logs, mut reactor) = (Logs::new(), Reactor::new().unwrap());
    let mut most = 0;
    let script = "head -c 10000000 /dev/zero | tr '\\0' x";
    capture(&mut logs, &mut reactor, &p, &mut sh(script), |l| {
        most = most.max(l.buffered_capacity());
    });
    // The read buffer, the batch of formatted lines, one held line: a constant.
    let bound = READ_CHUNK + (OUT_CAP + MAX_LINE + 256) + MAX_LINE + 1024;
    assert!(most <= bound, "holden held {most} bytes, more than {bound}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut total = 0;
    for line in text.lines() {
        let rest = strip_stamp(line).1;
        assert!(rest.len() <= MAX_LINE && rest.bytes().all(|b| b == b'x'));
        total += rest.len();
    }
    assert_eq!(total, 10_000_000);
}

#[test]
fn reopen_after_an_external_mv_writes_to_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let moved = dir.path().join("web.log.old");
    let p = program(dir.path(), Output::File(path.clone()), Output::Null);
    let (mut logs, mut reactor) = (Logs::new(), Reactor::new().unwrap());
    let mut cmd = sh("echo one; read x; echo two");
    cmd.stdin(Stdio::piped());
    let mut child = spawn(&mut logs, &reactor, &p, &mut cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&path).unwrap() != "one\n" {
        assert!(Instant::now() < deadline, "the first line never came");
        for r in reactor.wait(Some(deadline)).unwrap() {
            logs.on_ready(&reactor, r.token.id, &r);
        }
    }
    std::fs::rename(&path, &moved).unwrap();
    logs.reopen();
    assert!(path.exists(), "reopen creates the file again");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    drive(&mut logs, &mut reactor, "web", &mut child, &mut |_| {});
    assert_eq!(std::fs::read_to_string(&moved).unwrap(), "one\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
}

#[test]
fn drain_at_death_moves_everything_while_a_grandchild_holds_the_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let pidfile = dir.path().join("grandchild.pid");
    let mut p = program(dir.path(), Output::File(path.clone()), Output::Null);
    p.log_timestamps = false;
    let (mut logs, reactor) = (Logs::new(), Reactor::new().unwrap());
    let script = format!(
        "head -c 1000000 /dev/zero | tr '\\0' y; printf 'partial'; sleep 30 & echo $! > {}",
        pidfile.display()
    );
    let mut child = spawn(&mut logs, &reactor, &p, &mut sh(&script));
    // Nobody reads until the program is dead: it all sits in the 1 MiB pipe.
    assert!(child.wait().unwrap().success());
    let grandchild: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    logs.drain(&reactor, "web");
    let got = std::fs::read(&path).unwrap();
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(grandchild).unwrap(),
        rustix::process::Signal::KILL,
    );
    assert_eq!(got.len(), 1_000_000 + "partial".len());
    assert!(got.ends_with(b"yyypartial"));
    assert_eq!(logs.open_streams("web"), 1, "the grandchild still holds the pipe");
    logs.forget(&reactor, "web");
    assert_eq!(logs.open_streams("web"), 0);
    assert!(logs.sinks.is_empty());
}

/// Collects what `follow` prints; fails (so that `follow` returns) once it saw `last`.
struct Until {
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    last: &'static [u8],
}

impl Write for Until {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut seen = self.seen.lock().unwrap();
        if seen.ends_with(self.last) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        seen.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.seen.lock().unwrap().ends_with(self.last) {
            true => Err(io::ErrorKind::BrokenPipe.into()),
            false => Ok(()),
        }
    }
}

#[test]
fn follow_sees_every_line_once_while_capture_rotates_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fast.log");
    let mut p = program(dir.path(), Output::File(path.clone()), Output::Null);
    p.log_max_bytes = 100_000;
    p.log_backups = 1000;
    std::fs::write(&path, "0\n").unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut out = Until {
        seen: seen.clone(),
        last: b"\n300000\n",
    };
    let p2 = path.clone();
    let follower = std::thread::spawn(move || follow(&p2, 1, &mut out));
    // The tail printed: follow is watching before the program writes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while *seen.lock().unwrap() != b"0\n" {
        assert!(Instant::now() < deadline, "follow did not print the tail");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (mut logs, mut reactor) = (Logs::new(), Reactor::new().unwrap());
    capture(&mut logs, &mut reactor, &p, &mut sh("seq 1 300000"), |_| {});
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.lock().unwrap().ends_with(b"\n300000\n") {
        assert!(Instant::now() < deadline, "follow did not reach the last line");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(dir.path().join("poke"), "").unwrap();
    assert_eq!(follower.join().unwrap().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    assert!(files_of(&path).len() > 10, "the test meant to rotate");
    let seen = seen.lock().unwrap();
    let mut want = b"0\n".to_vec();
    want.extend(seq(300_000));
    assert!(
        *seen == want,
        "follow printed {} bytes, expected {}",
        seen.len(),
        want.len()
    );
}

#[test]
fn a_full_pipe_moves_by_splice_after_one_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let p = program(dir.path(), Output::File(path.clone()), Output::Null);
    let (mut logs, mut reactor) = (Logs::new(), Reactor::new().unwrap());
    const N: usize = 900_000; // fits in the 1 MiB pipe: the writer is done before holden reads
    let mut child = spawn(&mut logs, &reactor, &p, &mut sh(&format!("head -c {N} /dev/zero")));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let done = rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT;
    rustix::process::waitid(rustix::process::WaitId::Pid(pid), done).unwrap();
    let before = sink::SPLICED.with(|c| c.get());
    drive(&mut logs, &mut reactor, "web", &mut child, &mut |_| {});
    let spliced = sink::SPLICED.with(|c| c.get()) - before;
    assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; N]);
    assert_eq!(spliced, N - FIRST_READ, "one read, then splice for the rest");
}

#[test]
fn null_gets_no_pipe_and_a_bad_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut logs, reactor) = (Logs::new(), Reactor::new().unwrap());
    let p = program(dir.path(), Output::Null, Output::Null);
    logs.attach(&p, &reactor).unwrap();
    assert_eq!(logs.open_streams("web"), 0);
    std::fs::write(dir.path().join("file"), "").unwrap();
    let bad = dir.path().join("file/web.log");
    let p = program(dir.path(), Output::File(bad), Output::Null);
    let e = logs.attach(&p, &reactor).unwrap_err().to_string();
    assert!(e.contains(&dir.path().join("file").display().to_string()), "{e}");
    assert!(!e.contains("os error"), "{e}");
    assert_eq!(logs.open_streams("web"), 0);
    let _ = reactor.as_fd().as_raw_fd();
}

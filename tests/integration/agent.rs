//! Integration tests: the agent (SPEC "Agent", `holden agent`, `holden spawn`, `holden ping`).
//!
//! The agent runs in `unshare --pid --fork --mount-proc` (a new PID namespace, the container
//! case) and the callers outside it, as in real use. Raw protocol exchanges use the agent's own
//! frame module, included from the source tree.

use std::fs;
use std::io::{IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::process::{Pid, Signal};

use crate::harness::*;

#[allow(dead_code)]
#[path = "../../src/agent/frame.rs"]
mod frame;

use frame::{Message, StartProcess};

mod late;

const T: Duration = Duration::from_secs(10);

/// A running `holden agent` with its socket in a temp dir; everything it started dies with it.
struct Agent {
    dir: tempfile::TempDir,
    socket: PathBuf,
    /// `unshare` in the namespace case, the agent itself otherwise.
    child: Option<Child>,
    /// The agent process (PID 1 of its namespace in the namespace case).
    pid: u32,
}

impl Agent {
    /// An agent in a new PID namespace, listening on `--socket`.
    fn in_pid_namespace() -> Agent {
        Self::start(true, &[], true)
    }

    /// `namespace`: run it under unshare; `env`: extra environment; `with_socket_flag`: pass
    /// `--socket` (else the test sets HOLDEN_SOCKET_PATH itself).
    fn start(namespace: bool, env: &[(&str, &str)], with_socket_flag: bool) -> Agent {
        let dir = tempdir();
        let socket = dir.path().join("run/agent.sock");
        let mut cmd = if namespace {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child", HOLDEN]);
            c
        } else {
            Command::new(HOLDEN)
        };
        cmd.arg("agent");
        if with_socket_flag {
            cmd.arg("--socket").arg(&socket);
        }
        cmd.env_remove("HOLDEN_SOCKET_PATH")
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("agent.log")).unwrap());
        let child = cmd.spawn().expect("start the agent");
        let outer = child.id();
        let mut agent = Agent {
            dir,
            socket,
            child: Some(child),
            pid: outer,
        };
        if namespace {
            agent.pid = wait_for(T, "the agent under unshare", || {
                descendants(outer)
                    .into_iter()
                    .find(|p| ppid(*p) == Some(outer))
                    .ok_or_else(|| "no child yet".to_string())
            });
        }
        agent
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn sock(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// Wait until `holden ping` gets an answer.
    fn wait_ready(&self) {
        wait_for(T, "the agent to answer ping", || {
            let out = holden(&["ping", "--agent", self.sock()]);
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{}\nagent log:\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                ))
            }
        });
    }

    fn spawn_cmd(&self, args: &[&str]) -> Child {
        spawn_cmd(&self.socket, args)
    }

    /// Live processes below the agent (the ones it spawned), zombies excluded.
    fn spawned(&self) -> Vec<u32> {
        descendants(self.pid).into_iter().filter(|p| alive(*p)).collect()
    }

    fn zombies(&self) -> Vec<u32> {
        descendants(self.pid)
            .into_iter()
            .filter(|p| proc_state(*p) == Some('Z'))
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let mut all = descendants(self.pid);
        all.push(self.pid);
        for p in all {
            if let Some(pid) = Pid::from_raw(p as i32) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- agent log ----\n{}", self.log());
        }
    }
}

/// `holden spawn --agent SOCKET ARGS`, its output piped.
fn spawn_cmd(socket: &Path, args: &[&str]) -> Child {
    Command::new(HOLDEN)
        .arg("spawn")
        .arg("--agent")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start holden spawn")
}

/// A raw protocol connection, for what the holden commands never send.
struct Raw {
    stream: UnixStream,
    input: Vec<u8>,
}

impl Raw {
    fn connect(socket: &Path) -> Raw {
        let stream = UnixStream::connect(socket).expect("connect to the agent");
        stream.set_read_timeout(Some(T)).unwrap();
        Raw {
            stream,
            input: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the agent");
    }

    fn request(&mut self, msg: &Message) {
        let f = frame::encode(msg).unwrap();
        self.send(&f);
    }

    /// The next answer with the fds that came with it; None at end of stream.
    fn answer(&mut self) -> Option<(Message, Vec<OwnedFd>)> {
        let mut fds = Vec::new();
        loop {
            match frame::decode(&self.input) {
                Ok(Some((msg, len))) => {
                    self.input.drain(..len);
                    return Some((msg, fds));
                }
                Ok(None) => {}
                Err(e) => panic!("the agent sent an invalid frame: {e}"),
            }
            let mut buf = [0u8; 4096];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let n = rustix::net::recvmsg(&self.stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
                .expect("read from the agent (timed out?)")
                .bytes;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(r) = m {
                    fds.extend(r);
                }
            }
            if n == 0 {
                assert!(self.input.is_empty(), "the agent ended inside a frame");
                return None;
            }
            self.input.extend_from_slice(&buf[..n]);
        }
    }

    fn expect_error(&mut self) -> (i32, String) {
        match self.answer() {
            Some((Message::ProcessError { errno, message }, _)) => (errno, message),
            other => panic!("expected PROCESS_ERROR, got {other:?}"),
        }
    }
}

fn start_request(argv: &[&str]) -> StartProcess {
    StartProcess {
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        null_stdio: true,
        ..StartProcess::default()
    }
}

fn signal(pid: u32, sig: Signal) {
    let _ = rustix::process::kill_process(Pid::from_raw(pid as i32).unwrap(), sig);
}

fn exit_code(child: &mut Child) -> i32 {
    let st = wait_child(child, T).expect("holden spawn to exit");
    st.code()
        .unwrap_or_else(|| panic!("holden spawn died by a signal: {st:?}"))
}

#[test]
fn ping_answers_across_pid_namespaces() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let out = holden(&["ping", "--agent", agent.sock()]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn ping_without_an_agent_says_so_in_one_sentence() {
    let dir = tempdir();
    let sock = dir.path().join("agent.sock");
    let out = holden(&["ping", "--agent", sock.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "holden: cannot connect to {}: no agent is listening there (start one with `holden agent`)\n",
            sock.display()
        )
    );
}

#[test]
fn spawn_exits_with_the_childs_status() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let mut c = agent.spawn_cmd(&["--", "sh", "-c", "exit 3"]);
    assert_eq!(exit_code(&mut c), 3);
    let mut c = agent.spawn_cmd(&["--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(exit_code(&mut c), 128 + 9);
    let mut c = agent.spawn_cmd(&["--", "true"]);
    assert_eq!(exit_code(&mut c), 0);
}

#[test]
fn spawn_of_a_missing_command_fails_like_a_shell() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let out = wait_output(agent.spawn_cmd(&["--", "/nonexistent/cmd"]), T, "holden spawn");
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "holden: cannot spawn /nonexistent/cmd: no such file or directory\n"
    );
}

#[test]
fn the_spawned_process_lives_in_the_agents_pid_namespace() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let inner_file = agent.dir.path().join("inner-pid");
    let script = format!("echo $$ > {}; exec sleep 1000", inner_file.display());
    let mut spawn = agent.spawn_cmd(&["--", "sh", "-c", &script]);
    let inner: u32 = wait_for(T, "the child to write its pid", || {
        fs::read_to_string(&inner_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| "not yet".to_string())
    });
    let outer = wait_for(T, "the sleep below the agent", || {
        agent
            .spawned()
            .into_iter()
            .find(|p| fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default() == "sleep\n")
            .ok_or_else(|| format!("{:?}", agent.spawned()))
    });
    let ns = nspid(outer);
    assert_eq!(ns.len(), 2, "NSpid of {outer}: {ns:?}");
    assert_eq!(ns, vec![outer, inner]);
    assert_ne!(inner, outer);
    signal(spawn.id(), Signal::TERM);
    assert_eq!(exit_code(&mut spawn), 128 + 15);
}

#[test]
fn sigterm_to_spawn_stops_the_child_and_reports_it() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let mut spawn = agent.spawn_cmd(&["--restart", "always", "--", "sleep", "1000"]);
    let child = wait_for(T, "the sleep below the agent", || {
        agent
            .spawned()
            .first()
            .copied()
            .ok_or_else(|| "nothing spawned yet".to_string())
    });
    signal(spawn.id(), Signal::TERM);
    assert_eq!(exit_code(&mut spawn), 128 + 15, "no restart after a forwarded signal");
    wait_for(T, "the child to be gone", || {
        if alive(child) {
            Err(format!("{child} still alive"))
        } else {
            Ok(())
        }
    });
    assert!(agent.spawned().is_empty(), "{:?}", agent.spawned());
}

#[test]
fn restart_always_restarts_a_dying_command_through_the_agent() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let starts = agent.dir.path().join("starts");
    let script = format!("echo start >> {}; exit 1", starts.display());
    let spawn = agent.spawn_cmd(&["--restart", "always", "--", "sh", "-c", &script]);
    let count = || fs::read_to_string(&starts).unwrap_or_default().lines().count();
    // Delays of 1 s then 2 s: the third start comes about 3 s after the first.
    wait_for(Duration::from_secs(15), "three starts", || {
        if count() >= 3 {
            Ok(())
        } else {
            Err(format!("{} starts", count()))
        }
    });
    signal(spawn.id(), Signal::TERM);
    // Stopped while waiting to restart: the last run's status.
    let out = wait_output(spawn, T, "holden spawn");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ended (exit status 1); restarting in 1s"), "{err}");
    assert!(err.contains("restarting in 2s"), "{err}");
}

#[test]
fn restart_on_failure_stops_after_a_success() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let mut c = agent.spawn_cmd(&["--restart", "on-failure", "--", "true"]);
    assert_eq!(exit_code(&mut c), 0);
}

#[test]
fn the_agent_leaves_no_zombie_after_100_spawns() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let mut raw = Raw::connect(&agent.socket);
    // All 100 requests in one write: the agent serves them in turns, in order.
    let one = frame::encode(&Message::StartProcess(start_request(&["true"]))).unwrap();
    raw.send(&one.repeat(100));
    for i in 0..100 {
        match raw.answer() {
            Some((Message::ProcessStarted { pid }, fds)) => {
                assert!(pid > 0);
                assert_eq!(fds.len(), 1, "spawn {i}: one pidfd");
            }
            other => panic!("spawn {i}: {other:?}"),
        }
    }
    wait_for(T, "every child reaped", || {
        let z = agent.zombies();
        let live = agent.spawned();
        if z.is_empty() && live.is_empty() {
            Ok(())
        } else {
            Err(format!("zombies {z:?}, alive {live:?}"))
        }
    });
}

#[test]
fn a_pidfd_from_the_agent_signals_and_reports_the_process() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let mut raw = Raw::connect(&agent.socket);
    raw.request(&Message::StartProcess(start_request(&["sleep", "1000"])));
    let (inner, pidfd) = match raw.answer() {
        Some((Message::ProcessStarted { pid }, mut fds)) => (pid, fds.pop().unwrap()),
        other => panic!("{other:?}"),
    };
    // The pid in the message is the agent's: PID 1 runs the agent, so a child is above 1.
    assert!(inner > 1);
    rustix::process::pidfd_send_signal(&pidfd, Signal::TERM).unwrap();
    let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
    rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 10, tv_nsec: 0 })).unwrap();
    assert!(
        fds[0].revents().contains(rustix::event::PollFlags::IN),
        "the pidfd turned readable"
    );
    // Not our child: waitid refuses, which is why holden reads the exit through the pidfd.
    let w = rustix::process::waitid(
        rustix::process::WaitId::PidFd(pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOHANG,
    );
    assert_eq!(w.err(), Some(rustix::io::Errno::CHILD));
}

#[test]
fn start_process_honours_environment_and_working_directory() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let work = agent.dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let mut req = start_request(&["sh", "-c", "echo \"$GREETING $(pwd)\" > out"]);
    req.env = vec![(b"GREETING".to_vec(), b"hello".to_vec())];
    req.cwd = Some(work.to_str().unwrap().as_bytes().to_vec());
    let mut raw = Raw::connect(&agent.socket);
    raw.request(&Message::StartProcess(req));
    assert!(matches!(raw.answer(), Some((Message::ProcessStarted { .. }, _))));
    let out = work.join("out");
    wait_for(T, "the command's output", || match fs::read_to_string(&out) {
        Ok(s) if s.ends_with('\n') => Ok(s),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(fs::read_to_string(&out).unwrap(), format!("hello {}\n", work.display()));
    // A missing directory is an error with its errno, and the connection stays usable.
    let mut req = start_request(&["true"]);
    req.cwd = Some(b"/nonexistent/dir".to_vec());
    raw.request(&Message::StartProcess(req));
    let (errno, message) = raw.expect_error();
    assert_eq!(errno, rustix::io::Errno::NOENT.raw_os_error());
    assert_eq!(
        message,
        "cannot spawn true in /nonexistent/dir: no such file or directory"
    );
    raw.request(&Message::Ping);
    assert!(matches!(raw.answer(), Some((Message::Pong, _))));
}

#[test]
fn bad_frames_get_an_error_or_a_closed_connection_while_the_agent_keeps_serving() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let ping_ok = || {
        let out = holden(&["ping", "--agent", agent.sock()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };

    // Garbage: an error, then the connection closes (the framing is lost).
    let mut raw = Raw::connect(&agent.socket);
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (errno, message) = raw.expect_error();
    assert_eq!(errno, rustix::io::Errno::PROTO.raw_os_error());
    assert!(message.contains("magic"), "{message}");
    assert!(raw.answer().is_none(), "closed after garbage");
    ping_ok();

    // Oversized: refused from its header, before any payload.
    let mut raw = Raw::connect(&agent.socket);
    let mut header = b"HLDA\x01\x03\x00\x00".to_vec();
    header.extend_from_slice(&(64u32 * 1024 * 1024).to_le_bytes());
    raw.send(&header);
    let (_, message) = raw.expect_error();
    assert!(message.contains("over the limit"), "{message}");
    assert!(raw.answer().is_none(), "closed after an oversized frame");
    ping_ok();

    // Another version: refused.
    let mut raw = Raw::connect(&agent.socket);
    raw.send(b"HLDA\x07\x01\x00\x00\x00\x00\x00\x00");
    let (_, message) = raw.expect_error();
    assert!(message.contains("version 7"), "{message}");
    ping_ok();

    // A well-framed but invalid request: an error, and the same connection keeps working.
    let mut raw = Raw::connect(&agent.socket);
    let mut bad = b"HLDA\x01\x03\x00\x00\x0c\x00\x00\x00".to_vec();
    bad.extend_from_slice(&[0; 12]); // argc 0
    raw.send(&bad);
    let (errno, message) = raw.expect_error();
    assert_eq!(errno, rustix::io::Errno::INVAL.raw_os_error());
    assert!(message.contains("empty"), "{message}");
    raw.request(&Message::Ping);
    assert!(matches!(raw.answer(), Some((Message::Pong, _))));

    // Truncated: half a frame, then silence. Others are served meanwhile; then it hangs up.
    let mut silent = Raw::connect(&agent.socket);
    let whole = frame::encode(&Message::StartProcess(start_request(&["true"]))).unwrap();
    silent.send(&whole[..whole.len() / 2]);
    ping_ok();
    drop(silent);
    ping_ok();

    // Many answers queued by a client that does not read: it stalls only itself.
    let mut greedy = Raw::connect(&agent.socket);
    let pings: Vec<u8> = (0..20_000)
        .flat_map(|_| frame::encode(&Message::Ping).unwrap())
        .collect();
    greedy.stream.set_nonblocking(true).unwrap();
    let _ = greedy.stream.write(&pings);
    ping_ok();
    assert!(agent.spawned().is_empty(), "nothing was spawned by bad frames");
}

#[test]
fn a_silent_client_is_disconnected_after_the_idle_timeout() {
    let agent = Agent::start(true, &[("HOLDEN_AGENT_IDLE_TIMEOUT", "300ms")], true);
    agent.wait_ready();
    let mut raw = Raw::connect(&agent.socket);
    let started = std::time::Instant::now();
    assert!(raw.answer().is_none(), "the agent closed the idle connection");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_stranger_is_refused_by_its_credentials() {
    if skip_unless_root("a_stranger_is_refused_by_its_credentials") {
        return;
    }
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    // Let uid 65534 reach the socket and a copy of holden: mode 0600 alone would already stop
    // it; with 0666 only the agent's credential check stands in the way.
    let bin = agent.dir.path().join("holden");
    fs::copy(HOLDEN, &bin).unwrap();
    for d in [agent.dir.path(), &agent.dir.path().join("run")] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o711)).unwrap();
    }
    assert_eq!(fs::metadata(&agent.socket).unwrap().permissions().mode() & 0o777, 0o600);
    let as_nobody = || {
        let child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["ping", "--agent", agent.sock()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_output(child, T, "setpriv holden ping")
    };
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::set_permissions(&agent.socket, fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "holden: the agent refuses uid 65534: it serves root, uid 0 and the uids given with --allow-uid\n"
    );
    assert!(agent.log().contains("refused a client with uid 65534"));
    // Root is still served.
    assert!(holden(&["ping", "--agent", agent.sock()]).status.success());
}

#[test]
fn an_allowed_uid_is_served() {
    if skip_unless_root("an_allowed_uid_is_served") {
        return;
    }
    let dir = tempdir();
    let socket = dir.path().join("agent.sock");
    let child = Command::new(HOLDEN)
        .args(["agent", "--allow-uid", "65534", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent {
        pid: child.id(),
        child: Some(child),
        socket,
        dir,
    };
    agent.wait_ready();
    let bin = agent.dir.path().join("holden");
    fs::copy(HOLDEN, &bin).unwrap();
    fs::set_permissions(agent.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(&agent.socket, fs::Permissions::from_mode(0o666)).unwrap();
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["ping", "--agent", agent.sock()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, T, "setpriv holden ping");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn holden_socket_path_is_honoured_by_agent_ping_and_spawn() {
    let dir = tempdir();
    let socket = dir.path().join("env/agent.sock");
    let s = socket.to_str().unwrap();
    let mut agent = Agent::start(false, &[("HOLDEN_SOCKET_PATH", s)], false);
    agent.socket = socket.clone();
    wait_for(T, "the agent to answer ping", || {
        let out = holden_in(None, &["ping"], &[("HOLDEN_SOCKET_PATH", s)]);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    assert_eq!(
        fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600,
        "the socket is created with mode 0600"
    );
    let out = holden_in(
        None,
        &["spawn", "--", "sh", "-c", "exit 4"],
        &[("HOLDEN_SOCKET_PATH", s)],
    );
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn sigterm_stops_the_agent_removes_its_socket_and_spawned_processes_live_on() {
    let mut agent = Agent::start(false, &[], true);
    agent.wait_ready();
    let mut raw = Raw::connect(&agent.socket);
    raw.request(&Message::StartProcess(start_request(&["sleep", "1000"])));
    let (pid, pidfd) = match raw.answer() {
        Some((Message::ProcessStarted { pid }, mut fds)) => (pid as u32, fds.pop().unwrap()),
        other => panic!("{other:?}"),
    };
    signal(agent.pid, Signal::TERM);
    let st = wait_child(agent.child.as_mut().unwrap(), T).expect("the agent to exit");
    agent.child = None;
    assert_eq!(st.code(), Some(0));
    assert!(!agent.socket.exists(), "the socket is removed");
    assert!(alive(pid), "the spawned process lives on");
    assert!(agent.log().contains("spawned processes live on"));
    // It was orphaned, so the agent's Drop cannot find it: end it through its pidfd.
    rustix::process::pidfd_send_signal(&pidfd, Signal::KILL).unwrap();
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempdir();
    let socket = dir.path().join("agent.sock");
    // A socket file nobody listens on, as a killed agent leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let child = Command::new(HOLDEN)
        .args(["agent", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent {
        pid: child.id(),
        child: Some(child),
        socket: socket.clone(),
        dir,
    };
    agent.wait_ready();
    let out = wait_output(
        Command::new(HOLDEN)
            .args(["agent", "--socket", agent.sock()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        T,
        "a second agent",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "holden: another agent is listening on {}; stop it or choose another --socket\n",
            socket.display()
        )
    );
    // The first one still serves.
    assert!(holden(&["ping", "--agent", agent.sock()]).status.success());
}

// ---- the agent in a real container (podman) ----

/// A container and its image, removed on drop.
struct Container {
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
        // Not -f: the image alone, never a layer that another image still uses.
        let _ = podman(&["rmi", &format!("localhost/{}", self.name)]);
    }
}

/// The pid of the process behind `fd` in this process's PID namespace (`Pid:` of fdinfo).
fn pidfd_pid(fd: &OwnedFd) -> u32 {
    use std::os::fd::AsRawFd;
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Pid in fdinfo: {info}"))
}

#[test]
fn podman_agent_container_spawns_into_its_pid_namespace_for_a_host_caller() {
    if let Err(why) = podman_usable() {
        skip(
            "podman_agent_container_spawns_into_its_pid_namespace_for_a_host_caller",
            &why,
        );
        return;
    }
    let _podman = podman_lock();
    let dir = tempdir();
    let run = dir.path().join("run");
    fs::create_dir_all(&run).unwrap();
    let image = unique_image("holden-agent-test");
    let name = image.trim_start_matches("localhost/").to_string();
    let container = Container { name: name.clone() };
    build_image("containers/agent", &image);
    let volume = format!("{}:/run/holden", run.display());
    podman_ok(&[
        "run",
        "-d",
        "--name",
        &container.name,
        "--network",
        "none",
        "-v",
        &volume,
        &image,
    ]);

    let socket = run.join("agent.sock");
    let sock = socket.to_str().unwrap();
    wait_for(Duration::from_secs(20), "the container's agent to answer", || {
        let out = holden(&["ping", "--agent", sock]);
        if out.status.success() {
            Ok(())
        } else {
            let logs = podman(&["logs", &name]);
            Err(format!(
                "{}\ncontainer log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&logs.stderr)
            ))
        }
    });

    // Raw: the pidfd reaches the host; the process is in the container's PID namespace.
    let mut raw = Raw::connect(&socket);
    let mut req = start_request(&["/holden", "agent", "--socket", "/run/holden/inner.sock"]);
    req.null_stdio = true;
    raw.request(&Message::StartProcess(req));
    let (inner, pidfd) = match raw.answer() {
        Some((Message::ProcessStarted { pid }, mut fds)) => (pid as u32, fds.pop().unwrap()),
        other => panic!("{other:?}"),
    };
    let outer = pidfd_pid(&pidfd);
    assert_eq!(nspid(outer), vec![outer, inner], "NSpid of {outer}");
    assert_ne!(outer, inner);
    wait_for(T, "the spawned agent's socket in the shared dir", || {
        if run.join("inner.sock").exists() {
            Ok(())
        } else {
            Err("no inner.sock yet".into())
        }
    });
    // Signalled and waited on from the host, through the pidfd.
    rustix::process::pidfd_send_signal(&pidfd, Signal::TERM).unwrap();
    let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
    rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 10, tv_nsec: 0 })).unwrap();
    assert!(fds[0].revents().contains(rustix::event::PollFlags::IN), "it ended");
    assert!(!run.join("inner.sock").exists(), "it ended by its SIGTERM handling");

    // holden spawn from the host: exit status through the pidfd, signals forwarded.
    let out = holden(&[
        "spawn",
        "--agent",
        sock,
        "--",
        "/holden",
        "spawn",
        "--restart",
        "bogus",
        "--",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let mut spawn = spawn_cmd(
        &socket,
        &["--", "/holden", "agent", "--socket", "/run/holden/inner2.sock"],
    );
    wait_for(T, "the second spawned agent's socket", || {
        if run.join("inner2.sock").exists() {
            Ok(())
        } else {
            Err("no inner2.sock yet".into())
        }
    });
    signal(spawn.id(), Signal::TERM);
    assert_eq!(
        exit_code(&mut spawn),
        0,
        "the inner agent exits 0 on the forwarded SIGTERM"
    );

    // holden run on the host supervises a program in the container through its agent. The
    // program's directory must exist in the container: "/" does in any image.
    let mut sup = Supervisor::start(&format!(
        "[programs.boxed]\ncommand = \"/holden agent --socket /run/holden/boxed.sock\"\n\
         agent = \"{sock}\"\ndirectory = \"/\"\nautorestart = \"always\"\n\
         restart_delay = \"100ms\"\nmin_uptime = \"100ms\"\n"
    ));
    supervise_through_agent(&mut sup, "boxed");
    drop(sup);
    drop(container);
    let images = podman_ok(&["images", "-q", &image]);
    assert!(images.trim().is_empty(), "the image is removed");
}

// ---- `holden run` programs with `agent = "PATH"` ----

/// The pid and restart count of `name` once it is RUNNING with a pid other than `not`.
fn running_pid(sup: &Supervisor, name: &str, not: Option<u64>) -> (u64, u64) {
    wait_for(Duration::from_secs(20), &format!("{name} RUNNING"), || {
        let p = sup.program_status(name);
        match (p["state"].as_str(), p["pid"].as_u64()) {
            (Some("RUNNING"), Some(pid)) if Some(pid) != not => Ok((pid, p["restarts"].as_u64().unwrap_or(0))),
            _ => Err(p.to_string()),
        }
    })
}

/// RUNNING in the agent's PID namespace, restarted through the agent when killed, stopped by
/// shutdown; `pid` in status is the pid as holden sees it.
fn supervise_through_agent(sup: &mut Supervisor, name: &str) {
    let (pid, _) = running_pid(sup, name, None);
    let ns = nspid(pid as u32);
    assert_eq!(ns.len(), 2, "NSpid of {pid}: {ns:?}");
    assert_eq!(ns[0], pid as u32, "status shows the pid from holden's namespace");
    assert_ne!(ns[0], ns[1]);
    signal(pid as u32, Signal::KILL);
    let (pid2, restarts) = running_pid(sup, name, Some(pid));
    assert!(restarts >= 1, "restarts {restarts}");
    assert_eq!(nspid(pid2 as u32).len(), 2);
    let last = &sup.program_status(name)["last_exit"];
    assert_eq!(last["signal"], "KILL", "last_exit {last}");
    sup.signal(15);
    assert_eq!(sup.wait_exit(Duration::from_secs(20)).code(), Some(0));
    wait_for(T, "the program to be gone", || {
        if alive(pid2 as u32) {
            Err(format!("{pid2} still alive"))
        } else {
            Ok(())
        }
    });
}

#[test]
fn a_program_with_agent_runs_in_the_agents_pid_namespace_and_is_restarted_and_stopped() {
    let agent = Agent::in_pid_namespace();
    agent.wait_ready();
    let mut sup = Supervisor::start(&format!(
        "[programs.inside]\ncommand = \"sleep 1000\"\nagent = \"{}\"\nautorestart = \"always\"\n\
         restart_delay = \"100ms\"\nmin_uptime = \"100ms\"\n",
        agent.sock()
    ));
    supervise_through_agent(&mut sup, "inside");
}

#[test]
fn a_program_whose_agent_is_down_backs_off_and_starts_once_it_is_up() {
    let dir = tempdir();
    let socket = dir.path().join("late.sock");
    let sup = Supervisor::start(&format!(
        "[programs.late]\ncommand = \"sleep 1000\"\nagent = \"{}\"\nrestart_delay = \"100ms\"\n\
         max_restart_delay = \"200ms\"\nmax_restarts = 1000\n",
        socket.display()
    ));
    wait_for(T, "late in BACKOFF", || {
        let p = sup.program_status("late");
        if p["state"] == "BACKOFF" {
            Ok(())
        } else {
            Err(p.to_string())
        }
    });
    let child = Command::new(HOLDEN)
        .args(["agent", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _agent = Agent {
        pid: child.id(),
        child: Some(child),
        socket,
        dir,
    };
    running_pid(&sup, "late", None);
    assert!(sup.log_text().contains("no agent is listening there"));
}

#[test]
fn past_1024_connections_the_agent_answers_eagain_frames_and_logs_one_line() {
    // 1024 held connections and then some: this process needs the open files for them.
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if lim.maximum.is_some_and(|m| m < 4096) {
        skip(
            "past_1024_connections_the_agent_answers_eagain_frames_and_logs_one_line",
            "the hard open files limit is below 4096",
        );
        return;
    }
    if lim.current.is_some_and(|c| c < 4096) {
        let raised = rustix::process::Rlimit {
            current: Some(4096),
            maximum: lim.maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, raised).unwrap();
    }
    let agent = Agent::start(false, &[("HOLDEN_AGENT_IDLE_TIMEOUT", "60s")], true);
    agent.wait_ready();
    let held: Vec<UnixStream> = (0..1024)
        .map(|_| UnixStream::connect(&agent.socket).expect("connect"))
        .collect();
    for _ in 0..20 {
        let mut raw = Raw::connect(&agent.socket);
        let (errno, message) = raw.expect_error();
        assert_eq!(errno, rustix::io::Errno::AGAIN.raw_os_error());
        assert_eq!(message, "the agent is serving 1024 connections, its most; try again");
        assert!(raw.answer().is_none(), "closed after the refusal");
    }
    let log = agent.log();
    assert_eq!(
        log.matches("connections open; refusing one more with EAGAIN").count(),
        1,
        "{log}"
    );
    drop(held);
    agent.wait_ready();
}

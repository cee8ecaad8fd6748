//! An `agent =` program whose agent answers late: after the program was stopped (and even
//! started again), or after holden gave up waiting. The late answer never starts the program;
//! the process the agent started is killed. A fake agent socket here plays the agent, so that
//! the test decides when it answers, and hands holden the pidfd of a process the test started.

use std::io::IoSlice;
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::process::PidfdFlags;

use super::*;

/// A process the fake agent "started": `sleep 1000`, killed and reaped on drop.
struct Started(Child);

impl Started {
    fn new() -> Started {
        Started(Command::new("sleep").arg("1000").spawn().expect("spawn sleep"))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// How it ended, once it has.
    fn ended(&mut self) -> std::process::ExitStatus {
        wait_child(&mut self.0, T).expect("the agent's process to end")
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fake agent's end of the next connection from holden, once its START_PROCESS is read.
fn next_request(listener: &UnixListener) -> Raw {
    let stream = wait_for(T, "holden to connect to the agent", || {
        listener.accept().map(|(s, _)| s).map_err(|e| e.to_string())
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let mut raw = Raw {
        stream,
        input: Vec::new(),
    };
    match raw.answer() {
        Some((Message::StartProcess(sp), _)) => assert_eq!(sp.argv[0], b"sleep", "{sp:?}"),
        other => panic!("expected START_PROCESS, got {other:?}"),
    }
    raw
}

impl Raw {
    /// Answer PROCESS_STARTED for `p`, its pidfd beside the frame, as the agent does.
    fn started(&mut self, p: &Started) {
        let pid = p.pid() as i32;
        let pidfd = rustix::process::pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty()).unwrap();
        let bytes = frame::encode(&Message::ProcessStarted { pid }).unwrap();
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [pidfd.as_fd()];
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let n = rustix::net::sendmsg(&self.stream, &[IoSlice::new(&bytes)], &mut control, SendFlags::empty())
            .expect("answer holden");
        assert_eq!(n, bytes.len());
    }
}

/// holden with program `remote` asking the fake agent listening on the returned socket.
fn holden_and_fake_agent() -> (Supervisor, UnixListener, tempfile::TempDir) {
    let dir = tempdir();
    let socket = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&socket).expect("bind the fake agent's socket");
    listener.set_nonblocking(true).unwrap();
    let sup = Supervisor::start(&format!(
        "[programs.remote]\ncommand = \"sleep 1000\"\nagent = \"{}\"\ndirectory = \"/\"\n\
         restart_delay = \"1h\"\n",
        socket.display()
    ));
    (sup, listener, dir)
}

fn state_and_pid(sup: &Supervisor) -> (String, Option<u64>) {
    let p = sup.program_status("remote");
    (p["state"].as_str().unwrap_or("?").to_string(), p["pid"].as_u64())
}

/// Answer on `conn`, which holden no longer waits on, with a process of its own: holden kills
/// it, and says why (`since` ends "which its agent started after ...").
fn answer_late(sup: &mut Supervisor, conn: &mut Raw, since: &str) {
    let mut late = Started::new();
    conn.started(&late);
    let st = late.ended();
    assert_eq!(st.signal(), Some(9), "{st:?}\n{}", sup.log_text());
    let line = format!(
        "remote: killed pid {}, which its agent started after {since}",
        late.pid()
    );
    sup.wait_log(&line, T);
}

#[test]
fn an_answer_after_a_stop_is_killed_and_never_becomes_the_next_run() {
    let (mut sup, listener, _dir) = holden_and_fake_agent();
    let mut first = next_request(&listener);
    assert_eq!(state_and_pid(&sup), ("STARTING".to_string(), None));
    let out = sup.ctl(&["stop", "remote"]);
    assert!(out.status.success(), "{out:?}");
    wait_state_within(T, &sup, "remote", "STOPPED");
    // Started again before the first request is answered: a second request. (`start` waits
    // for RUNNING: it runs meanwhile.)
    let start = sup.ctl_spawn(&["start", "remote"]);
    let mut second = next_request(&listener);

    // The first answer comes now: its process is killed, and the program waits on.
    answer_late(&mut sup, &mut first, "it was stopped");
    assert_eq!(
        state_and_pid(&sup),
        ("STARTING".to_string(), None),
        "the late answer is not the second run"
    );

    // The second answer is the run.
    let mut run = Started::new();
    second.started(&run);
    let (pid, _) = running_pid(&sup, "remote", None);
    assert_eq!(pid, u64::from(run.pid()));
    let out = wait_output(start, T, "holden start remote");
    assert!(out.status.success(), "{out:?}");
    let out = sup.ctl(&["stop", "remote"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(run.ended().signal(), Some(15), "stopped with its stop_signal");
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
}

#[test]
fn an_answer_after_holden_gave_up_waiting_is_killed_and_the_program_stays_in_backoff() {
    let (mut sup, listener, _dir) = holden_and_fake_agent();
    let mut first = next_request(&listener);
    // The request's deadline passes without an answer: a failed spawn, retried later.
    wait_state_within(T, &sup, "remote", "BACKOFF");
    answer_late(&mut sup, &mut first, "holden gave up waiting for it");
    assert_eq!(state_and_pid(&sup), ("BACKOFF".to_string(), None));
    sup.signal(15);
    assert!(sup.wait_exit(T).success());
}

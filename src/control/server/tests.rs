use super::test_support::TestServer;
use super::*;
use crate::control::protocol::{ProgramStatus, Reply};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

#[test]
fn peers_are_served_when_root_own_uid_or_allowed() {
    let g = Grants {
        read_uids: vec![7],
        allow_uids: vec![65534],
        admin_uids: vec![42],
    };
    assert_eq!(g.access(0, 1000), Some(Access::Admin));
    assert_eq!(g.access(1000, 1000), Some(Access::Admin));
    assert_eq!(g.access(42, 0), Some(Access::Admin));
    assert_eq!(g.access(65534, 0), Some(Access::Operate));
    assert_eq!(g.access(7, 0), Some(Access::Read));
    assert_eq!(g.access(8, 0), None);
    assert_eq!(Grants::default().access(65534, 1000), None);
    assert_eq!(required(&Request::Status { names: vec![] }), Access::Read);
    assert_eq!(required(&Request::Watch), Access::Read);
    assert_eq!(
        required(&Request::Stop {
            names: vec!["a".into()],
            all: false
        }),
        Access::Operate
    );
    assert_eq!(required(&Request::Shutdown), Access::Admin);
    assert_eq!(required(&Request::Remove { name: "a".into() }), Access::Admin);
    assert!(!forbidden_message(5, "add", Access::Admin).contains("allow_uids"));
}

/// A server answering `status` with one fake program, `watch` with the same plus a
/// subscription, `shutdown` by broadcasting an event to watchers, and `reopen` by
/// broadcasting a hundred.
struct Harness(TestServer);

fn fake_status() -> Response {
    Response::Ok(Reply::Status {
        programs: vec![ProgramStatus {
            pid: Some(1),
            ..ProgramStatus::bare("web", "RUNNING")
        }],
    })
}

impl Harness {
    fn start(limits: Limits) -> Harness {
        Harness(TestServer::start(limits, |server, reactor, conn, req| match req {
            Request::Status { .. } => server.reply(reactor, conn, &fake_status()),
            Request::Watch => {
                server.reply(reactor, conn, &fake_status());
                server.watch(conn);
            }
            Request::Reopen => {
                server.reply(reactor, conn, &Response::Ok(Reply::Done {}));
                for _ in 0..100 {
                    server.broadcast(reactor, &Event::Removed { name: "web".into() });
                }
            }
            Request::Shutdown => {
                server.reply(reactor, conn, &Response::Ok(Reply::Done {}));
                server.broadcast(reactor, &Event::Removed { name: "web".into() });
            }
            other => server.reply(
                reactor,
                conn,
                &Response::error(ErrorCode::Failed, format!("test has no {}", other.command())),
            ),
        }))
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.0.path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

fn read_line(r: &mut BufReader<UnixStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("a line within the timeout");
    s
}

fn ask(h: &Harness, line: &[u8]) -> String {
    let mut s = h.connect();
    s.write_all(line).unwrap();
    read_line(&mut BufReader::new(s))
}

fn assert_serving(h: &Harness) {
    let l = ask(h, b"{\"cmd\":\"status\"}\n");
    assert!(l.starts_with("{\"ok\":true,\"programs\":[{\"name\":\"web\""), "{l}");
}

#[test]
fn serves_root_and_answers_in_request_order() {
    let h = Harness::start(Limits::default());
    let s = h.connect();
    let mut w = s.try_clone().unwrap();
    // Good and bad requests pipelined in one write: answers come back in order.
    w.write_all(b"{\"cmd\":\"status\"}\nnot json\n{\"cmd\":\"fly\"}\n\n{\"cmd\":\"reload\"}\r\n{\"cmd\":\"status\"}\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let lines: Vec<String> = (0..5).map(|_| read_line(&mut r)).collect();
    assert!(lines[0].contains("\"programs\""), "{lines:?}");
    assert!(lines[1].contains("\"bad_request\""), "{lines:?}");
    assert!(lines[2].contains("\"unknown_command\""), "{lines:?}");
    assert!(lines[3].contains("test has no reload"), "{lines:?}");
    assert!(lines[4].contains("\"programs\""), "{lines:?}");
}

#[test]
fn a_request_without_newline_is_answered_when_the_client_shuts_down_writing() {
    let h = Harness::start(Limits::default());
    let s = h.connect();
    (&s).write_all(b"{\"cmd\":\"status\"}").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    (&s).read_to_string(&mut all).unwrap();
    assert!(all.starts_with("{\"ok\":true,\"programs\""), "{all}");
    assert_eq!(
        all.matches('\n').count(),
        1,
        "one answer, then the server closes: {all}"
    );
}

#[test]
fn garbage_and_a_ten_mib_line_leave_it_serving_others() {
    let h = Harness::start(Limits::default());
    let l = ask(&h, b"\x00\x01\x02garbage\xff\n");
    assert!(l.contains("\"bad_request\""), "{l}");

    let big = h.connect();
    let writer = {
        let mut w = big.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b'x'; 1024 * 1024];
            // The server stops reading and closes after its answer: writing fails then.
            for _ in 0..10 {
                if w.write_all(&chunk).is_err() {
                    return;
                }
            }
            let _ = w.write_all(b"\n");
        })
    };
    let mut r = BufReader::new(big);
    let l = read_line(&mut r);
    assert!(l.contains("\"too_large\""), "{l}");
    writer.join().unwrap();
    assert_serving(&h);
}

#[test]
fn a_half_written_request_waits_and_others_are_served_meanwhile() {
    let h = Harness::start(Limits::default());
    let slow = h.connect();
    (&slow).write_all(b"{\"cmd\":\"sta").unwrap();
    assert_serving(&h);
    (&slow).write_all(b"tus\"}\n").unwrap();
    let l = read_line(&mut BufReader::new(slow));
    assert!(l.contains("\"programs\""), "{l}");
}

#[test]
fn idle_connections_time_out_and_watchers_do_not() {
    let h = Harness::start(Limits {
        idle_timeout: Duration::from_millis(200),
        ..Limits::default()
    });
    let idle = h.connect();
    (&idle).write_all(b"{\"cmd\":").unwrap();
    let watcher = h.connect();
    (&watcher).write_all(b"{\"cmd\":\"watch\"}\n").unwrap();
    let mut wr = BufReader::new(watcher.try_clone().unwrap());
    assert!(read_line(&mut wr).contains("\"programs\""));
    // The idle one is told and closed (read returns the error line, then EOF).
    let mut all = String::new();
    (&idle).read_to_string(&mut all).unwrap();
    assert!(all.contains("\"timeout\""), "{all}");
    // The watcher outlived that timeout and still receives events.
    let l = ask(&h, b"{\"cmd\":\"shutdown\"}\n");
    assert_eq!(l, "{\"ok\":true}\n");
    assert_eq!(read_line(&mut wr), "{\"event\":\"removed\",\"name\":\"web\"}\n");
}

#[test]
fn two_hundred_idle_connections_leave_it_serving_others() {
    let h = Harness::start(Limits::default());
    let idle: Vec<UnixStream> = (0..200).map(|_| h.connect()).collect();
    for (i, s) in idle.iter().enumerate() {
        if i % 2 == 0 {
            let mut s = s;
            s.write_all(b"{\"cmd\"").unwrap();
        }
    }
    for _ in 0..5 {
        assert_serving(&h);
    }
    // Each idle one is still connected and served once it completes its request.
    let mut last = idle.into_iter().last().unwrap();
    last.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    assert!(read_line(&mut BufReader::new(last)).contains("\"programs\""));
}

#[test]
fn connections_past_the_bound_are_told_busy_and_closed() {
    let h = Harness::start(Limits {
        max_connections: 3,
        ..Limits::default()
    });
    // The harness keeps none open; these two plus one fill the bound.
    let _a = h.connect();
    let _b = h.connect();
    let c = h.connect();
    (&c).write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    assert!(read_line(&mut BufReader::new(c.try_clone().unwrap())).contains("\"programs\""));
    let d = h.connect();
    let mut all = String::new();
    (&d).read_to_string(&mut all).unwrap();
    assert!(all.contains("\"code\":\"busy\""), "{all}");
    drop(_a);
    // A freed place is served again (the close may take a wakeup to be noticed).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = h.connect();
        (&e).write_all(b"{\"cmd\":\"status\"}\n").unwrap();
        if read_line(&mut BufReader::new(e)).contains("\"programs\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served again after a connection closed"
        );
    }
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let h = Harness::start(Limits::default());
    let hog = h.connect();
    let mut w = hog.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    // Thousands of status requests, never reading an answer: the server stops reading
    // it once its unread output passes the bound, so our writes eventually stall.
    let line = b"{\"cmd\":\"status\"}\n".repeat(1000);
    let mut stalled = false;
    for _ in 0..1000 {
        if w.write_all(&line).is_err() {
            stalled = true;
            break;
        }
    }
    assert!(stalled, "the server kept reading a client that never reads");
    assert_serving(&h);
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holden.sock");
    let reactor = Reactor::new().unwrap();
    {
        // A socket file nobody listens on: what a killed holden leaves.
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(l);
    }
    assert!(path.exists());
    let first = Server::bind(&path, 0o600, &Grants::default(), &reactor).expect("stale socket replaced");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
    match Server::bind(&path, 0o600, &Grants::default(), &reactor) {
        Err(e @ ControlError::AlreadyRunning { .. }) => {
            assert_eq!(
                e.to_string(),
                format!(
                    "another holden is running on {}; stop it first, or set another [supervisor] socket",
                    path.display()
                )
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a live socket was taken over"),
    }
    // The refused attempt did not remove the live socket.
    assert!(UnixStream::connect(&path).is_ok());
    drop(first);
    assert!(!path.exists(), "close removes the socket file");

    std::fs::write(&path, "not a socket").unwrap();
    assert!(matches!(
        Server::bind(&path, 0o600, &Grants::default(), &reactor),
        Err(ControlError::NotASocket { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[test]
fn close_leaves_a_socket_file_that_is_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holden.sock");
    let reactor = Reactor::new().unwrap();
    let server = Server::bind(&path, 0o660, &Grants::default(), &reactor).unwrap();
    std::fs::remove_file(&path).unwrap();
    let newer = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(server);
    assert!(path.exists(), "a newer holden's socket was removed");
    drop(newer);
}

#[test]
fn a_watcher_that_does_not_read_is_dropped_and_others_keep_events() {
    let h = Harness::start(Limits {
        watch_buffer: 4096,
        ..Limits::default()
    });
    let slow = h.connect();
    (&slow).write_all(b"{\"cmd\":\"watch\"}\n").unwrap();
    let good = h.connect();
    (&good).write_all(b"{\"cmd\":\"watch\"}\n").unwrap();
    let mut gr = BufReader::new(good.try_clone().unwrap());
    assert!(read_line(&mut gr).contains("\"programs\""));
    let mut sr = BufReader::new(slow.try_clone().unwrap());
    assert!(read_line(&mut sr).contains("\"programs\""));
    // Enough events to fill the socket buffers and the 4 KiB bound many times over.
    let mut ctl = h.connect();
    let mut cr = BufReader::new(ctl.try_clone().unwrap());
    for _ in 0..200 {
        ctl.write_all(b"{\"cmd\":\"reopen\"}\n").unwrap();
        assert_eq!(read_line(&mut cr), "{\"ok\":true}\n");
        for _ in 0..100 {
            assert_eq!(read_line(&mut gr), "{\"event\":\"removed\",\"name\":\"web\"}\n");
        }
    }
    // The slow one was cut off: reading it to the end finishes (EOF) instead of blocking.
    let mut rest = Vec::new();
    sr.read_to_end(&mut rest).expect("the slow watcher was closed");
    assert!(rest.len() < 20_000 * 36, "the slow watcher got every event");
}

//! A server on a temp socket, driven by a reactor loop in a thread, answering with `handler`:
//! for tests of the server and of the client against a real socket.

use super::*;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

pub(crate) struct TestServer {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub(crate) fn start(
        limits: Limits,
        mut handler: impl FnMut(&mut Server, &Reactor, ConnId, Request) + Send + 'static,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/holden.sock");
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let p = path.clone();
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new().unwrap();
            let mut server = Server::bind_with(&p, 0o600, &Grants::default(), &reactor, limits).unwrap();
            tx.send(()).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                let ready = reactor.wait(server.next_deadline()).unwrap();
                for r in &ready {
                    for (conn, req) in server.on_ready(&reactor, r, Instant::now()) {
                        handler(&mut server, &reactor, conn, req);
                    }
                }
                server.on_deadline(&reactor, Instant::now());
            }
            drop(server);
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("server bound");
        TestServer {
            _dir: dir,
            path,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A new connection wakes the loop so that it sees `stop`.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

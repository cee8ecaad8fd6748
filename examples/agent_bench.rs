//! Benchmark: spawns per second through `holden agent` (a full round trip: START_PROCESS out,
//! PROCESS_STARTED and its pidfd back), and the agent's memory.
//!
//! Usage: `cargo run --release --example agent_bench -- [HOLDEN] [SPAWNS] [CLIENTS]`
//! (HOLDEN defaults to target/release/holden). It starts its own agent on a socket in a temp
//! dir, warms up, runs SPAWNS spawns of `true` split over CLIENTS connections in parallel, and
//! prints spawns/s, the round-trip latency percentiles, and the agent's RSS before and after.
//! bench/agent.sh runs it.

use std::io::{IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

#[allow(dead_code)]
#[path = "../src/agent/frame.rs"]
mod frame;

use frame::{Message, StartProcess};

fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One START_PROCESS round trip; returns once the pidfd is in hand (and closes it).
fn spawn_one(stream: &mut UnixStream, request: &[u8], input: &mut Vec<u8>) {
    stream.write_all(request).expect("send");
    let mut got_fd = false;
    loop {
        if let Some((msg, len)) = frame::decode(input).expect("valid answer") {
            input.drain(..len);
            match msg {
                Message::ProcessStarted { .. } => {
                    assert!(got_fd, "PROCESS_STARTED without its pidfd");
                    return;
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
        let mut buf = [0u8; 256];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let n = rustix::net::recvmsg(&*stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
            .expect("recvmsg")
            .bytes;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                // Dropping the OwnedFd closes the pidfd, as a caller done with it would.
                got_fd |= fds.count() > 0;
            }
        }
        assert!(n > 0, "the agent hung up");
        input.extend_from_slice(&buf[..n]);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let holden = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/holden"));
    let spawns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let mut agent = Command::new(&holden)
        .args(["agent", "--socket"])
        .arg(&socket)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the agent did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (rss0, _) = rss_kib(agent.id());

    let request = frame::encode(&Message::StartProcess(StartProcess {
        argv: vec![b"/bin/true".to_vec()],
        null_stdio: true,
        ..StartProcess::default()
    }))
    .unwrap();

    let run = |socket: &Path, n: usize| -> Vec<Duration> {
        let mut stream = UnixStream::connect(socket).expect("connect");
        let mut input = Vec::new();
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            spawn_one(&mut stream, &request, &mut input);
            lat.push(t.elapsed());
        }
        lat
    };

    run(&socket, 200); // warm-up
    let started = Instant::now();
    let mut lat: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| s.spawn(|| run(&socket, spawns / clients)))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let (rss1, hwm) = rss_kib(agent.id());
    lat.sort();

    println!(
        "agent spawns: {} spawns of /bin/true over {clients} connection(s) in {:.2?}",
        lat.len(),
        elapsed
    );
    println!(
        "  {:.0} spawns/s; round trip p50 {:.0?}, p99 {:.0?}, max {:.0?}",
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    println!("  agent RSS: {rss0} KiB idle, {rss1} KiB after, peak {hwm} KiB");

    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(agent.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    );
    let _ = agent.wait();

    // Baseline: the same spawns done in this process, without agent or socket, for scale.
    let started = Instant::now();
    for _ in 0..spawns {
        use std::os::unix::process::CommandExt;
        let child = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn /bin/true");
        drop(child);
        while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
    }
    // The agent is gone: every child left is one of ours.
    while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::empty()) {}
    println!(
        "  baseline, spawning in-process without the agent: {:.0} spawns/s",
        spawns as f64 / started.elapsed().as_secs_f64()
    );
}

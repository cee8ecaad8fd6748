//! `holden monitor`: every program's CPU and memory against its limits, redrawn in place.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant, SystemTime};

use super::args::ClientArgs;
use super::error::{Result, usage};
use super::{expect_status, now_unix, out, socket_path, table};
use crate::control::client::Connection;
use crate::control::protocol::Request;

/// The gap between `monitor`'s two first snapshots, from which its first frame's CPU rates are
/// taken (the interval if shorter).
const FIRST_SAMPLE: Duration = Duration::from_millis(250);

pub fn monitor(args: &ClientArgs, interval: &str) -> Result {
    let interval = humantime::parse_duration(interval.trim())
        .ok()
        .filter(|d| *d >= Duration::from_millis(10))
        .ok_or_else(|| {
            usage(format!(
                "--interval {interval:?} is not a duration of at least 10ms, like 1s or 500ms"
            ))
        })?;
    let path = socket_path(args);
    let tty = io::stdout().is_terminal();
    let mut conn: Option<Connection> = None;
    let mut previous: Option<(table::CpuSample, Instant)> = None;
    loop {
        let started = Instant::now();
        // One connection across snapshots; a new one if holden closed it (idle timeout).
        let programs = match conn.as_mut().map(|c| c.call(&Request::Status { names: vec![] })) {
            Some(Ok(reply)) => expect_status(reply)?,
            Some(Err(_)) | None => {
                let mut c = Connection::open(&path)?;
                let p = expect_status(c.call(&Request::Status { names: vec![] })?)?;
                conn = Some(c);
                p
            }
        };
        let mut taken = Instant::now();
        // The first frame too shows CPU as a rate: a second snapshot shortly after the first.
        let programs = if previous.is_none() {
            previous = Some((table::CpuSample::of(&programs), taken));
            std::thread::sleep(interval.min(FIRST_SAMPLE));
            let c = conn.as_mut().expect("connected above");
            let again = expect_status(c.call(&Request::Status { names: vec![] })?)?;
            taken = Instant::now();
            again
        } else {
            programs
        };
        let (sample, elapsed) = match &previous {
            Some((s, at)) => (Some(s), taken.duration_since(*at)),
            None => (None, Duration::ZERO),
        };
        let body = table::monitor_table(&programs, sample, elapsed, now_unix());
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
        let frame = if tty {
            // Home, then each line cleared to its end and the rest of the screen below: the
            // table is redrawn in place without the flicker of clearing the whole screen.
            let text = format!(
                "{stamp}  holden monitor on {}, every {} (Ctrl-C to quit)\n\n{body}",
                path.display(),
                humantime::format_duration(interval)
            );
            format!("\x1b[H{}\x1b[J", text.replace('\n', "\x1b[K\n"))
        } else {
            format!("{stamp}\n{body}\n")
        };
        out(&frame)?;
        previous = Some((table::CpuSample::of(&programs), taken));
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

//! Moving one batch of a stream from its pipe to its sink: raw by splice, or line by line
//! with prefixes and timestamps; the batch delay, and the batch timer.

use super::*;

/// The next batch delay of a stream whose last batch, waiting `waited`, found `moved` bytes in
/// a pipe of `capacity`: the delay that fills half the pipe at that rate, between
/// `MIN_BATCH_DELAY` and `BATCH_DELAY`. A pipe found nearly full may have stopped its program in
/// `write(2)`, which hides the real rate: the delay is then cut to a quarter, and below
/// `MIN_BATCH_DELAY` to zero: the stream is read at every readiness, as without batches, until a
/// read finds less than `FIRST_READ` waiting (`on_ready`).
///
/// A program writing a line at a time (a few hundred MiB/s at most) keeps the full
/// `BATCH_DELAY` and so the largest batches; one writing 64 KiB blocks into a 1 MiB pipe fills
/// it in well under a millisecond and gets batches of about half the pipe instead of waiting,
/// blocked, for the rest of a fixed delay (which cut its throughput to a fifth).
pub(super) fn batch_delay(delay: Duration, waited: Duration, moved: usize, capacity: usize) -> Duration {
    let capacity = capacity.max(1);
    if moved >= capacity - capacity / 8 {
        let quarter = delay / 4;
        return if quarter < MIN_BATCH_DELAY {
            Duration::ZERO
        } else {
            quarter
        };
    }
    if moved == 0 {
        return BATCH_DELAY;
    }
    let half = (capacity / 2) as u128;
    let want = waited.as_nanos().saturating_mul(half) / moved as u128;
    let want = Duration::from_nanos(want.min(u64::MAX as u128) as u64);
    want.clamp(MIN_BATCH_DELAY, BATCH_DELAY)
}

/// The splice path: bytes as they came, while the file is far from its limit. Returns
/// `NearLimit` when the last `NEAR_LIMIT` bytes before the limit are reached: those go
/// through the line path, which rotates between two lines.
///
/// Each round reads a first chunk of up to `FIRST_READ` and writes it: what a program that
/// writes a line at a time leaves in the pipe is moved cheapest by one copy, and a short read
/// means the pipe is empty, so the loop goes back to epoll without asking again. A full read
/// means more is waiting: that is spliced through the stage, pages and not bytes, until the
/// pipe is empty. (Measured with a bare C model of both, 512 MiB from one writer: against
/// splicing everything through the stage, this took 13% less time for a writer of one line
/// per write, and was within the noise for 4 and 64 KiB writes.)
pub(super) fn move_raw(
    id: u64,
    stream: &mut Stream,
    sink: &mut Sink,
    stage: Option<&Stage>,
    scratch: &mut Vec<u8>,
    budget: usize,
    moved: &mut usize,
) -> Moved {
    while *moved < budget {
        let Some(len) = raw_len(sink, budget - *moved) else {
            return Moved::NearLimit;
        };
        let want = FIRST_READ.min(len);
        scratch.resize(want, 0);
        let n = match stream.read(scratch) {
            Ok(n) => n,
            Err(end) => return end,
        };
        *moved += n;
        let r = sink.write_raw(&scratch[..n], id);
        sink.report(r, n);
        if n < want {
            return Moved::Empty;
        }
        let Some(stage) = stage.filter(|_| sink.splice_ok) else {
            continue;
        };
        while *moved < budget && sink.splice_ok {
            let Some(len) = raw_len(sink, budget - *moved) else {
                return Moved::NearLimit;
            };
            debug_assert_eq!(stage.queued(), 0, "the stage is empty between transfers");
            let len = len.min(stage.capacity);
            match stage.fill_from(&stream.pipe, len) {
                Ok(0) => return Moved::Eof,
                Ok(m) => {
                    *moved += m;
                    let (r, dropped) = sink.splice_staged(stage, m, id, scratch);
                    sink.report(r, dropped);
                    if m < len {
                        return Moved::Empty;
                    }
                }
                Err(Errno::AGAIN) => return Moved::Empty,
                Err(Errno::INTR) => {}
                // Not expected between two pipes; the reads above move the bytes instead.
                Err(e) => {
                    log::debug!("splice from the output pipe of {}: {e}", stream.program);
                    break;
                }
            }
        }
    }
    Moved::Budget
}

/// How much the splice path may move next (at most `left`), or None within `NEAR_LIMIT` of
/// the file's limit.
pub(super) fn raw_len(sink: &Sink, left: usize) -> Option<usize> {
    let room = sink.room();
    (room > NEAR_LIMIT).then(|| ((room - NEAR_LIMIT).min(SPLICE_CHUNK as u64) as usize).min(left))
}

/// The line path: read a chunk, cut it into lines, write batches of whole lines. With
/// `back_to_raw` (a plain stream near its file's limit) it returns `FarFromLimit` as soon as
/// a rotation made room again, so that splice takes over.
#[allow(clippy::too_many_arguments)]
pub(super) fn move_lines(
    id: u64,
    stream: &mut Stream,
    mut sink: Option<&mut Sink>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    budget: usize,
    moved: &mut usize,
    back_to_raw: bool,
) -> Moved {
    while *moved < budget {
        if back_to_raw && sink.as_deref().is_some_and(|s| s.room() > NEAR_LIMIT) {
            return Moved::FarFromLimit;
        }
        scratch.resize(READ_CHUNK.min(budget - *moved).max(1), 0);
        let n = match stream.read(scratch) {
            Ok(n) => n,
            Err(end) => return end,
        };
        *moved += n;
        let mut w = LineWriter {
            id,
            sink: sink.as_deref_mut(),
            out,
        };
        let r = stream
            .lines
            .feed(&scratch[..n], SystemTime::now(), &mut |parts| w.line(parts))
            .and_then(|()| w.flush());
        match sink.as_deref_mut() {
            Some(sink) => sink.report(r, n),
            None => {
                if let Err(e) = r {
                    log::debug!("cannot write to holden's stderr: {e}");
                }
            }
        }
    }
    Moved::Budget
}

/// The batch timer: a non-blocking timerfd registered in `reactor` as `Token{Logs, TIMER_ID}`.
pub(super) fn make_timer(reactor: &Reactor) -> io::Result<OwnedFd> {
    use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
    )?;
    reactor.add(fd.as_fd(), Token::new(Owner::Logs, TIMER_ID), Interest::Read)?;
    Ok(fd)
}

/// Arm `timer` to fire once at `at` (None: disarm).
pub(super) fn set_timer(timer: &OwnedFd, at: Option<Instant>) -> io::Result<()> {
    use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
    let left = match at {
        // At least a nanosecond: zero would disarm.
        Some(at) => at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1)),
        None => Duration::ZERO,
    };
    let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    let value = Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: left.subsec_nanos() as _,
    };
    timerfd_settime(
        timer,
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: zero,
            it_value: value,
        },
    )?;
    Ok(())
}

/// Batches lines of stream `id` for one write, rotating the file between two lines.
pub(super) struct LineWriter<'a> {
    pub(super) id: u64,
    /// None: holden's stderr.
    pub(super) sink: Option<&'a mut Sink>,
    pub(super) out: &'a mut Vec<u8>,
}

impl LineWriter<'_> {
    pub(super) fn line(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if !self.out.is_empty() && self.out.len() + n > OUT_CAP {
            self.flush()?;
        }
        if let Some(sink) = self.sink.as_deref_mut() {
            // The rest of a line already begun in the file stays in that file.
            let continues = match self.out.last() {
                None => sink.continues(self.id),
                Some(&last) => last != b'\n',
            };
            if !continues && sink.must_rotate_before(self.out.len() as u64, n as u64) {
                self.flush()?;
                let sink = self.sink.as_deref_mut().expect("checked above");
                if let Err(e) = sink.rotate() {
                    log::warn!("{e}");
                    // Keep writing past the limit rather than losing output.
                    sink.max_bytes = 0;
                }
            }
        }
        for p in parts {
            self.out.extend_from_slice(p);
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = match self.sink.as_deref_mut() {
            Some(sink) => sink.write_lines(self.out, self.id),
            None => io::stderr().lock().write_all(self.out),
        };
        self.out.clear();
        r
    }
}

//! Log capture: the pipes between programs and their log files, and `holden logs`.
//!
//! Owns: one pipe per captured output stream of each spawn (the child gets the write end, the
//! reactor watches the read end under `Owner::Logs`), the open log files (one [`Sink`] per
//! path, shared by every stream that writes there), rotation, timestamps, reopen, and the
//! client side of `holden logs` ([`tail`], [`follow`]). Leaves to the supervisor: when to
//! attach (before each spawn), when to drain (a death, before its transition line), routing
//! SIGUSR1 / `holden reopen` to [`Logs::reopen`].
//!
//! Two paths move bytes:
//!
//! - **splice** when nothing has to change: a file written by exactly one stream, no
//!   timestamps. A first read of up to 64 KiB is written with `pwrite` (a program writing a
//!   line at a time leaves little in the pipe, and one copy moves that cheapest); when it
//!   came back full, the rest moves pipe -> stage -> file by `splice`: the program's pages
//!   move into holden's own stage pipe (no copy, the program's pipe is locked only briefly),
//!   then into the page cache. Splicing the program's pipe straight into the file would hold
//!   its lock through the whole file write and block the program meanwhile. The file is
//!   written at holden's own offset, because splice into an `O_APPEND` file fails with EINVAL
//!   on 6.18 (KERNEL-NOTES section 6). If splice still says EINVAL (a filesystem without
//!   splice_write) the file falls back to read + pwrite for good.
//! - **lines** for "inherit" (`name | ` prefix), `log_timestamps`, any file with more than
//!   one writer (stdout and stderr into one file, or a grandchild of the last run still
//!   writing when the next run starts), and the last 64 KiB before a rotation: whole lines,
//!   one `write(2)` per batch of whole lines, so lines never tear or interleave mid-line (see
//!   `capture.rs` for partial and overlong lines). A plain file gets its bytes unchanged on
//!   this path too. `stderr = "stdout"` gets its own pipe into the shared file, not the stdout pipe:
//!   with one pipe, a program whose stdio buffers flush 4 KiB blocks would tear lines between
//!   the streams; with two, each stream's order is kept and no line tears.
//!
//! **Rotation** happens between two lines, never inside one, and never rewrites what was
//! written (a `holden logs -f` reading along sees every byte once). The line path rotates
//! before a line that would carry the file past `log_max_bytes` (a single line longer than the
//! limit gets a file of its own). The splice path cannot see line ends, so it splices only up
//! to `NEAR_LIMIT` (64 KiB) before the limit; the last bytes go through the line path, which
//! finishes the line splice began, rotates before the first line that does not fit, and hands
//! back to splice in the fresh file. Files hold whole lines and stay within the limit, except
//! that a line longer than 64 KiB that crosses the limit ends in the file it began in.
//!
//! **Backpressure**: holden reads only what it writes at once (a 256 KiB buffer on the line path,
//! the pipe itself on the splice path); when the disk is slower the pipe fills and the program
//! blocks in `write`. Nothing is dropped and holden's memory stays bounded. Pipes are enlarged
//! to 1 MiB (best effort) for throughput. The one exception is a failing disk (ENOSPC, EIO):
//! the bytes are read and dropped with one warning per run of failures, so a full disk cannot
//! stall the program forever.

mod capture;
mod error;
mod rotate;
mod sink;
mod tail;
mod transfer;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use rustix::io::Errno;

use crate::config::{Output, Program};
use crate::reactor::{Interest, Owner, Reactor, Ready, Token};
use capture::Lines;
use sink::{Sink, Stage};

pub use capture::MAX_LINE;
pub use error::LogError;
pub use tail::{follow, tail};
use transfer::{LineWriter, batch_delay, make_timer, move_lines, move_raw, set_timer};

/// Pipe capacity asked for (the default `/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: usize = 1 << 20;
/// Largest single splice.
const SPLICE_CHUNK: usize = 1 << 20;
/// Read buffer of the line path and the copy fallback. 256 KiB rather than 64: a quarter of
/// the wakeups of the program and of holden; the timestamps path took 20-30% less time for
/// programs writing 4 and 64 KiB at a time (bench/log_throughput, A/B), for 0.5 MiB of memory
/// touched once a program's output is captured.
const READ_CHUNK: usize = 256 * 1024;
/// Formatted lines are written once this much is batched.
const OUT_CAP: usize = 256 * 1024;
/// The splice path's first read: what a program writing little at a time leaves in the pipe.
/// More than this waiting goes by splice.
const FIRST_READ: usize = 64 * 1024;
/// A plain stream's last bytes before its file's limit go through the line path, so that the
/// rotation falls between two lines.
const NEAR_LIMIT: u64 = 64 * 1024;
/// Most bytes moved for one stream per readiness, so one chatty program cannot starve the
/// loop (epoll is level-triggered: the rest comes at the next wait).
const BUDGET: usize = 4 << 20;
/// The longest output waits in its pipe: a stream whose pipe was emptied less than this ago
/// is read again only a batch delay (at most this) after its next bytes came, so a busy
/// program's output moves in batches and the program writes into its pipe undisturbed
/// meanwhile (see "Batches").
pub const BATCH_DELAY: Duration = Duration::from_millis(1);
/// The shortest batch delay, for a program that fills half its pipe faster than this.
const MIN_BATCH_DELAY: Duration = Duration::from_micros(50);
/// The batch timer's token id (streams count from 1).
const TIMER_ID: u64 = 0;

/// The child-side ends of one spawn's output, for `process::spawn` (None: /dev/null).
#[derive(Debug)]
pub struct ChildStdio {
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Where a stream's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    File(PathBuf),
    /// holden's own stderr, each line prefixed `name | `.
    Stderr,
}

struct Stream {
    program: String,
    /// Read end, non-blocking, registered in the reactor under `Token{Logs, id}`.
    pipe: OwnedFd,
    dest: Dest,
    lines: Lines,
    /// When a transfer last left the pipe empty: bytes that come soon after wait for a batch.
    emptied: Option<Instant>,
    /// Waiting for its batch: since when, and when to read it. The pipe is out of the reactor
    /// meanwhile, so the program's writes wake nobody.
    batch: Option<(Instant, Instant)>,
    /// How long the next batch waits (`batch_delay`), learnt from the last one.
    delay: Duration,
    /// What the pipe holds when full (`F_SETPIPE_SZ`'s answer).
    capacity: usize,
}

impl Stream {
    /// Read what the pipe holds, up to `buf.len()` bytes; `Err` says why nothing came: the
    /// pipe is empty for now, or at its end (EOF, or an error, which is logged).
    fn read(&self, buf: &mut [u8]) -> Result<usize, Moved> {
        loop {
            return match rustix::io::read(&self.pipe, &mut *buf) {
                Ok(0) => Err(Moved::Eof),
                Ok(n) => Ok(n),
                Err(Errno::AGAIN) => Err(Moved::Empty),
                Err(Errno::INTR) => continue,
                Err(e) => {
                    log::warn!("cannot read the output pipe of {}: {e}", self.program);
                    Err(Moved::Eof)
                }
            };
        }
    }
}

/// Every captured stream and every open log file.
pub struct Logs {
    streams: BTreeMap<u64, Stream>,
    sinks: HashMap<PathBuf, Sink>,
    next_id: u64,
    /// Read buffer of the line path and the copy fallback.
    scratch: Vec<u8>,
    /// Formatted lines waiting for their one write.
    out: Vec<u8>,
    /// The splice path's own pipe, made at its first use (None until then, or if it could
    /// not be made: the copy path does the work then).
    stage: Option<Stage>,
    stage_failed: bool,
    /// The batch deadline (a timerfd under `Token{Logs, TIMER_ID}`), made at the first
    /// batch; None if it could not be made (every stream is then read at once).
    timer: Option<OwnedFd>,
    timer_failed: bool,
    /// When the timer fires next (None: disarmed).
    timer_at: Option<Instant>,
}

impl Default for Logs {
    fn default() -> Self {
        Logs::new()
    }
}

/// What one transfer ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moved {
    /// The pipe is empty for now (EAGAIN).
    Empty,
    /// Every writer closed the pipe and it is empty.
    Eof,
    /// The budget was used up; more may be waiting.
    Budget,
    /// (splice path) The file is within `NEAR_LIMIT` of its limit: take the line path.
    NearLimit,
    /// (line path of a plain stream) A rotation made room: splice again.
    FarFromLimit,
}

impl Logs {
    pub fn new() -> Logs {
        Logs {
            streams: BTreeMap::new(),
            sinks: HashMap::new(),
            next_id: 1,
            scratch: Vec::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(OUT_CAP + MAX_LINE + 256),
            stage: None,
            stage_failed: false,
            timer: None,
            timer_failed: false,
            timer_at: None,
        }
    }

    /// Before each spawn of `program`: fresh pipes per its `stdout`/`stderr`, read ends
    /// registered in `reactor`, files opened (parents created). Returns the child's ends.
    pub fn attach(&mut self, program: &Program, reactor: &Reactor) -> Result<ChildStdio, LogError> {
        let dest_of = |o: &Output| match o {
            Output::File(p) => Some(Dest::File(p.clone())),
            // `stdout = "stdout"` is refused by the config; holden's stderr is the safe reading.
            Output::Inherit | Output::Stdout => Some(Dest::Stderr),
            Output::Null => None,
        };
        let out_dest = dest_of(&program.stdout);
        let err_dest = match &program.stderr {
            Output::Stdout => out_dest.clone(),
            other => dest_of(other),
        };
        let mut added = Vec::new();
        let mut ends = Vec::new();
        for dest in [out_dest, err_dest] {
            match dest {
                None => ends.push(None),
                Some(dest) => match self.add_stream(program, dest, reactor) {
                    Ok((id, child_end)) => {
                        added.push(id);
                        ends.push(Some(child_end));
                    }
                    Err(e) => {
                        for id in added {
                            self.remove(reactor, id);
                        }
                        return Err(e);
                    }
                },
            }
        }
        let stderr = ends.pop().expect("two ends");
        let stdout = ends.pop().expect("two ends");
        Ok(ChildStdio { stdout, stderr })
    }

    fn add_stream(&mut self, program: &Program, dest: Dest, reactor: &Reactor) -> Result<(u64, OwnedFd), LogError> {
        let pipe_err = |source: io::Error| LogError::Pipe {
            program: program.name.clone(),
            source,
        };
        // Both ends close-on-exec: std's dup2 onto fd 1/2 gives the child its copy, and no
        // other child inherits either end (an inherited write end would hold off EOF forever).
        let (read, write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| pipe_err(e.into()))?;
        rustix::io::ioctl_fionbio(&read, true).map_err(|e| pipe_err(e.into()))?;
        // Best effort: an unprivileged user past pipe-user-pages-soft keeps the default size.
        let capacity = rustix::pipe::fcntl_setpipe_size(&read, PIPE_SIZE).unwrap_or(64 * 1024);
        if let Dest::File(path) = &dest {
            match self.sinks.get_mut(path) {
                Some(sink) => {
                    sink.max_bytes = program.log_max_bytes;
                    sink.backups = program.log_backups;
                }
                None => {
                    let sink = Sink::open(path, program.log_max_bytes, program.log_backups)?;
                    self.sinks.insert(path.clone(), sink);
                }
            }
        }
        let id = self.next_id;
        reactor
            .add(read.as_fd(), Token::new(Owner::Logs, id), Interest::Read)
            .map_err(|source| {
                if let Dest::File(path) = &dest {
                    self.release_sink(&path.clone());
                }
                LogError::Register {
                    program: program.name.clone(),
                    source,
                }
            })?;
        if let Dest::File(path) = &dest {
            self.sinks.get_mut(path).expect("opened above").writers += 1;
        }
        let prefix = match dest {
            Dest::Stderr => format!("{} | ", program.name).into_bytes(),
            Dest::File(_) => Vec::new(),
        };
        self.next_id += 1;
        self.streams.insert(
            id,
            Stream {
                program: program.name.clone(),
                pipe: read,
                dest,
                lines: Lines::new(prefix, program.log_timestamps),
                emptied: None,
                batch: None,
                delay: BATCH_DELAY,
                capacity,
            },
        );
        Ok((id, write))
    }

    /// An `Owner::Logs` readiness: move what is in the pipe to its destination; at EOF (every
    /// writer, grandchildren included, closed it) deregister and drop the stream. A stream
    /// emptied less than `BATCH_DELAY` ago is not read now: its pipe leaves the reactor and it
    /// is read its batch delay from now, in one batch (the batch timer's readiness).
    pub fn on_ready(&mut self, reactor: &Reactor, id: u64, ready: &Ready) {
        if id == TIMER_ID {
            self.on_timer(reactor);
            return;
        }
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        let now = Instant::now();
        let busy = stream.emptied.is_some_and(|t| now < t + BATCH_DELAY);
        // A hang-up is read at once: it is the end of the stream, or its program's death.
        let at = now + stream.delay;
        let batching = !stream.delay.is_zero();
        if busy && batching && !ready.hangup && self.defer(reactor, id, now, at) {
            return;
        }
        self.move_siblings_first(reactor, id);
        let moved = self.move_now(reactor, id);
        // Read at once because the program outran the shortest batch: batch again once a read
        // finds it slower than us.
        if !batching
            && moved < FIRST_READ
            && let Some(stream) = self.streams.get_mut(&id)
        {
            stream.delay = MIN_BATCH_DELAY;
        }
    }

    /// Before stream `id` is read out of turn, move what its program's other stream holds
    /// back for a batch: that came first. So a program that writes to stdout and then to
    /// stderr has them in that order in a shared file (or on holden's stderr), as when every
    /// write was read at once.
    fn move_siblings_first(&mut self, reactor: &Reactor, id: u64) {
        // A program's two streams are made one after the other (`attach`): ids next to each
        // other, so this costs two lookups, not a walk over every stream.
        let program = &self.streams[&id].program;
        let waiting: Vec<u64> = [id.wrapping_sub(1), id + 1]
            .into_iter()
            .filter(|other| {
                self.streams
                    .get(other)
                    .is_some_and(|s| s.batch.is_some() && &s.program == program)
            })
            .collect();
        for other in waiting {
            let stream = self.streams.get_mut(&other).expect("listed above");
            stream.batch = None;
            if let Err(e) = reactor.add(stream.pipe.as_fd(), Token::new(Owner::Logs, other), Interest::Read) {
                log::warn!("cannot watch the output pipe of {} again: {e}", stream.program);
            }
            self.move_now(reactor, other);
        }
    }

    /// Move stream `id`'s pipe now; at EOF drop the stream. Returns the bytes moved.
    fn move_now(&mut self, reactor: &Reactor, id: u64) -> usize {
        let (end, moved) = self.transfer(id, BUDGET);
        match end {
            Moved::Eof => self.remove(reactor, id),
            end => {
                let stream = self.streams.get_mut(&id).expect("known stream");
                stream.emptied = (end == Moved::Empty).then(Instant::now);
            }
        }
        moved
    }

    /// Take stream `id`'s pipe out of the reactor until `at`. False if there is no timer
    /// (the stream is read at once then).
    fn defer(&mut self, reactor: &Reactor, id: u64, now: Instant, at: Instant) -> bool {
        if self.timer.is_none() && !self.timer_failed {
            match make_timer(reactor) {
                Ok(fd) => self.timer = Some(fd),
                Err(e) => {
                    log::warn!("cannot make the log batch timer: {e}; reading output as it comes");
                    self.timer_failed = true;
                }
            }
        }
        let Some(timer) = &self.timer else {
            return false;
        };
        if self.timer_at.is_none_or(|t| at < t) {
            if let Err(e) = set_timer(timer, Some(at)) {
                log::warn!("cannot arm the log batch timer: {e}; reading output as it comes");
                return false;
            }
            self.timer_at = Some(at);
        }
        let stream = self.streams.get_mut(&id).expect("known stream");
        reactor.delete(stream.pipe.as_fd());
        stream.batch = Some((now, at));
        true
    }

    /// The batch timer fired: move every stream whose batch is due, give its pipe back to
    /// the reactor, and arm the timer for the next batch (or disarm it).
    fn on_timer(&mut self, reactor: &Reactor) {
        let Some(timer) = &self.timer else {
            return;
        };
        let mut expirations = [0u8; 8];
        // Non-blocking: EAGAIN when a rearm made this readiness stale.
        let _ = rustix::io::read(timer, &mut expirations);
        let now = Instant::now();
        let due: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| s.batch.is_some_and(|(_, at)| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let stream = self.streams.get_mut(&id).expect("known stream");
            let (since, _) = stream.batch.take().expect("due");
            if let Err(e) = reactor.add(stream.pipe.as_fd(), Token::new(Owner::Logs, id), Interest::Read) {
                // Not expected (the fd was registered before); reading at every timer
                // would be a busy loop, so this stream is read at its program's death.
                log::warn!("cannot watch the output pipe of {} again: {e}", stream.program);
            }
            let moved = self.move_now(reactor, id);
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.delay = batch_delay(stream.delay, now - since, moved, stream.capacity);
            }
        }
        let next = self.streams.values().filter_map(|s| s.batch.map(|(_, at)| at)).min();
        if let Some(timer) = &self.timer
            && next != self.timer_at
        {
            match set_timer(timer, next) {
                Ok(()) => self.timer_at = next,
                Err(e) => log::warn!("cannot arm the log batch timer: {e}"),
            }
        }
    }

    /// `program` died: move everything now in its pipes (without waiting for EOF: a
    /// grandchild may hold them) and write any held partial line, so its log holds all it
    /// wrote before its death's transition line. Streams not at EOF stay registered.
    pub fn drain(&mut self, reactor: &Reactor, program: &str) {
        for id in self.ids_of(program) {
            // What is in the pipe now; a grandchild writing on does not keep us here.
            let queued = rustix::io::ioctl_fionread(&self.streams[&id].pipe).unwrap_or(0);
            let (end, _) = self.transfer(id, (queued as usize).max(1));
            self.flush_held(id);
            if end == Moved::Eof {
                self.remove(reactor, id);
            }
        }
    }

    /// Shutdown: drain every stream (every program is down), then close them all.
    pub fn drain_all(&mut self, reactor: &Reactor) {
        let ids: Vec<u64> = self.streams.keys().copied().collect();
        for id in ids {
            let queued = rustix::io::ioctl_fionread(&self.streams[&id].pipe).unwrap_or(0);
            self.transfer(id, (queued as usize).max(1));
            self.remove(reactor, id);
        }
    }

    /// SIGUSR1 / `holden reopen`: close and reopen every log file (after an external `mv`).
    pub fn reopen(&mut self) {
        for sink in self.sinks.values_mut() {
            match sink.reopen() {
                Ok(()) => log::info!("reopened {}", sink.path.display()),
                Err(e) => log::warn!("{e}; still writing to the file open before"),
            }
        }
    }

    /// `program` was removed (reload, `holden remove`): drain its streams and close them.
    pub fn forget(&mut self, reactor: &Reactor, program: &str) {
        self.drain(reactor, program);
        for id in self.ids_of(program) {
            self.remove(reactor, id);
        }
    }

    #[cfg(test)]
    /// Streams still open for `program` (a grandchild may hold a pipe after the main
    /// process died).
    pub fn open_streams(&self, program: &str) -> usize {
        self.streams.values().filter(|s| s.program == program).count()
    }

    #[cfg(test)]
    /// Bytes of buffer holden keeps for capture (held partial lines and its two buffers):
    /// what a program without newlines can make it hold.
    pub fn buffered_capacity(&self) -> usize {
        self.scratch.capacity() + self.out.capacity() + self.streams.values().map(|s| s.lines.capacity()).sum::<usize>()
    }

    fn ids_of(&self, program: &str) -> Vec<u64> {
        self.streams
            .iter()
            .filter(|(_, s)| s.program == program)
            .map(|(id, _)| *id)
            .collect()
    }

    fn remove(&mut self, reactor: &Reactor, id: u64) {
        self.flush_held(id);
        if let Some(stream) = self.streams.remove(&id) {
            reactor.delete(stream.pipe.as_fd());
            if let Dest::File(path) = &stream.dest {
                self.release_sink(path);
            }
        }
    }

    /// One writer fewer; the file is closed with its last writer, so an external `mv`
    /// between runs needs no reopen.
    fn release_sink(&mut self, path: &PathBuf) {
        if let Some(sink) = self.sinks.get_mut(path) {
            sink.writers = sink.writers.saturating_sub(1);
            if sink.writers == 0 {
                self.sinks.remove(path);
            }
        }
    }

    /// Move up to `budget` bytes (at least one read) from stream `id`'s pipe: how that ended,
    /// and how many bytes were moved.
    fn transfer(&mut self, id: u64, budget: usize) -> (Moved, usize) {
        let Logs {
            streams,
            sinks,
            scratch,
            out,
            stage,
            stage_failed,
            ..
        } = self;
        let stream = streams.get_mut(&id).expect("known stream");
        let mut sink = match &stream.dest {
            Dest::File(path) => sinks.get_mut(path),
            Dest::Stderr => None,
        };
        if let Some(s) = sink.as_deref_mut() {
            s.sync_size();
        }
        let mut moved = 0;
        loop {
            let raw = match sink.as_deref_mut() {
                Some(s) => !stream.lines.transforms() && s.writers == 1,
                None => false,
            };
            if raw {
                let s = sink.as_deref_mut().expect("raw needs a file");
                // Back from the line path: the held start of a line goes as it is, the pipe
                // carries the rest.
                if !stream.lines.held_bytes().is_empty() {
                    let r = s.write_raw(stream.lines.held_bytes(), id);
                    s.report(r, stream.lines.held());
                    stream.lines.clear_held();
                }
                if stage.is_none() && s.splice_ok && !*stage_failed {
                    match Stage::new(PIPE_SIZE) {
                        Ok(made) => *stage = Some(made),
                        Err(e) => {
                            log::warn!("cannot make the log splice pipe: {e}; copying log output instead");
                            *stage_failed = true;
                        }
                    }
                }
                match move_raw(id, stream, s, stage.as_ref(), scratch, budget, &mut moved) {
                    Moved::NearLimit => {}
                    other => return (other, moved),
                }
            }
            match move_lines(id, stream, sink.as_deref_mut(), scratch, out, budget, &mut moved, raw) {
                Moved::FarFromLimit => continue,
                other => return (other, moved),
            }
        }
    }

    fn flush_held(&mut self, id: u64) {
        let Logs {
            streams, sinks, out, ..
        } = self;
        let Some(stream) = streams.get_mut(&id) else {
            return;
        };
        let mut sink = match &stream.dest {
            Dest::File(path) => sinks.get_mut(path),
            Dest::Stderr => None,
        };
        let mut w = LineWriter {
            id,
            sink: sink.as_deref_mut(),
            out,
        };
        let r = stream.lines.flush(&mut |parts| w.line(parts));
        let r = r.and_then(|()| w.flush());
        if let Some(sink) = sink {
            sink.report(r, 0);
        } else if let Err(e) = r {
            log::debug!("cannot write to holden's stderr: {e}");
        }
    }
}

#[cfg(test)]
mod tests;

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
mod rotate;
mod sink;
mod tail;

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
pub use sink::is_stream;
pub use tail::{follow, tail};

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

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "cannot create an output pipe for {program}: {}; raise the open files limit (ulimit -n)",
        crate::error::os_text(source)
    )]
    Pipe {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot watch the output pipe of {program}: {}; raise the open files limit (ulimit -n)",
        crate::error::os_text(source)
    )]
    Register {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot create log folder {}: {}; create it or fix its permissions", path.display(), crate::error::os_text(source))]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open log file {}: {}; {}", path.display(), crate::error::os_text(source), open_hint(source))]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rotate log file {}: {}; check the permissions of its folder and the free disk space", path.display(), crate::error::os_text(source))]
    Rotate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write log file {}: {}; free disk space or fix the file", path.display(), crate::error::os_text(source))]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LogError {
    /// Failed for lack of a resource that comes back (fds, memory): the spawn is tried again
    /// later instead of giving up.
    pub fn short_of_resources(&self) -> bool {
        let short = |e: &io::Error| {
            matches!(
                e.raw_os_error().map(rustix::io::Errno::from_raw_os_error),
                Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE | rustix::io::Errno::NOMEM)
            )
        };
        match self {
            LogError::Pipe { source, .. } | LogError::Register { source, .. } => short(source),
            LogError::Open { source, .. } => short(source),
            _ => false,
        }
    }
}

/// What to do about a log file that cannot be opened.
fn open_hint(e: &io::Error) -> &'static str {
    match Errno::from_io_error(e) {
        // O_NONBLOCK open of a FIFO (sink.rs) that nobody reads.
        Some(Errno::NXIO) => "start its reader first (a FIFO that no process reads)",
        Some(Errno::ISDIR) => "name a file, not a folder",
        _ => "check the permissions of the file and its folder",
    }
}

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
fn batch_delay(delay: Duration, waited: Duration, moved: usize, capacity: usize) -> Duration {
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
fn move_raw(
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
fn raw_len(sink: &Sink, left: usize) -> Option<usize> {
    let room = sink.room();
    (room > NEAR_LIMIT).then(|| ((room - NEAR_LIMIT).min(SPLICE_CHUNK as u64) as usize).min(left))
}

/// The line path: read a chunk, cut it into lines, write batches of whole lines. With
/// `back_to_raw` (a plain stream near its file's limit) it returns `FarFromLimit` as soon as
/// a rotation made room again, so that splice takes over.
#[allow(clippy::too_many_arguments)]
fn move_lines(
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
fn make_timer(reactor: &Reactor) -> io::Result<OwnedFd> {
    use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
    )?;
    reactor.add(fd.as_fd(), Token::new(Owner::Logs, TIMER_ID), Interest::Read)?;
    Ok(fd)
}

/// Arm `timer` to fire once at `at` (None: disarm).
fn set_timer(timer: &OwnedFd, at: Option<Instant>) -> io::Result<()> {
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
struct LineWriter<'a> {
    id: u64,
    /// None: holden's stderr.
    sink: Option<&'a mut Sink>,
    out: &'a mut Vec<u8>,
}

impl LineWriter<'_> {
    fn line(&mut self, parts: &[&[u8]]) -> io::Result<()> {
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

    fn flush(&mut self) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
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
    fn capture(
        logs: &mut Logs,
        reactor: &mut Reactor,
        p: &Program,
        cmd: &mut Command,
        mut each: impl FnMut(&mut Logs),
    ) {
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
}

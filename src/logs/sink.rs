//! One open log file, shared by every stream that writes to its path.
//!
//! The file is opened read-write **without** `O_APPEND`: splice into an `O_APPEND` file fails
//! with EINVAL on Linux 6.18 (KERNEL-NOTES section 6). holden keeps its own end-of-file
//! offset instead and writes with `pwrite`/`splice(off_out)`. An external truncation
//! (`logrotate copytruncate`, `: > web.log`) is noticed by an `fstat` before each batch, so the
//! next write lands at the new end instead of leaving a hole.
//!
//! A stream ([`config::is_stream`](crate::config::is_stream): a pipe, terminal, FIFO or device, or a name of one of holden's own
//! descriptors: `/dev/stdout` in a container, as supervisord users write `stdout_logfile=/dev/stdout`) is
//! opened write-only for appending and written in order with `write(2)`: no offset, no
//! splice, never rotated.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::LogError;
use super::rotate;
use crate::config::is_stream;

/// What holden knows about the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Empty, or ends with a newline.
    LineStart,
    /// May end in the middle of a line, written by this stream (None: by someone before
    /// holden opened it). The same stream continues its line; another one looks at the last
    /// byte first.
    MidLine(Option<u64>),
}

/// holden's own pipe between a program's pipe and its file on the splice path. Splicing the
/// program's pipe straight into a file holds that pipe's lock for the whole file write, so
/// the program cannot write meanwhile; moving the pages into this pipe first (no copy, a
/// short lock) lets it write on while holden copies into the page cache. Empty between
/// transfers.
pub struct Stage {
    read: OwnedFd,
    write: OwnedFd,
    /// What one fill may move.
    pub capacity: usize,
}

impl Stage {
    pub fn new(size: usize) -> io::Result<Stage> {
        use rustix::pipe::{PipeFlags, fcntl_setpipe_size, pipe_with};
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // Best effort, as for the programs' pipes: the default size only means smaller moves.
        let capacity = fcntl_setpipe_size(&read, size).unwrap_or(64 * 1024);
        Ok(Stage { read, write, capacity })
    }

    /// Move up to `len` bytes from `pipe` into the stage (pages change hands, nothing is
    /// copied). `Ok(0)`: `pipe` is at EOF; `EAGAIN`: it is empty.
    pub fn fill_from(&self, pipe: &OwnedFd, len: usize) -> rustix::io::Result<usize> {
        rustix::pipe::splice(
            pipe,
            None,
            &self.write,
            None,
            len.min(self.capacity),
            rustix::pipe::SpliceFlags::NONBLOCK,
        )
    }

    /// Bytes waiting in the stage (0 between transfers).
    pub fn queued(&self) -> usize {
        rustix::io::ioctl_fionread(&self.read).map_or(0, |n| n as usize)
    }
}

#[cfg(test)]
thread_local! {
    /// Bytes this thread spliced into files: shows a test which path its bytes took.
    pub static SPLICED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub struct Sink {
    pub path: PathBuf,
    file: File,
    /// Where the next byte goes: the end of the file as holden knows it.
    offset: u64,
    /// A regular file (offsets, splice, rotation); false for a pipe, terminal or device.
    seekable: bool,
    pub max_bytes: u64,
    pub backups: u32,
    tail: Tail,
    /// Streams currently writing here. More than one: every writer goes through the line
    /// path so that lines never tear.
    pub writers: usize,
    /// splice into this file works (cleared on the first EINVAL: odd filesystems).
    pub splice_ok: bool,
    /// A write failed and was reported; reset by the next success, so a full disk is one
    /// warning, not one per chunk.
    failing: bool,
    /// Bytes dropped since writing began to fail.
    lost: u64,
}

impl Sink {
    pub fn open(path: &Path, max_bytes: u64, backups: u32) -> Result<Sink, LogError> {
        let (file, offset, seekable) = open_at_end(path)?;
        Ok(Sink {
            path: path.to_path_buf(),
            file,
            offset,
            seekable,
            max_bytes,
            backups,
            tail: if offset == 0 {
                Tail::LineStart
            } else {
                Tail::MidLine(None)
            },
            writers: 0,
            splice_ok: seekable,
            failing: false,
            lost: 0,
        })
    }

    /// Pick up an external truncation before writing.
    pub fn sync_size(&mut self) {
        if !self.seekable {
            return;
        }
        if let Ok(st) = rustix::fs::fstat(&self.file) {
            let size = st.st_size as u64;
            if size < self.offset {
                self.offset = size;
                self.tail = if size == 0 {
                    Tail::LineStart
                } else {
                    Tail::MidLine(None)
                };
            }
        }
    }

    /// Close the file and open the path again (after an external `mv`). On failure the old
    /// file is kept, so nothing is lost, and the error is returned for a warning.
    pub fn reopen(&mut self) -> Result<(), LogError> {
        let (file, offset, seekable) = open_at_end(&self.path)?;
        self.file = file;
        self.offset = offset;
        self.seekable = seekable;
        self.splice_ok = seekable;
        self.tail = if offset == 0 {
            Tail::LineStart
        } else {
            Tail::MidLine(None)
        };
        Ok(())
    }

    /// Bytes that may still be written before the file is full; `u64::MAX` without a limit.
    pub fn room(&self) -> u64 {
        match self.max_bytes {
            _ if !self.seekable => u64::MAX,
            0 => u64::MAX,
            max => max.saturating_sub(self.offset),
        }
    }

    /// Would a line of `n` bytes, after `pending` bytes batched for this file but not yet
    /// written, carry the file past its limit?
    pub fn must_rotate_before(&self, pending: u64, n: u64) -> bool {
        self.seekable && rotate::must_rotate_before(self.offset + pending, n, self.max_bytes)
    }

    /// Does the file (maybe) end in the middle of a line that stream `id` is writing?
    pub fn continues(&self, id: u64) -> bool {
        self.tail == Tail::MidLine(Some(id))
    }

    /// Move the `len` bytes of stream `id` that wait in `stage` into the file at holden's
    /// offset: `splice` while the file takes it, else read + `pwrite` through `scratch`.
    /// Returns with `stage` empty whatever happens; a failed write returns its error with the
    /// number of bytes dropped (a failing disk must not stall the program).
    pub fn splice_staged(
        &mut self,
        stage: &Stage,
        mut len: usize,
        id: u64,
        scratch: &mut Vec<u8>,
    ) -> (io::Result<()>, usize) {
        let mut failed = None;
        let mut dropped = 0;
        while len > 0 {
            if self.splice_ok && failed.is_none() {
                match rustix::pipe::splice(
                    &stage.read,
                    None,
                    &self.file,
                    Some(&mut self.offset),
                    len,
                    rustix::pipe::SpliceFlags::NONBLOCK,
                ) {
                    Ok(n) if n > 0 => {
                        len -= n;
                        #[cfg(test)]
                        SPLICED.with(|c| c.set(c.get() + n));
                        // Where the lines end is not seen: assume mid-line.
                        self.tail = Tail::MidLine(Some(id));
                        continue;
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(rustix::io::Errno::INVAL) => {
                        log::debug!("splice into {} refused; copying instead", self.path.display());
                        self.splice_ok = false;
                        continue;
                    }
                    // A failing file (ENOSPC, EIO...): the copy below tries once more and
                    // empties the stage either way.
                    Ok(_) => failed = Some(io::Error::from(io::ErrorKind::WriteZero)),
                    Err(e) => failed = Some(e.into()),
                }
            }
            scratch.resize(super::READ_CHUNK.min(len), 0);
            let n = match rustix::io::read(&stage.read, &mut scratch[..]) {
                Ok(n) if n > 0 => n,
                Err(rustix::io::Errno::INTR) => continue,
                // The stage holds less than it was given: nothing is left to move.
                _ => break,
            };
            len -= n;
            if failed.is_some() {
                dropped += n;
            } else if let Err(e) = self.write_raw(&scratch[..n], id) {
                dropped += n;
                failed = Some(e);
            }
        }
        (failed.map_or(Ok(()), Err), dropped)
    }

    /// Write bytes of stream `id` as they came (the copy fallback of splice).
    pub fn write_raw(&mut self, buf: &[u8], id: u64) -> io::Result<()> {
        self.pwrite_all(buf)?;
        self.note_end(buf, id);
        Ok(())
    }

    /// Write lines of stream `id` (whole, except that the last may be a piece of an overlong
    /// line). If another writer left the file in the middle of a line, a newline goes first,
    /// so that these lines start at a line start.
    pub fn write_lines(&mut self, buf: &[u8], id: u64) -> io::Result<()> {
        if let Tail::MidLine(by) = self.tail
            && by != Some(id)
        {
            let unfinished = if self.seekable {
                let mut last = [0u8; 1];
                self.offset > 0 && rustix::io::pread(&self.file, &mut last, self.offset - 1)? == 1 && last[0] != b'\n'
            } else {
                // What a pipe holds cannot be read back: only what holden wrote is known.
                by.is_some()
            };
            if unfinished {
                self.pwrite_all(b"\n")?;
            }
        }
        self.pwrite_all(buf)?;
        self.note_end(buf, id);
        Ok(())
    }

    fn note_end(&mut self, buf: &[u8], id: u64) {
        match buf.last() {
            Some(b'\n') => self.tail = Tail::LineStart,
            Some(_) => self.tail = Tail::MidLine(Some(id)),
            None => {}
        }
    }

    fn pwrite_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let written = if self.seekable {
                rustix::io::pwrite(&self.file, buf, self.offset)
            } else {
                rustix::io::write(&self.file, buf)
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.offset += n as u64;
                    buf = &buf[n..];
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Rotate now (between two lines): shift the backups and open a fresh file, or truncate
    /// in place with `log_backups = 0`.
    pub fn rotate(&mut self) -> Result<(), LogError> {
        let err = |source: io::Error| LogError::Rotate {
            path: self.path.clone(),
            source,
        };
        if self.backups == 0 {
            rustix::fs::ftruncate(&self.file, 0).map_err(|e| err(e.into()))?;
            self.offset = 0;
        } else {
            rotate::shift_backups(&self.path, self.backups, &self.file).map_err(err)?;
            let (file, offset, _) = open_at_end(&self.path)?;
            self.file = file;
            self.offset = offset;
        }
        self.tail = if self.offset == 0 {
            Tail::LineStart
        } else {
            Tail::MidLine(None)
        };
        log::debug!("rotated {}", self.path.display());
        Ok(())
    }

    /// Report a failed write once per run of failures.
    /// The end of the run says how much was lost in all.
    pub fn report(&mut self, result: io::Result<()>, dropped: usize) {
        match result {
            Ok(()) => {
                if self.failing {
                    log::info!(
                        "writing to {} again ({} bytes of output lost while it failed)",
                        self.path.display(),
                        self.lost
                    );
                }
                self.failing = false;
                self.lost = 0;
            }
            Err(source) => {
                if !self.failing {
                    let e = LogError::Write {
                        path: self.path.clone(),
                        source,
                    };
                    log::warn!("{e} ({dropped} bytes of output lost; said once until writing works again)");
                }
                self.failing = true;
                self.lost += dropped as u64;
            }
        }
    }
}

/// The file at `path`, its length, and whether it is a log file of holden's own (not a
/// stream: [`is_stream`]).
fn open_at_end(path: &Path) -> Result<(File, u64, bool), LogError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| LogError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let open_err = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    if is_stream(path) {
        // Write-only: holding a read end of a pipe would keep holden from ever seeing its
        // reader go away. O_APPEND: a regular file behind /dev/stdout is added to, not
        // overwritten from its start. O_NONBLOCK for the open only: a FIFO without a reader
        // fails with ENXIO instead of hanging holden; writes then block, for backpressure, as
        // to any file.
        let file = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
            .map_err(open_err)?;
        rustix::io::ioctl_fionbio(&file, false).map_err(|e| open_err(e.into()))?;
        return Ok((file, 0, false));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(open_err)?;
    let len = file.metadata().map_err(open_err)?.len();
    Ok((file, len, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe holding `data` (at most its capacity), write end closed.
    fn pipe_with(data: &[u8]) -> OwnedFd {
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::pipe::fcntl_setpipe_size(&r, 1 << 20).unwrap();
        let mut left = data;
        while !left.is_empty() {
            left = &left[rustix::io::write(&w, left).unwrap()..];
        }
        r
    }

    #[test]
    fn staged_bytes_land_in_the_file_at_holden_offset_and_the_stage_empties() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        std::fs::write(&path, b"before\n").unwrap();
        let mut sink = Sink::open(&path, 0, 0).unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let pipe = pipe_with(&data);
        let stage = Stage::new(1 << 20).unwrap();
        let mut scratch = Vec::new();
        let mut moved = 0;
        while moved < data.len() {
            let n = stage.fill_from(&pipe, data.len() - moved).unwrap();
            assert!(n > 0);
            let (r, dropped) = sink.splice_staged(&stage, n, 7, &mut scratch);
            r.unwrap();
            assert_eq!((dropped, stage.queued()), (0, 0));
            moved += n;
        }
        assert_eq!(stage.fill_from(&pipe, 1), Ok(0), "the pipe is at EOF");
        let file = std::fs::read(&path).unwrap();
        assert_eq!(&file[..7], b"before\n");
        assert!(file[7..] == data[..], "the bytes differ");
        assert!(sink.continues(7), "spliced bytes may end mid-line");
    }

    #[test]
    fn a_fifo_without_a_reader_is_an_error_that_says_so_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let fifo = rustix::fs::FileType::Fifo;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let e = Sink::open(&path, 0, 0).err().expect("no reader: refused").to_string();
        assert!(e.contains("a FIFO that no process reads"), "{e}");
    }

    #[test]
    fn a_failing_file_drops_the_staged_bytes_and_says_how_many() {
        // /dev/full takes no splice (EINVAL: the copy takes over) and fails every write.
        let mut sink = Sink::open(Path::new("/dev/full"), 0, 0).unwrap();
        let pipe = pipe_with(&[b'x'; 200_000]);
        let stage = Stage::new(1 << 20).unwrap();
        let n = stage.fill_from(&pipe, 200_000).unwrap();
        assert_eq!(n, 200_000);
        let (r, dropped) = sink.splice_staged(&stage, n, 1, &mut Vec::new());
        assert_eq!(
            r.unwrap_err().raw_os_error(),
            Some(rustix::io::Errno::NOSPC.raw_os_error())
        );
        assert_eq!(dropped, n);
        assert_eq!(
            stage.queued(),
            0,
            "nothing stays in the stage to stall the next transfer"
        );
        assert!(!sink.splice_ok);
    }
}

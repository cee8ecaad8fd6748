//! `holden logs`: the last lines of a log (reaching back into `web.log.1`, `web.log.2`, ...
//! when the live file holds fewer), and `-f`, which follows the log across rotations,
//! truncations and recreations until interrupted.
//!
//! Following uses inotify on the log's folder (one watch sees writes, renames and creations
//! of the file), so the client sleeps in `read(2)` until something happens: no polling loop.
//! After a rotation the file being read is found again among the backups by its inode, and
//! every newer file is read in order, so a burst of rotations between two wake-ups loses no
//! line: `web.log.3` (where the reader was) then `.2`, `.1`, then `web.log`.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use rustix::fs::inotify;

use super::rotate::{backup_name, same_file};

const BLOCK: usize = 64 * 1024;
/// Backups are looked for up to this number (`log_backups` is not known to the client).
const MAX_BACKUPS: u32 = 10_000;

/// Print the last `lines` lines of the log at `path` to `out`, oldest first, taking lines from
/// the rotated files when the live one holds fewer.
pub fn tail(path: &Path, lines: usize, out: &mut dyn Write) -> io::Result<()> {
    print_tail(path, lines, out).map(|_| ())
}

/// `holden logs -f`: print the last `lines` lines, then everything written after them, across
/// rotations, truncations and recreations of the file. Returns only on an error (writing to
/// `out` included): the user interrupts it.
pub fn follow(path: &Path, lines: usize, out: &mut dyn Write) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let ino = inotify::init(inotify::CreateFlags::CLOEXEC)?;
    // Watch before reading, so nothing written after the tail goes unnoticed.
    inotify::add_watch(
        &ino,
        dir,
        inotify::WatchFlags::MODIFY
            | inotify::WatchFlags::CREATE
            | inotify::WatchFlags::MOVED_FROM
            | inotify::WatchFlags::MOVED_TO
            | inotify::WatchFlags::DELETE
            | inotify::WatchFlags::ATTRIB,
    )?;
    let mut current = match print_tail(path, lines, out) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    out.flush()?;
    let mut events = vec![0u8; 4096];
    loop {
        match current.as_mut() {
            Some(cur) => {
                cur.copy_new(out)?;
                out.flush()?;
                if !same_file(path, &cur.file)? {
                    // None: the path is gone (between a rotation's rename and create): wait.
                    if let Some(next) = newer_file(path, &cur.file)? {
                        // The last writes to the old file, then the next one from its start.
                        cur.copy_new(out)?;
                        current = Some(Reading { file: next, pos: 0 });
                        continue;
                    }
                }
            }
            None => match File::open(path) {
                Ok(file) => {
                    current = Some(Reading { file, pos: 0 });
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        // Block until anything happens in the folder; what happened is re-checked above.
        loop {
            match rustix::io::read(&ino, &mut events[..]) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A file being followed and how far it has been printed.
struct Reading {
    file: File,
    pos: u64,
}

impl Reading {
    /// Print what was appended since the last call (from the start after a truncation).
    fn copy_new(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let size = self.file.metadata()?.len();
        if size < self.pos {
            self.pos = 0;
        }
        copy_range(&self.file, self.pos, u64::MAX, out, &mut self.pos)
    }
}

/// The file that comes after `ours` now that `path` no longer names it: the next newer backup
/// when a rotation moved it to `path.k`, else (deleted, or moved elsewhere) the live file.
fn newer_file(path: &Path, ours: &File) -> io::Result<Option<File>> {
    let mut next = path.to_path_buf();
    for k in 1..=MAX_BACKUPS {
        let name = backup_name(path, k);
        if !name.exists() {
            break;
        }
        if same_file(&name, ours)? {
            break;
        }
        next = name;
    }
    // `next` is path.(k-1), or path when ours is path.1 or not a backup at all. When ours is
    // not among the backups, take the live file.
    if next != path && !is_backup_of(path, ours)? {
        next = path.to_path_buf();
    }
    match File::open(&next) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_backup_of(path: &Path, ours: &File) -> io::Result<bool> {
    for k in 1..=MAX_BACKUPS {
        let name = backup_name(path, k);
        if !name.exists() {
            return Ok(false);
        }
        if same_file(&name, ours)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Print the tail; return the live file and where printing stopped in it.
fn print_tail(path: &Path, lines: usize, out: &mut dyn Write) -> io::Result<Option<Reading>> {
    // Between a rotation's rename and the next write the live file may be missing: the
    // backups still answer.
    let live = match File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound && backup_name(path, 1).exists() => None,
        Err(e) => return Err(e),
    };
    let live_len = match &live {
        Some(f) => f.metadata()?.len(),
        None => 0,
    };
    let mut parts = vec![];
    let (start, mut found) = match &live {
        Some(f) => last_lines(f, live_len, lines)?,
        None => (0, 0),
    };
    let mut k = 1;
    while found < lines && k <= MAX_BACKUPS {
        let backup = match File::open(backup_name(path, k)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        let len = backup.metadata()?.len();
        let (s, n) = last_lines(&backup, len, lines - found)?;
        found += n;
        parts.push((backup, s, len));
        k += 1;
    }
    for (file, s, len) in parts.iter().rev() {
        let mut pos = *s;
        copy_range(file, *s, *len, out, &mut pos)?;
    }
    let Some(live) = live else {
        return Ok(None);
    };
    let mut pos = start;
    copy_range(&live, start, live_len, out, &mut pos)?;
    Ok(Some(Reading { file: live, pos }))
}

/// Where the last `want` lines of a file of `len` bytes start, and how many lines were found
/// (fewer than `want` when the file holds fewer). A last line without a newline counts.
pub fn last_lines(file: &File, len: u64, want: usize) -> io::Result<(u64, usize)> {
    if len == 0 || want == 0 {
        return Ok((len, 0));
    }
    let mut buf = vec![0u8; BLOCK];
    let mut end = len;
    let mut found = 0;
    while end > 0 {
        let start = end.saturating_sub(BLOCK as u64);
        let chunk = &mut buf[..(end - start) as usize];
        read_exact_at(file, chunk, start)?;
        for i in (0..chunk.len()).rev() {
            let pos = start + i as u64;
            // The file's final byte ends the last line; it does not start one.
            if pos + 1 == len || chunk[i] != b'\n' {
                continue;
            }
            found += 1;
            if found == want {
                return Ok((pos + 1, want));
            }
        }
        end = start;
    }
    Ok((0, found + 1))
}

fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pread(file, &mut *buf, at) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                at += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Copy `file[from..to]` (or to its end, whichever comes first) to `out`; `pos` follows.
fn copy_range(file: &File, from: u64, to: u64, out: &mut dyn Write, pos: &mut u64) -> io::Result<()> {
    let mut buf = vec![0u8; BLOCK];
    *pos = from;
    while *pos < to {
        let want = ((to - *pos).min(BLOCK as u64)) as usize;
        let n = match rustix::io::pread(file, &mut buf[..want], *pos) {
            Ok(0) => break,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        out.write_all(&buf[..n])?;
        *pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    fn tail_of(path: &Path, n: usize) -> String {
        let mut out = Vec::new();
        tail(path, n, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tail_gives_the_last_lines_with_or_without_a_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.log");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail_of(&p, 2), "b\nc\n");
        assert_eq!(tail_of(&p, 3), "a\nb\nc\n");
        assert_eq!(tail_of(&p, 10), "a\nb\nc\n");
        assert_eq!(tail_of(&p, 0), "");
        std::fs::write(&p, "a\nb\npartial").unwrap();
        assert_eq!(tail_of(&p, 1), "partial");
        assert_eq!(tail_of(&p, 2), "b\npartial");
        std::fs::write(&p, "").unwrap();
        assert_eq!(tail_of(&p, 5), "");
    }

    #[test]
    fn tail_reaches_back_into_rotated_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.log");
        std::fs::write(backup_name(&p, 2), "1\n2\n").unwrap();
        std::fs::write(backup_name(&p, 1), "3\n4\n").unwrap();
        std::fs::write(&p, "5\n").unwrap();
        assert_eq!(tail_of(&p, 1), "5\n");
        assert_eq!(tail_of(&p, 2), "4\n5\n");
        assert_eq!(tail_of(&p, 4), "2\n3\n4\n5\n");
        assert_eq!(tail_of(&p, 100), "1\n2\n3\n4\n5\n");
    }

    #[test]
    fn tail_of_a_file_longer_than_one_block_counts_lines_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.log");
        let body: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, &body).unwrap();
        assert_eq!(tail_of(&p, 3), "line 49997\nline 49998\nline 49999\n");
        let all = tail_of(&p, 50_000);
        assert_eq!(all, body);
    }

    #[test]
    fn tail_between_a_rotation_and_the_next_write_reads_the_backups() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.log");
        std::fs::write(backup_name(&p, 1), "1\n2\n").unwrap();
        assert_eq!(tail_of(&p, 1), "2\n");
    }

    #[test]
    fn tail_of_a_missing_log_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = tail(&dir.path().join("nope.log"), 5, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    /// A writer for `follow` in a thread: collects, and fails once told to stop so that
    /// `follow` returns.
    #[derive(Clone)]
    struct Sink {
        seen: Arc<Mutex<Vec<u8>>>,
        stop: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.seen.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            Ok(())
        }
    }

    fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn follow_goes_on_across_rotation_truncation_and_recreation() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.log");
        std::fs::write(&p, "old 1\nold 2\n").unwrap();
        let sink = Sink {
            seen: Arc::default(),
            stop: Arc::default(),
        };
        let (s2, p2) = (sink.clone(), p.clone());
        let t = std::thread::spawn(move || {
            let mut w = s2;
            follow(&p2, 1, &mut w)
        });
        let seen = || String::from_utf8(sink.seen.lock().unwrap().clone()).unwrap();
        wait_until("the tail", Duration::from_secs(10), || seen() == "old 2\n");

        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"new 1\n").unwrap();
        wait_until("an appended line", Duration::from_secs(10), || {
            seen().ends_with("new 1\n")
        });

        // Two rotations in a row, as holden does them (rename, then a fresh file).
        f.write_all(b"last of first\n").unwrap();
        std::fs::rename(&p, backup_name(&p, 1)).unwrap();
        std::fs::write(&p, "second file\n").unwrap();
        std::fs::rename(backup_name(&p, 1), backup_name(&p, 2)).unwrap();
        std::fs::rename(&p, backup_name(&p, 1)).unwrap();
        std::fs::write(&p, "third file\n").unwrap();
        wait_until("the rotated lines", Duration::from_secs(10), || {
            seen().ends_with("third file\n")
        });

        // Truncation in place, then deletion and recreation.
        std::fs::write(&p, "cut\n").unwrap();
        wait_until("the truncated file", Duration::from_secs(10), || {
            seen().ends_with("cut\n")
        });
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "recreated\n").unwrap();
        wait_until("the recreated file", Duration::from_secs(10), || {
            seen().ends_with("recreated\n")
        });

        assert_eq!(
            seen(),
            "old 2\nnew 1\nlast of first\nsecond file\nthird file\ncut\nrecreated\n"
        );
        sink.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        std::fs::write(&p, "wake up\n").unwrap();
        let r = t.join().unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}

//! Rotation by size: the names of the backups, when to rotate, and the rename chain itself.
//!
//! `web.log` is the live file, `web.log.1` the newest backup, `web.log.N` the oldest
//! (`log_backups = N`). A rotation renames `web.log.{N-1}` to `web.log.N` (replacing it), ...,
//! `web.log` to `web.log.1`, then the caller opens a fresh `web.log`. With `log_backups = 0`
//! the live file is truncated in place instead.
//!
//! The rename chain only renames `web.log` when it is still the file holden writes to (same
//! device and inode): after an external `mv` that was not followed by a reopen, the file at
//! the path is someone else's and is left alone.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// `web.log` + 3 -> `web.log.3`.
pub fn backup_name(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Would writing `n` more bytes to a file of `size` bytes carry it past `max` (0: never)?
/// A file with nothing in it never needs a rotation: a line longer than `max` is written
/// whole into a file of its own.
pub fn must_rotate_before(size: u64, n: u64, max: u64) -> bool {
    max > 0 && size > 0 && size.saturating_add(n) > max
}

/// Shift the backups of `path` by one: `path.{backups-1}` -> `path.{backups}`, ...,
/// `path` -> `path.1`. `ours` is the open live file: `path` itself is only renamed when it
/// still names that file. Missing backups are skipped (the chain may have holes after an
/// external cleanup).
pub fn shift_backups(path: &Path, backups: u32, ours: impl AsFd) -> io::Result<()> {
    debug_assert!(backups > 0);
    // Only the run path.1 .. path.(top-1) moves: a hole at `top` takes path.(top-1), and
    // nothing above the hole needs to move (at `backups` the oldest is replaced).
    let mut top = 1;
    while top < backups && backup_name(path, top).exists() {
        top += 1;
    }
    for n in (1..top).rev() {
        match std::fs::rename(backup_name(path, n), backup_name(path, n + 1)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if same_file(path, ours)? {
        std::fs::rename(path, backup_name(path, 1))?;
    }
    Ok(())
}

/// Does `path` name the open file `fd`?
pub fn same_file(path: &Path, fd: impl AsFd) -> io::Result<bool> {
    let ours = rustix::fs::fstat(fd)?;
    match rustix::fs::stat(path) {
        Ok(st) => Ok(st.st_dev == ours.st_dev && st.st_ino == ours.st_ino),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_are_named_with_a_numeric_suffix() {
        assert_eq!(
            backup_name(Path::new("/var/log/web.log"), 1),
            PathBuf::from("/var/log/web.log.1")
        );
        assert_eq!(backup_name(Path::new("out"), 10), PathBuf::from("out.10"));
    }

    #[test]
    fn rotation_happens_only_when_a_write_would_pass_the_limit() {
        assert!(!must_rotate_before(0, 10, 5), "an empty file takes any line");
        assert!(!must_rotate_before(5, 5, 10));
        assert!(must_rotate_before(6, 5, 10));
        assert!(!must_rotate_before(1 << 40, 1, 0), "0 never rotates");
    }

    #[test]
    fn shifting_keeps_the_newest_as_1_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("web.log");
        for (name, body) in [("web.log", "live"), ("web.log.1", "one"), ("web.log.2", "two")] {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let f = std::fs::File::open(&live).unwrap();
        shift_backups(&live, 2, &f).unwrap();
        assert!(!live.exists());
        let read = |n| std::fs::read_to_string(backup_name(&live, n)).unwrap();
        assert_eq!(read(1), "live");
        assert_eq!(read(2), "one");
        assert!(!backup_name(&live, 3).exists());
    }

    #[test]
    fn shifting_stops_at_the_first_hole() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("web.log");
        for (name, body) in [("web.log", "live"), ("web.log.1", "one"), ("web.log.3", "three")] {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let f = std::fs::File::open(&live).unwrap();
        shift_backups(&live, 5, &f).unwrap();
        let read = |n| std::fs::read_to_string(backup_name(&live, n)).unwrap();
        assert_eq!(
            (read(1), read(2), read(3)),
            ("live".into(), "one".into(), "three".into())
        );
        assert!(!backup_name(&live, 4).exists());
    }

    #[test]
    fn shifting_leaves_a_file_that_is_not_ours_alone() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("web.log");
        std::fs::write(&live, "ours").unwrap();
        let f = std::fs::File::open(&live).unwrap();
        std::fs::rename(&live, dir.path().join("moved")).unwrap();
        std::fs::write(&live, "someone else's").unwrap();
        shift_backups(&live, 3, &f).unwrap();
        assert_eq!(std::fs::read_to_string(&live).unwrap(), "someone else's");
    }
}

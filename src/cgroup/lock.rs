//! One holden per `cgroup_path`: an exclusive `flock` on the parent cgroup directory, held for
//! holden's life and dropped by the kernel when it dies (however it dies). Two holdens on one
//! parent would each take the other's programs for leftovers of an earlier run and kill them.
//!
//! The lock is on the directory itself, not on a file named after the path, so it holds across
//! mount namespaces and however the path is spelled. A refused holden names the holder: its pid
//! from `/proc/locks` (the entry on this directory's device and inode) and its control socket
//! from `/proc/net/unix` (the listening socket among its fds), both best effort.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::CgroupError;

/// How long the lock may stay taken before holden believes another holden has it.
const HELD_BY_A_CHILD: Duration = Duration::from_secs(2);

/// Take the lock on `dir`, or say who holds it.
pub fn take(dir: &Path) -> Result<OwnedFd, CgroupError> {
    let io = |op: &'static str, e: Errno| CgroupError::Io {
        op,
        path: dir.to_path_buf(),
        source: e.into(),
    };
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io("open", e))?;
    // A holden SIGKILLed while it was spawning leaves a child between fork and exec holding a
    // copy of this fd, and with it the lock, until its exec closes it: wait that out.
    let deadline = Instant::now() + HELD_BY_A_CHILD;
    let locked = loop {
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Err(Errno::WOULDBLOCK) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => break other,
        }
    };
    match locked {
        Ok(()) => Ok(fd),
        Err(Errno::WOULDBLOCK) => Err(CgroupError::Taken {
            path: dir.to_path_buf(),
            holder: holder(&fd),
        }),
        Err(e) => Err(io("lock", e)),
    }
}

/// "pid N, socket PATH" of the process holding the lock on `fd`'s directory, as far as known.
fn holder(fd: &OwnedFd) -> String {
    let pid = rustix::fs::fstat(fd).ok().and_then(|st| {
        let dev = st.st_dev;
        let locks = fs::read_to_string("/proc/locks").ok()?;
        flock_holder(&locks, rustix::fs::major(dev), rustix::fs::minor(dev), st.st_ino)
    });
    let Some(pid) = pid else {
        return "pid unknown".into();
    };
    let inodes: Vec<u64> = fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|l| socket_inode(&l.to_string_lossy()))
        .collect();
    let sockets = fs::read_to_string("/proc/net/unix")
        .map(|t| listening_paths(&t, &inodes))
        .unwrap_or_default();
    match sockets.is_empty() {
        true => format!("pid {pid}"),
        false => format!("pid {pid}, socket {}", sockets.join(", ")),
    }
}

/// The pid of the FLOCK entry of `/proc/locks` on device `major:minor`, inode `ino`.
fn flock_holder(locks: &str, major: u32, minor: u32, ino: u64) -> Option<u32> {
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"; a waiter's line has "->" second.
        (f.len() >= 6 && f[1] == "FLOCK" && f[5] == want)
            .then(|| f[4].parse().ok())
            .flatten()
    })
}

/// `socket:[123]` -> 123.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The paths of the listening sockets in `/proc/net/unix` whose inode is one of `inodes`.
fn listening_paths(unix: &str, inodes: &[u64]) -> Vec<String> {
    const ACCEPTCON: u32 = 0x10000;
    unix.lines()
        .skip(1)
        .filter_map(|line| {
            // Num RefCount Protocol Flags Type St Inode Path
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let inode: u64 = f.get(6)?.parse().ok()?;
            let path = f.get(7)?;
            (flags & ACCEPTCON != 0 && inodes.contains(&inode)).then(|| path.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_the_flock_entry_on_the_directory() {
        let locks = "1: POSIX  ADVISORY  WRITE 99 00:1f:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4321 00:1f:5678 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 555 fd:01:5678 0 EOF\n";
        assert_eq!(flock_holder(locks, 0, 0x1f, 5678), Some(1234));
        assert_eq!(flock_holder(locks, 0xfd, 1, 5678), Some(555));
        assert_eq!(flock_holder(locks, 0, 0x1f, 77), None, "a POSIX lock is not ours");
        assert_eq!(flock_holder(locks, 0, 0x1f, 1), None);
    }

    #[test]
    fn the_socket_is_a_listening_one_among_the_holders_fds() {
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                    0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/holden.sock\n\
                    0000000000000000: 00000002 00000000 00000000 0001 03 4343 /run/other.sock\n\
                    0000000000000000: 00000002 00000000 00010000 0001 01 4444 /run/not-ours.sock\n\
                    0000000000000000: 00000002 00000000 00000000 0002 01 4545\n";
        assert_eq!(listening_paths(unix, &[4242, 4343, 4545]), vec!["/run/holden.sock"]);
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
    }

    #[test]
    fn a_second_lock_on_a_directory_is_refused_and_names_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let first = take(dir.path()).unwrap();
        let err = take(dir.path()).unwrap_err().to_string();
        let me = std::process::id();
        assert!(err.contains(&format!("pid {me}")), "{err}");
        drop(first);
        take(dir.path()).expect("free again once the holder let go");
    }
}

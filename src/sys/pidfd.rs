//! What a pidfd tells about its process through `ioctl(PIDFD_GET_INFO)` (Linux 6.13; exit
//! information with `PIDFD_INFO_EXIT` from 6.15), which neither rustix nor std wraps.
//!
//! This is how a process that is not the parent (`holden spawn`, a supervisor using an agent)
//! learns how a process ended: `waitid(P_PIDFD)` gives it ECHILD. The kernel records the exit
//! information when the parent reaps the process, not when it dies: between the pidfd turning
//! readable and the parent's reap, the answer is "no exit information yet". On kernels without
//! the ioctl (ENOTTY) or without the exit flag, the answer is `Unsupported` and the status is
//! unknown; it is never guessed.
//!
//! See ioctl_pidfd(2) and `include/uapi/linux/pidfd.h`.

use std::io;
use std::os::fd::BorrowedFd;

use rustix::io::Errno;
use rustix::ioctl::{Updater, ioctl, opcode};

const PIDFD_INFO_PID: u64 = 1 << 0;
const PIDFD_INFO_EXIT: u64 = 1 << 3;

/// `struct pidfd_info` as of PIDFD_INFO_SIZE_VER0 (64 bytes). Later kernels made it longer;
/// they copy out only as many bytes as the opcode's size says, so this version stays valid.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

const _: () = assert!(std::mem::size_of::<PidfdInfo>() == 64);

/// `_IOWR(PIDFS_IOCTL_MAGIC = 0xFF, 11, struct pidfd_info)` = 0xc040ff0b.
const PIDFD_GET_INFO: rustix::ioctl::Opcode = opcode::read_write::<PidfdInfo>(0xFF, 11);

/// True when `e` says that this kernel cannot tell (no PIDFD_GET_INFO, or no exit information).
pub fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
}

fn get_info(pidfd: BorrowedFd<'_>, mask: u64) -> io::Result<PidfdInfo> {
    let mut info = PidfdInfo {
        mask,
        ..PidfdInfo::default()
    };
    // SAFETY: PIDFD_GET_INFO is `_IOWR(0xFF, 11, struct pidfd_info)`; `PidfdInfo` is the
    // 64-byte VER0 layout of that struct (checked by the size assertion above), and the opcode
    // encodes that size, so the kernel reads and writes at most 64 bytes of `info`, which
    // lives for the whole call.
    let result = unsafe {
        let op = Updater::<PIDFD_GET_INFO, PidfdInfo>::new(&mut info);
        ioctl(pidfd, op)
    };
    match result {
        Ok(()) => Ok(info),
        // ENOTTY: the ioctl does not exist (before 6.13); EINVAL: a flag it does not know.
        Err(Errno::NOTTY) | Err(Errno::INVAL) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel cannot report a process's exit through its pidfd (PIDFD_GET_INFO needs Linux 6.15)",
        )),
        Err(e) => Err(e.into()),
    }
}

/// How the process of `pidfd` ended, as a wait status (`process::ExitKind::from_wait_status`
/// reads it): `Ok(Some(_))` once its parent has reaped it, `Ok(None)` while it runs or is an
/// unreaped zombie, `Err` with kind `Unsupported` (see [`is_unsupported`]) on kernels that
/// cannot tell.
pub fn exit_status(pidfd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let info = get_info(pidfd, PIDFD_INFO_EXIT)?;
    if info.mask & PIDFD_INFO_EXIT != 0 {
        Ok(Some(info.exit_code))
    } else {
        Ok(None)
    }
}

/// The pid of the process of `pidfd` in the caller's PID namespace (which differs from the
/// agent's when the agent runs in a container). `Ok(None)`: the process is not visible from
/// here. ESRCH once it has been reaped.
pub fn pid_in_own_namespace(pidfd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let info = get_info(pidfd, PIDFD_INFO_PID)?;
    if info.mask & PIDFD_INFO_PID != 0 && info.tgid != 0 {
        Ok(Some(info.tgid as i32))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::Command;

    use rustix::process::{Pid, PidfdFlags, WaitOptions, pidfd_open, waitpid};

    #[test]
    fn the_opcode_is_the_kernels() {
        assert_eq!(PIDFD_GET_INFO as u64, 0xc040_ff0b);
    }

    #[test]
    fn exit_status_appears_only_after_the_reap() {
        #[allow(clippy::zombie_processes)] // reaped below by waitpid
        let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32).unwrap();
        let pidfd = pidfd_open(pid, PidfdFlags::empty()).unwrap();
        match pid_in_own_namespace(pidfd.as_fd()) {
            Ok(p) => assert_eq!(p, Some(pid.as_raw_nonzero().get())),
            Err(e) if is_unsupported(&e) => return,
            // Already exited and reaped cannot be: we have not reaped it.
            Err(e) => panic!("{e}"),
        }
        // Wait for the exit without reaping: the pidfd turns readable.
        let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, None).unwrap();
        assert_eq!(exit_status(pidfd.as_fd()).unwrap(), None, "zombie, not reaped");
        // Reaped with waitpid rather than Child::wait, which would need the pid to be unreaped.
        let _ = waitpid(Some(pid), WaitOptions::empty());
        match exit_status(pidfd.as_fd()) {
            Ok(status) => assert_eq!(status, Some(7 << 8)),
            Err(e) => assert!(is_unsupported(&e), "{e}"),
        }
    }
}

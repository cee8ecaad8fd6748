//! Reaping: every child of holden (the programs' main processes, and as PID 1 or subreaper
//! every orphan re-parented to it) is reaped here, by the event loop's one thread, after a
//! SIGCHLD or a pidfd turned readable. One reaper means a pid cannot be reused before holden
//! has matched its exit status to its program (KERNEL-NOTES section 7).

use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::process::{Pid, WaitOptions, WaitStatus};

use crate::sys::pidfd;
use crate::sys::signal::Signal;

/// How a process ended: the one exit-status type of the supervisor, `holden spawn` and
/// `status` (SPEC: "exit status N, killed by signal NAME, killed by the kernel's OOM killer
/// (memory limit), or unknown").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
    /// Killed by the kernel's OOM killer at the program's memory limit.
    Oom,
    /// Not known (a process that was not our child, on a kernel that cannot tell).
    Unknown,
}

impl ExitKind {
    pub fn from_wait(status: WaitStatus) -> ExitKind {
        if let Some(code) = status.exit_status() {
            ExitKind::Code(code)
        } else if let Some(sig) = status.terminating_signal() {
            ExitKind::Signal(sig)
        } else {
            ExitKind::Unknown
        }
    }

    /// From a wait status as the kernel stores it (waitpid's, and `exit_code` of pidfd_info).
    pub fn from_wait_status(status: i32) -> ExitKind {
        let sig = status & 0x7f;
        if sig == 0 {
            ExitKind::Code((status >> 8) & 0xff)
        } else {
            ExitKind::Signal(sig)
        }
    }

    /// The shell's convention: the code, or 128 + the signal (an OOM kill is a SIGKILL);
    /// `None` when unknown.
    pub fn shell_status(self) -> Option<i32> {
        match self {
            ExitKind::Code(code) => Some(code),
            ExitKind::Signal(sig) => Some(128 + sig),
            ExitKind::Oom => Some(128 + 9),
            ExitKind::Unknown => None,
        }
    }

    /// A SIGKILL is the OOM killer's when the program's cgroup counted an OOM kill since the
    /// spawn: both counts must be known (`memory.events` `oom_kill`, read at spawn and now).
    /// A count that could not be read proves nothing: the SIGKILL stays a SIGKILL.
    pub fn or_oom(self, oom_kills_before: Option<u64>, oom_kills_now: Option<u64>) -> ExitKind {
        match (self, oom_kills_before, oom_kills_now) {
            (ExitKind::Signal(9), Some(before), Some(now)) if now > before => ExitKind::Oom,
            _ => self,
        }
    }

    /// SPEC's words: "exit status N", "killed by signal NAME", ...
    pub fn describe(self) -> String {
        match self {
            ExitKind::Code(c) => format!("exit status {c}"),
            ExitKind::Signal(s) => format!("killed by signal {}", Signal(s).name()),
            ExitKind::Oom => "killed by the kernel's OOM killer (memory limit)".to_string(),
            ExitKind::Unknown => "unknown".to_string(),
        }
    }
}

/// Reap every child that has exited, without blocking; returns (pid, how it ended).
pub fn reap_all() -> Vec<(i32, ExitKind)> {
    let mut out = Vec::new();
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => out.push((Pid::as_raw(Some(pid)), ExitKind::from_wait(status))),
            Ok(None) => break,
            Err(rustix::io::Errno::INTR) => continue,
            // ECHILD: no children at all.
            Err(_) => break,
        }
    }
    out
}

/// How long the parent of a process that is not holden's child (an agent, say) may take to
/// reap it, once its pidfd turned readable, before its exit status is called unknown. A parent
/// reaps within microseconds to milliseconds.
pub const PIDFD_EXIT_PATIENCE: Duration = Duration::from_millis(500);

/// What the pidfd of an ended process that is not holden's child says about its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidfdExit {
    /// How it ended; `Unknown` on kernels that cannot tell (nothing to warn about).
    Ended(ExitKind),
    /// Its parent has not reaped it yet: ask again after this pause (never a sleep: a deadline).
    NotYet(Duration),
    /// Unknown for a reason worth a warning (the sentence).
    Lost(String),
}

/// One look at the pidfd of a process that is not holden's child, `waited` after the pidfd
/// turned readable (the process ended). The kernel records the status only when the parent
/// reaps the process (sys/pidfd.rs): until then, and for at most [`PIDFD_EXIT_PATIENCE`],
/// the answer is to ask again, after a pause that grows with the wait.
pub fn pidfd_exit(fd: BorrowedFd<'_>, waited: Duration) -> PidfdExit {
    match pidfd::exit_status(fd) {
        Ok(Some(status)) => PidfdExit::Ended(ExitKind::from_wait_status(status)),
        Ok(None) if waited < PIDFD_EXIT_PATIENCE => {
            let pause = waited.clamp(Duration::from_micros(200), Duration::from_millis(50));
            PidfdExit::NotYet(pause.min(PIDFD_EXIT_PATIENCE - waited))
        }
        Ok(None) => PidfdExit::Lost(format!(
            "its parent did not reap it within {}",
            humantime::format_duration(PIDFD_EXIT_PATIENCE)
        )),
        Err(e) if pidfd::is_unsupported(&e) => PidfdExit::Ended(ExitKind::Unknown),
        Err(e) => PidfdExit::Lost(format!("cannot read its exit status: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode_like_waitpid() {
        assert_eq!(ExitKind::from_wait_status(0x0700), ExitKind::Code(7));
        assert_eq!(ExitKind::from_wait_status(9), ExitKind::Signal(9));
        assert_eq!(ExitKind::from_wait_status(0x83), ExitKind::Signal(3));
    }

    #[test]
    fn shell_statuses_and_words() {
        let table = [
            (ExitKind::Code(3), Some(3), "exit status 3"),
            (ExitKind::Signal(15), Some(143), "killed by signal TERM"),
            (ExitKind::Signal(36), Some(164), "killed by signal RTMIN+2"),
            (
                ExitKind::Oom,
                Some(137),
                "killed by the kernel's OOM killer (memory limit)",
            ),
            (ExitKind::Unknown, None, "unknown"),
        ];
        for (exit, status, words) in table {
            assert_eq!(exit.shell_status(), status, "{exit:?}");
            assert_eq!(exit.describe(), words, "{exit:?}");
        }
    }

    #[test]
    fn only_a_sigkill_with_a_counted_oom_kill_is_an_oom_kill() {
        let kill = ExitKind::Signal(9);
        let table = [
            (kill, Some(0), Some(1), ExitKind::Oom),
            (kill, Some(2), Some(2), kill),
            // The count could not be read at spawn: `Some(0) > None` must not make an OOM kill.
            (kill, None, Some(0), kill),
            (kill, None, Some(3), kill),
            (kill, Some(0), None, kill),
            (ExitKind::Signal(15), Some(0), Some(1), ExitKind::Signal(15)),
            (ExitKind::Code(137), Some(0), Some(1), ExitKind::Code(137)),
        ];
        for (exit, before, now, want) in table {
            assert_eq!(exit.or_oom(before, now), want, "{exit:?} {before:?} {now:?}");
        }
    }

    #[test]
    fn an_unreaped_process_is_asked_again_then_lost() {
        use rustix::process::{PidfdFlags, pidfd_open};
        // Our own pidfd: alive, so never reaped; the kernel answers "no exit information yet"
        // (or cannot tell at all, on kernels before 6.15).
        let me = pidfd_open(rustix::process::getpid(), PidfdFlags::empty()).unwrap();
        let fd = std::os::fd::AsFd::as_fd(&me);
        match pidfd_exit(fd, Duration::ZERO) {
            PidfdExit::Ended(ExitKind::Unknown) => return,
            PidfdExit::NotYet(pause) => assert_eq!(pause, Duration::from_micros(200)),
            other => panic!("{other:?}"),
        }
        match pidfd_exit(fd, Duration::from_millis(480)) {
            PidfdExit::NotYet(pause) => assert_eq!(pause, Duration::from_millis(20)),
            other => panic!("{other:?}"),
        }
        match pidfd_exit(fd, PIDFD_EXIT_PATIENCE) {
            PidfdExit::Lost(why) => assert!(why.contains("did not reap it within 500ms"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}

//! Reaping: every child of holden (the programs' main processes, and as PID 1 or subreaper
//! every orphan re-parented to it) is reaped here, by the event loop's one thread, after a
//! SIGCHLD or a pidfd turned readable. One reaper means a pid cannot be reused before holden
//! has matched its exit status to its program (KERNEL-NOTES section 7).

use rustix::process::{Pid, WaitOptions, WaitStatus};

/// How a process ended.
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

    /// SPEC's words: "exit status N", "killed by signal NAME", ...
    pub fn describe(self) -> String {
        match self {
            ExitKind::Code(c) => format!("exit status {c}"),
            ExitKind::Signal(s) => format!("killed by signal {}", crate::config::Signal(s).name()),
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

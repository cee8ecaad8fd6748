//! sd_notify: the service manager's readiness protocol (systemd's `Type=notify`). When holden
//! is started with `$NOTIFY_SOCKET` set, it sends one datagram of `KEY=value` lines to that
//! unix socket (a path, or an abstract name written `@name`):
//!
//! - `READY=1` once every autostart program has been spawned (it left STOPPED for STARTING or
//!   further; one whose spawn failed, or that waits on a dependency gone FATAL, counts as
//!   done too: holden will not start it by itself);
//! - `STOPPING=1` when a graceful shutdown (SIGTERM, SIGINT, `holden shutdown`) begins;
//! - `STATUS=...`, a line for `systemctl status`, with each.
//!
//! `$NOTIFY_SOCKET` is removed from holden's environment first: the programs inherit that
//! environment, and one of them speaking for holden would confuse the manager. (A program with
//! `readiness = "notify"` gets its own `$NOTIFY_SOCKET`, holden's: src/health/notify.rs.)
//!
//! "Spawned", not "ready": a program that never gets ready (its start_timeout is 90 s by
//! default, and it may be restarted) would otherwise hold holden's own start hostage, and with
//! it the manager's start timeout of holden; holden is up, and serving its socket, once its
//! programs are on their way. docs/config.md says so.

use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

pub struct Notifier {
    fd: OwnedFd,
    addr: SocketAddrUnix,
    /// What `$NOTIFY_SOCKET` said, for messages.
    name: String,
    ready_sent: bool,
}

impl Notifier {
    /// Take `$NOTIFY_SOCKET` out of the environment; a notifier when it names a socket.
    ///
    /// Call it while holden is single-threaded (the start of `holden run`).
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let name = value.to_string_lossy().into_owned();
        if let Err(e) = crate::sys::env::remove_var_single_threaded("NOTIFY_SOCKET") {
            log::warn!("cannot remove NOTIFY_SOCKET from the programs' environment: {e}");
        }
        match Self::open(&value) {
            Ok(n) => Some(n),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={name}: {e}; the service manager will not hear that holden is ready");
                None
            }
        }
    }

    fn open(value: &std::ffi::OsStr) -> Result<Notifier, String> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddrUnix::new_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddrUnix::new(bytes),
            _ => return Err("neither an absolute path nor an abstract name (@name)".into()),
        }
        .map_err(|_| "too long for a unix socket address".to_string())?;
        let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::DGRAM, SocketFlags::CLOEXEC, None)
            .map_err(|e| format!("cannot create a datagram socket: {e}"))?;
        Ok(Notifier {
            fd,
            addr,
            name: value.to_string_lossy().into_owned(),
            ready_sent: false,
        })
    }

    pub fn ready_sent(&self) -> bool {
        self.ready_sent
    }

    /// `READY=1` with a status line, once.
    pub fn ready(&mut self, status: &str) {
        if !self.ready_sent {
            self.ready_sent = true;
            self.send(&format!("READY=1\nSTATUS={status}\n"));
        }
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&mut self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={status}\n"));
    }

    fn send(&self, message: &str) {
        log::debug!("sd_notify to {}: {}", self.name, message.trim_end().replace('\n', ", "));
        if let Err(e) = rustix::net::sendto(&self.fd, message.as_bytes(), SendFlags::NOSIGNAL, &self.addr) {
            log::warn!("cannot notify the service manager at {}: {e}", self.name);
        }
    }
}

/// One status line: "N programs: R running, S starting, ...".
pub fn status_line<'a>(states: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut total = 0;
    for s in states {
        total += 1;
        match counts.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.to_lowercase()))
        .collect();
    format!(
        "{total} program{}{}{}",
        if total == 1 { "" } else { "s" },
        if parts.is_empty() { "" } else { ": " },
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_counts_states_in_order_of_first_appearance() {
        let s = status_line(["RUNNING", "STARTING", "RUNNING"].into_iter());
        assert_eq!(s, "3 programs: 2 running, 1 starting");
        assert_eq!(status_line(std::iter::empty()), "0 programs");
        assert_eq!(status_line(["FATAL"].into_iter()), "1 program: 1 fatal");
    }

    #[test]
    fn a_relative_path_is_refused() {
        assert!(Notifier::open(std::ffi::OsStr::new("run/notify")).is_err());
        assert!(Notifier::open(std::ffi::OsStr::new("@holden-test-abstract")).is_ok());
    }
}

//! A program's sd_notify socket (`$NOTIFY_SOCKET`, see sd_notify(3)): one datagram socket per
//! spawn, in a directory of its own that only the program's user can enter, so that the
//! sender's identity is structural: a message in the queue came from someone who could reach
//! the directory. SO_PASSCRED still tells the sender's uid and pid, which are checked too.
//!
//! systemd reads the sender's cgroup when the datagram arrives and drops READY=1 from a
//! `systemd-notify` that has already exited (its cgroup is gone by then). Here the socket
//! belongs to one program, so a datagram whose sender is gone is still that program's.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// Bigger than this is not an sd_notify message (systemd allows a page or so): dropped.
pub const MAX_DATAGRAM: usize = 4096;
/// A `STATUS=` text is kept up to this many bytes.
pub const MAX_STATUS: usize = 256;

/// The socket of one spawn, removed with its directory when dropped.
#[derive(Debug)]
pub struct NotifySocket {
    pub fd: OwnedFd,
    dir: PathBuf,
    pub path: PathBuf,
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl NotifySocket {
    /// Bind a fresh socket in `<base>/<name>.<n>/s`: `base` mode 0711, the directory mode 0700
    /// owned by `owner` (uid, gid) when the program runs as another user.
    pub fn create(base: &Path, name: &str, owner: Option<(u32, u32)>) -> io::Result<NotifySocket> {
        std::fs::create_dir_all(base)?;
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o711))?;
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{name}.{}.{n}", std::process::id()));
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join("s");
        let cleanup = |e: io::Error| {
            let _ = std::fs::remove_file(dir.join("s"));
            let _ = std::fs::remove_dir(&dir);
            e
        };
        let addr = SocketAddrUnix::new(&path).map_err(|e| {
            cleanup(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("notify socket path {} too long ({e})", path.display()),
            ))
        })?;
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(|e| cleanup(e.into()))?;
        rustix::net::bind(&fd, &addr).map_err(|e| cleanup(e.into()))?;
        rustix::net::sockopt::set_socket_passcred(&fd, true).map_err(|e| cleanup(e.into()))?;
        // Queue room for a burst (systemd uses 8 MiB).
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
        if let Some((uid, gid)) = owner {
            let (u, g) = (
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            );
            rustix::fs::chown(&dir, u, g).map_err(|e| cleanup(e.into()))?;
            rustix::fs::chown(&path, u, g).map_err(|e| cleanup(e.into()))?;
        }
        Ok(NotifySocket { fd, dir, path })
    }
}

/// One datagram as received.
#[derive(Debug)]
pub struct Datagram {
    /// From SCM_CREDENTIALS; None when the kernel sent none.
    pub pid: Option<i32>,
    pub uid: Option<u32>,
    /// The text, or why it is not one.
    pub text: Result<String, &'static str>,
    /// Passed fds (BARRIER=1's pipe): closed when dropped, which is what the sender waits for.
    pub fds: Vec<OwnedFd>,
}

/// Read the next datagram; None when the queue is empty.
pub fn recv(sock: impl AsFd) -> io::Result<Option<Datagram>> {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(16), ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = match rustix::net::recvmsg(
        &sock,
        &mut [io::IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC,
    ) {
        Ok(m) => m,
        Err(rustix::io::Errno::AGAIN) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut dg = Datagram {
        pid: None,
        uid: None,
        text: Err("empty"),
        fds: Vec::new(),
    };
    for m in control.drain() {
        match m {
            RecvAncillaryMessage::ScmCredentials(c) => {
                dg.pid = Some(c.pid.as_raw_nonzero().get());
                dg.uid = Some(c.uid.as_raw());
            }
            RecvAncillaryMessage::ScmRights(fds) => dg.fds.extend(fds),
            _ => {}
        }
    }
    dg.text = if msg.bytes > MAX_DATAGRAM || msg.flags.contains(rustix::net::ReturnFlags::TRUNC) {
        Err("oversized")
    } else if msg.bytes == 0 {
        Err("empty")
    } else {
        String::from_utf8(buf[..msg.bytes].to_vec()).map_err(|_| "not UTF-8")
    };
    Ok(Some(dg))
}

/// One assignment of an sd_notify message.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Ready,
    Reloading,
    Stopping,
    Status(String),
    Watchdog,
    WatchdogTrigger,
    Extend(Duration),
    MainPid(i32),
    Errno(i32),
    Barrier,
}

/// The assignments of a message, and the lines that are not ones holden knows (unknown keys,
/// bad values), for the count of bad input.
pub fn parse(text: &str) -> (Vec<Msg>, Vec<String>) {
    let mut msgs = Vec::new();
    let mut bad = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let parsed = line.split_once('=').and_then(|(k, v)| match (k, v) {
            ("READY", "1") => Some(Msg::Ready),
            ("RELOADING", "1") => Some(Msg::Reloading),
            ("STOPPING", "1") => Some(Msg::Stopping),
            ("STATUS", s) => {
                let mut end = s.len().min(MAX_STATUS);
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                Some(Msg::Status(s[..end].to_string()))
            }
            ("WATCHDOG", "1") => Some(Msg::Watchdog),
            ("WATCHDOG", "trigger") => Some(Msg::WatchdogTrigger),
            ("EXTEND_TIMEOUT_USEC", n) => n.parse::<u64>().ok().map(|u| Msg::Extend(Duration::from_micros(u))),
            ("MAINPID", n) => n.parse::<i32>().ok().filter(|p| *p > 0).map(Msg::MainPid),
            ("ERRNO", n) => n.parse::<i32>().ok().filter(|e| *e >= 0).map(Msg::Errno),
            ("BARRIER", "1") => Some(Msg::Barrier),
            // Sent along with RELOADING=1 by sd_notify's callers; nothing to do with it.
            ("MONOTONIC_USEC", n) if n.parse::<u64>().is_ok() => None.or(Some(Msg::Reloading)).filter(|_| false),
            _ => None,
        });
        match parsed {
            Some(m) => msgs.push(m),
            None if line.starts_with("MONOTONIC_USEC=") => {}
            None => bad.push(line.chars().take(80).collect()),
        }
    }
    (msgs, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protocol_and_sets_aside_the_rest() {
        let (m, bad) =
            parse("READY=1\nSTATUS=up: 3 workers\nMAINPID=42\nEXTEND_TIMEOUT_USEC=5000000\nX=1\nWATCHDOG=trigger\n");
        assert_eq!(
            m,
            vec![
                Msg::Ready,
                Msg::Status("up: 3 workers".into()),
                Msg::MainPid(42),
                Msg::Extend(Duration::from_secs(5)),
                Msg::WatchdogTrigger
            ]
        );
        assert_eq!(bad, ["X=1"]);
        let (m, bad) = parse("RELOADING=1\nMONOTONIC_USEC=123\nREADY=2\nMAINPID=-1\nnonsense");
        assert_eq!(m, vec![Msg::Reloading]);
        assert_eq!(bad, ["READY=2", "MAINPID=-1", "nonsense"]);
        let long = format!("STATUS={}", "é".repeat(300));
        let (m, _) = parse(&long);
        let Msg::Status(s) = &m[0] else { panic!() };
        assert!(s.len() <= MAX_STATUS);
    }

    #[test]
    fn a_datagram_carries_its_sender_and_barrier_fd() {
        let dir = tempfile::tempdir().unwrap();
        let sock = NotifySocket::create(dir.path(), "web", None).unwrap();
        assert!(recv(&sock.fd).unwrap().is_none());
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client.send_to(b"READY=1", &sock.path).unwrap();
        let dg = recv(&sock.fd).unwrap().unwrap();
        assert_eq!(dg.text.as_deref(), Ok("READY=1"));
        assert_eq!(dg.pid, Some(std::process::id() as i32));
        client.send_to(&[0xff, 0xfe], &sock.path).unwrap();
        assert_eq!(recv(&sock.fd).unwrap().unwrap().text, Err("not UTF-8"));
        client.send_to(&vec![b'A'; MAX_DATAGRAM + 10], &sock.path).unwrap();
        assert_eq!(recv(&sock.fd).unwrap().unwrap().text, Err("oversized"));
        let path = sock.path.clone();
        drop(sock);
        assert!(!path.exists() && !path.parent().unwrap().exists());
    }
}

//! The credentials of a Unix socket's peer (`getsockopt(SO_PEERCRED)`, see unix(7)).
//!
//! rustix has `sockopt::socket_peercred`, but it returns an error when the peer's pid is 0,
//! which is what the kernel reports when the peer lives outside the reader's PID namespace:
//! exactly the agent's case (agent in a container, caller on the host). The uid and gid are
//! still right then (translated into the reader's user namespace), and they are all that the
//! access check needs.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// What SO_PEERCRED tells: `pid` is 0 when the peer is not visible from this PID namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

pub fn peer_cred(socket: BorrowedFd<'_>) -> io::Result<PeerCred> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `socket` is a live fd for the whole call; the kernel writes at most `len` bytes
    // (the size of `libc::ucred`, the struct SO_PEERCRED fills) into `cred`, and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_socket_pair_reports_our_own_credentials() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let c = peer_cred(a.as_fd()).unwrap();
        assert_eq!(c.pid, std::process::id() as i32);
        assert_eq!(c.uid, rustix::process::getuid().as_raw());
        assert_eq!(c.gid, rustix::process::getgid().as_raw());
    }
}

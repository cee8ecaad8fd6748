//! sdnotify: a minimal `systemd-notify` for images without systemd (the VM's busybox).
//!
//! `sdnotify ASSIGNMENT...` sends one datagram, the assignments joined by newlines
//! (`sdnotify READY=1 STATUS=up`), to `$NOTIFY_SOCKET` (a path; `@name` for an abstract
//! socket), and exits 0; 1 when the variable is unset or the send fails.

use std::os::unix::net::UnixDatagram;

fn main() {
    let message = std::env::args().skip(1).collect::<Vec<_>>().join("\n");
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        eprintln!("sdnotify: NOTIFY_SOCKET is not set");
        std::process::exit(1);
    };
    let result = UnixDatagram::unbound().and_then(|s| {
        let target = target.to_string_lossy();
        if let Some(name) = target.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            s.send_to_addr(message.as_bytes(), &addr)
        } else {
            s.send_to(message.as_bytes(), &*target)
        }
    });
    if let Err(e) = result {
        eprintln!("sdnotify: {e}");
        std::process::exit(1);
    }
}

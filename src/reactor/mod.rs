//! The reactor: one epoll instance, one blocking `epoll_wait` whose timeout is the nearest
//! deadline, and the signal self-pipe. No thread, no timer wheel, no polling: when nothing
//! happens holden sleeps in `epoll_wait` with an infinite timeout.
//!
//! Every fd is registered with a `Token`, an owner and an id packed into the epoll data word:
//! the loop routes a readiness to its owner (supervisor, log capture, control server, agent),
//! which decodes its own id without a map lookup. Registrations are level-triggered: a handler that leaves data unread is called again.
//!
//! `epoll_wait` returns EINTR whenever a signal-hook handler runs (epoll_wait is never
//! restarted, whatever SA_RESTART says); that is a spurious wakeup, not an error.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::epoll;
use rustix::io::Errno;

/// Where a readiness goes: the reactor routes by `owner`; `id` means what its owner says (a
/// connection number, a stream, a program's slot with its generation) and only the owner
/// decodes it, so no consumer has to know another's kinds of fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    pub owner: Owner,
    pub id: u64,
}

/// Who registered an fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Owner {
    /// The signal self-pipe ([`Signals`]); id 0.
    Signal = 1,
    /// The supervisor's per-program fds: pidfds, cgroup.events, notify sockets, ready fds,
    /// probes (the id packs the fd's role, the program's slot and the slot's generation).
    Supervisor = 2,
    /// Output pipes and the batch timer of log capture.
    Logs = 3,
    /// The control socket: its listener and its connections.
    Control = 4,
    /// The agent (`holden agent`, `holden spawn`): its listener, connections, the pidfd it waits on.
    Agent = 5,
}

/// How many bits of the epoll data word an owner's id may use.
pub const ID_BITS: u32 = 56;
const ID_MASK: u64 = (1 << ID_BITS) - 1;

impl Token {
    pub fn new(owner: Owner, id: u64) -> Token {
        debug_assert!(id <= ID_MASK);
        Token { owner, id }
    }

    fn pack(self) -> u64 {
        ((self.owner as u64) << ID_BITS) | (self.id & ID_MASK)
    }

    fn unpack(word: u64) -> Option<Token> {
        let owner = match (word >> ID_BITS) as u8 {
            1 => Owner::Signal,
            2 => Owner::Supervisor,
            3 => Owner::Logs,
            4 => Owner::Control,
            5 => Owner::Agent,
            _ => return None,
        };
        Some(Token {
            owner,
            id: word & ID_MASK,
        })
    }
}

/// Which readiness to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
    ReadWrite,
    /// EPOLLPRI: how cgroup.events and other kernfs files signal a change.
    Priority,
}

impl Interest {
    fn flags(self) -> epoll::EventFlags {
        use epoll::EventFlags as F;
        match self {
            Interest::Read => F::IN | F::RDHUP,
            Interest::Write => F::OUT,
            Interest::ReadWrite => F::IN | F::OUT | F::RDHUP,
            Interest::Priority => F::PRI,
        }
    }
}

/// One readiness report.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub token: Token,
    pub readable: bool,
    /// Peer closed, error, or hang-up: read until EOF, then drop the fd.
    pub hangup: bool,
    pub priority: bool,
}

pub struct Reactor {
    epoll: OwnedFd,
    events: Vec<epoll::Event>,
}

impl Reactor {
    pub fn new() -> std::io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Ok(Reactor {
            epoll,
            events: Vec::with_capacity(64),
        })
    }

    pub fn add(&self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> std::io::Result<()> {
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(token.pack()),
            interest.flags(),
        )?;
        Ok(())
    }

    pub fn modify(&self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> std::io::Result<()> {
        epoll::modify(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(token.pack()),
            interest.flags(),
        )?;
        Ok(())
    }

    /// Remove `fd`; an fd that was not registered (or already closed) is not an error.
    pub fn delete(&self, fd: BorrowedFd<'_>) {
        match epoll::delete(&self.epoll, fd) {
            Ok(()) | Err(Errno::NOENT) | Err(Errno::BADF) => {}
            Err(e) => log::warn!("epoll delete: {e}"),
        }
    }

    /// Block until something is ready or `deadline` passes (None: no deadline). Returns the
    /// ready fds (empty on timeout or on a signal's EINTR).
    pub fn wait(&mut self, deadline: Option<Instant>) -> std::io::Result<Vec<Ready>> {
        // epoll_pwait2 takes a timespec: nanosecond deadlines, no rounding to milliseconds.
        let timeout = deadline.map(|d| {
            // Below c_int::MAX milliseconds, which kernels before 5.11 (plain epoll_wait) need.
            let left = d
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(86_400 * 20));
            rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        self.events.clear();
        let buf = rustix::buffer::spare_capacity(&mut self.events);
        match epoll::wait(&self.epoll, buf, timeout.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        let mut out = Vec::with_capacity(self.events.len());
        for ev in &self.events {
            // `epoll::Event` is packed on x86_64: copy the fields out before use.
            let data = ev.data;
            let flags = ev.flags;
            use epoll::EventFlags as F;
            if let Some(token) = Token::unpack(data.u64()) {
                out.push(Ready {
                    token,
                    readable: flags.intersects(F::IN),
                    hangup: flags.intersects(F::HUP | F::ERR | F::RDHUP),
                    priority: flags.intersects(F::PRI),
                });
            }
        }
        Ok(out)
    }
}

impl AsFd for Reactor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

/// The signals holden reacts to, delivered through a self-pipe registered in the reactor.
/// signal-hook's handler only writes a byte; the loop drains the pipe and then asks which
/// signals arrived.
pub struct Signals {
    read: OwnedFd,
    flags: Vec<(i32, std::sync::Arc<std::sync::atomic::AtomicBool>)>,
}

impl Signals {
    /// Install handlers for `signals` and register the pipe in `reactor`.
    pub fn install(reactor: &Reactor, signals: &[i32]) -> std::io::Result<Signals> {
        let (read, write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK)?;
        let mut flags = Vec::new();
        for &sig in signals {
            let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            signal_hook::flag::register(sig, flag.clone())?;
            let w = write.try_clone()?;
            signal_hook::low_level::pipe::register(sig, w)?;
            flags.push((sig, flag));
        }
        reactor.add(read.as_fd(), Token::new(Owner::Signal, 0), Interest::Read)?;
        Ok(Signals { read, flags })
    }

    /// Empty the pipe and return the signals that arrived since the last call, in a fixed order.
    pub fn drain(&self) -> Vec<i32> {
        let mut buf = [0u8; 256];
        loop {
            match rustix::io::read(&self.read, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, std::sync::atomic::Ordering::AcqRel))
            .map(|(s, _)| *s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for owner in [
            Owner::Signal,
            Owner::Supervisor,
            Owner::Logs,
            Owner::Control,
            Owner::Agent,
        ] {
            let t = Token::new(owner, ID_MASK);
            assert_eq!(Token::unpack(t.pack()), Some(t));
        }
        assert_eq!(Token::unpack(0), None);
    }

    #[test]
    fn wait_reports_a_readable_pipe_and_times_out_otherwise() {
        let mut r = Reactor::new().unwrap();
        let (rd, wr) = rustix::pipe::pipe().unwrap();
        r.add(rd.as_fd(), Token::new(Owner::Logs, 7), Interest::Read).unwrap();
        let ready = r.wait(Some(Instant::now() + Duration::from_millis(5))).unwrap();
        assert!(ready.is_empty());
        rustix::io::write(&wr, b"x").unwrap();
        let ready = r.wait(None).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].token, Token::new(Owner::Logs, 7));
        assert!(ready[0].readable);
    }
}

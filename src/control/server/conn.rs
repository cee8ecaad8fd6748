//! One connection of the control socket: its buffers, its queue of answers in request order,
//! and writing without blocking.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::Instant;

use rustix::io::Errno;
use rustix::net::{self, SendFlags};

use super::Access;
use crate::reactor::Interest;

pub(super) struct Conn {
    pub(super) fd: OwnedFd,
    /// Bytes read and not yet parsed.
    pub(super) inbuf: Vec<u8>,
    /// Bytes ready to write; `out[out_pos..]` is unwritten.
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    /// Lines waiting for their turn: `None` is a request the supervisor has not answered yet.
    pub(super) queue: VecDeque<Option<Vec<u8>>>,
    pub(super) queued_bytes: usize,
    pub(super) watcher: bool,
    /// The peer shut down its writing side: answer what was asked, read nothing more.
    pub(super) eof: bool,
    /// Close once everything queued is written (refused, too large, busy).
    pub(super) closing: bool,
    /// The peer's uid and what it may ask for.
    pub(super) uid: u32,
    pub(super) access: Access,
    pub(super) last_active: Instant,
    pub(super) registered: Option<Interest>,
}

impl Conn {
    pub(super) fn unwritten(&self) -> usize {
        self.out.len() - self.out_pos
    }

    pub(super) fn buffered(&self) -> usize {
        self.unwritten() + self.queued_bytes
    }

    pub(super) fn awaiting(&self) -> bool {
        self.queue.iter().any(Option::is_none)
    }

    /// A complete line (or, after EOF, a last unterminated one) waits to be parsed.
    pub(super) fn has_pending_line(&self) -> bool {
        !self.closing && (self.inbuf.contains(&b'\n') || (self.eof && !self.inbuf.is_empty()))
    }

    pub(super) fn push_line(&mut self, line: Vec<u8>) {
        self.queued_bytes += line.len();
        self.queue.push_back(Some(line));
        self.move_ready();
    }

    /// Move the filled slots at the head of the queue to the output buffer.
    pub(super) fn move_ready(&mut self) {
        while let Some(Some(_)) = self.queue.front() {
            let Some(Some(line)) = self.queue.pop_front() else {
                unreachable!("checked above")
            };
            self.queued_bytes -= line.len();
            if self.out_pos > 0 && self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            self.out.extend_from_slice(&line);
        }
    }

    /// Write what can be written now. Err: the peer is gone.
    pub(super) fn flush(&mut self, now: Instant) -> Result<(), Errno> {
        while self.out_pos < self.out.len() {
            match net::send(
                &self.fd,
                &self.out[self.out_pos..],
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Ok(0) => return Err(Errno::PIPE),
                Ok(n) => {
                    self.out_pos += n;
                    self.last_active = now;
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 && self.out_pos * 2 > self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }
}

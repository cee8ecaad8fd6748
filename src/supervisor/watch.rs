//! The supervisor's side of readiness and health (see src/health): before a spawn, set up the
//! run's notify socket or notification fd; read them when the reactor says so; keep the
//! watchdog; feed the machine `Ready`, `Fail` and `Extend`.

use std::os::fd::AsFd;
use std::time::Instant;

use rustix::process::Pid;

use super::{Event, State, Supervisor};
use crate::config::probe::{Probe, Readiness};
use crate::health::Watch;
use crate::health::notify::{self, Msg, NotifySocket};
use crate::health::probe::{self, Outcome};
use crate::process::spawn::Extra;
use crate::reactor::Interest;

use super::Role;

/// The process group of `pid`, from /proc/PID/stat (a zombie's too).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

impl Supervisor {
    /// Before spawning program `i`: a fresh watch, with the notify socket or the ready pipe
    /// its readiness needs; returns what the spawn adds (env, fds).
    pub(super) fn prepare_watch(&mut self, i: usize) -> Result<Extra, String> {
        self.end_watch(i);
        let slot = self.live_mut(i).ok_or("removed meanwhile")?;
        slot.watch = Watch {
            bad: slot.watch.bad,
            ..Watch::default()
        };
        let token = |role| slot.token(i, role);
        let (notify_token, ready_token) = (token(Role::Notify), token(Role::ReadyFd));
        let program = slot.program.clone();
        let mut extra = Extra::default();
        match &program.readiness {
            Readiness::Notify => {
                let identity = crate::process::users::resolve(program.user.as_deref(), program.group.as_deref())?;
                let owner = identity
                    .as_ref()
                    .map(|id| (id.credentials.uid.as_raw(), id.credentials.gid.as_raw()));
                let base = self.notify_dir();
                let sock = NotifySocket::create(&base, &program.name, owner)
                    .map_err(|e| format!("cannot create its notify socket in {}: {e}", base.display()))?;
                self.reactor
                    .add(sock.fd.as_fd(), notify_token, Interest::Read)
                    .map_err(|e| format!("cannot watch its notify socket: {e}"))?;
                extra
                    .env
                    .push(("NOTIFY_SOCKET".into(), sock.path.display().to_string()));
                // What sd_watchdog_enabled(3) reads: daemons pet only when it is set.
                if let Some(wd) = program.watchdog {
                    extra.env.push(("WATCHDOG_USEC".into(), wd.as_micros().to_string()));
                }
                let watch = &mut self.live_mut(i).ok_or("removed meanwhile")?.watch;
                watch.notify_uid = owner.map_or_else(|| rustix::process::getuid().as_raw(), |(u, _)| u);
                watch.notify = Some(sock);
            }
            Readiness::Fd(n) => {
                let (read, write) =
                    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK)
                        .map_err(|e| format!("cannot create its notification pipe: {e}"))?;
                // The program's end blocks as a normal fd would.
                let _ = rustix::fs::fcntl_setfl(&write, rustix::fs::OFlags::empty());
                self.reactor
                    .add(read.as_fd(), ready_token, Interest::Read)
                    .map_err(|e| format!("cannot watch its notification pipe: {e}"))?;
                self.live_mut(i).ok_or("removed meanwhile")?.watch.ready_fd = Some(read);
                extra.fds.push((write, *n));
            }
            Readiness::Uptime | Readiness::Probe(_) => {}
        }
        Ok(extra)
    }

    /// Where the notify sockets live: `notify/` beside the control socket.
    fn notify_dir(&self) -> std::path::PathBuf {
        let socket = &self.config.supervisor.socket;
        socket.parent().unwrap_or(std::path::Path::new("/")).join("notify")
    }

    /// At exit: the (empty) folder of the notify sockets.
    pub(super) fn remove_notify_dir(&self) {
        let _ = std::fs::remove_dir(self.notify_dir());
    }

    /// The run is over (or never began): close what watched it.
    pub(super) fn end_watch(&mut self, i: usize) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        let watch = &mut slot.watch;
        if let Some(sock) = watch.notify.take() {
            self.reactor.delete(sock.fd.as_fd());
        }
        self.stop_health(i);
    }

    /// Probes, the ready fd and the watchdog end when the program is no longer starting or
    /// running (the notify socket stays until it is down: STOPPING=1, EXTEND_TIMEOUT_USEC).
    fn stop_health(&mut self, i: usize) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        let watch = &mut slot.watch;
        if let Some(fd) = watch.ready_fd.take() {
            self.reactor.delete(fd.as_fd());
        }
        watch.watchdog_due = None;
        watch.next_probe = None;
        self.cancel_probe(i);
    }

    /// Drop the probe in flight of program `i`, killing an exec probe.
    fn cancel_probe(&mut self, i: usize) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        if let Some(p) = slot.watch.probe.take() {
            if let Some((fd, _)) = p.fd() {
                self.reactor.delete(fd);
            }
            probe::kill(&p);
        }
    }

    /// The probe program `i` runs now: readiness while STARTING, liveness while RUNNING.
    fn current_probe(&self, i: usize) -> Option<(Probe, bool)> {
        let slot = self.live(i)?;
        match (&slot.machine.state, &slot.program.readiness, &slot.program.liveness) {
            (State::Starting { .. }, Readiness::Probe(p), _) => Some((p.clone(), false)),
            (State::Running { .. }, _, Some(p)) => Some((p.clone(), true)),
            _ => None,
        }
    }

    fn start_probe(&mut self, i: usize, now: Instant) {
        let probe = self.current_probe(i);
        let Some(slot) = self.slots[i].as_mut() else { return };
        let Some((p, liveness)) = probe else {
            slot.watch.next_probe = None;
            return;
        };
        let procs = match (&p.check, &slot.cgroup) {
            (crate::config::probe::Check::Exec(_), Some(cg)) => cg.procs_files().unwrap_or_default(),
            _ => Vec::new(),
        };
        slot.watch.next_probe = Some(now + p.interval);
        match probe::start(&slot.program, &p, liveness, procs, now) {
            Ok(inflight) => {
                if let Some((fd, interest)) = inflight.fd()
                    && let Err(e) = self.reactor.add(fd, slot.token(i, Role::Probe), interest)
                {
                    log::warn!("{}: cannot watch its probe: {e}", slot.program.name);
                }
                slot.watch.probe = Some(inflight);
            }
            Err(e) => self.probe_done(i, liveness, Outcome::Fail(e), now),
        }
    }

    /// The reactor reported program `i`'s probe fd.
    pub(super) fn on_probe(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        let Some(p) = slot.watch.probe.as_mut() else { return };
        let was_connecting = matches!(
            p.what,
            probe::What::Net {
                stage: probe::Stage::Connecting,
                ..
            }
        );
        let outcome = probe::on_ready(p);
        let liveness = p.liveness;
        match outcome {
            Some(o) => {
                self.cancel_probe(i);
                self.probe_done(i, liveness, o, now);
            }
            None => {
                let Some(slot) = self.live(i) else { return };
                if was_connecting && let Some((fd, interest)) = slot.watch.probe.as_ref().and_then(|p| p.fd()) {
                    let _ = self.reactor.modify(fd, slot.token(i, Role::Probe), interest);
                }
            }
        }
    }

    /// A reaped pid that is no program's main process: an exec probe's? Returns true if so.
    pub(super) fn on_probe_exit(&mut self, pid: i32, exit: crate::process::ExitKind, now: Instant) -> bool {
        let found = self.slots.iter().position(|s| {
            s.as_ref().is_some_and(|s| {
                matches!(&s.watch.probe, Some(probe::InFlight { what: probe::What::Exec { pid: p, .. }, .. }) if *p == pid)
            })
        });
        let Some(i) = found else { return false };
        let Some(p) = self.live_mut(i).and_then(|s| s.watch.probe.as_mut()) else {
            return true;
        };
        let liveness = p.liveness;
        if let Some(o) = probe::on_exit(p, exit) {
            self.cancel_probe(i);
            self.probe_done(i, liveness, o, now);
        }
        true
    }

    /// A probe of program `i` ended.
    fn probe_done(&mut self, i: usize, liveness: bool, outcome: Outcome, now: Instant) {
        let Some(slot) = self.live_mut(i) else { return };
        let name = slot.program.name.clone();
        if !liveness {
            if !matches!(slot.machine.state, State::Starting { .. }) {
                return;
            }
            match outcome {
                Outcome::Ok(t) => self.apply(
                    i,
                    Event::Ready {
                        how: format!("probe {t}"),
                    },
                    now,
                ),
                Outcome::Fail(t) => {
                    log::debug!("{name}: readiness probe: {t}");
                    slot.machine.ready_hint = Some(format!("last probe: {t}"));
                }
            }
            return;
        }
        if !matches!(slot.machine.state, State::Running { .. }) {
            return;
        }
        let n = slot.program.liveness.as_ref().map_or(3, |p| p.failures);
        match outcome {
            Outcome::Ok(t) => {
                if slot.watch.failures > 0 {
                    log::info!("{name}: liveness probe passes again ({t})");
                }
                slot.watch.failures = 0;
                slot.watch.last = Some(t);
            }
            Outcome::Fail(t) => {
                slot.watch.failures += 1;
                slot.watch.last = Some(t.clone());
                let f = slot.watch.failures;
                if f >= n {
                    self.apply(
                        i,
                        Event::Fail {
                            reason: format!("liveness: {t} {f}/{n}"),
                        },
                        now,
                    );
                } else {
                    log::warn!("{name}: liveness probe failed {f}/{n}: {t}");
                }
            }
        }
    }

    /// After each transition of program `i`.
    pub(super) fn watch_transition(&mut self, i: usize, to: &str, now: Instant) {
        match to {
            "RUNNING" => {
                let Some(slot) = self.slots[i].as_mut() else { return };
                if let Some(fd) = slot.watch.ready_fd.take() {
                    self.reactor.delete(fd.as_fd());
                }
                self.cancel_probe(i);
                let Some(slot) = self.live_mut(i) else { return };
                slot.watch.next_probe = slot.program.liveness.as_ref().map(|p| now + p.interval);
                if let Some(wd) = slot.program.watchdog {
                    slot.watch.watchdog_due = Some(now + wd);
                    slot.watch.last.get_or_insert_with(|| "watchdog armed".into());
                }
            }
            "STARTING" => {
                let Some(slot) = self.live_mut(i) else { return };
                if let Readiness::Probe(p) = &slot.program.readiness {
                    slot.watch.next_probe = Some(now + p.interval.min(std::time::Duration::from_millis(250)));
                }
            }
            "STOPPING" => self.stop_health(i),
            _ => self.end_watch(i),
        }
    }

    /// Deadlines of program `i`'s watch.
    pub(super) fn watch_deadlines(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_ref() else { return };
        if let Some(p) = &slot.watch.probe
            && p.deadline <= now
        {
            let liveness = p.liveness;
            let (kind, timeout) = self
                .current_probe(i)
                .map(|(p, _)| (p.check.kind(), p.timeout))
                .unwrap_or(("probe", std::time::Duration::ZERO));
            self.cancel_probe(i);
            let why = format!("{kind}: timed out after {}", humantime::format_duration(timeout));
            self.probe_done(i, liveness, Outcome::Fail(why), now);
        }
        let Some(slot) = self.slots[i].as_ref() else { return };
        if slot.watch.probe.is_none() && slot.watch.next_probe.is_some_and(|t| t <= now) {
            self.start_probe(i, now);
        }
        let Some(slot) = self.slots[i].as_ref() else { return };
        if let Some(due) = slot.watch.watchdog_due
            && due <= now
        {
            let wd = slot.program.watchdog.unwrap_or_default();
            let reason = format!("watchdog: no WATCHDOG=1 for {}", humantime::format_duration(wd));
            let Some(slot) = self.live_mut(i) else { return };
            slot.watch.watchdog_due = None;
            slot.watch.failures += 1;
            slot.watch.last = Some(reason.clone());
            self.apply(i, Event::Fail { reason }, now);
        }
    }

    /// The ready fd of program `i` is readable: a newline means ready; EOF without one is
    /// nothing (the program may still be probed by start_timeout).
    pub(super) fn on_ready_fd(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_mut() else { return };
        let Some(fd) = &slot.watch.ready_fd else { return };
        let mut buf = [0u8; 512];
        let mut ready = false;
        let mut closed = false;
        loop {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    if buf[..n].contains(&b'\n') {
                        ready = true;
                        break;
                    }
                    slot.watch.ready_fd_seen += n;
                    if slot.watch.ready_fd_seen > 1 << 16 {
                        closed = true;
                        break;
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
        if (ready || closed)
            && let Some(fd) = slot.watch.ready_fd.take()
        {
            self.reactor.delete(fd.as_fd());
        }
        let name = slot.program.name.clone();
        if ready {
            let n = match slot.program.readiness {
                Readiness::Fd(n) => n,
                _ => 0,
            };
            self.apply(
                i,
                Event::Ready {
                    how: format!("newline on fd {n}"),
                },
                now,
            );
        } else if closed {
            log::warn!("{name}: closed its notification fd without a newline; not ready");
        }
    }

    /// Is `pid` a process of program `i` (its cgroup, else its process group)?
    fn is_process_of(&self, i: usize, pid: i32) -> bool {
        let Some(slot) = self.live(i) else {
            return false;
        };
        if let Some(cg) = &slot.cgroup
            && cg.pids().contains(&pid)
        {
            return true;
        }
        // Not rustix's getpgid: it panics on a process group 0 (PID 1's, in a container).
        slot.group().is_some() && process_group(pid) == slot.group()
    }

    /// After a reap: a main process from `MAINPID=` that is not holden's child ended (its
    /// pidfd is readable) and no reap saw it. Its status is known only where the kernel tells
    /// (PIDFD_GET_INFO, once its parent reaped it); otherwise "unknown".
    pub(super) fn foreign_main_exit(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots[i].as_ref() else { return };
        if !slot.watch.foreign_main || slot.program.agent.is_some() {
            return;
        }
        let Some(fd) = slot.machine.state.process().map(|p| &p.pidfd) else {
            return;
        };
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        if !matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0) {
            return;
        }
        let exit = match crate::process::reap::pidfd_exit(fd.as_fd(), crate::process::reap::PIDFD_EXIT_PATIENCE) {
            crate::process::reap::PidfdExit::Ended(exit) => exit,
            _ => crate::process::ExitKind::Unknown,
        };
        if let Some(slot) = self.live_mut(i) {
            slot.watch.foreign_main = false;
        }
        self.apply(i, Event::Exited(exit), now);
    }

    /// Does `pid` still exist (a zombie counts)?
    fn exists(pid: i32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Program `i`'s notify socket is readable.
    pub(super) fn on_notify(&mut self, i: usize, now: Instant) {
        // Bounded per wakeup: a flood cannot starve the loop (level-triggered: the rest next turn).
        for _ in 0..64 {
            let Some(slot) = self.slots[i].as_ref() else { return };
            let Some(sock) = &slot.watch.notify else { return };
            let dg = match notify::recv(&sock.fd) {
                Ok(Some(dg)) => dg,
                Ok(None) => return,
                Err(e) => {
                    log::warn!("{}: notify socket: {e}", slot.program.name);
                    return;
                }
            };
            let name = slot.program.name.clone();
            let uid_ok = dg.uid.is_some_and(|u| u == slot.watch.notify_uid || u == 0);
            // A sender that is already gone is still the program's: only the program's user can
            // reach this socket. One that exists must be a process of the program.
            let pid_ok = dg.pid.is_some_and(|p| self.is_process_of(i, p) || !Self::exists(p));
            let text = match (&dg.text, uid_ok && pid_ok) {
                (Ok(t), true) => t.clone(),
                (Ok(_), false) => {
                    self.bad_datagram(i, &format!("from a stranger (pid {:?}, uid {:?})", dg.pid, dg.uid));
                    continue;
                }
                (Err(why), _) => {
                    self.bad_datagram(i, why);
                    continue;
                }
            };
            let (msgs, unknown) = notify::parse(&text);
            if !unknown.is_empty() {
                self.bad_datagram(i, &format!("unknown: {}", unknown.join(", ")));
            }
            log::debug!("{name}: notify from pid {:?}: {text:?}", dg.pid);
            for msg in msgs {
                self.on_notify_msg(i, msg, dg.pid, now);
                if self.slots[i].is_none() {
                    return;
                }
            }
            // dg.fds (BARRIER=1's pipe) close here: that is what the sender waits for.
            drop(dg);
        }
    }

    fn bad_datagram(&mut self, i: usize, why: &str) {
        let Some(slot) = self.live_mut(i) else { return };
        let warn = slot.watch.count_bad();
        let (name, n) = (slot.program.name.clone(), slot.watch.bad);
        if warn {
            log::warn!("{name}: ignored a notify datagram ({why}); {n} so far");
        } else {
            log::debug!("{name}: ignored a notify datagram ({why}); {n} so far");
        }
    }

    fn on_notify_msg(&mut self, i: usize, msg: Msg, sender: Option<i32>, now: Instant) {
        let Some(slot) = self.live_mut(i) else { return };
        let name = slot.program.name.clone();
        match msg {
            Msg::Ready => self.apply(i, Event::Ready { how: "READY=1".into() }, now),
            Msg::Status(s) => slot.watch.status_text = Some(s),
            Msg::Reloading => log::info!("{name}: reloading (RELOADING=1)"),
            Msg::Stopping => log::info!("{name}: stopping (STOPPING=1)"),
            Msg::Watchdog => {
                if let (Some(wd), State::Running { .. }) = (slot.program.watchdog, &slot.machine.state) {
                    slot.watch.watchdog_due = Some(now + wd);
                    slot.watch.failures = 0;
                    slot.watch.last = Some("WATCHDOG=1".into());
                }
            }
            Msg::WatchdogTrigger => {
                let reason = "watchdog: WATCHDOG=trigger".to_string();
                slot.watch.failures += 1;
                slot.watch.last = Some(reason.clone());
                self.apply(i, Event::Fail { reason }, now);
            }
            Msg::Extend(d) => self.apply(i, Event::Extend(d), now),
            Msg::MainPid(pid) => self.set_main_pid(i, pid, sender),
            Msg::Errno(n) => log::info!("{name}: ERRNO={n} ({})", crate::error::errno_text(n)),
            Msg::Barrier => {}
        }
    }

    /// `MAINPID=`: only a process of the program may become its main process.
    fn set_main_pid(&mut self, i: usize, pid: i32, sender: Option<i32>) {
        let Some(slot) = self.live(i) else { return };
        let name = slot.program.name.clone();
        if slot.machine.state.pid() == Some(pid)
            || !matches!(slot.machine.state, State::Starting { .. } | State::Running { .. })
        {
            return;
        }
        if !self.is_process_of(i, pid) {
            self.bad_datagram(
                i,
                &format!("MAINPID={pid} is not a process of {name} (sent by {sender:?})"),
            );
            return;
        }
        let Some(fd) =
            Pid::from_raw(pid).and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::NONBLOCK).ok())
        else {
            return;
        };
        let Some(slot) = self.slots[i].as_mut() else { return };
        let token = slot.token(i, Role::Pidfd);
        let Some(main) = slot.machine.state.process_mut() else {
            return;
        };
        self.reactor.delete(main.pidfd.as_fd());
        let _ = self.reactor.add(fd.as_fd(), token, Interest::Read);
        main.pidfd = fd;
        main.pid = pid;
        slot.watch.foreign_main = true;
        log::info!("{name}: main process is now {pid} (MAINPID)");
    }
}

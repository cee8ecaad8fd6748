//! The supervisor on a fake clock, with spawns that start nothing: `depends_on` in both
//! directions, a dependency that failed, reload, and reused slots. Each test sets up a reactor
//! and a control socket in a temp dir, and no process, no signal handler, no cgroup.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::process::Exec;
use super::*;
use crate::config::Program;
use crate::process::ExitKind;
use rustix::process::Pid;

/// The fake clock and the pids of spawns that start nothing (far above any `pid_max`, so
/// that no signal could reach a real process).
pub(super) struct Fake {
    pub(super) now: Instant,
    next_pid: i32,
    /// Spawns keep their exec outcome pending (else it is "exec'd" at once): the write ends
    /// of their exec_status, by pid, for the test to write an error code to, or close.
    hold_exec: bool,
    exec: Vec<(i32, OwnedFd)>,
    /// The transition lines, as holden logs them.
    pub(super) lines: Vec<String>,
}

impl Fake {
    /// A main process that is none: a fake pid, and /dev/null for its pidfd (no signal can
    /// go through it).
    pub(super) fn spawn(&mut self) -> Event {
        self.next_pid += 1;
        let pidfd = rustix::fs::open(
            c"/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("open /dev/null");
        Event::Spawned(Proc {
            pid: self.next_pid,
            pidfd,
            pgid: Some(self.next_pid),
            oom_before: None,
            exit_wait: None,
            exec: Some(Exec {
                status: self.exec_status(self.next_pid),
                _in_flight: None,
            }),
        })
    }

    /// The read end of a pid's exec outcome: end of file at once, or held.
    fn exec_status(&mut self, pid: i32) -> OwnedFd {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        if self.hold_exec {
            self.exec.push((pid, write));
        }
        read
    }
}

struct Bench {
    sup: Supervisor,
    dir: PathBuf,
    t0: Instant,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bench {
    /// A supervisor of the programs in `toml`, none started yet.
    fn new(toml: &str) -> Bench {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "holden-supervisor-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("supervisor.toml");
        let write = |toml: &str| {
            let text = format!(
                "[supervisor]\nsocket = \"{}\"\n\n{toml}",
                dir.join("ctl.sock").display()
            );
            std::fs::write(&path, text).unwrap();
        };
        write(toml);
        let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let reactor = Reactor::new().unwrap();
        let signals = Signals::install(&reactor, &[]).unwrap();
        let settings = &config.supervisor;
        let grants = crate::control::server::Grants::from_settings(settings);
        let control = Server::bind(&settings.socket, settings.socket_mode, &grants, &reactor).unwrap();
        let mut sup = Supervisor::assemble(config, reactor, signals, control, None);
        let t0 = Instant::now();
        sup.fake = Some(Fake {
            now: t0,
            next_pid: 1 << 30,
            hold_exec: false,
            exec: Vec::new(),
            lines: Vec::new(),
        });
        Bench { sup, dir, t0 }
    }

    /// Replace the file's programs with `toml` (for a reload).
    fn rewrite(&self, toml: &str) {
        let text = format!(
            "[supervisor]\nsocket = \"{}\"\n\n{toml}",
            self.dir.join("ctl.sock").display()
        );
        std::fs::write(self.dir.join("supervisor.toml"), text).unwrap();
    }

    /// Move the clock to `secs` after the start and run what the loop runs after a wakeup.
    fn at(&mut self, secs: f64) {
        self.sup.fake.as_mut().unwrap().now = self.t0 + Duration::from_secs_f64(secs);
        self.sup.fire_deadlines();
        self.sup.settle();
    }

    fn start(&mut self, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let targets = self.sup.resolve_names(&names).unwrap();
        self.sup.op_start(&targets).unwrap();
    }

    fn stop(&mut self, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let targets = self.sup.resolve_names(&names).unwrap();
        self.sup.op_stop(&targets);
    }

    /// The main process of `name` ended with `exit`, and nothing of it is left.
    fn ended(&mut self, name: &str, exit: ExitKind) {
        let i = self.sup.index_of(name).unwrap();
        let now = self.sup.now();
        self.sup.apply(i, Event::Exited(exit), now);
        if matches!(
            self.sup.live(i).unwrap().machine.state,
            State::Stopping { process: None, .. }
        ) {
            self.sup.apply(i, Event::Emptied, now);
        }
        self.sup.settle();
    }

    /// The child of `name` could not exec: `errno` on its exec_status, which is then closed.
    /// `reaped`: its death was reaped before the loop read that (the race), else the loop
    /// reads it as the reactor says (then the death, an orphan's).
    fn exec_failed(&mut self, name: &str, errno: i32, reaped: bool) {
        let i = self.sup.index_of(name).unwrap();
        let pid = self.sup.live(i).unwrap().machine.state.pid().unwrap();
        let write = self.exec_write_end(pid);
        rustix::io::write(&write, &errno.to_ne_bytes()).unwrap();
        drop(write);
        let now = self.sup.now();
        if reaped {
            self.sup.on_reaped(pid, ExitKind::Code(127), now);
        } else {
            self.sup.on_exec_status(i, now);
            self.sup.on_reaped(pid, ExitKind::Code(127), now);
        }
        self.sup.after_reaps(now);
        self.sup.settle();
    }

    /// The child of `name` exec'd: its exec_status is closed, and the loop reads that.
    fn exec_ran(&mut self, name: &str) {
        let i = self.sup.index_of(name).unwrap();
        let pid = self.sup.live(i).unwrap().machine.state.pid().unwrap();
        drop(self.exec_write_end(pid));
        let now = self.sup.now();
        self.sup.on_exec_status(i, now);
    }

    fn exec_write_end(&mut self, pid: i32) -> OwnedFd {
        let fake = self.sup.fake.as_mut().unwrap();
        let k = fake.exec.iter().position(|(p, _)| *p == pid).expect("a held exec");
        fake.exec.remove(k).1
    }

    /// Hold the exec outcome of the spawns from now on.
    fn hold_exec(&mut self) {
        self.sup.fake.as_mut().unwrap().hold_exec = true;
    }

    fn exec_pending(&self, name: &str) -> bool {
        let i = self.sup.index_of(name).unwrap();
        self.sup
            .live(i)
            .unwrap()
            .machine
            .state
            .process()
            .is_some_and(|p| p.exec.is_some())
    }

    fn lines(&self) -> Vec<String> {
        self.sup.fake.as_ref().unwrap().lines.clone()
    }

    fn state(&self, name: &str) -> &'static str {
        match self.sup.index_of(name) {
            Some(i) => self.sup.live(i).unwrap().machine.state.name(),
            None => "(gone)",
        }
    }

    fn states(&self, names: &[&str]) -> Vec<&'static str> {
        names.iter().map(|n| self.state(n)).collect()
    }
}

const DB_AND_WEB: &str = r#"
[programs.db]
command = ["sleep", "1"]
autostart = false
min_uptime = "1s"

[programs.web]
command = ["sleep", "1"]
autostart = false
min_uptime = "1s"
depends_on = ["db"]
"#;

#[test]
fn a_dependent_starts_once_its_dependency_runs_and_stops_before_it() {
    let mut b = Bench::new(DB_AND_WEB);
    b.start(&["db", "web"]);
    // (seconds, [db, web])
    let rows: &[(f64, [&str; 2])] = &[
        (0.0, ["STARTING", "STOPPED"]),
        (0.5, ["STARTING", "STOPPED"]),
        (1.0, ["RUNNING", "STARTING"]),
        (2.0, ["RUNNING", "RUNNING"]),
    ];
    for (t, want) in rows {
        b.at(*t);
        assert_eq!(b.states(&["db", "web"]), want, "at {t}s");
    }
    b.stop(&["db", "web"]);
    assert_eq!(b.states(&["db", "web"]), ["RUNNING", "STOPPING"], "web stops first");
    b.at(2.5);
    assert_eq!(b.states(&["db", "web"]), ["RUNNING", "STOPPING"]);
    b.ended("web", ExitKind::Signal(15));
    assert_eq!(b.states(&["db", "web"]), ["STOPPING", "STOPPED"], "then db");
    b.ended("db", ExitKind::Signal(15));
    assert_eq!(b.states(&["db", "web"]), ["STOPPED", "STOPPED"]);
}

#[test]
fn a_fatal_dependency_refuses_the_start_of_its_dependent() {
    let mut b = Bench::new(&DB_AND_WEB.replace("min_uptime = \"1s\"\n\n", "min_uptime = \"1s\"\nmax_restarts = 0\n\n"));
    b.start(&["db", "web"]);
    b.at(0.1);
    b.ended("db", ExitKind::Code(1));
    assert_eq!(b.states(&["db", "web"]), ["FATAL", "STOPPED"]);
    let web = b.sup.index_of("web").unwrap();
    assert_eq!(
        b.sup.live(web).unwrap().intent,
        Intent::None,
        "the start was refused, not kept waiting"
    );
    // A later run of db does not start web on its own.
    b.start(&["db"]);
    b.at(1.2);
    assert_eq!(b.states(&["db", "web"]), ["RUNNING", "STOPPED"]);
}

#[test]
fn a_restart_stops_then_starts_and_a_start_while_stopping_waits_for_the_stop() {
    let mut b = Bench::new(DB_AND_WEB);
    b.start(&["db"]);
    b.at(1.0);
    let db = b.sup.index_of("db").unwrap();
    b.sup.op_restart(&[db]).unwrap();
    assert_eq!(b.state("db"), "STOPPING");
    b.ended("db", ExitKind::Signal(15));
    assert_eq!(b.state("db"), "STARTING", "restarted once down");
    b.at(2.0);
    b.stop(&["db"]);
    b.start(&["db"]);
    assert_eq!(b.state("db"), "STOPPING");
    b.ended("db", ExitKind::Signal(15));
    assert_eq!(b.state("db"), "STARTING");
}

#[test]
fn reload_stops_removed_and_changed_programs_starts_added_ones_and_slots_get_new_tokens() {
    let mut b = Bench::new(DB_AND_WEB.replace("autostart = false\n", "").as_str());
    b.start(&["db", "web"]);
    b.at(1.0);
    b.at(2.0);
    assert_eq!(b.states(&["db", "web"]), ["RUNNING", "RUNNING"]);
    let web = b.sup.index_of("web").unwrap();
    let old_token = b.sup.live(web).unwrap().token(web, Role::Pidfd);
    b.rewrite(
        r#"
[programs.db]
command = ["sleep", "2"]
min_uptime = "1s"

[programs.cache]
command = ["sleep", "1"]
min_uptime = "1s"
"#,
    );
    let summary = b.sup.op_reload().unwrap();
    assert_eq!(
        (summary.added, summary.removed, summary.changed),
        (
            vec!["cache".to_string()],
            vec!["web".to_string()],
            vec!["db".to_string()]
        )
    );
    // db waits for web, its dependent, to stop; cache starts at once.
    assert_eq!(b.states(&["db", "web", "cache"]), ["RUNNING", "STOPPING", "STARTING"]);
    b.ended("web", ExitKind::Signal(15));
    assert_eq!(b.state("web"), "(gone)");
    assert_eq!(b.state("db"), "STOPPING");
    b.ended("db", ExitKind::Signal(15));
    assert_eq!(b.state("db"), "STARTING", "started again with its new settings");
    let db = b.sup.index_of("db").unwrap();
    assert_eq!(b.sup.live(db).unwrap().program.command, ["sleep", "2"]);
    // A program added now takes web's slot, under a new generation: web's tokens are stale.
    assert!(b.sup.route(old_token.id).is_none());
    let new = Program {
        name: "late".into(),
        ..b.sup.live(db).unwrap().program.clone()
    };
    b.sup.op_add(new).unwrap();
    let late = b.sup.index_of("late").unwrap();
    assert_eq!(late, web, "the slot is reused");
    assert!(b.sup.route(old_token.id).is_none(), "a stale wakeup is dropped");
    let fresh = b.sup.live(late).unwrap().token(late, Role::Pidfd);
    assert_eq!(b.sup.route(fresh.id), Some((Role::Pidfd, late)));
}

#[test]
fn the_unit_tests_of_the_supervisor_spawn_nothing() {
    let mut b = Bench::new(DB_AND_WEB);
    b.start(&["db"]);
    let pid = b
        .sup
        .live(b.sup.index_of("db").unwrap())
        .unwrap()
        .machine
        .state
        .pid()
        .unwrap();
    assert!(pid > 1 << 22, "pid {pid} is a fake one, above any pid_max");
    assert_eq!(
        rustix::process::test_kill_process(Pid::from_raw(pid).unwrap()),
        Err(rustix::io::Errno::SRCH)
    );
}

const NOPE: &str = r#"
[programs.nope]
command = ["/usr/bin/nope-not-here"]
autostart = false
min_uptime = "1s"
restart_delay = "1s"
"#;

#[test]
fn an_exec_that_fails_once_the_child_exists_is_fatal_with_the_sentence() {
    let mut b = Bench::new(NOPE);
    b.hold_exec();
    b.start(&["nope"]);
    assert_eq!(b.state("nope"), "STARTING", "the loop did not wait for the exec");
    assert!(b.exec_pending("nope"));
    // min_uptime passes before the outcome is read: not RUNNING before it runs at all.
    b.at(5.0);
    assert_eq!(b.state("nope"), "STARTING");
    b.exec_failed("nope", libc::ENOENT, false);
    assert_eq!(b.state("nope"), "FATAL");
    let pid = 1 << 30 | 1;
    assert_eq!(
        b.lines(),
        [
            format!("nope: STOPPED -> STARTING (pid {pid})"),
            "nope: STARTING -> FATAL (cannot spawn /usr/bin/nope-not-here: no such file or directory)".to_string(),
        ]
    );
    assert_eq!(
        b.sup.live(0).unwrap().machine.last_exit,
        None,
        "no exit status 127: it never ran"
    );
}

#[test]
fn an_exec_short_of_a_resource_backs_off_and_is_never_fatal() {
    let mut b = Bench::new(&NOPE.replace("min_uptime", "max_restarts = 1\nmin_uptime"));
    b.hold_exec();
    b.start(&["nope"]);
    let mut t = 0.0;
    for _ in 0..4 {
        b.exec_failed("nope", libc::ENOMEM, false);
        assert_eq!(b.state("nope"), "BACKOFF");
        t += 10.0;
        b.at(t);
        assert_eq!(b.state("nope"), "STARTING", "tried again");
    }
    let lines = b.lines();
    let short: Vec<&String> = lines.iter().filter(|l| l.contains("-> BACKOFF")).collect();
    assert_eq!(short.len(), 4, "{lines:?}");
    assert!(
        short[0].ends_with(
            "STARTING -> BACKOFF (cannot spawn /usr/bin/nope-not-here: cannot allocate memory; out of a resource, trying again in 1s)"
        ),
        "{lines:?}"
    );
    assert!(short[1].ends_with("trying again in 2s)"), "{lines:?}");
    b.exec_ran("nope");
    assert!(!b.exec_pending("nope"));
    b.at(t + 1.0);
    assert_eq!(b.state("nope"), "RUNNING");
}

#[test]
fn a_death_reaped_before_the_exec_outcome_is_the_spawn_failure_not_an_exit_status() {
    let mut b = Bench::new(NOPE);
    b.hold_exec();
    b.start(&["nope"]);
    b.exec_failed("nope", libc::ENOENT, true);
    assert_eq!(b.state("nope"), "FATAL");
    assert_eq!(
        b.lines().last().unwrap(),
        "nope: STARTING -> FATAL (cannot spawn /usr/bin/nope-not-here: no such file or directory)"
    );
    assert_eq!(b.sup.live(0).unwrap().machine.last_exit, None);

    // It exec'd, then died before the loop read that: an exit like any other.
    let mut b = Bench::new(NOPE);
    b.hold_exec();
    b.start(&["nope"]);
    let pid = b.sup.live(0).unwrap().machine.state.pid().unwrap();
    drop(b.exec_write_end(pid));
    let now = b.sup.now();
    b.sup.on_reaped(pid, ExitKind::Code(3), now);
    assert_eq!(b.state("nope"), "BACKOFF");
    assert_eq!(b.sup.live(0).unwrap().machine.last_exit, Some(ExitKind::Code(3)));
}

#[test]
fn a_stop_while_the_exec_is_pending_stops_it_and_drops_the_outcome_quietly() {
    let mut b = Bench::new(NOPE);
    b.hold_exec();
    b.start(&["nope"]);
    b.stop(&["nope"]);
    assert_eq!(b.state("nope"), "STOPPING");
    assert!(b.exec_pending("nope"), "still its process until it is known to be gone");
    b.exec_failed("nope", libc::ENOENT, false);
    assert_eq!(b.state("nope"), "STOPPED");
    assert_eq!(b.sup.live(0).unwrap().machine.last_exit, None);
    let lines = b.lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].ends_with("STARTING -> STOPPING (sent SIGTERM)"), "{lines:?}");
    assert_eq!(lines[2], "nope: STOPPING -> STOPPED");

    // A shutdown's second signal (SIGKILL) while the exec is pending; the exec then worked.
    let mut b = Bench::new(NOPE);
    b.hold_exec();
    b.start(&["nope"]);
    let i = b.sup.index_of("nope").unwrap();
    let now = b.sup.now();
    b.sup.apply(i, Event::Kill, now);
    assert_eq!(b.state("nope"), "STOPPING");
    b.exec_ran("nope");
    b.ended("nope", ExitKind::Signal(9));
    assert_eq!(b.state("nope"), "STOPPED");
}

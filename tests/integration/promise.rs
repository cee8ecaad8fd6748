//! Issue 13's promise, as behaviour: holden's one thread never waits on one program while
//! others need it. A program whose `agent =` socket accepts and never answers, and a program
//! whose leftover cgroup will not empty, do not delay a third, crash-looping program: it keeps
//! restarting, and `holden status` answers, while the other two wait.
//!
//! No time is asserted. The test holds both waits open itself (the fake agent keeps its
//! connection, the leftover stays frozen) and checks what happened while they were open.

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::*;

const T: Duration = Duration::from_secs(30);

/// An agent socket that accepts connections and never answers. It records, per connection,
/// whether holden has closed it.
struct SilentAgent {
    closed: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentAgent {
    fn listen(path: &Path) -> SilentAgent {
        let listener = UnixListener::bind(path).expect("bind the silent agent's socket");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let closed: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (closed, stop) = (closed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut readers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            let flag = Arc::new(AtomicBool::new(false));
                            closed.lock().unwrap().push(flag.clone());
                            let stop = stop.clone();
                            conn.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                            readers.push(std::thread::spawn(move || {
                                // Read (and drop) the request; never answer. EOF: holden gave up.
                                let mut buf = [0u8; 4096];
                                while !stop.load(Ordering::Relaxed) {
                                    match conn.read(&mut buf) {
                                        Ok(0) => {
                                            flag.store(true, Ordering::SeqCst);
                                            return;
                                        }
                                        Ok(_) => {}
                                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                        Err(_) => {
                                            flag.store(true, Ordering::SeqCst);
                                            return;
                                        }
                                    }
                                }
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                for r in readers {
                    let _ = r.join();
                }
            })
        };
        SilentAgent {
            closed,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far, and how many of them holden has closed.
    fn connections(&self) -> (usize, usize) {
        let all = self.closed.lock().unwrap();
        (all.len(), all.iter().filter(|c| c.load(Ordering::SeqCst)).count())
    }
}

impl Drop for SilentAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A process that SIGKILL cannot end for now: it sits in a frozen v1 freezer cgroup of its own,
/// and in program `name`'s memory cgroup below `cgroup_path`, as a leftover of an earlier holden
/// would. Thawed, killed and removed on drop, with the test's cgroup tree.
struct FrozenLeftover {
    child: Child,
    ice: Ice,
    cgroup_path: String,
}

impl FrozenLeftover {
    fn plant(cgroup_path: &str, name: &str) -> FrozenLeftover {
        let child = Command::new("sleep").arg("1000").spawn().expect("spawn sleep");
        let program = Path::new("/sys/fs/cgroup/memory")
            .join(cgroup_path.trim_start_matches('/'))
            .join(name);
        fs::create_dir_all(&program).expect("create the program's memory cgroup");
        fs::write(program.join("cgroup.procs"), child.id().to_string()).expect("move the leftover into it");
        let ice = Ice::freeze(&format!("{cgroup_path}-ice"), child.id());
        FrozenLeftover {
            child,
            ice,
            cgroup_path: cgroup_path.to_string(),
        }
    }

    /// Let it go: the SIGKILL holden sent it is delivered.
    fn thaw(&self) {
        self.ice.thaw();
    }

    fn frozen(&self) -> bool {
        self.ice.frozen()
    }
}

impl Drop for FrozenLeftover {
    fn drop(&mut self) {
        self.ice.thaw();
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_cgroup_tree(&self.cgroup_path);
    }
}

/// Start holden with `programs`, plus `remote`, which asks a silent agent, and `crash`, a crash
/// loop that appends a line to the returned file at each run. Returns once holden has connected
/// to the agent, with the runs counted then.
fn start_with_silent_agent(extra: &str, programs: &str) -> (Supervisor, SilentAgent, PathBuf, usize) {
    let sup = Supervisor::prepare(
        extra,
        &format!(
            "{programs}[programs.remote]\ncommand = \"sleep 1000\"\nagent = \"{{dir}}/agent.sock\"\n\
             directory = \"/\"\nrestart_delay = \"1h\"\n\
             [programs.crash]\ncommand = \"sh -c 'echo run >> {{dir}}/runs; exit 1'\"\n\
             autorestart = \"always\"\nrestart_delay = \"0s\"\nmax_restarts = 1000000\n\
             start_limit_burst = 0\n"
        ),
    );
    let agent = SilentAgent::listen(&sup.path("agent.sock"));
    let runs_file = sup.path("runs");
    let sup = sup.spawn();
    wait_for(T, "holden to connect to the silent agent", || {
        let (accepted, _) = agent.connections();
        (accepted > 0).then_some(()).ok_or(format!("{accepted} connections"))
    });
    let first = runs(&runs_file);
    (sup, agent, runs_file, first)
}

/// A test cgroup path with program "stuck"'s frozen leftover planted in it; None (the test
/// skipped) when not root or not on a hybrid host.
fn frozen_leftover_or_skip(test: &str) -> Option<(String, FrozenLeftover)> {
    if skip_unless_root(test) {
        return None;
    }
    if !Ice::available() || !Path::new("/sys/fs/cgroup/memory").is_dir() {
        skip(
            test,
            "needs the v1 freezer and memory hierarchies (a hybrid host) to hold a process SIGKILL cannot end",
        );
        return None;
    }
    let cgroup_path = unique_cgroup_path();
    let leftover = FrozenLeftover::plant(&cgroup_path, "stuck");
    Some((cgroup_path, leftover))
}

fn runs(path: &Path) -> usize {
    fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn a_silent_agent_and_a_leftover_that_will_not_die_do_not_delay_a_crash_looping_program() {
    let Some((cgroup_path, leftover)) =
        frozen_leftover_or_skip("a_silent_agent_and_a_leftover_that_will_not_die_do_not_delay_a_crash_looping_program")
    else {
        return;
    };
    let (mut sup, agent, runs_file, first) = start_with_silent_agent(
        &cgroup_extra(&cgroup_path),
        "[programs.stuck]\ncommand = \"sleep 1000\"\nmemory_limit = \"100MB\"\nrestart_delay = \"1h\"\n",
    );
    // While both waits are open, the crash loop goes on.
    let seen = wait_for(T, "the crash loop to go on while the others wait", || {
        let (accepted, closed) = agent.connections();
        let n = runs(&runs_file);
        if closed > 0 || !leftover.frozen() {
            panic!(
                "a wait ended before the crash loop went on: {closed} of {accepted} agent connection(s) closed by holden, leftover frozen: {}, runs: {first} then {n}\n{}",
                leftover.frozen(),
                sup.log_text()
            );
        }
        (n >= first + 5).then_some(n).ok_or(format!("{n} runs (first {first})"))
    });
    let status = sup.status();
    let state = |name: &str| {
        status
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["state"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    let (accepted, closed) = agent.connections();
    assert_eq!(
        closed, 0,
        "status answered while holden still waits on the agent ({accepted} connections)"
    );
    assert!(leftover.frozen(), "status answered while the leftover still lives");
    assert_ne!(state("stuck"), "RUNNING", "{status:?}");
    assert_ne!(state("remote"), "RUNNING", "{status:?}");
    let crash = status.iter().find(|p| p["name"] == "crash").expect("crash in status");
    assert!(
        crash["restarts"].as_u64().unwrap_or(0) >= 4,
        "the crash loop restarted ({seen} runs): {crash}"
    );
    assert!(
        !sup.log_text().contains("still holds"),
        "holden has not given up on the leftover yet:\n{}",
        sup.log_text()
    );

    drop(agent);
    leftover.thaw();
    sup.signal(rustix::process::Signal::TERM.as_raw());
    let st = sup.wait_exit(T);
    assert!(st.success(), "holden exits 0 on SIGTERM: {st}");
    drop(leftover);
}

/// The agent half alone, on any host: while holden's request to an agent that never answers is
/// open, a crash-looping program goes on, status answers and shows the agent's program
/// STARTING without a pid; a stop of that program closes the request.
#[test]
fn a_silent_agent_does_not_delay_a_crash_looping_program() {
    let test = "a_silent_agent_does_not_delay_a_crash_looping_program";
    if skip_unless_root(test) {
        return;
    }
    let (mut sup, agent, runs_file, first) = start_with_silent_agent("", "");
    wait_for(T, "the crash loop to go on while the agent is asked", || {
        let (accepted, closed) = agent.connections();
        let n = runs(&runs_file);
        if closed > 0 {
            panic!(
                "holden gave up on the agent before the crash loop went on: {closed} of {accepted} closed, runs: {first} then {n}\n{}",
                sup.log_text()
            );
        }
        (n >= first + 5).then_some(n).ok_or(format!("{n} runs (first {first})"))
    });
    let status = sup.status();
    assert_eq!(agent.connections().1, 0, "status answered while the request is open");
    let remote = status.iter().find(|p| p["name"] == "remote").expect("remote in status");
    assert_eq!(remote["state"], "STARTING", "{remote}");
    assert!(remote["pid"].is_null(), "no pid before the agent answers: {remote}");

    let out = sup.ctl(&["stop", "remote"]);
    assert!(out.status.success(), "{out:?}");
    drop(agent);
    sup.signal(rustix::process::Signal::TERM.as_raw());
    let st = sup.wait_exit(T);
    assert!(st.success(), "holden exits 0 on SIGTERM: {st}");
}

#[test]
fn a_leftover_that_outlives_the_wait_fails_the_spawn_as_before_while_holden_serves() {
    let Some((cgroup_path, leftover)) =
        frozen_leftover_or_skip("a_leftover_that_outlives_the_wait_fails_the_spawn_as_before_while_holden_serves")
    else {
        return;
    };
    let sup = Supervisor::prepare(
        &cgroup_extra(&cgroup_path),
        "[programs.stuck]\ncommand = \"sleep 1000\"\n\
         [programs.other]\ncommand = \"sleep 1000\"\n",
    );
    let mut sup = sup.spawn();
    sup.wait_log("stuck: waiting for them to end before it starts", T);
    // While the spawn of `stuck` waits, the other program runs and status answers.
    wait_state_within(T, &sup, "other", "RUNNING");
    assert!(leftover.frozen(), "the leftover still lives while other runs");
    // Until the wait gives up with today's sentence and state.
    let fatal = wait_state_within(T, &sup, "stuck", "FATAL");
    assert!(
        sup.log_text().contains("still holds 1 process(es) after SIGKILL"),
        "{fatal}\n{}",
        sup.log_text()
    );
    leftover.thaw();
    sup.signal(rustix::process::Signal::TERM.as_raw());
    let st = sup.wait_exit(T);
    assert!(st.success(), "holden exits 0 on SIGTERM: {st}");
    drop(leftover);
}

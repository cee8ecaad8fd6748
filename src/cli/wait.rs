//! `start`, `stop`, `restart` and `add` wait without polling: the client first asks to `watch`
//! (a snapshot of every program, then every state change pushed on the same connection), then
//! sends the action, then follows the events until each target got where it was sent or
//! failed. Watching first means no transition can slip between the action and the
//! subscription.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::args::{ClientArgs, Targets};
use super::error::{Result, runtime, usage};
use super::units::{parse_count, parse_cpus, parse_size};
use super::{connect, expect_status, out};
use crate::config::{self, RestartPolicy};
use crate::control::client::{Connection, REQUEST_TIMEOUT};
use crate::control::protocol::{Event, Incoming, Reply, Request};
use crate::error::os_text;

/// How long `start`/`stop`/`restart`/`shutdown` wait for programs to get there. Generous: a
/// stop may take `stop_timeout` per dependency level, a start `min_uptime` per level.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }
}

/// What the client knows about one target while it waits.
#[derive(Debug, Clone, PartialEq)]
struct Progress {
    state: String,
    pid: Option<i32>,
    reason: Option<String>,
    /// Went to STARTING after the action was sent (a restart must pass there).
    started: bool,
    /// Went to a failed state after the action was sent: the state and why.
    failed: Option<String>,
    removed: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Waiting,
    Done,
    Failed(String),
}

impl Progress {
    fn new(state: &str, pid: Option<i32>) -> Progress {
        Progress {
            state: state.to_string(),
            pid,
            reason: None,
            started: false,
            failed: None,
            removed: false,
        }
    }

    /// An event that arrived after the action was sent.
    fn apply(&mut self, action: Action, event: &Event) {
        match event {
            Event::Transition {
                from, to, reason, pid, ..
            } => {
                self.state = to.clone();
                self.pid = *pid;
                self.reason = reason.clone();
                if to == "STARTING" {
                    self.started = true;
                }
                // from = to: a start refused on the way (a dependency failed), the program down.
                let failure = matches!(to.as_str(), "FATAL" | "EXITED" | "BACKOFF") || from == to;
                if failure && action != Action::Stop && self.failed.is_none() {
                    self.failed = Some(match reason {
                        Some(r) => format!("{to} ({r})"),
                        None => to.clone(),
                    });
                }
            }
            Event::Removed { .. } => self.removed = true,
            Event::Added { .. } => {}
        }
    }

    fn verdict(&self, action: Action) -> Verdict {
        let down = matches!(self.state.as_str(), "STOPPED" | "EXITED" | "FATAL");
        match action {
            Action::Stop if down || self.removed => Verdict::Done,
            Action::Stop => Verdict::Waiting,
            Action::Start | Action::Restart if self.removed => Verdict::Failed("it was removed".into()),
            Action::Start | Action::Restart if self.failed.is_some() => {
                Verdict::Failed(self.failed.clone().unwrap_or_default())
            }
            Action::Start if self.state == "RUNNING" => Verdict::Done,
            Action::Restart if self.started && self.state == "RUNNING" => Verdict::Done,
            Action::Start | Action::Restart => Verdict::Waiting,
        }
    }
}

/// `start`, `stop`, `restart`: act, then follow the targets until each got there or failed.
pub fn act(action: Action, targets: Targets) -> Result {
    let mut c = connect(&targets.client)?;
    let snapshot = expect_status(c.call(&Request::Watch)?)?;
    let mut known: HashMap<String, Progress> = snapshot
        .iter()
        .map(|p| (p.name.clone(), Progress::new(&p.state, p.pid)))
        .collect();
    let (names, all) = (targets.names.clone(), targets.all);
    let request = match action {
        Action::Start => Request::Start { names, all },
        Action::Stop => Request::Stop { names, all },
        Action::Restart => Request::Restart { names, all },
    };
    let mut early = Vec::new();
    let reply = c.call_with(&request, REQUEST_TIMEOUT, &mut |e| early.push(e))?;
    let names: Vec<String> = match reply {
        Reply::Targets { targets } => targets,
        Reply::Status { .. } | Reply::Reload(_) | Reply::LogPaths { .. } | Reply::Done {} if targets.all => {
            snapshot.iter().map(|p| p.name.clone()).collect()
        }
        Reply::Status { .. } | Reply::Reload(_) | Reply::LogPaths { .. } | Reply::Done {} => targets.names,
    };
    for e in &early {
        if let Some(p) = known.get_mut(e.name()) {
            p.apply(action, e);
        }
    }
    follow(&mut c, action, &names, &mut known)
}

/// Follow the events on `c` until every one of `names` got where `action` sends it or failed,
/// then report.
fn follow(c: &mut Connection, action: Action, names: &[String], known: &mut HashMap<String, Progress>) -> Result {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let verdicts: Vec<(String, Verdict)> = names
            .iter()
            .map(|n| {
                let v = known
                    .get(n)
                    .map_or(Verdict::Failed("holden does not know it".into()), |p| p.verdict(action));
                (n.clone(), v)
            })
            .collect();
        if verdicts.iter().all(|(_, v)| *v != Verdict::Waiting) {
            return report(action, names, known, &verdicts);
        }
        match c.next(deadline) {
            Ok(Some(Incoming::Event(e))) => {
                if let Some(p) = known.get_mut(e.name()) {
                    p.apply(action, &e);
                }
            }
            Ok(Some(Incoming::Response(r))) => log::debug!("unexpected response while waiting: {r:?}"),
            Ok(None) => {
                let waiting: Vec<&str> = verdicts
                    .iter()
                    .filter(|(_, v)| *v == Verdict::Waiting)
                    .map(|(n, _)| n.as_str())
                    .collect();
                return Err(runtime(format!(
                    "holden closed the connection before {} got there (is it shutting down?)",
                    waiting.join(", ")
                )));
            }
            Err(_) => {
                let waiting: Vec<String> = verdicts
                    .iter()
                    .filter(|(_, v)| *v == Verdict::Waiting)
                    .map(|(n, _)| format!("{n} is {}", known.get(n).map_or("unknown", |p| p.state.as_str())))
                    .collect();
                return Err(runtime(format!(
                    "gave up waiting after {}: {}",
                    humantime::format_duration(WAIT_TIMEOUT),
                    waiting.join(", ")
                )));
            }
        }
    }
}

fn report(
    action: Action,
    names: &[String],
    known: &HashMap<String, Progress>,
    verdicts: &[(String, Verdict)],
) -> Result {
    let mut text = String::new();
    let mut failures = Vec::new();
    for (name, verdict) in verdicts {
        match verdict {
            Verdict::Done => {
                let p = &known[name];
                match p.pid {
                    Some(pid) => text.push_str(&format!("{name}: {} (pid {pid})\n", p.state)),
                    None => text.push_str(&format!("{name}: {}\n", p.state)),
                }
            }
            Verdict::Failed(why) => failures.push(format!("{name} did not {}: {why}", action.verb())),
            Verdict::Waiting => {}
        }
    }
    if names.is_empty() {
        text.push_str("no programs\n");
    }
    out(&text)?;
    if failures.is_empty() {
        Ok(0)
    } else {
        Err(runtime(failures.join("; ")))
    }
}

/// `holden add`: like `start`, it waits until the program is RUNNING or failed (exit 0 or 1),
/// unless `wait` is false.
pub fn add(
    args: &ClientArgs,
    name: String,
    restart: &str,
    (memory, cpu, pids): (Option<String>, Option<String>, Option<String>),
    stdout: Option<PathBuf>,
    wait: bool,
    command: Vec<String>,
) -> Result {
    if !config::valid_program_name(&name) {
        return Err(usage(format!(
            "{name:?} is not a program name: use 1 to 64 of A-Za-z0-9_.- (not . or ..)"
        )));
    }
    let restart = RestartPolicy::parse(restart).ok_or_else(|| {
        usage(format!(
            "--restart {restart:?} is not a policy; use never, on-failure or always"
        ))
    })?;
    let memory = memory.map(|s| parse_size("--memory", &s)).transpose()?;
    let cpu = cpu.map(|s| parse_cpus("--cpu", &s)).transpose()?;
    let pids = pids.map(|s| parse_count("--pids", &s)).transpose()?;
    let directory =
        std::env::current_dir().map_err(|e| runtime(format!("cannot tell the current folder: {}", os_text(&e))))?;
    let stdout = stdout.map(|p| if p.is_absolute() { p } else { directory.join(p) });
    let mut c = connect(args)?;
    let request = Request::Add {
        name: name.clone(),
        command,
        restart,
        memory,
        cpu,
        pids,
        stdout,
        directory,
    };
    if !wait {
        c.call(&request)?;
        out(&format!("{name}: added\n"))?;
        return Ok(0);
    }
    // Watch first, as `start` does, so that no transition slips between the add and the
    // subscription.
    expect_status(c.call(&Request::Watch)?)?;
    let mut early = Vec::new();
    c.call_with(&request, REQUEST_TIMEOUT, &mut |e| early.push(e))?;
    out(&format!("{name}: added\n"))?;
    let mut progress = Progress::new("STOPPED", None);
    for e in early.iter().filter(|e| e.name() == name) {
        progress.apply(Action::Start, e);
    }
    let mut known = HashMap::from([(name.clone(), progress)]);
    follow(&mut c, Action::Start, &[name], &mut known)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(to: &str, reason: Option<&str>, pid: Option<i32>) -> Event {
        Event::Transition {
            name: "web".into(),
            from: "X".into(),
            to: to.into(),
            reason: reason.map(String::from),
            since: 0.0,
            pid,
        }
    }

    #[test]
    fn start_waits_for_running_and_fails_on_backoff_fatal_or_exited() {
        let mut p = Progress::new("STOPPED", None);
        assert_eq!(p.verdict(Action::Start), Verdict::Waiting);
        p.apply(Action::Start, &transition("STARTING", Some("pid 5"), Some(5)));
        assert_eq!(p.verdict(Action::Start), Verdict::Waiting);
        p.apply(Action::Start, &transition("RUNNING", None, Some(5)));
        assert_eq!(p.verdict(Action::Start), Verdict::Done);

        for bad in ["BACKOFF", "FATAL", "EXITED"] {
            let mut p = Progress::new("STOPPED", None);
            p.apply(Action::Start, &transition("STARTING", None, Some(5)));
            p.apply(Action::Start, &transition(bad, Some("exit status 1"), None));
            assert_eq!(
                p.verdict(Action::Start),
                Verdict::Failed(format!("{bad} (exit status 1)"))
            );
        }
        // Already running: nothing to wait for.
        assert_eq!(Progress::new("RUNNING", Some(3)).verdict(Action::Start), Verdict::Done);
        // FATAL before the start is no failure of this start (it may wait on dependencies).
        assert_eq!(Progress::new("FATAL", None).verdict(Action::Start), Verdict::Waiting);

        // A start refused because a dependency failed: a from = to event, the program down.
        let mut p = Progress::new("STOPPED", None);
        let mut refused = transition("STOPPED", Some("not started: dependency db is FATAL"), None);
        if let Event::Transition { from, .. } = &mut refused {
            *from = "STOPPED".into();
        }
        p.apply(Action::Start, &refused);
        assert_eq!(
            p.verdict(Action::Start),
            Verdict::Failed("STOPPED (not started: dependency db is FATAL)".into())
        );
        // A start of a stopping program passes through STOPPED: no failure.
        let mut p = Progress::new("STOPPING", Some(3));
        p.apply(Action::Start, &transition("STOPPED", None, None));
        assert_eq!(p.verdict(Action::Start), Verdict::Waiting);
    }

    #[test]
    fn restart_is_done_only_after_passing_through_starting() {
        let mut p = Progress::new("RUNNING", Some(3));
        assert_eq!(p.verdict(Action::Restart), Verdict::Waiting);
        p.apply(Action::Restart, &transition("STOPPING", None, Some(3)));
        p.apply(Action::Restart, &transition("STOPPED", None, None));
        assert_eq!(p.verdict(Action::Restart), Verdict::Waiting);
        p.apply(Action::Restart, &transition("STARTING", None, Some(4)));
        p.apply(Action::Restart, &transition("RUNNING", None, Some(4)));
        assert_eq!(p.verdict(Action::Restart), Verdict::Done);
        assert_eq!(p.pid, Some(4));
    }

    #[test]
    fn stop_is_done_at_rest_or_when_removed() {
        for rest in ["STOPPED", "EXITED", "FATAL"] {
            assert_eq!(Progress::new(rest, None).verdict(Action::Stop), Verdict::Done);
        }
        let mut p = Progress::new("RUNNING", Some(3));
        p.apply(Action::Stop, &transition("STOPPING", None, Some(3)));
        assert_eq!(p.verdict(Action::Stop), Verdict::Waiting);
        p.apply(Action::Stop, &Event::Removed { name: "web".into() });
        assert_eq!(p.verdict(Action::Stop), Verdict::Done);
    }
}

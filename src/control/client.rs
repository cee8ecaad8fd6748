//! The CLI side of the control socket: every client command (`status`, `start`, `stop`,
//! `restart`, `signal`, `constrain`, `monitor`, `logs`, `add`, `remove`, `reopen`, `reload`,
//! `shutdown`).
//!
//! Arguments are checked before connecting (a bad size or signal is a usage error, exit 2, and
//! holden is not bothered). Every failure is one sentence with what to do, never an `os error`.
//!
//! `start`, `stop` and `restart` wait without polling: the client first asks to `watch` (a
//! snapshot of every program, then every state change pushed on the same connection), then
//! sends the action, then follows the events until each target got where it was sent or
//! failed. Watching first means no transition can slip between the action and the
//! subscription.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::protocol::{
    ErrorBody, ErrorCode, Event, Incoming, Limit, LogPaths, ProgramStatus, ReloadSummary, Reply, Request, Response,
    SpecStatus, unix_time,
};
use super::table;
use crate::cli::{ClientArgs, Command, Targets};
use crate::config::{self, RestartPolicy};
use crate::error::Failure;

/// How long a request may wait for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `start`/`stop`/`restart`/`shutdown` wait for programs to get there. Generous: a
/// stop may take `stop_timeout` per dependency level, a start `min_uptime` per level.
const WAIT_TIMEOUT: Duration = Duration::from_secs(300);
/// The gap between `monitor`'s two first snapshots, from which its first frame's CPU rates are
/// taken (the interval if shorter).
const FIRST_SAMPLE: Duration = Duration::from_millis(250);
/// The longest line the client accepts from holden (a status of thousands of programs fits).
const MAX_RESPONSE_LINE: u64 = 64 * 1024 * 1024;

/// Run one client command.
pub fn main(command: Command) -> Result<u8, Failure> {
    match command {
        Command::Status { names, json, client } => status(&client, names, json),
        Command::Start(t) => act(Action::Start, t),
        Command::Stop(t) => act(Action::Stop, t),
        Command::Restart(t) => act(Action::Restart, t),
        Command::Signal { signal, names, client } => signal_cmd(&client, &signal, names),
        Command::Constrain {
            name,
            memory,
            cpu,
            pids,
            client,
        } => constrain(&client, name, memory, cpu, pids),
        Command::Monitor { interval, client } => monitor(&client, &interval),
        Command::Logs {
            name,
            follow,
            lines,
            stderr,
            client,
        } => logs(&client, &name, follow, lines, stderr),
        Command::Add {
            name,
            restart,
            memory,
            cpu,
            pids,
            stdout,
            no_wait,
            command,
            client,
        } => add(&client, name, &restart, (memory, cpu, pids), stdout, !no_wait, command),
        Command::Remove { name, client } => simple(
            &client,
            Request::Remove { name: name.clone() },
            &format!("{name}: removed"),
        ),
        Command::Reopen { client } => simple(&client, Request::Reopen, "log files reopened"),
        Command::Reload { client } => reload(&client),
        Command::Shutdown { client } => shutdown(&client),
        Command::Run { .. }
        | Command::Check { .. }
        | Command::Agent { .. }
        | Command::Spawn { .. }
        | Command::Ping { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Import { .. } => Err(Failure::usage("this command is not a control client command")),
    }
}

/// The control socket: `--socket`, else `$HOLDEN_CONTROL_SOCKET`, else the `[supervisor]
/// socket` of the config file (`-c`, `$HOLDEN_CONFIG`, `./supervisor.toml`), else the default.
pub fn socket_path(args: &ClientArgs) -> PathBuf {
    if let Some(p) = &args.socket {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("HOLDEN_CONTROL_SOCKET")
        && !p.is_empty()
    {
        return PathBuf::from(p);
    }
    let explicit = args.config.is_some() || std::env::var_os("HOLDEN_CONFIG").is_some_and(|v| !v.is_empty());
    let file = config::config_path(args.config.as_deref());
    if explicit || file.exists() {
        match config::load(&file) {
            Ok(cfg) => return cfg.supervisor.socket,
            // SPEC: the socket is all a client needs from the file; a file that does not
            // parse (being edited, say) should not stop `holden stop`.
            Err(e) if explicit => eprintln!(
                "holden: warning: cannot read the socket path from {} ({}); trying {}",
                file.display(),
                e.problems
                    .first()
                    .map_or_else(|| "invalid".to_string(), ToString::to_string),
                config::default_socket().display()
            ),
            Err(_) => {}
        }
    }
    config::default_socket()
}

/// One connection to holden's control socket.
pub struct Connection {
    path: PathBuf,
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Connection {
    pub fn open(path: &Path) -> Result<Connection, Failure> {
        let stream = UnixStream::connect(path).map_err(|e| connect_failure(path, &e))?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| connect_failure(path, &e))?);
        Ok(Connection {
            path: path.to_path_buf(),
            stream,
            reader,
        })
    }

    pub fn send(&mut self, request: &Request) -> Result<(), Failure> {
        match self.stream.write_all(request.to_line().as_bytes()) {
            Ok(()) => Ok(()),
            // holden may have refused us (peer credentials) and closed: its reason is still
            // waiting to be read, and beats "broken pipe".
            Err(e) => match self.next(Instant::now() + Duration::from_secs(1)) {
                Ok(Some(Incoming::Response(Response::Err(body)))) => Err(self.server_failure(body)),
                Ok(_) | Err(_) => Err(Failure::runtime(format!(
                    "cannot send to holden on {}: {}",
                    self.path.display(),
                    crate::error::os_text(&e)
                ))),
            },
        }
    }

    /// The next line from holden, before `deadline`; `None` when holden closed the connection.
    pub fn next(&mut self, deadline: Instant) -> Result<Option<Incoming>, Failure> {
        let mut line = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout());
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| {
                Failure::runtime(format!(
                    "cannot read from {}: {}",
                    self.path.display(),
                    crate::error::os_text(&e)
                ))
            })?;
            let limit = MAX_RESPONSE_LINE - line.len() as u64;
            match (&mut self.reader).take(limit).read_until(b'\n', &mut line) {
                Ok(0) if line.is_empty() => return Ok(None),
                Ok(_) if line.ends_with(b"\n") => break,
                Ok(0) => return Ok(None),
                Ok(_) if line.len() as u64 >= MAX_RESPONSE_LINE => {
                    return Err(Failure::runtime(format!(
                        "holden on {} sent a line longer than {} bytes; is it holden?",
                        self.path.display(),
                        MAX_RESPONSE_LINE
                    )));
                }
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(self.timeout());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // After a refusal the kernel reports ECONNRESET once the reason was read.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => {
                    return Err(Failure::runtime(format!(
                        "cannot read from holden on {}: {}",
                        self.path.display(),
                        crate::error::os_text(&e)
                    )));
                }
            }
        }
        let text = String::from_utf8_lossy(&line);
        Incoming::parse(text.trim_end()).map(Some).map_err(|e| {
            Failure::runtime(format!(
                "holden on {} answered something this client cannot read ({e}); are client and holden the same version?",
                self.path.display()
            ))
        })
    }

    /// Send `request` and wait for its answer, passing any events to `on_event`.
    pub fn call_with(
        &mut self,
        request: &Request,
        timeout: Duration,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Reply, Failure> {
        self.send(request)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline)? {
                Some(Incoming::Event(e)) => on_event(e),
                Some(Incoming::Response(Response::Ok(reply))) => return Ok(reply),
                Some(Incoming::Response(Response::Err(body))) => return Err(self.server_failure(body)),
                None => return Err(self.closed()),
            }
        }
    }

    pub fn call(&mut self, request: &Request) -> Result<Reply, Failure> {
        self.call_with(request, REQUEST_TIMEOUT, &mut |_| {})
    }

    fn timeout(&self) -> Failure {
        Failure::runtime(format!(
            "holden on {} did not answer in time; it may be stuck (see its log)",
            self.path.display()
        ))
    }

    fn closed(&self) -> Failure {
        Failure::runtime(format!(
            "holden on {} closed the connection without an answer (is it shutting down?)",
            self.path.display()
        ))
    }

    /// An error response, as the sentence and exit code for the user.
    fn server_failure(&self, body: ErrorBody) -> Failure {
        match body.code {
            ErrorCode::NotPermitted | ErrorCode::Forbidden => Failure::runtime(format!(
                "permission denied on {}: {}",
                self.path.display(),
                body.message
            )),
            ErrorCode::InvalidConfig => Failure::usage(format!(
                "the config file is invalid, nothing was changed:\n{}",
                body.message
            )),
            ErrorCode::InvalidArgument | ErrorCode::BadRequest | ErrorCode::UnknownCommand => {
                Failure::usage(body.message)
            }
            ErrorCode::UnsupportedVersion
            | ErrorCode::TooLarge
            | ErrorCode::Busy
            | ErrorCode::Timeout
            | ErrorCode::UnknownProgram
            | ErrorCode::AlreadyExists
            | ErrorCode::NotTransient
            | ErrorCode::NotRunning
            | ErrorCode::CgroupsUnavailable
            | ErrorCode::ShuttingDown
            | ErrorCode::Failed
            | ErrorCode::Other => Failure::runtime(body.message),
        }
    }
}

fn connect_failure(path: &Path, e: &io::Error) -> Failure {
    let p = path.display();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Failure::runtime(format!(
            "cannot connect to {p}: no holden is running there (start one with `holden run`)"
        )),
        io::ErrorKind::PermissionDenied => Failure::runtime(format!(
            "permission denied on {p}: the socket's file mode keeps you out; run as root or as holden's user"
        )),
        io::ErrorKind::InvalidInput => {
            Failure::usage(format!("cannot connect to {p}: the path is too long for a Unix socket"))
        }
        _ => Failure::runtime(format!("cannot connect to {p}: {}", crate::error::os_text(e))),
    }
}

fn connect(args: &ClientArgs) -> Result<Connection, Failure> {
    Connection::open(&socket_path(args))
}

/// Write to stdout; a closed stdout (`holden status | head -1`) ends quietly. In unit tests,
/// to a per-thread buffer instead (`tests::take_output`), which the tests check.
fn out(text: &str) -> Result<(), Failure> {
    #[cfg(test)]
    {
        tests::OUTPUT.with(|o| o.borrow_mut().push_str(text));
        Ok(())
    }
    #[cfg(not(test))]
    write_stdout(text)
}

#[cfg_attr(test, allow(dead_code))]
fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut o = io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure {
            code: 0,
            message: String::new(),
        }),
        Err(e) => Err(Failure::runtime(format!(
            "cannot write to stdout: {}",
            crate::error::os_text(&e)
        ))),
    }
}

fn now_unix() -> f64 {
    unix_time(SystemTime::now())
}

fn expect_status(reply: Reply) -> Result<Vec<ProgramStatus>, Failure> {
    match reply {
        Reply::Status { programs } => Ok(programs),
        Reply::Targets { .. } | Reply::Reload(_) | Reply::LogPaths { .. } | Reply::Done {} => Err(Failure::runtime(
            "holden answered status without programs; are client and holden the same version?",
        )),
    }
}

fn status(args: &ClientArgs, names: Vec<String>, json: bool) -> Result<u8, Failure> {
    let mut c = connect(args)?;
    let programs = expect_status(c.call(&Request::Status { names })?)?;
    if json {
        out(&status_json(&programs))?;
    } else {
        out(&table::status_table(&programs, now_unix()))?;
    }
    Ok(0)
}

/// `status --json`: `{"programs":[...]}` with SPEC's status fields (those this holden has),
/// `program` and `groups`.
fn status_json(programs: &[ProgramStatus]) -> String {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        programs: Vec<SpecStatus<'a>>,
    }
    let doc = Doc {
        programs: programs.iter().map(SpecStatus).collect(),
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("status serializes");
    text.push('\n');
    text
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
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
fn act(action: Action, targets: Targets) -> Result<u8, Failure> {
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
fn follow(
    c: &mut Connection,
    action: Action,
    names: &[String],
    known: &mut HashMap<String, Progress>,
) -> Result<u8, Failure> {
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
                return Err(Failure::runtime(format!(
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
                return Err(Failure::runtime(format!(
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
) -> Result<u8, Failure> {
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
        Err(Failure::runtime(failures.join("; ")))
    }
}

fn signal_cmd(args: &ClientArgs, signal: &str, names: Vec<String>) -> Result<u8, Failure> {
    let sig = config::Signal::parse(signal).ok_or_else(|| {
        Failure::usage(format!(
            "{signal:?} is not a signal; use a name like HUP or SIGHUP, or a number from 1 to 64"
        ))
    })?;
    let mut c = connect(args)?;
    let reply = c.call(&Request::Signal {
        signal: sig.name(),
        names: names.clone(),
    })?;
    let targets = match reply {
        Reply::Targets { targets } => targets,
        Reply::Status { .. } | Reply::Reload(_) | Reply::LogPaths { .. } | Reply::Done {} => names,
    };
    let text: String = targets
        .iter()
        .map(|n| format!("{n}: sent SIG{}\n", sig.name()))
        .collect();
    out(&text)?;
    Ok(0)
}

/// A size like `500MB`, `1.5GiB` or a byte count (KB = 1000, KiB = 1024).
fn parse_size(flag: &str, s: &str) -> Result<u64, Failure> {
    let n: bytesize::ByteSize = s.trim().parse().map_err(|_| {
        Failure::usage(format!(
            "{flag} {s:?} is not a size; use a number of bytes or units like 500MB, 1.5GiB"
        ))
    })?;
    if n.0 == 0 {
        return Err(Failure::usage(format!("{flag} must be above 0")));
    }
    // bytesize saturates what overflows at u64::MAX.
    if n.0 == u64::MAX {
        return Err(Failure::usage(format!(
            "{flag} {s:?} is too large (past 16 EiB); use max to lift the limit"
        )));
    }
    Ok(n.0)
}

fn parse_cpus(flag: &str, s: &str) -> Result<f64, Failure> {
    match s.trim().parse::<f64>() {
        Ok(c) if c.is_finite() && c > 0.0 => Ok(c),
        Ok(_) | Err(_) => Err(Failure::usage(format!(
            "{flag} {s:?} is not a number of CPUs above 0, like 0.5 or 2"
        ))),
    }
}

fn parse_count(flag: &str, s: &str) -> Result<u64, Failure> {
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) | Err(_) => Err(Failure::usage(format!("{flag} {s:?} is not a whole number above 0"))),
    }
}

fn limit<T>(s: &str, parse: impl Fn(&str) -> Result<T, Failure>) -> Result<Limit<T>, Failure> {
    if s.trim().eq_ignore_ascii_case("max") {
        Ok(Limit::Max)
    } else {
        parse(s).map(Limit::Value)
    }
}

fn constrain(
    args: &ClientArgs,
    name: String,
    memory: Option<String>,
    cpu: Option<String>,
    pids: Option<String>,
) -> Result<u8, Failure> {
    if memory.is_none() && cpu.is_none() && pids.is_none() {
        return Err(Failure::usage(format!(
            "constrain {name}: give at least one of --memory, --cpu, --pids"
        )));
    }
    let memory = memory.map(|s| limit(&s, |v| parse_size("--memory", v))).transpose()?;
    let cpu = cpu.map(|s| limit(&s, |v| parse_cpus("--cpu", v))).transpose()?;
    let pids = pids.map(|s| limit(&s, |v| parse_count("--pids", v))).transpose()?;
    let mut c = connect(args)?;
    c.call(&Request::Constrain {
        name: name.clone(),
        memory,
        cpu,
        pids,
    })?;
    let mut parts = Vec::new();
    if let Some(m) = memory {
        parts.push(match m {
            Limit::Value(b) => format!("memory {}", table::limit_size(b)),
            Limit::Max => "memory max".to_string(),
        });
    }
    if let Some(c) = cpu {
        parts.push(format!("cpu {c}"));
    }
    if let Some(p) = pids {
        parts.push(format!("pids {p}"));
    }
    out(&format!("{name}: {}\n", parts.join(", ")))?;
    Ok(0)
}

fn monitor(args: &ClientArgs, interval: &str) -> Result<u8, Failure> {
    let interval = humantime::parse_duration(interval.trim())
        .ok()
        .filter(|d| *d >= Duration::from_millis(10))
        .ok_or_else(|| {
            Failure::usage(format!(
                "--interval {interval:?} is not a duration of at least 10ms, like 1s or 500ms"
            ))
        })?;
    let path = socket_path(args);
    let tty = io::stdout().is_terminal();
    let mut conn: Option<Connection> = None;
    let mut previous: Option<(table::CpuSample, Instant)> = None;
    loop {
        let started = Instant::now();
        // One connection across snapshots; a new one if holden closed it (idle timeout).
        let programs = match conn.as_mut().map(|c| c.call(&Request::Status { names: vec![] })) {
            Some(Ok(reply)) => expect_status(reply)?,
            Some(Err(_)) | None => {
                let mut c = Connection::open(&path)?;
                let p = expect_status(c.call(&Request::Status { names: vec![] })?)?;
                conn = Some(c);
                p
            }
        };
        let mut taken = Instant::now();
        // The first frame too shows CPU as a rate: a second snapshot shortly after the first.
        let programs = if previous.is_none() {
            previous = Some((table::CpuSample::of(&programs), taken));
            std::thread::sleep(interval.min(FIRST_SAMPLE));
            let c = conn.as_mut().expect("connected above");
            let again = expect_status(c.call(&Request::Status { names: vec![] })?)?;
            taken = Instant::now();
            again
        } else {
            programs
        };
        let (sample, elapsed) = match &previous {
            Some((s, at)) => (Some(s), taken.duration_since(*at)),
            None => (None, Duration::ZERO),
        };
        let body = table::monitor_table(&programs, sample, elapsed, now_unix());
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
        let frame = if tty {
            // Home, then each line cleared to its end and the rest of the screen below: the
            // table is redrawn in place without the flicker of clearing the whole screen.
            let text = format!(
                "{stamp}  holden monitor on {}, every {} (Ctrl-C to quit)\n\n{body}",
                path.display(),
                humantime::format_duration(interval)
            );
            format!("\x1b[H{}\x1b[J", text.replace('\n', "\x1b[K\n"))
        } else {
            format!("{stamp}\n{body}\n")
        };
        out(&frame)?;
        previous = Some((table::CpuSample::of(&programs), taken));
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

fn logs(args: &ClientArgs, name: &str, follow: bool, lines: usize, stderr: bool) -> Result<u8, Failure> {
    let mut c = connect(args)?;
    let paths = match c.call(&Request::LogPaths { name: name.to_string() })? {
        Reply::LogPaths { logs } => logs,
        Reply::Status { .. } | Reply::Targets { .. } | Reply::Reload(_) | Reply::Done {} => LogPaths::default(),
    };
    let (stream, path) = if stderr {
        ("stderr", paths.stderr)
    } else {
        ("stdout", paths.stdout)
    };
    let Some(path) = path else {
        // A program added with `holden add` has no section in the file to point at.
        let transient = match c.call(&Request::Status {
            names: vec![name.to_string()],
        }) {
            Ok(Reply::Status { programs }) => programs.iter().any(|p| p.name == name && p.transient),
            Ok(_) | Err(_) => false,
        };
        let fix = if transient {
            format!("add it again with `holden add {name} --stdout PATH -- ...` (after `holden remove {name}`)")
        } else {
            format!("set {stream} = \"PATH\" in [programs.{name}]")
        };
        return Err(Failure::runtime(format!(
            "{name}'s {stream} is not written to a file (it goes to holden's own stderr or nowhere); {fix}"
        )));
    };
    drop(c);
    // /dev/stdout and the like name this client's own stdout here, not the program's: never
    // read them (`holden logs -f web > out.txt` would follow its own output).
    if crate::config::is_stream(&path) {
        return Err(Failure::runtime(format!(
            "{name}'s {stream} goes to {}, a stream and not a log file: there is no log to read here",
            path.display()
        )));
    }
    let mut o = io::stdout().lock();
    match print_log(&path, lines, follow, &mut o) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Failure::runtime(format!(
            "{} does not exist yet: {name} has written nothing to its {stream}",
            path.display()
        ))),
        Err(e) => Err(Failure::runtime(format!(
            "cannot read {}: {}",
            path.display(),
            crate::error::os_text(&e)
        ))),
    }
}

/// The log reader of `crate::logs`: the last lines, then (with `-f`) everything written after.
fn print_log(path: &Path, lines: usize, follow: bool, out: &mut dyn Write) -> io::Result<()> {
    if follow {
        crate::logs::follow(path, lines, out)
    } else {
        crate::logs::tail(path, lines, out)
    }
}

/// `holden add`: like `start`, it waits until the program is RUNNING or failed (exit 0 or 1),
/// unless `wait` is false.
fn add(
    args: &ClientArgs,
    name: String,
    restart: &str,
    (memory, cpu, pids): (Option<String>, Option<String>, Option<String>),
    stdout: Option<PathBuf>,
    wait: bool,
    command: Vec<String>,
) -> Result<u8, Failure> {
    if !config::valid_program_name(&name) {
        return Err(Failure::usage(format!(
            "{name:?} is not a program name: use 1 to 64 of A-Za-z0-9_.- (not . or ..)"
        )));
    }
    let restart = RestartPolicy::parse(restart).ok_or_else(|| {
        Failure::usage(format!(
            "--restart {restart:?} is not a policy; use never, on-failure or always"
        ))
    })?;
    let memory = memory.map(|s| parse_size("--memory", &s)).transpose()?;
    let cpu = cpu.map(|s| parse_cpus("--cpu", &s)).transpose()?;
    let pids = pids.map(|s| parse_count("--pids", &s)).transpose()?;
    let directory = std::env::current_dir()
        .map_err(|e| Failure::runtime(format!("cannot tell the current folder: {}", crate::error::os_text(&e))))?;
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

fn simple(args: &ClientArgs, request: Request, done: &str) -> Result<u8, Failure> {
    let mut c = connect(args)?;
    c.call(&request)?;
    out(&format!("{done}\n"))?;
    Ok(0)
}

fn reload(args: &ClientArgs) -> Result<u8, Failure> {
    let mut c = connect(args)?;
    let summary = match c.call(&Request::Reload)? {
        Reply::Reload(s) => s,
        Reply::Status { .. } | Reply::Targets { .. } | Reply::LogPaths { .. } | Reply::Done {} => {
            ReloadSummary::default()
        }
    };
    out(&reload_text(&summary))?;
    Ok(0)
}

fn reload_text(s: &ReloadSummary) -> String {
    if s.added.is_empty() && s.removed.is_empty() && s.changed.is_empty() {
        return "reloaded: nothing changed\n".to_string();
    }
    let mut text = String::new();
    for (what, names) in [("added", &s.added), ("removed", &s.removed), ("changed", &s.changed)] {
        if !names.is_empty() {
            text.push_str(&format!("{what}: {}\n", names.join(", ")));
        }
    }
    text
}

/// Ask for a graceful shutdown and wait until holden is gone (its end closes the connection).
fn shutdown(args: &ClientArgs) -> Result<u8, Failure> {
    let mut c = connect(args)?;
    // A watcher is exempt from the idle timeout, so the wait below ends only with holden.
    c.call(&Request::Watch)?;
    c.call(&Request::Shutdown)?;
    out("holden is shutting down\n")?;
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        match c.next(deadline) {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(_) => {
                return Err(Failure::runtime(format!(
                    "holden on {} was still shutting down after {}; see its log",
                    c.path.display(),
                    humantime::format_duration(WAIT_TIMEOUT)
                )));
            }
        }
    }
    out("holden stopped\n")?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::server::Limits;
    use crate::control::server::test_support::TestServer;
    use std::cell::RefCell;

    thread_local! {
        /// What `out` wrote on this thread: each test runs on a thread of its own.
        pub(super) static OUTPUT: RefCell<String> = const { RefCell::new(String::new()) };
    }

    /// What `out` wrote on this thread since the last call.
    pub(super) fn take_output() -> String {
        OUTPUT.with(|o| std::mem::take(&mut *o.borrow_mut()))
    }

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

    #[test]
    fn sizes_cpus_and_limits_parse_as_documented() {
        assert_eq!(parse_size("--memory", "500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("--memory", "1KiB").unwrap(), 1024);
        assert_eq!(parse_size("--memory", "4096").unwrap(), 4096);
        assert!(parse_size("--memory", "lots").is_err());
        assert!(parse_size("--memory", "0").is_err());
        assert_eq!(parse_cpus("--cpu", "0.5").unwrap(), 0.5);
        assert!(parse_cpus("--cpu", "-1").is_err());
        assert!(parse_cpus("--cpu", "NaN").is_err());
        assert_eq!(limit("max", |v| parse_count("--pids", v)).unwrap(), Limit::Max);
        assert_eq!(limit("64", |v| parse_count("--pids", v)).unwrap(), Limit::Value(64));
        let e = parse_size("--memory", "lots").unwrap_err();
        assert_eq!(e.code, 2);
        assert_eq!(
            e.message,
            "--memory \"lots\" is not a size; use a number of bytes or units like 500MB, 1.5GiB"
        );
    }

    #[test]
    fn socket_lookup_prefers_the_flag() {
        let args = ClientArgs {
            socket: Some("/x/y.sock".into()),
            config: Some("/nonexistent.toml".into()),
        };
        assert_eq!(socket_path(&args), PathBuf::from("/x/y.sock"));
    }

    #[test]
    fn connecting_where_nobody_listens_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holden.sock");
        let Err(e) = Connection::open(&path) else {
            panic!("connected to nothing")
        };
        assert_eq!(e.code, 1);
        assert_eq!(
            e.message,
            format!(
                "cannot connect to {}: no holden is running there (start one with `holden run`)",
                path.display()
            )
        );
    }

    fn status_of(name: &str, state: &str, pid: Option<i32>) -> ProgramStatus {
        ProgramStatus {
            pid,
            ..ProgramStatus::bare(name, state)
        }
    }

    fn moved(name: &str, from: &str, to: &str, reason: Option<&str>, pid: Option<i32>) -> Event {
        Event::Transition {
            name: name.into(),
            from: from.into(),
            to: to.into(),
            reason: reason.map(String::from),
            since: 0.0,
            pid,
        }
    }

    /// A fake supervisor with `web` (starts fine) and `bad` (goes to BACKOFF): the events of
    /// an action go out after its reply, as they may from a real loop.
    fn fake_supervisor() -> TestServer {
        TestServer::start(Limits::default(), |server, reactor, conn, req| match req {
            Request::Watch => {
                let programs = vec![status_of("web", "STOPPED", None), status_of("bad", "RUNNING", Some(9))];
                server.reply(reactor, conn, &Response::Ok(Reply::Status { programs }));
                server.watch(conn);
            }
            Request::Start { names, .. } | Request::Restart { names, .. } => {
                server.reply(reactor, conn, &Response::Ok(Reply::Targets { targets: names.clone() }));
                for n in &names {
                    if n == "web" {
                        server.broadcast(reactor, &moved(n, "STOPPED", "STARTING", Some("pid 5"), Some(5)));
                        server.broadcast(reactor, &moved(n, "STARTING", "RUNNING", None, Some(5)));
                    } else {
                        server.broadcast(reactor, &moved(n, "RUNNING", "STOPPING", None, Some(9)));
                        server.broadcast(reactor, &moved(n, "STOPPING", "STOPPED", None, None));
                        server.broadcast(reactor, &moved(n, "STOPPED", "STARTING", None, Some(10)));
                        let why = Some("exit status 1; restart 1/5 in 1s");
                        server.broadcast(reactor, &moved(n, "STARTING", "BACKOFF", why, None));
                    }
                }
            }
            Request::Status { .. } => server.reply(reactor, conn, &Response::Ok(Reply::Status { programs: vec![] })),
            other => server.reply(
                reactor,
                conn,
                &Response::error(ErrorCode::UnknownProgram, format!("no {}", other.command())),
            ),
        })
    }

    fn targets(server: &TestServer, names: &[&str]) -> Targets {
        Targets {
            names: names.iter().map(|n| n.to_string()).collect(),
            all: false,
            client: ClientArgs {
                socket: Some(server.path.clone()),
                config: None,
            },
        }
    }

    #[test]
    fn start_follows_events_over_a_real_socket_until_running() {
        let server = fake_supervisor();
        assert_eq!(act(Action::Start, targets(&server, &["web"])).unwrap(), 0);
        assert_eq!(take_output(), "web: RUNNING (pid 5)\n");
    }

    #[test]
    fn restart_into_backoff_fails_with_the_reason() {
        let server = fake_supervisor();
        let e = act(Action::Restart, targets(&server, &["bad"])).unwrap_err();
        assert_eq!(e.code, 1);
        assert_eq!(
            e.message,
            "bad did not restart: BACKOFF (exit status 1; restart 1/5 in 1s)"
        );
    }

    #[test]
    fn server_errors_become_the_users_sentence() {
        let server = fake_supervisor();
        let args = ClientArgs {
            socket: Some(server.path.clone()),
            config: None,
        };
        let e = simple(&args, Request::Remove { name: "x".into() }, "removed").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (1, "no remove"));
        assert_eq!(status(&args, vec![], true).unwrap(), 0);
        let json: serde_json::Value = serde_json::from_str(&take_output()).unwrap();
        assert_eq!(json, serde_json::json!({ "programs": [] }));
    }

    #[test]
    fn status_json_has_exactly_specs_fields() {
        let mut p = status_of("web", "RUNNING", Some(3));
        p.started = Some(5.0);
        p.pids_current = Some(2);
        let v: serde_json::Value = serde_json::from_str(&status_json(&[p])).unwrap();
        let keys: Vec<&str> = v["programs"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let spec = crate::control::protocol::STATUS_JSON_FIELDS;
        assert_eq!(keys.len(), spec.len(), "{keys:?}");
        assert!(spec.iter().all(|k| keys.contains(k)), "{keys:?}");
        // In SPEC's order on the page.
        let text = status_json(&[status_of("web", "RUNNING", Some(3))]);
        assert!(text.find("\"name\"") < text.find("\"transient\""), "{text}");
        assert!(text.find("\"transient\"") < text.find("\"status_text\""), "{text}");
        assert!(text.find("\"status_text\"") < text.find("\"group\""), "{text}");
    }

    #[test]
    fn reload_summary_lists_what_changed() {
        let s = ReloadSummary {
            added: vec!["a".into(), "b".into()],
            removed: vec![],
            changed: vec!["c".into()],
        };
        assert_eq!(reload_text(&s), "added: a, b\nchanged: c\n");
        assert_eq!(reload_text(&ReloadSummary::default()), "reloaded: nothing changed\n");
    }
}

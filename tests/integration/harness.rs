//! The harness: start the real `holden` binary on a config in a temp dir, drive it, wait for
//! conditions with deadlines, and leave nothing behind (every descendant killed, every test
//! cgroup removed), also when a test fails. On failure it prints the config and holden's log.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const HOLDEN: &str = env!("CARGO_BIN_EXE_holden");

/// A fresh temp dir, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("holden-test-")
        .tempdir()
        .expect("create temp dir")
}

/// A unique cgroup path for one test: `/holden-test-<pid>-<n>`.
pub fn unique_cgroup_path() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/holden-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Poll `f` until it returns `Some`, for at most `timeout`; panic with `what` and the last
/// observation otherwise. The poll interval is short: this waits on a condition, it does not
/// hope the machine was fast enough.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match f() {
            Ok(v) => return v,
            Err(seen) => last = seen,
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run `holden ARGS` to completion with a deadline.
pub fn holden(args: &[&str]) -> Output {
    holden_in(None, args, &[])
}

pub fn holden_in(dir: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(HOLDEN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.env_remove("HOLDEN_CONFIG").env_remove("HOLDEN_CONTROL_SOCKET");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn holden");
    wait_output(child, Duration::from_secs(30), &format!("holden {args:?}"))
}

/// Wait for a child with a deadline, collecting its output; kill it when the deadline passes.
pub fn wait_output(mut child: Child, timeout: Duration, what: &str) -> Output {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let status = wait_child(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {timeout:?}");
    });
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running `holden run` on a config in its own temp dir.
pub struct Supervisor {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    pub pid: u32,
    /// cgroup paths (as in the config) that this test owns and removes on drop.
    pub cgroup_paths: Vec<String>,
    /// Every pid seen below holden, killed on drop if still alive.
    seen: BTreeSet<u32>,
}

impl Supervisor {
    /// Write `programs` (TOML for `[programs.*]`, may use `{dir}` for the temp dir) below a
    /// `[supervisor]` table that puts socket and log in the temp dir and cgroups `off`, then
    /// start `holden run`.
    pub fn start(programs: &str) -> Supervisor {
        Self::start_with("cgroups = \"off\"\n", programs)
    }

    /// Like `start`, with extra `[supervisor]` keys (`supervisor_extra`).
    pub fn start_with(supervisor_extra: &str, programs: &str) -> Supervisor {
        let sup = Self::prepare(supervisor_extra, programs);
        sup.spawn()
    }

    /// Wait until holden listens on its control socket (it binds it before starting any
    /// program), or has exited.
    fn ready(mut self) -> Supervisor {
        let socket = self.socket.clone();
        let child = self.child.as_mut().expect("holden was started");
        wait_for(Duration::from_secs(10), "holden to bind its control socket", || {
            // Connectable, not just there: a killed holden leaves a stale socket file behind.
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(());
            }
            match child.try_wait() {
                Ok(Some(st)) => {
                    eprintln!("holden exited before binding its socket: {st}");
                    Ok(())
                }
                _ => Err(format!("no {}", socket.display())),
            }
        });
        self
    }

    /// Write the config without starting holden.
    pub fn prepare(supervisor_extra: &str, programs: &str) -> Supervisor {
        let dir = tempdir();
        let config = dir.path().join("supervisor.toml");
        let socket = dir.path().join("holden.sock");
        let log = dir.path().join("holden.log");
        let body = format!(
            "[supervisor]\nsocket = \"{}\"\nlogfile = \"{}\"\nlog_level = \"debug\"\n{}\n{}",
            socket.display(),
            log.display(),
            supervisor_extra,
            programs.replace("{dir}", &dir.path().display().to_string())
        );
        fs::write(&config, body).expect("write config");
        let cgroup_paths = supervisor_extra
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cgroup_path"))
            .filter_map(|r| r.split('"').nth(1))
            .map(str::to_string)
            .collect();
        Supervisor {
            dir,
            config,
            socket,
            log,
            child: None,
            pid: 0,
            cgroup_paths,
            seen: BTreeSet::new(),
        }
    }

    pub fn spawn(self) -> Supervisor {
        self.spawn_with_stdout(Stdio::null())
    }

    /// `spawn`, with holden's stdout on `stdout` (`Stdio::piped()`: take it from `child`).
    pub fn spawn_with_stdout(self, stdout: Stdio) -> Supervisor {
        self.spawn_as(stdout, &[])
    }

    /// `spawn`, with `env` added to holden's environment (test knobs).
    pub fn spawn_with_env(self, env: &[(&str, &str)]) -> Supervisor {
        self.spawn_as(Stdio::null(), env)
    }

    fn spawn_as(mut self, stdout: Stdio, env: &[(&str, &str)]) -> Supervisor {
        let mut cmd = Command::new(HOLDEN);
        cmd.arg("run")
            .arg("-c")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(fs::File::create(self.dir.path().join("holden.stderr")).unwrap())
            .env_remove("HOLDEN_CONFIG")
            .env_remove("HOLDEN_CONTROL_SOCKET")
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied());
        // Its own process group, so that a test's Ctrl-C does not reach it twice.
        cmd.process_group(0);
        let child = cmd.spawn().expect("spawn holden run");
        self.pid = child.id();
        self.child = Some(child);
        self.ready()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// holden's own log (the `logfile`) plus its stderr.
    pub fn log_text(&self) -> String {
        let mut s = fs::read_to_string(&self.log).unwrap_or_default();
        s.push_str(&fs::read_to_string(self.dir.path().join("holden.stderr")).unwrap_or_default());
        s
    }

    /// Wait until holden's log contains `needle`; returns the log.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        self.remember_descendants();
        let what = format!("holden's log to contain {needle:?}");
        wait_for(timeout, &what, || {
            let t = self.log_text();
            if t.contains(needle) {
                Ok(t)
            } else {
                Err(format!("\n{t}"))
            }
        })
    }

    /// Count occurrences of `needle` in holden's log.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    /// Run a client command against this holden (`--socket` set).
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut full: Vec<&str> = args.to_vec();
        let sock = self.socket.display().to_string();
        full.push("--socket");
        full.push(&sock);
        holden_in(Some(self.dir.path()), &full, &[])
    }

    /// A client command against this holden, left running (one that waits for a state):
    /// collect it with `wait_output`.
    pub fn ctl_spawn(&self, args: &[&str]) -> Child {
        Command::new(HOLDEN)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a holden client")
    }

    /// `status --json` parsed, the array of programs.
    pub fn status(&self) -> Vec<serde_json::Value> {
        let out = self.ctl(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
        v["programs"].as_array().expect("programs array").clone()
    }

    pub fn program_status(&self, name: &str) -> serde_json::Value {
        self.status()
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no program {name} in status"))
    }

    /// Send a signal to holden itself.
    pub fn signal(&mut self, sig: i32) {
        self.remember_descendants();
        let pid = rustix::process::Pid::from_raw(self.pid as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::from_named_raw(sig).unwrap());
    }

    /// Wait for holden to exit; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.remember_descendants();
        let child = self.child.as_mut().expect("holden was started");
        match wait_child(child, timeout) {
            Some(st) => {
                self.child = None;
                st
            }
            None => panic!("holden did not exit within {timeout:?}\n{}", self.log_text()),
        }
    }

    /// Every live process below holden (children, grandchildren, reparented orphans).
    pub fn descendants(&self) -> Vec<u32> {
        descendants(self.pid)
    }

    fn remember_descendants(&mut self) {
        if self.child.is_some() {
            self.seen.extend(descendants(self.pid));
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.remember_descendants();
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            if wait_child(&mut child, Duration::from_secs(10)).is_none() {
                self.seen.extend(descendants(child.id()));
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for pid in &self.seen {
            if let Some(p) = rustix::process::Pid::from_raw(*pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        for path in &self.cgroup_paths {
            remove_cgroup_tree(path);
        }
        if std::thread::panicking() {
            eprintln!("---- config {} ----", self.config.display());
            eprintln!("{}", fs::read_to_string(&self.config).unwrap_or_default());
            eprintln!("---- holden's log ----\n{}", self.log_text());
        }
    }
}

/// Parent pid of `pid`, from /proc/PID/stat.
pub fn ppid(pid: u32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// Process state letter (R, S, Z, ...) of `pid`.
pub fn proc_state(pid: u32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.chars().next()
}

pub fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X')
}

/// Every descendant of `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && let Some(pp) = ppid(pid)
            {
                parent_of.push((pid, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// `[supervisor]` keys for a test: cgroups on, below a path of its own.
pub fn cgroup_extra(path: &str) -> String {
    format!("cgroups = \"auto\"\ncgroup_path = \"{path}\"\n")
}

/// Every mounted cgroup hierarchy: `/sys/fs/cgroup` itself on v2, its sub-mounts otherwise.
pub fn hierarchies() -> Vec<PathBuf> {
    let root = PathBuf::from("/sys/fs/cgroup");
    let mut out: Vec<PathBuf> = fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if root.join("cgroup.procs").exists() {
        out.push(root);
    }
    out
}

/// Remove `<root>/<path>` with its children in every cgroup hierarchy, killing what is left in it.
pub fn remove_cgroup_tree(path: &str) {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() || rel.contains("..") {
        return;
    }
    for root in hierarchies() {
        let dir = root.join(rel);
        if dir.is_dir() {
            remove_cgroup_dir(&dir);
        }
    }
}

fn remove_cgroup_dir(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_dir(&e.path());
            }
        }
    }
    for _ in 0..200 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Skip (return true and say why) when not root.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    skip(test, "needs root (cgroups, setpriv)");
    true
}

/// Where skipped tests are counted: `holden-skips.txt` in the target dir (`$CARGO_TARGET_DIR`,
/// else `target/` of the repository). test.sh empties it before `cargo test` and reports it
/// after; with `HOLDEN_REQUIRE_ALL=1` (.ci/run) any line in it fails the run.
pub fn skips_file() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target.join("holden-skips.txt")
}

/// Report that `test` did not run, and why: `SKIP test: reason` on stderr (which `--quiet` may
/// hide) and one line `test: reason` appended to [`skips_file`] (which test.sh counts). The
/// caller returns right after: a skipped test must not pass silently.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let reason = reason.replace('\n', " ");
    eprintln!("SKIP {test}: {reason}");
    let path = skips_file();
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    // One write of one line with O_APPEND: lines of parallel tests do not interleave.
    let line = format!("{test}: {reason}\n");
    let written = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("cannot record the skip of {test} in {}: {e}", path.display());
    }
}

/// A static holden, for FROM-scratch images (no libc in them): `$HOLDEN_STATIC_BIN` when
/// test.sh has built one already (the VM suite uses the same binary), else built here into
/// target/static from the same sources as the holden under test.
pub fn static_holden() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOLDEN_STATIC_BIN").map(PathBuf::from)
        && bin.is_file()
    {
        return bin;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target/static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let child = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--bin",
            "holden",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo");
    let out = wait_output(child, Duration::from_secs(900), "cargo build (static holden)");
    assert!(
        out.status.success(),
        "static build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join("x86_64-unknown-linux-gnu/debug/holden")
}

/// `NSpid:` of /proc/PID/status: the pid in each namespace, outermost first.
pub fn nspid(pid: u32) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|r| r.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Run `podman ARGS` with a deadline.
pub fn podman(args: &[&str]) -> Output {
    let child = Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run podman");
    wait_output(child, Duration::from_secs(120), &format!("podman {args:?}"))
}

/// `podman ARGS`, which must succeed; its stdout.
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether podman can run here; the reason when it cannot. This only looks: installing and
/// configuring podman is `.ci/setup.sh`'s (README's test command runs it), never a test's.
pub fn podman_usable() -> Result<(), String> {
    if !is_root() {
        return Err("needs root (rootful podman)".into());
    }
    let out = Command::new("podman")
        .args(["info", "--format", "{{.Host.OCIRuntime.Name}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(|child| wait_output(child, Duration::from_secs(60), "podman info"));
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "podman info failed (run .ci/setup.sh): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("podman is not installed (run .ci/setup.sh): {e}")),
    }
}

/// Held by a podman test from its start to its end (declare it first, so that it is dropped
/// last, after the test's containers and images are removed): podman tests run one at a time,
/// also across test binaries and worktrees on this machine. Concurrent builds of images that
/// share a layer (the same static holden) and removals of such images make podman fail with
/// "layer not known". An flock on a file in the temp dir: released when the file is closed.
pub fn podman_lock() -> fs::File {
    let path = std::env::temp_dir().join("holden-podman-tests.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("flock {}: {e}", path.display()));
    file
}

/// A unique image name for one test: `localhost/<prefix>-<pid>-<n>`.
pub fn unique_image(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "localhost/{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Build image `name` with the recipe users run, `contrib/container/build.sh` (of the
/// Containerfile in `dir`, relative to the repository: `contrib/container`, `containers/agent`),
/// with the static holden of [`static_holden`].
pub fn build_image(dir: &str, name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let child = Command::new("bash")
        .arg(root.join("contrib/container/build.sh"))
        .arg("-d")
        .arg(root.join(dir))
        .arg(name)
        .env("HOLDEN_BIN", static_holden())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run contrib/container/build.sh");
    let out = wait_output(child, Duration::from_secs(300), "contrib/container/build.sh");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == name,
        "contrib/container/build.sh -d {dir} {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// This test process's own cgroup in every hierarchy holden puts programs in (memory, cpu,
/// cpuacct, pids, and the cgroup2 one): (the hierarchy's controllers, "" for cgroup2; the
/// directory). A holden started by the test inherits these, so a relative `cgroup_path` lands
/// below them.
pub fn own_cgroup_dirs() -> Vec<(String, PathBuf)> {
    let me = fs::read_to_string("/proc/self/cgroup").unwrap();
    let used = ["memory", "cpu", "cpuacct", "pids"];
    let mut dirs = Vec::new();
    for line in me.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let root = match ctrls {
            "" if Path::new("/sys/fs/cgroup/unified").is_dir() => PathBuf::from("/sys/fs/cgroup/unified"),
            "" => PathBuf::from("/sys/fs/cgroup"),
            c if c.split(',').any(|c| used.contains(&c)) && Path::new("/sys/fs/cgroup").join(c).is_dir() => {
                Path::new("/sys/fs/cgroup").join(c)
            }
            _ => continue,
        };
        dirs.push((ctrls.to_string(), root.join(path.trim_start_matches('/'))));
    }
    dirs
}

/// A command's output as text, for messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Wait up to `deadline` until program `name` is in `state`; returns its `status --json` entry.
pub fn wait_state_within(deadline: Duration, sup: &Supervisor, name: &str, state: &str) -> serde_json::Value {
    wait_for(deadline, &format!("{name} to be {state}"), || {
        // Until holden has bound its socket, status fails: that is a wait, not a failure.
        let out = sup.ctl(&["status", "--json"]);
        if !out.status.success() {
            return Err(text(&out.stderr));
        }
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let p = doc["programs"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .ok_or_else(|| format!("no {name} in {doc}"))?;
        if p["state"] == state { Ok(p) } else { Err(p.to_string()) }
    })
}

/// Where a v1 freezer hierarchy is mounted (hybrid and v1 hosts).
pub const V1_FREEZER: &str = "/sys/fs/cgroup/freezer";

/// A v1 freezer cgroup of a test's own that holds a process frozen: nothing, SIGKILL included,
/// ends it until it is thawed. holden never uses the v1 freezer where there is a cgroup2 tree,
/// so the process stays in its program's cgroups as well. Thawed and removed on drop.
pub struct Ice {
    dir: PathBuf,
}

impl Ice {
    /// Is there a v1 freezer to hold processes with?
    pub fn available() -> bool {
        Path::new(V1_FREEZER).join("cgroup.procs").exists()
    }

    /// Freeze `pid` in `<V1_FREEZER>/<name>` (a name of the test's own, say its cgroup path with
    /// "-ice"), once the freeze has taken hold.
    pub fn freeze(name: &str, pid: u32) -> Ice {
        let ice = Ice {
            dir: Path::new(V1_FREEZER).join(name.trim_start_matches('/')),
        };
        fs::create_dir_all(&ice.dir).expect("create a freezer cgroup");
        fs::write(ice.dir.join("cgroup.procs"), pid.to_string()).expect("move the process into the freezer cgroup");
        fs::write(ice.dir.join("freezer.state"), "FROZEN").expect("freeze it");
        wait_for(Duration::from_secs(30), "the process to be frozen", || {
            ice.frozen().then_some(()).ok_or_else(|| "not FROZEN yet".to_string())
        });
        ice
    }

    /// Let it go: a SIGKILL sent meanwhile is delivered now. (No panic: drops call it too.)
    pub fn thaw(&self) {
        let _ = fs::write(self.dir.join("freezer.state"), "THAWED");
    }

    pub fn frozen(&self) -> bool {
        fs::read_to_string(self.dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
    }
}

impl Drop for Ice {
    fn drop(&mut self) {
        self.thaw();
        remove_cgroup_dir(&self.dir);
    }
}

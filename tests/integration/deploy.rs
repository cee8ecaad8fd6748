//! Integration tests: where holden runs (docs/deploy.md), proven with the files of `contrib/`.
//!
//! - PID 1 of a container: the image of `contrib/container/Containerfile`, built FROM scratch
//!   with the static holden and run by rootful podman, offline. holden is PID 1, supervises its
//!   programs, reaps orphans, and on `podman stop` (SIGTERM to PID 1) stops every program
//!   gracefully and exits 0. Skipped with the reason when podman cannot run here.
//! - A systemd service with `Delegate=yes`: systemd is not PID 1 on the test machines, so the
//!   test makes the part that matters itself: a fresh cgroup standing for the service's
//!   delegated cgroup in every hierarchy holden uses, holden moved into it before it runs, and
//!   `cgroup_path = "programs"`. The unit file's settings are checked against its config.
//! - A Kubernetes pod: no cluster here, so `podman kube play` runs pod.yaml for real (holden as
//!   PID 1, the agent, an app depending on it, stopped with its grace period); the pod spec is
//!   also checked against the image (entrypoint, config path, grace period against stop_timeout).
//! - sd_notify (`Type=notify`): a datagram socket of the test's stands for systemd's.
//!
//! Every image is built with `contrib/container/build.sh`; podman tests hold `podman_lock`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

const T: Duration = Duration::from_secs(20);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The largest `stop_timeout` of a config file (the default 10s for a program without one).
fn largest_stop_timeout(config: &str) -> Duration {
    let doc: toml::Table = toml::from_str(config).expect("the config is TOML");
    let programs = doc.get("programs").and_then(|p| p.as_table()).expect("[programs]");
    programs
        .values()
        .map(|p| {
            let t = p.get("stop_timeout").and_then(|t| t.as_str()).unwrap_or("10s");
            humantime::parse_duration(t).expect("stop_timeout is a duration")
        })
        .max()
        .expect("at least one program")
}

/// `holden check -c FILE` succeeds; its output (the resolved config).
fn check_ok(config: &Path) -> String {
    let out = holden(&["check", "-c", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "holden check {}: {}",
        config.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

// ---- PID 1 of a container (podman) ----

/// A static busybox (Debian's busybox-static) to mount into the image as the programs' tools.
fn static_busybox() -> Option<PathBuf> {
    ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| fs::read(p).is_ok_and(|elf| is_static_elf64(&elf)))
}

/// What the podman tests need: podman, and a static busybox for the programs in the image;
/// with the podman lock held (the tests run one at a time). None: skipped, and recorded.
fn podman_with_busybox(test: &str) -> Option<(PathBuf, fs::File)> {
    if let Err(why) = podman_usable() {
        skip(test, &why);
        return None;
    }
    let Some(busybox) = static_busybox() else {
        skip(
            test,
            "no static busybox for the programs (.ci/setup.sh installs busybox-static)",
        );
        return None;
    };
    Some((busybox, podman_lock()))
}

/// An ELF64 executable without a program interpreter (no PT_INTERP): it needs no libc.
fn is_static_elf64(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| elf.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..phnum).all(|i| u32_at(phoff + i * phentsize).is_some_and(|t| t != PT_INTERP))
}

/// The image of contrib/container, with a unique name; removed (with its containers) on drop.
struct Image {
    name: String,
    containers: Vec<String>,
}

impl Image {
    /// Built by the users' recipe, contrib/container/build.sh. Hold [`podman_lock`] first.
    fn build() -> Image {
        let image = Image {
            name: unique_image("holden-deploy-test"),
            containers: Vec::new(),
        };
        build_image("contrib/container", &image.name);
        image
    }

    /// `podman run -d` of this image with `args` before the image name; the container's name.
    fn run(&mut self, args: &[&str]) -> String {
        let name = format!(
            "{}-{}",
            self.name.trim_start_matches("localhost/"),
            self.containers.len()
        );
        self.containers.push(name.clone());
        let mut full = vec!["run", "-d", "--name", &name, "--network", "none"];
        full.extend_from_slice(args);
        full.push(&self.name);
        podman_ok(&full);
        name
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        for c in &self.containers {
            if std::thread::panicking() {
                eprintln!("---- podman logs {c} ----\n{}", text(&podman(&["logs", c]).stderr));
            }
            let _ = podman(&["rm", "-f", "-t", "0", c]);
        }
        // Not -f: the image alone, never a layer that another image still uses.
        let _ = podman(&["rmi", &self.name]);
    }
}

fn inspect(container: &str, field: &str) -> String {
    podman_ok(&["inspect", "-f", &format!("{{{{.State.{field}}}}}"), container])
        .trim()
        .to_string()
}

/// `podman exec CONTAINER /holden status --json`: the programs.
fn container_status(container: &str) -> Result<Vec<serde_json::Value>, String> {
    let out = podman(&["exec", container, "/holden", "status", "--json"]);
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["programs"].as_array().cloned().unwrap_or_default())
}

/// Wait until every program named is RUNNING in the container; their pids (container view).
fn wait_all_running(container: &str, names: &[&str]) -> Vec<u64> {
    wait_for(T, &format!("{names:?} RUNNING in {container}"), || {
        let programs = container_status(container)?;
        names
            .iter()
            .map(|n| {
                let p = programs.iter().find(|p| p["name"] == *n);
                match p {
                    Some(p) if p["state"] == "RUNNING" => p["pid"].as_u64().ok_or_else(|| p.to_string()),
                    other => Err(format!("{n}: {other:?}")),
                }
            })
            .collect()
    })
}

/// `podman stop -t TIMEOUT`: (how long it took, the container's exit code).
fn stop(container: &str, timeout_s: u32) -> (Duration, String) {
    let t0 = Instant::now();
    podman_ok(&["stop", "-t", &timeout_s.to_string(), container]);
    (t0.elapsed(), inspect(container, "ExitCode"))
}

/// `podman logs`: holden logs to stderr in the container.
fn container_log(container: &str) -> String {
    let out = podman(&["logs", container]);
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// The JSON array after the first `after` in pod.yaml.
fn pod_json_array(pod: &str, after: &str) -> Vec<String> {
    let at = pod.find(after).unwrap_or_else(|| panic!("no {after:?} in pod.yaml"));
    let line = pod[at + after.len()..].lines().next().unwrap().trim();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{after} {line}: {e}"))
}

/// The liveness probe's command of pod.yaml.
fn pod_liveness(pod: &str) -> Vec<String> {
    let at = pod.find("livenessProbe:").expect("a livenessProbe in pod.yaml");
    pod_json_array(&pod[at..], "command: ")
}

fn pod_yaml() -> String {
    fs::read_to_string(repo().join("contrib/kubernetes/pod.yaml")).unwrap()
}

#[test]
fn podman_the_example_image_runs_its_config_answers_the_pods_liveness_probe_and_stops_with_0() {
    if let Err(why) = podman_usable() {
        skip(
            "podman_the_example_image_runs_its_config_answers_the_pods_liveness_probe_and_stops_with_0",
            &why,
        );
        return;
    }
    let _podman = podman_lock();
    let mut image = Image::build();
    let c = image.run(&[]);
    wait_all_running(&c, &["agent"]);
    // The pod's entrypoint is the image's, and its liveness probe works there.
    let pod = pod_yaml();
    let mut probe = vec!["exec".to_string(), c.clone()];
    probe.extend(pod_liveness(&pod));
    let probe: Vec<&str> = probe.iter().map(String::as_str).collect();
    let out = podman(&probe);
    assert!(out.status.success(), "liveness {probe:?}: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("agent"), "{}", text(&out.stdout));
    let (took, code) = stop(&c, 20);
    assert_eq!(code, "0", "exit code after podman stop\n{}", container_log(&c));
    assert!(took < Duration::from_secs(10), "podman stop took {took:?}");
    let log = container_log(&c);
    assert!(log.contains("agent: RUNNING -> STOPPING"), "{log}");
    assert!(log.contains("STOPPING -> STOPPED"), "{log}");
}

/// The config of the PID 1 test: two long-running programs (one traps SIGTERM and says so),
/// and one that leaves an orphan behind, all from a static busybox mounted at /bin/busybox.
const CONTAINER_CONFIG: &str = r#"
[supervisor]
socket = "/run/holden/holden.sock"
logfile = "stderr"
log_level = "debug"
cgroup_path = "/supervisor"
cgroups = "auto"

[programs.sleeper]
command = "/bin/busybox sleep 1000"
stop_timeout = "5s"

[programs.trapper]
command = ["/bin/busybox", "sh", "-c", "trap 'echo stopped gracefully; exit 0' TERM; while :; do /bin/busybox sleep 1 & wait $!; done"]
stdout = "/run/holden/trapper.out"
stop_timeout = "5s"

[programs.parent]
# `$$$$`: holden reads `$$` as a literal `$`, so the shell gets its `$$`.
command = ["/bin/busybox", "sh", "-c", "(/bin/busybox sh -c 'echo $$$$ > /run/holden/orphan.pid; exec /bin/busybox sleep 1000' &); exec /bin/busybox sleep 1000"]
stop_timeout = "5s"
"#;

/// A temp dir with `etc/` (mounted over /etc/holden, as a ConfigMap is) holding `config`, and
/// `run/` (mounted at /run/holden: the control socket and the programs' files).
fn container_dirs(config: &str) -> tempfile::TempDir {
    let dir = tempdir();
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    fs::create_dir_all(dir.path().join("run")).unwrap();
    fs::write(dir.path().join("etc/supervisor.toml"), config).unwrap();
    dir
}

fn mounts(dir: &Path, busybox: &Path) -> [String; 6] {
    [
        "-v".into(),
        format!("{}:/etc/holden:ro", dir.join("etc").display()),
        "-v".into(),
        format!("{}:/run/holden", dir.join("run").display()),
        "-v".into(),
        format!("{}:/bin/busybox:ro", busybox.display()),
    ]
}

#[test]
fn podman_holden_is_pid_1_supervises_reaps_orphans_and_stops_every_program_on_sigterm() {
    let test = "podman_holden_is_pid_1_supervises_reaps_orphans_and_stops_every_program_on_sigterm";
    let Some((busybox, _podman)) = podman_with_busybox(test) else {
        return;
    };
    let dir = container_dirs(CONTAINER_CONFIG);
    let run = dir.path().join("run");
    let mut image = Image::build();
    let args = mounts(dir.path(), &busybox);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = image.run(&args);
    let pids = wait_all_running(&c, &["sleeper", "trapper", "parent"]);

    // holden is PID 1: seen from the host and from inside.
    let host_pid: u32 = inspect(&c, "Pid").parse().unwrap();
    assert_eq!(nspid(host_pid).last(), Some(&1), "NSpid of {host_pid}");
    let cmdline = fs::read_to_string(format!("/proc/{host_pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "/holden\0run\0-c\0/etc/holden/supervisor.toml\0");
    let inside = podman_ok(&["exec", &c, "/bin/busybox", "cat", "/proc/1/cmdline"]);
    assert_eq!(inside, cmdline);
    // Its programs are its children, in its PID namespace.
    for pid in &pids {
        let st = podman_ok(&["exec", &c, "/bin/busybox", "cat", &format!("/proc/{pid}/status")]);
        assert!(st.lines().any(|l| l == "PPid:\t1"), "program {pid}:\n{st}");
    }
    // The control socket is reachable from the host through the mounted /run/holden too.
    let sock = run.join("holden.sock");
    let out = holden(&["status", "--json", "--socket", sock.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).matches("\"RUNNING\"").count(),
        3,
        "{}",
        text(&out.stdout)
    );

    // The orphan: its parent (a subshell) exited at once, so it was reparented to PID 1.
    let orphan: u32 = wait_for(T, "the orphan's pid file", || {
        fs::read_to_string(run.join("orphan.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| "not yet".to_string())
    });
    let host_orphan = wait_for(T, "the orphan below holden, reparented to PID 1", || {
        descendants(host_pid)
            .into_iter()
            .find(|p| nspid(*p).last() == Some(&orphan) && ppid(*p) == Some(host_pid))
            .ok_or_else(|| format!("{:?}", descendants(host_pid)))
    });
    assert!(
        !pids.contains(&u64::from(orphan)),
        "the orphan is no program's main process"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(host_orphan as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // Reaped: not even a zombie is left.
    wait_for(T, "the killed orphan to be reaped by PID 1", || {
        match proc_state(host_orphan) {
            None => Ok(()),
            Some(s) => Err(format!("{host_orphan} is in state {s}")),
        }
    });
    let zombies: Vec<u32> = descendants(host_pid)
        .into_iter()
        .filter(|p| proc_state(*p) == Some('Z'))
        .collect();
    assert!(zombies.is_empty(), "zombies below PID 1: {zombies:?}");
    let log = container_log(&c);
    assert!(
        log.contains(&format!("reaped orphan {orphan} (killed by signal KILL)")),
        "{log}"
    );
    assert!(log.contains("running as PID 1"), "{log}");

    // podman stop: SIGTERM to PID 1; every program stopped by its stop_signal; exit 0.
    let (took, code) = stop(&c, 20);
    let log = container_log(&c);
    assert_eq!(code, "0", "the container's exit code\n{log}");
    assert!(took < Duration::from_secs(10), "podman stop took {took:?}\n{log}");
    for name in ["sleeper", "trapper", "parent"] {
        assert!(
            log.contains(&format!("{name}: RUNNING -> STOPPING (sent SIGTERM)")),
            "{log}"
        );
    }
    assert!(log.contains("trapper: STOPPING -> STOPPED (exit status 0)"), "{log}");
    assert!(log.contains("every program stopped; exiting"), "{log}");
    let said = fs::read_to_string(run.join("trapper.out")).unwrap_or_default();
    assert!(said.contains("stopped gracefully"), "trapper's output: {said:?}");
    eprintln!("podman stop of holden as PID 1 with 3 programs: {took:?}");
}

/// A config whose one program has a memory limit, which needs a cgroup of its own.
const LIMITED_CONFIG: &str = r#"
[supervisor]
socket = "/run/holden/holden.sock"
logfile = "stderr"
cgroup_path = "/supervisor"
cgroups = "auto"

[programs.limited]
command = "/bin/busybox sleep 1000"
memory_limit = "50MB"
"#;

#[test]
fn podman_with_a_private_cgroup_namespace_limits_apply_when_writable_and_stop_holden_when_read_only() {
    let test = "podman_with_a_private_cgroup_namespace_limits_apply_when_writable_and_stop_holden_when_read_only";
    let Some((busybox, _podman)) = podman_with_busybox(test) else {
        return;
    };
    let dir = container_dirs(LIMITED_CONFIG);
    let mut image = Image::build();
    let args = mounts(dir.path(), &busybox);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Unprivileged: the engine mounts the container's cgroups read-only. A limit cannot be
    // enforced, so holden refuses to start (exit 1) and says why, instead of running unlimited.
    args.push("--cgroupns=private");
    let c = image.run(&args);
    wait_for(T, "holden to exit", || match inspect(&c, "Status").as_str() {
        "exited" | "stopped" => Ok(()),
        other => Err(other.to_string()),
    });
    let log = container_log(&c);
    assert_eq!(inspect(&c, "ExitCode"), "1", "{log}");
    assert!(
        log.contains("holden: cannot create /sys/fs/cgroup/memory/supervisor: read-only file system;"),
        "{log}"
    );
    assert!(log.contains("--privileged"), "the error says what to do: {log}");

    // Privileged (a writable cgroup mount) in its own cgroup namespace: the container's cgroup
    // is the root holden sees, so the absolute /supervisor lands below the container's cgroup.
    args.push("--privileged");
    let c = image.run(&args);
    let pid = wait_all_running(&c, &["limited"])[0];
    let host_pid: u32 = inspect(&c, "Pid").parse().unwrap();
    let own = fs::read_to_string(format!("/proc/{host_pid}/cgroup")).unwrap();
    let container_cg = own
        .lines()
        .find_map(|l| {
            l.strip_prefix(|c: char| c.is_ascii_digit())
                .and_then(|r| r.strip_prefix(":memory:"))
        })
        .unwrap_or_else(|| panic!("no memory line in {own}"))
        .to_string();
    assert_ne!(container_cg, "/", "the container has a cgroup of its own");
    let inside = podman_ok(&["exec", &c, "/bin/busybox", "cat", "/proc/1/cgroup"]);
    assert!(
        inside.lines().any(|l| l.ends_with(":memory:/")),
        "holden sees itself at the root:\n{inside}"
    );
    let prog = podman_ok(&["exec", &c, "/bin/busybox", "cat", &format!("/proc/{pid}/cgroup")]);
    assert!(
        prog.lines().any(|l| l.ends_with(":memory:/supervisor/limited")),
        "{prog}"
    );
    let limit_dir = PathBuf::from(format!("/sys/fs/cgroup/memory{container_cg}/supervisor/limited"));
    let limit = fs::read_to_string(limit_dir.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (50_000_000 / 4096 * 4096).to_string());
    let (took, code) = stop(&c, 20);
    assert_eq!(code, "0", "{}", container_log(&c));
    assert!(took < Duration::from_secs(10), "podman stop took {took:?}");
    assert!(!limit_dir.exists(), "holden removes its program cgroups at exit");
}

#[test]
fn a_client_outside_holdens_pid_namespace_is_served_by_uid() {
    if skip_unless_root("a_client_outside_holdens_pid_namespace_is_served_by_uid") {
        return;
    }
    // holden as PID 1 of a new PID namespace (what a container is to it), the client outside:
    // the kernel reports the client's pid as 0 there, its uid still as root.
    let mut sup = Supervisor::prepare("cgroups = \"off\"\n", "[programs.p]\ncommand = \"sleep 600\"\n");
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", HOLDEN, "run", "-c"])
        .arg(&sup.config)
        .current_dir(sup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(sup.dir.path().join("holden.stderr")).unwrap())
        .env_remove("HOLDEN_CONFIG")
        .env_remove("HOLDEN_CONTROL_SOCKET");
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().expect("unshare holden run");
    sup.pid = child.id();
    sup.child = Some(child);
    let socket = sup.socket.clone();
    wait_for(T, "holden to bind its control socket", || {
        std::os::unix::net::UnixStream::connect(&socket)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    // status shows p's pid as holden sees it, in its own namespace.
    let pid = wait_running(&sup, "p");
    let outside = descendants(sup.pid)
        .into_iter()
        .find(|d| nspid(*d).len() == 2 && nspid(*d)[1] == pid);
    assert!(
        outside.is_some(),
        "no process below unshare with pid {pid} in holden's namespace"
    );
    sup.wait_log("running as PID 1", T);
    assert!(!sup.log_text().contains("refusing"), "{}", sup.log_text());
    // unshare ignores SIGTERM while it waits: stop holden itself, PID 1 of the namespace.
    let holden_pid = descendants(sup.pid)
        .into_iter()
        .find(|d| ppid(*d) == Some(sup.pid))
        .expect("holden below unshare");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(holden_pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert_eq!(sup.wait_exit(T).code(), Some(0), "{}", sup.log_text());
}

// ---- a systemd service with Delegate=yes ----

/// A cgroup standing for a systemd service's delegated cgroup (`.../holden.service`): a fresh
/// `holden-test-<pid>-<n>-svc` below this test's own cgroup in every hierarchy holden uses.
/// Removed on drop with everything below it, killing what is left inside.
struct ServiceCgroup {
    /// (controllers of the hierarchy, "" for cgroup2; the directory).
    dirs: Vec<(String, PathBuf)>,
}

impl ServiceCgroup {
    fn create() -> ServiceCgroup {
        let name = format!("{}-svc", unique_cgroup_path().trim_start_matches('/'));
        let dirs = own_cgroup_dirs()
            .into_iter()
            .map(|(ctrls, dir)| (ctrls, dir.join(&name)))
            .collect();
        let svc = ServiceCgroup { dirs };
        for (_, d) in &svc.dirs {
            fs::create_dir(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        }
        svc
    }

    /// The path of `dir` as /proc/PID/cgroup shows it (below the hierarchy's root).
    fn proc_path(dir: &Path) -> String {
        let rest = dir.strip_prefix("/sys/fs/cgroup").unwrap();
        let rest = rest.to_str().unwrap();
        // Strip the hierarchy's own directory (memory/, unified/), except on a pure v2 host.
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            format!("/{rest}")
        } else {
            format!("/{}", rest.split_once('/').map(|(_, r)| r).unwrap_or(""))
        }
    }

    /// (controllers, the service cgroup's path as /proc/PID/cgroup shows it), per hierarchy.
    fn proc_paths(&self) -> Vec<(String, String)> {
        self.dirs.iter().map(|(c, d)| (c.clone(), Self::proc_path(d))).collect()
    }

    /// `/proc/PID/cgroup` lines of the hierarchies of this service cgroup: (controllers, path).
    fn paths_of(&self, pid: u32) -> Vec<(String, String)> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
                self.dirs
                    .iter()
                    .any(|(c, _)| c == ctrls)
                    .then(|| (ctrls.to_string(), path.to_string()))
            })
            .collect()
    }

    /// Every pid in the service cgroup or below it, in any hierarchy.
    fn pids(&self) -> Vec<u32> {
        fn walk(dir: &Path, out: &mut Vec<u32>) {
            let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            out.extend(procs.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        for (_, d) in &self.dirs {
            walk(d, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl Drop for ServiceCgroup {
    fn drop(&mut self) {
        for (_, d) in &self.dirs {
            // remove_cgroup_tree takes a path below each hierarchy's root.
            let rel = Self::proc_path(d);
            if d.is_dir() {
                remove_cgroup_tree(&rel);
            }
        }
    }
}

/// `holden run` started the way systemd starts a service: in the service's cgroup (every
/// hierarchy) before its first instruction. `sh` moves itself there, then execs holden, which
/// keeps its pid.
fn start_in_service(svc: &ServiceCgroup, programs: &str) -> Supervisor {
    let mut sup = Supervisor::prepare("cgroups = \"required\"\ncgroup_path = \"programs\"\n", programs);
    // The relative "programs" is the service's to remove (dropping svc), not the harness's.
    sup.cgroup_paths.clear();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("for d in \"$@\"; do echo $$ > \"$d/cgroup.procs\" || exit 99; done; exec \"$0\" run -c \"$HOLDEN_TEST_CONFIG\"")
        .arg(HOLDEN)
        .args(svc.dirs.iter().map(|(_, d)| d))
        .env("HOLDEN_TEST_CONFIG", &sup.config)
        .current_dir(sup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(sup.dir.path().join("holden.stderr")).unwrap())
        .env_remove("HOLDEN_CONFIG")
        .env_remove("HOLDEN_CONTROL_SOCKET")
        .env("RUST_LOG", "debug");
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("spawn sh -c ... exec holden run");
    sup.pid = child.id();
    let socket = sup.socket.clone();
    wait_for(T, "holden to bind its control socket", || {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(());
        }
        match child.try_wait() {
            Ok(Some(st)) => panic!("holden exited before binding its socket: {st}"),
            _ => Err(format!("no {}", socket.display())),
        }
    });
    sup.child = Some(child);
    sup
}

/// Wait until `pid` is in `<svc>/programs/<name>` in every hierarchy (the child writes itself
/// into one hierarchy after the other before exec).
fn wait_in_programs(svc: &ServiceCgroup, pid: u32, name: &str) {
    let want: Vec<(String, String)> = svc
        .proc_paths()
        .into_iter()
        .map(|(c, p)| (c, format!("{p}/programs/{name}")))
        .collect();
    wait_for(
        T,
        &format!("{name} in <svc>/programs/{name} in every hierarchy"),
        || {
            let mut seen = svc.paths_of(pid);
            seen.sort();
            let mut want = want.clone();
            want.sort();
            if seen == want {
                Ok(())
            } else {
                Err(format!("{seen:?}, want {want:?}"))
            }
        },
    );
}

fn wait_running(sup: &Supervisor, name: &str) -> u32 {
    wait_for(T, &format!("{name} RUNNING"), || {
        let st = sup.program_status(name);
        match (st["state"].as_str(), st["pid"].as_u64()) {
            (Some("RUNNING"), Some(pid)) => Ok(pid as u32),
            _ => Err(st.to_string()),
        }
    })
}

#[test]
fn under_a_delegated_service_cgroup_programs_land_in_programs_below_it_and_holden_stays_inside() {
    let test = "under_a_delegated_service_cgroup_programs_land_in_programs_below_it_and_holden_stays_inside";
    if skip_unless_root(test) {
        return;
    }
    let svc = ServiceCgroup::create();
    let mut sup = start_in_service(
        &svc,
        r#"
[programs.web]
command = "sleep 600"
memory_limit = "64MB"
stop_timeout = "2s"

[programs.worker]
command = ["sh", "-c", "trap 'echo stopped gracefully; exit 0' TERM; while :; do sleep 1 & wait $!; done"]
stdout = "{dir}/worker.out"
pids_limit = 32
depends_on = ["web"]
"#,
    );
    let svc_paths = svc.proc_paths();
    // holden itself stays inside the service's cgroup: in it (v1, hybrid) or in its leaf
    // <svc>/holden (v2, where the service's cgroup must become an inner node).
    for (ctrls, path) in svc.paths_of(sup.pid) {
        let (_, want) = svc_paths.iter().find(|(c, _)| *c == ctrls).unwrap();
        assert!(
            path == *want || path == format!("{want}/holden"),
            "holden's {ctrls:?} cgroup is {path}, not inside {want}"
        );
    }
    for name in ["web", "worker"] {
        let pid = wait_running(&sup, name);
        wait_in_programs(&svc, pid, name);
        let st = sup.program_status(name);
        assert!(
            st["cgroup"]
                .as_str()
                .is_some_and(|c| c.ends_with(&format!("-svc/programs/{name}"))),
            "{st}"
        );
    }
    // The limits are written in the delegated subtree.
    let mem = svc.dirs.iter().find(|(c, _)| c.split(',').any(|c| c == "memory"));
    let (limit_file, want) = match mem {
        Some((_, d)) => (d.join("programs/web/memory.limit_in_bytes"), 64_000_000 / 4096 * 4096),
        None => (svc.dirs[0].1.join("programs/web/memory.max"), 64_000_000 / 4096 * 4096),
    };
    assert_eq!(fs::read_to_string(&limit_file).unwrap().trim(), want.to_string());

    // ExecReload=/bin/kill -HUP $MAINPID: a program added to the file starts, in the subtree.
    let mut config = fs::read_to_string(&sup.config).unwrap();
    config.push_str("\n[programs.batch]\ncommand = \"sleep 600\"\n");
    fs::write(&sup.config, config).unwrap();
    let kill = Command::new("kill")
        .args(["-HUP", &sup.pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let batch = wait_running(&sup, "batch");
    wait_in_programs(&svc, batch, "batch");
    sup.wait_log("reloaded", T);
    // A broken file on SIGHUP is refused whole; nothing stops.
    let good = fs::read_to_string(&sup.config).unwrap();
    fs::write(&sup.config, format!("{good}\n[programs.broken]\ncommand = 7\n")).unwrap();
    sup.signal(1);
    sup.wait_log("SIGHUP: reload refused", T);
    for name in ["web", "worker", "batch"] {
        assert_eq!(sup.program_status(name)["state"], "RUNNING", "{name}");
    }
    assert!(sup.status().iter().all(|p| p["name"] != "broken"));

    // KillMode=mixed: SIGTERM to holden alone. It stops every program and exits 0, leaving
    // nothing in the service's cgroup for systemd's final SIGKILL, and removes its programs/.
    sup.signal(15);
    let st = sup.wait_exit(T);
    assert_eq!(st.code(), Some(0), "{}", sup.log_text());
    assert_eq!(svc.pids(), Vec::<u32>::new(), "processes left in the service cgroup");
    assert!(
        fs::read_to_string(sup.path("worker.out"))
            .unwrap()
            .contains("stopped gracefully"),
        "worker was stopped by its stop_signal"
    );
    for (_, d) in &svc.dirs {
        assert!(d.is_dir(), "{} is systemd's: holden leaves it", d.display());
        assert!(!d.join("programs").exists(), "{}/programs is left", d.display());
    }
}

/// `Key=value` lines of a unit file's section.
fn unit_settings(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

#[test]
fn the_systemd_unit_delegates_stops_holden_alone_in_time_and_reloads_by_sighup() {
    let unit = fs::read_to_string(repo().join("contrib/systemd/holden.service")).unwrap();
    let service = unit_settings(&unit, "Service");
    let get = |k: &str| -> &str {
        service
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k}= in [Service]"))
    };
    assert_eq!(get("Type"), "notify");
    assert_eq!(get("NotifyAccess"), "main");
    let nofile: u64 = get("LimitNOFILE").parse().expect("LimitNOFILE is a number");
    assert!(nofile >= 65536, "LimitNOFILE={nofile}");
    assert_eq!(get("Delegate"), "yes");
    assert_eq!(get("KillMode"), "mixed");
    assert_eq!(get("KillSignal"), "SIGTERM");
    assert_eq!(get("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(get("RestartPreventExitStatus").split_whitespace().any(|c| c == "2"));
    assert!(!service.iter().any(|(k, _)| k == "DelegateSubgroup"));
    let exec = get("ExecStart");
    let config_path = exec
        .strip_prefix("/usr/local/bin/holden run -c ")
        .unwrap_or_else(|| panic!("ExecStart={exec}"));
    assert_eq!(config_path, "/etc/holden/supervisor.toml");

    // The config it ships: valid, relative cgroup_path, stop timeouts within TimeoutStopSec.
    let config_file = repo().join("contrib/systemd/supervisor.toml");
    let resolved = check_ok(&config_file);
    assert!(resolved.contains("cgroup_path = \"programs\""), "{resolved}");
    let config = fs::read_to_string(&config_file).unwrap();
    let stop = humantime::parse_duration(get("TimeoutStopSec")).unwrap();
    let largest = largest_stop_timeout(&config);
    assert!(
        stop > largest + Duration::from_secs(5),
        "TimeoutStopSec {stop:?} leaves no margin over stop_timeout {largest:?}"
    );
}

// ---- a Kubernetes pod ----

/// The ConfigMap's `supervisor.toml: |` block of pod.yaml.
fn pod_config(pod: &str) -> String {
    let mut lines = pod.lines().skip_while(|l| l.trim() != "supervisor.toml: |").skip(1);
    let first = lines.next().expect("a config below supervisor.toml: |");
    let indent = first.len() - first.trim_start().len();
    let mut out = format!("{}\n", &first[indent..]);
    for l in lines {
        if l.trim().is_empty() {
            out.push('\n');
        } else if l.len() - l.trim_start().len() >= indent {
            out.push_str(&l[indent..]);
            out.push('\n');
        } else {
            break;
        }
    }
    out
}

/// `key: value` of pod.yaml (the first occurrence).
fn pod_value<'a>(pod: &'a str, key: &str) -> &'a str {
    pod.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in pod.yaml"))
}

#[test]
fn the_pod_spec_runs_the_images_entrypoint_on_its_configmap_with_time_to_stop() {
    let pod = pod_yaml();
    let dir = tempdir();
    let config = pod_config(&pod);
    let file = dir.path().join("supervisor.toml");
    fs::write(&file, &config).unwrap();
    let resolved = check_ok(&file);
    assert!(resolved.contains("socket = \"/run/holden/holden.sock\""), "{resolved}");
    // No per-program limits: an unprivileged container's cgroup mount is read-only, and a
    // program with limits would stop holden there (proven with podman below).
    for key in ["memory_limit", "cpu_limit", "pids_limit"] {
        assert!(!config.contains(key), "{key} in the pod's config");
    }
    let grace: u64 = pod_value(&pod, "terminationGracePeriodSeconds").parse().unwrap();
    let largest = largest_stop_timeout(&config);
    assert!(
        Duration::from_secs(grace) > largest + Duration::from_secs(5),
        "terminationGracePeriodSeconds {grace} vs stop_timeout {largest:?}"
    );
    assert_eq!(pod_value(&pod, "shareProcessNamespace"), "false");
    // The container's command is the image's ENTRYPOINT + CMD.
    let containerfile = fs::read_to_string(repo().join("contrib/container/Containerfile")).unwrap();
    let entry: Vec<String> = serde_json::from_str(containerfile_value(&containerfile, "ENTRYPOINT")).unwrap();
    let cmd: Vec<String> = serde_json::from_str(containerfile_value(&containerfile, "CMD")).unwrap();
    assert_eq!(pod_json_array(&pod, "command: "), entry);
    assert_eq!(pod_json_array(&pod, "args: "), cmd);
    assert_eq!(pod_value(&pod, "mountPath"), "/etc/holden");
    assert_eq!(cmd.last().map(String::as_str), Some("/etc/holden/supervisor.toml"));
    // The liveness probe reads the same config (it finds the socket there).
    let probe = pod_liveness(&pod);
    assert_eq!(probe, ["/holden", "status", "-c", "/etc/holden/supervisor.toml"]);
}

fn containerfile_value<'a>(file: &'a str, key: &str) -> &'a str {
    file.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in the Containerfile"))
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let test = "the_systemd_unit_passes_systemd_analyze_verify";
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        skip(test, "no systemd-analyze (.ci/setup.sh installs systemd)");
        return;
    }
    // A temp copy whose ExecStart is the holden under test: verify checks that it exists.
    let unit = fs::read_to_string(repo().join("contrib/systemd/holden.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/holden "), "{unit}");
    let dir = tempdir();
    let copy = dir.path().join("holden.service");
    fs::write(&copy, unit.replace("/usr/local/bin/holden", HOLDEN)).unwrap();
    let child = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, T, "systemd-analyze verify");
    // Unknown keys and bad values are warnings on stderr with exit 0: none may appear.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `$NOTIFY_SOCKET` for a test: a unix datagram socket in a temp dir, as systemd binds it.
struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        NotifySocket { socket, path }
    }

    /// The next datagram, within `T`.
    fn recv(&self) -> String {
        self.socket.set_read_timeout(Some(T)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no sd_notify message within {T:?}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[test]
fn sd_notify_ready_after_every_autostart_program_is_spawned_and_stopping_at_sigterm() {
    let mut sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        r#"
[programs.web]
command = ["sh", "-c", "env > {dir}/web.env; exec sleep 600"]
min_uptime = "300ms"

[programs.app]
command = "sleep 600"
depends_on = ["web"]

[programs.manual]
command = "sleep 600"
autostart = false
"#,
    );
    let notify = NotifySocket::bind(sup.dir.path());
    let mut cmd = Command::new(HOLDEN);
    cmd.arg("run")
        .arg("-c")
        .arg(&sup.config)
        .current_dir(sup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(sup.dir.path().join("holden.stderr")).unwrap())
        .env_remove("HOLDEN_CONFIG")
        .env_remove("HOLDEN_CONTROL_SOCKET")
        .env("NOTIFY_SOCKET", &notify.path);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().expect("spawn holden run");
    sup.pid = child.id();
    sup.child = Some(child);

    // READY=1 comes once app, which waits for web to be RUNNING (300ms), was spawned too.
    let ready = notify.recv();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(ready.lines().any(|l| l.starts_with("STATUS=3 programs: ")), "{ready:?}");
    let status = sup.status();
    for name in ["web", "app"] {
        let p = status.iter().find(|p| p["name"] == name).unwrap();
        assert!(
            (p["state"] == "RUNNING" || p["state"] == "STARTING")
                && p["pid"].as_u64().is_some_and(|pid| alive(pid as u32)),
            "{name} at READY=1: {p}"
        );
    }
    let manual = status.iter().find(|p| p["name"] == "manual").unwrap();
    assert_eq!(manual["state"], "STOPPED", "{manual}");
    // Only holden speaks for the unit: its programs do not inherit NOTIFY_SOCKET.
    let env = wait_for(T, "web's environment dump", || {
        fs::read_to_string(sup.path("web.env"))
            .ok()
            .filter(|e| e.ends_with('\n'))
            .ok_or_else(|| "not yet".to_string())
    });
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(!env.contains("NOTIFY_SOCKET"), "{env}");

    // SIGTERM: STOPPING=1 when the shutdown begins, then exit 0.
    sup.signal(15);
    let stopping = notify.recv();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert!(stopping.contains("STATUS=SIGTERM: stopping"), "{stopping:?}");
    assert_eq!(sup.wait_exit(T).code(), Some(0), "{}", sup.log_text());
}

// ---- the Kubernetes pod, run for real: podman kube play ----

/// The test's stand-in for a user's app (`/app/server --port 8080` in pod.yaml): busybox httpd
/// serving /app on the port, exiting 0 on SIGTERM.
const APP_SERVER: &str = r#"#!/bin/busybox sh
port=$2
/bin/busybox httpd -f -p "$port" -h /app &
pid=$!
trap '/bin/busybox kill $pid 2>/dev/null; wait $pid; echo "server: stopped"; exit 0' TERM
echo "server: listening on $port"
wait $pid
"#;

/// A pod of `podman kube play`, and the images it runs; removed on drop (`kube down`).
struct KubePod {
    yaml: PathBuf,
    images: Vec<String>,
}

impl Drop for KubePod {
    fn drop(&mut self) {
        let _ = podman(&["kube", "down", self.yaml.to_str().unwrap()]);
        for image in self.images.iter().rev() {
            let _ = podman(&["rmi", image]);
        }
    }
}

#[test]
fn podman_kube_play_runs_the_pod_spec_holden_pid_1_with_agent_and_app_and_stops_every_program_with_0() {
    let test = "podman_kube_play_runs_the_pod_spec_holden_pid_1_with_agent_and_app_and_stops_every_program_with_0";
    let Some((busybox, _podman)) = podman_with_busybox(test) else {
        return;
    };
    let dir = tempdir();
    // The image as a user builds it (contrib/container/build.sh), and an app image derived from
    // it, as docs/deploy.md says: FROM holden + COPY the app.
    let holden_image = unique_image("holden-kube-test");
    let app_image = format!("{holden_image}-app");
    let pod_name = holden_image.trim_start_matches("localhost/").to_string();
    let mut pod = KubePod {
        yaml: dir.path().join("pod.yaml"),
        images: Vec::new(),
    };
    build_image("contrib/container", &holden_image);
    pod.images.push(holden_image.clone());
    let ctx = dir.path().join("app");
    fs::create_dir(&ctx).unwrap();
    fs::copy(&busybox, ctx.join("busybox")).unwrap();
    fs::write(ctx.join("server"), APP_SERVER).unwrap();
    fs::set_permissions(ctx.join("server"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    fs::write(
        ctx.join("Containerfile"),
        format!("FROM {holden_image}\nCOPY busybox /bin/busybox\nCOPY server /app/server\n"),
    )
    .unwrap();
    podman_ok(&["build", "-q", "-t", &app_image, ctx.to_str().unwrap()]);
    pod.images.push(app_image.clone());

    // pod.yaml as shipped, but for the image and unique names (pod, ConfigMap).
    let shipped = pod_yaml();
    assert!(shipped.contains("image: localhost/holden:latest"), "{shipped}");
    assert!(shipped.contains("\n  name: holden\n"), "{shipped}");
    let yaml = shipped
        .replace("image: localhost/holden:latest", &format!("image: {app_image}"))
        .replace("\n  name: holden\n", &format!("\n  name: {pod_name}\n"))
        .replace("name: holden-config", &format!("name: {pod_name}-config"));
    fs::write(&pod.yaml, &yaml).unwrap();
    // Offline here: no network for the pod. Healthchecks need a running systemd (podman says
    // so on stderr and goes on): the liveness command is run by hand below.
    podman_ok(&["kube", "play", "--network", "none", pod.yaml.to_str().unwrap()]);
    let c = format!("{pod_name}-holden");

    // holden is PID 1, the agent runs, and the app, which depends on it, after it.
    wait_all_running(&c, &["agent", "app"]);
    let host_pid: u32 = inspect(&c, "Pid").parse().unwrap();
    assert_eq!(nspid(host_pid).last(), Some(&1), "NSpid of {host_pid}");
    let log = container_log(&c);
    let agent_running = log
        .find("agent: STARTING -> RUNNING")
        .expect("agent RUNNING in the log");
    let app_started = log.find("app: STOPPED -> STARTING").expect("app started in the log");
    assert!(agent_running < app_started, "app starts once agent is RUNNING:\n{log}");
    let page = podman_ok(&[
        "exec",
        &c,
        "/bin/busybox",
        "wget",
        "-qO-",
        "http://127.0.0.1:8080/server",
    ]);
    assert!(page.contains("busybox httpd"), "the app answers: {page}");
    let mut probe = vec!["exec".to_string(), c.clone()];
    probe.extend(pod_liveness(&yaml));
    let probe: Vec<&str> = probe.iter().map(String::as_str).collect();
    let out = podman(&probe);
    assert!(out.status.success(), "liveness {probe:?}: {}", text(&out.stderr));

    // The kubelet's deletion: SIGTERM to PID 1, SIGKILL after terminationGracePeriodSeconds.
    // podman 4.3's `kube down` stops with a timeout of 0 (SIGKILL at once), so the pod is
    // stopped first with the pod's grace period, then torn down.
    let grace = pod_value(&yaml, "terminationGracePeriodSeconds");
    let t0 = Instant::now();
    podman_ok(&["pod", "stop", "-t", grace, &pod_name]);
    let took = t0.elapsed();
    let log = container_log(&c);
    assert_eq!(inspect(&c, "ExitCode"), "0", "holden's exit code\n{log}");
    assert!(took < Duration::from_secs(10), "podman pod stop took {took:?}\n{log}");
    for name in ["app", "agent"] {
        assert!(
            log.contains(&format!("{name}: RUNNING -> STOPPING (sent SIGTERM)")),
            "{log}"
        );
        assert!(
            log.contains(&format!("{name}: STOPPING -> STOPPED (exit status 0)")),
            "{name} stopped with exit 0:\n{log}"
        );
    }
    let app_stopped = log.find("app: STOPPING -> STOPPED").unwrap();
    let agent_stopping = log.find("agent: RUNNING -> STOPPING").unwrap();
    assert!(app_stopped < agent_stopping, "app (the dependent) stops first:\n{log}");
    assert!(log.contains("server: stopped"), "{log}");
    assert!(log.contains("every program stopped; exiting"), "{log}");
    podman_ok(&["kube", "down", pod.yaml.to_str().unwrap()]);
    let left = podman_ok(&["pod", "ps", "-q", "--filter", &format!("name=^{pod_name}$")]);
    assert!(left.trim().is_empty(), "the pod is gone: {left}");
    eprintln!("podman kube play: pod stop with agent and app: {took:?}");
}

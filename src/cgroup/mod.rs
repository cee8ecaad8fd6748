//! cgroups: every program in its own cgroup `<cgroup_path>/<name>`, with its limits, its
//! usage, its OOM-kill counter, and a way to end every process in it.
//!
//! This module owns the cgroup file system: detecting the layout (`detect.rs`), creating the
//! parent and program cgroups, writing limits (`v1.rs`, `v2.rs`), and killing a cgroup's
//! processes (`cgroup.kill`, else a `KillJob` that the caller steps without waiting, `kill.rs`).
//! It does not fork: the supervisor asks `ProgramCgroup::procs_files` for the
//! `cgroup.procs` fds, and the forked child writes "0" into each before exec, so that the program
//! is inside its cgroups before its first instruction (a write from the parent after spawn would
//! leave a window in which a fast program forks or allocates outside its limits).
//!
//! Kernel facts that shaped it:
//! - v2 forbids processes in a non-root cgroup that enables controllers for its children (EBUSY),
//!   so when holden's own cgroup must delegate (a relative `cgroup_path`, or PID 1 at the root of
//!   a cgroup namespace) holden first moves itself into the leaf `<own cgroup>/holden`.
//! - On hybrid hosts the controllers live in v1, but the controller-less cgroup2 tree still has
//!   `cgroup.kill` (5.14+) and `cgroup.events`, so every program also gets a cgroup there: it is
//!   the race-free way to kill a forking program and the EPOLLPRI source of "it is empty now".
//! - A kernfs file signals a change with EPOLLPRI and stays signalled until it is read again
//!   (`events_populated` re-reads it).
//! - An exiting task leaves `cgroup.procs` before its parent reaps it, so emptiness does not wait
//!   for the reap.
//! - A cgroup file opened once re-reads fresh at offset 0 (they are seq_files: a read at 0 runs
//!   the show function again), so each program keeps its two usage files open (`UsageFiles`:
//!   memory.current or memory.usage_in_bytes, and cpu.stat or cpuacct.usage), 2 fds per
//!   program, and status costs two preads per program instead of two path walks + open + read +
//!   close (200 programs: 4.2 ms -> 0.5 ms per status on the test host, docs/benchmarks.md).
//!
//! Every path is taken below a root prefix, so the unit tests below run on fake trees in a temp
//! dir; the kernel tests at the end run as root on the host's real hierarchies.

pub mod detect;
mod error;
mod kill;
mod lock;
mod program;
mod usage;
pub mod v1;
pub mod v2;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::config::CgroupMode;
pub use detect::Layout;
pub use error::CgroupError;
use error::{io_err, read_file, write_file};
pub use kill::{KillJob, Step};
pub use program::ProgramCgroup;
#[cfg(test)]
pub use usage::Limits;
pub use usage::Usage;
use usage::UsageFiles;

/// The CFS period holden uses: 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts (1 ms).
const CPU_QUOTA_MIN_US: u64 = 1_000;
/// The leaf holden moves itself into when its own cgroup must become an inner node.
pub const SELF_LEAF: &str = "holden";

/// Set (to anything) in holden's environment, programs' cgroups are killed by the fallback
/// (`KillJob`: freeze, SIGKILL every pid, thaw) even where the kernel has `cgroup.kill`. A knob
/// for tests only, so that the fallback of old kernels and pure v1 hosts runs through the real
/// binary on a test host that has `cgroup.kill`; not documented for users.
pub const TEST_NO_CGROUP_KILL: &str = "HOLDEN_TEST_NO_CGROUP_KILL";
/// How long a leftover cgroup may take to empty after SIGKILL (`program`'s caller, strangers).
pub const LEFTOVER_WAIT: Duration = Duration::from_secs(5);
/// How long the processes of a stranger cgroup (not a program of the file) get between
/// SIGTERM and SIGKILL at start: short, as holden supervises nothing until they are gone.
const STRANGER_GRACE: Duration = Duration::from_millis(500);
/// How often `stop_strangers` looks whether they are gone (and sends SIGKILL again).
const STRANGER_RECHECK: Duration = Duration::from_millis(10);

/// `cpu_limit` in CPUs as a quota per 100 ms period.
pub fn quota_us(cpus: f64) -> u64 {
    ((cpus * CPU_PERIOD_US as f64).round() as u64).max(CPU_QUOTA_MIN_US)
}

/// The pids listed in `dir/cgroup.procs` and in every cgroup below it (missing = none).
fn procs_below(dir: &Path, out: &mut BTreeSet<i32>) {
    if let Ok(text) = fs::read_to_string(dir.join(v1::CGROUP_PROCS)) {
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                procs_below(&e.path(), out);
            }
        }
    }
}

/// Create `base/components...` one level at a time; returns the directories it created.
fn create_below(base: &Path, components: &[String]) -> Result<Vec<PathBuf>, CgroupError> {
    let mut created = Vec::new();
    let mut dir = base.to_path_buf();
    for c in components {
        dir.push(c);
        match fs::create_dir(&dir) {
            Ok(()) => created.push(dir.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", &dir)(e)),
        }
    }
    Ok(created)
}

/// Check `cgroup_path` and split it: (absolute, components).
pub fn parse_cgroup_path(path: &str) -> Result<(bool, Vec<String>), CgroupError> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("it is empty"));
    }
    if path.contains('\0') || path.contains('\n') {
        return Err(invalid("it contains a NUL or newline"));
    }
    let mut components = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(invalid("it contains \".\" or \"..\""));
        }
        components.push(c.to_string());
    }
    if components.is_empty() {
        return Err(invalid("it names the root itself, not a cgroup below it"));
    }
    Ok((path.starts_with('/'), components))
}

/// One set of directories, one per hierarchy holden uses: the parent, or a program's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Dirs {
    /// The cgroup2 directory (controllers on v2; kill/events on hybrid).
    unified: Option<PathBuf>,
    /// v1 directories with the controllers of their hierarchy.
    v1: Vec<(PathBuf, Vec<String>)>,
}

impl Dirs {
    fn join(&self, name: &str) -> Dirs {
        Dirs {
            unified: self.unified.as_ref().map(|d| d.join(name)),
            v1: self.v1.iter().map(|(d, c)| (d.join(name), c.clone())).collect(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &Path> {
        self.v1.iter().map(|(d, _)| d.as_path()).chain(self.unified.as_deref())
    }

    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(_, c)| c.iter().any(|c| c == controller))
            .map(|(d, _)| d.as_path())
    }
}

/// holden's cgroups: the layout and the parent `cgroup_path` in every hierarchy it uses.
#[derive(Debug)]
pub struct Cgroups {
    layout: Layout,
    parent: Dirs,
    /// Directories `setup` created above the parent (deepest last), removed by `cleanup`.
    created: Vec<PathBuf>,
    /// The v2 controllers enabled for programs (on v2); the v1 ones mounted (else).
    controllers: Vec<String>,
    /// The `flock` on the parent (the first hierarchy's): one holden per cgroup_path.
    _lock: OwnedFd,
    /// Use `cgroup.kill` where the kernel has it; false only by `TEST_NO_CGROUP_KILL`.
    cgroup_kill: bool,
}

impl Cgroups {
    /// Detect the layout from `/proc/self/mountinfo` and `/proc/self/cgroup`, create the parent
    /// cgroup(s) and enable the controllers. `Off`: `Ok(None)` without looking. `Auto` and
    /// cgroups unusable: `Ok(None)` with a warning saying why. `Required` and unusable: `Err`.
    /// An invalid `cgroup_path` is an `Err` in every mode but `Off`. Call it once per holden
    /// process: after a move into the leaf, "holden's own cgroup" is that leaf.
    pub fn setup(mode: CgroupMode, cgroup_path: &str) -> Result<Option<Cgroups>, CgroupError> {
        if mode == CgroupMode::Off {
            return Ok(None);
        }
        let mountinfo = Path::new("/proc/self/mountinfo");
        let mountinfo = fs::read_to_string(mountinfo).map_err(io_err("read", mountinfo));
        let own = Path::new("/proc/self/cgroup");
        let own = fs::read_to_string(own).map_err(io_err("read", own));
        let mut cgroups = match (mountinfo, own) {
            (Ok(m), Ok(o)) => Self::setup_at(mode, cgroup_path, Path::new("/"), &m, &o),
            (Err(e), _) | (_, Err(e)) => Self::by_mode(mode, Err(e)),
        }?;
        if let Some(c) = &mut cgroups
            && std::env::var_os(TEST_NO_CGROUP_KILL).is_some()
        {
            log::warn!("{TEST_NO_CGROUP_KILL} is set: cgroup.kill is not used (a knob for tests)");
            c.cgroup_kill = false;
        }
        Ok(cgroups)
    }

    /// `setup` with its inputs given: every mount point is taken below `root`, and the texts
    /// stand for `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn setup_at(
        mode: CgroupMode,
        cgroup_path: &str,
        root: &Path,
        mountinfo: &str,
        self_cgroup: &str,
    ) -> Result<Option<Cgroups>, CgroupError> {
        if mode == CgroupMode::Off {
            return Ok(None);
        }
        let (absolute, components) = parse_cgroup_path(cgroup_path)?;
        let result = detect::detect(mountinfo, self_cgroup, root)
            .map_err(|why| CgroupError::Unavailable { why })
            .and_then(|d| Self::create(d, absolute, &components));
        Self::by_mode(mode, result)
    }

    fn by_mode(mode: CgroupMode, result: Result<Cgroups, CgroupError>) -> Result<Option<Cgroups>, CgroupError> {
        match (mode, result) {
            (_, Ok(c)) => Ok(Some(c)),
            (
                _,
                Err(
                    e @ (CgroupError::InvalidPath { .. } | CgroupError::InvalidName { .. } | CgroupError::Taken { .. }),
                ),
            ) => Err(e),
            (CgroupMode::Auto, Err(e)) => {
                log::warn!("running without cgroups (no limits, no cgroup kill): {e}");
                Ok(None)
            }
            (CgroupMode::Required | CgroupMode::Off, Err(e)) => Err(e),
        }
    }

    /// Create the parent in every hierarchy; on failure remove what was created on the way.
    fn create(d: detect::Detected, absolute: bool, components: &[String]) -> Result<Cgroups, CgroupError> {
        let mut created = Vec::new();
        let result = Self::create_in(d, absolute, components, &mut created);
        if result.is_err() {
            for dir in created.iter().rev() {
                remove_dir_logged(dir);
            }
        }
        result
    }

    fn create_in(
        d: detect::Detected,
        absolute: bool,
        components: &[String],
        created: &mut Vec<PathBuf>,
    ) -> Result<Cgroups, CgroupError> {
        let base = |h: &detect::Hierarchy| -> Result<PathBuf, CgroupError> {
            match (absolute, &h.own) {
                (true, _) => Ok(h.mountpoint.clone()),
                (false, Some(own)) => Ok(own.clone()),
                (false, None) => Err(CgroupError::Unavailable {
                    why: detect::Unusable::OutsideHierarchy {
                        mountpoint: h.mountpoint.clone(),
                    },
                }),
            }
        };
        let rel: PathBuf = components.iter().collect();
        let mut controllers = Vec::new();
        let unified = match &d.unified {
            Some(h) => {
                let start = base(h)?;
                let parent = start.join(&rel);
                if d.layout == Layout::V2 {
                    controllers = Self::prepare_v2(h, &start, &parent, components, created)?;
                } else {
                    created.extend(create_below(&start, components)?);
                }
                Some(parent)
            }
            None => None,
        };
        let mut v1 = Vec::new();
        for h in &d.v1 {
            let start = base(h)?;
            created.extend(create_below(&start, components)?);
            controllers.extend(h.controllers.iter().cloned());
            v1.push((start.join(&rel), h.controllers.clone()));
        }
        // The parent itself is removed by `cleanup` on its own terms; keep the ancestors only.
        let parent = Dirs { unified, v1 };
        let lock = lock::take(parent.all().next().expect("at least one hierarchy"))?;
        let ancestors = created
            .iter()
            .filter(|c| !parent.all().any(|p| p == *c))
            .cloned()
            .collect();
        Ok(Cgroups {
            layout: d.layout,
            parent,
            created: ancestors,
            controllers,
            _lock: lock,
            cgroup_kill: true,
        })
    }

    /// v2: create the parent, move holden into a leaf when its cgroup would become an inner
    /// node, and enable the controllers from `start` down to the parent. Returns the controllers
    /// the programs get.
    fn prepare_v2(
        h: &detect::Hierarchy,
        start: &Path,
        parent: &Path,
        components: &[String],
        created: &mut Vec<PathBuf>,
    ) -> Result<Vec<String>, CgroupError> {
        let available = read_file(&start.join(v2::CGROUP_CONTROLLERS))?;
        let wanted: Vec<&str> = detect::V2_CONTROLLERS
            .iter()
            .copied()
            .filter(|c| available.split_whitespace().any(|a| a == *c))
            .collect();
        for missing in detect::V2_CONTROLLERS.iter().filter(|c| !wanted.contains(c)) {
            log::warn!(
                "the {missing} controller is not available in {}; its limits cannot be enforced",
                start.display()
            );
        }
        // The real root cgroup (no cgroup.type) may hold processes and delegate; any other
        // cgroup of holden's on the way to the parent must not, so holden leaves it for a leaf.
        let inner_own = h
            .own
            .as_ref()
            .filter(|own| parent.starts_with(own) && own.join(v2::CGROUP_TYPE).exists());
        if let Some(own) = inner_own
            && parent.starts_with(own.join(SELF_LEAF))
        {
            return Err(CgroupError::InvalidPath {
                path: components.join("/"),
                reason: "it lies inside the leaf cgroup that holden moves itself into",
            });
        }
        created.extend(create_below(start, components)?);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(own) = inner_own {
            let leaf = own.join(SELF_LEAF);
            create_below(own, &[SELF_LEAF.to_string()])?;
            write_file(&leaf.join(v1::CGROUP_PROCS), "0")?;
            log::info!(
                "moved holden into {} so that {} can delegate controllers",
                leaf.display(),
                own.display()
            );
        }
        let mut dir = start.to_path_buf();
        let mut chain = vec![dir.clone()];
        for c in components {
            dir.push(c);
            chain.push(dir.clone());
        }
        for dir in chain {
            let file = dir.join(v2::CGROUP_SUBTREE_CONTROL);
            let enabled = read_file(&file)?;
            let add: Vec<String> = wanted
                .iter()
                .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if !add.is_empty() {
                write_file(&file, &add.join(" "))?;
            }
        }
        Ok(wanted.iter().map(|c| c.to_string()).collect())
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The controllers programs get: v2 the enabled ones, v1 the mounted ones holden uses.
    pub fn controllers(&self) -> &[String] {
        &self.controllers
    }

    /// The parent cgroup to show in logs: the v2 dir on v2, else the memory dir.
    pub fn parent_path(&self) -> PathBuf {
        path_of(self.layout, &self.parent)
    }

    /// The cgroup(s) of program `name`, created in every hierarchy, and how many processes a
    /// leftover from an earlier holden still holds in them. The caller ends those (`kill_all`,
    /// and the `KillJob` it may give) and waits for them to be gone without blocking
    /// (`populated`, the v2 `events_file`, `LEFTOVER_WAIT`); it does not spawn into the cgroup
    /// before.
    pub fn program(&self, name: &str) -> Result<(ProgramCgroup, usize), CgroupError> {
        if !crate::config::valid_unit_name(name) {
            return Err(CgroupError::InvalidName { name: name.to_string() });
        }
        let dirs = self.parent.join(name);
        for dir in dirs.all() {
            create_below(dir.parent().unwrap_or(dir), &[name.to_string()])?;
        }
        let pg = ProgramCgroup {
            layout: self.layout,
            usage: Rc::new(UsageFiles::open(self.layout, &dirs, UsageFiles::fd_budget())),
            dirs,
            cgroup_kill: self.cgroup_kill,
        };
        let leftovers = pg.pids().len();
        Ok((pg, leftovers))
    }

    /// Stop and remove every cgroup below the parent (in any hierarchy) whose name `keep`
    /// refuses: a program removed from the file, or a transient one, of an earlier holden that
    /// was killed. Their processes get SIGTERM (their stop_signal is not known any more), then,
    /// after `STRANGER_GRACE`, SIGKILL (cgroup.kill, else freeze and kill), and holden waits up
    /// to `LEFTOVER_WAIT` for them to be gone before it removes the cgroups (sub-cgroups
    /// first). Returns, per cgroup, how many processes it held, or why it could not be removed.
    /// A cgroup holding holden itself is left alone.
    ///
    /// It waits by sleeping: it runs once, in `Supervisor::new`, before the loop and before any
    /// program starts, when there is nothing else to serve (a control client waits in the
    /// socket's backlog). Reload never calls it: a program that reload removes is stopped by its
    /// own machine, in the loop.
    pub fn stop_strangers(&self, keep: impl Fn(&str) -> bool) -> Vec<(String, Result<usize, CgroupError>)> {
        let mut names = BTreeSet::new();
        for parent in self.parent.all() {
            if let Ok(rd) = fs::read_dir(parent) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir())
                        && let Some(name) = e.file_name().to_str()
                        && !keep(name)
                    {
                        names.insert(name.to_string());
                    }
                }
            }
        }
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let strangers: Vec<(String, ProgramCgroup, usize)> = names
            .into_iter()
            .map(|name| {
                let pg = ProgramCgroup {
                    layout: self.layout,
                    dirs: self.parent.join(&name),
                    usage: Rc::new(UsageFiles::open(self.layout, &Dirs::default(), 0)),
                    cgroup_kill: self.cgroup_kill,
                };
                let count = pg.pids().len();
                (name, pg, count)
            })
            .filter(|(name, pg, _)| {
                let ours = pg.pids().contains(&me);
                if ours {
                    log::warn!("cgroup {name} below the parent holds holden itself; left alone");
                }
                !ours
            })
            .collect();
        if strangers.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        for (_, pg, _) in &strangers {
            // A holden killed while a KillJob froze a cgroup left it frozen: a frozen process
            // waits for SIGTERM until it is thawed.
            pg.thaw();
            pg.signal_all(rustix::process::Signal::TERM.as_raw());
        }
        let all_empty = |deadline: Instant| loop {
            let empty = strangers.iter().all(|(_, pg, _)| !pg.populated());
            if empty || Instant::now() >= deadline {
                return empty;
            }
            std::thread::sleep(STRANGER_RECHECK);
        };
        if !all_empty(now + STRANGER_GRACE) {
            // SIGKILL (again, every STRANGER_RECHECK, or once each fallback job has ended) until
            // every one is empty or LEFTOVER_WAIT has passed.
            let deadline = Instant::now() + LEFTOVER_WAIT;
            let mut jobs: Vec<Option<KillJob>> = strangers.iter().map(|_| None).collect();
            loop {
                let now = Instant::now();
                let mut next = now + STRANGER_RECHECK;
                let mut left = false;
                for ((name, pg, _), job) in strangers.iter().zip(&mut jobs) {
                    if job.is_none() && pg.populated() {
                        match pg.kill_all(now) {
                            Ok(j) => *job = j,
                            Err(e) => log::warn!("leftover cgroup {name}: {e}"),
                        }
                    }
                    if let Some(j) = job {
                        match j.step(now) {
                            Step::Done => *job = None,
                            Step::Again(at) => next = next.min(at),
                        }
                    }
                    left |= pg.populated();
                }
                if !left || now >= deadline {
                    break;
                }
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
        strangers
            .into_iter()
            .map(|(name, pg, count)| {
                let result = if pg.populated() {
                    Err(CgroupError::NotEmpty {
                        path: pg.path(),
                        count: pg.pids().len(),
                    })
                } else {
                    pg.remove_tree().map(|()| count)
                };
                (name, result)
            })
            .collect()
    }

    /// Remove every empty program cgroup below the parent, the parent if empty, and the
    /// ancestors that `setup` created. Errors are logged at debug level: what is not empty stays.
    pub fn cleanup(&self) {
        for parent in self.parent.all() {
            if let Ok(rd) = fs::read_dir(parent) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        remove_dir_logged(&e.path());
                    }
                }
            }
            remove_dir_logged(parent);
        }
        for dir in self.created.iter().rev() {
            remove_dir_logged(dir);
        }
    }
}

fn remove_dir_logged(dir: &Path) {
    if let Err(e) = fs::remove_dir(dir) {
        log::debug!("left {} in place: {}", dir.display(), crate::error::os_text(&e));
    }
}

fn path_of(layout: Layout, dirs: &Dirs) -> PathBuf {
    let v1_first = || dirs.v1_dir("memory").or(dirs.v1.first().map(|(d, _)| d.as_path()));
    let p = match layout {
        Layout::V2 => dirs.unified.as_deref(),
        Layout::Hybrid | Layout::V1 => v1_first().or(dirs.unified.as_deref()),
    };
    p.map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod tests;

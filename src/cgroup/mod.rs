//! cgroups: every program in its own cgroup `<cgroup_path>/<name>`, with its limits, its
//! usage, its OOM-kill counter, and a way to end every process in it.
//!
//! This module owns the cgroup file system: detecting the layout (`detect.rs`), creating the
//! parent and program cgroups, writing limits (`v1.rs`, `v2.rs`), and killing a cgroup's
//! processes. It does not fork: the supervisor asks `ProgramCgroup::procs_files` for the
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
mod lock;
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

/// The CFS period holden uses: 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts (1 ms).
const CPU_QUOTA_MIN_US: u64 = 1_000;
/// The leaf holden moves itself into when its own cgroup must become an inner node.
pub const SELF_LEAF: &str = "holden";

/// How long `kill_all` may spend when the kernel has no `cgroup.kill`.
const KILL_FALLBACK_BUDGET: Duration = Duration::from_millis(500);
/// How long `program` waits for a leftover cgroup to empty after SIGKILL.
const LEFTOVER_WAIT: Duration = Duration::from_secs(5);
/// How long the processes of a stranger cgroup (not a program of the file) get between
/// SIGTERM and SIGKILL at start: short, as holden supervises nothing until they are gone.
const STRANGER_GRACE: Duration = Duration::from_millis(500);

/// `cpu_limit` in CPUs as a quota per 100 ms period.
pub fn quota_us(cpus: f64) -> u64 {
    ((cpus * CPU_PERIOD_US as f64).round() as u64).max(CPU_QUOTA_MIN_US)
}

/// Everything that can go wrong with cgroups. Each message is one sentence with what to do.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No hierarchy holden can use.
    #[error("cannot use cgroups: {reason}; mount the cgroup file systems or set cgroups = \"off\"")]
    Unavailable { reason: String },
    #[error("invalid cgroup_path {path:?}: {reason}; use a path like \"/supervisor\" or \"programs\"")]
    InvalidPath { path: String, reason: &'static str },
    #[error("invalid program name {name:?} for a cgroup; use 1 to 64 of A-Za-z0-9_.-")]
    InvalidName { name: String },
    /// Creating, opening, reading or removing a cgroup file or directory failed.
    #[error("cannot {op} {}: {}; {}", path.display(), crate::error::os_text(source), hint(op, path, source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused a value (a limit, a controller, a pid).
    #[error("cannot write {value:?} to {}: {}; {}", path.display(), crate::error::os_text(source), hint("write", path, source))]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot set a {controller} limit in {}: the {controller} controller is not enabled there; enable it for holden's cgroup (systemd: Delegate=yes) or remove the limit", path.display())]
    MissingController { controller: &'static str, path: PathBuf },
    /// Another live holden holds the parent: its programs would be taken for leftovers.
    #[error("another holden ({holder}) already supervises programs in {}; give this one its own cgroup_path, or stop the other first", path.display())]
    Taken { path: PathBuf, holder: String },
    #[error("{} still holds {count} process(es) after SIGKILL; find out what keeps them alive (a process in uninterruptible sleep?) before starting the program again", path.display())]
    NotEmpty { path: PathBuf, count: usize },
}

impl CgroupError {
    /// Failed for lack of a resource that comes back (fds, memory): worth trying again later.
    pub fn short_of_resources(&self) -> bool {
        match self {
            CgroupError::Io { source, .. } | CgroupError::Write { source, .. } => matches!(
                Errno::from_io_error(source),
                Some(Errno::MFILE | Errno::NFILE | Errno::NOMEM)
            ),
            _ => false,
        }
    }
}

/// What to do about an error, by errno and the file it happened on.
fn hint(op: &str, path: &Path, e: &io::Error) -> &'static str {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    match Errno::from_io_error(e) {
        Some(Errno::ACCESS | Errno::PERM) => "run as root or set cgroups = \"off\"",
        // Root in a container whose engine mounted /sys/fs/cgroup read-only: root is not the cure.
        Some(Errno::ROFS) => {
            "the cgroup file system is mounted read-only (a container needs a writable cgroup mount, e.g. --privileged); or remove the limits, or set cgroups = \"off\""
        }
        Some(Errno::BUSY) if file == v1::MEMORY_LIMIT => {
            "the program already uses more memory than that; raise memory_limit"
        }
        Some(Errno::BUSY) if file == v2::CGROUP_SUBTREE_CONTROL => {
            "other processes share that cgroup with holden; move them out or choose another cgroup_path"
        }
        Some(Errno::BUSY | Errno::NOTEMPTY) if op == "remove" => "processes are still in it; stop them first",
        Some(Errno::INVAL | Errno::BUSY) => "the kernel refuses that value (a parent cgroup may have a lower limit)",
        Some(Errno::NOSPC) => "a cgroup limit such as cgroup.max.descendants was reached",
        Some(Errno::NOENT) => "the cgroup tree changed under holden; check the cgroup mounts or set cgroups = \"off\"",
        _ => "check the cgroup mounts or set cgroups = \"off\"",
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Write `value` in one write(2), as the kernel wants it.
fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let werr = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut f = OpenOptions::new().write(true).truncate(true).open(path).map_err(werr)?;
    f.write_all(value.as_bytes()).map_err(werr)
}

fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(io_err("read", path))
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
        match (mountinfo, own) {
            (Ok(m), Ok(o)) => Self::setup_at(mode, cgroup_path, Path::new("/"), &m, &o),
            (Err(e), _) | (_, Err(e)) => Self::by_mode(mode, Err(e)),
        }
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
            .map_err(|reason| CgroupError::Unavailable { reason })
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
                    reason: format!(
                        "holden's own cgroup is outside the hierarchy mounted at {}, so a relative cgroup_path has no place there; use an absolute cgroup_path",
                        h.mountpoint.display()
                    ),
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

    /// The cgroup(s) of program `name`, created in every hierarchy. A leftover from an earlier
    /// holden that still holds processes is emptied first (SIGKILL, waiting up to 5 s); the
    /// number of processes killed is returned so that the caller can log it.
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
        };
        let leftovers = pg.pids().len();
        if leftovers > 0 {
            pg.kill_all()?;
            let deadline = Instant::now() + LEFTOVER_WAIT;
            while pg.populated() {
                if Instant::now() >= deadline {
                    return Err(CgroupError::NotEmpty {
                        path: pg.path(),
                        count: pg.pids().len(),
                    });
                }
                pg.kill_all()?;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok((pg, leftovers))
    }

    /// Stop and remove every cgroup below the parent (in any hierarchy) whose name `keep`
    /// refuses: a program removed from the file, or a transient one, of an earlier holden that
    /// was killed. Their processes get SIGTERM (their stop_signal is not known any more), then,
    /// after `STRANGER_GRACE`, SIGKILL (cgroup.kill, else freeze and kill), and holden waits up
    /// to `LEFTOVER_WAIT` for them to be gone before it removes the cgroups (sub-cgroups
    /// first). Returns, per cgroup, how many processes it held, or why it could not be removed.
    /// A cgroup holding holden itself is left alone.
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
            // A holden killed while it froze a cgroup left it frozen: a frozen process waits
            // for SIGTERM until it is thawed.
            pg.freeze(false, now);
            pg.signal_all(rustix::process::Signal::TERM.as_raw());
        }
        let all_empty = |deadline: Instant| loop {
            let empty = strangers.iter().all(|(_, pg, _)| !pg.populated());
            if empty || Instant::now() >= deadline {
                return empty;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !all_empty(now + STRANGER_GRACE) {
            for (_, pg, _) in &strangers {
                if pg.populated() {
                    let _ = pg.kill_all();
                }
            }
            let deadline = Instant::now() + LEFTOVER_WAIT;
            loop {
                let left: Vec<_> = strangers.iter().filter(|(_, pg, _)| pg.populated()).collect();
                if left.is_empty() || Instant::now() >= deadline {
                    break;
                }
                for (_, pg, _) in left {
                    let _ = pg.kill_all();
                }
                std::thread::sleep(Duration::from_millis(10));
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

/// Resource use read on demand.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    /// Tasks in the cgroup (`pids.current`), where the pids controller is there.
    pub pids_current: Option<u64>,
}

// Reading limits back is for the tests that check what holden wrote; status reports the
// limits holden set (the kernel rounds memory to pages).
#[cfg(test)]
/// The limits in force (None = no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub cpu: Option<f64>,
    pub pids: Option<u64>,
}

/// Tasks in a cgroup: the same file name in v2 and in v1's pids hierarchy.
const PIDS_CURRENT: &str = "pids.current";

/// How CPU time is read: the first file that exists of v2 `cpu.stat` (in every cgroup2
/// directory, controllers or not, so also on hybrid) and v1 `cpuacct.usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuSource {
    /// `cpu.stat`, key `usage_usec`.
    V2Stat,
    /// `cpuacct.usage`, nanoseconds.
    V1AcctNs,
}

/// One usage file: kept open, or (past the fd budget, or when it could not be opened) opened
/// again at each read as before.
#[derive(Debug)]
enum UsageFile {
    Kept(File),
    ByPath(PathBuf),
}

impl UsageFile {
    /// Open `path`, keeping the fd only while it is below `fd_budget`.
    fn open(path: PathBuf, fd_budget: u64) -> UsageFile {
        match File::open(&path) {
            Ok(f) if (f.as_raw_fd() as u64) < fd_budget => UsageFile::Kept(f),
            Ok(_) | Err(_) => UsageFile::ByPath(path),
        }
    }

    fn read<T>(&self, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        match self {
            UsageFile::Kept(f) => read_at_start(f, parse),
            UsageFile::ByPath(p) => read_at_start(&File::open(p).ok()?, parse),
        }
    }
}

/// A program's usage files, opened read-only and close-on-exec when its cgroup is created and
/// re-read with pread at offset 0: status with many programs would otherwise spend its time on
/// path walks (open + read + close of two files per program). Two fds per program.
///
/// Every one of these is a seq_file behind kernfs: a read at offset 0 restarts the seq_file and
/// runs its show function again, so each pread sees the current value (tested below on the real
/// kernel). An open file does not keep the cgroup from being removed; reads after that fail
/// (ENODEV) and report no value.
///
/// The fds are kept only while holden uses less than half of its RLIMIT_NOFILE soft limit (fds
/// are handed out lowest first, so the fd number says how many are in use): with the common
/// soft limit of 1024, 200 programs with captured output already need ~810 fds, and the usage
/// files must not be what makes a spawn fail with EMFILE. Past that, usage is read by path.
#[derive(Debug)]
struct UsageFiles {
    memory: Option<UsageFile>,
    cpu: Option<(UsageFile, CpuSource)>,
    /// Read by path: it is for `monitor`, and must not cost every program a third fd.
    pids: Option<UsageFile>,
}

impl UsageFiles {
    /// Half of the RLIMIT_NOFILE soft limit (no limit: no budget).
    fn fd_budget() -> u64 {
        rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .map_or(u64::MAX, |n| n / 2)
    }

    fn open(layout: Layout, dirs: &Dirs, fd_budget: u64) -> UsageFiles {
        let path = |dir: Option<&Path>, file: &str| Some(dir?.join(file)).filter(|p| p.exists());
        let memory = match layout {
            Layout::V2 => path(dirs.unified.as_deref(), v2::MEMORY_CURRENT),
            Layout::Hybrid | Layout::V1 => path(dirs.v1_dir("memory"), v1::MEMORY_USAGE),
        };
        let cpu = path(dirs.unified.as_deref(), v2::CPU_STAT)
            .map(|p| (p, CpuSource::V2Stat))
            .or_else(|| path(dirs.v1_dir("cpuacct"), v1::CPUACCT_USAGE).map(|p| (p, CpuSource::V1AcctNs)));
        let pids = match layout {
            Layout::V2 => path(dirs.unified.as_deref(), PIDS_CURRENT),
            Layout::Hybrid | Layout::V1 => path(dirs.v1_dir("pids"), PIDS_CURRENT),
        };
        UsageFiles {
            memory: memory.map(|p| UsageFile::open(p, fd_budget)),
            cpu: cpu.map(|(p, source)| (UsageFile::open(p, fd_budget), source)),
            pids: pids.map(UsageFile::ByPath),
        }
    }

    fn read(&self) -> Usage {
        let memory_bytes = self.memory.as_ref().and_then(|f| f.read(|t| t.trim().parse().ok()));
        let cpu_usage_usec = self.cpu.as_ref().and_then(|(f, source)| match source {
            CpuSource::V2Stat => f.read(|t| v2::keyed(t, "usage_usec")),
            CpuSource::V1AcctNs => f.read(|t| t.trim().parse::<u64>().ok()).map(|ns| ns / 1000),
        });
        let pids_current = self.pids.as_ref().and_then(|f| f.read(|t| t.trim().parse().ok()));
        Usage {
            memory_bytes,
            cpu_usage_usec,
            pids_current,
        }
    }

    /// How many of the files are kept open (for the tests).
    #[cfg(test)]
    fn kept(&self) -> usize {
        let kept = |f: &UsageFile| matches!(f, UsageFile::Kept(_));
        usize::from(self.memory.as_ref().is_some_and(kept))
            + usize::from(self.cpu.as_ref().is_some_and(|(f, _)| kept(f)))
    }
}

/// Read an open cgroup file from offset 0 into a stack buffer and parse it. The files read
/// here are a number or a short keyed list (`cpu.stat` is ~250 bytes with every controller);
/// a file longer than the buffer is parsed from what fits, and `usage_usec` is its first line.
fn read_at_start<T>(file: &File, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    let mut buf = [0u8; 1024];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse(std::str::from_utf8(&buf[..n]).ok()?)
}

/// The cgroup(s) of one program. Clones share the open usage files.
#[derive(Debug, Clone)]
pub struct ProgramCgroup {
    layout: Layout,
    dirs: Dirs,
    usage: Rc<UsageFiles>,
}

impl ProgramCgroup {
    /// The v2 directory that carries the controllers (v2 only).
    fn v2_ctrl(&self) -> Option<&Path> {
        match self.layout {
            Layout::V2 => self.dirs.unified.as_deref(),
            Layout::Hybrid | Layout::V1 => None,
        }
    }

    /// The directory holding `v1_controller`'s files, or the v2 one.
    fn controller_dir(&self, v1_controller: &str) -> Option<&Path> {
        match self.layout {
            Layout::V2 => self.dirs.unified.as_deref(),
            Layout::Hybrid | Layout::V1 => self.dirs.v1_dir(v1_controller),
        }
    }

    /// Write one limit file; `None` with the file missing has nothing to lift.
    fn set_one(&self, controller: &'static str, file: &str, value: String, is_limit: bool) -> Result<(), CgroupError> {
        let dir = self.controller_dir(controller);
        let path = dir.map(|d| d.join(file));
        match path {
            Some(p) if p.exists() => write_file(&p, &value),
            _ if !is_limit => Ok(()),
            _ => Err(CgroupError::MissingController {
                controller,
                path: dir.map(Path::to_path_buf).unwrap_or_else(|| self.path()),
            }),
        }
    }

    /// Write the limits; `None` lifts one. Every limit is tried; the first error is returned.
    pub fn set_limits(&self, memory: Option<u64>, cpu: Option<f64>, pids: Option<u64>) -> Result<(), CgroupError> {
        let v2 = self.layout == Layout::V2;
        let mem = if v2 {
            self.set_one("memory", v2::MEMORY_MAX, v2::max_value(memory), memory.is_some())
        } else {
            let value = v1::memory_limit(memory);
            self.set_one("memory", v1::MEMORY_LIMIT, value, memory.is_some())
        };
        let cpu = if v2 {
            self.set_one("cpu", v2::CPU_MAX, v2::cpu_max(cpu), cpu.is_some())
        } else {
            let period = CPU_PERIOD_US.to_string();
            self.set_one("cpu", v1::CPU_CFS_PERIOD, period, cpu.is_some())
                .and_then(|()| self.set_one("cpu", v1::CPU_CFS_QUOTA, v1::cfs_quota(cpu), cpu.is_some()))
        };
        let pids_file = if v2 { v2::PIDS_MAX } else { v1::PIDS_MAX };
        let pids = self.set_one("pids", pids_file, v2::max_value(pids), pids.is_some());
        mem.and(cpu).and(pids)
    }

    /// Each hierarchy's `cgroup.procs`, opened write-only and close-on-exec, for the forked
    /// child to write "0" into before exec. Open them per spawn.
    pub fn procs_files(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        self.dirs
            .all()
            .map(|d| {
                let p = d.join(v1::CGROUP_PROCS);
                OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map(OwnedFd::from)
                    .map_err(io_err("open", &p))
            })
            .collect()
    }

    /// The v2 `cgroup.events`, for EPOLLPRI when "populated" changes. After each wakeup call
    /// `events_populated` on it: a kernfs file stays ready until it is read again.
    pub fn events_file(&self) -> Option<File> {
        File::open(self.dirs.unified.as_ref()?.join(v2::CGROUP_EVENTS)).ok()
    }

    /// Read an open `cgroup.events` from its start: is anything left in the cgroup tree?
    pub fn events_populated(events: &File) -> Option<bool> {
        let mut buf = [0u8; 256];
        let n = events.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        v2::keyed(text, "populated").map(|v| v != 0)
    }

    /// Is any process left: v2 `cgroup.events` where there is one, and any pid in the v1 trees.
    pub fn populated(&self) -> bool {
        let v2_says = self.events_file().and_then(|f| Self::events_populated(&f));
        let mut v1_pids = BTreeSet::new();
        for (d, _) in &self.dirs.v1 {
            procs_below(d, &mut v1_pids);
        }
        match v2_says {
            Some(p) => p || !v1_pids.is_empty(),
            None => !v1_pids.is_empty() || !self.pids().is_empty(),
        }
    }

    /// Every process of the program, in all hierarchies and their sub-cgroups, deduplicated.
    pub fn pids(&self) -> Vec<i32> {
        let mut all = BTreeSet::new();
        for d in self.dirs.all() {
            procs_below(d, &mut all);
        }
        all.into_iter().collect()
    }

    /// Send `sig` to every process of the program; returns how many it reached.
    pub fn signal_all(&self, sig: i32) -> usize {
        let Some(sig) = crate::sys::signal::Signal(sig).to_rustix() else {
            return 0;
        };
        self.pids()
            .into_iter()
            .filter_map(rustix::process::Pid::from_raw)
            .filter(|p| rustix::process::kill_process(*p, sig).is_ok())
            .count()
    }

    /// SIGKILL every process: `cgroup.kill` where the kernel has it (the v2 dir, also on
    /// hybrid), else freeze, SIGKILL every pid, thaw, until empty or 500 ms have passed. The
    /// caller waits for emptiness through `events_file` or its own deadline.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        self.kill_all_with(true)
    }

    fn kill_all_with(&self, use_cgroup_kill: bool) -> Result<(), CgroupError> {
        if use_cgroup_kill
            && let Some(u) = &self.dirs.unified
            && u.join(v2::CGROUP_KILL).exists()
        {
            write_file(&u.join(v2::CGROUP_KILL), "1")?;
            // The v1 trees hold the same processes; one moved there by hand dies too.
            self.signal_all(rustix::process::Signal::KILL.as_raw());
            return Ok(());
        }
        let deadline = Instant::now() + KILL_FALLBACK_BUDGET;
        loop {
            let frozen = self.freeze(true, deadline);
            let killed = self.signal_all(rustix::process::Signal::KILL.as_raw());
            if frozen {
                self.freeze(false, deadline);
            }
            if killed == 0 || Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    /// Freeze (or thaw) through v2 `cgroup.freeze` or the v1 freezer, waiting for the frozen
    /// state until `deadline`. Returns whether a freezer was written.
    fn freeze(&self, on: bool, deadline: Instant) -> bool {
        if let Some(u) = &self.dirs.unified
            && write_file(&u.join(v2::CGROUP_FREEZE), if on { "1" } else { "0" }).is_ok()
        {
            while on && Instant::now() < deadline {
                let events = fs::read_to_string(u.join(v2::CGROUP_EVENTS)).unwrap_or_default();
                if v2::keyed(&events, "frozen") != Some(0) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            return true;
        }
        if let Some(f) = self.dirs.v1_dir(detect::V1_FREEZER) {
            let state = f.join(v1::FREEZER_STATE);
            if write_file(&state, if on { "FROZEN" } else { "THAWED" }).is_ok() {
                while on && Instant::now() < deadline {
                    let now = fs::read_to_string(&state).unwrap_or_default();
                    if now.trim() != "FREEZING" {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                return true;
            }
        }
        false
    }

    /// OOM kills so far: v2 `memory.events` `oom_kill`, v1 `memory.oom_control` `oom_kill`.
    pub fn oom_kills(&self) -> Option<u64> {
        let (dir, file) = match self.v2_ctrl() {
            Some(d) => (d, v2::MEMORY_EVENTS),
            None => (self.dirs.v1_dir("memory")?, v1::MEMORY_OOM_CONTROL),
        };
        v2::keyed(&fs::read_to_string(dir.join(file)).ok()?, "oom_kill")
    }

    /// Memory in use and CPU time so far, re-read through the files kept open since the
    /// cgroup was created (one pread each, no path walk).
    pub fn usage(&self) -> Usage {
        self.usage.read()
    }

    /// The limits in force, read back from the kernel's files.
    #[cfg(test)]
    pub fn limits(&self) -> Limits {
        let read = |dir: Option<&Path>, file: &str| fs::read_to_string(dir?.join(file)).ok();
        match self.v2_ctrl() {
            Some(d) => Limits {
                memory: read(Some(d), v2::MEMORY_MAX).and_then(|t| v2::parse_max(&t)),
                cpu: read(Some(d), v2::CPU_MAX).and_then(|t| v2::parse_cpu_max(&t)),
                pids: read(Some(d), v2::PIDS_MAX).and_then(|t| v2::parse_max(&t)),
            },
            None => {
                let cpu = self.dirs.v1_dir("cpu");
                Limits {
                    memory: read(self.dirs.v1_dir("memory"), v1::MEMORY_LIMIT).and_then(|t| v1::parse_memory_limit(&t)),
                    cpu: read(cpu, v1::CPU_CFS_QUOTA)
                        .zip(read(cpu, v1::CPU_CFS_PERIOD))
                        .and_then(|(q, p)| v1::parse_cpu(&q, &p)),
                    pids: read(self.dirs.v1_dir("pids"), v1::PIDS_MAX).and_then(|t| v2::parse_max(&t)),
                }
            }
        }
    }

    /// The path to show in status: the v2 dir on v2, else the memory dir.
    pub fn path(&self) -> PathBuf {
        path_of(self.layout, &self.dirs)
    }

    /// Remove the cgroup and the cgroups below it (deepest first) in every hierarchy; they
    /// must be empty. A missing one is fine.
    fn remove_tree(&self) -> Result<(), CgroupError> {
        fn below(dir: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        below(&e.path(), out);
                    }
                }
            }
            out.push(dir.to_path_buf());
        }
        let mut dirs = Vec::new();
        for d in self.dirs.all() {
            below(d, &mut dirs);
        }
        remove_dirs(dirs.iter().map(PathBuf::as_path))
    }

    /// Remove the cgroup in every hierarchy (it must be empty). A missing one is fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        remove_dirs(self.dirs.all())
    }
}

/// Remove each (empty) cgroup directory, in order; a missing one is fine. Every one is tried;
/// the first failure is the error.
fn remove_dirs<'a>(dirs: impl Iterator<Item = &'a Path>) -> Result<(), CgroupError> {
    let mut first = Ok(());
    for d in dirs {
        match fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                if first.is_ok() {
                    first = Err(io_err("remove", d)(e));
                }
            }
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Create `files` (with contents) below `root`, making directories as needed: the parts of
    /// a kernel tree that a fake needs before holden looks at it.
    fn fake(root: &Path, files: &[(&str, &str)]) {
        for (path, content) in files {
            let p = root.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
    }

    fn text(root: &Path, path: &str) -> String {
        fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const V2_MOUNTINFO: &str = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    const HYBRID_MOUNTINFO: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "8:pids:/\n6:freezer:/\n4:memory:/m\n2:cpuacct:/\n1:cpu:/\n0::/\n";
    const V1_MOUNTINFO: &str = "\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
27 24 0:24 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
28 24 0:25 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
";
    const V1_SELF: &str = "4:pids:/\n3:memory:/\n2:cpu,cpuacct:/\n1:freezer:/\n";

    fn required(root: &Path, path: &str, mi: &str, me: &str) -> Cgroups {
        Cgroups::setup_at(CgroupMode::Required, path, root, mi, me)
            .unwrap()
            .expect("Required gives cgroups or an error")
    }

    /// A fake v2 tree: the root offers every controller, and the cgroups that setup and
    /// program will create already have the files the kernel would put there.
    fn v2_tree(root: &Path, dirs: &[&str]) {
        fake(
            root,
            &[
                (
                    "sys/fs/cgroup/cgroup.controllers",
                    "cpuset cpu io memory hugetlb pids\n",
                ),
                ("sys/fs/cgroup/cgroup.subtree_control", "cpuset\n"),
            ],
        );
        for d in dirs {
            let files: Vec<(String, &str)> = [
                ("cgroup.subtree_control", ""),
                ("cgroup.procs", ""),
                ("cgroup.type", "domain\n"),
                ("memory.max", "max\n"),
                ("cpu.max", "max 100000\n"),
                ("pids.max", "max\n"),
            ]
            .iter()
            .map(|(f, c)| (format!("sys/fs/cgroup/{d}/{f}"), *c))
            .collect();
            let refs: Vec<(&str, &str)> = files.iter().map(|(f, c)| (f.as_str(), *c)).collect();
            fake(root, &refs);
        }
    }

    #[test]
    fn fd_and_memory_shortages_are_worth_retrying_and_others_are_not() {
        let io = |e: Errno| CgroupError::Io {
            op: "open",
            path: "/sys/fs/cgroup/x/cgroup.procs".into(),
            source: e.into(),
        };
        assert!(io(Errno::MFILE).short_of_resources());
        assert!(io(Errno::NFILE).short_of_resources());
        assert!(io(Errno::NOMEM).short_of_resources());
        assert!(!io(Errno::ACCESS).short_of_resources());
        assert!(!io(Errno::NOENT).short_of_resources());
    }

    #[test]
    fn v2_absolute_path_enables_controllers_from_the_root_down() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        v2_tree(root, &["supervisor", "supervisor/web"]);
        let cg = required(root, "/supervisor", V2_MOUNTINFO, "0::/system.slice/holden.service\n");
        assert_eq!(cg.layout(), Layout::V2);
        assert_eq!(cg.controllers(), ["cpu", "memory", "pids"]);
        // Only what was missing is written: "cpuset" was already enabled at the root.
        assert_eq!(text(root, "sys/fs/cgroup/cgroup.subtree_control"), "+cpu +memory +pids");
        assert_eq!(
            text(root, "sys/fs/cgroup/supervisor/cgroup.subtree_control"),
            "+cpu +memory +pids"
        );
        let (web, killed) = cg.program("web").unwrap();
        assert_eq!(killed, 0);
        assert_eq!(web.path(), root.join("sys/fs/cgroup/supervisor/web"));
        web.set_limits(Some(31_457_280), Some(0.5), Some(20)).unwrap();
        assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/memory.max"), "31457280");
        assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/cpu.max"), "50000 100000");
        assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/pids.max"), "20");
        assert_eq!(
            web.limits(),
            Limits {
                memory: Some(31_457_280),
                cpu: Some(0.5),
                pids: Some(20)
            }
        );
        web.set_limits(None, None, None).unwrap();
        assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/memory.max"), "max");
        assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/cpu.max"), "max 100000");
        assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/pids.max"), "max");
        assert_eq!(web.limits(), Limits::default());
        // holden was not in an ancestor of the parent: it stays where it was.
        assert!(!root.join("sys/fs/cgroup/system.slice/holden.service/holden").exists());
    }

    #[test]
    fn v2_cgroup_namespace_root_moves_holden_into_a_leaf_first() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        v2_tree(root, &["supervisor", "holden"]);
        // A namespace root is not the real root: it has cgroup.type.
        fake(root, &[("sys/fs/cgroup/cgroup.type", "domain\n")]);
        required(root, "/supervisor", V2_MOUNTINFO, "0::/\n");
        assert_eq!(text(root, "sys/fs/cgroup/holden/cgroup.procs"), "0");
        assert_eq!(text(root, "sys/fs/cgroup/cgroup.subtree_control"), "+cpu +memory +pids");
    }

    #[test]
    fn v2_real_root_keeps_holden_where_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        v2_tree(root, &["supervisor"]);
        required(root, "/supervisor", V2_MOUNTINFO, "0::/\n");
        assert!(!root.join("sys/fs/cgroup/holden").exists());
    }

    #[test]
    fn v2_relative_path_lives_below_holden_which_moves_into_a_leaf() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let own = "system.slice/holden.service";
        v2_tree(root, &[own, &format!("{own}/programs"), &format!("{own}/holden")]);
        fake(
            root,
            &[(
                "sys/fs/cgroup/system.slice/holden.service/cgroup.controllers",
                "memory pids\n",
            )],
        );
        let cg = required(root, "programs", V2_MOUNTINFO, &format!("0::/{own}\n"));
        // Only what the delegating parent offers; the root is not touched.
        assert_eq!(cg.controllers(), ["memory", "pids"]);
        assert_eq!(text(root, "sys/fs/cgroup/cgroup.subtree_control"), "cpuset\n");
        assert_eq!(text(root, &format!("sys/fs/cgroup/{own}/holden/cgroup.procs")), "0");
        assert_eq!(
            text(root, &format!("sys/fs/cgroup/{own}/cgroup.subtree_control")),
            "+memory +pids"
        );
        assert_eq!(
            cg.parent_path(),
            root.join("sys/fs/cgroup/system.slice/holden.service/programs")
        );
    }

    #[test]
    fn v2_relative_path_inside_holdens_own_leaf_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        v2_tree(root, &["a", "a/holden"]);
        fake(root, &[("sys/fs/cgroup/a/cgroup.controllers", "memory\n")]);
        let err = Cgroups::setup_at(CgroupMode::Auto, "holden/x", root, V2_MOUNTINFO, "0::/a\n").unwrap_err();
        assert!(matches!(err, CgroupError::InvalidPath { .. }), "{err}");
    }

    #[test]
    fn v2_limit_without_its_controller_names_the_controller() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        v2_tree(root, &["supervisor"]);
        let cg = required(root, "/supervisor", V2_MOUNTINFO, "0::/\n");
        let (web, _) = cg.program("web").unwrap();
        // No memory.max in the fake "web": the controller is not enabled there.
        let err = web.set_limits(Some(1 << 20), None, None).unwrap_err();
        assert!(err.to_string().starts_with("cannot set a memory limit in "), "{err}");
        // Lifting a limit that cannot exist is not an error.
        web.set_limits(None, None, None).unwrap();
    }

    #[test]
    fn hybrid_creates_the_parent_in_every_v1_controller_and_the_unified_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("sys/fs/cgroup/memory/m")).unwrap();
        for d in ["cpu", "cpuacct", "pids", "freezer", "unified"] {
            fs::create_dir_all(root.join("sys/fs/cgroup").join(d)).unwrap();
        }
        let cg = required(root, "/sup/x", HYBRID_MOUNTINFO, HYBRID_SELF);
        assert_eq!(cg.layout(), Layout::Hybrid);
        for d in ["memory", "cpu", "cpuacct", "pids", "unified"] {
            assert!(root.join("sys/fs/cgroup").join(d).join("sup/x").is_dir(), "{d}");
        }
        // The unified tree has cgroup.kill and cgroup.freeze: the v1 freezer is not used.
        assert!(!root.join("sys/fs/cgroup/freezer/sup").exists());
        let (web, _) = cg.program("web").unwrap();
        assert_eq!(web.path(), root.join("sys/fs/cgroup/memory/sup/x/web"));
        let names: Vec<PathBuf> = web.dirs.all().map(Path::to_path_buf).collect();
        assert_eq!(names.len(), 5);
        web.remove().unwrap();
        cg.cleanup();
        for d in ["memory", "cpu", "cpuacct", "pids", "unified"] {
            assert!(!root.join("sys/fs/cgroup").join(d).join("sup").exists(), "{d}");
        }
        assert!(root.join("sys/fs/cgroup/memory/m").is_dir());
    }

    #[test]
    fn a_failed_setup_removes_what_it_created_on_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("sys/fs/cgroup/memory/m")).unwrap();
        // The pids hierarchy is "mounted" but its directory is missing: mkdir fails there.
        for d in ["cpu", "cpuacct", "unified"] {
            fs::create_dir_all(root.join("sys/fs/cgroup").join(d)).unwrap();
        }
        let err = Cgroups::setup_at(CgroupMode::Required, "/a/b", root, HYBRID_MOUNTINFO, HYBRID_SELF).unwrap_err();
        assert!(err.to_string().starts_with("cannot create "), "{err}");
        assert!(err.to_string().contains("sys/fs/cgroup/pids/a"), "{err}");
        for d in ["memory", "cpu", "cpuacct", "unified"] {
            assert!(!root.join("sys/fs/cgroup").join(d).join("a").exists(), "{d}");
        }
        let auto = Cgroups::setup_at(CgroupMode::Auto, "/a/b", root, HYBRID_MOUNTINFO, HYBRID_SELF);
        assert!(auto.unwrap().is_none());
    }

    #[test]
    fn hybrid_relative_path_follows_holdens_cgroup_in_each_hierarchy() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("sys/fs/cgroup/memory/m")).unwrap();
        for d in ["cpu", "cpuacct", "pids", "unified"] {
            fs::create_dir_all(root.join("sys/fs/cgroup").join(d)).unwrap();
        }
        let cg = required(root, "progs", HYBRID_MOUNTINFO, HYBRID_SELF);
        assert_eq!(cg.parent_path(), root.join("sys/fs/cgroup/memory/m/progs"));
        assert!(root.join("sys/fs/cgroup/cpu/progs").is_dir());
        assert!(root.join("sys/fs/cgroup/unified/progs").is_dir());
    }

    #[test]
    fn v1_limits_go_to_memory_cpu_and_pids_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for d in ["cpu,cpuacct", "memory", "pids", "freezer"] {
            fs::create_dir_all(root.join("sys/fs/cgroup").join(d)).unwrap();
        }
        let cg = required(root, "/supervisor", V1_MOUNTINFO, V1_SELF);
        assert_eq!(cg.layout(), Layout::V1);
        fake(
            root,
            &[
                ("sys/fs/cgroup/memory/supervisor/web/memory.limit_in_bytes", ""),
                ("sys/fs/cgroup/cpu,cpuacct/supervisor/web/cpu.cfs_period_us", ""),
                ("sys/fs/cgroup/cpu,cpuacct/supervisor/web/cpu.cfs_quota_us", ""),
                ("sys/fs/cgroup/pids/supervisor/web/pids.max", ""),
                ("sys/fs/cgroup/freezer/supervisor/web/cgroup.procs", ""),
            ],
        );
        let (web, _) = cg.program("web").unwrap();
        web.set_limits(Some(30_000_000), Some(1.5), Some(64)).unwrap();
        let d = "sys/fs/cgroup";
        assert_eq!(
            text(root, &format!("{d}/memory/supervisor/web/memory.limit_in_bytes")),
            "30000000"
        );
        assert_eq!(
            text(root, &format!("{d}/cpu,cpuacct/supervisor/web/cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(
            text(root, &format!("{d}/cpu,cpuacct/supervisor/web/cpu.cfs_quota_us")),
            "150000"
        );
        assert_eq!(text(root, &format!("{d}/pids/supervisor/web/pids.max")), "64");
        assert_eq!(web.limits().cpu, Some(1.5));
        web.set_limits(None, None, None).unwrap();
        assert_eq!(
            text(root, &format!("{d}/memory/supervisor/web/memory.limit_in_bytes")),
            "-1"
        );
        assert_eq!(
            text(root, &format!("{d}/cpu,cpuacct/supervisor/web/cpu.cfs_quota_us")),
            "-1"
        );
        assert_eq!(text(root, &format!("{d}/pids/supervisor/web/pids.max")), "max");
        assert_eq!(web.limits().memory, None);
        // One cgroup.procs per hierarchy: cpu and cpuacct share one.
        assert_eq!(web.dirs.all().count(), 4);
    }

    #[test]
    fn modes_decide_what_unusable_cgroups_mean() {
        let tmp = tempfile::tempdir().unwrap();
        let none = "22 1 0:21 / /proc rw - proc proc rw\n";
        let at = |mode| Cgroups::setup_at(mode, "/supervisor", tmp.path(), none, "0::/\n");
        assert!(at(CgroupMode::Off).unwrap().is_none());
        assert!(at(CgroupMode::Auto).unwrap().is_none());
        let err = at(CgroupMode::Required).unwrap_err();
        assert!(matches!(err, CgroupError::Unavailable { .. }), "{err}");
    }

    #[test]
    fn cgroup_paths_are_checked() {
        assert_eq!(
            parse_cgroup_path("/supervisor").unwrap(),
            (true, vec!["supervisor".to_string()])
        );
        assert_eq!(
            parse_cgroup_path("a//b/").unwrap(),
            (false, vec!["a".to_string(), "b".to_string()])
        );
        for bad in ["", "/", "a/../b", "./a", "..", "a\nb"] {
            assert!(
                matches!(parse_cgroup_path(bad), Err(CgroupError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn program_names_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        v2_tree(root, &["supervisor"]);
        let cg = required(root, "/supervisor", V2_MOUNTINFO, "0::/\n");
        for bad in ["", "..", "a/b"] {
            assert!(
                matches!(cg.program(bad), Err(CgroupError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_are_one_sentence_with_what_to_do() {
        let e = io_err("create", Path::new("/sys/fs/cgroup/memory/supervisor/web"))(io::Error::from_raw_os_error(13));
        assert_eq!(
            e.to_string(),
            "cannot create /sys/fs/cgroup/memory/supervisor/web: permission denied; run as root or set cgroups = \"off\""
        );
        let e = io_err("create", Path::new("/sys/fs/cgroup/memory/supervisor"))(io::Error::from_raw_os_error(30));
        assert_eq!(
            e.to_string(),
            "cannot create /sys/fs/cgroup/memory/supervisor: read-only file system; the cgroup file system is mounted read-only (a container needs a writable cgroup mount, e.g. --privileged); or remove the limits, or set cgroups = \"off\""
        );
        let e = CgroupError::Write {
            path: PathBuf::from("/sys/fs/cgroup/memory/s/web/memory.limit_in_bytes"),
            value: "1000000".into(),
            source: io::Error::from_raw_os_error(16),
        };
        assert_eq!(
            e.to_string(),
            "cannot write \"1000000\" to /sys/fs/cgroup/memory/s/web/memory.limit_in_bytes: device or resource busy; the program already uses more memory than that; raise memory_limit"
        );
    }

    #[test]
    fn quota_is_rounded_and_never_below_one_millisecond() {
        assert_eq!(quota_us(0.5), 50_000);
        assert_eq!(quota_us(0.333333), 33_333);
        assert_eq!(quota_us(0.001), 1_000);
        assert_eq!(quota_us(0.0001), 1_000);
    }
}

/// The library on the host's real hierarchies (hybrid here), as root. Each test owns a unique
/// `/holden-test-<pid>-k<n>` and removes it when done, also when it fails.
#[cfg(test)]
mod kernel_tests {
    use super::*;
    use crate::reactor::{Interest, Owner, Reactor, Token};
    use std::os::fd::AsFd;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Not root: say so, and count the skip where test.sh counts the integration tests' ones
    /// (`holden-skips.txt` in the target dir, see tests/integration/harness.rs).
    fn root_or_skip(test: &str) -> bool {
        let root = rustix::process::geteuid().is_root();
        if !root {
            use std::io::Write;
            eprintln!("SKIP {test}: needs root to create cgroups");
            let root_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root_dir.join("target"), |d| root_dir.join(d));
            let _ = std::fs::create_dir_all(&target);
            let line = format!("cgroup::tests::{test}: needs root to create cgroups\n");
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(target.join("holden-skips.txt"))
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .expect("record the skip in holden-skips.txt");
        }
        root
    }

    /// A unique cgroup path, removed with everything in it from every hierarchy on drop.
    struct TestPath {
        path: String,
        /// Extra directories to remove (a relative path's place below holden's own cgroup).
        extra: Vec<PathBuf>,
    }

    impl TestPath {
        fn new() -> TestPath {
            static N: AtomicU32 = AtomicU32::new(0);
            TestPath {
                path: format!(
                    "/holden-test-{}-k{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ),
                extra: Vec::new(),
            }
        }

        fn setup(&self) -> Cgroups {
            Cgroups::setup(CgroupMode::Required, &self.path)
                .unwrap()
                .expect("Required gives cgroups or an error")
        }
    }

    impl Drop for TestPath {
        fn drop(&mut self) {
            let mut dirs = self.extra.clone();
            if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
                for e in rd.flatten() {
                    dirs.push(e.path().join(self.path.trim_start_matches('/')));
                }
            }
            for d in dirs.iter().filter(|d| d.is_dir()) {
                remove_tree(d);
            }
        }
    }

    fn remove_tree(dir: &Path) {
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path());
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(dir).is_err() && Instant::now() < deadline {
            let mut pids = BTreeSet::new();
            procs_below(dir, &mut pids);
            for p in pids.into_iter().filter_map(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A child killed and reaped on drop.
    struct Proc(Child);

    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Proc {
        /// `sh -c SCRIPT`, held at a `read` until `go` so that it can be moved first.
        fn gated(script: &str) -> (Proc, ChildStdin) {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(format!("read go; {script}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdin = child.stdin.take().unwrap();
            (Proc(child), stdin)
        }

        fn pid(&self) -> i32 {
            self.0.id() as i32
        }

        fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
            wait_for(timeout, "the child to exit", || {
                self.0.try_wait().unwrap().ok_or("still running".to_string())
            })
        }
    }

    fn go(stdin: &mut ChildStdin) {
        stdin.write_all(b"go\n").unwrap();
    }

    /// Move `pid` into every hierarchy through `procs_files`, as the forked child does with "0".
    fn move_in(pg: &ProgramCgroup, pid: i32) {
        for fd in pg.procs_files().unwrap() {
            rustix::io::write(&fd, pid.to_string().as_bytes()).unwrap();
        }
    }

    fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match f() {
                Ok(v) => return v,
                Err(seen) if Instant::now() >= deadline => {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    #[test]
    fn kernel_limits_are_written_to_the_files_and_read_back() {
        if !root_or_skip("kernel_limits_are_written_to_the_files_and_read_back") {
            return;
        }
        let tp = TestPath::new();
        let cg = tp.setup();
        let (pg, killed) = cg.program("lim").unwrap();
        assert_eq!(killed, 0);
        pg.set_limits(Some(64 << 20), Some(0.5), Some(20)).unwrap();
        let want = Limits {
            memory: Some(64 << 20),
            cpu: Some(0.5),
            pids: Some(20),
        };
        assert_eq!(pg.limits(), want);
        match cg.layout() {
            Layout::V2 => {
                let d = cg.parent_path().join("lim");
                assert_eq!(fs::read_to_string(d.join("cpu.max")).unwrap(), "50000 100000\n");
            }
            Layout::Hybrid | Layout::V1 => {
                let cpu = Path::new("/sys/fs/cgroup/cpu").join(&tp.path[1..]).join("lim");
                assert_eq!(fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap(), "50000\n");
                let mem = pg.path().join("memory.limit_in_bytes");
                assert_eq!(fs::read_to_string(mem).unwrap(), "67108864\n");
            }
        }
        pg.set_limits(None, None, None).unwrap();
        assert_eq!(pg.limits(), Limits::default());
        pg.remove().unwrap();
        cg.cleanup();
        assert!(!cg.parent_path().exists(), "cleanup removes the empty parent");
    }

    #[test]
    fn kernel_a_process_put_in_by_procs_files_is_killed_and_the_events_file_says_so() {
        if !root_or_skip("kernel_a_process_put_in_by_procs_files_is_killed_and_the_events_file_says_so") {
            return;
        }
        let tp = TestPath::new();
        let cg = tp.setup();
        let (pg, _) = cg.program("ev").unwrap();
        let events = pg.events_file().expect("a cgroup2 directory exists on this host");
        let mut reactor = Reactor::new().unwrap();
        reactor
            .add(events.as_fd(), Token::new(Owner::Supervisor, 1), Interest::Priority)
            .unwrap();
        assert_eq!(ProgramCgroup::events_populated(&events), Some(false));
        assert!(!pg.populated());

        let (mut child, _stdin) = Proc::gated("sleep 30");
        move_in(&pg, child.pid());
        let own = fs::read_to_string(format!("/proc/{}/cgroup", child.pid())).unwrap();
        for hier in ["memory", "pids", ":cpu:", "0::"] {
            let line = own.lines().find(|l| l.contains(hier)).unwrap_or_default();
            assert!(line.ends_with(&format!("{}/ev", tp.path)), "{hier}: {own}");
        }
        assert!(pg.populated());
        assert_eq!(pg.pids(), vec![child.pid()]);
        // populated flipped to 1: EPOLLPRI, and re-reading clears it.
        let ready = reactor.wait(Some(Instant::now() + Duration::from_secs(5))).unwrap();
        assert!(ready.iter().any(|r| r.priority), "{ready:?}");
        assert_eq!(ProgramCgroup::events_populated(&events), Some(true));
        let again = reactor.wait(Some(Instant::now() + Duration::from_millis(50))).unwrap();
        assert!(again.is_empty(), "a read re-arms the kernfs file: {again:?}");
        let usage = pg.usage();
        assert!(
            usage.memory_bytes.is_some() && usage.cpu_usage_usec.is_some(),
            "{usage:?}"
        );

        pg.kill_all().unwrap();
        let ready = reactor.wait(Some(Instant::now() + Duration::from_secs(5))).unwrap();
        assert!(ready.iter().any(|r| r.priority), "{ready:?}");
        assert_eq!(ProgramCgroup::events_populated(&events), Some(false));
        assert!(!pg.populated());
        assert_eq!(child.wait_exit(Duration::from_secs(5)).signal(), Some(9));
        pg.remove().unwrap();
        cg.cleanup();
    }

    #[test]
    fn kernel_usage_read_through_the_kept_files_grows_as_the_program_allocates_and_runs() {
        if !root_or_skip("kernel_usage_read_through_the_kept_files_grows_as_the_program_allocates_and_runs") {
            return;
        }
        let tp = TestPath::new();
        let cg = tp.setup();
        let (pg, _) = cg.program("use").unwrap();
        // The shell holds ~24 MB of output in memory, then waits; producing it costs CPU time.
        let (mut child, mut stdin) = Proc::gated("x=$(head -c 24000000 /dev/zero | tr '\\0' a); read done");
        move_in(&pg, child.pid());
        let before = pg.usage();
        let (mem0, cpu0) = (before.memory_bytes.unwrap(), before.cpu_usage_usec.unwrap());
        go(&mut stdin);
        let after = wait_for(Duration::from_secs(20), "memory to grow by 20 MB", || {
            let u = pg.usage();
            match u.memory_bytes {
                Some(m) if m >= mem0 + 20_000_000 => Ok(u),
                _ => Err(format!("{u:?}, before {before:?}")),
            }
        });
        assert!(after.cpu_usage_usec.unwrap() > cpu0, "{after:?} vs {before:?}");
        assert_eq!(pg.usage.kept(), 2, "both files are kept open under the fd budget");
        // Past the fd budget the same values are read by path.
        let by_path = UsageFiles::open(cg.layout(), &pg.dirs, 0);
        assert_eq!(by_path.kept(), 0);
        let u = by_path.read();
        assert!(
            u.memory_bytes.unwrap() >= mem0 + 20_000_000 && u.cpu_usage_usec.unwrap() > cpu0,
            "{u:?}"
        );
        // A fresh open of the same file says the same as the kept fd, once the shell waits.
        let fresh = || {
            let file = match cg.layout() {
                Layout::V2 => pg.path().join(v2::MEMORY_CURRENT),
                Layout::Hybrid | Layout::V1 => pg.path().join(v1::MEMORY_USAGE),
            };
            fs::read_to_string(file).unwrap().trim().parse::<u64>().unwrap()
        };
        wait_for(Duration::from_secs(5), "the kept fd to agree with a fresh open", || {
            let (kept, now) = (pg.usage().memory_bytes, fresh());
            if kept == Some(now) && kept == pg.usage().memory_bytes {
                Ok(())
            } else {
                Err(format!("kept {kept:?}, fresh {now}"))
            }
        });

        go(&mut stdin);
        child.wait_exit(Duration::from_secs(5));
        wait_for(Duration::from_secs(5), "the cgroup to empty", || {
            if pg.populated() {
                Err("populated".into())
            } else {
                Ok(())
            }
        });
        pg.remove().unwrap();
        assert_eq!(
            pg.usage(),
            Usage::default(),
            "a removed cgroup's kept files read nothing"
        );
        cg.cleanup();
    }

    #[test]
    fn kernel_signal_all_reaches_children_of_the_program() {
        if !root_or_skip("kernel_signal_all_reaches_children_of_the_program") {
            return;
        }
        let tp = TestPath::new();
        let cg = tp.setup();
        let (pg, _) = cg.program("sig").unwrap();
        let (mut child, mut stdin) = Proc::gated("sleep 30 & sleep 30 & wait");
        move_in(&pg, child.pid());
        go(&mut stdin);
        wait_for(Duration::from_secs(5), "sh and two sleeps", || {
            let pids = pg.pids();
            (pids.len() == 3).then_some(()).ok_or(format!("{pids:?}"))
        });
        assert_eq!(pg.signal_all(15), 3);
        wait_for(Duration::from_secs(5), "an empty cgroup", || {
            (!pg.populated()).then_some(()).ok_or(format!("{:?}", pg.pids()))
        });
        assert_eq!(child.wait_exit(Duration::from_secs(5)).signal(), Some(15));
        cg.cleanup();
    }

    #[test]
    fn kernel_freeze_and_kill_empties_a_forking_program_without_cgroup_kill() {
        if !root_or_skip("kernel_freeze_and_kill_empties_a_forking_program_without_cgroup_kill") {
            return;
        }
        let tp = TestPath::new();
        let cg = tp.setup();
        let (pg, _) = cg.program("fork").unwrap();
        // The pids limit bounds the loop should the kill fail.
        pg.set_limits(None, None, Some(40)).unwrap();
        let (mut child, mut stdin) = Proc::gated("while :; do sleep 30 & done");
        move_in(&pg, child.pid());
        go(&mut stdin);
        wait_for(Duration::from_secs(5), "a few sleeps", || {
            let n = pg.pids().len();
            (n >= 5).then_some(()).ok_or(format!("{n} pids"))
        });
        pg.kill_all_with(false).unwrap();
        wait_for(Duration::from_secs(5), "an empty cgroup", || {
            if pg.populated() {
                pg.kill_all_with(false).unwrap();
                return Err(format!("{:?}", pg.pids()));
            }
            Ok(())
        });
        // The shell is gone with its sleeps (killed, or ended by a fork refused at pids.max).
        child.wait_exit(Duration::from_secs(5));
        cg.cleanup();
    }

    #[test]
    fn kernel_oom_kills_grow_when_a_process_exceeds_its_memory_limit() {
        if !root_or_skip("kernel_oom_kills_grow_when_a_process_exceeds_its_memory_limit") {
            return;
        }
        let tp = TestPath::new();
        let cg = tp.setup();
        let (pg, _) = cg.program("oom").unwrap();
        pg.set_limits(Some(20 << 20), None, None).unwrap();
        assert_eq!(pg.oom_kills(), Some(0));
        let (mut child, mut stdin) = Proc::gated("x=a; while :; do x=$x$x; done");
        move_in(&pg, child.pid());
        go(&mut stdin);
        let st = child.wait_exit(Duration::from_secs(30));
        assert_eq!(st.signal(), Some(9), "{st:?}");
        assert!(pg.oom_kills().unwrap_or(0) >= 1, "{:?}", pg.oom_kills());
        cg.cleanup();
    }

    #[test]
    fn kernel_a_memory_limit_below_usage_is_refused_with_the_errno() {
        if !root_or_skip("kernel_a_memory_limit_below_usage_is_refused_with_the_errno") {
            return;
        }
        let tp = TestPath::new();
        let cg = tp.setup();
        if cg.layout() == Layout::V2 {
            eprintln!("SKIP: v2 memory.max accepts a limit below usage (it reclaims or OOM-kills)");
            return;
        }
        let (pg, _) = cg.program("big").unwrap();
        pg.set_limits(Some(100 << 20), None, None).unwrap();
        // The shell holds 20 MB in a variable while it waits for its `sleep`.
        let (child, mut stdin) = Proc::gated("x=$(head -c 20000000 /dev/zero | tr '\\0' a); sleep 30");
        move_in(&pg, child.pid());
        go(&mut stdin);
        wait_for(Duration::from_secs(10), "20 MB held by sh and its sleep", || {
            let used = pg.usage().memory_bytes.unwrap_or(0);
            let n = pg.pids().len();
            (used >= 15_000_000 && n == 2)
                .then_some(())
                .ok_or(format!("{used} bytes, {n} processes"))
        });
        let err = pg.set_limits(Some(1 << 20), None, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("memory.limit_in_bytes")
                && text.contains("device or resource busy")
                && text.contains("raise memory_limit"),
            "{text}"
        );
        assert_eq!(pg.limits().memory, Some(100 << 20), "the old limit stays");
        pg.kill_all().unwrap();
        cg.cleanup();
    }

    #[test]
    fn kernel_program_kills_the_leftovers_of_an_earlier_holden() {
        if !root_or_skip("kernel_program_kills_the_leftovers_of_an_earlier_holden") {
            return;
        }
        let tp = TestPath::new();
        let earlier = tp.setup();
        let (pg, _) = earlier.program("left").unwrap();
        let (mut a, _sa) = Proc::gated("sleep 30");
        let (mut b, _sb) = Proc::gated("sleep 30");
        move_in(&pg, a.pid());
        move_in(&pg, b.pid());
        // The earlier holden died without cleaning up: its lock went with it. (A fork by a
        // test running in parallel may hold a copy of the lock's fd until its exec: retry.)
        drop(earlier);
        let deadline = Instant::now() + Duration::from_secs(5);
        let later = loop {
            match Cgroups::setup(CgroupMode::Required, &tp.path) {
                Ok(c) => break c.expect("Required gives cgroups or an error"),
                Err(CgroupError::Taken { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        };
        let (again, killed) = later.program("left").unwrap();
        assert_eq!(killed, 2);
        assert!(!again.populated());
        assert_eq!(a.wait_exit(Duration::from_secs(5)).signal(), Some(9));
        assert_eq!(b.wait_exit(Duration::from_secs(5)).signal(), Some(9));
        later.cleanup();
    }

    #[test]
    fn kernel_stop_strangers_ends_and_removes_every_cgroup_that_is_no_program() {
        if !root_or_skip("kernel_stop_strangers_ends_and_removes_every_cgroup_that_is_no_program") {
            return;
        }
        let tp = TestPath::new();
        let earlier = tp.setup();
        let (keep, _) = earlier.program("keep").unwrap();
        let (gone, _) = earlier.program("gone").unwrap();
        let (stubborn, _) = earlier.program("stubborn").unwrap();
        let (mut k, _sk) = Proc::gated("sleep 30");
        let (mut g, _sg) = Proc::gated("sleep 30");
        // Ignores SIGTERM: SIGKILL after the grace ends it.
        let (mut s, mut ss) = Proc::gated("trap '' TERM; sleep 30 & wait");
        move_in(&keep, k.pid());
        move_in(&gone, g.pid());
        move_in(&stubborn, s.pid());
        go(&mut ss);
        wait_for(Duration::from_secs(5), "the stubborn shell and its sleep", || {
            let n = stubborn.pids().len();
            (n == 2).then_some(()).ok_or(format!("{n}"))
        });
        // An empty sub-cgroup below a stranger goes with it.
        for d in gone.dirs.all() {
            fs::create_dir(d.join("sub")).unwrap();
        }
        drop(earlier);
        let later = tp.setup();
        let mut done = later.stop_strangers(|name| name == "keep");
        done.sort_by(|a, b| a.0.cmp(&b.0));
        let done: Vec<(String, usize)> = done.into_iter().map(|(n, r)| (n, r.unwrap())).collect();
        assert_eq!(done, vec![("gone".to_string(), 1), ("stubborn".to_string(), 2)]);
        assert_eq!(g.wait_exit(Duration::from_secs(5)).signal(), Some(15), "SIGTERM first");
        assert_eq!(s.wait_exit(Duration::from_secs(5)).signal(), Some(9), "then SIGKILL");
        for d in gone.dirs.all().chain(stubborn.dirs.all()) {
            assert!(!d.exists(), "{} is removed", d.display());
        }
        assert_eq!(keep.pids(), vec![k.pid()], "a program of the file is left alone");
        keep.kill_all().unwrap();
        k.wait_exit(Duration::from_secs(5));
        later.cleanup();
    }

    #[test]
    fn kernel_relative_path_lives_below_our_own_cgroup() {
        if !root_or_skip("kernel_relative_path_lives_below_our_own_cgroup") {
            return;
        }
        let mut tp = TestPath::new();
        let rel = tp.path.trim_start_matches('/').to_string();
        let me = fs::read_to_string("/proc/self/cgroup").unwrap();
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let d = detect::detect(&mi, &me, Path::new("/")).unwrap();
        for h in d.v1.iter().chain(d.unified.as_ref()) {
            tp.extra.push(h.own.clone().unwrap().join(&rel));
        }
        let cg = Cgroups::setup(CgroupMode::Required, &rel).unwrap().unwrap();
        let mem_own = d.v1.iter().find(|h| h.controllers.contains(&"memory".to_string()));
        if let Some(h) = mem_own {
            assert_eq!(cg.parent_path(), h.own.clone().unwrap().join(&rel));
        }
        for dir in &tp.extra {
            assert!(dir.is_dir(), "{}", dir.display());
        }
        let (pg, _) = cg.program("p").unwrap();
        assert!(pg.path().starts_with(cg.parent_path()));
        cg.cleanup();
        for dir in &tp.extra {
            assert!(!dir.exists(), "{}", dir.display());
        }
    }
}

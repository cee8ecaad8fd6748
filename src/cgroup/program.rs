//! One program's cgroup(s): limits, the `cgroup.procs` fds for the child, emptiness,
//! signalling and killing every process in it, removal.

use super::*;

/// The cgroup(s) of one program. Clones share the open usage files.
#[derive(Debug, Clone)]
pub struct ProgramCgroup {
    pub(super) layout: Layout,
    pub(super) dirs: Dirs,
    pub(super) usage: Rc<UsageFiles>,
    /// Use `cgroup.kill` where the kernel has it (see `Cgroups::cgroup_kill`).
    pub(super) cgroup_kill: bool,
}

impl ProgramCgroup {
    /// The v2 directory that carries the controllers (v2 only).
    pub(super) fn v2_ctrl(&self) -> Option<&Path> {
        match self.layout {
            Layout::V2 => self.dirs.unified.as_deref(),
            Layout::Hybrid | Layout::V1 => None,
        }
    }

    /// The directory holding `v1_controller`'s files, or the v2 one.
    pub(super) fn controller_dir(&self, v1_controller: &str) -> Option<&Path> {
        match self.layout {
            Layout::V2 => self.dirs.unified.as_deref(),
            Layout::Hybrid | Layout::V1 => self.dirs.v1_dir(v1_controller),
        }
    }

    /// Write one limit file; `None` with the file missing has nothing to lift.
    pub(super) fn set_one(
        &self,
        controller: &'static str,
        file: &str,
        value: String,
        is_limit: bool,
    ) -> Result<(), CgroupError> {
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
    /// hybrid), done at once (`None`). Else a `KillJob` (freeze, SIGKILL every pid, thaw, in
    /// rounds) that the caller steps to its end without waiting. Either way the caller waits for
    /// emptiness itself, through `events_file` or its own deadline.
    pub fn kill_all(&self, now: Instant) -> Result<Option<KillJob>, CgroupError> {
        self.kill_all_with(self.cgroup_kill, now)
    }

    /// `kill_all`, with `cgroup.kill` left unused when `use_cgroup_kill` is false: the fallback,
    /// on a kernel that has it (tests, and `TEST_NO_CGROUP_KILL`).
    pub(super) fn kill_all_with(&self, use_cgroup_kill: bool, now: Instant) -> Result<Option<KillJob>, CgroupError> {
        if use_cgroup_kill
            && let Some(u) = &self.dirs.unified
            && u.join(v2::CGROUP_KILL).exists()
        {
            write_file(&u.join(v2::CGROUP_KILL), "1")?;
            // The v1 trees hold the same processes; one moved there by hand dies too.
            self.signal_all(rustix::process::Signal::KILL.as_raw());
            return Ok(None);
        }
        Ok(Some(KillJob::start(self.clone(), now)))
    }

    /// Thaw both freezers (v2 `cgroup.freeze`, v1 freezer), where they are: a holden killed
    /// while a `KillJob` had the cgroup frozen left it so.
    pub(super) fn thaw(&self) {
        if let Some(u) = &self.dirs.unified {
            let _ = write_file(&u.join(v2::CGROUP_FREEZE), "0");
        }
        if let Some(f) = self.dirs.v1_dir(detect::V1_FREEZER) {
            let _ = write_file(&f.join(v1::FREEZER_STATE), "THAWED");
        }
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
    pub(super) fn remove_tree(&self) -> Result<(), CgroupError> {
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
pub(super) fn remove_dirs<'a>(dirs: impl Iterator<Item = &'a Path>) -> Result<(), CgroupError> {
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

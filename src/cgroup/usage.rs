//! Usage read on demand through files each program keeps open.

use super::*;

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
pub(super) const PIDS_CURRENT: &str = "pids.current";

/// How CPU time is read: the first file that exists of v2 `cpu.stat` (in every cgroup2
/// directory, controllers or not, so also on hybrid) and v1 `cpuacct.usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CpuSource {
    /// `cpu.stat`, key `usage_usec`.
    V2Stat,
    /// `cpuacct.usage`, nanoseconds.
    V1AcctNs,
}

/// One usage file: kept open, or (past the fd budget, or when it could not be opened) opened
/// again at each read as before.
#[derive(Debug)]
pub(super) enum UsageFile {
    Kept(File),
    ByPath(PathBuf),
}

impl UsageFile {
    /// Open `path`, keeping the fd only while it is below `fd_budget`.
    pub(super) fn open(path: PathBuf, fd_budget: u64) -> UsageFile {
        match File::open(&path) {
            Ok(f) if (f.as_raw_fd() as u64) < fd_budget => UsageFile::Kept(f),
            Ok(_) | Err(_) => UsageFile::ByPath(path),
        }
    }

    pub(super) fn read<T>(&self, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
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
pub(super) struct UsageFiles {
    memory: Option<UsageFile>,
    cpu: Option<(UsageFile, CpuSource)>,
    /// Read by path: it is for `monitor`, and must not cost every program a third fd.
    pids: Option<UsageFile>,
}

impl UsageFiles {
    /// Half of the RLIMIT_NOFILE soft limit (no limit: no budget).
    pub(super) fn fd_budget() -> u64 {
        rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .map_or(u64::MAX, |n| n / 2)
    }

    pub(super) fn open(layout: Layout, dirs: &Dirs, fd_budget: u64) -> UsageFiles {
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

    pub(super) fn read(&self) -> Usage {
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
    pub(super) fn kept(&self) -> usize {
        let kept = |f: &UsageFile| matches!(f, UsageFile::Kept(_));
        usize::from(self.memory.as_ref().is_some_and(kept))
            + usize::from(self.cpu.as_ref().is_some_and(|(f, _)| kept(f)))
    }
}

/// Read an open cgroup file from offset 0 into a stack buffer and parse it. The files read
/// here are a number or a short keyed list (`cpu.stat` is ~250 bytes with every controller);
/// a file longer than the buffer is parsed from what fits, and `usage_usec` is its first line.
pub(super) fn read_at_start<T>(file: &File, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    let mut buf = [0u8; 1024];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse(std::str::from_utf8(&buf[..n]).ok()?)
}

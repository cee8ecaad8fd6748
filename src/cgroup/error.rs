//! Everything that can go wrong with cgroups, and the file reads and writes that say so.

use super::*;

/// Everything that can go wrong with cgroups. Each message is one sentence with what to do.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No hierarchy holden can use.
    #[error("cannot use cgroups: {why}; mount the cgroup file systems or set cgroups = \"off\"")]
    Unavailable {
        #[source]
        why: detect::Unusable,
    },
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
pub(super) fn hint(op: &str, path: &Path, e: &io::Error) -> &'static str {
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

pub(super) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Write `value` in one write(2), as the kernel wants it.
pub(super) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let werr = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut f = OpenOptions::new().write(true).truncate(true).open(path).map_err(werr)?;
    f.write_all(value.as_bytes()).map_err(werr)
}

pub(super) fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(io_err("read", path))
}

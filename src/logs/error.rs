//! What can go wrong with a log file, each with what to do.

use super::*;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "cannot create an output pipe for {program}: {}; raise the open files limit (ulimit -n)",
        crate::error::os_text(source)
    )]
    Pipe {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot watch the output pipe of {program}: {}; raise the open files limit (ulimit -n)",
        crate::error::os_text(source)
    )]
    Register {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot create log folder {}: {}; create it or fix its permissions", path.display(), crate::error::os_text(source))]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open log file {}: {}; {}", path.display(), crate::error::os_text(source), open_hint(source))]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rotate log file {}: {}; check the permissions of its folder and the free disk space", path.display(), crate::error::os_text(source))]
    Rotate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write log file {}: {}; free disk space or fix the file", path.display(), crate::error::os_text(source))]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LogError {
    /// Failed for lack of a resource that comes back (fds, memory): the spawn is tried again
    /// later instead of giving up.
    pub fn short_of_resources(&self) -> bool {
        let short = |e: &io::Error| {
            matches!(
                e.raw_os_error().map(rustix::io::Errno::from_raw_os_error),
                Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE | rustix::io::Errno::NOMEM)
            )
        };
        match self {
            LogError::Pipe { source, .. } | LogError::Register { source, .. } => short(source),
            LogError::Open { source, .. } => short(source),
            _ => false,
        }
    }
}

/// What to do about a log file that cannot be opened.
pub(super) fn open_hint(e: &io::Error) -> &'static str {
    match Errno::from_io_error(e) {
        // O_NONBLOCK open of a FIFO (sink.rs) that nobody reads.
        Some(Errno::NXIO) => "start its reader first (a FIFO that no process reads)",
        Some(Errno::ISDIR) => "name a file, not a folder",
        _ => "check the permissions of the file and its folder",
    }
}

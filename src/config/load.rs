//! Everything the configuration reads from the file system, in one place.
//!
//! `resolve` is a function of the file's text and the environment: whatever else it must
//! know (what an `environment_file` holds, whether a log path is a stream, the kernel's
//! `fs.nr_open`, the working directory a relative config path is against) it asks through
//! [`Files`]. [`load`] reads the config file and resolves it against [`System`], the real
//! file system; tests can answer through a `Files` of their own.

use std::io;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, resolve};

/// What resolving a config needs to know that is not in its text.
pub trait Files {
    /// The text of an environment file (see [`read_env_file`]).
    fn env_file(&self, path: &Path) -> io::Result<String>;
    /// Is this output path a stream rather than a log file (see [`is_stream`])?
    fn is_stream(&self, path: &Path) -> bool;
    /// `fs.nr_open`: the most open files any process may be allowed; None when unknown.
    fn nr_open(&self) -> Option<u64>;
    /// `path` made absolute (against the working directory when it is relative).
    fn absolute(&self, path: &Path) -> io::Result<PathBuf>;
}

/// The real file system and kernel.
pub struct System;

impl Files for System {
    fn env_file(&self, path: &Path) -> io::Result<String> {
        read_env_file(path)
    }

    fn is_stream(&self, path: &Path) -> bool {
        is_stream(path)
    }

    fn nr_open(&self) -> Option<u64> {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn absolute(&self, path: &Path) -> io::Result<PathBuf> {
        std::path::absolute(path)
    }
}

/// Read and resolve the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::whole_file(
            &path.display().to_string(),
            format!(
                "cannot read the config file {}: {}; give another with -c FILE or $HOLDEN_CONFIG",
                path.display(),
                io_reason(&e)
            ),
        )
    })?;
    load_str(path, &text)
}

/// Resolve `text` as if it were the contents of `path` (relative paths are against its
/// folder), against the real file system.
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    resolve::resolve(path, text, &System)
}

/// Why a file could not be read, in words.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::InvalidData => "it is not UTF-8 text".to_string(),
        _ => crate::error::os_text(e),
    }
}

/// The most an environment file may hold.
pub const ENV_FILE_MAX: u64 = 1 << 20;

/// An environment file's text. Only a regular file of at most `ENV_FILE_MAX` bytes: the file is
/// read inside holden's loop at a reload, where a FIFO with no writer (or `/dev/zero`) would
/// block or never end. Opened non-blocking, so that opening a FIFO does not wait either.
pub fn read_env_file(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    if meta.len() > ENV_FILE_MAX {
        return Err(io::Error::other(format!("it is larger than {} bytes", ENV_FILE_MAX)));
    }
    let mut text = String::new();
    file.take(ENV_FILE_MAX + 1).read_to_string(&mut text)?;
    Ok(text)
}

/// Does `path` name one of holden's own descriptors (`/dev/stdout`, `/dev/stderr`,
/// `/dev/fd/N`, anything below /proc), by its name alone? Such a path names whatever that
/// descriptor is, a regular file included, and is a stream whatever the file system says.
pub fn names_stream(path: &Path) -> bool {
    ["/dev/stdout", "/dev/stderr", "/dev/fd", "/proc"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Is `path` a stream rather than a log file of holden's own: a pipe, terminal, FIFO or device,
/// or a name of one of holden's own descriptors ([`names_stream`]), which must never be
/// rotated, that is renamed? Such a path is appended to in order, never spliced or rotated,
/// may be shared by programs, and has no log for `holden logs` to read. (A log file below
/// /dev/shm is a log file.)
pub fn is_stream(path: &Path) -> bool {
    names_stream(path) || std::fs::metadata(path).is_ok_and(|m| !m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_devices_fifos_and_names_of_holdens_own_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.log");
        std::fs::write(&file, "").unwrap();
        let fifo = dir.path().join("fifo");
        let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, mode, 0).unwrap();
        for stream in [
            "/dev/stdout",
            "/dev/stderr",
            "/dev/fd/1",
            "/proc/self/fd/2",
            "/dev/null",
        ] {
            assert!(is_stream(Path::new(stream)), "{stream}");
        }
        assert!(is_stream(&fifo));
        assert!(!is_stream(&file), "a regular file is a log file");
        assert!(!is_stream(&dir.path().join("new.log")), "so is one not made yet");
        assert!(
            !is_stream(Path::new("/dev/shm/holden-test-web.log")),
            "a log in /dev/shm too"
        );
    }
}

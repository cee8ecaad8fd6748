//! holden's own log: one line per record, `2026-11-23T07:41:00.123Z INFO  web: ...`, to stderr
//! or to the `logfile`. `log_level` sets the level; `RUST_LOG` overrides it.

use std::io::Write;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::config::{LogFile, SupervisorSettings};

/// The `logfile` and its path, shared by the logger and `reopen`.
static LOGFILE: OnceLock<Mutex<(PathBuf, std::fs::File)>> = OnceLock::new();

fn open(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open logfile {}: {}", path.display(), crate::error::os_text(&e)))
}

/// The logger's writer: every record goes to the current `logfile`, which `reopen` can swap.
struct SharedFile(&'static Mutex<(PathBuf, std::fs::File)>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SIGUSR1 / `holden reopen`: open the `logfile` path again (after an external `mv`), so
/// logrotate's `create` works for holden's own log as for the programs'.
pub fn reopen() {
    let Some(shared) = LOGFILE.get() else { return };
    let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
    match open(&guard.0) {
        Ok(file) => guard.1 = file,
        Err(e) => {
            drop(guard);
            log::warn!("{e}; still writing to the old one");
        }
    }
}

pub fn init(settings: &SupervisorSettings) -> Result<(), String> {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(settings.log_level);
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    builder.format(|buf, record| {
        writeln!(
            buf,
            "{} {:<5} {}",
            humantime::format_rfc3339_millis(std::time::SystemTime::now()),
            record.level(),
            record.args()
        )
    });
    if let LogFile::Path(path) = &settings.logfile {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = open(path)?;
        let shared = LOGFILE.get_or_init(|| Mutex::new((path.clone(), file)));
        builder.target(env_logger::Target::Pipe(Box::new(SharedFile(shared))));
    }
    // A second init (tests, reload) keeps the first logger.
    let _ = builder.try_init();
    Ok(())
}

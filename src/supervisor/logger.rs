//! holden's own log: one line per record, `2026-11-23T07:41:00.123Z INFO  web: ...`, to stderr
//! or to the `logfile`. `log_level` sets the level; `RUST_LOG` overrides it.

use std::io::Write;

use crate::config::{LogFile, SupervisorSettings};

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
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                format!(
                    "cannot open logfile {}: {}",
                    path.display(),
                    crate::process::spawn::io_text(&e)
                )
            })?;
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    // A second init (tests, reload) keeps the first logger.
    let _ = builder.try_init();
    Ok(())
}

//! From the raw file to `Config`: defaults, paths, validation, all errors at once.

use std::path::Path;

use super::Config;

/// Every error found in one config file, each with file:line:col, key, found and expected.
#[derive(Debug, thiserror::Error)]
#[error("{}", .messages.join("\n"))]
pub struct ConfigError {
    pub messages: Vec<String>,
}

/// Read and resolve the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        messages: vec![format!("cannot read {}: {e}", path.display())],
    })?;
    load_str(path, &text)
}

/// Resolve `text` as if it were the contents of `path` (relative paths are against its folder).
pub fn load_str(_path: &Path, _text: &str) -> Result<Config, ConfigError> {
    Err(ConfigError {
        messages: vec!["config parsing is not written yet".into()],
    })
}

/// The resolved programs as `holden check` prints them, every default filled in.
pub fn render(config: &Config) -> String {
    format!("{config:#?}\n")
}

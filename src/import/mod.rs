//! `holden import`: read a supervisord configuration and write the equivalent `supervisor.toml`.
//!
//! `ini` reads the INI dialect (Python's ConfigParser as supervisord configures it), this module
//! follows `[include]`, `expand` does supervisord's `%(name)s` expansions, `shlex` its
//! `environment` syntax and `convert` maps sections and options. Nothing here runs a program or
//! talks to a running holden: text in, text and warnings out.

mod convert;
mod expand;
mod glob;
mod ini;
mod shlex;

use std::path::{Path, PathBuf};

pub use ini::Diag;

use convert::Host;
use ini::Ini;

/// Where supervisord looks for its configuration when none is named (its `-c`), in order. The
/// first two are relative to the working directory.
pub const SEARCH_PATH: &[&str] = &[
    "supervisord.conf",
    "etc/supervisord.conf",
    "/etc/supervisord.conf",
    "/etc/supervisor/supervisord.conf",
];

/// Why an import did not produce a file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("no supervisord configuration found (looked for {}); name one: holden import FILE", SEARCH_PATH.join(", "))]
    NotFound,
    /// Problems in the input, each with its file and line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Input(Vec<Diag>),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The converted TOML and the warnings to show, one line each.
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// The configuration file to read: `file`, else the first of [`SEARCH_PATH`] that exists.
pub fn find(file: Option<&Path>) -> Result<PathBuf, ImportError> {
    match file {
        Some(f) => Ok(f.to_path_buf()),
        None => SEARCH_PATH
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or(ImportError::NotFound),
    }
}

/// Read `file` and the files it includes, and convert them.
pub fn import(file: &Path) -> Result<Imported, ImportError> {
    let env = |k: &str| std::env::var(k).ok();
    let host = Host {
        env: &env,
        node_name: rustix::system::uname().nodename().to_string_lossy().into_owned(),
    };
    let mut ini = Ini::default();
    ini.read_file(file).map_err(ImportError::Input)?;
    let warnings = include(&mut ini, file, &host).map_err(ImportError::Input)?;
    let out = convert::convert(&ini, &host, warnings).map_err(ImportError::Input)?;
    Ok(Imported {
        toml: out.toml,
        warnings: out.warnings,
    })
}

/// supervisord's `[include] files = a/*.conf b.conf`: whitespace-separated globs relative to
/// the main file's folder, each one's matches read in sorted order. Only the main file's
/// `[include]` counts: supervisord reads the list once, so an `[include]` in an included file is
/// ignored (with a warning here).
fn include(ini: &mut Ini, file: &Path, host: &Host<'_>) -> Result<Vec<String>, Vec<Diag>> {
    let mut warnings = Vec::new();
    let Some(section) = ini.section("include") else {
        return Ok(warnings);
    };
    let Some(entry) = section.get("files").cloned() else {
        return Err(vec![Diag {
            file: file.to_path_buf(),
            line: section.line,
            message: "[include] needs a files = line".to_string(),
        }]);
    };
    let here = std::path::absolute(
        file.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .unwrap_or_default();
    let diag = |message: String| {
        vec![Diag {
            file: file.to_path_buf(),
            line: entry.line,
            message: format!("[include] files: {message}"),
        }]
    };
    let here_text = here.display().to_string();
    let node = host.node_name.clone();
    let lookup = |name: &str| -> Option<expand::Value> {
        let text = |s: &str| Some(expand::Value::Pieces(vec![expand::Piece::Text(s.to_string())]));
        match name {
            "here" => text(&here_text),
            "host_node_name" => text(&node),
            _ => Some(expand::Value::Pieces(vec![expand::Piece::Env(
                name.strip_prefix("ENV_")?.to_string(),
            )])),
        }
    };
    let files = expand::expand(&entry.value, &lookup)
        .map_err(&diag)?
        .resolve(host.env)
        .map_err(&diag)?;
    for pattern in files.split_whitespace() {
        let pattern = here.join(pattern);
        let matches = glob::glob(&pattern);
        if matches.is_empty() {
            warnings.push(format!(
                "{}:{}: [include] files: no file matches {}",
                file.display(),
                entry.line,
                pattern.display()
            ));
        }
        for m in matches {
            if m.is_dir() {
                continue;
            }
            ini.read_file(&m)?;
        }
    }
    if let Some(now) = ini.section("include").and_then(|s| s.get("files"))
        && now.file != 0
    {
        warnings.push(format!(
            "{}:{}: [include] in an included file is ignored, as supervisord ignores it",
            ini.files[now.file].display(),
            now.line
        ));
    }
    Ok(warnings)
}

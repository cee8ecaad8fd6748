//! `holden import`: warnings on stderr, the TOML on stdout or in OUT; exit 2 on a bad input.

use std::path::Path;

use super::error::Result;
use crate::import::{self, ImportError};

pub fn import(file: Option<&Path>, output: Option<&Path>) -> Result {
    let imported = import::import(&import::find(file)?)?;
    for w in &imported.warnings {
        eprintln!("holden: warning: {w}");
    }
    match output {
        Some(out) => std::fs::write(out, &imported.toml).map_err(|source| ImportError::Write {
            path: out.to_path_buf(),
            source,
        })?,
        None => super::out(&imported.toml)?,
    }
    Ok(0)
}

//! The supervisor: programs, their states, and the loop that keeps them running.

use std::path::Path;

use crate::Failure;
use crate::config;

pub fn check(path: Option<&Path>) -> Result<u8, Failure> {
    let path = config::config_path(path);
    match config::load(&path) {
        Ok(cfg) => {
            print!("{}", config::resolve::render(&cfg));
            Ok(0)
        }
        Err(e) => Err(Failure::usage(e.to_string())),
    }
}

pub fn run(_path: Option<&Path>) -> Result<u8, Failure> {
    Err(Failure::runtime("holden run is not written yet"))
}

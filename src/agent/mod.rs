//! `holden agent`, `holden spawn`, `holden ping`: the stateless pidfd-passing spawner and its clients.

use std::path::PathBuf;

use crate::Failure;

pub fn run_agent(_socket: Option<PathBuf>, _allow_uids: Vec<u32>) -> Result<u8, Failure> {
    Err(Failure::runtime("holden agent is not written yet"))
}

pub fn spawn_main(_agent: Option<PathBuf>, _restart: &str, _command: Vec<String>) -> Result<u8, Failure> {
    Err(Failure::runtime("holden spawn is not written yet"))
}

pub fn ping_main(_agent: Option<PathBuf>) -> Result<u8, Failure> {
    Err(Failure::runtime("holden ping is not written yet"))
}

//! holden: a process supervisor. Parse the command line and hand it to `cli::run`, which runs
//! the command, reports a failure and chooses the exit code.

mod agent;
mod cgroup;
mod cli;
mod config;
mod control;
mod error;
mod health;
mod import;
mod listen;
mod logs;
mod process;
mod reactor;
mod size;
mod supervisor;
#[allow(unsafe_code)]
mod sys;
mod version;

#[cfg(test)]
mod fuzz;

/// Tests count what each thread allocates (sys/alloc_count.rs): the fuzz tests bound it.
#[cfg(test)]
#[global_allocator]
static ALLOC: sys::alloc_count::Counting = sys::alloc_count::Counting;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::run(cli::Cli::parse())
}

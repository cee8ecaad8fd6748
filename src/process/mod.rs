//! Processes: spawning a program's main process (argv, environment, directory, credentials,
//! cgroups joined before exec), and reaping every child of holden in one place.

pub mod reap;
pub mod spawn;
pub mod users;

pub use reap::{ExitKind, reap_all};

//! Which holden this is, for `--version` and the supervisor's first log line.

/// `0.1.0 (1a2b3c4)`: the package version and, when built in a git checkout, the commit
/// (see build.rs).
pub const VERSION: &str = env!("HOLDEN_VERSION");

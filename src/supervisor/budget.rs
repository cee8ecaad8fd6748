//! holden's open files: the soft RLIMIT_NOFILE raised to the hard limit at start, as systemd
//! and most daemons do, so that the connection budget of the control socket
//! ([`crate::control::server::connection_budget`]) has room and a reserve for supervision.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raise the soft open files limit to the hard one; returns the soft limit in force after.
/// Programs inherit it (`rlimits` in a program's settings can lower it for one program).
pub fn raise_nofile() -> u64 {
    let lim = getrlimit(Resource::Nofile);
    let current = lim.current.unwrap_or(u64::MAX);
    if lim.current != lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                let after = lim.maximum.unwrap_or(u64::MAX);
                log::debug!("open files limit raised from {current} to {after} (the hard limit)");
                return after;
            }
            Err(e) => log::debug!("cannot raise the open files limit from {current}: {e}"),
        }
    } else {
        log::debug!("open files limit: {current} (already the hard limit)");
    }
    current
}

#[cfg(test)]
mod tests {
    use crate::control::server::connection_budget;

    #[test]
    fn the_budget_keeps_a_reserve_per_program() {
        assert_eq!(connection_budget(1024, 0), 992);
        assert_eq!(connection_budget(1024, 10), 912);
        assert_eq!(connection_budget(64, 1), 24);
        assert_eq!(connection_budget(30, 1), 4);
        assert_eq!(connection_budget(64, 100), 4);
        assert!(connection_budget(u64::MAX, 5) > 1_000_000);
    }
}

//! holden's open files: the soft RLIMIT_NOFILE raised to the hard limit at start, as systemd
//! and most daemons do, so that the connection budget of the control socket
//! ([`crate::listen::connection_budget`]) has room and a reserve for supervision.

use std::sync::OnceLock;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The soft open files limit holden was started with, when it raised it: what programs get
/// back (as systemd does for its services), so that a program that uses select(2) or walks
/// every possible fd is not surprised by holden's raise.
static STARTED_WITH: OnceLock<Option<u64>> = OnceLock::new();

/// The open files limit a program starts with when its config sets no `rlimits.nofile`:
/// `None` when holden did not change its own.
pub fn programs_nofile() -> Option<Rlimit> {
    let soft = (*STARTED_WITH.get()?)?;
    Some(Rlimit {
        current: Some(soft),
        maximum: getrlimit(Resource::Nofile).maximum,
    })
}

/// Raise the soft open files limit to the hard one; returns the soft limit in force after.
/// Programs get the limit holden was started with back ([`programs_nofile`]).
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
                let _ = STARTED_WITH.set(lim.current);
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

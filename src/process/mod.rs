//! Processes: spawning a program's main process (argv, environment, directory, credentials,
//! cgroups joined before exec), and reaping every child of holden in one place.

pub mod nofile;
pub mod reap;
pub mod spawn;
pub mod users;

pub use reap::{ExitKind, reap_all};

/// How many live processes (not zombies) are in process group `pgid`, from `/proc/*/stat`.
pub fn group_members(pgid: i32) -> usize {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            let rest = stat.rfind(')').map_or("", |at| &stat[at + 1..]);
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
            pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
        })
        .count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_members_counts_our_own_group() {
        let me = rustix::process::getpgrp().as_raw_nonzero().get();
        assert!(super::group_members(me) >= 1);
        assert_eq!(super::group_members(i32::MAX), 0);
    }
}

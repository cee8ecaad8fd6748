//! The cgroup2 files holden reads and writes, and the text format of their values.
//!
//! On a unified host these carry the limits; on a hybrid host the cgroup2 tree has no
//! controllers, and holden uses only `cgroup.kill`, `cgroup.events`, `cgroup.freeze` and the
//! controller-less `cpu.stat` there.

pub const CGROUP_CONTROLLERS: &str = "cgroup.controllers";
pub const CGROUP_SUBTREE_CONTROL: &str = "cgroup.subtree_control";
/// Absent only in the real root cgroup: its presence tells a namespace root from the real one.
pub const CGROUP_TYPE: &str = "cgroup.type";
pub const CGROUP_EVENTS: &str = "cgroup.events";
pub const CGROUP_KILL: &str = "cgroup.kill";
pub const CGROUP_FREEZE: &str = "cgroup.freeze";
pub const MEMORY_MAX: &str = "memory.max";
pub const MEMORY_CURRENT: &str = "memory.current";
pub const MEMORY_EVENTS: &str = "memory.events";
pub const CPU_MAX: &str = "cpu.max";
pub const CPU_STAT: &str = "cpu.stat";
pub const PIDS_MAX: &str = "pids.max";

/// `memory.max` / `pids.max`: a number, or `max` for none.
pub fn max_value(limit: Option<u64>) -> String {
    match limit {
        Some(n) => n.to_string(),
        None => "max".to_string(),
    }
}

/// `cpu.max`: `"$QUOTA $PERIOD"`, quota `max` for none.
pub fn cpu_max(cpus: Option<f64>) -> String {
    match cpus {
        Some(c) => format!("{} {}", super::quota_us(c), super::CPU_PERIOD_US),
        None => format!("max {}", super::CPU_PERIOD_US),
    }
}

/// Read back `memory.max` / `pids.max`.
#[cfg(test)]
pub fn parse_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Read back `cpu.max` as CPUs.
#[cfg(test)]
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let quota: u64 = it.next()?.parse().ok()?;
    let period: u64 = it.next()?.parse().ok()?;
    (period > 0).then(|| quota as f64 / period as f64)
}

/// The value of `key` in a flat keyed file (`memory.events`, `cpu.stat`, `cgroup.events`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_is_quota_over_a_100ms_period() {
        assert_eq!(cpu_max(Some(0.5)), "50000 100000");
        assert_eq!(cpu_max(Some(1.5)), "150000 100000");
        assert_eq!(cpu_max(None), "max 100000");
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000"), None);
    }

    #[test]
    fn max_files_write_numbers_or_max() {
        assert_eq!(max_value(Some(31457280)), "31457280");
        assert_eq!(max_value(None), "max");
        assert_eq!(parse_max("20\n"), Some(20));
        assert_eq!(parse_max("max\n"), None);
    }

    #[test]
    fn keyed_files_give_one_value() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed(events, "oom_kill"), Some(2));
        assert_eq!(keyed(events, "oom"), Some(2));
        assert_eq!(keyed(events, "missing"), None);
        assert_eq!(keyed("populated 1\nfrozen 0\n", "populated"), Some(1));
    }
}

//! The cgroup v1 files holden reads and writes, and the text format of their values.
//!
//! `memory.memsw.*` is left alone: it exists only with swap accounting, and a memsw limit below
//! the memory limit is refused by the kernel, so holden limits memory only.

pub const CGROUP_PROCS: &str = "cgroup.procs";
pub const MEMORY_LIMIT: &str = "memory.limit_in_bytes";
pub const MEMORY_USAGE: &str = "memory.usage_in_bytes";
pub const MEMORY_OOM_CONTROL: &str = "memory.oom_control";
pub const CPU_CFS_PERIOD: &str = "cpu.cfs_period_us";
pub const CPU_CFS_QUOTA: &str = "cpu.cfs_quota_us";
pub const CPUACCT_USAGE: &str = "cpuacct.usage";
pub const PIDS_MAX: &str = "pids.max";
pub const FREEZER_STATE: &str = "freezer.state";

/// At or above this, `memory.limit_in_bytes` means "no limit" (the kernel shows
/// PAGE_COUNTER_MAX pages, 9223372036854771712 with 4 KiB pages).
#[cfg(test)]
const UNLIMITED_FROM: u64 = 1 << 62;

/// `memory.limit_in_bytes`: bytes, or -1 for none.
pub fn memory_limit(limit: Option<u64>) -> String {
    match limit {
        Some(n) => n.to_string(),
        None => "-1".to_string(),
    }
}

/// `cpu.cfs_quota_us`: microseconds per period, or -1 for none.
pub fn cfs_quota(cpus: Option<f64>) -> String {
    match cpus {
        Some(c) => super::quota_us(c).to_string(),
        None => "-1".to_string(),
    }
}

#[cfg(test)]
pub fn parse_memory_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok().filter(|n| *n < UNLIMITED_FROM)
}

#[cfg(test)]
pub fn parse_cpu(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_values_use_minus_one_for_no_limit() {
        assert_eq!(memory_limit(Some(30_000_000)), "30000000");
        assert_eq!(memory_limit(None), "-1");
        assert_eq!(cfs_quota(Some(0.5)), "50000");
        assert_eq!(cfs_quota(None), "-1");
    }

    #[test]
    fn v1_values_read_back() {
        assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit("31457280\n"), Some(31457280));
        assert_eq!(parse_cpu("50000\n", "100000\n"), Some(0.5));
        assert_eq!(parse_cpu("-1\n", "100000\n"), None);
    }
}

//! Size, CPU and count arguments of `add` and `constrain`, checked before connecting: a bad
//! one is a usage error (exit 2) and holden is not bothered.

use super::error::{Result, usage};
use crate::control::protocol::Limit;

/// A size like `500MB`, `1.5GiB` or a byte count (KB = 1000, KiB = 1024).
pub fn parse_size(flag: &str, s: &str) -> Result<u64> {
    let n: bytesize::ByteSize = s.trim().parse().map_err(|_| {
        usage(format!(
            "{flag} {s:?} is not a size; use a number of bytes or units like 500MB, 1.5GiB"
        ))
    })?;
    if n.0 == 0 {
        return Err(usage(format!("{flag} must be above 0")));
    }
    // bytesize saturates what overflows at u64::MAX.
    if n.0 == u64::MAX {
        return Err(usage(format!(
            "{flag} {s:?} is too large (past 16 EiB); use max to lift the limit"
        )));
    }
    Ok(n.0)
}

pub fn parse_cpus(flag: &str, s: &str) -> Result<f64> {
    match s.trim().parse::<f64>() {
        Ok(c) if c.is_finite() && c > 0.0 => Ok(c),
        Ok(_) | Err(_) => Err(usage(format!(
            "{flag} {s:?} is not a number of CPUs above 0, like 0.5 or 2"
        ))),
    }
}

pub fn parse_count(flag: &str, s: &str) -> Result<u64> {
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) | Err(_) => Err(usage(format!("{flag} {s:?} is not a whole number above 0"))),
    }
}

pub fn limit<T>(s: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Limit<T>> {
    if s.trim().eq_ignore_ascii_case("max") {
        Ok(Limit::Max)
    } else {
        parse(s).map(Limit::Value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cpus_and_limits_parse_as_documented() {
        assert_eq!(parse_size("--memory", "500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("--memory", "1KiB").unwrap(), 1024);
        assert_eq!(parse_size("--memory", "4096").unwrap(), 4096);
        assert!(parse_size("--memory", "lots").is_err());
        assert!(parse_size("--memory", "0").is_err());
        assert!(parse_size("--memory", "99999999EiB").is_err());
        assert_eq!(parse_cpus("--cpu", "0.5").unwrap(), 0.5);
        assert!(parse_cpus("--cpu", "-1").is_err());
        assert!(parse_cpus("--cpu", "NaN").is_err());
        assert!(parse_count("--pids", "0").is_err());
        assert_eq!(limit("max", |v| parse_count("--pids", v)).unwrap(), Limit::Max);
        assert_eq!(limit("MAX", |v| parse_cpus("--cpu", v)).unwrap(), Limit::Max);
        assert_eq!(limit("64", |v| parse_count("--pids", v)).unwrap(), Limit::Value(64));
        let e = parse_size("--memory", "lots").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "--memory \"lots\" is not a size; use a number of bytes or units like 500MB, 1.5GiB"
        );
    }
}

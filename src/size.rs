//! Byte sizes as people read them: `30 MB`, `1 GiB`, `12.3 MiB`. Used where holden shows a
//! size: `status` and `monitor` tables (`cli::table`) and `check`'s resolved config.

/// A family of size units. Limits are shown in the family they are exact in (`30MB` as
/// `30 MB`, `1GiB` as `1 GiB`), and a program's use in its limit's family, so the two read
/// alike; use without a limit is in IEC units, like `free -h` and `systemctl status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// kB, MB, GB, ... (powers of 1000).
    Si,
    /// KiB, MiB, GiB, ... (powers of 1024).
    Iec,
}

impl Family {
    fn base(self) -> u64 {
        match self {
            Family::Si => 1000,
            Family::Iec => 1024,
        }
    }

    fn units(self) -> &'static [&'static str] {
        match self {
            Family::Si => &["B", "kB", "MB", "GB", "TB", "PB", "EB"],
            Family::Iec => &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
        }
    }

    /// The family in which `n` is written with the smallest whole number of its largest
    /// exact unit: 30000000 is 30 MB, 1073741824 is 1 GiB; IEC on a tie.
    pub fn of(n: u64) -> Family {
        let exact = |f: Family| {
            let mut m = n;
            while m != 0 && m.is_multiple_of(f.base()) {
                m /= f.base();
            }
            m
        };
        if exact(Family::Si) < exact(Family::Iec) {
            Family::Si
        } else {
            Family::Iec
        }
    }
}

/// `n` bytes in `family`'s largest unit not above it, with at most `decimals` decimals and
/// no trailing zeros: `512 B`, `30 MB`, `12.3 MiB`, `1.5 GB`.
pub fn size(n: u64, family: Family, decimals: usize) -> String {
    let units = family.units();
    let mut v = n as f64;
    let mut unit = 0;
    while v >= family.base() as f64 && unit + 1 < units.len() {
        v /= family.base() as f64;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    let text = format!("{v:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text} {}", units[unit])
}

/// A limit, in the family it is exact in: `30 MB`, `1 GiB`, `1.5 GB`.
pub fn limit_size(n: u64) -> String {
    size(n, Family::of(n), 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_their_family() {
        assert_eq!(size(512, Family::Iec, 1), "512 B");
        assert_eq!(size(12 * 1024 * 1024 + 300 * 1024, Family::Iec, 1), "12.3 MiB");
        assert_eq!(size(12_345_678, Family::Si, 1), "12.3 MB");
        assert_eq!(size(40 * 1024 * 1024, Family::Iec, 1), "40 MiB");
        assert_eq!(limit_size(30_000_000), "30 MB");
        assert_eq!(limit_size(1 << 30), "1 GiB");
    }
}

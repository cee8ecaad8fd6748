//! Signal numbers and their names: the one table for the config (`stop_signal`), `holden
//! signal`, transition lines, `status` and `holden spawn`.
//!
//! Linux numbers signals 1 to 64. 1-31 have names that are the same on x86_64 and aarch64.
//! 34-64 are the real-time signals, named as `kill -l` names them for a glibc program
//! (`RTMIN` = 34, `RTMIN+1` = 35 ... `RTMIN+30` = 64; `RTMAX` and `RTMAX-n` are accepted too).
//! 32 and 33 are real-time signals that glibc keeps for itself: they are not parsed (nothing
//! could send them), and a process killed by one is shown by its number.

/// The first real-time signal as glibc programs see it (`SIGRTMIN()`).
const RTMIN: i32 = 34;
/// The last signal Linux has (`SIGRTMAX`, `_NSIG - 1`).
const RTMAX: i32 = 64;

const NAMES: &[(i32, &str)] = &[
    (1, "HUP"),
    (2, "INT"),
    (3, "QUIT"),
    (4, "ILL"),
    (5, "TRAP"),
    (6, "ABRT"),
    (7, "BUS"),
    (8, "FPE"),
    (9, "KILL"),
    (10, "USR1"),
    (11, "SEGV"),
    (12, "USR2"),
    (13, "PIPE"),
    (14, "ALRM"),
    (15, "TERM"),
    (16, "STKFLT"),
    (17, "CHLD"),
    (18, "CONT"),
    (19, "STOP"),
    (20, "TSTP"),
    (21, "TTIN"),
    (22, "TTOU"),
    (23, "URG"),
    (24, "XCPU"),
    (25, "XFSZ"),
    (26, "VTALRM"),
    (27, "PROF"),
    (28, "WINCH"),
    (29, "IO"),
    (30, "PWR"),
    (31, "SYS"),
];

/// A signal by number (1 to 64), with its conventional name (`TERM`, without `SIG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    /// Parse `HUP`, `SIGHUP`, `hup`, `RTMIN+2`, `SIGRTMAX-1` or a number from 1 to 64 but 32 and
    /// 33, which glibc keeps for itself and which therefore cannot be sent.
    pub fn parse(s: &str) -> Option<Signal> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            // 32 and 33 cannot be sent to a glibc program as itself would (see `to_rustix`).
            return ((1..=31).contains(&n) || (RTMIN..=RTMAX).contains(&n)).then_some(Signal(n));
        }
        let up = t.to_ascii_uppercase();
        let bare = up.strip_prefix("SIG").unwrap_or(&up);
        if let Some(rest) = bare.strip_prefix("RTMIN") {
            return offset(rest, '+').map(|n| RTMIN + n).filter(|n| *n <= RTMAX).map(Signal);
        }
        if let Some(rest) = bare.strip_prefix("RTMAX") {
            return offset(rest, '-').map(|n| RTMAX - n).filter(|n| *n >= RTMIN).map(Signal);
        }
        NAMES.iter().find(|(_, name)| *name == bare).map(|(n, _)| Signal(*n))
    }

    /// `TERM` for 15, `RTMIN+2` for 36; the number as text for 32, 33 and numbers that are
    /// not signals.
    pub fn name(self) -> String {
        match NAMES.iter().find(|(n, _)| *n == self.0) {
            Some((_, name)) => (*name).to_string(),
            None if self.0 == RTMIN => "RTMIN".to_string(),
            None if (RTMIN..=RTMAX).contains(&self.0) => format!("RTMIN+{}", self.0 - RTMIN),
            None => self.0.to_string(),
        }
    }

    /// The signal to send with rustix: 1-31 and the real-time signals RTMIN to RTMAX (34-64).
    /// `None` for 32 and 33, which glibc keeps for itself, and for numbers that are not signals.
    pub fn to_rustix(self) -> Option<rustix::process::Signal> {
        if let Some(named) = rustix::process::Signal::from_named_raw(self.0) {
            return Some(named);
        }
        // SAFETY: 34..=64 are valid, non-zero Linux signal numbers, above the two (32, 33) that
        // glibc reserves for itself; rustix asks that a libc-reserved number never be used to
        // send, and these are not reserved: they are what glibc's SIGRTMIN..SIGRTMAX hand out.
        (RTMIN..=RTMAX)
            .contains(&self.0)
            .then(|| unsafe { rustix::process::Signal::from_raw_unchecked(self.0) })
    }
}

/// The `+n` (or `-n`) after `RTMIN` (`RTMAX`): nothing is 0.
fn offset(rest: &str, sign: char) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    let digits = rest.strip_prefix(sign)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse() {
        let table = [
            ("HUP", Some(1)),
            ("SIGTERM", Some(15)),
            ("kill", Some(9)),
            (" usr1 ", Some(10)),
            ("10", Some(10)),
            ("40", Some(40)),
            ("64", Some(64)),
            ("RTMIN", Some(34)),
            ("SIGRTMIN+2", Some(36)),
            ("rtmin+30", Some(64)),
            ("RTMAX", Some(64)),
            ("RTMAX-1", Some(63)),
            ("SIGRTMAX-30", Some(34)),
            ("0", None),
            ("32", None),
            ("33", None),
            ("65", None),
            ("-1", None),
            ("TEN", None),
            ("", None),
            ("RTMIN+31", None),
            ("RTMAX-31", None),
            ("RTMIN-1", None),
            ("RTMIN+", None),
            ("RTMIN++1", None),
            ("RTMIN+-1", None),
        ];
        for (text, want) in table {
            assert_eq!(Signal::parse(text), want.map(Signal), "{text:?}");
        }
    }

    #[test]
    fn every_signal_but_glibcs_own_can_be_sent() {
        for n in (1..=31).chain(34..=64) {
            assert_eq!(Signal(n).to_rustix().map(|s| s.as_raw()), Some(n), "{n}");
        }
        for n in [0, 32, 33, 65, -1] {
            assert!(Signal(n).to_rustix().is_none(), "{n}");
        }
    }

    #[test]
    fn every_signal_has_a_name_that_parses_back() {
        for n in (1..=31).chain(34..=64) {
            let name = Signal(n).name();
            assert_eq!(Signal::parse(&name), Some(Signal(n)), "{n} named {name}");
        }
        assert_eq!(Signal(15).name(), "TERM");
        assert_eq!(Signal(32).name(), "32");
        assert_eq!(Signal(34).name(), "RTMIN");
        assert_eq!(Signal(36).name(), "RTMIN+2");
        assert_eq!(Signal(64).name(), "RTMIN+30");
        assert_eq!(Signal(99).name(), "99");
    }
}

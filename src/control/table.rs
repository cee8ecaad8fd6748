//! How `holden status` and `holden monitor` show programs to people: aligned columns, short
//! durations, sizes in IEC units, CPU as time (status) or as a share of one CPU between two
//! snapshots (monitor). Pure functions of the status records and the clock, so they are
//! tested without a running holden.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::protocol::ProgramStatus;

/// States in which a program has a process whose age is worth showing.
fn has_uptime(state: &str) -> bool {
    matches!(state, "STARTING" | "RUNNING" | "STOPPING")
}

/// `45s`, `3m12s`, `2h05m`, `3d04h`.
pub fn short_duration(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 { secs as u64 } else { 0 };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// CPU time: `0.42s`, `12.3s`, `3m12s`.
pub fn cpu_time(usec: u64) -> String {
    let secs = usec as f64 / 1e6;
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        short_duration(secs)
    }
}

/// Bytes in IEC units with one decimal: `512 B`, `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: &[&str] = &["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `1.5` CPUs without trailing zeros.
fn cpus(c: f64) -> String {
    let s = format!("{c:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn memory_cell(p: &ProgramStatus) -> String {
    match (p.memory_bytes, p.memory_limit) {
        (Some(cur), Some(max)) if max > 0 => format!(
            "{} / {} ({:.0}%)",
            bytes(cur),
            bytes(max),
            cur as f64 * 100.0 / max as f64
        ),
        (Some(cur), Some(max)) => format!("{} / {}", bytes(cur), bytes(max)),
        (Some(cur), None) => bytes(cur),
        (None, Some(max)) => format!("- / {}", bytes(max)),
        (None, None) => "-".to_string(),
    }
}

fn name_cell(p: &ProgramStatus) -> String {
    if p.transient {
        format!("{}*", p.name)
    } else {
        p.name.clone()
    }
}

fn pid_cell(p: &ProgramStatus) -> String {
    p.pid.map_or_else(|| "-".to_string(), |pid| pid.to_string())
}

fn uptime_cell(p: &ProgramStatus, now: f64) -> String {
    if has_uptime(&p.state) && p.pid.is_some() {
        short_duration(now - p.since)
    } else {
        "-".to_string()
    }
}

/// Left-aligned columns separated by two spaces, the last one not padded.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn footnote(programs: &[ProgramStatus]) -> &'static str {
    if programs.iter().any(|p| p.transient) {
        "* transient (added with `holden add`)\n"
    } else {
        ""
    }
}

/// `holden status`: NAME STATE PID UPTIME RESTARTS LAST-EXIT CPU MEMORY. `now` is Unix time.
pub fn status_table(programs: &[ProgramStatus], now: f64) -> String {
    if programs.is_empty() {
        return "no programs\n".to_string();
    }
    let rows: Vec<Vec<String>> = programs
        .iter()
        .map(|p| {
            let cpu = match (p.cpu_usage_usec, p.cpu_limit) {
                (Some(u), Some(l)) => format!("{} (max {} CPU)", cpu_time(u), cpus(l)),
                (Some(u), None) => cpu_time(u),
                (None, Some(l)) => format!("- (max {} CPU)", cpus(l)),
                (None, None) => "-".to_string(),
            };
            vec![
                name_cell(p),
                p.state.clone(),
                pid_cell(p),
                uptime_cell(p, now),
                p.restarts.to_string(),
                p.last_exit.as_ref().map_or_else(|| "-".to_string(), |e| e.short()),
                cpu,
                memory_cell(p),
            ]
        })
        .collect();
    let mut out = columns(
        &[
            "NAME",
            "STATE",
            "PID",
            "UPTIME",
            "RESTARTS",
            "LAST-EXIT",
            "CPU",
            "MEMORY",
        ],
        &rows,
    );
    out.push_str(footnote(programs));
    out
}

/// CPU usage of each program at one moment, to turn the next snapshot into a rate.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    /// (program, pid) -> cpu_usage_usec. Keyed by pid too: a restarted program's cgroup
    /// counter may restart, and a rate across two runs would be nonsense.
    usage: HashMap<(String, Option<i32>), u64>,
}

impl CpuSample {
    pub fn of(programs: &[ProgramStatus]) -> CpuSample {
        CpuSample {
            usage: programs
                .iter()
                .filter_map(|p| p.cpu_usage_usec.map(|u| ((p.name.clone(), p.pid), u)))
                .collect(),
        }
    }

    /// Percent of one CPU used by `p` since this sample, `elapsed` ago.
    fn percent(&self, p: &ProgramStatus, elapsed: Duration) -> Option<f64> {
        let before = *self.usage.get(&(p.name.clone(), p.pid))?;
        let now = p.cpu_usage_usec?;
        let micros = elapsed.as_micros();
        if micros == 0 || now < before {
            return None;
        }
        Some((now - before) as f64 * 100.0 / micros as f64)
    }
}

/// `holden monitor`: NAME STATE PID UPTIME CPU MEMORY PIDS, with CPU as a share of one CPU
/// since `previous` (taken `elapsed` ago) against the limit.
pub fn monitor_table(programs: &[ProgramStatus], previous: Option<&CpuSample>, elapsed: Duration, now: f64) -> String {
    if programs.is_empty() {
        return "no programs\n".to_string();
    }
    let rows: Vec<Vec<String>> = programs
        .iter()
        .map(|p| {
            let pct = previous.and_then(|s| s.percent(p, elapsed));
            let cpu = match (pct, p.cpu_limit) {
                (Some(v), Some(l)) => format!("{v:.1}% / {:.0}%", l * 100.0),
                (Some(v), None) => format!("{v:.1}%"),
                (None, Some(l)) => format!("- / {:.0}%", l * 100.0),
                (None, None) => "-".to_string(),
            };
            vec![
                name_cell(p),
                p.state.clone(),
                pid_cell(p),
                uptime_cell(p, now),
                cpu,
                memory_cell(p),
                p.pids_limit.map_or_else(|| "-".to_string(), |n| format!("max {n}")),
            ]
        })
        .collect();
    let mut out = columns(&["NAME", "STATE", "PID", "UPTIME", "CPU", "MEMORY", "PIDS"], &rows);
    out.push_str(footnote(programs));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::LastExit;

    fn program(name: &str, state: &str) -> ProgramStatus {
        ProgramStatus {
            name: name.into(),
            state: state.into(),
            pid: None,
            since: 1000.0,
            restarts: 0,
            last_exit: None,
            memory_bytes: None,
            memory_limit: None,
            cpu_usage_usec: None,
            cpu_limit: None,
            pids_limit: None,
            cgroup: None,
            transient: false,
        }
    }

    #[test]
    fn durations_and_sizes_read_shortly() {
        assert_eq!(short_duration(0.4), "0s");
        assert_eq!(short_duration(45.0), "45s");
        assert_eq!(short_duration(192.0), "3m12s");
        assert_eq!(short_duration(7500.0), "2h05m");
        assert_eq!(short_duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3d04h");
        assert_eq!(short_duration(-5.0), "0s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
        assert_eq!(bytes(500_000_000), "476.8 MiB");
        assert_eq!(cpu_time(420_000), "0.42s");
        assert_eq!(cpu_time(192_000_000), "3m12s");
        assert_eq!(cpus(0.5), "0.5");
        assert_eq!(cpus(2.0), "2");
    }

    #[test]
    fn status_table_has_a_column_per_field_and_aligns_them() {
        let mut web = program("web", "RUNNING");
        web.pid = Some(4242);
        web.since = 1000.0;
        web.restarts = 2;
        web.last_exit = Some(LastExit {
            code: Some(1),
            signal: None,
            oom_killed: false,
        });
        web.memory_bytes = Some(10 * 1024 * 1024);
        web.memory_limit = Some(40 * 1024 * 1024);
        web.cpu_usage_usec = Some(1_500_000);
        web.cpu_limit = Some(0.5);
        let mut job = program("job", "FATAL");
        job.transient = true;
        let t = status_table(&[web, job], 1192.0);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME  STATE    PID   UPTIME  RESTARTS  LAST-EXIT  CPU                  MEMORY"
        );
        assert_eq!(
            lines[1],
            "web   RUNNING  4242  3m12s   2         exit 1     1.50s (max 0.5 CPU)  10.0 MiB / 40.0 MiB (25%)"
        );
        assert_eq!(
            lines[2],
            "job*  FATAL    -     -       0         -          -                    -"
        );
        assert_eq!(lines[3], "* transient (added with `holden add`)");
    }

    #[test]
    fn monitor_shows_cpu_as_a_share_between_snapshots() {
        let mut web = program("web", "RUNNING");
        web.pid = Some(7);
        web.cpu_usage_usec = Some(1_000_000);
        web.cpu_limit = Some(0.5);
        let before = CpuSample::of(std::slice::from_ref(&web));
        web.cpu_usage_usec = Some(1_250_000);
        let t = monitor_table(
            std::slice::from_ref(&web),
            Some(&before),
            Duration::from_secs(1),
            1010.0,
        );
        assert!(t.lines().nth(1).unwrap().contains("25.0% / 50%"), "{t}");
        // A restart (new pid) has no rate yet.
        web.pid = Some(8);
        let t = monitor_table(
            std::slice::from_ref(&web),
            Some(&before),
            Duration::from_secs(1),
            1010.0,
        );
        assert!(t.lines().nth(1).unwrap().contains("- / 50%"), "{t}");
        let t = monitor_table(&[web], None, Duration::ZERO, 1010.0);
        assert!(t.starts_with("NAME  STATE    PID  UPTIME  CPU"), "{t}");
    }
}

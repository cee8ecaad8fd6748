//! How `holden status` and `holden monitor` show programs to people: aligned columns, short
//! durations, sizes in the unit family of their limit (see
//! [`Family`]), CPU as time (status) or as a share of one CPU between two snapshots (monitor). Pure functions of the status records and the clock, so they are
//! tested without a running holden.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::control::protocol::ProgramStatus;
use crate::size::{Family, limit_size, size};

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

/// `1.5` CPUs without trailing zeros.
fn cpus(c: f64) -> String {
    let s = format!("{c:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// States without a process: what the cgroup still holds (page cache) is no use of the program.
fn is_down(state: &str) -> bool {
    matches!(state, "STOPPED" | "EXITED" | "FATAL" | "BACKOFF")
}

fn memory_cell(p: &ProgramStatus) -> String {
    let current = p.memory_bytes.filter(|_| !is_down(&p.state));
    let family = p.memory_limit.map_or(Family::Iec, Family::of);
    let now = |n: u64| size(n, family, 1);
    match (current, p.memory_limit) {
        (Some(cur), Some(max)) if max > 0 => format!(
            "{} / {} ({:.0}%)",
            now(cur),
            limit_size(max),
            cur as f64 * 100.0 / max as f64
        ),
        (Some(cur), Some(max)) => format!("{} / {}", now(cur), limit_size(max)),
        (Some(cur), None) => now(cur),
        (None, Some(max)) => format!("- / {}", limit_size(max)),
        (None, None) => "-".to_string(),
    }
}

fn pids_cell(p: &ProgramStatus) -> String {
    let current = p.pids_current.filter(|_| !is_down(&p.state));
    match (current, p.pids_limit) {
        (Some(cur), Some(max)) => format!("{cur} / {max}"),
        (Some(cur), None) => cur.to_string(),
        (None, Some(max)) => format!("- / {max}"),
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

/// Time since the main process was spawned (`since` is the last transition: a RUNNING
/// program would show the time since it became ready).
fn uptime_cell(p: &ProgramStatus, now: f64) -> String {
    if has_uptime(&p.state) && p.pid.is_some() {
        short_duration(now - p.started.unwrap_or(p.since))
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

/// HEALTH: the liveness probe's or watchdog's view, then the last `STATUS=` text.
fn health_cell(p: &ProgramStatus) -> String {
    let health = p.health.as_ref().map(|h| {
        if h.ok {
            "ok".to_string()
        } else {
            format!("failing {}: {}", h.failures, h.last)
        }
    });
    match (health, &p.status_text) {
        (Some(h), Some(t)) => format!("{h}; {t}"),
        (Some(h), None) => h,
        (None, Some(t)) => t.clone(),
        (None, None) => "-".to_string(),
    }
}

/// Add the HEALTH column when any program has something to show in it.
fn with_health(programs: &[ProgramStatus], headers: &mut Vec<&'static str>, rows: &mut [Vec<String>]) {
    if programs.iter().any(|p| p.health.is_some() || p.status_text.is_some()) {
        headers.push("HEALTH");
        for (row, p) in rows.iter_mut().zip(programs) {
            row.push(health_cell(p));
        }
    }
}

/// `holden status`: NAME STATE PID UPTIME RESTARTS LAST-EXIT CPU MEMORY (HEALTH). `now` is Unix time.
pub fn status_table(programs: &[ProgramStatus], now: f64) -> String {
    if programs.is_empty() {
        return "no programs\n".to_string();
    }
    let mut rows: Vec<Vec<String>> = programs
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
    let mut headers = vec![
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST-EXIT",
        "CPU",
        "MEMORY",
    ];
    with_health(programs, &mut headers, &mut rows);
    let mut out = columns(&headers, &rows);
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
    let mut rows: Vec<Vec<String>> = programs
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
                pids_cell(p),
            ]
        })
        .collect();
    let mut headers = vec!["NAME", "STATE", "PID", "UPTIME", "CPU", "MEMORY", "PIDS"];
    with_health(programs, &mut headers, &mut rows);
    let mut out = columns(&headers, &rows);
    out.push_str(footnote(programs));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::LastExit;

    fn program(name: &str, state: &str) -> ProgramStatus {
        ProgramStatus {
            since: 1000.0,
            ..ProgramStatus::bare(name, state)
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
            "web   RUNNING  4242  3m12s   2         exit 1     1.50s (max 0.5 CPU)  10 MiB / 40 MiB (25%)"
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

    #[test]
    fn health_and_status_text_get_a_column_only_when_some_program_has_them() {
        let web = program("web", "RUNNING");
        let t = monitor_table(std::slice::from_ref(&web), None, Duration::ZERO, 1010.0);
        assert!(!t.contains("HEALTH"), "{t}");
        let mut db = program("db", "RUNNING");
        db.health = Some(crate::control::protocol::Health {
            ok: false,
            failures: 2,
            last: "http 503".into(),
        });
        db.status_text = Some("serving".into());
        let mut ok = program("ok", "RUNNING");
        ok.health = Some(crate::control::protocol::Health {
            ok: true,
            failures: 0,
            last: "http 200".into(),
        });
        let t = monitor_table(&[db.clone(), ok.clone(), web.clone()], None, Duration::ZERO, 1010.0);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].ends_with("HEALTH"), "{t}");
        assert!(lines[1].ends_with("failing 2: http 503; serving"), "{t}");
        assert!(lines[2].ends_with("ok"), "{t}");
        assert!(lines[3].ends_with('-'), "{t}");
        let t = status_table(&[db, ok, web], 1010.0);
        assert!(t.lines().next().unwrap().ends_with("HEALTH"), "{t}");
    }
}

//! The short client commands: one request, one answer, one line or table on stdout.

use std::time::Instant;

use super::args::ClientArgs;
use super::error::{Result, runtime, usage};
use super::units::{limit, parse_count, parse_cpus, parse_size};
use super::wait::WAIT_TIMEOUT;
use super::{connect, expect_status, now_unix, out, table};
use crate::config;
use crate::control::protocol::{Limit, ProgramStatus, ReloadSummary, Reply, Request, SpecStatus};

pub fn status(args: &ClientArgs, names: Vec<String>, json: bool) -> Result {
    let mut c = connect(args)?;
    let programs = expect_status(c.call(&Request::Status { names })?)?;
    if json {
        out(&status_json(&programs))?;
    } else {
        out(&table::status_table(&programs, now_unix()))?;
    }
    Ok(0)
}

/// `status --json`: `{"programs":[...]}` with SPEC's status fields (those this holden has),
/// `program` and `groups`.
pub(super) fn status_json(programs: &[ProgramStatus]) -> String {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        programs: Vec<SpecStatus<'a>>,
    }
    let doc = Doc {
        programs: programs.iter().map(SpecStatus).collect(),
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("status serializes");
    text.push('\n');
    text
}

pub fn signal(args: &ClientArgs, signal: &str, names: Vec<String>) -> Result {
    let sig = config::Signal::parse(signal).ok_or_else(|| {
        usage(format!(
            "{signal:?} is not a signal; use a name like HUP or SIGHUP, or a number from 1 to 64 but 32 and 33"
        ))
    })?;
    let mut c = connect(args)?;
    let reply = c.call(&Request::Signal {
        signal: sig.name(),
        names: names.clone(),
    })?;
    let targets = match reply {
        Reply::Targets { targets } => targets,
        Reply::Status { .. } | Reply::Reload(_) | Reply::LogPaths { .. } | Reply::Done {} => names,
    };
    let text: String = targets
        .iter()
        .map(|n| format!("{n}: sent SIG{}\n", sig.name()))
        .collect();
    out(&text)?;
    Ok(0)
}

pub fn constrain(
    args: &ClientArgs,
    name: String,
    memory: Option<String>,
    cpu: Option<String>,
    pids: Option<String>,
) -> Result {
    if memory.is_none() && cpu.is_none() && pids.is_none() {
        return Err(usage(format!(
            "constrain {name}: give at least one of --memory, --cpu, --pids"
        )));
    }
    let memory = memory.map(|s| limit(&s, |v| parse_size("--memory", v))).transpose()?;
    let cpu = cpu.map(|s| limit(&s, |v| parse_cpus("--cpu", v))).transpose()?;
    let pids = pids.map(|s| limit(&s, |v| parse_count("--pids", v))).transpose()?;
    let mut c = connect(args)?;
    c.call(&Request::Constrain {
        name: name.clone(),
        memory,
        cpu,
        pids,
    })?;
    let mut parts = Vec::new();
    if let Some(m) = memory {
        parts.push(match m {
            Limit::Value(b) => format!("memory {}", crate::size::limit_size(b)),
            Limit::Max => "memory max".to_string(),
        });
    }
    if let Some(c) = cpu {
        parts.push(format!("cpu {c}"));
    }
    if let Some(p) = pids {
        parts.push(format!("pids {p}"));
    }
    out(&format!("{name}: {}\n", parts.join(", ")))?;
    Ok(0)
}

pub fn simple(args: &ClientArgs, request: Request, done: &str) -> Result {
    let mut c = connect(args)?;
    c.call(&request)?;
    out(&format!("{done}\n"))?;
    Ok(0)
}

pub fn reload(args: &ClientArgs) -> Result {
    let mut c = connect(args)?;
    let summary = match c.call(&Request::Reload)? {
        Reply::Reload(s) => s,
        Reply::Status { .. } | Reply::Targets { .. } | Reply::LogPaths { .. } | Reply::Done {} => {
            ReloadSummary::default()
        }
    };
    out(&reload_text(&summary))?;
    Ok(0)
}

pub(super) fn reload_text(s: &ReloadSummary) -> String {
    if s.added.is_empty() && s.removed.is_empty() && s.changed.is_empty() {
        return "reloaded: nothing changed\n".to_string();
    }
    let mut text = String::new();
    for (what, names) in [("added", &s.added), ("removed", &s.removed), ("changed", &s.changed)] {
        if !names.is_empty() {
            text.push_str(&format!("{what}: {}\n", names.join(", ")));
        }
    }
    text
}

/// Ask for a graceful shutdown and wait until holden is gone (its end closes the connection).
pub fn shutdown(args: &ClientArgs) -> Result {
    let mut c = connect(args)?;
    // A watcher is exempt from the idle timeout, so the wait below ends only with holden.
    c.call(&Request::Watch)?;
    c.call(&Request::Shutdown)?;
    out("holden is shutting down\n")?;
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        match c.next(deadline) {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(_) => {
                return Err(runtime(format!(
                    "holden on {} was still shutting down after {}; see its log",
                    c.path().display(),
                    humantime::format_duration(WAIT_TIMEOUT)
                )));
            }
        }
    }
    out("holden stopped\n")?;
    Ok(0)
}

use std::path::Path;

use toml::Spanned;

use super::*;

/// A list of uids (`supervisor.KEY`), each from 0 to 4294967294.
pub(super) fn uids(raw: &Option<Vec<Spanned<i64>>>, key: &str, p: &mut Vec<Problem>) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, uid) in raw.iter().flatten().enumerate() {
        match u32::try_from(*uid.get_ref()) {
            Ok(u) if u != u32::MAX => out.push(u),
            Ok(_) | Err(_) => p.push(Problem::found(
                uid.span(),
                &format!("supervisor.{key}[{i}]"),
                uid.get_ref(),
                "a uid from 0 to 4294967294",
            )),
        }
    }
    out
}

pub(super) fn supervisor(raw: &RawSupervisor, base: &Path, p: &mut Vec<Problem>) -> SupervisorSettings {
    let socket = raw
        .socket
        .as_ref()
        .and_then(|v| path_value(v, "supervisor.socket", base, "a path", p))
        .unwrap_or_else(crate::config::default_socket);
    let socket_mode = raw
        .socket_mode
        .as_ref()
        .and_then(|v| mode(v, "supervisor.socket_mode", "an octal mode like \"0600\"", p))
        .unwrap_or(0o600);
    let allow_uids = uids(&raw.allow_uids, "allow_uids", p);
    let admin_uids = uids(&raw.admin_uids, "admin_uids", p);
    let read_uids = uids(&raw.read_uids, "read_uids", p);
    let log_level = match &raw.log_level {
        Some(v) => match v.get_ref().as_str() {
            "off" | "error" | "warn" | "info" | "debug" | "trace" => {
                log::LevelFilter::from_str(v.get_ref()).unwrap_or(log::LevelFilter::Info)
            }
            other => {
                p.push(Problem::found(
                    v.span(),
                    "supervisor.log_level",
                    format!("{other:?}"),
                    "one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
                ));
                log::LevelFilter::Info
            }
        },
        None => log::LevelFilter::Info,
    };
    let logfile = match &raw.logfile {
        Some(v) if v.get_ref() == "stderr" => LogFile::Stderr,
        Some(v) => {
            path_value(v, "supervisor.logfile", base, "\"stderr\" or a path", p).map_or(LogFile::Stderr, LogFile::Path)
        }
        None => LogFile::Stderr,
    };
    let cgroup_path = match &raw.cgroup_path {
        Some(v) => {
            let s = v.get_ref();
            // SPEC: "/" alone is refused too: the programs' cgroups need a parent of their own.
            let bad = s.trim_matches('/').is_empty() || s.contains('\0') || s.split('/').any(|c| c == "..");
            if bad {
                p.push(Problem::found(
                    v.span(),
                    "supervisor.cgroup_path",
                    format!("{s:?}"),
                    "a cgroup path like \"/supervisor\" or \"programs\", not the root and without \"..\"",
                ));
            }
            s.clone()
        }
        None => "/supervisor".to_string(),
    };
    let cgroups = match &raw.cgroups {
        Some(v) => match v.get_ref().as_str() {
            "auto" => CgroupMode::Auto,
            "required" => CgroupMode::Required,
            "off" => CgroupMode::Off,
            other => {
                p.push(Problem::found(
                    v.span(),
                    "supervisor.cgroups",
                    format!("{other:?}"),
                    "one of \"auto\", \"required\", \"off\"",
                ));
                CgroupMode::Auto
            }
        },
        None => CgroupMode::Auto,
    };
    SupervisorSettings {
        socket,
        socket_mode,
        allow_uids,
        log_level,
        logfile,
        cgroup_path,
        cgroups,
        admin_uids,
        read_uids,
    }
}

//! `holden logs`: ask holden where a program's log is, then read the file here.

use std::io::{self, Write};
use std::path::Path;

use super::args::ClientArgs;
use super::connect;
use super::error::{Result, runtime};
use crate::control::protocol::{LogPaths, Reply, Request};
use crate::error::os_text;

pub fn logs(args: &ClientArgs, name: &str, follow: bool, lines: usize, stderr: bool) -> Result {
    let mut c = connect(args)?;
    let paths = match c.call(&Request::LogPaths { name: name.to_string() })? {
        Reply::LogPaths { logs } => logs,
        Reply::Status { .. } | Reply::Targets { .. } | Reply::Reload(_) | Reply::Done {} => LogPaths::default(),
    };
    let (stream, path) = if stderr {
        ("stderr", paths.stderr)
    } else {
        ("stdout", paths.stdout)
    };
    let Some(path) = path else {
        // A program added with `holden add` has no section in the file to point at.
        let transient = match c.call(&Request::Status {
            names: vec![name.to_string()],
        }) {
            Ok(Reply::Status { programs }) => programs.iter().any(|p| p.name == name && p.transient),
            Ok(_) | Err(_) => false,
        };
        let fix = if transient {
            format!("add it again with `holden add {name} --stdout PATH -- ...` (after `holden remove {name}`)")
        } else {
            format!("set {stream} = \"PATH\" in [programs.{name}]")
        };
        return Err(runtime(format!(
            "{name}'s {stream} is not written to a file (it goes to holden's own stderr or nowhere); {fix}"
        )));
    };
    drop(c);
    // /dev/stdout and the like name this client's own stdout here, not the program's: never
    // read them (`holden logs -f web > out.txt` would follow its own output).
    if crate::config::is_stream(&path) {
        return Err(runtime(format!(
            "{name}'s {stream} goes to {}, a stream and not a log file: there is no log to read here",
            path.display()
        )));
    }
    let mut o = io::stdout().lock();
    match print_log(&path, lines, follow, &mut o) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(runtime(format!(
            "{} does not exist yet: {name} has written nothing to its {stream}",
            path.display()
        ))),
        Err(e) => Err(runtime(format!("cannot read {}: {}", path.display(), os_text(&e)))),
    }
}

/// The log reader of `crate::logs`: the last lines, then (with `-f`) everything written after.
fn print_log(path: &Path, lines: usize, follow: bool, out: &mut dyn Write) -> io::Result<()> {
    if follow {
        crate::logs::follow(path, lines, out)
    } else {
        crate::logs::tail(path, lines, out)
    }
}

//! From the raw file to `Config`: defaults, paths, validation, all errors at once.
//!
//! Every value of `raw.rs` is checked here for what it means (a duration, a size, a known
//! program, ...), relative paths are made absolute against the config file's own folder, and
//! each problem becomes one line `FILE:LINE:COL: KEY: found ..., expected ...`, FILE being the
//! path as the user gave it. Nothing stops at the first problem: a bad value is reported and
//! its default used, so that the next key is still checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

mod process;
mod program;
mod render;
mod supervisor;
mod values;

use process::process_settings;
use program::program;
pub use render::render;
use supervisor::supervisor;
use values::*;

use super::error::{ConfigError, ConfigProblem, LineCol};
use super::load::{Files, io_reason};
use super::raw::{
    self, Problem, RawCommand, RawLimit, RawMode, RawProgram, RawRlimit, RawSignal, RawSize, RawSupervisor,
};
use super::{
    CgroupMode, Config, Instance, Instanced, LogFile, Output, Program, RLIMITS, RestartPolicy, Rlimit, Signal,
    SupervisorSettings, envfile, placeholder, vars, words,
};

/// The most `instances` a program may have.
pub const MAX_INSTANCES: u32 = 1024;
/// The highest `instance_start`.
pub const MAX_INSTANCE_START: u32 = 1_000_000;

/// Resolve `text` as if it were the contents of `path` (relative paths are against its
/// folder). Reads no file: what it must know beyond the text, it asks `files`.
pub fn resolve(path: &Path, text: &str, files: &dyn Files) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let located = |problems: Vec<Problem>| ConfigError {
        problems: locate(&file, text, problems),
    };
    let (raw, mut problems) = raw::parse(text).map_err(located)?;
    let base = match files.absolute(path) {
        Ok(abs) => abs.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
        Err(e) => {
            return Err(ConfigError::whole_file(
                &file,
                format!("{file}: cannot make the path absolute: {e}"),
            ));
        }
    };
    let supervisor = supervisor(&raw.supervisor, &base, &mut problems);
    // Each program of the file, then its instances (or itself, placeholders filled with 0),
    // each with the index of its table in `raw.programs`.
    let mut units: Vec<(usize, Program)> = Vec::new();
    let mut instanced = BTreeMap::new();
    for (r, raw_program) in raw.programs.iter().enumerate() {
        let template = program(raw_program, &base, files, &mut problems);
        let (expanded, set) = expand(raw_program, template, files, &mut problems);
        units.extend(expanded.into_iter().map(|p| (r, p)));
        if let Some(set) = set {
            instanced.insert(set.template.name.clone(), set);
        }
    }
    // Every name a program can be addressed by (its own, or its base name) -> its base name.
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    for (_, p) in &units {
        known.insert(p.name.clone(), p.base_name().to_string());
        known.insert(p.base_name().to_string(), p.base_name().to_string());
    }
    dependencies(&raw.programs, &known, &mut problems);
    shared_log_files(&raw.programs, &units, files, &mut problems);
    let groups = groups(&raw, &known, &mut problems);
    if !problems.is_empty() {
        return Err(located(problems));
    }
    let mut programs: Vec<Program> = units.into_iter().map(|(_, p)| p).collect();
    programs.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    Ok(Config {
        path: path.to_path_buf(),
        supervisor,
        programs,
        groups,
        instanced,
    })
}

/// Programs by name, the instances of one program together in index order.
fn order_key(p: &Program) -> (&str, u32) {
    match &p.instance {
        Some(i) => (&i.program, i.index),
        None => (&p.name, 0),
    }
}

/// `instances` and `instance_start`: the program's instances, or the program alone (with
/// `{index}` as 0), and for instances the template they came from.
fn expand(
    raw: &RawProgram,
    template: Program,
    files: &dyn Files,
    p: &mut Vec<Problem>,
) -> (Vec<Program>, Option<Instanced>) {
    let prefix = format!("programs.{}", raw::segment(&template.name));
    let count = raw.instances.as_ref().and_then(|v| match u32::try_from(*v.get_ref()) {
        Ok(n) if (1..=MAX_INSTANCES).contains(&n) => Some(n),
        Ok(_) | Err(_) => {
            p.push(Problem::found(
                v.span(),
                &format!("{prefix}.instances"),
                v.get_ref(),
                format!("a number of instances from 1 to {MAX_INSTANCES} (leave it out for one plain program)"),
            ));
            None
        }
    });
    let start = match &raw.instance_start {
        Some(v) if raw.instances.is_none() => {
            p.push(Problem::found(
                v.span(),
                &format!("{prefix}.instance_start"),
                format!("instance_start = {} without instances", v.get_ref()),
                "instances = N beside it (or no instance_start)",
            ));
            0
        }
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if n <= MAX_INSTANCE_START => n,
            Ok(_) | Err(_) => {
                p.push(Problem::found(
                    v.span(),
                    &format!("{prefix}.instance_start"),
                    v.get_ref(),
                    format!("the first instance's index, from 0 to {MAX_INSTANCE_START}"),
                ));
                0
            }
        },
        None => 0,
    };
    let Some(count) = count else {
        return (vec![instance_of(&template, None)], None);
    };
    if count > 1 {
        let streams = [
            ("stdout", &template.stdout, &raw.stdout),
            ("stderr", &template.stderr, &raw.stderr),
        ];
        for (stream, out, written) in streams {
            if let (Output::File(path), Some(written)) = (out, written)
                && !files.is_stream(path)
                && !placeholder::has_index(&path.to_string_lossy())
            {
                p.push(Problem::found(
                    written.span(),
                    &format!("{prefix}.{stream}"),
                    format!("{:?}, one file for {count} instances", written.get_ref()),
                    "a path with {index} in it like \"logs/worker-{index}.log\" (two instances cannot share a log file)",
                ));
            }
        }
    }
    let programs = (start..start + count)
        .map(|i| instance_of(&template, Some(i)))
        .collect();
    (programs, Some(Instanced { template, count, start }))
}

/// The program `template` stands for as instance `index` (None: the plain program itself, with
/// `{index}` as 0): its name, and its placeholders filled in.
fn instance_of(template: &Program, index: Option<u32>) -> Program {
    let mut p = template.clone();
    let n = index.unwrap_or(0);
    if let Some(i) = index {
        p.name = format!("{}@{i}", template.name);
        p.instance = Some(Instance {
            program: template.name.clone(),
            index: i,
        });
    }
    let fill = |s: &str| placeholder::substitute(s, n);
    let fill_path = |path: &Path| PathBuf::from(fill(&path.to_string_lossy()));
    p.command = p.command.iter().map(|w| fill(w)).collect();
    for value in p.environment.values_mut() {
        *value = fill(value);
    }
    p.directory = fill_path(&p.directory);
    if let Output::File(path) = &mut p.stdout {
        *path = fill_path(path);
    }
    if let Output::File(path) = &mut p.stderr {
        *path = fill_path(path);
    }
    if matches!((&p.stdout, &p.stderr), (Output::File(a), Output::File(b)) if a == b) {
        p.stderr = Output::Stdout;
    }
    p
}

/// A plain program as the file would say it: each literal `{index}` of its values escaped.
fn escaped(program: &Program) -> Program {
    let mut p = program.clone();
    let esc = |path: &Path| PathBuf::from(placeholder::escape(&path.to_string_lossy()));
    p.command = p.command.iter().map(|w| placeholder::escape(w)).collect();
    for value in p.environment.values_mut() {
        *value = placeholder::escape(value);
    }
    p.directory = esc(&p.directory);
    if let Output::File(path) = &mut p.stdout {
        *path = esc(path);
    }
    if let Output::File(path) = &mut p.stderr {
        *path = esc(path);
    }
    p
}

/// `[groups]`: valid names that no program has, members that are programs or instances.
fn groups(
    raw: &raw::RawConfig,
    known: &BTreeMap<String, String>,
    p: &mut Vec<Problem>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (name, members) in &raw.groups {
        let key = format!("groups.{}", raw::segment(name.get_ref()));
        if !crate::config::valid_program_name(name.get_ref()) {
            p.push(Problem::found(
                name.span(),
                &key,
                format!("the group name {:?}", name.get_ref()),
                "a name of 1 to 64 letters, digits, '_', '.' or '-' (not \".\" or \"..\")",
            ));
        } else if known.contains_key(name.get_ref()) {
            p.push(Problem::found(
                name.span(),
                &key,
                format!("the group name {:?}, also the name of a program", name.get_ref()),
                "a group name that no program has",
            ));
        }
        let mut list: Vec<String> = Vec::new();
        for (i, m) in members.iter().enumerate() {
            if !known.contains_key(m.get_ref()) {
                let programs: Vec<&str> = raw.programs.iter().map(|r| r.name.get_ref().as_str()).collect();
                p.push(Problem::found(
                    m.span(),
                    &format!("{key}[{i}]"),
                    format!("{:?}", m.get_ref()),
                    format!(
                        "the name of a program or instance in this file ({})",
                        programs.join(", ")
                    ),
                ));
            } else if !list.contains(m.get_ref()) {
                list.push(m.get_ref().clone());
            }
        }
        out.insert(name.get_ref().clone(), list);
    }
    out
}

/// Place problems in the file (line and column), in file order.
fn locate(file: &str, text: &str, mut problems: Vec<Problem>) -> Vec<ConfigProblem> {
    problems.sort_by_key(|p| p.span.start);
    problems
        .into_iter()
        .map(|p| {
            let (line, column) = line_col(text, p.span.start);
            ConfigProblem {
                file: file.to_string(),
                at: Some(LineCol { line, column }),
                key: p.key,
                detail: p.detail,
            }
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// `p` made absolute against `base`, with `.` components dropped (`..` is kept: without the
/// file system one cannot know what it means across a symlink).
pub fn absolute_from(base: &Path, p: &str) -> PathBuf {
    let joined = base.join(p);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::Prefix(_) | Component::RootDir | Component::ParentDir | Component::Normal(_) => out.push(c),
        }
    }
    out
}

/// Two programs cannot write the same log file: each rotates its own files, and two
/// rotating one file would lose lines. (One program's stdout and stderr may share one.) A
/// stream (`/dev/stdout` in a container, a FIFO: `load::is_stream`) is never rotated, and any
/// number of programs may write there, each line whole.
fn shared_log_files(raw: &[RawProgram], programs: &[(usize, Program)], files: &dyn Files, p: &mut Vec<Problem>) {
    let mut owner: BTreeMap<&Path, &str> = BTreeMap::new();
    for (r, prog) in programs {
        let r = &raw[*r];
        let streams = [("stdout", &prog.stdout, &r.stdout), ("stderr", &prog.stderr, &r.stderr)];
        for (stream, out, written) in streams {
            let (Output::File(path), Some(written)) = (out, written) else {
                continue;
            };
            if files.is_stream(path) {
                continue;
            }
            match owner.get(path.as_path()) {
                // Instances that share a file are reported once, by `expand`.
                Some(_) if p.iter().any(|q| q.span == written.span()) => {}
                Some(other) if *other != prog.name => p.push(Problem::found(
                    written.span(),
                    &format!("programs.{}.{stream}", raw::segment(prog.base_name())),
                    format!("{:?}, the log file of {other}", written.get_ref()),
                    "a file that no other program writes to",
                )),
                Some(_) => {}
                None => {
                    owner.insert(path, &prog.name);
                }
            }
        }
    }
}

/// `depends_on`: every name known, none itself, no cycle (each cycle named once).
/// A name may be a program, the base name of one with instances (all of them), or one instance.
fn dependencies(programs: &[RawProgram], known: &BTreeMap<String, String>, p: &mut Vec<Problem>) {
    let names: BTreeSet<&str> = programs.iter().map(|r| r.name.get_ref().as_str()).collect();
    // name -> [(dependency, span of its mention)], only the edges that are fine on their own.
    let mut edges: BTreeMap<&str, Vec<(&str, raw::Span)>> = BTreeMap::new();
    for prog in programs {
        let name = prog.name.get_ref().as_str();
        let key = format!("programs.{}.depends_on", raw::segment(name));
        for (i, dep) in prog.depends_on.iter().flatten().enumerate() {
            let dep_key = format!("{key}[{i}]");
            let Some(d) = known.get(dep.get_ref()).map(String::as_str) else {
                p.push(Problem::found(
                    dep.span(),
                    &dep_key,
                    format!("{:?}", dep.get_ref()),
                    format!(
                        "the name of a program in this file ({})",
                        names.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
                continue;
            };
            if d == name {
                p.push(Problem::found(
                    dep.span(),
                    &dep_key,
                    format!("{:?}", dep.get_ref()),
                    "the name of another program (a program cannot depend on itself)",
                ));
            } else if names.contains(d) {
                edges.entry(name).or_default().push((d, dep.span()));
            }
        }
    }
    for cycle in cycles(&edges) {
        let first = cycle[0];
        let span = edges[first]
            .iter()
            .find(|(d, _)| *d == cycle[1])
            .map_or(0..0, |(_, s)| s.clone());
        p.push(Problem::found(
            span,
            &format!("programs.{}.depends_on", raw::segment(first)),
            format!("the dependency cycle {}", cycle.join(" -> ")),
            "programs that do not depend on each other in a circle",
        ));
    }
}

/// Every distinct cycle of the graph, each as `[a, b, ..., a]` starting at its smallest name.
fn cycles<'a>(edges: &BTreeMap<&'a str, Vec<(&'a str, raw::Span)>>) -> Vec<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<(&'a str, raw::Span)>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        found: &mut BTreeSet<Vec<&'a str>>,
    ) {
        marks.insert(node, Mark::Active);
        stack.push(node);
        for (next, _) in edges.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Active) => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut ring: Vec<&str> = stack[start..].to_vec();
                    let min = ring.iter().enumerate().min_by_key(|(_, n)| **n).map_or(0, |(i, _)| i);
                    ring.rotate_left(min);
                    ring.push(ring[0]);
                    found.insert(ring);
                }
                Some(Mark::Done) => {}
                None => visit(next, edges, marks, stack, found),
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = BTreeSet::new();
    for node in edges.keys() {
        if !marks.contains_key(node) {
            visit(node, edges, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests;

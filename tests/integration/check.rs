//! Integration tests: `holden check`, the real binary on config files in a temp dir. A bad
//! file exits 2 with every error as `FILE:LINE:COL: KEY: found ..., expected ...` on stderr
//! and nothing on stdout; a good one exits 0 and prints every resolved setting.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::harness::*;

/// The error lines of a failed check: each one starts with the file name, none with a prefix.
fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Write `text` as `bad.toml` in a fresh temp dir, check it by its relative name from that
/// dir, and return the error lines after asserting exit 2 and an empty stdout.
fn check_fails(text: &str) -> Vec<String> {
    let dir = tempdir();
    fs::write(dir.path().join("bad.toml"), text).expect("write config");
    let out = holden_in(Some(dir.path()), &["check", "-c", "bad.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "holden check accepted:\n{text}\n{out:?}");
    assert!(
        out.stdout.is_empty(),
        "stdout of a failed check: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    error_lines(&out)
}

/// A one-error config: assert the exact `file:line:col: key:` prefix and the found/expected text.
fn assert_one_error(text: &str, prefix: &str, found: &str, expected: &str) {
    let lines = check_fails(text);
    assert_eq!(lines.len(), 1, "expected one error for\n{text}\ngot {lines:#?}");
    let line = &lines[0];
    assert!(line.starts_with(prefix), "{line:?} does not start with {prefix:?}");
    assert!(
        line.contains(&format!("found {found}")),
        "{line:?} lacks found {found:?}"
    );
    assert!(
        line.contains(&format!("expected {expected}")),
        "{line:?} lacks expected {expected:?}"
    );
}

fn web(extra: &str) -> String {
    format!("[programs.web]\ncommand = \"sleep 10\"\n{extra}\n")
}

#[test]
fn a_bad_duration_names_file_line_column_key_found_and_expected() {
    assert_one_error(
        &web("stop_timeout = \"ten\""),
        "bad.toml:3:16: programs.web.stop_timeout: ",
        "\"ten\"",
        "a duration like \"10s\"",
    );
}

#[test]
fn an_unknown_program_key_is_refused_with_a_suggestion() {
    assert_one_error(
        &web("stop_timout = \"1s\""),
        "bad.toml:3:1: programs.web.stop_timout: ",
        "unknown key \"stop_timout\"",
        "a known key like \"stop_timeout\"",
    );
}

#[test]
fn an_unknown_supervisor_key_and_top_level_table_are_refused() {
    let lines = check_fails("[supervisor]\nsocket_path = \"/x\"\n\n[program.web]\ncommand = \"x\"\n");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].starts_with("bad.toml:2:1: supervisor.socket_path: found unknown key \"socket_path\", expected"));
    assert!(
        lines[1].starts_with(
            "bad.toml:4:2: program: found unknown key \"program\", expected a known key like \"programs\""
        )
    );
}

#[test]
fn a_wrong_type_is_refused() {
    assert_one_error(
        &web("autostart = \"yes\""),
        "bad.toml:3:13: programs.web.autostart: ",
        "\"yes\"",
        "true or false",
    );
}

#[test]
fn a_bad_size_and_a_zero_memory_limit_are_refused() {
    assert_one_error(
        &web("memory_limit = \"30 parsecs\""),
        "bad.toml:3:16: programs.web.memory_limit: ",
        "\"30 parsecs\"",
        "a size like \"500MB\"",
    );
    assert_one_error(
        &web("memory_limit = \"0\""),
        "bad.toml:3:16: programs.web.memory_limit: ",
        "0",
        "a size above 0",
    );
}

#[test]
fn a_bad_program_name_is_refused() {
    assert_one_error(
        "[programs.\"my web\"]\ncommand = \"x\"\n",
        "bad.toml:1:11: programs.\"my web\": ",
        "the program name \"my web\"",
        "a name of 1 to 64 letters, digits",
    );
}

#[test]
fn an_empty_command_and_a_missing_one_are_refused() {
    assert_one_error(
        "[programs.web]\ncommand = \"\"\n",
        "bad.toml:2:11: programs.web.command: ",
        "\"\"",
        "a command line that names a program",
    );
    assert_one_error(
        "[programs.web]\ncommand = []\n",
        "bad.toml:2:11: programs.web.command: ",
        "[]",
        "an array that names a program",
    );
    assert_one_error(
        "[programs.web]\nautostart = false\n",
        "bad.toml:1:11: programs.web: ",
        "no command",
        "a command = ",
    );
}

#[test]
fn an_unterminated_quote_in_a_command_is_refused() {
    assert_one_error(
        "[programs.web]\ncommand = \"sh -c 'echo hi\"\n",
        "bad.toml:2:11: programs.web.command: ",
        "a ' without its closing '",
        "a command line split like a shell would",
    );
}

#[test]
fn depends_on_an_unknown_program_or_itself_is_refused() {
    assert_one_error(
        &web("depends_on = [\"db\"]"),
        "bad.toml:3:15: programs.web.depends_on[0]: ",
        "\"db\"",
        "the name of a program in this file (web)",
    );
    assert_one_error(
        &web("depends_on = [\"web\"]"),
        "bad.toml:3:15: programs.web.depends_on[0]: ",
        "\"web\"",
        "the name of another program",
    );
}

#[test]
fn a_dependency_cycle_is_named() {
    let text =
        "[programs.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n\n[programs.b]\ncommand = \"x\"\ndepends_on = [\"a\"]\n";
    assert_one_error(
        text,
        "bad.toml:3:15: programs.a.depends_on: ",
        "the dependency cycle a -> b -> a",
        "programs that do not depend on each other",
    );
}

#[test]
fn max_restart_delay_below_restart_delay_is_refused() {
    assert_one_error(
        &web("restart_delay = \"10s\"\nmax_restart_delay = \"5s\""),
        "bad.toml:4:21: programs.web.max_restart_delay: ",
        "\"5s\"",
        "at least restart_delay (10s)",
    );
}

#[test]
fn bad_policy_signal_exit_code_and_limits_are_refused() {
    assert_one_error(
        &web("autorestart = \"sometimes\""),
        "bad.toml:3:15: programs.web.autorestart: ",
        "\"sometimes\"",
        "one of \"never\", \"on-failure\", \"always\"",
    );
    assert_one_error(
        &web("stop_signal = \"SIGFOO\""),
        "bad.toml:3:15: programs.web.stop_signal: ",
        "\"SIGFOO\"",
        "a signal name like \"TERM\"",
    );
    assert_one_error(
        &web("exit_codes = [0, 300]"),
        "bad.toml:3:18: programs.web.exit_codes[1]: ",
        "300",
        "an exit code from 0 to 255",
    );
    assert_one_error(
        &web("cpu_limit = -1.5"),
        "bad.toml:3:13: programs.web.cpu_limit: ",
        "-1.5",
        "a number of CPUs above 0",
    );
    assert_one_error(
        &web("cpu_limit = inf"),
        "bad.toml:3:13: programs.web.cpu_limit: ",
        "inf",
        "a number of CPUs above 0",
    );
    assert_one_error(
        &web("pids_limit = 0"),
        "bad.toml:3:14: programs.web.pids_limit: ",
        "0",
        "a number of processes above 0",
    );
}

#[test]
fn bad_outputs_are_refused() {
    assert_one_error(
        &web("stdout = \"stdout\""),
        "bad.toml:3:10: programs.web.stdout: ",
        "\"stdout\"",
        "a path, \"inherit\" or \"null\"",
    );
    assert_one_error(
        &web("stderr = 2"),
        "bad.toml:3:10: programs.web.stderr: ",
        "2",
        "a path, \"inherit\", \"null\" or \"stdout\"",
    );
}

#[test]
fn bad_supervisor_values_are_refused() {
    let cases = [
        (
            "socket_mode = \"rw-------\"",
            "bad.toml:2:15: supervisor.socket_mode: ",
            "\"rw-------\"",
            "an octal mode like \"0600\"",
        ),
        (
            "log_level = \"verbose\"",
            "bad.toml:2:13: supervisor.log_level: ",
            "\"verbose\"",
            "one of \"off\", \"error\"",
        ),
        (
            "cgroup_path = \"../escape\"",
            "bad.toml:2:15: supervisor.cgroup_path: ",
            "\"../escape\"",
            "a cgroup path like \"/supervisor\"",
        ),
        (
            "cgroup_path = \"\"",
            "bad.toml:2:15: supervisor.cgroup_path: ",
            "\"\"",
            "a cgroup path",
        ),
        (
            "cgroups = \"yes\"",
            "bad.toml:2:11: supervisor.cgroups: ",
            "\"yes\"",
            "one of \"auto\", \"required\", \"off\"",
        ),
        (
            "allow_uids = [1000, -2]",
            "bad.toml:2:21: supervisor.allow_uids[1]: ",
            "-2",
            "a uid from 0 to",
        ),
        (
            "allow_uids = \"1000\"",
            "bad.toml:2:14: supervisor.allow_uids: ",
            "\"1000\"",
            "an array of uids",
        ),
    ];
    for (line, prefix, found, expected) in cases {
        assert_one_error(&format!("[supervisor]\n{line}\n"), prefix, found, expected);
    }
}

#[test]
fn a_toml_syntax_error_reports_its_line_and_column() {
    let lines = check_fails("[programs.web]\ncommand = \"x\"\nautostart = yes\n");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("bad.toml:3:13: invalid TOML: "), "{lines:#?}");
    assert!(lines[0].contains("`yes`"), "{lines:#?}");
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let text = "\
[supervisor]
cgroups = \"sometimes\"

[programs.web]
command = \"sleep 1\"
stop_timeout = \"ten\"
colour = \"blue\"
memory_limit = 0

[programs.worker]
command = \"run 'oops\"
depends_on = [\"nothing\"]
";
    let lines = check_fails(text);
    let prefixes: Vec<&str> = lines.iter().map(|l| l.split(" found ").next().unwrap_or("")).collect();
    assert_eq!(
        prefixes,
        [
            "bad.toml:2:11: supervisor.cgroups:",
            "bad.toml:6:16: programs.web.stop_timeout:",
            "bad.toml:7:1: programs.web.colour:",
            "bad.toml:8:16: programs.web.memory_limit:",
            "bad.toml:11:11: programs.worker.command:",
            "bad.toml:12:15: programs.worker.depends_on[0]:",
        ],
        "{lines:#?}"
    );
}

#[test]
fn the_file_name_in_errors_is_the_path_as_given() {
    let dir = tempdir();
    let path = dir.path().join("conf.toml");
    fs::write(&path, web("stop_timeout = \"ten\"")).expect("write config");
    let out = holden(&["check", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    let lines = error_lines(&out);
    assert!(
        lines[0].starts_with(&format!("{}:3:16: ", path.display())),
        "{lines:#?}"
    );
}

#[test]
fn a_missing_file_is_one_clear_sentence() {
    let dir = tempdir();
    let out = holden_in(Some(dir.path()), &["check", "-c", "nope.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the config file nope.toml: no such file"),
        "{err}"
    );
}

/// Run `holden check` on a valid file and return its stdout, asserting exit 0 and no stderr.
fn check_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = holden_in(Some(dir), args, env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn a_valid_file_prints_every_default_filled_in() {
    let dir = tempdir();
    fs::write(
        dir.path().join("good.toml"),
        "[programs.web]\ncommand = \"python3 -m http.server 8080\"\nstdout = \"logs/web.log\"\nstderr = \"logs/web.log\"\n\n\
         [programs.remote]\ncommand = [\"sleep\", \"60\"]\nagent = \"agent.sock\"\nmemory_limit = \"1GiB\"\n",
    )
    .expect("write config");
    let out = check_ok(dir.path(), &["check", "-c", "good.toml"], &[]);
    let d = dir.path().display().to_string();
    for line in [
        "[supervisor]".to_string(),
        "socket_mode = \"0600\"".into(),
        "log_level = \"info\"".into(),
        "logfile = \"stderr\"".into(),
        "cgroup_path = \"/supervisor\"".into(),
        "cgroups = \"auto\"".into(),
        "[programs.web]".into(),
        "command = [\"python3\", \"-m\", \"http.server\", \"8080\"]".into(),
        format!("# directory: not set (this file's folder, \"{d}\")"),
        "environment = {}".into(),
        "autostart = true".into(),
        "autorestart = \"on-failure\"".into(),
        "exit_codes = [0]".into(),
        "min_uptime = \"1s\"".into(),
        "restart_delay = \"1s\"".into(),
        "max_restart_delay = \"30s\"".into(),
        "max_restarts = 5".into(),
        "stop_signal = \"TERM\"".into(),
        "stop_timeout = \"10s\"".into(),
        format!("stdout = \"{d}/logs/web.log\""),
        format!("stderr = \"{d}/logs/web.log\"  # the same file: lines interleaved in order"),
        "log_max_bytes = 50000000  # 50 MB".into(),
        "log_backups = 10".into(),
        "log_timestamps = false".into(),
        "depends_on = []".into(),
        "[programs.remote]".into(),
        format!("agent = \"{d}/agent.sock\""),
        "memory_limit = 1073741824  # 1 GiB".into(),
    ] {
        assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
    }
    assert!(out.contains("do not apply"), "no agent note in\n{out}");
    // Programs come in name order.
    assert!(out.find("[programs.remote]") < out.find("[programs.web]"), "{out}");
    // What check prints is itself a valid config that means the same.
    fs::write(dir.path().join("again.toml"), &out).expect("write rendered config");
    let again = check_ok(dir.path(), &["check", "-c", "again.toml"], &[]);
    assert_eq!(
        again.lines().skip(1).collect::<Vec<_>>(),
        out.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn an_empty_file_is_valid() {
    let dir = tempdir();
    fs::write(dir.path().join("empty.toml"), "").expect("write config");
    let out = check_ok(dir.path(), &["check", "-c", "empty.toml"], &[]);
    assert!(out.contains("[supervisor]") && !out.contains("[programs."), "{out}");
}

#[test]
fn the_file_comes_from_holden_config_else_the_current_folder() {
    let dir = tempdir();
    fs::write(
        dir.path().join("supervisor.toml"),
        "[programs.from_cwd]\ncommand = \"x\"\n",
    )
    .expect("write config");
    fs::write(dir.path().join("env.toml"), "[programs.from_env]\ncommand = \"x\"\n").expect("write config");
    fs::write(dir.path().join("flag.toml"), "[programs.from_flag]\ncommand = \"x\"\n").expect("write config");
    let env_path = dir.path().join("env.toml").display().to_string();

    let out = check_ok(dir.path(), &["check"], &[]);
    assert!(out.contains("[programs.from_cwd]"), "{out}");
    let out = check_ok(dir.path(), &["check"], &[("HOLDEN_CONFIG", &env_path)]);
    assert!(out.contains("[programs.from_env]"), "{out}");
    let out = check_ok(
        dir.path(),
        &["check", "-c", "flag.toml"],
        &[("HOLDEN_CONFIG", &env_path)],
    );
    assert!(out.contains("[programs.from_flag]"), "{out}");
}

#[test]
fn the_example_config_of_the_repository_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = check_ok(root, &["check", "-c", "supervisor.toml"], &[]);
    for program in ["[programs.web]", "[programs.crasher]", "[programs.memhog]"] {
        assert!(out.contains(program), "no {program} in\n{out}");
    }
    assert!(out.contains("memory_limit = 30000000"), "{out}");
}

#[test]
fn a_variable_assignment_before_the_command_is_refused() {
    assert_one_error(
        "[programs.web]\ncommand = \"PORT=80 server\"\n",
        "bad.toml:2:11: programs.web.command: ",
        "the variable assignment \"PORT=80\"",
        "a command line that starts with the program (set variables with environment",
    );
}

#[test]
fn two_programs_writing_one_log_file_are_refused() {
    assert_one_error(
        "[programs.a]\ncommand = \"x\"\nstdout = \"all.log\"\n\n[programs.b]\ncommand = \"x\"\nstdout = \"all.log\"\n",
        "bad.toml:7:10: programs.b.stdout: ",
        "\"all.log\", the log file of a",
        "a file that no other program writes to",
    );
}

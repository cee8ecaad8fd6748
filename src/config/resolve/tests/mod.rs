use std::time::Duration;

use super::*;
use crate::config::load::{ENV_FILE_MAX, Files, System, load_str};

fn ok(text: &str) -> Config {
    load_str(Path::new("/etc/holden/supervisor.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match load_str(Path::new("sv.toml"), text) {
        Ok(c) => panic!("accepted: {c:#?}"),
        Err(e) => e.lines(),
    }
}

fn one_error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

fn program_with(line: &str) -> String {
    format!("[programs.web]\ncommand = \"sleep 1\"\n{line}\n")
}

#[test]
fn an_empty_file_is_valid_with_default_settings() {
    let c = ok("");
    assert!(c.programs.is_empty());
    assert_eq!(c.supervisor.socket, super::super::default_socket());
    assert_eq!(c.supervisor.socket_mode, 0o600);
    assert_eq!(c.supervisor.allow_uids, Vec::<u32>::new());
    assert_eq!(c.supervisor.log_level, log::LevelFilter::Info);
    assert_eq!(c.supervisor.logfile, LogFile::Stderr);
    assert_eq!(c.supervisor.cgroup_path, "/supervisor");
    assert_eq!(c.supervisor.cgroups, CgroupMode::Auto);
}

#[test]
fn a_program_gets_every_default() {
    let c = ok("[programs.web]\ncommand = \"python3 -m http.server\"\n");
    let want = Program::with_defaults(
        "web",
        vec!["python3".into(), "-m".into(), "http.server".into()],
        Path::new("/etc/holden"),
    );
    assert_eq!(c.programs, vec![want]);
}

#[test]
fn every_value_type_resolves() {
    let c = ok(r#"
[supervisor]
socket = "run/h.sock"
socket_mode = "0660"
allow_uids = [1000, 0]
log_level = "debug"
logfile = "/var/log/holden.log"
cgroup_path = "programs"
cgroups = "off"

[programs.db]
command = ["postgres", "-D", "data dir"]

[programs.web]
command = "python3 -m 'http.server' 8080"
directory = "www"
environment = { PORT = "8080", MODE = "prod" }
user = "www-data"
group = 33
autostart = false
autorestart = "always"
exit_codes = [0, 2, 255]
min_uptime = "500ms"
restart_delay = "2s"
max_restart_delay = "1m"
max_restarts = 0
stop_signal = "SIGINT"
stop_timeout = "1m 30s"
memory_limit = "1.5GiB"
cpu_limit = 1.5
pids_limit = 64
stdout = "logs/web.log"
stderr = "./logs/web.log"
log_max_bytes = "10KB"
log_backups = 0
log_timestamps = true
depends_on = ["db"]
agent = "/run/holden/agent.sock"
"#);
    let s = &c.supervisor;
    assert_eq!(s.socket, PathBuf::from("/etc/holden/run/h.sock"));
    assert_eq!(s.socket_mode, 0o660);
    assert_eq!(s.allow_uids, vec![1000, 0]);
    assert_eq!(s.log_level, log::LevelFilter::Debug);
    assert_eq!(s.logfile, LogFile::Path("/var/log/holden.log".into()));
    assert_eq!(s.cgroup_path, "programs");
    assert_eq!(s.cgroups, CgroupMode::Off);
    assert_eq!(
        c.programs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["db", "web"]
    );
    assert_eq!(c.programs[0].command, ["postgres", "-D", "data dir"]);
    let w = &c.programs[1];
    assert_eq!(w.command, ["python3", "-m", "http.server", "8080"]);
    assert_eq!(w.directory, PathBuf::from("/etc/holden/www"));
    assert_eq!(w.environment.get("PORT").map(String::as_str), Some("8080"));
    assert_eq!(w.user.as_deref(), Some("www-data"));
    assert_eq!(w.group.as_deref(), Some("33"));
    assert!(!w.autostart);
    assert_eq!(w.autorestart, RestartPolicy::Always);
    assert_eq!(w.exit_codes, [0, 2, 255]);
    assert_eq!(w.min_uptime, Duration::from_millis(500));
    assert_eq!(w.restart_delay, Duration::from_secs(2));
    assert_eq!(w.max_restart_delay, Duration::from_secs(60));
    assert_eq!(w.max_restarts, 0);
    assert_eq!(w.stop_signal, Signal(2));
    assert_eq!(w.stop_timeout, Duration::from_secs(90));
    assert_eq!(w.memory_limit, Some(1_610_612_736));
    assert_eq!(w.cpu_limit, Some(1.5));
    assert_eq!(w.pids_limit, Some(64));
    assert_eq!(w.stdout, Output::File("/etc/holden/logs/web.log".into()));
    assert_eq!(w.stderr, Output::Stdout);
    assert_eq!(w.log_max_bytes, 10_000);
    assert_eq!(w.log_backups, 0);
    assert!(w.log_timestamps);
    assert_eq!(w.depends_on, ["db"]);
    assert_eq!(w.agent, Some(PathBuf::from("/run/holden/agent.sock")));
}

#[test]
fn sizes_follow_si_and_iec_units_and_integers_are_bytes() {
    for (text, bytes) in [
        ("\"30MB\"", 30_000_000),
        ("\"30 MiB\"", 31_457_280),
        ("\"1KB\"", 1000),
        ("\"1KiB\"", 1024),
        ("\"0\"", 0),
        ("4096", 4096),
    ] {
        let c = ok(&program_with(&format!("log_max_bytes = {text}")));
        assert_eq!(c.programs[0].log_max_bytes, bytes, "{text}");
    }
    assert!(one_error(&program_with("memory_limit = \"lots\"")).contains("found \"lots\", expected a size like"));
    assert!(one_error(&program_with("memory_limit = -5")).contains("found -5, expected a size"));
    assert!(one_error(&program_with("memory_limit = \"-5MB\"")).contains("found \"-5MB\""));
    assert_eq!(
        one_error(&program_with("memory_limit = 0")),
        "sv.toml:3:16: programs.web.memory_limit: found 0, expected a size above 0 (leave it out for no limit)"
    );
}

#[test]
fn stderr_and_stdout_outputs() {
    let c = ok(&program_with("stdout = \"null\"\nstderr = \"stdout\""));
    assert_eq!(
        (c.programs[0].stdout.clone(), c.programs[0].stderr.clone()),
        (Output::Null, Output::Stdout)
    );
    let c = ok(&program_with("stdout = \"a.log\"\nstderr = \"b.log\""));
    assert_eq!(c.programs[0].stderr, Output::File("/etc/holden/b.log".into()));
    let c = ok(&program_with("stderr = \"inherit\""));
    assert_eq!(c.programs[0].stderr, Output::Inherit);
    assert!(
        one_error(&program_with("stdout = \"stdout\""))
            .contains("programs.web.stdout: found \"stdout\", expected a path, \"inherit\" or \"null\"")
    );
    assert!(one_error(&program_with("stderr = \"\"")).contains("programs.web.stderr: found \"\", expected a path"));
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    assert_eq!(
        absolute_from(Path::new("/a/b"), "logs/x.log"),
        PathBuf::from("/a/b/logs/x.log")
    );
    assert_eq!(absolute_from(Path::new("/a/b"), "./x/./y"), PathBuf::from("/a/b/x/y"));
    assert_eq!(absolute_from(Path::new("/a/b"), "/abs"), PathBuf::from("/abs"));
    // A relative config path is first joined to the cwd.
    let cwd = std::env::current_dir().expect("cwd");
    let c = load_str(
        Path::new("conf/sv.toml"),
        "[programs.a]\ncommand = \"x\"\nstdout = \"o.log\"\n",
    )
    .expect("valid");
    assert_eq!(c.path, PathBuf::from("conf/sv.toml"));
    assert_eq!(c.programs[0].directory, cwd.join("conf"));
    assert_eq!(c.programs[0].stdout, Output::File(cwd.join("conf/o.log")));
    let c = ok("[programs.a]\ncommand = \"bin/x --flag ./y\"\n[programs.b]\ncommand = [\"../b\"]\n");
    assert_eq!(c.programs[0].command, ["/etc/holden/bin/x", "--flag", "./y"]);
    assert_eq!(c.programs[1].command, ["/etc/holden/../b"]);
}

#[test]
fn max_restart_delay_follows_a_large_restart_delay_unless_set() {
    let c = ok(&program_with("restart_delay = \"1m\""));
    assert_eq!(c.programs[0].max_restart_delay, Duration::from_secs(60));
    assert_eq!(
        one_error(&program_with("restart_delay = \"10s\"\nmax_restart_delay = \"5s\"")),
        "sv.toml:4:21: programs.web.max_restart_delay: found \"5s\", expected at least restart_delay (10s)"
    );
}

#[test]
fn each_bad_value_is_named_with_found_and_expected() {
    let cases = [
        (
            "stop_timeout = \"ten\"",
            "sv.toml:3:16: programs.web.stop_timeout: found \"ten\", expected a duration like \"10s\"",
        ),
        (
            "stop_timeout = 10",
            "sv.toml:3:16: programs.web.stop_timeout: found 10, expected a duration like \"10s\"",
        ),
        (
            "autorestart = \"sometimes\"",
            "sv.toml:3:15: programs.web.autorestart: found \"sometimes\", expected one of \"never\", \"on-failure\", \"always\"",
        ),
        (
            "stop_signal = \"TERMINATE\"",
            "sv.toml:3:15: programs.web.stop_signal: found \"TERMINATE\", expected a signal name like \"TERM\" or \"SIGHUP\", or a number from 1 to 64 but 32 and 33",
        ),
        (
            "exit_codes = [0, 256]",
            "sv.toml:3:18: programs.web.exit_codes[1]: found 256, expected an exit code from 0 to 255",
        ),
        (
            "cpu_limit = 0",
            "sv.toml:3:13: programs.web.cpu_limit: found 0, expected a number of CPUs above 0 like 0.5 (leave it out for no limit)",
        ),
        (
            "cpu_limit = nan",
            "sv.toml:3:13: programs.web.cpu_limit: found NaN, expected a number of CPUs above 0 like 0.5 (leave it out for no limit)",
        ),
        (
            "pids_limit = 0",
            "sv.toml:3:14: programs.web.pids_limit: found 0, expected a number of processes above 0 like 256 (leave it out for no limit)",
        ),
        (
            "max_restarts = -1",
            "sv.toml:3:16: programs.web.max_restarts: found -1, expected a number of restarts from 0 to 4294967295",
        ),
        (
            "autostart = 1",
            "sv.toml:3:13: programs.web.autostart: found 1, expected true or false",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(one_error(&program_with(line)), want, "{line}");
    }
}

#[test]
fn supervisor_values_are_checked() {
    let cases = [
        (
            "socket_mode = \"rw\"",
            "sv.toml:2:15: supervisor.socket_mode: found \"rw\", expected an octal mode like \"0600\"",
        ),
        (
            "socket_mode = 600",
            "sv.toml:2:15: supervisor.socket_mode: found 600, expected an octal mode like \"0600\"",
        ),
        (
            "log_level = \"loud\"",
            "sv.toml:2:13: supervisor.log_level: found \"loud\", expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
        ),
        (
            "cgroup_path = \"\"",
            "sv.toml:2:15: supervisor.cgroup_path: found \"\", expected a cgroup path like \"/supervisor\" or \"programs\", not the root and without \"..\"",
        ),
        (
            "cgroup_path = \"/a/../b\"",
            "sv.toml:2:15: supervisor.cgroup_path: found \"/a/../b\", expected a cgroup path like \"/supervisor\" or \"programs\", not the root and without \"..\"",
        ),
        (
            "cgroups = \"maybe\"",
            "sv.toml:2:11: supervisor.cgroups: found \"maybe\", expected one of \"auto\", \"required\", \"off\"",
        ),
        (
            "allow_uids = [-1]",
            "sv.toml:2:15: supervisor.allow_uids[0]: found -1, expected a uid from 0 to 4294967294",
        ),
        (
            "logfile = 3",
            "sv.toml:2:11: supervisor.logfile: found 3, expected \"stderr\" or a path",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(one_error(&format!("[supervisor]\n{line}\n")), want, "{line}");
    }
    assert_eq!(ok("[supervisor]\nsocket_mode = 0o640\n").supervisor.socket_mode, 0o640);
}

#[test]
fn commands_are_split_or_refused() {
    assert_eq!(
        one_error("[programs.web]\ncommand = \"echo 'oops\"\n"),
        "sv.toml:2:11: programs.web.command: found a ' without its closing ' in \"echo 'oops\", expected a command line split like a shell would, without running one (write [\"sh\", \"-c\", \"...\"] to run a shell)"
    );
    assert!(
        one_error("[programs.web]\ncommand = \"a | b\"\n").contains("found the unquoted shell operator | in \"a | b\"")
    );
    assert!(
        one_error("[programs.web]\ncommand = \"  \"\n")
            .contains("programs.web.command: found \"  \", expected a command line that names a program")
    );
    assert!(one_error("[programs.web]\ncommand = []\n").contains("programs.web.command: found [], expected an array"));
    assert!(
        one_error("[programs.web]\ncommand = [\"\", \"x\"]\n")
            .contains("sv.toml:2:12: programs.web.command[0]: found \"\", expected the program to run")
    );
    assert_eq!(
        one_error("[programs.web]\nautostart = true\n"),
        "sv.toml:1:11: programs.web: found no command, expected a command = \"...\" for every program"
    );
}

#[test]
fn a_leading_variable_assignment_in_a_command_is_refused() {
    assert!(
        one_error("[programs.web]\ncommand = \"PORT=80 server\"\n")
            .contains("found the variable assignment \"PORT=80\" in \"PORT=80 server\", expected a command line that starts with the program")
    );
    assert_eq!(
        ok("[programs.web]\ncommand = \"env PORT=80 server --x=1\"\n").programs[0].command,
        ["env", "PORT=80", "server", "--x=1"]
    );
    assert_eq!(
        ok("[programs.web]\ncommand = [\"./a=b\"]\n").programs[0].command,
        ["/etc/holden/a=b"]
    );
}

#[test]
fn two_programs_cannot_share_a_log_file() {
    let text = "[programs.a]\ncommand = \"x\"\nstdout = \"logs/all.log\"\nstderr = \"logs/all.log\"\n\
                [programs.b]\ncommand = \"x\"\nstderr = \"./logs/all.log\"\n";
    assert_eq!(
        one_error(text),
        "sv.toml:7:10: programs.b.stderr: found \"./logs/all.log\", the log file of a, expected a file that no other program writes to"
    );
}

#[test]
fn programs_may_share_a_path_that_is_not_a_regular_file() {
    // /dev/null stands for /dev/stdout here: a test's stdout may be a regular file.
    let text = "[programs.a]\ncommand = \"x\"\nstdout = \"/dev/null\"\n\
                [programs.b]\ncommand = \"x\"\nstdout = \"/dev/null\"\nstderr = \"/dev/null\"\n";
    assert_eq!(ok(text).programs.len(), 2);
}

#[test]
fn bad_program_names_are_refused() {
    assert_eq!(
        one_error("[programs.\"a b\"]\ncommand = \"x\"\n"),
        "sv.toml:1:11: programs.\"a b\": found the program name \"a b\", expected a name of 1 to 64 letters, digits, '_', '.' or '-' (not \".\" or \"..\")"
    );
    assert_eq!(errors("[programs.\"..\"]\ncommand = \"x\"\n").len(), 1);
}

#[test]
fn dependencies_must_exist_and_not_form_a_cycle() {
    assert_eq!(
        one_error("[programs.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n"),
        "sv.toml:3:15: programs.a.depends_on[0]: found \"b\", expected the name of a program in this file (a)"
    );
    assert!(one_error("[programs.a]\ncommand = \"x\"\ndepends_on = [\"a\"]\n").contains("cannot depend on itself"));
    let text = "
[programs.a]
command = \"x\"
depends_on = [\"b\"]
[programs.b]
command = \"x\"
depends_on = [\"c\"]
[programs.c]
command = \"x\"
depends_on = [\"a\"]
[programs.d]
command = \"x\"
depends_on = [\"e\", \"a\"]
[programs.e]
command = \"x\"
depends_on = [\"d\"]
";
    assert_eq!(
        errors(text),
        [
            "sv.toml:4:15: programs.a.depends_on: found the dependency cycle a -> b -> c -> a, expected programs that do not depend on each other in a circle",
            "sv.toml:13:15: programs.d.depends_on: found the dependency cycle d -> e -> d, expected programs that do not depend on each other in a circle",
        ]
    );
    let c = ok("[programs.a]\ncommand = \"x\"\ndepends_on = [\"b\", \"b\"]\n[programs.b]\ncommand = \"x\"\n");
    assert_eq!(c.programs[0].depends_on, ["b"]);
}

#[test]
fn all_errors_of_a_file_are_reported_at_once_in_file_order() {
    let text = "
[supervisor]
cgroups = \"sometimes\"
colour = \"red\"

[programs.web]
command = \"x\"
stop_timeout = \"ten\"
memory_limit = \"lots\"
depends_on = [\"nope\"]

[programs.worker]
stop_signal = \"NOPE\"
";
    let e = errors(text);
    assert_eq!(e.len(), 7, "{e:#?}");
    let keys: Vec<&str> = e.iter().map(|l| l.split(": ").nth(1).unwrap_or("")).collect();
    assert_eq!(
        keys,
        [
            "supervisor.cgroups",
            "supervisor.colour",
            "programs.web.stop_timeout",
            "programs.web.memory_limit",
            "programs.web.depends_on[0]",
            "programs.worker",
            "programs.worker.stop_signal",
        ],
        "{e:#?}"
    );
    assert!(e[5].contains("no command"));
}

#[test]
fn syntax_errors_name_line_and_column() {
    let e = errors("[programs.web]\ncommand = \"x\"\nautostart = yes\n");
    assert!(e[0].starts_with("sv.toml:3:13: invalid TOML: "), "{e:#?}");
}

proptest::proptest! {
    #[test]
    fn render_reads_back_any_command_environment_and_name(
        name in "[A-Za-z0-9_.-]{1,20}",
        argv in proptest::collection::vec("[^/\\x00]+", 1..4),
        env in proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_. -]{0,8}", "[^\\x00]*", 0..3),
    ) {
        proptest::prop_assume!(super::super::valid_program_name(&name));
        let mut program = Program::with_defaults(&name, argv, Path::new("/etc/holden"));
        program.environment = env;
        let config = Config {
            path: PathBuf::from("/etc/holden/supervisor.toml"),
            supervisor: ok("").supervisor,
            programs: vec![program],
            groups: BTreeMap::new(),
            instanced: BTreeMap::new(),
        };
        let text = render(&config);
        let again = load_str(&config.path, &text).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}\n{text}")))?;
        proptest::prop_assert_eq!(again, config);
    }
}

#[test]
fn line_col_counts_characters_from_one() {
    let t = "ab\nçd\n";
    assert_eq!(line_col(t, 0), (1, 1));
    assert_eq!(line_col(t, 3), (2, 1));
    assert_eq!(line_col(t, 5), (2, 2));
    assert_eq!(line_col(t, 100), (3, 1));
}

#[test]
fn render_shows_every_resolved_value_and_reads_back_the_same() {
    let text = "[programs.web]\ncommand = \"echo 'hi there'\"\nstdout = \"w.log\"\nstderr = \"w.log\"\nmemory_limit = \"30MB\"\n\
                [programs.remote]\ncommand = \"x\"\nagent = \"/run/a.sock\"\n";
    let c = ok(text);
    let r = render(&c);
    for needle in [
        "command = [\"echo\", \"hi there\"]",
        "# directory: not set (this file's folder, \"/etc/holden\")",
        "autorestart = \"on-failure\"",
        "exit_codes = [0]",
        "min_uptime = \"1s\"",
        "max_restart_delay = \"30s\"",
        "stop_signal = \"TERM\"",
        "stop_timeout = \"10s\"",
        "memory_limit = 30000000",
        "# cpu_limit: not set (no limit)",
        "stdout = \"/etc/holden/w.log\"",
        "stderr = \"/etc/holden/w.log\"  # the same file",
        "log_max_bytes = 50000000",
        "log_backups = 10",
        "log_timestamps = false",
        "do not apply",
        "socket_mode = \"0600\"",
        "cgroups = \"auto\"",
    ] {
        assert!(r.contains(needle), "{needle:?} not in\n{r}");
    }
    let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
    assert_eq!(again.programs, c.programs);
    assert_eq!(again.supervisor, c.supervisor);
}

mod environment;
mod instances;
mod process;

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
            "sv.toml:3:15: programs.web.stop_signal: found \"TERMINATE\", expected a signal name like \"TERM\" or \"SIGHUP\", or a number from 1 to 31",
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
        "directory = \"/etc/holden\"",
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

#[test]
fn instances_expand_into_programs_with_their_index_filled_in() {
    let text = "[programs.worker]\ncommand = \"work --id {index} --pad {index:03} --lit {{index}} {{.Name}}\"\n\
                instances = 11\ninstance_start = 1\ndirectory = \"/srv/w{index}\"\n\
                environment = { SLOT = \"s{index:02}\" }\nstdout = \"logs/w-{index}.log\"\nstderr = \"logs/w-{index}.log\"\n\
                [programs.web]\ncommand = [\"sh\", \"-c\", \"{ echo {index}; }\"]\n";
    let c = ok(text);
    let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names[0], "web");
    assert_eq!(names[1..4], ["worker@1", "worker@2", "worker@3"]);
    assert_eq!(names[11], "worker@11");
    assert_eq!(names.len(), 12);
    let w = c.program("worker@2").expect("worker@2");
    assert_eq!(
        w.instance,
        Some(Instance {
            program: "worker".into(),
            index: 2
        })
    );
    assert_eq!(
        w.command,
        ["work", "--id", "2", "--pad", "002", "--lit", "{index}", "{{.Name}}"]
    );
    assert_eq!(w.directory, PathBuf::from("/srv/w2"));
    assert_eq!(w.environment["SLOT"], "s02");
    assert_eq!(w.stdout, Output::File("/etc/holden/logs/w-2.log".into()));
    assert_eq!(w.stderr, Output::Stdout);
    // A plain program: `{index}` is 0, other braces are left alone.
    let web = c.program("web").expect("web");
    assert_eq!(web.instance, None);
    assert_eq!(web.command, ["sh", "-c", "{ echo 0; }"]);
    assert_eq!(c.instanced["worker"].count, 11);
    assert_eq!(c.instanced["worker"].start, 1);
    assert_eq!(c.instanced["worker"].template.command[2], "{index}");
    assert_eq!(
        w.holden_env(),
        [
            ("HOLDEN_PROGRAM", "worker".to_string()),
            ("HOLDEN_INSTANCE", "2".to_string())
        ]
    );
    assert_eq!(web.holden_env(), [("HOLDEN_PROGRAM", "web".to_string())]);
    // One instance is still an instance.
    let c = ok("[programs.w]\ncommand = \"x\"\ninstances = 1\n");
    assert_eq!(c.programs[0].name, "w@0");
}

#[test]
fn instances_are_checked() {
    assert_eq!(
        one_error(&program_with("instances = 0")),
        "sv.toml:3:13: programs.web.instances: found 0, expected a number of instances from 1 to 1024 (leave it out for one plain program)"
    );
    assert!(one_error(&program_with("instances = 1025")).contains("programs.web.instances: found 1025"));
    assert!(one_error(&program_with("instances = \"4\"")).contains("programs.web.instances: found \"4\""));
    assert_eq!(
        one_error(&program_with("instance_start = 1")),
        "sv.toml:3:18: programs.web.instance_start: found instance_start = 1 without instances, expected instances = N beside it (or no instance_start)"
    );
    assert!(
        one_error(&program_with("instances = 2\ninstance_start = -1"))
            .starts_with("sv.toml:4:18: programs.web.instance_start: found -1, expected the first instance's index")
    );
    assert_eq!(
        one_error(&program_with("instances = 3\nstdout = \"logs/w.log\"")),
        "sv.toml:4:10: programs.web.stdout: found \"logs/w.log\", one file for 3 instances, expected a path with {index} in it like \"logs/worker-{index}.log\" (two instances cannot share a log file)"
    );
    assert!(
        one_error(&program_with(
            "instances = 3\nstdout = \"w{index}.log\"\nstderr = \"w.err\""
        ))
        .starts_with("sv.toml:5:10: programs.web.stderr: found \"w.err\", one file for 3 instances")
    );
    // An escaped placeholder is no placeholder.
    assert!(
        one_error(&program_with("instances = 2\nstdout = \"w{{index}}.log\"")).contains("one file for 2 instances")
    );
    // One instance may have any file; so may instances writing a stream.
    ok(&program_with("instances = 1\nstdout = \"logs/w.log\""));
    ok(&program_with("instances = 4\nstdout = \"/dev/null\""));
    // `@` is the instance separator, never part of a program's name.
    assert!(one_error("[programs.\"w@1\"]\ncommand = \"x\"\n").contains("found the program name \"w@1\""));
}

#[test]
fn dependencies_on_instances_name_all_of_them_or_one() {
    let text = "[programs.worker]\ncommand = \"x\"\ninstances = 2\n\
                [programs.web]\ncommand = \"x\"\ndepends_on = [\"worker\", \"worker@1\"]\n";
    let c = ok(text);
    assert_eq!(c.program("web").expect("web").depends_on, ["worker", "worker@1"]);
    assert_eq!(
        one_error(&format!(
            "{text}[programs.api]\ncommand = \"x\"\ndepends_on = [\"worker@2\"]\n"
        )),
        "sv.toml:9:15: programs.api.depends_on[0]: found \"worker@2\", expected the name of a program in this file (api, web, worker)"
    );
    assert!(
        one_error("[programs.w]\ncommand = \"x\"\ninstances = 2\ndepends_on = [\"w@0\"]\n")
            .contains("programs.w.depends_on[0]: found \"w@0\", expected the name of another program")
    );
    assert!(
        one_error(&text.replace("instances = 2\n", "instances = 2\ndepends_on = [\"web\"]\n"))
            .contains("found the dependency cycle web -> worker -> web")
    );
}

#[test]
fn groups_name_programs_and_instances() {
    let text = "[programs.worker]\ncommand = \"x\"\ninstances = 2\n[programs.app]\ncommand = \"x\"\n\
                [groups]\nweb = [\"app\", \"worker\", \"app\"]\none = [\"worker@1\"]\n";
    let c = ok(text);
    assert_eq!(c.groups["web"], ["app", "worker"]);
    assert_eq!(c.groups["one"], ["worker@1"]);
    let w1 = c.program("worker@1").expect("worker@1");
    assert_eq!(c.groups_of(w1), ["one", "web"]);
    assert_eq!(c.groups_of(c.program("worker@0").expect("worker@0")), ["web"]);
    let base = "[programs.worker]\ncommand = \"x\"\ninstances = 2\n[programs.app]\ncommand = \"x\"\n[groups]\n";
    assert_eq!(
        one_error(&format!("{base}web = [\"app\", \"nope\"]\n")),
        "sv.toml:7:15: groups.web[1]: found \"nope\", expected the name of a program or instance in this file (app, worker)"
    );
    assert!(
        one_error(&format!("{base}web = [\"worker@2\"]\n"))
            .starts_with("sv.toml:7:8: groups.web[0]: found \"worker@2\"")
    );
    assert_eq!(
        one_error(&format!("{base}app = [\"worker\"]\n")),
        "sv.toml:7:1: groups.app: found the group name \"app\", also the name of a program, expected a group name that no program has"
    );
    assert!(
        one_error(&format!("{base}worker = [\"app\"]\n"))
            .starts_with("sv.toml:7:1: groups.worker: found the group name \"worker\", also the name of a program")
    );
    assert!(
        one_error(&format!("{base}\"a b\" = [\"app\"]\n"))
            .starts_with("sv.toml:7:1: groups.\"a b\": found the group name \"a b\", expected a name of 1 to 64")
    );
    assert!(
        one_error(&format!("{base}web = \"app\"\n"))
            .starts_with("sv.toml:7:7: groups.web: found \"app\", expected an array")
    );
    assert!(one_error("groups = 3\n").starts_with("sv.toml:1:10: groups: found 3, expected a table of groups"));
}

#[test]
fn render_reads_back_instances_groups_and_literal_placeholders() {
    let text = "[programs.worker]\ncommand = \"work {index:02} {{index}}\"\ninstances = 3\ninstance_start = 5\n\
                stdout = \"w{index}.log\"\n\
                [programs.web]\ncommand = [\"echo\", \"{{index}}\", \"{{{index}}}\", \"{index}\"]\n\
                environment = { A = \"{{index:02}}\" }\n\
                [groups]\nall = [\"web\", \"worker\"]\n";
    let c = ok(text);
    assert_eq!(
        c.program("web").expect("web").command,
        ["echo", "{index}", "{{index}}", "0"]
    );
    let r = render(&c);
    for needle in [
        "[programs.worker]\ncommand = [\"work\", \"{index:02}\", \"{{index}}\"]",
        "stdout = \"/etc/holden/w{index}.log\"",
        "instances = 3\ninstance_start = 5  # worker@5 to worker@7",
        "command = [\"echo\", \"{{index}}\", \"{{{index}}}\", \"0\"]",
        "A = \"{{index:02}}\"",
        "[groups]\nall = [\"web\", \"worker\"]",
    ] {
        assert!(r.contains(needle), "{needle:?} not in\n{r}");
    }
    let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
    assert_eq!(again, c);
}

const UNSET: &str = "HOLDEN_TEST_SURELY_UNSET_VARIABLE";

#[test]
fn variables_expand_in_commands_environment_and_paths() {
    let path = std::env::var("PATH").expect("PATH is set");
    let text = r#"[programs.web]
command = "echo ${PATH} '${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-a b}' $$HOME $1 ${PATH}$${X}"
directory = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-/srv}/app"
environment = { P = "${PATH}:/x", L = "$${PATH}", S = "cost: 5$" }
stdout = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-logs}/web.log"
stderr = "${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-null}"
[programs.argv]
command = ["sh", "-c", "echo $HOME ${HOLDEN_TEST_SURELY_UNSET_VARIABLE:-}x"]
"#;
    let c = ok(text);
    let web = c.program("web").expect("web");
    assert_eq!(
        web.command,
        vec![
            "echo".to_string(),
            path.clone(),
            "a b".into(),
            "$HOME".into(),
            "$1".into(),
            format!("{path}${{X}}"),
        ]
    );
    assert_eq!(web.directory, PathBuf::from("/srv/app"));
    assert_eq!(web.environment["P"], format!("{path}:/x"));
    assert_eq!(web.environment["L"], "${PATH}");
    assert_eq!(web.environment["S"], "cost: 5$");
    assert_eq!(web.stdout, Output::File(PathBuf::from("/etc/holden/logs/web.log")));
    assert_eq!(web.stderr, Output::Null);
    let argv = c.program("argv").expect("argv");
    assert_eq!(argv.command, vec!["sh", "-c", "echo $HOME x"]);
    // What check prints reads back the same, `$` and all.
    let r = render(&c);
    assert!(r.contains("L = \"$${PATH}\""), "{r}");
    let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
    assert_eq!(again.programs, c.programs);
}

#[test]
fn an_unset_variable_is_an_error_naming_it() {
    let e = errors(&format!(
        "[programs.web]\ncommand = [\"echo\", \"${{{UNSET}}}\"]\nenvironment = {{ A = \"x${{{UNSET}}}\" }}\ndirectory = \"${{A\"\n"
    ));
    assert_eq!(
        e,
        vec![
            format!(
                "sv.toml:2:20: programs.web.command[1]: found ${{{UNSET}}}, but {UNSET} is not set in holden's environment, expected {}",
                vars::EXPECTED
            ),
            format!(
                "sv.toml:3:21: programs.web.environment.A: found ${{{UNSET}}}, but {UNSET} is not set in holden's environment, expected {}",
                vars::EXPECTED
            ),
            format!(
                "sv.toml:4:13: programs.web.directory: found a ${{ without its closing }}, expected {}",
                vars::EXPECTED
            ),
        ]
    );
    let e = one_error(&program_with(&format!("stdout = \"${{{UNSET}}}/x.log\"")));
    assert!(
        e.starts_with("sv.toml:3:10: programs.web.stdout: found ${HOLDEN_TEST"),
        "{e}"
    );
    let e = one_error(&format!("[programs.web]\ncommand = \"run ${{{UNSET}}}\"\n"));
    assert!(
        e.starts_with("sv.toml:2:11: programs.web.command: found ${HOLDEN_TEST"),
        "{e}"
    );
}

fn in_dir(dir: &Path, text: &str) -> Result<Config, Vec<String>> {
    load_str(&dir.join("sv.toml"), text).map_err(|e| e.lines())
}

#[test]
fn environment_files_in_order_then_the_environment_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), "# base\nA=1\nB='two words'\nC=\"x\\ny\"\n").expect("write");
    std::fs::create_dir(dir.path().join("more")).expect("mkdir");
    std::fs::write(dir.path().join("more/over.env"), "export B=2\nD=$A\n").expect("write");
    let text = format!(
        "[programs.web]\ncommand = \"sleep 1\"\nenvironment_file = [\".env\", \"-missing.env\", \"${{{UNSET}:-more}}/over.env\"]\nenvironment = {{ D = \"table\" }}\n"
    );
    let c = in_dir(dir.path(), &text).unwrap_or_else(|e| panic!("{e:#?}"));
    let env = &c.programs[0].environment;
    assert_eq!(env["A"], "1");
    assert_eq!(env["B"], "2");
    assert_eq!(env["C"], "x\ny");
    assert_eq!(env["D"], "table");
    assert_eq!(env.len(), 4);
    // One path alone is fine too.
    let c = in_dir(
        dir.path(),
        "[programs.web]\ncommand = \"x\"\nenvironment_file = \".env\"\n",
    )
    .expect("valid");
    assert_eq!(c.programs[0].environment["A"], "1");
}

#[test]
fn environment_file_problems_name_the_file_its_line_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.env"), "A=1\n# fine\nB C\n").expect("write");
    let file = dir.path().join("sv.toml").display().to_string();
    let bad = dir.path().join("bad.env").display().to_string();
    let missing = dir.path().join("missing.env").display().to_string();
    let e = in_dir(
        dir.path(),
        "[programs.web]\ncommand = \"x\"\nenvironment_file = [\"bad.env\", \"missing.env\", \"\"]\n",
    )
    .expect_err("refused");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert_eq!(
        e[0],
        format!(
            "{file}:3:21: programs.web.environment_file[0]: found {bad}:3: \"B C\" has no '=', expected KEY=value lines, # comments and blank lines (quotes as in systemd's EnvironmentFile)"
        )
    );
    assert!(
        e[1].starts_with(&format!(
            "{file}:3:32: programs.web.environment_file[1]: found {missing}, which cannot be read: no such file"
        )),
        "{e:#?}"
    );
    assert!(e[2].contains("programs.web.environment_file[2]: found \"\""), "{e:#?}");
    // Not a regular file: refused at once, never read (a FIFO would block the loop).
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let e = in_dir(
        dir.path(),
        "[programs.web]\ncommand = \"x\"\nenvironment_file = [\"/dev/zero\", \"-.\", \"fifo\"]\n",
    )
    .expect_err("refused");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[2].contains("fifo, which cannot be read: it is not a regular file"),
        "{e:#?}"
    );
    assert!(
        e[0].contains("found /dev/zero, which cannot be read: it is not a regular file"),
        "{e:#?}"
    );
    assert!(
        e[1].contains("which cannot be read: it is not a regular file"),
        "{e:#?}"
    );
    std::fs::write(dir.path().join("big.env"), vec![b'#'; (ENV_FILE_MAX + 1) as usize]).expect("write");
    let e = in_dir(
        dir.path(),
        "[programs.web]\ncommand = \"x\"\nenvironment_file = \"big.env\"\n",
    )
    .expect_err("refused");
    assert!(e[0].contains("it is larger than 1048576 bytes"), "{e:#?}");
}

#[test]
fn process_settings_resolve() {
    let c = ok(&program_with(
        "umask = \"027\"\nnice = 5\noom_score_adj = -100\nrlimits = { nofile = 4096, core = \"unlimited\", memlock = \"64MiB\", nproc = { soft = 100, hard = 200 }, cpu = \"30\" }",
    ));
    let p = &c.programs[0];
    assert_eq!(p.umask, Some(0o27));
    assert_eq!(p.nice, Some(5));
    assert_eq!(p.oom_score_adj, Some(-100));
    let limit = |name: &str| p.rlimits.iter().find(|r| r.name == name).map(|r| (r.soft, r.hard));
    assert_eq!(limit("nofile"), Some((Some(4096), Some(4096))));
    assert_eq!(limit("core"), Some((None, None)));
    assert_eq!(limit("memlock"), Some((Some(64 << 20), Some(64 << 20))));
    assert_eq!(limit("nproc"), Some((Some(100), Some(200))));
    assert_eq!(limit("cpu"), Some((Some(30), Some(30))));
    assert_eq!(ok(&program_with("umask = 0o077")).programs[0].umask, Some(0o77));
    assert_eq!(ok(&program_with("umask = 0")).programs[0].umask, Some(0));
    let r = render(&c);
    for needle in [
        "umask = \"0027\"",
        "nice = 5",
        "oom_score_adj = -100",
        "nproc = { soft = 100, hard = 200 }",
        "core = \"unlimited\"",
    ] {
        assert!(r.contains(needle), "{needle:?} not in\n{r}");
    }
    let again = load_str(Path::new("/etc/holden/supervisor.toml"), &r).unwrap_or_else(|e| panic!("{e}\n{r}"));
    assert_eq!(again.programs, c.programs);
}

#[test]
fn bad_process_settings_are_refused_with_their_place() {
    let cases = [
        (
            "umask = \"999\"",
            "sv.toml:3:9: programs.web.umask: found \"999\", expected an octal umask like \"027\" or 0o027, at most 0777",
        ),
        (
            "umask = 0o1777",
            "sv.toml:3:9: programs.web.umask: found 0o1777, expected an octal umask like \"027\" or 0o027, at most 0777",
        ),
        (
            "umask = 22",
            "sv.toml:3:9: programs.web.umask: found 22, expected an octal umask like \"027\" or 0o027, at most 0777",
        ),
        (
            "nice = 40",
            "sv.toml:3:8: programs.web.nice: found 40, expected a niceness from -20 to 19",
        ),
        (
            "oom_score_adj = -1001",
            "sv.toml:3:17: programs.web.oom_score_adj: found -1001, expected an OOM score adjustment from -1000 to 1000",
        ),
        (
            "rlimits = { nofiles = 10 }",
            "sv.toml:3:13: programs.web.rlimits.nofiles: found the unknown limit \"nofiles\", expected one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack",
        ),
        (
            "rlimits = { nproc = { soft = 200, hard = 100 } }",
            "sv.toml:3:21: programs.web.rlimits.nproc: found the soft limit 200 above the hard limit 100, expected a soft limit at most the hard one",
        ),
        (
            "rlimits = { nproc = { soft = \"unlimited\", hard = 100 } }",
            "sv.toml:3:21: programs.web.rlimits.nproc: found the soft limit unlimited above the hard limit 100, expected a soft limit at most the hard one",
        ),
        (
            "rlimits = { nofile = \"1MiB\" }",
            "sv.toml:3:22: programs.web.rlimits.nofile: found \"1MiB\", expected a number or \"unlimited\"",
        ),
        (
            "rlimits = { core = -1 }",
            "sv.toml:3:20: programs.web.rlimits.core: found -1, expected a number of bytes, a size like \"64MiB\", or \"unlimited\"",
        ),
        (
            "rlimits = { nproc = { soft = 1 } }",
            "sv.toml:3:21: programs.web.rlimits.nproc: found a table, expected both soft and hard, like { soft = 1024, hard = 4096 }",
        ),
        (
            "rlimits = { nproc = { soft = 1, max = 2 } }",
            "sv.toml:3:33: programs.web.rlimits.nproc.max: found unknown key \"max\", expected one of soft, hard",
        ),
        (
            "rlimits = 5",
            "sv.toml:3:11: programs.web.rlimits: found 5, expected a table of limits like { nofile = 65536, core = \"unlimited\" }",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(one_error(&program_with(line)), want, "{line}");
    }
    if let Some(max) = System.nr_open() {
        let e = one_error(&program_with(&format!("rlimits = {{ nofile = {} }}", max + 1)));
        assert!(e.contains(&format!("above this kernel's fs.nr_open ({max})")), "{e}");
        let e = one_error(&program_with("rlimits = { nofile = \"unlimited\" }"));
        assert!(e.contains("found unlimited, above this kernel's fs.nr_open"), "{e}");
    }
}

#[test]
fn process_settings_are_refused_with_an_agent() {
    let e = errors("[programs.web]\ncommand = \"x\"\nagent = \"/run/a.sock\"\nnice = 1\nrlimits = { core = 0 }\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with(
            "sv.toml:4:8: programs.web.nice: found nice on a program spawned through the agent \"/run/a.sock\""
        ),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("sv.toml:5:13: programs.web.rlimits: found rlimits"),
        "{e:#?}"
    );
}

/// Answers what `resolve` asks of the file system without touching it.
struct FakeFiles;

impl Files for FakeFiles {
    fn env_file(&self, path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("/etc/app/app.env") => Ok("A=from-the-fake\n".into()),
            _ => Err(std::io::Error::from_raw_os_error(
                rustix::io::Errno::NOENT.raw_os_error(),
            )),
        }
    }

    fn is_stream(&self, path: &Path) -> bool {
        path == Path::new("/var/log/shared")
    }

    fn nr_open(&self) -> Option<u64> {
        Some(100)
    }

    fn absolute(&self, path: &Path) -> std::io::Result<PathBuf> {
        Ok(Path::new("/cwd").join(path))
    }
}

#[test]
fn resolving_asks_files_for_environment_files_streams_and_nr_open() {
    let text = "[programs.a]\ncommand = \"x\"\nenvironment_file = \"app.env\"\nstdout = \"/var/log/shared\"\n\
                [programs.b]\ncommand = \"x\"\nstdout = \"/var/log/shared\"\n";
    let c = resolve(Path::new("/etc/app/sv.toml"), text, &FakeFiles).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.programs[0].environment["A"], "from-the-fake");
    assert_eq!(c.programs[0].directory, Path::new("/etc/app"));
    let e = resolve(
        Path::new("sv.toml"),
        "[programs.a]\ncommand = \"x\"\nrlimits = { nofile = 200 }\nenvironment_file = \"app.env\"\n",
        &FakeFiles,
    )
    .unwrap_err();
    assert_eq!(
        e.lines(),
        [
            "sv.toml:3:22: programs.a.rlimits.nofile: found 200, above this kernel's fs.nr_open (100), expected a number of files up to 100",
            "sv.toml:4:20: programs.a.environment_file: found /cwd/app.env, which cannot be read: no such file or directory, expected a readable file of KEY=value lines (a leading '-' makes a missing file fine)",
        ]
    );
    assert_eq!(e.problems[0].key, "programs.a.rlimits.nofile");
    assert_eq!(e.problems[0].at, Some(LineCol { line: 3, column: 22 }));
}

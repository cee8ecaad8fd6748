use super::*;

fn convert_str(text: &str, env: &[(&str, &str)]) -> Result<Outcome, Vec<Diag>> {
    let mut ini = Ini::default();
    ini.read_str(text, Path::new("/etc/supervisor/supervisord.conf"))
        .unwrap();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let host = Host {
        env: &lookup,
        node_name: "box".to_string(),
    };
    convert(&ini, &host, Vec::new())
}

fn ok(text: &str) -> Outcome {
    convert_str(text, &[("HOME", "/root")]).unwrap()
}

fn errors(text: &str) -> Vec<String> {
    convert_str(text, &[])
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_plain_program_maps_option_by_option() {
    let o = ok(
        "[program:web]\ncommand=/usr/bin/web --port 80\ndirectory=/srv\nuser=www-data\numask=22\n\
                autostart=false\nautorestart=unexpected\nexitcodes=0,2\nstartsecs=5\nstartretries=7\n\
                stopsignal=QUIT\nstopwaitsecs=30\nredirect_stderr=true\nstdout_logfile=/var/log/web.log\n\
                stdout_logfile_maxbytes=10MB\nstdout_logfile_backups=3\n",
    );
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    let expected = "[programs.web]\ncommand = \"/usr/bin/web --port 80\"\ndirectory = \"/srv\"\nuser = \"www-data\"\n\
                    umask = \"022\"\nautostart = false\nautorestart = \"on-failure\"\nexit_codes = [0, 2]\n\
                    min_uptime = \"5s\"\nmax_restarts = 7\nstop_signal = \"QUIT\"\nstop_timeout = \"30s\"\n\
                    stdout = \"/var/log/web.log\"\nstderr = \"stdout\"\nlog_max_bytes = \"10MiB\"\nlog_backups = 3\n";
    assert!(o.toml.contains(expected), "{}", o.toml);
}

#[test]
fn an_unset_startretries_keeps_supervisords_default_of_three() {
    let o = ok("[program:a]\ncommand=a\n[program:b]\ncommand=b\nstartretries=0\n");
    assert!(
        o.toml.contains("[programs.a]\ncommand = \"a\"\nmax_restarts = 3\n"),
        "{}",
        o.toml
    );
    assert!(
        o.toml.contains("[programs.b]\ncommand = \"b\"\nmax_restarts = 0\n"),
        "{}",
        o.toml
    );
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
}

#[test]
fn autorestart_values() {
    for (v, want) in [("true", "always"), ("false", "never"), ("unexpected", "on-failure")] {
        let o = ok(&format!("[program:a]\ncommand=x\nautorestart={v}\n"));
        assert!(o.toml.contains(&format!("autorestart = \"{want}\"")), "{}", o.toml);
    }
}

#[test]
fn numprocs_become_instances_with_index_templates() {
    let o = ok(
        "[program:worker]\ncommand=celery worker -n w%(process_num)02d@%(host_node_name)s\n\
                process_name=%(program_name)s_%(process_num)02d\nnumprocs=4\nnumprocs_start=1\n\
                environment=SLOT=\"%(process_num)d\"\nstdout_logfile=/var/log/%(program_name)s-%(process_num)d.log\n\
                stderr_logfile=/var/log/worker.err\n",
    );
    assert!(
        o.toml.contains("command = \"celery worker -n w{index:02}@box\""),
        "{}",
        o.toml
    );
    assert!(o.toml.contains("instances = 4\ninstance_start = 1\n"), "{}", o.toml);
    assert!(
        o.toml.contains("stdout = \"/var/log/worker-{index}.log\""),
        "{}",
        o.toml
    );
    assert!(
        o.toml.contains("stderr = \"/var/log/worker-{index}.err\""),
        "{}",
        o.toml
    );
    assert!(o.toml.contains("SLOT = \"{index}\""), "{}", o.toml);
    assert!(
        o.toml.contains("(holden names the instances worker@INDEX)"),
        "{}",
        o.toml
    );
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    assert!(
        o.warnings[0].contains("each need their own log file"),
        "{:?}",
        o.warnings
    );
}

#[test]
fn a_numprocs_stack_passes_holden_check_with_its_instances_and_group() {
    let o = ok(
        "[program:web]\ncommand=gunicorn app.wsgi -b 127.0.0.1:8000 --name {index}\nstdout_logfile=/var/log/web.log\n\
         [program:celery]\ncommand=celery -A app worker -n w%(process_num)02d@%(host_node_name)s\n\
         process_name=%(program_name)s_%(process_num)02d\nnumprocs=4\nnumprocs_start=1\n\
         environment=SLOT=\"%(process_num)d\",TPL=\"{{.Name}}\"\n\
         stdout_logfile=/var/log/celery-%(process_num)d.log\nredirect_stderr=true\n\
         [program:redis]\ncommand=redis-server --port 6379\n\
         [group:stack]\nprograms=web,celery\n",
    );
    let config = crate::config::load::load_str(Path::new("/etc/holden/supervisor.toml"), &o.toml)
        .unwrap_or_else(|e| panic!("{e}\n{}", o.toml));
    let names: Vec<&str> = config.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["celery@1", "celery@2", "celery@3", "celery@4", "redis", "web"],
        "{}",
        o.toml
    );
    let c3 = config.program("celery@3").expect("celery@3");
    assert_eq!(c3.command.last().map(String::as_str), Some("w03@box"));
    assert_eq!(c3.environment["SLOT"], "3");
    assert_eq!(c3.environment["TPL"], "{{.Name}}");
    assert_eq!(c3.stdout, crate::config::Output::File("/var/log/celery-3.log".into()));
    // A literal `{index}` in supervisord's command stays literal.
    let web = config.program("web").expect("web");
    assert_eq!(web.command.last().map(String::as_str), Some("{index}"));
    assert_eq!(config.groups_of(c3), ["stack"]);
}

#[test]
fn one_process_takes_process_num_literally() {
    let o = ok("[program:w]\ncommand=run %(process_num)02d of %(numprocs)d\nnumprocs_start=3\n");
    assert!(o.toml.contains("command = \"run 03 of 1\""), "{}", o.toml);
    assert!(!o.toml.contains("instances"), "{}", o.toml);
}

#[test]
fn env_expansions_wait_for_load_time_unless_the_config_defines_them() {
    let o = ok(
        "[supervisord]\nenvironment=STAGE=prod\n[program:a]\ncommand=%(ENV_HOME)s/bin/a --stage %(ENV_STAGE)s\n\
                environment=DB=\"%(ENV_DATABASE_URL)s\",LOG=\"%(ENV_STAGE)s.log\"\nuser=%(ENV_HOME)s\n",
    );
    assert!(
        o.toml.contains("command = \"${HOME}/bin/a --stage prod\""),
        "{}",
        o.toml
    );
    assert!(
        o.toml
            .contains("STAGE = \"prod\"\nDB = \"${DATABASE_URL}\"\nLOG = \"prod.log\""),
        "{}",
        o.toml
    );
    assert!(o.toml.contains("user = \"/root\""), "{}", o.toml);
    assert!(
        o.warnings.iter().any(|w| w.contains("DATABASE_URL is not set here")),
        "{:?}",
        o.warnings
    );
}

#[test]
fn here_is_the_folder_of_the_file() {
    let o = ok("[program:a]\ncommand=%(here)s/bin/a\ndirectory=%(here)s\n");
    assert!(
        o.toml
            .contains("command = \"/etc/supervisor/bin/a\"\ndirectory = \"/etc/supervisor\""),
        "{}",
        o.toml
    );
}

#[test]
fn auto_logs_go_to_files_holden_can_tail() {
    let o = ok("[program:a]\ncommand=a\n[program:b]\ncommand=b\nstdout_logfile=NONE\nstderr_logfile=AUTO\n");
    assert!(
        o.toml.contains("stdout = \"logs/a.log\"\nstderr = \"logs/a.err.log\""),
        "{}",
        o.toml
    );
    assert!(
        o.toml.contains("stdout = \"null\"\nstderr = \"logs/b.err.log\""),
        "{}",
        o.toml
    );
}

#[test]
fn no_equivalent_options_are_comments_and_one_warning_each() {
    let o = ok(
        "[program:a]\ncommand=a\npriority=10\nstdout_events_enabled=true\nstdout_capture_maxbytes=1MB\n\
                serverurl=AUTO\nstopasgroup=true\nkillasgroup=true\nstdout_syslog=true\nbogus=1\n",
    );
    for key in [
        "priority = 10",
        "stdout_events_enabled = true",
        "stdout_capture_maxbytes = 1MB",
        "serverurl = AUTO",
        "stdout_syslog = true",
        "bogus = 1",
        "stopasgroup = true",
        "killasgroup = true",
    ] {
        assert!(o.toml.contains(&format!("# supervisord: {key}")), "{key}: {}", o.toml);
    }
    // stopasgroup and killasgroup are what holden does anyway: no warning for them.
    assert_eq!(o.warnings.len(), 6, "{:?}", o.warnings);
    assert!(
        o.warnings[0].starts_with("/etc/supervisor/supervisord.conf:3: [program:a] priority: no equivalent"),
        "{:?}",
        o.warnings
    );
}

#[test]
fn supervisor_table_and_unsupported_sections() {
    let o = ok(
        "[unix_http_server]\nfile=/run/supervisor.sock\nchmod=0770\npassword=secret\n[supervisord]\n\
                logfile=/var/log/supervisord.log\nloglevel=blather\npidfile=/run/s.pid\n\
                [inet_http_server]\nport=127.0.0.1:9001\npassword=hunter2\n[eventlistener:mem]\ncommand=memmon\nevents=TICK_60\n\
                [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
    );
    assert!(
        o.toml
            .contains("[supervisor]\nsocket = \"/run/supervisor.sock\"\nsocket_mode = \"0770\"\n"),
        "{}",
        o.toml
    );
    assert!(
        o.toml
            .contains("logfile = \"/var/log/supervisord.log\"\nlog_level = \"trace\"\n"),
        "{}",
        o.toml
    );
    assert!(o.toml.contains("# supervisord: [eventlistener:mem]"), "{}", o.toml);
    assert!(!o.toml.contains("secret") && !o.toml.contains("hunter2"), "{}", o.toml);
    // password, pidfile, inet_http_server, eventlistener, rpcinterface.
    assert_eq!(o.warnings.len(), 5, "{:?}", o.warnings);
}

#[test]
fn supervisords_own_log_and_user_as_containers_write_them() {
    let o = ok("[supervisord]\nlogfile=syslog\n[program:a]\ncommand=a\n");
    assert!(!o.toml.contains("\nlogfile = "), "{}", o.toml);
    assert!(
        o.toml
            .contains("# supervisord: logfile = syslog  (holden writes no syslog;"),
        "{}",
        o.toml
    );
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    assert!(
        o.warnings[0].contains("[supervisord] logfile: no equivalent"),
        "{:?}",
        o.warnings
    );

    // The container pattern: no rotation is what holden does; comments, no warnings.
    let o = ok("[supervisord]\nlogfile=/dev/null\nlogfile_maxbytes=0\nlogfile_backups=5\n[program:a]\ncommand=a\n");
    assert!(o.toml.contains("logfile = \"/dev/null\"\n"), "{}", o.toml);
    assert!(
        o.toml
            .contains("# supervisord: logfile_maxbytes = 0  (logfile_maxbytes = 0: no rotation"),
        "{}",
        o.toml
    );
    assert!(o.toml.contains("# supervisord: logfile_backups = 5  ("), "{}", o.toml);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);

    // user=root, as containers write it: a comment, no warning; another user: a warning.
    let o = ok("[supervisord]\nuser=root\n[program:a]\ncommand=a\n");
    assert!(o.toml.contains("# supervisord: user = root  ("), "{}", o.toml);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    let o = ok("[supervisord]\nuser=supervisor\n[program:a]\ncommand=a\n");
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);

    // Rotation on: holden does not do it for its own log, which is worth a warning.
    let o = ok("[supervisord]\nlogfile=/var/log/s.log\nlogfile_maxbytes=1MB\n[program:a]\ncommand=a\n");
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
}

#[test]
fn groups_collect_programs_and_avoid_program_names() {
    let o = ok(
        "[group:web]\nprograms=web,worker\npriority=5\n[program:web]\ncommand=w\n[program:worker]\ncommand=k\n\
                [group:all]\nprograms=web\n",
    );
    assert!(
        o.toml
            .contains("[groups]\nweb-group = [\"web\", \"worker\"]\nall = [\"web\"]\n"),
        "{}",
        o.toml
    );
    assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
}

#[test]
fn output_is_toml_with_escapes() {
    let o = ok("[program:q]\ncommand=sh -c 'echo \"{a}\" $$ \\n'\n");
    assert!(
        o.toml.contains(r#"command = "sh -c 'echo \"{a}\" $$$ \\n'""#),
        "{}",
        o.toml
    );
    let _: toml::Table = toml::from_str(&o.toml).unwrap();
}

#[test]
fn bad_values_name_file_line_section_and_key() {
    let e = errors(
        "[program:a]\ncommand=a\nautostart=maybe\nnumprocs=0\nstartsecs=soon\nenvironment=A=x@y\numask=9\n\
                    stopsignal=NOPE\nexitcodes=1,300\ndirectory=%(nope)s\n[program:b]\n[group:g]\nprograms=zz\n[program:c d]\ncommand=x\n",
    );
    let want = [
        "/etc/supervisor/supervisord.conf:14: [program:c d]: a program name without spaces, ':' or '/'",
        "/etc/supervisor/supervisord.conf:13: [group:g] programs: names \"zz\", which is not a [program:zz]",
        "/etc/supervisor/supervisord.conf:4: [program:a] numprocs: found \"0\", expected a whole number from 1 to 1000",
    ];
    for w in want {
        assert!(e.iter().any(|x| x == w), "{w}\n{e:#?}");
    }
    for key in [
        "autostart",
        "startsecs",
        "environment",
        "umask",
        "stopsignal",
        "exitcodes",
        "directory",
    ] {
        assert!(
            e.iter().any(|x| x.contains(&format!("[program:a] {key}: "))),
            "{key}: {e:#?}"
        );
    }
    assert!(
        e.iter()
            .any(|x| x == "/etc/supervisor/supervisord.conf:11: [program:b]: a program needs a command = line"),
        "{e:#?}"
    );
}

#[test]
fn helpers() {
    assert_eq!(with_index("/var/log/w.log"), "/var/log/w-{index}.log");
    assert_eq!(with_index("/var/log.d/w"), "/var/log.d/w-{index}");
    assert_eq!(with_index(".hidden"), ".hidden-{index}");
    assert_eq!(byte_size("50MB").unwrap(), "\"50MiB\"");
    assert_eq!(byte_size("1024").unwrap(), "1024");
    assert_eq!(byte_size("0").unwrap(), "0");
    assert!(byte_size("lots").is_none());
    assert_eq!(parse_octal("022"), Some(0o22));
    assert_eq!(parse_octal("0o777"), Some(0o777));
    assert_eq!(parse_octal("8"), None);
    assert_eq!(holden_name("my app"), "my_app");
}

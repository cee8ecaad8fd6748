//! Integration tests: `holden import` on supervisord configurations shaped like real ones
//! (tests/fixtures/supervisord/), through the real binary with a controlled environment: the
//! TOML it writes, the warnings it prints, `holden check` reading the result back, the Django
//! stack run for real, bad input refused with file and line, and supervisord's own sample
//! (`echo_supervisord_conf`). docs/migrating-from-supervisord.md is what these prove.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/supervisord")
        .join(rel)
}

/// `holden ARGS` in `dir` with exactly `env` (plus PATH): nothing of the test's own
/// environment leaks into what `%(ENV_X)s` or `${X}` sees.
fn holden_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(HOLDEN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    wait_output(cmd.spawn().expect("spawn holden"), T, &format!("holden {args:?}"))
}

/// What one `holden import FILE -o OUT` gave.
struct Imported {
    toml: String,
    warnings: String,
    out: PathBuf,
}

/// `holden import FILE -o DIR/supervisor.toml`, which must succeed.
fn import(dir: &Path, file: &Path, env: &[(&str, &str)]) -> Imported {
    let out = dir.join("supervisor.toml");
    let o = holden_env(
        dir,
        &["import", &file.display().to_string(), "-o", &out.display().to_string()],
        env,
    );
    assert!(
        o.status.success(),
        "holden import {} failed ({}): {}",
        file.display(),
        o.status,
        text(&o.stderr)
    );
    assert_eq!(text(&o.stdout), "", "with -o nothing goes to stdout");
    let toml = fs::read_to_string(&out).expect("import wrote -o OUT");
    Imported {
        toml,
        warnings: text(&o.stderr),
        out,
    }
}

/// `holden check -c OUT` must pass; returns what it printed.
fn check_ok(dir: &Path, imported: &Imported, env: &[(&str, &str)]) -> String {
    let o = holden_env(dir, &["check", "-c", &imported.out.display().to_string()], env);
    assert!(
        o.status.success(),
        "holden check refused the imported file: {}\n{}",
        text(&o.stderr),
        imported.toml
    );
    text(&o.stdout)
}

fn assert_contains(haystack: &str, needles: &[&str], what: &str) {
    for n in needles {
        assert!(haystack.contains(n), "{n:?} not in {what}:\n{haystack}");
    }
}

/// The warnings, one per line, each `holden: warning: FILE:LINE: ...`.
fn warning_lines(imported: &Imported) -> Vec<&str> {
    let lines: Vec<&str> = imported.warnings.lines().collect();
    for l in &lines {
        assert!(l.starts_with("holden: warning: "), "not a warning line: {l:?}");
    }
    lines
}

/// The warning about `[section]` (or `[section] key`), which must name `file:line`.
fn warned(imported: &Imported, at: &str, about: &str) {
    let found = warning_lines(imported)
        .iter()
        .any(|l| l.contains(&format!("{at}: {about}")));
    assert!(found, "no warning \"{at}: {about}...\" in:\n{}", imported.warnings);
}

#[test]
fn a_django_celery_redis_stack_imports_with_its_workers_group_and_logs() {
    let dir = tempdir();
    let env = [("SHOP_DATABASE_URL", "postgres://shop@db/shop")];
    let conf = fixture("django/supervisord.conf");
    let i = import(dir.path(), &conf, &env);
    assert_contains(
        &i.toml,
        &[
            // [unix_http_server] and [supervisord] become [supervisor].
            "[supervisor]\nsocket = \"/run/supervisor.sock\"\nsocket_mode = \"0770\"\n\
             logfile = \"/var/log/supervisor/supervisord.log\"\nlog_level = \"info\"\n",
            "# supervisord: chown = root:shop  (",
            "# supervisord: pidfile = /run/supervisord.pid  (",
            "# supervisord: [rpcinterface:supervisor]  (",
            "# supervisord: [supervisorctl]  (",
            "#   serverurl = unix:///run/supervisor.sock\n",
            // redis: stderr into stdout's file, its own rotation.
            "[programs.redis]\ncommand = \"/usr/bin/redis-server /etc/redis/shop.conf --port 6379 --bind 127.0.0.1\"\n\
             directory = \"/var/lib/redis\"\nuser = \"redis\"\nautostart = true\nautorestart = \"always\"\n\
             min_uptime = \"2s\"\nmax_restarts = 3\nstop_signal = \"TERM\"\nstop_timeout = \"30s\"\n\
             stdout = \"/var/log/shop/redis.log\"\nstderr = \"stdout\"\nlog_max_bytes = \"20MiB\"\nlog_backups = 5\n\
             # supervisord: priority = 10  (",
            // gunicorn: the continuation lines joined into one command line.
            "[programs.web]\ncommand = \"/srv/shop/venv/bin/gunicorn shop.wsgi:application --bind 127.0.0.1:8000 --workers 3 --timeout 60\"\n\
             directory = \"/srv/shop/app\"\nuser = \"shop\"\numask = \"022\"\n",
            "stdout = \"/var/log/shop/gunicorn.log\"\nstderr = \"/var/log/shop/gunicorn.err.log\"\n\
             log_max_bytes = \"50MiB\"\nlog_backups = 10\n",
            "# supervisord: stopasgroup = true  (",
            "# supervisord: killasgroup = true  (",
            // The secret is not copied: holden reads it from its own environment at load.
            "[programs.web.environment]\nDJANGO_SETTINGS_MODULE = \"shop.settings.production\"\n\
             DATABASE_URL = \"${SHOP_DATABASE_URL}\"\nREDIS_URL = \"redis://127.0.0.1:6379/0\"\nHOME = \"/srv/shop\"\n",
            // numprocs=4 from 1: four instances, their index in the command, env and logs.
            "[programs.celery]\ncommand = \"/srv/shop/venv/bin/celery -A shop worker --loglevel=INFO --concurrency=2 -n worker{index:02}@%h\"\n",
            "min_uptime = \"10s\"\nmax_restarts = 3\nstop_signal = \"TERM\"\nstop_timeout = \"600s\"\n\
             instances = 4\ninstance_start = 1\n\
             stdout = \"/var/log/shop/celery_{index:02}.log\"\nstderr = \"/var/log/shop/celery_{index:02}.err.log\"\n\
             log_max_bytes = \"100MiB\"\nlog_backups = 5\n",
            "# supervisord: process_name = %(program_name)s_%(process_num)02d  (holden names the instances celery@INDEX)\n",
            "WORKER_SLOT = \"{index}\"\n",
            "[programs.celerybeat]\n",
            "stop_signal = \"INT\"\n",
            "# supervisord: priority = 999  (",
            "\n[groups]\nstack = [\"web\", \"celery\", \"celerybeat\"]\n",
        ],
        "the imported Django stack",
    );
    assert!(!i.toml.contains("postgres://"), "a secret was copied:\n{}", i.toml);
    let file = conf.display().to_string();
    for (line, about) in [
        (7, "[unix_http_server] chown: no equivalent"),
        (14, "[supervisord] pidfile: no equivalent"),
        (21, "[rpcinterface:supervisor]: no equivalent"),
        (24, "[supervisorctl]: no equivalent"),
        (83, "[program:celery] priority: no equivalent"),
        (121, "[group:stack] priority: no equivalent"),
    ] {
        warned(&i, &format!("{file}:{line}"), about);
    }
    // Nothing about the environment: SHOP_DATABASE_URL was set.
    assert!(!i.warnings.contains("not set here"), "{}", i.warnings);

    let printed = check_ok(dir.path(), &i, &env);
    assert_contains(
        &printed,
        &[
            "DATABASE_URL = \"postgres://shop@db/shop\"",
            "instance_start = 1  # celery@1 to celery@4",
            "stop_timeout = \"10m\"",
        ],
        "holden check's output",
    );
}

/// The Django fixture made runnable here: every command `sleep 1000`, no `user`, directories
/// and logs in `dir`, startsecs of 1.
fn runnable_django(dir: &Path) -> String {
    let ini = fs::read_to_string(fixture("django/supervisord.conf")).unwrap();
    let root = dir.display().to_string();
    let mut out = String::new();
    let mut in_command = false;
    for line in ini.lines() {
        if in_command && line.starts_with([' ', '\t']) {
            continue;
        }
        in_command = false;
        if line.starts_with("command=") {
            in_command = true;
            out.push_str("command=sleep 1000\n");
        } else if line.starts_with("user=") {
            // Dropped: the users redis and shop do not exist here.
        } else if line.starts_with("startsecs=") {
            out.push_str("startsecs=1\n");
        } else {
            out.push_str(&line.replace("/var/log/shop", &format!("{root}/log")));
            out.push('\n');
        }
    }
    out.replace("/srv/shop/app", &root)
        .replace("/var/lib/redis", &root)
        .replace("%(ENV_SHOP_DATABASE_URL)s", "sqlite:///%(here)s/db.sqlite3")
}

fn state(sup: &Supervisor, name: &str) -> Value {
    sup.status()
        .into_iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in status"))
}

#[test]
fn the_imported_django_stack_runs_its_four_workers_and_stops_as_a_group() {
    let dir = tempdir();
    fs::create_dir(dir.path().join("log")).unwrap();
    fs::write(dir.path().join("supervisord.conf"), runnable_django(dir.path())).unwrap();
    let i = import(dir.path(), &dir.path().join("supervisord.conf"), &[]);
    check_ok(dir.path(), &i, &[]);
    // The imported programs and groups below the harness's [supervisor] table (its socket and
    // log in a temp dir, cgroups off) in place of the imported one (/run/supervisor.sock).
    let body = &i.toml[i.toml.find("[programs.").expect("programs")..];
    let sup = Supervisor::start(body);
    let names = [
        "redis",
        "web",
        "celery@1",
        "celery@2",
        "celery@3",
        "celery@4",
        "celerybeat",
    ];
    let mut pids = Vec::new();
    for name in names {
        let p = wait_state_within(T, &sup, name, "RUNNING");
        pids.push(p["pid"].as_u64().unwrap_or_else(|| panic!("no pid: {p}")) as u32);
    }
    let distinct: std::collections::BTreeSet<_> = pids.iter().collect();
    assert_eq!(distinct.len(), names.len(), "one process each: {pids:?}");
    // celery@3 got its own slot, the shared settings, and its own log file.
    let environ = fs::read(format!("/proc/{}/environ", pids[4])).unwrap();
    let environ: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
    for var in [
        "WORKER_SLOT=3",
        "DJANGO_SETTINGS_MODULE=shop.settings.production",
        "C_FORCE_ROOT=false",
    ] {
        assert!(environ.contains(&var.as_bytes()), "{var} not in celery@3's environment");
    }
    for n in 1..=4 {
        let log = dir.path().join(format!("log/celery_{n:02}.log"));
        assert!(log.exists(), "no {}", log.display());
    }

    // The supervisord group is a holden group: stopping it stops its six processes, not redis.
    let out = sup.ctl(&["stop", "stack"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    for name in &names[1..] {
        let p = state(&sup, name);
        assert_eq!(p["state"], "STOPPED", "{name}: {p}");
    }
    assert_eq!(state(&sup, "redis")["state"], "RUNNING");
    for pid in &pids[1..] {
        wait_for(T, &format!("pid {pid} to be gone"), || {
            if alive(*pid) && proc_state(*pid) != Some('Z') {
                Err("alive".to_string())
            } else {
                Ok(())
            }
        });
    }
}

#[test]
fn include_files_are_globbed_relative_to_the_including_file_with_their_own_here() {
    // Run from elsewhere: the globs and %(here)s follow the files, not the working directory.
    let dir = tempdir();
    let conf = fixture("include/supervisord.conf");
    let i = import(dir.path(), &conf, &[]);
    let root = fixture("include").display().to_string();
    let conf_d = format!("{root}/conf.d");
    assert_contains(
        &i.toml,
        &[
            &format!("# and its include {conf_d}/10-app.conf\n# and its include {conf_d}/20-queue.conf\n"),
            &format!("socket = \"{root}/supervisor.sock\"\nsocket_mode = \"0700\"\n"),
            &format!("logfile = \"{root}/supervisord.log\"\nlog_level = \"warn\"\n"),
            "# supervisord: [include] files = conf.d/*.conf extra.d/*.ini  (read and merged into this file)",
            // %(here)s in an included file is that file's folder.
            &format!(
                "[programs.app]\ncommand = \"{conf_d}/../bin/app --config {conf_d}/app.yaml\"\ndirectory = \"{conf_d}/..\"\n"
            ),
            "autorestart = \"on-failure\"\nexit_codes = [0, 3]\n",
            // AUTO logs go to the main file's childlogdir; NONE is discarded.
            &format!("stdout = \"{root}/log/app.log\"\nstderr = \"null\"\n"),
            "[programs.queue]\ncommand = \"/usr/bin/env python3 -m queue_runner --workers=2\"\n",
            &format!("instances = 2\nstdout = \"{root}/log/queue-{{index}}.log\"\nstderr = \"stdout\"\n"),
            "\n[groups]\nbackend = [\"app\", \"queue\"]\n",
        ],
        "the imported include layout",
    );
    warned(
        &i,
        &format!("{}:26", conf.display()),
        &format!("[include] files: no file matches {root}/extra.d/*.ini"),
    );
    check_ok(dir.path(), &i, &[]);
}

#[test]
fn env_references_become_variables_holden_reads_at_load_and_an_unset_one_is_named() {
    let dir = tempdir();
    let conf = fixture("env/supervisord.conf");
    let at_import = [("HOME", "/home/importer"), ("HOLDEN_FIXTURE_PORT", "8123")];
    let i = import(dir.path(), &conf, &at_import);
    assert_contains(
        &i.toml,
        &[
            "command = \"${HOME}/venv/bin/uvicorn api:app --port ${HOLDEN_FIXTURE_PORT}\"\ndirectory = \"${HOME}\"\n",
            // [supervisord] environment is every program's, and its variables are ENV_ names.
            "stdout = \"/var/log/api/production.log\"\n",
            "[programs.api.environment]\nAPP_ENV = \"production\"\nLANG = \"C.UTF-8\"\n\
             SENTRY_DSN = \"${HOLDEN_FIXTURE_UNSET}\"\nLOG_FILE = \"/var/log/api-production.log\"\n\
             PRICE_FORMAT = \"100%\"\nSHELL_VAR = \"$$$HOME\"\n",
        ],
        "the imported env fixture",
    );
    assert!(!i.toml.contains("/home/importer"), "{}", i.toml);
    // Exactly one warning: the one variable not set at import.
    let lines = warning_lines(&i);
    assert_eq!(lines.len(), 1, "{}", i.warnings);
    warned(
        &i,
        &format!("{}:10", conf.display()),
        "[program:api] environment: %(ENV_HOLDEN_FIXTURE_UNSET)s became ${HOLDEN_FIXTURE_UNSET}, which holden reads when it loads the file; HOLDEN_FIXTURE_UNSET is not set here",
    );

    // Where holden runs, HOME and the rest are its own.
    let at_run = [
        ("HOME", "/home/runner"),
        ("HOLDEN_FIXTURE_PORT", "9000"),
        ("HOLDEN_FIXTURE_UNSET", "https://key@sentry.example/1"),
    ];
    let printed = check_ok(dir.path(), &i, &at_run);
    assert_contains(
        &printed,
        &[
            "command = [\"/home/runner/venv/bin/uvicorn\", \"api:app\", \"--port\", \"9000\"]",
            "directory = \"/home/runner\"",
            "SENTRY_DSN = \"https://key@sentry.example/1\"",
            "PRICE_FORMAT = \"100%\"",
            // check prints a literal $ as $$: the value is supervisord's literal `$$HOME`.
            "SHELL_VAR = \"$$$$HOME\"",
        ],
        "holden check's output",
    );
    // Still unset where holden loads it: refused, with the file, line and variable.
    let o = holden_env(dir.path(), &["check", "-c", &i.out.display().to_string()], &at_run[..2]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let line = i
        .toml
        .lines()
        .position(|l| l.starts_with("SENTRY_DSN = "))
        .expect("SENTRY_DSN")
        + 1;
    assert!(
        err.contains(&format!(
            "{}:{line}:14: programs.api.environment.SENTRY_DSN: found ${{HOLDEN_FIXTURE_UNSET}}, but HOLDEN_FIXTURE_UNSET is not set",
            i.out.display()
        )),
        "{err}"
    );
}

#[test]
fn group_sections_become_holden_groups_and_a_clash_with_a_program_is_renamed() {
    let dir = tempdir();
    let conf = fixture("group/supervisord.conf");
    let i = import(dir.path(), &conf, &[]);
    assert_contains(
        &i.toml,
        &[
            "[programs.nginx]\ncommand = \"/usr/sbin/nginx -g \\\"daemon off;\\\"\"\n",
            "[programs.sidekiq]\ncommand = \"/usr/local/bin/bundle exec sidekiq -e production\"\n\
             directory = \"/srv/rails\"\nmax_restarts = 3\nstop_signal = \"TERM\"\nstop_timeout = \"25s\"\n",
            "\n[groups]\nweb-group = [\"nginx\", \"web\"]\njobs = [\"sidekiq\", \"cron\"]\n",
        ],
        "the imported groups",
    );
    let file = conf.display().to_string();
    warned(
        &i,
        &format!("{file}:22"),
        "[group:web]: a holden group cannot share a program's name; named \"web-group\"",
    );
    warned(&i, &format!("{file}:24"), "[group:web] priority: no equivalent");
    assert_eq!(warning_lines(&i).len(), 2, "{}", i.warnings);
    check_ok(dir.path(), &i, &[]);
}

#[test]
fn event_listeners_servers_and_rpc_are_comments_in_place_and_one_warning_each() {
    let dir = tempdir();
    let conf = fixture("eventlistener/supervisord.conf");
    let i = import(dir.path(), &conf, &[]);
    // Each at its place: the INI's order of sections.
    let order = [
        "[supervisor]\nlogfile = \"/var/log/supervisor/supervisord.log\"\n# supervisord: nodaemon = true  (",
        "# supervisord: [inet_http_server]  (holden has no HTTP or XML-RPC server",
        "#   port = 127.0.0.1:9001\n#   username = ops\n#   password = (not copied)\n",
        "# supervisord: [rpcinterface:supervisor]  (",
        "# supervisord: [supervisorctl]  (",
        "#   serverurl = http://127.0.0.1:9001\n",
        "[programs.worker]\ncommand = \"/usr/local/bin/worker --queue default\"\n",
        "# supervisord: serverurl = AUTO  (",
        "# supervisord: stdout_events_enabled = true  (holden has no event listeners)\n",
        "# supervisord: stderr_events_enabled = true  (",
        "# supervisord: stdout_capture_maxbytes = 1MB  (",
        "# supervisord: [eventlistener:memmon]  (holden has no event listener protocol",
        "#   command = memmon -p worker=200MB\n#   events = TICK_60\n",
        "# supervisord: [eventlistener:crashmail]  (",
        "#   buffer_size = 50\n",
    ];
    let mut from = 0;
    for piece in order {
        let at = i.toml[from..]
            .find(piece)
            .unwrap_or_else(|| panic!("{piece:?} not after byte {from} of:\n{}", i.toml));
        from += at + piece.len();
    }
    assert!(!i.toml.contains("changeme"), "a password was copied:\n{}", i.toml);
    assert!(!i.toml.contains("[programs.memmon]"), "{}", i.toml);
    let file = conf.display().to_string();
    let expected = [
        (3, "[inet_http_server]: no equivalent in holden"),
        (12, "[rpcinterface:supervisor]: no equivalent in holden"),
        (15, "[supervisorctl]: no equivalent in holden"),
        (22, "[program:worker] serverurl: no equivalent in holden"),
        (23, "[program:worker] stdout_events_enabled: no equivalent in holden"),
        (24, "[program:worker] stderr_events_enabled: no equivalent in holden"),
        (25, "[program:worker] stdout_capture_maxbytes: no equivalent in holden"),
        (27, "[eventlistener:memmon]: no equivalent in holden"),
        (31, "[eventlistener:crashmail]: no equivalent in holden"),
    ];
    for (line, about) in expected {
        warned(&i, &format!("{file}:{line}"), about);
    }
    assert_eq!(warning_lines(&i).len(), expected.len(), "{}", i.warnings);
    check_ok(dir.path(), &i, &[]);
}

#[test]
fn laravels_queue_workers_get_a_log_file_each() {
    let dir = tempdir();
    let conf = fixture("laravel/supervisord.conf");
    let i = import(dir.path(), &conf, &[]);
    assert_contains(
        &i.toml,
        &[
            "[programs.laravel-worker]\ncommand = \"php /home/forge/app.com/artisan queue:work sqs --sleep=3 --tries=3 --max-time=3600\"\n\
             user = \"forge\"\nautostart = true\nautorestart = \"always\"\nmax_restarts = 3\nstop_timeout = \"3600s\"\n\
             instances = 8\nstdout = \"/home/forge/app.com/worker-{index}.log\"\nstderr = \"stdout\"\n",
            "(holden names the instances laravel-worker@INDEX)",
        ],
        "the imported Laravel workers",
    );
    warned(
        &i,
        &format!("{}:13", conf.display()),
        "[program:laravel-worker] stdout_logfile: holden's instances each need their own log file; \"/home/forge/app.com/worker.log\" became \"/home/forge/app.com/worker-{index}.log\"",
    );
    assert_eq!(warning_lines(&i).len(), 1, "{}", i.warnings);
    let printed = check_ok(dir.path(), &i, &[]);
    assert_contains(
        &printed,
        &["instance_start = 0  # laravel-worker@0 to laravel-worker@7"],
        "holden check's output",
    );
}

#[test]
fn a_containers_config_keeps_its_streams_and_warns_only_about_the_pidfile() {
    let dir = tempdir();
    let conf = fixture("docker/supervisord.conf");
    let i = import(dir.path(), &conf, &[]);
    assert_contains(
        &i.toml,
        &[
            "[supervisor]\nlogfile = \"/dev/null\"\n",
            "# supervisord: nodaemon = true  (",
            "# supervisord: user = root  (",
            "# supervisord: logfile_maxbytes = 0  (",
            "[programs.php-fpm]\ncommand = \"php-fpm8.2 -F\"\nautorestart = \"always\"\nmax_restarts = 0\n\
             stdout = \"/dev/stdout\"\nstderr = \"/dev/stderr\"\nlog_max_bytes = 0\n",
            "[programs.nginx]\ncommand = \"nginx -g 'daemon off;'\"\n",
        ],
        "the imported container config",
    );
    warned(
        &i,
        &format!("{}:7", conf.display()),
        "[supervisord] pidfile: no equivalent",
    );
    assert_eq!(warning_lines(&i).len(), 1, "{}", i.warnings);
    let printed = check_ok(dir.path(), &i, &[]);
    assert_contains(
        &printed,
        &["command = [\"nginx\", \"-g\", \"daemon off;\"]"],
        "holden check's output",
    );
}

#[test]
fn without_a_file_import_looks_where_supervisord_does_and_writes_to_stdout() {
    let dir = tempdir();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::write(
        dir.path().join("etc/supervisord.conf"),
        "[program:from_etc]\ncommand=sleep 1\n",
    )
    .unwrap();
    let o = holden_env(dir.path(), &["import"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let toml = text(&o.stdout);
    assert!(
        toml.starts_with("# Converted by `holden import` from the supervisord configuration etc/supervisord.conf\n"),
        "{toml}"
    );
    assert!(toml.contains("[programs.from_etc]\ncommand = \"sleep 1\"\n"), "{toml}");
    // ./supervisord.conf comes first.
    fs::write(
        dir.path().join("supervisord.conf"),
        "[program:from_cwd]\ncommand=sleep 1\n",
    )
    .unwrap();
    let o = holden_env(dir.path(), &["import"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let toml = text(&o.stdout);
    assert!(
        toml.contains("[programs.from_cwd]\n") && !toml.contains("from_etc"),
        "{toml}"
    );
    assert_eq!(text(&o.stderr), "", "no warnings");
}

#[test]
fn bad_input_is_refused_with_file_and_line_and_writes_nothing() {
    let dir = tempdir();
    let cases = [
        (
            "  --bind 0.0.0.0\n[program:a]\ncommand=a\n",
            "bad.conf:1: \"--bind 0.0.0.0\" comes before any [section] header",
        ),
        (
            "[program:a]\ncommand=a\nnumprocs=many\n",
            "bad.conf:3: [program:a] numprocs: found \"many\", expected a whole number from 1 to 1000",
        ),
        (
            "[program:a]\ncommand=a\nnumprocs=0\n",
            "bad.conf:3: [program:a] numprocs: found \"0\", expected a whole number",
        ),
        (
            "[program:a\ncommand=a\n",
            "bad.conf:1: \"[program:a\" comes before any [section] header",
        ),
        (
            "[program:a]\ncommand=a\nautorestart=sometimes\n",
            "bad.conf:3: [program:a] autorestart: found \"sometimes\", expected true, false or unexpected",
        ),
        ("[program:a]\ncommand=a %(nope)s\n", "bad.conf:2: [program:a] command: "),
        (
            "[program:a]\ncommand=a\n[group:g]\nprograms=a,b\n",
            "bad.conf:4: [group:g] programs: names \"b\", which is not a [program:b]",
        ),
        (
            "[program:a]\nstartsecs=1\n",
            "bad.conf:1: [program:a]: a program needs a command = line",
        ),
        ("[include]\n", "bad.conf:1: [include] needs a files = line"),
    ];
    for (ini, want) in cases {
        fs::write(dir.path().join("bad.conf"), ini).unwrap();
        let o = holden_env(dir.path(), &["import", "bad.conf", "-o", "out.toml"], &[]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{ini:?}: {}\n{err}", o.status);
        assert!(err.starts_with(want), "{ini:?}: {want:?} not at the start of {err:?}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!dir.path().join("out.toml").exists(), "{ini:?} wrote a file");
    }
}

/// supervisord's sample config, as `echo_supervisord_conf` prints it (`pip install supervisor`;
/// .ci/setup-supervisor.sh installs it).
fn sample_config(test: &str) -> Option<String> {
    match Command::new("echo_supervisord_conf").stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => Some(text(&o.stdout)),
        Ok(o) => panic!("echo_supervisord_conf failed: {}\n{}", o.status, text(&o.stderr)),
        Err(e) => {
            skip(
                test,
                &format!("echo_supervisord_conf is not installed ({e}): pip install supervisor, or .ci/setup.sh"),
            );
            None
        }
    }
}

#[test]
fn supervisords_own_sample_config_imports_and_passes_check() {
    let Some(sample) = sample_config("supervisords_own_sample_config_imports_and_passes_check") else {
        return;
    };
    let dir = tempdir();
    fs::write(dir.path().join("supervisord.conf"), &sample).unwrap();
    let i = import(dir.path(), Path::new("supervisord.conf"), &[]);
    assert_contains(
        &i.toml,
        &[
            "[supervisor]\nsocket = \"/tmp/supervisor.sock\"\n",
            "log_level = \"info\"\n",
        ],
        "the imported sample",
    );
    // The sections holden has nothing for are named, with the line they start on.
    for section in ["[rpcinterface:supervisor]", "[supervisorctl]"] {
        let line = sample.lines().position(|l| l.starts_with(section)).expect(section) + 1;
        warned(
            &i,
            &format!("supervisord.conf:{line}"),
            &format!("{section}: no equivalent"),
        );
        assert!(i.toml.contains(&format!("# supervisord: {section}  (")), "{}", i.toml);
    }
    check_ok(dir.path(), &i, &[]);
}

#[test]
fn supervisords_sample_with_every_commented_option_switched_on_imports_and_passes_check() {
    let test = "supervisords_sample_with_every_commented_option_switched_on_imports_and_passes_check";
    let Some(sample) = sample_config(test) else {
        return;
    };
    // `;key=value` and `;[section]` lines uncommented: every option the sample documents,
    // with its example value. The sample's group names programs it does not define, which
    // supervisord refuses too: point it at the sample's program.
    let mut full = String::new();
    for line in sample.lines() {
        let on = line.strip_prefix(';').filter(|rest| {
            rest.starts_with('[')
                || rest.split_once('=').is_some_and(|(k, _)| {
                    !k.trim().is_empty() && k.trim().chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                })
        });
        let line = on.unwrap_or(line);
        if line.starts_with("programs=") {
            full.push_str("programs=theprogramname\n");
        } else {
            full.push_str(line);
            full.push('\n');
        }
    }
    let dir = tempdir();
    fs::write(dir.path().join("supervisord.conf"), &full).unwrap();
    let line_of = |prefix: &str| {
        full.lines()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in the uncommented sample:\n{full}"))
            + 1
    };
    let i = import(dir.path(), Path::new("supervisord.conf"), &[]);
    for section in [
        "[inet_http_server]",
        "[rpcinterface:supervisor]",
        "[supervisorctl]",
        "[eventlistener:theeventlistenername]",
    ] {
        warned(
            &i,
            &format!("supervisord.conf:{}", line_of(section)),
            &format!("{section}: no equivalent"),
        );
    }
    for key in [
        "stdout_capture_maxbytes",
        "stdout_events_enabled",
        "serverurl",
        "priority",
    ] {
        assert!(
            i.warnings
                .contains(&format!("[program:theprogramname] {key}: no equivalent")),
            "no warning for {key}:\n{}",
            i.warnings
        );
    }
    // Every option the sample names is one the converter knows.
    for unknown in [
        "not a supervisord [program] option",
        "not a [supervisord] option",
        "not a [unix_http_server] option",
    ] {
        assert!(!i.warnings.contains(unknown), "{unknown}:\n{}", i.warnings);
    }
    // ... and one the migration guide's table names.
    let guide = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migrating-from-supervisord.md"))
        .expect("docs/migrating-from-supervisord.md");
    let mut keys = 0;
    for line in full.lines().filter(|l| !l.starts_with([';', '[', ' ', '\t'])) {
        let Some((key, _)) = line.split_once('=') else { continue };
        let key = key.trim();
        assert!(
            guide.contains(&format!("`{key}`")),
            "the migration guide does not name `{key}`"
        );
        keys += 1;
    }
    assert!(keys > 80, "only {keys} options in the uncommented sample:\n{full}");
    assert_contains(
        &i.toml,
        &[
            "[programs.theprogramname]\ncommand = \"/bin/cat\"\n",
            "\n[groups]\nthegroupname = [\"theprogramname\"]\n",
            "[programs.theprogramname.environment]\n",
        ],
        "the imported full sample",
    );
    check_ok(dir.path(), &i, &[]);
}

/// The fenced block of `lang` that follows `after` in `doc`.
fn block_after<'d>(doc: &'d str, after: &str, lang: &str) -> &'d str {
    let from = doc.find(after).unwrap_or_else(|| panic!("{after:?} not in the doc")) + after.len();
    let open = format!("```{lang}\n");
    let start = doc[from..]
        .find(&open)
        .unwrap_or_else(|| panic!("no {open:?} after {after:?}"))
        + from
        + open.len();
    let len = doc[start..].find("```").expect("a closed block");
    &doc[start..start + len]
}

#[test]
fn the_migration_guides_worked_example_is_what_import_writes() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migrating-from-supervisord.md"))
        .expect("docs/migrating-from-supervisord.md");
    let before = block_after(&doc, "## A worked example", "ini");
    let after = block_after(&doc, "## A worked example", "toml");
    let dir = tempdir();
    fs::write(dir.path().join("supervisord.conf"), before).unwrap();
    let i = import(dir.path(), &dir.path().join("supervisord.conf"), &[]);
    let written = i.toml.replace(
        &dir.path().join("supervisord.conf").display().to_string(),
        "/etc/supervisor/supervisord.conf",
    );
    assert_eq!(written, after, "the guide's example is not what holden import writes");
    let file = dir.path().join("supervisord.conf").display().to_string();
    for (line, about) in [
        (7, "[supervisord] pidfile: no equivalent"),
        (9, "[rpcinterface:supervisor]: no equivalent"),
        (
            17,
            "[program:web] environment: %(ENV_SHOP_DATABASE_URL)s became ${SHOP_DATABASE_URL}",
        ),
        (18, "[program:web] priority: no equivalent"),
    ] {
        warned(&i, &format!("{file}:{line}"), about);
    }
    assert_eq!(warning_lines(&i).len(), 4, "{}", i.warnings);
    check_ok(dir.path(), &i, &[("SHOP_DATABASE_URL", "postgres://shop@db/shop")]);
}

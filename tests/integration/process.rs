//! Integration tests: what a program's process gets, read back from the kernel. Environment
//! files and `${VAR}` (from holden's own environment), umask, nice, oom_score_adj and rlimits
//! (/proc/PID/status, stat, oom_score_adj, limits), only fds 0, 1 and 2 however holden was
//! started, and the errors `holden check` and a refused setting give.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

const T: Duration = Duration::from_secs(20);

/// Start holden on `sup`'s config through `sh -c`, so that `shell` (like `exec 7>file`) runs
/// first in the process that then becomes holden, with `env` added to its environment; under
/// `setpriv` as nobody when `as_nobody`.
fn launch(mut sup: Supervisor, env: &[(&str, &str)], shell: &str, as_nobody: bool) -> Supervisor {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("{shell}\nexec \"$@\"")).arg("sh");
    if as_nobody {
        // Everything holden writes lives in the temp dir.
        fs::set_permissions(sup.dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        cmd.args(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    }
    cmd.arg(HOLDEN)
        .arg("run")
        .arg("-c")
        .arg(&sup.config)
        .current_dir(sup.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(sup.dir.path().join("holden.stderr")).expect("stderr file"))
        .env_remove("HOLDEN_CONFIG")
        .env_remove("HOLDEN_CONTROL_SOCKET")
        .env("RUST_LOG", "debug")
        .envs(env.iter().copied());
    cmd.process_group(0);
    let child = cmd.spawn().expect("spawn sh -c ... holden run");
    // sh and setpriv exec: the pid is holden's.
    sup.pid = child.id();
    sup.child = Some(child);
    let socket = sup.socket.clone();
    wait_for(T, "holden to bind its control socket", || {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            Ok(())
        } else {
            Err(format!("no {}", socket.display()))
        }
    });
    sup
}

fn running_pid(sup: &Supervisor, name: &str) -> u32 {
    let st = wait_state_within(T, sup, name, "RUNNING");
    st["pid"].as_u64().expect("a pid") as u32
}

/// (soft, hard) of the limit whose /proc/PID/limits row starts with `row`.
fn limit(pid: u32, row: &str) -> (String, String) {
    let text = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no {row:?} in\n{text}"));
    let mut cols = line[row.len()..].split_whitespace();
    (
        cols.next().expect("soft").to_string(),
        cols.next().expect("hard").to_string(),
    )
}

fn umask(pid: u32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Umask line")
        .trim()
        .to_string()
}

/// Field 19 of /proc/PID/stat.
fn nice(pid: u32) -> i32 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command (in parentheses) start at field 3.
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    rest.split(' ')
        .nth(19 - 3)
        .expect("field 19")
        .parse()
        .expect("a number")
}

fn oom_score_adj(pid: u32) -> i32 {
    fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .expect("oom_score_adj")
        .trim()
        .parse()
        .expect("a number")
}

fn own(what: &str) -> String {
    let me = std::process::id();
    match what {
        "umask" => umask(me),
        "nice" => nice(me).to_string(),
        "oom" => oom_score_adj(me).to_string(),
        _ => unreachable!(),
    }
}

#[test]
fn umask_nice_oom_score_adj_and_rlimits_reach_the_kernel() {
    let sup = Supervisor::start(
        r#"
[programs.tuned]
command = "sleep 300"
umask = "027"
nice = 7
oom_score_adj = 500
rlimits = { nofile = { soft = 100, hard = 200 }, core = 0, nproc = { soft = 300, hard = 400 } }

[programs.plain]
command = "sleep 300"
umask = 0o077
"#,
    );
    let pid = running_pid(&sup, "tuned");
    assert_eq!(umask(pid), "0027");
    assert_eq!(nice(pid), 7);
    assert_eq!(oom_score_adj(pid), 500);
    assert_eq!(limit(pid, "Max open files"), ("100".into(), "200".into()));
    assert_eq!(limit(pid, "Max core file size"), ("0".into(), "0".into()));
    assert_eq!(limit(pid, "Max processes"), ("300".into(), "400".into()));
    // What is not set is holden's own (the test's, which started it).
    let plain = running_pid(&sup, "plain");
    assert_eq!(umask(plain), "0077");
    assert_eq!(nice(plain).to_string(), own("nice"));
    assert_eq!(oom_score_adj(plain).to_string(), own("oom"));
    // (Only the hard limit: holden may raise its own soft one.)
    assert_eq!(
        limit(plain, "Max open files").1,
        limit(std::process::id(), "Max open files").1
    );
}

/// Whether this process has capability `cap` in its effective set.
fn has_capability(cap: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").expect("status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << cap) != 0
}

const CAP_SYS_NICE: u32 = 23;
const CAP_SYS_RESOURCE: u32 = 24;

#[test]
fn privileged_settings_are_applied_before_the_switch_to_another_user() {
    if skip_unless_root("privileged_settings_are_applied_before_the_switch_to_another_user") {
        return;
    }
    // Lowering the niceness needs CAP_SYS_NICE; lowering oom_score_adj and raising a hard
    // limit CAP_SYS_RESOURCE, which some containers' root lacks: test what root has here.
    let nice_cap = has_capability(CAP_SYS_NICE);
    let resource_cap = has_capability(CAP_SYS_RESOURCE);
    let mut settings = String::new();
    if nice_cap {
        settings.push_str("nice = -5\n");
    }
    if resource_cap {
        settings.push_str("oom_score_adj = -500\nrlimits = { memlock = { soft = \"1MiB\", hard = \"unlimited\" } }\n");
    }
    if settings.is_empty() {
        eprintln!(
            "SKIP privileged_settings_are_applied_before_the_switch_to_another_user: no CAP_SYS_NICE nor CAP_SYS_RESOURCE"
        );
        return;
    }
    let sup = Supervisor::start(&format!(
        "[programs.low]\ncommand = \"sleep 300\"\nuser = \"nobody\"\n{settings}"
    ));
    let pid = running_pid(&sup, "low");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(status.lines().any(|l| l.starts_with("Uid:\t65534\t")), "{status}");
    if nice_cap {
        assert_eq!(nice(pid), -5);
    }
    if resource_cap {
        assert_eq!(oom_score_adj(pid), -500);
        assert_eq!(limit(pid, "Max locked memory"), ("1048576".into(), "unlimited".into()));
    }
}

#[test]
fn a_limit_the_kernel_refuses_makes_the_program_fatal_with_a_sentence() {
    if skip_unless_root("a_limit_the_kernel_refuses_makes_the_program_fatal_with_a_sentence (setpriv)") {
        return;
    }
    // holden runs as nobody: raising a hard limit needs CAP_SYS_RESOURCE, which it lacks.
    let sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        r#"
[programs.greedy]
command = "sleep 300"
rlimits = { memlock = { soft = 1024, hard = "unlimited" } }
"#,
    );
    let mut sup = launch(sup, &[], "ulimit -H -l 8192", true);
    // A step of the child before its exec: found once the child exists.
    let log = sup.wait_log("greedy: STARTING -> FATAL (", T);
    assert!(
        log.contains(
            "greedy: STARTING -> FATAL (cannot spawn sleep: the kernel refused rlimits.memlock = { soft = 1024, hard = unlimited }: operation not permitted (raising a hard limit needs CAP_SYS_RESOURCE)"
        ),
        "{log}"
    );
}

/// NUL-separated `NAME=value` of an environ file.
fn environ(text: &[u8]) -> BTreeMap<String, String> {
    text.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let s = String::from_utf8_lossy(e);
            s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[test]
fn environment_files_and_variables_from_holdens_environment() {
    let sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        r#"
[programs.env]
command = ["cp", "/proc/self/environ", "${HOLDEN_T_OUT}/environ"]
directory = "${HOLDEN_T_SUB:-sub}"
environment_file = ["${HOLDEN_T_SUB}/app.env", "-/nonexistent/holden-optional.env"]
environment = { OVERRIDE = "table", FROM_VAR = "x ${HOLDEN_T_VAR} y", LITERAL = "$${HOLDEN_T_VAR} $$ $HOME", DEFAULTED = "${HOLDEN_T_UNSET:-fallback}" }
autorestart = "never"
stdout = "${HOLDEN_T_OUT}/env.log"

[programs.args]
command = "sh -c 'printf \"[%s]\" \"$$@\"' sh ${HOLDEN_T_VAR} $${HOLDEN_T_VAR} '${HOLDEN_T_UNSET:-d1 d2}' $1"
autorestart = "never"
stdout = "${HOLDEN_T_OUT}/args.log"
"#,
    );
    let dir = sup.dir.path().to_path_buf();
    fs::create_dir(dir.join("sub")).expect("mkdir");
    fs::create_dir(dir.join("out")).expect("mkdir");
    fs::create_dir(dir.join("sub/out")).expect("mkdir");
    fs::write(
        dir.join("sub/app.env"),
        "# comment\n; another\n\nPLAIN = plain value  \nSINGLE='single $HOME \"q\"'\nDOUBLE=\"two\\nlines \\\"q\\\"\"\nexport EXPORTED=yes\nOVERRIDE=file\n",
    )
    .expect("write env file");
    let env = [
        ("HOLDEN_T_VAR", "hello world"),
        ("HOLDEN_T_SUB", "sub"),
        ("HOLDEN_T_OUT", "out"),
    ];
    let sup = launch(sup, &env, "", false);
    wait_state_within(T, &sup, "env", "EXITED");
    wait_state_within(T, &sup, "args", "EXITED");
    // `cp` ran in directory "sub" (relative to the config's folder): its relative output too.
    let vars = environ(&fs::read(dir.join("sub/out/environ")).expect("environ written"));
    assert_eq!(vars["PLAIN"], "plain value");
    assert_eq!(vars["SINGLE"], "single $HOME \"q\"");
    assert_eq!(vars["DOUBLE"], "two\nlines \"q\"");
    assert_eq!(vars["EXPORTED"], "yes");
    assert_eq!(vars["OVERRIDE"], "table");
    assert_eq!(vars["FROM_VAR"], "x hello world y");
    assert_eq!(vars["LITERAL"], "${HOLDEN_T_VAR} $ $HOME");
    assert_eq!(vars["DEFAULTED"], "fallback");
    // holden's own environment is passed on too.
    assert_eq!(vars["HOLDEN_T_VAR"], "hello world");
    // stdout = "${HOLDEN_T_OUT}/env.log": against the config's folder.
    assert!(dir.join("out/env.log").exists());
    // Expanded after splitting: a value with blanks stays one word; "$$@" is the shell's "$@".
    let args = fs::read_to_string(dir.join("out/args.log")).expect("args.log");
    assert_eq!(args.trim_end(), "[hello world][${HOLDEN_T_VAR}][d1 d2][$1]");
}

#[test]
fn check_prints_the_expanded_values_and_refuses_an_unset_variable() {
    let dir = tempdir();
    fs::write(dir.path().join(".env"), "FROM_FILE='a b'\n").expect("write");
    fs::write(
        dir.path().join("ok.toml"),
        "[programs.web]\ncommand = \"serve --name ${HOLDEN_T_VAR} $$HOME\"\nenvironment_file = \".env\"\nenvironment = { V = \"${HOLDEN_T_VAR:-x}\" }\nnice = 3\nrlimits = { nofile = 4096 }\n",
    )
    .expect("write");
    let out = holden_in(Some(dir.path()), &["check", "-c", "ok.toml"], &[("HOLDEN_T_VAR", "v1")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    for needle in [
        "command = [\"serve\", \"--name\", \"v1\", \"$HOME\"]",
        "environment = { FROM_FILE = \"a b\", V = \"v1\" }",
        "nice = 3",
        "rlimits = { nofile = 4096 }",
    ] {
        assert!(printed.contains(needle), "{needle:?} not in\n{printed}");
    }
    let out = holden_in(Some(dir.path()), &["check", "-c", "ok.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        text(&out.stderr).lines().next().unwrap_or_default(),
        "ok.toml:2:11: programs.web.command: found ${HOLDEN_T_VAR}, but HOLDEN_T_VAR is not set in holden's environment, \
         expected a set variable, a default like ${NAME:-value}, or $$ for a literal $ (holden expands ${NAME} from its own environment)"
    );
}

#[test]
fn check_names_each_bad_setting_with_file_line_and_key() {
    let dir = tempdir();
    fs::write(dir.path().join("bad.env"), "A=1\n# fine\nnot an assignment\n").expect("write");
    let config = "[programs.web]\ncommand = \"sleep 1\"\n\
                  environment_file = \"bad.env\"\n\
                  rlimits = { nofiles = 10, nproc = { soft = 200, hard = 100 }, nofile = 1073741817 }\n\
                  umask = \"999\"\n\
                  nice = 40\n\
                  oom_score_adj = 1001\n";
    fs::write(dir.path().join("bad.toml"), config).expect("write");
    let out = holden_in(Some(dir.path()), &["check", "-c", "bad.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines: Vec<String> = text(&out.stderr).lines().map(str::to_string).collect();
    let env_file = dir.path().join("bad.env");
    let want = [
        format!(
            "bad.toml:3:20: programs.web.environment_file: found {}:3: \"not an assignment\" has no '=', expected KEY=value lines",
            env_file.display()
        ),
        "bad.toml:4:13: programs.web.rlimits.nofiles: found the unknown limit \"nofiles\", expected one of as, core,"
            .to_string(),
        "bad.toml:4:35: programs.web.rlimits.nproc: found the soft limit 200 above the hard limit 100".to_string(),
        "bad.toml:4:72: programs.web.rlimits.nofile: found 1073741817, above this kernel's fs.nr_open".to_string(),
        "bad.toml:5:9: programs.web.umask: found \"999\", expected an octal umask".to_string(),
        "bad.toml:6:8: programs.web.nice: found 40, expected a niceness from -20 to 19".to_string(),
        "bad.toml:7:17: programs.web.oom_score_adj: found 1001, expected an OOM score adjustment from -1000 to 1000"
            .to_string(),
    ];
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
    for (line, w) in lines.iter().zip(&want) {
        assert!(line.starts_with(w.as_str()), "{line:?} does not start with {w:?}");
    }
}

/// The fds of a program, as it lists them itself, in the log at `path`.
fn listed_fds(sup: &Supervisor, name: &str) -> String {
    wait_state_within(T, sup, name, "EXITED");
    fs::read_to_string(sup.path(&format!("{name}.log")))
        .expect("the program's log")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn programs_get_only_fds_0_1_2_whatever_holden_inherited() {
    let root = is_root();
    let mut programs = String::new();
    for (name, user) in [("mine", ""), ("nobody", "user = \"nobody\"\n")] {
        if user.is_empty() || root {
            // `ls` lists the fds of the shell (its parent, `$$$$` being the shell's `$$`),
            // which opened nothing of its own.
            programs.push_str(&format!(
                "[programs.{name}]\ncommand = [\"sh\", \"-c\", \"ls /proc/$$$$/fd\"]\n\
                 autorestart = \"never\"\nstdout = \"{{dir}}/{name}.log\"\n{user}\n"
            ));
        }
    }
    let sup = Supervisor::prepare("cgroups = \"off\"\n", &programs);
    let secret = sup.path("secret");
    fs::write(&secret, "s3cret\n").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let shell = format!("exec 7>>'{}' 8<'{}'", secret.display(), secret.display());
    let sup = launch(sup, &[], &shell, false);
    // The setup is real: holden itself has fd 7 and 8 open on the file.
    for fd in [7, 8] {
        let target = fs::read_link(format!("/proc/{}/fd/{fd}", sup.pid)).expect("holden has the inherited fd");
        assert_eq!(target, secret, "fd {fd}");
    }
    assert_eq!(listed_fds(&sup, "mine"), "0 1 2");
    if root {
        assert_eq!(listed_fds(&sup, "nobody"), "0 1 2");
    }
}

/// A child killed and reaped on drop, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_agent_passes_on_only_fds_0_1_2_whatever_it_inherited() {
    let agent_dir = tempdir();
    let secret = agent_dir.path().join("secret");
    fs::write(&secret, "s3cret\n").expect("write");
    let socket = agent_dir.path().join("agent.sock");
    let out = agent_dir.path().join("fds.out");
    let agent = Command::new("sh")
        .arg("-c")
        .arg("exec 7>>\"$1\"; shift; exec \"$@\"")
        .arg("sh")
        .arg(&secret)
        .arg(HOLDEN)
        .args(["agent", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        // What it spawns writes here: no redirection in the program's shell, whose own
        // saved fds would be listed too.
        .stdout(fs::File::create(&out).expect("out"))
        .stderr(fs::File::create(agent_dir.path().join("agent.log")).expect("log"))
        .spawn()
        .expect("start the agent");
    let agent = KillOnDrop(agent);
    wait_for(T, "the agent's socket", || {
        std::os::unix::net::UnixStream::connect(&socket)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let target = fs::read_link(format!("/proc/{}/fd/7", agent.0.id())).expect("the agent has the inherited fd");
    assert_eq!(target, secret);
    let sup = Supervisor::start(&format!(
        "[programs.remote]\ncommand = [\"sh\", \"-c\", \"ls /proc/$$$$/fd\"]\nagent = \"{}\"\nautorestart = \"never\"\n",
        socket.display()
    ));
    let listed = wait_for(T, "the program's fd list", || match fs::read_to_string(&out) {
        Ok(t) if t.ends_with('\n') => Ok(t),
        Ok(t) => Err(t),
        Err(e) => Err(e.to_string()),
    });
    assert_eq!(listed.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"]);
    drop(sup);
    drop(agent);
}

#[test]
fn reload_reads_the_environment_files_again_and_restarts_what_changed() {
    let sup = Supervisor::prepare(
        "cgroups = \"off\"\n",
        "[programs.app]\ncommand = \"sleep 300\"\nenvironment_file = \"app.env\"\n\n\
         [programs.other]\ncommand = \"sleep 300\"\n",
    );
    fs::write(sup.path("app.env"), "V=1\n").expect("write");
    let sup = sup.spawn();
    let first = running_pid(&sup, "app");
    let other = running_pid(&sup, "other");
    let env_of = |pid: u32| environ(&fs::read(format!("/proc/{pid}/environ")).expect("environ"));
    assert_eq!(env_of(first)["V"], "1");
    fs::write(sup.path("app.env"), "V=2\n").expect("write");
    let out = sup.ctl(&["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = wait_for(T, "app restarted", || {
        let st = sup.program_status("app");
        match st["pid"].as_u64() {
            Some(p) if p as u32 != first && st["state"] == "RUNNING" => Ok(p as u32),
            _ => Err(st.to_string()),
        }
    });
    assert_eq!(env_of(second)["V"], "2");
    // The program whose settings did not change kept running.
    assert_eq!(running_pid(&sup, "other"), other);
    // A bad env file refuses the reload whole; the program keeps its process.
    fs::write(sup.path("app.env"), "V=\"unterminated\n").expect("write");
    let out = sup.ctl(&["reload"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("programs.app.environment_file: found "),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(running_pid(&sup, "app"), second);
}

#[test]
fn an_imported_supervisord_config_reads_back_its_env_references_and_dollars() {
    let dir = tempdir();
    fs::write(
        dir.path().join("supervisord.conf"),
        "[program:a]\ncommand=/bin/sh -c 'echo $HOME $$ %(ENV_HOLDEN_T_X)s'\n\
         environment=PRICE=\"5$\",DIR=\"%(ENV_HOLDEN_T_X)s/x\"\numask=027\n",
    )
    .expect("write");
    let env = [("HOLDEN_T_X", "val")];
    let out = holden_in(
        Some(dir.path()),
        &["import", "supervisord.conf", "-o", "supervisor.toml"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = holden_in(Some(dir.path()), &["check", "-c", "supervisor.toml"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    for needle in [
        // The shell gets its `$HOME` and `$$` as supervisord passed them.
        "command = [\"/bin/sh\", \"-c\", \"echo $HOME $$$$ val\"]",
        "environment = { DIR = \"val/x\", PRICE = \"5$\" }",
        "umask = \"0027\"",
    ] {
        assert!(printed.contains(needle), "{needle:?} not in\n{printed}");
    }
}

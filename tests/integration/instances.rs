//! Integration tests: `instances`, `{index}` placeholders and `[groups]` (docs/config.md),
//! through the real binary: each instance its own process, environment, cgroup and log; a base
//! name or a group addressing several programs over the socket; reload changing N; `check`
//! refusing what cannot work; an imported numprocs config running its copies.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const T: Duration = Duration::from_secs(15);

fn pid_of(p: &Value) -> u32 {
    p["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {p}")) as u32
}

fn running(sup: &Supervisor, name: &str) -> u32 {
    pid_of(&wait_state_within(T, sup, name, "RUNNING"))
}

fn ctl_ok(sup: &Supervisor, args: &[&str]) -> String {
    let out = sup.ctl(args);
    assert!(
        out.status.success(),
        "holden {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The names `status --json NAMES...` lists, in its order.
fn status_names(sup: &Supervisor, names: &[&str]) -> Vec<String> {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(names);
    let v: Value = serde_json::from_str(&ctl_ok(sup, &args)).expect("status --json is JSON");
    v["programs"]
        .as_array()
        .expect("programs")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Three workers, each writing its identity to `out-INDEX` and a line to its own log.
const WORKERS: &str = r#"
[programs.worker]
command = ["sh", "-c", "echo \"$HOLDEN_PROGRAM $HOLDEN_INSTANCE {index} {index:03} {{index}}\" > {dir}/out-{index}; echo hello-$HOLDEN_INSTANCE; exec sleep 1000"]
instances = 3
min_uptime = "100ms"
stdout = "logs/w-{index}.log"
# holden's own variables are set last: this does not override them.
environment = { HOLDEN_INSTANCE = "from-the-config", SLOT = "s{index}" }
"#;

#[test]
fn each_instance_is_its_own_process_with_its_index_env_cgroup_and_log() {
    let root = is_root();
    let cg = unique_cgroup_path();
    let extra = if root {
        format!("cgroups = \"auto\"\ncgroup_path = \"{cg}\"\n")
    } else {
        "cgroups = \"off\"\n".to_string()
    };
    let sup = Supervisor::start_with(&extra, &format!("{WORKERS}\n[groups]\nbackground = [\"worker\"]\n"));
    let mut pids = Vec::new();
    for i in 0..3 {
        let name = format!("worker@{i}");
        let pid = running(&sup, &name);
        pids.push(pid);
        let out = wait_for(T, &format!("{name} to write its out file"), || {
            fs::read_to_string(sup.path(&format!("out-{i}")))
                .ok()
                .filter(|s| s.ends_with('\n'))
                .ok_or_else(|| "not yet".to_string())
        });
        assert_eq!(out, format!("worker {i} {i} 00{i} {{index}}\n"));
        let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ");
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        assert!(vars.contains(&format!("SLOT=s{i}").as_bytes()), "{}", text(&environ));
        assert!(
            vars.contains(&format!("HOLDEN_INSTANCE={i}").as_bytes()),
            "{}",
            text(&environ)
        );
        let log = wait_for(T, &format!("{name}'s own log"), || {
            fs::read_to_string(sup.path(&format!("logs/w-{i}.log")))
                .ok()
                .filter(|s| s.contains("hello-"))
                .ok_or_else(|| "not yet".to_string())
        });
        assert_eq!(log, format!("hello-{i}\n"), "each instance writes only its own log");
        if root {
            let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
            assert!(cgroups.contains(&format!("{cg}/worker@{i}\n")), "{cgroups}");
        }
        let st = sup.program_status(&name);
        assert_eq!(st["program"], "worker", "{st}");
        assert_eq!(st["instance"], i, "{st}");
        assert_eq!(st["groups"], serde_json::json!(["background"]), "{st}");
        assert_eq!(st["group"], "background", "{st}");
        if root {
            let path = st["cgroup"].as_str().unwrap_or_default();
            assert!(path.ends_with(&format!("{cg}/worker@{i}")), "{st}");
        }
    }
    assert_eq!(pids.len(), 3);
    assert!(
        pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2],
        "{pids:?}"
    );
    // The table lists the instances together, in index order.
    assert_eq!(status_names(&sup, &[]), ["worker@0", "worker@1", "worker@2"]);
    let table = ctl_ok(&sup, &["status"]);
    let at = |n: &str| table.find(n).unwrap_or_else(|| panic!("{n} not in\n{table}"));
    assert!(
        at("worker@0") < at("worker@1") && at("worker@1") < at("worker@2"),
        "{table}"
    );
}

#[test]
fn a_base_name_a_group_or_an_instance_name_addresses_programs() {
    let sup = Supervisor::start(
        r#"
[programs.worker]
command = ["sh", "-c", "trap 'echo usr1 > {dir}/sig-{index}' USR1; while :; do sleep 0.05; done"]
instances = 3
min_uptime = "100ms"
stop_timeout = "5s"

[programs.app]
command = ["sh", "-c", "trap 'echo usr1 > {dir}/sig-app' USR1; while :; do sleep 0.05; done"]
min_uptime = "100ms"

[programs.other]
command = "sleep 1000"
min_uptime = "100ms"

[groups]
stack = ["app", "worker"]
"#,
    );
    let names = ["worker@0", "worker@1", "worker@2"];
    let before: Vec<u32> = names.iter().map(|n| running(&sup, n)).collect();
    let other = running(&sup, "other");
    running(&sup, "app");

    // The base name: every instance, in index order.
    assert_eq!(status_names(&sup, &["worker"]), names);
    let out = ctl_ok(&sup, &["restart", "worker"]);
    let after: Vec<u32> = names.iter().map(|n| running(&sup, n)).collect();
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "restart worker restarts every instance: {out}");
    }

    // One instance alone.
    ctl_ok(&sup, &["stop", "worker@1"]);
    wait_state_within(T, &sup, "worker@1", "STOPPED");
    assert_eq!(running(&sup, "worker@0"), after[0]);
    assert_eq!(running(&sup, "worker@2"), after[2]);
    ctl_ok(&sup, &["start", "worker@1"]);
    running(&sup, "worker@1");

    // A group: its members' programs, instances in index order; duplicates once.
    assert_eq!(
        status_names(&sup, &["stack"]),
        ["app", "worker@0", "worker@1", "worker@2"]
    );
    assert_eq!(
        status_names(&sup, &["worker@2", "stack"]),
        ["worker@2", "app", "worker@0", "worker@1"]
    );
    let st = sup.program_status("app");
    assert_eq!(
        (&st["program"], &st["instance"]),
        (&Value::from("app"), &Value::Null),
        "{st}"
    );
    assert_eq!(st["groups"], serde_json::json!(["stack"]), "{st}");
    assert_eq!(sup.program_status("other")["groups"], serde_json::json!([]));
    assert_eq!(sup.program_status("other")["group"], Value::Null);

    ctl_ok(&sup, &["signal", "USR1", "stack"]);
    for f in ["sig-app", "sig-0", "sig-1", "sig-2"] {
        wait_for(T, &format!("{f} from the trapped USR1"), || {
            fs::read_to_string(sup.path(f)).map_err(|e| e.to_string())
        });
    }

    ctl_ok(&sup, &["stop", "stack"]);
    for n in ["app", "worker@0", "worker@1", "worker@2"] {
        wait_state_within(T, &sup, n, "STOPPED");
    }
    assert_eq!(
        running(&sup, "other"),
        other,
        "a program outside the group is left alone"
    );
    ctl_ok(&sup, &["start", "stack"]);
    for n in ["app", "worker@0", "worker@1", "worker@2"] {
        running(&sup, n);
    }

    // A log is one program's.
    let out = sup.ctl(&["logs", "worker"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("worker names 3 programs (worker@0, worker@1, worker@2)"),
        "{}",
        text(&out.stderr)
    );

    // Unknown names are refused whole; `add` cannot take an instance's or a group's name.
    let out = sup.ctl(&["stop", "worker@3"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no program named \"worker@3\""),
        "{}",
        text(&out.stderr)
    );
    for name in ["stack", "worker"] {
        let out = sup.ctl(&["add", name, "--", "sleep", "1"]);
        assert!(!out.status.success(), "add {name} was accepted");
        assert!(text(&out.stderr).contains("already exists"), "{}", text(&out.stderr));
    }
    let out = sup.ctl(&["add", "x@1", "--", "sleep", "1"]);
    assert!(!out.status.success(), "add x@1 was accepted");
}

#[test]
fn reload_that_changes_instances_starts_or_stops_only_the_difference() {
    let program = |n: u32| {
        format!(
            "[programs.worker]\ncommand = \"sleep 1000\"\ninstances = {n}\nmin_uptime = \"100ms\"\n\n\
             [programs.dependent]\ncommand = \"sleep 1000\"\nmin_uptime = \"100ms\"\ndepends_on = [\"worker\"]\n"
        )
    };
    let sup = Supervisor::start(&program(2));
    let w0 = running(&sup, "worker@0");
    let w1 = running(&sup, "worker@1");
    let dependent = running(&sup, "dependent");

    let rewrite = |n: u32| {
        let old = fs::read_to_string(&sup.config).unwrap();
        let head = &old[..old.find("[programs.").unwrap()];
        fs::write(&sup.config, format!("{head}{}", program(n))).unwrap();
    };
    rewrite(3);
    let out = ctl_ok(&sup, &["reload"]);
    assert!(out.contains("added: worker@2"), "{out}");
    assert!(!out.contains("changed"), "{out}");
    running(&sup, "worker@2");
    assert_eq!(running(&sup, "worker@0"), w0);
    assert_eq!(running(&sup, "worker@1"), w1);
    assert_eq!(
        running(&sup, "dependent"),
        dependent,
        "a dependent of all instances is unchanged"
    );

    rewrite(1);
    let out = ctl_ok(&sup, &["reload"]);
    assert!(out.contains("removed: worker@1, worker@2"), "{out}");
    wait_for(T, "worker@1 and worker@2 to be gone", || {
        let names = status_names(&sup, &[]);
        if names == ["dependent", "worker@0"] {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
    assert_eq!(running(&sup, "worker@0"), w0);
    assert_eq!(running(&sup, "dependent"), dependent);
    assert!(!alive(w1), "worker@1's process is gone");
}

/// `holden check` on `body`: its exit status and stderr.
fn check(body: &str) -> (bool, String) {
    let dir = tempdir();
    let path = dir.path().join("sv.toml");
    fs::write(&path, body).unwrap();
    let out = holden_in(Some(dir.path()), &["check", "-c", "sv.toml"], &[]);
    (out.status.success(), text(&out.stderr))
}

#[test]
fn check_refuses_what_instances_and_groups_cannot_do_with_file_and_line() {
    let cases = [
        (
            "[programs.w]\ncommand = \"x\"\ninstances = 2\nstdout = \"w.log\"\n",
            "sv.toml:4:10: programs.w.stdout: found \"w.log\", one file for 2 instances, expected a path with {index} in it",
        ),
        (
            "[programs.w]\ncommand = \"x\"\ninstances = 0\n",
            "sv.toml:3:13: programs.w.instances: found 0, expected a number of instances from 1 to 1024",
        ),
        (
            "[programs.w]\ncommand = \"x\"\n[groups]\nw = [\"w\"]\n",
            "sv.toml:4:1: groups.w: found the group name \"w\", also the name of a program",
        ),
        (
            "[programs.w]\ncommand = \"x\"\n[groups]\ng = [\"w\", \"nope\"]\n",
            "sv.toml:4:11: groups.g[1]: found \"nope\", expected the name of a program or instance in this file (w)",
        ),
        (
            "[programs.\"w@1\"]\ncommand = \"x\"\n",
            "sv.toml:1:11: programs.\"w@1\": found the program name \"w@1\"",
        ),
    ];
    for (body, want) in cases {
        let (ok, err) = check(body);
        assert!(!ok, "accepted:\n{body}");
        assert!(err.starts_with(want), "{want:?} not at the start of {err:?}");
    }
    let (ok, err) = check("[programs.w]\ncommand = \"x {index}\"\ninstances = 2\nstdout = \"w-{index}.log\"\n");
    assert!(ok, "{err}");
}

#[test]
fn an_imported_numprocs_config_passes_check_and_runs_its_copies() {
    let dir = tempdir();
    let ini = "[program:worker]\n\
               command=sh -c 'echo %(process_num)d > %(here)s/ran-%(process_num)d; exec sleep 1000'\n\
               process_name=%(program_name)s_%(process_num)02d\n\
               numprocs=3\n\
               numprocs_start=1\n\
               startsecs=0\n\
               stdout_logfile=%(here)s/worker-%(process_num)d.log\n\
               [program:web]\n\
               command=sleep 1000\n\
               [group:stack]\n\
               programs=web,worker\n";
    fs::write(dir.path().join("supervisord.conf"), ini).unwrap();
    let out = holden_in(
        Some(dir.path()),
        &["import", "supervisord.conf", "-o", "imported.toml"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let imported = fs::read_to_string(dir.path().join("imported.toml")).unwrap();
    assert!(imported.contains("instances = 3\ninstance_start = 1\n"), "{imported}");
    let out = holden_in(Some(dir.path()), &["check", "-c", "imported.toml"], &[]);
    assert!(out.status.success(), "{}\n{imported}", text(&out.stderr));
    let checked = text(&out.stdout);
    assert!(checked.contains("instances = 3"), "{checked}");

    // Run it: the imported programs and groups below the harness's [supervisor] table.
    let body = &imported[imported.find("[programs.").expect("programs")..];
    let sup = Supervisor::start(body);
    for i in 1..=3 {
        running(&sup, &format!("worker@{i}"));
        wait_for(T, &format!("worker@{i} to run"), || {
            fs::read_to_string(dir.path().join(format!("ran-{i}")))
                .ok()
                .filter(|s| s.trim() == i.to_string())
                .ok_or_else(|| "not yet".to_string())
        });
    }
    running(&sup, "web");
    assert_eq!(
        status_names(&sup, &["stack"]),
        ["web", "worker@1", "worker@2", "worker@3"]
    );
}

#[test]
fn depending_on_a_base_name_waits_for_every_instance_and_on_an_instance_for_that_one() {
    let sup = Supervisor::start(
        r#"
[programs.worker]
command = ["sh", "-c", "test {index} = 0 && exec sleep 1000; exit 1"]
instances = 2
# Long enough that worker@1 has surely exited (FATAL) before worker@0 counts as RUNNING.
min_uptime = "2s"
max_restarts = 0

[programs.all]
command = "sleep 1000"
min_uptime = "100ms"
depends_on = ["worker"]

[programs.first]
command = "sleep 1000"
min_uptime = "100ms"
depends_on = ["worker@0"]
"#,
    );
    running(&sup, "worker@0");
    wait_state_within(T, &sup, "worker@1", "FATAL");
    // `first` started once worker@0 was RUNNING, in the same turn as `all` would have.
    running(&sup, "first");
    let all = sup.program_status("all");
    assert_eq!(all["state"], "STOPPED", "worker@1 never ran, so `all` waits: {all}");
    let log = sup.log_text();
    assert!(log.contains("all: waiting for worker to be RUNNING"), "{log}");
}

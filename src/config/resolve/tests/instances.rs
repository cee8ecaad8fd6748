//! Instances, groups and their rendering.

use super::*;

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

//! umask, nice, oom_score_adj and rlimits.

use super::*;

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

use super::*;

/// Create `files` (with contents) below `root`, making directories as needed: the parts of
/// a kernel tree that a fake needs before holden looks at it.
fn fake(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

fn text(root: &Path, path: &str) -> String {
    fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const V2_MOUNTINFO: &str = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
const HYBRID_MOUNTINFO: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
const HYBRID_SELF: &str = "8:pids:/\n6:freezer:/\n4:memory:/m\n2:cpuacct:/\n1:cpu:/\n0::/\n";
const V1_MOUNTINFO: &str = "\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
27 24 0:24 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
28 24 0:25 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
";
const V1_SELF: &str = "4:pids:/\n3:memory:/\n2:cpu,cpuacct:/\n1:freezer:/\n";

fn required(root: &Path, path: &str, mi: &str, me: &str) -> Cgroups {
    Cgroups::setup_at(CgroupMode::Required, path, root, mi, me)
        .unwrap()
        .expect("Required gives cgroups or an error")
}

/// A fake v2 tree: the root offers every controller, and the cgroups that setup and
/// program will create already have the files the kernel would put there.
fn v2_tree(root: &Path, dirs: &[&str]) {
    fake(
        root,
        &[
            (
                "sys/fs/cgroup/cgroup.controllers",
                "cpuset cpu io memory hugetlb pids\n",
            ),
            ("sys/fs/cgroup/cgroup.subtree_control", "cpuset\n"),
        ],
    );
    for d in dirs {
        let files: Vec<(String, &str)> = [
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
            ("cgroup.type", "domain\n"),
            ("memory.max", "max\n"),
            ("cpu.max", "max 100000\n"),
            ("pids.max", "max\n"),
        ]
        .iter()
        .map(|(f, c)| (format!("sys/fs/cgroup/{d}/{f}"), *c))
        .collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(f, c)| (f.as_str(), *c)).collect();
        fake(root, &refs);
    }
}

#[test]
fn fd_and_memory_shortages_are_worth_retrying_and_others_are_not() {
    let io = |e: Errno| CgroupError::Io {
        op: "open",
        path: "/sys/fs/cgroup/x/cgroup.procs".into(),
        source: e.into(),
    };
    assert!(io(Errno::MFILE).short_of_resources());
    assert!(io(Errno::NFILE).short_of_resources());
    assert!(io(Errno::NOMEM).short_of_resources());
    assert!(!io(Errno::ACCESS).short_of_resources());
    assert!(!io(Errno::NOENT).short_of_resources());
}

#[test]
fn v2_absolute_path_enables_controllers_from_the_root_down() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    v2_tree(root, &["supervisor", "supervisor/web"]);
    let cg = required(root, "/supervisor", V2_MOUNTINFO, "0::/system.slice/holden.service\n");
    assert_eq!(cg.layout(), Layout::V2);
    assert_eq!(cg.controllers(), ["cpu", "memory", "pids"]);
    // Only what was missing is written: "cpuset" was already enabled at the root.
    assert_eq!(text(root, "sys/fs/cgroup/cgroup.subtree_control"), "+cpu +memory +pids");
    assert_eq!(
        text(root, "sys/fs/cgroup/supervisor/cgroup.subtree_control"),
        "+cpu +memory +pids"
    );
    let (web, killed) = cg.program("web").unwrap();
    assert_eq!(killed, 0);
    assert_eq!(web.path(), root.join("sys/fs/cgroup/supervisor/web"));
    web.set_limits(Some(31_457_280), Some(0.5), Some(20)).unwrap();
    assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/memory.max"), "31457280");
    assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/cpu.max"), "50000 100000");
    assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/pids.max"), "20");
    assert_eq!(
        web.limits(),
        Limits {
            memory: Some(31_457_280),
            cpu: Some(0.5),
            pids: Some(20)
        }
    );
    web.set_limits(None, None, None).unwrap();
    assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/memory.max"), "max");
    assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/cpu.max"), "max 100000");
    assert_eq!(text(root, "sys/fs/cgroup/supervisor/web/pids.max"), "max");
    assert_eq!(web.limits(), Limits::default());
    // holden was not in an ancestor of the parent: it stays where it was.
    assert!(!root.join("sys/fs/cgroup/system.slice/holden.service/holden").exists());
}

#[test]
fn v2_cgroup_namespace_root_moves_holden_into_a_leaf_first() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    v2_tree(root, &["supervisor", "holden"]);
    // A namespace root is not the real root: it has cgroup.type.
    fake(root, &[("sys/fs/cgroup/cgroup.type", "domain\n")]);
    required(root, "/supervisor", V2_MOUNTINFO, "0::/\n");
    assert_eq!(text(root, "sys/fs/cgroup/holden/cgroup.procs"), "0");
    assert_eq!(text(root, "sys/fs/cgroup/cgroup.subtree_control"), "+cpu +memory +pids");
}

#[test]
fn v2_real_root_keeps_holden_where_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    v2_tree(root, &["supervisor"]);
    required(root, "/supervisor", V2_MOUNTINFO, "0::/\n");
    assert!(!root.join("sys/fs/cgroup/holden").exists());
}

#[test]
fn v2_relative_path_lives_below_holden_which_moves_into_a_leaf() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let own = "system.slice/holden.service";
    v2_tree(root, &[own, &format!("{own}/programs"), &format!("{own}/holden")]);
    fake(
        root,
        &[(
            "sys/fs/cgroup/system.slice/holden.service/cgroup.controllers",
            "memory pids\n",
        )],
    );
    let cg = required(root, "programs", V2_MOUNTINFO, &format!("0::/{own}\n"));
    // Only what the delegating parent offers; the root is not touched.
    assert_eq!(cg.controllers(), ["memory", "pids"]);
    assert_eq!(text(root, "sys/fs/cgroup/cgroup.subtree_control"), "cpuset\n");
    assert_eq!(text(root, &format!("sys/fs/cgroup/{own}/holden/cgroup.procs")), "0");
    assert_eq!(
        text(root, &format!("sys/fs/cgroup/{own}/cgroup.subtree_control")),
        "+memory +pids"
    );
    assert_eq!(
        cg.parent_path(),
        root.join("sys/fs/cgroup/system.slice/holden.service/programs")
    );
}

#[test]
fn v2_relative_path_inside_holdens_own_leaf_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    v2_tree(root, &["a", "a/holden"]);
    fake(root, &[("sys/fs/cgroup/a/cgroup.controllers", "memory\n")]);
    let err = Cgroups::setup_at(CgroupMode::Auto, "holden/x", root, V2_MOUNTINFO, "0::/a\n").unwrap_err();
    assert!(matches!(err, CgroupError::InvalidPath { .. }), "{err}");
}

#[test]
fn v2_limit_without_its_controller_names_the_controller() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    v2_tree(root, &["supervisor"]);
    let cg = required(root, "/supervisor", V2_MOUNTINFO, "0::/\n");
    let (web, _) = cg.program("web").unwrap();
    // No memory.max in the fake "web": the controller is not enabled there.
    let err = web.set_limits(Some(1 << 20), None, None).unwrap_err();
    assert!(err.to_string().starts_with("cannot set a memory limit in "), "{err}");
    // Lifting a limit that cannot exist is not an error.
    web.set_limits(None, None, None).unwrap();
}

#[test]
fn hybrid_creates_the_parent_in_every_v1_controller_and_the_unified_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("sys/fs/cgroup/memory/m")).unwrap();
    for d in ["cpu", "cpuacct", "pids", "freezer", "unified"] {
        fs::create_dir_all(root.join("sys/fs/cgroup").join(d)).unwrap();
    }
    let cg = required(root, "/sup/x", HYBRID_MOUNTINFO, HYBRID_SELF);
    assert_eq!(cg.layout(), Layout::Hybrid);
    for d in ["memory", "cpu", "cpuacct", "pids", "unified"] {
        assert!(root.join("sys/fs/cgroup").join(d).join("sup/x").is_dir(), "{d}");
    }
    // The unified tree has cgroup.kill and cgroup.freeze: the v1 freezer is not used.
    assert!(!root.join("sys/fs/cgroup/freezer/sup").exists());
    let (web, _) = cg.program("web").unwrap();
    assert_eq!(web.path(), root.join("sys/fs/cgroup/memory/sup/x/web"));
    let names: Vec<PathBuf> = web.dirs.all().map(Path::to_path_buf).collect();
    assert_eq!(names.len(), 5);
    web.remove().unwrap();
    cg.cleanup();
    for d in ["memory", "cpu", "cpuacct", "pids", "unified"] {
        assert!(!root.join("sys/fs/cgroup").join(d).join("sup").exists(), "{d}");
    }
    assert!(root.join("sys/fs/cgroup/memory/m").is_dir());
}

#[test]
fn a_failed_setup_removes_what_it_created_on_the_way() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("sys/fs/cgroup/memory/m")).unwrap();
    // The pids hierarchy is "mounted" but its directory is missing: mkdir fails there.
    for d in ["cpu", "cpuacct", "unified"] {
        fs::create_dir_all(root.join("sys/fs/cgroup").join(d)).unwrap();
    }
    let err = Cgroups::setup_at(CgroupMode::Required, "/a/b", root, HYBRID_MOUNTINFO, HYBRID_SELF).unwrap_err();
    assert!(err.to_string().starts_with("cannot create "), "{err}");
    assert!(err.to_string().contains("sys/fs/cgroup/pids/a"), "{err}");
    for d in ["memory", "cpu", "cpuacct", "unified"] {
        assert!(!root.join("sys/fs/cgroup").join(d).join("a").exists(), "{d}");
    }
    let auto = Cgroups::setup_at(CgroupMode::Auto, "/a/b", root, HYBRID_MOUNTINFO, HYBRID_SELF);
    assert!(auto.unwrap().is_none());
}

#[test]
fn hybrid_relative_path_follows_holdens_cgroup_in_each_hierarchy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("sys/fs/cgroup/memory/m")).unwrap();
    for d in ["cpu", "cpuacct", "pids", "unified"] {
        fs::create_dir_all(root.join("sys/fs/cgroup").join(d)).unwrap();
    }
    let cg = required(root, "progs", HYBRID_MOUNTINFO, HYBRID_SELF);
    assert_eq!(cg.parent_path(), root.join("sys/fs/cgroup/memory/m/progs"));
    assert!(root.join("sys/fs/cgroup/cpu/progs").is_dir());
    assert!(root.join("sys/fs/cgroup/unified/progs").is_dir());
}

#[test]
fn v1_limits_go_to_memory_cpu_and_pids_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in ["cpu,cpuacct", "memory", "pids", "freezer"] {
        fs::create_dir_all(root.join("sys/fs/cgroup").join(d)).unwrap();
    }
    let cg = required(root, "/supervisor", V1_MOUNTINFO, V1_SELF);
    assert_eq!(cg.layout(), Layout::V1);
    fake(
        root,
        &[
            ("sys/fs/cgroup/memory/supervisor/web/memory.limit_in_bytes", ""),
            ("sys/fs/cgroup/cpu,cpuacct/supervisor/web/cpu.cfs_period_us", ""),
            ("sys/fs/cgroup/cpu,cpuacct/supervisor/web/cpu.cfs_quota_us", ""),
            ("sys/fs/cgroup/pids/supervisor/web/pids.max", ""),
            ("sys/fs/cgroup/freezer/supervisor/web/cgroup.procs", ""),
        ],
    );
    let (web, _) = cg.program("web").unwrap();
    web.set_limits(Some(30_000_000), Some(1.5), Some(64)).unwrap();
    let d = "sys/fs/cgroup";
    assert_eq!(
        text(root, &format!("{d}/memory/supervisor/web/memory.limit_in_bytes")),
        "30000000"
    );
    assert_eq!(
        text(root, &format!("{d}/cpu,cpuacct/supervisor/web/cpu.cfs_period_us")),
        "100000"
    );
    assert_eq!(
        text(root, &format!("{d}/cpu,cpuacct/supervisor/web/cpu.cfs_quota_us")),
        "150000"
    );
    assert_eq!(text(root, &format!("{d}/pids/supervisor/web/pids.max")), "64");
    assert_eq!(web.limits().cpu, Some(1.5));
    web.set_limits(None, None, None).unwrap();
    assert_eq!(
        text(root, &format!("{d}/memory/supervisor/web/memory.limit_in_bytes")),
        "-1"
    );
    assert_eq!(
        text(root, &format!("{d}/cpu,cpuacct/supervisor/web/cpu.cfs_quota_us")),
        "-1"
    );
    assert_eq!(text(root, &format!("{d}/pids/supervisor/web/pids.max")), "max");
    assert_eq!(web.limits().memory, None);
    // One cgroup.procs per hierarchy: cpu and cpuacct share one.
    assert_eq!(web.dirs.all().count(), 4);
}

#[test]
fn modes_decide_what_unusable_cgroups_mean() {
    let tmp = tempfile::tempdir().unwrap();
    let none = "22 1 0:21 / /proc rw - proc proc rw\n";
    let at = |mode| Cgroups::setup_at(mode, "/supervisor", tmp.path(), none, "0::/\n");
    assert!(at(CgroupMode::Off).unwrap().is_none());
    assert!(at(CgroupMode::Auto).unwrap().is_none());
    let err = at(CgroupMode::Required).unwrap_err();
    assert!(matches!(err, CgroupError::Unavailable { .. }), "{err}");
}

#[test]
fn cgroup_paths_are_checked() {
    assert_eq!(
        parse_cgroup_path("/supervisor").unwrap(),
        (true, vec!["supervisor".to_string()])
    );
    assert_eq!(
        parse_cgroup_path("a//b/").unwrap(),
        (false, vec!["a".to_string(), "b".to_string()])
    );
    for bad in ["", "/", "a/../b", "./a", "..", "a\nb"] {
        assert!(
            matches!(parse_cgroup_path(bad), Err(CgroupError::InvalidPath { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn program_names_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    v2_tree(root, &["supervisor"]);
    let cg = required(root, "/supervisor", V2_MOUNTINFO, "0::/\n");
    for bad in ["", "..", "a/b"] {
        assert!(
            matches!(cg.program(bad), Err(CgroupError::InvalidName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn errors_are_one_sentence_with_what_to_do() {
    let e = io_err("create", Path::new("/sys/fs/cgroup/memory/supervisor/web"))(io::Error::from_raw_os_error(13));
    assert_eq!(
        e.to_string(),
        "cannot create /sys/fs/cgroup/memory/supervisor/web: permission denied; run as root or set cgroups = \"off\""
    );
    let e = io_err("create", Path::new("/sys/fs/cgroup/memory/supervisor"))(io::Error::from_raw_os_error(30));
    assert_eq!(
        e.to_string(),
        "cannot create /sys/fs/cgroup/memory/supervisor: read-only file system; the cgroup file system is mounted read-only (a container needs a writable cgroup mount, e.g. --privileged); or remove the limits, or set cgroups = \"off\""
    );
    let e = CgroupError::Write {
        path: PathBuf::from("/sys/fs/cgroup/memory/s/web/memory.limit_in_bytes"),
        value: "1000000".into(),
        source: io::Error::from_raw_os_error(16),
    };
    assert_eq!(
        e.to_string(),
        "cannot write \"1000000\" to /sys/fs/cgroup/memory/s/web/memory.limit_in_bytes: device or resource busy; the program already uses more memory than that; raise memory_limit"
    );
}

#[test]
fn quota_is_rounded_and_never_below_one_millisecond() {
    assert_eq!(quota_us(0.5), 50_000);
    assert_eq!(quota_us(0.333333), 33_333);
    assert_eq!(quota_us(0.001), 1_000);
    assert_eq!(quota_us(0.0001), 1_000);
}

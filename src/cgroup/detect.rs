//! Finding the host's cgroup layout from `/proc/self/mountinfo` and `/proc/self/cgroup`.
//!
//! Pure text in, paths out: nothing here touches the file system, so the three layouts (unified
//! v2, hybrid, pure v1), co-mounted controllers, bind mounts of a subtree (a container without a
//! cgroup namespace) and the root of a cgroup namespace are all unit-tested on literal texts.
//!
//! The mount's `root` field (the fourth of mountinfo) and the paths of `/proc/self/cgroup` are
//! both relative to the reader's cgroup namespace, so holden's own cgroup directory is the mount
//! point plus its own path with the mount root stripped. When holden's cgroup lies outside what
//! is mounted, it has no directory there (`own: None`), and only absolute `cgroup_path`s work.

use std::path::{Path, PathBuf};

/// The v1 controllers holden puts programs into. The freezer is only used on pure v1 hosts,
/// where there is no `cgroup.kill` or `cgroup.freeze` to stop a forking program with.
pub const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids"];
pub const V1_FREEZER: &str = "freezer";
/// The v2 controllers holden enables for its programs, in the order written.
pub const V2_CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

/// How the host mounts its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One cgroup2 hierarchy carries every controller.
    V2,
    /// v1 controllers, plus a cgroup2 hierarchy without controllers (`/sys/fs/cgroup/unified`).
    Hybrid,
    /// v1 controllers only.
    V1,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::V2 => "v2",
            Layout::Hybrid => "hybrid",
            Layout::V1 => "v1",
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of mountinfo that mounts a cgroup file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The cgroup mounted there, as a path in the hierarchy (`/` for the whole tree).
    pub root: String,
    pub mountpoint: PathBuf,
    /// v1: the controllers of the hierarchy (`["cpu", "cpuacct"]`); v2: `None`.
    pub controllers: Option<Vec<String>>,
}

/// Every cgroup mount of a mountinfo text, in order.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let after: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || after.len() < 3 {
            continue;
        }
        let controllers = match after[0] {
            "cgroup2" => None,
            "cgroup" => Some(
                after[2]
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || *o == V1_FREEZER)
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            ),
            _ => continue,
        };
        mounts.push(Mount {
            root: unescape(fields[3]),
            mountpoint: PathBuf::from(unescape(fields[4])),
            controllers,
        });
    }
    mounts
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/self/cgroup`: where holden itself is in each hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfCgroup {
    /// The `0::/path` line.
    pub v2: Option<String>,
    /// `N:ctrl1,ctrl2:/path` lines: (controllers, path).
    pub v1: Vec<(Vec<String>, String)>,
}

impl SelfCgroup {
    pub fn parse(text: &str) -> SelfCgroup {
        let mut me = SelfCgroup::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if id == "0" && ctrls.is_empty() {
                me.v2 = Some(path.to_string());
            } else {
                let ctrls = ctrls.split(',').map(str::to_string).collect();
                me.v1.push((ctrls, path.to_string()));
            }
        }
        me
    }

    fn v1_path(&self, controller: &str) -> Option<&str> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == controller))
            .map(|(_, p)| p.as_str())
    }
}

/// One hierarchy holden uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1: the controllers holden uses from this hierarchy (co-mounted ones share it);
    /// v2: empty.
    pub controllers: Vec<String>,
    /// Where it is mounted (with the test prefix applied).
    pub mountpoint: PathBuf,
    /// holden's own cgroup in it, if that lies inside what is mounted.
    pub own: Option<PathBuf>,
}

/// The layout and the hierarchies holden will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub layout: Layout,
    /// The cgroup2 hierarchy: the controllers' home on v2, `cgroup.kill`/`cgroup.events` on hybrid.
    pub unified: Option<Hierarchy>,
    /// v1 hierarchies, one per mount (co-mounted controllers share one).
    pub v1: Vec<Hierarchy>,
}

/// Why holden cannot use cgroups.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("no cgroup file system is mounted (see /proc/self/mountinfo)")]
    NothingMounted,
    #[error("holden's own cgroup is in none of the mounted cgroup hierarchies")]
    NotInAnyHierarchy,
    /// A relative `cgroup_path` is below holden's own cgroup, which this hierarchy does not show.
    #[error(
        "holden's own cgroup is outside the hierarchy mounted at {}, so a relative cgroup_path has no place there; use an absolute cgroup_path",
        .mountpoint.display()
    )]
    OutsideHierarchy { mountpoint: PathBuf },
}

/// Decide the layout. `prefix` is put in front of every mount point (a temp dir in tests, `/`
/// otherwise). Err is the reason cgroups cannot be used.
pub fn detect(mountinfo: &str, self_cgroup: &str, prefix: &Path) -> Result<Detected, Unusable> {
    let mounts = parse_mountinfo(mountinfo);
    let me = SelfCgroup::parse(self_cgroup);
    let under = |p: &Path| prefix.join(p.strip_prefix("/").unwrap_or(p));

    let unified = match (mounts.iter().filter(|m| m.controllers.is_none()), &me.v2) {
        (v2_mounts, Some(own_path)) => {
            let candidates: Vec<&Mount> = v2_mounts.collect();
            pick(&candidates, own_path).map(|m| Hierarchy {
                controllers: Vec::new(),
                mountpoint: under(&m.mountpoint),
                own: own_dir(m, own_path).map(|d| under(&d)),
            })
        }
        (_, None) => None,
    };

    let mut wanted: Vec<&str> = V1_CONTROLLERS.to_vec();
    if unified.is_none() {
        wanted.push(V1_FREEZER);
    }
    let mut v1: Vec<Hierarchy> = Vec::new();
    for ctrl in wanted {
        let Some(own_path) = me.v1_path(ctrl) else {
            continue;
        };
        let candidates: Vec<&Mount> = mounts
            .iter()
            .filter(|m| m.controllers.as_ref().is_some_and(|c| c.iter().any(|c| c == ctrl)))
            .collect();
        let Some(m) = pick(&candidates, own_path) else {
            continue;
        };
        let mountpoint = under(&m.mountpoint);
        match v1.iter_mut().find(|h| h.mountpoint == mountpoint) {
            Some(h) => h.controllers.push(ctrl.to_string()),
            None => v1.push(Hierarchy {
                controllers: vec![ctrl.to_string()],
                mountpoint,
                own: own_dir(m, own_path).map(|d| under(&d)),
            }),
        }
    }

    // A v1 hierarchy with one of the resource controllers decides for v1: systemd's hybrid
    // mode mounts them all there and leaves the cgroup2 tree without controllers.
    let v1_resources = v1.iter().any(|h| h.controllers.iter().any(|c| c != V1_FREEZER));
    let layout = match (v1_resources, &unified) {
        (true, Some(_)) => Layout::Hybrid,
        (true, None) => Layout::V1,
        (false, Some(_)) => Layout::V2,
        (false, None) => {
            return Err(if mounts.is_empty() {
                Unusable::NothingMounted
            } else {
                Unusable::NotInAnyHierarchy
            });
        }
    };
    if layout == Layout::V2 {
        v1.clear();
    }
    Ok(Detected { layout, unified, v1 })
}

/// Of several mounts of one hierarchy, the first that shows holden's own cgroup, else the first.
fn pick<'a>(candidates: &[&'a Mount], own_path: &str) -> Option<&'a Mount> {
    candidates
        .iter()
        .find(|m| own_dir(m, own_path).is_some())
        .or(candidates.first())
        .copied()
}

/// holden's own cgroup directory under mount `m` (without the prefix), if it is inside it.
fn own_dir(m: &Mount, own_path: &str) -> Option<PathBuf> {
    let root = m.root.trim_end_matches('/');
    let rest = if root.is_empty() {
        own_path
    } else if own_path == root {
        ""
    } else {
        let rest = own_path.strip_prefix(root)?;
        if !rest.starts_with('/') {
            return None;
        }
        rest
    };
    Some(m.mountpoint.join(rest.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's layout: v1 controllers each on their own mount, cgroup2 at unified.
    pub const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    pub const HYBRID_SELF: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/c825
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_host_uses_each_v1_controller_and_the_unified_tree() {
        let d = detect(HYBRID_MOUNTINFO, HYBRID_SELF, Path::new("/")).unwrap();
        assert_eq!(d.layout, Layout::Hybrid);
        let u = d.unified.unwrap();
        assert_eq!(u.mountpoint, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(u.own.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        let names: Vec<_> = d.v1.iter().map(|h| h.controllers.join(",")).collect();
        // The freezer is left out: the unified tree has cgroup.kill and cgroup.freeze.
        assert_eq!(names, ["memory", "cpu", "cpuacct", "pids"]);
        let mem = &d.v1[0];
        assert_eq!(
            mem.own.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory/process_api/c825"))
        );
    }

    #[test]
    fn co_mounted_cpu_and_cpuacct_share_one_hierarchy_on_pure_v1() {
        let mi = "\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
27 24 0:24 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
28 24 0:25 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
";
        let me = "4:pids:/a\n3:memory:/a\n2:cpu,cpuacct:/a\n1:freezer:/a\n";
        let d = detect(mi, me, Path::new("/")).unwrap();
        assert_eq!(d.layout, Layout::V1);
        assert!(d.unified.is_none());
        let names: Vec<_> = d.v1.iter().map(|h| h.controllers.join(",")).collect();
        assert_eq!(names, ["memory", "cpu,cpuacct", "pids", "freezer"]);
        assert_eq!(d.v1[1].own.as_deref(), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/a")));
    }

    #[test]
    fn unified_host_has_one_hierarchy_and_the_prefix_is_applied() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        let me = "0::/system.slice/holden.service\n";
        let d = detect(mi, me, Path::new("/tmp/x")).unwrap();
        assert_eq!(d.layout, Layout::V2);
        assert!(d.v1.is_empty());
        let u = d.unified.unwrap();
        assert_eq!(u.mountpoint, Path::new("/tmp/x/sys/fs/cgroup"));
        assert_eq!(
            u.own.as_deref(),
            Some(Path::new("/tmp/x/sys/fs/cgroup/system.slice/holden.service"))
        );
    }

    #[test]
    fn cgroup_namespace_root_puts_holden_at_the_mount_point() {
        let mi = "600 500 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let d = detect(mi, "0::/\n", Path::new("/")).unwrap();
        assert_eq!(d.unified.unwrap().own.as_deref(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn a_bind_mounted_subtree_strips_its_root_and_an_outside_cgroup_has_no_dir() {
        let mi = "600 500 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let inside = detect(mi, "0::/docker/abc/x\n", Path::new("/")).unwrap();
        assert_eq!(
            inside.unified.unwrap().own.as_deref(),
            Some(Path::new("/sys/fs/cgroup/x"))
        );
        let at_root = detect(mi, "0::/docker/abc\n", Path::new("/")).unwrap();
        assert_eq!(
            at_root.unified.unwrap().own.as_deref(),
            Some(Path::new("/sys/fs/cgroup"))
        );
        // "/docker/abcdef" only shares a prefix of characters, not of path components.
        let outside = detect(mi, "0::/docker/abcdef\n", Path::new("/")).unwrap();
        assert_eq!(outside.unified.unwrap().own, None);
    }

    #[test]
    fn no_cgroup_mount_is_a_reason_not_a_layout() {
        let mi = "22 1 0:21 / /proc rw - proc proc rw\n";
        let err = detect(mi, "0::/\n", Path::new("/")).unwrap_err();
        assert_eq!(err, Unusable::NothingMounted);
        assert_eq!(
            err.to_string(),
            "no cgroup file system is mounted (see /proc/self/mountinfo)"
        );
    }

    #[test]
    fn mount_points_with_escaped_spaces_are_unescaped() {
        let mi = "30 23 0:26 / /mnt/my\\040cgroups rw - cgroup2 none rw\n";
        assert_eq!(parse_mountinfo(mi)[0].mountpoint, Path::new("/mnt/my cgroups"));
    }

    #[test]
    fn self_cgroup_lines_split_into_v2_and_v1() {
        let me = SelfCgroup::parse(HYBRID_SELF);
        assert_eq!(me.v2.as_deref(), Some("/"));
        assert_eq!(me.v1_path("memory"), Some("/process_api/c825"));
        assert_eq!(me.v1_path("cpuacct"), Some("/"));
        assert_eq!(me.v1_path("blkio"), None);
    }
}

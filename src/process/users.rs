//! `user` and `group` to ids, read from /etc/passwd and /etc/group before the fork.
//!
//! holden is a static binary, so NSS modules are out of reach; the files are what a container
//! and most hosts have. A number is taken as an id as is.

use std::path::Path;

use rustix::process::{Gid, Uid};

use crate::sys::exec::Credentials;

/// The resolved identity of a program's user: its ids, supplementary groups and home.
#[derive(Debug, Clone)]
pub struct Identity {
    pub credentials: Credentials,
    pub name: String,
    pub home: Option<String>,
}

/// Resolve `user` (name or uid) and `group` (name or gid; default: the user's primary group).
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Identity>, String> {
    resolve_in(Path::new("/etc"), user, group)
}

pub fn resolve_in(etc: &Path, user: Option<&str>, group: Option<&str>) -> Result<Option<Identity>, String> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap_or_default();
    let groups_file = std::fs::read_to_string(etc.join("group")).unwrap_or_default();

    let (uid, name, primary_gid, home) = match user {
        Some(u) => match find_user(&passwd, u) {
            Some(found) => found,
            None => match u.parse::<u32>() {
                Ok(n) => (n, u.to_string(), None, None),
                Err(_) => return Err(format!("no user named {u:?} in /etc/passwd")),
            },
        },
        None => {
            let me = rustix::process::getuid().as_raw();
            (me, me.to_string(), None, None)
        }
    };
    let gid = match group {
        Some(g) => match find_group(&groups_file, g) {
            Some(id) => id,
            None => g
                .parse::<u32>()
                .map_err(|_| format!("no group named {g:?} in /etc/group"))?,
        },
        None => match primary_gid {
            Some(g) => g,
            None => match user {
                // A bare uid without a passwd entry: its group is the same number, as
                // container runtimes do.
                Some(_) => uid,
                None => rustix::process::getgid().as_raw(),
            },
        },
    };
    let mut supplementary = vec![Gid::from_raw(gid)];
    for line in groups_file.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() == 4
            && f[3].split(',').any(|m| m == name)
            && let Ok(id) = f[2].parse::<u32>()
            && !supplementary.iter().any(|g| g.as_raw() == id)
        {
            supplementary.push(Gid::from_raw(id));
        }
    }
    Ok(Some(Identity {
        credentials: Credentials {
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
            groups: supplementary,
        },
        name,
        home,
    }))
}

/// (uid, name, primary gid, home) of a passwd entry named `user` or with uid `user`.
fn find_user(passwd: &str, user: &str) -> Option<(u32, String, Option<u32>, Option<String>)> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        if f[0] == user || f[2] == user {
            Some((
                f[2].parse().ok()?,
                f[0].to_string(),
                f[3].parse().ok(),
                Some(f[5].to_string()),
            ))
        } else {
            None
        }
    })
}

fn find_group(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etc() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("group"),
            "root:x:0:\nwww-data:x:33:\nadm:x:4:www-data,bob\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn user_by_name_gets_its_primary_and_supplementary_groups() {
        let d = etc();
        let id = resolve_in(d.path(), Some("www-data"), None).unwrap().unwrap();
        assert_eq!(id.credentials.uid.as_raw(), 33);
        assert_eq!(id.credentials.gid.as_raw(), 33);
        let groups: Vec<u32> = id.credentials.groups.iter().map(|g| g.as_raw()).collect();
        assert_eq!(groups, vec![33, 4]);
        assert_eq!(id.home.as_deref(), Some("/var/www"));
    }

    #[test]
    fn numeric_ids_need_no_entry_and_unknown_names_are_refused() {
        let d = etc();
        let id = resolve_in(d.path(), Some("65534"), None).unwrap().unwrap();
        assert_eq!(id.credentials.uid.as_raw(), 65534);
        assert_eq!(id.credentials.gid.as_raw(), 65534);
        let id = resolve_in(d.path(), Some("www-data"), Some("adm")).unwrap().unwrap();
        assert_eq!(id.credentials.gid.as_raw(), 4);
        assert!(
            resolve_in(d.path(), Some("nobody-here"), None)
                .unwrap_err()
                .contains("no user named")
        );
        assert!(
            resolve_in(d.path(), None, Some("nogroup-here"))
                .unwrap_err()
                .contains("no group named")
        );
        assert!(resolve_in(d.path(), None, None).unwrap().is_none());
    }
}

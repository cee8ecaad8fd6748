//! `[include] files = conf.d/*.conf`: Python's `glob.glob` (not recursive) and `fnmatch`, which
//! supervisord uses, then sorts the matches. `*`, `?`, `[abc]`, `[a-z]`, `[!abc]`; a wildcard does
//! not match a leading `.` unless the pattern's part starts with one.

use std::path::{Component, Path, PathBuf};

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The existing paths matching `pattern` (absolute or relative to the working directory), sorted.
pub fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    let parts: Vec<Component<'_>> = pattern.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let text = part.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for dir in &found {
            if !has_magic(&text) {
                let p = dir.join(part.as_os_str());
                if !last || p.symlink_metadata().is_ok() {
                    next.push(p);
                }
                continue;
            }
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && !text.starts_with('.') {
                    continue;
                }
                if fnmatch(&name, &text) {
                    next.push(dir.join(entry.file_name()));
                }
            }
        }
        found = next;
    }
    // Intermediate literal parts were taken on trust; keep what exists.
    found.retain(|p| p.symlink_metadata().is_ok());
    found.sort();
    found
}

/// Does `name` match the shell pattern `pattern` (Python's `fnmatch.fnmatchcase`)?
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let n: Vec<char> = name.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    matches(&n, &p)
}

fn matches(n: &[char], p: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| matches(&n[i..], &p[1..])),
        Some('?') => !n.is_empty() && matches(&n[1..], &p[1..]),
        Some('[') => match class(p) {
            Some((set_len, ok)) => !n.is_empty() && ok(n[0]) && matches(&n[1..], &p[set_len..]),
            // An unclosed `[` is a literal.
            None => n.first() == Some(&'[') && matches(&n[1..], &p[1..]),
        },
        Some(c) => n.first() == Some(c) && matches(&n[1..], &p[1..]),
    }
}

/// `[...]` at the start of `p`: its length and a test for one character.
fn class(p: &[char]) -> Option<(usize, impl Fn(char) -> bool)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    // A `]` right after `[` or `[!` is a member.
    let start = i;
    if p.get(i) == Some(&']') {
        i += 1;
    }
    while i < p.len() && p[i] != ']' {
        i += 1;
    }
    if i >= p.len() {
        return None;
    }
    let body: Vec<char> = p[start..i].to_vec();
    let test = move |c: char| {
        let mut j = 0;
        let mut hit = false;
        while j < body.len() {
            if j + 2 < body.len() && body[j + 1] == '-' {
                hit |= body[j] <= c && c <= body[j + 2];
                j += 3;
            } else {
                hit |= body[j] == c;
                j += 1;
            }
        }
        hit != negate
    };
    Some((i + 1, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("app.conf", "*.conf"));
        assert!(!fnmatch("app.conf.bak", "*.conf"));
        assert!(fnmatch("a1.ini", "a?.ini"));
        assert!(fnmatch("b.ini", "[abc].ini"));
        assert!(!fnmatch("d.ini", "[abc].ini"));
        assert!(fnmatch("d.ini", "[!abc].ini"));
        assert!(fnmatch("q.ini", "[a-z].ini"));
        assert!(fnmatch("]", "[]]"));
        assert!(fnmatch("[x", "[x"));
        assert!(fnmatch("", "*"));
    }

    #[test]
    fn glob_sorts_and_skips_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/x.conf"), "").unwrap();
        let got = glob(&dir.path().join("*.conf"));
        assert_eq!(got, vec![dir.path().join("a.conf"), dir.path().join("b.conf")]);
        assert_eq!(glob(&dir.path().join("*/*.conf")), vec![dir.path().join("sub/x.conf")]);
        assert_eq!(glob(&dir.path().join("c.txt")), vec![dir.path().join("c.txt")]);
        assert!(glob(&dir.path().join("none.txt")).is_empty());
        assert_eq!(glob(&dir.path().join(".*.conf")), vec![dir.path().join(".hidden.conf")]);
    }
}

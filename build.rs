//! Sets `HOLDEN_VERSION` for `holden --version` and holden's first log line: the package
//! version, and in a git checkout the commit it was built from (`0.1.0 (1a2b3c4)`, with
//! `-dirty` when tracked files differ from it). Outside a checkout (a source tarball, a
//! container build without `.git`) or without git, the package version alone.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string())
}

/// Rebuild when `path` changes; only files that exist, since cargo reruns the script at every
/// build for a missing one (and so rebuilds holden each time).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&dir, &["rev-parse", "--short", "HEAD"]);
    let text = match commit {
        Some(commit) if !commit.is_empty() => {
            // HEAD moves on a commit or checkout; the branch's ref (loose or packed) on a
            // commit; the index on staging; the sources on any edit (for the dirty flag).
            let git_path = |p: &str| git(&dir, &["rev-parse", "--git-path", p]).map(|g| dir.join(g));
            for p in ["HEAD", "index", "packed-refs"] {
                if let Some(path) = git_path(p) {
                    watch(&path);
                }
            }
            if let Some(path) = git(&dir, &["symbolic-ref", "-q", "HEAD"]).and_then(|r| git_path(&r)) {
                watch(&path);
            }
            for p in ["src", "Cargo.toml", "Cargo.lock"] {
                watch(&dir.join(p));
            }
            let dirty = git(&dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!("{version} ({commit}{})", if dirty { "-dirty" } else { "" })
        }
        _ => version.to_string(),
    };
    println!("cargo:rustc-env=HOLDEN_VERSION={text}");
}

//! Names the commit the binary was built from, for `fleetdeck --version`:
//! sets `FLEETDECK_COMMIT` to `$FLEETDECK_COMMIT` as the builder set it (a
//! source tarball, a distribution's build: it knows best); else to the
//! short hash of HEAD (12 hex digits, with `-dirty` when tracked files
//! differ from it), read with `git` when this package's directory is the
//! top of a git checkout — never from a repository around it (a
//! distribution's packaging tree); else to `unknown`.
//! It never fails the build: no git, no checkout, a broken repository all
//! end in one of the fallbacks.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FLEETDECK_COMMIT");
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let from_env = std::env::var("FLEETDECK_COMMIT").ok();
    let commit = commit(from_env.as_deref(), &dir);
    println!("cargo:rustc-env=FLEETDECK_COMMIT={commit}");
}

/// The commit to name: `from_env` when it is one (trimmed, not empty,
/// visible ASCII only), else HEAD of the git checkout whose top is `dir`,
/// else `unknown`.
pub fn commit(from_env: Option<&str>, dir: &Path) -> String {
    if let Some(c) = from_env
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_graphic()))
    {
        return c.to_owned();
    }
    from_git(dir).unwrap_or_else(|| "unknown".to_owned())
}

/// HEAD's short hash, `-dirty` when tracked files were changed; `None` when
/// `dir` is not the top of a git checkout (git would otherwise find any
/// repository above it) or git is missing.
fn from_git(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = match (std::fs::canonicalize(top), std::fs::canonicalize(dir)) {
        (Ok(top), Ok(dir)) => top == dir,
        _ => false,
    };
    if !same {
        return None;
    }
    let hash = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    if hash.len() < 7 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    // Build again when HEAD moves (a commit, a checkout), when the index
    // changes (staging, and `git status` refreshing it), and when the
    // sources of the binary change (whether it is dirty may flip). Tests
    // and benches are left out: touching them rebuilds no binary.
    let mut watched = vec![
        "HEAD".to_owned(),
        "index".to_owned(),
        "packed-refs".to_owned(),
    ];
    if let Some(head_ref) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(head_ref);
    }
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    for source in [
        "src",
        "store",
        "sync",
        "node",
        "tui",
        "themes",
        "scenarios",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
    ] {
        println!("cargo:rerun-if-changed={source}");
    }
    // Without optional locks: status does not rewrite the index (which
    // would make the next build run this script again).
    let dirty = git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// The trimmed output of a git command run in `dir`; `None` if git is
/// missing or the command failed.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

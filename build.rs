//! Names the commit the binary was built from, for `fleetdeck --version`:
//! sets `FLEETDECK_COMMIT` to the short hash of HEAD (12 hex digits, with
//! `-dirty` when tracked files differ from it), read with `git` when the
//! source tree is a git checkout; else to `$FLEETDECK_COMMIT` as the builder
//! set it (a source tarball, a distribution's build); else to `unknown`.
//! It never fails the build: no git, no checkout, a broken repository all
//! end in one of the fallbacks.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FLEETDECK_COMMIT");
    let commit = from_git().unwrap_or_else(|| {
        std::env::var("FLEETDECK_COMMIT")
            .ok()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_graphic()))
            .unwrap_or_else(|| "unknown".to_owned())
    });
    println!("cargo:rustc-env=FLEETDECK_COMMIT={commit}");
}

/// HEAD's short hash, `-dirty` when tracked files were changed; `None` when
/// this is not a git checkout or git is missing.
fn from_git() -> Option<String> {
    let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
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
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(head_ref);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
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
    let dirty = git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// The trimmed output of a git command run in the package's directory;
/// `None` if git is missing or the command failed.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

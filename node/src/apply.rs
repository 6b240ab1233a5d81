//! Applying a rendered config on a node, atomically, with a health check and
//! rollback.
//!
//! Layout under the node's root:
//!
//! ```text
//! releases/<revision>/config.json, files/…   complete releases (renamed in whole)
//! releases/<revision>.tmp/                  a release being written
//! current -> releases/<revision>            the live release (a symlink, swapped by rename)
//! apply.journal                             {from, to} while a swap is in flight
//! ```
//!
//! The invariant: `current` always points at a complete release. A release
//! directory only gets its final name once every file in it is written and
//! synced, and `current` only moves by renaming a new symlink over it. A crash
//! at any step leaves either the old or the new release live; on the next
//! start, [`Applier::recover`] returns to the release that was live before the
//! interrupted apply (the last one known good), and the apply runs again.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::command::CmdSpec;
use crate::render::Rendered;

pub const CURRENT: &str = "current";
pub const RELEASES: &str = "releases";
const JOURNAL: &str = "apply.journal";
const TMP_SUFFIX: &str = ".tmp";

/// The steps of an apply, in order; failpoints name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Render,
    Fsync,
    Swap,
    Reload,
    Check,
    Report,
}

pub const STEPS: [Step; 6] = [
    Step::Render,
    Step::Fsync,
    Step::Swap,
    Step::Reload,
    Step::Check,
    Step::Report,
];

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The release is live and passed its check.
    Applied { revision: String },
    /// The release failed reload or its check; the previous one is live again.
    RolledBack { revision: String, error: String },
    /// The release could not be put in place (disk, no previous release to
    /// return to after a failed check, …).
    Failed { revision: String, error: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A failpoint fired: the process "died" here. Tests only.
    #[error("crashed at {0:?} (failpoint)")]
    Crashed(Step),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ApplyError + '_ {
    move |source| ApplyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct Journal {
    from: Option<String>,
    to: String,
}

/// The commands an apply runs, from the node's config (`apply.reload`,
/// `apply.check`).
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub reload: Option<CmdSpec>,
    pub check: Option<CmdSpec>,
}

pub struct Applier {
    root: PathBuf,
    /// Releases kept besides the live one.
    pub keep: usize,
    /// Die at this step (tests of crash safety).
    pub failpoint: Option<Step>,
}

fn fsync_dir(p: &Path) -> Result<(), ApplyError> {
    File::open(p).and_then(|f| f.sync_all()).map_err(io_at(p))
}

impl Applier {
    pub fn new(root: &Path) -> Result<Applier, ApplyError> {
        fs::create_dir_all(root.join(RELEASES)).map_err(io_at(root))?;
        Ok(Applier {
            root: root.to_path_buf(),
            keep: 5,
            failpoint: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn release_dir(&self, rev: &str) -> PathBuf {
        self.root.join(RELEASES).join(rev)
    }

    fn fail(&self, step: Step) -> Result<(), ApplyError> {
        if self.failpoint == Some(step) {
            return Err(ApplyError::Crashed(step));
        }
        Ok(())
    }

    /// The live revision, if any.
    pub fn current(&self) -> Option<String> {
        let target = fs::read_link(self.root.join(CURRENT)).ok()?;
        target
            .file_name()
            .and_then(OsStr::to_str)
            .map(str::to_string)
    }

    /// The live release directory.
    pub fn current_dir(&self) -> Option<PathBuf> {
        self.current().map(|r| self.release_dir(&r))
    }

    /// Finishes or undoes what a crash interrupted; returns what it did.
    pub fn recover(&self) -> Result<Option<String>, ApplyError> {
        let releases = self.root.join(RELEASES);
        for entry in fs::read_dir(&releases).map_err(io_at(&releases))?.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(TMP_SUFFIX) {
                fs::remove_dir_all(entry.path()).map_err(io_at(&entry.path()))?;
            }
        }
        let _ = fs::remove_file(self.root.join("current.new"));
        let jpath = self.root.join(JOURNAL);
        let Ok(bytes) = fs::read(&jpath) else {
            return Ok(None);
        };
        let journal: Option<Journal> = serde_json::from_slice(&bytes).ok();
        let mut did = None;
        if let Some(j) = journal {
            match &j.from {
                Some(from)
                    if self.release_dir(from).is_dir()
                        && self.current().as_deref() != Some(from) =>
                {
                    self.point_current(from)?;
                    did = Some(format!(
                        "an apply of {} was interrupted; back on {from}, the release live before it",
                        j.to
                    ));
                }
                _ => {
                    did = Some(format!(
                        "an apply of {} was interrupted; nothing to undo",
                        j.to
                    ));
                }
            }
        }
        fs::remove_file(&jpath).map_err(io_at(&jpath))?;
        fsync_dir(&self.root)?;
        Ok(did)
    }

    /// Atomically points `current` at a complete release.
    fn point_current(&self, rev: &str) -> Result<(), ApplyError> {
        let tmp = self.root.join("current.new");
        let _ = fs::remove_file(&tmp);
        let target = Path::new(RELEASES).join(rev);
        std::os::unix::fs::symlink(&target, &tmp).map_err(io_at(&tmp))?;
        fs::rename(&tmp, self.root.join(CURRENT)).map_err(io_at(&tmp))?;
        fsync_dir(&self.root)
    }

    /// Writes a release completely under a temporary name, then renames it.
    fn write_release(&self, rendered: &Rendered, rev: &str) -> Result<(), ApplyError> {
        let dir = self.release_dir(rev);
        if dir.is_dir() {
            return Ok(());
        }
        let tmp = self.root.join(RELEASES).join(format!("{rev}{TMP_SUFFIX}"));
        let _ = fs::remove_dir_all(&tmp);
        self.fail(Step::Render)?;
        let mut dirs = vec![tmp.clone()];
        for (rel, bytes) in &rendered.files {
            let path = tmp.join(rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_at(parent))?;
                dirs.push(parent.to_path_buf());
            }
            let mut f = File::create(&path).map_err(io_at(&path))?;
            f.write_all(bytes).map_err(io_at(&path))?;
            f.sync_all().map_err(io_at(&path))?;
        }
        self.fail(Step::Fsync)?;
        dirs.sort();
        dirs.dedup();
        for d in dirs.iter().rev() {
            fsync_dir(d)?;
        }
        fs::rename(&tmp, &dir).map_err(io_at(&tmp))?;
        fsync_dir(&self.root.join(RELEASES))
    }

    fn write_journal(&self, j: &Journal) -> Result<(), ApplyError> {
        let path = self.root.join(JOURNAL);
        let mut f = File::create(&path).map_err(io_at(&path))?;
        f.write_all(&serde_json::to_vec(j).unwrap_or_default())
            .map_err(io_at(&path))?;
        f.sync_all().map_err(io_at(&path))?;
        fsync_dir(&self.root)
    }

    /// Puts `rendered` live as `rev`, runs reload and check, and keeps it or
    /// goes back. `Err` only for a failpoint (the process "died"); every real
    /// failure is an [`Outcome`].
    pub async fn apply(
        &self,
        rendered: &Rendered,
        rev: &str,
        hooks: &Hooks,
    ) -> Result<(Outcome, Duration), ApplyError> {
        let start = Instant::now();
        let from = self.current();
        let failed = |error: String| Outcome::Failed {
            revision: rev.to_string(),
            error,
        };
        match self.write_release(rendered, rev) {
            Ok(()) => {}
            Err(ApplyError::Crashed(s)) => return Err(ApplyError::Crashed(s)),
            Err(e) => return Ok((failed(e.to_string()), start.elapsed())),
        }
        let journal = Journal {
            from: from.clone(),
            to: rev.to_string(),
        };
        if let Err(e) = self.write_journal(&journal) {
            return Ok((failed(e.to_string()), start.elapsed()));
        }
        self.fail(Step::Swap)?;
        if let Err(e) = self.point_current(rev) {
            let _ = fs::remove_file(self.root.join(JOURNAL));
            return Ok((failed(e.to_string()), start.elapsed()));
        }
        let env = vec![(
            "FLEETDECK_RELEASE",
            self.release_dir(rev).display().to_string(),
        )];
        self.fail(Step::Reload)?;
        let mut problem = None;
        if let Some(reload) = &hooks.reload {
            let r = reload.run(&env).await;
            if !r.ok {
                problem = Some(format!("reload failed: {}", r.summary()));
            }
        }
        self.fail(Step::Check)?;
        if problem.is_none()
            && let Some(check) = &hooks.check
        {
            let r = check.run(&env).await;
            if !r.ok {
                problem = Some(format!("health check failed: {}", r.summary()));
            }
        }
        let outcome = match (problem, &from) {
            (None, _) => Outcome::Applied {
                revision: rev.to_string(),
            },
            (Some(error), Some(prev)) if prev != rev => {
                match self.point_current(prev) {
                    Ok(()) => {
                        // The old release is live again: let it reload.
                        if let Some(reload) = &hooks.reload {
                            let env = vec![(
                                "FLEETDECK_RELEASE",
                                self.release_dir(prev).display().to_string(),
                            )];
                            let _ = reload.run(&env).await;
                        }
                        Outcome::RolledBack {
                            revision: rev.to_string(),
                            error,
                        }
                    }
                    Err(e) => failed(format!("{error}; and rolling back failed: {e}")),
                }
            }
            (Some(error), _) => failed(format!(
                "{error}; there is no earlier release to go back to"
            )),
        };
        self.fail(Step::Report)?;
        let jpath = self.root.join(JOURNAL);
        fs::remove_file(&jpath).map_err(io_at(&jpath))?;
        self.prune();
        Ok((outcome, start.elapsed()))
    }

    /// Removes all but the live release and the `keep` newest others.
    fn prune(&self) {
        let live = self.current();
        let Ok(entries) = fs::read_dir(self.root.join(RELEASES)) else {
            return;
        };
        let mut others: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| e.file_name().to_str() != live.as_deref())
            .filter(|e| !e.file_name().to_string_lossy().ends_with(TMP_SUFFIX))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        others.sort();
        let excess = others.len().saturating_sub(self.keep);
        for (_, p) in others.into_iter().take(excess) {
            let _ = fs::remove_dir_all(p);
        }
    }

    /// Files of the live release that differ from what `rendered` says they
    /// should be (hand edits): relative paths.
    pub fn drifted(&self, rendered: &Rendered) -> Vec<String> {
        let Some(dir) = self.current_dir() else {
            return Vec::new();
        };
        rendered
            .files
            .iter()
            .filter(|(rel, bytes)| {
                fs::read(dir.join(rel)).ok().as_deref() != Some(bytes.as_slice())
            })
            .map(|(rel, _)| rel.display().to_string())
            .collect()
    }

    /// Rewrites the live release's files in place from `rendered` (healing
    /// drift). Each file is replaced by rename, so readers never see half.
    pub fn heal(&self, rendered: &Rendered) -> Result<Vec<String>, ApplyError> {
        let drifted = self.drifted(rendered);
        let Some(dir) = self.current_dir() else {
            return Ok(drifted);
        };
        for rel in &drifted {
            let path = dir.join(rel);
            let tmp = path.with_extension("fleetdeck-heal");
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_at(parent))?;
            }
            let bytes = &rendered.files[Path::new(rel)];
            let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
            f.write_all(bytes).map_err(io_at(&tmp))?;
            f.sync_all().map_err(io_at(&tmp))?;
            fs::rename(&tmp, &path).map_err(io_at(&tmp))?;
        }
        Ok(drifted)
    }
}

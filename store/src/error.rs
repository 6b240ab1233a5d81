//! Typed errors of the replica. Every message is one sentence naming what was
//! wrong, so the binary can print it as is.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown site '{0}'")]
    UnknownSite(String),
    #[error("unknown node '{0}'")]
    UnknownNode(String),
    #[error("site '{0}' already exists")]
    SiteExists(String),
    #[error("node '{0}' already exists")]
    NodeExists(String),
    #[error("no change matches '{0}' (see `fleetdeck history`)")]
    UnknownChange(String),
    #[error("change id prefix '{0}' is ambiguous: it matches {1} changes; give more characters")]
    AmbiguousChange(String, usize),
    #[error(
        "no replica in {0} (run `fleetdeck init --name NAME` to start a fleet, or pass --data DIR)"
    )]
    NoReplica(PathBuf),
    #[error("a replica already exists in {0}; refusing to overwrite it")]
    ReplicaExists(PathBuf),
    #[error(
        "the replica database {path} is unreadable or corrupt ({detail}); it was left untouched: restore it from a backup, or move it aside and re-join the fleet"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the replica database {path} has schema version {found}, newer than this fleetdeck understands ({supported}); upgrade fleetdeck"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("the replica is open read-only")]
    ReadOnly,
    /// The author's role does not allow the write; the sentence names the rule.
    #[error("refused: {0}")]
    Denied(String),
    #[error("identity key {path}: {detail}")]
    Identity { path: PathBuf, detail: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("fleet document error: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("fleet document has an unexpected shape: {0}")]
    Shape(String),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<autosurgeon::HydrateError> for StoreError {
    fn from(e: autosurgeon::HydrateError) -> Self {
        StoreError::Shape(e.to_string())
    }
}

impl From<autosurgeon::ReconcileError> for StoreError {
    fn from(e: autosurgeon::ReconcileError) -> Self {
        StoreError::Shape(e.to_string())
    }
}

impl StoreError {
    /// True when the error is the user's (a bad value, an unknown id), as
    /// opposed to the machine's (disk, corruption). The CLI maps it to exit 1
    /// either way, but callers such as the console may show them differently.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::Invalid(_)
                | StoreError::Denied(_)
                | StoreError::UnknownSite(_)
                | StoreError::UnknownNode(_)
                | StoreError::SiteExists(_)
                | StoreError::NodeExists(_)
                | StoreError::UnknownChange(_)
                | StoreError::AmbiguousChange(..)
                | StoreError::NoReplica(_)
                | StoreError::ReplicaExists(_)
                | StoreError::ReadOnly
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

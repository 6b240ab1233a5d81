//! What can go wrong syncing, as the crate's callers see it.

use std::net::SocketAddr;

use crate::session::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Store(#[from] fleetdeck_store::StoreError),
    #[error("could not bind {addr}: {detail}")]
    Bind { addr: SocketAddr, detail: String },
    #[error("could not reach {peer}: {detail}")]
    Connect { peer: String, detail: String },
    #[error("session with {peer}: {source}")]
    Session {
        peer: String,
        source: Box<SessionError>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl SyncError {
    /// The session made way for another with the same peer
    /// ([`SessionError::made_way`]): nothing failed.
    pub(crate) fn made_way(&self) -> bool {
        matches!(self, SyncError::Session { source, .. } if source.made_way())
    }
}

//! What this replica knows of another replica's sync: plain data, filled in
//! by the sync engine (which owns the sessions), shown by `peers` and the
//! console (which owns none). The store itself does no networking.

use serde::{Deserialize, Serialize};

/// One other replica of the fleet, as this replica's sync engine sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub key: String,
    pub name: String,
    pub connected: bool,
    pub addr: Option<String>,
    pub last_sync_ms: Option<i64>,
    /// Document changes this replica has that the peer is not known to have.
    pub lacks: Option<usize>,
    pub last_error: Option<String>,
    /// How the live session reaches the peer: `direct` (an IP path) or
    /// `relay` (through the fleet's relay); none when not connected.
    #[serde(default)]
    pub path: Option<PathKind>,
    /// The session's round-trip time on that path, as QUIC estimates it.
    #[serde(default)]
    pub rtt_ms: Option<u64>,
}

/// How a session reaches its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    Direct,
    Relay,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Relay => "relay",
        }
    }
}

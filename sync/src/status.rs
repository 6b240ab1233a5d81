//! The status file: what a serving process writes every second for
//! `fleetdeck peers` (and the console) to read from another process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fleetdeck_store::{MemberKey, now_ms};
use serde::Serialize;

use crate::engine::Inner;
use crate::peers::PeerStatus;

/// What a serving process writes for `fleetdeck peers` to read.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StatusFile {
    pub written_ms: i64,
    pub key: String,
    pub addrs: Vec<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub peers: Vec<PeerStatus>,
}

/// The peers this replica's status file says were connected, with the
/// address each was reached at, if the file is there (a run that stopped
/// cleanly removes it) and was written by this replica; nothing from a
/// file that does not read.
pub(crate) fn left_connected(path: &Path, me: &MemberKey) -> Vec<(MemberKey, Option<SocketAddr>)> {
    let Some(status) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<StatusFile>(&b).ok())
        .filter(|s| s.key == me.as_str())
    else {
        return Vec::new();
    };
    status
        .peers
        .iter()
        .filter(|p| p.connected)
        .filter_map(|p| {
            let key = MemberKey::parse(&p.key).ok()?;
            let addr = p.addr.as_deref().and_then(|a| a.parse().ok());
            (key != *me).then_some((key, addr))
        })
        .collect()
}

/// Writes the status file at `path` every second (whole, through a rename,
/// so a reader never sees half of one).
pub(crate) async fn status_loop(inner: Arc<Inner>, path: PathBuf) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let status = StatusFile {
            written_ms: now_ms(),
            key: inner.key.to_string(),
            addrs: inner
                .endpoint
                .bound_sockets()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            bytes_in: inner.stats.bytes_in(),
            bytes_out: inner.stats.bytes_out(),
            peers: inner.peer_status(),
        };
        if let Ok(json) = serde_json::to_vec_pretty(&status) {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }
}

//! Bundles: everything a replica has (document changes and health
//! registers) in one file, carried by hand between sites that share no
//! network. Importing goes through the same verification as the network;
//! importing twice changes nothing.

use std::path::Path;

use automerge::Change;
use fleetdeck_store::health::HealthRegister;
use fleetdeck_store::{NodeId, Replica, now_ms};
use serde::{Deserialize, Serialize};

use crate::verify::{self, Admitted};

const MAGIC: &[u8; 16] = b"FLEETDECK-BUNDLE";
const VERSION: u16 = 1;

#[derive(Serialize, Deserialize)]
struct Body {
    fleet_id: String,
    created_ms: i64,
    changes: Vec<Vec<u8>>,
    health: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path} is not a fleetdeck bundle")]
    NotABundle { path: String },
    #[error("{path} is a bundle of version {found}; this fleetdeck reads version {VERSION}")]
    Version { path: String, found: u16 },
    #[error("{path} is damaged or truncated ({detail}); nothing was imported")]
    Damaged { path: String, detail: String },
    #[error(
        "{path} is a bundle of fleet {theirs}, not of this replica's fleet {ours}; nothing was imported"
    )]
    OtherFleet {
        path: String,
        theirs: String,
        ours: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] fleetdeck_store::StoreError),
}

#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub changes: usize,
    pub health: usize,
    pub bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub changes_new: usize,
    pub changes_refused: usize,
    pub health_new: usize,
}

pub fn export(replica: &mut Replica, path: &Path) -> Result<Exported, BundleError> {
    let p = path.display().to_string();
    let changes: Vec<Vec<u8>> = replica
        .changes_after(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let health: Vec<Vec<u8>> = replica
        .health()
        .values()
        .filter_map(|s| serde_json::to_vec(&s.reg).ok())
        .collect();
    let body = Body {
        fleet_id: replica.state().fleet_id.clone(),
        created_ms: now_ms(),
        changes,
        health,
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend(
        postcard::to_stdvec(&body).map_err(|e| BundleError::Damaged {
            path: p.clone(),
            detail: e.to_string(),
        })?,
    );
    // Written beside and renamed, so a crash never leaves half a bundle.
    let tmp = path.with_extension("partial");
    let io = |source| BundleError::Io {
        path: p.clone(),
        source,
    };
    std::fs::write(&tmp, &bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(Exported {
        changes: body.changes.len(),
        health: body.health.len(),
        bytes: bytes.len(),
    })
}

pub fn import(replica: &mut Replica, path: &Path) -> Result<Imported, BundleError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| BundleError::Io {
        path: p.clone(),
        source,
    })?;
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BundleError::NotABundle { path: p });
    }
    let version = u16::from_be_bytes([bytes[MAGIC.len()], bytes[MAGIC.len() + 1]]);
    if version != VERSION {
        return Err(BundleError::Version {
            path: p,
            found: version,
        });
    }
    let damaged = |detail: String| BundleError::Damaged {
        path: p.clone(),
        detail,
    };
    let (body, rest): (Body, _) =
        postcard::take_from_bytes(&bytes[MAGIC.len() + 2..]).map_err(|e| damaged(e.to_string()))?;
    if !rest.is_empty() {
        return Err(damaged(format!(
            "{} unexpected bytes after the end",
            rest.len()
        )));
    }
    let ours = replica.state().fleet_id.clone();
    if body.fleet_id != ours {
        return Err(BundleError::OtherFleet {
            path: p,
            theirs: body.fleet_id,
            ours,
        });
    }
    // Decode everything before applying anything.
    let changes = body
        .changes
        .into_iter()
        .enumerate()
        .map(|(i, b)| Change::from_bytes(b).map_err(|e| damaged(format!("change #{i}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let regs = body
        .health
        .iter()
        .enumerate()
        .map(|(i, b)| {
            serde_json::from_slice::<HealthRegister>(b)
                .map_err(|e| damaged(format!("health register #{i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let before = replica.heads();
    let have: std::collections::HashSet<_> = replica
        .changes_after(&[])
        .iter()
        .map(|c| c.hash())
        .collect();
    let fresh: Vec<Change> = changes
        .into_iter()
        .filter(|c| !have.contains(&c.hash()))
        .collect();
    let Admitted { accepted, refused } = verify::admit(replica, fresh)?;
    let _ = before;
    let mut health_new = 0;
    for reg in regs {
        let known = NodeId::parse(&reg.node).is_ok_and(|n| replica.state().nodes.contains_key(&n));
        if known && replica.import_health(&reg)? {
            health_new += 1;
        }
    }
    Ok(Imported {
        changes_new: accepted,
        changes_refused: refused.len(),
        health_new,
    })
}

//! Bundles: everything a replica has (document changes, health registers
//! and command results registers) in one file, carried by hand between sites that share no
//! network. Importing goes through the same verification as the network;
//! importing twice changes nothing.

use std::path::Path;

use automerge::Change;
use fleetdeck_store::health::{Admission, SignedRegister};
use fleetdeck_store::replica::SignedChange;
use fleetdeck_store::results::SignedResults;
use fleetdeck_store::{Replica, now_ms};
use serde::{Deserialize, Serialize};

use crate::verify::{self, Admitted, Gate, WireChange};

const MAGIC: &[u8; 16] = b"FLEETDECK-BUNDLE";
/// 2: every change with its author's signature.
/// 3: every health register as its node signed it.
/// 4: every command results register as its node signed it. Version 3
/// bundles are still read (they hold no results registers); a fleetdeck
/// from before version 4 refuses a version 4 bundle, saying which version
/// it reads.
const VERSION: u16 = 4;

#[derive(Serialize, Deserialize)]
struct Body {
    fleet_id: String,
    created_ms: i64,
    /// Each change's bytes and its author's signature.
    changes: Vec<WireChange>,
    /// Each register as its node signed it (those stored before registers
    /// were signed stay behind).
    health: Vec<SignedRegister>,
    /// Each node's command results register as its node signed it.
    results: Vec<SignedResults>,
}

/// A version 3 bundle's body: [`Body`] without results registers.
#[derive(Deserialize)]
struct BodyV3 {
    fleet_id: String,
    created_ms: i64,
    changes: Vec<WireChange>,
    health: Vec<SignedRegister>,
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
    pub results: usize,
    pub bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub changes_new: usize,
    pub changes_refused: usize,
    /// Changes whose dependencies neither this replica nor the bundle holds.
    pub changes_waiting: usize,
    /// Why each refused change was refused.
    pub refused: Vec<String>,
    pub health_new: usize,
    /// Registers refused (see `Replica::admit_health`), each with its node
    /// and why.
    pub health_refused: Vec<String>,
    pub results_new: usize,
    /// Command results registers refused (see `Replica::admit_results`),
    /// each with its node and why.
    pub results_refused: Vec<String>,
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

pub fn export(replica: &mut Replica, path: &Path) -> Result<Exported, BundleError> {
    let p = path.display().to_string();
    let changes: Vec<WireChange> = replica
        .changes_after(&[])
        .iter()
        .map(|c| {
            let sig = c.sig.map_or_else(Vec::new, |s| s.to_vec());
            (c.change.raw_bytes().to_vec(), sig)
        })
        .collect();
    let mut nodes: Vec<String> = replica.health().keys().cloned().collect();
    nodes.sort();
    let mut health = Vec::with_capacity(nodes.len());
    for node in nodes {
        if let Some(signed) = replica.signed_health(&node)? {
            health.push(signed);
        }
    }
    let mut nodes: Vec<String> = replica.results_registers().keys().cloned().collect();
    nodes.sort();
    let mut results = Vec::with_capacity(nodes.len());
    for node in nodes {
        if let Some(signed) = replica.signed_results(&node)? {
            results.push(signed);
        }
    }
    let body = Body {
        fleet_id: replica.state().fleet_id.clone(),
        created_ms: now_ms(),
        changes,
        health,
        results,
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
        results: body.results.len(),
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
    if version != VERSION && version != 3 {
        return Err(BundleError::Version {
            path: p,
            found: version,
        });
    }
    let damaged = |detail: String| BundleError::Damaged {
        path: p.clone(),
        detail,
    };
    let data = &bytes[MAGIC.len() + 2..];
    let (body, rest): (Body, _) = if version == 3 {
        let (b, rest): (BodyV3, _) =
            postcard::take_from_bytes(data).map_err(|e| damaged(e.to_string()))?;
        let body = Body {
            fleet_id: b.fleet_id,
            created_ms: b.created_ms,
            changes: b.changes,
            health: b.health,
            results: Vec::new(),
        };
        (body, rest)
    } else {
        postcard::take_from_bytes(data).map_err(|e| damaged(e.to_string()))?
    };
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
        .map(|(i, (b, sig))| {
            fleetdeck_store::rights::inflates_within_limit(&b)
                .map_err(|e| damaged(format!("change #{i}: {e}")))?;
            let change = Change::from_bytes(b).map_err(|e| damaged(format!("change #{i}: {e}")))?;
            let sig = <[u8; 64]>::try_from(sig.as_slice()).ok();
            Ok(SignedChange { change, sig })
        })
        .collect::<Result<Vec<_>, BundleError>>()?;
    let fresh: Vec<SignedChange> = changes
        .into_iter()
        .filter(|c| !replica.holds(&c.change.hash()))
        .collect();
    let mut gate = Gate::default();
    let Admitted { accepted, refused } = verify::admit(replica, &mut gate, fresh)?;
    let waiting = gate.waiting();
    // Each register is checked alone, like one from a peer: a refused one
    // (unsigned, not signed by its node's key, an implausible seq, a node
    // not in this fleet) is skipped and named.
    let mut health_new = 0;
    let mut health_refused = Vec::new();
    for signed in &body.health {
        match replica.import_health(signed)? {
            Admission::Stored => health_new += 1,
            Admission::Kept => {}
            Admission::Refused { node, why } => {
                tracing::warn!(bundle = %p, %node, "refused a health register: {why}");
                health_refused.push(format!("{node}: {why}"));
            }
        }
    }
    // The same for results registers.
    let mut results_new = 0;
    let mut results_refused = Vec::new();
    for a in replica.admit_results_batch(&body.results)? {
        match a {
            Admission::Stored => results_new += 1,
            Admission::Kept => {}
            Admission::Refused { node, why } => {
                tracing::warn!(bundle = %p, %node, "refused a command results register: {why}");
                results_refused.push(format!("{node}: {why}"));
            }
        }
    }
    Ok(Imported {
        changes_new: accepted,
        changes_refused: refused.len(),
        changes_waiting: waiting,
        refused: refused
            .into_iter()
            .map(|r| format!("{} by {}: {}", short(&r.change), short(&r.author), r.reason))
            .collect(),
        health_new,
        health_refused,
        results_new,
        results_refused,
    })
}

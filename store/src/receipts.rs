//! Delivery receipts: for a change, which nodes have it, which run a
//! release that includes it, which failed on it, and which have not got it
//! yet — derived from what each node last reported in its signed heartbeat
//! (`HealthRegister::holds`, `live_at`, `applied.from`), never written per
//! node per change into the document.
//!
//! A node has a change when the change is in the causal past of the heads
//! it reported holding; it applied it when the change is in the past of the
//! heads at which its live release was last its effective config; it failed
//! on it when its last apply failed or rolled back at heads that include it
//! (and it does not run it). Nodes that report heads this replica does not
//! hold yet are ahead of it: for changes not in the past of the heads it
//! knows, their receipt is `Unknown` until this replica catches up.

use std::collections::{HashMap, HashSet};

use automerge::ChangeHash;
use serde::Serialize;

use crate::alerts::AlertKind;
use crate::document::FleetState;
use crate::error::Result;
use crate::health::{ApplyResult, StoredRegister};
use crate::replica::Replica;

/// Where one change stands on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Its live release includes the change.
    Applied,
    /// Its last apply, which included the change, failed or rolled back.
    Failed,
    /// It holds the change; its release does not include it (yet: frozen,
    /// safe mode, or applying now).
    Delivered,
    /// It has not reported holding the change.
    NotYet,
    /// It reported heads this replica does not hold, so whether they
    /// include the change cannot be told here yet.
    Unknown,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Applied => "applied",
            Delivery::Failed => "failed",
            Delivery::Delivered => "delivered",
            Delivery::NotYet => "not yet",
            Delivery::Unknown => "unknown",
        }
    }

    /// Worst first: failed, unknown, not yet, delivered, applied.
    pub fn rank(self) -> u8 {
        match self {
            Delivery::Failed => 0,
            Delivery::Unknown => 1,
            Delivery::NotYet => 2,
            Delivery::Delivered => 3,
            Delivery::Applied => 4,
        }
    }

    /// The node holds the change.
    pub fn has_it(self) -> bool {
        matches!(
            self,
            Delivery::Applied | Delivery::Failed | Delivery::Delivered
        )
    }
}

/// One node's receipt for one change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Receipt {
    pub node: String,
    pub site: String,
    pub state: Delivery,
    /// Why its apply failed, with `Failed`.
    pub error: Option<String>,
    /// When this replica last heard the node (its clock).
    pub last_heard_ms: Option<i64>,
    /// A node-down alert is open for it, or its site is offline.
    pub offline: bool,
}

/// The counts `history` and `receipts` print:
/// `delivered 48/50 · applied 47 · failed 1 · offline 2`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub delivered: usize,
    pub applied: usize,
    pub failed: usize,
    /// Without the change and down.
    pub offline: usize,
    pub unknown: usize,
}

impl Summary {
    pub fn of(receipts: &[Receipt]) -> Summary {
        let mut s = Summary {
            nodes: receipts.len(),
            ..Summary::default()
        };
        for r in receipts {
            s.delivered += usize::from(r.state.has_it());
            s.applied += usize::from(r.state == Delivery::Applied);
            s.failed += usize::from(r.state == Delivery::Failed);
            s.unknown += usize::from(r.state == Delivery::Unknown);
            s.offline += usize::from(!r.state.has_it() && r.offline);
        }
        s
    }

    pub fn line(&self) -> String {
        let mut parts = vec![
            format!("delivered {}/{}", self.delivered, self.nodes),
            format!("applied {}", self.applied),
        ];
        if self.failed > 0 {
            parts.push(format!("failed {}", self.failed));
        }
        if self.offline > 0 {
            parts.push(format!("offline {}", self.offline));
        }
        if self.unknown > 0 {
            parts.push(format!("unknown {}", self.unknown));
        }
        parts.join(" · ")
    }
}

/// Heads as a register reports them: hex, checked when it was admitted.
fn parse_heads(hex: &[String]) -> Vec<ChangeHash> {
    hex.iter().filter_map(|h| h.parse().ok()).collect()
}

/// What the changes not in the past of some heads are, per distinct set of
/// heads: most nodes of a fleet in step report the same heads, so each set
/// is walked once however many nodes and changes are asked about.
struct Pasts<'r> {
    doc: &'r mut automerge::AutoCommit,
    /// Sorted heads → the changes outside their past and whether some of
    /// the heads are unknown here; `None` when none is known (nothing can
    /// be told, and nothing is walked).
    memo: HashMap<Vec<ChangeHash>, Option<(HashSet<ChangeHash>, bool)>>,
}

impl Pasts<'_> {
    /// Whether `change` is in the past of `heads`: Some(yes/no), or None
    /// when it is not in the past of the heads known here and some are not.
    fn includes(&mut self, heads: &[String], change: &ChangeHash) -> Option<bool> {
        if heads.is_empty() {
            return Some(false);
        }
        let mut key = parse_heads(heads);
        key.sort_unstable();
        key.dedup();
        let entry = match self.memo.get(&key) {
            Some(v) => v,
            None => {
                let doc = &mut *self.doc;
                let known: Vec<ChangeHash> = key
                    .iter()
                    .copied()
                    .filter(|h| doc.get_change_meta_by_hash(h).is_some())
                    .collect();
                let value = if known.is_empty() {
                    None
                } else {
                    let outside: HashSet<ChangeHash> = doc
                        .get_changes_meta(&known)
                        .iter()
                        .map(|m| m.hash)
                        .collect();
                    Some((outside, known.len() < key.len()))
                };
                self.memo.entry(key).or_insert(value)
            }
        };
        let (outside, unknown) = entry.as_ref()?;
        if !outside.contains(change) {
            Some(true)
        } else if *unknown {
            None
        } else {
            Some(false)
        }
    }
}

fn receipt(
    pasts: &mut Pasts<'_>,
    change: &ChangeHash,
    node: &str,
    site: &str,
    held: Option<&StoredRegister>,
    offline: bool,
) -> Receipt {
    let mut r = Receipt {
        node: node.to_string(),
        site: site.to_string(),
        state: Delivery::NotYet,
        error: None,
        last_heard_ms: held.map(|h| h.received_ms),
        offline,
    };
    let Some(h) = held else {
        return r;
    };
    let reg = &h.reg;
    r.state = match pasts.includes(&reg.holds, change) {
        None => Delivery::Unknown,
        Some(false) => Delivery::NotYet,
        Some(true) => {
            if pasts.includes(&reg.live_at, change) == Some(true) {
                Delivery::Applied
            } else {
                match &reg.applied {
                    Some(a)
                        if a.result != ApplyResult::Ok
                            && pasts.includes(&a.from, change) == Some(true) =>
                    {
                        r.error = a.error.clone();
                        Delivery::Failed
                    }
                    _ => Delivery::Delivered,
                }
            }
        }
    };
    r
}

/// Every node's receipt for each of `changes`, in the fleet's node order;
/// `now_ms` decides which nodes are offline.
pub fn receipts(
    replica: &mut Replica,
    changes: &[ChangeHash],
    now_ms: i64,
) -> Result<Vec<Vec<Receipt>>> {
    let st: std::sync::Arc<FleetState> = replica.state().clone();
    let health = replica.health().clone();
    let alerts = replica.alerts(now_ms);
    Ok(receipts_in(
        replica.doc_mut().automerge_mut(),
        &st,
        &health,
        &alerts,
        changes,
    ))
}

/// [`receipts`] over any document with its state, health registers and
/// open alerts (the console's test fixture holds no replica).
pub fn receipts_in(
    doc: &mut automerge::AutoCommit,
    st: &FleetState,
    health: &HashMap<String, StoredRegister>,
    alerts: &[crate::alerts::Alert],
    changes: &[ChangeHash],
) -> Vec<Vec<Receipt>> {
    let mut out = Vec::with_capacity(changes.len());
    visit(doc, st, health, alerts, changes, |nodes| out.push(nodes));
    out
}

/// A change's receipts boiled down: the counts, and the `keep` nodes that
/// run it least (failed, unknown, not yet, delivered; then by node id).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Digest {
    pub summary: Summary,
    pub pending: Vec<Receipt>,
}

/// The [`Digest`] of each of `changes`, without holding every node's
/// receipt for every change at once (a long history of a large fleet).
pub fn digests_in(
    doc: &mut automerge::AutoCommit,
    st: &FleetState,
    health: &HashMap<String, StoredRegister>,
    alerts: &[crate::alerts::Alert],
    changes: &[ChangeHash],
    keep: usize,
) -> Vec<Digest> {
    let mut out = Vec::with_capacity(changes.len());
    visit(doc, st, health, alerts, changes, |nodes| {
        let summary = Summary::of(&nodes);
        let mut pending: Vec<Receipt> = nodes
            .into_iter()
            .filter(|r| r.state != Delivery::Applied)
            .collect();
        pending.sort_by(|a, b| {
            a.state
                .rank()
                .cmp(&b.state.rank())
                .then_with(|| crate::ids::natural_cmp(&a.node, &b.node))
        });
        pending.truncate(keep);
        out.push(Digest { summary, pending });
    });
    out
}

/// [`digests_in`] on a replica at `now_ms`.
pub fn digests(
    replica: &mut Replica,
    changes: &[ChangeHash],
    now_ms: i64,
    keep: usize,
) -> Vec<Digest> {
    let st: std::sync::Arc<FleetState> = replica.state().clone();
    let health = replica.health().clone();
    let alerts = replica.alerts(now_ms);
    digests_in(
        replica.doc_mut().automerge_mut(),
        &st,
        &health,
        &alerts,
        changes,
        keep,
    )
}

/// One wave of a rollout as its receipts tell it: the change that gave the
/// wave its settings (the start for wave 1, the opening of each later wave)
/// and each of its nodes' receipt of that change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WaveReceipts {
    /// Hex; `None` for a wave not opened.
    pub change: Option<String>,
    pub summary: Summary,
    pub nodes: Vec<Receipt>,
}

/// The receipts of each wave of `rollout` (see [`WaveReceipts`]), in wave
/// order, on a replica at `now_ms`.
pub fn rollout_waves(
    replica: &mut Replica,
    rollout: &crate::rollout::Rollout,
    now_ms: i64,
) -> Vec<WaveReceipts> {
    let st: std::sync::Arc<FleetState> = replica.state().clone();
    let health = replica.health().clone();
    let alerts = replica.alerts(now_ms);
    let waves = rollout.spec.waves.len();
    let changes = replica.doc_mut().rollout_wave_changes(&rollout.id, waves);
    let assignment = rollout.assignment(&st);
    let opened: Vec<ChangeHash> = changes.iter().flatten().copied().collect();
    let mut per_change = receipts_in(
        replica.doc_mut().automerge_mut(),
        &st,
        &health,
        &alerts,
        &opened,
    )
    .into_iter();
    changes
        .iter()
        .enumerate()
        .map(|(wave, change)| {
            let nodes: Vec<Receipt> = match change {
                Some(_) => per_change
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| {
                        crate::NodeId::parse(&r.node)
                            .ok()
                            .and_then(|n| assignment.get(&n))
                            == Some(&wave)
                    })
                    .collect(),
                None => Vec::new(),
            };
            WaveReceipts {
                change: change.map(|c| c.to_string()),
                summary: Summary::of(&nodes),
                nodes,
            }
        })
        .collect()
}

/// Where each node of the opened waves stands on its wave's change, for
/// the rollout's gate (`Rollout::progress_with`): only nodes whose
/// heartbeat reports what they hold (a daemon from before receipts is left
/// to the revision it reports).
pub fn landed(
    waves: &[WaveReceipts],
    health: &HashMap<String, StoredRegister>,
) -> HashMap<String, Delivery> {
    waves
        .iter()
        .flat_map(|w| w.nodes.iter())
        .filter(|r| health.get(&r.node).is_some_and(|h| !h.reg.holds.is_empty()))
        .map(|r| (r.node.clone(), r.state))
        .collect()
}

/// Calls `f` with every node's receipt of each change in turn.
fn visit(
    doc: &mut automerge::AutoCommit,
    st: &FleetState,
    health: &HashMap<String, StoredRegister>,
    alerts: &[crate::alerts::Alert],
    changes: &[ChangeHash],
    mut f: impl FnMut(Vec<Receipt>),
) {
    // Down: a node-down alert, or every node of a site that is offline
    // (which stands for its nodes' own alerts).
    let offline_sites: HashSet<&str> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::SiteOffline)
        .map(|a| a.site.as_str())
        .collect();
    let down: HashSet<String> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::NodeDown)
        .filter_map(|a| a.node.clone())
        .chain(
            st.nodes
                .values()
                .filter(|n| offline_sites.contains(n.site.as_str()))
                .map(|n| n.id.to_string()),
        )
        .collect();
    let mut pasts = Pasts {
        doc,
        memo: HashMap::new(),
    };
    for c in changes {
        f(st.nodes
            .values()
            .map(|n| {
                receipt(
                    &mut pasts,
                    c,
                    n.id.as_str(),
                    n.site.as_str(),
                    health.get(n.id.as_str()),
                    down.contains(n.id.as_str()),
                )
            })
            .collect());
    }
}

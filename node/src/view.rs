//! The fleet as one replica sees it, in one value: every site and node with
//! its latest health, desired and applied revision, and the open alerts.
//! What a hub hands to the tools operators already run (Prometheus, MQTT,
//! Alertmanager, webhooks): each reads a `FleetView`, none reads the replica.
//!
//! `watch` keeps a fresh view on a channel beside a sync engine: at once, on
//! every change the engine reports (at most once a second), and every few
//! seconds regardless, since ages and "down" move with the clock alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fleetdeck_store::alerts::{Alert, AlertKind, FleetSummary, SiteState};
use fleetdeck_store::health::{ApplyReport, ApplyResult, DiskUsage};
use fleetdeck_store::{Replica, now_ms};
use fleetdeck_sync::Engine;
use serde::Serialize;
use tokio::sync::watch;

/// One site: where it is and its colour on the board.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SiteView {
    pub id: String,
    pub name: String,
    pub zone: Option<String>,
    pub state: SiteState,
}

/// One node: its place, whether it is up, what it last reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
    pub id: String,
    pub site: String,
    pub zone: Option<String>,
    pub role: Option<String>,
    /// Reported at least once, and no node-down alert is open for it nor a
    /// site-offline alert for its site.
    pub up: bool,
    /// When this replica last heard its register (unix ms, this clock).
    pub last_heard_ms: Option<i64>,
    pub cpu_pct: Option<f64>,
    pub mem_pct: Option<f64>,
    pub load1: Option<f64>,
    pub uptime_s: Option<u64>,
    pub temp_c: Option<f64>,
    pub disks: Vec<DiskUsage>,
    /// The revision of its effective config here (what it should run).
    pub desired_revision: Option<String>,
    /// Its last apply, as it reported it.
    pub applied: Option<ApplyReport>,
    /// Its last apply succeeded and built the desired revision.
    pub in_sync: bool,
    pub checks_failing: usize,
    pub drift: usize,
    pub safe_mode: Option<String>,
}

/// The whole fleet at `at_ms`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetView {
    pub fleet_id: String,
    pub fleet_name: String,
    pub at_ms: i64,
    pub sites: Vec<SiteView>,
    pub nodes: Vec<NodeView>,
    /// Every open alert, silenced ones included (`Alert::is_hidden`).
    pub alerts: Vec<Alert>,
    pub summary: FleetSummary,
}

impl FleetView {
    /// The fleet as `replica` holds it at `now_ms`.
    pub fn of(replica: &Replica, now_ms: i64) -> FleetView {
        let st = replica.state();
        let (states, summary, alerts) = replica.status(now_ms);
        let states: HashMap<String, SiteState> = states.into_iter().collect();
        let down: std::collections::HashSet<&str> = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::NodeDown)
            .filter_map(|a| a.node.as_deref())
            .collect();
        // A site-offline alert stands for its nodes' node-down alerts.
        let offline: std::collections::HashSet<&str> = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::SiteOffline)
            .map(|a| a.site.as_str())
            .collect();
        let sites = st
            .sites
            .values()
            .map(|s| SiteView {
                id: s.id.to_string(),
                name: s.record.name.clone(),
                zone: s.record.zone.clone(),
                state: states
                    .get(s.id.as_str())
                    .copied()
                    .unwrap_or(SiteState::Unknown),
            })
            .collect();
        let nodes = st
            .nodes
            .values()
            .map(|n| {
                let h = replica.health().get(n.id.as_str());
                let reg = h.map(|h| &h.reg);
                let desired = st
                    .effective_node(&n.id)
                    .ok()
                    .map(|e| crate::render::revision(&e.to_tree()));
                let applied = reg.and_then(|r| r.applied.clone());
                let in_sync = match (&applied, &desired) {
                    (Some(a), Some(d)) => a.result == ApplyResult::Ok && &a.revision == d,
                    _ => false,
                };
                NodeView {
                    id: n.id.to_string(),
                    site: n.site.to_string(),
                    zone: st.sites.get(&n.site).and_then(|s| s.record.zone.clone()),
                    role: n.record.role.clone(),
                    up: h.is_some()
                        && !down.contains(n.id.as_str())
                        && !offline.contains(n.site.as_str()),
                    last_heard_ms: h.map(|h| h.received_ms),
                    cpu_pct: reg.map(|r| r.metrics.cpu_pct),
                    mem_pct: reg.map(|r| r.metrics.mem_pct),
                    load1: reg.map(|r| r.metrics.load1),
                    uptime_s: reg.map(|r| r.metrics.uptime_s),
                    temp_c: reg.and_then(|r| r.metrics.temp_c),
                    disks: reg.map(|r| r.metrics.disks.clone()).unwrap_or_default(),
                    desired_revision: desired,
                    applied,
                    in_sync,
                    checks_failing: reg.map_or(0, |r| r.checks.iter().filter(|c| !c.ok).count()),
                    drift: reg.map_or(0, |r| r.drift.len()),
                    safe_mode: reg.and_then(|r| r.safe_mode.clone()),
                }
            })
            .collect();
        FleetView {
            fleet_id: st.fleet_id.clone(),
            fleet_name: st.name.clone(),
            at_ms: now_ms,
            sites,
            nodes,
            alerts,
            summary,
        }
    }
}

/// What happened to one alert between two views.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertChange {
    /// Open now, not open before (or a new occurrence: another `since_ms`).
    Fired(Alert),
    /// Open before, not now: the alert as it was last seen.
    Resolved(Alert),
    /// Still open; acked, silenced, unsilenced or its text changed.
    Updated(Alert),
}

/// The changes from `old` to `new`, by alert id, in `new`'s order then
/// the resolved ones in `old`'s order. A new occurrence of an id (its
/// `since_ms` changed) is the old one resolved and the new one fired.
pub fn alert_changes(old: &[Alert], new: &[Alert]) -> Vec<AlertChange> {
    let before: HashMap<&str, &Alert> = old.iter().map(|a| (a.id.as_str(), a)).collect();
    let now: HashMap<&str, &Alert> = new.iter().map(|a| (a.id.as_str(), a)).collect();
    let mut out = Vec::new();
    for a in new {
        match before.get(a.id.as_str()) {
            None => out.push(AlertChange::Fired(a.clone())),
            Some(b) if b.since_ms != a.since_ms => {
                out.push(AlertChange::Resolved((*b).clone()));
                out.push(AlertChange::Fired(a.clone()));
            }
            Some(b) if *b != a => out.push(AlertChange::Updated(a.clone())),
            Some(_) => {}
        }
    }
    for b in old {
        if !now.contains_key(b.id.as_str()) {
            out.push(AlertChange::Resolved(b.clone()));
        }
    }
    out
}

/// How often a view is made with nothing changed: ages and "down" follow
/// the clock.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A fresh `FleetView` of `engine`'s replica on a channel: the first at
/// once, then after each change the engine reports (at most once a second)
/// and every `refresh`. The task ends once the engine is shut down or
/// dropped, or every receiver is gone.
pub fn watch(engine: &Engine, refresh: Duration) -> watch::Receiver<Arc<FleetView>> {
    let first = engine.with_replica(|r| FleetView::of(r, now_ms()));
    let (tx, rx) = watch::channel(Arc::new(first));
    let mut changes = engine.subscribe();
    let engine = engine.downgrade();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = changes.changed() => {
                    if r.is_err() {
                        return;
                    }
                    // Many changes arrive together (a sync round): one view.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    changes.borrow_and_update();
                }
                _ = tokio::time::sleep(refresh) => {}
                _ = tx.closed() => return,
            }
            let Some(view) = engine.with_replica(|r| FleetView::of(r, now_ms())) else {
                return;
            };
            tx.send_replace(Arc::new(view));
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_store::alerts::Severity;

    fn alert(id: &str, since: Option<i64>) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::Disk,
            severity: Severity::Medium,
            site: "s".into(),
            node: Some("n".into()),
            since_ms: since,
            message: "m".into(),
            acked_by: None,
            silenced_until_ms: None,
        }
    }

    #[test]
    fn alert_changes_name_fired_resolved_updated_and_new_occurrences() {
        let old = vec![alert("a", Some(1)), alert("b", None), alert("c", Some(5))];
        let mut acked = alert("b", None);
        acked.acked_by = Some("op".into());
        let new = vec![
            alert("a", Some(1)),
            acked.clone(),
            alert("c", Some(9)),
            alert("d", None),
        ];
        assert_eq!(
            alert_changes(&old, &new),
            vec![
                AlertChange::Updated(acked),
                AlertChange::Resolved(alert("c", Some(5))),
                AlertChange::Fired(alert("c", Some(9))),
                AlertChange::Fired(alert("d", None)),
            ]
        );
        assert_eq!(
            alert_changes(&new, &[]).len(),
            4,
            "every open alert resolves when none is open"
        );
        assert!(alert_changes(&new, &new).is_empty());
    }
}

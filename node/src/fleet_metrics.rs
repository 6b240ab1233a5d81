//! The whole fleet as Prometheus metrics: what a hub's `serve --metrics ADDR`
//! exposes, as seen from that replica. Every node's up/down, last heard,
//! CPU/memory/disk, desired and applied revision; every site's state; the
//! open alerts by severity; and this replica's sync peers with their lag.
//! Node series carry `site`, `node`, `zone` and `role` labels (an unset
//! zone or role is `""`).
//!
//! A scrape renders the latest [`FleetView`] from `view::watch` (made at
//! most `view::REFRESH` ago, its time in
//! `fleetdeck_fleet_view_timestamp_seconds`); ages are measured at the
//! scrape, and the peers are read then. Rendering never touches the
//! replica's document and writes into one string, so a hub with a thousand
//! nodes answers a scrape in a few milliseconds.
//!
//! The node daemon's own metrics (one node, from its side) are in
//! `daemon::Daemon::metrics_text`; both use [`crate::metrics`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use fleetdeck_store::alerts::{Severity, SiteState};
use fleetdeck_store::health::ApplyResult;
use fleetdeck_store::now_ms;
use fleetdeck_store::peer::PeerStatus;
use fleetdeck_sync::Engine;
use tokio::sync::watch;

use crate::metrics::{self, Exposition};
use crate::view::{FleetView, NodeView};

const SEVERITIES: [Severity; 3] = [Severity::Soft, Severity::Medium, Severity::Hard];

const SITE_STATES: [(SiteState, &str); 4] = [
    (SiteState::Green, "green"),
    (SiteState::Warn, "warn"),
    (SiteState::Err, "err"),
    (SiteState::Unknown, "unknown"),
];

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::Soft => 0,
        Severity::Medium => 1,
        Severity::Hard => 2,
    }
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

/// A node's identifying labels, the same on each of its series.
fn node_labels(n: &NodeView) -> [(&'static str, &str); 4] {
    [
        ("site", n.site.as_str()),
        ("node", n.id.as_str()),
        ("zone", n.zone.as_deref().unwrap_or("")),
        ("role", n.role.as_deref().unwrap_or("")),
    ]
}

/// Writes one gauge family: `value` of each node, for the nodes that have
/// one.
fn per_node(
    m: &mut Exposition,
    view: &FleetView,
    name: &str,
    help: &str,
    value: impl Fn(&NodeView) -> Option<f64>,
) {
    for n in &view.nodes {
        if let Some(v) = value(n) {
            m.gauge(name, help, &node_labels(n), v);
        }
    }
}

/// The text exposition of `view` and this replica's `peers` (`None` when
/// its sync engine has stopped: no sync series then), ages measured at
/// `now_ms`.
pub fn render(view: &FleetView, peers: Option<&[PeerStatus]>, now_ms: i64) -> String {
    let mut m = Exposition::with_capacity(4096 + view.nodes.len() * 2048 + view.sites.len() * 768);
    fleet(&mut m, view);
    sites(&mut m, view);
    nodes(&mut m, view, now_ms);
    if let Some(peers) = peers {
        sync(&mut m, peers, now_ms);
    }
    m.finish()
}

fn fleet(m: &mut Exposition, view: &FleetView) {
    m.gauge(
        "fleetdeck_fleet_info",
        "the fleet this replica holds (always 1)",
        &[("fleet_id", &view.fleet_id), ("fleet", &view.fleet_name)],
        1.0,
    );
    m.gauge(
        "fleetdeck_fleet_view_timestamp_seconds",
        "when the fleet view these metrics come from was made",
        &[],
        seconds(view.at_ms),
    );
    m.gauge(
        "fleetdeck_fleet_nodes",
        "nodes in the fleet",
        &[],
        view.nodes.len() as f64,
    );
    m.gauge(
        "fleetdeck_fleet_nodes_up",
        "nodes up (see fleetdeck_node_up)",
        &[],
        view.nodes.iter().filter(|n| n.up).count() as f64,
    );
    for (state, label) in SITE_STATES {
        m.gauge(
            "fleetdeck_fleet_sites",
            "sites by state",
            &[("state", label)],
            view.sites.iter().filter(|s| s.state == state).count() as f64,
        );
    }
    // [severity][silenced]
    let mut open = [[0usize; 2]; 3];
    for a in &view.alerts {
        open[severity_index(a.severity)][usize::from(a.is_hidden(view.at_ms))] += 1;
    }
    for s in SEVERITIES {
        for (silenced, label) in [(0, "false"), (1, "true")] {
            m.gauge(
                "fleetdeck_alerts_open",
                "open alerts by severity; silenced=\"true\" counts the ones a silence hides",
                &[("severity", s.as_str()), ("silenced", label)],
                open[severity_index(s)][silenced] as f64,
            );
        }
    }
}

fn sites(m: &mut Exposition, view: &FleetView) {
    for s in &view.sites {
        let zone = s.zone.as_deref().unwrap_or("");
        for (state, label) in SITE_STATES {
            m.gauge(
                "fleetdeck_site_state",
                "1 for the state the site is in (green, warn, err, unknown), 0 for the others",
                &[
                    ("site", &s.id),
                    ("name", &s.name),
                    ("zone", zone),
                    ("state", label),
                ],
                flag(s.state == state),
            );
        }
    }
    let index: HashMap<&str, usize> = view
        .sites
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut nodes = vec![0usize; view.sites.len()];
    for n in &view.nodes {
        if let Some(&i) = index.get(n.site.as_str()) {
            nodes[i] += 1;
        }
    }
    for (s, count) in view.sites.iter().zip(&nodes) {
        m.gauge(
            "fleetdeck_site_nodes",
            "nodes at the site",
            &[("site", &s.id), ("zone", s.zone.as_deref().unwrap_or(""))],
            *count as f64,
        );
    }
    let mut open = vec![[0usize; 3]; view.sites.len()];
    for a in view.alerts.iter().filter(|a| !a.is_hidden(view.at_ms)) {
        if let Some(&i) = index.get(a.site.as_str()) {
            open[i][severity_index(a.severity)] += 1;
        }
    }
    for (s, counts) in view.sites.iter().zip(&open) {
        for sev in SEVERITIES {
            m.gauge(
                "fleetdeck_site_alerts_open",
                "open alerts at the site by severity, silenced ones left out",
                &[
                    ("site", &s.id),
                    ("zone", s.zone.as_deref().unwrap_or("")),
                    ("severity", sev.as_str()),
                ],
                counts[severity_index(sev)] as f64,
            );
        }
    }
}

fn nodes(m: &mut Exposition, view: &FleetView, now_ms: i64) {
    per_node(
        m,
        view,
        "fleetdeck_node_up",
        "1 when the node has reported and is not down (nor its whole site offline)",
        |n| Some(flag(n.up)),
    );
    per_node(
        m,
        view,
        "fleetdeck_node_last_heard_timestamp_seconds",
        "when this replica last heard the node's health report",
        |n| n.last_heard_ms.map(seconds),
    );
    per_node(
        m,
        view,
        "fleetdeck_node_last_heard_age_seconds",
        "seconds since this replica last heard the node's health report",
        |n| n.last_heard_ms.map(|t| seconds((now_ms - t).max(0))),
    );
    per_node(
        m,
        view,
        "fleetdeck_node_cpu_usage_ratio",
        "CPU in use, 0 to 1, as the node last reported",
        |n| n.cpu_pct.map(|p| p / 100.0),
    );
    per_node(
        m,
        view,
        "fleetdeck_node_memory_usage_ratio",
        "memory in use, 0 to 1, as the node last reported",
        |n| n.mem_pct.map(|p| p / 100.0),
    );
    for n in &view.nodes {
        let [site, node, zone, role] = node_labels(n);
        for d in &n.disks {
            m.gauge(
                "fleetdeck_node_disk_usage_ratio",
                "disk space in use per mount, 0 to 1, as the node last reported",
                &[site, node, zone, role, ("mount", &d.mount)],
                d.used_pct / 100.0,
            );
        }
    }
    per_node(
        m,
        view,
        "fleetdeck_node_load1",
        "one-minute load average, as the node last reported",
        |n| n.load1,
    );
    per_node(
        m,
        view,
        "fleetdeck_node_uptime_seconds",
        "time since the node booted, as it last reported",
        |n| n.uptime_s.map(|s| s as f64),
    );
    per_node(
        m,
        view,
        "fleetdeck_node_temperature_celsius",
        "the node's temperature, where it reports one",
        |n| n.temp_c,
    );
    per_node(
        m,
        view,
        "fleetdeck_node_config_in_sync",
        "1 when the node's last apply succeeded and built the revision it should run",
        |n| Some(flag(n.in_sync)),
    );
    for n in &view.nodes {
        let [site, node, zone, role] = node_labels(n);
        let applied = n.applied.as_ref();
        m.gauge(
            "fleetdeck_node_config_info",
            "the revision the node should run and the one it last applied, with that apply's result (always 1)",
            &[
                site,
                node,
                zone,
                role,
                ("desired_revision", n.desired_revision.as_deref().unwrap_or("")),
                ("applied_revision", applied.map_or("", |a| a.revision.as_str())),
                (
                    "apply_result",
                    applied.map_or("", |a| match a.result {
                        ApplyResult::Ok => "ok",
                        ApplyResult::RolledBack => "rolled_back",
                        ApplyResult::Failed => "failed",
                    }),
                ),
            ],
            1.0,
        );
    }
    per_node(
        m,
        view,
        "fleetdeck_node_last_apply_timestamp_seconds",
        "when the node last applied its config",
        |n| n.applied.as_ref().map(|a| seconds(a.at_ms)),
    );
    per_node(
        m,
        view,
        "fleetdeck_node_checks_failing",
        "the node's check commands failing at its last report",
        |n| Some(n.checks_failing as f64),
    );
    per_node(
        m,
        view,
        "fleetdeck_node_drift_files",
        "rendered files found edited by hand on the node",
        |n| Some(n.drift as f64),
    );
    per_node(
        m,
        view,
        "fleetdeck_node_safe_mode",
        "1 while the node has stopped applying (safe mode)",
        |n| Some(flag(n.safe_mode.is_some())),
    );
}

/// A peer's labels: its member key and name.
fn labels(p: &PeerStatus) -> [(&'static str, &str); 2] {
    [("peer", p.key.as_str()), ("name", p.name.as_str())]
}

fn sync(m: &mut Exposition, peers: &[PeerStatus], now_ms: i64) {
    m.gauge(
        "fleetdeck_sync_peers",
        "other replicas this replica's sync engine knows of",
        &[],
        peers.len() as f64,
    );
    m.gauge(
        "fleetdeck_sync_peers_connected",
        "sessions with peers",
        &[],
        peers.iter().filter(|p| p.connected).count() as f64,
    );
    for p in peers {
        m.gauge(
            "fleetdeck_sync_peer_connected",
            "1 while a session with the peer is up",
            &labels(p),
            flag(p.connected),
        );
    }
    for p in peers {
        if let Some(lacks) = p.lacks {
            m.gauge(
                "fleetdeck_sync_peer_lag_changes",
                "document changes this replica has that the peer is not known to have",
                &labels(p),
                lacks as f64,
            );
        }
    }
    for p in peers {
        if let Some(t) = p.last_sync_ms {
            m.gauge(
                "fleetdeck_sync_peer_last_sync_timestamp_seconds",
                "when this replica last synced with the peer",
                &labels(p),
                seconds(t),
            );
        }
    }
    for p in peers {
        if let Some(t) = p.last_sync_ms {
            m.gauge(
                "fleetdeck_sync_peer_last_sync_age_seconds",
                "seconds since this replica last synced with the peer",
                &labels(p),
                seconds((now_ms - t).max(0)),
            );
        }
    }
}

/// Serves the fleet's metrics at `GET /metrics` on `addr`: each scrape
/// renders the latest of `views` (see `view::watch`) with `engine`'s peers
/// as they are then. Stops once `views` ends (the engine has stopped).
/// Returns the address bound.
pub async fn serve(
    addr: SocketAddr,
    engine: &Engine,
    views: watch::Receiver<Arc<FleetView>>,
) -> std::io::Result<SocketAddr> {
    let peers = engine.downgrade();
    let mut ended = views.clone();
    let scrape = move || {
        let view = views.borrow().clone();
        render(&view, peers.peers().as_deref(), now_ms())
    };
    metrics::serve_until(addr, Arc::new(scrape), async move {
        while ended.changed().await.is_ok() {}
    })
    .await
}

//! What the node daemon benches share: a fleet of in-process daemons synced
//! over loopback with an ops replica (the laptop/hub), quiet metrics, data
//! dirs on /dev/shm, percentiles and the machine's load average.

#![allow(dead_code)]

pub mod mosquitto;
pub mod report;

pub use report::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleetdeck_node::daemon::{Daemon, DaemonConfig, MetricSource};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::Metrics;
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig};
use serde_json::Value;

/// Metrics that cost nothing to sample: 100 in-process daemons probing the
/// same host with sysinfo would measure the host 100 times over, which no
/// real device does.
pub struct Quiet;
impl MetricSource for Quiet {
    fn sample(&mut self) -> Metrics {
        Metrics::default()
    }
}

/// Production engine settings on loopback: `EngineConfig::new` defaults,
/// mDNS off.
pub fn engine_cfg() -> EngineConfig {
    let mut c = EngineConfig::new(([127, 0, 0, 1], 0).into());
    c.mdns = false;
    c
}

/// A temp dir on /dev/shm when there is one (many replicas share one disk
/// in one process; on real devices each fsyncs its own), else the default.
pub fn shm_tempdir(prefix: &str) -> (tempfile::TempDir, &'static str) {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(t) = tempfile::Builder::new().prefix(prefix).tempdir_in(shm)
    {
        return (t, "/dev/shm (tmpfs)");
    }
    (
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("a temp dir"),
        "the default temp dir (no /dev/shm)",
    )
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Nearest-rank percentile of `xs` (need not be sorted).
pub fn pct(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn node_id(i: usize) -> NodeId {
    NodeId::parse(&format!("n{i:03}")).expect("a valid node id")
}

pub fn key(k: &str) -> ConfigPath {
    ConfigPath::parse(k).expect("a valid config key")
}

/// An ops replica (admin) with `nodes` nodes over `sites` sites, each node
/// enrolled (`put_member`, role node) and bound to its own replica's key,
/// plus the given fleet config. Returns the ops replica and each node's id
/// and replica dir (identity made, replica not created yet).
pub fn make_fleet(
    dir: &Path,
    nodes: usize,
    sites: usize,
    config: &[(&str, Value)],
) -> (Replica, Vec<(NodeId, PathBuf)>) {
    let ids: Vec<(NodeId, PathBuf)> = (0..nodes)
        .map(|i| (node_id(i), dir.join(format!("n{i:03}"))))
        .collect();
    let keys: Vec<_> = ids
        .iter()
        .map(|(_, d)| {
            load_or_create_identity(d)
                .expect("a node identity")
                .key()
                .clone()
        })
        .collect();
    let mut ops = Replica::init(&dir.join("ops"), "ops", "bench").expect("the ops replica");
    ops.change("bench fleet", |d, _| {
        for s in 0..sites {
            d.add_site(
                &SiteId::parse(&format!("S{s:02}")).expect("a site id"),
                &SiteRecord {
                    name: format!("site {s}"),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )?;
        }
        for (i, ((id, _), k)) in ids.iter().zip(&keys).enumerate() {
            d.add_node(
                id,
                &NodeRecord {
                    site: format!("S{:02}", i % sites.max(1)),
                    role: Some("pi".into()),
                },
            )?;
            d.put_member(k, id.as_str(), Role::Node, now_ms())?;
            d.bind_node(id, k)?;
        }
        for (k, v) in config {
            d.set_config(&LayerRef::Fleet, &key(k), v)?;
        }
        Ok(())
    })
    .expect("the fleet setup change");
    (ops, ids)
}

/// Starts the ops engine and one daemon per node, each on its own replica
/// and its own iroh endpoint, each introduced to the ops engine with
/// `connect`. The node replicas are made from the ops replica's changes
/// taken after its engine started, so they hold the address ops published
/// in its member record (as a node that joined with an invite does): a node
/// whose first dial fails under load dials again on its own, instead of
/// staying alone with no address to try.
pub async fn start_fleet(ops: Replica, ids: &[(NodeId, PathBuf)]) -> (Engine, Vec<Daemon>) {
    let ops = Engine::start(ops, engine_cfg())
        .await
        .expect("the ops engine starts");
    let all = ops.with_replica(|r| r.changes_after(&[]));
    let hub = ops.endpoint_addr();
    let mut daemons = Vec::with_capacity(ids.len());
    for (id, dir) in ids {
        daemons.push(start_daemon(id, dir, all.clone(), &hub).await);
    }
    (ops, daemons)
}

pub async fn start_daemon(
    id: &NodeId,
    dir: &Path,
    changes: Vec<fleetdeck_store::replica::SignedChange>,
    hub: &iroh::EndpointAddr,
) -> Daemon {
    let r = Replica::init_from_changes(dir, changes).expect("a node replica");
    let dc = DaemonConfig {
        root: dir.join("root"),
        node: id.clone(),
        sync: engine_cfg(),
    };
    let d = Daemon::start(r, dc, Box::new(Quiet))
        .await
        .expect("the daemon starts");
    d.engine().connect(hub.clone());
    d
}

/// Polls `f` every `every` until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    f()
}

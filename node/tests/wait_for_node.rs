//! `node run --node ID` on a device whose replica has not heard of ID yet:
//! the daemon syncs and waits, says so, and starts once an operator's
//! replica adds the node. Two replicas in one process, over loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fleetdeck_node::daemon::{Daemon, DaemonConfig, MetricSource};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::Metrics;
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig};
use serde_json::json;

struct Quiet;
impl MetricSource for Quiet {
    fn sample(&mut self) -> Metrics {
        Metrics::default()
    }
}

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::new("127.0.0.1:0".parse().unwrap());
    c.poll = Duration::from_millis(50);
    c.dial_every = Duration::from_millis(200);
    c
}

async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

struct Setup {
    _tmp: tempfile::TempDir,
    ops: Engine,
    device: Replica,
    root: std::path::PathBuf,
}

/// An operator replica serving a fleet with site S1 and the device enrolled
/// as a member, but no node cam-1 yet; the device's replica a copy of it.
async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let device_dir = tmp.path().join("device");
    let device_key = load_or_create_identity(&device_dir).unwrap().key().clone();
    let mut ops = Replica::init(&tmp.path().join("ops"), "ops", "blocao").unwrap();
    ops.change("setup", |d, _| {
        d.add_site(
            &SiteId::parse("S1").unwrap(),
            &SiteRecord {
                name: "Lab".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )?;
        d.put_member(&device_key, "device", Role::Node, now_ms())?;
        d.set_config(
            &LayerRef::Fleet,
            &ConfigPath::parse("heartbeat.interval_s").unwrap(),
            &json!(1),
        )?;
        d.set_config(
            &LayerRef::Fleet,
            &ConfigPath::parse("files").unwrap(),
            &json!({"frigate/config.yml": "version: {{ frigate.version }}\n"}),
        )?;
        d.set_config(
            &LayerRef::Fleet,
            &ConfigPath::parse("frigate.version").unwrap(),
            &json!("0.13"),
        )
    })
    .unwrap();
    let ops = Engine::start(ops, cfg()).await.unwrap();
    // After the operator's engine published where it listens: the device
    // dials it from the document, as a device set up from an invite does.
    let changes = ops.with_replica(|r| r.changes_after(&[]));
    let device = Replica::init_from_changes(&device_dir, changes).unwrap();
    Setup {
        root: tmp.path().join("device-root"),
        _tmp: tmp,
        ops,
        device,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_for_a_node_not_yet_in_its_replica_waits_and_starts_once_it_is_added() {
    let s = setup().await;
    let cam = NodeId::parse("cam-1").unwrap();
    let said = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dc = DaemonConfig {
        root: s.root.clone(),
        node: cam.clone(),
        sync: cfg(),
    };
    let counter = said.clone();
    let started = tokio::spawn(Daemon::start_when_known(
        s.device,
        dc,
        Box::new(Quiet),
        async move {
            let _ = stop_rx.await;
        },
        move |node| {
            assert_eq!(node.as_str(), "cam-1");
            counter.fetch_add(1, Ordering::SeqCst);
        },
    ));
    // It says so at once, and keeps waiting (not an error).
    assert!(
        eventually(Duration::from_secs(10), || said.load(Ordering::SeqCst) >= 1).await,
        "the daemon says it waits for the node"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!started.is_finished(), "still waiting for cam-1");
    assert_eq!(
        said.load(Ordering::SeqCst),
        1,
        "said once, not again within 10 s"
    );

    // An operator adds the node; sync brings it to the device.
    s.ops.with_replica(|r| {
        r.change("add cam-1", |d, _| {
            d.add_node(
                &cam,
                &NodeRecord {
                    site: "S1".into(),
                    role: Some("camera".into()),
                },
            )
        })
        .unwrap()
    });
    s.ops.changed();
    let daemon = tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("the daemon starts within a minute of the node being added")
        .unwrap()
        .expect("start-up succeeds")
        .expect("not stopped");
    drop(stop_tx);
    // It runs: applies the node's config, binds the node to its replica and
    // reports back to the operator.
    let live = s.root.join("current/files/frigate/config.yml");
    assert!(
        eventually(Duration::from_secs(60), || {
            std::fs::read_to_string(&live).ok().as_deref() == Some("version: 0.13\n")
        })
        .await,
        "the node applied its config"
    );
    let device_key = daemon.engine().key().clone();
    assert!(
        eventually(Duration::from_secs(60), || s.ops.with_replica(|r| {
            r.health().contains_key("cam-1")
                && r.state().node(&cam).ok().and_then(|n| n.key.clone()) == Some(device_key.clone())
        }))
        .await,
        "the operator hears cam-1 and sees it bound to the device"
    );
    daemon.shutdown().await;
    s.ops.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_waiting_for_its_node_stops_when_told() {
    let s = setup().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dc = DaemonConfig {
        root: s.root.clone(),
        node: NodeId::parse("cam-1").unwrap(),
        sync: cfg(),
    };
    let waiting = tokio::spawn(Daemon::start_when_known(
        s.device,
        dc,
        Box::new(Quiet),
        async move {
            let _ = stop_rx.await;
        },
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(()).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("stopping is prompt")
        .unwrap()
        .expect("no error");
    assert!(out.is_none(), "stopped before the node arrived");
    assert!(!s.root.join("current").exists(), "nothing was applied");
    s.ops.shutdown().await;
}

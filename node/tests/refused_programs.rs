//! The daemon's last look before it runs a program from config: a value
//! that never passed the gate (written on the device itself) and was
//! written by an author who may not write it is not run.

use std::time::{Duration, Instant};

use fleetdeck_node::daemon::{Daemon, DaemonConfig, MetricSource};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{FleetDoc, LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::Metrics;
use fleetdeck_store::ops::{self, ConfigEdit, Op};
use fleetdeck_store::replica::{SignedChange, load_or_create_identity};
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::EngineConfig;
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
    c.mdns = false;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_command_the_node_wrote_itself_is_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let node_dir = tmp.path().join("cam-1");
    let node_key = load_or_create_identity(&node_dir).unwrap().key().clone();
    let mut admin = Replica::init(&tmp.path().join("ops"), "ops", "f").unwrap();
    let now = now_ms();
    for op in [
        Op::SiteAdd {
            sites: vec![(
                SiteId::parse("S1").unwrap(),
                SiteRecord {
                    name: "s".into(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )],
        },
        Op::NodeAdd {
            nodes: vec![(
                NodeId::parse("cam-1").unwrap(),
                NodeRecord {
                    site: "S1".into(),
                    role: None,
                },
            )],
        },
        Op::MemberAdd {
            key: node_key,
            name: "cam-1".into(),
            role: Role::Node,
        },
        Op::Config {
            layer: LayerRef::Fleet,
            edits: vec![ConfigEdit::Set(
                ConfigPath::parse("files").unwrap(),
                json!({"app.conf": "x = 1\n"}),
            )],
            message: None,
        },
    ] {
        ops::apply(&mut admin, op, now).unwrap();
    }
    let mut node = Replica::init_from_changes(&node_dir, admin.changes_after(&[])).unwrap();
    // A captured device writes a health check into its own node layer,
    // straight into its replica: it never passed any gate.
    let marker = tmp.path().join("ran");
    let check = format!("touch {}", marker.display());
    // (Its own replica would not write it: a device running changed
    // software signs and stores it all the same.)
    let hash = {
        let fork = node.doc_mut().automerge_mut().fork();
        let mut doc =
            FleetDoc::from_automerge(fork.with_actor(node.identity().new_actor())).unwrap();
        doc.set_config(
            &LayerRef::Node(NodeId::parse("cam-1").unwrap()),
            &ConfigPath::parse("apply.check").unwrap(),
            &json!(check),
        )
        .unwrap();
        let hash = doc.commit("own check", now_ms()).unwrap();
        let change = doc.automerge_mut().get_change_by_hash(&hash).unwrap();
        let sig = node.identity().sign_change(&hash);
        node.apply_changes(vec![SignedChange {
            change,
            sig: Some(sig),
        }])
        .unwrap();
        hash
    };
    assert!(node.holds(&hash));
    let root = tmp.path().join("root");
    let d = Daemon::start(
        node,
        DaemonConfig {
            root: root.clone(),
            node: NodeId::parse("cam-1").unwrap(),
            sync: cfg(),
        },
        Box::new(Quiet),
    )
    .await
    .unwrap();
    // The daemon records the apply as failed, naming the rule, and the
    // command never ran.
    let start = Instant::now();
    let mut said = None;
    while start.elapsed() < Duration::from_secs(20) {
        said = d.engine().with_replica(|r| {
            r.health()
                .get("cam-1")
                .and_then(|s| s.reg.applied.as_ref())
                .and_then(|a| a.error.clone())
        });
        if said.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let said = said.expect("the daemon reported the refused apply");
    assert!(said.contains("apply.check"), "{said}");
    assert!(said.contains("makes nodes run a program"), "{said}");
    assert!(!marker.exists(), "the check command ran");
    d.shutdown().await;
}

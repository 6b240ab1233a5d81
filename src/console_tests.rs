//! The console's source over a real replica: its operations go through
//! the store's operations API like the CLI's.

use std::collections::BTreeMap;

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::ops::{ConfigEdit, RolloutAction, RolloutPlan};
use fleetdeck_store::rollout::Phase;
use fleetdeck_store::{NodeId, SiteId};
use serde_json::json;

use super::*;

fn key(s: &str) -> ConfigPath {
    ConfigPath::parse(s).unwrap()
}

/// A replica with one site, one node and a rollout, behind the console's
/// source (no engine: the console's own process writes).
fn source(dir: &Path) -> ReplicaSource {
    let mut r = Replica::init(dir, "ops", "blocao").unwrap();
    let site = SiteId::parse("BL-LAB-1").unwrap();
    let now = now_ms();
    let setup = [
        Intent::SiteAdd {
            sites: vec![(
                site.clone(),
                SiteRecord {
                    name: "Lab 1".into(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )],
        },
        Intent::NodeAdd {
            nodes: vec![(
                NodeId::parse("cam-1").unwrap(),
                NodeRecord {
                    site: "BL-LAB-1".into(),
                    role: None,
                },
            )],
        },
        Intent::Config {
            layer: LayerRef::Fleet,
            edits: vec![ConfigEdit::Set(key("frigate.version"), json!("0.14"))],
            message: None,
        },
        Intent::Config {
            layer: LayerRef::Site(site.clone()),
            edits: vec![ConfigEdit::Set(key("retention.days"), json!(9))],
            message: None,
        },
        Intent::RolloutStart {
            id: Some("r1".into()),
            plan: RolloutPlan {
                set: BTreeMap::from([("agent.version".to_string(), json!("2"))]),
                sites: Vec::new(),
                waves: vec![50, 100],
                soak_ms: 60_000,
                max_fail: 0,
            },
        },
    ];
    for op in setup {
        ops::apply(&mut r, op, now).unwrap();
    }
    let sync = SyncStatus::Off {
        reason: "test".into(),
    };
    ReplicaSource::new(dir, Holder::Local(Box::new(r)), sync)
}

#[test]
fn a_config_commit_is_one_change_with_the_operators_message() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = source(tmp.path());
    let site = LayerRef::Site(SiteId::parse("BL-LAB-1").unwrap());
    let before = s.history().len();
    let done = s.apply(Intent::Config {
        layer: site.clone(),
        edits: vec![
            ConfigEdit::Set(key("alerts.disk_pct"), json!(80)),
            ConfigEdit::Unset(key("retention.days")),
            ConfigEdit::Set(key("frigate.version"), json!(null)),
        ],
        message: Some("lab 1: fuller disks, default retention, no frigate".into()),
    });
    assert!(done.unwrap().starts_with("committed 3 edits"));
    let history = s.history();
    assert_eq!(history.len(), before + 1, "one change for the three edits");
    assert_eq!(
        history[0].entry.message.as_deref(),
        Some("lab 1: fuller disks, default retention, no frigate")
    );
    let snap = s.snapshot();
    let eff = snap
        .fleet
        .effective_node(&NodeId::parse("cam-1").unwrap())
        .unwrap();
    assert_eq!(eff.get(&key("alerts.disk_pct")), Some(&json!(80)));
    assert_eq!(eff.get(&key("frigate.version")), None, "null hides it");
    assert_eq!(eff.get(&key("retention.days")), None);
}

#[test]
fn a_refused_edit_writes_nothing_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = source(tmp.path());
    let before = s.history().len();
    let e = s
        .apply(Intent::Config {
            layer: LayerRef::Fleet,
            edits: vec![
                ConfigEdit::Set(key("retention.days"), json!(5)),
                ConfigEdit::Set(key("alerts.disk_pct"), json!(900)),
            ],
            message: Some("too much".into()),
        })
        .unwrap_err();
    assert!(e.contains("alerts.disk_pct = 900 is out of range"), "{e}");
    assert_eq!(s.history().len(), before);
    let snap = s.snapshot();
    assert_eq!(snap.fleet.fleet.get(&key("retention.days")), None);
}

#[test]
fn rollouts_pause_resume_and_abort_through_the_document() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = source(tmp.path());
    let phase = |s: &mut ReplicaSource| s.snapshot().rollouts[0].phase;
    assert_eq!(phase(&mut s), Phase::Running);
    let act = |action| Intent::Rollout {
        id: "r1".into(),
        action,
    };
    let said = s.apply(act(RolloutAction::Pause)).unwrap();
    assert!(said.starts_with("rollout r1 paused"), "{said}");
    assert_eq!(phase(&mut s), Phase::Paused);
    // The events need distinct times to order: a resume after the pause.
    std::thread::sleep(Duration::from_millis(5));
    s.apply(act(RolloutAction::Resume)).unwrap();
    assert_eq!(phase(&mut s), Phase::Running);
    s.apply(act(RolloutAction::Abort)).unwrap();
    assert_eq!(phase(&mut s), Phase::Aborted);
    let e = s
        .apply(Intent::Rollout {
            id: "nope".into(),
            action: RolloutAction::Pause,
        })
        .unwrap_err();
    assert_eq!(e, "no rollout 'nope' (see `fleetdeck rollout list`)");
}

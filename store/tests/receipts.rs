//! Receipts: where a change stands on each node, from what the nodes
//! reported holding and running.

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::{ApplyReport, ApplyResult, HealthRegister};
use fleetdeck_store::ops::{self, ConfigEdit, Op};
use fleetdeck_store::receipts::{Delivery, Summary, receipts};
use fleetdeck_store::{NodeId, Replica, SiteId, now_ms};
use serde_json::json;

fn set(r: &mut Replica, key: &str, v: serde_json::Value) -> automerge::ChangeHash {
    ops::apply(
        r,
        Op::Config {
            layer: LayerRef::Fleet,
            edits: vec![ConfigEdit::Set(ConfigPath::parse(key).unwrap(), v)],
            message: None,
        },
        now_ms(),
    )
    .unwrap()
    .change
    .unwrap()
}

fn hex(heads: &[automerge::ChangeHash]) -> Vec<String> {
    heads.iter().map(|h| h.to_string()).collect()
}

#[test]
fn each_node_is_applied_failed_delivered_not_yet_or_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let now = now_ms();
    ops::apply(
        &mut r,
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
        now,
    )
    .unwrap();
    let nodes = ["n1", "n2", "n3", "n4", "n5"]
        .iter()
        .map(|n| {
            (
                NodeId::parse(n).unwrap(),
                NodeRecord {
                    site: "S1".into(),
                    role: None,
                },
            )
        })
        .collect();
    ops::apply(&mut r, Op::NodeAdd { nodes }, now).unwrap();
    let a = set(&mut r, "firmware", json!("2.0"));
    let at_a = r.heads();
    let b = set(&mut r, "firmware", json!("2.1"));
    let at_b = r.heads();

    let beat = |node: &str, holds: &[automerge::ChangeHash], live_at: &[automerge::ChangeHash]| {
        HealthRegister {
            node: node.into(),
            seq: 1,
            time_ms: now_ms(),
            holds: hex(holds),
            live_at: hex(live_at),
            ..HealthRegister::default()
        }
    };
    // n1 runs everything; n2 holds B but runs A; n3 failed on B; n4 has
    // only A; n5 reports heads this replica has never seen.
    r.record_health(&beat("n1", &at_b, &at_b)).unwrap();
    r.record_health(&beat("n2", &at_b, &at_a)).unwrap();
    let mut n3 = beat("n3", &at_b, &at_a);
    n3.applied = Some(ApplyReport {
        revision: "0123456789abcdef".into(),
        result: ApplyResult::RolledBack,
        error: Some("check failed: exit 1".into()),
        duration_ms: 5,
        at_ms: now_ms(),
        from: hex(&at_b),
    });
    r.record_health(&n3).unwrap();
    r.record_health(&beat("n4", &at_a, &at_a)).unwrap();
    let stranger = ["ab".repeat(32)];
    let mut n5 = beat("n5", &[], &[]);
    n5.holds = stranger.to_vec();
    r.record_health(&n5).unwrap();

    let all = receipts(&mut r, &[a, b], now_ms()).unwrap();
    let states = |i: usize| all[i].iter().map(|x| x.state).collect::<Vec<_>>();
    use Delivery::*;
    assert_eq!(states(0), [Applied, Applied, Applied, Applied, Unknown]);
    assert_eq!(states(1), [Applied, Delivered, Failed, NotYet, Unknown]);
    assert_eq!(all[1][2].error.as_deref(), Some("check failed: exit 1"));
    let s = Summary::of(&all[1]);
    assert_eq!(
        (s.nodes, s.delivered, s.applied, s.failed, s.unknown),
        (5, 3, 1, 1, 1)
    );
    assert_eq!(s.line(), "delivered 3/5 · applied 1 · failed 1 · unknown 1");
}

#[test]
fn a_register_with_too_many_or_malformed_heads_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let mut reg = HealthRegister {
        node: "n1".into(),
        seq: 1,
        time_ms: now_ms(),
        holds: vec!["zz".into()],
        ..HealthRegister::default()
    };
    let e = r.record_health(&reg).unwrap_err();
    assert!(e.to_string().contains("64 hex digits"), "{e}");
    reg.holds = vec!["ab".repeat(32); 17];
    let e = r.record_health(&reg).unwrap_err();
    assert!(e.to_string().contains("over the limit of 16"), "{e}");
}

#[test]
fn a_rollouts_waves_open_on_receipts_of_their_change_not_on_the_latest_revision() {
    use fleetdeck_store::ops::RolloutPlan;
    use fleetdeck_store::receipts::{landed, rollout_waves};
    use fleetdeck_store::rollout::Step;
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let now = now_ms();
    ops::apply(
        &mut r,
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
        now,
    )
    .unwrap();
    let nodes = (1..=5)
        .map(|i| {
            (
                NodeId::parse(&format!("n{i}")).unwrap(),
                NodeRecord {
                    site: "S1".into(),
                    role: None,
                },
            )
        })
        .collect();
    ops::apply(&mut r, Op::NodeAdd { nodes }, now).unwrap();
    let plan = RolloutPlan {
        set: [("frigate.version".to_string(), json!("0.14"))].into(),
        sites: vec![],
        waves: vec![20, 100],
        soak_ms: 0,
        max_fail: 0,
    };
    let start = ops::apply(
        &mut r,
        Op::RolloutStart {
            id: Some("r1".into()),
            plan,
        },
        now,
    )
    .unwrap()
    .change
    .unwrap();
    let at_start = r.heads();
    let rollout = r.state().rollouts[0].clone();
    let canary = rollout
        .assignment(r.state())
        .into_iter()
        .find(|(_, w)| *w == 0)
        .map(|(n, _)| n.to_string())
        .unwrap();
    // An edit after the start: the canary's desired revision moves on.
    set(&mut r, "retention.days", json!(30));
    let at_edit = r.heads();

    let beat = |seq: u64, live_at: &[automerge::ChangeHash], result: ApplyResult| HealthRegister {
        node: canary.clone(),
        seq,
        time_ms: now_ms(),
        holds: hex(&at_edit),
        live_at: hex(live_at),
        applied: Some(ApplyReport {
            revision: "runs-the-rollout".into(),
            result,
            error: (result != ApplyResult::Ok).then(|| "check failed".into()),
            duration_ms: 5,
            at_ms: now_ms() - 1_000,
            from: hex(&at_edit),
        }),
        ..HealthRegister::default()
    };
    // The canary runs the rollout's change but not the edit yet.
    r.record_health(&beat(1, &at_start, ApplyResult::Ok))
        .unwrap();
    let waves = rollout_waves(&mut r, &rollout, now_ms());
    assert_eq!(waves[0].change.as_deref(), Some(start.to_string().as_str()));
    assert_eq!(waves[0].summary.line(), "delivered 1/1 · applied 1");
    assert_eq!(waves[1].change, None);
    let got = landed(&waves, r.health());
    assert_eq!(got.get(&canary), Some(&Delivery::Applied));
    // By revision the canary is behind (it has not applied the edit); by
    // its receipt it runs the wave's change: the next wave opens.
    assert_eq!(rollout.wave_status(r.state(), r.health())[0].applied, 0);
    let steps = r.advance_rollouts(now_ms()).unwrap();
    assert_eq!(
        steps,
        vec![Step::OpenWave {
            rollout: "r1".into(),
            wave: 1
        }]
    );
    let rollout = r.state().rollouts[0].clone();
    let waves = rollout_waves(&mut r, &rollout, now_ms());
    assert!(waves[1].change.is_some());
    assert_eq!(waves[1].summary.nodes, 4);
    assert_eq!(waves[1].summary.applied, 0);

    // A failed apply whose release held the wave's change counts against
    // the rollout, from the receipt: over --max-fail 0, it halts.
    r.record_health(&beat(2, &[], ApplyResult::RolledBack))
        .unwrap();
    let waves = rollout_waves(&mut r, &rollout, now_ms());
    assert_eq!(waves[0].summary.failed, 1);
    let steps = r.advance_rollouts(now_ms()).unwrap();
    assert!(
        matches!(&steps[..], [Step::Halt { rollout, .. }] if rollout == "r1"),
        "{steps:?}"
    );
}

//! The fleet at a past moment and a node's timeline, from the replica's
//! record of what it heard (`health_log`), through `Replica`.

use std::path::Path;

use fleetdeck_store::document::{NodeRecord, SiteRecord};
use fleetdeck_store::health::{DiskUsage, HealthRegister, Metrics};
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::{NodeId, Replica, SiteId, StoreError, now_ms};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn fleet(dir: &Path) -> Replica {
    let mut r = Replica::init(dir, "ops", "blocao").unwrap();
    let now = now_ms();
    let site = SiteRecord {
        name: "lab".into(),
        lat: None,
        lon: None,
        zone: None,
    };
    ops::apply(
        &mut r,
        Op::SiteAdd {
            sites: vec![(SiteId::parse("BL-LAB-1").unwrap(), site)],
        },
        now,
    )
    .unwrap();
    ops::apply(
        &mut r,
        Op::NodeAdd {
            nodes: vec![(
                NodeId::parse("cam-1").unwrap(),
                NodeRecord {
                    site: "BL-LAB-1".into(),
                    role: None,
                },
            )],
        },
        now,
    )
    .unwrap();
    r
}

/// Moves the start of the replica's records `by_ms` into the past, as if
/// it had been running that long.
fn backdate(dir: &Path, by_ms: i64) {
    let conn = rusqlite::Connection::open(dir.join("replica.db")).unwrap();
    conn.execute(
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) - ?1 AS TEXT) WHERE key = 'health_log_since'",
        [by_ms],
    )
    .unwrap();
    let changed = conn
        .execute("UPDATE heads_log SET at_ms = at_ms - ?1", [by_ms])
        .unwrap();
    assert!(changed > 0);
}

fn beat(seq: u64, time_ms: i64, disk: f64) -> HealthRegister {
    HealthRegister {
        node: "cam-1".into(),
        seq,
        time_ms,
        metrics: Metrics {
            cpu_pct: 10.0,
            mem_pct: 30.0,
            disks: vec![DiskUsage {
                mount: "/".into(),
                used_pct: disk,
            }],
            ..Default::default()
        },
        ..Default::default()
    }
}

fn ids(r: &[fleetdeck_store::alerts::Alert]) -> Vec<&str> {
    r.iter().map(|a| a.id.as_str()).collect()
}

#[test]
fn alerts_at_a_past_moment_are_those_of_then() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = fleet(tmp.path());
    drop(r);
    backdate(tmp.path(), 4 * HOUR);
    r = Replica::open(tmp.path()).unwrap();
    let now = now_ms();
    // Disk full three hours ago, heard every 10 s for ten minutes; cleared
    // two hours ago; heard again now.
    let mut seq = 1;
    for i in 0..60 {
        let at = now - 3 * HOUR + i * 10_000;
        r.record_health_aged(&beat(seq, at, 97.0), (now - at) as u64)
            .unwrap();
        seq += 1;
    }
    r.record_health_aged(&beat(seq, now - 2 * HOUR, 40.0), (2 * HOUR) as u64)
        .unwrap();
    r.record_health(&beat(seq + 1, now, 40.0)).unwrap();
    let back = r.health()["cam-1"].received_ms;

    let during = r.moment_at(now - 3 * HOUR + 5 * 60_000).unwrap();
    assert!(during.past);
    assert_eq!(ids(&during.alerts()), vec!["disk:cam-1:/"]);
    // After the ten minutes of beats the node went silent: its site (it is
    // the only node) offline, which stands for its alerts, as it does live.
    let silent = r.moment_at(now - 2 * HOUR - 60_000).unwrap();
    assert_eq!(ids(&silent.alerts()), vec!["site-offline:BL-LAB-1"]);
    let after = r.moment_at(now - 2 * HOUR + 1_000).unwrap();
    assert!(ids(&after.alerts()).iter().all(|a| !a.starts_with("disk:")));
    assert!(r.moment().alerts().is_empty(), "{:?}", r.moment().alerts());

    // The timeline has all of it, newest first.
    let events = r
        .timeline(&NodeId::parse("cam-1").unwrap(), now - 4 * HOUR, back)
        .unwrap();
    // Heard times are this replica's clock at each write, set back by the
    // age given: within a second of the simulated times.
    let last_of_episode = now - 3 * HOUR + 59 * 10_000;
    let expected = [
        ("up", back),
        ("down", now - 2 * HOUR + 30_000),
        ("alert_resolved", now - 2 * HOUR),
        ("up", now - 2 * HOUR),
        ("down", last_of_episode + 30_000),
        ("alert_fired", now - 3 * HOUR),
    ];
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        expected.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        "{events:#?}"
    );
    for (e, (_, at)) in events.iter().zip(expected) {
        assert!((e.at_ms - at).abs() < 1_000, "{e:?} is not at {at}");
    }
    assert_eq!(events[5].alert.as_deref(), Some("disk:cam-1:/"));
}

#[test]
fn a_moment_past_retention_or_before_the_record_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(fleet(tmp.path()));
    let mut r = Replica::open(tmp.path()).unwrap();
    let now = now_ms();
    let e = r.moment_at(now - HOUR).unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("no data that old") && m.contains("begins at")),
        "{e}"
    );
    drop(r);
    backdate(tmp.path(), 100 * DAY);
    let mut r = Replica::open(tmp.path()).unwrap();
    let e = r.moment_at(now - 95 * DAY).unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("no data that old") && m.contains("kept 90 days")),
        "{e}"
    );
    assert!(r.moment_at(now - 80 * DAY).is_ok());
    let e = r.moment_at(now + HOUR).unwrap_err();
    assert!(e.to_string().contains("in the future"), "{e}");
}

#[test]
fn fleet_events_say_what_each_change_did_and_what_nodes_went_through() {
    use fleetdeck_store::config::ConfigPath;
    use fleetdeck_store::document::LayerRef;
    use fleetdeck_store::events::{ChangeKind, Filter, change_infos};
    use fleetdeck_store::ops::ConfigEdit;
    let tmp = tempfile::tempdir().unwrap();
    let mut r = fleet(tmp.path());
    let now = now_ms();
    let set = |r: &mut Replica, layer: LayerRef, key: &str, message: Option<&str>| {
        ops::apply(
            r,
            Op::Config {
                layer,
                edits: vec![ConfigEdit::Set(
                    ConfigPath::parse(key).unwrap(),
                    serde_json::json!(1),
                )],
                message: message.map(str::to_string),
            },
            now_ms(),
        )
        .unwrap()
        .change
        .unwrap()
    };
    // A message that says "rollout" does not make a config edit a rollout.
    let edit = set(
        &mut r,
        LayerRef::Site(SiteId::parse("BL-LAB-1").unwrap()),
        "retention.days",
        Some("rollout of the new retention"),
    );
    let fleet_edit = set(&mut r, LayerRef::Fleet, "dns.ttl", None);
    let me = r.key().clone();
    let addr = r
        .change("ops listens on 10.0.0.1:7000", |d, _| {
            d.set_member_addrs(&me, &["10.0.0.1:7000".into()])
        })
        .unwrap()
        .1
        .unwrap();
    // A node heard with a full disk, and its alert acked.
    r.record_health(&beat(1, now_ms(), 97.0)).unwrap();
    let ack = ops::apply(
        &mut r,
        Op::Ack {
            alert_id: "disk:cam-1:/".into(),
        },
        now_ms(),
    )
    .unwrap()
    .change
    .unwrap();
    let infos = change_infos(r.doc_mut().automerge_mut(), &[edit, fleet_edit, addr, ack]);
    let kinds: Vec<_> = infos.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        vec![
            Some(ChangeKind::Config),
            Some(ChangeKind::Config),
            Some(ChangeKind::Address),
            Some(ChangeKind::Alert)
        ]
    );
    assert!(infos[0].sites.contains("BL-LAB-1"), "{:?}", infos[0]);
    assert!(infos[1].sites.is_empty());

    // The events: changes and the node's, newest first.
    let all = r.events(now - HOUR, now_ms(), &Filter::default()).unwrap();
    let kinds: Vec<&str> = all.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"alert_fired"), "{kinds:?}");
    assert!(kinds.contains(&"config"), "{kinds:?}");
    assert!(kinds.contains(&"fleet"), "{kinds:?}");
    assert!(!kinds.contains(&"address"), "folded by default: {kinds:?}");
    assert!(all.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
    let edit_ev = all
        .iter()
        .find(|e| e.change.as_deref() == Some(edit.to_string().as_str()))
        .unwrap();
    assert_eq!(edit_ev.by, "ops");
    assert_eq!(edit_ev.site.as_deref(), Some("BL-LAB-1"));

    let with_addr = Filter {
        addresses: true,
        ..Filter::default()
    };
    let kinds: Vec<&str> = r
        .events(now - HOUR, now_ms(), &with_addr)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"address"), "{kinds:?}");
    // A site's events: its node's and the changes that name it, not the
    // fleet layer's edit.
    let site = Filter {
        site: Some("BL-LAB-1".into()),
        ..Filter::default()
    };
    let here = r.events(now - HOUR, now_ms(), &site).unwrap();
    assert!(here.iter().any(|e| e.change.as_deref() == Some(edit.to_string().as_str())));
    assert!(here.iter().all(|e| e.change.as_deref() != Some(fleet_edit.to_string().as_str())));
    assert!(here.iter().any(|e| e.kind == "alert_fired"));
    let only = Filter {
        kinds: vec!["alert_fired".into()],
        ..Filter::default()
    };
    let fired = r.events(now - HOUR, now_ms(), &only).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].alert.as_deref(), Some("disk:cam-1:/"));
}

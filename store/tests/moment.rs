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

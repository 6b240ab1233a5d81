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
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) - ?1 AS TEXT) WHERE key = 'record_since'",
        [by_ms],
    )
    .unwrap();
    let changed = conn
        .execute("UPDATE arrivals SET at_ms = at_ms - ?1", [by_ms])
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
    assert!(
        here.iter()
            .any(|e| e.change.as_deref() == Some(edit.to_string().as_str()))
    );
    assert!(
        here.iter()
            .all(|e| e.change.as_deref() != Some(fleet_edit.to_string().as_str()))
    );
    assert!(here.iter().any(|e| e.kind == "alert_fired"));
    let only = Filter {
        kinds: vec!["alert_fired".into()],
        ..Filter::default()
    };
    let fired = r.events(now - HOUR, now_ms(), &only).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].alert.as_deref(), Some("disk:cam-1:/"));
}

#[test]
fn what_the_replica_held_at_a_time_is_every_change_arrived_by_then() {
    use fleetdeck_store::replica::load_or_create_identity;
    let tmp = tempfile::tempdir().unwrap();
    let mut a = fleet(&tmp.path().join("a"));
    // B, an operator enrolled by A, writes concurrently with A.
    let b_key = load_or_create_identity(&tmp.path().join("b"))
        .unwrap()
        .key()
        .clone();
    ops::apply(
        &mut a,
        Op::MemberAdd {
            key: b_key,
            name: "b".into(),
            role: fleetdeck_store::Role::Operator,
        },
        now_ms(),
    )
    .unwrap();
    let mut b = Replica::init_from_changes(&tmp.path().join("b"), a.changes_after(&[])).unwrap();
    let base = a.heads();
    let set = |r: &mut Replica, key: &str| {
        use fleetdeck_store::config::ConfigPath;
        use fleetdeck_store::document::LayerRef;
        use fleetdeck_store::ops::ConfigEdit;
        ops::apply(
            r,
            Op::Config {
                layer: LayerRef::Fleet,
                edits: vec![ConfigEdit::Set(
                    ConfigPath::parse(key).unwrap(),
                    serde_json::json!(1),
                )],
                message: None,
            },
            now_ms(),
        )
        .unwrap()
        .change
        .unwrap()
    };
    let from_a = set(&mut a, "a.key");
    let from_b = set(&mut b, "b.key");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(20));
    a.apply_changes(b.changes_after(&base)).unwrap();

    assert_eq!(a.heads_at_time(before).unwrap(), vec![from_a]);
    let mut now = a.heads_at_time(now_ms()).unwrap();
    now.sort();
    let mut both = vec![from_a, from_b];
    both.sort();
    assert_eq!(now, both);
    // What the replica held then is the fleet then: B's key is not in it.
    let heads_then = a.heads_at_time(before).unwrap();
    let then = a.state_at(&heads_then).unwrap();
    assert!(then.fleet.keys().any(|k| k.to_key() == "a.key"));
    assert!(!then.fleet.keys().any(|k| k.to_key() == "b.key"));
}

#[test]
fn before_the_arrivals_record_the_old_heads_log_still_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = fleet(tmp.path());
    let genesis_heads = r.heads();
    drop(r);
    // A replica upgraded from schema 5: its heads log ran before the
    // arrivals record began (here, an hour ago).
    let conn = rusqlite::Connection::open(tmp.path().join("replica.db")).unwrap();
    conn.execute_batch("CREATE TABLE heads_log (at_ms INTEGER NOT NULL, heads BLOB NOT NULL);")
        .unwrap();
    let now = now_ms();
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'record_since'",
        [(now - HOUR).to_string()],
    )
    .unwrap();
    let blob: Vec<u8> = genesis_heads.iter().flat_map(|h| h.0).collect();
    conn.execute(
        "INSERT INTO heads_log (at_ms, heads) VALUES (?1, ?2)",
        rusqlite::params![now - 2 * HOUR, blob],
    )
    .unwrap();
    drop(conn);
    let mut r = Replica::open(tmp.path()).unwrap();
    assert_eq!(r.heads_at_time(now - 90 * 60_000).unwrap(), genesis_heads);
    let e = r.heads_at_time(now - 3 * HOUR).unwrap_err().to_string();
    assert!(e.contains("no data that old"), "{e}");
}

#[test]
fn a_past_moment_shows_the_command_results_nodes_had_reported_by_then() {
    use fleetdeck_store::document::CommandResult;
    use fleetdeck_store::ops::CommandTarget;
    let tmp = tempfile::tempdir().unwrap();
    let mut r = fleet(tmp.path());
    let cam = NodeId::parse("cam-1").unwrap();
    r.change("an action", |d, _| {
        d.set_config(
            &fleetdeck_store::document::LayerRef::Fleet,
            &fleetdeck_store::config::ConfigPath::parse("actions.reboot").unwrap(),
            &serde_json::json!({"cmd": "systemctl reboot", "timeout_s": 10}),
        )
    })
    .unwrap();
    ops::apply(
        &mut r,
        Op::CommandRun {
            id: Some("c1".into()),
            action: "reboot".into(),
            target: CommandTarget::Node(cam.clone()),
        },
        now_ms(),
    )
    .unwrap();
    drop(r);
    // The command was run four hours ago; the node's result came in two
    // hours ago, into its results register (never the document).
    backdate(tmp.path(), 4 * HOUR);
    let mut r = Replica::open(tmp.path()).unwrap();
    let now = now_ms();
    let result = CommandResult {
        exit_code: Some(0),
        ok: true,
        output: "rebooting".into(),
        at_ms: now - 2 * HOUR,
    };
    r.record_command_result(&cam, "c1", result.clone()).unwrap();
    assert_eq!(r.command_results("c1").get("cam-1"), Some(&result));

    let before = r.moment_at(now - 3 * HOUR).unwrap();
    assert!(before.state.commands.contains_key("c1"));
    assert!(
        !before.state.command_results.contains_key("c1"),
        "not reported yet then: {:?}",
        before.state.command_results
    );
    let after = r.moment_at(now - HOUR).unwrap();
    assert_eq!(
        after.state.command_results["c1"].get("cam-1"),
        Some(&result)
    );
}

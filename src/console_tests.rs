//! The console's source over a real replica: its operations go through
//! the store's operations API like the CLI's.

use std::collections::BTreeMap;

use fleetdeck_store::at::At;
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

/// The source over a replica whose record of what it held and heard
/// begins `by_ms` ago (as if it had been running that long).
fn backdated_source(dir: &Path, by_ms: i64) -> ReplicaSource {
    drop(source(dir));
    let conn = rusqlite::Connection::open(dir.join("replica.db")).unwrap();
    conn.execute(
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) - ?1 AS TEXT) WHERE key = 'record_since'",
        [by_ms],
    )
    .unwrap();
    conn.execute("UPDATE arrivals SET at_ms = at_ms - ?1", [by_ms])
        .unwrap();
    drop(conn);
    let r = Replica::open(dir).unwrap();
    let sync = SyncStatus::Off {
        reason: "test".into(),
    };
    ReplicaSource::new(dir, Holder::Local(Box::new(r)), sync)
}

fn beat(seq: u64, time_ms: i64, disk: f64) -> fleetdeck_store::health::HealthRegister {
    use fleetdeck_store::health::{DiskUsage, HealthRegister, Metrics};
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

const MIN: i64 = 60_000;

/// cam-1 heard every 10 s for the last 40 minutes; its disk full from 40
/// to 20 minutes ago.
fn heard_with_a_full_disk(s: &mut ReplicaSource) -> i64 {
    let now = now_ms();
    s.with(|r| {
        for i in 0..240u64 {
            let at = now - 40 * MIN + i as i64 * 10_000;
            let disk = if at < now - 20 * MIN { 97.0 } else { 40.0 };
            r.record_health_aged(&beat(i + 1, at, disk), (now - at) as u64)
                .unwrap();
        }
    });
    now
}

#[test]
fn history_rows_say_what_each_change_did_and_what_it_edited() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = source(tmp.path());
    let rows = s.history();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["rollout", "config", "config", "fleet", "fleet", "genesis"]
    );
    // The site's retention: set in its layer, nothing before.
    let edits = s.change_edits(&rows[1].entry.id).unwrap();
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert_eq!(edits[0].layer, "site BL-LAB-1");
    assert_eq!(edits[0].key, "retention.days");
    assert_eq!(
        (&edits[0].before, &edits[0].after),
        (&None, &Some(json!(9)))
    );
    // Asked again (the cache of kinds): the same answer.
    let again: Vec<_> = s.history().iter().map(|r| r.kind).collect();
    assert_eq!(again, rows.iter().map(|r| r.kind).collect::<Vec<_>>());
    let e = s.change_edits("not-a-change").unwrap_err();
    assert_eq!(e, "'not-a-change' is not a whole change id");
}

#[test]
fn the_source_gives_the_fleet_at_a_past_moment_and_its_events() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = backdated_source(tmp.path(), 60 * MIN);
    let now = heard_with_a_full_disk(&mut s);
    let then = s.moment_at(&At::Time(now - 30 * MIN)).unwrap();
    assert_eq!(then.taken_ms, now - 30 * MIN);
    assert!(then.alert("disk:cam-1:/").is_some(), "{:?}", then.alerts);
    assert_eq!(
        then.sync,
        SyncStatus::Off {
            reason: "a past moment".into()
        }
    );
    assert!(s.snapshot().alert("disk:cam-1:/").is_none());
    // Before the record began, and a change that is not there.
    let e = s.moment_at(&At::Time(now - 2 * 60 * MIN)).unwrap_err();
    assert!(e.starts_with("no data that old"), "{e}");
    let e = s.moment_at(&At::Change("ffff1234".into())).unwrap_err();
    assert!(e.starts_with("ffff1234: not a time"), "{e}");
    // The events: the disk alert fired and resolved, the changes.
    let events = s.events(now - 50 * MIN, now, &Filter::default()).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"alert_fired"), "{kinds:?}");
    assert!(kinds.contains(&"alert_resolved"), "{kinds:?}");
    let resolved = events.iter().find(|e| e.kind == "alert_resolved").unwrap();
    assert!(
        (resolved.at_ms - (now - 20 * MIN)).abs() < 11_000,
        "{resolved:?}"
    );
}

#[test]
fn the_console_steps_through_a_real_replicas_past_and_refuses_to_write_there() {
    use fleetdeck_tui::{Action, App, Options};
    let tmp = tempfile::tempdir().unwrap();
    let mut s = backdated_source(tmp.path(), 60 * MIN);
    let now = heard_with_a_full_disk(&mut s);
    let mut app = App::new(s.snapshot(), now, Options::default());
    app.pump(&mut s);
    app.go_to_moment("30m");
    app.pump(&mut s);
    let at = app.as_of().expect("as of 30 minutes ago");
    assert!((at - (now - 30 * MIN)).abs() < 1_000, "{at}");
    // From there, → is the next event: the disk alert resolving.
    app.act(Action::LaterEvent);
    app.pump(&mut s);
    let said = app.message().unwrap().text.clone();
    assert!(
        said.contains("alert resolved cam-1 — resolved disk"),
        "{said}"
    );
    let at = app.as_of().unwrap();
    assert!((at - (now - 20 * MIN)).abs() < 11_000, "{at}");
    // Nothing is written in the past.
    let before = s.history().len();
    app.apply(Intent::Ack {
        alert_id: "disk:cam-1:/".into(),
    });
    app.pump(&mut s);
    assert_eq!(s.history().len(), before);
    assert!(app.message().unwrap().error);
    app.act(Action::Back);
    assert_eq!(app.as_of(), None);
}

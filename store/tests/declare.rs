//! The fleet as a file: export, parse, plan and apply through the one door.

use std::path::Path;

use fleetdeck_store::declare::{FleetSpec, Step, plan};
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, SiteId, StoreError, now_ms};
use serde_json::json;

const FILE: &str = r#"
[config]
retention.days = 30
frigate = { version = "0.14", detectors = ["cpu", "coral"] }

[sites.BL-LAB-1]
name = "Lab 1"
lat = 38.7
lon = -9.1
zone = "lisbon"
cleared = ["frigate.detectors"]
[sites.BL-LAB-1.config]
retention.days = 14

[sites.BL-WH-N]
name = "Warehouse north"

[nodes.cam-1]
site = "BL-LAB-1"
role = "nvr"
[nodes.cam-1.config.mqtt]
topic = "lab/cam-1"

[nodes.cam-2]
site = "BL-WH-N"
"#;

fn apply(r: &mut Replica, text: &str, prune: bool) -> fleetdeck_store::Result<ops::Done> {
    let spec = FleetSpec::parse(text)?;
    ops::apply(
        r,
        Op::Declare {
            spec: Box::new(spec),
            prune,
        },
        now_ms(),
    )
}

fn invalid(text: &str) -> String {
    match FleetSpec::parse(text) {
        Err(StoreError::Invalid(m)) => m,
        other => panic!("expected the file refused, got {other:?}"),
    }
}

#[test]
fn a_file_applied_once_is_the_fleet_and_exports_back_to_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let heads = r.heads();
    let done = apply(&mut r, FILE, false).unwrap();
    assert!(done.change.is_some());
    assert_eq!(
        r.changes_after(&heads).len(),
        1,
        "the whole file is one change"
    );
    let st = r.state();
    let lab = SiteId::parse("BL-LAB-1").unwrap();
    assert_eq!(st.sites[&lab].record.zone.as_deref(), Some("lisbon"));
    let eff = st
        .effective_node(&NodeId::parse("cam-1").unwrap())
        .unwrap()
        .to_tree();
    assert_eq!(eff["retention"]["days"], json!(14), "the site layer wins");
    assert_eq!(eff["mqtt"]["topic"], json!("lab/cam-1"));
    assert_eq!(eff["frigate"]["version"], json!("0.14"));
    assert!(
        eff["frigate"].get("detectors").is_none(),
        "the site clears the inherited list: {eff}"
    );
    let eff2 = st
        .effective_node(&NodeId::parse("cam-2").unwrap())
        .unwrap()
        .to_tree();
    assert_eq!(eff2["frigate"]["detectors"], json!(["cpu", "coral"]));

    // Export, read back: the same spec, and applying it changes nothing.
    let text = FleetSpec::of(r.state()).to_toml().unwrap();
    let again = FleetSpec::parse(&text).unwrap();
    assert_eq!(again, FleetSpec::of(r.state()), "export:\n{text}");
    let p = plan(r.state(), &again, true).unwrap();
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    let done = apply(&mut r, &text, false).unwrap();
    assert_eq!(done.change, None);
    assert!(done.summary.contains("nothing changed"), "{}", done.summary);
}

#[test]
fn a_changed_file_sets_unsets_moves_and_prunes_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    apply(&mut r, FILE, false).unwrap();
    // cam-2 moves to the lab, the lab's retention goes, a key changes, the
    // warehouse and its node are not named.
    let next = r#"
[config]
retention.days = 45
frigate = { version = "0.14", detectors = ["cpu", "coral"] }
[sites.BL-LAB-1]
name = "Lab one"
[nodes.cam-1]
site = "BL-LAB-1"
role = "nvr"
[nodes.cam-1.config.mqtt]
topic = "lab/cam-1"
[nodes.cam-3]
site = "BL-LAB-1"
"#;
    let spec = FleetSpec::parse(next).unwrap();
    let p = plan(r.state(), &spec, false).unwrap();
    let lines: Vec<String> = p.steps.iter().map(Step::line).collect();
    assert!(
        lines.contains(&"+ node cam-3 (site BL-LAB-1)".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"~ fleet: retention.days = 30 → 45".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"- site BL-LAB-1: retention.days (was 14)".to_string()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("~ site BL-LAB-1: name \"Lab 1\"")),
        "{lines:?}"
    );
    assert_eq!(p.kept[..2], ["node cam-2", "site BL-WH-N"]);
    assert!(p.kept[2].starts_with("member ops"), "{:?}", p.kept);
    let done = apply(&mut r, next, false).unwrap();
    assert!(done.summary.contains("kept"), "{}", done.summary);
    let st = r.state();
    assert!(st.nodes.contains_key(&NodeId::parse("cam-2").unwrap()));
    assert!(st.nodes.contains_key(&NodeId::parse("cam-3").unwrap()));
    assert_eq!(
        st.sites[&SiteId::parse("BL-LAB-1").unwrap()].record.lat,
        None,
        "the file's site has no place now"
    );

    // A node moved to another site keeps its overrides.
    let moved = next.replace(
        "[nodes.cam-1]\nsite = \"BL-LAB-1\"",
        "[nodes.cam-1]\nsite = \"BL-WH-N\"",
    );
    apply(&mut r, &moved, false).unwrap();
    let st = r.state();
    let cam1 = &st.nodes[&NodeId::parse("cam-1").unwrap()];
    assert_eq!(cam1.site.as_str(), "BL-WH-N");
    assert_eq!(cam1.overrides.len(), 1);

    // --prune: the warehouse's other node goes; the warehouse stays, since
    // cam-1 now lives there and the file must name it.
    let e = apply(&mut r, &moved, true).unwrap_err();
    assert!(e.to_string().contains("nodes.cam-1: site BL-WH-N"), "{e}");
    apply(&mut r, next, true).unwrap();
    let st = r.state();
    assert!(!st.nodes.contains_key(&NodeId::parse("cam-2").unwrap()));
    assert!(!st.sites.contains_key(&SiteId::parse("BL-WH-N").unwrap()));
    assert_eq!(st.nodes.len(), 2);
}

#[test]
fn bad_files_are_refused_naming_the_entry_and_nothing_is_written() {
    for (text, says) in [
        ("[sites.bad/site]\nname = \"x\"", "sites.bad/site"),
        ("[sites.S1]\nname = \"\"", "sites.S1"),
        (
            "[sites.S1]\nname = \"x\"\nlat = 91.0\nlon = 0.0",
            "latitude 91",
        ),
        ("[sites.S1]\nname = \"x\"\nowner = \"me\"", "owner"),
        ("[nodes.n1]\nsite = \"S 1\"", "nodes.n1.site"),
        ("[config]\nwhen = 2026-01-01", "quote it"),
        ("[config]\nx = nan", "finite"),
        (
            "[members.notakey]\nname = \"a\"\nrole = \"admin\"",
            "members.notakey",
        ),
        (
            "[sites.S1]\nname = \"x\"\ncleared = [\"a\"]\n[sites.S1.config]\na = 1",
            "both set and cleared",
        ),
        ("this is not toml", ""),
    ] {
        let m = invalid(text);
        assert!(m.contains(says), "{text:?} → {m}");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let before = r.heads();
    // A node on a site that exists nowhere: refused whole.
    let e = apply(
        &mut r,
        "[sites.S1]\nname = \"x\"\n[nodes.n1]\nsite = \"S2\"",
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("nodes.n1: site S2"), "{e}");
    assert_eq!(r.heads(), before, "nothing written");
    assert!(r.state().sites.is_empty());
}

fn enrolled(dir: &Path, other: &Path, role: Role) -> (Replica, Replica) {
    let mut admin = Replica::init(dir, "ops", "blocao").unwrap();
    let key = load_or_create_identity(other).unwrap().key().clone();
    admin
        .change("enroll", |d, _| d.put_member(&key, "them", role, now_ms()))
        .unwrap();
    let them = Replica::init_from_changes(other, admin.changes_after(&[])).unwrap();
    (admin, them)
}

#[test]
fn who_may_apply_what_follows_the_roles() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (admin, mut viewer) = enrolled(a.path(), b.path(), Role::Viewer);
    let e = apply(&mut viewer, FILE, false).unwrap_err();
    assert!(matches!(e, StoreError::Denied(_)), "{e}");

    let (c, d) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin2, mut operator) = enrolled(c.path(), d.path(), Role::Operator);
    apply(&mut operator, FILE, false).expect("an operator applies sites, nodes and plain keys");
    // A program key takes an admin.
    let e = apply(
        &mut operator,
        &format!("{FILE}\n[nodes.cam-2.config.actions.reboot]\ncmd = [\"reboot\"]\n"),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("actions"), "{e}");
    // Members: an operator may not touch them; the admin may promote.
    let mut text = FleetSpec::of(operator.state()).to_toml().unwrap();
    text = text.replace("role = \"operator\"", "role = \"admin\"");
    let e = apply(&mut operator, &text, false).unwrap_err();
    assert!(e.to_string().contains("members"), "{e}");
    let theirs = operator.changes_after(&admin2.heads());
    admin2.apply_changes(theirs).unwrap();
    let mut admin2_text = FleetSpec::of(admin2.state()).to_toml().unwrap();
    admin2_text = admin2_text.replace("role = \"operator\"", "role = \"admin\"");
    apply(&mut admin2, &admin2_text, false).unwrap();
    assert!(
        admin2
            .state()
            .members
            .values()
            .all(|m| m.role == Role::Admin)
    );
    // Nobody demotes every admin at once.
    let none = admin2_text.replace("role = \"admin\"", "role = \"operator\"");
    let e = apply(&mut admin2, &none, false).unwrap_err();
    assert!(e.to_string().contains("without an admin"), "{e}");
    drop(admin);
}

#[test]
fn a_thousand_sites_import_in_one_change() {
    let mut text = String::from("[config]\nretention.days = 30\n");
    for s in 0..1000 {
        text.push_str(&format!(
            "[sites.S-{s:04}]\nname = \"Site {s}\"\nzone = \"z{}\"\n[sites.S-{s:04}.config]\nretention.days = {}\n",
            s % 10,
            7 + s % 20
        ));
        for n in 0..3 {
            text.push_str(&format!(
                "[nodes.n-{s:04}-{n}]\nsite = \"S-{s:04}\"\nrole = \"cam\"\n[nodes.n-{s:04}-{n}.config]\nmqtt.topic = \"s{s}/n{n}\"\n"
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let heads = r.heads();
    let done = apply(&mut r, &text, false).unwrap();
    assert_eq!(r.changes_after(&heads).len(), 1);
    assert!(
        done.summary.contains("1000 sites added"),
        "{}",
        done.summary
    );
    assert_eq!(r.state().nodes.len(), 3000);
    // The change passes the size rules every peer applies to it.
    let c = r.changes_after(&heads).remove(0);
    let (bytes, ops) = (c.change.raw_bytes().len(), c.change.len());
    println!("1,000 sites and 3,000 nodes: one change of {bytes} bytes, {ops} ops");
    assert!(bytes < fleetdeck_store::rights::MAX_CHANGE_BYTES);
    assert!(ops < fleetdeck_store::rights::MAX_CHANGE_OPS);
}

#[test]
fn a_change_every_peer_would_refuse_is_not_written_and_the_replica_goes_on() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut admin, mut operator) = enrolled(a.path(), b.path(), Role::Operator);
    // Over the 4 MiB a change may hold: 25 values of 200 KB.
    let mut big = String::from("[sites.big]\nname = \"big\"\n[sites.big.config]\n");
    for i in 0..25 {
        big.push_str(&format!("k{i} = \"{}\"\n", "x".repeat(200_000)));
    }
    let before = operator.heads();
    let e = apply(&mut operator, &big, false).unwrap_err();
    assert!(
        e.to_string().contains("every peer would refuse it") && e.to_string().contains("bytes"),
        "{e}"
    );
    assert_eq!(operator.heads(), before, "nothing written");
    assert!(operator.state().sites.is_empty());
    // The replica goes on: a small file applies, and its change is one the
    // admin's replica takes.
    apply(&mut operator, "[sites.small]\nname = \"small\"", false).unwrap();
    let theirs = operator.changes_after(&admin.heads());
    admin.apply_changes(theirs).unwrap();
    assert_eq!(admin.state().sites.len(), 1);

    // --prune by an operator may not remove a layer holding a key only
    // admins write.
    let program = ops::apply(
        &mut admin,
        Op::Config {
            layer: fleetdeck_store::document::LayerRef::Site(SiteId::parse("small").unwrap()),
            edits: vec![fleetdeck_store::ops::ConfigEdit::Set(
                fleetdeck_store::config::ConfigPath::parse("apply.check").unwrap(),
                json!("true"),
            )],
            message: None,
        },
        now_ms(),
    )
    .unwrap();
    assert!(program.change.is_some());
    let theirs = admin.changes_after(&operator.heads());
    operator.apply_changes(theirs).unwrap();
    let e = apply(&mut operator, "[sites.other]\nname = \"other\"", true).unwrap_err();
    assert!(e.to_string().contains("apply.check"), "{e}");
    assert!(
        operator
            .state()
            .sites
            .contains_key(&SiteId::parse("small").unwrap())
    );
}

#[test]
fn a_key_that_changes_shape_is_one_step_and_a_file_without_config_keeps_the_fleet_layer() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    apply(
        &mut r,
        "[config]\nx = 1\ntab.inner.k = 1\ntab.other = 2\n",
        false,
    )
    .unwrap();
    // x becomes a table, tab a value: applied at once, nothing lost.
    apply(&mut r, "[config]\nx.sub = 2\ntab = 5\n", false).unwrap();
    let text = FleetSpec::of(r.state()).to_toml().unwrap();
    let again = FleetSpec::parse(&text).unwrap();
    let fleet = again.fleet.unwrap();
    let keys: Vec<String> = fleet.keys().map(|k| k.to_string()).collect();
    assert_eq!(keys, ["tab", "x.sub"], "{text}");
    let p = plan(
        r.state(),
        &FleetSpec::parse("[config]\nx.sub = 2\ntab = 5\n").unwrap(),
        false,
    )
    .unwrap();
    assert!(p.steps.is_empty(), "{:?}", p.steps);

    // No [config]: the fleet layer is not named, so it stays; an empty
    // [config] names it empty.
    let done = apply(&mut r, "[sites.s1]\nname = \"s\"\n", false).unwrap();
    assert!(done.summary.contains("1 site added"), "{}", done.summary);
    assert_eq!(r.state().fleet.len(), 2);
    apply(&mut r, "[config]\n[sites.s1]\nname = \"s\"\n", false).unwrap();
    assert!(r.state().fleet.is_empty());
}

#[test]
fn demoting_the_last_admin_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let r = Replica::init(dir.path(), "ops", "blocao").unwrap();
    let text = FleetSpec::of(r.state())
        .to_toml()
        .unwrap()
        .replace("role = \"admin\"", "role = \"operator\"");
    let spec = FleetSpec::parse(&text).unwrap();
    // What --dry-run asks: the rule, not "would apply".
    let e = ops::check(
        r.state(),
        r.key(),
        &Op::Declare {
            spec: Box::new(spec),
            prune: false,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("without an admin"), "{e}");
    let e = FleetSpec::parse(&text.replace("name = \"ops\"", "name = \"o\\nps\"")).unwrap_err();
    assert!(e.to_string().contains("printable"), "{e}");
}

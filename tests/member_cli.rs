//! `fleetdeck member list|role|revoke` and `node rm --revoke`, as operators
//! and scripts run them: real processes on a temporary data dir.

use std::path::Path;
use std::process::{Command, Output};

use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, now_ms};
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

fn ok(dir: &Path, args: &[&str]) -> (String, String) {
    let out = fd(dir, args);
    assert!(
        out.status.success(),
        "fleetdeck {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn fail(dir: &Path, args: &[&str]) -> String {
    let out = fd(dir, args);
    assert!(!out.status.success(), "fleetdeck {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn members(dir: &Path) -> Vec<Value> {
    let (out, _) = ok(dir, &["--json", "member", "list"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn member_list_role_and_revoke_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    ok(&a, &["init", "--name", "ops-laptop", "--fleet", "blocao"]);
    ok(&a, &["site", "add", "BL-LAB-1", "--name", "lab"]);
    ok(&a, &["node", "add", "cam-1", "cam-2", "--site", "BL-LAB-1"]);
    // Two devices enrolled, one bound to cam-1, the other to cam-2.
    let k1 = load_or_create_identity(&tmp.path().join("d1"))
        .unwrap()
        .key()
        .clone();
    let k2 = load_or_create_identity(&tmp.path().join("d2"))
        .unwrap()
        .key()
        .clone();
    {
        let mut r = Replica::open(&a).unwrap();
        for (k, name) in [(&k1, "cam-1-box"), (&k2, "cam-2-box")] {
            ops::apply(
                &mut r,
                Op::MemberAdd {
                    key: k.clone(),
                    name: name.into(),
                    role: Role::Node,
                },
                now_ms(),
            )
            .unwrap();
        }
        r.change("bind", |d, _| {
            d.bind_node(&NodeId::parse("cam-1").unwrap(), &k1)?;
            d.bind_node(&NodeId::parse("cam-2").unwrap(), &k2)
        })
        .unwrap();
    }

    let list = members(&a);
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|m| m["revoked"] == false));
    let (text, _) = ok(&a, &["member", "list"]);
    assert!(
        text.contains("NAME") && text.contains("cam-1-box") && text.contains(&k1.as_str()[..8])
    );

    // Role by name; by key prefix.
    let (out, _) = ok(&a, &["member", "role", "cam-1-box", "operator"]);
    assert!(out.contains("cam-1-box is an operator now"), "{out}");
    let (out, _) = ok(&a, &["member", "role", &k1.as_str()[..12], "viewer"]);
    assert!(out.contains("viewer"), "{out}");
    let err = fail(&a, &["member", "role", "nobody", "viewer"]);
    assert!(err.contains("no member 'nobody'"), "{err}");
    let err = fail(&a, &["member", "role", "ops-laptop", "operator"]);
    assert!(err.contains("last admin"), "{err}");
    let err = fail(&a, &["member", "revoke", "ops-laptop"]);
    assert!(err.contains("last admin"), "{err}");

    // Revoke: what it did, and the reminder.
    let (out, note) = ok(&a, &["member", "revoke", "cam-1-box"]);
    assert!(out.contains("revoked cam-1-box"), "{out}");
    assert!(out.contains("rotate secrets"), "{out}");
    assert!(note.contains("rotate secrets"), "{note}");
    let list = members(&a);
    let m = list.iter().find(|m| m["name"] == "cam-1-box").unwrap();
    assert_eq!(m["revoked"], true);
    let err = fail(&a, &["member", "revoke", "cam-1-box"]);
    assert!(err.contains("revoked already"), "{err}");

    // node rm without --revoke names the command; with it, revokes.
    let (_, note) = ok(&a, &["node", "rm", "cam-2"]);
    assert!(note.contains("fleetdeck member revoke"), "{note}");
    ok(&a, &["node", "add", "cam-2", "--site", "BL-LAB-1"]);
    {
        let mut r = Replica::open(&a).unwrap();
        r.change("bind", |d, _| {
            d.bind_node(&NodeId::parse("cam-2").unwrap(), &k2)
        })
        .unwrap();
    }
    let (out, _) = ok(&a, &["node", "rm", "cam-2", "--revoke"]);
    assert!(out.contains("removed node cam-2"), "{out}");
    assert!(out.contains("revoked cam-2-box"), "{out}");
    let list = members(&a);
    assert!(list.iter().filter(|m| m["revoked"] == true).count() == 2);
}

//! `fleetdeck doctor` as an operator runs it: real processes on a temporary
//! data dir, damaged the way disks and old versions damage it.

use std::path::Path;
use std::process::{Command, Output};

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

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = fd(dir, args);
    assert!(
        out.status.success(),
        "fleetdeck {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `doctor` and `doctor --json`: the exit code, the text, the JSON.
fn doctor(dir: &Path) -> (i32, String, Value) {
    let text = fd(dir, &["doctor"]);
    let json = fd(dir, &["--json", "doctor"]);
    assert_eq!(text.status.code(), json.status.code());
    let doc = serde_json::from_slice(&json.stdout).expect("doctor --json prints JSON");
    (
        text.status.code().unwrap(),
        String::from_utf8(text.stdout).unwrap(),
        doc,
    )
}

fn fleet(dir: &Path) {
    ok(dir, &["init", "--name", "ops-laptop", "--fleet", "blocao"]);
    ok(dir, &["site", "add", "BL-LAB-1", "BL-LAB-2"]);
    ok(dir, &["node", "add", "cam-1", "--site", "BL-LAB-1"]);
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("replica.db")).unwrap()
}

/// The hash (hex) of the newest stored change row.
fn newest_change(dir: &Path) -> String {
    let hash: Vec<u8> = db(dir)
        .query_row(
            "SELECT hash FROM changes WHERE id = (SELECT MAX(id) FROM changes)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fleet whose database `sql` then damaged, and the hash of its newest
/// change (the one the damage aims at).
fn damaged(sql: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    fleet(tmp.path());
    let hash = newest_change(tmp.path());
    db(tmp.path()).execute(sql, []).unwrap();
    (tmp, hash)
}

const NEWEST: &str = "(SELECT MAX(id) FROM changes)";

#[test]
fn a_healthy_replica_is_reported_healthy_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fleet(d);
    let (code, text, doc) = doctor(d);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("healthy: nothing needs attention"), "{text}");
    assert!(text.contains("fleet 'blocao'"), "{text}");
    assert_eq!(doc["healthy"], true);
    assert_eq!(doc["opens"], true);
    assert_eq!(doc["unsigned"], false);
    assert_eq!(doc["fleet"], "blocao");
    assert_eq!(doc["member"]["name"], "ops-laptop");
    assert_eq!(doc["member"]["role"], "admin");
    assert_eq!(doc["identity"]["private"], true);
    assert_eq!(doc["identity"]["mode"], "600");
    for field in ["attention", "warnings", "quarantined", "problems"] {
        assert_eq!(doc[field], serde_json::json!([]), "{field}: {doc}");
    }
}

#[test]
fn a_corrupt_stored_change_is_named_by_doctor_which_exits_1() {
    let (tmp, hash) = damaged(&format!(
        "UPDATE changes SET data = X'00010203' WHERE id = {NEWEST}"
    ));
    let d = tmp.path();

    // The first open sets the row aside and says so.
    let out = fd(d, &["--json", "doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["healthy"], false);
    assert_eq!(doc["opens"], true);
    let warnings = doc["warnings"].as_array().unwrap();
    assert!(
        warnings.len() == 1 && warnings[0].as_str().unwrap().contains("quarantine"),
        "{doc}"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("need attention"), "{err}");

    // Every later run still names it, from the quarantine.
    let (code, text, doc) = doctor(d);
    assert_eq!(code, 1, "{text}");
    assert_eq!(doc["warnings"], serde_json::json!([]));
    let q = doc["quarantined"].as_array().unwrap();
    assert_eq!(q.len(), 1, "{doc}");
    assert_eq!(q[0]["change"], hash.as_str());
    assert!(
        q[0]["reason"].as_str().unwrap().contains("does not decode"),
        "{doc}"
    );
    assert_eq!(q[0]["held_again"], false);
    for field in ["author", "author_name", "at_ms"] {
        assert!(q[0].get(field).is_some(), "quarantined rows carry {field}");
    }
    assert!(text.contains(&hash[..12]), "{text}");
    assert!(text.contains("does not decode"), "{text}");
    assert!(text.contains("needs attention:"), "{text}");
}

#[test]
fn a_change_whose_signature_was_altered_is_named_with_its_authors_member_name() {
    let (tmp, hash) = damaged(&format!(
        "UPDATE signatures SET sig = zeroblob(64) WHERE hash = (SELECT hash FROM changes WHERE id = {NEWEST})"
    ));
    let d = tmp.path();
    let (code, text, doc) = doctor(d);
    assert_eq!(code, 1, "{text}");
    let q = &doc["quarantined"][0];
    assert_eq!(q["change"], hash.as_str(), "{doc}");
    assert_eq!(q["author_name"], "ops-laptop", "{doc}");
    assert_eq!(q["author"], doc["member"]["key"]);
    assert!(text.contains("ops-laptop"), "{text}");
}

#[test]
fn history_made_before_signing_is_reported_with_what_to_do() {
    // What an older fleetdeck's database looks like once opened by this one.
    let (tmp, _) = damaged(
        "INSERT INTO meta (key, value) SELECT 'unsigned_upto', CAST(MAX(id) AS TEXT) FROM changes",
    );
    let d = tmp.path();
    let (code, text, doc) = doctor(d);
    assert_eq!(code, 1, "{text}");
    assert_eq!(doc["unsigned"], true);
    let attention = doc["attention"].to_string();
    assert!(
        attention.contains("cannot sync") && attention.contains("new fleet"),
        "{attention}"
    );
    assert!(text.contains("re-join"), "{text}");
}

#[cfg(unix)]
#[test]
fn an_identity_readable_by_others_and_a_missing_replica_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fleet(d);
    let key = d.join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, text, doc) = doctor(d);
    assert_eq!(code, 1, "{text}");
    assert_eq!(doc["identity"]["private"], false);
    assert_eq!(doc["identity"]["mode"], "644");
    assert_eq!(doc["opens"], false, "the store refuses such a key");
    assert!(doc["open_error"].as_str().unwrap().contains("chmod 600"));
    assert!(text.contains("chmod 600"), "{text}");

    let empty = tmp.path().join("empty");
    let (code, text, doc) = doctor(&empty);
    assert_eq!(code, 1, "{text}");
    assert_eq!(doc["identity"]["exists"], false);
    assert!(
        doc["open_error"].as_str().unwrap().contains("no replica"),
        "{doc}"
    );
}

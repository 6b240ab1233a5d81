//! Signed changes: every change a replica stores carries its author's
//! signature; rows that fail their check when read back are quarantined,
//! never fatal; changes from elsewhere without a valid signature are
//! refused.

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use fleetdeck_store::identity::Identity;
use fleetdeck_store::ops::{self, ConfigEdit, Op};
use fleetdeck_store::replica::SignedChange;
use fleetdeck_store::{Replica, now_ms};
use serde_json::json;

fn set(r: &mut Replica, key: &str, v: i64) {
    let op = Op::Config {
        layer: fleetdeck_store::document::LayerRef::Fleet,
        edits: vec![ConfigEdit::Set(
            fleetdeck_store::config::ConfigPath::parse(key).unwrap(),
            json!(v),
        )],
        message: None,
    };
    ops::apply(r, op, now_ms()).unwrap();
}

#[test]
fn every_stored_change_carries_a_valid_signature_by_its_author() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "f").unwrap();
    set(&mut r, "a.b", 1);
    let all = r.changes_after(&[]);
    assert_eq!(all.len(), 2);
    for c in &all {
        c.verify().expect("signed by its author");
    }
    // Read back from disk, they still are.
    drop(r);
    let mut r = Replica::open(dir.path()).unwrap();
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    assert!(r.changes_after(&[]).iter().all(|c| c.verify().is_ok()));
}

#[test]
fn a_change_with_a_forged_author_or_no_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut admin = Replica::init(&dir.path().join("a"), "ops", "f").unwrap();
    let mut other =
        Replica::init_from_changes(&dir.path().join("b"), admin.changes_after(&[])).unwrap();
    let before = admin.heads();
    set(&mut admin, "a.b", 1);
    let mut change = admin.changes_after(&before).remove(0);
    // Signed by someone else.
    let mallory = Identity::generate();
    change.sig = Some(mallory.sign_change(&change.change.hash()));
    let e = other.apply_changes(vec![change.clone()]).unwrap_err();
    assert!(e.to_string().contains("is not signed by that key"), "{e}");
    // Not signed at all.
    change.sig = None;
    let e = other.apply_changes(vec![change]).unwrap_err();
    assert!(e.to_string().contains("no signature came with it"), "{e}");
    // With its real signature, it goes in.
    let good = admin.changes_after(&before);
    other.apply_changes(good).unwrap();
    assert_eq!(other.heads(), admin.heads());
}

#[test]
fn a_flipped_bit_in_a_stored_change_is_quarantined_with_its_author_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "f").unwrap();
    set(&mut r, "a.b", 1);
    set(&mut r, "a.c", 2);
    let key = r.key().to_string();
    drop(r);
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    let (id, mut data): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT id, data FROM changes ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // A bit in the change's value, past its header.
    let at = data.len() - 3;
    data[at] ^= 0x01;
    conn.execute(
        "UPDATE changes SET data = ?1 WHERE id = ?2",
        rusqlite::params![data, id],
    )
    .unwrap();
    drop(conn);
    let r = Replica::open(dir.path()).expect("the replica opens");
    let q = r.quarantined().unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    if let Some(author) = &q[0].author {
        assert_eq!(author, &key);
    }
    // The edit before the damaged one is intact.
    let a_b = fleetdeck_store::config::ConfigPath::parse("a.b").unwrap();
    assert_eq!(
        r.state().fleet.get(&a_b).map(|v| (**v).clone()),
        Some(json!(1))
    );
}

#[test]
fn two_stored_changes_for_one_actor_and_seq_leave_the_replica_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "f").unwrap();
    let before = r.heads();
    set(&mut r, "a.b", 1);
    let first = r.changes_after(&before).remove(0);
    // A twin: same actor, same seq, other content, signed by the same key
    // (an author that equivocates).
    let identity = Identity::load(&dir.path().join("identity.key")).unwrap();
    let mut twin_doc = r
        .doc_mut()
        .automerge_mut()
        .fork_at(&before)
        .expect("fork at the state before");
    twin_doc.set_actor(first.change.actor_id().clone());
    let fleet = match twin_doc.get(automerge::ROOT, "fleet").unwrap() {
        Some((_, id)) => id,
        None => panic!("no fleet map"),
    };
    twin_doc.put(&fleet, "a.b", "2").unwrap();
    twin_doc.commit();
    let twin = twin_doc.get_last_local_change().expect("the twin");
    assert_eq!(twin.seq(), first.change.seq());
    assert_ne!(twin.hash(), first.change.hash());
    let sig = identity.sign_change(&twin.hash());
    drop(r);
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    conn.execute(
        "INSERT INTO changes (hash, data) VALUES (?1, ?2)",
        rusqlite::params![&twin.hash().0[..], twin.raw_bytes()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO signatures (hash, sig) VALUES (?1, ?2)",
        rusqlite::params![&twin.hash().0[..], &sig[..]],
    )
    .unwrap();
    drop(conn);
    let r =
        Replica::open(dir.path()).expect("an equivocation does not make the replica unreadable");
    let q = r.quarantined().unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].reason.contains("equivocated"), "{q:?}");
    // And a replica refuses the twin when it arrives from elsewhere.
    let mut r = r;
    let twin = SignedChange {
        change: twin,
        sig: Some(sig),
    };
    assert!(r.equivocates(&twin.change));
}

/// A compressed change chunk that would inflate to gigabytes is refused
/// before automerge inflates it (it does so without a bound).
#[test]
fn a_compressed_change_that_inflates_past_the_limit_is_refused_before_decoding() {
    use std::io::Write;
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..6 {
        deflate.write_all(&zeros).unwrap();
    }
    let data = deflate.finish().unwrap();
    let mut bomb = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let mut len = data.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            bomb.push(b);
            break;
        }
        bomb.push(b | 0x80);
    }
    bomb.extend(&data);
    assert!(bomb.len() < 64 * 1024, "a small file: {} bytes", bomb.len());
    let e = fleetdeck_store::rights::inflates_within_limit(&bomb).unwrap_err();
    assert!(e.contains("MAX_CHANGE_BYTES"), "{e}");
    // Real changes pass, compressed or not.
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::init(dir.path(), "ops", "f").unwrap();
    let big = "x".repeat(10_000);
    let op = Op::Config {
        layer: fleetdeck_store::document::LayerRef::Fleet,
        edits: vec![ConfigEdit::Set(
            fleetdeck_store::config::ConfigPath::parse("motd").unwrap(),
            json!(big),
        )],
        message: None,
    };
    ops::apply(&mut r, op, now_ms()).unwrap();
    for c in r.changes_after(&[]) {
        fleetdeck_store::rights::inflates_within_limit(c.change.raw_bytes()).unwrap();
    }
}

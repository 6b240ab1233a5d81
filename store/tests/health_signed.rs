//! Signed health registers at the replica: its own daemon's are signed with
//! its key; one from anywhere else needs the key bound to its node; a
//! replica from before registers were signed keeps its registers but
//! relays none of them.

use fleetdeck_store::document::{NodeRecord, SiteRecord};
use fleetdeck_store::health::{Admission, HealthRegister, Refusal, SignedRegister};
use fleetdeck_store::identity::Identity;
use fleetdeck_store::{NodeId, Replica, SiteId, now_ms};

fn beat(node: &str, seq: u64) -> HealthRegister {
    HealthRegister {
        node: node.into(),
        seq,
        time_ms: now_ms(),
        ..Default::default()
    }
}

/// A fleet with node cam-1 bound to `key` and cam-2 bound to nobody.
fn fleet(dir: &std::path::Path, key: &Identity) -> Replica {
    let mut r = Replica::init(dir, "ops", "test").unwrap();
    let k = key.key().clone();
    r.change("setup", |d, _| {
        let site = SiteId::parse("S1").unwrap();
        d.add_site(
            &site,
            &SiteRecord {
                name: "S1".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )?;
        for n in ["cam-1", "cam-2"] {
            d.add_node(
                &NodeId::parse(n).unwrap(),
                &NodeRecord {
                    site: "S1".into(),
                    role: None,
                },
            )?;
        }
        d.bind_node(&NodeId::parse("cam-1").unwrap(), &k)
    })
    .unwrap();
    r
}

fn refusal(a: Admission) -> Refusal {
    match a {
        Admission::Refused { why, .. } => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_register_is_refused_for_an_unbound_or_unknown_node_and_stored_for_its_bound_key() {
    let dir = tempfile::tempdir().unwrap();
    let cam1 = Identity::generate();
    let mut r = fleet(dir.path(), &cam1);
    let s = |reg: &HealthRegister| SignedRegister::sign(reg, &cam1).unwrap();
    assert_eq!(
        refusal(r.admit_health(&s(&beat("cam-2", 1)), 0).unwrap()),
        Refusal::Unbound
    );
    assert_eq!(
        refusal(r.admit_health(&s(&beat("cam-9", 1)), 0).unwrap()),
        Refusal::UnknownNode
    );
    let garbage = SignedRegister {
        bytes: b"{not json".to_vec(),
        sig: vec![0; 64],
    };
    assert!(matches!(
        r.admit_health(&garbage, 0).unwrap(),
        Admission::Refused {
            why: Refusal::Undecodable(_),
            ..
        }
    ));
    // The replica's own key is not cam-1's: what it signs for cam-1 is
    // refused when offered as coming from elsewhere.
    let by_me = SignedRegister::sign(&beat("cam-1", 1), r.identity()).unwrap();
    assert!(matches!(
        refusal(r.admit_health(&by_me, 0).unwrap()),
        Refusal::WrongKey { .. }
    ));
    assert_eq!(
        r.admit_health(&s(&beat("cam-1", 1)), 0).unwrap(),
        Admission::Stored
    );
    assert_eq!(r.health()["cam-1"].reg.seq, 1);
    assert_eq!(r.signed_health("cam-1").unwrap().unwrap(), s(&beat_at(&r)));
}

/// The register `r` holds of cam-1, re-made from its fields.
fn beat_at(r: &Replica) -> HealthRegister {
    r.health()["cam-1"].reg.clone()
}

#[test]
fn the_daemons_own_register_is_signed_with_the_replicas_key_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Identity::generate();
    let mut r = fleet(dir.path(), &node);
    r.record_health(&beat("cam-2", 41)).unwrap();
    let signed = r.signed_health("cam-2").unwrap().unwrap();
    assert!(signed.signed_by(r.key()));
    drop(r);
    let r = Replica::open(dir.path()).unwrap();
    assert_eq!(r.health()["cam-2"].reg.seq, 41);
    assert_eq!(r.signed_health("cam-2").unwrap().unwrap(), signed);
}

#[test]
fn registers_of_a_replica_from_before_signing_are_kept_but_not_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let cam1 = Identity::generate();
    let mut r = fleet(dir.path(), &cam1);
    r.record_health(&beat("cam-1", 500)).unwrap();
    drop(r);
    // As a version 3 database had it: no signature column.
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    conn.execute_batch("ALTER TABLE health DROP COLUMN sig; PRAGMA user_version = 3;")
        .unwrap();
    drop(conn);
    let mut r = Replica::open(dir.path()).unwrap();
    assert_eq!(r.health()["cam-1"].reg.seq, 500, "kept");
    assert_eq!(r.signed_health("cam-1").unwrap(), None, "not relayed");
    // cam-1's own signed register replaces it, whatever its seq.
    let fresh = SignedRegister::sign(&beat("cam-1", 2), &cam1).unwrap();
    assert_eq!(r.admit_health(&fresh, 0).unwrap(), Admission::Stored);
    assert_eq!(r.signed_health("cam-1").unwrap(), Some(fresh));
}

//! Sneakernet: bundles carry changes between replicas that share no network.

mod common;

use common::replicas;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::health::{Admission, HealthRegister, Metrics, SignedRegister};
use fleetdeck_store::{Replica, now_ms};
use fleetdeck_sync::bundle::{self, BundleError};
use serde_json::json;

fn set(r: &mut Replica, key: &str, v: serde_json::Value) {
    let p = ConfigPath::parse(key).unwrap();
    r.change("edit", |d, _| d.set_config(&LayerRef::Fleet, &p, &v))
        .unwrap();
}

#[test]
fn a_bundle_carries_edits_and_health_and_importing_twice_changes_nothing() {
    let (tmp, mut reps) = replicas(2);
    let mut b = reps.pop().unwrap();
    let mut a = reps.pop().unwrap();
    set(&mut a, "retention.days", json!(9));
    // n1's register, signed by n1's key (replica 1 runs n1's daemon),
    // as the laptop heard it.
    let beat = HealthRegister {
        node: "n1".into(),
        seq: 3,
        time_ms: now_ms(),
        metrics: Metrics::default(),
        tls: vec![],
        backup: None,
        applied: None,
        ..Default::default()
    };
    let signed = SignedRegister::sign(&beat, b.identity()).unwrap();
    assert_eq!(a.admit_health(&signed, 0).unwrap(), Admission::Stored);
    let file = tmp.path().join("site-a.fdb");
    let e = bundle::export(&mut a, &file).unwrap();
    assert!(e.changes > 1 && e.health == 1);

    let i = bundle::import(&mut b, &file).unwrap();
    assert_eq!((i.changes_new, i.changes_refused, i.health_new), (1, 0, 1));
    assert_eq!(b.heads(), a.heads());
    assert_eq!(b.health()["n1"].reg.seq, 3);

    let i = bundle::import(&mut b, &file).unwrap();
    assert_eq!(
        (i.changes_new, i.health_new),
        (0, 0),
        "importing twice changes nothing"
    );
    // And the import is durable.
    drop(b);
    let b = Replica::open(&common::dir(&tmp, 1)).unwrap();
    assert_eq!(
        b.state()
            .fleet
            .get(&ConfigPath::parse("retention.days").unwrap())
            .map(|v| (**v).clone()),
        Some(json!(9))
    );
}

#[test]
fn truncated_foreign_and_garbage_bundles_are_refused_and_nothing_is_imported() {
    let (tmp, mut reps) = replicas(2);
    let mut b = reps.pop().unwrap();
    let mut a = reps.pop().unwrap();
    set(&mut a, "x", json!(1));
    let file = tmp.path().join("a.fdb");
    bundle::export(&mut a, &file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let before = b.heads();

    let cut = tmp.path().join("cut.fdb");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let e = bundle::import(&mut b, &cut).unwrap_err();
    assert!(matches!(e, BundleError::Damaged { .. }), "{e}");

    let junk = tmp.path().join("junk.fdb");
    std::fs::write(&junk, b"hello, this is not a bundle").unwrap();
    assert!(matches!(
        bundle::import(&mut b, &junk),
        Err(BundleError::NotABundle { .. })
    ));

    let (tmp2, mut other) = replicas(1);
    let foreign = tmp2.path().join("other.fdb");
    bundle::export(&mut other[0], &foreign).unwrap();
    let e = bundle::import(&mut b, &foreign).unwrap_err();
    assert!(matches!(e, BundleError::OtherFleet { .. }), "{e}");
    assert!(e.to_string().contains("nothing was imported"));

    assert_eq!(b.heads(), before, "the replica is unchanged");
}

#[test]
fn changes_by_a_non_member_are_refused_on_import() {
    let (tmp, mut reps) = replicas(1);
    let mut hub = reps.pop().unwrap();
    // An outsider with a copy of the fleet writes something.
    let mut outsider =
        Replica::init_from_changes(&tmp.path().join("outsider"), hub.changes_after(&[])).unwrap();
    let p = ConfigPath::parse("firewall.rules").unwrap();
    outsider
        .forge("edit", |d, _| {
            d.set_config(&LayerRef::Fleet, &p, &json!(["0.0.0.0/0"]))
        })
        .unwrap();
    let file = tmp.path().join("outsider.fdb");
    bundle::export(&mut outsider, &file).unwrap();
    let i = bundle::import(&mut hub, &file).unwrap();
    assert_eq!((i.changes_new, i.changes_refused), (0, 1));
    let rules = ConfigPath::parse("firewall.rules").unwrap();
    assert!(!hub.state().fleet.contains_key(&rules));
}

#[test]
fn a_bundle_carries_command_results_registers_and_a_version_3_bundle_still_imports() {
    use fleetdeck_store::document::CommandResult;
    use fleetdeck_store::results::{ResultsRegister, SignedResults};
    let (tmp, mut reps) = replicas(3);
    let mut c = reps.pop().unwrap();
    let n1 = reps.pop().unwrap();
    let mut a = reps.pop().unwrap();
    // n1's results register (replica 1 runs n1's daemon), as the laptop
    // heard it.
    let reg = ResultsRegister::with_result(
        None,
        "n1",
        "c1",
        CommandResult {
            exit_code: Some(0),
            ok: true,
            output: "restarted".into(),
            at_ms: now_ms(),
        },
        now_ms(),
    );
    let signed = SignedResults::sign(&reg, n1.identity()).unwrap();
    assert_eq!(a.admit_results(&signed).unwrap(), Admission::Stored);
    let file = tmp.path().join("site-a.fdb");
    let e = bundle::export(&mut a, &file).unwrap();
    assert_eq!(e.results, 1);
    let i = bundle::import(&mut c, &file).unwrap();
    assert_eq!((i.results_new, i.results_refused.len()), (1, 0));
    assert_eq!(c.command_results("c1")["n1"].output, "restarted");
    let i = bundle::import(&mut c, &file).unwrap();
    assert_eq!(i.results_new, 0, "importing twice changes nothing");

    // A bundle written by a fleetdeck from before results registers
    // (version 3: changes and health only) still imports.
    let changes: Vec<(Vec<u8>, Vec<u8>)> = a
        .changes_after(&[])
        .iter()
        .map(|c| {
            (
                c.change.raw_bytes().to_vec(),
                c.sig.map_or_else(Vec::new, |s| s.to_vec()),
            )
        })
        .collect();
    let body = (
        a.state().fleet_id.clone(),
        now_ms(),
        changes,
        Vec::<SignedRegister>::new(),
    );
    let mut bytes = b"FLEETDECK-BUNDLE".to_vec();
    bytes.extend_from_slice(&3u16.to_be_bytes());
    bytes.extend(postcard::to_stdvec(&body).unwrap());
    let old = tmp.path().join("v3.fdb");
    std::fs::write(&old, &bytes).unwrap();
    let i = bundle::import(&mut c, &old).unwrap();
    assert_eq!((i.changes_refused, i.results_new), (0, 0));
}

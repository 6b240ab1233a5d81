//! Command results registers at the replica: the daemon's own results go
//! into its node's register, signed with its key, never into the document;
//! one from anywhere else needs the key bound to its node; reads merge the
//! registers with the results nodes from before registers wrote into the
//! document.

use fleetdeck_store::document::{CommandRecord, CommandResult, NodeRecord, SiteRecord};
use fleetdeck_store::health::{Admission, Refusal};
use fleetdeck_store::identity::Identity;
use fleetdeck_store::results::{ResultsRegister, SignedResults};
use fleetdeck_store::{NodeId, Replica, SiteId, now_ms};

fn node(n: &str) -> NodeId {
    NodeId::parse(n).unwrap()
}

fn result(ok: bool, output: &str) -> CommandResult {
    CommandResult {
        exit_code: Some(if ok { 0 } else { 1 }),
        ok,
        output: output.into(),
        at_ms: now_ms(),
    }
}

/// A fleet with cam-1 bound to `k1`, cam-2 bound to `k2`, and command c1
/// for every node.
fn fleet(dir: &std::path::Path, k1: &Identity, k2: &Identity) -> Replica {
    let mut r = Replica::init(dir, "ops", "test").unwrap();
    let (k1, k2) = (k1.key().clone(), k2.key().clone());
    r.change("setup", |d, _| {
        d.add_site(
            &SiteId::parse("S1").unwrap(),
            &SiteRecord {
                name: "S1".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )?;
        for n in ["cam-1", "cam-2", "cam-3"] {
            d.add_node(
                &node(n),
                &NodeRecord {
                    site: "S1".into(),
                    role: None,
                },
            )?;
        }
        d.bind_node(&node("cam-1"), &k1)?;
        d.bind_node(&node("cam-2"), &k2)?;
        d.add_command(
            "c1",
            &CommandRecord {
                action: "restart".into(),
                target: "all".into(),
                by: "ops".into(),
                at_ms: now_ms(),
            },
        )
    })
    .unwrap();
    r
}

fn signed(node: &str, seq: u64, cmd: &str, r: CommandResult, by: &Identity) -> SignedResults {
    let mut reg = ResultsRegister::with_result(None, node, cmd, r, now_ms());
    reg.seq = seq;
    SignedResults::sign(&reg, by).unwrap()
}

fn refusal(a: Admission) -> Refusal {
    match a {
        Admission::Refused { why, .. } => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_daemons_result_goes_into_its_register_not_the_document_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (Identity::generate(), Identity::generate());
    let mut r = fleet(dir.path(), &k1, &k2);
    let changes = r.history().len();
    r.record_command_result(&node("cam-3"), "c1", result(true, "restarted"))
        .unwrap();
    assert_eq!(r.history().len(), changes, "no change in the document");
    assert_eq!(r.command_results("c1")["cam-3"].output, "restarted");
    assert_eq!(
        r.state().command_results["c1"]["cam-3"].output,
        "restarted",
        "the state readers (console, CLI) see it too"
    );
    // The events view: one command_result event, dated by the result.
    let events = r
        .events(0, i64::MAX, &fleetdeck_store::events::Filter::default())
        .unwrap();
    let ev: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "command_result")
        .collect();
    assert_eq!(ev.len(), 1, "{events:?}");
    assert_eq!(ev[0].node.as_deref(), Some("cam-3"));
    assert_eq!(ev[0].site.as_deref(), Some("S1"));
    assert!(ev[0].text.contains("restart (c1): ok"), "{}", ev[0].text);
    let first = r.signed_results("cam-3").unwrap().unwrap();
    assert!(first.signed_by(r.key()));
    r.record_command_result(&node("cam-3"), "c2", result(false, "boom"))
        .unwrap();
    let reg = r.results_registers()["cam-3"].reg.clone();
    assert_eq!(reg.seq, 2);
    assert_eq!(reg.results.len(), 2);
    drop(r);
    let r = Replica::open(dir.path()).unwrap();
    assert_eq!(r.results_registers()["cam-3"].reg, reg);
    assert!(!r.command_results("c2")["cam-3"].ok);
}

#[test]
fn a_register_is_stored_only_when_signed_by_the_key_bound_to_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (Identity::generate(), Identity::generate());
    let mut r = fleet(dir.path(), &k1, &k2);
    // cam-2's key signing cam-1's results: a node planting a result for
    // another node.
    let planted = signed("cam-1", 1, "c1", result(true, "fine"), &k2);
    assert!(matches!(
        refusal(r.admit_results(&planted).unwrap()),
        Refusal::WrongKey { .. }
    ));
    // A forged signature (bytes changed after signing).
    let mut forged = signed("cam-1", 1, "c1", result(false, "disk failed"), &k1);
    let mut lie: ResultsRegister = forged.decode().unwrap();
    lie.results.get_mut("c1").unwrap().ok = true;
    forged.bytes = serde_json::to_vec(&lie).unwrap();
    assert!(matches!(
        refusal(r.admit_results(&forged).unwrap()),
        Refusal::WrongKey { .. }
    ));
    assert_eq!(
        refusal(
            r.admit_results(&signed("cam-3", 1, "c1", result(true, ""), &k1))
                .unwrap()
        ),
        Refusal::Unbound
    );
    assert_eq!(
        refusal(
            r.admit_results(&signed("cam-9", 1, "c1", result(true, ""), &k1))
                .unwrap()
        ),
        Refusal::UnknownNode
    );
    let garbage = SignedResults {
        bytes: b"{not json".to_vec(),
        sig: vec![0; 64],
    };
    assert!(matches!(
        refusal(r.admit_results(&garbage).unwrap()),
        Refusal::Undecodable(_)
    ));
    assert!(r.command_results("c1").is_empty());

    // The real ones, in one batch: stored, one refused alone.
    let out = r
        .admit_results_batch(&[
            signed("cam-1", 2, "c1", result(true, "ok 1"), &k1),
            planted,
            signed("cam-2", 1, "c1", result(false, "failed 2"), &k2),
        ])
        .unwrap();
    assert_eq!(out[0], Admission::Stored);
    assert!(matches!(out[1], Admission::Refused { .. }));
    assert_eq!(out[2], Admission::Stored);
    let got = r.command_results("c1");
    assert_eq!(got.len(), 2);
    assert!(got["cam-1"].ok && !got["cam-2"].ok);
    // An older seq than held: kept out.
    assert_eq!(
        r.admit_results(&signed("cam-1", 1, "c1", result(false, "older"), &k1))
            .unwrap(),
        Admission::Kept
    );
}

#[test]
fn a_legacy_result_in_the_document_is_still_read_beside_the_registers() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (Identity::generate(), Identity::generate());
    let mut r = fleet(dir.path(), &k1, &k2);
    // A result an older cam-2 wrote into the document (the admin may write
    // any node's; the rights rule for nodes is in tests/rights.rs).
    r.change("cam-2 ran restart (c1)", |d, _| {
        d.put_command_result("c1", &node("cam-2"), &result(false, "legacy"))
    })
    .unwrap();
    r.admit_results(&signed("cam-1", 1, "c1", result(true, "register"), &k1))
        .unwrap();
    let got = r.command_results("c1");
    assert_eq!(got["cam-2"].output, "legacy");
    assert_eq!(got["cam-1"].output, "register");
    // A later change to the commands part re-reads the document's results
    // and keeps the registers' over them.
    r.change("another command", |d, _| {
        d.add_command(
            "c2",
            &CommandRecord {
                action: "restart".into(),
                target: "all".into(),
                by: "ops".into(),
                at_ms: now_ms(),
            },
        )
    })
    .unwrap();
    let got = r.command_results("c1");
    assert_eq!(
        (got["cam-1"].output.as_str(), got["cam-2"].output.as_str()),
        ("register", "legacy")
    );
    drop(r);
    let r = Replica::open(dir.path()).unwrap();
    assert_eq!(r.command_results("c1").len(), 2);
}

#[test]
fn an_unreadable_results_row_is_skipped_and_named_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (Identity::generate(), Identity::generate());
    let mut r = fleet(dir.path(), &k1, &k2);
    r.admit_results(&signed("cam-1", 1, "c1", result(true, "ok"), &k1))
        .unwrap();
    drop(r);
    let conn = rusqlite::Connection::open(dir.path().join("replica.db")).unwrap();
    conn.execute(
        "INSERT INTO results (node, seq, received_ms, ver, payload, sig)
         VALUES ('cam-2', 3, 0, 99, x'7b7b7b', x'00')",
        [],
    )
    .unwrap();
    drop(conn);
    let r = Replica::open(dir.path()).unwrap();
    assert_eq!(r.command_results("c1").len(), 1);
    assert!(
        r.warnings()
            .iter()
            .any(|w| w.contains("results register of node cam-2 is unreadable")),
        "{:?}",
        r.warnings()
    );
}

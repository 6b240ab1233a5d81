//! Health registers are signed by the key bound to their node and relayed
//! with the signature: a register signed by anyone else, unsigned, or with
//! a seq that jumps implausibly is refused wherever it enters (a peer, a
//! relay, a bundle), and the rest goes on.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_store::health::{Admission, HealthRegister, SignedRegister};
use fleetdeck_store::{MemberKey, Replica, Role, now_ms};
use fleetdeck_sync::bundle;
use fleetdeck_sync::engine::bind_endpoint;
use fleetdeck_sync::wire::{self, ALPN, Hello, Msg, PROTOCOL_VERSION};
use fleetdeck_sync::{Engine, Faults};

fn beat(node: &str, seq: u64) -> HealthRegister {
    HealthRegister {
        node: node.into(),
        seq,
        time_ms: now_ms(),
        ..Default::default()
    }
}

/// The seq `e` holds of `node`.
fn seq(e: &Engine, node: &str) -> Option<u64> {
    e.with_replica(|r| r.health().get(node).map(|s| s.reg.seq))
}

/// Speaks the wire protocol to `hub` as the member whose replica is
/// `sender` (not running an engine of its own) and sends it `regs`, as a
/// relay would, then hangs up once `done` holds at the hub (or after 10 s).
async fn send_as(
    sender: &Replica,
    hub: &Engine,
    regs: Vec<SignedRegister>,
    mut done: impl FnMut() -> bool,
) {
    let lookup = iroh::address_lookup::MemoryLookup::new();
    let raw = bind_endpoint(
        sender.identity().secret_bytes(),
        "127.0.0.1:0".parse().unwrap(),
        &lookup,
    )
    .await
    .unwrap();
    let conn = raw.connect(hub.endpoint_addr(), ALPN).await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let hello = Msg::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        fleet_id: sender.state().fleet_id.clone(),
        name: "relay".into(),
        token: None,
    });
    wire::write_msg(&mut send, &hello).await.unwrap();
    assert!(matches!(
        wire::read_msg(&mut recv).await.unwrap().0,
        Msg::Hello(_)
    ));
    let regs = regs.into_iter().map(|s| (s, 0)).collect();
    wire::write_msg(&mut send, &Msg::Health(regs))
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), &mut done).await,
        "the hub took in what it should have"
    );
    let _ = send.finish();
    raw.close().await;
}

/// Replica 0 is the hub (an admin's); replica i > 0 runs node n{i}'s
/// daemon. Engines run for `running` only, sharing `faults`; the others'
/// replicas are returned to act as raw peers.
async fn hub_and_nodes(
    n: usize,
    running: &[usize],
    role: impl Fn(usize) -> Role,
    faults: &Faults,
) -> (tempfile::TempDir, Vec<Option<Engine>>, Vec<Option<Replica>>) {
    let (tmp, reps) = replicas_as(n, role);
    let mut engines = Vec::new();
    let mut idle = Vec::new();
    for (i, r) in reps.into_iter().enumerate() {
        if running.contains(&i) {
            let mut cfg = config();
            cfg.faults = faults.clone();
            engines.push(Some(Engine::start(r, cfg).await.unwrap()));
            idle.push(None);
        } else {
            engines.push(None);
            idle.push(Some(r));
        }
    }
    let hub = engines[0].as_ref().unwrap().endpoint_addr();
    for e in engines.iter().skip(1).flatten() {
        e.connect(hub.clone());
    }
    (tmp, engines, idle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_for_a_node_signed_by_another_members_key_is_refused_by_the_hub() {
    // n2's replica (a member, its engine not running) sends the hub a
    // register for n1 signed by its own key, and its own register.
    let (_tmp, engines, idle) = hub_and_nodes(3, &[0, 1], |_| Role::Node, &Faults::default()).await;
    let hub = engines[0].as_ref().unwrap();
    let node1 = engines[1].as_ref().unwrap();
    let n2 = idle[2].as_ref().unwrap();
    let forged = SignedRegister::sign(&beat("n1", 50), n2.identity()).unwrap();
    let own = SignedRegister::sign(&beat("n2", 1), n2.identity()).unwrap();
    send_as(n2, hub, vec![forged, own], || seq(hub, "n2") == Some(1)).await;
    assert_eq!(seq(hub, "n1"), None, "the forged register was refused");

    // n1's real beat lands (under last-writer-wins the forged seq 50 would
    // have hidden it).
    node1.with_replica(|r| r.record_health(&beat("n1", 1)).unwrap());
    node1.changed();
    assert!(
        wait_for(Duration::from_secs(15), || seq(hub, "n1") == Some(1)).await,
        "n1's own beat reaches the hub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_jump_signed_by_the_right_key_is_refused_and_the_live_nodes_next_beat_lands() {
    let (_tmp, engines, idle) = hub_and_nodes(3, &[0, 1], |_| Role::Node, &Faults::default()).await;
    let hub = engines[0].as_ref().unwrap();
    let node1 = engines[1].as_ref().unwrap();
    for s in 1..=3 {
        node1.with_replica(|r| r.record_health(&beat("n1", s)).unwrap());
        node1.changed();
    }
    assert!(wait_for(Duration::from_secs(15), || seq(hub, "n1") == Some(3)).await);

    // A register with seq 2^62 signed by n1's own key (a bug, or a copy of
    // its key), relayed by n2's replica, and n2's own beat after it.
    let jump = node1
        .with_replica(|r| SignedRegister::sign(&beat("n1", 1 << 62), r.identity()))
        .unwrap();
    let n2 = idle[2].as_ref().unwrap();
    let own = SignedRegister::sign(&beat("n2", 1), n2.identity()).unwrap();
    send_as(n2, hub, vec![jump, own], || seq(hub, "n2") == Some(1)).await;
    assert_eq!(seq(hub, "n1"), Some(3), "the jump was refused");

    node1.with_replica(|r| r.record_health(&beat("n1", 4)).unwrap());
    node1.changed();
    assert!(
        wait_for(Duration::from_secs(15), || seq(hub, "n1") == Some(4)).await,
        "n1's next real beat lands at the hub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_register_is_refused_by_the_hub() {
    let (_tmp, engines, idle) = hub_and_nodes(3, &[0], |_| Role::Node, &Faults::default()).await;
    let hub = engines[0].as_ref().unwrap();
    let n2 = idle[2].as_ref().unwrap();
    let mut unsigned = SignedRegister::sign(&beat("n1", 1), n2.identity()).unwrap();
    unsigned.sig.clear();
    let mut unsigned_own = SignedRegister::sign(&beat("n2", 2), n2.identity()).unwrap();
    unsigned_own.sig.clear();
    let own = SignedRegister::sign(&beat("n2", 1), n2.identity()).unwrap();
    send_as(n2, hub, vec![unsigned, unsigned_own, own], || {
        seq(hub, "n2").is_some()
    })
    .await;
    assert_eq!(seq(hub, "n1"), None);
    assert_eq!(seq(hub, "n2"), Some(1), "only the signed register of n2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_relayed_from_node_through_hub_to_laptop_still_verifies_at_the_laptop() {
    // Replica 2 is an operator's laptop, cut off from n1: n1's register
    // reaches it only through the hub.
    let (_tmp, reps) = replicas_as(3, |i| if i == 2 { Role::Operator } else { Role::Node });
    let key1: MemberKey = reps[1].key().clone();
    let key2: MemberKey = reps[2].key().clone();
    let faults = Faults::default();
    faults.partition(std::slice::from_ref(&key1), &[key2]);
    let mut engines = Vec::new();
    for r in reps {
        let mut cfg = config();
        cfg.faults = faults.clone();
        engines.push(Engine::start(r, cfg).await.unwrap());
    }
    for e in &engines[1..] {
        e.connect(engines[0].endpoint_addr());
    }
    let node1 = &engines[1];
    let laptop = &engines[2];
    node1.with_replica(|r| r.record_health(&beat("n1", 7)).unwrap());
    node1.changed();
    assert!(
        wait_for(Duration::from_secs(20), || seq(laptop, "n1") == Some(7)).await,
        "n1's register reaches the laptop through the hub"
    );
    let signed = laptop
        .with_replica(|r| r.signed_health("n1"))
        .unwrap()
        .expect("held with its signature");
    assert!(
        signed.signed_by(&key1),
        "still n1's signature at the laptop"
    );
    let at_node = node1
        .with_replica(|r| r.signed_health("n1"))
        .unwrap()
        .unwrap();
    assert_eq!(signed, at_node, "relayed unchanged, byte for byte");
}

#[test]
fn a_bundle_carries_signed_registers_and_a_tampered_one_is_refused_alone() {
    let (tmp, mut reps) = replicas_as(5, |i| if i >= 3 { Role::Operator } else { Role::Node });
    // Nodes n1 and n2 beat; the laptop (replica 0) hears them.
    for i in [1, 2] {
        reps[i]
            .record_health(&beat(&format!("n{i}"), 3 + i as u64))
            .unwrap();
    }
    for i in [1, 2] {
        let signed = reps[i].signed_health(&format!("n{i}")).unwrap().unwrap();
        assert_eq!(reps[0].admit_health(&signed, 0).unwrap(), Admission::Stored);
    }
    let key = fleetdeck_store::config::ConfigPath::parse("retention.days").unwrap();
    reps[0]
        .change("edit", |d, _| {
            d.set_config(
                &fleetdeck_store::document::LayerRef::Fleet,
                &key,
                &serde_json::json!(9),
            )
        })
        .unwrap();
    let file = tmp.path().join("laptop.fdb");
    let e = bundle::export(&mut reps[0], &file).unwrap();
    assert_eq!(e.health, 2);

    // Carried to replica 3: both registers arrive and still verify.
    let i = bundle::import(&mut reps[3], &file).unwrap();
    assert_eq!((i.health_new, i.health_refused.len()), (2, 0));
    let key1 = reps[1].key().clone();
    let held = reps[3].signed_health("n1").unwrap().unwrap();
    assert!(held.signed_by(&key1));

    // n1's register altered in the file (seq 4 → 9, same length): refused,
    // alone; n2's register and the changes still come in.
    let mut bytes = std::fs::read(&file).unwrap();
    let needle = br#""node":"n1","seq":4"#;
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("n1's register in the bundle");
    bytes[at + needle.len() - 1] = b'9';
    let tampered = tmp.path().join("tampered.fdb");
    std::fs::write(&tampered, &bytes).unwrap();
    let i = bundle::import(&mut reps[4], &tampered).unwrap();
    assert_eq!(i.health_new, 1);
    assert_eq!(i.health_refused.len(), 1, "{:?}", i.health_refused);
    assert!(
        i.health_refused[0].starts_with("n1:") && i.health_refused[0].contains("not signed"),
        "{:?}",
        i.health_refused
    );
    assert_eq!(reps[4].health()["n2"].reg.seq, 5);
    assert!(!reps[4].health().contains_key("n1"));
    assert_eq!(i.changes_new, 1, "the edit comes in beside");
}

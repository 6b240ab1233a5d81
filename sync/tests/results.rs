//! Command results travel in each node's results register, not the
//! document: a node's result reaches the people replicas it is connected
//! to at once and `command status` there shows it; a register signed by
//! anyone but the key bound to its node is refused alone and the session
//! goes on; a peer from before results registers is sent none and still
//! syncs.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_store::document::{CommandRecord, CommandResult};
use fleetdeck_store::results::{ResultsRegister, SignedResults};
use fleetdeck_store::{NodeId, Replica, Role, now_ms};
use fleetdeck_sync::Engine;
use fleetdeck_sync::engine::bind_endpoint;
use fleetdeck_sync::wire::{self, ALPN, Features, Hello, Msg, Origin, PROTOCOL_VERSION};

fn result(ok: bool, output: &str) -> CommandResult {
    CommandResult {
        exit_code: Some(if ok { 0 } else { 2 }),
        ok,
        output: output.into(),
        at_ms: now_ms(),
    }
}

fn add_command(e: &Engine, id: &str) {
    let rec = CommandRecord {
        action: "restart".into(),
        target: "all".into(),
        by: "laptop".into(),
        at_ms: now_ms(),
    };
    e.with_replica(|r| r.change("command", |d, _| d.add_command(id, &rec)).unwrap());
    e.changed();
}

fn result_of(e: &Engine, cmd: &str, node: &str) -> Option<CommandResult> {
    e.with_replica(|r| r.command_results(cmd).get(node).cloned())
}

/// Replica 0 (an admin's: the hub) and nodes n1..; each node's engine
/// dials the hub.
async fn hub_and_nodes(
    n: usize,
    running: &[usize],
) -> (tempfile::TempDir, Vec<Option<Engine>>, Vec<Option<Replica>>) {
    let (tmp, reps) = replicas_as(n, |_| Role::Node);
    let mut engines = Vec::new();
    let mut idle = Vec::new();
    for (i, r) in reps.into_iter().enumerate() {
        if running.contains(&i) {
            engines.push(Some(Engine::start(r, config()).await.unwrap()));
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
async fn a_nodes_result_reaches_the_hub_through_its_register_and_command_status_there_shows_it() {
    let (tmp, engines, _) = hub_and_nodes(3, &[0, 1, 2]).await;
    let hub = engines[0].as_ref().unwrap();
    let n1 = engines[1].as_ref().unwrap();
    let n2 = engines[2].as_ref().unwrap();
    add_command(hub, "c1");
    assert!(
        wait_for(Duration::from_secs(15), || n1
            .with_replica(|r| r.state().commands.contains_key("c1")))
        .await
    );
    let id = NodeId::parse("n1").unwrap();
    n1.with_replica(|r| r.record_command_result(&id, "c1", result(true, "restarted")))
        .unwrap();
    n1.changed();
    assert!(
        wait_for(Duration::from_secs(15), || result_of(hub, "c1", "n1")
            .is_some_and(|r| r.ok && r.output == "restarted"))
        .await,
        "n1's result reached the hub"
    );
    // Not through the document: neither replica holds it there (the
    // history's length would race with the address changes the engines
    // publish as they start).
    for e in [hub, n1] {
        assert_eq!(
            e.with_replica(|r| r.doc_mut().command_result_in_doc("c1", "n1")),
            None,
            "no change was written into the document for it"
        );
    }
    // What `command status c1` reads on the hub's data dir (the CLI opens
    // its own handle on it).
    let cli = Replica::open(&dir(&tmp, 0)).unwrap();
    let got = cli.command_results("c1");
    assert_eq!(got.len(), 1);
    assert_eq!(got["n1"].output, "restarted");
    // A node is sent no other node's results (the health policy).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(result_of(n2, "c1", "n1").is_none());
}

/// Speaks the protocol to `hub` as the member whose replica is `sender`,
/// with a hello carrying `features` (None: from before features), sends
/// `first` frames, and returns what the hub sent within `listen`.
async fn raw_session(
    sender: &Replica,
    hub: &Engine,
    features: Option<Features>,
    first: Vec<Msg>,
    listen: Duration,
) -> Vec<Msg> {
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
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        fleet_id: sender.state().fleet_id.clone(),
        name: "raw".into(),
        token: None,
    };
    let frame = wire::encode_hello_with(&hello, Origin { run: 7, dial: 1 }, features).unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut send, &frame)
        .await
        .unwrap();
    assert!(matches!(
        wire::read_msg(&mut recv).await.unwrap().0,
        Msg::Hello(_)
    ));
    for m in &first {
        wire::write_msg(&mut send, m).await.unwrap();
    }
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + listen;
    while let Ok(Ok((m, _))) = tokio::time::timeout_at(until, wire::read_msg(&mut recv)).await {
        got.push(m);
    }
    let _ = send.finish();
    raw.close().await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_member_cannot_plant_a_result_for_another_node_and_its_own_still_lands() {
    // n2's replica (a node member, its engine not running) sends the hub a
    // results register for n1 signed by its own key, then its own.
    let (_tmp, engines, idle) = hub_and_nodes(3, &[0, 1]).await;
    let hub = engines[0].as_ref().unwrap();
    let n1 = engines[1].as_ref().unwrap();
    let n2 = idle[2].as_ref().unwrap();
    add_command(hub, "c1");
    let reg = |node: &str, seq: u64, out: &str| {
        let mut r = ResultsRegister::with_result(None, node, "c1", result(true, out), now_ms());
        r.seq = seq;
        r
    };
    let planted = SignedResults::sign(&reg("n1", 50, "all fine"), n2.identity()).unwrap();
    let own = SignedResults::sign(&reg("n2", 1, "n2 restarted"), n2.identity()).unwrap();
    raw_session(
        n2,
        hub,
        Some(Features::CURRENT),
        vec![Msg::Results(vec![planted]), Msg::Results(vec![own])],
        Duration::from_secs(2),
    )
    .await;
    assert!(
        wait_for(Duration::from_secs(10), || result_of(hub, "c1", "n2")
            .is_some())
        .await,
        "the session went on after the refusal: n2's own register landed"
    );
    assert!(
        result_of(hub, "c1", "n1").is_none(),
        "the planted result was refused"
    );

    // n1's real result lands (under last-writer-wins the planted seq 50
    // would have hidden it).
    let id = NodeId::parse("n1").unwrap();
    n1.with_replica(|r| r.record_command_result(&id, "c1", result(false, "real: failed")))
        .unwrap();
    n1.changed();
    assert!(
        wait_for(Duration::from_secs(15), || result_of(hub, "c1", "n1")
            .is_some_and(|r| !r.ok && r.output == "real: failed"))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_from_before_results_registers_is_sent_none_and_still_syncs() {
    let (_tmp, engines, idle) = hub_and_nodes(3, &[0, 1]).await;
    let hub = engines[0].as_ref().unwrap();
    let n1 = engines[1].as_ref().unwrap();
    let n2 = idle[2].as_ref().unwrap();
    add_command(hub, "c1");
    let id = NodeId::parse("n1").unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || n1
            .with_replica(|r| r.state().commands.contains_key("c1")))
        .await
    );
    n1.with_replica(|r| r.record_command_result(&id, "c1", result(true, "ok")))
        .unwrap();
    n1.changed();
    assert!(
        wait_for(Duration::from_secs(15), || result_of(hub, "c1", "n1")
            .is_some())
        .await
    );

    // n2's replica as a peer from before results registers (a hello
    // without features).
    let got = raw_session(n2, hub, None, Vec::new(), Duration::from_secs(2)).await;
    assert!(
        got.iter().any(|m| matches!(m, Msg::Doc { .. })),
        "the document still syncs: {got:?}"
    );
    assert!(
        !got.iter()
            .any(|m| matches!(m, Msg::Results(_) | Msg::ResultsDigest(_))),
        "nothing a peer from before results registers cannot decode"
    );
    // The same peer saying it speaks results gets the digest.
    let got = raw_session(
        n2,
        hub,
        Some(Features::CURRENT),
        Vec::new(),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        got.iter().any(|m| matches!(m, Msg::ResultsDigest(_))),
        "{got:?}"
    );
}

/// Health registers travel packed between peers that both speak it
/// (`Features::packed_health`); a packed register that does not unpack is
/// refused alone; a peer from before packing is sent the signed bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_registers_travel_packed_to_peers_that_take_them_and_as_bytes_to_others() {
    use fleetdeck_store::health::{HealthRegister, PackedForm, SignedRegister};
    let (_tmp, engines, idle) = hub_and_nodes(3, &[0]).await;
    let hub = engines[0].as_ref().unwrap();
    let n2 = idle[2].as_ref().unwrap();
    let beat = HealthRegister {
        node: "n2".into(),
        seq: 4,
        time_ms: now_ms(),
        addrs: vec!["127.0.0.1:7447".into()],
        ..Default::default()
    };
    let hub_holds = |want: &HealthRegister| {
        hub.with_replica(|r| r.health().get("n2").is_some_and(|s| s.reg == *want))
    };
    let signed = SignedRegister::sign(&beat, n2.identity()).unwrap();
    let packed = signed.pack().expect("it packs");
    // A packed register cut short, then the good one: the first is refused,
    // the second lands.
    let cut = packed[..packed.len() / 2].to_vec();
    raw_session(
        n2,
        hub,
        Some(Features::CURRENT),
        vec![Msg::HealthPacked(vec![
            (cut, signed.sig.clone(), 0),
            (packed.clone(), signed.sig.clone(), 0),
        ])],
        Duration::from_secs(1),
    )
    .await;
    assert!(
        wait_for(Duration::from_secs(10), || hub_holds(&beat)).await,
        "the packed register landed at the hub, whole"
    );

    // The hub sends n2 its own register back when n2 says it holds none:
    // packed to a peer that speaks it, as the signed bytes otherwise.
    let lacks = vec![Msg::HealthDigest(vec![("n2".into(), 0)])];
    let got = raw_session(
        n2,
        hub,
        Some(Features::CURRENT),
        lacks.clone(),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        got.iter().any(|m| matches!(m, Msg::HealthPacked(p)
            if p.len() == 1 && SignedRegister::unpack(&p[0].0, p[0].1.clone()).as_ref() == Ok(&signed))),
        "{got:?}"
    );
    let old = Features {
        results: true,
        packed_health: false,
        packed_tunnels: false,
    };
    let got = raw_session(n2, hub, Some(old), lacks.clone(), Duration::from_secs(2)).await;
    assert!(
        got.iter()
            .any(|m| matches!(m, Msg::Health(h) if h.len() == 1 && h[0].0 == signed)),
        "{got:?}"
    );
    assert!(!got.iter().any(|m| matches!(m, Msg::HealthPacked(_))));

    // A register with tunnel records: packed in the form that carries them
    // to a peer that takes it, as its bytes to one that packs only the
    // first form.
    let with_tunnels = HealthRegister {
        seq: 5,
        tunnels: vec![fleetdeck_store::health::TunnelRecord {
            by: "laptop".into(),
            targets: "127.0.0.1:5000".into(),
            conns: 1,
            ..Default::default()
        }],
        ..beat.clone()
    };
    let signed = SignedRegister::sign(&with_tunnels, n2.identity()).unwrap();
    let packed = signed
        .pack_as(PackedForm::WithTunnels)
        .expect("it packs with its tunnels");
    raw_session(
        n2,
        hub,
        Some(Features::CURRENT),
        vec![Msg::HealthPackedTunnels(vec![(
            packed,
            signed.sig.clone(),
            0,
        )])],
        Duration::from_secs(1),
    )
    .await;
    assert!(
        wait_for(Duration::from_secs(10), || hub_holds(&with_tunnels)).await,
        "the register with tunnels landed at the hub, whole"
    );
    let got = raw_session(
        n2,
        hub,
        Some(Features::CURRENT),
        lacks.clone(),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        got.iter().any(|m| matches!(m, Msg::HealthPackedTunnels(p)
            if p.len() == 1 && SignedRegister::unpack_as(&p[0].0, p[0].1.clone(), PackedForm::WithTunnels).as_ref() == Ok(&signed))),
        "{got:?}"
    );
    let first_form_only = Features {
        packed_tunnels: false,
        ..Features::CURRENT
    };
    let got = raw_session(
        n2,
        hub,
        Some(first_form_only),
        lacks,
        Duration::from_secs(2),
    )
    .await;
    assert!(
        got.iter()
            .any(|m| matches!(m, Msg::Health(h) if h.len() == 1 && h[0].0 == signed)),
        "{got:?}"
    );
    assert!(!got.iter().any(|m| matches!(m, Msg::HealthPackedTunnels(_))));
}

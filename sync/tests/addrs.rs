//! Where a node listens. A node's address changes with every DHCP lease or
//! 4G reconnect; written into the fleet document each time, it would grow
//! the document's history forever (issue 16, BENCHMARKS.md P8). So a
//! node's replica writes its address into the document once, when it first
//! starts, and afterwards reports it only in its signed heartbeat; a
//! replica that holds the fleet's health dials a node where its latest
//! heartbeat says it listens.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{config, dir, replicas, wait_for};
use fleetdeck_store::health::{Admission, HealthRegister};
use fleetdeck_store::{Replica, now_ms};
use fleetdeck_sync::{Engine, EngineConfig};

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn on(port: u16) -> EngineConfig {
    let mut cfg = config();
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], port));
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_moved_is_dialed_where_its_heartbeat_says_and_the_document_is_not_written() {
    let (tmp, mut reps) = replicas(2);
    let node_rep = reps.pop().expect("node");
    let laptop_rep = reps.pop().expect("laptop");
    let node_key = node_rep.key().clone();

    // First start: the node writes where it listens into the document.
    let first = free_port();
    let node = Engine::start(node_rep, on(first))
        .await
        .expect("node starts");
    let recorded = node.with_replica(|r| r.state().members[&node_key].addrs.clone());
    assert_eq!(recorded, vec![format!("127.0.0.1:{first}")]);
    let heads_then = node.with_replica(|r| r.heads());
    node.shutdown().await;
    drop(node);

    // It comes back on another port (a new lease): the document keeps the
    // first address and gains no change; the heartbeat says the new one.
    let moved = free_port();
    let replica = Replica::open(&dir(&tmp, 1)).expect("the node's replica opens");
    let node = Engine::start(replica, on(moved))
        .await
        .expect("node starts again");
    assert_eq!(node.with_replica(|r| r.heads()), heads_then);
    assert_eq!(
        node.with_replica(|r| r.state().members[&node_key].addrs.clone()),
        recorded,
        "the document still holds the first address"
    );
    let now_at = vec![format!("127.0.0.1:{moved}")];
    assert_eq!(node.published_addrs(), now_at);
    let beat = HealthRegister {
        node: "n1".into(),
        seq: 1,
        time_ms: now_ms(),
        addrs: node.published_addrs(),
        ..Default::default()
    };
    node.with_replica(|r| r.record_health(&beat))
        .expect("the node records its beat");
    let signed = node
        .with_replica(|r| r.signed_health("n1"))
        .expect("the register reads")
        .expect("the node holds its register, signed");

    // The laptop publishes no address and has no relay, so the node cannot
    // dial it: the laptop must dial the node, and it knows only the
    // document's stale address so far.
    let mut laptop_rep = laptop_rep;
    laptop_rep
        .apply_changes(node.with_replica(|r| r.changes_after(&[])))
        .expect("the laptop takes the node's changes");
    let mut cfg = config();
    cfg.publish_addrs = false;
    let laptop = Engine::start(laptop_rep, cfg).await.expect("laptop starts");
    let stale = wait_for(Duration::from_secs(1), || {
        laptop.connected().contains(&node_key)
    })
    .await;
    assert!(
        !stale,
        "nothing listens at the document's address, so no session yet"
    );

    // The node's heartbeat reaches the laptop (by hand here, as a bundle
    // would carry it): it dials the node where that says.
    let admitted = laptop
        .with_replica(|r| r.admit_health(&signed, 0))
        .expect("the laptop's database");
    assert_eq!(admitted, Admission::Stored);
    assert_eq!(
        laptop.with_replica(|r| r.reported_addrs().get(&node_key).cloned()),
        Some(now_at.clone())
    );
    let reached = wait_for(Duration::from_secs(15), || {
        laptop.connected().contains(&node_key)
    })
    .await;
    assert!(reached, "the laptop dials the node at its reported address");
    let shown = laptop
        .peers()
        .into_iter()
        .find(|p| p.key == node_key.as_str())
        .and_then(|p| p.addr);
    assert_eq!(shown.as_deref(), Some(now_at[0].as_str()));

    laptop.shutdown().await;
    node.shutdown().await;
}

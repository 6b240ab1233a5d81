//! Who a node keeps sessions with when the fleet names no hubs
//! (`sync.hubs`): every admin and operator replica counts as one, but a
//! node keeps sessions with two of them, not with every laptop that runs
//! `serve` (issue 15: each added laptop would add a session to every node).

mod common;

use std::time::{Duration, Instant};

use common::{fleet_as, get, set, wait_for};
use fleetdeck_store::Role;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_sessions_with_two_of_the_fleets_people_replicas_and_hears_the_others_through_them()
 {
    // Replica 0: an admin laptop; 1 to 3: operators' laptops; 4: a node.
    let f = fleet_as(5, |i| if i == 4 { Role::Node } else { Role::Operator }).await;
    let node = &f.engines[4];
    let people = &f.keys[..4];
    let with_people = || {
        node.connected()
            .iter()
            .filter(|k| people.contains(k))
            .count()
    };
    // Everyone learns the others' addresses through replica 0; the node
    // then dials the people replicas until two are up, and keeps two. While
    // the people replicas have no session among themselves yet, each may
    // dial the node as a fallback peer (and closes that session once it has
    // one with another people replica): so what is checked is that the node
    // settles on two and stays there, 3 s in a row (many dial rounds, every
    // 200 ms here), within 30 s.
    let started = Instant::now();
    let mut steady_since: Option<Instant> = None;
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let n = with_people();
        seen.push(n);
        if n == 2 {
            let since = *steady_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(3) {
                break;
            }
        } else {
            steady_since = None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        steady_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(3)),
        "the node keeps sessions with two people replicas, 3 s in a row: {seen:?}"
    );

    // An edit on a people replica the node has no session with reaches it
    // through the others (people replicas keep sessions among themselves).
    let apart = (0..4)
        .find(|i| !node.connected().contains(&f.keys[*i]))
        .expect("one of the four people replicas is not connected to the node");
    set(&f.engines[apart], "probe.hubs", json!(apart));
    assert!(
        wait_for(Duration::from_secs(15), || get(node, "probe.hubs")
            == Some(json!(apart)))
        .await,
        "the edit of replica {apart} reaches the node through the others"
    );
    for e in &f.engines {
        e.shutdown().await;
    }
}

//! Revocation over real engines on loopback: an admin revokes a node's key;
//! every session with it closes, its later edits are refused by every
//! honest replica, the honest replicas still converge, and it cannot
//! reconnect.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_store::now_ms;
use fleetdeck_store::ops::{self, Op};
use fleetdeck_sync::verify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_cut_off_and_its_later_edits_refused_everywhere() {
    let f = fleet(4).await;
    let all: Vec<_> = f.engines.iter().collect();
    assert!(
        wait_for(Duration::from_secs(20), || converged(&all)).await,
        "the fleet converges first"
    );
    let rogue = 3;
    let rogue_key = f.keys[rogue].clone();
    // Its peers (the admin and at least one node) have a session with it.
    assert!(
        wait_for(Duration::from_secs(20), || f.engines[0]
            .connected()
            .contains(&rogue_key))
        .await
    );

    // The admin revokes it.
    f.engines[0].with_replica(|r| {
        ops::apply(
            r,
            Op::MemberRevoke {
                member: rogue_key.clone(),
            },
            now_ms(),
        )
        .unwrap()
    });
    f.engines[0].changed();
    let honest: Vec<_> = f.engines[..rogue].iter().collect();
    // The revocation reaches every honest replica, and no honest replica
    // keeps a session with the rogue.
    assert!(
        wait_for(Duration::from_secs(20), || honest.iter().all(
            |e| e.with_replica(|r| r.state().revoked.contains_key(&rogue_key))
        ))
        .await,
        "every honest replica holds the revocation"
    );
    assert!(
        wait_for(Duration::from_secs(10), || honest
            .iter()
            .all(|e| !e.connected().contains(&rogue_key)))
        .await,
        "sessions with the revoked key are closed"
    );
    assert!(
        f.engines[rogue].with_replica(|r| !r.state().revoked.contains_key(&rogue_key)),
        "the rogue never got the revocation"
    );

    // The rogue writes on its stale base, going around the operations API.
    let before = f.engines[rogue].with_replica(|r| r.heads());
    f.engines[rogue].with_replica(|r| {
        r.change("raw: still here", |d, _| {
            d.set_member_addrs(&rogue_key, &["203.0.113.6:7447".into()])
        })
        .unwrap()
    });
    f.engines[rogue].changed();
    let late = f.engines[rogue].with_replica(|r| r.changes_after(&before));
    assert_eq!(late.len(), 1);
    let late_hash = late[0].change.hash();

    // It cannot reconnect: give its dialer time, then look.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for e in &honest {
        assert!(!e.connected().contains(&rogue_key));
        assert!(!e.with_replica(|r| r.holds(&late_hash)));
    }
    // Carried by hand (a bundle, a relay that still talks to it): refused.
    for e in &honest {
        let out = e.with_replica(|r| {
            let mut gate = verify::Gate::default();
            verify::admit(r, &mut gate, late.clone()).unwrap()
        });
        assert_eq!(out.accepted, 0);
        assert_eq!(out.refused.len(), 1, "{:?}", out.refused);
        assert!(
            out.refused[0].reason.contains("revoked"),
            "{:?}",
            out.refused
        );
    }

    // The honest replicas still converge on new edits.
    set(&f.engines[0], "retention.days", serde_json::json!(30));
    assert!(
        wait_for(Duration::from_secs(20), || converged(&honest)
            && get(&f.engines[2], "retention.days")
                == Some(serde_json::json!(30)))
        .await,
        "the honest replicas converge"
    );
    for e in &f.engines {
        e.shutdown().await;
    }
}

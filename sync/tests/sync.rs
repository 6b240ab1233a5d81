//! Replicas syncing over iroh on loopback, in one process.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_store::document::{CommandRecord, CommandResult};
use fleetdeck_store::health::HealthRegister;
use fleetdeck_store::{Replica, Role, now_ms};
use fleetdeck_sync::engine::bind_endpoint;
use fleetdeck_sync::wire::{self, ALPN, Hello, Msg, PROTOCOL_VERSION};
use fleetdeck_sync::{Engine, InviteToken, join};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_every_replica_and_health_reaches_the_people_replicas() {
    let f = fleet(5).await;
    // Replica 4 (node n4's) becomes an operator's: people replicas hold the
    // whole fleet's health, node replicas only their own.
    let key4 = f.keys[4].clone();
    f.engines[0].with_replica(|r| {
        r.change("operator", |d, _| {
            d.put_member(&key4, "ops-2", Role::Operator, now_ms())
        })
        .unwrap()
    });
    f.engines[0].changed();
    set(&f.engines[0], "frigate.version", json!("0.14"));
    // The new operator edits once it knows it is one (its change is judged
    // by everyone against the state it was made on).
    let is_operator = |e: &Engine| {
        e.with_replica(|r| r.state().members.get(&key4).map(|m| m.role)) == Some(Role::Operator)
    };
    assert!(wait_for(Duration::from_secs(15), || is_operator(&f.engines[4])).await);
    set(&f.engines[4], "retention.days", json!(21));
    let all: Vec<&Engine> = f.engines.iter().collect();
    let edits_everywhere = wait_for(Duration::from_secs(15), || {
        converged(&all)
            && f.engines.iter().all(|e| {
                get(e, "frigate.version") == Some(json!("0.14"))
                    && get(e, "retention.days") == Some(json!(21))
            })
    })
    .await;
    assert!(edits_everywhere, "every replica holds both edits");
    let beat = HealthRegister {
        node: "n2".into(),
        seq: 7,
        time_ms: now_ms(),
        ..Default::default()
    };
    f.engines[2].with_replica(|r| r.record_health(&beat).unwrap());
    f.engines[2].changed();
    let seq = |e: &Engine| e.with_replica(|r| r.health().get("n2").map(|s| s.reg.seq));
    let at_people = wait_for(Duration::from_secs(15), || {
        seq(&f.engines[0]) == Some(7) && seq(&f.engines[4]) == Some(7)
    })
    .await;
    assert!(
        at_people,
        "n2's heartbeat reaches the laptop and the operator"
    );
    // Give a flood the time it would need, then check it did not happen.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in [1, 3] {
        assert_eq!(
            seq(&f.engines[i]),
            None,
            "node replica {i} holds n2's register"
        );
    }
}

/// Random partitions with concurrent edits on every side, then heals: all
/// replicas end with identical heads and every edit. The seed is printed;
/// FLEETDECK_SYNC_SEED replays a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_partitions_with_concurrent_edits_converge_and_lose_nothing() {
    let seed: u64 = std::env::var("FLEETDECK_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64 | 1);
    eprintln!("partition test seed {seed} (replay with FLEETDECK_SYNC_SEED={seed})");
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let n = 3 + (next() % 18) as usize; // 3 to 20 replicas
    // Every replica edits, so every one is an operator's (each still runs
    // a node's daemon and reports its heartbeat).
    let f = fleet_as(n, |_| Role::Operator).await;
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(
        wait_for(Duration::from_secs(20), || converged(&all)).await,
        "seed {seed}: initial sync"
    );
    let mut written = Vec::new();
    for round in 0..3 {
        // Split into two random non-empty halves.
        let mut a = Vec::new();
        let mut b = Vec::new();
        for k in &f.keys {
            if next() % 2 == 0 {
                a.push(k.clone())
            } else {
                b.push(k.clone())
            }
        }
        if a.is_empty() {
            a.push(b.pop().unwrap());
        }
        if b.is_empty() {
            b.push(a.pop().unwrap());
        }
        f.faults.partition(&a, &b);
        for (i, e) in f.engines.iter().enumerate() {
            let key = format!("edits.r{i}.round{round}");
            set(e, &key, value(i * 100 + round));
            written.push((key, value(i * 100 + round)));
            // Everyone also writes one shared key: a conflict to merge.
            set(e, &format!("shared.round{round}"), value(i));
            // Every node reports a heartbeat on its side of the split.
            if i > 0 {
                let beat = HealthRegister {
                    node: format!("n{i}"),
                    seq: round as u64 + 1,
                    time_ms: now_ms(),
                    ..Default::default()
                };
                e.with_replica(|r| r.record_health(&beat).unwrap());
                e.changed();
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.faults.heal();
        // Converged: identical heads, and the laptop (a people replica)
        // holds every node's latest heartbeat.
        let latest = round as u64 + 1;
        let ok = wait_for(Duration::from_secs(30), || {
            converged(&all)
                && f.engines[0].with_replica(|r| {
                    (1..n).all(|i| {
                        r.health().get(&format!("n{i}")).map(|s| s.reg.seq) == Some(latest)
                    })
                })
        })
        .await;
        assert!(
            ok,
            "seed {seed}, round {round}, {n} replicas: did not converge after heal"
        );
    }
    for e in &f.engines {
        // The state kept up to date part by part, as changes were merged,
        // is what a full read of the document gives.
        e.with_replica(|r| {
            let full = r.doc_mut().state().unwrap();
            assert!(
                r.state().as_ref() == &full,
                "seed {seed}: state out of step"
            );
        });
        for (k, v) in &written {
            assert_eq!(get(e, k).as_ref(), Some(v), "seed {seed}: {k} lost");
        }
        for round in 0..3 {
            let k = format!("shared.round{round}");
            assert_eq!(
                get(e, &k),
                get(&f.engines[0], &k),
                "seed {seed}: same winner everywhere"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_laptop_edit_reaches_every_node_through_one_contact() {
    let f = fleet(4).await;
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(wait_for(Duration::from_secs(20), || converged(&all)).await);
    let laptop = &f.keys[0];
    // The laptop goes to a site with no WAN: it reaches nobody.
    f.faults
        .partition(std::slice::from_ref(laptop), &f.keys[1..]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    set(&f.engines[0], "cameras.count", json!(12));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        f.engines[1..]
            .iter()
            .all(|e| get(e, "cameras.count").is_none())
    );
    // It meets node 1 only; nodes 2 and 3 stay out of its reach.
    f.faults.reconnect(laptop, &f.keys[1]);
    let ok = wait_for(Duration::from_secs(20), || {
        f.engines[1..]
            .iter()
            .all(|e| get(e, "cameras.count") == Some(json!(12)))
    })
    .await;
    assert!(ok, "the edit reached nodes 2 and 3 through node 1");
    assert!(f.faults.blocked(laptop, &f.keys[2]) && f.faults.blocked(laptop, &f.keys[3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_a_member_is_refused_at_the_handshake() {
    let (tmp, mut reps) = replicas(2);
    // An outsider holding a copy of the fleet but never enrolled.
    let all = reps[0].changes_after(&[]);
    let outsider = Replica::init_from_changes(&tmp.path().join("outsider"), all).unwrap();
    let r1 = reps.pop().unwrap();
    let r0 = reps.pop().unwrap();
    let hub = Engine::start(r0, config()).await.unwrap();
    let mut cfg = config();
    cfg.dial = false;
    let out = Engine::start(outsider, cfg.clone()).await.unwrap();
    let err = out
        .sync_once(
            hub.endpoint_addr(),
            Duration::from_millis(200),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a member of this fleet"), "{err}");
    // A member gets in.
    let member = Engine::start(r1, cfg).await.unwrap();
    member
        .sync_once(
            hub.endpoint_addr(),
            Duration::from_millis(200),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

fn token_for(hub: &Engine, secret: String, expires_ms: i64) -> InviteToken {
    let (fleet_id, fleet_name) =
        hub.with_replica(|r| (r.state().fleet_id.clone(), r.state().name.clone()));
    InviteToken {
        fleet_id,
        fleet_name,
        inviter: hub.key().to_bytes(),
        addrs: hub.local_addrs(),
        secret,
        role: "operator".into(),
        expires_ms,
        relay: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_with_an_invite_then_reused_and_expired_invites_are_refused() {
    let (tmp, mut reps) = replicas(1);
    let hub = Engine::start(reps.pop().unwrap(), config()).await.unwrap();
    let secret = hub
        .with_replica(|r| r.create_invite(Role::Operator, 3_600_000))
        .unwrap();
    let tok = token_for(&hub, secret, now_ms() + 3_600_000);
    let lo = "127.0.0.1:0".parse().unwrap();
    let joined = join::join(
        &tmp.path().join("j1"),
        &tok,
        "tech",
        lo,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(
        joined.state().fleet_id,
        hub.with_replica(|r| r.state().fleet_id.clone())
    );
    assert_eq!(joined.state().sites.len(), 2, "the whole fleet arrived");
    let me = joined.key().clone();
    assert!(
        hub.with_replica(|r| r.state().members.get(&me).map(|m| m.role)) == Some(Role::Operator)
    );

    let again = join::join(
        &tmp.path().join("j2"),
        &tok,
        "thief",
        lo,
        Duration::from_secs(20),
    )
    .await;
    let e = again.err().unwrap().to_string();
    assert!(e.contains("already used"), "{e}");
    assert!(!tmp.path().join("j2/replica.db").exists());

    let short = hub
        .with_replica(|r| r.create_invite(Role::Viewer, 1))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let tok = token_for(&hub, short, now_ms() + 3_600_000);
    let e = join::join(
        &tmp.path().join("j3"),
        &tok,
        "late",
        lo,
        Duration::from_secs(20),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("expired"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_and_oversized_frames_end_only_their_own_session() {
    let f = fleet(3).await;
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(wait_for(Duration::from_secs(20), || converged(&all)).await);
    let fleet_id = f.engines[0].with_replica(|r| r.state().fleet_id.clone());
    // A raw client with its own key, enrolled as a member.
    let id = fleetdeck_store::identity::Identity::generate();
    let key = id.key().clone();
    f.engines[0].with_replica(|r| {
        r.change("enroll raw", |d, _| {
            d.put_member(&key, "raw", Role::Node, now_ms())
        })
        .unwrap()
    });
    let secret = id.secret_bytes();
    let lookup = iroh::address_lookup::MemoryLookup::new();
    let raw = bind_endpoint(secret, "127.0.0.1:0".parse().unwrap(), &lookup)
        .await
        .unwrap();
    let bad_frames: Vec<Vec<u8>> = vec![
        // A frame body that is not a message.
        [5u32.to_be_bytes().to_vec(), vec![0xff; 5]].concat(),
        // A length over the limit.
        ((wire::MAX_FRAME + 1) as u32).to_be_bytes().to_vec(),
        // A frame cut short, then the stream ends.
        [100u32.to_be_bytes().to_vec(), vec![1; 10]].concat(),
        // A sync message that does not decode.
        wire::encode(&Msg::Doc {
            sync: vec![1, 2, 3],
            changes: Vec::new(),
        })
        .unwrap(),
    ];
    for bytes in bad_frames {
        let conn = raw
            .connect(f.engines[0].endpoint_addr(), ALPN)
            .await
            .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let hello = Msg::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            fleet_id: fleet_id.clone(),
            name: "raw".into(),
            token: None,
        });
        wire::write_msg(&mut send, &hello).await.unwrap();
        assert!(matches!(
            wire::read_msg(&mut recv).await.unwrap().0,
            Msg::Hello(_)
        ));
        send.write_all(&bytes).await.unwrap();
        let _ = send.finish();
        // The hub ends this session: reading eventually fails.
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if wire::read_msg(&mut recv).await.is_err() {
                    break;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the session with bad frames was ended");
    }
    raw.close().await;
    // The other sessions went on: an edit still reaches everyone.
    set(&f.engines[0], "after.garbage", json!(true));
    let ok = wait_for(Duration::from_secs(15), || {
        f.engines
            .iter()
            .all(|e| get(e, "after.garbage") == Some(json!(true)))
    })
    .await;
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_by_another_process_on_the_data_dir_is_pushed_out() {
    // Replica 1 is an operator's laptop: the CLI beside its console edits.
    let f = fleet_as(2, |_| Role::Operator).await;
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(wait_for(Duration::from_secs(20), || converged(&all)).await);
    // "The CLI": a second handle on replica 1's data dir.
    let mut cli = Replica::open(&dir(&f.tmp, 1)).unwrap();
    let path = fleetdeck_store::config::ConfigPath::parse("from.cli").unwrap();
    cli.change("cli edit", |d, _| {
        d.set_config(
            &fleetdeck_store::document::LayerRef::Fleet,
            &path,
            &json!(1),
        )
    })
    .unwrap();
    let ok = wait_for(Duration::from_secs(10), || {
        get(&f.engines[0], "from.cli") == Some(json!(1))
    })
    .await;
    assert!(
        ok,
        "replica 0 got the edit written by another process on replica 1's dir"
    );
}

/// With the hub cut off, nodes fall back to sessions among themselves, one
/// of them with a node of their own site (odd nodes run S1's nodes, even
/// ones S2's), and what one node writes into the document still reaches
/// every other: here a command result written the legacy way (as nodes
/// from before results registers did), which every replica still reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_hub_gone_nodes_keep_a_session_within_their_site() {
    let n = 9;
    let f = fleet(n).await;
    let n1 = fleetdeck_store::NodeId::parse("n1").unwrap();
    f.engines[0].with_replica(|r| {
        let rec = CommandRecord {
            action: "restart".into(),
            target: "node:n1".into(),
            by: "laptop".into(),
            at_ms: now_ms(),
        };
        r.change("command c1", |d, _| d.add_command("c1", &rec))
            .unwrap()
    });
    f.engines[0].changed();
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(
        wait_for(Duration::from_secs(15), || converged(&all)).await,
        "initial sync"
    );
    f.faults.isolate(&f.keys[0]);
    let same_site_session = |i: usize| {
        let live = f.engines[i].connected();
        (1..n).any(|j| j != i && j % 2 == i % 2 && live.contains(&f.keys[j]))
    };
    let ok = wait_for(Duration::from_secs(15), || {
        (1..n).all(same_site_session)
            && (1..n).all(|i| !f.engines[i].connected().contains(&f.keys[0]))
    })
    .await;
    assert!(ok, "every node keeps a session with a node of its own site");
    let result = CommandResult {
        exit_code: Some(0),
        ok: true,
        output: "restarted".into(),
        at_ms: now_ms(),
    };
    f.engines[1].with_replica(|r| {
        r.change("n1 ran restart (c1)", |d, _| {
            d.put_command_result("c1", &n1, &result)
        })
        .unwrap()
    });
    f.engines[1].changed();
    let nodes: Vec<&Engine> = f.engines[1..].iter().collect();
    let spread = wait_for(Duration::from_secs(15), || {
        nodes.iter().all(|e| {
            e.with_replica(|r| {
                r.state()
                    .command_results
                    .get("c1")
                    .is_some_and(|m| m.contains_key("n1"))
            })
        })
    })
    .await;
    assert!(
        spread,
        "node n1's command result reached every node without the hub"
    );
}

/// A heartbeat that reaches a replica late (it was cut off) is dated by
/// when it was first heard, not by when it arrived: each hop says how long
/// it held the register, and no node clock is involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_arriving_late_keeps_the_time_it_was_first_heard() {
    let f = fleet(4).await;
    let key3 = f.keys[3].clone();
    f.engines[0].with_replica(|r| {
        r.change("operator", |d, _| {
            d.put_member(&key3, "ops-2", Role::Operator, now_ms())
        })
        .unwrap()
    });
    f.engines[0].changed();
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(wait_for(Duration::from_secs(15), || converged(&all)).await);
    f.faults.isolate(&f.keys[3]);
    let beat = HealthRegister {
        node: "n1".into(),
        seq: 5,
        // The node's clock is a day behind: it must not matter.
        time_ms: now_ms() - 86_400_000,
        ..Default::default()
    };
    f.engines[1].with_replica(|r| r.record_health(&beat).unwrap());
    f.engines[1].changed();
    let heard =
        |e: &Engine| e.with_replica(|r| r.health().get("n1").map(|s| (s.reg.seq, s.received_ms)));
    assert!(
        wait_for(Duration::from_secs(10), || heard(&f.engines[0])
            .is_some_and(|h| h.0 == 5))
        .await,
        "the laptop hears n1"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.faults.heal();
    assert!(
        wait_for(Duration::from_secs(15), || heard(&f.engines[3])
            .is_some_and(|h| h.0 == 5))
        .await,
        "the operator hears n1 after the heal"
    );
    let at_laptop = heard(&f.engines[0]).unwrap().1;
    let at_operator = heard(&f.engines[3]).unwrap().1;
    assert!(
        (at_operator - at_laptop).abs() < 1_000,
        "heard at {at_operator} by the operator, {at_laptop} by the laptop: the 2 s the operator was cut off are not counted as fresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_beside_an_engine_stops_reaching_the_replica_once_the_engine_stops() {
    let (_tmp, mut reps) = replicas(2);
    let node = Engine::start(reps.pop().unwrap(), config()).await.unwrap();
    let laptop = Engine::start(reps.pop().unwrap(), config()).await.unwrap();
    node.connect(laptop.endpoint_addr());
    let (beside_laptop, beside_node) = (laptop.downgrade(), node.downgrade());
    assert_eq!(
        beside_laptop.with_replica(|r| r.key().clone()).as_ref(),
        Some(laptop.key())
    );
    let up = wait_for(Duration::from_secs(15), || !laptop.connected().is_empty()).await;
    assert!(up, "the node's session reaches the laptop");
    // The live session still holds the laptop's transport when it drops.
    drop(laptop);
    assert!(
        beside_laptop.with_replica(|_| ()).is_none(),
        "a dropped engine's replica is out of reach"
    );
    beside_laptop.changed();
    node.shutdown().await;
    assert!(
        beside_node.with_replica(|_| ()).is_none(),
        "a shut down engine's replica is out of reach"
    );
}

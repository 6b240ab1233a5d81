//! Coming back after a crash. A replica that dies without a word (killed,
//! a power cut) leaves its peers holding a dead session until the idle
//! timeout; started again, it must be back in sync within seconds: a
//! session from its new run replaces the dead one at once, and the peers
//! its last run had sessions with are dialed on start. Two replicas that
//! dial each other at once settle on one session; two processes with one
//! key do not take the session from each other in turn.
//!
//! Each test prints what it measured.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{config, dir, get, replicas, replicas_as, set};
use fleetdeck_store::{MemberKey, Replica, Role};
use fleetdeck_sync::{Engine, EngineConfig};
use serde_json::json;

/// How long a restarted replica may take to be back in sync. The target is
/// under 5 s; the bound leaves room for a loaded machine, and is still far
/// below the 60 s idle timeout the dead session would otherwise last.
const BACK_WITHIN: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

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

/// Waits (bounded, the engines run on their runtimes' threads meanwhile)
/// until `cond` holds; how long that took, or `None` on timeout.
fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond().then(|| start.elapsed())
}

/// An engine on a runtime of its own, so that it can die as a killed
/// process does.
struct Doomed {
    rt: tokio::runtime::Runtime,
    engine: Engine,
}

impl Doomed {
    fn start(replica: Replica, cfg: EngineConfig) -> Doomed {
        let rt = runtime();
        let engine = rt
            .block_on(Engine::start(replica, cfg))
            .expect("the engine starts");
        Doomed { rt, engine }
    }

    fn connect(&self, to: &Engine) {
        let _in = self.rt.enter();
        self.engine.connect(to.endpoint_addr());
    }

    /// Dies: its runtime stops without running another step of any task
    /// (no close is sent, no session ends), then the engine is dropped
    /// outside any runtime, where nothing can close it.
    fn kill(self) {
        let Doomed { rt, engine } = self;
        drop(rt);
        drop(engine);
    }
}

fn holds(e: &Engine, peer: &MemberKey) -> bool {
    e.connected().contains(peer)
}

#[test]
fn a_node_killed_and_started_again_is_back_in_sync_within_seconds() {
    let main = runtime();
    let (tmp, mut reps) = replicas(2);
    let node_rep = reps.pop().expect("node");
    let hub = main
        .block_on(Engine::start(reps.pop().expect("hub"), config()))
        .expect("the hub starts");
    let node_key = node_rep.key().clone();
    let hub_key = hub.key().clone();
    let port = free_port();
    let node = Doomed::start(node_rep, on(port));
    node.connect(&hub);
    // Up, and the node holds the hub's address (it dials it by that later).
    let up = wait(Duration::from_secs(15), || {
        holds(&hub, &node_key)
            && node.engine.with_replica(|r| {
                r.state()
                    .members
                    .get(&hub_key)
                    .is_some_and(|m| !m.addrs.is_empty())
            })
    });
    assert!(up.is_some(), "the node's session with the hub comes up");

    node.kill();
    // Nothing told the hub: it holds the dead session (until the idle
    // timeout, 60 s).
    assert!(
        holds(&hub, &node_key),
        "the hub still holds the dead session"
    );
    let before = hub.sessions_up();

    let started = Instant::now();
    let replica = Replica::open(&dir(&tmp, 1)).expect("the node's replica opens");
    let node = main
        .block_on(Engine::start(replica, on(port)))
        .expect("the node starts again");
    set(&hub, "probe.after_restart", json!(1));
    let synced = wait(BACK_WITHIN, || {
        get(&node, "probe.after_restart") == Some(json!(1))
    });
    let took = started.elapsed();
    println!(
        "node killed and started again: the hub's edit arrived {} ms after the start",
        took.as_millis()
    );
    assert!(synced.is_some(), "not back in sync after {took:?}");
    assert!(holds(&hub, &node_key) && holds(&node, &hub_key));
    assert_eq!(
        hub.sessions_up(),
        before + 1,
        "one new session replaced the dead one"
    );
    main.block_on(async {
        node.shutdown().await;
        hub.shutdown().await;
    });
}

#[test]
fn a_hub_killed_and_started_again_dials_the_peers_its_last_run_had() {
    let main = runtime();
    let (tmp, mut reps) = replicas(2);
    let node = main
        .block_on(Engine::start(reps.pop().expect("node"), config()))
        .expect("the node starts");
    let node_key = node.key().clone();
    let status = tmp.path().join("hub-peers.json");
    let port = free_port();
    // The hub dials no one of its own choosing: only what its last run
    // left in its status file brings the node back.
    let hub_cfg = || {
        let mut cfg = on(port);
        cfg.random_peers = 0;
        cfg.status_file = Some(status.clone());
        cfg
    };
    let hub = Doomed::start(reps.pop().expect("hub"), hub_cfg());
    let hub_key = hub.engine.key().clone();
    {
        let _in = main.enter();
        node.connect(hub.engine.endpoint_addr());
    }
    // Up, and written to the status file (every second).
    let up = wait(Duration::from_secs(15), || {
        holds(&node, &hub_key)
            && std::fs::read_to_string(&status)
                .is_ok_and(|s| s.contains(node_key.as_str()) && s.contains("\"connected\": true"))
    });
    assert!(up.is_some(), "the node's session with the hub comes up");

    hub.kill();
    assert!(
        holds(&node, &hub_key),
        "the node still holds the dead session"
    );

    let started = Instant::now();
    let replica = Replica::open(&dir(&tmp, 0)).expect("the hub's replica opens");
    let hub = main
        .block_on(Engine::start(replica, hub_cfg()))
        .expect("the hub starts again");
    set(&hub, "probe.after_restart", json!(2));
    let synced = wait(BACK_WITHIN, || {
        get(&node, "probe.after_restart") == Some(json!(2))
    });
    let took = started.elapsed();
    println!(
        "hub killed and started again: its edit reached the node {} ms after the start",
        took.as_millis()
    );
    assert!(synced.is_some(), "not back in sync after {took:?}");
    assert!(holds(&hub, &node_key) && holds(&node, &hub_key));
    main.block_on(async {
        node.shutdown().await;
        hub.shutdown().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_dialing_each_other_at_once_keep_one_session() {
    let (_tmp, mut reps) = replicas_as(2, |_| Role::Operator);
    // No dial loops: if the two sides kept different sessions, each would
    // close the one the other kept, and nothing would dial again.
    let quiet = || {
        let mut cfg = config();
        cfg.dial = false;
        cfg
    };
    let b = Engine::start(reps.pop().expect("b"), quiet())
        .await
        .expect("b starts");
    let a = Engine::start(reps.pop().expect("a"), quiet())
        .await
        .expect("a starts");
    let (ka, kb) = (a.key().clone(), b.key().clone());
    for round in 0..5 {
        a.connect(b.endpoint_addr());
        b.connect(a.endpoint_addr());
        // Let both dials finish (or be refused) on both sides.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            holds(&a, &kb) && holds(&b, &ka),
            "round {round}: both sides kept the same session"
        );
    }
    set(&a, "probe.crossed", json!(true));
    let arrived = common::wait_for(Duration::from_secs(5), || {
        get(&b, "probe.crossed") == Some(json!(true))
    })
    .await;
    assert!(arrived, "the session both kept carries edits");
    println!(
        "5 rounds of crossing dials: {} and {} sessions came up",
        a.sessions_up(),
        b.sessions_up()
    );

    // With dial loops on, both dial each other (operators) from the start:
    // they settle on one session, which then stays.
    let (_tmp, mut reps) = replicas_as(2, |_| Role::Operator);
    let d = Engine::start(reps.pop().expect("d"), config())
        .await
        .expect("d starts");
    let c = Engine::start(reps.pop().expect("c"), config())
        .await
        .expect("c starts");
    let (kc, kd) = (c.key().clone(), d.key().clone());
    c.connect(d.endpoint_addr());
    d.connect(c.endpoint_addr());
    let up = common::wait_for(Duration::from_secs(10), || holds(&c, &kd) && holds(&d, &kc)).await;
    assert!(up, "the two dialers connect");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = (c.sessions_up(), d.sessions_up());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        (c.sessions_up(), d.sessions_up()),
        settled,
        "no session came up once settled (no flapping)"
    );
    assert!(holds(&c, &kd) && holds(&d, &kc));
    for e in [&a, &b, &c, &d] {
        e.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_one_key_do_not_take_a_session_from_each_other_in_turn() {
    let (tmp, mut reps) = replicas(2);
    let first = reps.pop().expect("node");
    let key = first.key().clone();
    let mut hub_cfg = config();
    hub_cfg.random_peers = 0;
    let hub = Engine::start(reps.pop().expect("hub"), hub_cfg)
        .await
        .expect("the hub starts");
    let one = Engine::start(first, config())
        .await
        .expect("the first process starts");
    one.connect(hub.endpoint_addr());
    let up = common::wait_for(Duration::from_secs(10), || holds(&hub, &key)).await;
    assert!(up, "the first process connects");

    // The same replica started a second time (a second process on the
    // same data dir, or a copied device): it takes the session over.
    let again = Replica::open(&dir(&tmp, 1)).expect("the replica opens twice");
    let two = Engine::start(again, config())
        .await
        .expect("the second process starts");
    let before = hub.sessions_up();
    two.connect(hub.endpoint_addr());
    let took_over = common::wait_for(Duration::from_secs(10), || {
        hub.sessions_up() > before && holds(&two, hub.key())
    })
    .await;
    assert!(took_over, "the second process's session replaces the first");
    let settled = hub.sessions_up();
    // The first keeps dialing (the hub is a person's replica); each of its
    // sessions is refused rather than taking the session back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        hub.sessions_up(),
        settled,
        "the two processes did not take the session from each other"
    );
    assert!(holds(&hub, &key) && holds(&two, hub.key()));
    for e in [&one, &two, &hub] {
        e.shutdown().await;
    }
}

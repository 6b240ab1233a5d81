//! In-process replicas of one fleet, each with its own data dir and its own
//! iroh endpoint on 127.0.0.1, sharing one fault-injection layer.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig, Faults};
use serde_json::{Value, json};

pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub engines: Vec<Engine>,
    pub keys: Vec<MemberKey>,
    pub faults: Faults,
}

pub fn dir(tmp: &tempfile::TempDir, i: usize) -> PathBuf {
    tmp.path().join(format!("r{i}"))
}

/// Replica 0 is an admin laptop; the others are site nodes (role node),
/// spread over two sites. Every replica is enrolled before it starts.
pub fn replicas(n: usize) -> (tempfile::TempDir, Vec<Replica>) {
    replicas_as(n, |_| Role::Node)
}

/// [`replicas`] with replica i > 0 enrolled as `role(i)` (it still runs
/// node n{i}'s daemon): operators' laptops are what may edit the fleet.
pub fn replicas_as(n: usize, role: impl Fn(usize) -> Role) -> (tempfile::TempDir, Vec<Replica>) {
    let tmp = tempfile::tempdir().unwrap();
    let keys: Vec<MemberKey> = (1..n)
        .map(|i| {
            load_or_create_identity(&dir(&tmp, i))
                .unwrap()
                .key()
                .clone()
        })
        .collect();
    let mut r0 = Replica::init(&dir(&tmp, 0), "laptop", "test").unwrap();
    r0.change("setup", |d, _| {
        for s in ["S1", "S2"] {
            d.add_site(
                &SiteId::parse(s).unwrap(),
                &SiteRecord {
                    name: s.into(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )?;
        }
        for (i, k) in keys.iter().enumerate() {
            let node = format!("n{}", i + 1);
            d.put_member(k, &node, role(i + 1), now_ms())?;
            let id = NodeId::parse(&node).unwrap();
            d.add_node(
                &id,
                &NodeRecord {
                    site: if i % 2 == 0 { "S1" } else { "S2" }.into(),
                    role: Some("edge".into()),
                },
            )?;
            // Replica i runs node n{i}'s daemon.
            d.bind_node(&id, k)?;
        }
        Ok(())
    })
    .unwrap();
    let all = r0.changes_after(&[]);
    let mut out = vec![r0];
    for i in 1..n {
        out.push(Replica::init_from_changes(&dir(&tmp, i), all.clone()).unwrap());
    }
    (tmp, out)
}

pub fn config() -> EngineConfig {
    let mut cfg = EngineConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.poll = Duration::from_millis(50);
    cfg.dial_every = Duration::from_millis(200);
    cfg.anti_entropy = Duration::from_secs(2);
    cfg
}

/// Starts every replica and introduces each to replica 0; the addresses
/// they publish then spread and the dialers connect the rest.
pub async fn fleet(n: usize) -> Fleet {
    fleet_as(n, |_| Role::Node).await
}

/// [`fleet`] with replica i > 0 enrolled as `role(i)`.
pub async fn fleet_as(n: usize, role: impl Fn(usize) -> Role) -> Fleet {
    let (tmp, reps) = replicas_as(n, role);
    let faults = Faults::default();
    let mut engines = Vec::new();
    for r in reps {
        let mut cfg = config();
        cfg.faults = faults.clone();
        engines.push(Engine::start(r, cfg).await.unwrap());
    }
    let hub = engines[0].endpoint_addr();
    for e in &engines[1..] {
        e.connect(hub.clone());
    }
    let keys = engines.iter().map(|e| e.key().clone()).collect();
    Fleet {
        tmp,
        engines,
        keys,
        faults,
    }
}

pub fn set(e: &Engine, key: &str, value: Value) {
    let path = ConfigPath::parse(key).unwrap();
    e.with_replica(|r| {
        r.change(&format!("set {key}"), |d, _| {
            d.set_config(&LayerRef::Fleet, &path, &value)
        })
        .unwrap()
    });
    e.changed();
}

pub fn get(e: &Engine, key: &str) -> Option<Value> {
    e.with_replica(|r| {
        r.state()
            .fleet
            .get(&ConfigPath::parse(key).unwrap())
            .map(|v| (**v).clone())
    })
}

pub fn heads(e: &Engine) -> Vec<automerge::ChangeHash> {
    let mut h = e.with_replica(|r| r.heads());
    h.sort();
    h
}

pub fn converged(engines: &[&Engine]) -> bool {
    let h0 = heads(engines[0]);
    engines.iter().all(|e| heads(e) == h0)
}

/// Waits (bounded) until `cond` holds; false on timeout.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    cond()
}

pub fn value(i: usize) -> Value {
    json!(i)
}

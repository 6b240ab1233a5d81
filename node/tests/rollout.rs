//! A staged rollout over 20 node daemons in one process, synced over
//! loopback: failures in the first wave halt it before later waves open;
//! after a fix and a resume it reaches every node.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetdeck_node::daemon::{Daemon, DaemonConfig, MetricSource};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::Metrics;
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::rollout::{Phase, Rollout, RolloutSpec, wave_sizes};
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig};
use serde_json::{Value, json};

const NODES: usize = 20;

struct Quiet;
impl MetricSource for Quiet {
    fn sample(&mut self) -> Metrics {
        Metrics::default()
    }
}

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::new("127.0.0.1:0".parse().unwrap());
    c.anti_entropy = Duration::from_secs(5);
    c.poll = Duration::from_millis(100);
    c.dial_every = Duration::from_millis(300);
    c.random_peers = 2;
    c
}

fn node_id(i: usize) -> NodeId {
    NodeId::parse(&format!("n{i:02}")).unwrap()
}

fn spec(waves: Vec<u8>) -> RolloutSpec {
    RolloutSpec {
        set: BTreeMap::from([("frigate.version".to_string(), json!("bad"))]),
        sites: vec![],
        waves,
        soak_ms: 500,
        max_fail: 0,
        by: "ops".into(),
        at_ms: now_ms(),
    }
}

async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}

fn live(root: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(root.join("current/files/frigate/config.yml")).ok()
}

fn set(e: &Engine, key: &str, v: Value) {
    let p = ConfigPath::parse(key).unwrap();
    e.with_replica(|r| {
        r.change(&format!("set {key}"), |d, _| {
            d.set_config(&LayerRef::Fleet, &p, &v)
        })
        .unwrap()
    });
    e.changed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_in_the_first_wave_halt_the_rollout_before_later_waves_open() {
    play(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_the_fix_takes_the_halted_rollout_to_every_node() {
    play(true).await;
}

async fn play(resume: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..NODES)
        .map(|i| tmp.path().join(format!("n{i:02}")))
        .collect();
    let keys: Vec<_> = dirs
        .iter()
        .map(|d| load_or_create_identity(d).unwrap().key().clone())
        .collect();
    let mut ops = Replica::init(&tmp.path().join("ops"), "ops", "metrica").unwrap();
    ops.change("setup", |d, _| {
        d.add_site(
            &SiteId::parse("S1").unwrap(),
            &SiteRecord {
                name: "homes".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )?;
        for (i, k) in keys.iter().enumerate() {
            d.add_node(
                &node_id(i),
                &NodeRecord {
                    site: "S1".into(),
                    role: Some("pi".into()),
                },
            )?;
            d.put_member(k, node_id(i).as_str(), Role::Node, now_ms())?;
        }
        let fleet = LayerRef::Fleet;
        d.set_config(
            &fleet,
            &ConfigPath::parse("heartbeat.interval_s").unwrap(),
            &json!(1),
        )?;
        d.set_config(
            &fleet,
            &ConfigPath::parse("frigate.version").unwrap(),
            &json!("0.13"),
        )?;
        d.set_config(
            &fleet,
            &ConfigPath::parse("files").unwrap(),
            &json!({"frigate/config.yml": "version: {{ frigate.version }}\n"}),
        )?;
        // The health check fails on the bad version.
        d.set_config(
            &fleet,
            &ConfigPath::parse("apply.check").unwrap(),
            &json!("! grep -q bad \"$FLEETDECK_RELEASE/files/frigate/config.yml\""),
        )
    })
    .unwrap();
    let all = ops.changes_after(&[]);
    let ops = Engine::start(ops, cfg()).await.unwrap();
    // The operator's replica holds every heartbeat: it opens the waves.
    let _advance = fleetdeck_node::rollouts::spawn(&ops);
    let hub = ops.endpoint_addr();
    let mut daemons = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let r = Replica::init_from_changes(d, all.clone()).unwrap();
        let dc = DaemonConfig {
            root: d.join("root"),
            node: node_id(i),
            sync: cfg(),
        };
        let daemon = Daemon::start(r, dc, Box::new(Quiet)).await.unwrap();
        daemon.engine().connect(hub.clone());
        daemons.push(daemon);
    }
    let roots: Vec<_> = dirs.iter().map(|d| d.join("root")).collect();
    let t0 = Instant::now();
    let ok = eventually(Duration::from_secs(180), || {
        roots
            .iter()
            .all(|r| live(r).as_deref() == Some("version: 0.13\n"))
    })
    .await;
    eprintln!(
        "all {NODES} nodes applied the starting config after {:?}",
        t0.elapsed()
    );
    assert!(ok, "every node applied the starting config");

    let waves = vec![20u8, 60, 100];
    // Waves are cut from the ranked nodes: 4, 8 and 8 of 20, whatever the id.
    let id = "ro1".to_string();
    let probe = Rollout::new(id.clone(), spec(waves.clone()));
    let st = ops.with_replica(|r| r.state().clone());
    assert_eq!(wave_sizes(&probe.spec, &st), [4, 8, 8]);
    let wave_of: Vec<usize> = (0..NODES)
        .map(|i| probe.wave_of(&st, &node_id(i)).unwrap())
        .collect();
    ops.with_replica(|r| {
        r.change("start", |d, _| d.add_rollout(&id, &spec(waves.clone())))
            .unwrap()
    });
    ops.changed();
    let phase = |e: &Engine| {
        e.with_replica(|r| {
            let st = r.state().clone();
            st.rollouts
                .iter()
                .find(|x| x.id == id)
                .map(|x| x.phase(&st, r.health()))
        })
    };
    assert!(
        eventually(Duration::from_secs(180), || phase(&ops)
            == Some(Phase::Halted))
        .await,
        "the first wave's failures halt the rollout"
    );
    eprintln!("halted after {:?}", t0.elapsed());
    // Nothing beyond the first wave ever got the bad version.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (opened, halted) = ops.with_replica(|r| {
        let x = r
            .state()
            .rollouts
            .iter()
            .find(|x| x.id == id)
            .cloned()
            .unwrap();
        (x.events.opened.clone(), x.events.halted.clone())
    });
    assert!(opened.is_empty(), "no later wave opened: {opened:?}");
    assert!(halted.unwrap().1.contains("failed"), "the halt says why");
    // Later waves never got the bad version; the first wave's nodes (still
    // open after a halt) end back on the old config by rolling back.
    for (i, root) in roots.iter().enumerate() {
        if wave_of[i] > 0 {
            assert_eq!(
                live(root).as_deref(),
                Some("version: 0.13\n"),
                "node {i} (wave {}) never saw the rollout",
                wave_of[i] + 1
            );
        }
    }
    let rolled_back = eventually(Duration::from_secs(60), || {
        roots
            .iter()
            .all(|r| live(r).as_deref() == Some("version: 0.13\n"))
    })
    .await;
    assert!(
        rolled_back,
        "first-wave nodes rolled back to the old config"
    );

    if !resume {
        for d in daemons {
            d.shutdown().await;
        }
        return;
    }
    // The fix: a check that accepts the new version; then resume.
    set(&ops, "apply.check", json!("true"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    ops.with_replica(|r| {
        r.change("resume", |d, _| {
            d.rollout_event(&id, "resume", now_ms(), None)
        })
        .unwrap()
    });
    ops.changed();
    let done = eventually(Duration::from_secs(300), || {
        phase(&ops) == Some(Phase::Done)
            && roots
                .iter()
                .all(|r| live(r).as_deref() == Some("version: bad\n"))
    })
    .await;
    eprintln!("done (or gave up) after {:?}", t0.elapsed());
    if !done {
        let waves = ops.with_replica(|r| {
            let st = r.state().clone();
            let x = st.rollouts.iter().find(|x| x.id == id).cloned().unwrap();
            (
                x.events.clone(),
                x.wave_status(&st, r.health()),
                x.phase(&st, r.health()),
            )
        });
        let lives: Vec<_> = roots.iter().map(|r| live(r)).collect();
        let peers: Vec<usize> = daemons
            .iter()
            .map(|d| d.engine().connected().len())
            .collect();
        eprintln!("sessions per daemon: {peers:?}");
        let modes: Vec<_> = daemons
            .iter()
            .map(|d| (d.safe_mode(), d.last_outcome().map(|o| (o.result, o.error))))
            .collect();
        panic!(
            "after the fix and a resume every wave should open and every node apply it:\n{waves:#?}\nlive: {lives:?}\nwave_of: {wave_of:?}\ndaemons: {modes:#?}"
        );
    }
    for d in daemons {
        d.shutdown().await;
    }
}

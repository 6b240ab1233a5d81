//! The node daemon end to end, in one process: an operator replica edits
//! config, a node daemon (its own replica, synced over loopback) applies it
//! and reports back in its heartbeat.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleetdeck_node::daemon::{Daemon, DaemonConfig, MetricSource};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{FreezeRecord, LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::{ApplyResult, DiskUsage, Metrics};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig};
use serde_json::{Value, json};

struct Fixed;
impl MetricSource for Fixed {
    fn sample(&mut self) -> Metrics {
        Metrics {
            cpu_pct: 12.0,
            mem_pct: 40.0,
            disks: vec![DiskUsage {
                mount: "/".into(),
                used_pct: 30.0,
            }],
            load1: 0.3,
            uptime_s: 1000,
            temp_c: Some(48.0),
        }
    }
}

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::new("127.0.0.1:0".parse().unwrap());
    c.poll = Duration::from_millis(50);
    c.dial_every = Duration::from_millis(200);
    c
}

struct Setup {
    tmp: tempfile::TempDir,
    ops: Engine,
    node_dir: PathBuf,
    root: PathBuf,
}

/// An operator replica serving, and a node replica (enrolled, not started).
async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let node_dir = tmp.path().join("cam-1");
    let node_key = load_or_create_identity(&node_dir).unwrap().key().clone();
    let mut ops = Replica::init(&tmp.path().join("ops"), "ops", "blocao").unwrap();
    ops.change("setup", |d, _| {
        d.add_site(
            &SiteId::parse("BL-LAB-1").unwrap(),
            &SiteRecord {
                name: "Lab 1".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )?;
        d.add_node(
            &NodeId::parse("cam-1").unwrap(),
            &NodeRecord {
                site: "BL-LAB-1".into(),
                role: Some("camera".into()),
            },
        )?;
        d.put_member(&node_key, "cam-1", Role::Node, now_ms())?;
        d.set_config(
            &LayerRef::Fleet,
            &ConfigPath::parse("heartbeat.interval_s").unwrap(),
            &json!(1),
        )?;
        d.set_config(
            &LayerRef::Fleet,
            &ConfigPath::parse("files").unwrap(),
            &json!({"frigate/config.yml": "version: {{ frigate.version }}\n"}),
        )?;
        d.set_config(
            &LayerRef::Fleet,
            &ConfigPath::parse("frigate.version").unwrap(),
            &json!("0.13"),
        )
    })
    .unwrap();
    Replica::init_from_changes(&node_dir, ops.changes_after(&[])).unwrap();
    let ops = Engine::start(ops, cfg()).await.unwrap();
    let root = tmp.path().join("cam-1-root");
    Setup {
        tmp,
        ops,
        node_dir,
        root,
    }
}

async fn start(s: &Setup) -> Daemon {
    let replica = Replica::open(&s.node_dir).unwrap();
    let dc = DaemonConfig {
        root: s.root.clone(),
        node: NodeId::parse("cam-1").unwrap(),
        sync: cfg(),
    };
    let d = Daemon::start(replica, dc, Box::new(Fixed)).await.unwrap();
    d.engine().connect(s.ops.endpoint_addr());
    d
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

fn live(root: &Path) -> Option<String> {
    std::fs::read_to_string(root.join("current/files/frigate/config.yml")).ok()
}

async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// What the operator's replica knows of cam-1's last apply.
fn reported(ops: &Engine) -> Option<(ApplyResult, String)> {
    ops.with_replica(|r| {
        r.health()
            .get("cam-1")
            .and_then(|s| s.reg.applied.as_ref())
            .map(|a| (a.result, a.revision.clone()))
    })
}

fn alert_ids(ops: &Engine) -> Vec<String> {
    ops.with_replica(|r| r.alerts(now_ms()).into_iter().map(|a| a.id).collect())
}

fn has_alert(ops: &Engine, id: &str) -> bool {
    alert_ids(ops).iter().any(|a| a == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_is_applied_on_the_node_and_reported_back_to_the_operator() {
    let s = setup().await;
    let d = start(&s).await;
    assert!(
        eventually(Duration::from_secs(10), || live(&s.root).as_deref()
            == Some("version: 0.13\n"))
        .await
    );
    set(&s.ops, "frigate.version", json!("0.14"));
    assert!(
        eventually(Duration::from_secs(10), || live(&s.root).as_deref()
            == Some("version: 0.14\n"))
        .await
    );
    let rev = d.current().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || reported(&s.ops)
            == Some((ApplyResult::Ok, rev.clone())))
        .await,
        "the operator sees the applied revision in the node's heartbeat"
    );
    let (cpu, temp, addrs) = s.ops.with_replica(|r| {
        let reg = &r.health()["cam-1"].reg;
        (reg.metrics.cpu_pct, reg.metrics.temp_c, reg.addrs.clone())
    });
    assert_eq!((cpu, temp), (12.0, Some(48.0)));
    // The heartbeat says where the node listens (that is where hubs and
    // laptops dial it, not the document).
    assert!(!addrs.is_empty());
    assert_eq!(addrs, d.engine().published_addrs());
    d.shutdown().await;
    drop(s.tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_rolls_back_and_three_in_a_row_mean_safe_mode_until_resumed() {
    let s = setup().await;
    let d = start(&s).await;
    assert!(eventually(Duration::from_secs(10), || live(&s.root).is_some()).await);
    let good = d.current().unwrap();
    set(
        &s.ops,
        "apply.check",
        json!("grep -q 0.13 \"$FLEETDECK_RELEASE/files/frigate/config.yml\""),
    );
    for v in ["0.14", "0.15", "0.16"] {
        set(&s.ops, "frigate.version", json!(v));
        let rolled = eventually(Duration::from_secs(10), || {
            d.last_outcome()
                .is_some_and(|o| o.result == ApplyResult::RolledBack && o.error.is_some())
                && d.last_outcome().is_some_and(|o| o.revision != good)
                && live(&s.root).as_deref() == Some("version: 0.13\n")
        })
        .await;
        assert!(rolled, "{v} was rolled back to the good release");
        assert!(
            eventually(Duration::from_secs(5), || d
                .last_outcome()
                .map(|o| o.at_ms)
                .is_some())
            .await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        eventually(Duration::from_secs(10), || d.safe_mode().is_some()).await,
        "safe mode after 3 failures"
    );
    assert!(
        eventually(Duration::from_secs(10), || has_alert(
            &s.ops,
            "safe-mode:cam-1"
        ))
        .await,
        "the operator sees a hard safe-mode alert"
    );
    // A fixed config is not applied while in safe mode…
    set(&s.ops, "apply.check", json!("true"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(live(&s.root).as_deref(), Some("version: 0.13\n"));
    // …until an operator resumes the node.
    let node = NodeId::parse("cam-1").unwrap();
    s.ops.with_replica(|r| {
        r.change("resume", |doc, _| doc.resume_node(&node, now_ms()))
            .unwrap()
    });
    s.ops.changed();
    assert!(
        eventually(Duration::from_secs(10), || live(&s.root).as_deref()
            == Some("version: 0.16\n"))
        .await
    );
    assert!(d.safe_mode().is_none());
    assert!(
        eventually(Duration::from_secs(10), || !has_alert(
            &s.ops,
            "safe-mode:cam-1"
        ))
        .await
    );
    d.shutdown().await;
}

/// A bad edit is rolled back; undoing the edit makes the live release the
/// desired one again, and the node says so: its report turns Ok and the
/// operator's apply alert resolves, with nothing applied anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undoing_a_rolled_back_edit_reports_the_live_release_ok() {
    let s = setup().await;
    let d = start(&s).await;
    assert!(eventually(Duration::from_secs(10), || live(&s.root).is_some()).await);
    let good = d.current().unwrap();
    set(
        &s.ops,
        "apply.check",
        json!("grep -q 0.13 \"$FLEETDECK_RELEASE/files/frigate/config.yml\""),
    );
    // The release with the check goes live (0.13 passes it).
    assert!(
        eventually(Duration::from_secs(10), || {
            d.current().is_some_and(|c| c != good)
                && reported(&s.ops) == Some((ApplyResult::Ok, d.current().unwrap()))
        })
        .await
    );
    let checked = d.current().unwrap();
    set(&s.ops, "frigate.version", json!("0.14"));
    assert!(
        eventually(Duration::from_secs(10), || {
            reported(&s.ops).is_some_and(|(r, _)| r == ApplyResult::RolledBack)
        })
        .await,
        "0.14 fails its check and is rolled back"
    );
    assert!(
        eventually(Duration::from_secs(10), || has_alert(&s.ops, "apply:cam-1")).await,
        "the operator sees the failed apply"
    );
    set(&s.ops, "frigate.version", json!("0.13"));
    assert!(
        eventually(Duration::from_secs(10), || {
            reported(&s.ops) == Some((ApplyResult::Ok, checked.clone()))
        })
        .await,
        "the node reports the live release as the desired one, Ok: {:?}",
        reported(&s.ops)
    );
    assert_eq!(d.current(), Some(checked));
    assert!(
        eventually(Duration::from_secs(10), || !has_alert(
            &s.ops,
            "apply:cam-1"
        ))
        .await,
        "the apply alert resolves"
    );
    assert_eq!(live(&s.root).as_deref(), Some("version: 0.13\n"));
    d.shutdown().await;
}

/// A node whose clock is two hours behind (a Pi with no real-time clock,
/// before NTP) stamps its heartbeats two hours back, and the operator still
/// sees it up: a heartbeat is dated by the clock of the replica it reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_is_hours_behind_is_not_seen_down() {
    let s = setup().await;
    let d = start(&s).await;
    assert!(eventually(Duration::from_secs(10), || reported(&s.ops).is_some()).await);
    d.set_clock_skew(-2 * 3_600_000);
    let stamped_back = || {
        s.ops.with_replica(|r| {
            r.health()
                .get("cam-1")
                .is_some_and(|h| h.reg.time_ms < now_ms() - 3_600_000)
        })
    };
    assert!(
        eventually(Duration::from_secs(10), stamped_back).await,
        "heartbeats arrive stamped two hours back"
    );
    // By its own stamps the node went silent two hours ago, far past the
    // node-down threshold (3 heartbeats of 1 s); the operator heard it a
    // second ago and raises nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(stamped_back());
    // (cam-1 is its site's only node: down, it would show as the site
    // offline rather than as a node down.)
    assert!(
        !alert_ids(&s.ops)
            .iter()
            .any(|a| a.starts_with("node-down:") || a.starts_with("site-offline:")),
        "a node with a slow clock is not down: {:?}",
        alert_ids(&s.ops)
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_fleet_is_frozen_nothing_new_is_applied() {
    let s = setup().await;
    let d = start(&s).await;
    assert!(eventually(Duration::from_secs(10), || live(&s.root).is_some()).await);
    let freeze = |on: bool| FreezeRecord {
        frozen: on,
        by: "ops".into(),
        at_ms: now_ms(),
        message: "incident".into(),
    };
    s.ops.with_replica(|r| {
        r.change("freeze", |doc, _| doc.set_freeze(&freeze(true)))
            .unwrap()
    });
    s.ops.changed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    set(&s.ops, "frigate.version", json!("0.99"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        live(&s.root).as_deref(),
        Some("version: 0.13\n"),
        "frozen: the node keeps its release"
    );
    s.ops.with_replica(|r| {
        r.change("unfreeze", |doc, _| doc.set_freeze(&freeze(false)))
            .unwrap()
    });
    s.ops.changed();
    assert!(
        eventually(Duration::from_secs(10), || live(&s.root).as_deref()
            == Some("version: 0.99\n"))
        .await
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edit_is_healed_and_reported_or_only_reported() {
    let s = setup().await;
    let d = start(&s).await;
    assert!(eventually(Duration::from_secs(10), || live(&s.root).is_some()).await);
    let file = s.root.join("current/files/frigate/config.yml");
    std::fs::write(&file, "version: edited-by-hand\n").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || live(&s.root).as_deref()
            == Some("version: 0.13\n"))
        .await,
        "drift is healed by default"
    );
    assert!(
        eventually(Duration::from_secs(10), || has_alert(&s.ops, "drift:cam-1")).await,
        "and reported"
    );
    set(&s.ops, "drift", json!("report"));
    assert!(
        eventually(Duration::from_secs(10), || d.current().is_some()
            && live(&s.root).is_some())
        .await
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let file = s.root.join("current/files/frigate/config.yml");
    std::fs::write(&file, "version: edited-again\n").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        live(&s.root).as_deref(),
        Some("version: edited-again\n"),
        "report-only leaves the edit"
    );
    assert!(eventually(Duration::from_secs(10), || has_alert(&s.ops, "drift:cam-1")).await);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_puts_the_node_in_safe_mode() {
    let s = setup().await;
    for _ in 0..4 {
        let d = start(&s).await;
        assert!(d.safe_mode().is_none());
        d.shutdown().await;
    }
    let d = start(&s).await;
    assert!(
        d.safe_mode().is_some_and(|w| w.contains("crash loop")),
        "{:?}",
        d.safe_mode()
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_exactly_once_across_a_restart_and_unlisted_actions_are_refused() {
    use fleetdeck_store::document::CommandRecord;
    let s = setup().await;
    let marker = s.tmp.path().join("ran.txt");
    set(
        &s.ops,
        "actions.touch",
        json!({"cmd": format!("echo ran >> {}", marker.display()), "timeout_s": 5}),
    );
    let d = start(&s).await;
    assert!(eventually(Duration::from_secs(10), || live(&s.root).is_some()).await);
    let add = |id: &str, action: &str| {
        let rec = CommandRecord {
            action: action.into(),
            target: "site:BL-LAB-1".into(),
            by: "ops".into(),
            at_ms: now_ms(),
        };
        s.ops.with_replica(|r| {
            r.change("command", |doc, _| doc.add_command(id, &rec))
                .unwrap()
        });
        s.ops.changed();
    };
    add("c1", "touch");
    add("c2", "rm-everything");
    let result = |id: &str| {
        s.ops.with_replica(|r| {
            r.state()
                .command_results
                .get(id)
                .and_then(|m| m.get("cam-1"))
                .cloned()
        })
    };
    assert!(
        eventually(Duration::from_secs(10), || result("c1")
            .is_some_and(|r| r.ok && r.exit_code == Some(0)))
        .await
    );
    assert!(
        eventually(Duration::from_secs(10), || result("c2").is_some_and(|r| !r
            .ok
            && r.output.contains("not in this node's config")))
        .await,
        "an action that is not in the node's config is refused, not run"
    );
    assert!(
        s.ops.with_replica(|r| {
            r.results_registers().contains_key("cam-1")
                && r.doc_mut().command_result_in_doc("c1", "cam-1").is_none()
        }),
        "the results came in cam-1's results register, not the document"
    );
    d.shutdown().await;
    // Restart: the command is not run again.
    let d = start(&s).await;
    set(&s.ops, "frigate.version", json!("0.14"));
    assert!(
        eventually(Duration::from_secs(10), || live(&s.root).as_deref()
            == Some("version: 0.14\n"))
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "ran\n",
        "exactly once"
    );
    d.shutdown().await;
}

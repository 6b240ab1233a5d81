//! P2: one edit on the ops replica → applied and health-checked on all 100
//! node daemons, as the ops replica sees it (every node's heartbeat reports
//! the new revision, result ok). 100 daemons in this process, each with its
//! own replica, root and iroh endpoint on 127.0.0.1; one ops replica with an
//! engine (the laptop/hub) that every node is introduced to.
//!
//! Run: `cargo bench -p fleetdeck-node --bench edit_to_applied`
//!
//! Baseline in the same run: the apply step alone for the same 100 nodes
//! (render + write + fsync + swap + health check through `Applier`, the
//! daemon's own code, driven directly, 100 applies concurrently on the same
//! runtime), with no replica and no sync: what sync and reporting add on top.
//!
//! `FLEETDECK_BENCH_QUICK=1`: 20 nodes and 5 edits, a smoke run whose figures
//! judge nothing. Every loop is bounded in count and in time; all traffic is
//! on 127.0.0.1 (mDNS off).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fleetdeck_node::apply::{Applier, Hooks, Outcome};
use fleetdeck_node::command::CmdSpec;
use fleetdeck_node::render;
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::health::ApplyResult;
use fleetdeck_store::{NodeId, now_ms};
use fleetdeck_sync::Engine;
use serde_json::{Value, json};

const NODES: usize = 100;
const SITES: usize = 10;
const WARMUP: usize = 3;
const EDITS: usize = 30;
/// Between two edits: edits are human-paced; this lets the heartbeats of
/// one edit settle before the next.
const PAUSE: Duration = Duration::from_millis(1000);
/// An edit not seen complete within this counts at this.
const EDIT_LIMIT: Duration = Duration::from_secs(20);
/// All measured edits stop after this much time.
const EDITS_LIMIT: Duration = Duration::from_secs(400);
const START_LIMIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(5);
const TARGET_P99_MS: f64 = 1000.0;

const KEY: &str = "bench.rev";
const FILE: &str = "app/bench.conf";
const CHECK: &str = "grep -q '^rev = ' \"$FLEETDECK_RELEASE/files/app/bench.conf\"";

fn fleet_config() -> Vec<(&'static str, Value)> {
    vec![
        ("heartbeat.interval_s", json!(10)),
        (KEY, json!(0)),
        (
            "files",
            json!({ FILE: "# rendered by fleetdeck\nrev = {{ bench.rev }}\n" }),
        ),
        ("apply.check", json!(CHECK)),
    ]
}

fn main() {
    let quick = quick();
    let (nodes, edits) = if quick { (20, 5) } else { (NODES, EDITS) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "P2 edit -> applied and health-checked on {nodes} node daemons{}",
        if quick {
            " (QUICK: smoke run, figures judge nothing)"
        } else {
            ""
        }
    );
    println!(
        "machine: {} CPUs, load average at start {} (other agents build on this machine)",
        cpus(),
        loadavg()
    );
    let rows = rt.block_on(run(nodes, edits));
    println!("load average at end {}", loadavg());
    print_table(&rows);
}

async fn run(nodes: usize, edits: usize) -> Vec<Row> {
    let (tmp, place) = shm_tempdir("fleetdeck-p2-");
    println!("data dirs and node roots on {place}");
    let (ops, ids) = make_fleet(tmp.path(), nodes, SITES, &fleet_config());
    // The baseline's trees are the nodes' real effective configs.
    let trees: Vec<Value> = ids
        .iter()
        .map(|(id, _)| {
            ops.effective_node(id)
                .expect("an effective config")
                .to_tree()
        })
        .collect();

    let base = baseline(tmp.path(), &trees, edits).await;

    let t = Instant::now();
    let (ops, daemons) = start_fleet(ops, &ids).await;
    println!(
        "started the ops engine and {} daemons in {:.1} s",
        daemons.len(),
        t.elapsed().as_secs_f64()
    );
    let node_ids: Vec<NodeId> = ids.iter().map(|(id, _)| id.clone()).collect();
    let want = expected(&ops, &node_ids);
    let ok = wait_until(START_LIMIT, Duration::from_millis(100), || {
        missing(&ops, &want) == 0
    })
    .await;
    println!(
        "every node applied the starting config and reported it to ops after {:.1} s ({})",
        t.elapsed().as_secs_f64(),
        if ok {
            "all".to_string()
        } else {
            format!("{} missing at the limit", missing(&ops, &want))
        }
    );
    let sessions = ops.connected().len();
    println!("ops replica: {sessions} sessions");
    if !ok {
        let n = missing(&ops, &want);
        for d in daemons {
            d.shutdown().await;
        }
        ops.shutdown().await;
        return vec![Row::new(
            "P2 edits not measured",
            format!("{n} nodes never reported their first apply"),
            format!("< {TARGET_P99_MS:.0} ms"),
            Some(false),
        )];
    }

    let mut lat = Vec::new();
    let mut last_applied = Vec::new();
    let mut apply_ms = Vec::new();
    let mut timeouts = 0;
    let started = Instant::now();
    let path = key(KEY);
    for i in 1..=(WARMUP + edits) {
        if i > WARMUP && started.elapsed() > EDITS_LIMIT {
            println!("stopping: the edits took over {EDITS_LIMIT:?}");
            break;
        }
        tokio::time::sleep(PAUSE).await;
        let t0 = Instant::now();
        let t0_ms = now_ms();
        let want = ops.with_replica(|r| {
            r.change(&format!("bench edit {i}"), |d, _| {
                d.set_config(&LayerRef::Fleet, &path, &json!(i))
            })
            .expect("the edit");
            node_ids
                .iter()
                .map(|id| {
                    (
                        id.as_str().to_string(),
                        r.effective_node(id).expect("effective").revision(),
                    )
                })
                .collect::<HashMap<_, _>>()
        });
        ops.changed();
        let done = wait_until(EDIT_LIMIT, POLL, || missing(&ops, &want) == 0).await;
        let took = t0.elapsed();
        if !done {
            timeouts += 1;
        }
        if i > WARMUP {
            lat.push(ms(took));
            // When the last node finished its apply (the node's clock, the
            // same clock here) and how long applies took, from the reports.
            let (at, dur) = ops.with_replica(|r| {
                let mut at = 0i64;
                let mut dur = Vec::new();
                for id in want.keys() {
                    if let Some(a) = r.health().get(id).and_then(|s| s.reg.applied.as_ref()) {
                        at = at.max(a.at_ms);
                        dur.push(a.duration_ms as f64);
                    }
                }
                (at, dur)
            });
            last_applied.push((at - t0_ms).max(0) as f64);
            apply_ms.extend(dur);
        }
    }
    println!("load average after the edits {}", loadavg());
    for d in daemons {
        d.shutdown().await;
    }
    ops.shutdown().await;

    let (p50, p99, max) = (pct(&lat, 50.0), pct(&lat, 99.0), pct(&lat, 100.0));
    println!();
    println!(
        "P2 fleetdeck: {} measured edits ({WARMUP} warm-up), {PAUSE:?} apart, each from just before Replica::change on ops",
        lat.len()
    );
    println!(
        "  until ops holds, for all {} nodes, a heartbeat whose applied report has the new revision and result ok",
        node_ids.len()
    );
    println!(
        "  p50 {p50:.0} ms  p99 {p99:.0} ms  max {max:.0} ms  (edits not complete within {EDIT_LIMIT:?}: {timeouts}, counted at the limit)"
    );
    println!(
        "  of which: edit -> last node's apply finished (its report's at_ms): p50 {:.0} ms  p99 {:.0} ms",
        pct(&last_applied, 50.0),
        pct(&last_applied, 99.0)
    );
    println!(
        "  one node's apply as it reported it (duration_ms, {} applies): p50 {:.0} ms  p99 {:.0} ms",
        apply_ms.len(),
        pct(&apply_ms, 50.0),
        pct(&apply_ms, 99.0)
    );
    println!(
        "P2 baseline: the apply step alone for the same {} nodes (Applier: render, write+fsync, swap, check), no sync: {} rounds",
        node_ids.len(),
        base.rounds.len()
    );
    println!(
        "  all nodes applied: p50 {:.0} ms  p99 {:.0} ms;  one apply: p50 {:.1} ms  p99 {:.1} ms",
        pct(&base.rounds, 50.0),
        pct(&base.rounds, 99.0),
        pct(&base.one, 50.0),
        pct(&base.one, 99.0)
    );
    println!(
        "  sync, reporting and the daemons' own work add {:.0} ms at p50 ({:.1}x the apply step alone)",
        p50 - pct(&base.rounds, 50.0),
        p50 / pct(&base.rounds, 50.0)
    );
    drop(tmp);
    let n = node_ids.len();
    vec![
        Row::new(
            format!("P2 edit -> applied+checked on {n} nodes, p50"),
            format!("{p50:.0} ms"),
            "-",
            None,
        ),
        Row::new(
            format!("P2 edit -> applied+checked on {n} nodes, p99"),
            format!("{p99:.0} ms"),
            format!("< {TARGET_P99_MS:.0} ms"),
            Some(p99 < TARGET_P99_MS && timeouts == 0),
        ),
        Row::new(
            "  baseline: apply step alone, all nodes, p50",
            format!("{:.0} ms", pct(&base.rounds, 50.0)),
            "-",
            None,
        ),
        Row::new(
            "  baseline: apply step alone, all nodes, p99",
            format!("{:.0} ms", pct(&base.rounds, 99.0)),
            "-",
            None,
        ),
    ]
}

/// For every node, the revision of its effective config on ops.
fn expected(ops: &Engine, ids: &[NodeId]) -> HashMap<String, String> {
    ops.with_replica(|r| {
        ids.iter()
            .map(|id| {
                (
                    id.as_str().to_string(),
                    r.effective_node(id).expect("effective").revision(),
                )
            })
            .collect()
    })
}

/// Nodes whose latest heartbeat on ops does not report `want` applied ok.
fn missing(ops: &Engine, want: &HashMap<String, String>) -> usize {
    ops.with_replica(|r| {
        want.iter()
            .filter(|(id, rev)| {
                !r.health()
                    .get(id.as_str())
                    .and_then(|s| s.reg.applied.as_ref())
                    .is_some_and(|a| &a.revision == *rev && a.result == ApplyResult::Ok)
            })
            .count()
    })
}

struct Baseline {
    /// Per round: all nodes applied (ms).
    rounds: Vec<f64>,
    /// Per apply (ms).
    one: Vec<f64>,
}

/// The same nodes' apply step, driven directly: for each round, every node
/// renders its tree with the new value and applies it through its own
/// `Applier` (its own root), all 100 concurrently on this runtime.
async fn baseline(dir: &std::path::Path, trees: &[Value], edits: usize) -> Baseline {
    let hooks = Hooks {
        reload: None,
        check: Some(CmdSpec::from_value(&json!(CHECK)).expect("the check command")),
    };
    let appliers: Vec<Arc<Applier>> = (0..trees.len())
        .map(|i| {
            Arc::new(
                Applier::new(&dir.join(format!("base{i:03}"))).expect("a baseline applier root"),
            )
        })
        .collect();
    let mut rounds = Vec::new();
    let mut one = Vec::new();
    let start = Instant::now();
    for round in 0..=(WARMUP + edits) {
        if start.elapsed() > EDITS_LIMIT {
            break;
        }
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(trees.len());
        for (tree, ap) in trees.iter().zip(&appliers) {
            let mut tree = tree.clone();
            if let Some(b) = tree.get_mut("bench") {
                b["rev"] = json!(round);
            }
            let ap = ap.clone();
            let hooks = hooks.clone();
            tasks.push(tokio::spawn(async move {
                let rendered = render::render(&tree).expect("the bench template renders");
                let rev = render::revision(&tree);
                let (outcome, took) = ap
                    .apply(&rendered, &rev, &hooks)
                    .await
                    .expect("no failpoint");
                assert!(
                    matches!(outcome, Outcome::Applied { .. }),
                    "baseline apply: {outcome:?}"
                );
                took
            }));
        }
        let mut took = Vec::new();
        for t in tasks {
            took.push(ms(t.await.expect("an apply task")));
        }
        // Round 0 puts the first release in place (as the daemons' start does).
        if round > WARMUP {
            rounds.push(ms(t0.elapsed()));
            one.extend(took);
        }
    }
    println!(
        "baseline: {} rounds of {} applies took {:.1} s",
        rounds.len(),
        trees.len(),
        start.elapsed().as_secs_f64()
    );
    Baseline { rounds, one }
}

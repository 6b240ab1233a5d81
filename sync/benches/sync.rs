//! Sync benchmark (P1, P3, P7): replicas of one fleet, each with its own
//! data dir and its own iroh endpoint on 127.0.0.1, all in this process.
//!
//! Run: `cargo bench -p fleetdeck-sync --bench sync`
//!
//! - P1: one edit on the admin laptop → present on all 100 replicas; p50 and
//!   p99 over many edits. Baseline in the same run: the same payload fanned
//!   out to 100 subscribers through a mosquitto broker (QoS 1), started by
//!   this bench on a loopback port.
//! - P3: two halves partitioned while 500 edits and heartbeats accumulate,
//!   then healed: time to identical state, and bytes exchanged against the
//!   size of what each replica lacked.
//! - P7: bytes per node over a 120 s window at 10 s heartbeats in a fleet
//!   whose document holds 500 nodes, scaled to a day; `p7relay` the same
//!   with every session through iroh's test relay on 127.0.0.1.
//!
//! A plain `fn main` bench (no harness); arguments cargo passes are ignored.
//! `FLEETDECK_BENCH_ONLY=p1,p3,p7,p7relay` runs a subset (the table then only holds
//! those rows); `FLEETDECK_BENCH_QUICK=1` makes a short smoke run;
//! `FLEETDECK_BENCH_NO_DISK=1` skips P1's shared-disk context run;
//! `FLEETDECK_BENCH_SHM=1` puts every data dir on /dev/shm (P7's are there
//! always). Every loop is bounded in count and time; all traffic stays on
//! 127.0.0.1 (mDNS off). Engines run with `EngineConfig`'s defaults except
//! where a section says otherwise.

#[path = "../../node/benches/common/mosquitto.rs"]
mod mosquitto;
#[path = "../../node/benches/common/report.rs"]
mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::{
    ApplyReport, ApplyResult, CheckResult, DiskUsage, HealthRegister, Metrics, TlsCert,
};
use fleetdeck_store::identity::Identity;
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig, Faults, Wire};
use mosquitto::Broker;
use report::{Row, loadavg, ms, quick};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

// ---- parameters ----------------------------------------------------------------

const P1_REPLICAS: usize = 100;
const P1_WARMUP: usize = 3;
const P1_EDITS: usize = 60;
/// Edits of the shared-disk context run.
const P1_DISK_EDITS: usize = 20;
/// Pause between two measured edits (or broker messages): edits are
/// human-paced, and this lets the follow-up traffic of one edit settle.
const P1_PAUSE: Duration = Duration::from_millis(150);
const P1_EDIT_LIMIT: Duration = Duration::from_secs(10);
const P1_TOPIC: &str = "fleet/config";

const P3_REPLICAS: usize = 30;
const P3_EDITS: usize = 500;
/// A heartbeat from every node after every this many edits.
const P3_BEAT_EVERY: usize = 50;
const P3_LIMIT: Duration = Duration::from_secs(30);
const P3_TRIALS: usize = 3;

const P7_LIVE: usize = 30;
const P7_FLEET_NODES: usize = 500;
/// 12 rounds of 10 s: two anti-entropy ticks and several keep-alive
/// intervals fall in the window.
const P7_ROUNDS: usize = 12;
const HEARTBEAT_S: u64 = 10;

const NODES_PER_SITE: usize = 10;
const CONVERGE_LIMIT: Duration = Duration::from_secs(180);

const TARGET_P1_P99_MS: f64 = 250.0;
const TARGET_P1_RATIO: f64 = 2.0;
const TARGET_P3_S: f64 = 2.0;
const TARGET_P3_RATIO: f64 = 2.0;
const TARGET_P7_MB: f64 = 5.0;

fn main() {
    let only = std::env::var("FLEETDECK_BENCH_ONLY").unwrap_or_else(|_| "p1,p3,p7,p7relay".into());
    let want = |p: &str| only.split(',').any(|x| x.trim().eq_ignore_ascii_case(p));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let load_start = loadavg();
    println!(
        "load average at start: {load_start} (other work on the machine slows every figure here)"
    );
    let mut table = Table::default();
    rt.block_on(async {
        if want("p1") {
            p1(&mut table).await;
        }
        if want("p3") {
            p3(&mut table).await;
        }
        if want("p7") {
            p7(&mut table, false).await;
        }
        if want("p7relay") {
            p7(&mut table, true).await;
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    println!();
    println!(
        "whole run {:.0} s; machine: {} CPUs; load average at start {load_start}, at end {}; percentiles are nearest-rank; MB = 10^6 bytes",
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    table.print();
}

// ---- output ----------------------------------------------------------------------

/// The figures of the whole run, printed at the end in fixed columns with
/// a count of the targets met.
#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// A figure with its verdict against the target, if it has one.
    fn row(&mut self, figure: &str, measured: String, target: &str, result: Option<bool>) {
        self.rows.push(Row::new(figure, measured, target, result));
    }

    fn print(&self) {
        let (a, b, c) = (46, 62, 30);
        let line = "-".repeat(a + b + c + 9);
        println!("{line}");
        println!(
            "{:<a$} {:<b$} {:<c$} result",
            "figure", "measured", "target"
        );
        println!("{line}");
        for r in &self.rows {
            let verdict = if r.pass.is_some() { r.verdict() } else { "" };
            println!(
                "{:<a$} {:<b$} {:<c$} {verdict}",
                r.what, r.measured, r.target
            );
        }
        println!("{line}");
        let pass = self.rows.iter().filter(|r| r.pass == Some(true)).count();
        let miss = self.rows.iter().filter(|r| r.pass == Some(false)).count();
        if quick() {
            println!("a quick run: no target judged");
        } else if miss == 0 {
            println!("all {pass} targets met");
        } else {
            println!("{pass} of {} targets met, {miss} MISS", pass + miss);
        }
    }
}

/// A quick run cuts the counts of edits and rounds.
fn scaled(n: usize) -> usize {
    if quick() { (n / 6).max(1) } else { n }
}

fn progress(msg: &str) {
    println!("  .. {msg}");
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

// ---- an in-process fleet -----------------------------------------------------------

struct Fleet {
    _tmp: tempfile::TempDir,
    engines: Vec<Arc<Engine>>,
    keys: Vec<MemberKey>,
    faults: Faults,
    /// `nodes[i]`: the node id of live replica i (None for the admin laptop).
    nodes: Vec<Option<String>>,
    /// Every session through a relay, no address published.
    via_relay: bool,
}

fn node_name(j: usize) -> String {
    format!("n{j:03}")
}

/// Data dirs go to /dev/shm when `FLEETDECK_BENCH_SHM=1` (or `shm` is true),
/// otherwise to the default temp dir.
fn temp_root(shm: bool) -> tempfile::TempDir {
    let shm = shm || std::env::var("FLEETDECK_BENCH_SHM").is_ok_and(|v| v == "1");
    if shm && Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").expect("temp dir in /dev/shm")
    } else {
        tempfile::tempdir().expect("temp dir")
    }
}

fn rdir(tmp: &tempfile::TempDir, i: usize) -> PathBuf {
    tmp.path().join(format!("r{i}"))
}

/// Replica 0 is an admin laptop; replicas 1.. are the first `live - 1` nodes
/// of a document holding `doc_nodes` nodes (10 per site), every one of them
/// an enrolled member. Members that are not live never publish an address,
/// so nobody dials them.
fn build_replicas(
    tmp: &tempfile::TempDir,
    live: usize,
    doc_nodes: usize,
    relay: Option<&str>,
) -> (Vec<Replica>, Vec<String>) {
    assert!(doc_nodes + 1 >= live);
    let mut keys: Vec<MemberKey> = (1..live)
        .map(|i| {
            load_or_create_identity(&rdir(tmp, i))
                .expect("identity")
                .key()
                .clone()
        })
        .collect();
    while keys.len() < doc_nodes {
        keys.push(Identity::generate().key().clone());
    }
    let all_nodes: Vec<String> = (0..doc_nodes).map(node_name).collect();
    let mut r0 = Replica::init(&rdir(tmp, 0), "laptop", "bench").expect("init");
    let sites = doc_nodes.div_ceil(NODES_PER_SITE);
    r0.change("bench fleet", |d, _| {
        for s in 0..sites {
            d.add_site(
                &SiteId::parse(&format!("S{s:03}"))?,
                &SiteRecord {
                    name: format!("site {s}"),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )?;
        }
        for (j, k) in keys.iter().enumerate() {
            d.put_member(k, &all_nodes[j], Role::Node, now_ms())?;
            let id = NodeId::parse(&all_nodes[j])?;
            d.add_node(
                &id,
                &NodeRecord {
                    site: format!("S{:03}", j / NODES_PER_SITE),
                    role: Some("edge".into()),
                },
            )?;
            // Each node's daemon runs on its own replica, as `node run`
            // binds it.
            d.bind_node(&id, k)?;
        }
        if let Some(url) = relay {
            d.set_config(
                &LayerRef::Fleet,
                &ConfigPath::parse("sync.relay_url")?,
                &json!(url),
            )?;
        }
        Ok(())
    })
    .expect("fleet change");
    let all = r0.changes_after(&[]);
    let mut out = vec![r0];
    for i in 1..live {
        out.push(Replica::init_from_changes(&rdir(tmp, i), all.clone()).expect("replica"));
    }
    (out, all_nodes)
}

/// The production defaults of `EngineConfig`, on loopback.
fn engine_config(faults: &Faults) -> EngineConfig {
    let mut cfg = EngineConfig::new("127.0.0.1:0".parse().expect("addr"));
    cfg.faults = faults.clone();
    // Loopback only: no multicast discovery.
    cfg.mdns = false;
    cfg
}

async fn start_fleet(live: usize, doc_nodes: usize, shm: bool) -> Fleet {
    start_fleet_via(live, doc_nodes, shm, None).await
}

/// [`start_fleet`]; with `relay`, the fleet names that relay, no replica
/// publishes an address, and every session goes through the relay.
async fn start_fleet_via(live: usize, doc_nodes: usize, shm: bool, relay: Option<&str>) -> Fleet {
    let tmp = temp_root(shm);
    let (reps, all_nodes) = build_replicas(&tmp, live, doc_nodes, relay);
    let faults = Faults::default();
    let mut engines = Vec::new();
    for r in reps {
        let mut cfg = engine_config(&faults);
        if relay.is_some() {
            cfg.publish_addrs = false;
            // iroh's test relay on 127.0.0.1 has a self-signed certificate.
            cfg.relay_tls = Some(iroh::tls::CaTlsConfig::insecure_skip_verify());
        }
        engines.push(Arc::new(Engine::start(r, cfg).await.expect("engine")));
    }
    // Introduce everyone to the laptop; addresses then spread through the
    // document and the dialers connect the rest. Through a relay the
    // dialers find everyone by key alone.
    if relay.is_none() {
        let hub = engines[0].endpoint_addr();
        for e in &engines[1..] {
            e.connect(hub.clone());
        }
    }
    let keys = engines.iter().map(|e| e.key().clone()).collect();
    let nodes = (0..live)
        .map(|i| (i > 0).then(|| all_nodes[i - 1].clone()))
        .collect();
    Fleet {
        _tmp: tmp,
        engines,
        keys,
        faults,
        nodes,
        via_relay: relay.is_some(),
    }
}

async fn shutdown(f: Fleet) {
    let mut tasks = Vec::new();
    for e in f.engines {
        if let Ok(e) = Arc::try_unwrap(e) {
            tasks.push(tokio::spawn(async move { e.shutdown().await }));
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
}

fn heads(e: &Engine) -> Vec<automerge::ChangeHash> {
    let mut h = e.with_replica(|r| r.heads());
    h.sort();
    h
}

fn health_seqs(e: &Engine) -> BTreeMap<String, u64> {
    e.with_replica(|r| {
        r.health()
            .iter()
            .map(|(n, s)| (n.clone(), s.reg.seq))
            .collect()
    })
}

fn same_heads(engines: &[&Arc<Engine>]) -> bool {
    let h0 = heads(engines[0]);
    engines.iter().all(|e| heads(e) == h0)
}

/// Whether the replica is a people replica (admin, operator, viewer): one
/// that holds the whole fleet's health. Node replicas hold their own.
fn holds_fleet_health(e: &Engine) -> bool {
    e.with_replica(|r| {
        r.state()
            .members
            .get(r.key())
            .is_some_and(|m| m.role.holds_fleet_health())
    })
}

/// Identical heads, and every people replica among `engines` holds the
/// newest register of every node any of them holds.
fn same_state(engines: &[&Arc<Engine>]) -> bool {
    if !same_heads(engines) {
        return false;
    }
    let mut newest: BTreeMap<String, u64> = BTreeMap::new();
    for e in engines {
        for (n, seq) in health_seqs(e) {
            let x = newest.entry(n).or_default();
            *x = (*x).max(seq);
        }
    }
    engines
        .iter()
        .filter(|e| holds_fleet_health(e))
        .all(|e| health_seqs(e) == newest)
}

/// A register's size on the wire (postcard, as `Msg::Health` carries it).
/// What a register costs in a `Msg::HealthPacked` frame between peers of
/// this build: its packed form and its node's 64-byte signature (the age
/// beside them is a varint of a few bytes).
fn reg_len(reg: &HealthRegister) -> usize {
    fleetdeck_store::health::SignedRegister::sign(reg, &Identity::generate())
        .ok()
        .and_then(|s| s.pack().map(|p| p.len() + s.sig.len()))
        .unwrap_or(0)
}

/// Every replica holds the same heads and knows every live replica's address.
fn settled(f: &Fleet) -> bool {
    let all: Vec<&Arc<Engine>> = f.engines.iter().collect();
    if !same_heads(&all) {
        return false;
    }
    // Through a relay nobody publishes an address: the relay finds
    // everyone by key.
    if f.via_relay {
        return true;
    }
    let want: HashSet<&MemberKey> = f.keys.iter().collect();
    f.engines.iter().all(|e| {
        e.with_replica(|r| {
            r.state()
                .members
                .values()
                .filter(|m| want.contains(&m.key) && !m.addrs.is_empty())
                .count()
                == want.len()
        })
    })
}

async fn wait_until(limit: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    cond()
}

/// Sessions per replica: (min, median, max, distinct sessions in the fleet).
fn sessions(f: &Fleet) -> (usize, usize, usize, usize) {
    let mut n: Vec<usize> = f.engines.iter().map(|e| e.connected().len()).collect();
    n.sort();
    let total: usize = n.iter().sum();
    (n[0], n[n.len() / 2], n[n.len() - 1], total / 2)
}

fn sessions_text(s: (usize, usize, usize, usize)) -> String {
    format!(
        "sessions per replica min {} / median {} / max {} ({} distinct sessions)",
        s.0, s.1, s.2, s.3
    )
}

/// Sums of (bytes_in, bytes_out) per engine.
fn counters(f: &Fleet) -> Vec<(u64, u64)> {
    f.engines
        .iter()
        .map(|e| (e.stats().bytes_in(), e.stats().bytes_out()))
        .collect()
}

fn total_out(c: &[(u64, u64)]) -> u64 {
    c.iter().map(|x| x.1).sum()
}

fn total_in(c: &[(u64, u64)]) -> u64 {
    c.iter().map(|x| x.0).sum()
}

/// Waits (bounded) until no framed byte moved anywhere in the fleet for
/// `quiet`; returns whether it did.
async fn wait_quiet(f: &Fleet, quiet: Duration, limit: Duration) -> bool {
    let sum = |c: &[(u64, u64)]| total_in(c) + total_out(c);
    let mut last = sum(&counters(f));
    let mut since = Instant::now();
    let start = Instant::now();
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = sum(&counters(f));
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return true;
        }
    }
    false
}

type Probe = Arc<dyn Fn(&Engine) -> u64 + Send + Sync>;

/// One task per engine: on every change notification (and once at start),
/// evaluates `probe` on that engine and reports (engine, value, when).
/// What watchers report: (engine index, probe value, when).
type Reports = mpsc::UnboundedReceiver<(usize, u64, Instant)>;

fn spawn_watchers(f: &Fleet, probe: Probe) -> (Reports, Vec<JoinHandle<()>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let tasks = f
        .engines
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e.clone();
            let tx = tx.clone();
            let probe = probe.clone();
            tokio::spawn(async move {
                let mut rx = e.subscribe();
                loop {
                    rx.borrow_and_update();
                    let v = probe(&e);
                    if tx.send((i, v, Instant::now())).is_err() {
                        break;
                    }
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    (rx, tasks)
}

async fn stop_watchers(tasks: Vec<JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn set_value(e: &Engine, key: &str, value: u64) -> usize {
    let path = ConfigPath::parse(key).expect("path");
    let size = e.with_replica(|r| {
        let (_, hash) = r
            .change(&format!("set {key}"), |d, _| {
                d.set_config(&LayerRef::Fleet, &path, &json!(value))
            })
            .expect("edit");
        hash.and_then(|h| {
            r.doc_mut()
                .automerge_mut()
                .get_change_by_hash(&h)
                .map(|c| c.raw_bytes().len())
        })
        .unwrap_or(0)
    });
    e.changed();
    size
}

fn beat(node: &str, seq: u64) -> HealthRegister {
    let now = now_ms();
    let h = node
        .bytes()
        .fold(seq, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    HealthRegister {
        node: node.into(),
        seq,
        time_ms: now,
        metrics: Metrics {
            cpu_pct: (h % 700) as f64 / 10.0 + 3.0,
            mem_pct: (h % 600) as f64 / 10.0 + 25.0,
            disks: vec![
                DiskUsage {
                    mount: "/".into(),
                    used_pct: (h % 500) as f64 / 10.0 + 20.0,
                },
                DiskUsage {
                    mount: "/media/frigate".into(),
                    used_pct: (h % 800) as f64 / 10.0 + 10.0,
                },
            ],
            load1: (h % 350) as f64 / 100.0,
            uptime_s: 86_400 + seq * HEARTBEAT_S,
            temp_c: Some((h % 400) as f64 / 10.0 + 35.0),
        },
        tls: vec![TlsCert {
            name: format!("{node}.nodes.fleet.example"),
            not_after_ms: now + 60 * 86_400_000,
        }],
        backup: None,
        applied: Some(ApplyReport {
            revision: format!("{:012x}", h & 0xffff_ffff_ffff),
            result: ApplyResult::Ok,
            error: None,
            duration_ms: 1_200,
            at_ms: now - 3_600_000,
            from: Vec::new(),
        }),
        checks: vec![CheckResult {
            name: "frigate".into(),
            ok: true,
            output: String::new(),
        }],
        ..HealthRegister::default()
    }
}

// ---- P1 ------------------------------------------------------------------------------

struct P1Run {
    /// Time until the last replica holds the edit, per measured edit, sorted.
    last: Vec<Duration>,
    /// Same for the first replica other than the source, and the median one.
    first: Vec<Duration>,
    median: Vec<Duration>,
    timeouts: usize,
    payload: usize,
    before: (usize, usize, usize, usize),
    after: (usize, usize, usize, usize),
    /// The time bound ended the edits early.
    stopped: bool,
    substeps: Option<Substeps>,
}

/// One P1 fleet: `P1_REPLICAS` engines with `random_peers`, converged, then
/// `edits` measured edits (after `P1_WARMUP`) on the admin laptop, stopping
/// early when the edits have taken `budget`.
async fn p1_run(
    label: &str,
    shm: bool,
    edits: usize,
    budget: Duration,
    with_substeps: bool,
) -> P1Run {
    let t = Instant::now();
    let f = start_fleet(P1_REPLICAS, P1_REPLICAS - 1, shm).await;
    progress(&format!(
        "[{label}] {} engines started in {:.1} s (EngineConfig defaults)",
        f.engines.len(),
        t.elapsed().as_secs_f64()
    ));
    let t = Instant::now();
    let ok = wait_until(CONVERGE_LIMIT, Duration::from_millis(250), || settled(&f)).await;
    let before = sessions(&f);
    progress(&format!(
        "[{label}] fleet {} in {:.1} s; {}",
        if ok { "converged" } else { "did NOT converge" },
        t.elapsed().as_secs_f64(),
        sessions_text(before)
    ));

    let path = ConfigPath::parse("bench.p1").expect("path");
    let probe: Probe = Arc::new(move |e: &Engine| {
        e.with_replica(|r| {
            r.state()
                .fleet
                .get(&path)
                .and_then(|v| v.as_u64())
                .unwrap_or(0)
        })
    });
    let (mut rx, watchers) = spawn_watchers(&f, probe);
    let n = f.engines.len();
    let mut run = P1Run {
        last: Vec::new(),
        first: Vec::new(),
        median: Vec::new(),
        timeouts: 0,
        payload: 0,
        before,
        after: before,
        stopped: false,
        substeps: None,
    };
    let mut block = Vec::new();
    let t_all = Instant::now();
    for k in 1..=(P1_WARMUP + edits) as u64 {
        if t_all.elapsed() > budget {
            run.stopped = true;
            progress(&format!(
                "[{label}] stopped after {} edits: the time bound of {} s is spent",
                k - 1,
                budget.as_secs()
            ));
            break;
        }
        let mut arrivals: Vec<Option<Instant>> = vec![None; n];
        // Drain what is left of the previous edit.
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        run.payload = set_value(&f.engines[0], "bench.p1", k);
        let deadline = tokio::time::Instant::now() + P1_EDIT_LIMIT;
        while arrivals.iter().any(|a| a.is_none()) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, v, at))) => {
                    if v >= k && arrivals[i].is_none() {
                        arrivals[i] = Some(at);
                    }
                }
                _ => break,
            }
        }
        let mut got: Vec<Duration> = arrivals
            .iter()
            .filter_map(|a| a.map(|a| a.saturating_duration_since(t0)))
            .collect();
        got.sort();
        if got.len() < n {
            run.timeouts += 1;
            progress(&format!(
                "[{label}] edit {k}: only {}/{n} replicas within {} s",
                got.len(),
                P1_EDIT_LIMIT.as_secs()
            ));
            // Counted at the limit: the percentiles are then lower bounds.
            if k as usize > P1_WARMUP {
                run.last.push(P1_EDIT_LIMIT);
                block.push(P1_EDIT_LIMIT);
                if got.len() > 1 {
                    run.first.push(got[1]);
                }
                run.median
                    .push(got.get(n / 2).copied().unwrap_or(P1_EDIT_LIMIT));
            }
        } else if k as usize > P1_WARMUP {
            // The source itself is got[0]; the first other replica is got[1].
            run.first.push(got[1]);
            run.median.push(got[n / 2]);
            run.last.push(got[n - 1]);
            block.push(got[n - 1]);
        }
        if block.len() == 20 || k as usize == P1_WARMUP + edits {
            block.sort();
            progress(&format!(
                "[{label}] edit {k}/{}: last 20 edits p50 {:.0} ms max {:.0} ms; sessions median {}",
                P1_WARMUP + edits,
                ms(pct(&block, 50.0)),
                ms(pct(&block, 100.0)),
                sessions(&f).1
            ));
            block.clear();
        }
        tokio::time::sleep(P1_PAUSE).await;
    }
    stop_watchers(watchers).await;
    run.after = sessions(&f);
    progress(&format!(
        "[{label}] {} edits in {:.1} s; after them: {}",
        P1_WARMUP + edits,
        t_all.elapsed().as_secs_f64(),
        sessions_text(run.after)
    ));
    if with_substeps {
        let all = f.engines[0].with_replica(|r| r.changes_after(&[]));
        let mut sub = substeps(all, &rdir(&f._tmp, 0));
        // The same two costs on a live node's document, as the engine holds it.
        let (fork, state) = f.engines[1].with_replica(|r| {
            let forks: Vec<Duration> = (0..11)
                .map(|_| {
                    let t = Instant::now();
                    let fork = r.doc_mut().automerge_mut().fork();
                    let e = t.elapsed();
                    drop(fork);
                    e
                })
                .collect();
            let states: Vec<Duration> = (0..11)
                .map(|_| {
                    let t = Instant::now();
                    let st = r.doc_mut().state().expect("state");
                    let e = t.elapsed();
                    drop(st);
                    e
                })
                .collect();
            (median(forks), median(states))
        });
        sub.live_fork = fork;
        sub.live_state = state;
        run.substeps = Some(sub);
    }
    shutdown(f).await;
    run.last.sort();
    run.first.sort();
    run.median.sort();
    println!(
        "P1 fleetdeck [{label}]: {} edits measured ({P1_WARMUP} warm-up, {} not everywhere within the limit, counted at the limit); payload: one automerge change of {} B",
        run.last.len(),
        run.timeouts,
        run.payload
    );
    for (what, v) in [
        ("last replica  ", &run.last),
        ("first other   ", &run.first),
        ("median replica", &run.median),
    ] {
        println!(
            "  {what} p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            ms(pct(v, 50.0)),
            ms(pct(v, 99.0)),
            ms(pct(v, 100.0))
        );
    }
    run
}

async fn p1(table: &mut Table) {
    println!(
        "P1: one edit on the admin laptop -> all {P1_REPLICAS} replicas (in-process, loopback)"
    );
    // Data dirs on /dev/shm: 100 replicas in one process share one disk,
    // where their fsyncs queue behind each other; on a real fleet each node
    // syncs its own disk, in parallel. The shared-disk run follows as
    // context, and the sub-steps give one replica's fsync cost.
    let run = p1_run(
        "data dirs on /dev/shm",
        true,
        scaled(P1_EDITS),
        Duration::from_secs(120),
        true,
    )
    .await;
    let disk = if std::env::var("FLEETDECK_BENCH_NO_DISK").is_ok() {
        None
    } else {
        Some(
            p1_run(
                "data dirs on one shared disk",
                false,
                scaled(P1_DISK_EDITS),
                Duration::from_secs(60),
                false,
            )
            .await,
        )
    };
    let broker = mqtt_baseline(run.payload.max(1), P1_REPLICAS).await;

    let (p50, p99) = (pct(&run.last, 50.0), pct(&run.last, 99.0));
    let complete = run.timeouts == 0 && run.last.len() == scaled(P1_EDITS);
    let censored = if run.timeouts > 0 { ">= " } else { "" };
    table.row(
        &format!("P1 edit -> all {P1_REPLICAS} replicas, p50 / p99"),
        format!(
            "{censored}{:.1} / {censored}{:.1} ms ({} edits{}{})",
            ms(p50),
            ms(p99),
            run.last.len(),
            if run.timeouts > 0 {
                format!(
                    ", {} at the {} s limit",
                    run.timeouts,
                    P1_EDIT_LIMIT.as_secs()
                )
            } else {
                String::new()
            },
            if run.stopped { ", time bound" } else { "" }
        ),
        &format!("p99 < {TARGET_P1_P99_MS:.0} ms"),
        Some(complete && ms(p99) < TARGET_P1_P99_MS),
    );
    table.row(
        "  context: first other / median replica p50",
        format!(
            "{:.1} / {:.1} ms",
            ms(pct(&run.first, 50.0)),
            ms(pct(&run.median, 50.0))
        ),
        "",
        None,
    );
    table.row(
        "  context: sessions/replica before / after",
        format!(
            "median {} / {}, max {} / {} ({} / {} in all)",
            run.before.1, run.after.1, run.before.2, run.after.2, run.before.3, run.after.3
        ),
        "",
        None,
    );
    if let Some(sub) = &run.substeps {
        sub.print();
        table.row(
            "  sub-step: verify::receive, 1 change",
            format!(
                "{:.2} ms (apply alone {:.2}; a fork, no longer made, {:.2})",
                ms(sub.receive),
                ms(sub.apply_disk),
                ms(sub.fork)
            ),
            "(median, 100-member doc)",
            None,
        );
        table.row(
            "  sub-step: x99 replicas / 2 cores",
            format!("{:.0} ms", ms(sub.receive) * 99.0 / 2.0),
            "(CPU floor of one fan-out)",
            None,
        );
    }
    if let Some(star) = &disk {
        table.row(
            "  context: one shared disk, p50 / p99",
            format!(
                "{:.1} / {:.1} ms ({} edits, {} sessions)",
                ms(pct(&star.last, 50.0)),
                ms(pct(&star.last, 99.0)),
                star.last.len(),
                star.after.3
            ),
            "",
            None,
        );
    }
    match broker {
        Some(b) => {
            let (bp50, bp99) = (pct(&b, 50.0), pct(&b, 99.0));
            table.row(
                &format!("  baseline: mosquitto QoS1 -> {P1_REPLICAS} subs p50/p99"),
                format!(
                    "{:.2} / {:.2} ms ({} messages)",
                    ms(bp50),
                    ms(bp99),
                    b.len()
                ),
                "",
                None,
            );
            let ratio = p99.as_secs_f64() / bp99.as_secs_f64().max(1e-9);
            table.row(
                "P1 p99 fleetdeck / p99 broker",
                format!("x{ratio:.1}"),
                &format!("<= x{TARGET_P1_RATIO:.0}"),
                Some(complete && ratio <= TARGET_P1_RATIO),
            );
        }
        None => {
            table.row(
                "  baseline: mosquitto",
                "baseline unavailable: mosquitto not installed or not started".into(),
                "",
                None,
            );
            table.row(
                "P1 p99 fleetdeck / p99 broker",
                "baseline unavailable".into(),
                &format!("<= x{TARGET_P1_RATIO:.0}"),
                None,
            );
        }
    }
}

// ---- P1 sub-steps -------------------------------------------------------------------

/// Medians of what one replica spends on one edit, measured outside the
/// engines on copies of the P1 document (the laptop's, after the edits).
struct Substeps {
    changes: usize,
    doc_bytes: usize,
    generate: Duration,
    receive: Duration,
    fork: Duration,
    state: Duration,
    apply_disk: Duration,
    apply_shm: Duration,
    live_fork: Duration,
    live_state: Duration,
}

impl Substeps {
    fn print(&self) {
        println!(
            "P1 sub-steps on a copy of the document ({} changes, {} B saved), medians:",
            self.changes, self.doc_bytes
        );
        println!(
            "  generate_sync_message {:.2} ms | verify::receive of a message with 1 change (signature, rights, take in, store) {:.2} ms; for reference a fork of the whole doc (which the gate no longer makes) {:.2} ms, Replica::apply_changes alone {:.2} ms (on /dev/shm {:.2} ms); a full FleetDoc::state read, which apply no longer does, {:.2} ms",
            ms(self.generate),
            ms(self.receive),
            ms(self.fork),
            ms(self.apply_disk),
            ms(self.apply_shm),
            ms(self.state)
        );
        println!(
            "  on a live node's document after the edits: fork {:.2} ms, full FleetDoc::state read {:.2} ms",
            ms(self.live_fork),
            ms(self.live_state)
        );
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    pct(&v, 50.0)
}

/// Runs the sync protocol between `a` and `b` until neither has anything to
/// say (bounded).
fn settle(
    a: &mut Replica,
    sa: &mut automerge::sync::State,
    b: &mut Replica,
    sb: &mut automerge::sync::State,
) {
    use fleetdeck_sync::verify::{self, Gate};
    let (mut ga, mut gb) = (Gate::default(), Gate::default());
    for _ in 0..20 {
        let m1 = verify::outgoing(a, sa);
        let had1 = m1.is_some();
        if let Some((m, changes)) = m1 {
            verify::receive(b, sb, &mut gb, m, changes).expect("receive");
        }
        let m2 = verify::outgoing(b, sb);
        let had2 = m2.is_some();
        if let Some((m, changes)) = m2 {
            verify::receive(a, sa, &mut ga, m, changes).expect("receive");
        }
        if !had1 && !had2 {
            break;
        }
    }
}

fn substeps(all: Vec<fleetdeck_store::replica::SignedChange>, admin_dir: &Path) -> Substeps {
    use automerge::sync::{Message, State};
    use fleetdeck_sync::verify::{self, Gate};
    let (mut ga, mut gb) = (Gate::default(), Gate::default());
    const RUNS: usize = 21;
    let disk = temp_root(false);
    let shm = temp_root(true);
    // A writes as the admin (a member), so B's verification accepts.
    let a_dir = disk.path().join("a");
    std::fs::create_dir_all(&a_dir).expect("dir");
    std::fs::copy(admin_dir.join("identity.key"), a_dir.join("identity.key")).expect("identity");
    let changes = all.len();
    let mut a = Replica::init_from_changes(&a_dir, all.clone()).expect("a");
    let mut b = Replica::init_from_changes(&disk.path().join("b"), all.clone()).expect("b");
    let mut c = Replica::init_from_changes(&disk.path().join("c"), all.clone()).expect("c");
    let mut d = Replica::init_from_changes(&shm.path().join("d"), all).expect("d");
    let doc_bytes = b.doc_mut().automerge_mut().save().len();
    let (mut sa, mut sb) = (State::new(), State::new());
    settle(&mut a, &mut sa, &mut b, &mut sb);
    let path = ConfigPath::parse("bench.substep").expect("path");
    let (mut generate, mut receive, mut apply_disk, mut apply_shm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in 0..RUNS {
        let before = a.heads();
        a.change("sub-step edit", |doc, _| {
            doc.set_config(&LayerRef::Fleet, &path, &json!(k))
        })
        .expect("edit");
        let new = a.changes_after(&before);
        // The message that carries the change, as the wire carries it.
        for _ in 0..4 {
            let t = Instant::now();
            let m = verify::outgoing(&mut a, &mut sa);
            let gen_t = t.elapsed();
            let Some((m, changes)) = m else { break };
            let m = Message::decode(&m.encode()).expect("decode");
            let carries = !changes.is_empty();
            let t = Instant::now();
            verify::receive(&mut b, &mut sb, &mut gb, m, changes).expect("receive");
            if carries {
                generate.push(gen_t);
                receive.push(t.elapsed());
                break;
            }
            if let Some((r, changes)) = verify::outgoing(&mut b, &mut sb) {
                verify::receive(&mut a, &mut sa, &mut ga, r, changes).expect("receive");
            }
        }
        settle(&mut a, &mut sa, &mut b, &mut sb);
        let t = Instant::now();
        c.apply_changes(new.clone()).expect("apply");
        apply_disk.push(t.elapsed());
        let t = Instant::now();
        d.apply_changes(new).expect("apply");
        apply_shm.push(t.elapsed());
    }
    let fork = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let f = b.doc_mut().automerge_mut().fork();
                let e = t.elapsed();
                drop(f);
                e
            })
            .collect(),
    );
    let state = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let st = b.doc_mut().state().expect("state");
                let e = t.elapsed();
                drop(st);
                e
            })
            .collect(),
    );
    Substeps {
        changes,
        doc_bytes,
        generate: median(generate),
        receive: median(receive),
        fork,
        state,
        apply_disk: median(apply_disk),
        apply_shm: median(apply_shm),
        live_fork: Duration::ZERO,
        live_state: Duration::ZERO,
    }
}

// ---- the broker baseline -----------------------------------------------------------

/// Publishes `P1_WARMUP + P1_EDITS` messages of `payload` bytes, QoS 1, to
/// `subs` subscribers; returns, per measured message, the time from publish
/// to the last subscriber's receipt.
async fn mqtt_baseline(payload: usize, subs: usize) -> Option<Vec<Duration>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    println!(
        "P1 baseline: the same payload ({payload} B) through mosquitto to {subs} subscribers, QoS 1"
    );
    let broker = match Broker::start("max_queued_messages 100000\nmax_inflight_messages 100\n") {
        Ok(b) => b,
        Err(why) => {
            println!("  baseline unavailable: {why}");
            return None;
        }
    };
    let port = broker.port;
    let opts = |id: String| {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        o
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64, Instant)>();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<usize>();
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..subs {
        let (c, mut el) = AsyncClient::new(opts(format!("fleetdeck-bench-sub-{i}")), 64);
        if c.subscribe(P1_TOPIC, QoS::AtLeastOnce).await.is_err() {
            println!("  baseline unavailable: subscribe request failed");
            return None;
        }
        let tx = tx.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = 0;
            while errors < 20 {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready.send(i);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let at = Instant::now();
                        let mut b = [0u8; 8];
                        let n = p.payload.len().min(8);
                        b[..n].copy_from_slice(&p.payload[..n]);
                        let _ = tx.send((i, u64::from_le_bytes(b), at));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
        clients.push(c);
    }
    let mut ready = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while ready.len() < subs {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(i)) => {
                ready.insert(i);
            }
            _ => break,
        }
    }
    if ready.len() < subs {
        println!(
            "  baseline unavailable: only {}/{subs} subscriptions acknowledged",
            ready.len()
        );
        for t in &tasks {
            t.abort();
        }
        drop(broker);
        return None;
    }
    let (publisher, mut pel) = AsyncClient::new(opts("fleetdeck-bench-pub".into()), 64);
    tasks.push(tokio::spawn(async move {
        let mut errors = 0;
        while errors < 20 {
            if pel.poll().await.is_err() {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }));
    let mut lat = Vec::new();
    let mut timeouts = 0;
    for k in 1..=(P1_WARMUP + scaled(P1_EDITS)) as u64 {
        while rx.try_recv().is_ok() {}
        let mut body = vec![0x5au8; payload.max(8)];
        body[..8].copy_from_slice(&k.to_le_bytes());
        let mut got: Vec<Option<Instant>> = vec![None; subs];
        let t0 = Instant::now();
        if publisher
            .publish(P1_TOPIC, QoS::AtLeastOnce, false, body)
            .await
            .is_err()
        {
            timeouts += 1;
            continue;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got.iter().any(|g| g.is_none()) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, seq, at))) if seq == k => got[i] = got[i].or(Some(at)),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        if got.iter().any(|g| g.is_none()) {
            timeouts += 1;
        } else if k as usize > P1_WARMUP {
            let last = got.iter().flatten().max().copied().unwrap_or(t0);
            lat.push(last.saturating_duration_since(t0));
        }
        tokio::time::sleep(P1_PAUSE).await;
    }
    for t in &tasks {
        t.abort();
    }
    drop(clients);
    drop(publisher);
    drop(broker);
    lat.sort();
    println!(
        "  broker: {} messages measured ({timeouts} timed out): last subscriber p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        lat.len(),
        ms(pct(&lat, 50.0)),
        ms(pct(&lat, 99.0)),
        ms(*lat.last().unwrap_or(&Duration::ZERO))
    );
    (timeouts == 0 && !lat.is_empty()).then_some(lat)
}

// ---- P3 ------------------------------------------------------------------------------

async fn p3_trial(trial: usize) -> P3Trial {
    let f = start_fleet(P3_REPLICAS, P3_REPLICAS - 1, false).await;
    let ok = wait_until(CONVERGE_LIMIT, Duration::from_millis(250), || settled(&f)).await;
    progress(&format!(
        "[trial {trial}] fleet {}; {}",
        if ok { "converged" } else { "did NOT converge" },
        sessions_text(sessions(&f))
    ));
    let all: Vec<&Arc<Engine>> = f.engines.iter().collect();
    // A first heartbeat from every node, spread everywhere.
    let mut seq = 1;
    record_beats(&f, seq);
    let ok = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        same_state(&all) && health_seqs(&f.engines[0]).len() == P3_REPLICAS - 1
    })
    .await;
    progress(&format!(
        "[trial {trial}] first heartbeats {}",
        if ok { "everywhere" } else { "NOT everywhere" }
    ));

    let a_idx: Vec<usize> = (0..f.engines.len()).filter(|i| i % 2 == 0).collect();
    let b_idx: Vec<usize> = (0..f.engines.len()).filter(|i| i % 2 == 1).collect();
    let a_keys: Vec<MemberKey> = a_idx.iter().map(|&i| f.keys[i].clone()).collect();
    let b_keys: Vec<MemberKey> = b_idx.iter().map(|&i| f.keys[i].clone()).collect();
    f.faults.partition(&a_keys, &b_keys);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let t = Instant::now();
    let n = f.engines.len();
    let at_partition = counters(&f);
    for e in 0..P3_EDITS {
        let i = e % n;
        set_value(&f.engines[i], &format!("bench.p3.r{i}.e{e}"), e as u64);
        if (e + 1) % P3_BEAT_EVERY == 0 {
            seq += 1;
            record_beats(&f, seq);
        }
        tokio::task::yield_now().await;
    }
    let edits_time = t.elapsed();
    let a: Vec<&Arc<Engine>> = a_idx.iter().map(|&i| &f.engines[i]).collect();
    let b: Vec<&Arc<Engine>> = b_idx.iter().map(|&i| &f.engines[i]).collect();
    let ok = wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        same_state(&a) && same_state(&b)
    })
    .await;
    // Frames still queued between replicas of a half belong to the
    // partition phase, not to the heal.
    let quiet = wait_quiet(&f, Duration::from_millis(500), Duration::from_secs(30)).await;
    let partition_phase = counters(&f);
    let partition_bytes = total_out(&partition_phase) - total_out(&at_partition);
    progress(&format!(
        "[trial {trial}] {P3_EDITS} edits and {} heartbeat rounds made in {:.1} s; each half {} on its own{}; cross links blocked: {}; {:.1} MB framed inside the halves during the partition",
        seq - 1,
        edits_time.as_secs_f64(),
        if ok { "converged" } else { "did NOT converge" },
        if quiet {
            " and went quiet"
        } else {
            " (NOT quiet)"
        },
        f.faults.blocked(&f.keys[0], &f.keys[1]),
        mb(partition_bytes as f64)
    ));
    let sessions_at_heal = sessions(&f);

    // What each replica lacks at the heal: changes (raw bytes) and registers
    // (packed, with their signatures, as sent) that some other replica holds.
    let change_sets: Vec<HashMap<automerge::ChangeHash, usize>> = f
        .engines
        .iter()
        .map(|e| {
            e.with_replica(|r| {
                r.changes_after(&[])
                    .iter()
                    .map(|c| (c.change.hash(), c.change.raw_bytes().len()))
                    .collect()
            })
        })
        .collect();
    let mut union: HashMap<automerge::ChangeHash, usize> = HashMap::new();
    for s in &change_sets {
        union.extend(s.iter().map(|(h, n)| (*h, *n)));
    }
    let regs: Vec<HashMap<String, (u64, usize)>> = f
        .engines
        .iter()
        .map(|e| {
            e.with_replica(|r| {
                r.health()
                    .iter()
                    .map(|(n, s)| (n.clone(), (s.reg.seq, reg_len(&s.reg))))
                    .collect()
            })
        })
        .collect();
    let mut best: HashMap<String, (u64, usize)> = HashMap::new();
    for m in &regs {
        for (n, v) in m {
            let e = best.entry(n.clone()).or_insert(*v);
            if v.0 > e.0 {
                *e = *v;
            }
        }
    }
    let mut missing_changes = 0usize;
    let mut missing_change_bytes = 0usize;
    let mut missing_regs = 0usize;
    let mut missing_reg_bytes = 0usize;
    let people: Vec<bool> = f.engines.iter().map(|e| holds_fleet_health(e)).collect();
    for ((s, m), holds_all) in change_sets.iter().zip(&regs).zip(&people) {
        for (h, len) in &union {
            if !s.contains_key(h) {
                missing_changes += 1;
                missing_change_bytes += len;
            }
        }
        // A node replica holds only its own register: it lacks no other.
        if !holds_all {
            continue;
        }
        for (node, (seq, len)) in &best {
            if m.get(node).is_none_or(|(s, _)| s < seq) {
                missing_regs += 1;
                missing_reg_bytes += len;
            }
        }
    }
    let missing = missing_change_bytes + missing_reg_bytes;
    let per_side_a = union
        .keys()
        .filter(|h| !change_sets[0].contains_key(h))
        .count();
    let per_side_b = union
        .keys()
        .filter(|h| !change_sets[1].contains_key(h))
        .count();
    progress(&format!(
        "[trial {trial}] at the heal: half A lacks {per_side_a} changes, half B lacks {per_side_b}; summed over replicas: {missing_changes} changes ({missing_change_bytes} B) and {missing_regs} registers ({missing_reg_bytes} B)"
    ));

    let fork = f.engines[1].with_replica(|r| {
        let t = Instant::now();
        let fork = r.doc_mut().automerge_mut().fork();
        let e = t.elapsed();
        drop(fork);
        e
    });
    let (mut rx, watchers) = spawn_watchers(&f, Arc::new(|_: &Engine| 0));
    // Let every watcher report its first probe before the heal.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while rx.try_recv().is_ok() {}
    let before = counters(&f);
    let t_heal = Instant::now();
    f.faults.heal();
    let deadline = tokio::time::Instant::now() + P3_LIMIT;
    let mut first_change: Option<Duration> = None;
    let mut converged: Option<Duration> = None;
    let mut at_converged = before.clone();
    loop {
        let ev = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
            rx.recv(),
        )
        .await;
        if let Ok(Some(_)) = ev {
            first_change.get_or_insert(t_heal.elapsed());
            while rx.try_recv().is_ok() {}
        }
        if same_state(&all) {
            converged = Some(t_heal.elapsed());
            at_converged = counters(&f);
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    stop_watchers(watchers).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let trailing = counters(&f);
    let sent = total_out(&at_converged) - total_out(&before);
    let recv = total_in(&at_converged) - total_in(&before);
    let sent_trailing = total_out(&trailing) - total_out(&before);
    progress(&format!(
        "[trial {trial}] at the heal: {}; after it: {}",
        sessions_text(sessions_at_heal),
        sessions_text(sessions(&f))
    ));
    shutdown(f).await;

    let t = P3Trial {
        converged,
        first_change,
        sent,
        recv,
        sent_trailing,
        missing,
        fork,
        sessions_at_heal,
    };
    println!(
        "P3 trial {trial}: heal -> identical state in {}; first change event after the heal at {}; fork of the doc {:.2} ms",
        converged.map_or("(not within the limit)".into(), |d| format!(
            "{:.0} ms",
            ms(d)
        )),
        first_change.map_or("-".into(), |d| format!("{:.0} ms", ms(d))),
        ms(fork)
    );
    println!(
        "  framed bytes until identical: sent {sent}, received {recv}; sent incl. 1 s after {sent_trailing}; lacking, summed over replicas, {missing} B: ratio x{:.2} (x{:.2} with the trailing second)",
        t.ratio(),
        sent_trailing as f64 / missing.max(1) as f64
    );
    t
}

struct P3Trial {
    converged: Option<Duration>,
    first_change: Option<Duration>,
    sent: u64,
    recv: u64,
    sent_trailing: u64,
    missing: usize,
    fork: Duration,
    sessions_at_heal: (usize, usize, usize, usize),
}

impl P3Trial {
    /// Bytes exchanged (the larger of sent and received until identical)
    /// over the bytes the replicas lacked.
    fn ratio(&self) -> f64 {
        self.sent.max(self.recv) as f64 / self.missing.max(1) as f64
    }
}

async fn p3(table: &mut Table) {
    println!(
        "P3: {P3_REPLICAS} replicas in two halves, {P3_EDITS} edits and heartbeats during the partition, then healed; {P3_TRIALS} trials, each a new fleet"
    );
    let mut trials = Vec::new();
    for trial in 1..=P3_TRIALS {
        trials.push(p3_trial(trial).await);
    }
    let all_converged = trials.iter().all(|t| t.converged.is_some());
    let mut times: Vec<Duration> = trials
        .iter()
        .map(|t| t.converged.unwrap_or(P3_LIMIT))
        .collect();
    times.sort();
    let mut ratios: Vec<f64> = trials.iter().map(P3Trial::ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let list = |v: Vec<String>| v.join(", ");
    table.row(
        &format!("P3 heal -> identical ({P3_REPLICAS} replicas), max"),
        format!(
            "{:.0} ms (trials: {})",
            ms(times[times.len() - 1]),
            list(
                trials
                    .iter()
                    .map(|t| t.converged.map_or("-".into(), |d| format!("{:.0}", ms(d))))
                    .collect()
            )
        ),
        &format!("< {TARGET_P3_S:.0} s in every trial"),
        Some(all_converged && times[times.len() - 1].as_secs_f64() < TARGET_P3_S),
    );
    table.row(
        "  context: first change event after heal",
        list(
            trials
                .iter()
                .map(|t| {
                    t.first_change
                        .map_or("-".into(), |d| format!("{:.0} ms", ms(d)))
                })
                .collect(),
        ),
        "",
        None,
    );
    table.row(
        "P3 bytes exchanged / bytes lacking, max",
        format!(
            "x{:.2} (trials: {})",
            ratios[ratios.len() - 1],
            list(
                trials
                    .iter()
                    .map(|t| format!("x{:.2}", t.ratio()))
                    .collect()
            )
        ),
        &format!("<= x{TARGET_P3_RATIO:.0} in every trial"),
        Some(all_converged && ratios[ratios.len() - 1] <= TARGET_P3_RATIO),
    );
    table.row(
        "  context: bytes lacking; incl. 1 s after",
        list(
            trials
                .iter()
                .map(|t| {
                    format!(
                        "{:.2} MB; x{:.2}",
                        mb(t.missing as f64),
                        t.sent_trailing as f64 / t.missing.max(1) as f64
                    )
                })
                .collect(),
        ),
        "",
        None,
    );
    table.row(
        "  context: sessions at the heal (distinct)",
        list(
            trials
                .iter()
                .map(|t| t.sessions_at_heal.3.to_string())
                .collect(),
        ),
        "",
        None,
    );
    table.row(
        "  context: fork of the doc at the heal",
        list(
            trials
                .iter()
                .map(|t| format!("{:.2} ms", ms(t.fork)))
                .collect(),
        ),
        "",
        None,
    );
}

/// Every live node records its next heartbeat.
fn record_beats(f: &Fleet, seq: u64) {
    for (e, node) in f.engines.iter().zip(&f.nodes) {
        if let Some(node) = node {
            record_beat(e, node, seq);
        }
    }
}

fn record_beat(e: &Engine, node: &str, seq: u64) {
    e.with_replica(|r| r.record_health(&beat(node, seq)).expect("record"));
    e.changed();
}

// ---- P7 ------------------------------------------------------------------------------

/// P7: what one node's link carries in a day at 10 s heartbeats, measured
/// over a window at the real cadence with the production engine defaults
/// (anti-entropy, keep-alives, random sessions and all), then scaled to a
/// day. Bytes are UDP as the engines' connections count them (QUIC
/// included) plus 28 B of IPv4/UDP header per datagram; the framed bytes
/// (what fleetdeck itself writes) are printed beside them.
/// P7; `through_relay`: every session through iroh's test relay on
/// 127.0.0.1 (no replica publishes an address), as replicas behind NAT
/// reach each other.
async fn p7(table: &mut Table, through_relay: bool) {
    let live_nodes = P7_LIVE - 1;
    let name = if through_relay { "P7 relay" } else { "P7" };
    println!(
        "{name}: bytes per node per day, {P7_LIVE} live replicas (a laptop and {live_nodes} nodes) of a {P7_FLEET_NODES}-node fleet document, engine defaults{}",
        if through_relay {
            ", every session through a relay on 127.0.0.1"
        } else {
            ""
        }
    );
    let relay = if through_relay {
        match iroh::test_utils::run_relay_server().await {
            Ok(r) => Some(r),
            Err(e) => {
                println!("{name}: could not start the test relay: {e}");
                return;
            }
        }
    } else {
        None
    };
    let relay_url = relay.as_ref().map(|(_, url, _)| url.to_string());
    // Data dirs on /dev/shm: disk work says nothing about bytes on the wire.
    let f = start_fleet_via(P7_LIVE, P7_FLEET_NODES, true, relay_url.as_deref()).await;
    let t = Instant::now();
    let ok = wait_until(CONVERGE_LIMIT, Duration::from_millis(250), || settled(&f)).await;
    progress(&format!(
        "fleet {} in {:.1} s; {}",
        if ok { "converged" } else { "did NOT converge" },
        t.elapsed().as_secs_f64(),
        sessions_text(sessions(&f))
    ));
    // The dialers settle on their sessions; the window starts after.
    let t = Instant::now();
    let mut last = sessions(&f).3;
    let mut stable_since = Instant::now();
    while t.elapsed() < Duration::from_secs(90) && stable_since.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sessions(&f).3;
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    progress(&format!(
        "sessions {} after {:.1} s: {}",
        if stable_since.elapsed() >= Duration::from_secs(6) {
            "stable"
        } else {
            "still changing"
        },
        t.elapsed().as_secs_f64(),
        sessions_text(sessions(&f))
    ));
    let live: Vec<String> = f.nodes.iter().flatten().cloned().collect();
    let laptop_has = |seq: u64| {
        let h = health_seqs(&f.engines[0]);
        live.iter().all(|n| h.get(n).is_some_and(|s| *s >= seq))
    };
    // Warm-up: a first heartbeat from every node, delivered.
    let seq = 1;
    record_beats(&f, seq);
    let warm = wait_until(
        Duration::from_secs(HEARTBEAT_S),
        Duration::from_millis(50),
        || laptop_has(1),
    )
    .await;
    progress(&format!(
        "warm-up heartbeat {}at the laptop",
        if warm { "" } else { "NOT " }
    ));
    let wires = |f: &Fleet| -> Vec<Wire> { f.engines.iter().map(|e| e.wire()).collect() };
    let framed0 = counters(&f);
    let wire0 = wires(&f);
    let rounds = scaled(P7_ROUNDS);
    // Each node beats on its own phase within the round, as the daemons do,
    // spread evenly here (node k of n at k/n of the interval): the best
    // case of the daemons' phases, which a hash of the node id places.
    let nodes: Vec<(usize, String)> = f
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.clone().map(|n| (i, n)))
        .collect();
    let step = Duration::from_secs(HEARTBEAT_S) / nodes.len().max(1) as u32;
    let t0 = Instant::now();
    let mut pending: Vec<(String, u64, Instant)> = Vec::new();
    let mut delivery = Vec::new();
    let mut late = 0usize;
    let beats = rounds * nodes.len();
    // The window closes one interval after the first beat of the last round.
    let end = t0 + Duration::from_secs(HEARTBEAT_S * rounds as u64);
    for b in 0..=beats {
        let due = if b < beats { t0 + step * b as u32 } else { end };
        // Until the next beat (or the end) is due: note the earlier beats
        // that reached the laptop, every 20 ms.
        loop {
            if !pending.is_empty() {
                let h = health_seqs(&f.engines[0]);
                pending.retain(|(n, seq, sent)| {
                    let arrived = h.get(n).is_some_and(|s| s >= seq);
                    if arrived {
                        delivery.push(sent.elapsed());
                    } else if sent.elapsed() > Duration::from_secs(HEARTBEAT_S) {
                        late += 1;
                        return false;
                    }
                    !arrived
                });
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            tokio::time::sleep((due - now).min(Duration::from_millis(20))).await;
        }
        if b == beats {
            break;
        }
        let (i, node) = &nodes[b % nodes.len()];
        let seq = seq + 1 + (b / nodes.len()) as u64;
        record_beat(&f.engines[*i], node, seq);
        pending.push((node.clone(), seq, Instant::now()));
    }
    late += pending.len();
    let seq = seq + rounds as u64;
    let window = t0.elapsed();
    let framed1 = counters(&f);
    let wire1 = wires(&f);
    let mut rtts: Vec<Duration> = f.engines[1..]
        .iter()
        .flat_map(|e| e.session_rtts())
        .collect();
    rtts.sort();
    let degree: Vec<usize> = f.engines.iter().map(|e| e.connected().len()).collect();
    let reg = reg_len(&beat(&live[0], seq));
    progress(&format!("end of {name}: {}", sessions_text(sessions(&f))));
    shutdown(f).await;

    let day = 86_400.0 / window.as_secs_f64();
    let udp =
        |w: &[Wire]| -> Vec<(u64, u64)> { w.iter().map(|w| (w.tx_bytes, w.rx_bytes)).collect() };
    let (udp0, udp1) = (udp(&wire0), udp(&wire1));
    let per_node = |a: &[(u64, u64)], b: &[(u64, u64)]| -> Vec<f64> {
        a[1..]
            .iter()
            .zip(&b[1..])
            .map(|(x, y)| ((x.0 - y.0) + (x.1 - y.1)) as f64 * day)
            .collect()
    };
    let wire_day = per_node(&udp1, &udp0);
    let framed_day = per_node(&framed1, &framed0);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    // QUIC below fleetdeck's frames, per node over the window.
    let frames = |pick: fn(&Wire) -> u64| -> f64 {
        wire1[1..]
            .iter()
            .zip(&wire0[1..])
            .map(|(a, b)| (pick(a) - pick(b)) as f64)
            .sum::<f64>()
            / live_nodes as f64
    };
    let datagrams = frames(|w| w.tx_datagrams + w.rx_datagrams);
    let pings = frames(|w| w.pings_sent);
    let challenges = frames(|w| w.path_challenges_sent);
    let reach_outs = frames(|w| w.reach_outs_sent);
    let laptop_wire = ((udp1[0].0 - udp0[0].0) + (udp1[0].1 - udp0[0].1)) as f64 * day;
    let node_degree = degree[1..].iter().sum::<usize>() as f64 / live_nodes as f64;
    delivery.sort();
    let anti_entropy_s = EngineConfig::new("127.0.0.1:0".parse().expect("addr"))
        .anti_entropy
        .as_secs();
    println!(
        "{name}: {rounds} rounds of {HEARTBEAT_S} s ({:.1} s), each node on its own phase, anti-entropy every {anti_entropy_s} s; register {reg} B as sent (packed + signature); heartbeats at the laptop within {HEARTBEAT_S} s: {} of {beats} (p50 {:.1} ms, p99 {:.1} ms)",
        window.as_secs_f64(),
        beats - late,
        ms(pct(&delivery, 50.0)),
        ms(pct(&delivery, 99.0))
    );
    println!(
        "  QUIC per node in the window: {datagrams:.0} datagrams; sent {pings:.1} PINGs (iroh keeps each path alive after 5 s idle), {challenges:.1} PATH_CHALLENGEs (1200 B each) and {reach_outs:.1} REACH_OUTs (iroh's hole-punching)"
    );
    println!(
        "  RTT of the nodes' sessions as QUIC estimates it at the end: p50 {:.1} ms, max {:.1} ms (iroh hole-punches every 60 s on connections whose best RTT is over 10 ms)",
        ms(pct(&rtts, 50.0)),
        ms(rtts.last().copied().unwrap_or_default())
    );
    println!(
        "  per node per day, on the wire (UDP + IPv4/UDP headers): mean {:.2} MB, max {:.2} MB; framed: mean {:.2} MB, max {:.2} MB",
        mb(mean(&wire_day)),
        mb(max(&wire_day)),
        mb(mean(&framed_day)),
        mb(max(&framed_day))
    );
    println!(
        "  sessions per node: mean {node_degree:.1}, max {}; the laptop: {} sessions, {:.1} MB per day on the wire",
        degree[1..].iter().max().copied().unwrap_or(0),
        degree[0],
        mb(laptop_wire)
    );
    drop(relay);
    let figure = if through_relay {
        "P7 through the relay: node per day, mean / max"
    } else {
        "P7 node per day on the wire, mean / max"
    };
    table.row(
        figure,
        format!(
            "{:.2} / {:.2} MB (framed {:.2} / {:.2}; {node_degree:.1} sessions)",
            mb(mean(&wire_day)),
            mb(max(&wire_day)),
            mb(mean(&framed_day)),
            mb(max(&framed_day))
        ),
        &format!("< {TARGET_P7_MB:.0} MB"),
        Some(late == 0 && !wire_day.is_empty() && mb(max(&wire_day)) < TARGET_P7_MB),
    );
    table.row(
        "  context: the laptop (all health), per day",
        format!("{:.1} MB on the wire", mb(laptop_wire)),
        "",
        None,
    );
}

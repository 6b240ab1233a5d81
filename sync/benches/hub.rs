//! Hub benchmark (P10): one hub replica with N live node replicas.
//!
//! Run: `cargo bench -p fleetdeck-sync --bench hub --no-run`, then the
//! binary it names (`target/release/deps/hub-…`) directly.
//!
//! The hub runs in its own process, so that its CPU and memory are its
//! own: this bench binary started again with `FLEETDECK_P10_HUB_DIR` set,
//! running one sync `Engine` on the data dir the bench prepared, with
//! `EngineConfig`'s defaults (`fleetdeck serve` also sets a status file,
//! starts the rollouts loop and its outlets, which are not here;
//! `FLEETDECK_P10_STATUS_FILE=1` gives the hub serve's status file:
//! `peers.json`, rewritten every second).
//! `FLEETDECK_P10_SERVE=/path/to/fleetdeck` runs that binary's `serve` as
//! the hub instead. The N node replicas are engines in this
//! process, each with its own data dir (on /dev/shm: each node has its own
//! disk in a fleet) and its own iroh endpoint on 127.0.0.1; the hub's data
//! dir is on the disk.
//!
//! The fleet document: an admin member `hub`, N nodes (10 a site), each
//! a `Role::Node` member bound to its node, every member's address
//! already in the document (a fleet in its steady state, not one joining),
//! and `sync.hubs = ["hub"]` in the fleet defaults: each node keeps its
//! session with the hub (and with others only while the hub is away).
//! Every node beats every 10 s on its own phase (node k of N at k/N of
//! the interval): a signed health register recorded on the node's engine.
//!
//! Measured over a window (`FLEETDECK_P10_WINDOW_S`, default 300 s):
//! - the hub's CPU as a share of one core (utime + stime from
//!   /proc/PID/stat) and its RSS (VmRSS sampled every 2 s, VmHWM);
//! - heartbeat → held by the hub: the bench reads the hub's data dir
//!   read-only (`Replica::open_with` + `refresh`) every 50 ms, so each
//!   figure is late by up to one poll (plus the read);
//! - an edit at the hub → present on all N node engines: written to the
//!   hub's data dir as `fleetdeck config set` writes it (the hub's engine
//!   picks it up within its 250 ms poll), seen by a watcher on every node
//!   engine as soon as that engine reports a change.
//!
//! `FLEETDECK_P10_NODES=100,300,1000` picks the fleet sizes (in that
//! order); `FLEETDECK_P10_EDITS` the number of edits (default 20, spread
//! over the window). Every loop is bounded in count and time; all traffic
//! stays on 127.0.0.1; mDNS is off. Engines run with `EngineConfig`'s
//! defaults except: a fixed loopback port each (so that the addresses in
//! the document are theirs) and mDNS off; `FLEETDECK_P10_NODE_DIAL_EVERY_S`
//! slows the node engines' dialers (see `node_dial_every`).

#[path = "../../node/benches/common/report.rs"]
mod report;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::{
    ApplyReport, ApplyResult, CheckResult, DiskUsage, HealthRegister, Metrics, TlsCert,
};
use fleetdeck_store::replica::{OpenOptions, load_or_create_identity};
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig};
use report::{Row, loadavg, ms, print_table, quick};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

// ---- parameters ----------------------------------------------------------------

const HEARTBEAT: Duration = Duration::from_secs(10);
const NODES_PER_SITE: usize = 10;
const HUB_NAME: &str = "hub";
/// How often the bench reads the hub's data dir for arrived heartbeats.
const HUB_POLL: Duration = Duration::from_millis(50);
/// How often the hub's CPU and RSS are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// A heartbeat not at the hub within this is counted late, at this.
const BEAT_LIMIT: Duration = Duration::from_secs(10);
/// An edit not on every node within this is counted at this.
const EDIT_LIMIT: Duration = Duration::from_secs(10);
/// Bounds of the set-up steps.
const CONNECT_LIMIT: Duration = Duration::from_secs(300);
const HUB_START_LIMIT: Duration = Duration::from_secs(60);
const EDIT_KEY: &str = "bench.p10";
const FD_PER_ENGINE_GUESS: u64 = 12;

const TARGET_CPU_PCT: f64 = 20.0;
const TARGET_RSS_MB: f64 = 400.0;
const TARGET_BEAT_P99_MS: f64 = 1000.0;
const TARGET_EDIT_P99_MS: f64 = 2000.0;

fn main() {
    if let Ok(dir) = std::env::var("FLEETDECK_P10_HUB_DIR") {
        hub_main(PathBuf::from(dir));
        return;
    }
    let sizes: Vec<usize> = std::env::var("FLEETDECK_P10_NODES")
        .unwrap_or_else(|_| "100,300,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    let window = Duration::from_secs(env_u64("FLEETDECK_P10_WINDOW_S", 300).max(20));
    let edits = env_u64("FLEETDECK_P10_EDITS", 20).max(1) as usize;
    let load_start = loadavg();
    let started = Instant::now();
    println!("P10: one hub replica with N live node replicas, N = {sizes:?}");
    println!(
        "load average at start: {load_start}; {} CPUs; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        meminfo()
    );
    println!(
        "window {} s per N at {} s heartbeats; {edits} edits per window; seed: none (the bench draws nothing at random: node k of N beats at k/N of the interval, edits at fixed times; the member keys and iroh's own choices are random and unseeded)",
        window.as_secs(),
        HEARTBEAT.as_secs()
    );
    let hub_kind = match std::env::var("FLEETDECK_P10_SERVE") {
        Ok(bin) => HubKind::Serve(PathBuf::from(bin)),
        Err(_) => HubKind::Engine,
    };
    println!("hub process: {}", hub_kind.describe());
    println!(
        "node engines: EngineConfig defaults but mDNS off and a fixed port{}",
        match node_dial_every() {
            Some(d) => format!(
                "; dial_every {} s instead of 1 s (FLEETDECK_P10_NODE_DIAL_EVERY_S)",
                d.as_secs()
            ),
            None => String::new(),
        }
    );
    fd_limit(sizes.iter().copied().max().unwrap_or(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut runs = Vec::new();
    for &n in &sizes {
        let run = rt.block_on(p10_run(n, window, edits, &hub_kind));
        run.print();
        runs.push(run);
    }
    rt.shutdown_timeout(Duration::from_secs(10));
    println!();
    println!(
        "whole run {:.0} s; load average at start {load_start}, at end {}; percentiles are nearest-rank; MB = 10^6 bytes",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    let mut rows = Vec::new();
    for r in &runs {
        r.rows(&mut rows);
    }
    scaling(&runs, &mut rows);
    print_table(&rows);
    let judged: Vec<&Row> = rows.iter().filter(|r| r.pass.is_some()).collect();
    let pass = judged.iter().filter(|r| r.pass == Some(true)).count();
    if quick() {
        println!("a quick run: no target judged");
    } else {
        println!("{pass} of {} targets met", judged.len());
    }
}

/// `FLEETDECK_P10_NODE_DIAL_EVERY_S`: how often each node engine's dialer
/// looks at whom to dial (`EngineConfig::dial_every`, 1 s by default).
/// Each look walks every member of the document (`dial::targets`): at
/// 1,000 nodes in one process that alone takes the machine's two cores.
fn node_dial_every() -> Option<Duration> {
    std::env::var("FLEETDECK_P10_NODE_DIAL_EVERY_S")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
}

fn status_file() -> bool {
    std::env::var("FLEETDECK_P10_STATUS_FILE").is_ok_and(|v| v == "1")
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn meminfo() -> String {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    format!(
        "memory {:.1} GiB, {:.1} GiB available",
        kb("MemTotal:") as f64 / 1048576.0,
        kb("MemAvailable:") as f64 / 1048576.0
    )
}

/// The open-files limit: each node engine holds a few descriptors (its
/// SQLite files, its UDP sockets), all in this process.
fn fd_limit(max_n: usize) {
    let s = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = s
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("");
    let soft: u64 = line
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let need = max_n as u64 * FD_PER_ENGINE_GUESS;
    println!(
        "open-files limit (soft) {soft}; about {FD_PER_ENGINE_GUESS} per engine x {max_n} = {need} wanted; not raised by the bench (`ulimit -n` before running if it is short); descriptors in use are printed per run"
    );
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
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

// ---- the hub process ---------------------------------------------------------------

enum HubKind {
    /// This binary again, running one `Engine` (`hub_main`).
    Engine,
    /// `fleetdeck serve` of the given binary.
    Serve(PathBuf),
}

impl HubKind {
    fn describe(&self) -> String {
        match self {
            HubKind::Engine => format!(
                "this bench binary re-executed, one sync Engine with EngineConfig defaults but mDNS off and a fixed port; {}; without serve's rollouts loop and outlets",
                if status_file() {
                    "with serve's status file (peers.json, every 1 s)"
                } else {
                    "without serve's status file (FLEETDECK_P10_STATUS_FILE=1 adds it)"
                }
            ),
            HubKind::Serve(b) => format!("{} serve --listen 127.0.0.1:PORT --no-mdns", b.display()),
        }
    }

    fn spawn(&self, dir: &Path, port: u16) -> std::io::Result<Child> {
        let mut cmd = match self {
            HubKind::Engine => {
                let mut c = Command::new(std::env::current_exe()?);
                c.env("FLEETDECK_P10_HUB_DIR", dir)
                    .env("FLEETDECK_P10_HUB_PORT", port.to_string());
                c
            }
            HubKind::Serve(bin) => {
                let mut c = Command::new(bin);
                c.arg("--data")
                    .arg(dir)
                    .arg("--json")
                    .arg("--quiet")
                    .arg("serve")
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--no-mdns")
                    .env_remove("FLEETDECK_DATA");
                c
            }
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
    }
}

/// The hub: one engine on `dir`, until its stdin closes (the bench ends it,
/// or the bench died).
fn hub_main(dir: PathBuf) {
    let port: u16 = std::env::var("FLEETDECK_P10_HUB_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("FLEETDECK_P10_HUB_PORT");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let replica = Replica::open(&dir).expect("the hub's replica");
        let mut cfg = EngineConfig::new(([127, 0, 0, 1], port).into());
        cfg.mdns = false;
        if status_file() {
            // As `fleetdeck serve` sets it.
            cfg.status_file = Some(dir.join("peers.json"));
        }
        let engine = Engine::start(replica, cfg).await.expect("the hub's engine");
        println!("ready {}", engine.key());
        let stdin = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            let mut input = std::io::stdin();
            while matches!(input.read(&mut buf), Ok(n) if n > 0) {}
        });
        let _ = stdin.await;
        let _ = tokio::time::timeout(Duration::from_secs(10), engine.shutdown()).await;
    });
    rt.shutdown_timeout(Duration::from_secs(2));
}

/// The hub process, and how to read its CPU time and memory.
struct Hub {
    child: Child,
    pid: u32,
    serve: bool,
}

/// One reading of the hub's /proc.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    /// utime + stime, in clock ticks.
    ticks: u64,
    rss_kb: u64,
    hwm_kb: u64,
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(Sample {
        at: Instant::now(),
        ticks,
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
    })
}

impl Hub {
    fn start(kind: &HubKind, dir: &Path, port: u16) -> Hub {
        let mut child = kind.spawn(dir, port).expect("spawn the hub process");
        let pid = child.id();
        let serve = matches!(kind, HubKind::Serve(_));
        if !serve {
            // Wait (bounded) for its "ready" line.
            let out = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(out).lines();
                if let Some(Ok(l)) = lines.next() {
                    let _ = tx.send(l);
                }
                // Keep draining so the hub never blocks on a full pipe.
                for _ in lines {}
            });
            match rx.recv_timeout(HUB_START_LIMIT) {
                Ok(l) if l.starts_with("ready") => {}
                other => panic!("the hub process did not start: {other:?}"),
            }
        }
        Hub { child, pid, serve }
    }

    fn sample(&self) -> Option<Sample> {
        proc_sample(self.pid)
    }

    /// Ends the hub: its stdin closes (this engine's hub) or SIGTERM
    /// (`serve`); killed if it has not gone within 15 s.
    fn stop(mut self) {
        drop(self.child.stdin.take());
        if self.serve {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid.to_string())
                .status();
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the fleet ---------------------------------------------------------------------

fn node_name(j: usize) -> String {
    format!("n{j:04}")
}

/// `count` free UDP ports on 127.0.0.1, below the ephemeral range (so
/// that no other program's outgoing socket takes one in the minute
/// between this choice and the engines binding them), held open together
/// so they are distinct, then released for the engines to bind.
fn free_ports(count: usize) -> Vec<u16> {
    let mut socks = Vec::with_capacity(count);
    // Bounded: at most the ports from 20000 to 32000.
    for port in 20_000u16..32_000 {
        if socks.len() == count {
            break;
        }
        if let Ok(s) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            socks.push(s);
        }
    }
    assert_eq!(socks.len(), count, "not enough free loopback ports");
    socks
        .iter()
        .map(|s| s.local_addr().expect("addr").port())
        .collect()
}

/// The hub's replica (written to `hub_dir` and closed) and every node's:
/// one document where every member and its address are already in place.
fn build_replicas(hub_dir: &Path, node_dirs: &[PathBuf], ports: &[u16]) -> Vec<Replica> {
    let n = node_dirs.len();
    let keys: Vec<MemberKey> = node_dirs
        .iter()
        .map(|d| load_or_create_identity(d).expect("identity").key().clone())
        .collect();
    let addr = |p: u16| vec![format!("127.0.0.1:{p}")];
    let mut hub = Replica::init(hub_dir, HUB_NAME, "bench-p10").expect("init the hub");
    let hub_key = hub.key().clone();
    hub.change("bench fleet", |d, _| {
        d.set_member_addrs(&hub_key, &addr(ports[0]))?;
        for s in 0..n.div_ceil(NODES_PER_SITE) {
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
            let name = node_name(j);
            d.put_member(k, &name, Role::Node, now_ms())?;
            d.set_member_addrs(k, &addr(ports[j + 1]))?;
            let id = NodeId::parse(&name)?;
            d.add_node(
                &id,
                &NodeRecord {
                    site: format!("S{:03}", j / NODES_PER_SITE),
                    role: Some("edge".into()),
                },
            )?;
            d.bind_node(&id, k)?;
        }
        d.set_config(
            &LayerRef::Fleet,
            &ConfigPath::parse("sync.hubs")?,
            &json!([HUB_NAME]),
        )?;
        Ok(())
    })
    .expect("the fleet change");
    let all = hub.changes_after(&[]);
    drop(hub);
    node_dirs
        .iter()
        .map(|d| Replica::init_from_changes(d, all.clone()).expect("a node replica"))
        .collect()
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
            uptime_s: 86_400 + seq * HEARTBEAT.as_secs(),
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

/// As a node daemon records its heartbeat: on its own engine, pushed at once.
fn record_beat(e: &Engine, node: &str, seq: u64) {
    e.with_replica(|r| r.record_health(&beat(node, seq)).expect("record"));
    e.changed();
}

fn edit_value(e: &Engine) -> u64 {
    let path = ConfigPath::parse(EDIT_KEY).expect("path");
    e.with_replica(|r| {
        r.state()
            .fleet
            .get(&path)
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    })
}

/// What the watchers report: (node index, edit value held, when seen).
type Reports = mpsc::UnboundedReceiver<(usize, u64, Instant)>;

/// One task per node engine: on every change notification (and once at
/// start) reports the edit value it holds, and when it saw it.
fn spawn_watchers(engines: &[Arc<Engine>]) -> (Reports, Vec<JoinHandle<()>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let tasks = engines
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut rx = e.subscribe();
                let mut last = u64::MAX;
                loop {
                    rx.borrow_and_update();
                    let v = edit_value(&e);
                    if v != last {
                        last = v;
                        if tx.send((i, v, Instant::now())).is_err() {
                            break;
                        }
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

/// What the first few nodes without a session with the hub last heard
/// when dialing it.
fn hub_errors(engines: &[Arc<Engine>], hub: &MemberKey) -> String {
    let mut errors: std::collections::BTreeMap<String, usize> = Default::default();
    for e in engines
        .iter()
        .filter(|e| !e.connected().contains(hub))
        .take(10)
    {
        let why = e
            .peers()
            .into_iter()
            .find(|p| p.key == hub.as_str())
            .and_then(|p| p.last_error)
            .unwrap_or_else(|| "no error noted".into());
        *errors.entry(why).or_default() += 1;
    }
    let list: Vec<String> = errors.iter().map(|(w, c)| format!("{c}x {w}")).collect();
    format!(
        "dials to the hub (10 unconnected nodes): {}",
        list.join("; ")
    )
}

/// Node engines with a live session with the hub; sessions in all.
fn sessions(engines: &[Arc<Engine>], hub: &MemberKey) -> (usize, usize) {
    let mut with_hub = 0;
    let mut all = 0;
    for e in engines {
        let c = e.connected();
        all += c.len();
        with_hub += usize::from(c.contains(hub));
    }
    (with_hub, all)
}

// ---- one run -----------------------------------------------------------------------

struct Run {
    n: usize,
    /// Nodes with a session with the hub when the connect phase ended.
    connected: usize,
    window: Duration,
    cpu_pct: f64,
    cpu_peak_pct: f64,
    rss_mean_mb: f64,
    rss_max_mb: f64,
    hwm_mb: f64,
    beats: Vec<Duration>,
    beats_sent: usize,
    beats_late: usize,
    edits: Vec<Duration>,
    edits_first: Vec<Duration>,
    edits_late: usize,
    bench_cpu_pct: f64,
    load_start: String,
    load_end: String,
    sessions_end: (usize, usize),
    connect_s: f64,
    poll_ms: Duration,
}

fn mb_kb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

fn own_ticks() -> u64 {
    proc_sample(std::process::id()).map_or(0, |s| s.ticks)
}

async fn p10_run(n: usize, window: Duration, edits: usize, kind: &HubKind) -> Run {
    let load_start = loadavg();
    println!();
    println!(
        "P10 N={n}: {} sites; load average {load_start}",
        n.div_ceil(NODES_PER_SITE)
    );
    let shm = tempfile::tempdir_in("/dev/shm").expect("temp dir in /dev/shm");
    let disk = tempfile::tempdir().expect("temp dir");
    let hub_dir = disk.path().join("hub");
    let node_dirs: Vec<PathBuf> = (0..n).map(|i| shm.path().join(format!("n{i}"))).collect();
    let ports = free_ports(n + 1);
    let t = Instant::now();
    let replicas = build_replicas(&hub_dir, &node_dirs, &ports);
    progress(&format!(
        "document and {n} node replicas built in {:.1} s (hub data dir {}, node data dirs under {})",
        t.elapsed().as_secs_f64(),
        hub_dir.display(),
        shm.path().display()
    ));
    let names: Vec<String> = (0..n).map(node_name).collect();

    let hub = Hub::start(kind, &hub_dir, ports[0]);
    let mut reader = Replica::open_with(
        &hub_dir,
        OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .expect("the hub's replica, read-only");
    let hub_key = reader.key().clone();
    let hub_changes_0 = reader.changes_after(&[]).len();

    let t = Instant::now();
    let mut engines = Vec::with_capacity(n);
    for (i, r) in replicas.into_iter().enumerate() {
        let mut cfg = EngineConfig::new(([127, 0, 0, 1], ports[i + 1]).into());
        cfg.mdns = false;
        if let Some(d) = node_dial_every() {
            cfg.dial_every = d;
        }
        engines.push(Arc::new(Engine::start(r, cfg).await.expect("node engine")));
        if (i + 1) % 250 == 0 {
            tokio::task::yield_now().await;
        }
    }
    progress(&format!(
        "{n} node engines started in {:.1} s; {} descriptors open in this process",
        t.elapsed().as_secs_f64(),
        open_fds()
    ));
    let t = Instant::now();
    let mut last_print = Instant::now();
    while t.elapsed() < CONNECT_LIMIT {
        let (with_hub, all) = sessions(&engines, &hub_key);
        if with_hub == n && all == n {
            break;
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            progress(&format!(
                "{with_hub}/{n} nodes connected to the hub, {all} node sessions, after {:.0} s; {}",
                t.elapsed().as_secs_f64(),
                hub_errors(&engines, &hub_key)
            ));
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let connect_s = t.elapsed().as_secs_f64();
    let (with_hub, all) = sessions(&engines, &hub_key);
    progress(&format!(
        "{with_hub}/{n} nodes connected to the hub in {connect_s:.1} s; node sessions in all {all} (each node: the hub only, once it is connected)"
    ));

    // Warm-up: one round of beats, at the same cadence, not measured.
    let (mut rx, watchers) = spawn_watchers(&engines);
    let step = HEARTBEAT / n as u32;
    let t = Instant::now();
    for (i, e) in engines.iter().enumerate() {
        record_beat(e, &names[i], 1);
        let due = t + step * (i as u32 + 1);
        tokio::time::sleep_until(due.into()).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = reader.refresh();
    let warm = names
        .iter()
        .filter(|nm| reader.health().get(*nm).is_some_and(|s| s.reg.seq >= 1))
        .count();
    let extra = reader.changes_after(&[]).len() - hub_changes_0;
    progress(&format!(
        "warm-up round: {warm}/{n} registers at the hub; document changes since the build: {extra}"
    ));
    while rx.try_recv().is_ok() {}

    // The window.
    let tck = clk_tck();
    let mut samples: Vec<Sample> = Vec::new();
    let first = hub.sample().expect("the hub's /proc");
    samples.push(first);
    let own0 = own_ticks();
    let t0 = Instant::now();
    let rounds = (window.as_secs_f64() / HEARTBEAT.as_secs_f64()).ceil() as usize;
    let beats_total = rounds * n;
    let end = t0 + HEARTBEAT * rounds as u32;
    let edit_every = HEARTBEAT * rounds as u32 / edits as u32;
    let mut writer = Replica::open(&hub_dir).expect("the hub's data dir, as the CLI opens it");
    let edit_path = ConfigPath::parse(EDIT_KEY).expect("path");
    // (edit value, written at, arrivals per node)
    let mut open_edits: Vec<(u64, Instant, Vec<Option<Instant>>)> = Vec::new();
    let mut edit_times: Vec<Duration> = Vec::new();
    let mut edit_first: Vec<Duration> = Vec::new();
    let mut edits_late = 0;
    let mut next_edit = 1u64;
    // Where each node's value stands, as its watcher last said.
    let mut held: Vec<u64> = vec![0; n];
    let mut pending: Vec<(usize, u64, Instant)> = Vec::new();
    let mut beat_times: Vec<Duration> = Vec::new();
    let mut late = 0;
    let mut next_poll = Instant::now();
    let mut next_sample = Instant::now() + SAMPLE_EVERY;
    let mut poll_cost: Vec<Duration> = Vec::new();
    let mut b = 0usize;
    let hard_end = end + EDIT_LIMIT + Duration::from_secs(5);
    loop {
        let now = Instant::now();
        if now >= hard_end {
            break;
        }
        // Beats due.
        while b < beats_total && t0 + step * b as u32 <= now {
            let i = b % n;
            let seq = 2 + (b / n) as u64;
            record_beat(&engines[i], &names[i], seq);
            pending.push((i, seq, Instant::now()));
            b += 1;
        }
        // An edit due (the last one well before the end).
        let edit_due = t0 + edit_every * (next_edit as u32 - 1) + edit_every / 2;
        if next_edit as usize <= edits && now >= edit_due {
            let _ = writer.refresh();
            let at = Instant::now();
            writer
                .change(&format!("set {EDIT_KEY}"), |d, _| {
                    d.set_config(&LayerRef::Fleet, &edit_path, &json!(next_edit))
                })
                .expect("edit at the hub's data dir");
            open_edits.push((next_edit, at, vec![None; n]));
            next_edit += 1;
        }
        // Watchers' reports.
        while let Ok((i, v, at)) = rx.try_recv() {
            held[i] = held[i].max(v);
            for (k, _, arr) in open_edits.iter_mut() {
                if v >= *k && arr[i].is_none() {
                    arr[i] = Some(at);
                }
            }
        }
        open_edits.retain(|(_, at, arr)| {
            let done = arr.iter().all(|a| a.is_some());
            if done || at.elapsed() > EDIT_LIMIT {
                let mut got: Vec<Duration> = arr
                    .iter()
                    .flatten()
                    .map(|a| a.saturating_duration_since(*at))
                    .collect();
                got.sort();
                if done {
                    edit_times.push(*got.last().expect("n > 0"));
                } else {
                    edits_late += 1;
                    edit_times.push(EDIT_LIMIT);
                }
                if let Some(f) = got.first() {
                    edit_first.push(*f);
                }
                return false;
            }
            true
        });
        // The hub's data dir.
        if now >= next_poll {
            let t = Instant::now();
            let _ = reader.refresh();
            let h = reader.health();
            pending.retain(|(i, seq, sent)| {
                if h.get(&names[*i]).is_some_and(|s| s.reg.seq >= *seq) {
                    beat_times.push(sent.elapsed());
                    return false;
                }
                if sent.elapsed() > BEAT_LIMIT {
                    late += 1;
                    beat_times.push(BEAT_LIMIT);
                    return false;
                }
                true
            });
            poll_cost.push(t.elapsed());
            next_poll = t + HUB_POLL;
        }
        if now >= next_sample {
            if let Some(s) = hub.sample() {
                samples.push(s);
            }
            next_sample += SAMPLE_EVERY;
        }
        if b >= beats_total
            && now >= end
            && pending.is_empty()
            && open_edits.is_empty()
            && next_edit as usize > edits
        {
            break;
        }
        let next_beat = if b < beats_total {
            t0 + step * b as u32
        } else {
            hard_end
        };
        let wake = next_beat
            .min(next_poll)
            .min(next_sample)
            .min(Instant::now() + Duration::from_millis(20));
        tokio::time::sleep_until(wake.into()).await;
    }
    late += pending.len();
    beat_times.extend(std::iter::repeat_n(BEAT_LIMIT, pending.len()));
    edits_late += open_edits.len();
    edit_times.extend(std::iter::repeat_n(EDIT_LIMIT, open_edits.len()));
    if let Some(s) = hub.sample() {
        samples.push(s);
    }
    let own1 = own_ticks();
    let elapsed = t0.elapsed();
    let last = *samples.last().expect("samples");
    let cpu = |a: &Sample, b: &Sample| {
        (b.ticks - a.ticks) as f64 / tck / b.at.duration_since(a.at).as_secs_f64().max(1e-3) * 100.0
    };
    let cpu_pct = cpu(&first, &last);
    let cpu_peak_pct = samples
        .windows(2)
        .map(|w| cpu(&w[0], &w[1]))
        .fold(0.0, f64::max);
    let rss: Vec<f64> = samples.iter().map(|s| mb_kb(s.rss_kb)).collect();
    let rss_mean_mb = rss.iter().sum::<f64>() / rss.len() as f64;
    let rss_max_mb = rss.iter().copied().fold(0.0, f64::max);
    let bench_cpu_pct = (own1 - own0) as f64 / tck / elapsed.as_secs_f64() * 100.0;
    let sessions_end = sessions(&engines, &hub_key);
    let _ = reader.refresh();
    let changes_end = reader.changes_after(&[]).len() - hub_changes_0;
    progress(&format!(
        "window {:.1} s: {b} beats sent, {} edits; document changes at the hub since the build: {changes_end} ({} edits among them); nodes holding the last edit: {}/{n}",
        elapsed.as_secs_f64(),
        next_edit - 1,
        next_edit - 1,
        held.iter().filter(|v| **v >= next_edit - 1).count()
    ));
    for t in &watchers {
        t.abort();
    }
    drop(writer);
    drop(reader);
    hub.stop();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for e in engines {
        if let Ok(e) = Arc::try_unwrap(e) {
            tasks.push(tokio::spawn(async move { e.shutdown().await }));
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    progress(&format!("shut down in {:.1} s", t.elapsed().as_secs_f64()));
    beat_times.sort();
    edit_times.sort();
    edit_first.sort();
    poll_cost.sort();
    Run {
        n,
        connected: with_hub,
        window: elapsed,
        cpu_pct,
        cpu_peak_pct,
        rss_mean_mb,
        rss_max_mb,
        hwm_mb: mb_kb(last.hwm_kb),
        beats_sent: b,
        beats: beat_times,
        beats_late: late,
        edits: edit_times,
        edits_first: edit_first,
        edits_late,
        bench_cpu_pct,
        load_start,
        load_end: loadavg(),
        sessions_end,
        connect_s,
        poll_ms: pct(&poll_cost, 50.0),
    }
}

impl Run {
    /// Whether the simulated fleet held up: every node connected to the
    /// hub, and at most 1 % of the beats late. Otherwise the figures
    /// measure this process (the node engines) running out of CPU, not
    /// the hub: they judge no target and enter no scaling.
    fn valid(&self) -> bool {
        self.connected == self.n && self.beats_late * 100 <= self.beats.len()
    }

    fn beat_p99(&self) -> Duration {
        pct(&self.beats, 99.0)
    }

    fn edit_p99(&self) -> Duration {
        pct(&self.edits, 99.0)
    }

    fn print(&self) {
        if !self.valid() {
            println!(
                "P10 N={}: NOT A MEASUREMENT OF THE HUB: {}/{} nodes connected to the hub, {} of {} beats late; the node engines in this process did not keep up (see its CPU below)",
                self.n,
                self.connected,
                self.n,
                self.beats_late,
                self.beats.len()
            );
        }
        println!(
            "P10 N={}: window {:.0} s; hub CPU {:.1} % of one core (peak 2 s {:.1} %); RSS mean {:.1} MB, max {:.1} MB, VmHWM {:.1} MB",
            self.n,
            self.window.as_secs_f64(),
            self.cpu_pct,
            self.cpu_peak_pct,
            self.rss_mean_mb,
            self.rss_max_mb,
            self.hwm_mb
        );
        println!(
            "  heartbeat -> at the hub: {} beats, {} late (> {} s); p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (read every {} ms; one read {:.1} ms)",
            self.beats_sent,
            self.beats_late,
            BEAT_LIMIT.as_secs(),
            ms(pct(&self.beats, 50.0)),
            ms(self.beat_p99()),
            ms(pct(&self.beats, 100.0)),
            HUB_POLL.as_millis(),
            ms(self.poll_ms)
        );
        println!(
            "  edit at the hub -> all {} nodes: {} edits, {} not everywhere within {} s; p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; first node p50 {:.0} ms",
            self.n,
            self.edits.len(),
            self.edits_late,
            EDIT_LIMIT.as_secs(),
            ms(pct(&self.edits, 50.0)),
            ms(self.edit_p99()),
            ms(pct(&self.edits, 100.0)),
            ms(pct(&self.edits_first, 50.0))
        );
        println!(
            "  this process (the {} node engines): {:.0} % of one core; node sessions with the hub at the end {}/{}, in all {}; connected in {:.1} s; load average {} -> {}",
            self.n,
            self.bench_cpu_pct,
            self.sessions_end.0,
            self.n,
            self.sessions_end.1,
            self.connect_s,
            self.load_start,
            self.load_end
        );
    }

    fn rows(&self, rows: &mut Vec<Row>) {
        let n = self.n;
        let valid = self.valid();
        let judge = |pass: bool| valid.then_some(pass);
        if !valid {
            rows.push(Row::new(
                format!("P10 N={n}: not a valid run"),
                format!(
                    "{}/{n} connected, {} beats late: the node engines fell behind",
                    self.connected, self.beats_late
                ),
                "",
                None,
            ));
        }
        let censored = |late: usize| if late > 0 { ">= " } else { "" };
        rows.push(Row::new(
            format!("P10 N={n} hub CPU, share of one core"),
            format!(
                "{:.1} % (2 s peak {:.1} %)",
                self.cpu_pct, self.cpu_peak_pct
            ),
            format!("< {TARGET_CPU_PCT:.0} %"),
            judge(self.cpu_pct < TARGET_CPU_PCT),
        ));
        rows.push(Row::new(
            format!("P10 N={n} hub RSS max / VmHWM"),
            format!("{:.1} / {:.1} MB", self.rss_max_mb, self.hwm_mb),
            format!("< {TARGET_RSS_MB:.0} MB"),
            judge(self.hwm_mb.max(self.rss_max_mb) < TARGET_RSS_MB),
        ));
        rows.push(Row::new(
            format!("P10 N={n} heartbeat -> hub p50 / p99"),
            format!(
                "{:.0} / {}{:.0} ms ({} beats, {} late)",
                ms(pct(&self.beats, 50.0)),
                censored(self.beats_late),
                ms(self.beat_p99()),
                self.beats.len(),
                self.beats_late
            ),
            format!("p99 < {TARGET_BEAT_P99_MS:.0} ms"),
            judge(self.beats_late == 0 && ms(self.beat_p99()) < TARGET_BEAT_P99_MS),
        ));
        rows.push(Row::new(
            format!("P10 N={n} edit -> all nodes p50 / p99"),
            format!(
                "{:.0} / {}{:.0} ms ({} edits, {} late)",
                ms(pct(&self.edits, 50.0)),
                censored(self.edits_late),
                ms(self.edit_p99()),
                self.edits.len(),
                self.edits_late
            ),
            format!("p99 < {TARGET_EDIT_P99_MS:.0} ms"),
            judge(self.edits_late == 0 && ms(self.edit_p99()) < TARGET_EDIT_P99_MS),
        ));
        rows.push(Row::new(
            format!("  context: N={n} bench process CPU; load"),
            format!(
                "{:.0} % of a core; load {} -> {}",
                self.bench_cpu_pct, self.load_start, self.load_end
            ),
            "",
            None,
        ));
    }
}

// ---- scaling -----------------------------------------------------------------------

/// How each figure grows from the smallest N to the largest, and two
/// extrapolations to 10,000 nodes: a straight line fitted by least squares
/// through every N measured (assumes each node adds a fixed cost), and a
/// power law through the smallest and largest N (assumes the growth seen
/// keeps its exponent: 1 linear, 2 quadratic).
fn scaling(runs: &[Run], rows: &mut Vec<Row>) {
    if runs.len() < 2 {
        return;
    }
    let mut sorted: Vec<&Run> = runs.iter().filter(|r| r.valid()).collect();
    sorted.sort_by_key(|r| r.n);
    if sorted.len() < 2 {
        println!("scaling: fewer than two valid runs");
        return;
    }
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    if lo.n == hi.n {
        return;
    }
    type Figure = (&'static str, &'static str, fn(&Run) -> f64);
    let figures: [Figure; 4] = [
        ("hub CPU", "%", |r| r.cpu_pct),
        ("hub VmHWM", "MB", |r| r.hwm_mb),
        ("heartbeat p99", "ms", |r| ms(r.beat_p99())),
        ("edit p99", "ms", |r| ms(r.edit_p99())),
    ];
    println!();
    println!(
        "scaling from N={} to N={} and to 10,000: 'linear' is a least-squares line through all {} sizes (a fixed cost per node); 'power' is y = c*N^k through the two ends (k = the growth exponent seen)",
        lo.n,
        hi.n,
        sorted.len()
    );
    for (name, unit, f) in figures {
        let xs: Vec<f64> = sorted.iter().map(|r| r.n as f64).collect();
        let ys: Vec<f64> = sorted.iter().map(|r| f(r)).collect();
        let m = xs.len() as f64;
        let (mx, my) = (xs.iter().sum::<f64>() / m, ys.iter().sum::<f64>() / m);
        let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let slope = sxy / sxx.max(1e-9);
        let linear = my + slope * (10_000.0 - mx);
        let (y0, y1) = (f(lo), f(hi));
        let k = if y0 > 0.0 && y1 > 0.0 {
            (y1 / y0).ln() / (hi.n as f64 / lo.n as f64).ln()
        } else {
            f64::NAN
        };
        let power = y1 * (10_000.0 / hi.n as f64).powf(k);
        let series = sorted
            .iter()
            .map(|r| format!("{}: {:.1}", r.n, f(r)))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {name}: {series} {unit}; x{:.2} from {} to {}; per 1000 nodes +{:.1} {unit}; at 10,000: linear {linear:.0} {unit}, power (k = {k:.2}) {power:.0} {unit}",
            y1 / y0.max(1e-9),
            lo.n,
            hi.n,
            slope * 1000.0
        );
        rows.push(Row::new(
            format!("  scaling: {name} {}->{}; at 10k", lo.n, hi.n),
            format!(
                "{y0:.1} -> {y1:.1} {unit} (x{:.1}); lin {linear:.0}, pow(k={k:.2}) {power:.0}",
                y1 / y0.max(1e-9)
            ),
            "",
            None,
        ));
    }
}

//! P6: the node daemon idle at 10 s heartbeats for 5 minutes, as a real
//! process: peak RSS (`VmHWM` in /proc/PID/status) and CPU % ((utime + stime)
//! from /proc/PID/stat over the window, of one core).
//!
//! Run: `cargo build --profile device --locked && cargo bench -p fleetdeck
//! --bench node_idle`. What is measured is the device build, the binary an
//! operator puts on a device (README, "Running a node on a device").
//!
//! The fleet is made with the CLI, as an operator would: a hub data dir
//! (`init`, `site add`, `node add`, `config set heartbeat.interval_s 10`,
//! `serve --listen 127.0.0.1:PORT --no-mdns`, `invite --role node`), a node
//! data dir (`join`), then `node run --node n1 --root DIR --listen
//! 127.0.0.1:0 --no-mdns` with the host's real metrics. The window starts
//! once the hub holds the node's first heartbeat with its apply ok, plus one
//! heartbeat interval.
//!
//! Baseline in the same run and the same window: what a hub-era agent costs
//! doing the same job, a POSIX sh loop that reads load, memory, disk and
//! uptime every 10 s and publishes them as a JSON heartbeat through one
//! persistent `mosquitto_pub -l` (QoS 1) to a mosquitto broker started by the
//! bench on a loopback port. Its figures are summed over its process tree
//! (the sh, the loop's subshell, mosquitto_pub; the short-lived `cut`, `awk`,
//! `df` and `sleep` children's CPU reaches the loop's cutime/cstime once
//! reaped, their memory is not in the peak). If mosquitto or mosquitto_pub
//! is missing, the bench says "baseline unavailable" and still measures
//! fleetdeck.
//!
//! Context rows (no target): the two hubs over the same window, fleetdeck
//! `serve` and the mosquitto broker.
//!
//! `FLEETDECK_BENCH_QUICK=1`: a 30 s window, a smoke run whose figures judge
//! nothing. Every loop is bounded in time; all traffic is on 127.0.0.1.

#[path = "../node/benches/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::mosquitto::{Broker, which};
use common::{Row, cpus, loadavg, print_table, quick};
use serde_json::Value;

/// The binary measured: the device build (`cargo build --profile device`,
/// the one README tells operators to put on a device), found beside the
/// binary cargo built with this bench; or `FLEETDECK_P6_BIN` (e.g. the
/// bench-profile build itself, to compare).
fn bin_path() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var_os("FLEETDECK_P6_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                // target/<profile>/fleetdeck -> target/device/fleetdeck
                Path::new(env!("CARGO_BIN_EXE_fleetdeck"))
                    .parent()
                    .and_then(Path::parent)
                    .expect("cargo's binary lives in target/<profile>/")
                    .join("device")
                    .join("fleetdeck")
            })
    })
}

const WINDOW: Duration = Duration::from_secs(300);
const QUICK_WINDOW: Duration = Duration::from_secs(30);
const INTERVAL_S: u64 = 10;
const TARGET_RSS_MB: f64 = 20.0;
const TARGET_CPU_PCT: f64 = 0.5;

fn main() {
    let quick = quick();
    let window = if quick { QUICK_WINDOW } else { WINDOW };
    println!(
        "P6 node daemon idle at {INTERVAL_S} s heartbeats, {} s window{}; MB = 10^6 bytes",
        window.as_secs(),
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
    let measured = bin_path();
    let Ok(meta) = std::fs::metadata(measured) else {
        eprintln!(
            "P6 measures the device build, and {} is missing: run `cargo build --profile device --locked` first (or set FLEETDECK_P6_BIN)",
            measured.display()
        );
        std::process::exit(2);
    };
    let built = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .map_or("?".into(), |a| format!("{} s ago", a.as_secs()));
    println!(
        "binary measured (daemon and hub): {} ({:.1} MB on disk, built {built})",
        measured.display(),
        meta.len() as f64 / 1e6
    );
    let hz = clk_tck();
    let tmp = tempfile::Builder::new()
        .prefix("fleetdeck-p6-")
        .tempdir()
        .expect("a temp dir");
    println!(
        "data dirs under {} (the default temp dir: one real process, its own data dir)",
        tmp.path().display()
    );
    let mut procs = Procs::default();

    // ---- the fleet, made with the CLI ----------------------------------------
    let hub = tmp.path().join("hub");
    let node = tmp.path().join("node");
    let root = tmp.path().join("root");
    ok(&hub, &["init", "--name", "hub", "--fleet", "bench"]);
    ok(&hub, &["site", "add", "S1", "--name", "site 1"]);
    ok(&hub, &["node", "add", "n1", "--site", "S1", "--role", "pi"]);
    ok(
        &hub,
        &[
            "config",
            "set",
            "heartbeat.interval_s",
            &INTERVAL_S.to_string(),
        ],
    );
    let port = free_udp_port();
    let serve = spawn_logged(
        &hub,
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--no-mdns",
        ],
        &tmp.path().join("serve.log"),
    );
    let serve_pid = serve.id();
    procs.children.push(serve);
    let serving = eventually(Duration::from_secs(60), || {
        json(&hub, &["peers"]).is_some_and(|p| p["serving"] == true)
            && run(&hub, &["invite"]).status.success()
    });
    assert!(serving, "fleetdeck serve is up within 60 s");
    let token = json(&hub, &["invite", "--role", "node", "--ttl", "30m"])
        .and_then(|v| v["token"].as_str().map(str::to_string))
        .expect("an invite token");
    ok(
        &node,
        &["join", &token, "--name", "n1", "--listen", "127.0.0.1:0"],
    );
    let t_start = Instant::now();
    let daemon = spawn_logged(
        &node,
        &[
            "node",
            "run",
            "--node",
            "n1",
            "--root",
            &root.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
        ],
        &tmp.path().join("node.log"),
    );
    let daemon_pid = daemon.id();
    procs.children.push(daemon);
    let applied = eventually(Duration::from_secs(120), || {
        node_health(&hub).is_some_and(|h| h["applied"]["result"] == "ok")
    });
    assert!(
        applied,
        "the hub holds the node's heartbeat with its apply ok within 120 s"
    );
    println!(
        "node run started; the hub held its first heartbeat (apply ok) after {:.1} s",
        t_start.elapsed().as_secs_f64()
    );

    // ---- the baseline: a hub-era agent ---------------------------------------
    let base = start_baseline(tmp.path(), &mut procs);
    match &base {
        Ok(b) => println!(
            "baseline: mosquitto on 127.0.0.1:{}, sh loop pid {} publishing every {INTERVAL_S} s through mosquitto_pub -l",
            b.port, b.agent_pid
        ),
        Err(e) => println!("baseline unavailable: {e}"),
    }

    // Let both settle for one interval.
    std::thread::sleep(Duration::from_secs(INTERVAL_S));

    // ---- the window ------------------------------------------------------------
    let seq0 = node_health(&hub).and_then(|h| h["seq"].as_u64());
    let beats0 = base.as_ref().ok().map(|b| b.received());
    let d0 = tree_ticks(daemon_pid);
    let s0 = tree_ticks(serve_pid);
    let a0 = base.as_ref().ok().map(|b| tree_ticks(b.agent_pid));
    let m0 = base.as_ref().ok().map(|b| tree_ticks(b.broker.pid()));
    let w0 = Instant::now();
    let mut d_rss = (u64::MAX, 0u64);
    let mut a_rss_max = 0u64;
    while w0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(w0.elapsed())));
        if let Some(r) = status_kb(daemon_pid, "VmRSS") {
            d_rss = (d_rss.0.min(r), d_rss.1.max(r));
        }
        if let Ok(b) = &base {
            let sum: u64 = tree(b.agent_pid)
                .iter()
                .filter_map(|p| status_kb(*p, "VmRSS"))
                .sum();
            a_rss_max = a_rss_max.max(sum);
        }
    }
    let wall = w0.elapsed().as_secs_f64();
    let cpu = |t0: u64, pid: u32| (tree_ticks(pid).saturating_sub(t0)) as f64 / hz / wall * 100.0;
    let d_cpu = cpu(d0, daemon_pid);
    let s_cpu = cpu(s0, serve_pid);
    let seq1 = node_health(&hub).and_then(|h| h["seq"].as_u64());
    let d_hwm = status_kb(daemon_pid, "VmHWM").unwrap_or(0);
    let d_rss_end = status_kb(daemon_pid, "VmRSS").unwrap_or(0);
    let s_hwm = status_kb(serve_pid, "VmHWM").unwrap_or(0);
    println!("load average at the end of the window {}", loadavg());

    println!();
    println!("P6 fleetdeck node run (pid {daemon_pid}), window {wall:.0} s:");
    println!(
        "  peak RSS (VmHWM, since start) {:.1} MB; RSS in the window {:.1}..{:.1} MB, at the end {:.1} MB",
        mb(d_hwm),
        mb(d_rss.0),
        mb(d_rss.1),
        mb(d_rss_end)
    );
    println!(
        "  at the end: RssAnon {:.1} MB, RssFile {:.1} MB (the binary's pages: {}, {:.1} MB on disk)",
        mb(status_kb(daemon_pid, "RssAnon").unwrap_or(0)),
        mb(status_kb(daemon_pid, "RssFile").unwrap_or(0)),
        measured.display(),
        meta.len() as f64 / 1e6
    );
    println!("  CPU {d_cpu:.3} % of one core over the window");
    println!(
        "  heartbeats the hub received in the window: {}",
        match (seq0, seq1) {
            (Some(a), Some(b)) => format!("{} (seq {a} -> {b})", b.saturating_sub(a)),
            _ => "?".into(),
        }
    );
    explain_memory(daemon_pid);

    let mut rows = vec![
        Row::new(
            "P6 node run peak RSS (VmHWM)",
            format!("{:.1} MB", mb(d_hwm)),
            format!("< {TARGET_RSS_MB} MB"),
            Some(mb(d_hwm) < TARGET_RSS_MB),
        ),
        Row::new(
            "P6 node run CPU, idle",
            format!("{d_cpu:.3} %"),
            format!("< {TARGET_CPU_PCT} %"),
            Some(d_cpu < TARGET_CPU_PCT),
        ),
    ];
    match &base {
        Ok(b) => {
            let a_cpu = cpu(a0.unwrap_or(0), b.agent_pid);
            let m_cpu = cpu(m0.unwrap_or(0), b.broker.pid());
            let procs_now = tree(b.agent_pid);
            let a_hwm: u64 = procs_now
                .iter()
                .filter_map(|p| status_kb(*p, "VmHWM"))
                .sum();
            let m_hwm = status_kb(b.broker.pid(), "VmHWM").unwrap_or(0);
            let got = b.received().saturating_sub(beats0.unwrap_or(0));
            println!(
                "P6 baseline: sh loop + mosquitto_pub -l (pid {}, {} processes: {}), same window:",
                b.agent_pid,
                procs_now.len(),
                procs_now
                    .iter()
                    .map(|p| comm(*p))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "  peak RSS, sum of the tree's VmHWM {:.1} MB (largest sampled sum of VmRSS {:.1} MB)",
                mb(a_hwm),
                mb(a_rss_max)
            );
            println!("  CPU {a_cpu:.3} % of one core (the tree, reaped children included)");
            println!("  heartbeats the subscriber received in the window: {got}");
            println!(
                "context, the hubs over the window: fleetdeck serve peak RSS {:.1} MB, CPU {s_cpu:.3} %; mosquitto broker peak RSS {:.1} MB, CPU {m_cpu:.3} %",
                mb(s_hwm),
                mb(m_hwm)
            );
            rows.push(Row::new(
                "  baseline: sh + mosquitto_pub peak RSS",
                format!("{:.1} MB", mb(a_hwm)),
                "-",
                None,
            ));
            rows.push(Row::new(
                "  baseline: sh + mosquitto_pub CPU",
                format!("{a_cpu:.3} %"),
                "-",
                None,
            ));
            rows.push(Row::new(
                "  context: fleetdeck serve (hub) RSS / CPU",
                format!("{:.1} MB / {s_cpu:.3} %", mb(s_hwm)),
                "-",
                None,
            ));
            rows.push(Row::new(
                "  context: mosquitto broker RSS / CPU",
                format!("{:.1} MB / {m_cpu:.3} %", mb(m_hwm)),
                "-",
                None,
            ));
        }
        Err(_) => {
            println!(
                "context, the hub over the window: fleetdeck serve peak RSS {:.1} MB, CPU {s_cpu:.3} %",
                mb(s_hwm)
            );
            rows.push(Row::new(
                "  baseline: sh + mosquitto_pub",
                "baseline unavailable".into(),
                "-",
                None,
            ));
        }
    }
    println!("load average at end {}", loadavg());
    print_table(&rows);
    procs.stop(daemon_pid);
}

// ---- the CLI -------------------------------------------------------------------

fn bin() -> Command {
    let mut c = Command::new(bin_path());
    c.env_remove("FLEETDECK_DATA").env_remove("RUST_LOG");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--data")
        .arg(dir)
        .args(args)
        .output()
        .expect("fleetdeck runs")
}

fn ok(dir: &Path, args: &[&str]) {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "fleetdeck {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(dir: &Path, args: &[&str]) -> Option<Value> {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = run(dir, &a);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn node_health(hub: &Path) -> Option<Value> {
    json(hub, &["node", "show", "n1"])
        .map(|v| v["health"].clone())
        .filter(|h| !h.is_null())
}

fn spawn_logged(dir: &Path, args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("a log file");
    let err = out.try_clone().expect("a log file handle");
    bin()
        .arg("--data")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("fleetdeck starts")
}

fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

// ---- the processes this bench started ------------------------------------------

#[derive(Default)]
struct Procs {
    children: Vec<Child>,
    /// Every pid of the baseline's tree, stopped by id at the end.
    trees: Vec<u32>,
}

impl Procs {
    /// SIGTERM to the daemon first (its clean stop), then the rest.
    fn stop(&mut self, daemon: u32) {
        term(daemon);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) && comm(daemon) != "?" {
            if let Some(c) = self.children.iter_mut().find(|c| c.id() == daemon)
                && matches!(c.try_wait(), Ok(Some(_)))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for root in std::mem::take(&mut self.trees) {
            // The root's descendants first; the root (a shell waiting on its
            // pipeline) reaps them and ends, then `wait` below reaps it.
            for p in tree(root).into_iter().skip(1) {
                term(p);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn term(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

// ---- the baseline --------------------------------------------------------------

struct Baseline {
    port: u16,
    agent_pid: u32,
    broker: Broker,
    /// mosquitto_sub's output: one line per heartbeat received.
    sub_log: PathBuf,
}

impl Baseline {
    fn received(&self) -> usize {
        std::fs::read_to_string(&self.sub_log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

/// The agent a hub-era node ran: every 10 s, read the metrics and publish
/// them as one JSON line through a persistent MQTT connection.
const AGENT: &str = r#"while :; do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  mem=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  disk=$(df -P / | awk 'NR==2 {print $5}')
  up=$(cut -d' ' -f1 /proc/uptime)
  echo "{\"node\":\"n1\",\"load\":\"$load\",\"mem_available_kb\":$mem,\"disk_root\":\"$disk\",\"uptime_s\":$up}"
  sleep INTERVAL
done | mosquitto_pub -h 127.0.0.1 -p PORT -i agent-n1 -t nodes/n1/heartbeat -q 1 -l"#;

fn start_baseline(dir: &Path, procs: &mut Procs) -> Result<Baseline, String> {
    which("mosquitto_pub").ok_or("mosquitto_pub not installed (mosquitto-clients)")?;
    let sub_bin = which("mosquitto_sub").ok_or("mosquitto_sub not installed")?;
    let broker = Broker::start("")?;
    let port = broker.port;
    let sub_log = dir.join("heartbeats.log");
    let sub = Command::new(sub_bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "nodes/+/heartbeat", "-q", "1"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&sub_log).map_err(|e| e.to_string())?)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start mosquitto_sub: {e}"))?;
    procs.children.push(sub);
    std::thread::sleep(Duration::from_millis(300));
    let script = AGENT
        .replace("INTERVAL", &INTERVAL_S.to_string())
        .replace("PORT", &port.to_string());
    let agent = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start the sh loop: {e}"))?;
    let agent_pid = agent.id();
    procs.children.push(agent);
    procs.trees.push(agent_pid);
    let b = Baseline {
        port,
        agent_pid,
        broker,
        sub_log,
    };
    if !eventually(Duration::from_secs(10), || b.received() > 0) {
        return Err("the sh loop's first heartbeat did not reach the subscriber in 10 s".into());
    }
    Ok(b)
}

// ---- /proc -------------------------------------------------------------------

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// /proc's kB (KiB) as MB of 10^6 bytes, the unit of the target.
fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// A field of /proc/PID/status in kB.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// (ppid, utime + stime + cutime + cstime) from /proc/PID/stat.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: state is
    // field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = (11..=14)
        .map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum::<Option<u64>>()?;
    Some((ppid, ticks))
}

/// `root` and every descendant alive now, parents before children.
fn tree(root: u32) -> Vec<u32> {
    let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some((ppid, _)) = stat(pid)
            {
                kids.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() && out.len() < 1000 {
        if let Some(k) = kids.get(&out[i]) {
            out.extend(k);
        }
        i += 1;
    }
    out
}

/// CPU ticks of `root`'s tree, reaped children included (cutime/cstime).
fn tree_ticks(root: u32) -> u64 {
    tree(root)
        .iter()
        .filter_map(|p| stat(*p))
        .map(|s| s.1)
        .sum()
}

/// What the daemon's memory is: threads by name, and RSS by mapping.
fn explain_memory(pid: u32) {
    let mut threads: BTreeMap<String, usize> = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            let name = std::fs::read_to_string(e.path().join("comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            *threads.entry(name).or_default() += 1;
        }
    }
    println!(
        "  threads: {} ({})",
        threads.values().sum::<usize>(),
        threads
            .iter()
            .map(|(n, c)| format!("{n} x{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        let pick = |f: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(f)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        println!(
            "  smaps_rollup now: Rss {:.1} MB = anonymous {:.1} MB + file-backed {:.1} MB; Private_Dirty {:.1} MB",
            mb(pick("Rss")),
            mb(pick("Anonymous")),
            mb(pick("Rss").saturating_sub(pick("Anonymous"))),
            mb(pick("Private_Dirty"))
        );
    }
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return;
    };
    let mut by: HashMap<String, (u64, usize)> = HashMap::new();
    let mut cur = String::new();
    for l in s.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let name = l.split_whitespace().nth(5).unwrap_or("[anon]");
            cur = Path::new(name)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(name)
                .to_string();
            by.entry(cur.clone()).or_default().1 += 1;
        } else if let Some(v) = l.strip_prefix("Rss:") {
            let kb: u64 = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            by.entry(cur.clone()).or_default().0 += kb;
        }
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1.0));
    println!(
        "  RSS by mapping now: {}",
        v.iter()
            .take(8)
            .map(|(n, (kb, count))| format!("{n} {:.1} MB ({count} maps)", mb(*kb)))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

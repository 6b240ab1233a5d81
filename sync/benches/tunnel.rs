//! Tunnel benchmark: throughput and added round-trip latency of a tunnel
//! on loopback against a direct TCP connection in the same run, and the
//! memory of the node's process with 10 tunnels open.
//!
//! Run: `cargo bench -p fleetdeck-sync --bench tunnel`.
//!
//! The node runs in its own process (this bench binary started again with
//! `FLEETDECK_TUNNEL_NODE_DIR` set: one sync `Engine` that ends tunnels for
//! node n1, as `fleetdeck node run` starts it), so that its memory is its
//! own; the admin's engine, the TCP services and the clients run in this
//! process. All on 127.0.0.1. The services: a sink that counts what it is
//! sent and answers its length at EOF; a source that sends N bytes; an
//! echo for 64-byte round trips.
//!
//! Figures, each against the direct connection to the same service:
//! upload and download (`FLEETDECK_TUNNEL_MB`, default 256 MB each),
//! round trips (2,000 of 64 bytes, p50 and p99), then the node process's
//! RSS before and with 10 tunnels open, each carrying a connection that
//! moved 1 MB and is held open.

#[path = "../../node/benches/common/report.rs"]
mod report;

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig, format_endpoint_addr, parse_endpoint_addr};
use report::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TUNNELS: usize = 10;
const ROUND_TRIPS: usize = 2000;

fn main() {
    if let Ok(dir) = std::env::var("FLEETDECK_TUNNEL_NODE_DIR") {
        node_main(PathBuf::from(dir));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

/// The node's process: its engine, until stdin closes.
fn node_main(dir: PathBuf) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let replica = Replica::open(&dir).expect("the node's replica");
        let mut cfg = EngineConfig::new("127.0.0.1:0".parse().expect("addr"));
        cfg.mdns = false;
        cfg.tunnel_node = Some(NodeId::parse("n1").expect("id"));
        let engine = Engine::start(replica, cfg)
            .await
            .expect("the node's engine");
        println!("ready {}", format_endpoint_addr(&engine.endpoint_addr()));
        let stdin = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            let mut input = std::io::stdin();
            while matches!(input.read(&mut buf), Ok(n) if n > 0) {}
        });
        let _ = stdin.await;
        let _ = tokio::time::timeout(Duration::from_secs(5), engine.shutdown()).await;
    });
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The admin's replica (`admin`) and the node's (`node`), node n1 bound to
/// the node's key, n1 allowing the three services.
fn prepare(root: &Path, ports: [u16; 3]) -> (Replica, PathBuf) {
    let node_dir = root.join("node");
    let node_key = load_or_create_identity(&node_dir)
        .expect("node identity")
        .key()
        .clone();
    let mut admin = Replica::init(&root.join("admin"), "admin", "bench").expect("admin replica");
    let allow: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    admin
        .change("setup", |d, _| {
            d.add_site(
                &SiteId::parse("S1").expect("id"),
                &SiteRecord {
                    name: "S1".into(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )?;
            d.put_member(&node_key, "dev1", Role::Node, now_ms())?;
            let n1 = NodeId::parse("n1").expect("id");
            d.add_node(
                &n1,
                &NodeRecord {
                    site: "S1".into(),
                    role: None,
                },
            )?;
            d.bind_node(&n1, &node_key)?;
            d.set_config(
                &LayerRef::Node(n1),
                &ConfigPath::parse("tunnel.allow").expect("path"),
                &serde_json::json!(allow),
            )
        })
        .expect("setup");
    let all = admin.changes_after(&[]);
    Replica::init_from_changes(&node_dir, all).expect("node replica");
    (admin, node_dir)
}

async fn sink() -> u16 {
    serve(|mut s| async move {
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        let _ = s.write_all(format!("{n}\n").as_bytes()).await;
    })
    .await
}

async fn source() -> u16 {
    serve(|mut s| async move {
        let mut len = [0u8; 8];
        if s.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut left = u64::from_be_bytes(len);
        let buf = vec![0x5au8; 256 * 1024];
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            if s.write_all(&buf[..k]).await.is_err() {
                return;
            }
            left -= k as u64;
        }
    })
    .await
}

async fn echo() -> u16 {
    serve(|mut s| async move {
        let _ = s.set_nodelay(true);
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).await.is_ok() {
            if s.write_all(&buf).await.is_err() {
                return;
            }
        }
    })
    .await
}

async fn serve<F, Fut>(f: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(f(s));
        }
    });
    port
}

/// Sends `bytes` to the sink at `port`: Mbit/s.
async fn upload(port: u16, bytes: u64) -> f64 {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let buf = vec![0xa5u8; 256 * 1024];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..k]).await.expect("upload");
        left -= k as u64;
    }
    s.shutdown().await.expect("shutdown");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("answer");
    let took = start.elapsed();
    assert_eq!(answer.trim(), bytes.to_string(), "the sink got every byte");
    bytes as f64 * 8.0 / took.as_secs_f64() / 1e6
}

/// Takes `bytes` from the source at `port`: Mbit/s.
async fn download(port: u16, bytes: u64) -> f64 {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let start = Instant::now();
    s.write_all(&bytes.to_be_bytes()).await.expect("ask");
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < bytes {
        match s.read(&mut buf).await.expect("download") {
            0 => break,
            k => got += k as u64,
        }
    }
    let took = start.elapsed();
    assert_eq!(got, bytes, "every byte arrived");
    bytes as f64 * 8.0 / took.as_secs_f64() / 1e6
}

/// 64-byte round trips through the echo at `port`: sorted durations.
async fn round_trips(port: u16) -> Vec<Duration> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    // Warm up (the path, the windows).
    for _ in 0..100 {
        s.write_all(&msg).await.expect("send");
        s.read_exact(&mut back).await.expect("echo");
    }
    let mut out = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        s.write_all(&msg).await.expect("send");
        s.read_exact(&mut back).await.expect("echo");
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run() {
    let quick = report::quick();
    let mb: u64 = std::env::var("FLEETDECK_TUNNEL_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 32 } else { 256 });
    let bytes = mb * 1_000_000;
    println!(
        "tunnel bench: {mb} MB each way, {ROUND_TRIPS} round trips, {TUNNELS} tunnels; load {}",
        report::loadavg()
    );
    let (sink_port, source_port, echo_port) = (sink().await, source().await, echo().await);
    let tmp = tempfile::tempdir().expect("tmp");
    let (admin, node_dir) = prepare(tmp.path(), [sink_port, source_port, echo_port]);

    let mut node: Child = Command::new(std::env::current_exe().expect("exe"))
        .env("FLEETDECK_TUNNEL_NODE_DIR", &node_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the node process");
    let pid = node.id();
    let mut line = String::new();
    BufReader::new(node.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the node says where it is");
    let node_addr = parse_endpoint_addr(line.trim().trim_start_matches("ready ")).expect("addr");

    let mut cfg = EngineConfig::new("127.0.0.1:0".parse().expect("addr"));
    cfg.mdns = false;
    cfg.dial = false;
    let engine = Engine::start(admin, cfg).await.expect("the admin's engine");
    // Both WireGuard keys to both sides.
    engine
        .sync_once(
            node_addr.clone(),
            Duration::from_millis(300),
            Duration::from_secs(30),
        )
        .await
        .expect("sync with the node");
    let node_key = fleetdeck_store::MemberKey::from_bytes(node_addr.id.as_bytes());
    let ready = engine.with_replica(|r| {
        r.state()
            .members
            .get(&node_key)
            .is_some_and(|m| m.wg.is_some())
    });
    assert!(ready, "the node's WireGuard key arrived");

    let open = |port: u16| {
        let engine = &engine;
        let node_addr = node_addr.clone();
        async move {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            engine
                .open_tunnel(node_addr, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), l)
                .await
                .expect("a tunnel")
        }
    };

    let mut rows = Vec::new();
    // Throughput.
    let t_sink = open(sink_port).await;
    let t_source = open(source_port).await;
    let direct_up = upload(sink_port, bytes).await;
    let tunnel_up = upload(t_sink.local.port(), bytes).await;
    let direct_down = download(source_port, bytes).await;
    let tunnel_down = download(t_source.local.port(), bytes).await;
    println!("upload:   direct {direct_up:>8.0} Mbit/s   tunnel {tunnel_up:>6.0} Mbit/s");
    println!("download: direct {direct_down:>8.0} Mbit/s   tunnel {tunnel_down:>6.0} Mbit/s");
    rows.push(Row::new(
        "tunnel upload (direct in the same run)",
        format!("{tunnel_up:.0} Mbit/s ({direct_up:.0})"),
        "≥ 200 Mbit/s",
        Some(tunnel_up >= 200.0),
    ));
    rows.push(Row::new(
        "tunnel download (direct in the same run)",
        format!("{tunnel_down:.0} Mbit/s ({direct_down:.0})"),
        "≥ 200 Mbit/s",
        Some(tunnel_down >= 200.0),
    ));

    // Round trips.
    let t_echo = open(echo_port).await;
    let direct = round_trips(echo_port).await;
    let tunnel = round_trips(t_echo.local.port()).await;
    let (d50, d99, t50, t99) = (
        pct(&direct, 0.5),
        pct(&direct, 0.99),
        pct(&tunnel, 0.5),
        pct(&tunnel, 0.99),
    );
    println!(
        "64-byte round trip: direct p50 {:.3} ms p99 {:.3} ms   tunnel p50 {:.3} ms p99 {:.3} ms",
        report::ms(d50),
        report::ms(d99),
        report::ms(t50),
        report::ms(t99)
    );
    let added = t50.saturating_sub(d50);
    rows.push(Row::new(
        "added round trip, p50 (tunnel − direct)",
        format!("{:.3} ms", report::ms(added)),
        "< 1 ms",
        Some(added < Duration::from_millis(1)),
    ));
    rows.push(Row::new(
        "added round trip, p99",
        format!("{:.3} ms", report::ms(t99.saturating_sub(d99))),
        "",
        None,
    ));
    t_sink.close().await;
    t_source.close().await;
    t_echo.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Memory of the node with 10 tunnels open.
    let before = rss_kb(pid);
    let mut held = Vec::new();
    for _ in 0..TUNNELS {
        let t = open(source_port).await;
        let mut s = TcpStream::connect(t.local).await.expect("connect");
        s.write_all(&(1u64 << 40).to_be_bytes()).await.expect("ask");
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0usize;
        while got < 1 << 20 {
            got += s.read(&mut buf).await.expect("read");
        }
        held.push((t, s));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with = rss_kb(pid);
    println!(
        "node process RSS: {:.1} MB before, {:.1} MB with {TUNNELS} tunnels open (each a connection, 1 MB moved, held open and stalled)",
        before as f64 / 1024.0,
        with as f64 / 1024.0
    );
    rows.push(Row::new(
        format!("node RSS with {TUNNELS} open tunnels (before)"),
        format!(
            "{:.1} MB ({:.1} MB; +{:.2} MB a tunnel)",
            with as f64 / 1024.0,
            before as f64 / 1024.0,
            with.saturating_sub(before) as f64 / 1024.0 / TUNNELS as f64
        ),
        "",
        None,
    ));
    for (t, s) in held {
        drop(s);
        t.close().await;
    }
    report::print_table(&rows);
    drop(node.stdin.take());
    let _ = node.wait();
    engine.shutdown().await;
}

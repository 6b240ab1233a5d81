//! Tunnels over real engines on loopback: an admin's replica reaches a TCP
//! service on 127.0.0.1 through a node's engine (WireGuard in QUIC
//! datagrams, a userspace stack at each end); a viewer, a port the node's
//! `tunnel.allow` does not list and a revoked operator are refused.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::*;
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::{NodeId, Role, now_ms};
use fleetdeck_sync::Engine;
use fleetdeck_sync::tunnel::TunnelError;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// FNV-1a over a byte stream: enough to tell two transfers apart.
#[derive(Clone, Copy)]
struct Fnv(u64);
impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The byte at `i` of the test pattern.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// A service on 127.0.0.1: reads what a connection sends until EOF, then
/// answers with its length and hash; a connection that sends "GET n\n"
/// first gets n bytes of the pattern instead, one that sends "RST " gets
/// 64 KiB and then a reset, and one that sends "HOLD" gets "ok\n" and is
/// read until it ends, how it ended noted in [`HELD`].
/// How "HOLD" connections to the services ended.
static HELD: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

async fn service() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = [0u8; 4];
                if s.read_exact(&mut head).await.is_err() {
                    return;
                }
                if &head == b"HOLD" {
                    let _ = s.write_all(b"ok\n").await;
                    let mut buf = [0u8; 1024];
                    let how = loop {
                        match s.read(&mut buf).await {
                            Ok(0) => break "closed",
                            Ok(_) => {}
                            Err(_) => break "reset",
                        }
                    };
                    HELD.lock().unwrap().push(how);
                    return;
                }
                if &head == b"RST " {
                    let _ = s.write_all(&[7u8; 64 * 1024]).await;
                    let _ = s.set_zero_linger();
                    return;
                }
                if &head == b"GET " {
                    let mut n = String::new();
                    let mut c = [0u8; 1];
                    while s.read_exact(&mut c).await.is_ok() && c[0] != b'\n' {
                        n.push(c[0] as char);
                    }
                    let n: u64 = n.parse().unwrap_or(0);
                    let mut sent = 0u64;
                    let mut buf = vec![0u8; 64 * 1024];
                    while sent < n {
                        let k = (n - sent).min(buf.len() as u64) as usize;
                        for (j, b) in buf[..k].iter_mut().enumerate() {
                            *b = pattern(sent + j as u64);
                        }
                        if s.write_all(&buf[..k]).await.is_err() {
                            return;
                        }
                        sent += k as u64;
                    }
                    let _ = s.shutdown().await;
                    return;
                }
                let mut h = Fnv::new();
                h.update(&head);
                let mut len = 4u64;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            h.update(&buf[..k]);
                            len += k as u64;
                        }
                    }
                }
                let _ = s.write_all(format!("{len} {:x}\n", h.0).as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

struct Setup {
    _tmp: tempfile::TempDir,
    admin: Engine,
    node: Engine,
    viewer: Engine,
    operator: Engine,
    /// Another node's replica, captured: its key is a member's, of role node.
    captured: Engine,
    port: u16,
}

/// Replica 0 an admin, 1 node n1 (its engine ends tunnels), 2 a viewer, 3
/// an operator, 4 another node's device; n1 allows 127.0.0.1:<the
/// service's port>.
async fn setup() -> Setup {
    let port = service().await;
    let (tmp, mut reps) = replicas_as(5, |i| match i {
        2 => Role::Viewer,
        3 => Role::Operator,
        _ => Role::Node,
    });
    let captured_r = reps.pop().unwrap();
    let operator_r = reps.pop().unwrap();
    let viewer_r = reps.pop().unwrap();
    let node_r = reps.pop().unwrap();
    let admin_r = reps.pop().unwrap();
    let admin = Engine::start(admin_r, config()).await.unwrap();
    let mut node_cfg = config();
    node_cfg.tunnel_node = Some(NodeId::parse("n1").unwrap());
    let node = Engine::start(node_r, node_cfg).await.unwrap();
    let viewer = Engine::start(viewer_r, config()).await.unwrap();
    let operator = Engine::start(operator_r, config()).await.unwrap();
    let captured = Engine::start(captured_r, config()).await.unwrap();
    for e in [&node, &viewer, &operator, &captured] {
        e.connect(admin.endpoint_addr());
    }
    set(&admin, "tunnel.allow", json!([format!("127.0.0.1:{port}")]));
    let keys: Vec<_> = [&admin, &node, &viewer, &operator, &captured]
        .iter()
        .map(|e| e.key().clone())
        .collect();
    // The node holds every member's WireGuard key and its allowlist.
    assert!(
        wait_for(Duration::from_secs(30), || node.with_replica(|r| {
            keys.iter()
                .all(|k| r.state().members.get(k).is_some_and(|m| m.wg.is_some()))
                && !r.state().fleet.is_empty()
        }))
        .await,
        "the node learns every member's WireGuard key and tunnel.allow"
    );
    assert!(
        wait_for(Duration::from_secs(30), || converged(&[
            &admin, &node, &viewer, &operator, &captured
        ]))
        .await
    );
    Setup {
        _tmp: tmp,
        admin,
        node,
        viewer,
        operator,
        captured,
        port,
    }
}

async fn local() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn service_at(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

/// A connection through the tunnel at `local` asks for 10 bytes and gets
/// none: it ends at once, reset (maybe before the local connect returns)
/// or closed.
async fn gets_nothing_through(local: std::net::SocketAddr) {
    let reached = async {
        let mut c = TcpStream::connect(local).await?;
        let _ = c.write_all(b"GET 10\n").await;
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.map(|_| got)
    };
    let r = tokio::time::timeout(Duration::from_secs(10), reached)
        .await
        .expect("the connection ends at once");
    assert!(
        r.as_ref().map_or(true, Vec::is_empty),
        "got {} bytes through",
        r.map_or(0, |g| g.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reaches_a_service_on_the_node_both_ways_intact_over_many_connections() {
    let s = setup().await;
    let tunnel = s
        .admin
        .open_tunnel(s.node.endpoint_addr(), service_at(s.port), local().await)
        .await
        .expect("the admin's tunnel opens");
    let at = tunnel.local;

    // Upload 8 MiB: the service reports the length and hash it received.
    let mut c = TcpStream::connect(at).await.unwrap();
    let mut h = Fnv::new();
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while sent < 8 << 20 {
        for (j, b) in buf.iter_mut().enumerate() {
            *b = pattern(sent + j as u64) ^ 0x5a;
        }
        c.write_all(&buf).await.unwrap();
        h.update(&buf);
        sent += buf.len() as u64;
    }
    c.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), c.read_to_string(&mut answer))
        .await
        .expect("the answer arrives")
        .unwrap();
    assert_eq!(answer.trim(), format!("{sent} {:x}", h.0));

    // Download 8 MiB on each of 8 connections at once.
    let mut jobs = Vec::new();
    for _ in 0..8 {
        jobs.push(tokio::spawn(async move {
            let n = 8u64 << 20;
            let mut c = TcpStream::connect(at).await.unwrap();
            c.write_all(format!("GET {n}\n").as_bytes()).await.unwrap();
            let mut got = Vec::new();
            tokio::time::timeout(Duration::from_secs(60), c.read_to_end(&mut got))
                .await
                .expect("the download ends")
                .unwrap();
            assert_eq!(got.len() as u64, n);
            assert!(got.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)));
        }));
    }
    for j in jobs {
        j.await.unwrap();
    }
    tunnel.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_refused_and_told_why() {
    let s = setup().await;
    let e = s
        .viewer
        .open_tunnel(s.node.endpoint_addr(), service_at(s.port), local().await)
        .await
        .err()
        .expect("a viewer gets no tunnel");
    assert!(matches!(e, TunnelError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("viewer"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_node_is_refused_a_tunnel_to_another_node() {
    let s = setup().await;
    // Its engine dials as a modified binary would (the CLI refuses first).
    let e = s
        .captured
        .open_tunnel(s.node.endpoint_addr(), service_at(s.port), local().await)
        .await
        .err()
        .expect("a node's key gets no tunnel");
    assert!(matches!(e, TunnelError::Refused { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("only operators and admins open tunnels"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_the_node_does_not_allow_is_reset() {
    let s = setup().await;
    // Something listens there on the node's side; the tunnel may not reach it.
    let other = service().await;
    let tunnel = s
        .admin
        .open_tunnel(s.node.endpoint_addr(), service_at(other), local().await)
        .await
        .expect("the tunnel itself opens");
    // The node resets it, and so the tunnel's end resets the client.
    gets_nothing_through(tunnel.local).await;
    tunnel.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_to_what_tunnel_allow_no_longer_lists_is_reset() {
    let s = setup().await;
    let tunnel = s
        .admin
        .open_tunnel(s.node.endpoint_addr(), service_at(s.port), local().await)
        .await
        .expect("the tunnel opens");
    // A download far longer than the test, flowing.
    let mut c = TcpStream::connect(tunnel.local).await.unwrap();
    c.write_all(b"GET 100000000000\n").await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    while got < 1 << 20 {
        let k = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("the download flows")
            .unwrap();
        assert!(k > 0, "the download ended early");
        got += k;
    }
    // The admin lists another service instead.
    let other = service().await;
    set(
        &s.admin,
        "tunnel.allow",
        json!([format!("127.0.0.1:{other}")]),
    );
    // The node ends the connection (its stack resets it) once the change
    // arrives: the download stops far short of its end.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection still runs after 20 s ({got} bytes)"
    );
    assert!(got < 100_000_000_000, "{got} bytes");
    // And a new connection to the old target gets nothing.
    gets_nothing_through(tunnel.local).await;
    tunnel.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_crosses_the_tunnel_as_a_reset_not_a_clean_end() {
    let s = setup().await;
    let tunnel = s
        .admin
        .open_tunnel(s.node.endpoint_addr(), service_at(s.port), local().await)
        .await
        .expect("the tunnel opens");
    // The service sends 64 KiB and resets the connection: through the
    // tunnel, the client sees the reset (a cut transfer must not look
    // complete), whatever part of the bytes arrived before it.
    let mut c = TcpStream::connect(tunnel.local).await.unwrap();
    c.write_all(b"RST ").await.unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut got))
        .await
        .expect("the connection ends");
    let e = r.expect_err("a reset, not a clean end");
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset,
        "{e} after {} bytes",
        got.len()
    );
    // The other way: a client that resets resets the target's connection;
    // one that closes closes it.
    for (reset, want) in [(true, "reset"), (false, "closed")] {
        let mut c = TcpStream::connect(tunnel.local).await.unwrap();
        c.write_all(b"HOLD").await.unwrap();
        // The service has the connection before it ends.
        let mut ok = [0u8; 3];
        c.read_exact(&mut ok).await.unwrap();
        if reset {
            c.set_zero_linger().unwrap();
            drop(c);
        } else {
            c.shutdown().await.unwrap();
        }
        assert!(
            wait_for(Duration::from_secs(10), || HELD.lock().unwrap().pop()
                == Some(want))
            .await,
            "the target's connection ends {want}"
        );
    }
    // The tunnel itself goes on.
    let mut c = TcpStream::connect(tunnel.local).await.unwrap();
    c.write_all(b"GET 1000\n").await.unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), 1000);
    tunnel.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_operator_loses_its_open_tunnel_and_gets_no_new_one() {
    let s = setup().await;
    let tunnel = s
        .operator
        .open_tunnel(s.node.endpoint_addr(), service_at(s.port), local().await)
        .await
        .expect("an operator's tunnel opens");
    let key = s.operator.key().clone();
    s.admin.with_replica(|r| {
        ops::apply(
            r,
            Op::MemberRevoke {
                member: key.clone(),
            },
            now_ms(),
        )
        .unwrap()
    });
    s.admin.changed();
    let why = tokio::time::timeout(Duration::from_secs(20), tunnel.ended())
        .await
        .expect("the node ends the tunnel once the revocation arrives");
    assert!(why.contains("revoked"), "{why}");
    let e = s
        .operator
        .open_tunnel(s.node.endpoint_addr(), service_at(s.port), local().await)
        .await
        .err()
        .expect("no new tunnel");
    assert!(e.to_string().contains("revoked"), "{e}");
}

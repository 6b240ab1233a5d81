//! Plain WireGuard on a UDP port of the node (`tunnel.wg_port`), for
//! standard clients (`fleetdeck wg-config`, a phone's WireGuard app,
//! `wg-quick`): one socket, its datagrams routed to one session per client.
//!
//! Every datagram first passes boringtun's rate limiter (mac1 checked; past
//! [`HANDSHAKES_PER_S`] handshakes a second, clients must prove their
//! address with a cookie). A handshake initiation names its sender's static
//! key (`parse_handshake_anon`); a session is made only for a key that one
//! live member record names, whose member may open a tunnel here (the same
//! rules as over iroh: `end::standing`), and only once a fresh WireGuard
//! session for that key accepted the initiation (so it was made by the
//! key's holder: a forged one makes nothing). Every other datagram names
//! its session by the index the node chose. A refused client gets no
//! answer, as WireGuard gives none, and a log line (a few a minute). A
//! session ends when its client is not heard for 3 minutes, or does not
//! finish its handshake within 15 s (`link::Link::tick`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::PublicKey;
use bytes::Bytes;
use fleetdeck_store::{MemberKey, NodeId};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::end::{self, count};
use super::link::{Carrier, Link};
use super::wg_keys;
use crate::engine::Inner;

/// Datagrams waiting for one session at most (more are dropped).
const SESSION_QUEUE: usize = 512;
/// Handshakes a second the node takes before it asks for cookies.
const HANDSHAKES_PER_S: u64 = 50;
/// Refusals logged a minute at most (the rest are counted).
const REFUSALS_LOGGED: u32 = 10;
/// The largest datagram a plain WireGuard client sends (an IP packet of
/// the tunnel's MTU and WireGuard's overhead); larger ones are dropped.
const MAX_DATAGRAM: usize = 1420 + 32 + 16;

/// The live sessions: index → the channel of its datagrams, and the
/// client's key → its index.
#[derive(Default)]
struct Table {
    by_index: HashMap<u32, mpsc::Sender<(Bytes, SocketAddr)>>,
    by_key: HashMap<[u8; 32], u32>,
}

/// Takes a session out of the table when it ends, however it ends.
struct Leave {
    table: Arc<Mutex<Table>>,
    index: u32,
    key: [u8; 32],
}

impl Drop for Leave {
    fn drop(&mut self) {
        let mut t = lock(&self.table);
        t.by_index.remove(&self.index);
        if t.by_key.get(&self.key) == Some(&self.index) {
            t.by_key.remove(&self.key);
        }
    }
}

/// Serves plain WireGuard on `socket` until the engine stops (its
/// sessions are aborted with it).
pub(crate) async fn serve(
    inner: Arc<Inner>,
    node: NodeId,
    open: Arc<Mutex<HashMap<MemberKey, usize>>>,
    socket: UdpSocket,
) {
    let socket = Arc::new(socket);
    let (secret, public) = wg_keys(inner.lock_replica().identity());
    let limiter = Arc::new(RateLimiter::new(&public, HANDSHAKES_PER_S));
    let table: Arc<Mutex<Table>> = Arc::default();
    let mut running = tokio::task::JoinSet::new();
    let mut logged = (Instant::now(), 0u32, 0u64);
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    let mut buf = vec![0u8; 65536];
    let mut cookie = [0u8; 256];
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("plain WireGuard socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = every_second.tick() => {
                limiter.reset_count();
                while running.try_join_next().is_some() {}
                continue;
            }
        };
        if n > MAX_DATAGRAM {
            continue;
        }
        let d = &buf[..n];
        let packet = match limiter.verify_packet(Some(from.ip()), d, &mut cookie) {
            Ok(p) => p,
            Err(TunnResult::WriteToNetwork(reply)) => {
                let _ = socket.try_send_to(reply, from);
                continue;
            }
            Err(_) => continue,
        };
        let index = match packet {
            Packet::HandshakeInit(init) => {
                let Ok(half) = parse_handshake_anon(&secret, &public, &init) else {
                    continue;
                };
                let key = half.peer_static_public;
                let live = lock(&table).by_key.get(&key).copied();
                if let Some(i) = live {
                    i
                } else {
                    let admitted = admit(&inner, &node, &open, &key);
                    let (member, standing, at, counted) = match admitted {
                        Ok(a) => a,
                        Err(why) => {
                            refused(&mut logged, from, &why);
                            continue;
                        }
                    };
                    let i = free_index(&lock(&table));
                    let mut tunn = Tunn::new(
                        secret.clone(),
                        PublicKey::from(key),
                        None,
                        None,
                        i,
                        Some(limiter.clone()),
                    );
                    // Made by the key's holder: WireGuard answers it.
                    let mut out = [0u8; 256];
                    match tunn.decapsulate(Some(from.ip()), d, &mut out) {
                        TunnResult::WriteToNetwork(reply) if reply.first() == Some(&2) => {
                            let _ = socket.try_send_to(reply, from);
                        }
                        _ => continue,
                    }
                    let (tx, rx) = mpsc::channel(SESSION_QUEUE);
                    {
                        let mut t = lock(&table);
                        t.by_index.insert(i, tx);
                        t.by_key.insert(key, i);
                    }
                    let leave = Leave {
                        table: table.clone(),
                        index: i,
                        key,
                    };
                    let link = Link::new(
                        tunn,
                        Carrier::Udp {
                            socket: socket.clone(),
                            peer: from,
                            rx,
                            heard: Instant::now(),
                        },
                    );
                    let (inner, node) = (inner.clone(), node.clone());
                    running.spawn(async move {
                        let _leave = leave;
                        let _counted = counted;
                        end::run(inner, node, member, standing, at, link).await;
                    });
                    // The initiation is answered already.
                    continue;
                }
            }
            Packet::HandshakeResponse(p) => p.receiver_idx >> 8,
            Packet::PacketCookieReply(p) => p.receiver_idx >> 8,
            Packet::PacketData(p) => p.receiver_idx >> 8,
        };
        let tx = lock(&table).by_index.get(&index).cloned();
        if let Some(tx) = tx {
            // A full queue drops the datagram, as a congested link would.
            let _ = tx.try_send((Bytes::copy_from_slice(d), from));
        }
    }
}

/// An index no live session has (24 bits: boringtun puts its own 8 below).
fn free_index(t: &Table) -> u32 {
    loop {
        let i = rand::random::<u32>() >> 8;
        if !t.by_index.contains_key(&i) {
            return i;
        }
    }
}

/// Logs a refusal, a few a minute at most: `logged` is when the minute
/// began, the lines logged in it and the refusals not logged.
fn refused(logged: &mut (Instant, u32, u64), from: SocketAddr, why: &str) {
    if logged.0.elapsed() > Duration::from_secs(60) {
        if logged.2 > 0 {
            tracing::warn!(
                "refused {} more WireGuard clients in the last minute",
                logged.2
            );
        }
        *logged = (Instant::now(), 0, 0);
    }
    if logged.1 < REFUSALS_LOGGED {
        logged.1 += 1;
        tracing::warn!(%from, "refused a WireGuard client: {why}");
    } else {
        logged.2 += 1;
    }
}

/// The member a WireGuard key belongs to, its standing, and its place
/// among the node's tunnels; or why not. A key that a revoked member's
/// record names, or that several members' records name, is refused.
fn admit(
    inner: &Inner,
    node: &NodeId,
    open: &Arc<Mutex<HashMap<MemberKey, usize>>>,
    key: &[u8; 32],
) -> Result<(MemberKey, end::Standing, end::Place, end::Counted), String> {
    let shown = fleetdeck_store::overlay::format_wg_key(key);
    let member = {
        let r = inner.lock_replica();
        let st = r.state();
        if st.revoked.values().any(|m| m.wg.as_ref() == Some(key)) {
            return Err(format!("WireGuard key {shown} is a revoked member's"));
        }
        let named: Vec<_> = st
            .members
            .values()
            .filter(|m| m.wg.as_ref() == Some(key))
            .collect();
        match named.as_slice() {
            [m] => m.key.clone(),
            [] => return Err(format!("WireGuard key {shown} is in no member record here")),
            several => {
                // One of them copied the other's key (which it cannot use:
                // it lacks the private half); an admin revokes the copier.
                let who: Vec<String> = several
                    .iter()
                    .take(4)
                    .map(|m| format!("{} ({})", m.name, m.key.short()))
                    .collect();
                return Err(format!(
                    "WireGuard key {shown} is named by several member records ({}): refused for all",
                    who.join(", ")
                ));
            }
        }
    };
    let standing = end::standing(inner, node, &member)?;
    let at = end::place(inner, &member)?;
    let counted = count(open, &member)?;
    Ok((member, standing, at, counted))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

//! Plain WireGuard on a UDP port of the node (`tunnel.wg_port`), for
//! standard clients (`fleetdeck wg-config`, a phone's WireGuard app,
//! `wg-quick`): one socket, its datagrams routed to one session per client.
//!
//! A handshake initiation names its sender's static key (boringtun's
//! `parse_handshake_anon` reads it with the node's key); a session is made
//! only for a key that a member record names and whose member may open a
//! tunnel here (the same rules as over iroh: `end::standing`). Every other
//! datagram names the session it is for by the index the node chose. A
//! refused client gets no answer, as WireGuard gives none, and a log line
//! (at most one a minute per key).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn};
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

type Sessions = Arc<Mutex<HashMap<u32, mpsc::Sender<(Bytes, SocketAddr)>>>>;

/// Serves plain WireGuard on `socket` until the engine stops.
pub(crate) async fn serve(
    inner: Arc<Inner>,
    node: NodeId,
    open: Arc<Mutex<HashMap<MemberKey, usize>>>,
    socket: UdpSocket,
) {
    let socket = Arc::new(socket);
    let (secret, public) = wg_keys(inner.lock_replica().identity());
    let sessions: Sessions = Arc::default();
    // A client's key → the index of its session.
    let by_key: Arc<Mutex<HashMap<[u8; 32], u32>>> = Arc::default();
    let mut refused_logged: HashMap<[u8; 32], Instant> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("plain WireGuard socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let d = &buf[..n];
        let index = match Tunn::parse_incoming_packet(d) {
            Ok(Packet::HandshakeInit(init)) => {
                let Ok(half) = parse_handshake_anon(&secret, &public, &init) else {
                    continue;
                };
                let key = half.peer_static_public;
                let known = lock(&by_key).get(&key).copied();
                match known {
                    Some(i) if lock(&sessions).contains_key(&i) => i,
                    _ => match admit(&inner, &node, &open, &key) {
                        Ok((member, standing, counted)) => {
                            let i = rand::random::<u32>() >> 8;
                            let (tx, rx) = mpsc::channel(SESSION_QUEUE);
                            lock(&sessions).insert(i, tx);
                            lock(&by_key).insert(key, i);
                            let tunn = Tunn::new(
                                secret.clone(),
                                PublicKey::from(key),
                                None,
                                None,
                                i,
                                None,
                            );
                            let link = Link::new(
                                tunn,
                                Carrier::Udp {
                                    socket: socket.clone(),
                                    peer: from,
                                    rx,
                                    last_from: None,
                                },
                            );
                            let (inner, node, sessions, by_key) = (
                                inner.clone(),
                                node.clone(),
                                sessions.clone(),
                                by_key.clone(),
                            );
                            tokio::spawn(async move {
                                let _counted = counted;
                                end::run(inner, node, member, standing, link).await;
                                lock(&sessions).remove(&i);
                                let mut k = lock(&by_key);
                                if k.get(&key) == Some(&i) {
                                    k.remove(&key);
                                }
                            });
                            i
                        }
                        Err(why) => {
                            let now = Instant::now();
                            let quiet = refused_logged
                                .get(&key)
                                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60));
                            if !quiet {
                                if refused_logged.len() > 1024 {
                                    refused_logged.clear();
                                }
                                refused_logged.insert(key, now);
                                tracing::warn!(%from, "refused a WireGuard client: {why}");
                            }
                            continue;
                        }
                    },
                }
            }
            Ok(Packet::HandshakeResponse(p)) => p.receiver_idx >> 8,
            Ok(Packet::PacketCookieReply(p)) => p.receiver_idx >> 8,
            Ok(Packet::PacketData(p)) => p.receiver_idx >> 8,
            Err(_) => continue,
        };
        let tx = lock(&sessions).get(&index).cloned();
        if let Some(tx) = tx {
            // A full queue drops the datagram, as a congested link would.
            let _ = tx.try_send((Bytes::copy_from_slice(d), from));
        }
    }
}

/// The member a WireGuard key belongs to, its standing, and its place
/// among the node's tunnels; or why not.
fn admit(
    inner: &Inner,
    node: &NodeId,
    open: &Arc<Mutex<HashMap<MemberKey, usize>>>,
    key: &[u8; 32],
) -> Result<(MemberKey, end::Standing, end::Counted), String> {
    let member = {
        let r = inner.lock_replica();
        let st = r.state();
        st.members
            .values()
            .chain(st.revoked.values())
            .find(|m| m.wg.as_ref() == Some(key))
            .map(|m| m.key.clone())
    };
    let Some(member) = member else {
        return Err(format!(
            "WireGuard key {} is in no member record here",
            fleetdeck_store::overlay::format_wg_key(key)
        ));
    };
    let standing = end::standing(inner, node, &member)?;
    let counted = count(open, &member)?;
    Ok((member, standing, counted))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

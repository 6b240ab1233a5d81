//! Tunnels to a node's services: WireGuard (boringtun) with a userspace
//! TCP/IP stack (smoltcp) at each end, no TUN device and no root. The
//! WireGuard datagrams ride QUIC datagrams of an iroh connection on their
//! own ALPN, so a tunnel works wherever sync does (direct, LAN, relay).
//!
//! Keys and addresses come from the fleet document: each member's WireGuard
//! public key is in its member record (written by the member, see
//! [`wg_public`]), and each member's overlay address is derived from its
//! member key and its enrolment (`fleetdeck_store::overlay::addresses`).
//! Inside a tunnel the node is at its overlay address (its own services
//! there) and the dialer at its own. The terminating end (a node daemon)
//! takes WireGuard only from operators and admins, by the key their record
//! names, from their overlay address, and connects only to what its
//! effective `tunnel.allow` lists.

mod drive;
mod end;
mod link;
mod stack;
mod udp;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};
use fleetdeck_store::MemberKey;
use fleetdeck_store::identity::Identity;
use iroh::EndpointAddr;
use iroh::endpoint::{Connection, ConnectionError};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::bind::member_key;
use crate::engine::Inner;
use drive::{Ended, Side};
use link::{Carrier, Link};
use stack::Stack;

pub(crate) use end::TunnelEnd;

/// The ALPN of fleetdeck tunnels over iroh.
pub const TUNNEL_ALPN: &[u8] = b"fleetdeck/tunnel/1";

/// How long the dialing end waits for the connection and the handshake.
const OPEN_WITHIN: Duration = Duration::from_secs(10);
/// Local connections waiting to enter a tunnel at most.
const ACCEPT_QUEUE: usize = 64;

/// This replica's WireGuard key pair (derived from its identity).
fn wg_keys(identity: &Identity) -> (StaticSecret, PublicKey) {
    let secret = StaticSecret::from(identity.wg_secret_bytes());
    let public = PublicKey::from(&secret);
    (secret, public)
}

/// The WireGuard private key of `identity`, as a WireGuard client takes it
/// (a device `fleetdeck wg-config` enrolls).
pub fn wg_private(identity: &Identity) -> [u8; 32] {
    wg_keys(identity).0.to_bytes()
}

/// The WireGuard public key a replica publishes in its member record.
pub fn wg_public(identity: &Identity) -> [u8; 32] {
    wg_keys(identity).1.to_bytes()
}

/// Why a tunnel could not open, or ended.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// What the node said when it refused (a role, a revoked key, …).
    #[error("{node} refused the tunnel: {why}")]
    Refused { node: String, why: String },
    #[error("cannot reach {node}: {detail}")]
    Connect { node: String, detail: String },
    /// Something in this replica's own document is missing.
    #[error("{0}")]
    Invalid(String),
}

/// What the node's reason for closing the connection says, if it said.
fn close_reason(e: &ConnectionError) -> Option<String> {
    match e {
        ConnectionError::ApplicationClosed(c) => {
            let text = String::from_utf8_lossy(&c.reason);
            // A node's reason is its own text: shown escaped, bounded.
            let text: String = text
                .chars()
                .take(300)
                .flat_map(char::escape_debug)
                .collect();
            (!text.is_empty()).then_some(text)
        }
        _ => None,
    }
}

/// An open tunnel: connections to its local address go to the target.
pub struct Tunnel {
    pub local: SocketAddr,
    ended: tokio::task::JoinHandle<String>,
    stop: watch::Sender<bool>,
}

impl Tunnel {
    /// Whether the tunnel is still open.
    pub fn is_open(&self) -> bool {
        !self.ended.is_finished()
    }

    /// Waits until the tunnel ends; returns why.
    pub async fn ended(self) -> String {
        let _stop = self.stop;
        self.ended
            .await
            .unwrap_or_else(|e| format!("the tunnel's task failed: {e}"))
    }

    /// Closes the listener and every connection.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let _ = self.ended.await;
    }
}

/// The dialing end: takes packets only from the node and the target.
struct DialSide {
    node: Ipv4Addr,
    target: Ipv4Addr,
}

impl Side for DialSide {
    fn allows_source(&mut self, src: Ipv4Addr) -> bool {
        src == self.node || src == self.target
    }
}

/// Where a target is dialed inside the tunnel: the node's own services
/// (`127.0.0.1:PORT` in its `tunnel.allow`) at the node's overlay address
/// `node`, a LAN device at its own address.
pub fn inside_target(target: SocketAddrV4, node: Ipv4Addr) -> SocketAddrV4 {
    if target.ip().is_loopback() {
        SocketAddrV4::new(node, target.port())
    } else {
        target
    }
}

pub(crate) async fn open(
    inner: Arc<Inner>,
    node: EndpointAddr,
    target: SocketAddrV4,
    listener: TcpListener,
) -> Result<Tunnel, TunnelError> {
    let node_key = member_key(&node.id);
    let label = node_key.short().to_string();
    let (secret, node_wg, place) = {
        let r = inner.lock_replica();
        let st = r.state();
        let name = |k: &MemberKey| st.member_name(k).unwrap_or(k.short()).to_string();
        if st.revoked.contains_key(&node_key) {
            return Err(TunnelError::Invalid(format!(
                "{}'s key was revoked by an admin of this fleet",
                name(&node_key)
            )));
        }
        let m = st.members.get(&node_key).ok_or_else(|| {
            TunnelError::Invalid(format!("{} is not a member of this fleet", name(&node_key)))
        })?;
        let wg = m.wg.ok_or_else(|| {
            TunnelError::Invalid(format!(
                "{} has published no WireGuard key yet: it needs a fleetdeck with tunnels, started once since (its record then reaches this replica)",
                name(&node_key)
            ))
        })?;
        let all = fleetdeck_store::overlay::addresses(st);
        let (Some(node_ip), Some(my_ip)) = (all.get(&node_key), all.get(r.key())) else {
            return Err(TunnelError::Invalid(
                "this replica's own member record is missing: it is not a member of its fleet"
                    .into(),
            ));
        };
        (
            wg_keys(r.identity()).0,
            PublicKey::from(wg),
            (*node_ip, *my_ip),
        )
    };
    let conn = tokio::time::timeout(OPEN_WITHIN, inner.endpoint.connect(node, TUNNEL_ALPN))
        .await
        .map_err(|_| TunnelError::Connect {
            node: label.clone(),
            detail: "timed out".into(),
        })?
        .map_err(|e| TunnelError::Connect {
            node: label.clone(),
            detail: e.to_string(),
        })?;
    let tunn = Tunn::new(
        secret,
        node_wg,
        None,
        None,
        rand::random::<u32>() >> 8,
        None,
    );
    let mut link = Link::new(tunn, Carrier::Quic(conn.clone()));
    handshake(&mut link, &conn, &label).await?;
    let (node_ip, my_ip) = place;
    let dst = inside_target(target, node_ip);
    let local = listener.local_addr().map_err(|e| TunnelError::Connect {
        node: label.clone(),
        detail: e.to_string(),
    })?;
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                a = listener.accept() => match a {
                    Ok((stream, _)) => {
                        if tx.send(stream).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors, say: not in a tight loop.
                        tracing::warn!("tunnel listener: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = stopped.changed() => break,
            }
        }
    });
    let stack = Stack::new(my_ip, link.mtu(), false);
    let ended = tokio::spawn(async move {
        let mut side = DialSide {
            node: node_ip,
            target: *dst.ip(),
        };
        let why = drive::drive(link, stack, &mut side, Some((rx, dst))).await;
        let text = match why {
            Ended::Link(_) => match conn.close_reason().as_ref().and_then(close_reason) {
                Some(r) => format!("{label} closed the tunnel: {r}"),
                None => format!("the connection to {label} was lost"),
            },
            Ended::Refused(why) => why,
            Ended::Done => "closed".into(),
        };
        conn.close(0u32.into(), b"closed");
        text
    });
    Ok(Tunnel { local, ended, stop })
}

/// Plain WireGuard for standard clients on the UDP port the node's
/// `tunnel.wg_port` names, read when the engine starts: the task serving
/// it, or none (unset, or the port cannot be bound: logged).
pub(crate) async fn plain_wireguard(
    inner: &Arc<Inner>,
    node: fleetdeck_store::NodeId,
    open: Arc<std::sync::Mutex<std::collections::HashMap<MemberKey, usize>>>,
) -> Option<tokio::task::JoinHandle<()>> {
    let effective = inner.lock_replica().effective_node(&node).ok()?;
    let port = match fleetdeck_store::overlay::wg_port(&effective) {
        Ok(p) => p?,
        Err(why) => {
            tracing::warn!("no plain WireGuard: this node's {why}");
            return None;
        }
    };
    let at = SocketAddr::from(([0, 0, 0, 0], port));
    match tokio::net::UdpSocket::bind(at).await {
        Ok(socket) => {
            tracing::info!(%at, "plain WireGuard for standard clients (tunnel.wg_port)");
            Some(tokio::spawn(udp::serve(inner.clone(), node, open, socket)))
        }
        Err(e) => {
            tracing::warn!(%at, "cannot take plain WireGuard (tunnel.wg_port): {e}");
            None
        }
    }
}

/// Sends the handshake and waits for the node's answer (or its refusal).
async fn handshake(link: &mut Link, conn: &Connection, label: &str) -> Result<(), TunnelError> {
    let refused = |e: &ConnectionError| match close_reason(e) {
        Some(why) => TunnelError::Refused {
            node: label.to_string(),
            why,
        },
        None => TunnelError::Connect {
            node: label.to_string(),
            detail: e.to_string(),
        },
    };
    let deadline = tokio::time::Instant::now() + OPEN_WITHIN;
    link.initiate(false).map_err(|e| TunnelError::Connect {
        node: label.to_string(),
        detail: e.to_string(),
    })?;
    let mut retry = tokio::time::interval(Duration::from_secs(2));
    retry.tick().await;
    while !link.established() {
        tokio::select! {
            d = conn.read_datagram() => {
                let d = d.map_err(|e| refused(&e))?;
                link.receive(&d, None).map_err(|e| TunnelError::Connect {
                    node: label.to_string(),
                    detail: e.to_string(),
                })?;
            }
            e = conn.closed() => return Err(refused(&e)),
            _ = retry.tick() => {
                // A lost handshake datagram: WireGuard retries after 5 s; a
                // tunnel being opened asks again sooner.
                let _ = link.initiate(true);
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(TunnelError::Connect {
                    node: label.to_string(),
                    detail: "no WireGuard handshake within 10 s (if the node holds an older WireGuard key of this replica, sync with it first: `fleetdeck sync --once`)".into(),
                });
            }
        }
    }
    Ok(())
}

//! The sync engine of one replica: an iroh endpoint that accepts sessions
//! from members (and joiners with a valid invite), dials the peers it should
//! keep sessions with, pushes local changes, and picks up writes that other
//! processes make to the same data dir.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fleetdeck_store::{MemberKey, Replica, Role, SiteId, now_ms};
use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::{
    Connection, IdleTimeout, NetReportConfig, PortmapperConfig, QuicTransportConfig, presets,
};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::tls::CaTlsConfig;
use iroh::{Endpoint, EndpointAddr, EndpointId, RelayMode, RelayUrl, SecretKey};
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use rand::RngExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::faults::Faults;
use crate::session::{self, Mode, Session, SessionError};
use crate::wire::{ALPN, Hello, Msg, PROTOCOL_VERSION};

#[derive(Clone)]
pub struct EngineConfig {
    /// Where the endpoint binds (`0.0.0.0:7447` on a device, `127.0.0.1:0`
    /// in tests).
    pub listen: SocketAddr,
    pub faults: Faults,
    /// How often writes by other processes on the data dir are looked for.
    pub poll: Duration,
    /// How often a session re-exchanges digests even when nothing changed.
    pub anti_entropy: Duration,
    /// How often the dialer looks at which peers to (re)connect to.
    pub dial_every: Duration,
    /// Random peers kept while no hub or laptop (admin/operator replica) is
    /// connected: the epidemic fallback.
    pub random_peers: usize,
    /// Dial members on their own (off for `sync --once`).
    pub dial: bool,
    /// Write this replica's listening addresses into its member record.
    pub publish_addrs: bool,
    /// Where `peers` status is written for other processes to read.
    pub status_file: Option<PathBuf>,
    /// Find members on the local network by mDNS (and be found).
    pub mdns: bool,
    /// What the relay's TLS certificate is checked against when the fleet
    /// sets `sync.relay_url`: the web's root certificates (built in) unless
    /// given (a private CA; tests).
    pub relay_tls: Option<CaTlsConfig>,
}

impl EngineConfig {
    pub fn new(listen: SocketAddr) -> Self {
        EngineConfig {
            listen,
            faults: Faults::default(),
            poll: Duration::from_millis(250),
            anti_entropy: Duration::from_secs(60),
            dial_every: Duration::from_secs(1),
            random_peers: 2,
            dial: true,
            publish_addrs: true,
            status_file: None,
            mdns: false,
            relay_tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Store(#[from] fleetdeck_store::StoreError),
    #[error("could not bind {addr}: {detail}")]
    Bind { addr: SocketAddr, detail: String },
    #[error("could not reach {peer}: {detail}")]
    Connect { peer: String, detail: String },
    #[error("session with {peer}: {source}")]
    Session {
        peer: String,
        source: Box<SessionError>,
    },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Default)]
pub struct Stats {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// What the links of sessions that have ended carried.
    wire_ended: Mutex<Wire>,
}

/// What the links of sessions carried, as QUIC counts it: UDP bytes with
/// 28 B of IPv4/UDP header per datagram (what the link carries), and the
/// QUIC frames that fleetdeck does not write itself but pays for: keep-alive
/// pings and iroh's path probing (PATH_CHALLENGE, padded to 1200 B, and
/// REACH_OUT, iroh's hole-punching).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wire {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_datagrams: u64,
    pub rx_datagrams: u64,
    pub pings_sent: u64,
    pub path_challenges_sent: u64,
    pub reach_outs_sent: u64,
}

impl std::ops::AddAssign for Wire {
    fn add_assign(&mut self, o: Wire) {
        self.tx_bytes += o.tx_bytes;
        self.rx_bytes += o.rx_bytes;
        self.tx_datagrams += o.tx_datagrams;
        self.rx_datagrams += o.rx_datagrams;
        self.pings_sent += o.pings_sent;
        self.path_challenges_sent += o.path_challenges_sent;
        self.reach_outs_sent += o.reach_outs_sent;
    }
}

/// What one connection's link has carried so far ([`Wire`]).
fn wire(conn: &Connection) -> Wire {
    let s = conn.stats();
    Wire {
        tx_bytes: s.udp_tx.bytes + 28 * s.udp_tx.datagrams,
        rx_bytes: s.udp_rx.bytes + 28 * s.udp_rx.datagrams,
        tx_datagrams: s.udp_tx.datagrams,
        rx_datagrams: s.udp_rx.datagrams,
        pings_sent: s.frame_tx.ping,
        path_challenges_sent: s.frame_tx.path_challenge,
        reach_outs_sent: s.frame_tx.reach_out,
    }
}

impl Stats {
    pub(crate) fn add_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }
}

/// What `peers` shows for one peer.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct PeerStatus {
    pub key: String,
    pub name: String,
    pub connected: bool,
    pub addr: Option<String>,
    pub last_sync_ms: Option<i64>,
    /// Document changes this replica has that the peer is not known to have.
    pub lacks: Option<usize>,
    pub last_error: Option<String>,
}

/// A connection past the hello in both directions.
struct Established {
    conn: Connection,
    send: iroh::endpoint::SendStream,
    recv: iroh::endpoint::RecvStream,
    remote: MemberKey,
    remote_name: String,
    /// Who dialed: decides which of two crossing sessions survives.
    dialer: MemberKey,
}

struct Live {
    conn: Connection,
    dialer: MemberKey,
}

#[derive(Default)]
struct PeerBook {
    /// The peer's document heads as of the last sync message.
    their_heads: Option<Vec<automerge::ChangeHash>>,
    failures: u32,
    next_try: Option<Instant>,
    last_sync_ms: Option<i64>,
    last_error: Option<String>,
    name: String,
}

pub(crate) struct Inner {
    replica: Mutex<Replica>,
    pub(crate) key: MemberKey,
    pub(crate) name: String,
    pub(crate) fleet_id: String,
    pub(crate) endpoint: Endpoint,
    lookup: MemoryLookup,
    /// Members found on the LAN by mDNS, with the addresses they advertise.
    discovered: Mutex<HashMap<MemberKey, Vec<SocketAddr>>>,
    /// When a random session was last swapped for another (see `targets`).
    last_rotation: Mutex<Instant>,
    /// The fleet's relay (`sync.relay_url` when sync started): every
    /// member is dialed through it too, addresses known or not.
    relay: Option<RelayUrl>,
    pub(crate) changed: watch::Sender<u64>,
    live: Mutex<HashMap<MemberKey, Live>>,
    book: Mutex<HashMap<MemberKey, PeerBook>>,
    pub(crate) faults: Faults,
    pub(crate) cfg: EngineConfig,
    pub(crate) stats: Stats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn endpoint_id(k: &MemberKey) -> Option<EndpointId> {
    k.as_str().parse().ok()
}

fn member_key(id: &EndpointId) -> MemberKey {
    MemberKey::from_bytes(id.as_bytes())
}

impl Inner {
    pub(crate) fn lock_replica(&self) -> MutexGuard<'_, Replica> {
        lock(&self.replica)
    }

    pub(crate) fn notify_changed(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn peer_synced(
        &self,
        peer: &MemberKey,
        their_heads: Option<Vec<automerge::ChangeHash>>,
    ) {
        let mut book = lock(&self.book);
        let b = book.entry(peer.clone()).or_default();
        b.last_sync_ms = Some(now_ms());
        if their_heads.is_some() {
            b.their_heads = their_heads;
        }
    }

    /// Keeps one session per peer: when both sides dial at once, the
    /// session dialed by the smaller key survives, on both sides alike.
    fn register(&self, peer: &MemberKey, conn: &Connection, dialer: &MemberKey) -> bool {
        let mut live = lock(&self.live);
        if let Some(old) = live.get(peer)
            && old.conn.close_reason().is_none()
        {
            let keep_old = old.dialer <= *dialer;
            if keep_old {
                return false;
            }
            old.conn.close(1u32.into(), b"superseded");
        }
        let replaced = live.insert(
            peer.clone(),
            Live {
                conn: conn.clone(),
                dialer: dialer.clone(),
            },
        );
        if let Some(old) = replaced {
            // Its own unregister no longer finds it: count its link here.
            *lock(&self.stats.wire_ended) += wire(&old.conn);
        }
        true
    }

    fn unregister(&self, peer: &MemberKey, conn: &Connection) {
        let mut live = lock(&self.live);
        if live
            .get(peer)
            .is_some_and(|l| l.conn.stable_id() == conn.stable_id())
        {
            live.remove(peer);
            *lock(&self.stats.wire_ended) += wire(conn);
        }
    }

    fn record_end(&self, peer: &MemberKey, result: &Result<(), SessionError>) {
        let mut book = lock(&self.book);
        let b = book.entry(peer.clone()).or_default();
        match result {
            Ok(()) => b.last_error = None,
            Err(e) => b.last_error = Some(e.to_string()),
        }
    }

    /// Runs an established session to its end, keeping the peer table.
    async fn drive(self: &Arc<Self>, est: Established, mode: Mode) -> Result<(), SessionError> {
        let Established {
            conn,
            send,
            recv,
            remote,
            remote_name,
            dialer,
        } = est;
        if !self.register(&remote, &conn, &dialer) {
            conn.close(409u32.into(), b"duplicate session");
            return Err(SessionError::Duplicate);
        }
        lock(&self.book).entry(remote.clone()).or_default().name = remote_name.clone();
        tracing::info!(peer = %remote.short(), name = %remote_name, "session up");
        let s = Session::new(
            self.clone(),
            remote.clone(),
            remote_name,
            conn.clone(),
            send,
        );
        let name = s.remote_name().to_string();
        let result = s.run(recv, mode).await;
        self.unregister(&remote, &conn);
        self.record_end(&remote, &result);
        match &result {
            Ok(()) => tracing::info!(peer = %remote.short(), %name, "session ended"),
            Err(e) => tracing::info!(peer = %remote.short(), %name, "session ended: {e}"),
        }
        result
    }

    /// The acceptor's side of the hello: members are let in; a replica that
    /// is not a member only with an invite this replica issued.
    async fn accept_session(self: Arc<Self>, conn: Connection) -> Result<(), SessionError> {
        let remote = member_key(&conn.remote_id());
        if self.faults.blocked(&self.key, &remote) {
            conn.close(503u32.into(), b"partitioned");
            return Err(SessionError::Partitioned);
        }
        let (mut send, mut recv) = conn
            .accept_bi()
            .await
            .map_err(|e| SessionError::Protocol(format!("no stream: {e}")))?;
        let hello = session::read_hello(&mut recv).await?;
        if let Err(SessionError::Refused(why)) = session::check_hello(&hello, &self.fleet_id) {
            tracing::warn!(peer = %remote, "refused a session: {why}");
            return Err(refuse(&mut send, &conn, why).await);
        }
        let is_member = self.lock_replica().state().members.contains_key(&remote);
        if !is_member {
            let Some(secret) = hello.token.as_deref() else {
                tracing::warn!(peer = %remote, name = %hello.name, "refused an unknown key (not a member, no invite)");
                return Err(refuse(
                    &mut send,
                    &conn,
                    format!("{remote} is not a member of this fleet"),
                )
                .await);
            };
            let redeemed = self
                .lock_replica()
                .redeem_invite(secret, &remote, &hello.name);
            match redeemed {
                Ok(role) => {
                    tracing::info!(peer = %remote, name = %hello.name, %role, "enrolled a new member");
                    self.notify_changed();
                }
                Err(e) => {
                    tracing::warn!(peer = %remote, name = %hello.name, "refused an invite: {e}");
                    return Err(refuse(&mut send, &conn, e.to_string()).await);
                }
            }
        }
        crate::wire::write_msg(&mut send, &Msg::Hello(self.hello(None)))
            .await
            .map_err(SessionError::from)?;
        let dialer = remote.clone();
        let est = Established {
            conn,
            send,
            recv,
            remote,
            remote_name: hello.name,
            dialer,
        };
        self.drive(est, Mode::Keep).await
    }

    pub(crate) fn hello(&self, token: Option<String>) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            fleet_id: self.fleet_id.clone(),
            name: self.name.clone(),
            token,
        }
    }

    /// Dials a peer and runs the session (in the caller's task).
    async fn dial(self: &Arc<Self>, addr: EndpointAddr, mode: Mode) -> Result<(), SyncError> {
        let remote = member_key(&addr.id);
        let peer = remote.short().to_string();
        if self.faults.blocked(&self.key, &remote) {
            return Err(SyncError::Connect {
                peer,
                detail: "partitioned".into(),
            });
        }
        let conn = tokio::time::timeout(Duration::from_secs(10), self.endpoint.connect(addr, ALPN))
            .await
            .map_err(|_| SyncError::Connect {
                peer: peer.clone(),
                detail: "timed out".into(),
            })?
            .map_err(|e| SyncError::Connect {
                peer: peer.clone(),
                detail: e.to_string(),
            })?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| SyncError::Connect {
            peer: peer.clone(),
            detail: e.to_string(),
        })?;
        let session_err = |source| SyncError::Session {
            peer: peer.clone(),
            source: Box::new(source),
        };
        crate::wire::write_msg(&mut send, &Msg::Hello(self.hello(None)))
            .await
            .map_err(|e| session_err(e.into()))?;
        let hello = session::read_hello(&mut recv).await.map_err(session_err)?;
        session::check_hello(&hello, &self.fleet_id).map_err(session_err)?;
        let est = Established {
            conn,
            send,
            recv,
            remote,
            remote_name: hello.name,
            dialer: self.key.clone(),
        };
        self.drive(est, mode).await.map_err(session_err)
    }

    /// Members running nodes of this replica's own site(s): half the
    /// fallback sessions go to them, so a site cut off from the hubs keeps
    /// its nodes in step even where no LAN discovery runs.
    fn site_peers(&self) -> HashSet<MemberKey> {
        let r = self.lock_replica();
        let st = r.state();
        let sites: HashSet<&SiteId> = st
            .nodes_run_by(&self.key)
            .iter()
            .filter_map(|n| st.nodes.get(n))
            .map(|n| &n.site)
            .collect();
        if sites.is_empty() {
            return HashSet::new();
        }
        st.nodes
            .values()
            .filter(|n| sites.contains(&n.site))
            .filter_map(|n| n.key.clone())
            .filter(|k| *k != self.key)
            .collect()
    }

    /// Peers this replica should keep sessions with: every admin/operator
    /// replica that publishes an address (hubs and laptops), members found on
    /// this LAN (a site's own nodes), and, only while no such hub or laptop
    /// is connected, a few others: half from its own site, half random.
    ///
    /// Random sessions are the fallback that keeps changes spreading
    /// epidemically when the hub is down or a site is cut off. While a hub or
    /// laptop is connected, changes and heartbeats go through it, and an
    /// idle session is not free: iroh pings each path after 5 s of quiet
    /// (BENCHMARKS.md, P7). So random sessions this
    /// replica dialed are closed once one is connected.
    fn targets(&self) -> Vec<(MemberKey, Vec<SocketAddr>)> {
        let r = self.lock_replica();
        let st = r.state();
        let discovered = lock(&self.discovered);
        let mut all: Vec<(MemberKey, Vec<SocketAddr>, bool)> = Vec::new();
        let mut people = Vec::new();
        for m in st.members.values().filter(|m| m.key != self.key) {
            if m.role.manages_fleet() {
                people.push(m.key.clone());
            }
            let on_lan = discovered.get(&m.key);
            let mut addrs: Vec<SocketAddr> =
                m.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            addrs.extend(on_lan.into_iter().flatten());
            addrs.sort();
            addrs.dedup();
            let preferred = on_lan.is_some() || m.role.manages_fleet();
            if !addrs.is_empty() || self.relay.is_some() {
                all.push((m.key.clone(), addrs, preferred));
            }
        }
        drop(discovered);
        drop(r);
        let mut out = Vec::new();
        let mut others = Vec::new();
        for (k, a, preferred) in all {
            if preferred {
                out.push((k, a))
            } else {
                others.push((k, a))
            }
        }
        {
            let live = lock(&self.live);
            let is_live =
                |k: &MemberKey| live.get(k).is_some_and(|l| l.conn.close_reason().is_none());
            if people.iter().any(is_live) {
                for (k, _) in &others {
                    if let Some(l) = live.get(k)
                        && l.dialer == self.key
                        && l.conn.close_reason().is_none()
                    {
                        l.conn.close(0u32.into(), b"a hub is connected");
                    }
                }
                return out;
            }
        }
        // No hub or laptop: the fallback. Only now is it worth walking the
        // nodes for this replica's site peers.
        let site_peers = self.site_peers();
        let live = lock(&self.live);
        let is_live = |k: &MemberKey| live.get(k).is_some_and(|l| l.conn.close_reason().is_none());
        // Top up to `random_peers` live sessions with the others, rather
        // than sampling afresh every round: that grew a full mesh (4,911 of
        // 4,950 sessions among 100 replicas in two minutes, BENCHMARKS.md).
        // Only sessions this replica dialed count: each replica dialing its
        // own few makes a random k-out graph, connected with high
        // probability; counting incoming ones too let popular replicas stop
        // dialing and groups form.
        let dialed_by_me = |k: &MemberKey| {
            live.get(k)
                .is_some_and(|l| l.dialer == self.key && l.conn.close_reason().is_none())
        };
        let mut have = others.iter().filter(|(k, _)| dialed_by_me(k)).count();
        // But a frozen random graph may fall apart into groups that never
        // hear from each other (nodes cut off from every hub, each content
        // with two sessions inside its own group). So every ROTATE one
        // random session this replica dialed makes way for a new draw.
        let mut rotated = lock(&self.last_rotation);
        if have >= self.cfg.random_peers && rotated.elapsed() >= ROTATE {
            let mine: Vec<&Live> = others
                .iter()
                .filter_map(|(k, _)| live.get(k))
                .filter(|l| l.dialer == self.key && l.conn.close_reason().is_none())
                .collect();
            if !mine.is_empty() {
                let l = mine[rand::rng().random_range(0..mine.len())];
                l.conn.close(0u32.into(), b"rotating random peers");
                have -= 1;
            }
            *rotated = Instant::now();
        }
        drop(rotated);
        let site_have = others
            .iter()
            .filter(|(k, _)| site_peers.contains(k) && dialed_by_me(k))
            .count();
        others.retain(|(k, _)| !is_live(k));
        drop(live);
        let want = self.cfg.random_peers.saturating_sub(have);
        let site_quota = self.cfg.random_peers.div_ceil(2).saturating_sub(site_have);
        out.extend(draw_fallback(others, want, &site_peers, site_quota));
        out
    }
}

/// Draws up to `want` of `others` (members with no live session), the
/// first `site_quota` of them from `site_peers` where there are any, the
/// rest at random.
fn draw_fallback<T>(
    mut others: Vec<(MemberKey, T)>,
    want: usize,
    site_peers: &HashSet<MemberKey>,
    site_quota: usize,
) -> Vec<(MemberKey, T)> {
    let mut rng = rand::rng();
    let mut out = Vec::new();
    for n in 0..want.min(others.len()) {
        let same_site: Vec<usize> = (0..others.len())
            .filter(|&i| site_peers.contains(&others[i].0))
            .collect();
        let i = if n < site_quota && !same_site.is_empty() {
            same_site[rng.random_range(0..same_site.len())]
        } else {
            rng.random_range(0..others.len())
        };
        out.push(others.swap_remove(i));
    }
    out
}

/// The fleet's relay, from `sync.relay_url` in the fleet defaults (the
/// schema checks it is a URL; one iroh cannot use is logged and ignored).
fn relay_of(st: &fleetdeck_store::document::FleetState) -> Option<RelayUrl> {
    let path = fleetdeck_store::config::ConfigPath::parse("sync.relay_url").ok()?;
    let text = st.fleet.get(&path)?.as_str()?.to_string();
    match text.parse::<RelayUrl>() {
        Ok(url) => Some(url),
        Err(e) => {
            tracing::warn!("sync.relay_url '{text}' is not usable, syncing without a relay: {e}");
            None
        }
    }
}

/// How often a replica with no hub or laptop connected swaps one of its
/// random sessions for a new one.
const ROTATE: Duration = Duration::from_secs(20);

/// Tells the peer why, then closes.
async fn refuse(
    send: &mut iroh::endpoint::SendStream,
    conn: &Connection,
    why: String,
) -> SessionError {
    let _ = crate::wire::write_msg(send, &Msg::Refuse(why.clone())).await;
    let _ = send.finish();
    // Give the refusal time to arrive before the connection closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.close(403u32.into(), b"refused");
    SessionError::Refused(why)
}

struct Acceptor(Arc<Inner>);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

impl ProtocolHandler for Acceptor {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        match self.0.clone().accept_session(conn).await {
            Ok(()) | Err(SessionError::Duplicate) => Ok(()),
            Err(e) => Err(AcceptError::from_err(std::io::Error::other(e.to_string()))),
        }
    }
}

/// Addresses other machines can dial: the interface addresses iroh
/// advertises, else the bound sockets; never an unspecified IP.
pub(crate) fn reachable_addrs(endpoint: &Endpoint) -> Vec<SocketAddr> {
    let advertised: Vec<SocketAddr> = endpoint.addr().ip_addrs().copied().collect();
    let mut out: Vec<SocketAddr> = if advertised.is_empty() {
        endpoint.bound_sockets()
    } else {
        advertised
    };
    out.retain(|a| !a.ip().is_unspecified());
    out.sort();
    out.dedup();
    out
}

/// `ENDPOINT_ID@IP:PORT[,IP:PORT…]`: how `serve` prints its address and
/// `sync --peer` takes one.
pub fn format_endpoint_addr(a: &EndpointAddr) -> String {
    let addrs: Vec<String> = a.ip_addrs().map(|s| s.to_string()).collect();
    format!("{}@{}", a.id, addrs.join(","))
}

pub fn parse_endpoint_addr(s: &str) -> Result<EndpointAddr, SyncError> {
    let bad = |why: &str| {
        SyncError::Invalid(format!(
            "peer address '{s}' is not valid: {why} (expected ENDPOINT_ID@IP:PORT, as `fleetdeck serve` prints)"
        ))
    };
    let (id, addrs) = s.split_once('@').ok_or_else(|| bad("no '@'"))?;
    let id: EndpointId = id
        .parse()
        .map_err(|_| bad("the endpoint id is not a 64-hex-digit key"))?;
    let mut a = EndpointAddr::new(id);
    for part in addrs.split(',') {
        let sock: SocketAddr = part.parse().map_err(|_| bad("an address is not IP:PORT"))?;
        a = a.with_ip_addr(sock);
    }
    Ok(a)
}

/// Builds an endpoint for LAN and loopback use: no relays, no discovery
/// services, no port mapping, nothing that talks to the internet.
pub async fn bind_endpoint(
    secret: [u8; 32],
    listen: SocketAddr,
    lookup: &MemoryLookup,
) -> Result<Endpoint, SyncError> {
    bind_endpoint_with(secret, listen, lookup, None, None).await
}

/// [`bind_endpoint`], also reaching peers through `relay` when the fleet
/// has one (`sync.relay_url`): the only server it then talks to.
pub async fn bind_endpoint_with(
    secret: [u8; 32],
    listen: SocketAddr,
    lookup: &MemoryLookup,
    relay: Option<&RelayUrl>,
    relay_tls: Option<CaTlsConfig>,
) -> Result<Endpoint, SyncError> {
    // A session that carries nothing for 25 s sends a ping (what keeps a
    // NAT mapping open, as WireGuard's persistent keep-alive does); one that
    // hears nothing for 60 s is over and its peer is dialed again. Sessions
    // carrying heartbeats (every 10 s) never need the ping.
    let transport = QuicTransportConfig::builder()
        .max_idle_timeout(IdleTimeout::try_from(Duration::from_secs(60)).ok())
        .keep_alive_interval(Duration::from_secs(25))
        .build();
    let bind_err = |detail: String| SyncError::Bind {
        addr: listen,
        detail,
    };
    let relay_mode = match relay {
        Some(url) => RelayMode::Custom(url.clone().into()),
        None => RelayMode::Disabled,
    };
    let mut builder = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&secret))
        .alpns(vec![ALPN.to_vec()])
        .relay_mode(relay_mode);
    if let Some(tls) = relay_tls {
        builder = builder.ca_tls_config(tls);
    }
    builder
        .clear_ip_transports()
        .bind_addr(listen)
        .map_err(|e| bind_err(e.to_string()))?
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(NetReportConfig::minimal())
        .transport_config(transport)
        .address_lookup(lookup.clone())
        .bind()
        .await
        .map_err(|e| bind_err(e.to_string()))
}

/// A running sync engine. Dropping it stops everything.
pub struct Engine {
    inner: Arc<Inner>,
    router: Router,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    pub async fn start(replica: Replica, cfg: EngineConfig) -> Result<Engine, SyncError> {
        let key = replica.key().clone();
        let st = replica.state().clone();
        let name = st.member_name(&key).unwrap_or(key.short()).to_string();
        let lookup = MemoryLookup::new();
        let relay = relay_of(&st);
        let endpoint = bind_endpoint_with(
            replica.identity().secret_bytes(),
            cfg.listen,
            &lookup,
            relay.as_ref(),
            cfg.relay_tls.clone(),
        )
        .await?;
        let (changed, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            replica: Mutex::new(replica),
            key,
            name,
            fleet_id: st.fleet_id.clone(),
            endpoint: endpoint.clone(),
            lookup,
            discovered: Mutex::new(HashMap::new()),
            last_rotation: Mutex::new(Instant::now()),
            relay,
            changed,
            live: Mutex::new(HashMap::new()),
            book: Mutex::new(HashMap::new()),
            faults: cfg.faults.clone(),
            cfg: cfg.clone(),
            stats: Stats::default(),
        });
        if cfg.publish_addrs {
            let addrs: Vec<String> = reachable_addrs(&endpoint)
                .iter()
                .map(|a| a.to_string())
                .collect();
            let mut r = inner.lock_replica();
            let me = inner.key.clone();
            let current = r.state().members.get(&me).map(|m| m.addrs.clone());
            if current.is_some() && current.as_ref() != Some(&addrs) && !r.is_read_only() {
                r.change(
                    &format!("{} listens on {}", inner.name, addrs.join(", ")),
                    |doc, _| doc.set_member_addrs(&me, &addrs),
                )?;
            }
        }
        let mut mdns_task = None;
        if cfg.mdns {
            match MdnsAddressLookup::builder()
                .service_name(MDNS_SERVICE)
                .build(endpoint.id())
            {
                Ok(mdns) => {
                    if let Ok(services) = endpoint.address_lookup() {
                        services.add(mdns.clone());
                    }
                    mdns_task = Some(tokio::spawn(mdns_loop(inner.clone(), mdns)));
                }
                // No multicast here (a container, a namespace): sync goes on
                // with the addresses the fleet document knows.
                Err(e) => tracing::warn!("LAN discovery (mDNS) is off: {e}"),
            }
        }
        let router = Router::builder(endpoint)
            .accept(ALPN, Acceptor(inner.clone()))
            .spawn();
        let mut tasks = vec![
            tokio::spawn(poll_loop(inner.clone())),
            tokio::spawn(rollouts_loop(inner.clone())),
        ];
        if cfg.dial {
            tasks.push(tokio::spawn(dial_loop(inner.clone())));
        }
        if cfg.status_file.is_some() {
            tasks.push(tokio::spawn(status_loop(inner.clone())));
        }
        tasks.extend(mdns_task);
        Ok(Engine {
            inner,
            router,
            tasks,
        })
    }

    pub fn key(&self) -> &MemberKey {
        &self.inner.key
    }

    /// The sockets the endpoint listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.endpoint.bound_sockets()
    }

    /// How peers reach this replica.
    pub fn endpoint_addr(&self) -> EndpointAddr {
        let mut a = EndpointAddr::new(self.inner.endpoint.id());
        for s in reachable_addrs(&self.inner.endpoint) {
            a = a.with_ip_addr(s);
        }
        a
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// What the links of every session so far carried ([`Wire`]). Covers
    /// sessions that reached the hello, ended or replaced; a dial refused
    /// as the duplicate of a live session is not counted.
    pub fn wire(&self) -> Wire {
        let live = lock(&self.inner.live);
        let mut w = *lock(&self.inner.stats.wire_ended);
        for l in live.values() {
            w += wire(&l.conn);
        }
        w
    }

    /// Round-trip time of each live session as QUIC estimates it (the best
    /// of its open paths). iroh looks for a better path, hole-punching every
    /// 60 s, on a connection whose best RTT is over 10 ms.
    pub fn session_rtts(&self) -> Vec<Duration> {
        let live = lock(&self.inner.live);
        live.values()
            .filter_map(|l| {
                let paths = l.conn.paths();
                paths.iter().filter_map(|p| l.conn.rtt(p.id())).min()
            })
            .collect()
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Runs `f` on the replica; call [`Engine::changed`] after writing so the
    /// change is pushed at once (otherwise the next poll finds it).
    pub fn with_replica<R>(&self, f: impl FnOnce(&mut Replica) -> R) -> R {
        let mut r = self.inner.lock_replica();
        f(&mut r)
    }

    /// Signals a local change to every session.
    pub fn changed(&self) {
        self.inner.notify_changed();
    }

    /// A receiver that ticks whenever the replica changed (locally or from
    /// a peer).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Dials `addr` and keeps a session with it in the background.
    pub fn connect(&self, addr: EndpointAddr) {
        self.inner.lookup.add_endpoint_info(addr.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let peer = member_key(&addr.id);
            if let Err(e) = inner.dial(addr, Mode::Keep).await {
                tracing::info!(peer = %peer.short(), "dial failed: {e}");
            }
        });
    }

    /// Dials `addr`, syncs both ways until both hold the same document and
    /// nothing arrives for `quiet`, then closes.
    pub async fn sync_once(
        &self,
        addr: EndpointAddr,
        quiet: Duration,
        limit: Duration,
    ) -> Result<(), SyncError> {
        let peer = member_key(&addr.id).short().to_string();
        match tokio::time::timeout(limit, self.inner.dial(addr, Mode::Once(quiet))).await {
            Ok(r) => r,
            Err(_) => Err(SyncError::Connect {
                peer,
                detail: format!("not in sync after {}s", limit.as_secs()),
            }),
        }
    }

    /// Every peer this replica knows of, connected or not.
    pub fn peers(&self) -> Vec<PeerStatus> {
        peer_status(&self.inner)
    }

    pub fn connected(&self) -> Vec<MemberKey> {
        lock(&self.inner.live)
            .iter()
            .filter(|(_, l)| l.conn.close_reason().is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Stops every task and closes the endpoint. Bounded: a graceful close
    /// waits for peers to acknowledge, and peers that are already gone never
    /// do; after two seconds the endpoint is dropped as it is.
    pub async fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        if tokio::time::timeout(Duration::from_secs(2), self.router.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("endpoint close took over 2 s; dropping it");
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn peer_status(inner: &Arc<Inner>) -> Vec<PeerStatus> {
    let mut r = inner.lock_replica();
    let members: Vec<(MemberKey, String, Vec<String>)> = r
        .state()
        .members
        .values()
        .filter(|m| m.key != inner.key)
        .map(|m| (m.key.clone(), m.name.clone(), m.addrs.clone()))
        .collect();
    let live = lock(&inner.live);
    let book = lock(&inner.book);
    members
        .into_iter()
        .map(|(k, name, addrs)| {
            let l = live.get(&k).filter(|l| l.conn.close_reason().is_none());
            let b = book.get(&k);
            let addr = l
                .and_then(|l| {
                    l.conn
                        .paths()
                        .iter()
                        .find(|p| p.is_selected())
                        .and_then(|p| match p.remote_addr() {
                            iroh::TransportAddr::Ip(a) => Some(a.to_string()),
                            _ => None,
                        })
                })
                .or_else(|| addrs.first().cloned());
            // What the peer lacks: our changes that are not ancestors of
            // its heads (heads we do not hold ourselves say nothing).
            let lacks = b.and_then(|b| b.their_heads.as_ref()).map(|heads| {
                let am = r.doc_mut().automerge_mut();
                let known: Vec<_> = heads
                    .iter()
                    .filter(|h| am.get_change_by_hash(h).is_some())
                    .copied()
                    .collect();
                am.get_changes(&known).len()
            });
            PeerStatus {
                key: k.to_string(),
                name,
                connected: l.is_some(),
                addr,
                last_sync_ms: b.and_then(|b| b.last_sync_ms),
                lacks,
                last_error: b.and_then(|b| b.last_error.clone()),
            }
        })
        .collect()
}

/// The mDNS service name fleetdeck replicas advertise under.
pub const MDNS_SERVICE: &str = "fleetdeck";

/// Keeps the map of members seen on the LAN. Endpoints that are not members
/// of this fleet (other fleets, other iroh programs) are ignored.
async fn mdns_loop(inner: Arc<Inner>, mdns: MdnsAddressLookup) {
    use n0_future::StreamExt;
    let mut events = mdns.subscribe().await;
    while let Some(ev) = events.next().await {
        match ev {
            DiscoveryEvent::Discovered { endpoint_info, .. } => {
                let key = member_key(&endpoint_info.endpoint_id);
                let member = inner.lock_replica().state().members.contains_key(&key);
                if !member || key == inner.key {
                    continue;
                }
                let addrs: Vec<SocketAddr> = endpoint_info.data.ip_addrs().copied().collect();
                tracing::info!(peer = %key.short(), ?addrs, "found a member on the LAN");
                lock(&inner.discovered).insert(key.clone(), addrs);
                // Dial it on the next round rather than after a backoff.
                if let Some(b) = lock(&inner.book).get_mut(&key) {
                    b.next_try = None;
                }
            }
            DiscoveryEvent::Expired { endpoint_id } => {
                lock(&inner.discovered).remove(&member_key(&endpoint_id));
            }
            _ => {}
        }
    }
}

async fn poll_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.cfg.poll);
    loop {
        tick.tick().await;
        let changed = inner.lock_replica().refresh();
        match changed {
            Ok(true) => inner.notify_changed(),
            Ok(false) => {}
            Err(e) => tracing::warn!("could not read the replica's database: {e}"),
        }
    }
}

/// Moves rollouts forward (opens the next wave once the open ones have
/// soaked healthy, marks a rollout halted past its failure limit) on admin
/// and operator replicas: the hubs and laptops, which hold every node's
/// heartbeat. Any of them may decide; the decisions merge (store::rollout).
/// A node replica holds only its own heartbeat; its daemon still halts a
/// rollout on what it sees itself.
async fn rollouts_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let steps = {
            let mut r = inner.lock_replica();
            let role = r.state().members.get(r.key()).map(|m| m.role);
            if !role.is_some_and(Role::manages_fleet) {
                continue;
            }
            r.advance_rollouts(now_ms())
        };
        match steps {
            Ok(steps) if !steps.is_empty() => inner.notify_changed(),
            Ok(_) => {}
            Err(e) => tracing::warn!("rollouts: {e}"),
        }
    }
}

async fn dial_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.cfg.dial_every);
    loop {
        tick.tick().await;
        for (key, addrs) in inner.targets() {
            let connected = lock(&inner.live)
                .get(&key)
                .is_some_and(|l| l.conn.close_reason().is_none());
            if connected || inner.faults.blocked(&inner.key, &key) {
                continue;
            }
            let Some(id) = endpoint_id(&key) else {
                continue;
            };
            {
                let mut book = lock(&inner.book);
                let b = book.entry(key.clone()).or_default();
                if b.next_try.is_some_and(|t| Instant::now() < t) {
                    continue;
                }
                // Back off on failures: 1 s doubling to 30 s, with jitter.
                let base = Duration::from_millis(1000u64 << b.failures.min(5))
                    .min(Duration::from_secs(30));
                let jitter = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
                b.next_try = Some(Instant::now() + base + Duration::from_millis(jitter));
            }
            let mut addr = EndpointAddr::new(id);
            for a in &addrs {
                addr = addr.with_ip_addr(*a);
            }
            if let Some(relay) = &inner.relay {
                addr = addr.with_relay_url(relay.clone());
            }
            inner.lookup.add_endpoint_info(addr.clone());
            let inner2 = inner.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = inner2.dial(addr, Mode::Keep).await;
                let mut book = lock(&inner2.book);
                let b = book.entry(key.clone()).or_default();
                match result {
                    // A session that lived a while counts as a success.
                    Ok(()) => b.failures = 0,
                    Err(_) if started.elapsed() > Duration::from_secs(10) => b.failures = 0,
                    Err(e) => {
                        b.failures = b.failures.saturating_add(1);
                        b.last_error = Some(e.to_string());
                    }
                }
                b.next_try = b
                    .next_try
                    .min(Some(Instant::now() + Duration::from_millis(500)));
            });
        }
    }
}

async fn status_loop(inner: Arc<Inner>) {
    let Some(path) = inner.cfg.status_file.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let status = StatusFile {
            written_ms: now_ms(),
            key: inner.key.to_string(),
            addrs: inner
                .endpoint
                .bound_sockets()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            bytes_in: inner.stats.bytes_in(),
            bytes_out: inner.stats.bytes_out(),
            peers: peer_status(&inner),
        };
        if let Ok(json) = serde_json::to_vec_pretty(&status) {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }
}

/// What a serving process writes for `fleetdeck peers` to read.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StatusFile {
    pub written_ms: i64,
    pub key: String,
    pub addrs: Vec<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub peers: Vec<PeerStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_store::identity::Identity;

    fn keys(n: usize) -> Vec<MemberKey> {
        (0..n).map(|_| Identity::generate().key().clone()).collect()
    }

    #[test]
    fn the_fallback_draw_takes_its_site_quota_from_the_site_then_draws_at_random() {
        let all = keys(100);
        let site: HashSet<MemberKey> = all[..2].iter().cloned().collect();
        for _ in 0..50 {
            let others: Vec<(MemberKey, ())> = all.iter().map(|k| (k.clone(), ())).collect();
            let got = draw_fallback(others, 2, &site, 1);
            assert_eq!(got.len(), 2);
            assert!(site.contains(&got[0].0), "the first pick is a site peer");
            assert_ne!(got[0].0, got[1].0);
        }
        // No site peers to be had: all picks are random; none asked: none.
        let others: Vec<(MemberKey, ())> = all[2..].iter().map(|k| (k.clone(), ())).collect();
        assert_eq!(draw_fallback(others.clone(), 2, &site, 1).len(), 2);
        assert!(draw_fallback(others, 0, &site, 1).is_empty());
        // A quota already filled draws at random: over 50 draws from 100
        // members, at most a few land on the 2 site peers by chance.
        let hits = (0..50)
            .filter(|_| {
                let others: Vec<(MemberKey, ())> = all.iter().map(|k| (k.clone(), ())).collect();
                site.contains(&draw_fallback(others, 1, &site, 0)[0].0)
            })
            .count();
        assert!(hits < 15, "{hits} of 50 random draws hit the site");
    }
}

//! The sync engine of one replica: an iroh endpoint that accepts sessions
//! from members (and joiners with a valid invite), dials the peers it should
//! keep sessions with, pushes local changes, and picks up writes that other
//! processes make to the same data dir.
//!
//! The engine holds the replica and starts the transport's parts: binding
//! ([`crate::bind`]), accepting (`accept`), dial policy (`dial`), LAN
//! discovery ([`crate::mdns`]), the peer book ([`crate::peers`]) and the
//! status file ([`crate::status`]). Sessions see it only as their
//! `session::Host`. Fleet logic (the node's rollouts loop) runs beside it,
//! above `sync`, through its public API and a [`WeakEngine`].

use fleetdeck_store::health::TunnelRecord;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use automerge::ChangeHash;
use fleetdeck_store::{MemberKey, Replica, Role};
use iroh::address_lookup::MemoryLookup;
use iroh::protocol::Router;
use iroh::tls::CaTlsConfig;
use iroh::{Endpoint, EndpointAddr};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::bind::{
    bind_endpoint, bind_endpoint_with, format_endpoint_addr, parse_endpoint_addr,
};
pub use crate::error::SyncError;
pub use crate::mdns::MDNS_SERVICE;
pub use crate::peers::PeerStatus;
pub use crate::status::StatusFile;
pub use crate::traffic::{Stats, Wire};

use crate::accept::Acceptor;
use crate::bind::{close_endpoint, member_key, reachable_addrs, relay_of, relay_tls_of};
use crate::dial::{self, Dialing};
use crate::faults::Faults;
use crate::lock;
use crate::peers::{Established, PeerBook, Verdict};
use crate::session::{Host, Mode, Session, SessionError};
use crate::wire::{ALPN, Hello, Origin, PROTOCOL_VERSION};

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
    /// Where `peers` status is written for other processes to read. One
    /// that a run which did not stop cleanly (a crash, a power cut) left
    /// behind names the peers it had sessions with: they are dialed at
    /// once on start, so they need not wait out the idle timeout on the
    /// dead sessions they hold (`dial::Dialing::resume`).
    pub status_file: Option<PathBuf>,
    /// Find members on the local network by mDNS (and be found).
    pub mdns: bool,
    /// Terminate tunnels for this node (`tunnel`): set by the node daemon.
    pub tunnel_node: Option<fleetdeck_store::NodeId>,
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
            tunnel_node: None,
            relay_tls: None,
        }
    }
}

/// What the engine's loops, its acceptor and its sessions share.
pub(crate) struct Inner {
    replica: Mutex<Replica>,
    pub(crate) key: MemberKey,
    pub(crate) name: String,
    pub(crate) fleet_id: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) dialing: Dialing,
    /// Ticks on every change: the document or a register.
    changed: watch::Sender<u64>,
    /// Ticks when the document changed (sessions with nodes wait on this
    /// alone: see `Host::registers_changed`).
    doc_changed: watch::Sender<u64>,
    pub(crate) peers: PeerBook,
    pub(crate) faults: Faults,
    pub(crate) cfg: EngineConfig,
    pub(crate) stats: Stats,
    /// Drawn at random on start: peers tell a session with this run from
    /// one with an earlier run, whose process is gone ([`Origin`]).
    run: u64,
    /// Dials made so far ([`Origin::dial`]).
    dials: AtomicU64,
    /// Cleared when the engine shuts down or is dropped ([`WeakEngine`]).
    running: AtomicBool,
    /// The tunnels this node ended lately, oldest first (its heartbeat
    /// reports them: `Engine::tunnel_records`).
    pub(crate) tunnels: Mutex<std::collections::VecDeque<(std::time::Instant, TunnelRecord)>>,
}

impl Inner {
    pub(crate) fn lock_replica(&self) -> MutexGuard<'_, Replica> {
        lock(&self.replica)
    }

    pub(crate) fn notify_changed(&self) {
        self.doc_changed.send_modify(|v| *v = v.wrapping_add(1));
        self.notify_registers();
    }

    pub(crate) fn notify_registers(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn hello(&self, token: Option<String>) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            fleet_id: self.fleet_id.clone(),
            name: self.name.clone(),
            token,
        }
    }

    /// This run, for the acceptor's hello.
    pub(crate) fn origin(&self) -> Origin {
        Origin {
            run: self.run,
            dial: 0,
        }
    }

    /// This run and a new dial's number, for the dialer's hello.
    pub(crate) fn origin_of_dial(&self) -> Origin {
        Origin {
            run: self.run,
            dial: self.dials.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    /// Every peer this replica knows of, connected or not.
    pub(crate) fn peer_status(&self) -> Vec<PeerStatus> {
        self.peers.status(&mut self.lock_replica(), &self.key)
    }

    /// Runs an established session to its end, keeping the peer book.
    pub(crate) async fn drive(
        self: &Arc<Self>,
        est: Established,
        mode: Mode,
    ) -> Result<(), SessionError> {
        let Established {
            conn,
            send,
            recv,
            remote,
            remote_name,
            claim,
            features,
        } = est;
        match self.peers.register(&remote, &conn, &claim) {
            Verdict::First | Verdict::Supersedes => {}
            Verdict::Restarted => {
                tracing::info!(peer = %remote.short(), name = %remote_name, "the peer restarted: its new session replaces the old one");
            }
            Verdict::Loses => {
                conn.close(409u32.into(), b"duplicate session");
                return Err(SessionError::Duplicate);
            }
            Verdict::Displaced => {
                tracing::warn!(peer = %remote.short(), name = %remote_name, "refused a session: another process with the same member key holds one with this replica (is one replica running twice, or copied to a second device?)");
                conn.close(409u32.into(), b"duplicate session");
                return Err(SessionError::Duplicate);
            }
        }
        self.peers.named(&remote, &remote_name);
        tracing::info!(peer = %remote.short(), name = %remote_name, "session up");
        let s = Session::new(
            self.clone(),
            remote.clone(),
            remote_name,
            conn.clone(),
            send,
            features,
        );
        let name = s.remote_name().to_string();
        let result = s.run(recv, mode).await;
        if !self.peers.unregister(&remote, &conn) {
            // A newer session with the peer took this one's place: what
            // ended is not the peer's state.
            tracing::info!(peer = %remote.short(), %name, "session replaced by a newer one");
            return Err(SessionError::Replaced);
        }
        if !self.running.load(Ordering::Acquire) {
            // This replica closed it on its way out.
            tracing::info!(peer = %remote.short(), %name, "session closed: shutting down");
            return Ok(());
        }
        self.peers.ended(&remote, &result);
        match &result {
            Ok(()) => tracing::info!(peer = %remote.short(), %name, "session ended"),
            Err(e) => tracing::info!(peer = %remote.short(), %name, "session ended: {e}"),
        }
        result
    }
}

impl Host for Inner {
    fn me(&self) -> &MemberKey {
        &self.key
    }

    fn replica(&self) -> MutexGuard<'_, Replica> {
        self.lock_replica()
    }

    fn changed(&self) {
        self.notify_changed();
    }

    fn registers_changed(&self) {
        self.notify_registers();
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn subscribe_doc(&self) -> watch::Receiver<u64> {
        self.doc_changed.subscribe()
    }

    fn synced(&self, peer: &MemberKey, their_heads: Option<Vec<ChangeHash>>) {
        self.peers.synced(peer, their_heads);
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn anti_entropy(&self) -> Duration {
        self.cfg.anti_entropy
    }
}

/// A running sync engine. Dropping it stops everything.
pub struct Engine {
    inner: Arc<Inner>,
    router: Router,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    pub async fn start(replica: Replica, cfg: EngineConfig) -> Result<Engine, SyncError> {
        if replica.is_unsigned() {
            return Err(SyncError::Invalid(
                "this replica holds history made before fleetdeck signed changes: no current replica takes it, and it takes nothing unsigned; start a new fleet (`fleetdeck init`) or join again with an invite (`fleetdeck join`)".into(),
            ));
        }
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
            // Tests may pass their own; else the CA the fleet pins.
            Some(cfg.relay_tls.clone().unwrap_or_else(|| relay_tls_of(&st))),
        )
        .await?;
        let (changed, _) = watch::channel(0u64);
        let (doc_changed, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            replica: Mutex::new(replica),
            key,
            name,
            fleet_id: st.fleet_id.clone(),
            endpoint: endpoint.clone(),
            dialing: Dialing::new(lookup, relay),
            changed,
            doc_changed,
            peers: PeerBook::default(),
            faults: cfg.faults.clone(),
            cfg: cfg.clone(),
            stats: Stats::default(),
            run: rand::random(),
            dials: AtomicU64::new(0),
            running: AtomicBool::new(true),
            tunnels: Mutex::default(),
        });
        if cfg.dial
            && let Some(path) = &cfg.status_file
        {
            inner
                .dialing
                .resume(crate::status::left_connected(path, &inner.key));
        }
        {
            // Its WireGuard key, once (what tunnels take it by).
            let mut r = inner.lock_replica();
            let me = inner.key.clone();
            let wg = crate::tunnel::wg_public(r.identity());
            let held = r.state().members.get(&me).map(|m| m.wg);
            if matches!(held, Some(h) if h != Some(wg)) && !r.is_read_only() {
                r.change(
                    &format!("{} publishes its WireGuard key", inner.name),
                    |doc, _| doc.set_member_wg(&me, &wg),
                )?;
            }
        }
        if cfg.publish_addrs {
            let addrs: Vec<String> = reachable_addrs(&endpoint)
                .iter()
                .map(|a| a.to_string())
                .collect();
            let mut r = inner.lock_replica();
            let me = inner.key.clone();
            let current = r
                .state()
                .members
                .get(&me)
                .map(|m| (m.role, m.addrs.clone()));
            // A node's replica writes where it listens into the document
            // once, when it first starts (a hint for its site's peers when
            // no hub is up); afterwards its addresses travel in its signed
            // heartbeat (`HealthRegister::addrs`), so an address that
            // changes daily grows no history. People's replicas (hubs,
            // laptops) keep theirs current here: every replica dials them.
            let write = match &current {
                Some((Role::Node, held)) => held.is_empty() && !addrs.is_empty(),
                Some((_, held)) => *held != addrs,
                None => false,
            };
            if write && !r.is_read_only() {
                r.change(
                    &format!("{} listens on {}", inner.name, addrs.join(", ")),
                    |doc, _| doc.set_member_addrs(&me, &addrs),
                )?;
            }
        }
        let mdns_task = if cfg.mdns {
            crate::mdns::start(&inner, &endpoint)
        } else {
            None
        };
        let mut router = Router::builder(endpoint).accept(ALPN, Acceptor(inner.clone()));
        let mut tasks = vec![tokio::spawn(poll_loop(inner.clone()))];
        if let Some(node) = cfg.tunnel_node.clone() {
            let open = std::sync::Arc::default();
            router = router.accept(
                crate::tunnel::TUNNEL_ALPN,
                crate::tunnel::TunnelEnd {
                    inner: inner.clone(),
                    node: node.clone(),
                    open: std::sync::Arc::clone(&open),
                    refused: Default::default(),
                },
            );
            tasks.extend(crate::tunnel::plain_wireguard(&inner, node, open).await);
        }
        let router = router.spawn();
        if cfg.dial {
            tasks.push(tokio::spawn(dial::dial_loop(inner.clone())));
        }
        if let Some(path) = cfg.status_file.clone() {
            tasks.push(tokio::spawn(crate::status::status_loop(
                inner.clone(),
                path,
            )));
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

    /// Where this replica listens, as a node reports it in its heartbeat
    /// (`HealthRegister::addrs`): none when the engine publishes no
    /// address (`EngineConfig::publish_addrs`).
    pub fn published_addrs(&self) -> Vec<String> {
        if !self.inner.cfg.publish_addrs {
            return Vec::new();
        }
        reachable_addrs(&self.inner.endpoint)
            .iter()
            .take(fleetdeck_store::health::MAX_REPORTED_ADDRS)
            .map(|a| a.to_string())
            .collect()
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
        self.inner.peers.wire()
    }

    /// Sessions that came up since the engine started, with any peer. One
    /// per peer while the peers stay up; one more each time a peer comes
    /// back. A count that keeps rising while nothing changes means
    /// sessions replace each other (flap).
    pub fn sessions_up(&self) -> u64 {
        self.inner.peers.sessions_up()
    }

    /// Round-trip time of each live session as QUIC estimates it (the best
    /// of its open paths). iroh looks for a better path, hole-punching every
    /// 60 s, on a connection whose best RTT is over 10 ms.
    pub fn session_rtts(&self) -> Vec<Duration> {
        self.inner.peers.rtts()
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

    /// Signals that only a register changed here (this replica's daemon
    /// recorded a heartbeat or a command result): sent on to the peers
    /// that hold the fleet's health, without waking sessions with nodes.
    pub fn registers_changed(&self) {
        self.inner.notify_registers();
    }

    /// A receiver that ticks whenever the replica changed (locally or from
    /// a peer).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Dials `addr` and keeps a session with it in the background.
    pub fn connect(&self, addr: EndpointAddr) {
        self.inner.dialing.lookup.add_endpoint_info(addr.clone());
        let inner = self.inner.clone();
        let peer = member_key(&addr.id);
        let in_flight = dial::InFlight::new(&inner, &peer);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            if let Err(e) = dial::dial(&inner, addr, Mode::Keep).await {
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
        match tokio::time::timeout(limit, dial::dial(&self.inner, addr, Mode::Once(quiet))).await {
            Ok(r) => r,
            Err(_) => Err(SyncError::Connect {
                peer,
                detail: format!("not in sync after {}s", limit.as_secs()),
            }),
        }
    }

    /// The tunnels this node's engine ended in the last hour, at most
    /// `MAX_REPORTED_TUNNELS`, oldest first: what its heartbeat reports.
    pub fn tunnel_records(&self) -> Vec<TunnelRecord> {
        let mut held = lock(&self.inner.tunnels);
        while held
            .front()
            .is_some_and(|(at, _)| at.elapsed() > Duration::from_secs(3600))
        {
            held.pop_front();
        }
        held.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Opens a tunnel through `node` to `target` (as the node's
    /// `tunnel.allow` names it): connections to `listener` go there.
    pub async fn open_tunnel(
        &self,
        node: EndpointAddr,
        target: std::net::SocketAddrV4,
        listener: tokio::net::TcpListener,
    ) -> Result<crate::tunnel::Tunnel, crate::tunnel::TunnelError> {
        let node = match &self.inner.dialing.relay {
            Some(relay) => node.with_relay_url(relay.clone()),
            None => node,
        };
        self.inner.dialing.lookup.add_endpoint_info(node.clone());
        crate::tunnel::open(self.inner.clone(), node, target, listener).await
    }

    /// Every peer this replica knows of, connected or not.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.inner.peer_status()
    }

    pub fn connected(&self) -> Vec<MemberKey> {
        self.inner.peers.connected()
    }

    /// A handle that does not keep the engine running ([`WeakEngine`]).
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// Stops every task, closes every session with a word to its peer (so
    /// peers see this replica leave now, not after the idle timeout) and
    /// closes the endpoint. Bounded: a graceful close waits for peers to
    /// acknowledge, and peers that are gone never do; after
    /// [`crate::bind::CLOSE_WITHIN`] the close goes on in the background
    /// ([`close_endpoint`]).
    pub async fn shutdown(&self) {
        self.stop();
        close_endpoint(self.inner.endpoint.clone(), Some(self.router.clone())).await;
    }

    fn stop(&self) {
        self.inner.running.store(false, Ordering::Release);
        for t in &self.tasks {
            t.abort();
        }
        self.inner.peers.close_all(b"shutting down");
    }
}

impl Drop for Engine {
    /// Stops the engine that was not shut down: sessions are closed and the
    /// endpoint closes in the background (the drop cannot wait), if a
    /// runtime is there to run that.
    fn drop(&mut self) {
        if self.router.is_shutdown() {
            return;
        }
        self.stop();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let close = close_endpoint(self.inner.endpoint.clone(), Some(self.router.clone()));
            rt.spawn(close);
        }
    }
}

/// A handle on an engine that does not keep it running, for work that runs
/// beside it above `sync` (the node's rollouts loop): once the engine is
/// shut down or dropped, the handle reaches nothing.
#[derive(Clone)]
pub struct WeakEngine(Weak<Inner>);

impl WeakEngine {
    fn running(&self) -> Option<Arc<Inner>> {
        self.0
            .upgrade()
            .filter(|i| i.running.load(Ordering::Acquire))
    }

    /// [`Engine::with_replica`]; `None` once the engine has stopped.
    pub fn with_replica<R>(&self, f: impl FnOnce(&mut Replica) -> R) -> Option<R> {
        let inner = self.running()?;
        let mut r = inner.lock_replica();
        Some(f(&mut r))
    }

    /// [`Engine::peers`]; `None` once the engine has stopped.
    pub fn peers(&self) -> Option<Vec<PeerStatus>> {
        Some(self.running()?.peer_status())
    }

    /// [`Engine::changed`]; nothing once the engine has stopped.
    pub fn changed(&self) {
        if let Some(inner) = self.running() {
            inner.notify_changed();
        }
    }
}

/// Picks up writes that other processes (the CLI) make to the data dir.
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

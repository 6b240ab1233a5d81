//! The terminating end of tunnels, in a node's engine: who may open one
//! (operators and admins, by the WireGuard key their member record names),
//! what it may reach (the node's effective `tunnel.allow`), and a log line
//! for every tunnel and connection opened, closed or refused.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boringtun::noise::Tunn;
use boringtun::x25519::PublicKey;
use fleetdeck_store::health::{MAX_REPORTED_TUNNELS, TunnelRecord};
use fleetdeck_store::{MemberKey, NodeId, Role, overlay};
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use tokio::net::TcpStream;

use super::drive::{self, Ended, Side};
use super::link::{Carrier, Link};
use super::stack::{Carried, MAX_CONNS, Stack};
use super::{inside_target, wg_keys};
use crate::bind::member_key;
use crate::engine::Inner;

/// How long reaching a target may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// How often (in ticks of the loop) a member's standing and the allowlist
/// are read again, when the document changed since the last reading.
const RECHECK_TICKS: u32 = 4;
/// Tunnels a node ends at once at most, and per member: what a node's
/// memory is bounded by (each connection holds at most 512 KiB of buffers
/// inside the stack).
const MAX_TUNNELS: usize = 32;
const MAX_TUNNELS_PER_MEMBER: usize = 16;

/// What the endpoint's router hands connections on [`super::TUNNEL_ALPN`].
pub(crate) struct TunnelEnd {
    pub(crate) inner: Arc<Inner>,
    pub(crate) node: NodeId,
    /// Tunnels open now, by member.
    pub(crate) open: Arc<Mutex<HashMap<MemberKey, usize>>>,
    /// When each peer was last refused (see [`Refusals`]).
    pub(crate) refused: Refusals,
}

/// Who was refused a tunnel lately, and how many refusals are under way.
/// A refusal waits up to two seconds so that its reason reaches the
/// dialer (closed at once, the connection reaches it as lost), and is
/// logged; a peer refused again within [`REFUSED_FOR`] is not logged
/// again, and past [`REFUSALS_WAITING`] refusals under way the next are
/// closed at once: a flood of attempts (a captured node's, say) costs
/// neither unbounded tasks nor log lines.
#[derive(Default)]
pub(crate) struct Refusals {
    last: Mutex<HashMap<MemberKey, Instant>>,
    waiting: std::sync::atomic::AtomicUsize,
}

/// How long a refused peer's next refusals go unlogged.
const REFUSED_FOR: Duration = Duration::from_secs(10);
/// Refusals waiting for their reason to reach the dialer at most.
const REFUSALS_WAITING: usize = 64;
/// Peers remembered at most (dialers need not be members: any key can).
const REFUSED_KEPT: usize = 1024;

/// One refusal under way, counted while it lives.
pub(crate) struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Refusals {
    /// A place among the refusals under way, or None when
    /// [`REFUSALS_WAITING`] are.
    fn slot(&self) -> Option<Waiting<'_>> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= REFUSALS_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Waiting(&self.waiting))
    }

    /// Whether `peer` was refused within [`REFUSED_FOR`]; notes this
    /// refusal either way.
    fn again(&self, peer: &MemberKey) -> bool {
        let mut map = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let recent = map
            .get(peer)
            .is_some_and(|t| now.duration_since(*t) < REFUSED_FOR);
        if !recent {
            if map.len() >= REFUSED_KEPT {
                map.retain(|_, t| now.duration_since(*t) < REFUSED_FOR);
            }
            if map.len() >= REFUSED_KEPT {
                // All recent: a flood of keys; forget them rather than grow.
                map.clear();
            }
            map.insert(peer.clone(), now);
        }
        recent
    }
}

/// One open tunnel, counted while it lives.
pub(crate) struct Counted {
    open: Arc<Mutex<HashMap<MemberKey, usize>>>,
    member: MemberKey,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.member) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.member);
            }
        }
    }
}

/// Counts a tunnel for `member`, or says why not.
pub(crate) fn count(
    open: &Arc<Mutex<HashMap<MemberKey, usize>>>,
    member: &MemberKey,
) -> Result<Counted, String> {
    let mut map = open.lock().unwrap_or_else(|p| p.into_inner());
    let all: usize = map.values().sum();
    let mine = map.get(member).copied().unwrap_or(0);
    if all >= MAX_TUNNELS {
        return Err(format!(
            "this node has {MAX_TUNNELS} tunnels open, its limit: try again when one closes"
        ));
    }
    if mine >= MAX_TUNNELS_PER_MEMBER {
        return Err(format!(
            "{MAX_TUNNELS_PER_MEMBER} tunnels of yours are open on this node, the limit per member"
        ));
    }
    *map.entry(member.clone()).or_default() += 1;
    Ok(Counted {
        open: open.clone(),
        member: member.clone(),
    })
}

impl std::fmt::Debug for TunnelEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelEnd")
    }
}

impl ProtocolHandler for TunnelEnd {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        serve(
            self.inner.clone(),
            self.node.clone(),
            self.open.clone(),
            &self.refused,
            conn,
        )
        .await;
        Ok(())
    }
}

/// What the document says of a member that asks for a tunnel.
#[derive(Clone, PartialEq)]
pub(crate) struct Standing {
    name: String,
    wg: [u8; 32],
    targets: Vec<SocketAddrV4>,
}

/// The member's standing, or why it gets no tunnel (sent to it, and logged).
pub(crate) fn standing(
    inner: &Inner,
    node: &NodeId,
    remote: &MemberKey,
) -> Result<Standing, String> {
    let r = inner.lock_replica();
    let st = r.state();
    if st.revoked.contains_key(remote) {
        return Err(format!(
            "{} was revoked by an admin of this fleet",
            remote.short()
        ));
    }
    let Some(m) = st.members.get(remote) else {
        return Err(format!("{} is not a member of this fleet", remote.short()));
    };
    if !matches!(m.role, Role::Operator | Role::Admin) {
        return Err(format!(
            "{} is a {}: only operators and admins open tunnels",
            m.name, m.role
        ));
    }
    let Some(wg) = m.wg else {
        return Err(format!(
            "{} has published no WireGuard key in its member record (or this node has not received it yet)",
            m.name
        ));
    };
    let effective = r
        .effective_node(node)
        .map_err(|e| format!("this node cannot read its config: {e}"))?;
    let targets =
        overlay::tunnel_targets(&effective).map_err(|why| format!("this node's {why}"))?;
    if targets.is_empty() {
        return Err(format!(
            "node {node} allows no tunnel targets: an admin lists them in tunnel.allow (e.g. `fleetdeck config set tunnel.allow '[\"127.0.0.1:5000\"]' --node {node}`)"
        ));
    }
    Ok(Standing {
        name: m.name.clone(),
        wg,
        targets,
    })
}

/// The overlay addresses of a tunnel's two ends: where the node is inside
/// it, and where the member's packets come from.
#[derive(Clone, Copy)]
pub(crate) struct Place {
    pub(crate) node: Ipv4Addr,
    pub(crate) member: Ipv4Addr,
}

/// Where the node and `remote` are in the overlay (read once, when a
/// tunnel opens), or why not.
pub(crate) fn place(inner: &Inner, remote: &MemberKey) -> Result<Place, String> {
    let r = inner.lock_replica();
    let all = overlay::addresses(r.state());
    let node = all
        .get(r.key())
        .copied()
        .ok_or("this node's own member record is missing from its replica")?;
    let member = all
        .get(remote)
        .copied()
        .ok_or_else(|| format!("{} is not a member of this fleet", remote.short()))?;
    Ok(Place { node, member })
}

async fn serve(
    inner: Arc<Inner>,
    node: NodeId,
    open: Arc<Mutex<HashMap<MemberKey, usize>>>,
    refused: &Refusals,
    conn: Connection,
) {
    let remote = member_key(&conn.remote_id());
    let counted = standing(&inner, &node, &remote)
        .and_then(|s| Ok((s, place(&inner, &remote)?, count(&open, &remote)?)));
    let (s, at, _counted) = match counted {
        Ok(s) => s,
        Err(why) => {
            if !refused.again(&remote) {
                tracing::warn!(peer = %remote.short(), "refused a tunnel: {why}");
            }
            let Some(_slot) = refused.slot() else {
                conn.close(403u32.into(), b"refused");
                return;
            };
            // Closed at once, the connection reaches the dialer as "lost"
            // before its handshake completes; its first datagram says it
            // has, and will read why.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.read_datagram()).await;
            refuse(&conn, &why).await;
            return;
        }
    };
    let secret = wg_keys(inner.lock_replica().identity()).0;
    let tunn = Tunn::new(
        secret,
        PublicKey::from(s.wg),
        None,
        None,
        rand::random::<u32>() >> 8,
        None,
    );
    let link = Link::new(tunn, Carrier::Quic(conn.clone()));
    if let Ended::Refused(w) = run(inner, node, remote, s, at, link).await {
        refuse(&conn, &w).await;
    }
}

/// Runs one tunnel at the node, over either carrier, until it ends.
pub(crate) async fn run(
    inner: Arc<Inner>,
    node: NodeId,
    remote: MemberKey,
    s: Standing,
    at: Place,
    link: Link,
) -> Ended {
    let mut stack = Stack::new(at.node, link.mtu(), true);
    let opened = Instant::now();
    let name = s.name.clone();
    let mut doc = crate::session::Host::subscribe_doc(&*inner);
    // The standing was read before this subscription: read it once more
    // in any case (a revocation may have come in between).
    doc.mark_changed();
    let mut side = EndSide {
        doc,
        inner,
        node,
        remote,
        listeners: Vec::new(),
        ticks: 0,
        refused_logged: HashMap::new(),
        up: 0,
        down: 0,
        conns: 0,
        retarget: false,
        reached: Vec::new(),
        standing: s,
        at,
        strangers_logged: None,
    };
    side.listen_all(&mut stack);
    tracing::info!(peer = %name, targets = %side.targets_text(), "tunnel opened");
    let why = drive::drive(link, stack, &mut side, None).await;
    let text = match &why {
        Ended::Refused(w) => w.clone(),
        Ended::Link(e) => format!("connection ended: {e}"),
        Ended::Done => "closed".into(),
    };
    tracing::info!(
        peer = %name,
        conns = side.conns,
        to_targets = side.up,
        from_targets = side.down,
        secs = opened.elapsed().as_secs(),
        "tunnel closed: {text}"
    );
    // For the node's heartbeat: who reached what (its events show it).
    let record = TunnelRecord {
        by: name.chars().take(64).collect(),
        targets: side
            .reached
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(","),
        conns: side.conns,
        to_targets: side.up,
        from_targets: side.down,
        opened_ms: fleetdeck_store::now_ms()
            .saturating_sub(i64::try_from(opened.elapsed().as_millis()).unwrap_or(0)),
        secs: opened.elapsed().as_secs(),
    };
    {
        let mut held = side.inner.tunnels.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() >= MAX_REPORTED_TUNNELS {
            held.pop_front();
        }
        held.push_back((Instant::now(), record));
    }
    side.inner.notify_registers();
    if let Ended::Refused(w) = &why {
        tracing::warn!(peer = %name, "ended a tunnel: {w}");
    }
    why
}

/// Tells the dialing end why, in the connection's close.
async fn refuse(conn: &Connection, why: &str) {
    let reason: String = why.chars().take(400).collect();
    conn.close(403u32.into(), reason.as_bytes());
    // Let the close reach the peer before the connection is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.closed()).await;
}

struct Listener {
    /// Sockets listening at `at`: one, plus one for each connection asked
    /// for in the packets the stack has yet to take in (several may arrive
    /// at once, and a SYN no socket listens for is reset).
    sockets: Vec<SocketHandle>,
    /// Where the dialing end connects inside the tunnel.
    at: SocketAddrV4,
    /// What the node connects to.
    target: SocketAddrV4,
}

struct EndSide {
    /// Changes to the document: the standing is read again only after one
    /// (a revocation, a new allowlist arrive as changes), not every tick
    /// under the replica's lock.
    doc: tokio::sync::watch::Receiver<u64>,
    inner: Arc<Inner>,
    node: NodeId,
    remote: MemberKey,
    standing: Standing,
    at: Place,
    /// When a packet from another source was last logged.
    strangers_logged: Option<Instant>,
    listeners: Vec<Listener>,
    ticks: u32,
    /// When a refusal to each place was last logged (one line a minute).
    refused_logged: HashMap<SocketAddrV4, Instant>,
    /// Bytes to the targets and back, over the tunnel's connections.
    up: u64,
    down: u64,
    conns: u64,
    /// `tunnel.allow` changed: listeners and connections to redo.
    retarget: bool,
    /// The targets its connections reached (four at most are named).
    reached: Vec<SocketAddrV4>,
}

impl EndSide {
    fn targets_text(&self) -> String {
        let t: Vec<String> = self
            .standing
            .targets
            .iter()
            .map(|t| t.to_string())
            .collect();
        t.join(",")
    }

    fn listen_all(&mut self, stack: &mut Stack) {
        for l in &self.listeners {
            for h in &l.sockets {
                stack.remove_listener(*h);
            }
        }
        self.listeners = self
            .standing
            .targets
            .iter()
            .map(|t| {
                let at = inside_target(*t, self.at.node);
                Listener {
                    sockets: vec![stack.listen(at)],
                    at,
                    target: *t,
                }
            })
            .collect();
    }
}

impl Side for EndSide {
    fn allows_source(&mut self, src: Ipv4Addr) -> bool {
        if src == self.at.member {
            return true;
        }
        // The member's replica placed it elsewhere: both replicas should
        // hold the same member records (a sync mends it). Said once a
        // minute, not per packet.
        if self
            .strangers_logged
            .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            self.strangers_logged = Some(Instant::now());
            tracing::warn!(peer = %self.standing.name, %src, expected = %self.at.member, "dropped tunnel packets from an address that is not the member's overlay address: the member's replica (or device configuration) disagrees with this node's member records; sync that replica, or print the device's configuration again");
        }
        false
    }

    fn inspect(&mut self, p: &[u8], stack: &mut Stack) {
        let Some(to) = syn_to(p) else { return };
        let listening: usize = self.listeners.iter().map(|l| l.sockets.len()).sum();
        let room = stack.open_conns() + listening < MAX_CONNS;
        if let Some(l) = self.listeners.iter_mut().find(|l| l.at == to)
            && room
        {
            l.sockets.push(stack.listen(to));
            return;
        }
        // A TCP SYN to somewhere no listener answers: the stack resets it;
        // this says why, on the node.
        let now = Instant::now();
        if self
            .refused_logged
            .get(&to)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
        {
            return;
        }
        if self.refused_logged.len() > 1024 {
            self.refused_logged.clear();
        }
        self.refused_logged.insert(to, now);
        let target = if *to.ip() == self.at.node {
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, to.port())
        } else {
            to
        };
        if overlay::is_overlay(*to.ip()) && *to.ip() != self.at.node {
            tracing::warn!(peer = %self.standing.name, to = %to, node_at = %self.at.node, "refused a tunnel connection to another overlay address: this node is at {}; the member's replica (or device configuration) places it elsewhere, so the two disagree on member records: sync that replica, or print the device's configuration again", self.at.node);
        } else if self.listeners.iter().any(|l| l.at == to) {
            tracing::warn!(peer = %self.standing.name, %target, "refused a tunnel connection: {MAX_CONNS} connections are open");
        } else {
            tracing::warn!(peer = %self.standing.name, %target, "refused a tunnel connection: {target} is not in this node's tunnel.allow");
        }
    }

    fn after_poll(&mut self, stack: &mut Stack) {
        if self.retarget {
            self.retarget = false;
            let allowed = self.standing.targets.clone();
            for c in stack.abort_where(|t| !allowed.contains(&t)) {
                self.closed(&c);
            }
            self.listen_all(stack);
        }
        for l in &mut self.listeners {
            let mut idle = Vec::new();
            let mut opening = Vec::new();
            for h in l.sockets.drain(..) {
                match stack.state(h) {
                    State::Listen => {
                        idle.push(h);
                        continue;
                    }
                    // Adopted once established: a handshake the peer
                    // resets returns the socket to Listen, and what it
                    // would have reached must not be connected yet.
                    State::SynReceived => {
                        opening.push(h);
                        continue;
                    }
                    State::Established | State::CloseWait => {}
                    // Never established (timed out, say): nothing to reach.
                    _ => {
                        stack.remove_listener(h);
                        continue;
                    }
                }
                let target = l.target;
                let name = self.standing.name.clone();
                tracing::info!(peer = %name, %target, "tunnel connection opened");
                self.conns += 1;
                if self.reached.len() < 4 && !self.reached.contains(&target) {
                    self.reached.push(target);
                }
                stack.adopt_later(h, target, async move {
                    match tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(target)).await {
                        Ok(Ok(s)) => Some(s),
                        Ok(Err(e)) => {
                            tracing::warn!(peer = %name, %target, "tunnel target unreachable: {e}");
                            None
                        }
                        Err(_) => {
                            tracing::warn!(peer = %name, %target, "tunnel target unreachable: no answer within 5 s");
                            None
                        }
                    }
                });
            }
            // One idle listener per target is enough between batches.
            for extra in idle.split_off(idle.len().min(1)) {
                stack.remove_listener(extra);
            }
            if idle.is_empty() && stack.open_conns() + opening.len() < MAX_CONNS {
                idle.push(stack.listen(l.at));
            }
            idle.extend(opening);
            l.sockets = idle;
        }
    }

    fn check(&mut self) -> Option<String> {
        self.ticks = self.ticks.wrapping_add(1);
        if !self.ticks.is_multiple_of(RECHECK_TICKS) {
            return None;
        }
        // A closed channel (the engine going away) reads as a change.
        if !self.doc.has_changed().unwrap_or(true) {
            return None;
        }
        self.doc.borrow_and_update();
        match standing(&self.inner, &self.node, &self.remote) {
            Err(why) => Some(why),
            Ok(s) if s.wg != self.standing.wg => Some("the member's WireGuard key changed".into()),
            Ok(s) => {
                if s.targets != self.standing.targets {
                    tracing::info!(peer = %s.name, targets = %s.targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","), "tunnel.allow changed");
                    self.standing = s;
                    // Applied at the next run of the stack (`after_poll`):
                    // connections to what is no longer allowed are reset.
                    self.retarget = true;
                }
                None
            }
        }
    }

    fn closed(&mut self, c: &Carried) {
        // At this end the tokio side is the target: what came from it went
        // down the tunnel.
        self.up += c.down;
        self.down += c.up;
        tracing::info!(
            peer = %self.standing.name,
            target = %c.target,
            to_target = c.down,
            from_target = c.up,
            secs = c.lasted.as_secs(),
            "tunnel connection closed"
        );
    }
}

/// Where a TCP SYN (not a SYN-ACK) in an IPv4 packet goes.
fn syn_to(p: &[u8]) -> Option<SocketAddrV4> {
    let first = *p.first()?;
    if first >> 4 != 4 || *p.get(9)? != 6 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let dst = Ipv4Addr::new(*p.get(16)?, *p.get(17)?, *p.get(18)?, *p.get(19)?);
    let tcp = p.get(ihl..)?;
    let port = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let flags = *tcp.get(13)?;
    (flags & 0x02 != 0 && flags & 0x10 == 0).then(|| SocketAddrV4::new(dst, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u8) -> MemberKey {
        MemberKey::from_bytes(&[i; 32])
    }

    #[test]
    fn a_node_ends_at_most_32_tunnels_and_16_a_member() {
        let open = Arc::new(Mutex::new(HashMap::new()));
        let mine: Vec<Counted> = (0..MAX_TUNNELS_PER_MEMBER)
            .map(|_| count(&open, &member(1)).expect("within the member's limit"))
            .collect();
        let e = count(&open, &member(1)).err().expect("one more is refused");
        assert!(e.contains("limit per member"), "{e}");
        // Others still get theirs, up to the node's limit.
        let others: Vec<Counted> = (0..MAX_TUNNELS - MAX_TUNNELS_PER_MEMBER)
            .map(|i| count(&open, &member(2 + (i % 2) as u8)).expect("within the node's limit"))
            .collect();
        let e = count(&open, &member(9)).err().expect("the node is full");
        assert!(e.contains("its limit"), "{e}");
        // A tunnel that closes frees its place.
        drop(mine);
        assert!(count(&open, &member(9)).is_ok());
        drop(others);
        assert!(open.lock().unwrap().is_empty(), "nothing is left counted");
    }

    #[test]
    fn refusals_are_logged_once_a_while_and_few_wait_at_once() {
        let r = Refusals::default();
        assert!(!r.again(&member(1)), "the first refusal is logged");
        assert!(r.again(&member(1)), "the next one within the window is not");
        assert!(!r.again(&member(2)), "another peer's is");
        // Many keys (anyone may dial): the memory stays bounded.
        for i in 0..(REFUSED_KEPT as u32 * 3) {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_be_bytes());
            r.again(&MemberKey::from_bytes(&b));
        }
        assert!(r.last.lock().unwrap().len() <= REFUSED_KEPT);
        let slots: Vec<_> = (0..REFUSALS_WAITING)
            .map(|_| r.slot().expect("a place"))
            .collect();
        assert!(r.slot().is_none(), "past the limit, closed at once");
        drop(slots);
        assert!(r.slot().is_some(), "places come back as refusals end");
    }

    #[test]
    fn only_a_syn_is_a_connection_asked_for() {
        // IPv4, TCP, to 100.70.1.2:5000; flags at byte 13 of the TCP header.
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[16..20].copy_from_slice(&[100, 70, 1, 2]);
        p[22..24].copy_from_slice(&5000u16.to_be_bytes());
        p[33] = 0x02;
        assert_eq!(syn_to(&p), Some("100.70.1.2:5000".parse().unwrap()));
        p[33] = 0x12; // SYN-ACK
        assert_eq!(syn_to(&p), None);
        p[9] = 17; // UDP
        assert_eq!(syn_to(&p), None);
        assert_eq!(syn_to(&p[..10]), None, "a short packet is nothing");
    }
}

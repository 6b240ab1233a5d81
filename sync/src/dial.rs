//! Dial policy: which members to keep sessions with (hubs and laptops,
//! members found on the LAN, and a few random ones as the epidemic
//! fallback), the backoff between tries, and the dial itself (connect, then
//! the hello both ways).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetdeck_store::{MemberKey, Role, SiteId};
use iroh::address_lookup::MemoryLookup;
use iroh::{EndpointAddr, RelayUrl};
use rand::RngExt;

use crate::bind::{endpoint_id, member_key};
use crate::engine::Inner;
use crate::error::SyncError;
use crate::lock;
use crate::peers::{Claim, Established, Live, PeerBook};
use crate::session::{self, Mode};
use crate::wire::{ALPN, Msg};

/// How often a replica with no hub or laptop connected swaps one of its
/// random sessions for a new one.
const ROTATE: Duration = Duration::from_secs(20);

/// How long the peers a crashed run had sessions with are dialed as
/// preferred ones when no session with them comes up (see
/// [`Dialing::resume`]).
const RESUME_FOR: Duration = Duration::from_secs(60);

/// How many of the fleet's admin and operator replicas a node keeps
/// sessions with when the fleet names no hubs (`sync.hubs`): every laptop
/// that runs `serve` would otherwise get a session with every node.
const NODE_HUBS: usize = 2;

/// A peer the last run had a session with when it stopped uncleanly.
struct Resume {
    /// Where that session reached it.
    addr: Option<SocketAddr>,
    until: Instant,
    /// A session with it came up since.
    up: bool,
}

/// Where peers are dialed: what the dialer knows beyond the fleet
/// document.
pub(crate) struct Dialing {
    /// The addresses iroh dials a peer at.
    pub(crate) lookup: MemoryLookup,
    /// The fleet's relay (`sync.relay_url` when sync started): every
    /// member is dialed through it too, addresses known or not.
    pub(crate) relay: Option<RelayUrl>,
    /// Members found on the LAN by mDNS, with the addresses they advertise.
    discovered: Mutex<HashMap<MemberKey, Vec<SocketAddr>>>,
    /// When a random session was last swapped for another (see `targets`).
    last_rotation: Mutex<Instant>,
    /// Peers of the last run, dialed first ([`Dialing::resume`]).
    resuming: Mutex<HashMap<MemberKey, Resume>>,
}

impl Dialing {
    pub(crate) fn new(lookup: MemoryLookup, relay: Option<RelayUrl>) -> Self {
        Dialing {
            lookup,
            relay,
            discovered: Mutex::new(HashMap::new()),
            last_rotation: Mutex::new(Instant::now()),
            resuming: Mutex::new(HashMap::new()),
        }
    }

    /// The last run of this replica stopped without closing its sessions
    /// (a crash, a power cut) while it had these peers: each still holds
    /// its dead session, and one that does not dial this replica itself (a
    /// hub's nodes, say, hold the sessions they dialed) would wait out the
    /// idle timeout before it learns that. So they are dialed at once, as
    /// preferred peers: the new session replaces the dead one on their
    /// side (`peers::judge`). Each stays preferred while that session
    /// lasts, or for [`RESUME_FOR`] if none comes up.
    pub(crate) fn resume(&self, peers: Vec<(MemberKey, Option<SocketAddr>)>) {
        let until = Instant::now() + RESUME_FOR;
        let mut resuming = lock(&self.resuming);
        for (key, addr) in peers {
            resuming.insert(
                key,
                Resume {
                    addr,
                    until,
                    up: false,
                },
            );
        }
    }

    /// The peers still being resumed, with the address each was reached at
    /// last run; forgets those whose session came up and ended, or whose
    /// time ran out with none.
    fn resuming(&self, peers: &PeerBook) -> HashMap<MemberKey, Option<SocketAddr>> {
        let mut resuming = lock(&self.resuming);
        if resuming.is_empty() {
            return HashMap::new();
        }
        let live = peers.live();
        let now = Instant::now();
        resuming.retain(|k, r| {
            if live.get(k).is_some_and(Live::is_open) {
                r.up = true;
                return true;
            }
            !r.up && now < r.until
        });
        resuming.iter().map(|(k, r)| (k.clone(), r.addr)).collect()
    }

    /// A member advertises these addresses on the LAN.
    pub(crate) fn found_on_lan(&self, key: MemberKey, addrs: Vec<SocketAddr>) {
        lock(&self.discovered).insert(key, addrs);
    }

    /// A member is no longer seen on the LAN.
    pub(crate) fn lost_on_lan(&self, key: &MemberKey) {
        lock(&self.discovered).remove(key);
    }
}

/// Dials a peer and runs the session (in the caller's task).
pub(crate) async fn dial(
    inner: &Arc<Inner>,
    addr: EndpointAddr,
    mode: Mode,
) -> Result<(), SyncError> {
    let remote = member_key(&addr.id);
    let peer = remote.short().to_string();
    if inner.faults.blocked(&inner.key, &remote) {
        return Err(SyncError::Connect {
            peer,
            detail: "partitioned".into(),
        });
    }
    let conn = tokio::time::timeout(Duration::from_secs(10), inner.endpoint.connect(addr, ALPN))
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
    let origin = inner.origin_of_dial();
    crate::wire::write_hello(&mut send, &inner.hello(None), origin)
        .await
        .map_err(|e| session_err(e.into()))?;
    let (hello, theirs, features) = session::read_hello(&mut recv).await.map_err(session_err)?;
    session::check_hello(&hello, &inner.fleet_id).map_err(session_err)?;
    // The dialer checks membership too: the peer it reached must be a
    // current member (never a revoked key that kept its address).
    let (member, revoked) = {
        let r = inner.lock_replica();
        let st = r.state();
        (
            st.members.contains_key(&remote),
            st.revoked.contains_key(&remote),
        )
    };
    if !member {
        let why = if revoked {
            format!("{peer} was revoked by an admin of this fleet")
        } else {
            format!("{peer} is not a member of this fleet")
        };
        tracing::warn!(peer = %remote, name = %hello.name, "refused a session: {why}");
        let _ = crate::wire::write_msg(&mut send, &Msg::Refuse(why.clone())).await;
        let _ = send.finish();
        conn.close(403u32.into(), b"refused");
        return Err(session_err(session::SessionError::Refused(why)));
    }
    let est = Established {
        conn,
        send,
        recv,
        remote,
        remote_name: hello.name,
        claim: Claim {
            dialer: inner.key.clone(),
            run: theirs.map(|o| o.run),
            dial: Some(origin.dial),
        },
        features,
    };
    inner.drive(est, mode).await.map_err(session_err)
}

/// A dial of this replica's to a peer under way, from the connect to the
/// end of its session. The dial loop does not dial a peer while one is:
/// a second dial from the same run would replace the first's session when
/// it comes up (`peers::judge`), and a slow handshake would otherwise be
/// dialed again after the backoff.
pub(crate) struct InFlight {
    inner: Arc<Inner>,
    peer: MemberKey,
}

impl InFlight {
    pub(crate) fn new(inner: &Arc<Inner>, peer: &MemberKey) -> InFlight {
        inner.peers.entry(peer, |b| b.dialing += 1);
        InFlight {
            inner: inner.clone(),
            peer: peer.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner
            .peers
            .entry(&self.peer, |b| b.dialing = b.dialing.saturating_sub(1));
    }
}

/// Keeps dialing the peers [`targets`] names that have no live session
/// and no dial under way, backing off on failures.
pub(crate) async fn dial_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.cfg.dial_every);
    loop {
        tick.tick().await;
        for (key, addrs) in targets(&inner) {
            let connected = inner.peers.is_connected(&key);
            if connected || inner.faults.blocked(&inner.key, &key) {
                continue;
            }
            let Some(id) = endpoint_id(&key) else {
                continue;
            };
            let due = inner.peers.entry(&key, |b| {
                if b.dialing > 0 || b.next_try.is_some_and(|t| Instant::now() < t) {
                    return false;
                }
                // Back off on failures: 1 s doubling to 30 s, with jitter.
                let base = Duration::from_millis(1000u64 << b.failures.min(5))
                    .min(Duration::from_secs(30));
                let jitter = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
                b.next_try = Some(Instant::now() + base + Duration::from_millis(jitter));
                true
            });
            if !due {
                continue;
            }
            let mut addr = EndpointAddr::new(id);
            for a in &addrs {
                addr = addr.with_ip_addr(*a);
            }
            if let Some(relay) = &inner.dialing.relay {
                addr = addr.with_relay_url(relay.clone());
            }
            inner.dialing.lookup.add_endpoint_info(addr.clone());
            let inner2 = inner.clone();
            let in_flight = InFlight::new(&inner, &key);
            tokio::spawn(async move {
                let started = Instant::now();
                let result = dial(&inner2, addr, Mode::Keep).await;
                drop(in_flight);
                inner2.peers.entry(&key, |b| {
                    match result {
                        // A session that lived a while counts as a success;
                        // so does one that made way for another session
                        // with the peer (which is connected).
                        Ok(()) => b.failures = 0,
                        Err(e) if e.made_way() => b.failures = 0,
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
            });
        }
    }
}

/// Members running nodes of this replica's own site(s): half the
/// fallback sessions go to them, so a site cut off from the hubs keeps
/// its nodes in step even where no LAN discovery runs.
fn site_peers(inner: &Inner) -> HashSet<MemberKey> {
    let r = inner.lock_replica();
    let st = r.state();
    let sites: HashSet<&SiteId> = st
        .nodes_run_by(&inner.key)
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
        .filter(|k| *k != inner.key)
        .collect()
}

/// The hubs the fleet names (`sync.hubs`: member names or keys), when it
/// names any that are members. Without them every admin and operator
/// replica counts as one.
fn hubs_of(st: &fleetdeck_store::document::FleetState) -> Option<HashSet<MemberKey>> {
    let path = fleetdeck_store::config::ConfigPath::parse("sync.hubs").ok()?;
    let names: Vec<&str> = st
        .fleet
        .get(&path)?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let hubs: HashSet<MemberKey> = st
        .members
        .values()
        .filter(|m| names.contains(&m.name.as_str()) || names.contains(&m.key.as_str()))
        .map(|m| m.key.clone())
        .collect();
    (!hubs.is_empty()).then_some(hubs)
}

/// Peers this replica should keep sessions with: the hubs (`sync.hubs`;
/// without it every admin/operator replica: hubs and laptops) that
/// publish an address or are reached through the relay, members found on
/// this LAN (a site's own nodes), the peers a crashed last run had
/// sessions with ([`Dialing::resume`]), and, only while no such hub or laptop
/// is connected, a few others: half from its own site, half random.
///
/// Random sessions are the fallback that keeps changes spreading
/// epidemically when the hub is down or a site is cut off. While a hub or
/// laptop is connected, changes and heartbeats go through it, and an
/// idle session is not free: iroh pings each path after 5 s of quiet
/// (BENCHMARKS.md, P7). So random sessions this
/// replica dialed are closed once one is connected.
fn targets(inner: &Inner) -> Vec<(MemberKey, Vec<SocketAddr>)> {
    let me = &inner.key;
    let resuming = inner.dialing.resuming(&inner.peers);
    // Where a member can be dialed: its published addresses (in its member
    // record; a node's also in its latest heartbeat), where mDNS found it,
    // where a crashed last run reached it.
    let addrs_of = |m: &fleetdeck_store::document::Member,
                    reported: &HashMap<MemberKey, Vec<String>>,
                    discovered: &HashMap<MemberKey, Vec<SocketAddr>>|
     -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = m
            .addrs
            .iter()
            .chain(reported.get(&m.key).into_iter().flatten())
            .filter_map(|a| a.parse().ok())
            .collect();
        addrs.extend(discovered.get(&m.key).into_iter().flatten());
        addrs.extend(resuming.get(&m.key).copied().flatten());
        addrs.sort();
        addrs.dedup();
        addrs
    };
    let reachable = |addrs: &[SocketAddr]| !addrs.is_empty() || inner.dialing.relay.is_some();
    // The preferred first (hubs, the LAN, the last run's peers): while a
    // hub is connected they are all this replica dials, and the others'
    // addresses are not even parsed (every second, for every member).
    let no_reports = HashMap::new();
    let mut out = Vec::new();
    let mut preferred_keys = HashSet::new();
    let mut people = Vec::new();
    // A node in a fleet that names no hubs: at most NODE_HUBS of them.
    let capped;
    let mut lan = HashSet::new();
    {
        let r = inner.lock_replica();
        let st = r.state();
        let discovered = lock(&inner.dialing.discovered);
        let hubs = hubs_of(st);
        capped = hubs.is_none() && st.members.get(me).is_some_and(|m| m.role == Role::Node);
        lan.extend(discovered.keys().cloned());
        lan.extend(resuming.keys().cloned());
        // Nodes' reported addresses are looked up only when a node is
        // among the preferred (one on `sync.hubs`, say): this runs every
        // second on a hub that holds a thousand registers.
        let mut reported = None;
        for m in st.members.values().filter(|m| m.key != *me) {
            let hub = match &hubs {
                Some(h) => h.contains(&m.key),
                None => m.role.manages_fleet(),
            };
            if hub {
                people.push(m.key.clone());
            }
            let preferred = hub || discovered.contains_key(&m.key) || resuming.contains_key(&m.key);
            if preferred {
                preferred_keys.insert(m.key.clone());
                let reported = match m.role {
                    Role::Node => &*reported.get_or_insert_with(|| r.reported_addrs()),
                    _ => &no_reports,
                };
                let addrs = addrs_of(m, reported, &discovered);
                if reachable(&addrs) {
                    out.push((m.key.clone(), addrs));
                }
            }
        }
    }
    {
        let live = inner.peers.live();
        let is_live = |k: &MemberKey| live.get(k).is_some_and(Live::is_open);
        if capped {
            // The first NODE_HUBS live ones in an order of this node's own
            // (rendezvous hashing spreads the nodes over the hubs) are
            // kept; the others it dialed are closed and not dialed again
            // while those stay up. Until NODE_HUBS are up it dials them all.
            let mut up: Vec<&MemberKey> = people.iter().filter(|k| is_live(k)).collect();
            if up.len() >= NODE_HUBS {
                up.sort_by_key(|k| fleetdeck_store::rollout::fnv(&format!("{me}{k}")));
                let extra: HashSet<&MemberKey> = people
                    .iter()
                    .filter(|k| !up[..NODE_HUBS].contains(k) && !lan.contains(*k))
                    .collect();
                for k in &extra {
                    if let Some(l) = live.get(*k)
                        && l.claim.dialer == *me
                        && l.is_open()
                    {
                        l.conn.close(0u32.into(), b"enough hubs");
                    }
                }
                out.retain(|(k, _)| !extra.contains(k));
            }
        }
        if people.iter().any(is_live) {
            for (k, l) in live.iter() {
                if !preferred_keys.contains(k) && l.claim.dialer == *me && l.is_open() {
                    l.conn.close(0u32.into(), b"a hub is connected");
                }
            }
            return out;
        }
    }
    let mut others = Vec::new();
    {
        let r = inner.lock_replica();
        let reported = r.reported_addrs();
        let discovered = lock(&inner.dialing.discovered);
        for m in r.state().members.values() {
            if m.key == *me || preferred_keys.contains(&m.key) {
                continue;
            }
            let addrs = addrs_of(m, &reported, &discovered);
            if reachable(&addrs) {
                others.push((m.key.clone(), addrs));
            }
        }
    }
    // No hub or laptop: the fallback. Only now is it worth walking the
    // nodes for this replica's site peers.
    let site_peers = site_peers(inner);
    let live = inner.peers.live();
    let is_live = |k: &MemberKey| live.get(k).is_some_and(Live::is_open);
    // Top up to `random_peers` live sessions with the others, rather
    // than sampling afresh every round: that grew a full mesh (4,911 of
    // 4,950 sessions among 100 replicas in two minutes, BENCHMARKS.md).
    // Only sessions this replica dialed count: each replica dialing its
    // own few makes a random k-out graph, connected with high
    // probability; counting incoming ones too let popular replicas stop
    // dialing and groups form.
    let dialed_by_me = |k: &MemberKey| {
        live.get(k)
            .is_some_and(|l| l.claim.dialer == *me && l.is_open())
    };
    let mut have = others.iter().filter(|(k, _)| dialed_by_me(k)).count();
    // But a frozen random graph may fall apart into groups that never
    // hear from each other (nodes cut off from every hub, each content
    // with two sessions inside its own group). So every ROTATE one
    // random session this replica dialed makes way for a new draw.
    let mut rotated = lock(&inner.dialing.last_rotation);
    if have >= inner.cfg.random_peers && rotated.elapsed() >= ROTATE {
        let mine: Vec<&Live> = others
            .iter()
            .filter_map(|(k, _)| live.get(k))
            .filter(|l| l.claim.dialer == *me && l.is_open())
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
    let want = inner.cfg.random_peers.saturating_sub(have);
    let site_quota = inner.cfg.random_peers.div_ceil(2).saturating_sub(site_have);
    out.extend(draw_fallback(others, want, &site_peers, site_quota));
    out
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

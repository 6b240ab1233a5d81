//! The peer book: the one live session kept per peer, and what is known of
//! each peer across its sessions (its document heads, when it last synced,
//! its last error, when to dial it again). `peers` and the status file show
//! it as [`PeerStatus`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fleetdeck_store::peer::PathKind;
use fleetdeck_store::{MemberKey, Replica, now_ms};
use iroh::endpoint::{Connection, RecvStream, SendStream};

use crate::lock;
use crate::session::SessionError;
use crate::traffic::Wire;

/// What `peers` shows for one peer (a plain record the console reads too).
pub use fleetdeck_store::peer::PeerStatus;

/// A connection past the hello in both directions.
pub(crate) struct Established {
    pub(crate) conn: Connection,
    pub(crate) send: SendStream,
    pub(crate) recv: RecvStream,
    pub(crate) remote: MemberKey,
    pub(crate) remote_name: String,
    /// How the session came about: decides which of two sessions with the
    /// peer survives.
    pub(crate) claim: Claim,
    /// What the peer speaks beyond the protocol version (its hello).
    pub(crate) features: crate::wire::Features,
}

/// How a session came about, as its hellos said.
#[derive(Clone, Debug)]
pub(crate) struct Claim {
    /// Who dialed.
    pub(crate) dialer: MemberKey,
    /// The peer's run ([`crate::wire::Origin::run`]), when it said (a peer
    /// from before origins does not).
    pub(crate) run: Option<u64>,
    /// The dialer's number for this dial ([`crate::wire::Origin::dial`]),
    /// when known.
    pub(crate) dial: Option<u64>,
}

/// The session kept with one peer.
pub(crate) struct Live {
    pub(crate) conn: Connection,
    pub(crate) claim: Claim,
    /// The run of the peer whose session this one replaced when the peer
    /// restarted: a session from that run again, while this one is heard
    /// from, means two processes hold the peer's key, and it is refused
    /// rather than let the two take the session from each other in turn.
    displaced: Option<u64>,
    /// Stream frames the connection had received when the session came up
    /// (the peer's hello): more since means the peer spoke after it.
    stream_rx_at_up: u64,
}

impl Live {
    pub(crate) fn is_open(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// Whether the peer sent anything on this session after its hello (a
    /// live peer sends its digest at once). A process killed in the middle
    /// of a dial may leave a session whose hello arrived and nothing more.
    fn heard(&self) -> bool {
        self.conn.stats().frame_rx.stream > self.stream_rx_at_up
    }
}

/// What became of a new session with a peer (see [`judge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No live session with the peer: the new one is kept.
    First,
    /// The peer restarted (its hello names another run): the old session
    /// is dead, and the new one replaces it.
    Restarted,
    /// The new session wins over the live one (the later dial of the same
    /// dialer, or the winner of two crossing dials); the old one is closed.
    Supersedes,
    /// The live session wins (the new one lost the tie-break of two
    /// crossing dials, or is an earlier dial than the live one); the new
    /// one is closed.
    Loses,
    /// The new session comes from the run the live one replaced: another
    /// process holds the peer's key. Refused.
    Displaced,
}

/// Which of a live session and a new one with the same peer is kept.
/// Both replicas judge the same two sessions alike, in whichever order
/// they finish their hellos, so they keep the same one:
/// - another run of the peer than the live session's: the peer restarted
///   (a crash, a power cut), and the live session is dead though no close
///   said so: the new one wins at once, rather than after the idle
///   timeout. Unless the new one comes from the very run the live one
///   replaced while the live one is `heard` from: then two processes
///   hold the key, and the new one is refused;
/// - two dials by one replica in one run: the dialer gave up on the first
///   (it dials only a peer it holds no session with), so the later dial
///   wins (by its number; by arrival from a peer that sends none);
/// - a dial by each (both dialed at once): the session dialed by the
///   smaller key wins, on both sides alike, so crossing dials settle on
///   one session rather than flap.
fn judge(old: &Claim, displaced: Option<u64>, heard: bool, new: &Claim) -> Verdict {
    if let (Some(was), Some(now)) = (old.run, new.run)
        && was != now
    {
        return if displaced == Some(now) && heard {
            Verdict::Displaced
        } else {
            Verdict::Restarted
        };
    }
    if old.dialer != new.dialer {
        return if new.dialer < old.dialer {
            Verdict::Supersedes
        } else {
            Verdict::Loses
        };
    }
    match (old.dial, new.dial) {
        (Some(was), Some(now)) if now <= was => Verdict::Loses,
        _ => Verdict::Supersedes,
    }
}

/// What is known of one peer, kept across its sessions.
#[derive(Default)]
pub(crate) struct Entry {
    /// The peer's document heads as of the last sync message.
    their_heads: Option<Vec<automerge::ChangeHash>>,
    /// Dials that failed in a row (the dial loop's backoff).
    pub(crate) failures: u32,
    /// Not to be dialed before this.
    pub(crate) next_try: Option<Instant>,
    /// Dials of this replica's to the peer under way (connecting, or
    /// running their session): see `dial::InFlight`.
    pub(crate) dialing: u32,
    last_sync_ms: Option<i64>,
    pub(crate) last_error: Option<String>,
    name: String,
}

#[derive(Default)]
pub(crate) struct PeerBook {
    live: Mutex<HashMap<MemberKey, Live>>,
    entries: Mutex<HashMap<MemberKey, Entry>>,
    /// What the links of sessions that have ended carried.
    wire_ended: Mutex<Wire>,
    /// Sessions registered so far.
    up: AtomicU64,
}

impl PeerBook {
    /// Keeps one session per peer ([`judge`]): registers `conn` unless the
    /// live session wins, and closes the live one if `conn` replaces it.
    pub(crate) fn register(&self, peer: &MemberKey, conn: &Connection, claim: &Claim) -> Verdict {
        let mut live = lock(&self.live);
        let mut displaced = None;
        let verdict = match live.get(peer).filter(|old| old.is_open()) {
            None => Verdict::First,
            Some(old) => {
                let verdict = judge(&old.claim, old.displaced, old.heard(), claim);
                match verdict {
                    Verdict::Loses | Verdict::Displaced => return verdict,
                    Verdict::Restarted => displaced = old.claim.run,
                    _ => displaced = old.displaced,
                }
                old.conn.close(1u32.into(), b"superseded");
                verdict
            }
        };
        let replaced = live.insert(
            peer.clone(),
            Live {
                conn: conn.clone(),
                claim: claim.clone(),
                displaced,
                stream_rx_at_up: conn.stats().frame_rx.stream,
            },
        );
        if let Some(old) = replaced {
            // Its own unregister no longer finds it: count its link here.
            *lock(&self.wire_ended) += Wire::of(&old.conn);
        }
        self.up.fetch_add(1, Ordering::Relaxed);
        verdict
    }

    /// Sessions that came up so far.
    pub(crate) fn sessions_up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }

    /// Forgets the session on `conn`; false if it was no longer the live
    /// one (a newer session replaced it).
    pub(crate) fn unregister(&self, peer: &MemberKey, conn: &Connection) -> bool {
        let mut live = lock(&self.live);
        if live
            .get(peer)
            .is_some_and(|l| l.conn.stable_id() == conn.stable_id())
        {
            live.remove(peer);
            *lock(&self.wire_ended) += Wire::of(conn);
            return true;
        }
        false
    }

    /// Closes every live session with a word to its peer (shutting down),
    /// so peers see this replica leave now rather than after the idle
    /// timeout.
    pub(crate) fn close_all(&self, reason: &[u8]) {
        for l in lock(&self.live).values() {
            l.conn.close(0u32.into(), reason);
        }
    }

    /// Notes how a session with `peer` ended.
    pub(crate) fn ended(&self, peer: &MemberKey, result: &Result<(), SessionError>) {
        self.entry(peer, |b| match result {
            Ok(()) => b.last_error = None,
            Err(e) => b.last_error = Some(e.to_string()),
        });
    }

    /// Notes that `peer` synced just now, and the heads it has (if it said).
    pub(crate) fn synced(&self, peer: &MemberKey, their_heads: Option<Vec<automerge::ChangeHash>>) {
        self.entry(peer, |b| {
            b.last_sync_ms = Some(now_ms());
            if their_heads.is_some() {
                b.their_heads = their_heads;
            }
        });
    }

    /// Notes the name `peer` gave in its hello.
    pub(crate) fn named(&self, peer: &MemberKey, name: &str) {
        self.entry(peer, |b| b.name = name.to_string());
    }

    /// Runs `f` on `peer`'s entry (a fresh one if it has none yet).
    pub(crate) fn entry<R>(&self, peer: &MemberKey, f: impl FnOnce(&mut Entry) -> R) -> R {
        f(lock(&self.entries).entry(peer.clone()).or_default())
    }

    /// Lets `peer` be dialed on the next round rather than after a backoff
    /// (it was just found on the LAN).
    pub(crate) fn dial_soon(&self, peer: &MemberKey) {
        if let Some(b) = lock(&self.entries).get_mut(peer) {
            b.next_try = None;
        }
    }

    /// The live sessions, for dial policy to look over (and close some).
    pub(crate) fn live(&self) -> MutexGuard<'_, HashMap<MemberKey, Live>> {
        lock(&self.live)
    }

    pub(crate) fn is_connected(&self, peer: &MemberKey) -> bool {
        lock(&self.live).get(peer).is_some_and(Live::is_open)
    }

    pub(crate) fn connected(&self) -> Vec<MemberKey> {
        lock(&self.live)
            .iter()
            .filter(|(_, l)| l.is_open())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// What the links of every session so far carried: those that ended and
    /// those still live.
    pub(crate) fn wire(&self) -> Wire {
        let live = lock(&self.live);
        let mut w = *lock(&self.wire_ended);
        for l in live.values() {
            w += Wire::of(&l.conn);
        }
        w
    }

    /// Round-trip time of each live session (the best of its open paths).
    pub(crate) fn rtts(&self) -> Vec<Duration> {
        let live = lock(&self.live);
        live.values()
            .filter_map(|l| {
                let paths = l.conn.paths();
                paths.iter().filter_map(|p| l.conn.rtt(p.id())).min()
            })
            .collect()
    }

    /// Every member of `r`'s fleet but `me`, connected or not.
    pub(crate) fn status(&self, r: &mut Replica, me: &MemberKey) -> Vec<PeerStatus> {
        let mut reported = r.reported_addrs();
        let members: Vec<(MemberKey, String, Vec<String>)> = r
            .state()
            .members
            .values()
            .filter(|m| m.key != *me)
            .map(|m| {
                // A node's latest heartbeat says where it listens now.
                let addrs = reported.remove(&m.key).unwrap_or_else(|| m.addrs.clone());
                (m.key.clone(), m.name.clone(), addrs)
            })
            .collect();
        let live = lock(&self.live);
        let book = lock(&self.entries);
        let mut ours = r.heads();
        ours.sort();
        let mut counted: HashMap<Vec<automerge::ChangeHash>, usize> = HashMap::new();
        members
            .into_iter()
            .map(|(k, name, addrs)| {
                let l = live.get(&k).filter(|l| l.is_open());
                let b = book.get(&k);
                // The path the session sends on, and its round-trip time.
                let selected = l.and_then(|l| {
                    let paths = l.conn.paths();
                    let p = paths.iter().find(|p| p.is_selected())?;
                    let rtt = l.conn.rtt(p.id());
                    Some((p.remote_addr().clone(), rtt))
                });
                let (addr, path) = match &selected {
                    Some((iroh::TransportAddr::Ip(a), _)) => {
                        (Some(a.to_string()), Some(PathKind::Direct))
                    }
                    Some((iroh::TransportAddr::Relay(url), _)) => {
                        (Some(url.to_string()), Some(PathKind::Relay))
                    }
                    _ => (addrs.first().cloned(), None),
                };
                let rtt_ms = selected
                    .and_then(|(_, rtt)| rtt)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                // What the peer lacks: our changes that are not ancestors of
                // its heads (heads we do not hold ourselves say nothing).
                // A peer in step has our heads: nothing to count. Otherwise
                // counted once per distinct set of heads: automerge builds
                // every change it returns, which for every peer every
                // second stalled a hub of 300 nodes (BENCHMARKS.md, P10).
                let lacks = b.and_then(|b| b.their_heads.as_ref()).map(|heads| {
                    let mut theirs = heads.clone();
                    theirs.sort();
                    if theirs == ours {
                        return 0;
                    }
                    *counted.entry(theirs).or_insert_with_key(|theirs| {
                        let am = r.doc_mut().automerge_mut();
                        let known: Vec<_> = theirs
                            .iter()
                            .filter(|h| am.get_change_by_hash(h).is_some())
                            .copied()
                            .collect();
                        am.get_changes(&known).len()
                    })
                });
                PeerStatus {
                    key: k.to_string(),
                    name,
                    connected: l.is_some(),
                    addr,
                    last_sync_ms: b.and_then(|b| b.last_sync_ms),
                    lacks,
                    last_error: b.and_then(|b| b.last_error.clone()),
                    path,
                    rtt_ms,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MemberKey {
        MemberKey::from_bytes(&[b; 32])
    }

    fn claim(dialer: u8, run: Option<u64>, dial: Option<u64>) -> Claim {
        Claim {
            dialer: key(dialer),
            run,
            dial,
        }
    }

    /// Which of two sessions a replica keeps when `first` finished its
    /// hello there before `second`.
    fn kept(first: &Claim, second: &Claim) -> &'static str {
        match judge(first, None, true, second) {
            Verdict::Supersedes | Verdict::Restarted => "second",
            _ => "first",
        }
    }

    #[test]
    fn a_session_from_a_restarted_peer_replaces_the_live_one_whoever_dialed() {
        // The peer (key 2) ran as run 10; it crashed and came back as run 11.
        for old_dialer in [1, 2] {
            for new_dialer in [1, 2] {
                let old = claim(old_dialer, Some(10), Some(4));
                let new = claim(new_dialer, Some(11), Some(0));
                assert_eq!(judge(&old, None, true, &new), Verdict::Restarted);
            }
        }
        // The run it replaced comes back while the new run's session is
        // heard from: another process holds the key.
        let live = claim(2, Some(11), Some(1));
        let back = claim(2, Some(10), Some(9));
        assert_eq!(judge(&live, Some(10), true, &back), Verdict::Displaced);
        // Not heard from since its hello: it may be the dead one (a
        // process killed in the middle of a dial, its hello handled late),
        // so the session that comes takes its place.
        assert_eq!(judge(&live, Some(10), false, &back), Verdict::Restarted);
        // A third run is a restart again.
        let third = claim(2, Some(12), Some(1));
        assert_eq!(judge(&live, Some(10), true, &third), Verdict::Restarted);
    }

    #[test]
    fn crossing_dials_settle_on_the_smaller_dialers_session_on_both_sides() {
        let by_small = claim(1, Some(10), Some(3));
        let by_big = claim(2, Some(10), Some(7));
        // Each side may finish the two hellos in either order.
        assert_eq!(kept(&by_small, &by_big), "first");
        assert_eq!(kept(&by_big, &by_small), "second");
        // A peer that sends no origin: the same rule.
        let (a, b) = (claim(1, None, None), claim(2, None, None));
        assert_eq!(kept(&a, &b), "first");
        assert_eq!(kept(&b, &a), "second");
    }

    #[test]
    fn of_two_dials_by_one_replica_the_later_wins_in_either_order() {
        let earlier = claim(2, Some(10), Some(3));
        let later = claim(2, Some(10), Some(4));
        assert_eq!(kept(&earlier, &later), "second");
        assert_eq!(kept(&later, &earlier), "first");
        // No numbers (a peer from before origins): the newer arrival wins,
        // so a peer that restarted is not locked out either.
        let (a, b) = (claim(2, None, None), claim(2, None, None));
        assert_eq!(kept(&a, &b), "second");
    }
}

//! The peer book: the one live session kept per peer, and what is known of
//! each peer across its sessions (its document heads, when it last synced,
//! its last error, when to dial it again). `peers` and the status file show
//! it as [`PeerStatus`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// Who dialed: decides which of two crossing sessions survives.
    pub(crate) dialer: MemberKey,
}

/// The session kept with one peer.
pub(crate) struct Live {
    pub(crate) conn: Connection,
    pub(crate) dialer: MemberKey,
}

impl Live {
    pub(crate) fn is_open(&self) -> bool {
        self.conn.close_reason().is_none()
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
}

impl PeerBook {
    /// Keeps one session per peer: when both sides dial at once, the
    /// session dialed by the smaller key survives, on both sides alike.
    pub(crate) fn register(&self, peer: &MemberKey, conn: &Connection, dialer: &MemberKey) -> bool {
        let mut live = lock(&self.live);
        if let Some(old) = live.get(peer)
            && old.is_open()
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
            *lock(&self.wire_ended) += Wire::of(&old.conn);
        }
        true
    }

    pub(crate) fn unregister(&self, peer: &MemberKey, conn: &Connection) {
        let mut live = lock(&self.live);
        if live
            .get(peer)
            .is_some_and(|l| l.conn.stable_id() == conn.stable_id())
        {
            live.remove(peer);
            *lock(&self.wire_ended) += Wire::of(conn);
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
        let members: Vec<(MemberKey, String, Vec<String>)> = r
            .state()
            .members
            .values()
            .filter(|m| m.key != *me)
            .map(|m| (m.key.clone(), m.name.clone(), m.addrs.clone()))
            .collect();
        let live = lock(&self.live);
        let book = lock(&self.entries);
        members
            .into_iter()
            .map(|(k, name, addrs)| {
                let l = live.get(&k).filter(|l| l.is_open());
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
}

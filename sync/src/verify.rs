//! The one gate where document changes from elsewhere (a peer, a bundle)
//! enter a replica. Each change is checked alone, before anything of it is
//! applied:
//!
//! - it decodes, and carries its author's signature (the key its actor id
//!   names, see `fleetdeck_store::sign`): a change relayed by anyone is
//!   still its author's;
//! - it is not a second change for an (actor, seq) this replica holds (its
//!   author equivocated);
//! - its author may make every op in it, judged against the document as of
//!   the change's own dependencies (`fleetdeck_store::rights`), the same on
//!   every replica.
//!
//! A change is judged once every dependency is held; until then it waits
//! (bounded) in the [`Gate`]. Admitted changes are taken into the document
//! one by one, so a change that depends on another in the same message is
//! judged against it, and stored together at the end. A refused change is
//! never applied, nor is anything that depends on it. The document is
//! never forked or rebuilt to do this.
//!
//! On the wire, a sync message travels without the changes automerge put in
//! it: they go beside it, each with its signature ([`WireChange`]).

use std::collections::BTreeSet;

use automerge::sync::{ChunkList, Message, State, SyncDoc};
use automerge::{Change, ChangeHash};
use fleetdeck_store::document::author_of;
use fleetdeck_store::replica::SignedChange;
use fleetdeck_store::{Replica, rights};

/// A change as it travels: its bytes and its author's signature (64 bytes;
/// empty for a change stored before changes were signed, which any
/// checking replica refuses).
pub type WireChange = (Vec<u8>, Vec<u8>);

/// Changes held back until their dependencies arrive, at most this many
/// per session; past it the oldest are dropped (the peer is asked to send
/// again by the next anti-entropy round).
const MAX_PENDING: usize = 10_000;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Admitted {
    pub accepted: usize,
    /// Every refused change: (change id, author, why).
    pub refused: Vec<Refused>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub change: String,
    pub author: String,
    pub reason: String,
}

/// What one session (or one bundle import) keeps between messages: the
/// changes that wait for a dependency.
#[derive(Default)]
pub struct Gate {
    pending: Vec<SignedChange>,
}

impl Gate {
    /// Changes waiting for a dependency.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

fn refuse(out: &mut Admitted, c: &Change, reason: String) {
    let author = author_of(c.actor_id());
    tracing::warn!(change = %c.hash(), %author, "refused a change: {reason}");
    out.refused.push(Refused {
        change: c.hash().to_string(),
        author,
        reason,
    });
}

/// Decodes changes as they came over the wire or out of a bundle; an
/// undecodable one is refused alone.
pub fn decode(changes: Vec<WireChange>, out: &mut Admitted) -> Vec<SignedChange> {
    let mut decoded = Vec::with_capacity(changes.len());
    for (bytes, sig) in changes {
        let change = match Change::from_bytes(bytes) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("refused a change that does not decode: {e}");
                out.refused.push(Refused {
                    change: String::new(),
                    author: String::new(),
                    reason: format!("does not decode: {e}"),
                });
                continue;
            }
        };
        let sig = <[u8; 64]>::try_from(sig.as_slice()).ok();
        decoded.push(SignedChange { change, sig });
    }
    decoded
}

/// The checks of one change whose dependencies are all held.
fn check(replica: &mut Replica, c: &SignedChange) -> Result<(), String> {
    c.verify().map_err(|e| e.to_string())?;
    if replica.equivocates(&c.change) {
        return Err(format!(
            "a second change for seq {} of actor {}: its author equivocated",
            c.change.seq(),
            c.change.actor_id()
        ));
    }
    let doc: &automerge::AutoCommit = replica.doc_mut().automerge_mut();
    rights::judge(doc, &c.change).map_err(|r| r.rule)
}

/// Checks `changes` (and those the gate holds) and takes in every one that
/// passes, durably. Changes whose dependencies are missing stay in the gate.
pub fn admit(
    replica: &mut Replica,
    gate: &mut Gate,
    changes: Vec<SignedChange>,
) -> fleetdeck_store::Result<Admitted> {
    let mut out = Admitted::default();
    admit_into(replica, gate, changes, &mut out)?;
    Ok(out)
}

fn admit_into(
    replica: &mut Replica,
    gate: &mut Gate,
    changes: Vec<SignedChange>,
    out: &mut Admitted,
) -> fleetdeck_store::Result<()> {
    let mut pending = std::mem::take(&mut gate.pending);
    pending.extend(changes);
    let mut seen: BTreeSet<ChangeHash> = BTreeSet::new();
    loop {
        let mut progress = false;
        let mut waiting = Vec::new();
        for c in pending {
            let hash = c.change.hash();
            if !seen.insert(hash) || replica.holds(&hash) {
                continue;
            }
            if c.change.deps().iter().any(|d| !replica.holds(d)) {
                seen.remove(&hash);
                waiting.push(c);
                continue;
            }
            match check(replica, &c) {
                Ok(()) => {
                    replica.take_in(c)?;
                    out.accepted += 1;
                    progress = true;
                }
                Err(reason) => refuse(out, &c.change, reason),
            }
        }
        pending = waiting;
        if !progress || pending.is_empty() {
            break;
        }
    }
    if pending.len() > MAX_PENDING {
        let drop = pending.len() - MAX_PENDING;
        tracing::warn!("dropped {drop} changes that waited too long for their dependencies");
        pending.drain(..drop);
    }
    gate.pending = pending;
    if out.accepted > 0 {
        replica.settle()?;
    }
    Ok(())
}

/// The next sync message for the peer behind `state`, with the changes it
/// carries taken out and put beside it with their signatures.
pub fn outgoing(replica: &mut Replica, state: &mut State) -> Option<(Message, Vec<WireChange>)> {
    let before = state.sent_hashes.clone();
    let mut msg = replica
        .doc_mut()
        .automerge_mut()
        .sync()
        .generate_sync_message(state)?;
    msg.changes = ChunkList::empty();
    let sent: Vec<ChangeHash> = state.sent_hashes.difference(&before).copied().collect();
    let mut changes = Vec::with_capacity(sent.len());
    for hash in sent {
        let Some(c) = replica.doc_mut().automerge_mut().get_change_by_hash(&hash) else {
            continue;
        };
        let sig = replica
            .signature(&hash)
            .map_or_else(Vec::new, |s| s.to_vec());
        changes.push((c.raw_bytes().to_vec(), sig));
    }
    Some((msg, changes))
}

/// Receives one sync message and the changes beside it: the changes go
/// through [`admit`]; the message itself (heads, bloom filters, needs)
/// updates `state`. Changes inside the automerge message are not accepted:
/// they would bypass the gate.
pub fn receive(
    replica: &mut Replica,
    state: &mut State,
    gate: &mut Gate,
    mut msg: Message,
    changes: Vec<WireChange>,
) -> fleetdeck_store::Result<Admitted> {
    let mut out = Admitted::default();
    if !msg.changes.is_empty() {
        out.refused.push(Refused {
            change: String::new(),
            author: String::new(),
            reason: format!(
                "{} change(s) came inside the sync message, without signatures",
                msg.changes.len()
            ),
        });
        msg.changes = ChunkList::empty();
    }
    let decoded = decode(changes, &mut out);
    admit_into(replica, gate, decoded, &mut out)?;

    replica
        .doc_mut()
        .automerge_mut()
        .sync()
        .receive_sync_message(state, msg)?;
    Ok(out)
}

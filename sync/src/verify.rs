//! The one place where document changes from elsewhere (a peer, a bundle)
//! enter a replica: each change is checked before it is applied.
//!
//! Checked now: the change's author (the member key inside its actor id) is
//! a member of the fleet, as of the changes accepted so far (a batch that
//! enrolls a member and then carries that member's changes is accepted in
//! order). Refused changes are never applied; a change that depends on a
//! refused one can never be applied either, and is dropped with it.

use automerge::Change;
use automerge::sync::{Message, State, SyncDoc};
use fleetdeck_store::document::author_of;
use fleetdeck_store::{MemberKey, Replica};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Admitted {
    pub accepted: usize,
    /// (change id, author) of every refused change.
    pub refused: Vec<(String, String)>,
}

/// Checks `changes` and applies the acceptable ones, durably.
pub fn admit(replica: &mut Replica, changes: Vec<Change>) -> fleetdeck_store::Result<Admitted> {
    let mut out = Admitted::default();
    let mut pending = changes;
    loop {
        let members = &replica.state().members;
        let (ok, rest): (Vec<Change>, Vec<Change>) = pending.into_iter().partition(|c| {
            MemberKey::parse(&author_of(c.actor_id())).is_ok_and(|k| members.contains_key(&k))
        });
        if ok.is_empty() {
            pending = rest;
            break;
        }
        out.accepted += ok.len();
        replica.apply_changes(ok)?;
        pending = rest;
        if pending.is_empty() {
            break;
        }
    }
    for c in pending {
        let author = author_of(c.actor_id());
        tracing::warn!(change = %c.hash(), %author, "refused a change whose author is not a member");
        out.refused.push((c.hash().to_string(), author));
    }
    Ok(out)
}

/// Receives one automerge sync message: the changes it carries go through
/// [`admit`]; the rest (heads, bloom filters) updates `state`.
pub fn receive(
    replica: &mut Replica,
    state: &mut State,
    msg: Message,
) -> fleetdeck_store::Result<Admitted> {
    let am = replica.doc_mut().automerge_mut();
    if msg.changes.is_empty() {
        am.sync().receive_sync_message(state, msg)?;
        return Ok(Admitted::default());
    }
    let heads = am.get_heads();
    let mut staging = am.fork();
    // Record what the message changes, so the replica can bring its state
    // up to date part by part if it takes the fork as it is.
    staging.update_diff_cursor();
    staging.sync().receive_sync_message(state, msg)?;
    let new: Vec<Change> = staging.get_changes(&heads);
    let members = &replica.state().members;
    let all_by_members = new.iter().all(|c| {
        MemberKey::parse(&author_of(c.actor_id())).is_ok_and(|k| members.contains_key(&k))
    });
    if all_by_members {
        // The usual case: take the fork rather than apply every change a
        // second time.
        let accepted = new.len();
        replica.adopt(staging)?;
        return Ok(Admitted {
            accepted,
            refused: Vec::new(),
        });
    }
    admit(replica, new)
}

//! The one place where document changes from elsewhere (a peer, a bundle)
//! enter a replica: each change is checked before it is applied.
//!
//! Checked now: the change's author (the member key inside its actor id) is
//! a member of the fleet, as of the changes accepted so far (a batch that
//! enrolls a member and then carries that member's changes is accepted in
//! order). Refused changes are never applied; a change that depends on a
//! refused one can never be applied either, and is dropped with it.

use std::collections::BTreeMap;

use automerge::Change;
use automerge::sync::{Message, State, SyncDoc};
use fleetdeck_store::document::{Member, author_of};
use fleetdeck_store::{MemberKey, Replica};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Admitted {
    pub accepted: usize,
    /// (change id, author) of every refused change.
    pub refused: Vec<(String, String)>,
}

/// Whether a change's author is a member of the fleet.
fn by_member(members: &BTreeMap<MemberKey, Member>, c: &Change) -> bool {
    MemberKey::parse(&author_of(c.actor_id())).is_ok_and(|k| members.contains_key(&k))
}

/// Checks `changes` and applies the acceptable ones, durably.
pub fn admit(replica: &mut Replica, changes: Vec<Change>) -> fleetdeck_store::Result<Admitted> {
    let mut out = Admitted::default();
    let mut pending = changes;
    loop {
        let members = &replica.state().members;
        let (ok, rest): (Vec<Change>, Vec<Change>) =
            pending.into_iter().partition(|c| by_member(members, c));
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
    // A change whose dependencies have not arrived yet (the peer's bloom
    // filter guessed wrong) waits in the fork's queue. Losing it would stall
    // the session: the peer never sends a change twice.
    let waiting = !staging.get_missing_deps(&[]).is_empty();
    if new.is_empty() && !waiting {
        // Nothing new and nothing waiting: the fork holds nothing to take.
        return Ok(Admitted::default());
    }
    let members = &replica.state().members;
    if new.iter().all(|c| by_member(members, c)) {
        // The usual case: take the fork rather than apply every change a
        // second time.
        let accepted = new.len();
        replica.adopt(staging)?;
        return Ok(Admitted {
            accepted,
            refused: Vec::new(),
        });
    }
    // Some change is refused, so the fork is not taken, and what waits in
    // its queue goes with it: ask the peer to start over (automerge's sync
    // reset: it forgets what it has sent), so that comes again with its
    // dependency.
    if waiting {
        state.needs_reset = true;
    }
    admit(replica, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_store::config::ConfigPath;
    use fleetdeck_store::document::LayerRef;
    use serde_json::json;

    /// Sets `a.b` to `i` in the fleet defaults of `r`; the change it made.
    fn edit(r: &mut Replica, i: i64) -> Change {
        let path = ConfigPath::parse("a.b").expect("a path");
        let (_, hash) = r
            .change("edit", |d, _| {
                d.set_config(&LayerRef::Fleet, &path, &json!(i))
            })
            .expect("edit");
        let hash = hash.expect("a change");
        r.doc_mut()
            .automerge_mut()
            .get_change_by_hash(&hash)
            .expect("the change just made")
            .clone()
    }

    /// The next sync message `r` has for the peer behind `s`.
    fn say(r: &mut Replica, s: &mut State) -> Option<Message> {
        r.doc_mut().automerge_mut().sync().generate_sync_message(s)
    }

    /// `r` takes a message from the peer behind `s`, unchecked (the peer
    /// under test is the other side).
    fn hear(r: &mut Replica, s: &mut State, m: Message) {
        r.doc_mut()
            .automerge_mut()
            .sync()
            .receive_sync_message(s, m)
            .expect("a message from the replica under test");
    }

    /// A change that arrives before its dependency is kept until the
    /// dependency comes, as automerge's sync protocol expects.
    #[test]
    fn a_change_ahead_of_its_dependency_is_kept_until_it_arrives() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ours = Replica::init(&dir.path().join("a"), "ops", "f").expect("init");
        let mut theirs = Replica::init_from_changes(&dir.path().join("b"), ours.changes_after(&[]))
            .expect("init from changes");
        let (first, second) = (edit(&mut ours, 1), edit(&mut ours, 2));

        let mut peer = State::new();
        let mut carrying = |c: &Change| {
            let mut msg = say(&mut ours, &mut State::new()).expect("a message");
            msg.changes = vec![c.raw_bytes().to_vec()].into();
            msg
        };
        let (m2, m1) = (carrying(&second), carrying(&first));
        receive(&mut theirs, &mut peer, m2).expect("second change, ahead of the first");
        let got = receive(&mut theirs, &mut peer, m1).expect("first change");
        assert_eq!(got.refused, Vec::new());
        assert_eq!(
            theirs.heads(),
            ours.heads(),
            "the second change was dropped"
        );
    }

    /// The same when the message also carries a refused change: the replica
    /// does not take the fork, so it asks the peer to send again, and the
    /// change ahead of its dependency arrives after all.
    #[test]
    fn a_change_ahead_of_its_dependency_beside_a_refused_one_is_sent_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ours = Replica::init(&dir.path().join("a"), "ops", "f").expect("init");
        let mut theirs = Replica::init_from_changes(&dir.path().join("b"), ours.changes_after(&[]))
            .expect("init from changes");
        let mut outsider =
            Replica::init_from_changes(&dir.path().join("c"), ours.changes_after(&[]))
                .expect("init from changes");
        let (first, second) = (edit(&mut ours, 1), edit(&mut ours, 2));
        // Ours holds a change by a key theirs does not count as a member
        // (say, one theirs has already seen removed).
        let intruder = edit(&mut outsider, 3);
        ours.doc_mut()
            .automerge_mut()
            .apply_changes([intruder.clone()])
            .expect("ours takes the outsider's change");

        // A real session, up to the message that carries both edits.
        let (mut our_state, mut their_state) = (State::new(), State::new());
        let carrying = loop {
            let msg = say(&mut ours, &mut our_state).expect("ours has something to say");
            if !msg.changes.is_empty() {
                break msg;
            }
            receive(&mut theirs, &mut their_state, msg).expect("a message without changes");
            if let Some(reply) = say(&mut theirs, &mut their_state) {
                hear(&mut ours, &mut our_state, reply);
            }
        };
        // On the way, the first edit is lost (as if the peer's bloom filter
        // had guessed that theirs already had it).
        let mut tampered = carrying;
        tampered.changes = vec![intruder.raw_bytes().to_vec(), second.raw_bytes().to_vec()].into();
        let got = receive(&mut theirs, &mut their_state, tampered).expect("tampered message");
        assert_eq!(got.refused.len(), 1, "the outsider's change is refused");

        // The session goes on until both sides are quiet.
        for _ in 0..10 {
            let to_ours = say(&mut theirs, &mut their_state);
            let quiet = to_ours.is_none();
            if let Some(msg) = to_ours {
                hear(&mut ours, &mut our_state, msg);
            }
            match say(&mut ours, &mut our_state) {
                Some(msg) => {
                    receive(&mut theirs, &mut their_state, msg).expect("a message from ours");
                }
                None if quiet => break,
                None => {}
            }
        }
        let am = theirs.doc_mut().automerge_mut();
        assert!(
            am.get_change_by_hash(&first.hash()).is_some()
                && am.get_change_by_hash(&second.hash()).is_some(),
            "the edit held back with the refused change never came again"
        );
        assert!(am.get_change_by_hash(&intruder.hash()).is_none());
    }
}

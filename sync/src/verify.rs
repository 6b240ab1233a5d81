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

use std::collections::{BTreeSet, HashMap, VecDeque};

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

/// And at most this many bytes of them.
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

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
        if let Err(why) = rights::inflates_within_limit(&bytes) {
            tracing::warn!("refused a change before decoding it: {why}");
            out.refused.push(Refused {
                change: String::new(),
                author: String::new(),
                reason: why,
            });
            continue;
        }
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
/// (Its signature and size were checked when it entered the batch.)
fn check(replica: &mut Replica, c: &SignedChange) -> Result<(), String> {
    // Every replica holds its fleet's genesis from the start (init, join):
    // a second change with no dependencies would be a second root for
    // every map, and automerge would let it win the conflicts.
    if c.change.deps().is_empty() {
        return Err(
            "a change with no dependencies is a fleet's genesis, and this replica holds its fleet's already".into(),
        );
    }
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
    // One copy per change, in arrival order (what waited first, then what
    // came now): the first copy that is within the size limit and carries
    // a valid signature. Nothing unsigned or oversized waits.
    let mut batch: Vec<SignedChange> = Vec::new();
    let mut index: HashMap<ChangeHash, usize> = HashMap::new();
    let mut bad: HashMap<ChangeHash, (SignedChange, String)> = HashMap::new();
    for c in std::mem::take(&mut gate.pending).into_iter().chain(changes) {
        let hash = c.change.hash();
        if index.contains_key(&hash) || replica.holds(&hash) {
            continue;
        }
        let size = c.change.raw_bytes().len();
        let fault = if size > rights::MAX_CHANGE_BYTES {
            Some(format!(
                "{size} bytes is more than a change may hold ({} bytes, MAX_CHANGE_BYTES)",
                rights::MAX_CHANGE_BYTES
            ))
        } else {
            c.verify().err().map(|e| e.to_string())
        };
        match fault {
            Some(reason) => {
                bad.entry(hash).or_insert((c, reason));
            }
            None => {
                bad.remove(&hash);
                index.insert(hash, batch.len());
                batch.push(c);
            }
        }
    }
    for (hash, (c, reason)) in bad {
        if !index.contains_key(&hash) {
            refuse(out, &c.change, reason);
        }
    }
    // Judged in dependency order (Kahn's), one pass: a change is ready
    // once every dependency it has in the batch was taken in and every
    // other one is held. Admins' changes first among the ready: a
    // revocation beside a change by the key it revokes is taken in before
    // that change is judged (see `rights`).
    let admins: BTreeSet<String> = replica
        .state()
        .members
        .values()
        .filter(|m| m.role == fleetdeck_store::Role::Admin)
        .map(|m| m.key.to_string())
        .collect();
    let mut waiting_on = vec![0usize; batch.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); batch.len()];
    let mut blocked = vec![false; batch.len()];
    for (i, c) in batch.iter().enumerate() {
        for d in c.change.deps() {
            match index.get(d) {
                Some(&j) => {
                    waiting_on[i] += 1;
                    children[j].push(i);
                }
                None if !replica.holds(d) => blocked[i] = true,
                None => {}
            }
        }
    }
    let is_admin: Vec<bool> = batch
        .iter()
        .map(|c| admins.contains(&author_of(c.change.actor_id())))
        .collect();
    let (mut ready_admin, mut ready_other) = (VecDeque::new(), VecDeque::new());
    for i in 0..batch.len() {
        if waiting_on[i] == 0 && !blocked[i] {
            if is_admin[i] {
                ready_admin.push_back(i);
            } else {
                ready_other.push_back(i);
            }
        }
    }
    let mut slots: Vec<Option<SignedChange>> = batch.into_iter().map(Some).collect();
    let mut settled = vec![false; slots.len()];
    while let Some(i) = ready_admin.pop_front().or_else(|| ready_other.pop_front()) {
        settled[i] = true;
        let Some(c) = slots[i].take() else { continue };
        match check(replica, &c) {
            Ok(()) => {
                replica.take_in(c)?;
                out.accepted += 1;
                for &k in &children[i] {
                    waiting_on[k] -= 1;
                    if waiting_on[k] == 0 && !blocked[k] {
                        if is_admin[k] {
                            ready_admin.push_back(k);
                        } else {
                            ready_other.push_back(k);
                        }
                    }
                }
            }
            Err(reason) => {
                // What depends on a refused change can never apply: refuse
                // it now rather than keep it waiting.
                let mut stack = children[i].clone();
                refuse(out, &c.change, reason);
                while let Some(k) = stack.pop() {
                    if settled[k] {
                        continue;
                    }
                    settled[k] = true;
                    if let Some(d) = slots[k].take() {
                        let why = format!(
                            "it depends on change {}, which was refused",
                            c.change.hash()
                        );
                        refuse(out, &d.change, why);
                    }
                    stack.extend(children[k].iter().copied());
                }
            }
        }
    }
    // What is left waits for a dependency, oldest first, within bounds.
    let mut pending: Vec<SignedChange> = slots.into_iter().flatten().collect();
    let mut bytes = 0usize;
    let keep_from = pending
        .iter()
        .rev()
        .take(MAX_PENDING)
        .take_while(|c| {
            bytes += c.change.raw_bytes().len();
            bytes <= MAX_PENDING_BYTES
        })
        .count();
    let drop = pending.len() - keep_from;
    if drop > 0 {
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
    // The peer's flags are not taken: they would let it ask for the whole
    // document saved again (V2 messages, useless here: changes travel
    // beside the message) or clear what this side knows it sent.
    msg.flags = None;
    // The message first, then its changes: automerge takes a message with
    // no changes whose heads equal ours as "they know we are in step" and
    // would then never send the heads the admitted changes give us.
    replica
        .doc_mut()
        .automerge_mut()
        .sync()
        .receive_sync_message(state, msg)?;
    let decoded = decode(changes, &mut out);
    admit_into(replica, gate, decoded, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_store::config::ConfigPath;
    use fleetdeck_store::document::LayerRef;
    use fleetdeck_store::identity::Identity;
    use serde_json::json;

    /// Sets `a.b` to `i` in the fleet defaults of `r`; the change it made.
    fn edit(r: &mut Replica, i: i64) -> SignedChange {
        let before = r.heads();
        let path = ConfigPath::parse("a.b").expect("a path");
        // Forged: some of the authors here may not write it, and the gate
        // is what is under test.
        r.forge("edit", |d, _| {
            d.set_config(&LayerRef::Fleet, &path, &json!(i))
        })
        .expect("edit");
        r.changes_after(&before).remove(0)
    }

    fn wire(c: &SignedChange) -> WireChange {
        (
            c.change.raw_bytes().to_vec(),
            c.sig.map_or_else(Vec::new, |s| s.to_vec()),
        )
    }

    /// Runs the protocol between two replicas until both are quiet.
    fn converse(a: &mut Replica, b: &mut Replica) -> (State, State) {
        let (mut sa, mut sb) = (State::new(), State::new());
        let (mut ga, mut gb) = (Gate::default(), Gate::default());
        for _ in 0..20 {
            let m1 = outgoing(a, &mut sa);
            let quiet = m1.is_none();
            if let Some((m, c)) = m1 {
                receive(b, &mut sb, &mut gb, m, c).expect("b receives");
            }
            match outgoing(b, &mut sb) {
                Some((m, c)) => {
                    receive(a, &mut sa, &mut ga, m, c).expect("a receives");
                }
                None if quiet => break,
                None => {}
            }
        }
        (sa, sb)
    }

    fn pair(dir: &std::path::Path) -> (Replica, Replica) {
        let mut ours = Replica::init(&dir.join("a"), "ops", "f").expect("init");
        let theirs =
            Replica::init_from_changes(&dir.join("b"), ours.changes_after(&[])).expect("copy");
        (ours, theirs)
    }

    /// A change that arrives before its dependency waits in the gate and
    /// goes in when the dependency comes.
    #[test]
    fn a_change_ahead_of_its_dependency_waits_until_it_arrives() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut ours, mut theirs) = pair(dir.path());
        let (first, second) = (edit(&mut ours, 1), edit(&mut ours, 2));
        let mut gate = Gate::default();
        let got = admit(&mut theirs, &mut gate, vec![second]).expect("second");
        assert_eq!((got.accepted, gate.waiting()), (0, 1));
        let got = admit(&mut theirs, &mut gate, vec![first]).expect("first");
        assert_eq!((got.accepted, gate.waiting()), (2, 0));
        assert_eq!(theirs.heads(), ours.heads());
    }

    /// A batch listed backwards (a chain, newest first) goes in in one
    /// pass, in dependency order; a copy with a bad signature ahead of the
    /// good copy does not hide it.
    #[test]
    fn a_chain_listed_backwards_goes_in_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut ours, mut theirs) = pair(dir.path());
        let mut chain: Vec<SignedChange> = (0..200).map(|i| edit(&mut ours, i)).collect();
        chain.reverse();
        let mut forged = chain[0].clone();
        forged.sig = Some(Identity::generate().sign_change(&forged.change.hash()));
        chain.insert(0, forged);
        let mut gate = Gate::default();
        let got = admit(&mut theirs, &mut gate, chain).expect("batch");
        assert_eq!(got.accepted, 200, "{:?}", got.refused);
        assert!(got.refused.is_empty(), "{:?}", got.refused);
        assert_eq!(gate.waiting(), 0);
        assert_eq!(theirs.heads(), ours.heads());
    }

    /// A change by someone who is not a member is refused, and so is what
    /// depends on it; the rest of the batch goes in.
    #[test]
    fn a_refused_change_takes_its_dependents_with_it_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut ours, mut theirs) = pair(dir.path());
        // An outsider with a copy of the fleet and a key of its own.
        let mut outsider =
            Replica::init_from_changes(&dir.path().join("c"), ours.changes_after(&[]))
                .expect("copy");
        let intruder = edit(&mut outsider, 3);
        let after = edit(&mut outsider, 4);
        let honest = edit(&mut ours, 5);
        let mut gate = Gate::default();
        let got = admit(
            &mut theirs,
            &mut gate,
            vec![intruder.clone(), after.clone(), honest.clone()],
        )
        .expect("batch");
        assert_eq!(got.accepted, 1);
        // The intruder's change, and the one on top of it, refused with it
        // (nothing is left waiting for a dependency that never comes).
        assert_eq!(got.refused.len(), 2, "{:?}", got.refused);
        assert!(
            got.refused[0].reason.contains("not a member"),
            "{:?}",
            got.refused
        );
        assert!(
            got.refused[1].reason.contains("depends on change"),
            "{:?}",
            got.refused
        );
        assert_eq!(gate.waiting(), 0);
        assert!(theirs.holds(&honest.change.hash()));
        assert!(!theirs.holds(&intruder.change.hash()));
        assert!(!theirs.holds(&after.change.hash()), "never applies");
    }

    /// A change signed by a key other than its author's, or not signed,
    /// is refused alone.
    #[test]
    fn a_forged_or_unsigned_change_is_refused_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut ours, mut theirs) = pair(dir.path());
        let mut forged = edit(&mut ours, 1);
        forged.sig = Some(Identity::generate().sign_change(&forged.change.hash()));
        let mut unsigned = forged.clone();
        unsigned.sig = None;
        let (mut state, mut gate) = (State::new(), Gate::default());
        let (msg, _) = outgoing(&mut ours, &mut State::new()).expect("a message");
        let got = receive(
            &mut theirs,
            &mut state,
            &mut gate,
            msg,
            vec![wire(&forged), (vec![1, 2, 3], vec![])],
        )
        .expect("the session goes on");
        assert_eq!(got.accepted, 0);
        assert_eq!(got.refused.len(), 2, "{:?}", got.refused);
        assert!(
            got.refused
                .iter()
                .any(|r| r.reason.contains("not signed by that key")),
            "{:?}",
            got.refused
        );
        let (msg, _) = outgoing(&mut ours, &mut State::new()).expect("a message");
        let got = receive(
            &mut theirs,
            &mut state,
            &mut gate,
            msg,
            vec![wire(&unsigned)],
        )
        .expect("the session goes on");
        assert_eq!(got.refused.len(), 1, "{:?}", got.refused);
        assert!(
            got.refused[0].reason.contains("no signature"),
            "{:?}",
            got.refused
        );
        assert!(!theirs.holds(&forged.change.hash()));
    }

    /// With the changes beside the message, both sides still learn that
    /// they are in step (a receiver that took changes says its new heads).
    #[test]
    fn both_sides_know_they_are_in_step_after_an_edit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut ours, mut theirs) = pair(dir.path());
        converse(&mut ours, &mut theirs);
        edit(&mut ours, 7);
        let (sa, sb) = converse(&mut ours, &mut theirs);
        let mut heads = ours.heads();
        heads.sort();
        let sorted = |h: &Option<Vec<ChangeHash>>| {
            let mut h = h.clone().unwrap_or_default();
            h.sort();
            h
        };
        assert_eq!(theirs.heads().len(), heads.len());
        assert_eq!(sorted(&sa.their_heads), heads, "ours knows theirs has it");
        assert_eq!(sorted(&sb.their_heads), heads);
    }
}

//! Who may write what: the judge of one automerge change arriving from
//! elsewhere (a peer, a bundle), op by op, against the document as it was
//! just before that change (at the change's dependencies). That state is the
//! same on every replica, so every replica reaches the same verdict, and a
//! change with one op out of bounds is refused whole.
//!
//! [`judge`] neither forks nor rebuilds the document: it reads at
//! `heads = change.deps()` with automerge's `*_at` reads, resolves each op's
//! object to its path with `parents` (an object's path of map keys never
//! changes once it is made), and follows the objects the change makes itself
//! from its own make ops. Its cost is linear in the change's ops: a path
//! lookup per object the change touches, a few reads for the author's role,
//! and a few more for ops whose rule depends on the state (a node's binding,
//! an operator's program key).
//!
//! # Rules
//!
//! The author is the member key in the first 32 bytes of the change's actor
//! id ([`author_of`]); its role is `members/<KEY>/role` at the
//! dependencies; no member record (or an unreadable role) is no member, and
//! a non-member writes nothing.
//!
//! | where                                   | admin | operator | viewer | node |
//! |-----------------------------------------|-------|----------|--------|------|
//! | `meta`                                  | yes   | no       | no     | no   |
//! | `fleet`, `site_config`, `node_config`: plain keys | yes | yes | no | no |
//! | … keys that run programs (`apply.*`, `actions.*`, `checks.commands`, `files`) | yes | if `trust.operators_run_programs` | no | no |
//! | … `trust.*`, `sync.*`, `tunnel.*`       | yes   | no       | no     | no   |
//! | `sites`, `acks`, `freeze`, `commands`   | yes   | yes      | no     | no   |
//! | `nodes`                                 | yes   | yes      | no     | `nodes/<NODE>/key` = its own key, when unbound or bound to it |
//! | `rollouts` (each key the spec sets judged as a config key) | yes | yes | no | no |
//! | `rollout_events`                        | yes   | yes      | no     | `<ID>/halt` only |
//! | `command_results` (legacy: nodes now report in their results registers, `results`) | yes | no | no | `<CMD>/<NODE>` where `nodes/<NODE>/key` is its key |
//! | `members/<ITS KEY>/addrs`, `…/wg`       | yes   | yes      | yes    | yes  |
//! | the rest of `members`                   | yes   | no       | no     | no   |
//! | the document root, unknown root maps    | yes   | no       | no     | no   |
//!
//! # Revocation
//!
//! An admin revokes a member by writing `members/<KEY>/revoked`: a
//! [`Revocation`] whose `seen` is, per actor of that key, the highest seq
//! the admin held. A change by a revoked key stands only if the revoking
//! admin held it (its seq is at most that actor's `seen`; an actor the
//! admin never saw has none). The revocations are read at the change's
//! dependencies (a change made on top of its own revocation) and in all
//! the judging replica holds (a change made beside it, on a stale base: the
//! revoked device never receives the revocation, sessions with it close),
//! so a revoked device cannot keep writing on an old base. Whether a
//! change stands is decided by the watermark, which is data in the
//! revocation: every replica that holds the revocation reaches the same
//! verdict whatever order the two arrived in. Two revocations of one key
//! merge by the highest seq per actor (a change either admin held stands).
//! A change that only revokes (puts `members/<KEY>/revoked`) is judged at
//! its dependencies alone: two admins revoking each other at once both
//! stand on every replica, so both are revoked (and the fleet needs
//! another admin: `ops` refuses to revoke the last one it can see). The
//! price: a revoked admin that never hears of its revocation can still
//! revoke members on its stale base; history names it.
//!
//! What a watermark cannot undo: a replica that admitted such a change
//! before the revocation reached it holds it (automerge does not un-apply);
//! replicas that hold the revocation refuse it and what depends on it. The
//! window is the time the revocation takes to spread; see the README.
//!
//! A delete is judged like a write of what it deletes (a node may not delete
//! anything outside its own `addrs`: deleting a halt would resume a
//! rollout). A map added after format 1 (`commands`, `command_results`,
//! `rollouts`, `rollout_events`) may be made at the root, when the document
//! lacks it, by whoever may write in it. Sizes: a change over
//! [`MAX_CHANGE_BYTES`] or [`MAX_CHANGE_OPS`], a value over
//! [`MAX_VALUE_BYTES`] or a map key over [`MAX_KEY_BYTES`] is refused
//! whatever the role. A change with no dependencies is judged as a genesis
//! (see [`judge`]).
//!
//! # Judging a batch
//!
//! Changes that depend on one another (a sync message, a bundle) are judged
//! one at a time in causal order (automerge's `get_changes` order is one),
//! each against a document that already holds its dependencies: apply each
//! accepted change before judging the next, so that a batch that enrolls a
//! member and then carries that member's changes is judged right. Before
//! judging, ask [`missing_deps`]: a change whose dependencies have not
//! arrived yet is not refused but waits for them ([`judge`] refuses it, as
//! it cannot be judged). A change that depends on a refused change can never
//! be applied: drop it with the refused one.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::legacy::{Key, ObjectId, Op as AmOp, OpType};
use automerge::{ActorId, Change, ChangeHash, ObjId, ObjType, Prop, ReadDoc, ScalarValue, Value};

use crate::config::ConfigPath;
use crate::document::{
    ACKS, COMMAND_RESULTS, COMMANDS, FLEET, FREEZE, FleetState, LATER_MAPS, MEMBERS, META,
    NODE_CONFIG, NODES, ROLLOUT_EVENTS, ROLLOUTS, ROOT_MAPS, Revocation, SITE_CONFIG, SITES,
    author_of,
};
use crate::ids::Role;
use crate::ops::{KeyClass, OPERATORS_RUN_PROGRAMS, key_class, may_write_key};

/// The largest change accepted, in bytes (uncompressed), well under the
/// 32 MiB wire frame.
pub const MAX_CHANGE_BYTES: usize = 4 * 1024 * 1024;
/// The most ops one change may hold (a few bytes of columns can encode a
/// great many ops; 10,000 nodes added at once take about 40,000).
pub const MAX_CHANGE_OPS: usize = 200_000;
/// The largest string or bytes value one op may write.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
/// The longest map key one op may write (a config path is at most 32
/// segments of 256 characters).
pub const MAX_KEY_BYTES: usize = 32 * 1024;
/// The longest text a member writes into its own record (an address, its
/// WireGuard key).
const MAX_OWN_TEXT: usize = 128;

/// A change its author may not make, and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub change: ChangeHash,
    /// The author's member key (hex), from the change's actor id.
    pub author: String,
    /// One sentence naming the rule broken, e.g. "cam-3 is a node: fleet
    /// apply.check makes nodes run a program: only admins write it".
    pub rule: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hash = self.change.to_string();
        write!(
            f,
            "change {} refused: {}",
            &hash[..12.min(hash.len())],
            self.rule
        )
    }
}

impl std::error::Error for Refusal {}

/// The dependencies of `change` that `doc` does not hold (applied; a change
/// waiting in automerge's queue is not held). Empty when `change` can be
/// judged.
pub fn missing_deps(doc: &impl ReadDoc, change: &Change) -> Vec<ChangeHash> {
    let deps = change.deps();
    // Cheap when all is well: nothing missing, nothing queued behind them.
    if deps.is_empty() || doc.get_missing_deps(deps).is_empty() {
        return Vec::new();
    }
    deps.iter()
        .filter(|h| doc.get_change_by_hash(h).is_none())
        .copied()
        .collect()
}

/// Whether the author of `change` may make it, judged against `doc` as of
/// the change's dependencies. `doc` must hold every dependency (see
/// [`missing_deps`]); it may or may not hold `change` itself. Works on an
/// `AutoCommit` (`FleetDoc::automerge()`) and on an `Automerge` alike.
///
/// A change with no dependencies is accepted only if it looks like a
/// genesis: ops on the root making the known root maps, `meta`, fleet
/// defaults, and the author's own member record as admin. Any key can make
/// such a change, so the caller (join, init from changes, sync) must accept
/// exactly one genesis: the one whose `meta/fleet_id` the replica was made
/// for, and refuse every other change without dependencies.
pub fn judge(doc: &impl ReadDoc, change: &Change) -> Result<(), Refusal> {
    let author = author_of(change.actor_id());
    let refuse = |rule: String| Refusal {
        change: change.hash(),
        author: author.clone(),
        rule,
    };
    let bytes = change.raw_bytes().len();
    if bytes > MAX_CHANGE_BYTES {
        return Err(refuse(format!(
            "the change is {bytes} bytes: over the limit of {MAX_CHANGE_BYTES} bytes per change (MAX_CHANGE_BYTES)"
        )));
    }
    if change.len() > MAX_CHANGE_OPS {
        return Err(refuse(format!(
            "the change holds {} ops: over the limit of {MAX_CHANGE_OPS} ops per change (MAX_CHANGE_OPS)",
            change.len()
        )));
    }
    // Decoding panics on an op naming an actor the change does not list.
    let Ok(expanded) = catch_unwind(AssertUnwindSafe(|| change.decode())) else {
        return Err(refuse("the change's ops do not decode".into()));
    };
    let mut j = Judge {
        doc,
        change,
        deps: change.deps(),
        author: author.clone(),
        role: None,
        who: short(&author).to_string(),
        made: HashMap::new(),
        paths: HashMap::new(),
        no_rights: FleetState::default(),
        trust: None,
    };
    let result = if change.deps().is_empty() {
        j.genesis(&expanded.operations)
    } else {
        j.ops(&expanded.operations)
    };
    result.map_err(refuse)
}

/// One place in the document, from the root: map keys, and list elements
/// (whose place among the others does not matter here).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Elem,
}

struct Judge<'a, D: ReadDoc> {
    doc: &'a D,
    change: &'a Change,
    deps: &'a [ChangeHash],
    author: String,
    role: Option<Role>,
    /// The author's member name (or short key), for sentences.
    who: String,
    /// Objects this change makes: op counter → path.
    made: HashMap<u64, Vec<Seg>>,
    /// Paths of objects the document holds, as resolved so far.
    paths: HashMap<(u64, ActorId), Vec<Seg>>,
    /// A state in which only admins write program keys.
    no_rights: FleetState,
    /// The fleet's `trust.*` keys at the dependencies, read when needed.
    trust: Option<FleetState>,
}

fn short(key: &str) -> &str {
    &key[..key.len().min(8)]
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin | Role::Operator => "an",
        Role::Viewer | Role::Node => "a",
    }
}

fn value_len(v: &ScalarValue) -> usize {
    match v {
        ScalarValue::Str(s) => s.len(),
        ScalarValue::Bytes(b) => b.len(),
        ScalarValue::Unknown { bytes, .. } => bytes.len(),
        _ => 0,
    }
}

/// "fleet apply.check", "site BL-1 apply.check", "nodes cam-1 key", …
fn describe(target: &[Seg]) -> String {
    let words: Vec<String> = target
        .iter()
        .map(|s| match s {
            Seg::Key(k) if k.len() == 64 && k.chars().all(|c| c.is_ascii_hexdigit()) => {
                format!("{}…", &k[..8])
            }
            Seg::Key(k) => k.clone(),
            Seg::Elem => "[item]".into(),
        })
        .collect();
    match words.as_slice() {
        [] => "the document root".into(),
        [map, key] if map == FLEET => format!("fleet {key}"),
        [map, key] if map == SITE_CONFIG || map == NODE_CONFIG => {
            let kind = if map == SITE_CONFIG { "site" } else { "node" };
            match key.split_once('/') {
                Some((owner, path)) => format!("{kind} {owner} {path}"),
                None => format!("{map} {key}"),
            }
        }
        _ => words.join(" "),
    }
}

impl<D: ReadDoc> Judge<'_, D> {
    fn ops(&mut self, ops: &[AmOp]) -> Result<(), String> {
        if let Some(missing) = missing_deps(self.doc, self.change).first() {
            return Err(format!(
                "the change depends on {missing}, which this replica does not hold: it cannot be judged before that arrives"
            ));
        }
        self.read_author();
        let revocations_only = self.revocations_only(ops);
        self.revoked(revocations_only)?;
        let Some(role) = self.role else {
            return Err(format!(
                "{} is not a member of this fleet (as of the change's dependencies): only members write the fleet document",
                self.who
            ));
        };
        for (i, op) in ops.iter().enumerate() {
            check_sizes(op)?;
            if role == Role::Admin {
                continue;
            }
            let mut target = self.path_of(&op.obj)?;
            target.push(match &op.key {
                Key::Map(k) => Seg::Key(k.to_string()),
                Key::Seq(_) => Seg::Elem,
            });
            self.op(role, op, &target)?;
            if let OpType::Make(_) = op.action {
                self.made
                    .insert(self.change.start_op().get() + i as u64, target);
            }
        }
        Ok(())
    }

    /// Reads the author's role and name at the dependencies.
    fn read_author(&mut self) {
        let Some(members) = self.map_at(&automerge::ROOT, MEMBERS) else {
            return;
        };
        let Some(rec) = self.map_at(&members, &self.author) else {
            return;
        };
        if let Some(name) = self.str_at(&rec, "name") {
            self.who = name;
        }
        self.role = self.str_at(&rec, "role").and_then(|r| Role::parse(&r).ok());
    }

    /// Refuses a change by a revoked author, unless the revoking admin held
    /// it (see "Revocation" in the module header). Read twice: at the
    /// dependencies (a change made on top of its author's revocation), and
    /// in everything `doc` holds (a change made beside it, on a stale base).
    fn revoked(&self, revocations_only: bool) -> Result<(), String> {
        let actor = self.change.actor_id().to_hex_string();
        let seq = self.change.seq();
        let mut merged: Option<Revocation> = None;
        // A change that only revokes is judged at its dependencies alone:
        // two admins revoking each other both stand, on every replica.
        let held: &[Option<&[ChangeHash]>] = if revocations_only {
            &[Some(self.deps)]
        } else {
            &[Some(self.deps), None]
        };
        for heads in held.iter().copied() {
            for r in self.revocations(heads) {
                merged.get_or_insert_with(Revocation::default).merge(&r);
            }
        }
        match merged {
            Some(r) if !r.admits(&actor, seq) => Err(format!(
                "{} was revoked by an admin: only its changes the revoking admin held before (seq {} of this actor) stand; this one is seq {seq}",
                self.who,
                r.seen.get(&actor).copied().unwrap_or(0)
            )),
            _ => Ok(()),
        }
    }

    /// Whether every op of the change puts a member's `revoked` field.
    fn revocations_only(&mut self, ops: &[AmOp]) -> bool {
        !ops.is_empty()
            && ops.iter().all(|op| {
                let Key::Map(k) = &op.key else {
                    return false;
                };
                if k.as_str() != Revocation::FIELD || !matches!(op.action, OpType::Put(_)) {
                    return false;
                }
                matches!(self.path_of(&op.obj).as_deref(), Ok([Seg::Key(m), Seg::Key(_)]) if m == MEMBERS)
            })
    }

    /// The revocations of the author, as of `heads` (None: all `doc` holds).
    fn revocations(&self, heads: Option<&[ChangeHash]>) -> Vec<Revocation> {
        let read = |obj: &ObjId, key: &str| match heads {
            Some(h) => self.doc.get_all_at(obj, key, h),
            None => self.doc.get_all(obj, key),
        };
        let map = |obj: &ObjId, key: &str| {
            read(obj, key).ok().and_then(|v| {
                v.into_iter().find_map(|(v, id)| match v {
                    Value::Object(ObjType::Map) => Some(id),
                    _ => None,
                })
            })
        };
        let Some(members) = map(&automerge::ROOT, MEMBERS) else {
            return Vec::new();
        };
        let Some(rec) = map(&members, &self.author) else {
            return Vec::new();
        };
        read(&rec, Revocation::FIELD)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(v, _)| match v {
                Value::Scalar(s) => s.as_str().and_then(Revocation::parse),
                _ => None,
            })
            .collect()
    }

    /// The map at `obj[key]` at the dependencies (the one every reader sees).
    fn map_at(&self, obj: &ObjId, key: &str) -> Option<ObjId> {
        match self.doc.get_at(obj, key, self.deps) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        }
    }

    fn str_at(&self, obj: &ObjId, key: &str) -> Option<String> {
        match self.doc.get_at(obj, key, self.deps) {
            Ok(Some((Value::Scalar(s), _))) => s.as_str().map(str::to_string),
            _ => None,
        }
    }

    /// The path of the object an op is on: from the change's own make ops,
    /// or from the document.
    fn path_of(&mut self, obj: &ObjectId) -> Result<Vec<Seg>, String> {
        let ObjectId::Id(id) = obj else {
            return Ok(Vec::new());
        };
        let (ctr, actor) = (id.counter(), id.actor());
        let start = self.change.start_op().get();
        if actor == self.change.actor_id() && (start..=self.change.max_op()).contains(&ctr) {
            return self.made.get(&ctr).cloned().ok_or_else(|| {
                "an op of the change is on an object the change has not made (yet)".to_string()
            });
        }
        if let Some(p) = self.paths.get(&(ctr, actor.clone())) {
            return Ok(p.clone());
        }
        let exid = ObjId::Id(ctr, actor.clone(), usize::MAX);
        // `parents` panics on an object inside a list element it cannot
        // place; the fleet document has none, a forged change might.
        let found = catch_unwind(AssertUnwindSafe(|| {
            self.doc.parents(&exid).map(|p| p.path())
        }));
        let Ok(Ok(path)) = found else {
            return Err(format!(
                "an op of the change is on object {ctr}@{}, which this replica does not hold",
                short(&actor.to_hex_string())
            ));
        };
        let segs: Vec<Seg> = path
            .into_iter()
            .map(|(_, prop)| match prop {
                Prop::Map(k) => Seg::Key(k),
                Prop::Seq(_) => Seg::Elem,
            })
            .collect();
        self.paths.insert((ctr, actor.clone()), segs.clone());
        Ok(segs)
    }

    fn who_is(&self, role: Role) -> String {
        format!("{} is {} {role}", self.who, article(role))
    }

    /// "x is a node: sites BL-1 takes an operator or an admin".
    fn denied(&self, role: Role, target: &[Seg], rule: &str) -> String {
        format!("{}: {} {rule}", self.who_is(role), describe(target))
    }

    fn managers_only(&self, role: Role, target: &[Seg]) -> Result<(), String> {
        if role.manages_fleet() {
            Ok(())
        } else {
            Err(self.denied(role, target, "takes an operator or an admin"))
        }
    }

    /// Judges one op at `target` (the op's object's path and its key) by a
    /// member with `role` other than admin.
    fn op(&mut self, role: Role, op: &AmOp, target: &[Seg]) -> Result<(), String> {
        let root = match target.first() {
            Some(Seg::Key(k)) => k.as_str(),
            _ => return Err(self.denied(role, target, "is not a place in a fleet document")),
        };
        if target.len() == 1 {
            return self.root_op(role, op, root, target);
        }
        let Seg::Key(entry) = &target[1] else {
            return Err(self.denied(role, target, "is not a place in a fleet document"));
        };
        let rest = &target[2..];
        match root {
            META => Err(self.denied(
                role,
                target,
                "is the fleet's identity: only admins write it",
            )),
            FLEET | SITE_CONFIG | NODE_CONFIG => self.config(role, root, entry, target),
            MEMBERS => self.members(role, op, entry, rest, target),
            NODES => self.nodes(role, op, entry, rest, target),
            COMMAND_RESULTS => self.command_result(role, op, entry, rest, target),
            ROLLOUT_EVENTS => self.rollout_event(role, op, entry, rest, target),
            ROLLOUTS => {
                self.managers_only(role, target)?;
                self.rollout_spec(role, op, rest, target)
            }
            SITES | ACKS | FREEZE | COMMANDS => self.managers_only(role, target),
            _ => Err(self.denied(
                role,
                target,
                "is not a map this fleet knows: only admins write there",
            )),
        }
    }

    /// An op on the root: only a map added after format 1, made when the
    /// document lacks it, by whoever may write in it.
    fn root_op(&self, role: Role, op: &AmOp, key: &str, target: &[Seg]) -> Result<(), String> {
        let may_write_in = match key {
            COMMANDS | ROLLOUTS => role.manages_fleet(),
            COMMAND_RESULTS => role == Role::Node,
            ROLLOUT_EVENTS => role.manages_fleet() || role == Role::Node,
            _ => false,
        };
        let absent = || {
            self.doc
                .get_all_at(automerge::ROOT, key, self.deps)
                .is_ok_and(|v| v.is_empty())
        };
        if may_write_in && op.action == OpType::Make(ObjType::Map) && !op.insert && absent() {
            return Ok(());
        }
        Err(self.denied(
            role,
            target,
            "is a map at the root of the document: only admins make or change those",
        ))
    }

    /// The class of authority a config entry (a layer key) takes.
    fn config_class(root: &str, entry: &str) -> Option<(ConfigPath, KeyClass)> {
        let key = if root == FLEET {
            entry
        } else {
            entry.split_once('/')?.1
        };
        let path = ConfigPath::parse(key).ok()?;
        let class = key_class(&path);
        Some((path, class))
    }

    fn config(
        &mut self,
        role: Role,
        root: &str,
        entry: &str,
        target: &[Seg],
    ) -> Result<(), String> {
        let Some((_, class)) = Self::config_class(root, entry) else {
            return Err(self.denied(
                role,
                target,
                "is not a config key: only admins write malformed keys",
            ));
        };
        self.may_write_config(role, class, target, "")
    }

    fn may_write_config(
        &mut self,
        role: Role,
        class: KeyClass,
        target: &[Seg],
        what: &str,
    ) -> Result<(), String> {
        let allowed = if role == Role::Operator && class == KeyClass::Program {
            may_write_key(role, class, self.trust())
        } else {
            may_write_key(role, class, &self.no_rights)
        };
        if allowed {
            return Ok(());
        }
        let rule = match (class, role) {
            (KeyClass::Plain, _) => "takes an operator or an admin".to_string(),
            (KeyClass::Program, Role::Operator) => format!(
                "makes nodes run a program: only admins write it (or operators, once an admin sets {OPERATORS_RUN_PROGRAMS} = true in the fleet defaults)"
            ),
            (KeyClass::Program, _) => "makes nodes run a program: only admins write it".into(),
            (KeyClass::Admin, _) => {
                "decides who may do what or where replicas connect: only admins write it".into()
            }
        };
        Err(format!(
            "{}: {}{what} {rule}",
            self.who_is(role),
            describe(target)
        ))
    }

    /// The fleet defaults' `trust.*` keys at the dependencies, as a state
    /// `ops::may_write_key` can read.
    fn trust(&mut self) -> &FleetState {
        if self.trust.is_none() {
            let mut st = FleetState::default();
            let top = OPERATORS_RUN_PROGRAMS
                .split('.')
                .next()
                .unwrap_or(OPERATORS_RUN_PROGRAMS);
            if let Some(fleet) = self.map_at(&automerge::ROOT, FLEET) {
                for item in self.doc.map_range_at(&fleet, top.to_string().., self.deps) {
                    if !item.key.starts_with(top) {
                        break;
                    }
                    let automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(text)) =
                        &item.value
                    else {
                        continue;
                    };
                    if let (Ok(path), Ok(v)) = (
                        ConfigPath::parse(&item.key),
                        serde_json::from_str::<serde_json::Value>(text),
                    ) {
                        st.fleet.insert(path, std::sync::Arc::new(v));
                    }
                }
            }
            self.trust = Some(st);
        }
        self.trust.get_or_insert_with(FleetState::default)
    }

    fn members(
        &self,
        role: Role,
        op: &AmOp,
        entry: &str,
        rest: &[Seg],
        target: &[Seg],
    ) -> Result<(), String> {
        if entry == self.author {
            // Its own addrs (a list of short texts) and wg (a short text),
            // and nothing of another shape: a value every replica fails to
            // read would hide the member record, and with it the member
            // from `member revoke`.
            let text = |op: &AmOp| match &op.action {
                OpType::Put(ScalarValue::Str(t)) => t.len() <= MAX_OWN_TEXT,
                OpType::Delete => true,
                _ => false,
            };
            let shaped = match rest {
                [Seg::Key(k)] if k == "wg" => Some(text(op)),
                [Seg::Key(k)] if k == "addrs" => Some(matches!(
                    op.action,
                    OpType::Make(ObjType::List) | OpType::Delete
                )),
                [Seg::Key(k), Seg::Elem] if k == "addrs" => Some(text(op)),
                _ => None,
            };
            match shaped {
                Some(true) => return Ok(()),
                Some(false) => {
                    return Err(self.denied(
                        role,
                        target,
                        "is its own member record: addrs is a list of IP:PORT texts and wg a WireGuard key as text",
                    ));
                }
                None => {}
            }
        }
        let rule = if entry == self.author && !rest.is_empty() {
            "is its own member record: a member writes only its own addrs and wg there, admins the rest"
        } else {
            "changes the fleet's members: only admins do that"
        };
        Err(self.denied(role, target, rule))
    }

    fn nodes(
        &self,
        role: Role,
        op: &AmOp,
        entry: &str,
        rest: &[Seg],
        target: &[Seg],
    ) -> Result<(), String> {
        if role.manages_fleet() {
            return Ok(());
        }
        if role != Role::Node {
            return Err(self.denied(role, target, "takes an operator or an admin"));
        }
        let own_key =
            matches!(&op.action, OpType::Put(ScalarValue::Str(v)) if v.as_str() == self.author);
        if rest != [Seg::Key("key".into())] || !own_key || op.insert {
            return Err(self.denied(
                role,
                target,
                "is a node record: a node writes there only its own binding (key = its own key)",
            ));
        }
        // The record must be there at the dependencies, unbound or bound
        // to this key already.
        let rec = match &op.obj {
            ObjectId::Id(id) => ObjId::Id(id.counter(), id.actor().clone(), usize::MAX),
            ObjectId::Root => return Err(self.denied(role, target, "is not a node record")),
        };
        let visible = self
            .doc
            .parents_at(&rec, self.deps)
            .ok()
            .and_then(|p| p.visible_path())
            .is_some();
        if !visible {
            return Err(self.denied(
                role,
                target,
                &format!(
                    "binds node {entry}, which does not exist as of the change's dependencies"
                ),
            ));
        }
        let bound = self
            .doc
            .get_all_at(&rec, "key", self.deps)
            .map_err(|e| e.to_string())?;
        let elsewhere = bound.iter().find_map(|(v, _)| match v {
            Value::Scalar(s) if s.as_str() == Some(self.author.as_str()) => None,
            Value::Scalar(s) => Some(s.as_str().map_or("?".to_string(), |k| short(k).to_string())),
            Value::Object(_) => Some("?".to_string()),
        });
        match elsewhere {
            None => Ok(()),
            Some(other) => Err(self.denied(
                role,
                target,
                &format!(
                    "rebinds node {entry}, which is bound to replica {other}: only an operator or an admin unbinds it"
                ),
            )),
        }
    }

    /// The key of the replica `node` is bound to at the dependencies.
    fn binding_of(&self, node: &str) -> Option<String> {
        let nodes = self.map_at(&automerge::ROOT, NODES)?;
        let rec = self.map_at(&nodes, node)?;
        self.str_at(&rec, "key")
    }

    fn command_result(
        &self,
        role: Role,
        op: &AmOp,
        entry: &str,
        rest: &[Seg],
        target: &[Seg],
    ) -> Result<(), String> {
        if role != Role::Node {
            return Err(self.denied(
                role,
                target,
                "is a node's report of a command: only that node (or an admin) writes it",
            ));
        }
        if !rest.is_empty() || !matches!(op.action, OpType::Put(_)) || op.insert {
            return Err(self.denied(
                role,
                target,
                "is a command result: a node puts its own results whole, it deletes none",
            ));
        }
        let node = entry.split_once('/').map(|(_, n)| n);
        let ours =
            node.is_some_and(|n| self.binding_of(n).as_deref() == Some(self.author.as_str()));
        if ours {
            Ok(())
        } else {
            Err(self.denied(
                role,
                target,
                "is not the result of a node bound to its key: a node writes only its own results",
            ))
        }
    }

    fn rollout_event(
        &self,
        role: Role,
        op: &AmOp,
        entry: &str,
        rest: &[Seg],
        target: &[Seg],
    ) -> Result<(), String> {
        if role.manages_fleet() {
            return Ok(());
        }
        if role != Role::Node {
            return Err(self.denied(role, target, "takes an operator or an admin"));
        }
        let halt = matches!(entry.split_once('/'), Some((id, "halt")) if !id.is_empty());
        if halt && rest.is_empty() && matches!(op.action, OpType::Put(_)) && !op.insert {
            Ok(())
        } else {
            Err(self.denied(
                role,
                target,
                "is a rollout event: a node only halts a rollout (writes <ID>/halt)",
            ))
        }
    }

    /// A rollout's spec sets config on nodes: each key it sets takes the
    /// rights that key takes in a layer.
    fn rollout_spec(
        &mut self,
        role: Role,
        op: &AmOp,
        rest: &[Seg],
        target: &[Seg],
    ) -> Result<(), String> {
        let OpType::Put(ScalarValue::Str(text)) = &op.action else {
            return Ok(());
        };
        if !rest.is_empty() {
            return Ok(());
        }
        // What readers cannot read as a spec they skip: nothing to judge.
        let Ok(spec) = serde_json::from_str::<crate::rollout::RolloutSpec>(text) else {
            return Ok(());
        };
        for key in spec.set.keys() {
            let Ok(path) = ConfigPath::parse(key) else {
                return Err(self.denied(
                    role,
                    target,
                    &format!("sets '{key}', which is not a config key"),
                ));
            };
            let class = key_class(&path);
            self.may_write_config(role, class, target, &format!(" sets {path}, which"))?;
        }
        Ok(())
    }

    /// A change without dependencies: the genesis of a fleet, made by
    /// `FleetDoc::genesis`, or nothing acceptable.
    fn genesis(&mut self, ops: &[AmOp]) -> Result<(), String> {
        let not_genesis = |what: String| {
            format!(
                "a change with no dependencies must be a fleet's genesis (root maps, meta, fleet defaults, its author enrolled as admin); this one {what}"
            )
        };
        let mut made_roots: Vec<&str> = Vec::new();
        let mut enrolled_admin = false;
        for (i, op) in ops.iter().enumerate() {
            check_sizes(op)?;
            let mut target = match &op.obj {
                ObjectId::Root => Vec::new(),
                ObjectId::Id(id) => {
                    let local = id.actor() == self.change.actor_id();
                    match self.made.get(&id.counter()) {
                        Some(p) if local => p.clone(),
                        _ => {
                            return Err(not_genesis(
                                "writes into an object it did not make".into(),
                            ));
                        }
                    }
                }
            };
            let Key::Map(key) = &op.key else {
                return Err(not_genesis("writes into a list".into()));
            };
            target.push(Seg::Key(key.to_string()));
            let keys: Vec<&str> = target
                .iter()
                .map(|s| match s {
                    Seg::Key(k) => k.as_str(),
                    Seg::Elem => "",
                })
                .collect();
            let make_map = op.action == OpType::Make(ObjType::Map);
            let put = matches!(op.action, OpType::Put(_));
            let ok = match keys.as_slice() {
                [root] => {
                    let known = ROOT_MAPS.iter().chain(LATER_MAPS).find(|m| *m == root);
                    match known {
                        Some(m) if make_map && !made_roots.contains(m) => {
                            made_roots.push(m);
                            true
                        }
                        _ => false,
                    }
                }
                [META, _] | [FLEET, _] => put,
                [MEMBERS, k] => *k == self.author && make_map,
                [MEMBERS, k, "role", ..] => {
                    let admin = matches!(&op.action, OpType::Put(ScalarValue::Str(r)) if r.as_str() == Role::Admin.as_str());
                    enrolled_admin |= admin && keys.len() == 3;
                    *k == self.author && admin
                }
                [MEMBERS, k, ..] => *k == self.author,
                _ => false,
            };
            if !ok {
                return Err(not_genesis(format!("writes {}", describe(&target))));
            }
            if let OpType::Make(_) = op.action {
                self.made
                    .insert(self.change.start_op().get() + i as u64, target);
            }
        }
        for needed in [META, MEMBERS] {
            if !made_roots.contains(&needed) {
                return Err(not_genesis(format!("does not make the root map {needed}")));
            }
        }
        if !enrolled_admin {
            return Err(not_genesis("does not enroll its author as admin".into()));
        }
        Ok(())
    }
}

/// Refuses an op whose map key or value is over its limit.
fn check_sizes(op: &AmOp) -> Result<(), String> {
    if let Key::Map(k) = &op.key
        && k.len() > MAX_KEY_BYTES
    {
        return Err(format!(
            "an op writes a map key of {} bytes: over the limit of {MAX_KEY_BYTES} bytes per key (MAX_KEY_BYTES)",
            k.len()
        ));
    }
    let len = match &op.action {
        OpType::Put(v) => value_len(v),
        OpType::MarkBegin(m) => value_len(&m.value) + m.name.len(),
        _ => 0,
    };
    if len > MAX_VALUE_BYTES {
        let at = match &op.key {
            Key::Map(k) => format!(" at '{}'", k.chars().take(64).collect::<String>()),
            Key::Seq(_) => String::new(),
        };
        return Err(format!(
            "an op writes a value of {len} bytes{at}: over the limit of {MAX_VALUE_BYTES} bytes per value (MAX_VALUE_BYTES)"
        ));
    }
    Ok(())
}

/// The programs `node` would run whose winning value was written by an
/// author who may not write it: one sentence each, empty when all is well.
///
/// Every change that arrives from elsewhere was judged at the gate; this
/// is the node daemon's last look before it runs a program from config
/// (`apply.*`, `actions.*`, `checks.commands`, `files`, set in the fleet,
/// site or node layer, or by a rollout that reaches the node), for values
/// that never passed the gate: a change written on this device itself, or
/// held from before the rules.
pub fn refused_programs(
    doc: &mut automerge::AutoCommit,
    st: &FleetState,
    node: &crate::ids::NodeId,
) -> Vec<String> {
    let Ok(n) = st.node(node) else {
        return Vec::new();
    };
    let site_prefix = format!("{}/", n.site);
    let node_prefix = format!("{node}/");
    let mut slots: Vec<(&str, String, String)> = Vec::new();
    for (map, prefix) in [
        (FLEET, ""),
        (SITE_CONFIG, site_prefix.as_str()),
        (NODE_CONFIG, node_prefix.as_str()),
    ] {
        let Ok(Some((_, obj))) = doc.get(automerge::ROOT, map) else {
            continue;
        };
        let keys: Vec<String> = doc
            .map_range(&obj, prefix.to_string()..)
            .take_while(|item| item.key.starts_with(prefix))
            .map(|item| item.key.to_string())
            .collect();
        for key in keys {
            let Ok(path) = ConfigPath::parse(&key[prefix.len()..]) else {
                continue;
            };
            if key_class(&path) == KeyClass::Program {
                slots.push((map, key.clone(), format!("{path}")));
            }
        }
    }
    for r in &st.rollouts {
        let sets_programs = r
            .spec
            .set
            .keys()
            .any(|k| ConfigPath::parse(k).is_ok_and(|p| key_class(&p) == KeyClass::Program));
        if sets_programs && r.applies_to(st, node) {
            slots.push((ROLLOUTS, r.id.clone(), format!("rollout {}", r.id)));
        }
    }
    let mut out = Vec::new();
    for (map, key, what) in slots {
        let Ok(Some((_, obj))) = doc.get(automerge::ROOT, map) else {
            continue;
        };
        let Ok(Some((_, op))) = doc.get(&obj, key.as_str()) else {
            continue;
        };
        let Some(hash) = doc.hash_for_opid(&op) else {
            out.push(format!(
                "{what}: the change that wrote it is not in the history"
            ));
            continue;
        };
        let Some(change) = doc.get_change_by_hash(&hash) else {
            out.push(format!(
                "{what}: the change that wrote it is not in the history"
            ));
            continue;
        };
        if let Err(refusal) = judge(&*doc, &change) {
            out.push(format!("{what}: {}", refusal.rule));
        }
    }
    out
}

/// Checks, before a change's bytes are decoded, that a compressed change
/// does not inflate past [`MAX_CHANGE_BYTES`]: automerge inflates a
/// compressed chunk with no bound, so a few MB of deflate could ask for
/// gigabytes. Bytes that are not a compressed change chunk pass (their own
/// size is bounded by the frame, and decoding says what else is wrong).
pub fn inflates_within_limit(bytes: &[u8]) -> Result<(), String> {
    use std::io::Read;
    // Chunk: 4 magic bytes, 4 checksum bytes, the type (2: a compressed
    // change), the data length as unsigned LEB128, the data.
    const COMPRESSED_CHANGE: u8 = 2;
    if bytes.len() < 10 || bytes[8] != COMPRESSED_CHANGE {
        return Ok(());
    }
    let mut len: u64 = 0;
    let mut at = 9;
    for shift in (0..64).step_by(7) {
        let Some(&b) = bytes.get(at) else {
            return Ok(());
        };
        at += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    let end = at.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    let data = &bytes[at.min(bytes.len())..end.min(bytes.len())];
    let limit = MAX_CHANGE_BYTES as u64;
    let mut inflated = 0u64;
    let mut buf = [0u8; 16 * 1024];
    let mut decoder = flate2::bufread::DeflateDecoder::new(data).take(limit + 1);
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                inflated += n as u64;
                if inflated > limit {
                    return Err(format!(
                        "a compressed change inflates past the limit of {MAX_CHANGE_BYTES} bytes (MAX_CHANGE_BYTES)"
                    ));
                }
            }
            // Bad deflate: decoding the change says so.
            Err(_) => return Ok(()),
        }
    }
}

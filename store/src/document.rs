//! The fleet document: the desired state of the fleet, with its history, in
//! automerge.
//!
//! Root layout (created once, by the genesis change of `init`):
//!
//! ```text
//! meta        { format, fleet_id, name, created_ms }
//! fleet       { "<key>": "<json>" }          fleet defaults, flat
//! site_config { "<SITE>/<key>": "<json>" }   site overrides, flat
//! node_config { "<NODE>/<key>": "<json>" }   node overrides, flat
//! sites       { SITE: { name, lat, lon, zone } }
//! nodes       { NODE: { site, role } }
//! members     { KEY:  { name, role, added_ms, addrs, wg?, revoked? } }   revoked: "<json Revocation>"
//! acks        { ALERT_ID: { by, at_ms, until_ms, since_ms } }
//! freeze      { frozen, by, at_ms, message }
//! commands    { CMD: { action, target, by, at_ms } }
//! command_results { "<CMD>/<NODE>": "<json>" }   one entry per node, flat (legacy:
//!                                                   results now live in registers, `results`)
//! rollouts    { ID: "<json spec>" }
//! rollout_events { "<ID>/open/<K>" | "<ID>/halt" | "<ID>/pause" | "<ID>/resume" | "<ID>/abort": "<json>" }
//! ```
//!
//! Config leaves are flat, one document key per leaf, so that edits of
//! different keys on different replicas never conflict (a nested map created
//! concurrently on two replicas would hide one side's leaves). Every value
//! read from the document may have come from another replica: reads never
//! panic, and a malformed entry is skipped and reported in
//! [`FleetState::problems`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValueRef, ValueRef,
};
use autosurgeon::{Hydrate, Reconcile};
use serde::Serialize;
use serde_json::Value;

use crate::alerts::Ack;
use crate::config::{self, ConfigPath, Effective, Layer, Source};
use crate::error::{Result, StoreError};
use crate::ids::{MemberKey, NodeId, Role, SiteId};
use crate::schema;

/// Version of the document layout above.
pub const FORMAT: i64 = 1;

pub(crate) const META: &str = "meta";
pub(crate) const FLEET: &str = "fleet";
pub(crate) const SITE_CONFIG: &str = "site_config";
pub(crate) const NODE_CONFIG: &str = "node_config";
pub(crate) const SITES: &str = "sites";
pub(crate) const NODES: &str = "nodes";
pub(crate) const MEMBERS: &str = "members";
pub(crate) const ACKS: &str = "acks";
pub(crate) const FREEZE: &str = "freeze";
pub(crate) const COMMANDS: &str = "commands";
pub(crate) const COMMAND_RESULTS: &str = "command_results";
pub(crate) const ROLLOUTS: &str = "rollouts";
pub(crate) const ROLLOUT_EVENTS: &str = "rollout_events";
/// Maps every fleet document has had since format 1.
pub(crate) const ROOT_MAPS: &[&str] = &[
    META,
    FLEET,
    SITE_CONFIG,
    NODE_CONFIG,
    SITES,
    NODES,
    MEMBERS,
    ACKS,
    FREEZE,
];
/// Maps added later: created at genesis, read as empty when an older
/// document lacks them, created by the first write otherwise. (Two replicas
/// of an old fleet writing the first command at the same moment would each
/// create the map, and one map would hide the other's entries: rare, and
/// the same command can be issued again.)
pub(crate) const LATER_MAPS: &[&str] = &[COMMANDS, COMMAND_RESULTS, ROLLOUTS, ROLLOUT_EVENTS];

#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile, Serialize)]
pub struct SiteRecord {
    pub name: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub zone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile, Serialize)]
pub struct NodeRecord {
    pub site: String,
    pub role: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile, Serialize)]
pub struct MemberRecord {
    pub name: String,
    pub role: String,
    pub added_ms: i64,
    /// Direct addresses (`IP:PORT`) where the member last said it listens.
    #[autosurgeon(missing = "Vec::new")]
    pub addrs: Vec<String>,
    // `wg`, the member's WireGuard public key, is read on its own
    // (`FleetDoc::member_wg`) and written only by the member
    // (`set_member_wg`): never by reconciling a record.
}

#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
struct AckRecord {
    by: String,
    at_ms: i64,
    until_ms: Option<i64>,
    since_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile, Serialize)]
pub struct FreezeRecord {
    pub frozen: bool,
    pub by: String,
    pub at_ms: i64,
    pub message: String,
}

/// A command an operator asked nodes to run: an action named in the fleet
/// config (`actions.<name>`), for a site, a node or every node.
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile, Serialize)]
pub struct CommandRecord {
    pub action: String,
    /// `all`, `site:ID` or `node:ID`.
    pub target: String,
    pub by: String,
    pub at_ms: i64,
}

impl CommandRecord {
    /// Whether `node` (of `site`) is one of the command's targets.
    pub fn targets(&self, node: &NodeId, site: &SiteId) -> bool {
        match self.target.split_once(':') {
            None => self.target == "all",
            Some(("site", s)) => s == site.as_str(),
            Some(("node", n)) => n == node.as_str(),
            _ => false,
        }
    }
}

/// What one node reported for one command.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct CommandResult {
    /// The exit code; None when it did not run to an exit (refused, timed out).
    pub exit_code: Option<i32>,
    pub ok: bool,
    /// The tail of its output, or why it did not run.
    pub output: String,
    pub at_ms: i64,
}

/// Which layer of config an edit goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerRef {
    Fleet,
    Site(SiteId),
    Node(NodeId),
}

impl LayerRef {
    fn map(&self) -> &'static str {
        match self {
            LayerRef::Fleet => FLEET,
            LayerRef::Site(_) => SITE_CONFIG,
            LayerRef::Node(_) => NODE_CONFIG,
        }
    }
    fn prefix(&self) -> String {
        match self {
            LayerRef::Fleet => String::new(),
            LayerRef::Site(s) => format!("{s}/"),
            LayerRef::Node(n) => format!("{n}/"),
        }
    }
    pub fn source(&self) -> Source {
        match self {
            LayerRef::Fleet => Source::Fleet,
            LayerRef::Site(_) => Source::Site,
            LayerRef::Node(_) => Source::Node,
        }
    }
    /// "the fleet defaults", "the overrides of site BL-LAB-2", …
    pub fn describe(&self) -> String {
        match self {
            LayerRef::Fleet => "the fleet defaults".into(),
            LayerRef::Site(s) => format!("the overrides of site {s}"),
            LayerRef::Node(n) => format!("the overrides of node {n}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub id: SiteId,
    pub record: SiteRecord,
    pub overrides: Layer,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub id: NodeId,
    pub site: SiteId,
    pub record: NodeRecord,
    pub overrides: Layer,
    /// The member key of the replica that runs this node's daemon.
    pub key: Option<MemberKey>,
    /// When an operator last told the node to leave safe mode (unix ms).
    pub resume_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Member {
    pub key: MemberKey,
    pub name: String,
    pub role: Role,
    pub added_ms: i64,
    pub addrs: Vec<String>,
    /// Its WireGuard public key, when it published a well-formed one.
    pub wg: Option<[u8; 32]>,
    /// Set once an admin revoked the key (see [`Revocation`]); a revoked
    /// member is kept in [`FleetState::revoked`], never in `members`.
    pub revoked: Option<Revocation>,
}

/// An admin's revocation of a member key, stored as JSON at
/// `members/<KEY>/revoked`. `seen` is the watermark: for every actor of the
/// key, the highest seq the revoking admin held. Changes by that key with a
/// higher seq (or by an actor it never saw) are refused by every replica
/// that holds the revocation (`rights`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Revocation {
    /// The revoking admin's key.
    pub by: String,
    pub at_ms: i64,
    /// actor id (hex) → highest seq held.
    pub seen: BTreeMap<String, u64>,
}

impl Revocation {
    /// The field of a member record that holds it.
    pub const FIELD: &'static str = "revoked";

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Option<Revocation> {
        serde_json::from_str(text).ok()
    }

    /// Whether the change `seq` of `actor` (hex) stands under this
    /// revocation: the revoking admin held it.
    pub fn admits(&self, actor: &str, seq: u64) -> bool {
        self.seen.get(actor).is_some_and(|max| seq <= *max)
    }

    /// Two revocations of one key (two admins at once): a change held by
    /// either admin stands, so the watermarks merge by the highest seq.
    pub fn merge(&mut self, other: &Revocation) {
        for (actor, seq) in &other.seen {
            let e = self.seen.entry(actor.clone()).or_default();
            *e = (*e).max(*seq);
        }
    }
}

/// A typed, read-only view of the document at one point, rebuilt after every
/// change. Everything the CLI, the console and the daemon read goes through it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetState {
    pub fleet_id: String,
    pub name: String,
    pub fleet: Layer,
    pub sites: BTreeMap<SiteId, Site>,
    pub nodes: BTreeMap<NodeId, Node>,
    pub members: BTreeMap<MemberKey, Member>,
    /// Members an admin revoked: no rights, no sessions; kept so history
    /// still names them.
    pub revoked: BTreeMap<MemberKey, Member>,
    pub acks: HashMap<String, Ack>,
    pub freeze: Option<FreezeRecord>,
    pub commands: BTreeMap<String, CommandRecord>,
    /// command id → node id → result. Read from the document, results
    /// written there by nodes from before results registers; a replica's
    /// state (`Replica::state`) also holds every node's results register
    /// over them (`Replica::command_results`).
    pub command_results: BTreeMap<String, BTreeMap<String, CommandResult>>,
    /// Rollouts, oldest first (later ones overlay earlier ones).
    pub rollouts: Vec<crate::rollout::Rollout>,
    /// Entries that were skipped because they were malformed.
    pub problems: Vec<String>,
    /// `problems`, per part, so a part can be re-read on its own.
    part_problems: [Vec<String>; Part::COUNT],
    /// member key → the nodes whose daemon runs on that member's replica.
    run_by: HashMap<MemberKey, Vec<NodeId>>,
}

/// One part of [`FleetState`], read from one or two root maps of the
/// document; the unit of incremental re-reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Part {
    Meta,
    Fleet,
    /// `sites` and `site_config`.
    Sites,
    /// `nodes` and `node_config`.
    Nodes,
    Members,
    Acks,
    /// `commands` and `command_results`.
    Commands,
    /// `rollouts` and `rollout_events`.
    Rollouts,
    Freeze,
}

impl Part {
    const COUNT: usize = 9;
    const ALL: [Part; Part::COUNT] = [
        Part::Meta,
        Part::Fleet,
        Part::Sites,
        Part::Nodes,
        Part::Members,
        Part::Acks,
        Part::Commands,
        Part::Rollouts,
        Part::Freeze,
    ];
}

/// A set of [`Part`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parts(u16);

impl Parts {
    pub const NONE: Parts = Parts(0);
    pub const ALL: Parts = Parts((1 << Part::COUNT) - 1);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, part: Part) -> bool {
        self.0 & (1 << part as u16) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Part> {
        Part::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// The part a root map of the document feeds.
    fn of_root_map(name: &str) -> Parts {
        let part = match name {
            META => Part::Meta,
            FLEET => Part::Fleet,
            SITES | SITE_CONFIG => Part::Sites,
            NODES | NODE_CONFIG => Part::Nodes,
            MEMBERS => Part::Members,
            ACKS => Part::Acks,
            COMMANDS | COMMAND_RESULTS => Part::Commands,
            ROLLOUTS | ROLLOUT_EVENTS => Part::Rollouts,
            FREEZE => Part::Freeze,
            _ => return Parts::NONE,
        };
        Parts(1 << part as u16)
    }
}

impl std::ops::BitOr for Parts {
    type Output = Parts;
    fn bitor(self, rhs: Parts) -> Parts {
        Parts(self.0 | rhs.0)
    }
}

impl FleetState {
    pub fn site(&self, id: &SiteId) -> Result<&Site> {
        self.sites
            .get(id)
            .ok_or_else(|| StoreError::UnknownSite(id.to_string()))
    }

    pub fn node(&self, id: &NodeId) -> Result<&Node> {
        self.nodes
            .get(id)
            .ok_or_else(|| StoreError::UnknownNode(id.to_string()))
    }

    /// The nodes whose daemon runs on the replica with this member key.
    pub fn nodes_run_by(&self, key: &MemberKey) -> &[NodeId] {
        self.run_by.get(key).map_or(&[], Vec::as_slice)
    }

    pub fn nodes_of<'a>(&'a self, site: &'a SiteId) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.values().filter(move |n| &n.site == site)
    }

    /// Fleet defaults ⊕ the site's overrides.
    pub fn effective_site(&self, id: &SiteId) -> Result<Effective> {
        let site = self.site(id)?;
        Ok(config::effective(&self.fleet, Some(&site.overrides), None))
    }

    /// Fleet defaults ⊕ site overrides ⊕ node overrides ⊕ the rollouts
    /// whose open waves include the node.
    pub fn effective_node(&self, id: &NodeId) -> Result<Effective> {
        let node = self.node(id)?;
        let site = self.sites.get(&node.site).map(|s| &s.overrides);
        let mut eff = config::effective(&self.fleet, site, Some(&node.overrides));
        self.overlay_rollouts(node, &mut eff);
        Ok(eff)
    }

    fn rollouts_for<'a>(
        &'a self,
        node: &'a Node,
    ) -> impl Iterator<Item = &'a crate::rollout::Rollout> + 'a {
        self.rollouts
            .iter()
            .filter(move |r| r.applies_to(self, &node.id))
    }

    fn overlay_rollouts(&self, node: &Node, eff: &mut Effective) {
        for r in self.rollouts_for(node) {
            eff.overlay(&r.layer, Source::Rollout);
        }
    }

    /// The effective config of every node, computing each site's layer once.
    pub fn effective_all(&self) -> BTreeMap<NodeId, Arc<Effective>> {
        let mut per_site: HashMap<&SiteId, Arc<Effective>> = HashMap::new();
        let mut out = BTreeMap::new();
        // The nodes each rollout reaches, worked out once per rollout (a
        // node's wave depends on the other nodes the rollout covers).
        let reach: Vec<_> = self.rollouts.iter().map(|r| r.reaches(self)).collect();
        for node in self.nodes.values() {
            let rollouts: Vec<_> = self
                .rollouts
                .iter()
                .zip(&reach)
                .filter(|(_, nodes)| nodes.contains(&node.id))
                .map(|(r, _)| r)
                .collect();
            let base = per_site
                .entry(&node.site)
                .or_insert_with(|| {
                    let site = self.sites.get(&node.site).map(|s| &s.overrides);
                    Arc::new(config::effective(&self.fleet, site, None))
                })
                .clone();
            let eff = if node.overrides.is_empty() && rollouts.is_empty() {
                base
            } else {
                let mut e = (*base).clone();
                e.overlay(&node.overrides, Source::Node);
                for r in rollouts {
                    e.overlay(&r.layer, Source::Rollout);
                }
                Arc::new(e)
            };
            out.insert(node.id.clone(), eff);
        }
        out
    }

    pub fn layer(&self, layer: &LayerRef) -> Result<&Layer> {
        Ok(match layer {
            LayerRef::Fleet => &self.fleet,
            LayerRef::Site(s) => &self.site(s)?.overrides,
            LayerRef::Node(n) => &self.node(n)?.overrides,
        })
    }

    pub fn member_name(&self, key: &MemberKey) -> Option<&str> {
        self.members
            .get(key)
            .or_else(|| self.revoked.get(key))
            .map(|m| m.name.as_str())
    }

    pub fn is_frozen(&self) -> bool {
        self.freeze.as_ref().is_some_and(|f| f.frozen)
    }
}

/// One change of the document's history: the audit log.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub id: String,
    pub author: String,
    pub author_name: Option<String>,
    pub time_ms: i64,
    pub message: Option<String>,
    pub seq: u64,
    pub ops: usize,
}

/// A key with concurrent values: the replicas disagreed and automerge picked
/// `values[winner]` on every replica alike.
#[derive(Clone, Debug, Serialize)]
pub struct Conflict {
    /// "fleet", "site BL-LAB-2", "node cam-1", "sites", …
    pub scope: String,
    pub key: String,
    pub values: Vec<ConflictValue>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConflictValue {
    pub value: Value,
    pub author: String,
    pub winner: bool,
}

/// What a revert did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RevertOutcome {
    pub restored: Vec<String>,
    /// Keys the change touched that were edited again since: left as they are.
    pub skipped: Vec<String>,
}

/// The author of a change or an op: the member key inside the actor id.
pub fn author_of(actor: &ActorId) -> String {
    let bytes = actor.to_bytes();
    if bytes.len() >= 32 {
        hex::encode(&bytes[..32])
    } else {
        hex::encode(bytes)
    }
}

/// `changes` in the order [`FleetDoc::history`] lists them: a topological
/// order (each change after the dependencies it has in the list), choosing
/// among the changes ready to go the one with the earliest time, then the
/// smallest hash. The order depends only on the set of changes, never on
/// the order they arrived in.
fn history_order(changes: Vec<automerge::Change>) -> Vec<automerge::Change> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let index: HashMap<ChangeHash, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash(), i))
        .collect();
    // Dependencies held here not yet listed, and who waits on each change.
    let mut waiting_on = vec![0usize; changes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
    for (i, c) in changes.iter().enumerate() {
        for d in c.deps() {
            if let Some(&j) = index.get(d) {
                waiting_on[i] += 1;
                dependents[j].push(i);
            }
        }
    }
    let key = |i: usize| Reverse((changes[i].timestamp(), changes[i].hash(), i));
    let mut ready: BinaryHeap<_> = (0..changes.len())
        .filter(|&i| waiting_on[i] == 0)
        .map(key)
        .collect();
    let mut order = Vec::with_capacity(changes.len());
    while let Some(Reverse((_, _, i))) = ready.pop() {
        order.push(i);
        for &k in &dependents[i] {
            waiting_on[k] -= 1;
            if waiting_on[k] == 0 {
                ready.push(key(k));
            }
        }
    }
    let mut slots: Vec<Option<automerge::Change>> = changes.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

fn json_of(v: &ValueRef<'_>) -> Value {
    match v {
        ValueRef::Object(t) => Value::String(format!("<{t:?}>")),
        ValueRef::Scalar(s) => scalar_json(s),
    }
}

fn scalar_json(s: &ScalarValueRef<'_>) -> Value {
    match s {
        ScalarValueRef::Str(s) => Value::String(s.to_string()),
        ScalarValueRef::Int(i) | ScalarValueRef::Counter(i) | ScalarValueRef::Timestamp(i) => {
            Value::from(*i)
        }
        ScalarValueRef::Uint(u) => Value::from(*u),
        ScalarValueRef::F64(f) => Value::from(*f),
        ScalarValueRef::Boolean(b) => Value::Bool(*b),
        ScalarValueRef::Null => Value::Null,
        ScalarValueRef::Bytes(b) => Value::String(hex::encode(b)),
        ScalarValueRef::Unknown { .. } => Value::Null,
    }
}

fn scalar_of(v: &Value) -> automerge::ScalarValue {
    use automerge::ScalarValue as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => S::Int(i),
            None => S::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => S::Str(s.as_str().into()),
        other => S::Str(other.to_string().into()),
    }
}

/// The document and the writes that keep its shape.
pub struct FleetDoc {
    doc: AutoCommit,
}

impl FleetDoc {
    /// A new fleet: the genesis change creates every root map, the fleet's
    /// identity, the schema's defaults and the first (admin) member.
    pub fn genesis(
        actor: ActorId,
        fleet_id: &str,
        fleet_name: &str,
        admin: &MemberKey,
        admin_name: &str,
        now_ms: i64,
    ) -> Result<Self> {
        let mut doc = AutoCommit::new().with_actor(actor);
        for name in ROOT_MAPS.iter().chain(LATER_MAPS) {
            doc.put_object(automerge::ROOT, *name, ObjType::Map)?;
        }
        let mut fd = FleetDoc { doc };
        let meta = fd.obj(META)?;
        fd.doc.put(&meta, "format", FORMAT)?;
        fd.doc.put(&meta, "fleet_id", fleet_id)?;
        fd.doc.put(&meta, "name", fleet_name)?;
        fd.doc.put(&meta, "created_ms", now_ms)?;
        for spec in schema::KEYS {
            if let Some(d) = spec.default {
                let v = if d.fract() == 0.0 {
                    Value::from(d as i64)
                } else {
                    Value::from(d)
                };
                let path = ConfigPath::parse(spec.key)?;
                fd.set_config(&LayerRef::Fleet, &path, &v)?;
            }
        }
        fd.put_member(admin, admin_name, Role::Admin, now_ms)?;
        fd.commit(&format!("create fleet {fleet_name}"), now_ms);
        Ok(fd)
    }

    /// Wraps a loaded document, checking it is a fleet document at all.
    pub fn from_automerge(doc: AutoCommit) -> Result<Self> {
        let fd = FleetDoc { doc };
        for name in ROOT_MAPS {
            fd.obj(name)?;
        }
        let meta = fd.obj(META)?;
        if let Some((v, _)) = fd.doc.get(&meta, "format")? {
            let format = match v {
                automerge::Value::Scalar(s) => s.as_i64(),
                _ => None,
            };
            if let Some(f) = format
                && f > FORMAT
            {
                return Err(StoreError::Shape(format!(
                    "the fleet document has format {f}, newer than this fleetdeck understands ({FORMAT}); upgrade fleetdeck"
                )));
            }
        }
        Ok(fd)
    }

    pub fn automerge(&self) -> &AutoCommit {
        &self.doc
    }

    pub fn automerge_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    /// A map added after format 1, created if this document predates it.
    fn later_obj(&mut self, name: &str) -> Result<ObjId> {
        match self.obj(name) {
            Ok(id) => Ok(id),
            Err(_) => Ok(self.doc.put_object(automerge::ROOT, name, ObjType::Map)?),
        }
    }

    fn obj(&self, name: &str) -> Result<ObjId> {
        match self.doc.get(automerge::ROOT, name)? {
            Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(StoreError::Shape(format!(
                "the root map '{name}' is missing; this is not a fleetdeck fleet document"
            ))),
        }
    }

    /// Commits pending edits; returns the new change's hash (None if nothing
    /// was edited).
    pub fn commit(&mut self, message: &str, now_ms: i64) -> Option<ChangeHash> {
        self.doc.commit_with(
            CommitOptions::default()
                .with_message(message.to_string())
                .with_time(now_ms),
        )
    }

    /// Drops edits not yet committed.
    pub fn rollback(&mut self) {
        self.doc.rollback();
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    // ---- reads -------------------------------------------------------------

    fn meta_str(&self, key: &str) -> String {
        self.obj(META)
            .ok()
            .and_then(|m| self.doc.get(&m, key).ok().flatten())
            .and_then(|(v, _)| v.into_string().ok())
            .unwrap_or_default()
    }

    fn read_flat(
        &self,
        map: &str,
        problems: &mut Vec<String>,
    ) -> Result<Vec<(String, ConfigPath, Arc<Value>)>> {
        let obj = self.obj(map)?;
        let mut out = Vec::new();
        for item in self.doc.map_range(&obj, ..) {
            let key = item.key.as_ref();
            let (owner, path) = if map == FLEET {
                ("", key)
            } else {
                match key.split_once('/') {
                    Some(x) => x,
                    None => {
                        problems.push(format!("{map}: skipped malformed key '{key}'"));
                        continue;
                    }
                }
            };
            let ValueRef::Scalar(ScalarValueRef::Str(text)) = &item.value else {
                problems.push(format!("{map}: skipped '{key}': value is not JSON text"));
                continue;
            };
            let (Ok(path), Ok(value)) =
                (ConfigPath::parse(path), serde_json::from_str::<Value>(text))
            else {
                problems.push(format!("{map}: skipped malformed entry '{key}'"));
                continue;
            };
            out.push((owner.to_string(), path, Arc::new(value)));
        }
        Ok(out)
    }

    /// Every record of a collection as `(id, field → value)`, in one pass
    /// over the map. Sites and nodes are read this way: 10,000 nodes read
    /// through autosurgeon's per-key hydrate cost ~6× more (BENCHMARKS.md).
    fn read_records(
        &self,
        map: &str,
        problems: &mut Vec<String>,
    ) -> Result<Vec<(String, HashMap<String, Value>)>> {
        let obj = self.obj(map)?;
        let mut out = Vec::new();
        for item in self.doc.map_range(&obj, ..) {
            if !matches!(item.value, ValueRef::Object(ObjType::Map)) {
                problems.push(format!("{map}: skipped '{}': not a record", item.key));
                continue;
            }
            let fields = self
                .doc
                .map_range(item.id(), ..)
                .map(|f| (f.key.to_string(), json_of(&f.value)))
                .collect();
            out.push((item.key.to_string(), fields));
        }
        Ok(out)
    }

    pub fn fleet_id(&self) -> String {
        self.meta_str("fleet_id")
    }

    fn hydrate_map<T: Hydrate>(
        &self,
        map: &str,
        problems: &mut Vec<String>,
    ) -> Result<Vec<(String, T)>> {
        let obj = self.obj(map)?;
        let keys: Vec<String> = self.doc.keys(&obj).collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match autosurgeon::hydrate_prop::<_, T, _, _>(&self.doc, &obj, key.as_str()) {
                Ok(v) => out.push((key, v)),
                Err(e) => problems.push(format!("{map}: skipped '{key}': {e}")),
            }
        }
        Ok(out)
    }

    /// Builds the typed view of the whole document.
    pub fn state(&self) -> Result<FleetState> {
        let mut st = FleetState::default();
        self.read_parts(&mut st, Parts::ALL)?;
        Ok(st)
    }

    /// Starts recording which parts of the document change, for
    /// [`FleetDoc::changed_parts`]. Costs a little on every write; only the
    /// replica's own document does it.
    pub fn track_changes(&mut self) {
        self.doc.update_diff_cursor();
    }

    /// The parts of the typed state that edits and merged changes touched
    /// since the last call (or since [`FleetDoc::track_changes`]). Read from
    /// automerge's patch log, so it costs in proportion to the change, not
    /// the document. A patch on a root map this version does not know
    /// touches nothing it reads.
    pub fn changed_parts(&mut self) -> Parts {
        let mut parts = Parts::NONE;
        for patch in self.doc.diff_incremental() {
            let root_key = match (patch.path.first(), &patch.action) {
                (Some((_, automerge::Prop::Map(k))), _) => Some(k.as_str()),
                (None, automerge::PatchAction::PutMap { key, .. })
                | (None, automerge::PatchAction::DeleteMap { key }) => Some(key.as_str()),
                (
                    None,
                    automerge::PatchAction::Conflict {
                        prop: automerge::Prop::Map(k),
                    },
                ) => Some(k.as_str()),
                _ => None,
            };
            match root_key {
                Some(k) => parts = parts | Parts::of_root_map(k),
                // Something this code cannot place: read everything.
                None => return Parts::ALL,
            }
        }
        parts
    }

    /// Re-reads `parts` of the state from the document, leaving the others
    /// as they are.
    pub fn read_parts(&self, st: &mut FleetState, parts: Parts) -> Result<()> {
        for part in parts.iter() {
            let mut problems = Vec::new();
            self.read_part(st, part, &mut problems)?;
            st.part_problems[part as usize] = problems;
        }
        st.problems = st.part_problems.iter().flatten().cloned().collect();
        Ok(())
    }

    fn read_part(&self, st: &mut FleetState, part: Part, problems: &mut Vec<String>) -> Result<()> {
        let text = |f: &HashMap<String, Value>, k: &str| {
            f.get(k).and_then(|v| v.as_str()).map(str::to_string)
        };
        let num = |f: &HashMap<String, Value>, k: &str| f.get(k).and_then(Value::as_f64);
        match part {
            Part::Meta => {
                st.fleet_id = self.meta_str("fleet_id");
                st.name = self.meta_str("name");
            }
            Part::Fleet => {
                st.fleet = Layer::new();
                for (_, path, v) in self.read_flat(FLEET, problems)? {
                    st.fleet.insert(path, v);
                }
            }
            Part::Sites => {
                st.sites.clear();
                for (id, f) in self.read_records(SITES, problems)? {
                    let (Ok(sid), Some(name)) = (SiteId::parse(&id), text(&f, "name")) else {
                        problems.push(format!("sites: skipped malformed site '{id}'"));
                        continue;
                    };
                    let record = SiteRecord {
                        name,
                        lat: num(&f, "lat"),
                        lon: num(&f, "lon"),
                        zone: text(&f, "zone"),
                    };
                    st.sites.insert(
                        sid.clone(),
                        Site {
                            id: sid,
                            record,
                            overrides: Layer::new(),
                        },
                    );
                }
                for (owner, path, v) in self.read_flat(SITE_CONFIG, problems)? {
                    // Overrides of a removed site may linger from a concurrent
                    // edit; they apply to nothing.
                    if let Some(site) = SiteId::parse(&owner)
                        .ok()
                        .and_then(|id| st.sites.get_mut(&id))
                    {
                        site.overrides.insert(path, v);
                    }
                }
            }
            Part::Nodes => {
                st.nodes.clear();
                for (id, f) in self.read_records(NODES, problems)? {
                    let site = text(&f, "site");
                    match (NodeId::parse(&id), site.as_deref().map(SiteId::parse)) {
                        (Ok(nid), Some(Ok(site_id))) => {
                            let record = NodeRecord {
                                site: site_id.to_string(),
                                role: text(&f, "role"),
                            };
                            st.nodes.insert(
                                nid.clone(),
                                Node {
                                    id: nid,
                                    site: site_id,
                                    record,
                                    overrides: Layer::new(),
                                    key: text(&f, "key").and_then(|k| MemberKey::parse(&k).ok()),
                                    resume_ms: f.get("resume_ms").and_then(Value::as_i64),
                                },
                            );
                        }
                        _ => problems.push(format!("nodes: skipped malformed node '{id}'")),
                    }
                }
                st.run_by.clear();
                for node in st.nodes.values() {
                    if let Some(k) = &node.key {
                        st.run_by
                            .entry(k.clone())
                            .or_default()
                            .push(node.id.clone());
                    }
                }
                for (owner, path, v) in self.read_flat(NODE_CONFIG, problems)? {
                    if let Some(node) = NodeId::parse(&owner)
                        .ok()
                        .and_then(|id| st.nodes.get_mut(&id))
                    {
                        node.overrides.insert(path, v);
                    }
                }
            }
            Part::Members => {
                st.members.clear();
                st.revoked.clear();
                let revocations = self.revocations()?;
                for (key, rec) in self.hydrate_map::<MemberRecord>(MEMBERS, problems)? {
                    match (MemberKey::parse(&key), Role::parse(&rec.role)) {
                        (Ok(k), Ok(role)) => {
                            let revoked = revocations.get(&key).cloned();
                            let to = if revoked.is_some() {
                                &mut st.revoked
                            } else {
                                &mut st.members
                            };
                            to.insert(
                                k.clone(),
                                Member {
                                    key: k,
                                    name: rec.name,
                                    role,
                                    added_ms: rec.added_ms,
                                    addrs: rec.addrs,
                                    wg: self.member_wg(&key),
                                    revoked,
                                },
                            );
                        }
                        _ => problems.push(format!("members: skipped malformed member '{key}'")),
                    }
                }
            }
            Part::Acks => {
                st.acks.clear();
                for (id, rec) in self.hydrate_map::<AckRecord>(ACKS, problems)? {
                    st.acks.insert(
                        id,
                        Ack {
                            by: rec.by,
                            at_ms: rec.at_ms,
                            until_ms: rec.until_ms,
                            since_ms: rec.since_ms,
                        },
                    );
                }
            }
            Part::Commands => {
                st.commands.clear();
                st.command_results.clear();
                if self.obj(COMMANDS).is_ok() {
                    for (id, rec) in self.hydrate_map::<CommandRecord>(COMMANDS, problems)? {
                        st.commands.insert(id, rec);
                    }
                }
                let results = self.obj(COMMAND_RESULTS).ok();
                for item in results.iter().flat_map(|r| self.doc.map_range(r, ..)) {
                    let parsed = match (&item.value, item.key.split_once('/')) {
                        (ValueRef::Scalar(ScalarValueRef::Str(t)), Some((cmd, node))) => {
                            serde_json::from_str::<CommandResult>(t)
                                .ok()
                                .map(|r| (cmd.to_string(), node.to_string(), r))
                        }
                        _ => None,
                    };
                    match parsed {
                        Some((cmd, node, r)) => {
                            st.command_results.entry(cmd).or_default().insert(node, r);
                        }
                        None => problems.push(format!(
                            "command_results: skipped malformed entry '{}'",
                            item.key
                        )),
                    }
                }
            }
            Part::Rollouts => {
                st.rollouts.clear();
                self.read_rollouts(st, problems);
            }
            Part::Freeze => {
                st.freeze = None;
                let freeze = self.obj(FREEZE)?;
                if self.doc.length(&freeze) > 0 {
                    match autosurgeon::hydrate_prop::<_, FreezeRecord, _, _>(
                        &self.doc,
                        automerge::ROOT,
                        FREEZE,
                    ) {
                        Ok(f) => st.freeze = Some(f),
                        Err(e) => problems.push(format!("freeze: unreadable: {e}")),
                    }
                }
            }
        }
        Ok(())
    }

    /// The document as it was at `heads` (for history, diff and revert).
    pub fn at(&mut self, heads: &[ChangeHash]) -> Result<FleetDoc> {
        if heads.is_empty() {
            // Before the first change there is no fleet: an empty view.
            return Ok(FleetDoc {
                doc: AutoCommit::new(),
            });
        }
        Ok(FleetDoc {
            doc: self.doc.fork_at(heads)?,
        })
    }

    /// State, tolerating a document with no root maps yet (before genesis).
    pub fn state_or_empty(&self) -> Result<FleetState> {
        if self.obj(META).is_err() {
            return Ok(FleetState::default());
        }
        self.state()
    }

    // ---- writes ------------------------------------------------------------

    pub fn add_site(&mut self, id: &SiteId, rec: &SiteRecord) -> Result<()> {
        let sites = self.obj(SITES)?;
        if self.doc.get(&sites, id.as_str())?.is_some() {
            return Err(StoreError::SiteExists(id.to_string()));
        }
        validate_site(rec)?;
        autosurgeon::reconcile_prop(&mut self.doc, &sites, id.as_str(), rec)?;
        Ok(())
    }

    pub fn update_site(&mut self, id: &SiteId, rec: &SiteRecord) -> Result<()> {
        let sites = self.obj(SITES)?;
        if self.doc.get(&sites, id.as_str())?.is_none() {
            return Err(StoreError::UnknownSite(id.to_string()));
        }
        validate_site(rec)?;
        autosurgeon::reconcile_prop(&mut self.doc, &sites, id.as_str(), rec)?;
        Ok(())
    }

    /// Removes a site, its overrides, and (with `with_nodes`) its nodes.
    pub fn remove_site(&mut self, id: &SiteId, with_nodes: bool) -> Result<()> {
        let st = self.state()?;
        st.site(id)?;
        let nodes: Vec<NodeId> = st.nodes_of(id).map(|n| n.id.clone()).collect();
        if !nodes.is_empty() && !with_nodes {
            return Err(StoreError::Invalid(format!(
                "site {id} still has {} node(s) ({}); remove them first or pass --with-nodes",
                nodes.len(),
                nodes
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for n in &nodes {
            self.remove_node(n)?;
        }
        self.delete_layer_below(&LayerRef::Site(id.clone()), None)?;
        let sites = self.obj(SITES)?;
        self.doc.delete(&sites, id.as_str())?;
        Ok(())
    }

    pub fn add_node(&mut self, id: &NodeId, rec: &NodeRecord) -> Result<()> {
        let site = SiteId::parse(&rec.site)?;
        let sites = self.obj(SITES)?;
        if self.doc.get(&sites, site.as_str())?.is_none() {
            return Err(StoreError::UnknownSite(site.to_string()));
        }
        let nodes = self.obj(NODES)?;
        if self.doc.get(&nodes, id.as_str())?.is_some() {
            return Err(StoreError::NodeExists(id.to_string()));
        }
        validate_node(rec)?;
        autosurgeon::reconcile_prop(&mut self.doc, &nodes, id.as_str(), rec)?;
        Ok(())
    }

    /// Moves a node to another site or gives it another role; its binding
    /// and overrides stay.
    pub fn update_node(&mut self, id: &NodeId, rec: &NodeRecord) -> Result<()> {
        let site = SiteId::parse(&rec.site)?;
        let sites = self.obj(SITES)?;
        if self.doc.get(&sites, site.as_str())?.is_none() {
            return Err(StoreError::UnknownSite(site.to_string()));
        }
        validate_node(rec)?;
        let nodes = self.obj(NODES)?;
        let Some((automerge::Value::Object(ObjType::Map), node)) =
            self.doc.get(&nodes, id.as_str())?
        else {
            return Err(StoreError::UnknownNode(id.to_string()));
        };
        autosurgeon::reconcile_prop(&mut self.doc, &node, "site", &rec.site)?;
        autosurgeon::reconcile_prop(&mut self.doc, &node, "role", &rec.role)?;
        Ok(())
    }

    /// Binds a node to the replica that runs its daemon. Refuses to take a
    /// node bound to another replica.
    pub fn bind_node(&mut self, id: &NodeId, key: &MemberKey) -> Result<()> {
        let nodes = self.obj(NODES)?;
        let Some((automerge::Value::Object(ObjType::Map), rec)) =
            self.doc.get(&nodes, id.as_str())?
        else {
            return Err(StoreError::UnknownNode(id.to_string()));
        };
        if let Some((v, _)) = self.doc.get(&rec, "key")?
            && let Some(bound) = v.as_str()
            && bound != key.as_str()
        {
            return Err(StoreError::Invalid(format!(
                "node {id} is already run by replica {}; unbind it there first (`fleetdeck node unbind {id}`)",
                bound.chars().take(12).collect::<String>()
            )));
        }
        self.doc.put(&rec, "key", key.as_str())?;
        Ok(())
    }

    /// Forgets which replica runs a node (to move it to new hardware).
    pub fn unbind_node(&mut self, id: &NodeId) -> Result<()> {
        let nodes = self.obj(NODES)?;
        let Some((automerge::Value::Object(ObjType::Map), rec)) =
            self.doc.get(&nodes, id.as_str())?
        else {
            return Err(StoreError::UnknownNode(id.to_string()));
        };
        self.doc.delete(&rec, "key")?;
        Ok(())
    }

    /// Tells a node in safe mode to apply again.
    pub fn resume_node(&mut self, id: &NodeId, now_ms: i64) -> Result<()> {
        let nodes = self.obj(NODES)?;
        let Some((automerge::Value::Object(ObjType::Map), rec)) =
            self.doc.get(&nodes, id.as_str())?
        else {
            return Err(StoreError::UnknownNode(id.to_string()));
        };
        self.doc.put(&rec, "resume_ms", now_ms)?;
        Ok(())
    }

    pub fn remove_node(&mut self, id: &NodeId) -> Result<()> {
        let nodes = self.obj(NODES)?;
        if self.doc.get(&nodes, id.as_str())?.is_none() {
            return Err(StoreError::UnknownNode(id.to_string()));
        }
        self.delete_layer_below(&LayerRef::Node(id.clone()), None)?;
        self.doc.delete(&nodes, id.as_str())?;
        Ok(())
    }

    fn check_layer_exists(&self, layer: &LayerRef) -> Result<()> {
        match layer {
            LayerRef::Fleet => Ok(()),
            LayerRef::Site(s) => {
                let sites = self.obj(SITES)?;
                match self.doc.get(&sites, s.as_str())? {
                    Some(_) => Ok(()),
                    None => Err(StoreError::UnknownSite(s.to_string())),
                }
            }
            LayerRef::Node(n) => {
                let nodes = self.obj(NODES)?;
                match self.doc.get(&nodes, n.as_str())? {
                    Some(_) => Ok(()),
                    None => Err(StoreError::UnknownNode(n.to_string())),
                }
            }
        }
    }

    /// Stored keys of `layer` at `path` or below it (all keys for `None`).
    fn layer_keys_below(&self, layer: &LayerRef, path: Option<&ConfigPath>) -> Result<Vec<String>> {
        let obj = self.obj(layer.map())?;
        let prefix = layer.prefix();
        let start = match path {
            Some(p) => format!("{prefix}{}", p.to_key()),
            None => prefix.clone(),
        };
        let exact = start.clone();
        let below = format!("{start}.");
        Ok(self
            .doc
            .map_range(&obj, start.clone()..)
            .map(|i| i.key.to_string())
            .take_while(|k| k.starts_with(&start))
            .filter(|k| path.is_none() || *k == exact || k.starts_with(&below))
            .collect())
    }

    fn delete_layer_below(&mut self, layer: &LayerRef, path: Option<&ConfigPath>) -> Result<usize> {
        let obj = self.obj(layer.map())?;
        let keys = self.layer_keys_below(layer, path)?;
        for k in &keys {
            self.doc.delete(&obj, k.as_str())?;
        }
        Ok(keys.len())
    }

    /// Sets KEY in a layer to VALUE (an object is split into its leaves), after
    /// validating every leaf. What the layer held at KEY is replaced.
    pub fn set_config(&mut self, layer: &LayerRef, path: &ConfigPath, value: &Value) -> Result<()> {
        self.check_layer_exists(layer)?;
        let leaves = config::flatten(path, value)?;
        for (p, v) in &leaves {
            schema::validate_leaf(p, v, layer.source())?;
        }
        let obj = self.obj(layer.map())?;
        let prefix = layer.prefix();
        // A scalar stored at a parent of KEY would be replaced by the map KEY
        // lives in: delete it here rather than let the merge hide it.
        let segs = path.segments();
        for n in 1..segs.len() {
            let parent = ConfigPath::from_segments(segs[..n].to_vec())?;
            let k = format!("{prefix}{}", parent.to_key());
            if self.doc.get(&obj, k.as_str())?.is_some() {
                self.doc.delete(&obj, k.as_str())?;
            }
        }
        let old: Vec<String> = self.layer_keys_below(layer, Some(path))?;
        let new: Vec<String> = leaves
            .iter()
            .map(|(p, _)| format!("{prefix}{}", p.to_key()))
            .collect();
        for k in old.iter().filter(|k| !new.contains(k)) {
            self.doc.delete(&obj, k.as_str())?;
        }
        for (k, (_, v)) in new.iter().zip(&leaves) {
            let text = v.to_string();
            // Writing an identical value would still be a change; skip it, but
            // always write when replicas disagree (that resolves a conflict).
            let same = self.doc.get_all(&obj, k.as_str())?;
            let unchanged = same.len() == 1
                && matches!(&same[0].0, automerge::Value::Scalar(s) if s.as_str() == Some(text.as_str()));
            if !unchanged {
                self.doc.put(&obj, k.as_str(), text)?;
            }
        }
        Ok(())
    }

    /// Removes KEY (and everything below it) from a layer. Refuses when the
    /// layer does not set KEY, so a typo is not silently a no-op.
    pub fn unset_config(&mut self, layer: &LayerRef, path: &ConfigPath) -> Result<()> {
        self.check_layer_exists(layer)?;
        if self.delete_layer_below(layer, Some(path))? == 0 {
            return Err(StoreError::Invalid(format!(
                "{path} is not set in {}; nothing to unset",
                layer.describe()
            )));
        }
        Ok(())
    }

    pub fn put_member(
        &mut self,
        key: &MemberKey,
        name: &str,
        role: Role,
        now_ms: i64,
    ) -> Result<()> {
        if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(format!(
                "member name {name:?} is not valid: expected 1 to 128 printable characters"
            )));
        }
        let members = self.obj(MEMBERS)?;
        let existing = autosurgeon::hydrate_prop::<_, Option<MemberRecord>, _, _>(
            &self.doc,
            &members,
            key.as_str(),
        )
        .ok()
        .flatten();
        // Enrolment order places overlay addresses (`overlay::addresses`):
        // a record written again keeps its place, and a new one comes
        // after every record this replica holds, whatever this machine's
        // clock says (a joiner that ground its key to meet an earlier
        // member's address cannot get ahead of it through a slow clock).
        let added_ms = match &existing {
            Some(m) => m.added_ms,
            None => self
                .latest_enrolment()
                .map_or(now_ms, |t| now_ms.max(t.saturating_add(1))),
        };
        let rec = MemberRecord {
            name: name.to_string(),
            role: role.as_str().to_string(),
            added_ms,
            addrs: existing.map(|m| m.addrs).unwrap_or_default(),
        };
        autosurgeon::reconcile_prop(&mut self.doc, &members, key.as_str(), &rec)?;
        Ok(())
    }

    /// The latest `added_ms` of any member record, readable or not.
    fn latest_enrolment(&self) -> Option<i64> {
        let members = self.obj(MEMBERS).ok()?;
        self.doc
            .map_range(&members, ..)
            .filter_map(|item| match self.doc.get(item.id(), "added_ms") {
                Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
                    automerge::ScalarValue::Int(t) => Some(*t),
                    automerge::ScalarValue::Uint(t) => i64::try_from(*t).ok(),
                    _ => None,
                },
                _ => None,
            })
            .max()
    }

    /// Every revocation in the document: member key → the revocation (two
    /// written at once by two admins merge, see [`Revocation::merge`]).
    pub fn revocations(&self) -> Result<BTreeMap<String, Revocation>> {
        let mut out = BTreeMap::new();
        let Some((automerge::Value::Object(ObjType::Map), members)) =
            self.doc.get(automerge::ROOT, MEMBERS)?
        else {
            return Ok(out);
        };
        for item in self.doc.map_range(&members, ..) {
            let Ok(all) = self.doc.get_all(item.id(), Revocation::FIELD) else {
                continue;
            };
            for (v, _) in all {
                let automerge::Value::Scalar(s) = v else {
                    continue;
                };
                let Some(r) = s.as_str().and_then(Revocation::parse) else {
                    continue;
                };
                out.entry(item.key.to_string())
                    .and_modify(|have: &mut Revocation| have.merge(&r))
                    .or_insert(r);
            }
        }
        Ok(out)
    }

    /// Revokes a member: writes `rec` at `members/<KEY>/revoked`. The name
    /// and role stay, so history still names the member.
    pub fn revoke_member(&mut self, key: &MemberKey, rec: &Revocation) -> Result<()> {
        let members = self.obj(MEMBERS)?;
        let Some((automerge::Value::Object(ObjType::Map), obj)) =
            self.doc.get(&members, key.as_str())?
        else {
            return Err(StoreError::Invalid(format!(
                "{key} is not a member of this fleet"
            )));
        };
        self.doc.put(&obj, Revocation::FIELD, rec.to_json())?;
        Ok(())
    }

    /// For every actor of `key` this document holds changes by, the highest
    /// seq held: what a revocation written now stands on.
    pub fn seen_of(&mut self, key: &MemberKey) -> BTreeMap<String, u64> {
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        for c in self.doc.get_changes(&[]) {
            if author_of(c.actor_id()) == key.as_str() {
                let e = seen.entry(c.actor_id().to_hex_string()).or_default();
                *e = (*e).max(c.seq());
            }
        }
        seen
    }

    /// Records where a member listens (written by the member itself when it
    /// starts serving, read by everyone who dials it).
    pub fn set_member_addrs(&mut self, key: &MemberKey, addrs: &[String]) -> Result<()> {
        let rec = self.member_record(key)?;
        autosurgeon::reconcile_prop(&mut self.doc, &rec, "addrs", addrs.to_vec())?;
        Ok(())
    }

    /// The map of `key`'s member record.
    fn member_record(&self, key: &MemberKey) -> Result<ObjId> {
        let members = self.obj(MEMBERS)?;
        match self.doc.get(&members, key.as_str())? {
            Some((automerge::Value::Object(ObjType::Map), rec)) => Ok(rec),
            _ => Err(StoreError::Invalid(format!(
                "{key} is not a member of this fleet"
            ))),
        }
    }

    /// A member's WireGuard public key, when its record holds a
    /// well-formed one (anything else there reads as none).
    fn member_wg(&self, key: &str) -> Option<[u8; 32]> {
        let members = self.obj(MEMBERS).ok()?;
        let Ok(Some((automerge::Value::Object(ObjType::Map), rec))) = self.doc.get(&members, key)
        else {
            return None;
        };
        match self.doc.get(&rec, "wg") {
            Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
                automerge::ScalarValue::Str(t) => crate::overlay::parse_wg_key(t),
                _ => None,
            },
            _ => None,
        }
    }

    /// Records a member's WireGuard public key (written by the member
    /// itself, like its addresses).
    pub fn set_member_wg(&mut self, key: &MemberKey, wg: &[u8; 32]) -> Result<()> {
        let rec = self.member_record(key)?;
        self.doc
            .put(&rec, "wg", crate::overlay::format_wg_key(wg))?;
        Ok(())
    }

    pub fn put_ack(&mut self, alert_id: &str, ack: &Ack) -> Result<()> {
        let acks = self.obj(ACKS)?;
        let rec = AckRecord {
            by: ack.by.clone(),
            at_ms: ack.at_ms,
            until_ms: ack.until_ms,
            since_ms: ack.since_ms,
        };
        autosurgeon::reconcile_prop(&mut self.doc, &acks, alert_id, &rec)?;
        Ok(())
    }

    pub fn set_freeze(&mut self, rec: &FreezeRecord) -> Result<()> {
        autosurgeon::reconcile_prop(&mut self.doc, automerge::ROOT, FREEZE, rec)?;
        Ok(())
    }

    fn read_rollouts(&self, st: &mut FleetState, problems: &mut Vec<String>) {
        use crate::rollout::{Rollout, RolloutSpec};
        let text = |v: &ValueRef<'_>| match v {
            ValueRef::Scalar(ScalarValueRef::Str(t)) => Some(t.to_string()),
            _ => None,
        };
        let Ok(obj) = self.obj(ROLLOUTS) else { return };
        let mut rollouts: BTreeMap<String, Rollout> = BTreeMap::new();
        for item in self.doc.map_range(&obj, ..) {
            match text(&item.value).and_then(|t| serde_json::from_str::<RolloutSpec>(&t).ok()) {
                Some(spec) => {
                    rollouts.insert(
                        item.key.to_string(),
                        Rollout::new(item.key.to_string(), spec),
                    );
                }
                None => problems.push(format!(
                    "rollouts: skipped malformed rollout '{}'",
                    item.key
                )),
            }
        }
        if let Ok(ev) = self.obj(ROLLOUT_EVENTS) {
            for item in self.doc.map_range(&ev, ..) {
                let key = item.key.to_string();
                let mut parts = key.splitn(3, '/');
                let (Some(id), Some(kind)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let Some(r) = rollouts.get_mut(id) else {
                    continue;
                };
                let v: Value = text(&item.value)
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null);
                let at = v.get("at_ms").and_then(Value::as_i64).unwrap_or(0);
                let e = &mut r.events;
                match (kind, parts.next()) {
                    ("open", Some(k)) => {
                        if let Ok(k) = k.parse() {
                            e.opened.insert(k, at);
                        }
                    }
                    ("halt", _) => {
                        let reason = v
                            .get("reason")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        e.halted = Some((at, reason));
                    }
                    ("pause", _) => e.paused = Some(at),
                    ("resume", _) => e.resumed = Some(at),
                    ("abort", _) => e.aborted = Some(at),
                    _ => problems.push(format!("rollout_events: skipped unknown event '{key}'")),
                }
            }
        }
        let mut list: Vec<Rollout> = rollouts.into_values().collect();
        list.sort_by(|a, b| a.spec.at_ms.cmp(&b.spec.at_ms).then(a.id.cmp(&b.id)));
        st.rollouts = list;
    }

    /// Records a new rollout, after checking each key and value it sets.
    pub fn add_rollout(&mut self, id: &str, spec: &crate::rollout::RolloutSpec) -> Result<()> {
        for (k, v) in &spec.set {
            let path = ConfigPath::parse(k)?;
            for (p, leaf) in config::flatten(&path, v)? {
                schema::validate_leaf(&p, &leaf, Source::Node)?;
            }
        }
        let obj = self.later_obj(ROLLOUTS)?;
        if self.doc.get(&obj, id)?.is_some() {
            return Err(StoreError::Invalid(format!("rollout {id} already exists")));
        }
        let text = serde_json::to_string(spec).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.doc.put(&obj, id, text)?;
        Ok(())
    }

    /// The changes that gave each wave of rollout `id` its settings: the
    /// one that started it (wave 1) and the one that opened each later wave
    /// (`open/K`); `None` for a wave not opened (or not held here).
    pub fn rollout_wave_changes(&mut self, id: &str, waves: usize) -> Vec<Option<ChangeHash>> {
        let mut ops: Vec<Option<(u64, automerge::ActorId)>> = Vec::with_capacity(waves);
        let op_of = |doc: &AutoCommit, obj: Option<ObjId>, key: &str| match obj
            .and_then(|o| doc.get(&o, key).ok().flatten())
        {
            Some((_, automerge::ObjId::Id(counter, actor, _))) => Some((counter, actor)),
            _ => None,
        };
        let starts = self.obj(ROLLOUTS).ok();
        let events = self.obj(ROLLOUT_EVENTS).ok();
        for wave in 0..waves {
            ops.push(if wave == 0 {
                op_of(&self.doc, starts.clone(), id)
            } else {
                op_of(&self.doc, events.clone(), &format!("{id}/open/{wave}"))
            });
        }
        if ops.iter().all(Option::is_none) {
            return vec![None; waves];
        }
        let metas = self.doc.get_changes_meta(&[]);
        ops.into_iter()
            .map(|op| {
                let (counter, actor) = op?;
                metas
                    .iter()
                    .find(|m| *m.actor == actor && m.start_op <= counter && counter <= m.max_op)
                    .map(|m| m.hash)
            })
            .collect()
    }

    /// Records a rollout event: `open/K`, `halt`, `pause`, `resume`, `abort`.
    pub fn rollout_event(
        &mut self,
        id: &str,
        event: &str,
        at_ms: i64,
        reason: Option<&str>,
    ) -> Result<()> {
        let obj = self.later_obj(ROLLOUT_EVENTS)?;
        let v = serde_json::json!({"at_ms": at_ms, "reason": reason});
        self.doc
            .put(&obj, format!("{id}/{event}").as_str(), v.to_string())?;
        Ok(())
    }

    /// Records a command for nodes to run.
    pub fn add_command(&mut self, id: &str, rec: &CommandRecord) -> Result<()> {
        let cmds = self.later_obj(COMMANDS)?;
        if self.doc.get(&cmds, id)?.is_some() {
            return Err(StoreError::Invalid(format!("command {id} already exists")));
        }
        autosurgeon::reconcile_prop(&mut self.doc, &cmds, id, rec)?;
        Ok(())
    }

    /// The result `node` wrote into the document for command `id` (as
    /// nodes did before results moved to their registers, `results`), if
    /// one is there and reads.
    pub fn command_result_in_doc(&self, id: &str, node: &str) -> Option<CommandResult> {
        let obj = self.obj(COMMAND_RESULTS).ok()?;
        match self.doc.get(&obj, format!("{id}/{node}").as_str()) {
            Ok(Some((automerge::Value::Scalar(s), _))) => serde_json::from_str(s.as_str()?).ok(),
            _ => None,
        }
    }

    /// A node reports what a command did on it, in the document: how nodes
    /// did before results moved to their registers (`results`); kept for
    /// tests of the legacy path and of its rights.
    pub fn put_command_result(&mut self, id: &str, node: &NodeId, r: &CommandResult) -> Result<()> {
        let results = self.later_obj(COMMAND_RESULTS)?;
        let text = serde_json::to_string(r).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.doc
            .put(&results, format!("{id}/{node}").as_str(), text)?;
        Ok(())
    }

    // ---- conflicts ---------------------------------------------------------

    /// Every key with concurrent values, across config layers and records.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        let mut out = Vec::new();
        for map in [FLEET, SITE_CONFIG, NODE_CONFIG] {
            let obj = self.obj(map)?;
            let keys: Vec<String> = self
                .doc
                .map_range(&obj, ..)
                .filter(|i| i.conflict)
                .map(|i| i.key.to_string())
                .collect();
            for key in keys {
                let (scope, leaf) = match map {
                    FLEET => ("fleet".to_string(), key.clone()),
                    _ => {
                        let (owner, leaf) = key.split_once('/').unwrap_or(("?", key.as_str()));
                        let kind = if map == SITE_CONFIG { "site" } else { "node" };
                        (format!("{kind} {owner}"), leaf.to_string())
                    }
                };
                out.push(Conflict {
                    scope,
                    key: leaf,
                    values: self.conflict_values(&obj, &key, true)?,
                });
            }
        }
        for coll in [SITES, NODES, MEMBERS, ACKS] {
            let obj = self.obj(coll)?;
            let items: Vec<(String, bool)> = self
                .doc
                .map_range(&obj, ..)
                .map(|i| (i.key.to_string(), i.conflict))
                .collect();
            for (id, conflicted) in items {
                if conflicted {
                    out.push(Conflict {
                        scope: coll.to_string(),
                        key: id.clone(),
                        values: self.conflict_values(&obj, &id, false)?,
                    });
                }
                if let Some((automerge::Value::Object(ObjType::Map), rec)) =
                    self.doc.get(&obj, id.as_str())?
                {
                    let fields: Vec<String> = self
                        .doc
                        .map_range(&rec, ..)
                        .filter(|i| i.conflict)
                        .map(|i| i.key.to_string())
                        .collect();
                    for f in fields {
                        out.push(Conflict {
                            scope: format!("{} {id}", coll.trim_end_matches('s')),
                            key: f.clone(),
                            values: self.conflict_values(&rec, &f, false)?,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    fn conflict_values(
        &self,
        obj: &ObjId,
        key: &str,
        json_text: bool,
    ) -> Result<Vec<ConflictValue>> {
        let winner = self.doc.get(obj, key)?.map(|(_, id)| id);
        let mut values = Vec::new();
        for (v, id) in self.doc.get_all(obj, key)? {
            let value = match (&v, json_text) {
                (automerge::Value::Scalar(s), true) => s
                    .as_str()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or(Value::Null),
                (automerge::Value::Scalar(s), false) => scalar_owned_json(s),
                (automerge::Value::Object(t), _) => Value::String(format!("<{t:?}>")),
            };
            let author = match &id {
                ObjId::Id(_, actor, _) => author_of(actor),
                ObjId::Root => String::new(),
            };
            values.push(ConflictValue {
                value,
                author,
                winner: Some(&id) == winner.as_ref(),
            });
        }
        Ok(values)
    }

    // ---- history -----------------------------------------------------------

    /// Every change, oldest first, in the same order on every replica that
    /// holds the same changes: a change comes after its dependencies; among
    /// changes free to go next, the earlier time first, then the smaller
    /// hash. (automerge's own order is causal too, but it follows the order
    /// the changes arrived in, so two converged replicas listed concurrent
    /// changes differently.)
    pub fn history(&mut self) -> Vec<HistoryEntry> {
        history_order(self.doc.get_changes(&[]))
            .iter()
            .map(|c| HistoryEntry {
                id: c.hash().to_string(),
                author: author_of(c.actor_id()),
                author_name: None,
                time_ms: c.timestamp(),
                message: c.message().map(str::to_string),
                seq: c.seq(),
                ops: c.len(),
            })
            .collect()
    }

    /// Resolves a change id or a unique prefix of one (at least 4 hex digits).
    pub fn resolve_change(&mut self, id: &str) -> Result<ChangeHash> {
        let want = id.to_ascii_lowercase();
        if want.len() < 4 || !want.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(format!(
                "change id '{id}' is not valid: expected at least 4 hex digits of a change id from `fleetdeck history`"
            )));
        }
        let matches: Vec<ChangeHash> = self
            .doc
            .get_changes(&[])
            .iter()
            .map(|c| c.hash())
            .filter(|h| h.to_string().starts_with(&want))
            .collect();
        match matches.len() {
            0 => Err(StoreError::UnknownChange(id.to_string())),
            1 => Ok(matches[0]),
            n => Err(StoreError::AmbiguousChange(id.to_string(), n)),
        }
    }

    /// The heads just before `change` (its dependencies).
    pub fn parents_of(&mut self, change: &ChangeHash) -> Result<Vec<ChangeHash>> {
        self.doc
            .get_change_by_hash(change)
            .map(|c| c.deps().to_vec())
            .ok_or_else(|| StoreError::UnknownChange(change.to_string()))
    }

    // ---- revert ------------------------------------------------------------

    /// Writes the inverse of `change` as new edits (not committed): every
    /// entry the change set is put back as it was before it, unless it was
    /// edited again since, in which case it is left alone and reported.
    pub fn revert(&mut self, change: &ChangeHash) -> Result<RevertOutcome> {
        let parents = self.parents_of(change)?;
        let before = self.at(&parents)?.flat_view();
        let after = self.at(&[*change])?.flat_view();
        let now = self.flat_view();
        let mut out = RevertOutcome::default();
        let mut slots: Vec<&Slot> = before.keys().chain(after.keys()).collect();
        slots.sort();
        slots.dedup();
        // Records the change created and that are still exactly as it left
        // them are deleted whole.
        let mut drop_records: Vec<(String, String)> = Vec::new();
        for slot in &slots {
            let (b, a, n) = (before.get(*slot), after.get(*slot), now.get(*slot));
            if b == a {
                continue;
            }
            if n != a {
                out.skipped.push(slot.describe());
                continue;
            }
            match (slot, b) {
                (Slot::Field { coll, id, .. }, None)
                    if !before.keys().any(|s| s.record() == Some((coll, id))) =>
                {
                    let rec = (coll.clone(), id.clone());
                    if !drop_records.contains(&rec) {
                        drop_records.push(rec);
                    }
                }
                _ => self.write_slot(slot, b)?,
            }
            out.restored.push(slot.describe());
        }
        for (coll, id) in drop_records {
            // A record edited since (a field changed again, or one the
            // change did not set added) stays: deleting it whole would take
            // those edits with it.
            let in_record = |s: &Slot| s.record() == Some((&coll, &id));
            let edited_since = slots
                .iter()
                .any(|s| in_record(s) && now.get(*s) != after.get(*s))
                || now.keys().any(|s| in_record(s) && !after.contains_key(s));
            if edited_since {
                let prefix = format!("{} {id} ", coll.trim_end_matches('s'));
                out.restored.retain(|d| !d.starts_with(&prefix));
                out.skipped.push(format!(
                    "{} {id} (edited since)",
                    coll.trim_end_matches('s')
                ));
                continue;
            }
            // A site that nodes were added to since stays: removing it would
            // orphan them.
            let used = coll == SITES
                && now.iter().any(|(s, v)| {
                    matches!(s, Slot::Field { coll, field, .. } if coll == NODES && field == "site")
                        && v.as_str() == Some(id.as_str())
                });
            if used {
                out.restored
                    .retain(|d| !d.starts_with(&format!("site {id} ")));
                out.skipped
                    .push(format!("site {id} (nodes were added to it since)"));
                continue;
            }
            let obj = self.obj(&coll)?;
            self.doc.delete(&obj, id.as_str())?;
        }
        Ok(out)
    }

    fn write_slot(&mut self, slot: &Slot, value: Option<&Value>) -> Result<()> {
        match slot {
            Slot::Flat { map, key } => {
                let obj = self.obj(map)?;
                match value {
                    Some(Value::String(s)) if map != META && map != FREEZE => {
                        self.doc.put(&obj, key.as_str(), s.as_str())?
                    }
                    Some(v) => self.doc.put(&obj, key.as_str(), scalar_of(v))?,
                    None => self.doc.delete(&obj, key.as_str())?,
                }
            }
            Slot::Field { coll, id, field } => {
                let obj = self.obj(coll)?;
                let rec = match self.doc.get(&obj, id.as_str())? {
                    Some((automerge::Value::Object(ObjType::Map), rec)) => rec,
                    _ => {
                        if value.is_none() {
                            return Ok(());
                        }
                        self.doc.put_object(&obj, id.as_str(), ObjType::Map)?
                    }
                };
                match value {
                    Some(v) => self.doc.put(&rec, field.as_str(), scalar_of(v))?,
                    None => self.doc.delete(&rec, field.as_str())?,
                }
            }
        }
        Ok(())
    }

    /// Every scalar of the document by its place, for revert.
    fn flat_view(&self) -> BTreeMap<Slot, Value> {
        let mut out = BTreeMap::new();
        for map in [META, FLEET, SITE_CONFIG, NODE_CONFIG, FREEZE] {
            let Ok(obj) = self.obj(map) else { continue };
            for item in self.doc.map_range(&obj, ..) {
                if let ValueRef::Scalar(_) = item.value {
                    out.insert(
                        Slot::Flat {
                            map: map.to_string(),
                            key: item.key.to_string(),
                        },
                        json_of(&item.value),
                    );
                }
            }
        }
        for coll in [SITES, NODES, MEMBERS, ACKS] {
            let Ok(obj) = self.obj(coll) else { continue };
            let ids: Vec<(String, ObjId)> = self
                .doc
                .map_range(&obj, ..)
                .filter(|i| matches!(i.value, ValueRef::Object(ObjType::Map)))
                .map(|i| (i.key.to_string(), i.id()))
                .collect();
            for (id, rec) in ids {
                for item in self.doc.map_range(&rec, ..) {
                    out.insert(
                        Slot::Field {
                            coll: coll.to_string(),
                            id: id.clone(),
                            field: item.key.to_string(),
                        },
                        json_of(&item.value),
                    );
                }
            }
        }
        out
    }
}

fn scalar_owned_json(s: &automerge::ScalarValue) -> Value {
    use automerge::ScalarValue as S;
    match s {
        S::Str(s) => Value::String(s.to_string()),
        S::Int(i) | S::Timestamp(i) => Value::from(*i),
        S::Uint(u) => Value::from(*u),
        S::F64(f) => Value::from(*f),
        S::Boolean(b) => Value::Bool(*b),
        S::Null => Value::Null,
        other => Value::String(other.to_string()),
    }
}

/// A node's role, if any, is 1 to 64 printable characters.
pub(crate) fn validate_node(rec: &NodeRecord) -> Result<()> {
    if let Some(role) = &rec.role
        && (role.is_empty() || role.len() > 64 || role.chars().any(|c| c.is_control()))
    {
        return Err(StoreError::Invalid(format!(
            "node role '{role}' is not valid: expected 1 to 64 printable characters (e.g. edge, central, camera)"
        )));
    }
    Ok(())
}

pub(crate) fn validate_site(rec: &SiteRecord) -> Result<()> {
    if rec.name.trim().is_empty() || rec.name.len() > 128 {
        return Err(StoreError::Invalid(format!(
            "site name '{}' is not valid: expected 1 to 128 characters",
            rec.name
        )));
    }
    if let Some(lat) = rec.lat
        && !(-90.0..=90.0).contains(&lat)
    {
        return Err(StoreError::Invalid(format!(
            "latitude {lat} is out of range: expected -90 to 90"
        )));
    }
    if let Some(lon) = rec.lon
        && !(-180.0..=180.0).contains(&lon)
    {
        return Err(StoreError::Invalid(format!(
            "longitude {lon} is out of range: expected -180 to 180"
        )));
    }
    if rec.lat.is_some() != rec.lon.is_some() {
        return Err(StoreError::Invalid(
            "a location needs both --lat and --lon".to_string(),
        ));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Flat {
        map: String,
        key: String,
    },
    Field {
        coll: String,
        id: String,
        field: String,
    },
}

impl Slot {
    fn record(&self) -> Option<(&String, &String)> {
        match self {
            Slot::Field { coll, id, .. } => Some((coll, id)),
            Slot::Flat { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Slot::Flat { map, key } => match map.as_str() {
                FLEET => format!("fleet {key}"),
                SITE_CONFIG => format!("site {}", key.replacen('/', " ", 1)),
                NODE_CONFIG => format!("node {}", key.replacen('/', " ", 1)),
                _ => format!("{map}.{key}"),
            },
            Slot::Field { coll, id, field } => {
                format!("{} {id} {field}", coll.trim_end_matches('s'))
            }
        }
    }
}

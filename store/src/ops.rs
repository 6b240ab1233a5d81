//! The operations API: the one door for every operator action.
//!
//! The CLI, the console, the scenario runner and the console's test fixture
//! (what the console does on it, and the operator actions of its seeded
//! history) all name what the operator asked for as an [`Op`] and hand it
//! to [`apply`], which
//! checks the author's role (the local half of the trust rules: a change
//! the author may not make is never written, with a sentence naming the
//! rule), writes one change with its message, and says what it did
//! ([`Done`]). Nothing else writes operator actions into the document; the
//! daemon and sync write only what they observed (apply outcomes, command
//! results, a replica's address).
//!
//! The same words are used everywhere: the [`Op::name`] of an action is the
//! CLI's subcommand, the console's help entry and the scenario file's event.

use std::collections::BTreeMap;

use automerge::ChangeHash;
use serde_json::Value;

use crate::alerts::{Ack, Alert};
use crate::config::{self, ConfigPath};
use crate::document::{
    CommandRecord, FleetDoc, FleetState, FreezeRecord, LayerRef, NodeRecord, RevertOutcome,
    SiteRecord,
};
use crate::error::{Result, StoreError};
use crate::identity;
use crate::ids::{MemberKey, NodeId, Role, SiteId};
use crate::replica::Replica;
use crate::rollout::RolloutSpec;

/// One edit of a config layer, as the console's editor stages them and the
/// CLI's `config set` / `config unset` make them.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigEdit {
    /// Sets the key (`null` removes an inherited key in an override).
    Set(ConfigPath, Value),
    /// Removes the key from the layer.
    Unset(ConfigPath),
}

impl ConfigEdit {
    pub fn key(&self) -> &ConfigPath {
        match self {
            ConfigEdit::Set(k, _) | ConfigEdit::Unset(k) => k,
        }
    }

    /// `key = value` or `unset key`, for messages.
    pub fn describe(&self) -> String {
        match self {
            ConfigEdit::Set(k, v) => format!("{k} = {v}"),
            ConfigEdit::Unset(k) => format!("unset {k}"),
        }
    }
}

/// What an operator may do to a running rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutAction {
    /// Stop opening waves; the nodes already in keep the new settings.
    Pause,
    /// Continue a paused or halted rollout (earlier failures are forgotten).
    Resume,
    /// Take the rollout's settings off every node.
    Abort,
}

impl RolloutAction {
    /// The document's event name, which is also the CLI's word.
    pub fn event(self) -> &'static str {
        match self {
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Abort => "abort",
        }
    }
}

/// Which nodes a command runs on.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandTarget {
    All,
    Site(SiteId),
    Node(NodeId),
}

impl std::fmt::Display for CommandTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.record())
    }
}

impl CommandTarget {
    fn record(&self) -> String {
        match self {
            CommandTarget::All => "all".into(),
            CommandTarget::Site(s) => format!("site:{s}"),
            CommandTarget::Node(n) => format!("node:{n}"),
        }
    }
}

/// A staged rollout as the operator asks for it; the author and time are
/// filled in when it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutPlan {
    /// key → value, as `config set` takes them.
    pub set: BTreeMap<String, Value>,
    /// Sites it covers; empty for the whole fleet.
    pub sites: Vec<SiteId>,
    /// Cumulative percentages ending at 100 (see `rollout::parse_waves`).
    pub waves: Vec<u8>,
    pub soak_ms: i64,
    pub max_fail: u64,
}

/// Every operator action.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Adds sites, several at once in one change.
    SiteAdd {
        sites: Vec<(SiteId, SiteRecord)>,
    },
    SiteRm {
        site: SiteId,
        with_nodes: bool,
    },
    /// Adds nodes, several at once in one change.
    NodeAdd {
        nodes: Vec<(NodeId, NodeRecord)>,
    },
    NodeRm {
        node: NodeId,
    },
    /// Lets a node in safe mode apply again.
    NodeResume {
        node: NodeId,
    },
    /// Frees a node from the replica it is bound to (a replaced device).
    NodeUnbind {
        node: NodeId,
    },
    /// A batch of sets and unsets on one layer, as one change.
    Config {
        layer: LayerRef,
        edits: Vec<ConfigEdit>,
        message: Option<String>,
    },
    Revert {
        change_id: String,
        message: Option<String>,
    },
    Ack {
        alert_id: String,
    },
    Silence {
        alert_id: String,
        for_ms: i64,
    },
    Freeze {
        message: String,
    },
    Unfreeze {
        message: String,
    },
    /// `id`: None for a new random id (scenarios name theirs).
    RolloutStart {
        id: Option<String>,
        plan: RolloutPlan,
    },
    Rollout {
        id: String,
        action: RolloutAction,
    },
    /// Enrolls a member (what redeeming an invite does): admins only.
    MemberAdd {
        key: MemberKey,
        name: String,
        role: Role,
    },
    /// Enrolls a device that reaches nodes' tunnels over plain WireGuard
    /// (`fleetdeck wg-config`): an operator whose signing key nobody keeps
    /// (`key` is a fresh key's public half: the device writes nothing), with
    /// `wg` its WireGuard public key. Admins only; revoked like any member.
    MemberDevice {
        key: MemberKey,
        name: String,
        wg: [u8; 32],
    },
    /// Gives a member another role: admins only; never the last admin.
    MemberRole {
        member: MemberKey,
        role: Role,
    },
    /// Revokes a member's key for good: admins only; never the last admin.
    /// Its later changes are refused by every replica and its sessions
    /// closed (see `rights` and the README).
    MemberRevoke {
        member: MemberKey,
    },
    /// `id`: None for a new random id.
    CommandRun {
        id: Option<String>,
        action: String,
        target: CommandTarget,
    },
    /// Makes the fleet what a fleet file declares (`declare`), in one
    /// change; with `prune`, sites and nodes the file does not name go.
    Declare {
        spec: Box<crate::declare::FleetSpec>,
        prune: bool,
    },
}

impl Op {
    /// The action's name, as the CLI, the console and scenario files say it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::SiteAdd { .. } => "site add",
            Op::SiteRm { .. } => "site rm",
            Op::NodeAdd { .. } => "node add",
            Op::NodeRm { .. } => "node rm",
            Op::NodeResume { .. } => "node resume",
            Op::NodeUnbind { .. } => "node unbind",
            Op::Config { .. } => "config set",
            Op::Revert { .. } => "revert",
            Op::Ack { .. } => "alerts ack",
            Op::Silence { .. } => "alerts silence",
            Op::Freeze { .. } => "freeze",
            Op::Unfreeze { .. } => "unfreeze",
            Op::RolloutStart { .. } => "rollout start",
            Op::Rollout { action, .. } => match action {
                RolloutAction::Pause => "rollout pause",
                RolloutAction::Resume => "rollout resume",
                RolloutAction::Abort => "rollout abort",
            },
            Op::CommandRun { .. } => "command run",
            Op::MemberAdd { .. } => "member add",
            Op::MemberDevice { .. } => "wg-config",
            Op::MemberRole { .. } => "member role",
            Op::MemberRevoke { .. } => "member revoke",
            Op::Declare { .. } => "apply",
        }
    }

    /// A short phrase for a status bar: "alerts ack disk:whn-nvr:/data".
    pub fn describe(&self) -> String {
        let name = self.name();
        match self {
            Op::SiteAdd { sites } => match sites.as_slice() {
                [(id, _)] => format!("{name} {id}"),
                _ => format!("{name} ({} sites)", sites.len()),
            },
            Op::NodeAdd { nodes } => match nodes.as_slice() {
                [(id, _)] => format!("{name} {id}"),
                _ => format!("{name} ({} nodes)", nodes.len()),
            },
            Op::SiteRm { site, .. } => format!("{name} {site}"),
            Op::NodeRm { node } | Op::NodeResume { node } | Op::NodeUnbind { node } => {
                format!("{name} {node}")
            }
            Op::Config { layer, edits, .. } => format!(
                "commit {} to {}",
                plural(edits.len(), "edit", "edits"),
                layer_name(layer)
            ),
            Op::Revert { change_id, .. } => {
                let short: String = change_id.chars().take(12).collect();
                format!("{name} {short}")
            }
            Op::Ack { alert_id } => format!("{name} {alert_id}"),
            Op::Silence { alert_id, for_ms } => {
                format!("{name} {alert_id} for {}", duration_words(*for_ms))
            }
            Op::Freeze { .. } | Op::Unfreeze { .. } | Op::RolloutStart { .. } => name.to_string(),
            Op::Rollout { id, .. } => format!("{name} {id}"),
            Op::CommandRun { action, target, .. } => {
                format!("{name} {action} on {}", target.record())
            }
            Op::MemberAdd {
                name: who, role, ..
            } => format!("{name} {who} as {role}"),
            Op::MemberDevice { name: who, .. } => format!("{name} {who}"),
            Op::MemberRole { member, role } => format!("{name} {} {role}", member.short()),
            Op::MemberRevoke { member } => format!("{name} {}", member.short()),
            Op::Declare { spec, .. } => format!(
                "{name} a fleet file ({}, {})",
                plural(spec.sites.len(), "site", "sites"),
                plural(spec.nodes.len(), "node", "nodes")
            ),
        }
    }
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    /// The change written; None when the document already said so.
    pub change: Option<ChangeHash>,
    /// One sentence for the operator.
    pub summary: String,
    /// The id of what was created (a rollout, a command), if any.
    pub created: Option<String>,
    /// Facts for `--json` beyond the sentence (a revert's entries), or null.
    pub details: Value,
}

impl Done {
    /// The summary with the change id, as every front end prints it.
    pub fn line(&self) -> String {
        match self.change {
            Some(h) => format!("{} (change {})", self.summary, &h.to_string()[..12]),
            None => self.summary.clone(),
        }
    }
}

/// What operations are applied to: a replica on disk, or a test fixture's
/// document. `commit` runs `edit` on the document and the current state and
/// writes one change (or nothing, when `edit` fails or changes nothing).
pub trait Fleet {
    fn state(&self) -> &FleetState;
    /// The key of the member acting here.
    fn me(&self) -> &MemberKey;
    /// Every open alert at `now_ms`, silenced ones included.
    fn alerts(&self, now_ms: i64) -> Vec<Alert>;
    fn resolve_change(&mut self, id: &str) -> Result<ChangeHash>;
    fn commit<T>(
        &mut self,
        message: &str,
        at_ms: i64,
        edit: impl FnOnce(&mut FleetDoc, &FleetState) -> Result<T>,
    ) -> Result<(T, Option<ChangeHash>)>;
}

impl Fleet for Replica {
    fn state(&self) -> &FleetState {
        Replica::state(self)
    }
    fn me(&self) -> &MemberKey {
        self.key()
    }
    fn alerts(&self, now_ms: i64) -> Vec<Alert> {
        Replica::alerts(self, now_ms)
    }
    fn resolve_change(&mut self, id: &str) -> Result<ChangeHash> {
        self.refresh()?;
        self.doc_mut().resolve_change(id)
    }
    fn commit<T>(
        &mut self,
        message: &str,
        at_ms: i64,
        edit: impl FnOnce(&mut FleetDoc, &FleetState) -> Result<T>,
    ) -> Result<(T, Option<ChangeHash>)> {
        self.change_at(message, at_ms, edit)
    }
}

/// The name others know `key` by: its member name, else its short key.
pub fn member_label(st: &FleetState, key: &MemberKey) -> String {
    st.member_name(key)
        .map(str::to_string)
        .unwrap_or_else(|| key.short().to_string())
}

// ---- who may do what ---------------------------------------------------------

/// The fleet setting (written by admins) that lets operators write the keys
/// that make nodes run programs.
pub const OPERATORS_RUN_PROGRAMS: &str = "trust.operators_run_programs";

/// How much authority writing a config key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyClass {
    /// Operators and admins.
    Plain,
    /// The key makes nodes run a program (`apply.*`, `actions.*`,
    /// `checks.commands`, `files`): admins, or operators where the fleet
    /// allows it ([`OPERATORS_RUN_PROGRAMS`]).
    Program,
    /// Who may do what, where replicas connect and what nodes' tunnels
    /// reach (`trust.*`, `sync.*`, `tunnel.*`): admins only.
    Admin,
}

const PROGRAM_KEYS: &[&[&str]] = &[
    &["apply"],
    &["actions"],
    &["checks", "commands"],
    &["files"],
];
const ADMIN_KEYS: &[&[&str]] = &[&["trust"], &["sync"], &["tunnel"]];

/// The class of `path`, counting everything below it (setting `checks` to
/// a map sets `checks.commands` too) and everything it is below.
pub fn key_class(path: &ConfigPath) -> KeyClass {
    let segs = path.segments();
    let overlaps = |root: &[&str]| segs.iter().zip(root.iter()).all(|(a, b)| a.as_str() == *b);
    if ADMIN_KEYS.iter().any(|r| overlaps(r)) {
        KeyClass::Admin
    } else if PROGRAM_KEYS.iter().any(|r| overlaps(r)) {
        KeyClass::Program
    } else {
        KeyClass::Plain
    }
}

/// Whether the fleet lets operators write program keys.
pub fn operators_run_programs(st: &FleetState) -> bool {
    let Ok(path) = ConfigPath::parse(OPERATORS_RUN_PROGRAMS) else {
        return false;
    };
    matches!(
        config::lookup(&[Some(&st.fleet)], path.segments()),
        Some(Value::Bool(true))
    )
}

/// Whether `role` may write a key of class `class` in this fleet.
pub fn may_write_key(role: Role, class: KeyClass, st: &FleetState) -> bool {
    match (role, class) {
        (Role::Admin, _) => true,
        (Role::Operator, KeyClass::Plain) => true,
        (Role::Operator, KeyClass::Program) => operators_run_programs(st),
        _ => false,
    }
}

fn denied(who: &str, role: Option<Role>, what: &str, rule: &str) -> StoreError {
    let role = role.map_or("not a member".to_string(), |r| {
        format!("{} {r}", article(r))
    });
    StoreError::Denied(format!("{who} is {role}: {what} {rule}"))
}

fn article(r: Role) -> &'static str {
    match r {
        Role::Admin | Role::Operator => "an",
        Role::Viewer | Role::Node => "a",
    }
}

fn key_rule(class: KeyClass) -> &'static str {
    match class {
        KeyClass::Plain => "takes an operator or an admin",
        KeyClass::Program => {
            "makes nodes run a program: only admins write it (or operators where an admin set trust.operators_run_programs = true)"
        }
        KeyClass::Admin => {
            "decides who may do what or where replicas connect: only admins write it"
        }
    }
}

/// Checks that the member `key` may write every one of `keys` (config
/// paths, set or unset).
fn check_keys<'a>(
    st: &FleetState,
    key: &MemberKey,
    keys: impl IntoIterator<Item = &'a ConfigPath>,
) -> Result<()> {
    let role = st.members.get(key).map(|m| m.role);
    let who = member_label(st, key);
    for path in keys {
        let class = key_class(path);
        if !role.is_some_and(|r| may_write_key(r, class, st)) {
            return Err(denied(&who, role, &format!("{path}"), key_rule(class)));
        }
    }
    Ok(())
}

/// The rule for `op` by the member `key`, judged against `st`: Ok, or a
/// refusal naming the rule. Config keys are judged one by one.
pub fn check(st: &FleetState, key: &MemberKey, op: &Op) -> Result<()> {
    let role = st.members.get(key).map(|m| m.role);
    if !role.is_some_and(Role::manages_fleet) {
        let who = member_label(st, key);
        return Err(denied(
            &who,
            role,
            op.name(),
            "takes an operator or an admin (see the roles in the README)",
        ));
    }
    match op {
        Op::MemberAdd { .. }
        | Op::MemberDevice { .. }
        | Op::MemberRole { .. }
        | Op::MemberRevoke { .. }
            if role != Some(Role::Admin) =>
        {
            Err(denied(
                &member_label(st, key),
                role,
                op.name(),
                "changes the fleet's members: only admins do that",
            ))
        }
        Op::Config { edits, .. } => check_keys(st, key, edits.iter().map(ConfigEdit::key)),
        Op::Declare { spec, prune } => {
            let plan = crate::declare::plan(st, spec, *prune)?;
            let members = plan.steps.iter().any(|s| {
                matches!(
                    s,
                    crate::declare::Step::MemberAdd(..) | crate::declare::Step::MemberEdit { .. }
                )
            });
            if members && role != Some(Role::Admin) {
                return Err(denied(
                    &member_label(st, key),
                    role,
                    "a fleet file that changes members",
                    "takes an admin (leave [members] as the fleet has them, or drop it)",
                ));
            }
            // Said before anything is written (and by a dry run): the
            // write checks the document it made again.
            let admin_after = st.members.values().any(|m| {
                m.role == Role::Admin
                    && !plan.steps.iter().any(|s| {
                        matches!(s, crate::declare::Step::MemberEdit { key, to, .. }
                            if *key == m.key && to.1 != Role::Admin)
                    })
            }) || plan
                .steps
                .iter()
                .any(|s| matches!(s, crate::declare::Step::MemberAdd(_, _, Role::Admin)));
            if members && !admin_after {
                return Err(StoreError::Denied(
                    "this fleet file would leave the fleet without an admin".into(),
                ));
            }
            check_keys(
                st,
                key,
                plan.steps.iter().filter_map(|s| match s {
                    crate::declare::Step::Set { key, .. }
                    | crate::declare::Step::Unset { key, .. } => Some(key),
                    _ => None,
                }),
            )
        }
        Op::RolloutStart { plan, .. } => {
            let paths = plan
                .set
                .keys()
                .map(|k| ConfigPath::parse(k))
                .collect::<Result<Vec<_>>>()?;
            check_keys(st, key, &paths)
        }
        _ => Ok(()),
    }
}

// ---- applying ----------------------------------------------------------------

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn ids<T: std::fmt::Display>(items: &[T]) -> String {
    const SHOWN: usize = 5;
    let mut s = items
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

/// A duration for messages: `45s`, `30m`, `2h`, `3d`.
pub fn duration_words(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (n, unit) = match s {
        0..60 => (s, "s"),
        60..3600 => (s / 60, "m"),
        3600..86_400 => (s / 3600, "h"),
        _ => (s / 86_400, "d"),
    };
    let exact = match unit {
        "m" => s % 60 == 0,
        "h" => s % 3600 == 0,
        "d" => s % 86_400 == 0,
        _ => true,
    };
    if exact {
        format!("{n}{unit}")
    } else {
        format!("~{n}{unit}")
    }
}

fn find_alert(fleet: &impl Fleet, id: &str, now_ms: i64) -> Result<Alert> {
    fleet
        .alerts(now_ms)
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "no open alert '{id}' (see `fleetdeck alerts --all`)"
            ))
        })
}

fn find_rollout(st: &FleetState, id: &str) -> Result<()> {
    if st.rollouts.iter().any(|r| r.id == id) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "no rollout '{id}' (see `fleetdeck rollout list`)"
        )))
    }
}

/// The nodes a command record targets now.
pub fn command_targets(st: &FleetState, c: &CommandRecord) -> Vec<NodeId> {
    st.nodes
        .values()
        .filter(|n| c.targets(&n.id, &n.site))
        .map(|n| n.id.clone())
        .collect()
}

fn layer_name(layer: &LayerRef) -> String {
    match layer {
        LayerRef::Fleet => "fleet".into(),
        LayerRef::Site(s) => format!("site {s}"),
        LayerRef::Node(n) => format!("node {n}"),
    }
}

/// Applies `op` as the member acting on `fleet`, at `now_ms`: checks the
/// role, writes one change, says what it did. On any refusal nothing is
/// written.
pub fn apply(fleet: &mut impl Fleet, op: Op, now_ms: i64) -> Result<Done> {
    let me = fleet.me().clone();
    // Judged again inside the write, against the state the change is made
    // on (another process may have changed roles since).
    check(fleet.state(), &me, &op)?;
    let by = member_label(fleet.state(), &me);
    let guard = |st: &FleetState| check(st, &me, &op);
    let done = |change: Option<ChangeHash>, summary: String| Done {
        change,
        summary,
        created: None,
        details: Value::Null,
    };
    match &op {
        Op::SiteAdd { sites } => {
            if sites.is_empty() {
                return Err(StoreError::Invalid("no site to add".into()));
            }
            let names: Vec<&SiteId> = sites.iter().map(|(id, _)| id).collect();
            let message = if sites.len() == 1 {
                format!("add site {}", sites[0].0)
            } else {
                format!(
                    "add {}: {}",
                    plural(sites.len(), "site", "sites"),
                    ids(&names)
                )
            };
            let (_, h) = fleet.commit(&message, now_ms, |doc, st| {
                guard(st)?;
                for (id, rec) in sites {
                    doc.add_site(id, rec)?;
                }
                Ok(())
            })?;
            Ok(done(
                h,
                if sites.len() == 1 {
                    format!("added site {}", sites[0].0)
                } else {
                    format!(
                        "added {}: {}",
                        plural(sites.len(), "site", "sites"),
                        ids(&names)
                    )
                },
            ))
        }
        Op::SiteRm { site, with_nodes } => {
            let (_, h) = fleet.commit(&format!("remove site {site}"), now_ms, |doc, st| {
                guard(st)?;
                doc.remove_site(site, *with_nodes)
            })?;
            Ok(done(h, format!("removed site {site}")))
        }
        Op::NodeAdd { nodes } => {
            if nodes.is_empty() {
                return Err(StoreError::Invalid("no node to add".into()));
            }
            let names: Vec<&NodeId> = nodes.iter().map(|(id, _)| id).collect();
            let mut sites: Vec<&str> = nodes.iter().map(|(_, r)| r.site.as_str()).collect();
            sites.sort_unstable();
            sites.dedup();
            let to = if sites.len() == 1 {
                format!("site {}", sites[0])
            } else {
                plural(sites.len(), "site", "sites")
            };
            let (message, summary) = if nodes.len() == 1 {
                (
                    format!("add node {} to {}", nodes[0].0, sites[0]),
                    format!("added node {} to {to}", nodes[0].0),
                )
            } else {
                let what = format!("{}: {}", plural(nodes.len(), "node", "nodes"), ids(&names));
                (
                    format!("add {what} to {to}"),
                    format!("added {what} to {to}"),
                )
            };
            let (_, h) = fleet.commit(&message, now_ms, |doc, st| {
                guard(st)?;
                for (id, rec) in nodes {
                    doc.add_node(id, rec)?;
                }
                Ok(())
            })?;
            Ok(done(h, summary))
        }
        Op::NodeRm { node } => {
            let (_, h) = fleet.commit(&format!("remove node {node}"), now_ms, |doc, st| {
                guard(st)?;
                doc.remove_node(node)
            })?;
            Ok(done(h, format!("removed node {node}")))
        }
        Op::NodeResume { node } => {
            let (_, h) = fleet.commit(&format!("resume node {node}"), now_ms, |doc, st| {
                guard(st)?;
                st.node(node)?;
                doc.resume_node(node, now_ms)
            })?;
            Ok(done(
                h,
                format!("node {node} may apply again (it leaves safe mode when it sees this)"),
            ))
        }
        Op::NodeUnbind { node } => {
            let (_, h) = fleet.commit(&format!("unbind node {node}"), now_ms, |doc, st| {
                guard(st)?;
                doc.unbind_node(node)
            })?;
            Ok(done(h, format!("node {node} is bound to no replica now")))
        }
        Op::Config {
            layer,
            edits,
            message,
        } => {
            if edits.is_empty() {
                return Err(StoreError::Invalid("no config edit to commit".into()));
            }
            let what = match edits.as_slice() {
                [ConfigEdit::Set(k, v)] => format!("set {k} = {v}"),
                [ConfigEdit::Unset(k)] => format!("unset {k}"),
                _ => plural(edits.len(), "edit", "edits"),
            };
            let message = message
                .clone()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("{what} in {}", layer_name(layer)));
            let (_, h) = fleet.commit(&message, now_ms, |doc, st| {
                guard(st)?;
                for e in edits {
                    match e {
                        ConfigEdit::Set(k, v) => doc.set_config(layer, k, v)?,
                        ConfigEdit::Unset(k) => doc.unset_config(layer, k)?,
                    }
                }
                Ok(())
            })?;
            let summary = match (h, edits.as_slice()) {
                (None, [ConfigEdit::Set(k, v)]) => {
                    format!(
                        "{k} is already {v} in {}; nothing changed",
                        layer.describe()
                    )
                }
                (None, _) => format!(
                    "{} to {}: nothing changed",
                    plural(edits.len(), "edit", "edits"),
                    layer.describe()
                ),
                (Some(_), [_]) => format!("{what} in {}", layer.describe()),
                (Some(_), _) => format!("committed {what} to {}", layer.describe()),
            };
            Ok(done(h, summary))
        }
        Op::Revert { change_id, message } => {
            let hash = fleet.resolve_change(change_id)?;
            let short = &hash.to_string()[..12];
            let message = message
                .clone()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("revert {short}"));
            let (outcome, h) = fleet.commit(&message, now_ms, |doc, st| {
                guard(st)?;
                let outcome = doc.revert(&hash)?;
                check_revert(st, &me, &outcome)?;
                // A revert of an enrolment or a promotion may not leave the
                // fleet without an admin.
                let after = doc.state()?;
                if st.members.values().any(|m| m.role == Role::Admin)
                    && !after.members.values().any(|m| m.role == Role::Admin)
                {
                    return Err(StoreError::Denied(
                        "this revert would leave the fleet without an admin".into(),
                    ));
                }
                Ok(outcome)
            })?;
            Ok(Done {
                change: h,
                summary: revert_summary(short, &outcome, h),
                created: None,
                details: serde_json::json!({
                    "restored": outcome.restored,
                    "skipped": outcome.skipped,
                }),
            })
        }
        Op::Ack { alert_id } => {
            let alert = find_alert(fleet, alert_id, now_ms)?;
            let ack = Ack {
                by,
                at_ms: now_ms,
                until_ms: None,
                since_ms: alert.since_ms,
            };
            let (_, h) = fleet.commit(&format!("ack {alert_id}"), now_ms, |doc, st| {
                guard(st)?;
                doc.put_ack(alert_id, &ack)
            })?;
            Ok(done(h, format!("acked {alert_id}")))
        }
        Op::Silence { alert_id, for_ms } => {
            if *for_ms <= 0 {
                return Err(StoreError::Invalid(
                    "a silence must last longer than zero".into(),
                ));
            }
            let alert = find_alert(fleet, alert_id, now_ms)?;
            let ack = Ack {
                by,
                at_ms: now_ms,
                until_ms: Some(now_ms.saturating_add(*for_ms)),
                since_ms: alert.since_ms,
            };
            let what = format!("silence {alert_id} for {}", duration_words(*for_ms));
            let (_, h) = fleet.commit(&what, now_ms, |doc, st| {
                guard(st)?;
                doc.put_ack(alert_id, &ack)
            })?;
            Ok(done(
                h,
                format!("silenced {alert_id} for {}", duration_words(*for_ms)),
            ))
        }
        Op::Freeze { message } | Op::Unfreeze { message } => {
            let frozen = matches!(op, Op::Freeze { .. });
            let rec = FreezeRecord {
                frozen,
                by,
                at_ms: now_ms,
                message: message.clone(),
            };
            let what = if frozen { "freeze" } else { "unfreeze" };
            let msg = if message.is_empty() {
                what.to_string()
            } else {
                format!("{what}: {message}")
            };
            let (_, h) = fleet.commit(&msg, now_ms, |doc, st| {
                guard(st)?;
                doc.set_freeze(&rec)
            })?;
            Ok(done(
                h,
                if frozen {
                    "the fleet is frozen: no node applies anything new until `fleetdeck unfreeze`"
                        .into()
                } else {
                    "the fleet is unfrozen: nodes apply their config again".into()
                },
            ))
        }
        Op::RolloutStart { id, plan } => {
            for site in &plan.sites {
                fleet.state().site(site)?;
            }
            if plan.set.is_empty() {
                return Err(StoreError::Invalid(
                    "a rollout needs at least one --set KEY=VALUE".into(),
                ));
            }
            let id = id.clone().unwrap_or_else(identity::random_hex::<4>);
            let spec = RolloutSpec {
                set: plan.set.clone(),
                sites: plan.sites.iter().map(ToString::to_string).collect(),
                waves: plan.waves.clone(),
                soak_ms: plan.soak_ms,
                max_fail: plan.max_fail,
                by,
                at_ms: now_ms,
            };
            let what = spec.set.keys().cloned().collect::<Vec<_>>().join(", ");
            let (_, h) = fleet.commit(
                &format!("rollout {id}: start ({what})"),
                now_ms,
                |doc, st| {
                    guard(st)?;
                    doc.add_rollout(&id, &spec)
                },
            )?;
            let sizes = crate::rollout::wave_sizes(&spec, fleet.state());
            let waves = plan
                .waves
                .iter()
                .zip(&sizes)
                .map(|(w, n)| format!("{w}% ({})", plural(*n, "node", "nodes")))
                .collect::<Vec<_>>()
                .join(", ");
            Ok(Done {
                change: h,
                summary: format!(
                    "rollout {id} started: waves {waves}, soak {}; see `fleetdeck rollout status {id}`",
                    duration_words(plan.soak_ms)
                ),
                created: Some(id),
                details: Value::Null,
            })
        }
        Op::MemberAdd { key, name, role } => {
            let (_, h) = fleet.commit(&format!("enroll {name} as {role}"), now_ms, |doc, st| {
                guard(st)?;
                if st.revoked.contains_key(key) {
                    return Err(StoreError::Invalid(format!(
                        "{} was revoked: a revoked key stays revoked (enroll the device under a new key)",
                        member_label(st, key)
                    )));
                }
                // Enrolling a member again with another role is a role
                // change: it may not take away the last admin.
                if let Some(m) = st.members.get(key)
                    && m.role == Role::Admin
                    && *role != Role::Admin
                {
                    last_admin_guard(st, key, "enroll again as a non-admin")?;
                }
                doc.put_member(key, name, *role, now_ms)
            })?;
            Ok(done(
                h,
                format!("enrolled {name} as {} {role}", article(*role)),
            ))
        }
        Op::MemberDevice { key, name, wg } => {
            let (_, h) = fleet.commit(&format!("enroll device {name}"), now_ms, |doc, st| {
                guard(st)?;
                if st
                    .members
                    .values()
                    .chain(st.revoked.values())
                    .any(|m| m.name == *name)
                {
                    return Err(StoreError::Invalid(format!(
                        "a member named {name:?} exists already: give the device another name"
                    )));
                }
                if st.members.values().any(|m| m.wg.as_ref() == Some(wg)) {
                    return Err(StoreError::Invalid(
                        "a member already has this WireGuard key".into(),
                    ));
                }
                doc.put_member(key, name, Role::Operator, now_ms)?;
                doc.set_member_wg(key, wg)
            })?;
            Ok(done(h, format!("enrolled device {name} (WireGuard only)")))
        }
        Op::MemberRole { member, role } => {
            let label = member_label(fleet.state(), member);
            let message = format!("member {label}: role {role}");
            let (was, h) = fleet.commit(&message, now_ms, |doc, st| {
                guard(st)?;
                let m = current_member(st, member)?;
                if m.role == Role::Admin && *role != Role::Admin {
                    last_admin_guard(st, member, "demote")?;
                }
                doc.put_member(member, &m.name, *role, m.added_ms)?;
                Ok(m.role)
            })?;
            Ok(done(
                h,
                match h {
                    Some(_) => format!("{label} is {} {role} now (was {was})", article(*role)),
                    None => format!(
                        "{label} is already {} {role}; nothing changed",
                        article(*role)
                    ),
                },
            ))
        }
        Op::MemberRevoke { member } => {
            let label = member_label(fleet.state(), member);
            let (nodes, h) =
                fleet.commit(&format!("revoke member {label}"), now_ms, |doc, st| {
                    guard(st)?;
                    let m = current_member(st, member)?;
                    if m.role == Role::Admin {
                        last_admin_guard(st, member, "revoke")?;
                    }
                    let rec = crate::document::Revocation {
                        by: me.to_string(),
                        at_ms: now_ms,
                        seen: doc.seen_of(member),
                    };
                    doc.revoke_member(member, &rec)?;
                    Ok(st.nodes_run_by(member).to_vec())
                })?;
            let bound = if nodes.is_empty() {
                String::new()
            } else {
                format!(" (it ran node {})", ids(&nodes))
            };
            Ok(done(
                h,
                format!(
                    "revoked {label}{bound}: its later changes are refused and its sessions closed; it keeps the copy it had: rotate secrets in config"
                ),
            ))
        }
        Op::Rollout { id, action } => {
            find_rollout(fleet.state(), id)?;
            let event = action.event();
            let (_, h) = fleet.commit(&format!("rollout {id}: {event}"), now_ms, |doc, st| {
                guard(st)?;
                doc.rollout_event(id, event, now_ms, None)
            })?;
            Ok(done(
                h,
                match action {
                    RolloutAction::Pause => format!("rollout {id} paused: no new wave opens"),
                    RolloutAction::Resume => format!("rollout {id} resumed"),
                    RolloutAction::Abort => {
                        format!("rollout {id} aborted: its settings come off every node")
                    }
                },
            ))
        }
        Op::Declare { spec, prune } => {
            use crate::declare::Step;
            let counts = crate::declare::plan(fleet.state(), spec, *prune)?.counts();
            let message = format!("apply a fleet file: {counts}");
            let (plan, h) = fleet.commit(&message, now_ms, |doc, st| {
                guard(st)?;
                let plan = crate::declare::plan(st, spec, *prune)?;
                for step in &plan.steps {
                    match step {
                        Step::SiteAdd(id, r) => doc.add_site(id, r)?,
                        Step::SiteEdit(id, _, r) => doc.update_site(id, r)?,
                        Step::SiteRm(id) => doc.remove_site(id, true)?,
                        Step::NodeAdd(id, r) => doc.add_node(id, r)?,
                        Step::NodeEdit(id, _, r) => doc.update_node(id, r)?,
                        Step::NodeRm(id) => doc.remove_node(id)?,
                        Step::Set { layer, key, to, .. } => doc.set_config(layer, key, to)?,
                        Step::Unset { layer, key, .. } => doc.unset_config(layer, key)?,
                        Step::MemberAdd(key, name, role) => {
                            if st.revoked.contains_key(key) {
                                return Err(StoreError::Invalid(format!(
                                    "members.{key}: {} was revoked: a revoked key stays revoked",
                                    member_label(st, key)
                                )));
                            }
                            doc.put_member(key, name, *role, now_ms)?
                        }
                        Step::MemberEdit { key, to, .. } => {
                            let m = current_member(st, key)?;
                            doc.put_member(key, &to.0, to.1, m.added_ms)?
                        }
                    }
                }
                if plan
                    .steps
                    .iter()
                    .any(|s| matches!(s, Step::MemberEdit { .. }))
                    && !doc.state()?.members.values().any(|m| m.role == Role::Admin)
                {
                    return Err(StoreError::Denied(
                        "this fleet file would leave the fleet without an admin".into(),
                    ));
                }
                Ok(plan)
            })?;
            let mut summary = match h {
                Some(_) => format!("applied the fleet file: {}", plan.counts()),
                None => "the fleet already is what the file declares; nothing changed".into(),
            };
            if !plan.kept.is_empty() {
                summary.push_str(&format!(
                    "; kept {} the file does not name{}",
                    plural(plan.kept.len(), "entry", "entries"),
                    if *prune {
                        ""
                    } else {
                        " (--prune removes sites and nodes)"
                    }
                ));
            }
            Ok(Done {
                change: h,
                summary,
                created: None,
                details: serde_json::json!({
                    "steps": plan.steps.iter().map(crate::declare::Step::to_json).collect::<Vec<_>>(),
                    "kept": plan.kept,
                }),
            })
        }
        Op::CommandRun { id, action, target } => {
            let st = fleet.state();
            match target {
                CommandTarget::All => {}
                CommandTarget::Site(s) => {
                    st.site(s)?;
                }
                CommandTarget::Node(n) => {
                    st.node(n)?;
                }
            }
            let rec = CommandRecord {
                action: action.clone(),
                target: target.record(),
                by,
                at_ms: now_ms,
            };
            let nodes = command_targets(st, &rec);
            if nodes.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "no node matches {}",
                    rec.target
                )));
            }
            let without: Vec<&NodeId> = nodes
                .iter()
                .filter(|n| {
                    st.effective_node(n).map_or(true, |e| {
                        e.get_str(&format!("actions.{action}.cmd")).is_none()
                            && e.get_str(&format!("actions.{action}")).is_none()
                    })
                })
                .collect();
            if without.len() == nodes.len() {
                return Err(StoreError::Invalid(format!(
                    "no targeted node has action '{action}' in its config (set actions.{action} = {{\"cmd\": …, \"timeout_s\": …}})"
                )));
            }
            let mut summary_tail = String::new();
            if !without.is_empty() {
                summary_tail = format!(
                    " ({} lack the action and will refuse: {})",
                    without.len(),
                    ids(&without)
                );
            }
            let count = nodes.len();
            let id = id.clone().unwrap_or_else(identity::random_hex::<6>);
            let (_, h) = fleet.commit(
                &format!("command {id}: {action} on {}", rec.target),
                now_ms,
                |doc, st| {
                    guard(st)?;
                    doc.add_command(&id, &rec)
                },
            )?;
            Ok(Done {
                change: h,
                summary: format!(
                    "command {id}: {action} on {}; see `fleetdeck command status {id}`{summary_tail}",
                    plural(count, "node", "nodes")
                ),
                created: Some(id),
                details: Value::Null,
            })
        }
    }
}

/// The member `key` as it is now (not revoked), or why not.
fn current_member(st: &FleetState, key: &MemberKey) -> Result<crate::document::Member> {
    if let Some(m) = st.members.get(key) {
        return Ok(m.clone());
    }
    if st.revoked.contains_key(key) {
        return Err(StoreError::Invalid(format!(
            "{} is revoked already: a revoked key stays revoked",
            member_label(st, key)
        )));
    }
    Err(StoreError::Invalid(format!(
        "{} is not a member of this fleet (see `fleetdeck member list`)",
        key.short()
    )))
}

/// Refuses to take away the last admin: the fleet would have nobody left
/// to enroll, demote or revoke.
fn last_admin_guard(st: &FleetState, key: &MemberKey, what: &str) -> Result<()> {
    let others = st
        .members
        .values()
        .filter(|m| m.role == Role::Admin && m.key != *key)
        .count();
    if others == 0 {
        return Err(StoreError::Denied(format!(
            "cannot {what} {}: it is the fleet's last admin (make another member admin first: `fleetdeck member role NAME admin`)",
            member_label(st, key)
        )));
    }
    Ok(())
}

/// The member a command line names: a member name, a whole key or a
/// unique key prefix, revoked members included.
pub fn resolve_member(st: &FleetState, query: &str) -> Result<MemberKey> {
    let q = query.trim();
    if q.is_empty() {
        return Err(StoreError::Invalid(
            "no member named: expected a member name or key".into(),
        ));
    }
    let all = || st.members.values().chain(st.revoked.values());
    let named: Vec<&MemberKey> = all().filter(|m| m.name == q).map(|m| &m.key).collect();
    let lower = q.to_ascii_lowercase();
    let by_key: Vec<&MemberKey> = if lower.chars().all(|c| c.is_ascii_hexdigit()) {
        all()
            .filter(|m| m.key.as_str().starts_with(&lower))
            .map(|m| &m.key)
            .collect()
    } else {
        Vec::new()
    };
    let mut found: Vec<&MemberKey> = named.into_iter().chain(by_key).collect();
    found.sort();
    found.dedup();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(StoreError::Invalid(format!(
            "no member '{q}': expected a member name, a key or a key prefix (see `fleetdeck member list`)"
        ))),
        many => Err(StoreError::Invalid(format!(
            "'{q}' names {} members ({}): give more of the key",
            many.len(),
            many.iter()
                .map(|k| format!("{} {}", member_label(st, k), k.short()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A revert writes what its change wrote, backwards: the author needs the
/// rights the change's own author needed for every entry it restores.
fn check_revert(st: &FleetState, key: &MemberKey, outcome: &RevertOutcome) -> Result<()> {
    let role = st.members.get(key).map(|m| m.role);
    let who = member_label(st, key);
    for entry in &outcome.restored {
        // Entries read "fleet KEY", "site ID KEY", "node ID KEY",
        // "member KEY FIELD", "meta.FIELD", "freeze.FIELD", …
        let mut words = entry.split(' ');
        let first = words.next().unwrap_or_default();
        if first == "member" || first.starts_with("meta.") {
            if role != Some(Role::Admin) {
                return Err(denied(
                    &who,
                    role,
                    &format!("reverting {entry}"),
                    "changes the fleet's members or identity: only admins do that",
                ));
            }
            continue;
        }
        let config_key = match first {
            "fleet" => words.next(),
            "site" | "node" => words.nth(1),
            _ => None,
        };
        if let Some(k) = config_key {
            // A key that does not parse is judged as the gate judges it:
            // only admins write malformed keys.
            let class = ConfigPath::parse(k).map_or(KeyClass::Admin, |p| key_class(&p));
            if !role.is_some_and(|r| may_write_key(r, class, st)) {
                return Err(denied(
                    &who,
                    role,
                    &format!("reverting {entry}"),
                    key_rule(class),
                ));
            }
        }
    }
    Ok(())
}

fn revert_summary(short: &str, outcome: &RevertOutcome, new: Option<ChangeHash>) -> String {
    match new {
        Some(_) => {
            let mut s = format!(
                "reverted {short}: {} restored",
                plural(outcome.restored.len(), "entry", "entries")
            );
            if !outcome.skipped.is_empty() {
                s.push_str(&format!(
                    "; left alone (edited since): {}",
                    outcome.skipped.join(", ")
                ));
            }
            s
        }
        None => {
            let mut s =
                format!("nothing to revert: every entry {short} set is already as it was before");
            if !outcome.skipped.is_empty() {
                s.push_str(&format!(
                    "; left alone (edited since): {}",
                    outcome.skipped.join(", ")
                ));
            }
            s
        }
    }
}

/// Issues a one-time invite for `role` on this replica (kept in its local
/// database, never in the document). Only admins enroll members.
pub fn invite(replica: &mut Replica, role: Role, ttl_ms: i64) -> Result<String> {
    replica.refresh()?;
    let st = replica.state();
    let me = replica.key();
    let mine = st.members.get(me).map(|m| m.role);
    if mine != Some(Role::Admin) {
        return Err(denied(
            &member_label(st, me),
            mine,
            "invite",
            "enrolls a member: only admins do that",
        ));
    }
    replica.create_invite(role, ttl_ms)
}

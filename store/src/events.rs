//! The fleet's events, newest first: what happened to nodes (from the
//! replica's record of what it heard: down, up, applies, rollbacks, alerts)
//! and what operators and daemons wrote (config edits, sites and nodes,
//! members, acks and silences, freezes, commands, rollouts) and what nodes
//! reported in their command results registers — each with its time and
//! who or what caused it.
//!
//! What a change did is read from the document itself, not its message:
//! the root maps its operations wrote to (see the layout in `document`),
//! and the sites and nodes they name.

use std::collections::{BTreeSet, HashMap};

use automerge::{AutoCommit, ChangeHash, ObjId, ReadDoc, Value};
use serde::Serialize;

use crate::document::{FleetState, HistoryEntry};
use crate::ids::MemberKey;

/// What one change did, by the part of the document it wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The fleet created (the only change that writes its `meta`).
    Genesis,
    /// A rollout started or an event of one (wave opened, halt, pause, …).
    Rollout,
    /// A command for nodes to run.
    Command,
    /// Members enrolled, re-roled or revoked.
    Member,
    /// Sites or nodes added, changed or removed.
    Fleet,
    /// A config layer edited.
    Config,
    /// Alerts acknowledged or silenced.
    Alert,
    Freeze,
    /// A node's result of a command.
    CommandResult,
    /// Only a replica's listening addresses: folded by default.
    Address,
    /// Nothing this reader knows (a newer version's, or the genesis).
    Other,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Genesis => "genesis",
            ChangeKind::Rollout => "rollout",
            ChangeKind::Command => "command",
            ChangeKind::Member => "member",
            ChangeKind::Fleet => "fleet",
            ChangeKind::Config => "config",
            ChangeKind::Alert => "ack",
            ChangeKind::Freeze => "freeze",
            ChangeKind::CommandResult => "command_result",
            ChangeKind::Address => "address",
            ChangeKind::Other => "change",
        }
    }
}

/// What a change did: its kind (the first of `ChangeKind`'s order among
/// what it wrote) and the sites and nodes it named.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChangeInfo {
    pub kind: Option<ChangeKind>,
    pub sites: BTreeSet<String>,
    pub nodes: BTreeSet<String>,
}

/// Where an object sits: the root map it is under, and for an object
/// directly in a root map the key it is at.
#[derive(Clone, Debug)]
struct Place {
    root: String,
    key: Option<String>,
    addrs: bool,
}

/// Every object of the document down to a member's address list, by its
/// (counter, actor) id.
fn places(doc: &AutoCommit) -> HashMap<(u64, Vec<u8>), Place> {
    let mut out = HashMap::new();
    let id_of = |o: &ObjId| match o {
        ObjId::Id(counter, actor, _) => Some((*counter, actor.to_bytes().to_vec())),
        ObjId::Root => None,
    };
    for root in doc.keys(automerge::ROOT) {
        let Ok(Some((Value::Object(_), root_obj))) = doc.get(automerge::ROOT, root.as_str()) else {
            continue;
        };
        if let Some(id) = id_of(&root_obj) {
            out.insert(
                id,
                Place {
                    root: root.clone(),
                    key: None,
                    addrs: false,
                },
            );
        }
        for key in doc.keys(&root_obj) {
            let Ok(Some((Value::Object(_), obj))) = doc.get(&root_obj, key.as_str()) else {
                continue;
            };
            if let Some(id) = id_of(&obj) {
                out.insert(
                    id,
                    Place {
                        root: root.clone(),
                        key: Some(key.clone()),
                        addrs: false,
                    },
                );
            }
            if let Ok(Some((Value::Object(_), list))) = doc.get(&obj, "addrs")
                && let Some(id) = id_of(&list)
            {
                out.insert(
                    id,
                    Place {
                        root: root.clone(),
                        key: Some(key.clone()),
                        addrs: true,
                    },
                );
            }
        }
    }
    out
}

/// What each of `hashes` did (a change not held here: `kind` none).
pub fn change_infos(doc: &mut AutoCommit, hashes: &[ChangeHash]) -> Vec<ChangeInfo> {
    let places = places(doc);
    hashes
        .iter()
        .map(|h| match doc.get_change_by_hash(h) {
            Some(c) => info_of(&c.decode(), &places),
            None => ChangeInfo::default(),
        })
        .collect()
}

fn info_of(
    change: &automerge::ExpandedChange,
    places: &HashMap<(u64, Vec<u8>), Place>,
) -> ChangeInfo {
    use automerge::legacy::{Key, ObjectId};
    let mut kinds = BTreeSet::new();
    let mut info = ChangeInfo::default();
    let mut only_addrs = true;
    for op in &change.operations {
        let key = match &op.key {
            Key::Map(k) => Some(k.to_string()),
            Key::Seq(_) => None,
        };
        let (root, under, addrs) = match &op.obj {
            // Creating a root map: what goes in it says what the change did.
            ObjectId::Root => {
                only_addrs = false;
                continue;
            }
            ObjectId::Id(id) => match places.get(&(id.0, id.1.to_bytes().to_vec())) {
                Some(p) => (p.root.as_str(), p.key.clone(), p.addrs),
                None => {
                    only_addrs = false;
                    continue;
                }
            },
        };
        only_addrs &= addrs;
        // The site or node an op names: the key it writes in a root map
        // of them, the object it writes in, or a flat config key's prefix.
        let named = under.or(key);
        let prefix = |k: &Option<String>| {
            k.as_deref()
                .map(|k| k.split('/').next().unwrap_or(k).to_string())
        };
        let kind = match root {
            "rollouts" | "rollout_events" => ChangeKind::Rollout,
            "commands" => ChangeKind::Command,
            "command_results" => ChangeKind::CommandResult,
            "members" if addrs => ChangeKind::Address,
            "members" => ChangeKind::Member,
            "sites" | "nodes" => ChangeKind::Fleet,
            "fleet" | "site_config" | "node_config" => ChangeKind::Config,
            "acks" => ChangeKind::Alert,
            "freeze" => ChangeKind::Freeze,
            "meta" => ChangeKind::Genesis,
            _ => ChangeKind::Other,
        };
        match root {
            "sites" | "site_config" => {
                info.sites.extend(prefix(&named));
            }
            "nodes" | "node_config" => {
                info.nodes.extend(prefix(&named));
            }
            _ => {}
        }
        kinds.insert(kind);
    }
    info.kind = kinds.into_iter().next();
    if only_addrs && info.kind.is_some() {
        info.kind = Some(ChangeKind::Address);
    }
    info
}

/// One thing that happened in the fleet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetEvent {
    /// This replica's clock for what it heard; the author's for a change.
    pub at_ms: i64,
    /// A node event's kind (`moment::Event`) or a change's
    /// ([`ChangeKind::as_str`]).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Who or what caused it: the member who wrote a change, the node for
    /// what it reported.
    pub by: String,
    pub text: String,
    /// The change, for events that are changes (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// The alert, for alert events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
}

/// Which events to keep.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub site: Option<String>,
    pub node: Option<String>,
    /// Kinds to keep; empty for all.
    pub kinds: Vec<String>,
    /// Keep changes that only record addresses.
    pub addresses: bool,
}

impl Filter {
    /// Whether `e` passes; the fleet state says which site a node is at.
    pub fn keeps(&self, e: &FleetEvent, st: &FleetState, info: Option<&ChangeInfo>) -> bool {
        if e.kind == ChangeKind::Address.as_str()
            && !self.addresses
            && !self.kinds.iter().any(|k| k == "address")
        {
            return false;
        }
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k == e.kind) {
            return false;
        }
        if let Some(node) = &self.node {
            let named =
                e.node.as_deref() == Some(node) || info.is_some_and(|i| i.nodes.contains(node));
            if !named {
                return false;
            }
        }
        if let Some(site) = &self.site {
            let node_here = |n: &str| {
                crate::NodeId::parse(n)
                    .ok()
                    .and_then(|id| st.nodes.get(&id))
                    .is_some_and(|n| n.site.as_str() == site)
            };
            let named = e.site.as_deref() == Some(site)
                || info.is_some_and(|i| {
                    i.sites.contains(site) || i.nodes.iter().any(|n| node_here(n))
                });
            if !named {
                return false;
            }
        }
        true
    }
}

/// The changes of `history` made in `[from_ms, to_ms]` (by their author's
/// clock) that `filter` keeps, as events: each said by what it did
/// ([`change_infos`]), placed at the one site it named (directly or
/// through its nodes), by its author's name (or short key).
pub fn change_events(
    doc: &mut AutoCommit,
    st: &FleetState,
    history: &[HistoryEntry],
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
) -> Vec<FleetEvent> {
    let changes: Vec<&HistoryEntry> = history
        .iter()
        .filter(|h| h.time_ms >= from_ms && h.time_ms <= to_ms)
        .collect();
    let hashes: Vec<ChangeHash> = changes.iter().filter_map(|h| h.id.parse().ok()).collect();
    let infos = change_infos(doc, &hashes);
    let mut out = Vec::new();
    for (h, info) in changes.iter().zip(&infos) {
        let kind = info.kind.unwrap_or(ChangeKind::Other);
        let ev = FleetEvent {
            at_ms: h.time_ms,
            kind: kind.as_str(),
            site: one_site(st, info),
            node: (info.nodes.len() == 1)
                .then(|| info.nodes.iter().next().cloned())
                .flatten(),
            by: h.author_name.clone().unwrap_or_else(|| {
                MemberKey::parse(&h.author)
                    .map(|k| k.short().to_string())
                    .unwrap_or_else(|_| h.author.chars().take(12).collect())
            }),
            text: h.message.clone().unwrap_or_default(),
            change: Some(h.id.clone()),
            alert: None,
        };
        if filter.keeps(&ev, st, Some(info)) {
            out.push(ev);
        }
    }
    out
}

/// One `command_result` event per result held in nodes' results registers
/// (`results`) dated in `[from_ms, to_ms]` by the node's clock when the
/// command finished, that `filter` keeps. (Results nodes wrote into the
/// document before registers are changes, in [`change_events`].)
pub fn result_events<'a>(
    st: &FleetState,
    registers: impl Iterator<Item = &'a crate::results::ResultsRegister>,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
) -> Vec<FleetEvent> {
    let mut out = Vec::new();
    for reg in registers {
        let site = crate::NodeId::parse(&reg.node)
            .ok()
            .and_then(|id| st.nodes.get(&id))
            .map(|n| n.site.to_string());
        for (cmd, r) in &reg.results {
            if r.at_ms < from_ms || r.at_ms > to_ms {
                continue;
            }
            let action = st
                .commands
                .get(cmd)
                .map_or("a command", |c| c.action.as_str());
            let outcome = match (r.ok, r.exit_code) {
                (true, _) => "ok".to_string(),
                (false, Some(code)) => format!("failed (exit {code})"),
                (false, None) => "failed".to_string(),
            };
            let ev = FleetEvent {
                at_ms: r.at_ms,
                kind: ChangeKind::CommandResult.as_str(),
                site: site.clone(),
                node: Some(reg.node.clone()),
                by: reg.node.clone(),
                text: format!("{} ran {action} ({cmd}): {outcome}", reg.node),
                change: None,
                alert: None,
            };
            if filter.keeps(&ev, st, None) {
                out.push(ev);
            }
        }
    }
    out
}

/// The one site a change named, directly or through its nodes, if one.
fn one_site(st: &FleetState, info: &ChangeInfo) -> Option<String> {
    let mut sites: BTreeSet<String> = info.sites.clone();
    for n in &info.nodes {
        if let Some(node) = crate::NodeId::parse(n)
            .ok()
            .and_then(|id| st.nodes.get(&id))
        {
            sites.insert(node.site.to_string());
        }
    }
    match sites.len() {
        1 => sites.into_iter().next(),
        _ => None,
    }
}

/// The kinds a filter may name.
pub const KINDS: &[&str] = &[
    "down",
    "up",
    "applied",
    "rolled_back",
    "failed",
    "safe_mode",
    "resumed",
    "alert_fired",
    "alert_resolved",
    "tunnel",
    "rollout",
    "command",
    "command_result",
    "member",
    "fleet",
    "config",
    "ack",
    "freeze",
    "address",
    "genesis",
    "change",
];

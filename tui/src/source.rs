//! What the console reads and what it asks for: the [`Source`] trait, the
//! [`Snapshot`] it returns and the [`Intent`]s it carries out.
//!
//! A snapshot holds the fleet state, the health registers and the alerts as
//! the store computed them, plus facts derived once per snapshot (per site and
//! per node: state, nodes up, last heard, heartbeat interval) so that drawing
//! a frame never merges config layers for every node.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use fleetdeck_store::alerts::{Alert, FleetSummary, Severity, SiteState, Thresholds};
use fleetdeck_store::at::At;
use fleetdeck_store::diff::LayerEdit;
use fleetdeck_store::document::{
    CommandRecord, CommandResult, Conflict, FleetState, HistoryEntry, LayerRef,
};
use fleetdeck_store::events::{ChangeKind, Filter as EventFilter, FleetEvent};
use fleetdeck_store::health::{ApplyResult, Sample, StoredRegister};
use fleetdeck_store::moment::Moment;
use fleetdeck_store::receipts::{Digest, Receipt, Summary};
use fleetdeck_store::rollout::{Phase, Rollout, WaveStatus};
use fleetdeck_store::{MemberKey, Role};

/// Where the console's data comes from and where its intents go.
///
/// Calls run on a thread of their own, never on the input loop; each may
/// take a while (a lock, a disk read) without freezing the screen.
pub trait Source: Send {
    /// Fleet state, health, alerts, peers and status-line facts, now.
    fn snapshot(&mut self) -> Snapshot;
    /// Sparkline samples of one node (oldest first).
    fn series(&mut self, node: &str) -> Vec<Sample>;
    /// The change log, newest first, each change with its receipts.
    fn history(&mut self) -> Vec<HistoryRow>;
    /// Carries out an intent: `Ok(what was done)` or `Err(one sentence)`.
    fn apply(&mut self, intent: Intent) -> Result<String, String>;
    /// The fleet as this replica saw it at a past moment (`:at TIME`: the
    /// store's [`Moment`], made a snapshot by [`Snapshot::of_moment`]), or
    /// why not in one sentence ("no data that old: …").
    fn moment_at(&mut self, _at: &At) -> Result<Snapshot, String> {
        Err("this source keeps no record of the past".into())
    }
    /// The fleet's events in `[from_ms, to_ms]` that `filter` keeps, newest
    /// first, as `Replica::events` gives them.
    fn events(
        &mut self,
        _from_ms: i64,
        _to_ms: i64,
        _filter: &EventFilter,
    ) -> Result<Vec<FleetEvent>, String> {
        Err("this source keeps no record of events".into())
    }
    /// The config keys a change set and unset, layer by layer, old → new
    /// (`Replica::change_edits`).
    fn change_edits(&mut self, _change: &str) -> Result<Vec<LayerEdit>, String> {
        Err("this source cannot say what a change edited".into())
    }
    /// Opens a tunnel through `node` to `target` (as its `tunnel.allow`
    /// names it; `127.0.0.1:PORT` is the node itself) for whoever runs this
    /// console: the local address to connect to, or why not in one
    /// sentence. It stays open while the console runs; snapshots list it
    /// ([`Snapshot::tunnels`]).
    fn open_tunnel(
        &mut self,
        _node: &fleetdeck_store::NodeId,
        _target: std::net::SocketAddrV4,
    ) -> Result<std::net::SocketAddr, String> {
        Err(
            "this console opens no tunnels: it does not sync (read-only, or a simulated fleet)"
                .into(),
        )
    }

    /// Whether something changed since the last snapshot (polled about every
    /// 250 ms; on true the console takes a new snapshot at once). The
    /// console also re-snapshots every few seconds, so the default is fine for a
    /// source with no change signal.
    fn changed(&mut self) -> bool {
        false
    }
}

/// One change of the log with where it stands on the fleet's nodes
/// (`fleetdeck_store::receipts`).
#[derive(Clone, Debug)]
pub struct HistoryRow {
    pub entry: HistoryEntry,
    /// What the change did, by the part of the document it wrote
    /// (`events::change_infos`).
    pub kind: ChangeKind,
    /// None while the fleet has no node (or the change is older than the
    /// [`HistoryRow::WITH_RECEIPTS`] newest).
    pub receipts: Option<Summary>,
    /// The nodes that do not run it yet, worst first (failed, unknown, not
    /// yet, delivered), at most [`HistoryRow::PENDING_SHOWN`].
    pub pending: Vec<Receipt>,
}

impl HistoryRow {
    /// How many nodes not running a change a row keeps.
    pub const PENDING_SHOWN: usize = 50;
    /// How many of the newest changes get receipts (older rows show none:
    /// a long history of a large fleet would cost seconds per refresh).
    pub const WITH_RECEIPTS: usize = 500;

    /// Rows for `entries` (newest first) with the digests of the first
    /// ones and what each did (`kinds`, in the same order; a change with no
    /// kind given is `ChangeKind::Other`).
    pub fn build(
        entries: Vec<HistoryEntry>,
        digests: Vec<Digest>,
        kinds: Vec<ChangeKind>,
    ) -> Vec<HistoryRow> {
        let mut digests = digests.into_iter();
        let mut kinds = kinds.into_iter();
        entries
            .into_iter()
            .map(|entry| {
                let kind = kinds.next().unwrap_or(ChangeKind::Other);
                match digests.next() {
                    Some(d) if d.summary.nodes > 0 => HistoryRow {
                        entry,
                        kind,
                        receipts: Some(d.summary),
                        pending: d.pending,
                    },
                    _ => HistoryRow {
                        entry,
                        kind,
                        receipts: None,
                        pending: Vec::new(),
                    },
                }
            })
            .collect()
    }

    /// The hashes of the entries that get receipts.
    pub fn hashes(entries: &[HistoryEntry]) -> Vec<automerge::ChangeHash> {
        entries
            .iter()
            .take(Self::WITH_RECEIPTS)
            .map_while(|e| e.id.parse().ok())
            .collect()
    }
}

/// A change the operator asked for: an operation of the store's one door
/// (`fleetdeck_store::ops`), the same the CLI and the scenarios make.
/// Read-only mode refuses every intent before it reaches the source.
pub use fleetdeck_store::ops::Op as Intent;
pub use fleetdeck_store::ops::{ConfigEdit, RolloutAction};

/// "fleet", "site BL-LAB-2", "node whn-nvr".
pub fn layer_label(layer: &LayerRef) -> String {
    match layer {
        LayerRef::Fleet => "fleet".into(),
        LayerRef::Site(s) => format!("site {s}"),
        LayerRef::Node(n) => format!("node {n}"),
    }
}

/// One other replica of the fleet, as the sync engine sees it (the store's
/// record, filled in by the engine).
pub use fleetdeck_store::peer::PeerStatus as Peer;

/// Whether this console syncs as a peer.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncStatus {
    /// Syncing; the addresses the console listens on.
    On { listening: Vec<String> },
    /// Not syncing itself: another process on the same data dir (a running
    /// `serve`) syncs this replica; the peers are as that process sees them.
    Elsewhere { by: String },
    /// Not syncing, and why ("read-only", "could not bind …").
    Off { reason: String },
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncStatus::On { listening } if listening.is_empty() => f.write_str("syncing"),
            SyncStatus::On { listening } => write!(f, "syncing on {}", listening.join(", ")),
            SyncStatus::Elsewhere { by } => write!(f, "synced by {by}"),
            SyncStatus::Off { reason } => write!(f, "not syncing ({reason})"),
        }
    }
}

/// What the console knows about one site, derived once per snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteFacts {
    pub id: String,
    pub name: String,
    pub zone: Option<String>,
    /// `(lat, lon)` when the site has a location.
    pub location: Option<(f64, f64)>,
    pub state: SiteState,
    pub nodes_total: usize,
    /// Nodes that reported and are not down.
    pub nodes_up: usize,
    /// Open (not silenced) alerts: soft, medium, hard.
    pub alerts: [usize; 3],
    /// Silenced alerts of the site.
    pub silenced: usize,
    /// The freshest last-heard time over the site's nodes.
    pub last_heard_ms: Option<i64>,
    /// The longest heartbeat interval of the site's nodes (the site's own,
    /// fleet ⊕ site, when it has none).
    pub heartbeat_ms: i64,
}

impl SiteFacts {
    /// None of the site's nodes is up though some reported before: the
    /// site is dark, whatever its alerts say (they may be silenced, or
    /// not yet raised to "site offline").
    pub fn all_down(&self) -> bool {
        self.nodes_total > 0 && self.nodes_up == 0 && self.last_heard_ms.is_some()
    }

    /// The state the console paints the site in: its state, but never
    /// better than err while none of its nodes is up.
    pub fn shown_state(&self) -> SiteState {
        if self.all_down() {
            SiteState::Err
        } else {
            self.state
        }
    }
}

/// What the console knows about one node, derived once per snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFacts {
    pub id: String,
    pub site: String,
    pub role: Option<String>,
    /// Worst open alert of the node (or of its offline site).
    pub state: SiteState,
    /// Silent for longer than its missed-beats window.
    pub down: bool,
    pub last_heard_ms: Option<i64>,
    pub heartbeat_ms: i64,
    pub cpu: Option<f64>,
    pub mem: Option<f64>,
    /// The fullest mount.
    pub disk: Option<f64>,
    /// Last config apply: revision, result, when.
    pub applied: Option<(String, ApplyResult, i64)>,
}

/// Everything the console draws from, taken at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The source's clock when it took the snapshot (alerts are as of then).
    pub taken_ms: i64,
    /// This replica's member name.
    pub me: String,
    /// This replica's member key: what it may write is judged by it (the
    /// store's rules, `ops::check`), so the console does not attempt what
    /// the fleet would refuse. None when the source does not say.
    pub me_key: Option<MemberKey>,
    pub fleet: Arc<FleetState>,
    pub health: Arc<HashMap<String, StoredRegister>>,
    /// Every alert, silenced ones included, most severe first.
    pub alerts: Vec<Alert>,
    pub summary: FleetSummary,
    pub peers: Vec<Peer>,
    pub sync: SyncStatus,
    /// What went wrong while taking this snapshot (the data is then the last
    /// good one): shown in the status bar.
    pub trouble: Option<String>,
    /// Per site, in site id order.
    pub sites: Vec<SiteFacts>,
    pub nodes: BTreeMap<String, NodeFacts>,
    /// Node ids per site, in id order (so a site's nodes are found without
    /// a pass over the fleet).
    pub site_nodes: HashMap<String, Vec<String>>,
    /// Staged rollouts, oldest first, with their waves as of now.
    pub rollouts: Vec<RolloutFacts>,
    /// Commands, newest first, with their targets and results.
    pub commands: Vec<CommandFacts>,
    /// Keys with concurrent values, the winner marked.
    pub conflicts: Vec<Conflict>,
    /// Local changes that no peer is known to have: the fewest any peer
    /// lacks (`None` when no peer's heads are known).
    pub unsynced: Option<usize>,
    /// The tunnels this console opened that are still open.
    pub tunnels: Vec<OpenTunnel>,
}

/// A tunnel the console opened ([`Source::open_tunnel`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OpenTunnel {
    pub node: String,
    /// As the node's `tunnel.allow` names it.
    pub target: std::net::SocketAddrV4,
    /// Where to connect, here.
    pub local: std::net::SocketAddr,
}

/// A rollout with its phase and waves, derived once per snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutFacts {
    pub rollout: Rollout,
    pub phase: Phase,
    pub waves: Vec<WaveStatus>,
}

/// A command with the nodes it targets and what they reported.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandFacts {
    pub id: String,
    pub record: CommandRecord,
    /// Targeted nodes, in id order, with their result when reported.
    pub nodes: Vec<(String, Option<CommandResult>)>,
}

impl CommandFacts {
    pub fn reported(&self) -> usize {
        self.nodes.iter().filter(|(_, r)| r.is_some()).count()
    }
    pub fn failed(&self) -> usize {
        self.nodes
            .iter()
            .filter(|(_, r)| r.as_ref().is_some_and(|r| !r.ok))
            .count()
    }
}

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::Soft => 0,
        Severity::Medium => 1,
        Severity::Hard => 2,
    }
}

fn worse(a: SiteState, b: SiteState) -> SiteState {
    fn rank(s: SiteState) -> u8 {
        match s {
            SiteState::Unknown => 0,
            SiteState::Green => 1,
            SiteState::Warn => 2,
            SiteState::Err => 3,
        }
    }
    if rank(b) > rank(a) { b } else { a }
}

impl Snapshot {
    /// This replica's role in the fleet, when the source says who it is.
    pub fn my_role(&self) -> Option<Role> {
        let key = self.me_key.as_ref()?;
        self.fleet.members.get(key).map(|m| m.role)
    }

    /// Why this replica may write nothing in the fleet (a viewer's or a
    /// node's console), if so.
    pub fn writes_nothing(&self) -> Option<String> {
        self.me_key.as_ref()?;
        match self.my_role() {
            Some(r) if r.manages_fleet() => None,
            Some(r) => Some(format!(
                "this replica is {} {r}: it changes nothing in the fleet (operators and admins do)",
                if r == Role::Admin || r == Role::Operator {
                    "an"
                } else {
                    "a"
                }
            )),
            None => Some("this replica is not a member of the fleet: it changes nothing".into()),
        }
    }

    /// A snapshot from what the store computed at `taken_ms`: the state, the
    /// registers, every alert and the site states (`Replica::status`).
    pub fn build(
        taken_ms: i64,
        fleet: Arc<FleetState>,
        health: Arc<HashMap<String, StoredRegister>>,
        alerts: Vec<Alert>,
        site_states: &[(String, SiteState)],
        summary: FleetSummary,
    ) -> Snapshot {
        let effective = fleet.effective_all();
        let mut nodes = BTreeMap::new();
        for node in fleet.nodes.values() {
            let t = effective
                .get(&node.id)
                .map(|e| Thresholds::from_lookup(|k| e.get_str(k)))
                .unwrap_or_default();
            let reg = health.get(node.id.as_str());
            let heard = reg.map(|r| r.received_ms);
            let down = heard.is_some_and(|h| taken_ms.saturating_sub(h) > t.down_after_ms());
            let m = reg.map(|r| &r.reg.metrics);
            nodes.insert(
                node.id.to_string(),
                NodeFacts {
                    id: node.id.to_string(),
                    site: node.site.to_string(),
                    role: node.record.role.clone(),
                    state: if reg.is_some() {
                        SiteState::Green
                    } else {
                        SiteState::Unknown
                    },
                    down,
                    last_heard_ms: heard,
                    heartbeat_ms: i64::try_from(t.heartbeat_interval_s)
                        .unwrap_or(i64::MAX / 1000)
                        .saturating_mul(1000),
                    cpu: m.map(|m| m.cpu_pct),
                    mem: m.map(|m| m.mem_pct),
                    disk: m.and_then(|m| {
                        m.disks
                            .iter()
                            .map(|d| d.used_pct)
                            .fold(None, |acc: Option<f64>, v| {
                                Some(acc.map_or(v, |a| a.max(v)))
                            })
                    }),
                    applied: reg
                        .and_then(|r| r.reg.applied.as_ref())
                        .map(|a| (a.revision.clone(), a.result, a.at_ms)),
                },
            );
        }
        let states: HashMap<&str, SiteState> = site_states
            .iter()
            .map(|(s, st)| (s.as_str(), *st))
            .collect();
        let mut site_alerts: HashMap<&str, ([usize; 3], usize)> = HashMap::new();
        for a in &alerts {
            let hidden = a.is_hidden(taken_ms);
            let e = site_alerts.entry(a.site.as_str()).or_default();
            if hidden {
                e.1 += 1;
                continue;
            }
            e.0[severity_index(a.severity)] += 1;
            let st = if a.severity == Severity::Hard {
                SiteState::Err
            } else {
                SiteState::Warn
            };
            match &a.node {
                Some(n) => {
                    if let Some(f) = nodes.get_mut(n) {
                        f.state = worse(f.state, st);
                    }
                }
                None => {
                    for f in nodes.values_mut().filter(|f| f.site == a.site) {
                        f.state = worse(f.state, st);
                    }
                }
            }
        }
        let mut by_site: HashMap<&str, Vec<&NodeFacts>> = HashMap::new();
        for n in nodes.values() {
            by_site.entry(n.site.as_str()).or_default().push(n);
        }
        let sites = fleet
            .sites
            .values()
            .map(|s| {
                let id = s.id.as_str();
                let t = fleet
                    .effective_site(&s.id)
                    .map(|e| Thresholds::from_lookup(|k| e.get_str(k)))
                    .unwrap_or_default();
                let mine: &[&NodeFacts] = by_site.get(id).map_or(&[], |v| v.as_slice());
                let (alerts, silenced) = site_alerts.get(id).copied().unwrap_or_default();
                SiteFacts {
                    id: id.to_string(),
                    name: s.record.name.clone(),
                    zone: s.record.zone.clone(),
                    location: s.record.lat.zip(s.record.lon),
                    state: states.get(id).copied().unwrap_or(SiteState::Unknown),
                    nodes_total: mine.len(),
                    nodes_up: mine
                        .iter()
                        .filter(|n| n.last_heard_ms.is_some() && !n.down)
                        .count(),
                    alerts,
                    silenced,
                    last_heard_ms: mine.iter().filter_map(|n| n.last_heard_ms).max(),
                    // Fresh while its slowest-beating node could still be on
                    // time.
                    heartbeat_ms: mine.iter().map(|n| n.heartbeat_ms).max().unwrap_or(
                        i64::try_from(t.heartbeat_interval_s)
                            .unwrap_or(i64::MAX / 1000)
                            .saturating_mul(1000),
                    ),
                }
            })
            .collect();
        let site_nodes = by_site
            .iter()
            .map(|(s, v)| (s.to_string(), v.iter().map(|n| n.id.clone()).collect()))
            .collect();
        let rollouts = fleet
            .rollouts
            .iter()
            .map(|r| RolloutFacts {
                rollout: r.clone(),
                phase: r.phase(&fleet, &health),
                waves: r.wave_status(&fleet, &health),
            })
            .collect();
        let mut commands: Vec<CommandFacts> = fleet
            .commands
            .iter()
            .map(|(id, c)| {
                let results = fleet.command_results.get(id);
                CommandFacts {
                    id: id.clone(),
                    record: c.clone(),
                    nodes: fleet
                        .nodes
                        .values()
                        .filter(|n| c.targets(&n.id, &n.site))
                        .map(|n| {
                            let r = results.and_then(|m| m.get(n.id.as_str())).cloned();
                            (n.id.to_string(), r)
                        })
                        .collect(),
                }
            })
            .collect();
        commands.sort_by(|a, b| {
            b.record
                .at_ms
                .cmp(&a.record.at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        Snapshot {
            taken_ms,
            me: String::new(),
            me_key: None,
            fleet,
            health,
            alerts,
            summary,
            peers: Vec::new(),
            sync: SyncStatus::Off {
                reason: "no sync engine".into(),
            },
            trouble: None,
            sites,
            nodes,
            site_nodes,
            rollouts,
            commands,
            conflicts: Vec::new(),
            unsynced: None,
            tunnels: Vec::new(),
        }
    }

    /// The fleet at a moment (now or past) as a snapshot: its alerts and
    /// site states by the store's rules as of then. Who this replica is,
    /// peers and sync are the caller's to fill in (a past moment has none).
    pub fn of_moment(m: Moment) -> Snapshot {
        let (states, summary, alerts) = m.status();
        Snapshot::build(
            m.at_ms,
            m.state,
            Arc::new(m.health),
            alerts,
            &states,
            summary,
        )
    }

    /// Nothing yet: what the console shows before the first snapshot.
    pub fn empty(taken_ms: i64) -> Snapshot {
        let mut s = Snapshot::build(
            taken_ms,
            Arc::new(FleetState::default()),
            Arc::new(HashMap::new()),
            Vec::new(),
            &[],
            FleetSummary::default(),
        );
        s.trouble = Some("waiting for the first snapshot".into());
        s
    }

    pub fn site(&self, id: &str) -> Option<&SiteFacts> {
        self.sites.iter().find(|s| s.id == id)
    }

    pub fn node(&self, id: &str) -> Option<&NodeFacts> {
        self.nodes.get(id)
    }

    pub fn nodes_of<'a>(&'a self, site: &str) -> impl Iterator<Item = &'a NodeFacts> + use<'a> {
        self.site_nodes
            .get(site)
            .into_iter()
            .flatten()
            .filter_map(|id| self.nodes.get(id))
    }

    /// The freshest last-heard time over every node.
    pub fn freshest_ms(&self) -> Option<i64> {
        self.nodes.values().filter_map(|n| n.last_heard_ms).max()
    }

    pub fn alert(&self, id: &str) -> Option<&Alert> {
        self.alerts.iter().find(|a| a.id == id)
    }
}

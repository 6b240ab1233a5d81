//! The scenario file: a fleet (sites, nodes, config layers, how each node's
//! simulated metrics behave), a timeline of events and the checks that must
//! hold. Parsed from TOML; every problem is reported with the line and the
//! field it is about.

use std::collections::BTreeMap;

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::{NodeId, SiteId};
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

/// A scenario file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// TOML syntax or a field of the wrong type / unknown field. The message
    /// from `toml` names the line, the column and the field.
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// Well-formed TOML whose content does not make sense.
    #[error("{origin}: line {line}: {field}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        field: String,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    fleet: String,
    duration_s: Spanned<f64>,
    /// The speed the scenario plays at unless `--speed` says otherwise.
    speed: Option<Spanned<f64>>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    replica: Vec<RawReplica>,
    #[serde(default)]
    site: Vec<RawSite>,
    #[serde(default)]
    node: Vec<RawNode>,
    #[serde(default)]
    event: Vec<RawEvent>,
    #[serde(default)]
    check: Vec<RawCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: Spanned<String>,
    name: String,
    lat: Option<f64>,
    lon: Option<f64>,
    zone: Option<String>,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplica {
    name: Spanned<String>,
    kind: Spanned<String>,
    at: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<String>,
    site: Spanned<String>,
    role: Option<String>,
    #[serde(default)]
    metrics: MetricsSpec,
    #[serde(default)]
    config: toml::Table,
}

/// A node's baseline metrics; each sample adds uniform noise of ±`noise`.
/// With `tls_days`, the node has a real certificate file (self-signed PEM,
/// checked as `checks.tls.web`) expiring in that many days; with
/// `backup_age_h`, a backup status file (`checks.backup_status`) whose last
/// run was that many hours ago, every database backed up.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSpec {
    pub cpu: f64,
    pub mem: f64,
    pub disk: f64,
    pub noise: f64,
    pub temp: Option<f64>,
    pub tls_days: Option<u32>,
    pub backup_age_h: Option<f64>,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec {
            cpu: 15.0,
            mem: 40.0,
            disk: 35.0,
            noise: 3.0,
            temp: None,
            tls_days: None,
            backup_age_h: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at_s: f64,
    action: Spanned<String>,
    node: Option<Spanned<String>>,
    nodes: Option<Vec<Spanned<String>>>,
    site: Option<Spanned<String>>,
    layer: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    value: Option<toml::Value>,
    pct: Option<f64>,
    message: Option<String>,
    /// Which operator replica makes an edit (default: the operator, `ops`).
    by: Option<Spanned<String>>,
    /// A rollout's or a command's id.
    id: Option<Spanned<String>>,
    /// What a rollout sets: key → value.
    set: Option<Spanned<toml::Table>>,
    sites: Option<Vec<Spanned<String>>>,
    waves: Option<Spanned<Vec<u8>>>,
    soak_s: Option<f64>,
    max_fail: Option<u64>,
    /// A hub or laptop replica (`hub_down`, `hub_up`, `move`).
    replica: Option<Spanned<String>>,
    /// Where a laptop goes: a site id, `ops` or `nowhere`.
    to: Option<Spanned<String>>,
    /// The action a `command` event asks nodes to run.
    run: Option<Spanned<String>>,
    /// `cert`: days left on the node's certificate.
    days: Option<u32>,
    /// `backup`: ok, failed or all_failed.
    status: Option<Spanned<String>>,
    /// `backup`: how old the last run is, in hours.
    age_h: Option<f64>,
    /// `clock_skew`: seconds the node's clock is off (negative: behind).
    by_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    at_s: Option<f64>,
    within_s: Option<f64>,
    kind: Spanned<String>,
    alert: Option<String>,
    node: Option<Spanned<String>>,
    nodes: Option<Vec<Spanned<String>>>,
    site: Option<Spanned<String>>,
    result: Option<Spanned<String>>,
    rollout: Option<Spanned<String>>,
    wave: Option<usize>,
    command: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    value: Option<toml::Value>,
    /// With `receipts`: the message of the edit the check is about.
    change: Option<Spanned<String>>,
    /// With `receipts`: `applied`, `delivered` or `not_yet`.
    state: Option<Spanned<String>>,
}

#[derive(Clone, Debug)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub zone: Option<String>,
    pub config: Vec<(ConfigPath, Value)>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub id: NodeId,
    pub site: SiteId,
    pub role: Option<String>,
    pub metrics: MetricsSpec,
    pub config: Vec<(ConfigPath, Value)>,
}

/// Which config layer an operator edit goes to.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    Fleet,
    Site(SiteId),
    Node(NodeId),
}

/// What a replica that is not a node daemon is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaKind {
    /// An always-on replica (what `fleetdeck serve` runs at headquarters):
    /// connected to everyone, until a `hub_down` event.
    Hub,
    /// A technician's laptop: it syncs only with whoever is where it is
    /// (`move` events), like a console with no WAN.
    Laptop,
}

/// Where a laptop is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// On a site's LAN: it reaches that site's nodes only.
    Site(SiteId),
    /// Back at headquarters: it reaches the operator and the hubs.
    Ops,
    /// In transit: it reaches nobody.
    Nowhere,
}

/// A replica of the fleet that is not a node: a hub or a laptop, enrolled
/// as an operator.
#[derive(Clone, Debug)]
pub struct Replica {
    pub name: String,
    pub kind: ReplicaKind,
    /// A laptop's starting place (a hub is always `Ops`).
    pub at: Place,
}

/// What a `command` event targets.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    All,
    Site(SiteId),
    Node(NodeId),
}

/// A `backup` event: what the node's backup status file says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BackupState {
    Ok,
    /// One database failed.
    Failed,
    /// Every database failed.
    AllFailed,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The node's daemon stops (its endpoint closes, heartbeats stop).
    Crash(NodeId),
    /// The daemon starts again on the same data dir and root.
    Restart(NodeId),
    /// The node's simulated root disk reports this percentage.
    DiskFill(NodeId, f64),
    /// The node's disk goes back to its baseline.
    DiskClear(NodeId),
    /// The node's simulated CPU reports this percentage.
    CpuSpike(NodeId, f64),
    CpuClear(NodeId),
    /// The node's simulated memory reports this percentage.
    MemFill(NodeId, f64),
    MemClear(NodeId),
    /// The node's certificate (`checks.tls.web`) now expires in this many
    /// days (a real, self-signed PEM file).
    Cert(NodeId, u32),
    /// The node's clock is put this many seconds off (negative: behind), as
    /// a Pi with no real-time clock boots. Not scaled by the speed: it is
    /// an offset, not a duration. It lasts across restarts.
    ClockSkew(NodeId, f64),
    /// The node's backup status file (`checks.backup_status`) is rewritten:
    /// this state, last run this many hours ago.
    Backup(NodeId, BackupState, f64),
    /// The operator sets a node override whose health check fails
    /// (`apply.check = "exit 1"`): the node applies it and rolls back.
    BadConfig(NodeId),
    /// Every link between the site's nodes and everyone else is cut.
    Partition(SiteId),
    /// Every partition is healed (with a site: that site's only).
    Heal(Option<SiteId>),
    /// A hub replica stops (its endpoint closes).
    HubDown(String),
    /// The hub starts again on its data dir.
    HubUp(String),
    /// A laptop goes somewhere else.
    Move(String, Place),
    /// An operator edit: set KEY in a layer. String values may contain
    /// `{cycle}` (1 on the first pass of the timeline, 2 on the next, …).
    Set {
        layer: Layer,
        key: ConfigPath,
        value: Value,
        message: Option<String>,
    },
    /// An operator edit: remove KEY from a layer.
    Unset {
        layer: Layer,
        key: ConfigPath,
        message: Option<String>,
    },
    /// Emergency stop: no node applies anything new.
    Freeze(Option<String>),
    Unfreeze(Option<String>),
    /// A staged rollout, as `fleetdeck rollout start` records it. `soak_s`
    /// is scenario time (divided by the speed).
    Rollout {
        id: String,
        set: BTreeMap<String, Value>,
        sites: Vec<SiteId>,
        waves: Vec<u8>,
        soak_s: f64,
        max_fail: u64,
    },
    RolloutPause(String),
    RolloutResume(String),
    /// Takes the rollout's settings off every node (the rollback).
    RolloutAbort(String),
    /// Asks nodes to run an allowlisted action once (`command run`).
    Command {
        id: String,
        action: String,
        target: Target,
    },
}

impl Action {
    /// The node an action is about, if any.
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            Action::Crash(n)
            | Action::Restart(n)
            | Action::DiskFill(n, _)
            | Action::DiskClear(n)
            | Action::CpuSpike(n, _)
            | Action::CpuClear(n)
            | Action::MemFill(n, _)
            | Action::MemClear(n)
            | Action::Cert(n, _)
            | Action::ClockSkew(n, _)
            | Action::Backup(n, _, _)
            | Action::BadConfig(n) => Some(n),
            _ => None,
        }
    }

    /// The same action on another node (for events that rotate over
    /// `nodes`); actions on no node are returned as they are.
    pub fn on_node(&self, n: &NodeId) -> Action {
        match self {
            Action::Crash(_) => Action::Crash(n.clone()),
            Action::Restart(_) => Action::Restart(n.clone()),
            Action::DiskFill(_, p) => Action::DiskFill(n.clone(), *p),
            Action::DiskClear(_) => Action::DiskClear(n.clone()),
            Action::CpuSpike(_, p) => Action::CpuSpike(n.clone(), *p),
            Action::CpuClear(_) => Action::CpuClear(n.clone()),
            Action::MemFill(_, p) => Action::MemFill(n.clone(), *p),
            Action::MemClear(_) => Action::MemClear(n.clone()),
            Action::Cert(_, d) => Action::Cert(n.clone(), *d),
            Action::ClockSkew(_, by) => Action::ClockSkew(n.clone(), *by),
            Action::Backup(_, s, a) => Action::Backup(n.clone(), *s, *a),
            Action::BadConfig(_) => Action::BadConfig(n.clone()),
            other => other.clone(),
        }
    }

    /// Whether this action is an operator's write to the fleet document
    /// (what `no_edit_lost` follows).
    pub fn is_edit(&self) -> bool {
        matches!(
            self,
            Action::BadConfig(_)
                | Action::Set { .. }
                | Action::Unset { .. }
                | Action::Freeze(_)
                | Action::Unfreeze(_)
                | Action::Rollout { .. }
                | Action::RolloutPause(_)
                | Action::RolloutResume(_)
                | Action::RolloutAbort(_)
                | Action::Command { .. }
        )
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    /// Scenario time (seconds from the start of a pass).
    pub at_s: f64,
    pub action: Action,
    /// With `nodes = [...]`: pass k of the timeline acts on
    /// `rotate[(k - 1) % len]` (so a repeating demo does not crash the same
    /// node every pass into a crash loop).
    pub rotate: Vec<NodeId>,
    /// The replica that makes an edit: `None` is the operator (`ops`).
    pub by: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    /// Every running replica that can reach the operator has the same heads.
    Converged,
    /// The operator's replica showed this alert (id, or id prefix) at some
    /// point of the run.
    AlertFired(String),
    /// The alert was shown and is no longer active.
    AlertResolved(String),
    /// The alert did not fire from `at_s` to `at_s + within_s` (decided at
    /// the end of that window): what keeps a scaled threshold honest, e.g.
    /// a node is not down before its missed heartbeats are up.
    AlertQuiet(String),
    /// The node reported applying its desired revision with this result
    /// (`ok`), or reported this result (`rolled_back`, `failed`).
    Applied {
        node: NodeId,
        result: fleetdeck_store::health::ApplyResult,
    },
    /// Each of these nodes runs a release whose config has KEY = VALUE (read
    /// from the node's own disk: what it runs, whatever the operator sees).
    Runs {
        nodes: Vec<NodeId>,
        key: ConfigPath,
        value: Value,
    },
    /// The rollout is halted; with a wave, halted while that many waves (1
    /// = the first) were open.
    RolloutHalted {
        rollout: String,
        wave: Option<usize>,
    },
    /// Every wave of the rollout is open and applied.
    RolloutDone(String),
    /// Every operator edit of the run is in every running replica.
    NoEditLost,
    /// Every node the command targets reported it ran ok.
    CommandDone(String),
    /// As the operator's receipts show the edit with this message (the
    /// newest, with `{cycle}` filled in), each of these nodes is at least
    /// `state` (`Applied` counts as delivered) — or, with `NotYet`, has
    /// not reported holding it.
    Receipts {
        change: String,
        nodes: Vec<NodeId>,
        state: fleetdeck_store::receipts::Delivery,
    },
}

#[derive(Clone, Debug)]
pub struct Check {
    /// Looked at from this scenario time (default: the end of the timeline).
    pub at_s: f64,
    /// How long (scenario time) it may take to hold after `at_s` (default
    /// 15 s); the runner adds a fixed allowance of real time for what does
    /// not accelerate (see [`crate::runner::LATENCY_ALLOWANCE`]).
    pub within_s: f64,
    pub kind: CheckKind,
}

impl Check {
    pub fn describe(&self) -> String {
        match &self.kind {
            CheckKind::Converged => "all replicas converged".into(),
            CheckKind::AlertFired(a) => format!("alert {a} fired"),
            CheckKind::AlertResolved(a) => format!("alert {a} resolved"),
            CheckKind::AlertQuiet(a) => {
                format!("alert {a} quiet until {:.0}s", self.at_s + self.within_s)
            }
            CheckKind::Applied { node, result } => {
                format!("node {node} reported apply {}", result_name(*result))
            }
            CheckKind::Runs { nodes, key, value } => {
                let who = match nodes.as_slice() {
                    [one] => format!("node {one} runs"),
                    many => format!("{} nodes run", many.len()),
                };
                format!("{who} {} = {value}", key.to_key())
            }
            CheckKind::RolloutHalted { rollout, wave } => match wave {
                Some(w) => format!("rollout {rollout} halted at wave {w}"),
                None => format!("rollout {rollout} halted"),
            },
            CheckKind::RolloutDone(r) => format!("rollout {r} done"),
            CheckKind::NoEditLost => "no edit lost (every edit on every replica)".into(),
            CheckKind::CommandDone(c) => format!("command {c} ran ok on every target"),
            CheckKind::Receipts {
                change,
                nodes,
                state,
            } => {
                let who = match nodes.as_slice() {
                    [one] => format!("node {one}"),
                    many => format!("{} nodes", many.len()),
                };
                format!("receipts of \"{change}\": {who} {}", state.as_str())
            }
        }
    }
}

pub fn result_name(r: fleetdeck_store::health::ApplyResult) -> &'static str {
    use fleetdeck_store::health::ApplyResult::*;
    match r {
        Ok => "ok",
        RolledBack => "rolled_back",
        Failed => "failed",
    }
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub fleet: String,
    /// One pass of the timeline, in scenario seconds.
    pub duration_s: f64,
    /// The speed it plays at unless told otherwise (1 = real time).
    pub speed: f64,
    pub config: Vec<(ConfigPath, Value)>,
    pub sites: Vec<Site>,
    pub replicas: Vec<Replica>,
    pub nodes: Vec<Node>,
    /// Sorted by time.
    pub events: Vec<Event>,
    pub checks: Vec<Check>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Every event action, for error messages.
pub const ACTIONS: &[&str] = &[
    "crash",
    "restart",
    "disk_fill",
    "disk_clear",
    "cpu_spike",
    "cpu_clear",
    "mem_fill",
    "mem_clear",
    "cert",
    "clock_skew",
    "backup",
    "bad_config",
    "partition",
    "heal",
    "hub_down",
    "hub_up",
    "move",
    "set",
    "unset",
    "freeze",
    "unfreeze",
    "rollout",
    "rollout_pause",
    "rollout_resume",
    "rollout_abort",
    "command",
];

/// Every check kind, for error messages.
pub const CHECKS: &[&str] = &[
    "converged",
    "no_edit_lost",
    "alert_fired",
    "alert_resolved",
    "alert_quiet",
    "applied",
    "runs",
    "rollout_halted",
    "rollout_done",
    "command_done",
    "receipts",
];

/// The speeds a run may use at all.
pub fn check_speed_range(speed: f64) -> Result<(), String> {
    if speed.is_finite() && (0.1..=100.0).contains(&speed) {
        Ok(())
    } else {
        Err(format!(
            "{speed} is not a speed: expected 0.1 to 100 (1 = real time)"
        ))
    }
}

/// A rollout's or a command's id.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

struct Ctx<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        message: String,
    ) -> Result<T, SpecError> {
        Err(SpecError::Invalid {
            origin: self.origin.to_string(),
            line: line_of(self.text, span.start),
            field: field.to_string(),
            message,
        })
    }

    fn node_id(&self, s: &Spanned<String>, field: &str) -> Result<NodeId, SpecError> {
        NodeId::parse(s.get_ref()).or_else(|e| self.err(s.span(), field, e.to_string()))
    }

    fn site_id(&self, s: &Spanned<String>, field: &str) -> Result<SiteId, SpecError> {
        SiteId::parse(s.get_ref()).or_else(|e| self.err(s.span(), field, e.to_string()))
    }

    /// A config table as the leaves an edit writes.
    fn leaves(
        &self,
        table: &toml::Table,
        field: &str,
    ) -> Result<Vec<(ConfigPath, Value)>, SpecError> {
        let mut out = Vec::new();
        for (k, v) in table {
            let path =
                ConfigPath::from_segments(vec![k.clone()]).map_err(|e| SpecError::Invalid {
                    origin: self.origin.to_string(),
                    line: 0,
                    field: format!("{field}.{k}"),
                    message: e.to_string(),
                })?;
            let json = serde_json::to_value(v).map_err(|e| SpecError::Invalid {
                origin: self.origin.to_string(),
                line: 0,
                field: format!("{field}.{k}"),
                message: e.to_string(),
            })?;
            let leaves =
                fleetdeck_store::config::flatten(&path, &json).map_err(|e| SpecError::Invalid {
                    origin: self.origin.to_string(),
                    line: 0,
                    field: format!("{field}.{k}"),
                    message: e.to_string(),
                })?;
            out.extend(leaves);
        }
        Ok(out)
    }
}

impl Scenario {
    /// Parses and checks a scenario. `origin` names it in errors (a path or
    /// `built-in blocao`).
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, SpecError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| SpecError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let cx = Ctx { origin, text };
        let duration_s = *raw.duration_s.get_ref();
        if !(duration_s > 0.0 && duration_s <= 86_400.0) {
            return cx.err(
                raw.duration_s.span(),
                "duration_s",
                format!("{duration_s} is not a duration: expected 0 < duration_s <= 86400"),
            );
        }
        let speed = match &raw.speed {
            None => 1.0,
            Some(s) => {
                let v = *s.get_ref();
                if let Err(e) = check_speed_range(v) {
                    return cx.err(s.span(), "speed", e);
                }
                v
            }
        };
        let config = cx.leaves(&raw.config, "config")?;
        let mut sites = Vec::new();
        for (i, s) in raw.site.iter().enumerate() {
            let id = cx.site_id(&s.id, &format!("site[{i}].id"))?;
            if sites.iter().any(|x: &Site| x.id == id) {
                return cx.err(
                    s.id.span(),
                    &format!("site[{i}].id"),
                    format!("site {id} is defined twice"),
                );
            }
            sites.push(Site {
                id,
                name: s.name.clone(),
                lat: s.lat,
                lon: s.lon,
                zone: s.zone.clone(),
                config: cx.leaves(&s.config, &format!("site[{i}].config"))?,
            });
        }
        let mut nodes = Vec::new();
        for (i, n) in raw.node.iter().enumerate() {
            let id = cx.node_id(&n.id, &format!("node[{i}].id"))?;
            if nodes.iter().any(|x: &Node| x.id == id) {
                return cx.err(
                    n.id.span(),
                    &format!("node[{i}].id"),
                    format!("node {id} is defined twice"),
                );
            }
            let site = cx.site_id(&n.site, &format!("node[{i}].site"))?;
            if !sites.iter().any(|s| s.id == site) {
                return cx.err(
                    n.site.span(),
                    &format!("node[{i}].site"),
                    format!("no site {site} in this scenario"),
                );
            }
            nodes.push(Node {
                id,
                site,
                role: n.role.clone(),
                metrics: n.metrics.clone(),
                config: cx.leaves(&n.config, &format!("node[{i}].config"))?,
            });
        }
        if nodes.is_empty() {
            return Err(SpecError::Invalid {
                origin: origin.to_string(),
                line: 1,
                field: "node".into(),
                message: "a scenario needs at least one [[node]]".into(),
            });
        }
        let place = |s: &Spanned<String>, field: &str| -> Result<Place, SpecError> {
            match s.get_ref().as_str() {
                "ops" => Ok(Place::Ops),
                "nowhere" => Ok(Place::Nowhere),
                other => {
                    let id = SiteId::parse(other).or_else(|_| {
                        cx.err(
                            s.span(),
                            field,
                            format!("'{other}' is not a place: expected a site id, ops or nowhere"),
                        )
                    })?;
                    if !sites.iter().any(|x| x.id == id) {
                        return cx.err(s.span(), field, format!("no site {id} in this scenario"));
                    }
                    Ok(Place::Site(id))
                }
            }
        };
        let mut replicas: Vec<Replica> = Vec::new();
        for (i, r) in raw.replica.iter().enumerate() {
            let f = |name: &str| format!("replica[{i}].{name}");
            let name = r.name.get_ref().clone();
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid
                || name == "ops"
                || NodeId::parse(&name).is_ok_and(|n| nodes.iter().any(|x| x.id == n))
            {
                return cx.err(
                    r.name.span(),
                    &f("name"),
                    format!(
                        "'{name}' is not a free replica name: expected letters, digits, - or _, \
                         not 'ops' and not a node's id"
                    ),
                );
            }
            if replicas.iter().any(|x| x.name == name) {
                return cx.err(
                    r.name.span(),
                    &f("name"),
                    format!("replica {name} is defined twice"),
                );
            }
            let kind = match r.kind.get_ref().as_str() {
                "hub" => ReplicaKind::Hub,
                "laptop" => ReplicaKind::Laptop,
                other => {
                    return cx.err(
                        r.kind.span(),
                        &f("kind"),
                        format!("'{other}' is not a replica kind: expected hub or laptop"),
                    );
                }
            };
            let at = match (&r.at, kind) {
                (None, _) => Place::Ops,
                (Some(a), ReplicaKind::Laptop) => place(a, &f("at"))?,
                (Some(a), ReplicaKind::Hub) => {
                    return cx.err(
                        a.span(),
                        &f("at"),
                        "a hub does not move: at is for laptops".into(),
                    );
                }
            };
            replicas.push(Replica { name, kind, at });
        }
        let node_ref = |s: &Option<Spanned<String>>,
                        field: &str,
                        span: std::ops::Range<usize>|
         -> Result<NodeId, SpecError> {
            let Some(s) = s else {
                return cx.err(span, field, "missing: this names a node".into());
            };
            let id = cx.node_id(s, field)?;
            if !nodes.iter().any(|n| n.id == id) {
                return cx.err(s.span(), field, format!("no node {id} in this scenario"));
            }
            Ok(id)
        };
        let site_ref = |s: &Option<Spanned<String>>,
                        field: &str,
                        span: std::ops::Range<usize>|
         -> Result<SiteId, SpecError> {
            let Some(s) = s else {
                return cx.err(span, field, "missing: this names a site".into());
            };
            let id = cx.site_id(s, field)?;
            if !sites.iter().any(|x| x.id == id) {
                return cx.err(s.span(), field, format!("no site {id} in this scenario"));
            }
            Ok(id)
        };
        let replica_ref = |s: &Option<Spanned<String>>,
                           field: &str,
                           span: std::ops::Range<usize>,
                           kind: Option<ReplicaKind>|
         -> Result<String, SpecError> {
            let known = || {
                replicas
                    .iter()
                    .filter(|r| kind.is_none_or(|k| r.kind == k))
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let Some(s) = s else {
                // One replica of the kind: it need not be named.
                let mut of_kind = replicas.iter().filter(|r| kind.is_none_or(|k| r.kind == k));
                return match (of_kind.next(), of_kind.next()) {
                    (Some(r), None) => Ok(r.name.clone()),
                    _ => cx.err(
                        span,
                        field,
                        format!("missing: name one of the scenario's replicas ({})", known()),
                    ),
                };
            };
            match replicas.iter().find(|r| &r.name == s.get_ref()) {
                Some(r) if kind.is_none_or(|k| r.kind == k) => Ok(r.name.clone()),
                _ => cx.err(
                    s.span(),
                    field,
                    format!(
                        "no such replica '{}' here (expected one of: {})",
                        s.get_ref(),
                        known()
                    ),
                ),
            }
        };
        let text_ref = |s: &Option<Spanned<String>>,
                        field: &str,
                        span: std::ops::Range<usize>|
         -> Result<String, SpecError> {
            match s {
                Some(t) if is_id(t.get_ref()) => Ok(t.get_ref().clone()),
                Some(t) => cx.err(
                    t.span(),
                    field,
                    format!(
                        "'{}' is not an id: expected letters, digits, '.', '-' or '_'",
                        t.get_ref()
                    ),
                ),
                None => cx.err(span, field, "missing: this action needs it".into()),
            }
        };
        let mut events = Vec::new();
        let mut rollouts: Vec<String> = Vec::new();
        let mut commands: Vec<String> = Vec::new();
        for (i, e) in raw.event.iter().enumerate() {
            let f = |name: &str| format!("event[{i}].{name}");
            let span = e.action.span();
            if !(0.0..=duration_s).contains(&e.at_s) {
                return cx.err(
                    span,
                    &f("at_s"),
                    format!(
                        "{} is outside the timeline (0 to duration_s = {duration_s})",
                        e.at_s
                    ),
                );
            }
            let pct = |what: &str| -> Result<f64, SpecError> {
                match e.pct {
                    Some(p) if (0.0..=100.0).contains(&p) => Ok(p),
                    Some(p) => cx.err(
                        span.clone(),
                        &f("pct"),
                        format!("{p} is not a percentage (0 to 100)"),
                    ),
                    None => cx.err(
                        span.clone(),
                        &f("pct"),
                        format!("missing: {what} needs pct"),
                    ),
                }
            };
            let layer = || -> Result<Layer, SpecError> {
                let Some(l) = &e.layer else {
                    return Ok(Layer::Fleet);
                };
                let s = l.get_ref().as_str();
                if s == "fleet" {
                    Ok(Layer::Fleet)
                } else if let Some(site) = s.strip_prefix("site:") {
                    let id = SiteId::parse(site)
                        .or_else(|e| cx.err(l.span(), &f("layer"), e.to_string()))?;
                    if !sites.iter().any(|x| x.id == id) {
                        return cx.err(
                            l.span(),
                            &f("layer"),
                            format!("no site {id} in this scenario"),
                        );
                    }
                    Ok(Layer::Site(id))
                } else if let Some(node) = s.strip_prefix("node:") {
                    let id = NodeId::parse(node)
                        .or_else(|e| cx.err(l.span(), &f("layer"), e.to_string()))?;
                    if !nodes.iter().any(|x| x.id == id) {
                        return cx.err(
                            l.span(),
                            &f("layer"),
                            format!("no node {id} in this scenario"),
                        );
                    }
                    Ok(Layer::Node(id))
                } else {
                    cx.err(
                        l.span(),
                        &f("layer"),
                        format!("'{s}' is not a layer: expected fleet, site:ID or node:ID"),
                    )
                }
            };
            let key = || -> Result<ConfigPath, SpecError> {
                let Some(k) = &e.key else {
                    return cx.err(
                        span.clone(),
                        &f("key"),
                        "missing: this action needs key".into(),
                    );
                };
                ConfigPath::parse(k.get_ref())
                    .or_else(|err| cx.err(k.span(), &f("key"), err.to_string()))
            };
            let known_rollout = |id: String, field: &str| -> Result<String, SpecError> {
                if rollouts.contains(&id) {
                    Ok(id)
                } else {
                    let sp = e.id.as_ref().map_or(span.clone(), |s| s.span());
                    cx.err(
                        sp,
                        field,
                        format!("no rollout '{id}' is started before this event"),
                    )
                }
            };
            let mut rotate = Vec::new();
            let node_field = match (&e.node, &e.nodes) {
                (Some(_), Some(_)) => {
                    return cx.err(span, &f("nodes"), "give node or nodes, not both".into());
                }
                (None, Some(list)) => {
                    let Some(first) = list.first() else {
                        return cx.err(
                            span,
                            &f("nodes"),
                            "an empty list: name at least one node".into(),
                        );
                    };
                    for (j, n) in list.iter().enumerate() {
                        rotate.push(node_ref(
                            &Some(n.clone()),
                            &format!("event[{i}].nodes[{j}]"),
                            span.clone(),
                        )?);
                    }
                    Some(first.clone())
                }
                (n, None) => n.clone(),
            };
            let e_node = &node_field;
            let the_node = || node_ref(e_node, &f("node"), span.clone());
            let action = match e.action.get_ref().as_str() {
                "crash" => Action::Crash(the_node()?),
                "restart" => Action::Restart(the_node()?),
                "disk_fill" => Action::DiskFill(the_node()?, pct("disk_fill")?),
                "disk_clear" => Action::DiskClear(the_node()?),
                "cpu_spike" => Action::CpuSpike(the_node()?, pct("cpu_spike")?),
                "cpu_clear" => Action::CpuClear(the_node()?),
                "mem_fill" => Action::MemFill(the_node()?, pct("mem_fill")?),
                "mem_clear" => Action::MemClear(the_node()?),
                "cert" => {
                    let Some(days) = e.days else {
                        return cx.err(
                            span,
                            &f("days"),
                            "missing: cert needs days (left before it expires)".into(),
                        );
                    };
                    Action::Cert(the_node()?, days)
                }
                "clock_skew" => {
                    let Some(by) = e
                        .by_s
                        .filter(|b| b.is_finite() && b.abs() <= 10.0 * 365.0 * 86_400.0)
                    else {
                        return cx.err(
                            span,
                            &f("by_s"),
                            "missing or out of range: clock_skew needs by_s, seconds the clock is off (negative: behind), within 10 years".into(),
                        );
                    };
                    Action::ClockSkew(the_node()?, by)
                }
                "backup" => {
                    let state = match e.status.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
                        None | Some(("ok", _)) => BackupState::Ok,
                        Some(("failed", _)) => BackupState::Failed,
                        Some(("all_failed", _)) => BackupState::AllFailed,
                        Some((other, sp)) => {
                            return cx.err(
                                sp,
                                &f("status"),
                                format!(
                                    "'{other}' is not a backup status: expected ok, failed or all_failed"
                                ),
                            );
                        }
                    };
                    let age = e.age_h.unwrap_or(0.0);
                    if !(0.0..=24.0 * 365.0).contains(&age) {
                        return cx.err(
                            span,
                            &f("age_h"),
                            format!("{age} is not an age in hours (0 to 8760)"),
                        );
                    }
                    Action::Backup(the_node()?, state, age)
                }
                "bad_config" => Action::BadConfig(the_node()?),
                "partition" => Action::Partition(site_ref(&e.site, &f("site"), span.clone())?),
                "heal" => match &e.site {
                    None => Action::Heal(None),
                    s => Action::Heal(Some(site_ref(s, &f("site"), span.clone())?)),
                },
                "hub_down" => Action::HubDown(replica_ref(
                    &e.replica,
                    &f("replica"),
                    span.clone(),
                    Some(ReplicaKind::Hub),
                )?),
                "hub_up" => Action::HubUp(replica_ref(
                    &e.replica,
                    &f("replica"),
                    span.clone(),
                    Some(ReplicaKind::Hub),
                )?),
                "move" => {
                    let who = replica_ref(
                        &e.replica,
                        &f("replica"),
                        span.clone(),
                        Some(ReplicaKind::Laptop),
                    )?;
                    let Some(to) = &e.to else {
                        return cx.err(
                            span,
                            &f("to"),
                            "missing: move needs to (a site id, ops or nowhere)".into(),
                        );
                    };
                    Action::Move(who, place(to, &f("to"))?)
                }
                "set" => {
                    let Some(v) = &e.value else {
                        return cx.err(span, &f("value"), "missing: set needs value".into());
                    };
                    let value = serde_json::to_value(v)
                        .or_else(|err| cx.err(span.clone(), &f("value"), err.to_string()))?;
                    Action::Set {
                        layer: layer()?,
                        key: key()?,
                        value,
                        message: e.message.clone(),
                    }
                }
                "unset" => Action::Unset {
                    layer: layer()?,
                    key: key()?,
                    message: e.message.clone(),
                },
                "freeze" => Action::Freeze(e.message.clone()),
                "unfreeze" => Action::Unfreeze(e.message.clone()),
                "rollout" => {
                    let id = text_ref(&e.id, &f("id"), span.clone())?;
                    if rollouts.contains(&id) {
                        return cx.err(
                            e.id.as_ref().map_or(span, |s| s.span()),
                            &f("id"),
                            format!("rollout {id} is started twice"),
                        );
                    }
                    let Some(set) = &e.set else {
                        return cx.err(
                            span,
                            &f("set"),
                            "missing: a rollout needs set = { key = value, … }".into(),
                        );
                    };
                    let mut kv = BTreeMap::new();
                    for (k, v) in set.get_ref() {
                        if let Err(err) = ConfigPath::parse(k) {
                            return cx.err(
                                set.span(),
                                &format!("event[{i}].set.{k}"),
                                err.to_string(),
                            );
                        }
                        let json = serde_json::to_value(v).or_else(|err| {
                            cx.err(set.span(), &format!("event[{i}].set.{k}"), err.to_string())
                        })?;
                        kv.insert(k.clone(), json);
                    }
                    if kv.is_empty() {
                        return cx.err(
                            set.span(),
                            &f("set"),
                            "an empty set: name at least one key".into(),
                        );
                    }
                    let mut rsites = Vec::new();
                    for (j, s) in e.sites.iter().flatten().enumerate() {
                        rsites.push(site_ref(
                            &Some(s.clone()),
                            &format!("event[{i}].sites[{j}]"),
                            span.clone(),
                        )?);
                    }
                    let waves = match &e.waves {
                        None => vec![5, 25, 100],
                        Some(w) => {
                            let text = w
                                .get_ref()
                                .iter()
                                .map(u8::to_string)
                                .collect::<Vec<_>>()
                                .join(",");
                            fleetdeck_store::rollout::parse_waves(&text)
                                .or_else(|err| cx.err(w.span(), &f("waves"), err))?
                        }
                    };
                    let soak_s = e.soak_s.unwrap_or(600.0);
                    if !(0.0..=7.0 * 86_400.0).contains(&soak_s) {
                        return cx.err(
                            span,
                            &f("soak_s"),
                            format!("{soak_s} is not a soak time (0 to 604800 s)"),
                        );
                    }
                    rollouts.push(id.clone());
                    Action::Rollout {
                        id,
                        set: kv,
                        sites: rsites,
                        waves,
                        soak_s,
                        max_fail: e.max_fail.unwrap_or(0),
                    }
                }
                "rollout_pause" => Action::RolloutPause(known_rollout(
                    text_ref(&e.id, &f("id"), span.clone())?,
                    &f("id"),
                )?),
                "rollout_resume" => Action::RolloutResume(known_rollout(
                    text_ref(&e.id, &f("id"), span.clone())?,
                    &f("id"),
                )?),
                "rollout_abort" => Action::RolloutAbort(known_rollout(
                    text_ref(&e.id, &f("id"), span.clone())?,
                    &f("id"),
                )?),
                "command" => {
                    let id = text_ref(&e.id, &f("id"), span.clone())?;
                    if commands.contains(&id) {
                        return cx.err(
                            e.id.as_ref().map_or(span, |s| s.span()),
                            &f("id"),
                            format!("command {id} is issued twice"),
                        );
                    }
                    let action = text_ref(&e.run, &f("run"), span.clone())?;
                    let target = match (&e.site, e_node) {
                        (Some(_), Some(_)) => {
                            return cx.err(span, &f("site"), "give site or node, not both".into());
                        }
                        (Some(_), None) => {
                            Target::Site(site_ref(&e.site, &f("site"), span.clone())?)
                        }
                        (None, Some(_)) => Target::Node(the_node()?),
                        (None, None) => Target::All,
                    };
                    commands.push(id.clone());
                    Action::Command { id, action, target }
                }
                other => {
                    return cx.err(
                        span,
                        &f("action"),
                        format!("unknown action '{other}': expected {}", ACTIONS.join(", ")),
                    );
                }
            };
            let has = |n: &NodeId, what: fn(&MetricsSpec) -> bool| {
                nodes.iter().any(|x| &x.id == n && what(&x.metrics))
            };
            let targets: Vec<NodeId> = if rotate.is_empty() {
                action.node().cloned().into_iter().collect()
            } else {
                rotate.clone()
            };
            for n in &targets {
                match &action {
                    Action::Cert(..) if !has(n, |m| m.tls_days.is_some()) => {
                        return cx.err(
                            span,
                            &f("node"),
                            format!(
                                "node {n} has no simulated certificate: give it metrics.tls_days"
                            ),
                        );
                    }
                    Action::Backup(..) if !has(n, |m| m.backup_age_h.is_some()) => {
                        return cx.err(
                            span,
                            &f("node"),
                            format!(
                                "node {n} has no simulated backups: give it metrics.backup_age_h"
                            ),
                        );
                    }
                    _ => {}
                }
            }
            if !rotate.is_empty() && action.node().is_none() {
                return cx.err(
                    span,
                    &f("nodes"),
                    format!(
                        "{} acts on no node: nodes does not apply",
                        e.action.get_ref()
                    ),
                );
            }
            let by = match &e.by {
                None => None,
                Some(b) if b.get_ref() == "ops" => None,
                Some(_) if !action.is_edit() => {
                    return cx.err(
                        span,
                        &f("by"),
                        format!("{} is not an edit: by does not apply", e.action.get_ref()),
                    );
                }
                b => Some(replica_ref(b, &f("by"), span.clone(), None)?),
            };
            events.push(Event {
                at_s: e.at_s,
                action,
                rotate,
                by,
            });
        }
        // A stable sort: events at the same time keep the file's order.
        events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let mut checks = Vec::new();
        for (i, c) in raw.check.iter().enumerate() {
            let f = |name: &str| format!("check[{i}].{name}");
            let span = c.kind.span();
            let at_s = c.at_s.unwrap_or(duration_s);
            if !(0.0..=duration_s).contains(&at_s) {
                return cx.err(
                    span,
                    &f("at_s"),
                    format!("{at_s} is outside the timeline (0 to duration_s = {duration_s})"),
                );
            }
            let within_s = c.within_s.unwrap_or(15.0);
            if !(0.0..=86_400.0).contains(&within_s) {
                return cx.err(
                    span,
                    &f("within_s"),
                    format!("{within_s} is not a wait (0 to 86400 s)"),
                );
            }
            let alert = || -> Result<String, SpecError> {
                match &c.alert {
                    Some(a) if !a.is_empty() => Ok(a.clone()),
                    _ => cx.err(
                        span.clone(),
                        &f("alert"),
                        "missing: this check names an alert id (or prefix)".into(),
                    ),
                }
            };
            // The nodes a check names: node, nodes, a site's, or (none) all.
            let pick = || -> Result<Vec<NodeId>, SpecError> {
                let picked: Vec<NodeId> = match (&c.node, &c.nodes, &c.site) {
                    (Some(_), None, None) => vec![node_ref(&c.node, &f("node"), span.clone())?],
                    (None, Some(list), None) => {
                        let mut v = Vec::new();
                        for (j, n) in list.iter().enumerate() {
                            v.push(node_ref(
                                &Some(n.clone()),
                                &format!("check[{i}].nodes[{j}]"),
                                span.clone(),
                            )?);
                        }
                        v
                    }
                    (None, None, Some(_)) => {
                        let site = site_ref(&c.site, &f("site"), span.clone())?;
                        nodes
                            .iter()
                            .filter(|n| n.site == site)
                            .map(|n| n.id.clone())
                            .collect()
                    }
                    (None, None, None) => nodes.iter().map(|n| n.id.clone()).collect(),
                    _ => {
                        return cx.err(
                            span.clone(),
                            &f("node"),
                            "give one of node, nodes or site (or none: every node)".into(),
                        );
                    }
                };
                if picked.is_empty() {
                    return cx.err(
                        span.clone(),
                        &f("nodes"),
                        "no node to check: the list or the site holds none".into(),
                    );
                }
                Ok(picked)
            };
            let rollout = || -> Result<String, SpecError> {
                let id = text_ref(&c.rollout, &f("rollout"), span.clone())?;
                if !rollouts.contains(&id) {
                    return cx.err(
                        c.rollout.as_ref().map_or(span.clone(), |s| s.span()),
                        &f("rollout"),
                        format!("no event starts a rollout '{id}'"),
                    );
                }
                Ok(id)
            };
            let kind = match c.kind.get_ref().as_str() {
                "converged" => CheckKind::Converged,
                "no_edit_lost" => CheckKind::NoEditLost,
                "alert_fired" => CheckKind::AlertFired(alert()?),
                "alert_resolved" => CheckKind::AlertResolved(alert()?),
                "alert_quiet" => CheckKind::AlertQuiet(alert()?),
                "applied" => {
                    use fleetdeck_store::health::ApplyResult;
                    let node = node_ref(&c.node, &f("node"), span.clone())?;
                    let result = match c.result.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
                        None | Some(("ok", _)) => ApplyResult::Ok,
                        Some(("rolled_back", _)) => ApplyResult::RolledBack,
                        Some(("failed", _)) => ApplyResult::Failed,
                        Some((other, sp)) => {
                            return cx.err(
                                sp,
                                &f("result"),
                                format!(
                                    "'{other}' is not a result: expected ok, rolled_back or failed"
                                ),
                            );
                        }
                    };
                    CheckKind::Applied { node, result }
                }
                "runs" => {
                    let picked = pick()?;
                    if picked.is_empty() {
                        return cx.err(
                            span,
                            &f("nodes"),
                            "no node to check: the list or the site holds none".into(),
                        );
                    }
                    let Some(k) = &c.key else {
                        return cx.err(span, &f("key"), "missing: runs needs key".into());
                    };
                    let key = ConfigPath::parse(k.get_ref())
                        .or_else(|err| cx.err(k.span(), &f("key"), err.to_string()))?;
                    let Some(v) = &c.value else {
                        return cx.err(span, &f("value"), "missing: runs needs value".into());
                    };
                    let value = serde_json::to_value(v)
                        .or_else(|err| cx.err(span.clone(), &f("value"), err.to_string()))?;
                    CheckKind::Runs {
                        nodes: picked,
                        key,
                        value,
                    }
                }
                "rollout_halted" => {
                    let id = rollout()?;
                    if c.wave == Some(0) {
                        return cx.err(span, &f("wave"), "waves count from 1".into());
                    }
                    CheckKind::RolloutHalted {
                        rollout: id,
                        wave: c.wave,
                    }
                }
                "rollout_done" => CheckKind::RolloutDone(rollout()?),
                "command_done" => {
                    let id = text_ref(&c.command, &f("command"), span.clone())?;
                    if !commands.contains(&id) {
                        return cx.err(
                            c.command.as_ref().map_or(span.clone(), |s| s.span()),
                            &f("command"),
                            format!("no event issues a command '{id}'"),
                        );
                    }
                    CheckKind::CommandDone(id)
                }
                "receipts" => {
                    let Some(m) = &c.change else {
                        return cx.err(
                            span,
                            &f("change"),
                            "missing: receipts names an edit by its message".into(),
                        );
                    };
                    if !events.iter().any(|e| {
                        matches!(&e.action, Action::Set { message: Some(x), .. } if x == m.get_ref())
                    }) {
                        return cx.err(
                            m.span(),
                            &f("change"),
                            format!("no set event has the message '{}'", m.get_ref()),
                        );
                    }
                    use fleetdeck_store::receipts::Delivery;
                    let state = match c.state.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
                        Some(("applied", _)) => Delivery::Applied,
                        Some(("delivered", _)) => Delivery::Delivered,
                        Some(("not_yet", _)) => Delivery::NotYet,
                        Some((other, sp)) => {
                            return cx.err(
                                sp,
                                &f("state"),
                                format!(
                                    "'{other}' is not a receipt state: expected applied, delivered or not_yet"
                                ),
                            );
                        }
                        None => {
                            return cx.err(
                                span,
                                &f("state"),
                                "missing: applied, delivered or not_yet".into(),
                            );
                        }
                    };
                    CheckKind::Receipts {
                        change: m.get_ref().clone(),
                        nodes: pick()?,
                        state,
                    }
                }
                other => {
                    return cx.err(
                        span,
                        &f("kind"),
                        format!("unknown check '{other}': expected {}", CHECKS.join(", ")),
                    );
                }
            };
            checks.push(Check {
                at_s,
                within_s,
                kind,
            });
        }
        let scenario = Scenario {
            name: raw.name,
            description: raw.description,
            fleet: raw.fleet,
            duration_s,
            speed,
            config,
            sites,
            nodes,
            replicas,
            events,
            checks,
        };
        // The file's own speed must fit its timings.
        if let (Some(s), Err(e)) = (&raw.speed, scenario.check_speed(speed)) {
            return cx.err(s.span(), "speed", e);
        }
        Ok(scenario)
    }

    /// Whether the scenario can play at `speed`: every duration in its
    /// config (see [`crate::speed::TIME_KEYS`]), divided by the speed, must
    /// stay a whole number of seconds (at least 1 for a heartbeat), since
    /// the daemon and the alert rules count whole seconds.
    pub fn check_speed(&self, speed: f64) -> Result<(), String> {
        check_speed_range(speed)?;
        let mut values: Vec<(ConfigPath, &Value)> =
            self.config.iter().map(|(k, v)| (k.clone(), v)).collect();
        for s in &self.sites {
            values.extend(s.config.iter().map(|(k, v)| (k.clone(), v)));
        }
        for n in &self.nodes {
            values.extend(n.config.iter().map(|(k, v)| (k.clone(), v)));
        }
        for e in &self.events {
            match &e.action {
                Action::Set { key, value, .. } => values.push((key.clone(), value)),
                Action::Rollout { set, .. } => {
                    for (k, v) in set {
                        values.push((ConfigPath::parse(k).map_err(|e| e.to_string())?, v));
                    }
                }
                _ => {}
            }
        }
        for (k, v) in &values {
            crate::speed::scale_value(k, v, speed)?;
        }
        Ok(())
    }

    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| &n.id == id)
    }

    /// Nodes of each site.
    pub fn by_site(&self) -> BTreeMap<SiteId, Vec<NodeId>> {
        let mut m: BTreeMap<SiteId, Vec<NodeId>> = BTreeMap::new();
        for n in &self.nodes {
            m.entry(n.site.clone()).or_default().push(n.id.clone());
        }
        m
    }
}

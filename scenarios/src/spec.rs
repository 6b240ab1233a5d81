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
    #[serde(default)]
    config: toml::Table,
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
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSpec {
    pub cpu: f64,
    pub mem: f64,
    pub disk: f64,
    pub noise: f64,
    pub temp: Option<f64>,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec {
            cpu: 15.0,
            mem: 40.0,
            disk: 35.0,
            noise: 3.0,
            temp: None,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    at_s: Option<f64>,
    within_s: Option<f64>,
    kind: Spanned<String>,
    alert: Option<String>,
    node: Option<Spanned<String>>,
    result: Option<Spanned<String>>,
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
    /// The operator sets a node override whose health check fails
    /// (`apply.check = "exit 1"`): the node applies it and rolls back.
    BadConfig(NodeId),
    /// Every link between the site's nodes and everyone else is cut.
    Partition(SiteId),
    /// Every partition is healed.
    Heal,
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
            Action::BadConfig(_) => Action::BadConfig(n.clone()),
            other => other.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub at_s: f64,
    pub action: Action,
    /// With `nodes = [...]`: pass k of the timeline acts on
    /// `rotate[(k - 1) % len]` (so a repeating demo does not crash the same
    /// node every pass into a crash loop).
    pub rotate: Vec<NodeId>,
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
    /// The node reported applying its desired revision with this result
    /// (`ok`), or reported this result (`rolled_back`, `failed`).
    Applied {
        node: NodeId,
        result: fleetdeck_store::health::ApplyResult,
    },
}

#[derive(Clone, Debug)]
pub struct Check {
    /// Looked at from this time (default: the end of the timeline).
    pub at_s: f64,
    /// How long it may take to hold after `at_s` (default 15 s).
    pub within_s: f64,
    pub kind: CheckKind,
}

impl Check {
    pub fn describe(&self) -> String {
        match &self.kind {
            CheckKind::Converged => "all replicas converged".into(),
            CheckKind::AlertFired(a) => format!("alert {a} fired"),
            CheckKind::AlertResolved(a) => format!("alert {a} resolved"),
            CheckKind::Applied { node, result } => {
                format!("node {node} reported apply {}", result_name(*result))
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
    pub duration_s: f64,
    pub config: Vec<(ConfigPath, Value)>,
    pub sites: Vec<Site>,
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
        let node_ref = |s: &Option<Spanned<String>>,
                        field: &str,
                        span: std::ops::Range<usize>|
         -> Result<NodeId, SpecError> {
            let Some(s) = s else {
                return cx.err(span, field, "missing: this action names a node".into());
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
                return cx.err(span, field, "missing: this action names a site".into());
            };
            let id = cx.site_id(s, field)?;
            if !sites.iter().any(|x| x.id == id) {
                return cx.err(s.span(), field, format!("no site {id} in this scenario"));
            }
            Ok(id)
        };
        let mut events = Vec::new();
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
            let action = match e.action.get_ref().as_str() {
                "crash" => Action::Crash(node_ref(e_node, &f("node"), span.clone())?),
                "restart" => Action::Restart(node_ref(e_node, &f("node"), span.clone())?),
                "disk_fill" => Action::DiskFill(
                    node_ref(e_node, &f("node"), span.clone())?,
                    pct("disk_fill")?,
                ),
                "disk_clear" => Action::DiskClear(node_ref(e_node, &f("node"), span.clone())?),
                "cpu_spike" => Action::CpuSpike(
                    node_ref(e_node, &f("node"), span.clone())?,
                    pct("cpu_spike")?,
                ),
                "cpu_clear" => Action::CpuClear(node_ref(e_node, &f("node"), span.clone())?),
                "bad_config" => Action::BadConfig(node_ref(e_node, &f("node"), span.clone())?),
                "partition" => Action::Partition(site_ref(&e.site, &f("site"), span.clone())?),
                "heal" => Action::Heal,
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
                other => {
                    return cx.err(
                        span,
                        &f("action"),
                        format!(
                            "unknown action '{other}': expected crash, restart, disk_fill, disk_clear, cpu_spike, \
                             cpu_clear, bad_config, partition, heal, set or unset"
                        ),
                    );
                }
            };
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
            events.push(Event {
                at_s: e.at_s,
                action,
                rotate,
            });
        }
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
            if !(0.0..=3600.0).contains(&within_s) {
                return cx.err(
                    span,
                    &f("within_s"),
                    format!("{within_s} is not a wait (0 to 3600 s)"),
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
            let kind = match c.kind.get_ref().as_str() {
                "converged" => CheckKind::Converged,
                "alert_fired" => CheckKind::AlertFired(alert()?),
                "alert_resolved" => CheckKind::AlertResolved(alert()?),
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
                other => {
                    return cx.err(
                        span,
                        &f("kind"),
                        format!("unknown check '{other}': expected converged, alert_fired, alert_resolved or applied"),
                    );
                }
            };
            checks.push(Check {
                at_s,
                within_s,
                kind,
            });
        }
        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            fleet: raw.fleet,
            duration_s,
            config,
            sites,
            nodes,
            events,
            checks,
        })
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

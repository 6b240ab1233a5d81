//! The fleet as a file: sites, nodes, config layers and members' roles
//! declared in one TOML file that can live in git (`fleetdeck export`,
//! `fleetdeck apply -f FILE`), like `kubectl apply`.
//!
//! [`FleetSpec::parse`] reads a file (hostile: every id, key, value and role
//! is checked, and the first bad one is named with where it is);
//! [`FleetSpec::of`] is what a replica holds, and [`FleetSpec::to_toml`]
//! writes it; [`plan`] says, step by step, what applying a spec to a fleet
//! changes. `ops::apply(Op::Declare)` checks the author may make every step
//! and writes them as one change.
//!
//! What the file says is the whole truth for what it names: a site's or
//! node's config layer becomes exactly the file's (keys not in it are
//! unset), its name, place, zone, site and role become the file's. What it
//! does not name is kept, and listed: with `prune`, sites and nodes not in
//! the file are removed. Members are added and their roles changed, never
//! revoked (revocation is for good: `fleetdeck member revoke`). Bindings of
//! nodes to devices, rollouts, acks and the freeze are running state, not
//! declarations: the file has none of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigPath;
use crate::document::{FleetState, LayerRef, NodeRecord, SiteRecord};
use crate::error::{Result, StoreError};
use crate::ids::{MemberKey, NodeId, Role, SiteId};

/// The file's shape, as serde reads and writes it.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    /// The fleet-wide config layer; absent: left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<toml::Table>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sites: BTreeMap<String, SiteEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    nodes: BTreeMap<String, NodeEntry>,
    /// Member key → name and role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    members: BTreeMap<String, MemberEntry>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SiteEntry {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    /// Keys this layer clears: set to null, the inherited value is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cleared: Vec<String>,
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    config: toml::Table,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cleared: Vec<String>,
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    config: toml::Table,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    name: String,
    role: String,
}

/// A config layer as leaves: what `FleetState`'s layers hold.
pub type Leaves = BTreeMap<ConfigPath, Value>;

/// A fleet as declared, every part checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetSpec {
    /// `None` when the file has no `[config]`: the fleet layer is kept.
    pub fleet: Option<Leaves>,
    pub sites: BTreeMap<SiteId, (SiteRecord, Leaves)>,
    pub nodes: BTreeMap<NodeId, (NodeRecord, Leaves)>,
    pub members: BTreeMap<MemberKey, (String, Role)>,
}

/// The largest file `parse` reads: a 10,000-site fleet with its config
/// fits in a few MB.
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

fn invalid(msg: String) -> StoreError {
    StoreError::Invalid(msg)
}

/// A TOML value as the document stores it (JSON). Dates have no JSON form
/// and floats must be finite.
fn to_json(v: &toml::Value, at: &str) -> Result<Value> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| invalid(format!("{at}: {f} is not a finite number")))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => {
            return Err(invalid(format!(
                "{at}: {d} is a TOML date, which config cannot hold; quote it (\"{d}\")"
            )));
        }
        toml::Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{at}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v, &format!("{at}.{k}"))?)))
                .collect::<Result<_>>()?,
        ),
    })
}

/// A stored value as TOML: `null` has no TOML form (a layer's own nulls are
/// written as `cleared` keys instead), nor has an integer past i64.
fn to_toml(v: &Value, at: &str) -> Result<toml::Value> {
    Ok(match v {
        Value::Null => {
            return Err(invalid(format!(
                "{at} holds null inside a value, which TOML cannot write"
            )));
        }
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(f)) if n.is_f64() => toml::Value::Float(f),
            _ => {
                return Err(invalid(format!(
                    "{at} = {n} is an integer past what TOML can write"
                )));
            }
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| to_toml(v, &format!("{at}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        Value::Object(m) => toml::Value::Table(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), to_toml(v, &format!("{at}.{k}"))?)))
                .collect::<Result<_>>()?,
        ),
    })
}

/// A layer's table as leaves, with its `cleared` keys as nulls.
fn leaves(table: &toml::Table, cleared: &[String], at: &str) -> Result<Leaves> {
    let mut out = Leaves::new();
    for (k, v) in table {
        let path = ConfigPath::parse(k).map_err(|e| invalid(format!("{at}: {e}")))?;
        let value = to_json(v, &format!("{at}.{k}"))?;
        for (p, v) in
            crate::config::flatten(&path, &value).map_err(|e| invalid(format!("{at}.{k}: {e}")))?
        {
            if out.insert(p.clone(), v).is_some() {
                return Err(invalid(format!("{at}: {p} is given twice")));
            }
        }
    }
    for k in cleared {
        let path = ConfigPath::parse(k).map_err(|e| invalid(format!("{at} cleared: {e}")))?;
        if out.insert(path.clone(), Value::Null).is_some() {
            return Err(invalid(format!(
                "{at}: {path} is both set and cleared; keep one"
            )));
        }
    }
    Ok(out)
}

/// Leaves back into a nested table, and the nulls as `cleared` keys.
fn table(layer: &Leaves, at: &str) -> Result<(toml::Table, Vec<String>)> {
    let mut root = toml::Table::new();
    let mut cleared = Vec::new();
    for (path, v) in layer {
        if v.is_null() {
            cleared.push(path.to_string());
            continue;
        }
        let segs = path.segments();
        let mut cur = &mut root;
        for (i, seg) in segs.iter().enumerate() {
            if i + 1 == segs.len() {
                cur.insert(seg.clone(), to_toml(v, &format!("{at}.{path}"))?);
                break;
            }
            let next = cur
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = match next {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(invalid(format!(
                        "{at}: {path} lies below a key that holds a value"
                    )));
                }
            };
        }
    }
    Ok((root, cleared))
}

impl FleetSpec {
    /// Reads a fleet file. Every error names the entry and what was wrong.
    pub fn parse(text: &str) -> Result<FleetSpec> {
        if text.len() > MAX_FILE_BYTES {
            return Err(invalid(format!(
                "the file is {} bytes: over the limit of {MAX_FILE_BYTES}",
                text.len()
            )));
        }
        let file: FleetFile = toml::from_str(text).map_err(|e| invalid(format!("{e}")))?;
        let mut spec = FleetSpec {
            fleet: file
                .config
                .as_ref()
                .map(|c| leaves(c, &[], "config"))
                .transpose()?,
            ..FleetSpec::default()
        };
        for (id, s) in &file.sites {
            let at = format!("sites.{id}");
            let sid = SiteId::parse(id).map_err(|e| invalid(format!("{at}: {e}")))?;
            let rec = SiteRecord {
                name: s.name.clone(),
                lat: s.lat,
                lon: s.lon,
                zone: s.zone.clone(),
            };
            crate::document::validate_site(&rec).map_err(|e| invalid(format!("{at}: {e}")))?;
            let layer = leaves(&s.config, &s.cleared, &format!("{at}.config"))?;
            spec.sites.insert(sid, (rec, layer));
        }
        for (id, n) in &file.nodes {
            let at = format!("nodes.{id}");
            let nid = NodeId::parse(id).map_err(|e| invalid(format!("{at}: {e}")))?;
            let site = SiteId::parse(&n.site).map_err(|e| invalid(format!("{at}.site: {e}")))?;
            let rec = NodeRecord {
                site: site.to_string(),
                role: n.role.clone(),
            };
            crate::document::validate_node(&rec).map_err(|e| invalid(format!("{at}: {e}")))?;
            let layer = leaves(&n.config, &n.cleared, &format!("{at}.config"))?;
            spec.nodes.insert(nid, (rec, layer));
        }
        for (key, m) in &file.members {
            let at = format!("members.{key}");
            let k = MemberKey::parse(key).map_err(|e| invalid(format!("{at}: {e}")))?;
            let role = Role::parse(&m.role).map_err(|e| invalid(format!("{at}.role: {e}")))?;
            if m.name.trim().is_empty()
                || m.name.len() > 128
                || m.name.chars().any(char::is_control)
            {
                return Err(invalid(format!(
                    "{at}.name: {:?} is not valid: expected 1 to 128 printable characters",
                    m.name
                )));
            }
            spec.members.insert(k, (m.name.clone(), role));
        }
        Ok(spec)
    }

    /// What `st` declares: the file `export` writes.
    pub fn of(st: &FleetState) -> FleetSpec {
        let layer = |l: &crate::config::Layer| -> Leaves {
            l.iter().map(|(k, v)| (k.clone(), (**v).clone())).collect()
        };
        FleetSpec {
            fleet: Some(layer(&st.fleet)),
            sites: st
                .sites
                .values()
                .map(|s| (s.id.clone(), (s.record.clone(), layer(&s.overrides))))
                .collect(),
            nodes: st
                .nodes
                .values()
                .map(|n| (n.id.clone(), (n.record.clone(), layer(&n.overrides))))
                .collect(),
            members: st
                .members
                .values()
                .map(|m| (m.key.clone(), (m.name.clone(), m.role)))
                .collect(),
        }
    }

    /// The spec as a fleet file.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(&self.file()?)
            .map_err(|e| invalid(format!("cannot write the fleet file: {e}")))
    }

    /// The fleet file's tree as JSON (`export --json`).
    pub fn to_json(&self) -> Result<Value> {
        serde_json::to_value(self.file()?)
            .map_err(|e| invalid(format!("cannot write the fleet file: {e}")))
    }

    fn file(&self) -> Result<FleetFile> {
        let config = self
            .fleet
            .as_ref()
            .map(|f| table(f, "config").map(|(t, _)| t))
            .transpose()?;
        let mut file = FleetFile {
            config,
            ..FleetFile::default()
        };
        for (id, (rec, layer)) in &self.sites {
            let (config, cleared) = table(layer, &format!("sites.{id}.config"))?;
            file.sites.insert(
                id.to_string(),
                SiteEntry {
                    name: rec.name.clone(),
                    lat: rec.lat,
                    lon: rec.lon,
                    zone: rec.zone.clone(),
                    cleared,
                    config,
                },
            );
        }
        for (id, (rec, layer)) in &self.nodes {
            let (config, cleared) = table(layer, &format!("nodes.{id}.config"))?;
            file.nodes.insert(
                id.to_string(),
                NodeEntry {
                    site: rec.site.clone(),
                    role: rec.role.clone(),
                    cleared,
                    config,
                },
            );
        }
        for (key, (name, role)) in &self.members {
            file.members.insert(
                key.to_string(),
                MemberEntry {
                    name: name.clone(),
                    role: role.as_str().to_string(),
                },
            );
        }
        Ok(file)
    }
}

/// One thing applying a spec changes.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    SiteAdd(SiteId, SiteRecord),
    SiteEdit(SiteId, SiteRecord, SiteRecord),
    /// With `prune` only; its nodes go with it.
    SiteRm(SiteId),
    NodeAdd(NodeId, NodeRecord),
    NodeEdit(NodeId, NodeRecord, NodeRecord),
    /// With `prune` only.
    NodeRm(NodeId),
    Set {
        layer: LayerRef,
        key: ConfigPath,
        from: Option<Value>,
        to: Value,
    },
    Unset {
        layer: LayerRef,
        key: ConfigPath,
        from: Value,
    },
    MemberAdd(MemberKey, String, Role),
    MemberEdit {
        key: MemberKey,
        from: (String, Role),
        to: (String, Role),
    },
}

/// What applying a spec changes, and what it leaves alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// In the order they are written.
    pub steps: Vec<Step>,
    /// What the fleet has and the file does not name, kept: sites and nodes
    /// (without `prune`) and members (always).
    pub kept: Vec<String>,
}

/// The steps that make a layer `want` from `now`: removals first, then
/// sets. A key removed where a set writes below or above it is left to the
/// set (setting `x.sub` replaces a value at `x`; setting `x` replaces what
/// is below it), so a key that changes shape is one step, not a set undone
/// by the removal after it.
fn layer_steps(layer: &LayerRef, now: Option<&Leaves>, want: &Leaves, out: &mut Vec<Step>) {
    let empty = Leaves::new();
    let now = now.unwrap_or(&empty);
    let sets: Vec<(&ConfigPath, &Value)> = want
        .iter()
        .filter(|(k, v)| now.get(*k) != Some(*v))
        .collect();
    for (k, v) in now {
        if want.contains_key(k) {
            continue;
        }
        let covered = sets
            .iter()
            .any(|(s, _)| s.starts_with(k) || k.starts_with(s));
        if !covered {
            out.push(Step::Unset {
                layer: layer.clone(),
                key: k.clone(),
                from: v.clone(),
            });
        }
    }
    for (k, v) in sets {
        out.push(Step::Set {
            layer: layer.clone(),
            key: k.clone(),
            from: now.get(k).cloned(),
            to: v.clone(),
        });
    }
}

/// What applying `spec` to `st` changes, in writing order: sites, nodes,
/// config layers, removals (with `prune`), members.
pub fn plan(st: &FleetState, spec: &FleetSpec, prune: bool) -> Result<Plan> {
    let have = FleetSpec::of(st);
    let mut plan = Plan::default();
    let steps = &mut plan.steps;
    for (id, (rec, _)) in &spec.sites {
        match have.sites.get(id) {
            None => steps.push(Step::SiteAdd(id.clone(), rec.clone())),
            Some((old, _)) if old != rec => {
                steps.push(Step::SiteEdit(id.clone(), old.clone(), rec.clone()))
            }
            Some(_) => {}
        }
    }
    for (id, (rec, _)) in &spec.nodes {
        let site = SiteId::parse(&rec.site)?;
        let site_stays =
            spec.sites.contains_key(&site) || (!prune && have.sites.contains_key(&site));
        if !site_stays {
            return Err(invalid(format!(
                "nodes.{id}: site {site} is neither in the file{}",
                if prune {
                    " (and --prune removes what the file does not name)"
                } else {
                    " nor in the fleet"
                }
            )));
        }
        match have.nodes.get(id) {
            None => steps.push(Step::NodeAdd(id.clone(), rec.clone())),
            Some((old, _)) if old != rec => {
                steps.push(Step::NodeEdit(id.clone(), old.clone(), rec.clone()))
            }
            Some(_) => {}
        }
    }
    if let Some(fleet) = &spec.fleet {
        layer_steps(&LayerRef::Fleet, have.fleet.as_ref(), fleet, steps);
    }
    for (id, (_, layer)) in &spec.sites {
        let now = have.sites.get(id).map(|(_, l)| l);
        layer_steps(&LayerRef::Site(id.clone()), now, layer, steps);
    }
    for (id, (_, layer)) in &spec.nodes {
        let now = have.nodes.get(id).map(|(_, l)| l);
        layer_steps(&LayerRef::Node(id.clone()), now, layer, steps);
    }
    for id in have.nodes.keys().filter(|id| !spec.nodes.contains_key(*id)) {
        if prune {
            steps.push(Step::NodeRm(id.clone()));
        } else {
            plan.kept.push(format!("node {id}"));
        }
    }
    for id in have.sites.keys().filter(|id| !spec.sites.contains_key(*id)) {
        if prune {
            steps.push(Step::SiteRm(id.clone()));
        } else {
            plan.kept.push(format!("site {id}"));
        }
    }
    for (key, want) in &spec.members {
        match have.members.get(key) {
            None => steps.push(Step::MemberAdd(key.clone(), want.0.clone(), want.1)),
            Some(now) if now != want => steps.push(Step::MemberEdit {
                key: key.clone(),
                from: now.clone(),
                to: want.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, (name, _)) in &have.members {
        if !spec.members.contains_key(key) {
            plan.kept.push(format!("member {name} ({})", key.short()));
        }
    }
    Ok(plan)
}

fn layer_label(layer: &LayerRef) -> String {
    match layer {
        LayerRef::Fleet => "fleet".into(),
        LayerRef::Site(s) => format!("site {s}"),
        LayerRef::Node(n) => format!("node {n}"),
    }
}

fn site_words(r: &SiteRecord) -> String {
    let mut s = format!("name {:?}", r.name);
    if let (Some(lat), Some(lon)) = (r.lat, r.lon) {
        let _ = write!(s, ", at {lat},{lon}");
    }
    if let Some(z) = &r.zone {
        let _ = write!(s, ", zone {z}");
    }
    s
}

fn node_words(r: &NodeRecord) -> String {
    match &r.role {
        Some(role) => format!("site {}, role {role}", r.site),
        None => format!("site {}", r.site),
    }
}

impl Step {
    /// One line, diff-style: `+` adds, `-` removes, `~` changes.
    pub fn line(&self) -> String {
        match self {
            Step::SiteAdd(id, r) => format!("+ site {id} ({})", site_words(r)),
            Step::SiteEdit(id, a, b) => {
                format!("~ site {id}: {} → {}", site_words(a), site_words(b))
            }
            Step::SiteRm(id) => format!("- site {id} (and its nodes)"),
            Step::NodeAdd(id, r) => format!("+ node {id} ({})", node_words(r)),
            Step::NodeEdit(id, a, b) => {
                format!("~ node {id}: {} → {}", node_words(a), node_words(b))
            }
            Step::NodeRm(id) => format!("- node {id}"),
            Step::Set {
                layer,
                key,
                from: None,
                to,
            } => format!("+ {}: {key} = {to}", layer_label(layer)),
            Step::Set {
                layer,
                key,
                from: Some(from),
                to,
            } => format!("~ {}: {key} = {from} → {to}", layer_label(layer)),
            Step::Unset { layer, key, from } => {
                format!("- {}: {key} (was {from})", layer_label(layer))
            }
            Step::MemberAdd(key, name, role) => {
                format!("+ member {name} ({}) as {role}", key.short())
            }
            Step::MemberEdit { key, from, to } => format!(
                "~ member {} ({}): {} {} → {} {}",
                from.0,
                key.short(),
                from.0,
                from.1,
                to.0,
                to.1
            ),
        }
    }

    /// For `--json`.
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        match self {
            Step::SiteAdd(id, r) => json!({"op": "site_add", "site": id, "record": r}),
            Step::SiteEdit(id, a, b) => {
                json!({"op": "site_edit", "site": id, "from": a, "to": b})
            }
            Step::SiteRm(id) => json!({"op": "site_rm", "site": id}),
            Step::NodeAdd(id, r) => json!({"op": "node_add", "node": id, "record": r}),
            Step::NodeEdit(id, a, b) => {
                json!({"op": "node_edit", "node": id, "from": a, "to": b})
            }
            Step::NodeRm(id) => json!({"op": "node_rm", "node": id}),
            Step::Set {
                layer,
                key,
                from,
                to,
            } => {
                json!({"op": "set", "layer": layer_label(layer), "key": key.to_string(), "from": from, "to": to})
            }
            Step::Unset { layer, key, from } => {
                json!({"op": "unset", "layer": layer_label(layer), "key": key.to_string(), "from": from})
            }
            Step::MemberAdd(key, name, role) => {
                json!({"op": "member_add", "member": key, "name": name, "role": role.as_str()})
            }
            Step::MemberEdit { key, from, to } => json!({
                "op": "member_edit", "member": key,
                "from": {"name": from.0, "role": from.1.as_str()},
                "to": {"name": to.0, "role": to.1.as_str()},
            }),
        }
    }
}

impl Plan {
    /// Counts for a summary line: "3 sites added, 12 keys set, …".
    pub fn counts(&self) -> String {
        let mut n: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for s in &self.steps {
            let k = match s {
                Step::SiteAdd(..) => ("site", "added"),
                Step::SiteEdit(..) => ("site", "changed"),
                Step::SiteRm(..) => ("site", "removed"),
                Step::NodeAdd(..) => ("node", "added"),
                Step::NodeEdit(..) => ("node", "changed"),
                Step::NodeRm(..) => ("node", "removed"),
                Step::Set { .. } => ("key", "set"),
                Step::Unset { .. } => ("key", "unset"),
                Step::MemberAdd(..) => ("member", "added"),
                Step::MemberEdit { .. } => ("member", "changed"),
            };
            *n.entry(k).or_default() += 1;
        }
        if n.is_empty() {
            return "nothing to change".into();
        }
        n.iter()
            .map(|((what, done), v)| {
                let s = if *v == 1 { "" } else { "s" };
                format!("{v} {what}{s} {done}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

//! What changed in effective config between two states of the fleet, per
//! node, folded to a site (or the whole fleet) when every node of it saw the
//! same change. This is what an operator needs before pushing: which nodes
//! will run something different.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::config::{Effective, Source};
use crate::document::FleetState;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiffEntry {
    /// "fleet", "site BL-LAB-2" or "node cam-1".
    pub scope: String,
    pub key: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FleetDiff {
    pub sites_added: Vec<String>,
    pub sites_removed: Vec<String>,
    pub nodes_added: Vec<String>,
    pub nodes_removed: Vec<String>,
    pub config: Vec<DiffEntry>,
    /// Nodes (and node-less sites) whose effective config changed.
    pub nodes_touched: usize,
    pub sites_touched: usize,
}

impl FleetDiff {
    pub fn is_empty(&self) -> bool {
        self.sites_added.is_empty()
            && self.sites_removed.is_empty()
            && self.nodes_added.is_empty()
            && self.nodes_removed.is_empty()
            && self.config.is_empty()
    }
}

/// A unit whose effective config is compared: a node, or a site with no
/// nodes (its site-level config).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Node(String),
    Site(String),
}

fn units(st: &FleetState) -> BTreeMap<Unit, (String, Effective)> {
    let mut out = BTreeMap::new();
    for (id, eff) in st.effective_all() {
        let site = st
            .nodes
            .get(&id)
            .map(|n| n.site.to_string())
            .unwrap_or_default();
        out.insert(Unit::Node(id.to_string()), (site, (*eff).clone()));
    }
    for site in st.sites.values() {
        if st.nodes_of(&site.id).next().is_none()
            && let Ok(eff) = st.effective_site(&site.id)
        {
            out.insert(Unit::Site(site.id.to_string()), (site.id.to_string(), eff));
        }
    }
    out
}

fn leaf_map(e: &Effective) -> BTreeMap<String, (&Value, Source)> {
    e.leaves().map(|(p, v, s)| (p.to_key(), (v, s))).collect()
}

pub fn diff_states(before: &FleetState, after: &FleetState) -> FleetDiff {
    let mut d = FleetDiff::default();
    for id in after
        .sites
        .keys()
        .filter(|id| !before.sites.contains_key(*id))
    {
        d.sites_added.push(id.to_string());
    }
    for id in before
        .sites
        .keys()
        .filter(|id| !after.sites.contains_key(*id))
    {
        d.sites_removed.push(id.to_string());
    }
    for id in after
        .nodes
        .keys()
        .filter(|id| !before.nodes.contains_key(*id))
    {
        d.nodes_added.push(id.to_string());
    }
    for id in before
        .nodes
        .keys()
        .filter(|id| !after.nodes.contains_key(*id))
    {
        d.nodes_removed.push(id.to_string());
    }

    // Only units present on both sides are compared leaf by leaf: an added
    // node "changing" from nothing is reported as added, not as N keys.
    let (ub, ua) = (units(before), units(after));
    // Grouped by (key, before, after) with the values in their JSON text, as
    // JSON values have no order of their own. Each hit remembers which layer
    // the leaf came from, which decides how far it may be folded.
    type Change = (String, Option<String>, Option<String>);
    let mut by_change: BTreeMap<Change, Vec<(&Unit, &str, Source)>> = BTreeMap::new();
    let mut per_site_units: BTreeMap<&str, usize> = BTreeMap::new();
    for (unit, (site, _)) in &ua {
        if ub.contains_key(unit) {
            *per_site_units.entry(site.as_str()).or_default() += 1;
        }
    }
    let mut touched_units = BTreeSet::new();
    for (unit, (site, ea)) in &ua {
        let Some((_, eb)) = ub.get(unit) else {
            continue;
        };
        if ea == eb {
            continue;
        }
        let (mb, ma) = (leaf_map(eb), leaf_map(ea));
        let keys: BTreeSet<&String> = mb.keys().chain(ma.keys()).collect();
        for k in keys {
            let (b, a) = (mb.get(k), ma.get(k));
            if b.map(|x| x.0) != a.map(|x| x.0) {
                touched_units.insert(unit);
                let source = a.or(b).map_or(Source::Fleet, |x| x.1);
                by_change
                    .entry((
                        k.clone(),
                        b.map(|v| v.0.to_string()),
                        a.map(|v| v.0.to_string()),
                    ))
                    .or_default()
                    .push((unit, site.as_str(), source));
            }
        }
    }
    d.nodes_touched = touched_units.len();
    d.sites_touched = touched_units
        .iter()
        .filter_map(|u| ua.get(*u).map(|(s, _)| s.as_str()))
        .collect::<BTreeSet<_>>()
        .len();
    let total_units = per_site_units.values().sum::<usize>();
    for ((key, b, a), hits) in by_change {
        let parse = |t: &Option<String>| {
            t.as_ref()
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
        };
        let (b, a) = (parse(&b), parse(&a));
        let entry = |scope: String| DiffEntry {
            scope,
            key: key.clone(),
            before: b.clone(),
            after: a.clone(),
        };
        if hits.len() == total_units
            && hits.iter().all(|h| h.2 == Source::Fleet)
            && per_site_units.len() > 1
        {
            d.config.push(entry("fleet".into()));
            continue;
        }
        let mut per_site: BTreeMap<&str, Vec<(&Unit, Source)>> = BTreeMap::new();
        for (u, s, src) in &hits {
            per_site.entry(s).or_default().push((u, *src));
        }
        for (site, us) in per_site {
            let whole_site = us.len() == per_site_units.get(site).copied().unwrap_or(0);
            if whole_site && us.iter().all(|(_, src)| *src != Source::Node) {
                d.config.push(entry(format!("site {site}")));
                continue;
            }
            for (u, _) in us {
                match u {
                    Unit::Node(n) => d.config.push(entry(format!("node {n}"))),
                    Unit::Site(s) => d.config.push(entry(format!("site {s}"))),
                }
            }
        }
    }
    d
}

/// One key a change set or unset in one config layer: what an operator
/// wrote, before any merging.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerEdit {
    /// "fleet", "site BL-LAB-2" or "node cam-1".
    pub layer: String,
    pub key: String,
    /// `None`: the key was not set in this layer.
    pub before: Option<Value>,
    /// `None`: the key was unset.
    pub after: Option<Value>,
}

/// The keys set and unset in each config layer between two states (of one
/// change: the state before it and just after it), layer by layer, in key
/// order; sites and nodes added or removed carry their whole layer.
pub fn layer_edits(before: &FleetState, after: &FleetState) -> Vec<LayerEdit> {
    use crate::config::Layer;
    let mut out = Vec::new();
    let mut compare = |layer: String, b: Option<&Layer>, a: Option<&Layer>| {
        let empty = Layer::new();
        let (b, a) = (b.unwrap_or(&empty), a.unwrap_or(&empty));
        if b == a {
            return;
        }
        let keys: BTreeSet<_> = b.keys().chain(a.keys()).collect();
        for k in keys {
            let (vb, va) = (b.get(k), a.get(k));
            if vb != va {
                out.push(LayerEdit {
                    layer: layer.clone(),
                    key: k.to_key(),
                    before: vb.map(|v| (**v).clone()),
                    after: va.map(|v| (**v).clone()),
                });
            }
        }
    };
    compare("fleet".into(), Some(&before.fleet), Some(&after.fleet));
    let sites: BTreeSet<_> = before.sites.keys().chain(after.sites.keys()).collect();
    for s in sites {
        compare(
            format!("site {s}"),
            before.sites.get(s).map(|x| &x.overrides),
            after.sites.get(s).map(|x| &x.overrides),
        );
    }
    let nodes: BTreeSet<_> = before.nodes.keys().chain(after.nodes.keys()).collect();
    for n in nodes {
        compare(
            format!("node {n}"),
            before.nodes.get(n).map(|x| &x.overrides),
            after.nodes.get(n).map(|x| &x.overrides),
        );
    }
    out
}

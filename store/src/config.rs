//! Config keys, values and the layered merge that gives a node its effective
//! config (fleet defaults ⊕ site overrides ⊕ node overrides) with the
//! provenance of every leaf.
//!
//! Values are a JSON tree. Maps merge deeply; anything else (scalars, lists)
//! replaces what a lower layer had; `null` in an override removes the
//! inherited key. A layer is kept *flat*, leaf path → value, which is also how
//! the fleet document stores it: two replicas editing different leaves never
//! touch the same document key, so concurrent edits never hide each other.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Result, StoreError};

/// A dotted key path such as `alerts.disk_pct`. A segment that itself holds a
/// `.` or `%` is written with `%2E` / `%25` (so `files.conf/app%2Eyml` names
/// the key `conf/app.yml` inside `files`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigPath(Arc<[String]>);

const MAX_SEGMENT: usize = 256;
const MAX_DEPTH: usize = 32;

fn check_segment(seg: &str, whole: &str) -> Result<()> {
    if seg.is_empty() {
        return Err(StoreError::Invalid(format!(
            "key '{whole}' is not valid: it has an empty segment (expected a dotted path such as retention.days)"
        )));
    }
    if seg.len() > MAX_SEGMENT || seg.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StoreError::Invalid(format!(
            "key '{whole}' is not valid: segments are at most {MAX_SEGMENT} characters with no spaces or control characters"
        )));
    }
    Ok(())
}

fn unescape(seg: &str) -> String {
    seg.replace("%2E", ".")
        .replace("%2e", ".")
        .replace("%25", "%")
}

fn escape(seg: &str) -> String {
    seg.replace('%', "%25").replace('.', "%2E")
}

impl ConfigPath {
    /// Parses a dotted path as typed on the command line.
    pub fn parse(s: &str) -> Result<Self> {
        let segs: Vec<String> = s.split('.').map(unescape).collect();
        for seg in &segs {
            check_segment(seg, s)?;
        }
        if segs.len() > MAX_DEPTH {
            return Err(StoreError::Invalid(format!(
                "key '{s}' is not valid: it is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Self(segs.into()))
    }

    pub fn from_segments(segs: Vec<String>) -> Result<Self> {
        let whole = segs.iter().map(|s| escape(s)).collect::<Vec<_>>().join(".");
        for seg in &segs {
            check_segment(seg, &whole)?;
        }
        if segs.is_empty() || segs.len() > MAX_DEPTH {
            return Err(StoreError::Invalid(format!(
                "key '{whole}' is not valid: expected 1 to {MAX_DEPTH} segments"
            )));
        }
        Ok(Self(segs.into()))
    }

    pub fn segments(&self) -> &[String] {
        &self.0
    }

    pub fn child(&self, seg: &str) -> Result<Self> {
        let mut v = self.0.to_vec();
        v.push(seg.to_string());
        Self::from_segments(v)
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &ConfigPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// The stored, escaped form; `parse(p.to_key()) == p`.
    pub fn to_key(&self) -> String {
        self.0
            .iter()
            .map(|s| escape(s))
            .collect::<Vec<_>>()
            .join(".")
    }
}

// `ConfigPath` orders exactly as its segment slice does, so maps keyed by it
// can be searched with a borrowed prefix without allocating.
impl std::borrow::Borrow<[String]> for ConfigPath {
    fn borrow(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key())
    }
}

impl fmt::Debug for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_key())
    }
}

/// A VALUE from the command line: JSON when it parses as JSON (`30`, `true`,
/// `["a"]`, `{"k":1}`, `null`), otherwise the text itself as a string.
pub fn parse_cli_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// One layer of config, flat: leaf path → value. Objects never appear as
/// values except the empty object `{}`, which keeps an empty map in place.
pub type Layer = BTreeMap<ConfigPath, Arc<Value>>;

/// Splits `value` set at `path` into the leaves a layer stores.
pub fn flatten(path: &ConfigPath, value: &Value) -> Result<Vec<(ConfigPath, Value)>> {
    let mut out = Vec::new();
    flatten_into(path, value, &mut out)?;
    Ok(out)
}

fn flatten_into(
    path: &ConfigPath,
    value: &Value,
    out: &mut Vec<(ConfigPath, Value)>,
) -> Result<()> {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten_into(&path.child(k)?, v, out)?;
            }
        }
        other => out.push((path.clone(), other.clone())),
    }
    Ok(())
}

/// Which layer set a leaf of the effective config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Fleet,
    Site,
    Node,
    /// A staged rollout whose wave has reached this node.
    Rollout,
}

/// A merged config tree: every leaf with the layer it came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effective {
    leaves: BTreeMap<ConfigPath, (Arc<Value>, Source)>,
}

impl Effective {
    /// Lays `layer` over what is there, with map-deep-merge semantics.
    pub fn overlay(&mut self, layer: &Layer, source: Source) {
        for (path, value) in layer {
            self.apply(path, value, source);
        }
    }

    fn remove_below(&mut self, path: &ConfigPath) {
        let doomed: Vec<ConfigPath> = self
            .leaves
            .range(path.clone()..)
            .skip_while(|(p, _)| *p == path)
            .take_while(|(p, _)| p.starts_with(path))
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.leaves.remove(&p);
        }
    }

    fn has_below(&self, path: &ConfigPath) -> bool {
        self.leaves
            .range(path.clone()..)
            .skip_while(|(p, _)| *p == path)
            .take_while(|(p, _)| p.starts_with(path))
            .next()
            .is_some()
    }

    fn apply(&mut self, path: &ConfigPath, value: &Arc<Value>, source: Source) {
        // A leaf under a scalar turns that scalar into a map: drop the scalar.
        // (A null under a scalar removes something that is not there.)
        if !value.is_null() {
            let segs = path.segments();
            for n in 1..segs.len() {
                self.leaves.remove(&segs[..n]);
            }
        }
        match value.as_ref() {
            Value::Null => {
                self.leaves.remove(path);
                self.remove_below(path);
            }
            Value::Object(m) if m.is_empty() => {
                // An empty map merges with whatever map is below it.
                if !self.has_below(path) {
                    self.leaves.insert(path.clone(), (value.clone(), source));
                }
            }
            _ => {
                self.remove_below(path);
                self.leaves.insert(path.clone(), (value.clone(), source));
            }
        }
    }

    pub fn get(&self, path: &ConfigPath) -> Option<&Value> {
        self.leaves.get(path).map(|(v, _)| v.as_ref())
    }

    /// Looks a key up by its dotted text (for thresholds and the like).
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        ConfigPath::parse(key).ok().and_then(|p| self.get(&p))
    }

    pub fn leaves(&self) -> impl Iterator<Item = (&ConfigPath, &Value, Source)> {
        self.leaves.iter().map(|(p, (v, s))| (p, v.as_ref(), *s))
    }

    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The subtree at `path` as JSON (the whole tree for the empty prefix).
    pub fn subtree(&self, path: Option<&ConfigPath>) -> Option<Value> {
        let mut root = Value::Object(Default::default());
        let mut found = false;
        let skip = path.map_or(0, |p| p.segments().len());
        for (p, (v, _)) in &self.leaves {
            if let Some(prefix) = path {
                if !p.starts_with(prefix) {
                    continue;
                }
                if p == prefix {
                    return Some(v.as_ref().clone());
                }
            }
            found = true;
            insert_nested(&mut root, &p.segments()[skip..], v.as_ref().clone());
        }
        (found || path.is_none()).then_some(root)
    }

    pub fn to_tree(&self) -> Value {
        self.subtree(None).unwrap_or(Value::Null)
    }

    /// The revision of this config: see [`revision`].
    pub fn revision(&self) -> String {
        revision(&self.to_tree())
    }
}

/// The revision of an effective config: the first 16 hex digits of the
/// SHA-256 of its canonical JSON. Same config, same revision, on every node
/// and every replica (which is how any replica tells desired from applied).
pub fn revision(tree: &Value) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(tree).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Puts `value` at the path `segs` below `root`, making the objects on the
/// way (a config path's segments into a JSON tree). Stops where the path
/// meets a value that is not an object.
pub fn insert_nested(root: &mut Value, segs: &[String], value: Value) {
    let mut cur = root;
    for (i, seg) in segs.iter().enumerate() {
        let Value::Object(map) = cur else { return };
        if i + 1 == segs.len() {
            map.insert(seg.clone(), value);
            return;
        }
        cur = map
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// The effective config of one node from its three layers.
pub fn effective(fleet: &Layer, site: Option<&Layer>, node: Option<&Layer>) -> Effective {
    let mut eff = Effective::default();
    eff.overlay(fleet, Source::Fleet);
    if let Some(site) = site {
        eff.overlay(site, Source::Site);
    }
    if let Some(node) = node {
        eff.overlay(node, Source::Node);
    }
    eff
}

/// One leaf of the merged config without building the whole tree: the value
/// at `path` given layers from the top (node) down (fleet). Same answer as
/// [`effective`] for that leaf: the highest layer that sets the key wins, and
/// one that sets a parent of it to a non-map (or `null`) hides it.
pub fn lookup<'a>(layers_top_down: &[Option<&'a Layer>], path: &[String]) -> Option<&'a Value> {
    for layer in layers_top_down.iter().flatten() {
        // Leaves below the key make it a map at this layer (over a scalar
        // set here or lower): there is no leaf at the key itself.
        let below = layer
            .range::<[String], _>((Bound::Excluded(path), Bound::Unbounded))
            .take_while(|(p, _)| p.segments().starts_with(path))
            .any(|(_, v)| !v.is_null());
        if below {
            return None;
        }
        if let Some(v) = layer.get(path) {
            return (!v.is_null()).then_some(v.as_ref());
        }
        for n in 1..path.len() {
            if let Some(v) = layer.get(&path[..n])
                && !matches!(v.as_ref(), Value::Object(m) if m.is_empty())
            {
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(pairs: &[(&str, Value)]) -> Layer {
        pairs
            .iter()
            .map(|(k, v)| (ConfigPath::parse(k).unwrap(), Arc::new(v.clone())))
            .collect()
    }

    #[test]
    fn paths_round_trip_through_their_escaped_form() {
        let p = ConfigPath::from_segments(vec!["files".into(), "/etc/app.yml".into()]).unwrap();
        assert_eq!(p.to_key(), "files./etc/app%2Eyml");
        assert_eq!(ConfigPath::parse(&p.to_key()).unwrap(), p);
        assert!(ConfigPath::parse("a..b").is_err());
        assert!(ConfigPath::parse("").is_err());
        assert!(ConfigPath::parse("has space").is_err());
    }

    #[test]
    fn cli_values_are_json_when_they_parse_and_text_otherwise() {
        assert_eq!(parse_cli_value("30"), json!(30));
        assert_eq!(parse_cli_value("true"), json!(true));
        assert_eq!(parse_cli_value("[\"a\",\"b\"]"), json!(["a", "b"]));
        assert_eq!(parse_cli_value("{\"k\":1}"), json!({"k": 1}));
        assert_eq!(parse_cli_value("0.14.2"), json!("0.14.2"));
        assert_eq!(parse_cli_value("hello world"), json!("hello world"));
    }

    #[test]
    fn site_override_wins_over_fleet_and_node_over_site_with_provenance() {
        let fleet = layer(&[
            ("retention.days", json!(30)),
            ("frigate.version", json!("0.13")),
        ]);
        let site = layer(&[("retention.days", json!(14))]);
        let node = layer(&[("frigate.version", json!("0.14"))]);
        let eff = effective(&fleet, Some(&site), Some(&node));
        let got: Vec<_> = eff
            .leaves()
            .map(|(p, v, s)| (p.to_key(), v.clone(), s))
            .collect();
        assert_eq!(
            got,
            vec![
                ("frigate.version".into(), json!("0.14"), Source::Node),
                ("retention.days".into(), json!(14), Source::Site),
            ]
        );
    }

    #[test]
    fn maps_merge_deeply_lists_replace_whole_and_null_removes() {
        let fleet = layer(&[
            ("firewall.rules", json!(["22/tcp", "443/tcp"])),
            ("firewall.default", json!("deny")),
            ("dns.allow", json!(["a.example"])),
        ]);
        let site = layer(&[("firewall.rules", json!(["443/tcp"])), ("dns", json!(null))]);
        let eff = effective(&fleet, Some(&site), None);
        assert_eq!(
            eff.to_tree(),
            json!({"firewall": {"rules": ["443/tcp"], "default": "deny"}})
        );
    }

    #[test]
    fn a_scalar_over_a_map_replaces_it_and_a_map_over_a_scalar_replaces_that() {
        let fleet = layer(&[("a.b", json!(1)), ("c", json!(5))]);
        let site = layer(&[("a", json!("flat")), ("c.d", json!(2))]);
        let eff = effective(&fleet, Some(&site), None);
        assert_eq!(eff.to_tree(), json!({"a": "flat", "c": {"d": 2}}));
    }

    #[test]
    fn an_empty_map_override_keeps_the_inherited_map() {
        let fleet = layer(&[("a.b", json!(1))]);
        let site = layer(&[("a", json!({}))]);
        let eff = effective(&fleet, Some(&site), None);
        assert_eq!(eff.to_tree(), json!({"a": {"b": 1}}));
        let eff = effective(&Layer::new(), Some(&site), None);
        assert_eq!(eff.to_tree(), json!({"a": {}}));
    }

    #[test]
    fn flatten_splits_objects_into_leaves() {
        let p = ConfigPath::parse("alerts").unwrap();
        let mut leaves = flatten(&p, &json!({"disk_pct": 80, "x": {"y": []}})).unwrap();
        leaves.sort_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<_> = leaves.iter().map(|(p, _)| p.to_key()).collect();
        assert_eq!(keys, vec!["alerts.disk_pct", "alerts.x.y"]);
    }

    #[test]
    fn lookup_agrees_with_the_full_merge() {
        let fleet = layer(&[("alerts.disk_pct", json!(85)), ("a.b", json!(1))]);
        let site = layer(&[("alerts.disk_pct", json!(70)), ("a", json!(null))]);
        let node = layer(&[("alerts.disk_pct", json!(null))]);
        let eff = effective(&fleet, Some(&site), Some(&node));
        for key in ["alerts.disk_pct", "a.b", "missing"] {
            let p = ConfigPath::parse(key).unwrap();
            let got = lookup(&[Some(&node), Some(&site), Some(&fleet)], p.segments());
            assert_eq!(got, eff.get(&p), "{key}");
        }
        let p = ConfigPath::parse("alerts.disk_pct").unwrap();
        assert_eq!(
            lookup(&[None, Some(&site), Some(&fleet)], p.segments()),
            Some(&json!(70))
        );
    }

    #[test]
    fn subtree_returns_a_leaf_or_a_map() {
        let fleet = layer(&[
            ("alerts.disk_pct", json!(85)),
            ("alerts.mem_pct", json!(90)),
        ]);
        let eff = effective(&fleet, None, None);
        let alerts = ConfigPath::parse("alerts").unwrap();
        assert_eq!(
            eff.subtree(Some(&alerts)),
            Some(json!({"disk_pct": 85, "mem_pct": 90}))
        );
        let disk = ConfigPath::parse("alerts.disk_pct").unwrap();
        assert_eq!(eff.subtree(Some(&disk)), Some(json!(85)));
        let none = ConfigPath::parse("nope").unwrap();
        assert_eq!(eff.subtree(Some(&none)), None);
    }
}

//! `config`: get, set, unset a key in a layer; a node's effective config.
//! Also how a layer is shown (`layer_json`, used by `site show` and
//! `node show`).

use anyhow::{Result, anyhow};
use fleetdeck_store::config::{self, ConfigPath};
use fleetdeck_store::document::{FleetState, LayerRef};
use fleetdeck_store::ops::{ConfigEdit, Op};
use fleetdeck_store::{NodeId, Replica};
use serde_json::{Value, json};

use super::args::{Cli, ConfigCmd, LayerArgs};
use super::{act, open};
use crate::output::{Out, Table};

pub(super) fn config(cli: &Cli, out: &Out, cmd: &ConfigCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        ConfigCmd::Get { key, layer, at } => {
            let st = super::at::state(&mut r, out, at.as_deref())?;
            get(&st, out, key, layer)
        }
        ConfigCmd::Set {
            key,
            value,
            layer,
            message,
        } => set(&mut r, out, key, value, layer, message),
        ConfigCmd::Unset {
            key,
            layer,
            message,
        } => unset(&mut r, out, key, layer, message),
        ConfigCmd::Effective { node, explain, at } => {
            let st = super::at::state(&mut r, out, at.as_deref())?;
            effective(&st, out, node, *explain)
        }
    }
}

/// A layer as a JSON tree, its removals (nulls) included.
pub(super) fn layer_json(layer: &config::Layer) -> Value {
    let mut eff = config::Effective::default();
    eff.overlay(layer, config::Source::Fleet);
    // Nulls (removals) are part of an override: show them as such.
    let mut tree = eff.to_tree();
    for (k, v) in layer {
        if v.is_null()
            && let Value::Object(m) = &mut tree
        {
            m.insert(k.to_key(), Value::Null);
        }
    }
    tree
}

fn layer_name(layer: &LayerRef) -> String {
    match layer {
        LayerRef::Fleet => "fleet".into(),
        LayerRef::Site(s) => format!("site {s}"),
        LayerRef::Node(n) => format!("node {n}"),
    }
}

fn get(st: &FleetState, out: &Out, key: &str, layer: &LayerArgs) -> Result<()> {
    let path = ConfigPath::parse(key)?;
    let layer = layer.layer()?;
    let l = st.layer(&layer)?;
    let mut eff = config::Effective::default();
    eff.overlay(l, config::Source::Fleet);
    let value = l
        .get(&path)
        .map(|v| (**v).clone())
        .or_else(|| eff.subtree(Some(&path)))
        .ok_or_else(|| anyhow!("{key} is not set in {}", layer.describe()))?;
    out.emit(
        &json!({"key": path.to_key(), "layer": layer_name(&layer), "value": value}),
        || match &value {
            Value::String(s) => s.clone(),
            v => serde_json::to_string_pretty(v).unwrap_or_default(),
        },
    )
}

fn set(
    r: &mut Replica,
    out: &Out,
    key: &str,
    value: &str,
    layer: &LayerArgs,
    message: &Option<String>,
) -> Result<()> {
    let path = ConfigPath::parse(key)?;
    let op = Op::Config {
        layer: layer.layer()?,
        edits: vec![ConfigEdit::Set(path, config::parse_cli_value(value))],
        message: message.clone(),
    };
    act(r, out, op)
}

fn unset(
    r: &mut Replica,
    out: &Out,
    key: &str,
    layer: &LayerArgs,
    message: &Option<String>,
) -> Result<()> {
    let op = Op::Config {
        layer: layer.layer()?,
        edits: vec![ConfigEdit::Unset(ConfigPath::parse(key)?)],
        message: message.clone(),
    };
    act(r, out, op)
}

fn effective(st: &FleetState, out: &Out, node: &str, explain: bool) -> Result<()> {
    let id = NodeId::parse(node)?;
    let eff = st.effective_node(&id)?;
    let site = st.node(&id)?.site.clone();
    let origin = |s: config::Source| match s {
        config::Source::Fleet => "fleet".to_string(),
        config::Source::Site => format!("site {site}"),
        config::Source::Node => format!("node {id}"),
        config::Source::Rollout => "rollout".to_string(),
    };
    if explain {
        let rows: Vec<Value> = eff
            .leaves()
            .map(|(p, v, s)| json!({"key": p.to_key(), "value": v, "source": s, "from": origin(s)}))
            .collect();
        out.emit(&rows, || {
            let mut t = Table::new(&["KEY", "VALUE", "FROM"]);
            for (p, v, s) in eff.leaves() {
                t.row(vec![p.to_key(), v.to_string(), origin(s)]);
            }
            t.render()
        })
    } else {
        let tree = eff.to_tree();
        out.emit(&tree, || {
            serde_json::to_string_pretty(&tree).unwrap_or_default()
        })
    }
}

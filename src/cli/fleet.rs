//! The fleet and its change log: `init`, `site`, `history`, `receipts`,
//! `diff`, `revert`, `conflicts`.

use std::path::Path;

use anyhow::{Result, bail};
use automerge::ChangeHash;
use fleetdeck_store::diff::LayerEdit;
use fleetdeck_store::diff::diff_states;
use fleetdeck_store::document::{HistoryEntry, SiteRecord};
use fleetdeck_store::ids::natural_cmp;
use fleetdeck_store::moment::Moment;
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::receipts::{self, Delivery, Summary};
use fleetdeck_store::{Replica, SiteId, now_ms};
use serde_json::{Value, json};

use super::args::{Cli, SiteCmd};
use super::config::layer_json;
use super::{act, data_dir, open};
use crate::output::{self, Out, Table, fmt_time, short};

pub(super) fn init(cli: &Cli, out: &Out, name: &str, fleet: &str) -> Result<()> {
    let dir = data_dir(cli)?;
    let r = Replica::init(&dir, name, fleet)?;
    let st = r.state();
    out.emit(
        &json!({"data_dir": dir, "fleet_id": st.fleet_id, "fleet_name": st.name, "member": r.key(), "name": name}),
        || {
            format!(
                "created fleet '{}' ({}) in {}\nthis replica: {} ({})",
                st.name,
                st.fleet_id,
                dir.display(),
                name,
                r.key()
            )
        },
    )
}

pub(super) fn site(cli: &Cli, out: &Out, cmd: &SiteCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        SiteCmd::Add {
            site_ids,
            from,
            name,
            lat,
            lon,
            zone,
        } => site_add(
            &mut r,
            out,
            &ids_given(site_ids, from.as_deref())?,
            name.as_deref(),
            *lat,
            *lon,
            zone.as_deref(),
        ),
        SiteCmd::List => site_list(&r, out),
        SiteCmd::Show { site_id, at } => {
            let m = super::at::moment(&mut r, out, at.at.as_deref())?;
            site_show(&m, out, site_id)
        }
        SiteCmd::Rm {
            site_id,
            with_nodes,
        } => site_rm(&mut r, out, site_id, *with_nodes),
    }
}

fn site_add(
    r: &mut Replica,
    out: &Out,
    ids: &[String],
    name: Option<&str>,
    lat: Option<f64>,
    lon: Option<f64>,
    zone: Option<&str>,
) -> Result<()> {
    let sites = ids
        .iter()
        .map(|id| {
            let id = SiteId::parse(id)?;
            let rec = SiteRecord {
                name: name.map_or_else(|| id.to_string(), str::to_string),
                lat,
                lon,
                zone: zone.map(str::to_string),
            };
            Ok((id, rec))
        })
        .collect::<Result<Vec<_>>>()?;
    act(r, out, Op::SiteAdd { sites })
}

/// The ids named on the command line and in `--from FILE` (one per line;
/// blank lines and `#` comments skipped), in that order.
pub(super) fn ids_given(ids: &[String], from: Option<&Path>) -> Result<Vec<String>> {
    let mut all = ids.to_vec();
    if let Some(path) = from {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the ids in {}: {e}", path.display()))?;
        all.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if all.is_empty() {
        bail!("no id given: name at least one, or pass --from FILE");
    }
    Ok(all)
}

fn site_list(r: &Replica, out: &Out) -> Result<()> {
    let st = r.state();
    let rows: Vec<Value> = st
        .sites
        .values()
        .map(|s| json!({"id": s.id, "name": s.record.name, "lat": s.record.lat, "lon": s.record.lon, "zone": s.record.zone, "nodes": st.nodes_of(&s.id).count(), "overrides": s.overrides.len()}))
        .collect();
    out.emit(&rows, || {
        let mut t = Table::new(&["SITE", "NAME", "ZONE", "NODES", "OVERRIDES", "LOCATION"]);
        for s in st.sites.values() {
            t.row(vec![
                s.id.to_string(),
                s.record.name.clone(),
                s.record.zone.clone().unwrap_or_else(|| "-".into()),
                st.nodes_of(&s.id).count().to_string(),
                s.overrides.len().to_string(),
                match (s.record.lat, s.record.lon) {
                    (Some(a), Some(o)) => format!("{a:.4},{o:.4}"),
                    _ => "-".into(),
                },
            ]);
        }
        t.render()
    })
}

fn site_show(m: &Moment, out: &Out, site_id: &str) -> Result<()> {
    let id = SiteId::parse(site_id)?;
    let st = &m.state;
    let s = st.site(&id)?;
    let nodes: Vec<&str> = st.nodes_of(&id).map(|n| n.id.as_str()).collect();
    let overrides = layer_json(&s.overrides);
    let (states, _, alerts) = m.status();
    let state = states
        .iter()
        .find(|(site, _)| site == id.as_str())
        .map(|(_, s)| *s);
    let alerts: Vec<_> = alerts
        .iter()
        .filter(|a| a.site == id.as_str() && !a.is_hidden(m.at_ms))
        .collect();
    let mut doc = json!({"id": s.id, "record": s.record, "nodes": nodes, "overrides": overrides, "state": state, "alerts": alerts});
    if m.past {
        doc["at"] = json!(fmt_time(m.at_ms));
    }
    out.emit(&doc, || {
        let mut text = format!("site {}  {}\n", s.id, s.record.name);
        if let Some(state) = state {
            text.push_str(&format!(
                "state     {}\n",
                json!(state).as_str().unwrap_or("?")
            ));
        }
        if let Some(z) = &s.record.zone {
            text.push_str(&format!("zone      {z}\n"));
        }
        if let (Some(a), Some(o)) = (s.record.lat, s.record.lon) {
            text.push_str(&format!("location  {a}, {o}\n"));
        }
        text.push_str(&format!(
            "nodes     {}\n",
            if nodes.is_empty() {
                "-".to_string()
            } else {
                nodes.join(", ")
            }
        ));
        for a in &alerts {
            text.push_str(&format!(
                "alert     {} {}: {}\n",
                a.severity,
                a.id,
                output::clean(&a.message)
            ));
        }
        text.push_str("overrides");
        if s.overrides.is_empty() {
            text.push_str("  -");
        }
        for (k, v) in &s.overrides {
            text.push_str(&format!("\n  {k} = {v}"));
        }
        text
    })
}

fn site_rm(r: &mut Replica, out: &Out, site_id: &str, with_nodes: bool) -> Result<()> {
    let site = SiteId::parse(site_id)?;
    act(r, out, Op::SiteRm { site, with_nodes })
}

pub(super) fn history(cli: &Cli, out: &Out, limit: usize, all: bool, diff: bool) -> Result<()> {
    let mut r = open(cli)?;
    let (h, kinds, folded) = history_entries(&mut r, limit, all);
    let hashes: Vec<ChangeHash> = h.iter().filter_map(|e| e.id.parse().ok()).collect();
    let edits: Vec<Option<Vec<LayerEdit>>> = if diff {
        hashes
            .iter()
            .map(|c| r.change_edits(c).map(Some))
            .collect::<Result<_, _>>()?
    } else {
        vec![None; hashes.len()]
    };
    let summaries: Vec<Summary> = receipts::digests(&mut r, &hashes, now_ms(), 0)
        .into_iter()
        .map(|d| d.summary)
        .collect();
    #[derive(serde::Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        entry: &'a fleetdeck_store::document::HistoryEntry,
        kind: &'static str,
        receipts: &'a Summary,
        #[serde(skip_serializing_if = "Option::is_none")]
        edits: &'a Option<Vec<LayerEdit>>,
    }
    let rows: Vec<Row<'_>> = h
        .iter()
        .zip(&summaries)
        .zip(&kinds)
        .zip(&edits)
        .map(|(((entry, receipts), kind), edits)| Row {
            entry,
            kind,
            receipts,
            edits,
        })
        .collect();
    out.emit(&rows, || {
        let mut t = Table::new(&["CHANGE", "TIME", "AUTHOR", "KIND", "RECEIPTS", "MESSAGE"]);
        for ((e, s), kind) in h.iter().zip(&summaries).zip(&kinds) {
            let who = e
                .author_name
                .clone()
                .unwrap_or_else(|| short(&e.author).to_string());
            t.row(vec![
                short(&e.id).to_string(),
                fmt_time(e.time_ms),
                who,
                kind.replace('_', " "),
                if s.nodes == 0 { "-".into() } else { s.line() },
                e.message.clone().unwrap_or_default(),
            ]);
        }
        let mut text = if diff {
            // A table row per change, its edits under it.
            let mut lines = Vec::new();
            for (row, edits) in t.render().lines().zip(std::iter::once(&None).chain(&edits)) {
                lines.push(row.to_string());
                for e in edits.iter().flatten() {
                    lines.push(format!("    {}", output::clean(&edit_line(e))));
                }
            }
            lines.join("\n")
        } else {
            t.render()
        };
        if folded > 0 {
            text.push_str(&format!(
                "\n({folded} folded: changes that only record a replica's address; --all shows them)"
            ));
        }
        text
    })
}

/// `site BL-LAB-2  retention.days  14 → 30` (`unset` / `set` for a key
/// not there before or after).
fn edit_line(e: &LayerEdit) -> String {
    let v = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    match (v(&e.before), v(&e.after)) {
        (Some(b), Some(a)) => format!("{}  {}  {b} → {a}", e.layer, e.key),
        (None, Some(a)) => format!("{}  {}  set {a}", e.layer, e.key),
        (Some(b), None) => format!("{}  {}  unset (was {b})", e.layer, e.key),
        (None, None) => format!("{}  {}", e.layer, e.key),
    }
}

/// The newest `limit` changes with what each did, without those that only
/// record a replica's address unless `all`; and how many were left out.
fn history_entries(
    r: &mut Replica,
    limit: usize,
    all: bool,
) -> (Vec<HistoryEntry>, Vec<&'static str>, usize) {
    use fleetdeck_store::events::{ChangeKind, change_infos};
    let history = r.history();
    // Most changes are not addresses: look at a few times the limit first,
    // at everything only when that is not enough.
    let mut looked = history
        .len()
        .min(limit.saturating_mul(4).saturating_add(50));
    loop {
        let hashes: Vec<ChangeHash> = history[..looked]
            .iter()
            .filter_map(|e| e.id.parse().ok())
            .collect();
        let infos = change_infos(r.doc_mut().automerge_mut(), &hashes);
        let mut kept = Vec::new();
        let mut kinds = Vec::new();
        let mut folded = 0;
        for (e, info) in history[..looked].iter().zip(&infos) {
            let kind = info.kind.unwrap_or(ChangeKind::Other);
            if kind == ChangeKind::Address && !all {
                folded += 1;
                continue;
            }
            if kept.len() < limit {
                kept.push(e.clone());
                kinds.push(kind.as_str());
            }
        }
        if kept.len() >= limit || looked == history.len() {
            return (kept, kinds, folded);
        }
        looked = history.len();
    }
}

/// `receipts CHANGE`: where one change stands on every node.
pub(super) fn receipts(cli: &Cli, out: &Out, change: &str) -> Result<()> {
    let mut r = open(cli)?;
    if change.ends_with('^') {
        anyhow::bail!("receipts take one change id, not '{change}' (a state before a change)");
    }
    let hash = r
        .resolve(change)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no change '{change}' (see `fleetdeck history`)"))?;
    let now = now_ms();
    let mut nodes = receipts::receipts(&mut r, &[hash], now)?
        .pop()
        .unwrap_or_default();
    nodes.sort_by(|a, b| {
        a.state
            .rank()
            .cmp(&b.state.rank())
            .then_with(|| natural_cmp(&a.node, &b.node))
    });
    let summary = Summary::of(&nodes);
    let id = hash.to_string();
    out.emit(
        &json!({"change": id, "summary": summary, "line": summary.line(), "nodes": nodes}),
        || {
            let mut t = Table::new(&["NODE", "SITE", "STATE", "LAST HEARD", "DETAIL"]);
            for n in &nodes {
                let heard = n
                    .last_heard_ms
                    .map(|h| output::ago(now, h))
                    .unwrap_or_else(|| "never".into());
                let detail = match (n.state, &n.error) {
                    (Delivery::Failed, Some(e)) => e.clone(),
                    (Delivery::Unknown, _) => "reports changes this replica has not got yet".into(),
                    (Delivery::NotYet, _) if n.last_heard_ms.is_none() => "never reported".into(),
                    (Delivery::NotYet, _) if n.offline => "offline: gets it when it is back".into(),
                    (Delivery::Delivered, _) => {
                        "holds it; its release does not include it yet".into()
                    }
                    _ => String::new(),
                };
                t.row(vec![
                    n.node.clone(),
                    n.site.clone(),
                    n.state.as_str().to_string(),
                    heard,
                    detail,
                ]);
            }
            format!("change {}  {}\n{}", short(&id), summary.line(), t.render())
        },
    )
}

pub(super) fn diff(cli: &Cli, out: &Out, from: &str, to: Option<&str>) -> Result<()> {
    let mut r = open(cli)?;
    let before_heads = r.resolve(from)?;
    let before = r.state_at(&before_heads)?;
    let after = match to {
        Some(t) => {
            let heads = r.resolve(t)?;
            r.state_at(&heads)?
        }
        None => (**r.state()).clone(),
    };
    let d = diff_states(&before, &after);
    out.emit(&d, || output::render_diff(&d))
}

pub(super) fn revert(cli: &Cli, out: &Out, change_id: &str, message: Option<&str>) -> Result<()> {
    let mut r = open(cli)?;
    let op = Op::Revert {
        change_id: change_id.to_string(),
        message: message.map(str::to_string),
    };
    let done = ops::apply(&mut r, op, now_ms())?;
    let id = done.change.map(|h| h.to_string());
    let mut doc = json!({"ok": true, "message": done.summary, "change": id});
    if let (Some(m), Value::Object(d)) = (doc.as_object_mut(), &done.details) {
        m.extend(d.clone());
    }
    out.emit(&doc, || done.line())
}

pub(super) fn conflicts(cli: &Cli, out: &Out) -> Result<()> {
    let r = open(cli)?;
    let c = r.conflicts()?;
    out.emit(&c, || {
        if c.is_empty() {
            return "no conflicts".to_string();
        }
        let mut t = Table::new(&["SCOPE", "KEY", "VALUE", "AUTHOR", ""]);
        for conflict in &c {
            for v in &conflict.values {
                let who = fleetdeck_store::MemberKey::parse(&v.author)
                    .ok()
                    .and_then(|k| r.state().member_name(&k).map(str::to_string))
                    .unwrap_or_else(|| short(&v.author).to_string());
                t.row(vec![
                    conflict.scope.clone(),
                    conflict.key.clone(),
                    v.value.to_string(),
                    who,
                    if v.winner {
                        "winner".into()
                    } else {
                        String::new()
                    },
                ]);
            }
        }
        format!("{}\nset a key again to resolve its conflict", t.render())
    })
}

//! `node`: add, list, show, rm, run (the device's daemon), resume, unbind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use fleetdeck_store::document::NodeRecord;
use fleetdeck_store::health::{ApplyReport, ApplyResult, HealthRegister};
use fleetdeck_store::ids::natural_cmp;
use fleetdeck_store::moment::Moment;
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::{NodeId, Replica, SiteId, now_ms};
use serde_json::{Value, json};

use super::args::{Cli, NodeCmd};
use super::config::layer_json;
use super::fleet::ids_given;
use super::{act, data_dir, open};
use crate::output::{self, Out, Table};
use crate::{daemon, net};

const DAY_MS: i64 = 86_400_000;

pub(super) fn node(cli: &Cli, out: &Out, cmd: &NodeCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        NodeCmd::Add {
            node_ids,
            from,
            site,
            role,
        } => add(
            &mut r,
            out,
            node_ids,
            from.as_deref(),
            site,
            role.as_deref(),
        ),
        NodeCmd::List { site, at } => {
            let m = super::at::moment(&mut r, out, at.at.as_deref())?;
            list(&m, out, site.as_deref())
        }
        NodeCmd::Show {
            node_id,
            timeline: true,
            since,
            ..
        } => show_timeline(&mut r, out, node_id, *since),
        NodeCmd::Show { node_id, at, .. } => {
            let m = super::at::moment(&mut r, out, at.at.as_deref())?;
            show(&m, out, node_id)
        }
        NodeCmd::Rm { node_id, revoke } => rm(&mut r, out, node_id, *revoke),
        NodeCmd::Resume { node_id } => resume(&mut r, out, node_id),
        NodeCmd::Unbind { node_id } => unbind(&mut r, out, node_id),
        NodeCmd::Run {
            node,
            root,
            listen,
            metrics,
            no_mdns,
        } => run(
            cli,
            r,
            out,
            node.as_deref(),
            root.clone(),
            *listen,
            *metrics,
            *no_mdns,
        ),
    }
}

fn add(
    r: &mut Replica,
    out: &Out,
    node_ids: &[String],
    from: Option<&Path>,
    site: &str,
    role: Option<&str>,
) -> Result<()> {
    let site = SiteId::parse(site)?;
    let nodes = ids_given(node_ids, from)?
        .iter()
        .map(|id| {
            let rec = NodeRecord {
                site: site.to_string(),
                role: role.map(str::to_string),
            };
            Ok((NodeId::parse(id)?, rec))
        })
        .collect::<Result<Vec<_>>>()?;
    act(r, out, Op::NodeAdd { nodes })
}

fn list(m: &Moment, out: &Out, site: Option<&str>) -> Result<()> {
    let filter = site.map(SiteId::parse).transpose()?;
    let st = &m.state;
    if let Some(s) = &filter {
        st.site(s)?;
    }
    let now = m.at_ms;
    let mut nodes: Vec<_> = st
        .nodes
        .values()
        .filter(|n| filter.as_ref().is_none_or(|s| &n.site == s))
        .collect();
    nodes.sort_by(|a, b| natural_cmp(a.id.as_str(), b.id.as_str()));
    let rows: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let h = m.health.get(n.id.as_str());
            json!({"id": n.id, "site": n.site, "role": n.record.role, "overrides": n.overrides.len(), "last_heard_ms": h.map(|h| h.received_ms)})
        })
        .collect();
    out.emit(&rows, || {
        let mut t = Table::new(&["NODE", "SITE", "ROLE", "OVERRIDES", "LAST HEARD"]);
        for n in &nodes {
            let heard = m
                .health
                .get(n.id.as_str())
                .map(|h| output::ago(now, h.received_ms))
                .unwrap_or_else(|| "never".into());
            t.row(vec![
                n.id.to_string(),
                n.site.to_string(),
                n.record.role.clone().unwrap_or_else(|| "-".into()),
                n.overrides.len().to_string(),
                heard,
            ]);
        }
        t.render()
    })
}

fn show(m: &Moment, out: &Out, node_id: &str) -> Result<()> {
    let id = NodeId::parse(node_id)?;
    let st = &m.state;
    let n = st.node(&id)?;
    let h = m.health.get(id.as_str());
    let desired = st
        .effective_node(&id)
        .map(|e| fleetdeck_node::render::revision(&e.to_tree()))
        .ok();
    // Where its services are inside tunnels (a device's wg-config routes it).
    let overlay = n
        .key
        .as_ref()
        .and_then(|k| fleetdeck_store::overlay::address_of(st, k));
    let mut doc = json!({"id": n.id, "site": n.site, "role": n.record.role, "overrides": layer_json(&n.overrides), "desired_revision": desired, "bound_to": n.key, "overlay": overlay.map(|ip| ip.to_string()), "health": h.map(|h| &h.reg), "received_ms": h.map(|h| h.received_ms)});
    if m.past {
        doc["at"] = json!(output::fmt_time(m.at_ms));
    }
    out.emit(&doc, || {
        let now = m.at_ms;
        let mut text = format!(
            "node {}  site {}  role {}\n",
            n.id,
            n.site,
            n.record.role.as_deref().unwrap_or("-")
        );
        if let Some(key) = &n.key {
            let name = st.member_name(key).unwrap_or("not a member");
            text.push_str(&format!("bound to  {name} ({})\n", key.short()));
        }
        if let Some(ip) = overlay {
            text.push_str(&format!("overlay   {ip} (its services inside tunnels)\n"));
        }
        match h {
            Some(h) => text.push_str(&health_text(&h.reg, h.received_ms, now, m.past)),
            None => text.push_str("health    never reported\n"),
        }
        if let Some(desired) = &desired {
            text.push_str(&format!("desired   {desired}\n"));
            let applied = h.and_then(|h| h.reg.applied.as_ref());
            text.push_str(&applied_text(applied, desired, now));
        }
        if let Some(h) = h {
            if let Some(why) = &h.reg.safe_mode {
                text.push_str(&format!("SAFE MODE {why} (`fleetdeck node resume {id}`)\n"));
            }
            if !h.reg.drift.is_empty() {
                text.push_str(&format!(
                    "drift     edited by hand: {}\n",
                    h.reg.drift.join(", ")
                ));
            }
        }
        text.push_str("overrides");
        if n.overrides.is_empty() {
            text.push_str("  -");
        }
        for (k, v) in &n.overrides {
            text.push_str(&format!("\n  {k} = {v}"));
        }
        text
    })
}

/// What a node's register says about the host, a line per part: the same
/// facts `node show --json` holds under `health`.
///
/// A past register (`past`: from the record, `--at`) has no load, uptime or
/// temperature (the record does not keep them), and its disks are to the
/// whole percent.
fn health_text(reg: &HealthRegister, received_ms: i64, now: i64, past: bool) -> String {
    let m = &reg.metrics;
    let heard = if past {
        format!(
            "{} before",
            output::ago(now, received_ms).trim_end_matches(" ago")
        )
    } else {
        output::ago(now, received_ms)
    };
    let mut text = format!(
        "health    seq {}  heard {heard}  cpu {:.0}%  mem {:.0}%",
        reg.seq, m.cpu_pct, m.mem_pct,
    );
    if past {
        text.push_str("  (load, uptime, temperature: not kept)");
    } else {
        text.push_str(&format!("  load {:.2}  up {}", m.load1, span(m.uptime_s)));
        if let Some(t) = m.temp_c {
            text.push_str(&format!("  temp {t:.0}°C"));
        }
    }
    text.push('\n');
    if !m.disks.is_empty() {
        let disks: Vec<String> = m
            .disks
            .iter()
            .map(|d| format!("{} {:.0}%", d.mount, d.used_pct))
            .collect();
        text.push_str(&format!("disk      {}\n", disks.join("  ")));
    }
    if !reg.tls.is_empty() {
        let certs: Vec<String> = reg
            .tls
            .iter()
            .map(|c| {
                let days = (c.not_after_ms - now).div_euclid(DAY_MS);
                if c.not_after_ms > now {
                    format!("{} {days} days left", c.name)
                } else {
                    format!("{} EXPIRED {} days ago", c.name, -days - 1)
                }
            })
            .collect();
        text.push_str(&format!("tls       {}\n", certs.join(", ")));
    }
    match &reg.backup {
        Some(b) => {
            let dbs: Vec<String> = b
                .databases
                .iter()
                .map(|d| match (d.ok, &d.error) {
                    (true, _) => format!("{} ok", d.name),
                    (false, Some(e)) => format!("{} FAILED: {e}", d.name),
                    (false, None) => format!("{} FAILED", d.name),
                })
                .collect();
            text.push_str(&format!(
                "backup    ran {}{}{}\n",
                output::ago(now, b.last_run_ms),
                if dbs.is_empty() { "" } else { ": " },
                dbs.join(", ")
            ));
        }
        None => text.push_str("backup    none reported\n"),
    }
    if !reg.checks.is_empty() {
        let checks: Vec<String> = reg
            .checks
            .iter()
            .map(|c| match (c.ok, c.output.lines().last()) {
                (true, _) => format!("{} ok", c.name),
                (false, Some(line)) if !line.is_empty() => {
                    format!("{} FAILED: {line}", c.name)
                }
                (false, _) => format!("{} FAILED", c.name),
            })
            .collect();
        text.push_str(&format!("checks    {}\n", checks.join(", ")));
    }
    text
}

/// The node's last apply as the register says it, and which revision is
/// live. After a rollback or a failed apply the register names the
/// revision that was tried (node/src/apply.rs: the release that was live
/// before it is live again), not the live one.
fn applied_text(applied: Option<&ApplyReport>, desired: &str, now: i64) -> String {
    let Some(a) = applied else {
        return "applied   nothing reported yet\n".into();
    };
    let when = output::ago(now, a.at_ms);
    let behind = if a.revision == desired && a.result == ApplyResult::Ok {
        ""
    } else {
        "  [behind]"
    };
    let error = a.error.as_deref().unwrap_or("no reason given");
    match a.result {
        ApplyResult::Ok => format!("applied   {} ({when}){behind}\n", a.revision),
        ApplyResult::RolledBack => format!(
            "applied   {} rolled back ({when}): {error}\nlive      the release before {}{behind}\n",
            a.revision, a.revision
        ),
        ApplyResult::Failed => format!(
            "applied   {} failed, not put live ({when}): {error}\nlive      the release before {}{behind}\n",
            a.revision, a.revision
        ),
    }
}

/// "45s", "16m", "5h 12m", "3d 4h".
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// `node show ID --timeline`: what happened to the node over `since`.
fn show_timeline(
    r: &mut Replica,
    out: &Out,
    node_id: &str,
    since: std::time::Duration,
) -> Result<()> {
    let id = NodeId::parse(node_id)?;
    let now = now_ms();
    let from = now.saturating_sub(i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
    let events = r.timeline(&id, from, now)?;
    for w in r.warnings() {
        out.note(&format!("warning: {w}"));
    }
    out.emit(&events, || {
        if events.is_empty() {
            return format!(
                "nothing recorded for {id} since {} (this replica records what it hears while it runs)",
                output::fmt_time(from)
            );
        }
        let mut t = Table::new(&["WHEN", "AGO", "EVENT", "WHAT"]);
        for e in &events {
            t.row(vec![
                output::fmt_time(e.at_ms),
                output::ago(now, e.at_ms),
                e.kind.replace('_', " "),
                e.text.clone(),
            ]);
        }
        t.render()
    })
}

/// Removes a node; with `revoke`, then revokes the key bound to it (a
/// second change), else names the command that would.
fn rm(r: &mut Replica, out: &Out, node_id: &str, revoke: bool) -> Result<()> {
    let node = NodeId::parse(node_id)?;
    let bound = r.state().node(&node)?.key.clone();
    act(r, out, Op::NodeRm { node })?;
    let Some(key) = bound.filter(|k| r.state().members.contains_key(k)) else {
        return Ok(());
    };
    if revoke {
        super::member::revoke(r, out, key.as_str())
    } else {
        out.note(&format!(
            "hint: node {node_id} was bound to member {} ({}); it may still connect and write: `fleetdeck member revoke {}`",
            ops::member_label(r.state(), &key),
            key.short(),
            key
        ));
        Ok(())
    }
}

fn resume(r: &mut Replica, out: &Out, node_id: &str) -> Result<()> {
    let node = NodeId::parse(node_id)?;
    act(r, out, Op::NodeResume { node })
}

fn unbind(r: &mut Replica, out: &Out, node_id: &str) -> Result<()> {
    let node = NodeId::parse(node_id)?;
    act(r, out, Op::NodeUnbind { node })
}

#[allow(clippy::too_many_arguments)]
fn run(
    cli: &Cli,
    r: Replica,
    out: &Out,
    node: Option<&str>,
    root: Option<PathBuf>,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
    no_mdns: bool,
) -> Result<()> {
    let dir = data_dir(cli)?;
    let opts = daemon::RunOpts {
        node,
        root: root.unwrap_or_else(|| dir.join("root")),
        listen,
        metrics,
        mdns: !no_mdns,
        status_file: dir.join(net::STATUS_FILE),
    };
    daemon::run(r, out, opts)
}

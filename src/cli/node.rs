//! `node`: add, list, show, rm, run (the device's daemon), resume, unbind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use fleetdeck_store::document::NodeRecord;
use fleetdeck_store::ops::Op;
use fleetdeck_store::{NodeId, Replica, SiteId, now_ms};
use serde_json::{Value, json};

use super::args::{Cli, NodeCmd};
use super::config::layer_json;
use super::fleet::ids_given;
use super::{act, data_dir, open};
use crate::output::{self, Out, Table};
use crate::{daemon, net};

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
        NodeCmd::List { site } => list(&r, out, site.as_deref()),
        NodeCmd::Show { node_id } => show(&r, out, node_id),
        NodeCmd::Rm { node_id } => rm(&mut r, out, node_id),
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

fn list(r: &Replica, out: &Out, site: Option<&str>) -> Result<()> {
    let filter = site.map(SiteId::parse).transpose()?;
    let st = r.state();
    if let Some(s) = &filter {
        st.site(s)?;
    }
    let now = now_ms();
    let nodes: Vec<_> = st
        .nodes
        .values()
        .filter(|n| filter.as_ref().is_none_or(|s| &n.site == s))
        .collect();
    let rows: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let h = r.health().get(n.id.as_str());
            json!({"id": n.id, "site": n.site, "role": n.record.role, "overrides": n.overrides.len(), "last_heard_ms": h.map(|h| h.received_ms)})
        })
        .collect();
    out.emit(&rows, || {
        let mut t = Table::new(&["NODE", "SITE", "ROLE", "OVERRIDES", "LAST HEARD"]);
        for n in &nodes {
            let heard = r
                .health()
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

fn show(r: &Replica, out: &Out, node_id: &str) -> Result<()> {
    let id = NodeId::parse(node_id)?;
    let st = r.state();
    let n = st.node(&id)?;
    let h = r.health().get(id.as_str());
    let desired = st
        .effective_node(&id)
        .map(|e| fleetdeck_node::render::revision(&e.to_tree()))
        .ok();
    let doc = json!({"id": n.id, "site": n.site, "role": n.record.role, "overrides": layer_json(&n.overrides), "desired_revision": desired, "bound_to": n.key, "health": h.map(|h| &h.reg), "received_ms": h.map(|h| h.received_ms)});
    out.emit(&doc, || {
        let mut text = format!(
            "node {}  site {}  role {}\n",
            n.id,
            n.site,
            n.record.role.as_deref().unwrap_or("-")
        );
        match h {
            Some(h) => {
                let m = &h.reg.metrics;
                text.push_str(&format!(
                    "health    seq {}  heard {}  cpu {:.0}%  mem {:.0}%\n",
                    h.reg.seq,
                    output::ago(now_ms(), h.received_ms),
                    m.cpu_pct,
                    m.mem_pct
                ));
            }
            None => text.push_str("health    never reported\n"),
        }
        if let Ok(eff) = st.effective_node(&id) {
            let desired = fleetdeck_node::render::revision(&eff.to_tree());
            let applied = h.and_then(|h| h.reg.applied.as_ref());
            text.push_str(&format!("desired   {desired}\n"));
            match applied {
                Some(a) => text.push_str(&format!(
                    "applied   {} ({:?}{}){}\n",
                    a.revision,
                    a.result,
                    a.error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default(),
                    if a.revision == desired {
                        ""
                    } else {
                        "  [behind]"
                    }
                )),
                None => text.push_str("applied   nothing reported yet\n"),
            }
        }
        if let Some(h) = h {
            if let Some(why) = &h.reg.safe_mode {
                text.push_str(&format!("SAFE MODE {why} (`fleetdeck node resume {id}`)\n"));
            }
            if !h.reg.drift.is_empty() {
                text.push_str(&format!("drift     {}\n", h.reg.drift.join(", ")));
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

fn rm(r: &mut Replica, out: &Out, node_id: &str) -> Result<()> {
    let node = NodeId::parse(node_id)?;
    act(r, out, Op::NodeRm { node })
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

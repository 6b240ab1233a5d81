//! `command`: run an allowlisted action on nodes, list commands, a
//! command's results. Results come from the nodes' command results
//! registers this replica holds (and, for nodes from before them, from the
//! document): `Replica::command_results`.

use anyhow::{Result, anyhow};
use fleetdeck_store::document::CommandRecord;
use fleetdeck_store::ops::{CommandTarget, Op, command_targets};
use fleetdeck_store::{NodeId, Replica, SiteId};
use serde_json::{Value, json};

use super::args::{Cli, CommandCmd, TargetArgs};
use super::{act, open};
use crate::output::{Out, Table, fmt_time};

pub(super) fn command(cli: &Cli, out: &Out, cmd: &CommandCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        CommandCmd::Run { action, target } => run(&mut r, out, action, target),
        CommandCmd::List => list(&r, out),
        CommandCmd::Status { command_id } => status(&r, out, command_id),
    }
}

fn run(r: &mut Replica, out: &Out, action: &str, target: &TargetArgs) -> Result<()> {
    let target = match (&target.site, &target.node) {
        (Some(s), _) => CommandTarget::Site(SiteId::parse(s)?),
        (_, Some(n)) => CommandTarget::Node(NodeId::parse(n)?),
        _ => CommandTarget::All,
    };
    let op = Op::CommandRun {
        id: None,
        action: action.to_string(),
        target,
    };
    act(r, out, op)
}

fn list(r: &Replica, out: &Out) -> Result<()> {
    let st = r.state();
    let mut cmds: Vec<(&String, &CommandRecord)> = st.commands.iter().collect();
    cmds.sort_by_key(|(_, c)| std::cmp::Reverse(c.at_ms));
    let rows: Vec<Value> = cmds
        .iter()
        .map(|(id, c)| {
            let res = r.command_results(id);
            let done = res.len();
            let failed = res.values().filter(|x| !x.ok).count();
            json!({"id": id, "action": c.action, "target": c.target, "by": c.by, "at_ms": c.at_ms,
                   "targets": command_targets(st, c).len(), "reported": done, "failed": failed})
        })
        .collect();
    out.emit(&rows, || {
        let mut t = Table::new(&[
            "COMMAND", "ACTION", "TARGET", "BY", "WHEN", "REPORTED", "FAILED",
        ]);
        for r in &rows {
            let txt = |k: &str| r[k].as_str().unwrap_or("").to_string();
            t.row(vec![
                txt("id"),
                txt("action"),
                txt("target"),
                txt("by"),
                fmt_time(r["at_ms"].as_i64().unwrap_or(0)),
                format!("{}/{}", r["reported"], r["targets"]),
                r["failed"].to_string(),
            ]);
        }
        t.render()
    })
}

fn status(r: &Replica, out: &Out, command_id: &str) -> Result<()> {
    let st = r.state();
    let c = st
        .commands
        .get(command_id)
        .ok_or_else(|| anyhow!("no command '{command_id}' (see `fleetdeck command list`)"))?;
    let results = r.command_results(command_id);
    // Nodes keep results for `results::KEEP_MS`: past that, no result
    // says nothing about the node.
    let none = if fleetdeck_store::now_ms() - c.at_ms > fleetdeck_store::results::KEEP_MS {
        "unknown"
    } else {
        "pending"
    };
    let rows: Vec<Value> = command_targets(st, c)
        .iter()
        .map(|n| match results.get(n.as_str()) {
            Some(x) => json!({"node": n, "state": if x.ok { "ok" } else { "failed" }, "exit_code": x.exit_code, "output": x.output, "at_ms": x.at_ms}),
            None => json!({"node": n, "state": none, "exit_code": null, "output": null, "at_ms": null}),
        })
        .collect();
    let doc = json!({"id": command_id, "action": c.action, "target": c.target, "by": c.by, "at_ms": c.at_ms, "nodes": rows});
    out.emit(&doc, || {
        let mut t = Table::new(&["NODE", "STATE", "EXIT", "OUTPUT"]);
        for r in &rows {
            t.row(vec![
                r["node"].as_str().unwrap_or("").to_string(),
                r["state"].as_str().unwrap_or("").to_string(),
                r["exit_code"]
                    .as_i64()
                    .map_or("-".into(), |c| c.to_string()),
                r["output"]
                    .as_str()
                    .map(|o| o.lines().last().unwrap_or("").to_string())
                    .unwrap_or_default(),
            ]);
        }
        format!(
            "command {command_id}: {} on {} by {}\n{}",
            c.action,
            c.target,
            c.by,
            t.render()
        )
    })
}

//! `rollout`: start, list, status, pause, resume, abort.

use anyhow::{Result, anyhow};
use fleetdeck_store::config::{self, ConfigPath};
use fleetdeck_store::ops::{Op, RolloutAction, RolloutPlan};
use fleetdeck_store::receipts;
use fleetdeck_store::rollout::{Rollout, parse_waves};
use fleetdeck_store::{Replica, SiteId, now_ms};
use serde_json::{Value, json};

use super::args::{Cli, RolloutCmd};
use super::{act, open};
use crate::output::{Out, Table, fmt_time};

pub(super) fn rollout(cli: &Cli, out: &Out, cmd: &RolloutCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        RolloutCmd::Start {
            set,
            sites,
            waves,
            soak,
            max_fail,
        } => start(&mut r, out, set, sites, waves, *soak, *max_fail),
        RolloutCmd::List => list(&r, out),
        RolloutCmd::Status { id } => status(&mut r, out, id),
        RolloutCmd::Pause { id } => event(&mut r, out, id, RolloutAction::Pause),
        RolloutCmd::Resume { id } => event(&mut r, out, id, RolloutAction::Resume),
        RolloutCmd::Abort { id } => event(&mut r, out, id, RolloutAction::Abort),
    }
}

fn find(r: &Replica, id: &str) -> Result<Rollout> {
    r.state()
        .rollouts
        .iter()
        .find(|x| x.id == id)
        .cloned()
        .ok_or_else(|| anyhow!("no rollout '{id}' (see `fleetdeck rollout list`)"))
}

fn start(
    r: &mut Replica,
    out: &Out,
    set: &[String],
    sites: &[String],
    waves: &str,
    soak: std::time::Duration,
    max_fail: u64,
) -> Result<()> {
    let mut kv = std::collections::BTreeMap::new();
    for s in set {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set '{s}' is not KEY=VALUE"))?;
        ConfigPath::parse(k)?;
        kv.insert(k.to_string(), config::parse_cli_value(v));
    }
    let plan = RolloutPlan {
        set: kv,
        sites: sites
            .iter()
            .map(|s| SiteId::parse(s))
            .collect::<Result<_, _>>()?,
        waves: parse_waves(waves).map_err(|e| anyhow!(e))?,
        soak_ms: i64::try_from(soak.as_millis()).unwrap_or(i64::MAX),
        max_fail,
    };
    act(r, out, Op::RolloutStart { id: None, plan })
}

fn list(r: &Replica, out: &Out) -> Result<()> {
    let st = r.state().clone();
    let rows: Vec<Value> = st
        .rollouts
        .iter()
        .rev()
        .map(|x| {
            json!({"id": x.id, "phase": x.phase(&st, r.health()), "set": x.spec.set, "sites": x.spec.sites,
                   "waves": x.spec.waves, "waves_open": x.spec.waves.iter().enumerate().filter(|(i, _)| x.wave_open(*i)).count(),
                   "by": x.spec.by, "at_ms": x.spec.at_ms, "halted": x.events.halted.as_ref().map(|h| &h.1)})
        })
        .collect();
    out.emit(&rows, || {
        let mut t = Table::new(&["ROLLOUT", "PHASE", "WAVES OPEN", "SETS", "STARTED"]);
        for x in &rows {
            t.row(vec![
                x["id"].as_str().unwrap_or("").to_string(),
                x["phase"].as_str().unwrap_or("").to_string(),
                format!(
                    "{}/{}",
                    x["waves_open"],
                    x["waves"].as_array().map_or(0, |w| w.len())
                ),
                x["set"].to_string(),
                fmt_time(x["at_ms"].as_i64().unwrap_or(0)),
            ]);
        }
        t.render()
    })
}

fn status(r: &mut Replica, out: &Out, id: &str) -> Result<()> {
    let x = find(r, id)?;
    let st = r.state().clone();
    let receipts = receipts::rollout_waves(r, &x, now_ms());
    let landed = receipts::landed(&receipts, r.health());
    let waves = x.wave_status_with(&st, r.health(), Some(&landed));
    let phase = x.phase_with(&st, r.health(), Some(&landed));
    let wave_rows: Vec<Value> = waves
        .iter()
        .zip(&receipts)
        .map(|(w, rc)| {
            let mut v = json!(w);
            v["change"] = json!(rc.change);
            v["receipts"] = json!(rc.summary);
            v
        })
        .collect();
    let doc =
        json!({"id": x.id, "phase": phase, "spec": x.spec, "events": x.events, "waves": wave_rows});
    out.emit(&doc, || {
        let mut s = format!(
            "rollout {} ({:?}): sets {}\n",
            x.id,
            phase,
            json!(x.spec.set)
        );
        if let Some((_, why)) = &x.events.halted {
            s.push_str(&format!("halted: {why}\n"));
        }
        let mut t = Table::new(&[
            "WAVE", "UP TO", "OPEN", "NODES", "APPLIED", "HEALTHY", "FAILED", "CHANGE", "RECEIPTS",
        ]);
        for (i, (w, rc)) in waves.iter().zip(&receipts).enumerate() {
            t.row(vec![
                (i + 1).to_string(),
                format!("{}%", w.percent),
                if w.open { "yes".into() } else { "no".into() },
                w.nodes.len().to_string(),
                w.applied.to_string(),
                w.healthy.to_string(),
                w.failed.to_string(),
                rc.change
                    .as_deref()
                    .map_or_else(|| "-".into(), |c| c.chars().take(12).collect()),
                if rc.change.is_some() {
                    rc.summary.line()
                } else {
                    "-".into()
                },
            ]);
        }
        s.push_str(&t.render());
        s
    })
}

/// `pause`, `resume` or `abort` of rollout `id`.
fn event(r: &mut Replica, out: &Out, id: &str, action: RolloutAction) -> Result<()> {
    let id = id.to_string();
    act(r, out, Op::Rollout { id, action })
}

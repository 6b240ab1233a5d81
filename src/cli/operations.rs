//! Operating the fleet: `status`, `alerts` (list, ack, silence), `events`,
//! `freeze` and `unfreeze`.

use anyhow::{Context, Result};
use std::time::Duration;

use fleetdeck_store::moment::Moment;
use fleetdeck_store::ops::Op;
use fleetdeck_store::{Replica, SiteId};
use serde_json::{Value, json};

use super::args::{AlertsArgs, AlertsCmd, Cli};
use super::{act, open};
use crate::output::{self, Out, Table, fmt_time};

pub(super) fn status(cli: &Cli, out: &Out, at: Option<&str>) -> Result<()> {
    let mut r = open(cli)?;
    let m = super::at::moment(&mut r, out, at)?;
    let now = m.at_ms;
    let (states, summary, alerts) = m.status();
    let st = &m.state;
    let rows: Vec<Value> = states
        .iter()
        .map(|(site, state)| {
            let sid = SiteId::parse(site).ok();
            let nodes = sid.as_ref().map_or(0, |s| st.nodes_of(s).count());
            let open_alerts = alerts
                .iter()
                .filter(|a| &a.site == site && !a.is_hidden(now))
                .count();
            json!({"site": site, "state": state, "nodes": nodes, "alerts": open_alerts})
        })
        .collect();
    let mut doc = json!({"fleet": st.name, "fleet_id": st.fleet_id, "frozen": st.is_frozen(), "nodes": st.nodes.len(), "summary": summary, "sites": rows});
    if m.past {
        doc["at"] = json!(fmt_time(m.at_ms));
    }
    out.emit(&doc, || {
        output::render_status(&st.name, st.nodes.len(), &summary, &rows, st.is_frozen())
    })
}

pub(super) fn alerts(cli: &Cli, out: &Out, args: &AlertsArgs) -> Result<()> {
    let mut r = open(cli)?;
    match &args.cmd {
        None => {
            let m = super::at::moment(&mut r, out, args.at.at.as_deref())?;
            alerts_list(&m, out, args.all)
        }
        Some(_) if args.at.at.is_some() => {
            anyhow::bail!("--at reads the past; ack and silence act now (drop --at)")
        }
        Some(AlertsCmd::Ack { alert_id }) => ack(&mut r, out, alert_id),
        Some(AlertsCmd::Silence { alert_id, duration }) => {
            silence(&mut r, out, alert_id, *duration)
        }
    }
}

fn alerts_list(m: &Moment, out: &Out, all: bool) -> Result<()> {
    let now = m.at_ms;
    let open_alerts = m.alerts();
    let shown: Vec<_> = open_alerts
        .iter()
        .filter(|a| all || !a.is_hidden(now))
        .collect();
    let hidden = open_alerts.len() - shown.len();
    out.emit(&shown, || {
        if shown.is_empty() {
            return if hidden > 0 {
                format!("no open alerts ({hidden} silenced: --all shows them)")
            } else {
                "no open alerts".to_string()
            };
        }
        let mut t = Table::new(&["SEVERITY", "ALERT", "SITE", "SINCE", "MESSAGE", "STATE"]);
        for a in &shown {
            let state = match (&a.acked_by, a.silenced_until_ms) {
                (_, Some(u)) if u > now => format!("silenced until {}", fmt_time(u)),
                (Some(by), _) => format!("acked by {by}"),
                _ => String::new(),
            };
            t.row(vec![
                a.severity.to_string(),
                a.id.clone(),
                a.site.clone(),
                a.since_ms.map_or("-".into(), |s| output::ago(now, s)),
                a.message.clone(),
                state,
            ]);
        }
        let mut s = t.render();
        // The store leaves SINCE unknown only where the node's signed
        // register does not date the condition (levels, checks, drift):
        // every replica must agree on it, so none guesses.
        if shown.iter().any(|a| a.since_ms.is_none()) {
            s.push_str("\n(SINCE -: the node's report does not say when it began)");
        }
        if hidden > 0 && !all {
            s.push_str(&format!("\n({hidden} silenced: --all shows them)"));
        }
        s
    })
}

fn ack(r: &mut Replica, out: &Out, alert_id: &str) -> Result<()> {
    let alert_id = alert_id.to_string();
    act(r, out, Op::Ack { alert_id })
}

fn silence(r: &mut Replica, out: &Out, alert_id: &str, duration: Duration) -> Result<()> {
    let for_ms = i64::try_from(duration.as_millis()).context("duration too long")?;
    let alert_id = alert_id.to_string();
    act(r, out, Op::Silence { alert_id, for_ms })
}

/// `freeze` (`frozen`) and `unfreeze`.
pub(super) fn set_freeze(cli: &Cli, out: &Out, frozen: bool, message: &str) -> Result<()> {
    let mut r = open(cli)?;
    let message = message.to_string();
    let op = if frozen {
        Op::Freeze { message }
    } else {
        Op::Unfreeze { message }
    };
    act(&mut r, out, op)
}

/// `events`: the fleet's timeline over `since`, filtered.
pub(super) fn events(
    cli: &Cli,
    out: &Out,
    since: Duration,
    filter: fleetdeck_store::events::Filter,
    limit: usize,
) -> Result<()> {
    use fleetdeck_store::events::KINDS;
    if let Some(k) = filter.kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
        anyhow::bail!(
            "--kind {k}: not a kind of event; one of {}",
            KINDS.join(", ")
        );
    }
    let mut r = open(cli)?;
    if let Some(site) = &filter.site {
        r.state().site(&SiteId::parse(site)?)?;
    }
    if let Some(node) = &filter.node {
        r.state().node(&fleetdeck_store::NodeId::parse(node)?)?;
    }
    let now = fleetdeck_store::now_ms();
    let from = now.saturating_sub(i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
    let mut events = r.events(from, now, &filter)?;
    let more = events.len().saturating_sub(limit);
    events.truncate(limit);
    out.emit(&events, || {
        if events.is_empty() {
            return format!(
                "no events since {} (this replica records what it hears while it runs)",
                fmt_time(from)
            );
        }
        let mut t = Table::new(&["WHEN", "AGO", "EVENT", "WHERE", "BY", "WHAT"]);
        for e in &events {
            let place = match (&e.node, &e.site) {
                (Some(n), _) => n.clone(),
                (None, Some(s)) => s.clone(),
                (None, None) => "-".into(),
            };
            let what = match &e.change {
                Some(c) => format!("{} ({})", e.text, &c[..c.len().min(12)]),
                None => e.text.clone(),
            };
            t.row(vec![
                fmt_time(e.at_ms),
                output::ago(now, e.at_ms),
                e.kind.replace('_', " "),
                place,
                e.by.clone(),
                what,
            ]);
        }
        let mut s = t.render();
        if more > 0 {
            s.push_str(&format!("\n({more} older: --limit or --since shows them)"));
        }
        s
    })
}

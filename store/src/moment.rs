//! The fleet at one moment, config and health together: now, or as this
//! replica held it at a past time (`--at TIME`). Every status, alert and
//! node answer is computed from a [`Moment`] by the same rules, so a past
//! answer is the one the replica would have given then (from what its
//! record kept: see `health_log`).
//!
//! And a node's timeline: when it went down and came back, its applies and
//! rollbacks, its alerts fired and resolved.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::alerts::{self, Ack, Alert, AlertKind, FleetSummary, NodeInput, SiteInput, SiteState};
use crate::document::FleetState;
use crate::health::{ApplyResult, HealthRegister, StoredRegister};
use crate::health_log::{Run, State};
use crate::replica::alert_inputs;

/// The fleet at `at_ms`.
#[derive(Clone, Debug)]
pub struct Moment {
    pub at_ms: i64,
    /// Read from the record of the past (`--at`), not the live registers.
    pub past: bool,
    pub state: Arc<FleetState>,
    /// Every node's register then, with when this replica had last heard it.
    pub health: HashMap<String, StoredRegister>,
}

impl Moment {
    /// Every alert open at the moment, silenced ones included.
    pub fn alerts(&self) -> Vec<Alert> {
        alerts::evaluate(
            &alert_inputs(&self.state, &self.health),
            self.at_ms,
            &self.state.acks,
        )
    }

    /// Site states, the fleet summary and the open alerts at the moment.
    pub fn status(&self) -> (Vec<(String, SiteState)>, FleetSummary, Vec<Alert>) {
        let inputs = alert_inputs(&self.state, &self.health);
        let alerts = alerts::evaluate(&inputs, self.at_ms, &self.state.acks);
        let states = alerts::site_states(&inputs, &alerts, self.at_ms);
        let summary = alerts::summarize(&states, &alerts, self.at_ms);
        (states, summary, alerts)
    }
}

/// One thing that happened to a node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// This replica's clock.
    pub at_ms: i64,
    /// `down`, `up`, `applied`, `rolled_back`, `failed`, `safe_mode`,
    /// `resumed`, `alert_fired`, `alert_resolved`.
    pub kind: &'static str,
    pub text: String,
    /// The alert's id, for alert events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
}

/// What a node's timeline is made from: its presence runs and states over a
/// window, and the silence after which it counts as down.
pub struct TimelineInput<'a> {
    pub node: &'a str,
    pub site: &'a str,
    pub thresholds: alerts::Thresholds,
    pub runs: &'a [Run],
    /// Oldest first; the first may be the state in force before the window.
    pub states: &'a [State],
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The node's events in `[from_ms, to_ms]`, newest first.
///
/// Down is dated when the silence after the last beat it heard reached the
/// node's limit (`Thresholds::down_after_ms`), up when it heard the node
/// again. Alerts are those of the node's own reports (not down and site
/// offline, which are presence); an alert that fires with the clock alone
/// (a backup growing stale, a certificate nearing expiry) is dated by the
/// first report that showed it.
pub fn timeline(input: &TimelineInput<'_>) -> Vec<Event> {
    let mut out = Vec::new();
    let in_window = |t: i64| t >= input.from_ms && t <= input.to_ms;
    let down_after = input.thresholds.down_after_ms();
    for (i, run) in input.runs.iter().enumerate() {
        if i > 0 && in_window(run.from_ms) {
            let gap = run.from_ms - input.runs[i - 1].to_ms;
            if gap > down_after {
                out.push(Event {
                    at_ms: run.from_ms,
                    kind: "up",
                    text: format!("heard again after {} of silence", human(gap)),
                    alert: None,
                });
            }
        }
        let down_at = run.to_ms.saturating_add(down_after);
        let next = input.runs.get(i + 1).map(|r| r.from_ms);
        if next.is_none_or(|n| n > down_at) && in_window(down_at) {
            out.push(Event {
                at_ms: down_at,
                kind: "down",
                text: format!("down: not heard for {}", human(down_after)),
                alert: None,
            });
        }
    }
    let mut prev: Option<&State> = None;
    for st in input.states {
        if in_window(st.at_ms) {
            state_events(input, prev.map(|p| &p.reg), st, &mut out);
        }
        prev = Some(st);
    }
    out.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(a.kind.cmp(b.kind)));
    out
}

fn state_events(
    input: &TimelineInput<'_>,
    prev: Option<&HealthRegister>,
    st: &State,
    out: &mut Vec<Event>,
) {
    let reg = &st.reg;
    let ev = |kind, text: String| Event {
        at_ms: st.at_ms,
        kind,
        text,
        alert: None,
    };
    if let Some(a) = &reg.applied
        && prev.and_then(|p| p.applied.as_ref()) != Some(a)
    {
        let rev: String = a.revision.chars().take(12).collect();
        let why = a.error.as_deref().unwrap_or("no reason given");
        out.push(match a.result {
            ApplyResult::Ok => ev("applied", format!("applied revision {rev}")),
            // The cause first: a line cut to fit keeps it.
            ApplyResult::RolledBack => ev(
                "rolled_back",
                format!("rolled back — {why} (revision {rev})"),
            ),
            ApplyResult::Failed => ev("failed", format!("apply failed — {why} (revision {rev})")),
        });
    }
    // Tunnels the node ended since the state before (each reported for an
    // hour, so in several states).
    for t in &reg.tunnels {
        if prev.is_some_and(|p| p.tunnels.contains(t)) {
            continue;
        }
        let targets = if t.targets.is_empty() {
            "nothing".to_string()
        } else {
            t.targets.replace(',', ", ")
        };
        out.push(ev(
            "tunnel",
            format!(
                "tunnel by {} to {targets}: {} connection{}, {} to and {} from the targets, {}",
                t.by,
                t.conns,
                if t.conns == 1 { "" } else { "s" },
                bytes(t.to_targets),
                bytes(t.from_targets),
                human(i64::try_from(t.secs.saturating_mul(1000)).unwrap_or(i64::MAX))
            ),
        ));
    }
    match (prev.and_then(|p| p.safe_mode.as_ref()), &reg.safe_mode) {
        (None, Some(why)) => out.push(ev("safe_mode", format!("entered safe mode: {why}"))),
        (Some(_), None) => out.push(ev("resumed", "left safe mode".into())),
        _ => {}
    }
    let before = prev
        .map(|p| own_alerts(input, p, st.at_ms))
        .unwrap_or_default();
    let after = own_alerts(input, reg, st.at_ms);
    for (id, a) in &after {
        if !before.contains_key(id) {
            out.push(Event {
                at_ms: st.at_ms,
                kind: "alert_fired",
                text: format!("{}: {}", a.severity.as_str(), a.message),
                alert: Some(id.clone()),
            });
        }
    }
    for (id, a) in &before {
        if !after.contains_key(id) {
            out.push(Event {
                at_ms: st.at_ms,
                kind: "alert_resolved",
                text: format!("resolved {}: {}", a.kind.as_str(), a.message),
                alert: Some(id.clone()),
            });
        }
    }
}

/// The alerts `reg` raises on its own, as if heard at `at_ms`.
fn own_alerts(
    input: &TimelineInput<'_>,
    reg: &HealthRegister,
    at_ms: i64,
) -> BTreeMap<String, Alert> {
    let site = SiteInput {
        site: input.site,
        zone: None,
        thresholds: input.thresholds,
        nodes: vec![NodeInput {
            node: input.node,
            thresholds: input.thresholds,
            health: Some((reg, at_ms)),
        }],
    };
    let no_acks: HashMap<String, Ack> = HashMap::new();
    alerts::evaluate(&[site], at_ms, &no_acks)
        .into_iter()
        .filter(|a| {
            // Presence has its own events; memory is a level its sparkline
            // shows (a state keeps one moment's).
            !matches!(
                a.kind,
                AlertKind::NodeDown | AlertKind::SiteOffline | AlertKind::Memory
            )
        })
        .map(|a| (a.id.clone(), a))
        .collect()
}

/// A duration for timelines: `45s`, `12m`, `3h 5m`, `2d 4h`.
fn human(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A byte count as people read it: 912 B, 3.4 kB, 12.0 MB.
fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

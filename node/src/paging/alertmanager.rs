//! Alerts to an Alertmanager through its v2 API (`POST /api/v2/alerts`).
//!
//! An alert is its labels: `alertname` (`fleetdeck_<kind>`), `fleet`,
//! `fleet_id`, `site`, `node` (when the alert is about one), `kind`,
//! `severity` (soft, medium, hard) and `alert_id`. No label names the hub
//! that sends it, so several hubs sending one alert make one alert there.
//! Annotations: `summary` (the message) and `acked_by` once an operator
//! acked it in fleetdeck — an annotation, not a label, since another label
//! would make another alert in Alertmanager (and page again).
//!
//! Every firing alert is sent on each change and again every
//! `Timing::resend`, as Alertmanager expects; `startsAt` is when the
//! condition began if the fleet knows, else when this replica first saw
//! it — never later than this replica's clock when it first sends the
//! alert (a node whose clock runs ahead dates its alerts in the future),
//! and kept for the occurrence. An alert that clears, or is silenced in
//! fleetdeck, is sent once with `endsAt` (resolved there; never before
//! `startsAt`, which Alertmanager refuses), and fires again if a silence
//! ends while it is still open.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fleetdeck_store::alerts::Alert;
use serde::Serialize;

use super::{Failure, Target, Timing, Url, post, rfc3339, shown_with_path};
use crate::view::FleetView;

/// An alert's identity in Alertmanager.
pub type Labels = BTreeMap<String, String>;

/// One alert as `POST /api/v2/alerts` takes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

/// The labels of `alert` in `view`'s fleet.
pub fn labels(view: &FleetView, alert: &Alert) -> Labels {
    let fleet = if view.fleet_name.is_empty() {
        &view.fleet_id
    } else {
        &view.fleet_name
    };
    let mut l = Labels::new();
    l.insert("alertname".into(), format!("fleetdeck_{}", alert.kind));
    l.insert("fleet".into(), fleet.clone());
    l.insert("fleet_id".into(), view.fleet_id.clone());
    l.insert("site".into(), alert.site.clone());
    if let Some(node) = &alert.node {
        l.insert("node".into(), node.clone());
    }
    l.insert("kind".into(), alert.kind.to_string());
    l.insert("severity".into(), alert.severity.to_string());
    l.insert("alert_id".into(), alert.id.clone());
    l
}

/// What one Alertmanager was last told, and the start sent for each open
/// alert.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Per open alert id: its `since_ms` and the start (ms) it is sent with.
    starts: HashMap<String, (Option<i64>, i64)>,
    delivered: BTreeMap<Labels, PostableAlert>,
}

/// One push: the body, and what is firing there once it is delivered.
#[derive(Debug)]
pub struct Push {
    pub alerts: Vec<PostableAlert>,
    firing: BTreeMap<Labels, PostableAlert>,
}

impl Tracker {
    /// The push that brings the Alertmanager to `view`, if one is due:
    /// something fired, resolved, was silenced or acked since the last
    /// delivered push, or `resend` is set (every firing alert is sent
    /// again). Resolved alerts get `endsAt` = `now_ms` (their `startsAt`
    /// if that is later: this replica's clock stepped back).
    pub fn plan(&mut self, view: &FleetView, now_ms: i64, resend: bool) -> Option<Push> {
        self.starts
            .retain(|id, _| view.alerts.iter().any(|a| &a.id == id));
        let mut firing = BTreeMap::new();
        for a in &view.alerts {
            let starts = self.start(a, view.at_ms, now_ms);
            if a.is_hidden(view.at_ms) {
                continue;
            }
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".to_string(), a.message.clone());
            if let Some(by) = &a.acked_by {
                annotations.insert("acked_by".to_string(), by.clone());
            }
            let labels = labels(view, a);
            firing.insert(
                labels.clone(),
                PostableAlert {
                    labels,
                    annotations,
                    starts_at: rfc3339(starts),
                    ends_at: None,
                },
            );
        }
        // Ended here: gone, silenced, or another occurrence under the same labels.
        let ended: Vec<PostableAlert> = self
            .delivered
            .iter()
            .filter(|(l, old)| {
                firing
                    .get(*l)
                    .is_none_or(|new| new.starts_at != old.starts_at)
            })
            .map(|(_, old)| PostableAlert {
                // RFC 3339 in UTC at a fixed width sorts as time does.
                ends_at: Some(rfc3339(now_ms).max(old.starts_at.clone())),
                ..old.clone()
            })
            .collect();
        let changed = !ended.is_empty()
            || firing.len() != self.delivered.len()
            || firing.iter().any(|(l, new)| {
                self.delivered.get(l).is_none_or(|old| {
                    old.annotations.get("acked_by") != new.annotations.get("acked_by")
                })
            });
        let resend = resend && !firing.is_empty();
        if !changed && !resend {
            return None;
        }
        let mut alerts = ended;
        alerts.extend(firing.values().cloned());
        Some(Push { alerts, firing })
    }

    /// The start `alert` is sent with: the one chosen when this occurrence
    /// (its `since_ms`) was first seen; for a new one, `since_ms` unless it
    /// is after `now_ms` (a node's clock ahead), else when this replica
    /// first saw it — never after `now_ms`, never before the epoch.
    fn start(&mut self, alert: &Alert, view_at_ms: i64, now_ms: i64) -> i64 {
        if let Some((since, start)) = self.starts.get(&alert.id)
            && *since == alert.since_ms
        {
            return *start;
        }
        let start = match alert.since_ms {
            Some(since) if since <= now_ms => since,
            _ => view_at_ms.min(now_ms),
        }
        .max(0);
        self.starts
            .insert(alert.id.clone(), (alert.since_ms, start));
        start
    }

    /// `push` reached the Alertmanager.
    pub fn delivered(&mut self, push: Push) {
        self.delivered = push.firing;
    }
}

/// One Alertmanager, as a paging target.
pub(crate) struct Alertmanager {
    client: reqwest::Client,
    url: Url,
    /// `url` for logs.
    shown: String,
    tracker: Tracker,
    last_push: Option<tokio::time::Instant>,
}

/// `BASE/api/v2/alerts` for a base URL (kept as is when it already ends so).
pub fn alerts_url(base: &Url) -> Url {
    if base
        .path()
        .trim_end_matches('/')
        .ends_with("/api/v2/alerts")
    {
        return base.clone();
    }
    let mut url = base.clone();
    let path = format!("{}/api/v2/alerts", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

impl Alertmanager {
    pub(crate) fn new(client: reqwest::Client, base: &Url) -> Self {
        let url = alerts_url(base);
        Alertmanager {
            client,
            shown: shown_with_path(&url),
            url,
            tracker: Tracker::default(),
            last_push: None,
        }
    }
}

impl Target for Alertmanager {
    async fn deliver(&mut self, view: &FleetView, timing: &Timing) -> Result<Option<Duration>, ()> {
        let resend = self.last_push.is_none_or(|t| t.elapsed() >= timing.resend);
        if let Some(push) = self.tracker.plan(view, fleetdeck_store::now_ms(), resend) {
            let body = serde_json::to_vec(&push.alerts).map_err(|e| {
                tracing::warn!(url = %self.shown, error = %e, "alertmanager: cannot encode alerts");
            })?;
            // The request carries nothing of the alerts but its body: one
            // that cannot be made is retried after a backoff like any
            // other failure (and holds up no other target).
            post(
                &self.client,
                &self.url,
                &self.shown,
                body,
                &[],
                "alertmanager",
            )
            .await
            .map_err(|_: Failure| ())?;
            tracing::debug!(url = %self.shown, alerts = push.alerts.len(), "alertmanager: pushed");
            self.tracker.delivered(push);
            self.last_push = Some(tokio::time::Instant::now());
        }
        // Nothing firing there: nothing to send again until a view changes.
        if self.tracker.delivered.is_empty() {
            return Ok(None);
        }
        let since = self.last_push.map_or(Duration::ZERO, |t| t.elapsed());
        Ok(Some(timing.resend.saturating_sub(since)))
    }
}

//! Alerts to a plain webhook: one JSON `POST` per change of an alert.
//!
//! ```json
//! {"event": "fired", "idempotency_key": "…:fired", "dedup_key": "FLEET_ID:disk:n1:/:-",
//!  "fleet": "acme", "fleet_id": "…", "at_ms": 1700000000000,
//!  "alert": {"id": "disk:n1:/", "kind": "disk", "severity": "hard", "site": "s1",
//!            "node": "n1", "since_ms": null, "message": "…", "acked_by": null,
//!            "silenced_until_ms": null, "silenced": false}}
//! ```
//!
//! `event` is `fired`, `resolved` (cleared; the alert as last sent) or
//! `updated` (acked, silenced, silence over, severity changed; a new message
//! alone sends nothing). A silence is an `updated` event with `silenced`
//! true, not a `resolved` one: the occurrence is still open.
//!
//! Several hubs send the same events: `dedup_key` names the occurrence
//! (`FLEET_ID:ALERT_ID:SINCE_MS`, `-` for alerts the fleet does not date —
//! disk, memory, failed checks, drift) and the `Idempotency-Key` header
//! (also `idempotency_key` in the body) names the event, the same from
//! every hub, so a receiver drops a key it has seen. The key is written
//! as a header may carry it: every byte outside visible ASCII, and `%`,
//! as `%XX` (alert ids hold check names and mounts, acks a name), the
//! same in the header and the body. fleetdeck cannot keep
//! a receiver that ignores it from paging once per hub. Undated alerts
//! reuse their key when they fire again, so a receiver should forget keys
//! after a while (an hour: hubs send within seconds of each other).
//!
//! With a secret, `X-Fleetdeck-Signature: sha256=HEX` is the HMAC-SHA256
//! of the body under it.
//!
//! An event whose request cannot even be made is logged and skipped (it
//! would fail the same way forever); the events after it still go out.

use std::collections::HashMap;
use std::time::Duration;

use fleetdeck_store::alerts::Alert;
use serde::Serialize;

use super::{Failure, Target, Timing, Url, post, shown};
use crate::view::FleetView;

/// What happened to an alert, as the webhook names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Fired,
    Resolved,
    Updated,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Fired => "fired",
            Event::Resolved => "resolved",
            Event::Updated => "updated",
        }
    }
}

/// An alert as sent: the fleet's alert and whether a silence hides it now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SentAlert {
    #[serde(flatten)]
    pub alert: Alert,
    pub silenced: bool,
}

/// One request body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Delivery {
    pub event: Event,
    pub idempotency_key: String,
    pub dedup_key: String,
    pub fleet: String,
    pub fleet_id: String,
    pub at_ms: i64,
    pub alert: SentAlert,
}

/// The occurrence an alert is: the same on every replica.
pub fn dedup_key(fleet_id: &str, alert: &Alert) -> String {
    let since = alert.since_ms.map_or("-".to_string(), |s| s.to_string());
    format!("{fleet_id}:{}:{since}", alert.id)
}

/// The event's key: the occurrence, the event and, for `updated`, what the
/// update says (severity, who acked, the silence and whether it is over),
/// so each distinct update has its own key and a repeat has the same one.
/// Written header-safe ([`header_safe`]).
pub fn idempotency_key(fleet_id: &str, event: Event, sent: &SentAlert) -> String {
    let a = &sent.alert;
    let mut key = format!("{}:{}", dedup_key(fleet_id, a), event.as_str());
    if event == Event::Updated {
        let ack = a.acked_by.as_deref().unwrap_or("-");
        let silence = match (a.silenced_until_ms, sent.silenced) {
            (None, _) => "-".to_string(),
            (Some(u), true) => u.to_string(),
            (Some(u), false) => format!("{u}-over"),
        };
        key.push_str(&format!(":{}:ack={ack}:silence={silence}", a.severity));
    }
    header_safe(&key)
}

/// `s` as an HTTP header value may carry it: each byte outside visible
/// ASCII (controls, space, DEL, UTF-8), and `%` itself, written `%XX`.
pub fn header_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What one webhook was last sent, per alert id.
#[derive(Debug, Default)]
pub struct Tracker {
    delivered: HashMap<String, SentAlert>,
}

impl Tracker {
    /// The next event that brings the webhook to `view`, if any: the first
    /// alert (in the view's order) not sent, another occurrence (its old one
    /// resolved first), or changed; then those no longer open.
    pub fn next(&self, view: &FleetView) -> Option<Delivery> {
        let make = |event, alert: &SentAlert| Delivery {
            event,
            idempotency_key: idempotency_key(&view.fleet_id, event, alert),
            dedup_key: dedup_key(&view.fleet_id, &alert.alert),
            fleet: view.fleet_name.clone(),
            fleet_id: view.fleet_id.clone(),
            at_ms: view.at_ms,
            alert: alert.clone(),
        };
        for a in &view.alerts {
            let now = SentAlert {
                alert: a.clone(),
                silenced: a.is_hidden(view.at_ms),
            };
            match self.delivered.get(&a.id) {
                None => return Some(make(Event::Fired, &now)),
                Some(old) if old.alert.since_ms != a.since_ms => {
                    return Some(make(Event::Resolved, old));
                }
                Some(old)
                    if idempotency_key(&view.fleet_id, Event::Updated, old)
                        != idempotency_key(&view.fleet_id, Event::Updated, &now) =>
                {
                    return Some(make(Event::Updated, &now));
                }
                Some(_) => {}
            }
        }
        let mut gone: Vec<&SentAlert> = self
            .delivered
            .values()
            .filter(|old| !view.alerts.iter().any(|a| a.id == old.alert.id))
            .collect();
        gone.sort_by(|x, y| x.alert.id.cmp(&y.alert.id));
        gone.first().map(|old| make(Event::Resolved, old))
    }

    /// `d` reached the webhook.
    pub fn delivered(&mut self, d: &Delivery) {
        let id = d.alert.alert.id.clone();
        match d.event {
            Event::Resolved => {
                self.delivered.remove(&id);
            }
            Event::Fired | Event::Updated => {
                self.delivered.insert(id, d.alert.clone());
            }
        }
    }
}

/// `sha256=HEX`: the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

/// One webhook, as a paging target.
pub(crate) struct Webhook {
    client: reqwest::Client,
    url: Url,
    /// `url` for logs: no path or query (where webhooks keep a secret).
    shown: String,
    secret: Option<Vec<u8>>,
    tracker: Tracker,
}

impl Webhook {
    pub(crate) fn new(client: reqwest::Client, url: Url, secret: Option<Vec<u8>>) -> Self {
        Webhook {
            client,
            shown: shown(&url),
            url,
            secret,
            tracker: Tracker::default(),
        }
    }
}

impl Target for Webhook {
    async fn deliver(&mut self, view: &FleetView, _: &Timing) -> Result<Option<Duration>, ()> {
        while let Some(d) = self.tracker.next(view) {
            let body = match serde_json::to_vec(&d) {
                Ok(body) => Some(body),
                Err(e) => {
                    tracing::warn!(url = %self.shown, error = %e, key = %d.idempotency_key, "webhook: cannot encode an event; skipped");
                    None
                }
            };
            if let Some(body) = body {
                let mut headers = vec![("Idempotency-Key", d.idempotency_key.clone())];
                if let Some(secret) = &self.secret {
                    headers.push(("X-Fleetdeck-Signature", signature(secret, &body)));
                }
                match post(
                    &self.client,
                    &self.url,
                    &self.shown,
                    body,
                    &headers,
                    "webhook",
                )
                .await
                {
                    Ok(()) => {
                        tracing::debug!(url = %self.shown, event = d.event.as_str(), key = %d.idempotency_key, "webhook: sent");
                    }
                    Err(Failure::Retry) => return Err(()),
                    // Logged by `post`; it would fail the same way forever.
                    Err(Failure::Unsendable) => {
                        tracing::warn!(url = %self.shown, event = d.event.as_str(), key = %d.idempotency_key, "webhook: event skipped");
                    }
                }
            }
            // Sent, or never sendable: either way the next event is due.
            self.tracker.delivered(&d);
        }
        Ok(None)
    }
}

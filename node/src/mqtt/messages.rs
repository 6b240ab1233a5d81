//! What the bridge publishes, as plain data made from `FleetView`s: the
//! retained topics a view should leave on the broker (each node's state
//! and last apply, each open alert, Home Assistant discovery) and the
//! events between two views (alerts fired and resolved, new apply
//! outcomes). No networking here.
//!
//! Topics, under the prefix `P`:
//! - `P/<site>/<node>/state` (retained): the node's health as JSON
//! - `P/<site>/<node>/apply` (retained): its last apply outcome
//! - `P/alerts/<alert-id>` (retained while open; emptied on resolve)
//! - `P/events` (not retained): `{"event":"fired"|"resolved"|"apply",…}`
//! - `P/bridge/status` (retained): `online` / `offline` (the will)
//!
//! A message never goes over the packet limit (a node reporting a huge
//! field could make one): [`fit`] cuts its largest fields to `null` and
//! adds `"truncated": true`, or says it cannot be sent at all.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use fleetdeck_store::alerts::Alert;
use fleetdeck_store::health::ApplyReport;
use serde_json::{Value, json};

use super::homeassistant;
use crate::view::{AlertChange, FleetView, NodeView, alert_changes};

/// Where the topics go.
#[derive(Clone, Debug)]
pub struct Layout {
    pub prefix: String,
    pub homeassistant: bool,
}

impl Layout {
    pub fn status_topic(&self) -> String {
        format!("{}/bridge/status", self.prefix)
    }

    pub fn events_topic(&self) -> String {
        format!("{}/events", self.prefix)
    }

    pub fn state_topic(&self, site: &str, node: &str) -> String {
        format!("{}/{site}/{node}/state", self.prefix)
    }

    pub fn apply_topic(&self, site: &str, node: &str) -> String {
        format!("{}/{site}/{node}/apply", self.prefix)
    }

    pub fn alert_topic(&self, alert_id: &str) -> String {
        format!("{}/alerts/{}", self.prefix, alert_segment(alert_id))
    }
}

/// The retained topics `view` should leave on the broker, with their
/// payloads, and the nodes left out because their site or node id cannot
/// be a topic level.
pub struct Retained {
    pub topics: BTreeMap<String, String>,
    pub skipped: Vec<String>,
}

/// Everything `view` leaves retained (the bridge status aside).
pub fn retained(view: &FleetView, layout: &Layout) -> Retained {
    let mut topics = BTreeMap::new();
    let mut skipped = Vec::new();
    let site_names: HashMap<&str, &str> = view
        .sites
        .iter()
        .map(|s| (s.id.as_str(), s.name.as_str()))
        .collect();
    for n in &view.nodes {
        if !is_level(&n.site) || !is_level(&n.id) {
            skipped.push(format!("{}/{}", n.site, n.id));
            continue;
        }
        topics.insert(
            layout.state_topic(&n.site, &n.id),
            node_state(n).to_string(),
        );
        if let Some(a) = &n.applied {
            topics.insert(
                layout.apply_topic(&n.site, &n.id),
                apply_outcome(n, a).to_string(),
            );
        }
        if layout.homeassistant {
            let site_name = site_names.get(n.site.as_str()).copied().unwrap_or(&n.site);
            topics.extend(homeassistant::discovery(n, site_name, layout));
        }
    }
    for a in &view.alerts {
        topics.insert(
            layout.alert_topic(&a.id),
            alert_json(a, view.at_ms).to_string(),
        );
    }
    Retained { topics, skipped }
}

/// The events from `old` to `new`, in order, for the events topic.
pub fn events(old: &FleetView, new: &FleetView) -> Vec<String> {
    let mut out = Vec::new();
    for change in alert_changes(&old.alerts, &new.alerts) {
        let (event, alert) = match &change {
            AlertChange::Fired(a) => ("fired", a),
            AlertChange::Resolved(a) => ("resolved", a),
            AlertChange::Updated(_) => continue,
        };
        let mut v = alert_json(alert, new.at_ms);
        if let Value::Object(m) = &mut v {
            m.insert("event".into(), json!(event));
            m.insert("at_ms".into(), json!(new.at_ms));
        }
        out.push(v.to_string());
    }
    let before: HashMap<&str, Option<&ApplyReport>> = old
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.applied.as_ref()))
        .collect();
    for n in &new.nodes {
        let Some(a) = &n.applied else { continue };
        if before.get(n.id.as_str()).copied().flatten() == Some(a) {
            continue;
        }
        let mut v = apply_outcome(n, a);
        if let Value::Object(m) = &mut v {
            m.insert("event".into(), json!("apply"));
        }
        out.push(v.to_string());
    }
    out
}

/// A node's health, as its state topic carries it.
pub fn node_state(n: &NodeView) -> Value {
    let disk_max = n
        .disks
        .iter()
        .map(|d| d.used_pct)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    json!({
        "node": n.id,
        "site": n.site,
        "zone": n.zone,
        "role": n.role,
        "up": n.up,
        "last_heard_ms": n.last_heard_ms,
        "last_heard": n.last_heard_ms.and_then(rfc3339),
        "cpu_pct": n.cpu_pct,
        "mem_pct": n.mem_pct,
        "load1": n.load1,
        "uptime_s": n.uptime_s,
        "temp_c": n.temp_c,
        "disks": n.disks,
        "disk_max_pct": disk_max,
        "desired_revision": n.desired_revision,
        "applied_revision": n.applied.as_ref().map(|a| &a.revision),
        "in_sync": n.in_sync,
        "checks_failing": n.checks_failing,
        "drift": n.drift,
        "safe_mode": n.safe_mode,
    })
}

fn apply_outcome(n: &NodeView, a: &ApplyReport) -> Value {
    json!({
        "node": n.id,
        "site": n.site,
        "revision": a.revision,
        "result": a.result,
        "error": a.error,
        "duration_ms": a.duration_ms,
        "at_ms": a.at_ms,
    })
}

/// An alert as its retained topic and its events carry it: the alert's
/// fields and whether a silence hides it.
fn alert_json(a: &Alert, at_ms: i64) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or_else(|_| json!({"id": a.id}));
    if let Value::Object(m) = &mut v {
        m.insert("silenced".into(), json!(a.is_hidden(at_ms)));
    }
    v
}

/// `ms` as RFC 3339 (seconds), `None` before 1970 or after the year 9999
/// (which RFC 3339 cannot write).
fn rfc3339(ms: i64) -> Option<String> {
    const MAX_MS: i64 = 253_402_300_799_999;
    if !(0..=MAX_MS).contains(&ms) {
        return None;
    }
    let ms = ms.unsigned_abs();
    Some(humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string())
}

/// A message made to fit the packet limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Fit {
    /// Small enough as it is.
    AsIs,
    /// Too big: this JSON object instead, its largest fields `null` and
    /// `"truncated": true`.
    Cut(String),
    /// Too big and no smaller form fits (the topic alone is too long, or
    /// the payload is not a JSON object).
    TooBig,
}

/// The bytes of a QoS 1 PUBLISH besides its topic and payload, at most:
/// the fixed header (1 byte and up to 4 of remaining length), the topic's
/// length (2) and the packet id (2).
const PUBLISH_OVERHEAD: usize = 9;

/// Whether a PUBLISH of `payload` to `topic` fits in `max_packet` bytes,
/// and what to send if it does not.
pub fn fit(topic: &str, payload: &str, max_packet: usize) -> Fit {
    // A topic is at most 65535 bytes (its length is two bytes).
    if topic.len() > usize::from(u16::MAX) {
        return Fit::TooBig;
    }
    let room = max_packet.saturating_sub(PUBLISH_OVERHEAD + topic.len());
    if payload.len() <= room {
        return Fit::AsIs;
    }
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(payload) else {
        return Fit::TooBig;
    };
    let mut by_size: Vec<(usize, String)> = m
        .iter()
        .map(|(k, v)| (v.to_string().len(), k.clone()))
        .collect();
    by_size.sort_by(|a, b| b.cmp(a));
    m.insert("truncated".into(), Value::Bool(true));
    for (_, key) in by_size {
        m.insert(key, Value::Null);
        let cut = Value::Object(m.clone()).to_string();
        if cut.len() <= room {
            return Fit::Cut(cut);
        }
    }
    Fit::TooBig
}

/// Whether `s` can be one topic level as it is: site and node ids are
/// checked by the store (letters, digits, `-_.`), but they come from a
/// shared document, so the bridge checks again.
pub fn is_level(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.contains(['/', '+', '#', '\0'])
}

/// An alert id as one topic level: ids carry a node and sometimes a mount
/// or check name (`disk:cam-1:/var/lib`), so every byte outside
/// `A-Z a-z 0-9 - _ . :` is written `%XX`.
pub fn alert_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_object_loses_its_largest_fields_and_says_so() {
        let big = json!({"node": "n1", "cpu_pct": 12.5, "safe_mode": "x".repeat(5_000),
            "disks": vec!["d"; 500], "up": true})
        .to_string();
        let Fit::Cut(cut) = fit("p/s/n1/state", &big, 4_096) else {
            panic!("not cut");
        };
        assert!(cut.len() + 9 + "p/s/n1/state".len() <= 4_096);
        let v: Value = serde_json::from_str(&cut).expect("still JSON");
        assert_eq!(v["truncated"], true);
        assert_eq!(v["safe_mode"], Value::Null);
        assert_eq!(v["cpu_pct"], 12.5);
        assert_eq!(v["up"], true);
        assert_eq!(v["node"], "n1");
        // Only what must go: the disks (2 001 bytes) fit once the string is cut.
        assert!(v["disks"].is_array(), "{cut}");

        assert_eq!(fit("p/t", &big, 20_000), Fit::AsIs);
        assert_eq!(fit("p/t", &"y".repeat(5_000), 4_096), Fit::TooBig);
        assert_eq!(fit(&"t".repeat(70_000), "{}", 1 << 20), Fit::TooBig);
        assert_eq!(fit(&"t".repeat(5_000), "{}", 4_096), Fit::TooBig);
    }

    #[test]
    fn a_time_rfc3339_cannot_write_is_left_out_not_a_panic() {
        assert_eq!(rfc3339(-1), None);
        assert_eq!(rfc3339(i64::MAX), None);
        assert_eq!(rfc3339(253_402_300_800_000), None);
        assert_eq!(rfc3339(1_000).as_deref(), Some("1970-01-01T00:00:01Z"));
    }

    #[test]
    fn alert_ids_become_one_level_and_hostile_ids_are_not_levels() {
        assert_eq!(
            alert_segment("disk:cam-1:/var/lib"),
            "disk:cam-1:%2Fvar%2Flib"
        );
        assert_eq!(alert_segment("check:n:a+b#c\0"), "check:n:a%2Bb%23c%00");
        assert_eq!(alert_segment("t:é"), "t:%C3%A9");
        assert!(is_level("BL-LAB-2") && is_level("cam-1.lab"));
        for bad in ["", "a/b", "+", "#", "a\0", &"x".repeat(129)] {
            assert!(!is_level(bad), "{bad:?}");
        }
    }
}

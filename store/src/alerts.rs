//! Alert rules: which alerts the fleet has right now, given every node's
//! latest health register, the thresholds in force and the operators' acks.
//!
//! [`evaluate`] is a pure function of its inputs. This module never does
//! I/O, never reads the clock (`now_ms` is always given) and keeps no state:
//! an alert exists while its condition holds and is simply absent once it
//! clears. Acks and silences are stored elsewhere (in the fleet document)
//! and only applied here.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::health::{ApplyResult, HealthRegister};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const HOUR_MS: i64 = 60 * 60 * 1000;

/// The end of the reason a node gives for safe mode after failed applies
/// ([`safe_mode_after_failures`]): such a safe mode began with the node's
/// latest (failed) apply, which its register dates.
const SAFE_MODE_FAILED_APPLIES: &str = "failed applies in a row";

/// Why a node goes into safe mode after `n` failed applies in a row (the
/// daemon's words, read back by the safe-mode alert to date it).
pub fn safe_mode_after_failures(n: u64) -> String {
    format!("{n} {SAFE_MODE_FAILED_APPLIES}")
}

/// When a node in safe mode went into it, if its register says: after
/// failed applies, the time of the apply that tripped it (the node applies
/// nothing in safe mode, so its latest apply is that one).
fn safe_mode_since(reg: &HealthRegister) -> Option<i64> {
    let why = reg.safe_mode.as_deref()?;
    let last = reg.applied.as_ref()?;
    (why.ends_with(SAFE_MODE_FAILED_APPLIES) && last.result != ApplyResult::Ok)
        .then_some(last.at_ms)
}

/// A disk at or above this used percentage is a hard alert (when it is over
/// the node's `disk_pct` at all).
pub const DISK_HARD_PCT: f64 = 95.0;

/// A certificate with less than this many days left (or expired) is a hard
/// alert (when it is within the node's `tls_days` at all).
pub const TLS_HARD_DAYS: i64 = 3;

/// The limits the rules compare against. Defaults are fleetdeck's shipped
/// values; [`Thresholds::from_lookup`] reads them from effective config.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub heartbeat_interval_s: u64,
    pub missed_beats: u64,
    pub site_offline_s: u64,
    pub disk_pct: f64,
    pub mem_pct: f64,
    pub tls_days: u64,
    pub backup_stale_h: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            heartbeat_interval_s: 10,
            missed_beats: 3,
            site_offline_s: 300,
            disk_pct: 85.0,
            mem_pct: 90.0,
            tls_days: 14,
            backup_stale_h: 48,
        }
    }
}

/// A non-negative whole number, written as an integer or as a float with no
/// fractional part (`10` or `10.0`).
fn whole(v: &serde_json::Value) -> Option<u64> {
    if let Some(u) = v.as_u64() {
        return Some(u);
    }
    let f = v.as_f64()?;
    // `u64::MAX as f64` rounds up, so `<` keeps the cast exact.
    if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 {
        Some(f as u64)
    } else {
        None
    }
}

impl Thresholds {
    /// Reads the thresholds from config keys (`heartbeat.interval_s`,
    /// `alerts.missed_beats`, `alerts.site_offline_s`, `alerts.disk_pct`,
    /// `alerts.mem_pct`, `alerts.tls_days`, `alerts.backup_stale_h`). A key
    /// that is missing or holds the wrong type (a string, a negative or
    /// fractional count) keeps that field's default; so does a zero
    /// heartbeat interval or zero missed beats, which would mark every node
    /// down at once.
    pub fn from_lookup<'v>(get: impl Fn(&str) -> Option<&'v serde_json::Value>) -> Thresholds {
        let d = Thresholds::default();
        let count = |key: &str, default: u64| get(key).and_then(whole).unwrap_or(default);
        let positive = |key: &str, default: u64| {
            get(key)
                .and_then(whole)
                .filter(|&v| v > 0)
                .unwrap_or(default)
        };
        let pct = |key: &str, default: f64| {
            get(key)
                .and_then(serde_json::Value::as_f64)
                .filter(|v| v.is_finite())
                .unwrap_or(default)
        };
        Thresholds {
            heartbeat_interval_s: positive("heartbeat.interval_s", d.heartbeat_interval_s),
            missed_beats: positive("alerts.missed_beats", d.missed_beats),
            site_offline_s: count("alerts.site_offline_s", d.site_offline_s),
            disk_pct: pct("alerts.disk_pct", d.disk_pct),
            mem_pct: pct("alerts.mem_pct", d.mem_pct),
            tls_days: count("alerts.tls_days", d.tls_days),
            backup_stale_h: count("alerts.backup_stale_h", d.backup_stale_h),
        }
    }

    /// How long a node may stay silent before it is down.
    pub fn down_after_ms(&self) -> i64 {
        let ms = self
            .missed_beats
            .saturating_mul(self.heartbeat_interval_s)
            .saturating_mul(1000);
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// How long a whole site may stay silent before it is offline.
    pub fn site_offline_after_ms(&self) -> i64 {
        secs_to_ms(self.site_offline_s)
    }
}

fn secs_to_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn hours_to_ms(h: u64) -> i64 {
    i64::try_from(h).map_or(i64::MAX, |h| h.saturating_mul(HOUR_MS))
}

fn days_to_ms(d: u64) -> i64 {
    i64::try_from(d).map_or(i64::MAX, |d| d.saturating_mul(DAY_MS))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Soft,
    Medium,
    Hard,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Soft => "soft",
            Severity::Medium => "medium",
            Severity::Hard => "hard",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    NodeDown,
    SiteOffline,
    Disk,
    Memory,
    TlsExpiry,
    BackupFailed,
    BackupStale,
    ApplyFailed,
    CheckFailed,
    Drift,
    SafeMode,
    ZoneQuorum,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::NodeDown => "node_down",
            AlertKind::SiteOffline => "site_offline",
            AlertKind::Disk => "disk",
            AlertKind::Memory => "memory",
            AlertKind::TlsExpiry => "tls_expiry",
            AlertKind::BackupFailed => "backup_failed",
            AlertKind::BackupStale => "backup_stale",
            AlertKind::ApplyFailed => "apply_failed",
            AlertKind::CheckFailed => "check_failed",
            AlertKind::Drift => "drift",
            AlertKind::SafeMode => "safe_mode",
            AlertKind::ZoneQuorum => "zone_quorum",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One active alert.
///
/// `id` is stable while the condition lasts: `node-down:NODE`,
/// `site-offline:SITE`, `disk:NODE:MOUNT`, `mem:NODE`, `tls:NODE:NAME`,
/// `backup:NODE` (failed or stale, one per node), `apply:NODE`.
///
/// `since_ms` identifies one occurrence: when the node went down or the site
/// offline, when a certificate entered its warning window, when the failed
/// backup ran, when the backup became stale, when the failed apply happened,
/// when a node went into safe mode after failed applies (the apply that
/// tripped it). It must be the same on every replica (an ack names the
/// occurrence by it), so it comes only from the node's signed register.
/// Where the register does not say when a condition began it is `None`:
/// disk and memory (levels: the register holds the latest sample only, and
/// the sparkline samples are each replica's own), failed checks and drift
/// (the register lists them with no time), and safe mode after a crash loop
/// (entered at a start-up the register does not date).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub site: String,
    pub node: Option<String>,
    pub since_ms: Option<i64>,
    pub message: String,
    pub acked_by: Option<String>,
    pub silenced_until_ms: Option<i64>,
}

impl Alert {
    /// True while a silence is in force.
    pub fn is_hidden(&self, now_ms: i64) -> bool {
        self.silenced_until_ms.is_some_and(|u| u > now_ms)
    }
}

/// An operator's acknowledgement of an alert id; with `until_ms` it is also a
/// silence.
///
/// The two hold differently. The ack names one occurrence: with `since_ms`
/// it covers only the occurrence whose `Alert::since_ms` is the same, and
/// holds until that occurrence resolves (an alert that resolved and fired
/// again later is not acked by it); without, it covers every occurrence. The
/// silence names the alert id: it holds until `until_ms` whatever the
/// occurrence, so an alert that resolves and fires again within the silence
/// stays silenced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at_ms: i64,
    #[serde(default)]
    pub until_ms: Option<i64>,
    #[serde(default)]
    pub since_ms: Option<i64>,
}

impl Ack {
    /// Whether the ack covers `alert`'s occurrence.
    fn acks(&self, alert: &Alert) -> bool {
        self.since_ms.is_none() || self.since_ms == alert.since_ms
    }

    /// Until when the alert id is silenced, if the silence is in force at
    /// `now_ms` (for any occurrence).
    fn silenced_until(&self, now_ms: i64) -> Option<i64> {
        self.until_ms.filter(|&u| u > now_ms)
    }
}

/// One site to evaluate: its own thresholds (used for `site_offline_s`) and
/// its nodes.
#[derive(Clone, Debug)]
pub struct SiteInput<'a> {
    pub site: &'a str,
    pub thresholds: Thresholds,
    pub nodes: Vec<NodeInput<'a>>,
    /// The site's zone, and how many of the zone's nodes must be up for it
    /// to count (`zones.<zone>.quorum` in the fleet defaults), if set.
    pub zone: Option<Zone<'a>>,
}

/// A site's zone as the quorum rule reads it.
#[derive(Clone, Copy, Debug)]
pub struct Zone<'a> {
    pub name: &'a str,
    pub quorum: Option<u64>,
}

/// One node: its effective thresholds and, if it ever reported, its latest
/// register with the time this replica received it.
#[derive(Clone, Debug)]
pub struct NodeInput<'a> {
    pub node: &'a str,
    pub thresholds: Thresholds,
    pub health: Option<(&'a HealthRegister, i64)>,
}

/// A duration for messages: `45s`, `12m`, `3h 5m`, `2d 4h`.
fn human(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        let (h, m) = (s / 3600, s % 3600 / 60);
        if m == 0 {
            format!("{h}h")
        } else {
            format!("{h}h {m}m")
        }
    } else {
        let (d, h) = (s / 86_400, s % 86_400 / 3600);
        if h == 0 {
            format!("{d}d")
        } else {
            format!("{d}d {h}h")
        }
    }
}

/// Collects the alerts of one evaluation, applying acks as they are made.
struct Out<'x> {
    alerts: Vec<Alert>,
    acks: &'x HashMap<String, Ack>,
    now_ms: i64,
}

struct Raised<'s> {
    id: String,
    kind: AlertKind,
    severity: Severity,
    site: &'s str,
    node: Option<&'s str>,
    since_ms: Option<i64>,
    message: String,
}

impl Out<'_> {
    /// Adds an alert; `node_start` is where the current node's alerts begin,
    /// so a register listing the same mount or certificate twice yields one
    /// alert (the more severe).
    fn push(&mut self, r: Raised<'_>, node_start: usize) {
        let mut alert = Alert {
            id: r.id,
            kind: r.kind,
            severity: r.severity,
            site: r.site.to_string(),
            node: r.node.map(str::to_string),
            since_ms: r.since_ms,
            message: r.message,
            acked_by: None,
            silenced_until_ms: None,
        };
        if let Some(ack) = self.acks.get(alert.id.as_str()) {
            if ack.acks(&alert) {
                alert.acked_by = Some(ack.by.clone());
            }
            alert.silenced_until_ms = ack.silenced_until(self.now_ms);
        }
        if let Some(existing) = self.alerts[node_start..]
            .iter_mut()
            .find(|a| a.id == alert.id)
        {
            if alert.severity > existing.severity {
                *existing = alert;
            }
            return;
        }
        self.alerts.push(alert);
    }
}

fn is_down(now_ms: i64, heard_ms: i64, t: &Thresholds) -> bool {
    now_ms.saturating_sub(heard_ms) > t.down_after_ms()
}

/// When the site went offline, if it is: it has nodes, at least one of them
/// reported once, none of them is up, and the latest of them was heard more
/// than `site_offline_s` ago.
fn site_offline_since(site: &SiteInput<'_>, now_ms: i64) -> Option<i64> {
    let mut latest: Option<i64> = None;
    for n in &site.nodes {
        if let Some((_, heard)) = n.health {
            if !is_down(now_ms, heard, &n.thresholds) {
                return None;
            }
            latest = Some(latest.map_or(heard, |l| l.max(heard)));
        }
    }
    let latest = latest?;
    let window = site.thresholds.site_offline_after_ms();
    (now_ms.saturating_sub(latest) > window).then(|| latest.saturating_add(window))
}

/// The alerts of a node that is up: disk, memory, TLS, backup, apply.
fn node_alerts(
    out: &mut Out<'_>,
    site: &str,
    node: &str,
    reg: &HealthRegister,
    t: &Thresholds,
    now_ms: i64,
) {
    let start = out.alerts.len();
    let m = &reg.metrics;

    for d in &m.disks {
        if d.used_pct > t.disk_pct {
            let severity = if d.used_pct >= DISK_HARD_PCT {
                Severity::Hard
            } else {
                Severity::Medium
            };
            out.push(
                Raised {
                    id: format!("disk:{node}:{}", d.mount),
                    kind: AlertKind::Disk,
                    severity,
                    site,
                    node: Some(node),
                    since_ms: None,
                    message: format!(
                        "disk {} on node {node} is {:.1}% full (threshold {}%)",
                        d.mount, d.used_pct, t.disk_pct
                    ),
                },
                start,
            );
        }
    }

    if m.mem_pct > t.mem_pct {
        out.push(
            Raised {
                id: format!("mem:{node}"),
                kind: AlertKind::Memory,
                severity: Severity::Soft,
                site,
                node: Some(node),
                since_ms: None,
                message: format!(
                    "memory on node {node} is {:.1}% used (threshold {}%)",
                    m.mem_pct, t.mem_pct
                ),
            },
            start,
        );
    }

    let warn_ms = days_to_ms(t.tls_days);
    for c in &reg.tls {
        let left = c.not_after_ms.saturating_sub(now_ms);
        if left < warn_ms {
            let severity = if left < TLS_HARD_DAYS * DAY_MS {
                Severity::Hard
            } else {
                Severity::Medium
            };
            let message = if left <= 0 {
                format!(
                    "TLS certificate {} on node {node} expired {} ago",
                    c.name,
                    human(-left)
                )
            } else {
                format!(
                    "TLS certificate {} on node {node} expires in {} (warning at {} days)",
                    c.name,
                    human(left),
                    t.tls_days
                )
            };
            out.push(
                Raised {
                    id: format!("tls:{node}:{}", c.name),
                    kind: AlertKind::TlsExpiry,
                    severity,
                    site,
                    node: Some(node),
                    since_ms: Some(c.not_after_ms.saturating_sub(warn_ms)),
                    message,
                },
                start,
            );
        }
    }

    if let Some(b) = &reg.backup {
        let total = b.databases.len();
        let failed = b.databases.iter().filter(|d| !d.ok).count();
        let stale_ms = hours_to_ms(t.backup_stale_h);
        let age = now_ms.saturating_sub(b.last_run_ms);
        let failure_text = || {
            let mut s = format!("{failed} of {total} databases failed (");
            let mut first = true;
            for d in b.databases.iter().filter(|d| !d.ok) {
                if !first {
                    s.push_str(", ");
                }
                first = false;
                s.push_str(&d.name);
                if let Some(e) = &d.error {
                    s.push_str(": ");
                    s.push_str(e);
                }
            }
            s.push(')');
            s
        };
        if age > stale_ms {
            let mut message = format!(
                "the last backup on node {node} ran {} ago (stale after {}h)",
                human(age),
                t.backup_stale_h
            );
            if failed > 0 {
                message.push_str("; in that run ");
                message.push_str(&failure_text());
            }
            out.push(
                Raised {
                    id: format!("backup:{node}"),
                    kind: AlertKind::BackupStale,
                    severity: Severity::Hard,
                    site,
                    node: Some(node),
                    since_ms: Some(b.last_run_ms.saturating_add(stale_ms)),
                    message,
                },
                start,
            );
        } else if failed > 0 {
            let severity = if failed == total {
                Severity::Hard
            } else {
                Severity::Medium
            };
            out.push(
                Raised {
                    id: format!("backup:{node}"),
                    kind: AlertKind::BackupFailed,
                    severity,
                    site,
                    node: Some(node),
                    since_ms: Some(b.last_run_ms),
                    message: format!(
                        "backup on node {node} {} ago: {}",
                        human(age),
                        failure_text()
                    ),
                },
                start,
            );
        }
    }

    if let Some(a) = &reg.applied {
        let what = match a.result {
            ApplyResult::Ok => None,
            ApplyResult::Failed => Some("failed"),
            ApplyResult::RolledBack => Some("was rolled back"),
        };
        if let Some(what) = what {
            let mut message = format!("applying revision {} on node {node} {what}", a.revision);
            if let Some(e) = &a.error {
                message.push_str(": ");
                message.push_str(e);
            }
            out.push(
                Raised {
                    id: format!("apply:{node}"),
                    kind: AlertKind::ApplyFailed,
                    severity: Severity::Medium,
                    site,
                    node: Some(node),
                    since_ms: Some(a.at_ms),
                    message,
                },
                start,
            );
        }
    }

    for c in reg.checks.iter().filter(|c| !c.ok) {
        let mut message = format!("check {} failed on node {node}", c.name);
        if !c.output.is_empty() {
            message.push_str(": ");
            message.push_str(c.output.lines().last().unwrap_or_default());
        }
        out.push(
            Raised {
                id: format!("check:{node}:{}", c.name),
                kind: AlertKind::CheckFailed,
                severity: Severity::Medium,
                site,
                node: Some(node),
                since_ms: None,
                message,
            },
            start,
        );
    }

    if !reg.drift.is_empty() {
        out.push(
            Raised {
                id: format!("drift:{node}"),
                kind: AlertKind::Drift,
                severity: Severity::Medium,
                site,
                node: Some(node),
                since_ms: None,
                message: format!(
                    "files edited by hand on node {node}: {}",
                    reg.drift.join(", ")
                ),
            },
            start,
        );
    }

    if let Some(why) = &reg.safe_mode {
        out.push(
            Raised {
                id: format!("safe-mode:{node}"),
                kind: AlertKind::SafeMode,
                severity: Severity::Hard,
                site,
                node: Some(node),
                since_ms: safe_mode_since(reg),
                message: format!(
                    "node {node} is in safe mode and applies nothing until resumed (`fleetdeck node resume {node}`): {why}"
                ),
            },
            start,
        );
    }
}

/// Every active alert of the fleet at `now_ms`, with acks and silences from
/// `acks` (keyed by alert id) applied, sorted by severity (hard first), then
/// site, then id.
///
/// Nodes that never reported raise nothing. A node that is down raises only
/// its node-down alert (its other data is stale), and an offline site raises
/// one site-offline alert instead of its nodes' node-down alerts.
pub fn evaluate(sites: &[SiteInput<'_>], now_ms: i64, acks: &HashMap<String, Ack>) -> Vec<Alert> {
    let mut out = Out {
        alerts: Vec::new(),
        acks,
        now_ms,
    };
    for site in sites {
        let offline_since = site_offline_since(site, now_ms);
        if let Some(since) = offline_since {
            let start = out.alerts.len();
            out.push(
                Raised {
                    id: format!("site-offline:{}", site.site),
                    kind: AlertKind::SiteOffline,
                    severity: Severity::Hard,
                    site: site.site,
                    node: None,
                    since_ms: Some(since),
                    message: format!(
                        "site {} is offline: no node heard from for {}",
                        site.site,
                        human(
                            now_ms.saturating_sub(since) + site.thresholds.site_offline_after_ms()
                        )
                    ),
                },
                start,
            );
        }
        for n in &site.nodes {
            let Some((reg, heard)) = n.health else {
                continue;
            };
            if is_down(now_ms, heard, &n.thresholds) {
                if offline_since.is_none() {
                    let start = out.alerts.len();
                    let t = &n.thresholds;
                    out.push(
                        Raised {
                            id: format!("node-down:{}", n.node),
                            kind: AlertKind::NodeDown,
                            severity: Severity::Medium,
                            site: site.site,
                            node: Some(n.node),
                            since_ms: Some(heard.saturating_add(t.down_after_ms())),
                            message: format!(
                                "node {} is down: not heard from for {} ({} heartbeats of {}s missed)",
                                n.node,
                                human(now_ms.saturating_sub(heard)),
                                t.missed_beats,
                                t.heartbeat_interval_s
                            ),
                        },
                        start,
                    );
                }
                continue;
            }
            node_alerts(&mut out, site.site, n.node, reg, &n.thresholds, now_ms);
        }
    }
    zone_quorum(&mut out, sites);
    let mut alerts = out.alerts;
    alerts.sort_unstable_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.site.cmp(&b.site))
            .then_with(|| a.id.cmp(&b.id))
    });
    alerts
}

/// `zone-quorum:ZONE`, hard, for each zone with a quorum whose nodes up
/// (reported, not down, their site not offline) are fewer than it, once
/// any of its nodes has reported: what
/// the zone detects does not count (the Wildfire seed's consensus). The
/// alert is placed at the zone's first site (by id); it has no start time
/// (which node's loss tipped it is each replica's own view).
fn zone_quorum(out: &mut Out<'_>, sites: &[SiteInput<'_>]) {
    // zone → (quorum, nodes, up, first site, nodes that ever reported)
    let mut zones: BTreeMap<&str, (u64, usize, usize, &str, usize)> = BTreeMap::new();
    for site in sites {
        let Some(Zone {
            name,
            quorum: Some(q),
        }) = site.zone
        else {
            continue;
        };
        let offline = site_offline_since(site, out.now_ms).is_some();
        let up = site
            .nodes
            .iter()
            .filter(|n| {
                !offline
                    && n.health
                        .is_some_and(|(_, heard)| !is_down(out.now_ms, heard, &n.thresholds))
            })
            .count();
        let e = zones.entry(name).or_insert((q, 0, 0, site.site, 0));
        e.0 = e.0.max(q);
        e.1 += site.nodes.len();
        e.2 += up;
        e.4 += site.nodes.iter().filter(|n| n.health.is_some()).count();
        if site.site < e.3 {
            e.3 = site.site;
        }
    }
    for (zone, (quorum, nodes, up, site, reported)) in zones {
        // A zone none of whose nodes ever reported is unknown, as a site
        // is (a fleet just set up), not below its quorum.
        if (up as u64) >= quorum || reported == 0 {
            continue;
        }
        let start = out.alerts.len();
        out.push(
            Raised {
                id: format!("zone-quorum:{zone}"),
                kind: AlertKind::ZoneQuorum,
                severity: Severity::Hard,
                site,
                node: None,
                since_ms: None,
                message: format!(
                    "zone {zone}: {up} of {nodes} node(s) up, below its quorum of {quorum}: what it detects does not count"
                ),
            },
            start,
        );
    }
}

/// A site's colour on the fleet board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteState {
    Green,
    Warn,
    Err,
    Unknown,
}

/// Each site's state, in the order of `sites`: `Err` with any hard alert
/// that is not silenced, or when none of its nodes that ever reported is
/// up (a dark site is never green, its offline alert silenced or not);
/// `Warn` with any other alert that is not silenced; `Unknown` when none of
/// its nodes ever reported (or it has no nodes); otherwise `Green`. Acked
/// alerts still count; silenced ones do not.
pub fn site_states(
    sites: &[SiteInput<'_>],
    alerts: &[Alert],
    now_ms: i64,
) -> Vec<(String, SiteState)> {
    // Per site: (has a visible hard alert, has any other visible alert).
    let mut seen: HashMap<&str, (bool, bool)> = HashMap::new();
    for a in alerts.iter().filter(|a| !a.is_hidden(now_ms)) {
        let e = seen.entry(a.site.as_str()).or_default();
        if a.severity == Severity::Hard {
            e.0 = true;
        } else {
            e.1 = true;
        }
    }
    sites
        .iter()
        .map(|s| {
            let heard: Vec<i64> = s
                .nodes
                .iter()
                .filter_map(|n| n.health.map(|(_, heard)| heard))
                .collect();
            let dark = !heard.is_empty()
                && s.nodes.iter().all(|n| {
                    n.health
                        .is_none_or(|(_, heard)| is_down(now_ms, heard, &n.thresholds))
                });
            let state = match seen.get(s.site) {
                Some((true, _)) => SiteState::Err,
                _ if dark => SiteState::Err,
                Some((false, true)) => SiteState::Warn,
                _ if heard.is_empty() => SiteState::Unknown,
                _ => SiteState::Green,
            };
            (s.site.to_string(), state)
        })
        .collect()
}

/// Fleet-wide counts for the status bar. Percentages are of sites (0 to 100,
/// all 0 when there are no sites); alert counts exclude silenced alerts,
/// which are counted in `hidden`.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct FleetSummary {
    pub sites: usize,
    pub green: usize,
    pub warn: usize,
    pub err: usize,
    pub unknown: usize,
    pub green_pct: f64,
    pub warn_pct: f64,
    pub err_pct: f64,
    pub unknown_pct: f64,
    pub alerts_soft: usize,
    pub alerts_medium: usize,
    pub alerts_hard: usize,
    pub hidden: usize,
}

pub fn summarize(states: &[(String, SiteState)], alerts: &[Alert], now_ms: i64) -> FleetSummary {
    let mut s = FleetSummary {
        sites: states.len(),
        ..FleetSummary::default()
    };
    for (_, st) in states {
        match st {
            SiteState::Green => s.green += 1,
            SiteState::Warn => s.warn += 1,
            SiteState::Err => s.err += 1,
            SiteState::Unknown => s.unknown += 1,
        }
    }
    let pct = |n: usize| {
        if s.sites == 0 {
            0.0
        } else {
            n as f64 * 100.0 / s.sites as f64
        }
    };
    s.green_pct = pct(s.green);
    s.warn_pct = pct(s.warn);
    s.err_pct = pct(s.err);
    s.unknown_pct = pct(s.unknown);
    for a in alerts {
        if a.is_hidden(now_ms) {
            s.hidden += 1;
            continue;
        }
        match a.severity {
            Severity::Soft => s.alerts_soft += 1,
            Severity::Medium => s.alerts_medium += 1,
            Severity::Hard => s.alerts_hard += 1,
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{
        ApplyReport, BackupStatus, CheckResult, DbBackup, DiskUsage, Metrics, TlsCert,
    };

    const T0: i64 = 1_700_000_000_000;

    fn reg(node: &str, time_ms: i64) -> HealthRegister {
        HealthRegister {
            node: node.to_string(),
            seq: 1,
            time_ms,
            metrics: Metrics {
                cpu_pct: 10.0,
                mem_pct: 40.0,
                disks: vec![DiskUsage {
                    mount: "/".into(),
                    used_pct: 50.0,
                }],
                load1: 0.1,
                uptime_s: 1000,
                temp_c: None,
            },
            tls: vec![],
            backup: None,
            applied: None,
            ..Default::default()
        }
    }

    fn node<'a>(name: &'a str, r: Option<&'a HealthRegister>) -> NodeInput<'a> {
        NodeInput {
            node: name,
            thresholds: Thresholds::default(),
            health: r.map(|r| (r, r.time_ms)),
        }
    }

    fn site<'a>(name: &'a str, nodes: Vec<NodeInput<'a>>) -> SiteInput<'a> {
        SiteInput {
            site: name,
            thresholds: Thresholds::default(),
            nodes,
            zone: None,
        }
    }

    fn eval(sites: &[SiteInput<'_>], now: i64) -> Vec<Alert> {
        evaluate(sites, now, &HashMap::new())
    }

    fn ids(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn node_is_down_after_three_missed_heartbeats() {
        let r = reg("n1", T0);
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        assert!(eval(&sites, T0 + 30_000).is_empty(), "30 s is still up");
        let alerts = eval(&sites, T0 + 30_001);
        assert_eq!(ids(&alerts), ["node-down:n1"]);
        let a = &alerts[0];
        assert_eq!(a.kind, AlertKind::NodeDown);
        assert_eq!(a.severity, Severity::Medium);
        assert_eq!(a.node.as_deref(), Some("n1"));
        assert_eq!(a.site, "s1");
        assert_eq!(a.since_ms, Some(T0 + 30_000));
        assert!(a.message.contains("n1"), "{}", a.message);
    }

    #[test]
    fn a_node_clock_running_ahead_cannot_keep_it_alive() {
        let r = reg("n1", T0 + DAY_MS);
        let sites = [site(
            "s1",
            vec![NodeInput {
                node: "n1",
                thresholds: Thresholds::default(),
                health: Some((&r, T0)),
            }],
        )];
        assert_eq!(ids(&eval(&sites, T0 + 60_000)), ["node-down:n1"]);
    }

    #[test]
    fn a_down_node_raises_no_metric_alerts() {
        let mut r = reg("n1", T0);
        r.metrics.disks[0].used_pct = 99.0;
        r.metrics.mem_pct = 99.0;
        r.applied = Some(ApplyReport {
            revision: "r1".into(),
            result: ApplyResult::Failed,
            error: None,
            duration_ms: 1,
            at_ms: T0,
            from: Vec::new(),
        });
        let up = reg("n2", T0 + 60_000);
        let sites = [site(
            "s1",
            vec![node("n1", Some(&r)), node("n2", Some(&up))],
        )];
        assert_eq!(eval(&sites, T0).len(), 3, "up: disk, mem, apply");
        assert_eq!(ids(&eval(&sites, T0 + 60_000)), ["node-down:n1"]);
    }

    #[test]
    fn nodes_that_never_reported_raise_nothing_and_their_site_is_unknown() {
        let sites = [
            site("quiet", vec![node("a", None), node("b", None)]),
            site("empty", vec![]),
        ];
        let alerts = eval(&sites, T0 + DAY_MS);
        assert!(alerts.is_empty());
        let states = site_states(&sites, &alerts, T0);
        assert_eq!(
            states,
            vec![
                ("quiet".to_string(), SiteState::Unknown),
                ("empty".to_string(), SiteState::Unknown)
            ]
        );
    }

    #[test]
    fn site_offline_after_five_minutes_of_silence_and_resolves_on_reconnect() {
        let a = reg("a", T0);
        let b = reg("b", T0 - 20_000);
        let sites = [site(
            "s1",
            vec![
                node("a", Some(&a)),
                node("b", Some(&b)),
                node("never", None),
            ],
        )];
        // Four minutes: both nodes down, the site not yet offline.
        let alerts = eval(&sites, T0 + 240_000);
        assert_eq!(ids(&alerts), ["node-down:a", "node-down:b"]);

        // Five minutes after the latest heartbeat: one hard site alert replaces them.
        assert_eq!(eval(&sites, T0 + 300_000).len(), 2);
        let alerts = eval(&sites, T0 + 300_001);
        assert_eq!(ids(&alerts), ["site-offline:s1"]);
        let s = &alerts[0];
        assert_eq!(s.kind, AlertKind::SiteOffline);
        assert_eq!(s.severity, Severity::Hard);
        assert_eq!(s.node, None);
        assert_eq!(s.since_ms, Some(T0 + 300_000));
        assert_eq!(
            site_states(&sites, &alerts, T0 + 300_001)[0].1,
            SiteState::Err
        );

        // Node a reconnects: the site alert is gone, b is still down.
        let a2 = reg("a", T0 + 400_000);
        let sites = [site(
            "s1",
            vec![
                node("a", Some(&a2)),
                node("b", Some(&b)),
                node("never", None),
            ],
        )];
        let alerts = eval(&sites, T0 + 400_000);
        assert_eq!(ids(&alerts), ["node-down:b"]);
        assert_eq!(
            site_states(&sites, &alerts, T0 + 400_000)[0].1,
            SiteState::Warn
        );
    }

    #[test]
    fn a_site_with_one_node_still_reporting_is_not_offline() {
        let a = reg("a", T0);
        let b = reg("b", T0 + 3_600_000);
        let sites = [site("s1", vec![node("a", Some(&a)), node("b", Some(&b))])];
        assert_eq!(ids(&eval(&sites, T0 + 3_600_000)), ["node-down:a"]);
    }

    #[test]
    fn site_offline_uses_the_sites_own_threshold() {
        let a = reg("a", T0);
        let mut s = site("s1", vec![node("a", Some(&a))]);
        s.thresholds.site_offline_s = 60;
        let alerts = eval(std::slice::from_ref(&s), T0 + 61_000);
        assert_eq!(ids(&alerts), ["site-offline:s1"]);
        assert_eq!(alerts[0].since_ms, Some(T0 + 60_000));
    }

    #[test]
    fn disk_over_85_percent_is_medium_and_over_95_hard() {
        let mut r = reg("n1", T0);
        r.metrics.disks = vec![
            DiskUsage {
                mount: "/".into(),
                used_pct: 85.0,
            },
            DiskUsage {
                mount: "/var".into(),
                used_pct: 85.5,
            },
            DiskUsage {
                mount: "/data".into(),
                used_pct: 95.0,
            },
        ];
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let alerts = eval(&sites, T0);
        assert_eq!(ids(&alerts), ["disk:n1:/data", "disk:n1:/var"]);
        assert_eq!(alerts[0].severity, Severity::Hard);
        assert_eq!(alerts[1].severity, Severity::Medium);
        assert_eq!(alerts[1].kind, AlertKind::Disk);
        assert!(alerts[1].message.contains("/var"), "{}", alerts[1].message);
    }

    #[test]
    fn per_node_thresholds_apply_to_that_node_only() {
        let mut r1 = reg("n1", T0);
        r1.metrics.disks[0].used_pct = 75.0;
        let mut r2 = reg("n2", T0);
        r2.metrics.disks[0].used_pct = 75.0;
        let mut strict = node("n1", Some(&r1));
        strict.thresholds.disk_pct = 70.0;
        let sites = [site("s1", vec![strict, node("n2", Some(&r2))])];
        assert_eq!(ids(&eval(&sites, T0)), ["disk:n1:/"]);
    }

    #[test]
    fn memory_over_90_percent_is_soft() {
        let mut r = reg("n1", T0);
        r.metrics.mem_pct = 90.0;
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        assert!(eval(&sites, T0).is_empty());
        r.metrics.mem_pct = 91.0;
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let alerts = eval(&sites, T0);
        assert_eq!(ids(&alerts), ["mem:n1"]);
        assert_eq!(alerts[0].severity, Severity::Soft);
        assert_eq!(alerts[0].kind, AlertKind::Memory);
    }

    #[test]
    fn tls_within_14_days_is_medium_and_within_3_days_or_expired_hard() {
        let mut r = reg("n1", T0);
        let cert = |name: &str, days_left_ms: i64| TlsCert {
            name: name.into(),
            not_after_ms: T0 + days_left_ms,
        };
        r.tls = vec![
            cert("fine", 14 * DAY_MS),
            cert("soon", 14 * DAY_MS - 1),
            cert("urgent", 3 * DAY_MS - 1),
            cert("gone", -DAY_MS),
        ];
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let alerts = eval(&sites, T0);
        let sev: Vec<_> = alerts.iter().map(|a| (a.id.as_str(), a.severity)).collect();
        assert_eq!(
            sev,
            [
                ("tls:n1:gone", Severity::Hard),
                ("tls:n1:urgent", Severity::Hard),
                ("tls:n1:soon", Severity::Medium),
            ]
        );
        assert!(
            alerts[0].message.contains("expired"),
            "{}",
            alerts[0].message
        );
        // The occurrence starts when the certificate entered the window.
        assert_eq!(alerts[2].since_ms, Some(T0 - 1));
    }

    #[test]
    fn backup_with_some_failed_databases_is_medium_and_all_failed_hard() {
        let db = |name: &str, ok: bool| DbBackup {
            name: name.into(),
            ok,
            error: (!ok).then(|| "dump timed out".to_string()),
        };
        let mut r = reg("n1", T0);
        r.backup = Some(BackupStatus {
            last_run_ms: T0 - HOUR_MS,
            databases: vec![db("users", true), db("orders", false)],
        });
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let alerts = eval(&sites, T0);
        assert_eq!(ids(&alerts), ["backup:n1"]);
        assert_eq!(alerts[0].kind, AlertKind::BackupFailed);
        assert_eq!(alerts[0].severity, Severity::Medium);
        assert_eq!(alerts[0].since_ms, Some(T0 - HOUR_MS));
        assert!(
            alerts[0].message.contains("orders: dump timed out"),
            "{}",
            alerts[0].message
        );

        r.backup.as_mut().unwrap().databases[0].ok = false;
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        assert_eq!(eval(&sites, T0)[0].severity, Severity::Hard);

        r.backup.as_mut().unwrap().databases = vec![db("users", true)];
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        assert!(eval(&sites, T0).is_empty());
    }

    #[test]
    fn backup_stale_after_48_hours_is_hard() {
        let mut r = reg("n1", T0);
        r.backup = Some(BackupStatus {
            last_run_ms: T0 - 48 * HOUR_MS,
            databases: vec![],
        });
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        assert!(eval(&sites, T0).is_empty(), "exactly 48 h is not stale");
        let mut r2 = r.clone();
        r2.time_ms = T0 + 1;
        let sites = [site("s1", vec![node("n1", Some(&r2))])];
        let alerts = eval(&sites, T0 + 1);
        assert_eq!(ids(&alerts), ["backup:n1"]);
        assert_eq!(alerts[0].kind, AlertKind::BackupStale);
        assert_eq!(alerts[0].severity, Severity::Hard);
        assert_eq!(alerts[0].since_ms, Some(T0));
    }

    #[test]
    fn failed_checks_drift_and_safe_mode_raise_alerts() {
        let mut r = reg("n1", T0);
        r.checks = vec![
            CheckResult {
                name: "frigate".into(),
                ok: false,
                output: "connection refused".into(),
            },
            CheckResult {
                name: "disk-smart".into(),
                ok: true,
                output: String::new(),
            },
        ];
        r.drift = vec!["frigate/config.yml".into()];
        r.safe_mode = Some("3 failed applies in a row".into());
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let alerts = eval(&sites, T0 + 1_000);
        let ids: Vec<(&str, Severity)> =
            alerts.iter().map(|a| (a.id.as_str(), a.severity)).collect();
        assert_eq!(
            ids,
            vec![
                ("safe-mode:n1", Severity::Hard),
                ("check:n1:frigate", Severity::Medium),
                ("drift:n1", Severity::Medium),
            ]
        );
        assert!(alerts[1].message.contains("connection refused"));
    }

    #[test]
    fn safe_mode_after_failed_applies_dates_from_the_apply_that_tripped_it() {
        let mut r = reg("n1", T0);
        r.applied = Some(ApplyReport {
            revision: "abc123".into(),
            result: ApplyResult::RolledBack,
            error: Some("check failed".into()),
            duration_ms: 800,
            at_ms: T0 - 60_000,
            from: Vec::new(),
        });
        r.safe_mode = Some(safe_mode_after_failures(3));
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let since = |alerts: &[Alert]| {
            alerts
                .iter()
                .find(|a| a.kind == AlertKind::SafeMode)
                .map(|a| a.since_ms)
        };
        assert_eq!(since(&eval(&sites, T0)), Some(Some(T0 - 60_000)));
        // The same occurrence, evaluated later: the same since, so an ack of
        // it keeps holding.
        assert_eq!(since(&eval(&sites, T0 + 30_000)), Some(Some(T0 - 60_000)));
        // A crash loop starts safe mode at a start-up the register does not
        // date: unknown, not the time of some older apply.
        r.safe_mode = Some("crash loop: 5 starts within 10 minutes".into());
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        assert_eq!(since(&eval(&sites, T0)), Some(None));
    }

    #[test]
    fn failed_or_rolled_back_apply_is_medium() {
        for (result, alerting) in [
            (ApplyResult::Ok, false),
            (ApplyResult::Failed, true),
            (ApplyResult::RolledBack, true),
        ] {
            let mut r = reg("n1", T0);
            r.applied = Some(ApplyReport {
                revision: "abc123".into(),
                result,
                error: Some("nginx -t failed".into()),
                duration_ms: 800,
                at_ms: T0 - 5_000,
                from: Vec::new(),
            });
            let sites = [site("s1", vec![node("n1", Some(&r))])];
            let alerts = eval(&sites, T0);
            if alerting {
                assert_eq!(ids(&alerts), ["apply:n1"]);
                assert_eq!(alerts[0].severity, Severity::Medium);
                assert_eq!(alerts[0].since_ms, Some(T0 - 5_000));
                assert!(alerts[0].message.contains("abc123"));
            } else {
                assert!(alerts.is_empty());
            }
        }
    }

    #[test]
    fn alerts_resolve_when_the_condition_clears() {
        let mut r = reg("n1", T0);
        r.metrics.disks[0].used_pct = 90.0;
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        assert_eq!(eval(&sites, T0).len(), 1);
        let mut cleaned = reg("n1", T0 + 10_000);
        cleaned.metrics.disks[0].used_pct = 60.0;
        let sites = [site("s1", vec![node("n1", Some(&cleaned))])];
        assert!(eval(&sites, T0 + 10_000).is_empty());
    }

    #[test]
    fn an_ack_marks_the_alert_but_does_not_hide_it() {
        let r = reg("n1", T0);
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let acks = HashMap::from([(
            "node-down:n1".to_string(),
            Ack {
                by: "ana".into(),
                at_ms: T0 + 40_000,
                until_ms: None,
                since_ms: Some(T0 + 30_000),
            },
        )]);
        let alerts = evaluate(&sites, T0 + 60_000, &acks);
        assert_eq!(alerts[0].acked_by.as_deref(), Some("ana"));
        assert!(!alerts[0].is_hidden(T0 + 60_000));
        // Its only node is down: the site is dark, whatever the ack.
        assert_eq!(
            site_states(&sites, &alerts, T0 + 60_000)[0].1,
            SiteState::Err
        );
    }

    #[test]
    fn a_site_with_no_node_up_is_err_even_with_its_alerts_silenced() {
        let (a, b) = (reg("n1", T0), reg("n2", T0));
        let sites = [site("s1", vec![node("n1", Some(&a)), node("n2", Some(&b))])];
        let silence = |id: &str| {
            (
                id.to_string(),
                Ack {
                    by: "ana".into(),
                    at_ms: T0,
                    until_ms: Some(T0 + DAY_MS),
                    since_ms: None,
                },
            )
        };
        let acks = HashMap::from([
            silence("node-down:n1"),
            silence("node-down:n2"),
            silence("site-offline:s1"),
        ]);
        let now = T0 + 600_000;
        let alerts = evaluate(&sites, now, &acks);
        assert!(alerts.iter().all(|a| a.is_hidden(now)), "{alerts:?}");
        assert_eq!(site_states(&sites, &alerts, now)[0].1, SiteState::Err);
        // One node back: no longer dark, and its alerts are silenced.
        let back = reg("n2", now);
        let sites = [site(
            "s1",
            vec![node("n1", Some(&a)), node("n2", Some(&back))],
        )];
        let alerts = evaluate(&sites, now, &acks);
        assert_eq!(site_states(&sites, &alerts, now)[0].1, SiteState::Green);
    }

    #[test]
    fn an_ack_holds_until_its_occurrence_resolves_and_not_for_the_next() {
        let acks = HashMap::from([(
            "node-down:n1".to_string(),
            Ack {
                by: "ana".into(),
                at_ms: T0 + 40_000,
                until_ms: None,
                since_ms: Some(T0 + 30_000),
            },
        )]);
        // The occurrence it was made on, however long it lasts (n2 keeps
        // the site online).
        let r = reg("n1", T0);
        let up = reg("n2", T0 + HOUR_MS);
        let sites = [site(
            "s1",
            vec![node("n1", Some(&r)), node("n2", Some(&up))],
        )];
        let alerts = evaluate(&sites, T0 + HOUR_MS, &acks);
        assert_eq!(alerts[0].acked_by.as_deref(), Some("ana"));
        // The node came back, then went down again an hour later: a new
        // occurrence, not acked.
        let r = reg("n1", T0 + HOUR_MS);
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let alerts = evaluate(&sites, T0 + HOUR_MS + 60_000, &acks);
        assert_eq!(ids(&alerts), ["node-down:n1"]);
        assert_eq!(alerts[0].acked_by, None);
        assert_eq!(alerts[0].silenced_until_ms, None);
        assert!(!alerts[0].is_hidden(T0 + HOUR_MS + 60_000));

        // An ack without since_ms covers every occurrence.
        let mut any = acks.clone();
        any.get_mut("node-down:n1").unwrap().since_ms = None;
        let alerts = evaluate(&sites, T0 + HOUR_MS + 60_000, &any);
        assert_eq!(alerts[0].acked_by.as_deref(), Some("ana"));
    }

    #[test]
    fn a_zone_below_its_quorum_raises_one_hard_alert() {
        let zone = Some(Zone {
            name: "north",
            quorum: Some(2),
        });
        let (a, b, c) = (reg("a", T0), reg("b", T0), reg("c", T0 + 10 * 60_000));
        let now = T0 + 10 * 60_000;
        // Two sites of the zone, one detector each; a's site has a second
        // node still up (so it is not offline), b is down.
        let mut north_1 = site("n1", vec![node("a", Some(&a)), node("c", Some(&c))]);
        north_1.zone = zone;
        let mut north_2 = site("n2", vec![node("b", Some(&b))]);
        north_2.zone = zone;
        let alerts = eval(&[north_2.clone(), north_1.clone()], now);
        let q: Vec<&Alert> = alerts
            .iter()
            .filter(|x| x.kind == AlertKind::ZoneQuorum)
            .collect();
        assert_eq!(q.len(), 1, "{alerts:#?}");
        assert_eq!(q[0].id, "zone-quorum:north");
        assert_eq!(q[0].site, "n1");
        assert_eq!(q[0].severity, Severity::Hard);
        assert!(
            q[0].message
                .contains("1 of 3 node(s) up, below its quorum of 2"),
            "{}",
            q[0].message
        );
        // With a quorum of one, or none set, no alert.
        north_1.zone = Some(Zone {
            name: "north",
            quorum: Some(1),
        });
        north_2.zone = north_1.zone;
        assert!(
            eval(&[north_1.clone(), north_2.clone()], now)
                .iter()
                .all(|x| x.kind != AlertKind::ZoneQuorum)
        );
        north_1.zone = Some(Zone {
            name: "north",
            quorum: None,
        });
        north_2.zone = north_1.zone;
        assert!(
            eval(&[north_1, north_2], now)
                .iter()
                .all(|x| x.kind != AlertKind::ZoneQuorum)
        );
        // A zone none of whose nodes ever reported (a fleet just set up)
        // is unknown, not below its quorum.
        let mut silent = site("n3", vec![node("d", None), node("e", None)]);
        silent.zone = zone;
        assert!(
            eval(&[silent], now)
                .iter()
                .all(|x| x.kind != AlertKind::ZoneQuorum)
        );
    }

    #[test]
    fn a_silence_holds_for_its_whole_duration_when_the_alert_fires_again() {
        // Silenced for 30 minutes on the occurrence that began at T0 + 30 s,
        // as `ops` writes a silence.
        let until = T0 + 40_000 + 30 * 60_000;
        let acks = HashMap::from([(
            "node-down:n1".to_string(),
            Ack {
                by: "ana".into(),
                at_ms: T0 + 40_000,
                until_ms: Some(until),
                since_ms: Some(T0 + 30_000),
            },
        )]);
        // The node reported once more and went down again: the same alert
        // fires again about 90 s later, a new occurrence (n2 keeps the site
        // online).
        let r = reg("n1", T0 + 100_000);
        let up = reg("n2", until);
        let sites = [site(
            "s1",
            vec![node("n1", Some(&r)), node("n2", Some(&up))],
        )];
        let now = T0 + 130_001;
        let alerts = evaluate(&sites, now, &acks);
        assert_eq!(ids(&alerts), ["node-down:n1"]);
        assert_ne!(alerts[0].since_ms, Some(T0 + 30_000), "a new occurrence");
        assert_eq!(alerts[0].silenced_until_ms, Some(until));
        assert!(alerts[0].is_hidden(now), "still silenced");
        assert_eq!(
            alerts[0].acked_by, None,
            "the ack part named the first occurrence"
        );
        assert_eq!(site_states(&sites, &alerts, now)[0].1, SiteState::Green);
        // Until the silence ends, and no longer.
        let alerts = evaluate(&sites, until - 1, &acks);
        assert!(alerts[0].is_hidden(until - 1));
        let alerts = evaluate(&sites, until, &acks);
        assert_eq!(alerts[0].silenced_until_ms, None);
        assert!(!alerts[0].is_hidden(until));
    }

    #[test]
    fn silence_expires() {
        let mut r = reg("n1", T0);
        r.metrics.mem_pct = 95.0;
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let acks = HashMap::from([(
            "mem:n1".to_string(),
            Ack {
                by: "bo".into(),
                at_ms: T0,
                until_ms: Some(T0 + HOUR_MS),
                since_ms: None,
            },
        )]);
        let during = evaluate(&sites, T0 + 1_000, &acks);
        assert_eq!(during[0].silenced_until_ms, Some(T0 + HOUR_MS));
        assert!(during[0].is_hidden(T0 + 1_000));
        assert!(!during[0].is_hidden(T0 + HOUR_MS));
        assert_eq!(
            site_states(&sites, &during, T0 + 1_000)[0].1,
            SiteState::Green
        );

        // The node keeps reporting; after the hour the alert shows again.
        let mut r2 = r.clone();
        r2.time_ms = T0 + HOUR_MS;
        let sites = [site("s1", vec![node("n1", Some(&r2))])];
        let after = evaluate(&sites, T0 + HOUR_MS, &acks);
        assert_eq!(after[0].silenced_until_ms, None);
        assert_eq!(after[0].acked_by.as_deref(), Some("bo"));
        assert!(!after[0].is_hidden(T0 + HOUR_MS));
        assert_eq!(
            site_states(&sites, &after, T0 + HOUR_MS)[0].1,
            SiteState::Warn
        );
    }

    #[test]
    fn thresholds_from_config_override_defaults() {
        let cfg: HashMap<String, serde_json::Value> = serde_json::from_str(
            r#"{
                "heartbeat.interval_s": 5,
                "alerts.missed_beats": 4.0,
                "alerts.site_offline_s": 120,
                "alerts.disk_pct": 70,
                "alerts.mem_pct": 95.5,
                "alerts.tls_days": "30",
                "alerts.backup_stale_h": -1
            }"#,
        )
        .unwrap();
        let t = Thresholds::from_lookup(|k| cfg.get(k));
        assert_eq!(t.heartbeat_interval_s, 5);
        assert_eq!(t.missed_beats, 4);
        assert_eq!(t.site_offline_s, 120);
        assert_eq!(t.disk_pct, 70.0);
        assert_eq!(t.mem_pct, 95.5);
        // Wrong types keep the defaults.
        assert_eq!(t.tls_days, 14);
        assert_eq!(t.backup_stale_h, 48);
        assert_eq!(t.down_after_ms(), 20_000);

        assert_eq!(Thresholds::from_lookup(|_| None), Thresholds::default());
        let zero = serde_json::json!(0);
        let z = Thresholds::from_lookup(|_| Some(&zero));
        assert_eq!(z.heartbeat_interval_s, 10, "a zero interval is refused");
        assert_eq!(z.missed_beats, 3);
        assert_eq!(z.site_offline_s, 0);

        // And the rules use them: down after 4 beats of 5 s.
        let r = reg("n1", T0);
        let mut n = node("n1", Some(&r));
        n.thresholds = t;
        let sites = [site("s1", vec![n])];
        assert!(eval(&sites, T0 + 20_000).is_empty());
        assert_eq!(ids(&eval(&sites, T0 + 20_001)), ["node-down:n1"]);
    }

    #[test]
    fn alerts_are_sorted_by_severity_then_site_then_id() {
        let mut a = reg("a", T0);
        a.metrics.mem_pct = 99.0;
        a.metrics.disks[0].used_pct = 99.0;
        let mut b = reg("b", T0);
        b.metrics.disks[0].used_pct = 90.0;
        b.metrics.mem_pct = 99.0;
        let c = reg("c", T0 - 60_000);
        let sites = [
            site("zeta", vec![node("a", Some(&a))]),
            site(
                "alpha",
                vec![node("b", Some(&b)), node("c", Some(&c)), node("d", None)],
            ),
        ];
        let alerts = eval(&sites, T0);
        let got: Vec<_> = alerts
            .iter()
            .map(|x| (x.severity, x.site.as_str(), x.id.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Severity::Hard, "zeta", "disk:a:/"),
                (Severity::Medium, "alpha", "disk:b:/"),
                (Severity::Medium, "alpha", "node-down:c"),
                (Severity::Soft, "alpha", "mem:b"),
                (Severity::Soft, "zeta", "mem:a"),
            ]
        );
    }

    #[test]
    fn a_mount_listed_twice_yields_one_alert_at_the_worse_level() {
        let mut r = reg("n1", T0);
        r.metrics.disks = vec![
            DiskUsage {
                mount: "/".into(),
                used_pct: 88.0,
            },
            DiskUsage {
                mount: "/".into(),
                used_pct: 97.0,
            },
        ];
        let sites = [site("s1", vec![node("n1", Some(&r))])];
        let alerts = eval(&sites, T0);
        assert_eq!(ids(&alerts), ["disk:n1:/"]);
        assert_eq!(alerts[0].severity, Severity::Hard);
    }

    #[test]
    fn fleet_summary_counts_sites_and_visible_alerts() {
        let ok = reg("ok", T0);
        let mut hot = reg("hot", T0);
        hot.metrics.disks[0].used_pct = 99.0;
        hot.metrics.mem_pct = 99.0;
        let mut warm = reg("warm", T0);
        warm.metrics.mem_pct = 99.0;
        let sites = [
            site("green", vec![node("ok", Some(&ok)), node("new", None)]),
            site("err", vec![node("hot", Some(&hot))]),
            site("warn", vec![node("warm", Some(&warm))]),
            site("unknown", vec![node("x", None)]),
        ];
        let acks = HashMap::from([(
            "mem:hot".to_string(),
            Ack {
                by: "cy".into(),
                at_ms: T0,
                until_ms: Some(T0 + HOUR_MS),
                since_ms: None,
            },
        )]);
        let alerts = evaluate(&sites, T0, &acks);
        let states = site_states(&sites, &alerts, T0);
        assert_eq!(
            states.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [
                SiteState::Green,
                SiteState::Err,
                SiteState::Warn,
                SiteState::Unknown
            ]
        );
        let s = summarize(&states, &alerts, T0);
        assert_eq!(
            (s.sites, s.green, s.warn, s.err, s.unknown),
            (4, 1, 1, 1, 1)
        );
        assert_eq!(s.green_pct, 25.0);
        assert_eq!(s.err_pct, 25.0);
        assert_eq!((s.alerts_soft, s.alerts_medium, s.alerts_hard), (1, 0, 1));
        assert_eq!(s.hidden, 1);

        let empty = summarize(&[], &[], T0);
        assert_eq!(empty.sites, 0);
        assert_eq!(empty.green_pct, 0.0);
        assert_eq!(empty.unknown_pct, 0.0);
    }

    #[test]
    fn severity_orders_soft_medium_hard_and_prints_lowercase() {
        assert!(Severity::Soft < Severity::Medium && Severity::Medium < Severity::Hard);
        assert_eq!(Severity::Hard.to_string(), "hard");
        assert_eq!(
            serde_json::to_string(&Severity::Medium).unwrap(),
            "\"medium\""
        );
        assert_eq!(
            serde_json::to_string(&AlertKind::TlsExpiry).unwrap(),
            "\"tls_expiry\""
        );
        assert_eq!(serde_json::to_string(&SiteState::Err).unwrap(), "\"err\"");
    }

    #[test]
    fn ten_thousand_nodes_raise_exactly_the_alerts_their_registers_call_for() {
        let mut regs = Vec::new();
        for i in 0..10_000 {
            let mut r = reg(&format!("n{i}"), T0);
            if i % 100 == 0 {
                r.metrics.disks[0].used_pct = 90.0;
            }
            if i % 1000 == 1 {
                r.time_ms = T0 - HOUR_MS;
            }
            r.tls = vec![TlsCert {
                name: "web".into(),
                not_after_ms: T0 + 90 * DAY_MS,
            }];
            regs.push(r);
        }
        let names: Vec<String> = (0..1_000).map(|i| format!("site-{i}")).collect();
        let sites: Vec<SiteInput<'_>> = regs
            .chunks(10)
            .zip(&names)
            .map(|(chunk, name)| SiteInput {
                site: name,
                zone: None,
                thresholds: Thresholds::default(),
                nodes: chunk
                    .iter()
                    .map(|r| NodeInput {
                        node: r.node.as_str(),
                        thresholds: Thresholds::default(),
                        // Heard when it reported (an hour ago for every 1000th).
                        health: Some((r, r.time_ms)),
                    })
                    .collect(),
            })
            .collect();
        // Speed is measured in `cargo bench -p fleetdeck-store --bench replica`.
        let alerts = evaluate(&sites, T0 + 1_000, &HashMap::new());
        let disk = alerts.iter().filter(|a| a.kind == AlertKind::Disk).count();
        let down = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::NodeDown)
            .count();
        assert_eq!((disk, down, alerts.len()), (100, 10, 110));
    }
}

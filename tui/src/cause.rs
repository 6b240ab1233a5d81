//! An alert as a row reads it: the node (or the site) first, then the cause,
//! short — `bl-lab-1-hub: rolled back — unknown detector (rev 4b66…)` — so
//! that the reason is on screen however narrow the column. Built from the
//! health register the alert comes from (the store's message, whole, is in
//! the alert's detail); an alert whose register says less falls back to the
//! store's message with its subject first.

use fleetdeck_store::alerts::{Alert, AlertKind};
use fleetdeck_store::health::{ApplyResult, HealthRegister};

use crate::source::Snapshot;
use crate::text;

/// "node: cause" for `a`, as of `now_ms`.
pub fn headline(snap: &Snapshot, now_ms: i64, a: &Alert) -> String {
    let subject = a.node.as_deref().unwrap_or(&a.site);
    let cause = a
        .node
        .as_deref()
        .and_then(|n| snap.health.get(n))
        .and_then(|r| from_register(a, &r.reg, now_ms))
        .or_else(|| from_facts(snap, now_ms, a))
        .unwrap_or_else(|| without_subject(a));
    format!("{subject}: {cause}")
}

/// The part of an alert id after its kind and node: the mount of a disk
/// alert, the certificate of a TLS one, the check of a failed check.
fn item<'a>(a: &'a Alert, node: &str) -> Option<&'a str> {
    let (_, rest) = a.id.split_once(':')?;
    rest.strip_prefix(node)?.strip_prefix(':')
}

/// A revision as rows show it: its first four characters.
fn rev(r: &str) -> String {
    text::fit(r, 5)
}

fn from_register(a: &Alert, reg: &HealthRegister, now_ms: i64) -> Option<String> {
    let node = a.node.as_deref()?;
    Some(match a.kind {
        AlertKind::ApplyFailed => {
            let applied = reg.applied.as_ref()?;
            let what = match applied.result {
                ApplyResult::RolledBack => "rolled back",
                ApplyResult::Failed => "apply failed",
                ApplyResult::Ok => return None,
            };
            match &applied.error {
                Some(e) => format!("{what} — {e} (rev {})", rev(&applied.revision)),
                None => format!("{what} (rev {})", rev(&applied.revision)),
            }
        }
        AlertKind::SafeMode => format!("safe mode — {}", reg.safe_mode.as_deref()?),
        AlertKind::Disk => {
            let mount = item(a, node)?;
            let d = reg.metrics.disks.iter().find(|d| d.mount == mount)?;
            format!("disk {mount} {:.0}% full", d.used_pct)
        }
        AlertKind::Memory => format!("memory {:.0}% used", reg.metrics.mem_pct),
        AlertKind::TlsExpiry => {
            let name = item(a, node)?;
            let cert = reg.tls.iter().find(|c| c.name == name)?;
            let left = cert.not_after_ms - now_ms;
            if left <= 0 {
                format!("TLS {name} expired {} ago", text::duration(-left))
            } else {
                format!("TLS {name} expires in {}", text::duration(left))
            }
        }
        AlertKind::BackupFailed => {
            let b = reg.backup.as_ref()?;
            let failed: Vec<String> = b
                .databases
                .iter()
                .filter(|d| !d.ok)
                .map(|d| match &d.error {
                    Some(e) => format!("{}: {e}", d.name),
                    None => d.name.clone(),
                })
                .collect();
            format!("backup failed — {}", failed.join(", "))
        }
        AlertKind::BackupStale => {
            let b = reg.backup.as_ref()?;
            format!(
                "backup stale — last ran {}",
                text::ago(now_ms, b.last_run_ms)
            )
        }
        AlertKind::CheckFailed => {
            let name = item(a, node)?;
            let c = reg.checks.iter().find(|c| c.name == name)?;
            match c.output.lines().last().filter(|l| !l.is_empty()) {
                Some(out) => format!("check {name} failed — {out}"),
                None => format!("check {name} failed"),
            }
        }
        AlertKind::Drift => format!("edited by hand — {}", reg.drift.join(", ")),
        AlertKind::NodeDown | AlertKind::SiteOffline | AlertKind::ZoneQuorum => return None,
    })
}

/// Down and offline: what the console knows of when it last heard.
fn from_facts(snap: &Snapshot, now_ms: i64, a: &Alert) -> Option<String> {
    match a.kind {
        AlertKind::NodeDown => {
            let heard = snap.node(a.node.as_deref()?)?.last_heard_ms?;
            Some(format!(
                "down — not heard for {}",
                text::duration(now_ms - heard)
            ))
        }
        AlertKind::SiteOffline => {
            let heard = snap.site(&a.site)?.last_heard_ms?;
            Some(format!(
                "offline — no node heard for {}",
                text::duration(now_ms - heard)
            ))
        }
        _ => None,
    }
}

/// The store's message without the "on node X" its subject now says.
fn without_subject(a: &Alert) -> String {
    match &a.node {
        Some(n) => a.message.replacen(&format!(" on node {n}"), "", 1),
        None => a.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_revision_is_cut_to_four_characters() {
        assert_eq!(rev("4b660dc1833ab"), "4b66…");
        assert_eq!(rev("r43"), "r43");
    }
}

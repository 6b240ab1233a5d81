//! When this console first saw each alert open: what the AGE column counts
//! from. An alert's `since_ms` is when its condition began by the rule (a
//! certificate entered its warning window ten days ago), not when it fired;
//! AGE is how long this console has seen it open. An alert that resolves
//! and fires again starts over.
//!
//! Alerts already open in the console's first look at the fleet fired
//! before it started: their age counts from the start of their occurrence
//! when the rule dates it, else it is "at least" the console's own age.

use std::collections::HashMap;

use fleetdeck_store::alerts::Alert;

use crate::source::Snapshot;

/// How long an alert has been open, as far as this console knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Age {
    pub ms: i64,
    /// Open when the console started and not dated by its rule: at least
    /// this long.
    pub at_least: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct First {
    at_ms: i64,
    at_least: bool,
}

#[derive(Debug, Default)]
pub struct Seen {
    first: HashMap<String, First>,
    /// Whether the console has had its first look at a fleet.
    looked: bool,
}

impl Seen {
    /// Takes in the alerts of a new snapshot.
    pub fn update(&mut self, snap: &Snapshot) {
        // The placeholder before the first snapshot has no fleet at all.
        let first_look = !self.looked && !snap.fleet.sites.is_empty();
        let taken = snap.taken_ms;
        let mut first = HashMap::with_capacity(snap.alerts.len());
        for a in &snap.alerts {
            let seen = match self.first.get(&a.id) {
                Some(f) => *f,
                None if first_look => match a.since_ms {
                    Some(s) => First {
                        at_ms: s.min(taken),
                        at_least: false,
                    },
                    None => First {
                        at_ms: taken,
                        at_least: true,
                    },
                },
                None => First {
                    at_ms: taken,
                    at_least: false,
                },
            };
            first.insert(a.id.clone(), seen);
        }
        self.first = first;
        self.looked |= first_look;
    }

    /// The ages a past moment can give (as-of mode): the console did not
    /// watch it, so only alerts their rule dates have one.
    pub fn dated(snap: &Snapshot) -> Seen {
        let first = snap
            .alerts
            .iter()
            .filter_map(|a| {
                let at_ms = a.since_ms?.min(snap.taken_ms);
                Some((
                    a.id.clone(),
                    First {
                        at_ms,
                        at_least: false,
                    },
                ))
            })
            .collect();
        Seen {
            first,
            looked: true,
        }
    }

    /// How long `a` has been open at `now_ms`.
    pub fn age(&self, now_ms: i64, a: &Alert) -> Option<Age> {
        self.first.get(&a.id).map(|f| Age {
            ms: now_ms.saturating_sub(f.at_ms).max(0),
            at_least: f.at_least,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_store::alerts::{AlertKind, FleetSummary, Severity};
    use fleetdeck_store::document::{FleetState, Site, SiteRecord};
    use std::sync::Arc;

    fn alert(id: &str, since_ms: Option<i64>) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::TlsExpiry,
            severity: Severity::Medium,
            site: "S".into(),
            node: None,
            since_ms,
            message: String::new(),
            acked_by: None,
            silenced_until_ms: None,
        }
    }

    fn snap(taken_ms: i64, alerts: Vec<Alert>) -> Snapshot {
        let mut fleet = FleetState::default();
        let id = fleetdeck_store::SiteId::parse("S").unwrap();
        fleet.sites.insert(
            id.clone(),
            Site {
                id,
                record: SiteRecord {
                    name: "S".into(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
                overrides: Default::default(),
            },
        );
        Snapshot::build(
            taken_ms,
            Arc::new(fleet),
            Arc::default(),
            alerts,
            &[],
            FleetSummary::default(),
        )
    }

    #[test]
    fn age_counts_from_when_the_console_saw_the_alert_fire() {
        let mut seen = Seen::default();
        seen.update(&Snapshot::empty(0));
        // Open at the first look: dated by its rule, or at least as old as
        // the console.
        seen.update(&snap(
            100_000,
            vec![alert("old", Some(40_000)), alert("level", None)],
        ));
        let at = |seen: &Seen, id: &str, now: i64| seen.age(now, &alert(id, None));
        assert_eq!(
            at(&seen, "old", 110_000),
            Some(Age {
                ms: 70_000,
                at_least: false
            })
        );
        assert_eq!(
            at(&seen, "level", 110_000),
            Some(Age {
                ms: 10_000,
                at_least: true
            })
        );
        // A certificate that entered its window ten days ago fires now: its
        // age is seconds, not ten days.
        let tls = alert("tls", Some(100_000 - 10 * 86_400_000));
        seen.update(&snap(120_000, vec![alert("old", Some(40_000)), tls]));
        assert_eq!(at(&seen, "tls", 125_000).map(|a| a.ms), Some(5_000));
        // Resolved, then fired again: it starts over.
        seen.update(&snap(130_000, vec![]));
        seen.update(&snap(140_000, vec![alert("old", Some(40_000))]));
        assert_eq!(at(&seen, "old", 141_000).map(|a| a.ms), Some(1_000));
        assert_eq!(at(&seen, "gone", 141_000), None);
    }
}

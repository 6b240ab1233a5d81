//! As-of mode: the fleet as this replica saw it at a past moment (`:at
//! TIME`, or `[`/`]` and ←/→ from one event of the fleet's timeline to the
//! next). Every view draws the moment's snapshot instead of the live one,
//! ages count to the moment, and every write is refused; Esc returns to now.
//!
//! The moment is the store's (`Replica::moment_at`, computed by the same
//! rules as now); what the console adds is where a step lands: the nearest
//! event before or after the moment shown, found in windows that widen
//! until one holds an event.

use std::sync::Arc;

use fleetdeck_store::at::At;
use fleetdeck_store::events::{Filter, FleetEvent};

use crate::seen::Seen;
use crate::series::Series;
use crate::source::{Snapshot, Source};

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;

/// How far a step looks for the nearest event, window after window: near
/// events are found without reading the whole record, far ones still are
/// (node events are kept 90 days).
const REACH_MS: [i64; 6] = [10 * MIN, 60 * MIN, 6 * 60 * MIN, DAY, 7 * DAY, 90 * DAY];

/// The moment shown in as-of mode.
pub struct Past {
    pub snap: Arc<Snapshot>,
    /// Alert ages at the moment: those the rules date.
    pub seen: Seen,
    /// Sparklines at the moment: each node's register then.
    pub series: Series,
    /// The event stepped to, if the moment is one.
    pub event: Option<FleetEvent>,
    /// Where the next step looks from: the event's own time, else the
    /// moment's.
    pub cursor_ms: i64,
}

impl Past {
    pub fn new(snap: Snapshot, event: Option<FleetEvent>) -> Past {
        let seen = Seen::dated(&snap);
        let mut series = Series::default();
        series.observe(&snap.health);
        let cursor_ms = event.as_ref().map_or(snap.taken_ms, |e| e.at_ms);
        Past {
            snap: Arc::new(snap),
            seen,
            series,
            event,
            cursor_ms,
        }
    }

    pub fn at_ms(&self) -> i64 {
        self.snap.taken_ms
    }
}

/// The moment that shows an event: a change's own (the document at it,
/// health as this replica held it then), else just after what a node did
/// (the silence that made it down counts from then).
pub fn moment_of(e: &FleetEvent, now_ms: i64) -> At {
    match &e.change {
        Some(c) => At::Change(c.clone()),
        None => At::Time(e.at_ms.saturating_add(1).min(now_ms)),
    }
}

/// The event nearest before `from_ms` (after it when `later`, no later
/// than `now_ms`), or None when the record holds none that side.
pub fn nearest_event(
    source: &mut dyn Source,
    from_ms: i64,
    later: bool,
    now_ms: i64,
) -> Result<Option<FleetEvent>, String> {
    let filter = Filter::default();
    for reach in REACH_MS {
        let (lo, hi) = if later {
            (
                from_ms.saturating_add(1),
                from_ms.saturating_add(reach).min(now_ms),
            )
        } else {
            (from_ms.saturating_sub(reach), from_ms.saturating_sub(1))
        };
        if lo > hi {
            return Ok(None);
        }
        // Newest first: the nearest is the last one after, the first before.
        let events = source.events(lo, hi, &filter)?;
        let nearest = if later {
            events.into_iter().next_back()
        } else {
            events.into_iter().next()
        };
        if nearest.is_some() {
            return Ok(nearest);
        }
        if later && hi == now_ms {
            return Ok(None);
        }
    }
    Ok(None)
}

/// A step: the nearest event and the moment that shows it, or why not.
pub fn step(
    source: &mut dyn Source,
    from_ms: i64,
    later: bool,
    now_ms: i64,
) -> (Option<FleetEvent>, Result<Snapshot, String>) {
    match nearest_event(source, from_ms, later, now_ms) {
        Ok(Some(e)) => {
            let moment = source.moment_at(&moment_of(&e, now_ms));
            (Some(e), moment)
        }
        Ok(None) if later => (
            None,
            Err("no later event: this is the last one before now (esc returns to now)".into()),
        ),
        Ok(None) => (
            None,
            Err("no earlier event in this replica's record".into()),
        ),
        Err(e) => (None, Err(e)),
    }
}

//! `--at TIME`: the fleet as this replica held it at a past moment. One
//! parser for every command that takes it: RFC 3339 (`2026-12-06T03:12:00Z`),
//! a time ago (`2h`, `90m`), or a change id (`ID^`: just before it).

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use fleetdeck_store::document::FleetState;
use fleetdeck_store::moment::Moment;
use fleetdeck_store::{Replica, now_ms};

use crate::output::{Out, fmt_time};

/// What `--at` named.
enum At {
    Time(i64),
    Change(String),
}

fn parse(at: &str) -> Result<At> {
    let now = now_ms();
    let time = if let Ok(t) = humantime::parse_rfc3339_weak(at) {
        Some(
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        )
    } else if let Ok(d) = humantime::parse_duration(at) {
        Some(now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    } else {
        None
    };
    match time {
        Some(ms) if ms > now => bail!("--at {at}: that is in the future"),
        Some(ms) => Ok(At::Time(ms)),
        None => Ok(At::Change(at.to_string())),
    }
}

fn not_understood(at: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(
        "--at {at}: not a time (RFC 3339, like 2026-12-06T03:12:00Z), a time ago (2h) or a change id ({e})"
    )
}

/// The fleet's document now, or as this replica held it at `--at`.
pub(super) fn state(r: &mut Replica, out: &Out, at: Option<&str>) -> Result<Arc<FleetState>> {
    let Some(at) = at else {
        return Ok(r.state().clone());
    };
    let heads = match parse(at)? {
        At::Time(ms) => {
            out.note(&format!(
                "as this replica held the fleet at {}",
                fmt_time(ms)
            ));
            r.heads_at_time(ms)?
        }
        At::Change(c) => {
            let heads = r.resolve(&c).map_err(|e| not_understood(at, e))?;
            out.note(&format!("as of change {c}"));
            heads
        }
    };
    Ok(Arc::new(r.state_at(&heads)?))
}

/// The fleet, config and health, now or at `--at`; a past moment is
/// announced on stderr (the answer on stdout stays what scripts parse).
pub(super) fn moment(r: &mut Replica, out: &Out, at: Option<&str>) -> Result<Moment> {
    let Some(at) = at else {
        return Ok(r.moment());
    };
    let m = match parse(at)? {
        At::Time(ms) => r.moment_at(ms)?,
        At::Change(c) => {
            r.resolve(&c).map_err(|e| not_understood(at, e))?;
            r.moment_at_change(&c)?
        }
    };
    out.note(&format!(
        "as this replica saw the fleet at {} (health from its record: --help says what it keeps)",
        fmt_time(m.at_ms)
    ));
    Ok(m)
}

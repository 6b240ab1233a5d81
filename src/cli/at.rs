//! `--at TIME`: the fleet as this replica held it at a past moment. The
//! rules of `TIME` (RFC 3339, a time ago, or a change id with `^` for just
//! before it) are the store's (`fleetdeck_store::at`), which the console's
//! `:at` reads too; this file says what the CLI prints around them.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use fleetdeck_store::at::{self, At};
use fleetdeck_store::document::FleetState;
use fleetdeck_store::moment::Moment;
use fleetdeck_store::{Replica, now_ms};

use crate::output::{Out, fmt_time};

fn parse(text: &str) -> Result<At> {
    At::parse(text, now_ms()).map_err(|e| anyhow!("--at {e}"))
}

/// A change id that named no change is the operator's `--at` that was not
/// understood; other errors (no data that old) speak for themselves.
fn worded(at: &At, e: fleetdeck_store::StoreError) -> anyhow::Error {
    match at {
        At::Change(_) if e.to_string().contains(": not a time (") => anyhow!("--at {e}"),
        _ => e.into(),
    }
}

/// The fleet's document now, or as this replica held it at `--at`.
pub(super) fn state(r: &mut Replica, out: &Out, at: Option<&str>) -> Result<Arc<FleetState>> {
    let Some(text) = at else {
        return Ok(r.state().clone());
    };
    let at = parse(text)?;
    let heads = at::heads(r, &at).map_err(|e| worded(&at, e))?;
    match &at {
        At::Time(ms) => out.note(&format!(
            "as this replica held the fleet at {}",
            fmt_time(*ms)
        )),
        At::Change(c) => out.note(&format!("as of change {c}")),
    }
    Ok(Arc::new(r.state_at(&heads)?))
}

/// The fleet, config and health, now or at `--at`; a past moment is
/// announced on stderr (the answer on stdout stays what scripts parse).
pub(super) fn moment(r: &mut Replica, out: &Out, at: Option<&str>) -> Result<Moment> {
    let Some(text) = at else {
        return Ok(r.moment());
    };
    let at = parse(text)?;
    let m = at::moment(r, &at).map_err(|e| worded(&at, e))?;
    out.note(&format!(
        "as this replica saw the fleet at {} (health from its record: --help says what it keeps)",
        fmt_time(m.at_ms)
    ));
    Ok(m)
}

//! A past moment as an operator names it: the CLI's `--at TIME` and the
//! console's `:at TIME` read it with the same rules. `TIME` is an RFC 3339
//! time (`2026-12-06T03:12:00Z`), a time ago (`2h`, `90m`), or a change id
//! (`ID^`: just before it); and [`moment`] is the fleet it names.

use std::fmt;

use automerge::ChangeHash;

use crate::error::{Result, StoreError};
use crate::moment::Moment;
use crate::replica::{Replica, rfc3339};

/// What `TIME` named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum At {
    /// A time, in milliseconds since the Unix epoch (this replica's clock).
    Time(i64),
    /// A change id or a unique prefix of one; with `^`, just before it.
    Change(String),
}

impl At {
    /// Reads `text` at `now_ms`: a time or a time ago (a time after `now_ms`
    /// is refused), else a change id, checked only when it is resolved
    /// ([`moment`], [`heads`]).
    pub fn parse(text: &str, now_ms: i64) -> Result<At> {
        let text = text.trim();
        if text.is_empty() {
            return Err(StoreError::Invalid(
                "a moment is needed: a time (RFC 3339, like 2026-12-06T03:12:00Z), a time ago (2h) or a change id".into(),
            ));
        }
        let time = if let Ok(t) = humantime::parse_rfc3339_weak(text) {
            Some(
                t.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or(0),
            )
        } else if let Ok(d) = humantime::parse_duration(text) {
            Some(now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
        } else {
            None
        };
        match time {
            Some(ms) if ms > now_ms => Err(StoreError::Invalid(format!(
                "{text}: that is in the future"
            ))),
            Some(ms) => Ok(At::Time(ms)),
            None => Ok(At::Change(text.to_string())),
        }
    }
}

impl fmt::Display for At {
    /// `2026-12-06T03:12:00Z`, `change 4b66a1c2` or `just before change
    /// 4b66a1c2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Time(ms) => f.write_str(&rfc3339(*ms)),
            At::Change(c) => match c.strip_suffix('^') {
                Some(id) => write!(f, "just before change {id}"),
                None => write!(f, "change {c}"),
            },
        }
    }
}

/// The error for a `TIME` that named no change either: what a moment may be.
pub fn not_understood(text: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Invalid(format!(
        "{}: not a time (RFC 3339, like 2026-12-06T03:12:00Z), a time ago (2h) or a change id ({e})",
        text.trim()
    ))
}

/// The heads this replica held at the moment (a time), or of the change.
pub fn heads(r: &mut Replica, at: &At) -> Result<Vec<ChangeHash>> {
    match at {
        At::Time(ms) => r.heads_at_time(*ms),
        At::Change(c) => r.resolve(c).map_err(|e| not_understood(c, e)),
    }
}

/// The fleet, config and health at the moment (`Replica::moment_at`, or
/// `Replica::moment_at_change` for a change).
pub fn moment(r: &mut Replica, at: &At) -> Result<Moment> {
    match at {
        At::Time(ms) => r.moment_at(*ms),
        At::Change(c) => {
            r.resolve(c).map_err(|e| not_understood(c, e))?;
            r.moment_at_change(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_time_a_time_ago_or_a_change() {
        assert_eq!(
            At::parse("2026-12-06T03:12:00Z", NOW).unwrap(),
            At::Time(1_796_526_720_000)
        );
        assert_eq!(At::parse(" 2h ", NOW).unwrap(), At::Time(NOW - 7_200_000));
        assert_eq!(
            At::parse("4b66a1c2^", NOW).unwrap(),
            At::Change("4b66a1c2^".into())
        );
        assert_eq!(
            At::Change("4b66a1c2^".into()).to_string(),
            "just before change 4b66a1c2"
        );
        assert_eq!(
            At::Time(1_796_526_720_000).to_string(),
            "2026-12-06T03:12:00Z"
        );
    }

    #[test]
    fn the_future_and_nothing_are_refused() {
        let e = At::parse("2999-01-01T00:00:00Z", NOW).unwrap_err();
        assert_eq!(e.to_string(), "2999-01-01T00:00:00Z: that is in the future");
        assert!(At::parse("  ", NOW).is_err());
        let e = not_understood("yesterday", "no change matches 'yesterday'");
        assert!(e.to_string().starts_with("yesterday: not a time"), "{e}");
    }
}

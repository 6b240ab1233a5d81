//! The cells the views share, so a fact reads the same in every view: a
//! state badge, a severity, a "last heard" age, an alert's ack or silence,
//! the result of a config apply. Below the views: each takes the theme and
//! the facts, never a view.

use fleetdeck_store::alerts::{Alert, Severity, SiteState};
use fleetdeck_store::health::ApplyResult;
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;

use crate::source::SiteFacts;
use crate::text;
use crate::theme::Theme;

pub fn state_label(s: SiteState) -> &'static str {
    match s {
        SiteState::Green => "green",
        SiteState::Warn => "warn",
        SiteState::Err => "err",
        SiteState::Unknown => "unknown",
    }
}

/// "● err" in the state's colour.
pub fn badge(theme: &Theme, s: SiteState) -> Span<'static> {
    let dot = if s == SiteState::Unknown {
        "○"
    } else {
        "●"
    };
    Span::styled(format!("{dot} {}", state_label(s)), theme.state(s))
}

/// "▼ down" for a node that stopped reporting (in the err colour even when
/// its alert is silenced: a silence hides the alert, not the fact), else
/// its state badge.
pub fn node_badge(theme: &Theme, s: SiteState, down: bool) -> Span<'static> {
    if down {
        Span::styled("▼ down", theme.state(SiteState::Err))
    } else {
        badge(theme, s)
    }
}

/// A site's badge: "▼ down" in the err colour while none of its nodes is
/// up (so a dark site never reads like one with half its nodes up, nor
/// green under a silence), else its state badge.
pub fn site_badge(theme: &Theme, s: &SiteFacts) -> Span<'static> {
    node_badge(theme, s.state, s.all_down())
}

/// Nodes up of all, "2/3": plain when all are up, amber while some are
/// not, red when none is; dim for a site none of whose nodes ever reported
/// (its state is unknown, not down).
pub fn node_count(theme: &Theme, up: usize, total: usize, never_heard: bool) -> Span<'static> {
    let style = if never_heard {
        theme.dim()
    } else if up == 0 && total > 0 {
        Style::new()
            .fg(theme.health.err)
            .add_modifier(Modifier::BOLD)
    } else if up < total {
        theme.stale()
    } else {
        Style::new()
    };
    Span::styled(format!("{up}/{total}"), style)
}

pub fn severity_span(theme: &Theme, s: Severity) -> Span<'static> {
    Span::styled(s.as_str().to_string(), theme.severity(s))
}

/// A "last heard" cell: its age, marked stale (with its age) when older
/// than the heartbeat interval, "never" when nothing was heard.
pub fn heard(theme: &Theme, now_ms: i64, last: Option<i64>, heartbeat_ms: i64) -> Span<'static> {
    match last {
        None => Span::styled("never", theme.dim()),
        Some(t) if now_ms.saturating_sub(t) > heartbeat_ms => Span::styled(
            format!("stale {}", text::duration(now_ms - t)),
            theme.stale().add_modifier(Modifier::ITALIC),
        ),
        Some(t) => Span::raw(text::ago(now_ms, t)),
    }
}

/// "silenced 59m", "acked by ops-laptop", or nothing.
pub fn alert_state(now_ms: i64, a: &Alert) -> String {
    match (&a.acked_by, a.silenced_until_ms) {
        (_, Some(u)) if u > now_ms => format!("silenced {}", text::duration(u - now_ms)),
        (Some(by), _) => format!("acked by {by}"),
        _ => String::new(),
    }
}

/// The same, short, for narrow columns: "silenced 59m", "✓ ops-laptop".
pub fn alert_state_short(now_ms: i64, a: &Alert) -> String {
    match (&a.acked_by, a.silenced_until_ms) {
        (_, Some(u)) if u > now_ms => format!("silenced {}", text::duration(u - now_ms)),
        (Some(by), _) => format!("✓ {by}"),
        _ => String::new(),
    }
}

/// Style of an alert row's message: dim once someone acknowledged it.
pub fn alert_style(theme: &Theme, now_ms: i64, a: &Alert) -> Style {
    if a.acked_by.is_some() || a.is_hidden(now_ms) {
        theme.dim()
    } else {
        Style::new()
    }
}

/// The result of a config apply as a word in its colour: "ok", "failed",
/// "rolled back".
pub fn apply_result(theme: &Theme, r: ApplyResult) -> (&'static str, Style) {
    match r {
        ApplyResult::Ok => ("ok", theme.ok()),
        ApplyResult::Failed => ("failed", Style::new().fg(theme.health.err)),
        ApplyResult::RolledBack => ("rolled back", Style::new().fg(theme.health.warn)),
    }
}

/// One key a change edited, as `history --diff` says it: `site BL-LAB-2
/// retention.days  14 → 30`, `… set 30` for a key it added, `… unset (was
/// 14)` for one it removed.
pub fn edit_text(e: &fleetdeck_store::diff::LayerEdit) -> String {
    let v = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    let line = match (v(&e.before), v(&e.after)) {
        (Some(b), Some(a)) => format!("{}  {}  {b} → {a}", e.layer, e.key),
        (None, Some(a)) => format!("{}  {}  set {a}", e.layer, e.key),
        (Some(b), None) => format!("{}  {}  unset (was {b})", e.layer, e.key),
        (None, None) => format!("{}  {}", e.layer, e.key),
    };
    line.replace(['\n', '\r'], " ")
}

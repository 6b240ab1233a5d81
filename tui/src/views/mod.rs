//! The console's views, one file each, and the few drawing pieces they
//! share (health badges, "last heard" cells, alert states).

pub mod alerts;
pub mod commands;
pub mod config;
pub mod history;
pub mod node;
pub mod overview;
pub mod peers;
pub mod rollouts;
pub mod site;

use fleetdeck_store::alerts::{Alert, Severity, SiteState};
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders};

use crate::component::{Route, View};
use crate::text;
use crate::theme::Theme;

pub use alerts::AlertsView;
pub use commands::CommandsView;
pub use config::ConfigView;
pub use history::HistoryView;
pub use node::NodeView;
pub use overview::Overview;
pub use peers::PeersView;
pub use rollouts::RolloutsView;
pub use site::SiteView;

/// A fresh view for a route.
pub fn open(route: &Route) -> Box<dyn View> {
    match route {
        Route::Overview => Box::new(Overview::default()),
        Route::Site(id) => Box::new(SiteView::new(id)),
        Route::Node(id) => Box::new(NodeView::new(id)),
        Route::Alerts(select) => Box::new(AlertsView::new(select.clone())),
        Route::History => Box::new(HistoryView::default()),
        Route::Peers => Box::new(PeersView::default()),
        Route::Config(layer) => Box::new(ConfigView::new(layer.clone())),
        Route::Rollouts => Box::new(RolloutsView::default()),
        Route::Commands => Box::new(CommandsView::default()),
    }
}

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

/// "down" for a node that stopped reporting, else its state badge.
pub fn node_badge(theme: &Theme, s: SiteState, down: bool) -> Span<'static> {
    if down {
        Span::styled("▼ down", theme.state(s))
    } else {
        badge(theme, s)
    }
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

/// A bordered pane with a title.
/// The alerts pane of the site and node views: severity, `label` (the
/// alert id or its message) and its ack/silence state.
pub fn alerts_pane(
    frame: &mut ratatui::Frame,
    area: Rect,
    ctx: &crate::component::Ctx,
    alerts: &[&Alert],
    list: &crate::table::ListState,
    // The pane's index in its view and whether it has the focus.
    (pane, focused): (usize, bool),
    label: fn(&Alert) -> String,
) {
    use ratatui::layout::Constraint;
    use ratatui::widgets::{Cell, Row};
    let (theme, now_ms) = (ctx.theme, ctx.now_ms);
    let spec = crate::table::Spec {
        title: format!("alerts · {}", alerts.len()),
        header: vec!["SEV", "ALERT", "STATE"],
        widths: vec![
            Constraint::Length(6),
            Constraint::Fill(1),
            Constraint::Length(12),
        ],
        len: alerts.len(),
        state: list,
        focused,
        empty: "no alerts".into(),
        hit: Some((ctx.hits, pane)),
    };
    crate::table::render(frame, area, spec, theme, |i| {
        let a = alerts[i];
        Row::new(vec![
            Cell::from(severity_span(theme, a.severity)),
            Cell::from(Span::styled(label(a), alert_style(theme, now_ms, a))),
            Cell::from(Span::styled(alert_state_short(now_ms, a), theme.dim())),
        ])
    });
}

pub fn pane<'a>(theme: &Theme, title: impl Into<String>, focused: bool) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(Span::styled(format!(" {} ", title.into()), theme.title()))
}

/// The part of `area` inside a pane's borders.
pub fn inner(area: Rect) -> Rect {
    Rect {
        x: area.x.saturating_add(1),
        y: area.y.saturating_add(1),
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    }
}

/// Cycles a pane index forwards or backwards among `n` panes.
pub fn cycle(current: usize, n: usize, forward: bool) -> usize {
    if n == 0 {
        return 0;
    }
    if forward {
        (current + 1) % n
    } else {
        (current + n - 1) % n
    }
}

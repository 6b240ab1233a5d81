//! Fleet overview: the sites table, the aggregate health bar, the alerts
//! panel and a world map with a pin per located site.

use fleetdeck_store::alerts::{Severity, SiteState};
use fleetdeck_store::document::LayerRef;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Map, MapResolution};
use ratatui::widgets::{Cell, Paragraph, Row};

use crate::cells::{alert_style, badge, heard, severity_span};
use crate::component::{Component, Ctx, Effect, Handled, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane::{self, cycle};
use crate::source::{SiteFacts, Snapshot};
use crate::table::{self, ListState, Spec};
use crate::theme::Theme;

/// Below this width the map is left out and the tables take the room.
pub const MAP_MIN_WIDTH: u16 = 100;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Pane {
    #[default]
    Sites,
    Alerts,
}

#[derive(Debug, Default)]
pub struct Overview {
    sites: ListState,
    alerts: ListState,
    focus: Pane,
}

/// Indices into `snap.sites` that pass the filter, worst state first (err,
/// warn, unknown, green), then by id.
pub fn site_rows(snap: &Snapshot, filter: &str) -> Vec<usize> {
    let mut rows: Vec<usize> = snap
        .sites
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            table::matches(
                filter,
                &[
                    &s.id,
                    &s.name,
                    s.zone.as_deref().unwrap_or(""),
                    crate::cells::state_label(s.state),
                ],
            )
        })
        .map(|(i, _)| i)
        .collect();
    rows.sort_by_key(|&i| (std::cmp::Reverse(attention(snap.sites[i].state)), i));
    rows
}

/// How much a state asks for attention: err, warn, unknown, green.
fn attention(s: SiteState) -> u8 {
    match s {
        SiteState::Green => 0,
        SiteState::Unknown => 1,
        SiteState::Warn => 2,
        SiteState::Err => 3,
    }
}

/// Indices into `snap.alerts` that are open (not silenced) and pass the
/// filter.
fn alert_rows(snap: &Snapshot, now_ms: i64, filter: &str) -> Vec<usize> {
    snap.alerts
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.is_hidden(now_ms))
        .filter(|(_, a)| table::matches(filter, &[&a.id, &a.site, &a.message, a.severity.as_str()]))
        .map(|(i, _)| i)
        .collect()
}

impl Overview {
    fn focused_state(&mut self) -> &mut ListState {
        match self.focus {
            Pane::Sites => &mut self.sites,
            Pane::Alerts => &mut self.alerts,
        }
    }
}

impl Component for Overview {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let sites = site_rows(ctx.snap, &self.sites.filter);
        let alerts = alert_rows(ctx.snap, ctx.now_ms, &self.alerts.filter);
        let len = match self.focus {
            Pane::Sites => sites.len(),
            Pane::Alerts => alerts.len(),
        };
        if self.focused_state().motion(action, len) {
            return Handled::Consumed;
        }
        match action {
            Action::NextPane | Action::PrevPane => {
                let i = match self.focus {
                    Pane::Sites => 0,
                    Pane::Alerts => 1,
                };
                self.focus = match cycle(i, 2, action == Action::NextPane) {
                    0 => Pane::Sites,
                    _ => Pane::Alerts,
                };
                Handled::Consumed
            }
            Action::Open => match self.focus {
                Pane::Sites => match self.sites.index(sites.len()) {
                    Some(i) => Handled::Then(Effect::Open(Route::Site(
                        ctx.snap.sites[sites[i]].id.clone(),
                    ))),
                    None => Handled::Consumed,
                },
                Pane::Alerts => {
                    let id = self
                        .alerts
                        .index(alerts.len())
                        .map(|i| ctx.snap.alerts[alerts[i]].id.clone());
                    Handled::Then(Effect::Open(Route::Alerts(id)))
                }
            },
            Action::EditConfig => Handled::Then(Effect::Open(Route::Config(LayerRef::Fleet))),
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, _ctx: &Ctx) -> Vec<Action> {
        vec![
            Action::Down,
            Action::Up,
            Action::Open,
            Action::NextPane,
            Action::GoAlerts,
            Action::GoHistory,
            Action::GoPeers,
            Action::EditConfig,
        ]
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let [bar, body] =
            Layout::vertical([Constraint::Length(4), Constraint::Fill(1)]).areas(area);
        draw_health_bar(frame, bar, ctx);
        if area.width >= MAP_MIN_WIDTH {
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
                    .areas(body);
            let [map, alerts] =
                Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(right);
            self.draw_sites(frame, left, ctx);
            draw_map(frame, map, ctx);
            self.draw_alerts(frame, alerts, ctx);
        } else {
            let [sites, alerts] =
                Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)])
                    .areas(body);
            self.draw_sites(frame, sites, ctx);
            self.draw_alerts(frame, alerts, ctx);
        }
    }
}

impl View for Overview {
    fn route(&self) -> Route {
        Route::Overview
    }
    fn scope(&self) -> Scope {
        Scope::Overview
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(self.focused_state())
    }
    fn list_mut(&mut self, pane: usize) -> Option<&mut ListState> {
        match pane {
            0 => Some(&mut self.sites),
            1 => Some(&mut self.alerts),
            _ => None,
        }
    }
    fn focus(&mut self, pane: usize) {
        self.focus = if pane == 0 { Pane::Sites } else { Pane::Alerts };
    }
    fn focused(&self) -> usize {
        match self.focus {
            Pane::Sites => 0,
            Pane::Alerts => 1,
        }
    }
}

/// "2H 1M 3S" in severity colours, "-" when none.
pub fn alert_counts(theme: &Theme, counts: [usize; 3]) -> Line<'static> {
    let mut spans = Vec::new();
    for (sev, letter, n) in [
        (Severity::Hard, "H", counts[2]),
        (Severity::Medium, "M", counts[1]),
        (Severity::Soft, "S", counts[0]),
    ] {
        if n > 0 {
            if !spans.is_empty() {
                spans.push(Span::raw(" "));
            }
            spans.push(Span::styled(format!("{n}{letter}"), theme.severity(sev)));
        }
    }
    if spans.is_empty() {
        spans.push(Span::styled("-", theme.dim()));
    }
    Line::from(spans)
}

pub fn site_row(theme: &Theme, now_ms: i64, s: &SiteFacts) -> Row<'static> {
    let nodes_style = if s.nodes_up < s.nodes_total {
        theme.stale()
    } else {
        Style::new()
    };
    Row::new(vec![
        Cell::from(badge(theme, s.state)),
        Cell::from(Span::styled(s.id.clone(), theme.state(s.state))),
        Cell::from(s.name.clone()),
        Cell::from(Span::styled(
            format!("{}/{}", s.nodes_up, s.nodes_total),
            nodes_style,
        )),
        Cell::from(alert_counts(theme, s.alerts)),
        Cell::from(heard(theme, now_ms, s.last_heard_ms, s.heartbeat_ms)),
    ])
}

impl Overview {
    fn draw_sites(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let rows = site_rows(ctx.snap, &self.sites.filter);
        let theme = ctx.theme;
        let spec = Spec {
            title: format!("sites · {}", ctx.snap.sites.len()),
            header: vec!["STATUS", "SITE", "NAME", "NODES", "ALERTS", "LAST HEARD"],
            widths: vec![
                Constraint::Length(9),
                Constraint::Length(12),
                Constraint::Fill(1),
                Constraint::Length(5),
                Constraint::Length(8),
                Constraint::Length(10),
            ],
            len: rows.len(),
            state: &self.sites,
            focused: self.focus == Pane::Sites,
            hit: Some((ctx.hits, 0)),
            empty: if ctx.snap.sites.is_empty() {
                "no sites yet: fleetdeck site add ID --name …".into()
            } else {
                format!("no site matches /{}", self.sites.filter)
            },
        };
        table::render(frame, area, spec, theme, |i| {
            site_row(theme, ctx.now_ms, &ctx.snap.sites[rows[i]])
        });
    }

    fn draw_alerts(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let rows = alert_rows(ctx.snap, ctx.now_ms, &self.alerts.filter);
        let theme = ctx.theme;
        let hidden = ctx.snap.summary.hidden;
        let mut title = format!("alerts · {} open", rows.len());
        if hidden > 0 {
            title.push_str(&format!(", {hidden} silenced"));
        }
        let spec = Spec {
            title,
            header: vec!["SEV", "SITE", "ALERT"],
            widths: vec![
                Constraint::Length(6),
                Constraint::Length(11),
                Constraint::Fill(1),
            ],
            len: rows.len(),
            state: &self.alerts,
            focused: self.focus == Pane::Alerts,
            hit: Some((ctx.hits, 1)),
            empty: "no open alerts".into(),
        };
        table::render(frame, area, spec, theme, |i| {
            let a = &ctx.snap.alerts[rows[i]];
            let mark = if a.acked_by.is_some() { "✓ " } else { "" };
            Row::new(vec![
                Cell::from(severity_span(theme, a.severity)),
                Cell::from(a.site.clone()),
                Cell::from(Span::styled(
                    format!("{mark}{}", a.message),
                    alert_style(theme, ctx.now_ms, a),
                )),
            ])
        });
    }
}

/// Splits `width` cells among `parts` in proportion, the rounding going to
/// the largest remainders so the widths add up exactly.
pub fn proportions(width: usize, parts: &[usize]) -> Vec<usize> {
    let total: usize = parts.iter().sum();
    if total == 0 {
        return vec![0; parts.len()];
    }
    let mut out: Vec<usize> = parts.iter().map(|p| p * width / total).collect();
    let mut rest = width - out.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..parts.len()).filter(|&i| parts[i] > 0).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i] * width % total));
    for &i in order.iter().cycle().take(rest.min(order.len() * 2)) {
        if rest == 0 {
            break;
        }
        out[i] += 1;
        rest -= 1;
    }
    out
}

fn draw_health_bar(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let theme = ctx.theme;
    let s = &ctx.snap.summary;
    let mut counts = vec![
        Span::styled(
            format!(" {} hard", s.alerts_hard),
            theme.severity(Severity::Hard),
        ),
        Span::styled(" · ", theme.dim()),
        Span::styled(
            format!("{} medium", s.alerts_medium),
            theme.severity(Severity::Medium),
        ),
        Span::styled(" · ", theme.dim()),
        Span::styled(
            format!("{} soft", s.alerts_soft),
            theme.severity(Severity::Soft),
        ),
    ];
    if s.hidden > 0 {
        counts.push(Span::styled(
            format!(" · {} silenced", s.hidden),
            theme.dim(),
        ));
    }
    counts.push(Span::raw(" "));
    let block = pane::block(theme, format!("fleet health · {} sites", s.sites), false)
        .title(Line::from(counts).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let states = [
        (SiteState::Green, s.green, s.green_pct),
        (SiteState::Warn, s.warn, s.warn_pct),
        (SiteState::Err, s.err, s.err_pct),
        (SiteState::Unknown, s.unknown, s.unknown_pct),
    ];
    let widths = proportions(
        inner.width as usize,
        &states.iter().map(|(_, n, _)| *n).collect::<Vec<_>>(),
    );
    let mut bar = Vec::new();
    for ((st, _, _), w) in states.iter().zip(&widths) {
        if *w > 0 {
            let glyph = if *st == SiteState::Unknown {
                "░"
            } else {
                "█"
            };
            bar.push(Span::styled(glyph.repeat(*w), theme.state(*st)));
        }
    }
    if bar.is_empty() {
        bar.push(Span::styled("no sites", theme.dim()));
    }
    let mut legend = Vec::new();
    for (st, n, pct) in states {
        legend.push(Span::styled(
            format!("● {} {n} · {pct:.0}%", crate::cells::state_label(st)),
            theme.state(st),
        ));
        legend.push(Span::raw("  "));
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(bar), Line::from(legend)]),
        inner,
    );
}

/// Longitude and latitude bounds that hold every pin with a margin: the
/// whole world for a spread-out fleet, a region for a regional one.
pub fn map_bounds(points: &[(f64, f64)]) -> ([f64; 2], [f64; 2]) {
    if points.is_empty() {
        return ([-180.0, 180.0], [-60.0, 85.0]);
    }
    let (mut lo_lat, mut hi_lat, mut lo_lon, mut hi_lon) = (90.0f64, -90.0f64, 180.0f64, -180.0f64);
    for &(lat, lon) in points {
        lo_lat = lo_lat.min(lat);
        hi_lat = hi_lat.max(lat);
        lo_lon = lo_lon.min(lon);
        hi_lon = hi_lon.max(lon);
    }
    let grow = |lo: f64, hi: f64, min_span: f64, limit: f64| {
        let span = ((hi - lo) * 1.3).max(min_span);
        let mid = (lo + hi) / 2.0;
        let (mut a, mut b) = (mid - span / 2.0, mid + span / 2.0);
        if a < -limit {
            b = (b + (-limit - a)).min(limit);
            a = -limit;
        }
        if b > limit {
            a = (a - (b - limit)).max(-limit);
            b = limit;
        }
        [a, b]
    };
    (
        grow(lo_lon, hi_lon, 60.0, 180.0),
        grow(lo_lat, hi_lat, 30.0, 90.0),
    )
}

fn state_rank(s: SiteState) -> u8 {
    match s {
        SiteState::Unknown => 0,
        SiteState::Green => 1,
        SiteState::Warn => 2,
        SiteState::Err => 3,
    }
}

fn draw_map(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let theme = ctx.theme;
    let mut pins: Vec<&SiteFacts> = ctx
        .snap
        .sites
        .iter()
        .filter(|s| s.location.is_some())
        .collect();
    // The worst state is drawn last, on top of any pin sharing its cell.
    pins.sort_by_key(|s| state_rank(s.state));
    let unplaced = ctx.snap.sites.len() - pins.len();
    let points: Vec<(f64, f64)> = pins.iter().filter_map(|s| s.location).collect();
    let (x, y) = map_bounds(&points);
    let mut block = pane::block(theme, format!("map · {} pins", pins.len()), false);
    if unplaced > 0 {
        block = block.title_bottom(
            Line::from(Span::styled(
                format!(" {unplaced} without a location "),
                theme.dim(),
            ))
            .right_aligned(),
        );
    }
    let canvas = Canvas::default()
        .block(block)
        .marker(Marker::Braille)
        .x_bounds(x)
        .y_bounds(y)
        .paint(|c| {
            c.draw(&Map {
                resolution: MapResolution::High,
                color: theme.ui.map,
            });
            c.layer();
            for s in &pins {
                if let Some((lat, lon)) = s.location {
                    c.print(lon, lat, Span::styled("●", theme.state(s.state)));
                }
            }
        });
    frame.render_widget(canvas, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_add_up_to_the_width() {
        assert_eq!(proportions(10, &[1, 1, 1, 0]), vec![4, 3, 3, 0]);
        assert_eq!(proportions(7, &[5, 2, 2, 1]).iter().sum::<usize>(), 7);
        assert_eq!(proportions(5, &[0, 0]), vec![0, 0]);
    }

    #[test]
    fn map_bounds_fit_a_regional_fleet_and_stay_on_the_globe() {
        let (x, y) = map_bounds(&[(52.0, 4.0), (53.0, 6.0)]);
        assert!(x[0] < 4.0 && x[1] > 6.0 && x[1] - x[0] >= 60.0);
        assert!(y[0] < 52.0 && y[1] > 53.0);
        let (x, y) = map_bounds(&[(89.0, 179.0), (-89.0, -179.0)]);
        assert_eq!(x, [-180.0, 180.0]);
        assert_eq!(y, [-90.0, 90.0]);
    }
}

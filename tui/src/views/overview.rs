//! Fleet overview: the sites table, the aggregate health bar, the alerts
//! panel and a map with a pin per located site.

use std::collections::HashMap;

use fleetdeck_store::SiteId;
use fleetdeck_store::alerts::{Severity, SiteState};
use fleetdeck_store::document::LayerRef;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::widgets::canvas::{Canvas, Map, MapResolution};

use crate::bulk;
use crate::cause;
use crate::cells::{alert_style, heard, node_count, severity_span, site_badge};
use crate::component::{Component, Ctx, Effect, Handled, Prompt, Route, View};
use crate::form::Form;
use crate::keymap::{Action, Scope};
use crate::pane::{self, cycle};
use crate::source::{SiteFacts, Snapshot};
use crate::table::{self, Column, ListState, Sort, Spec};
use crate::text;
use crate::theme::Theme;
use crate::views::{alerts, zones};

/// From this width the map is drawn beside the sites table; narrower, it
/// is left out (a map under 48 columns shows little) and the sites table
/// takes its room. The alerts are always as wide as the screen.
pub const MAP_MIN_WIDTH: u16 = 120;

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
    /// The sites table in groups by zone (`z`), a ZONE column first.
    by_zone: bool,
}

/// The columns of the sites table, in the order they are drawn; the
/// first, worst first, is its own order.
pub const SITE_COLUMNS: [Column; 6] = [
    Column {
        title: "STATUS",
        order: "worst first",
        reversed: "best first",
    },
    Column {
        title: "SITE",
        order: "A to Z",
        reversed: "Z to A",
    },
    Column {
        title: "NAME",
        order: "A to Z",
        reversed: "Z to A",
    },
    Column {
        title: "NODES",
        order: "fewest up first",
        reversed: "most up first",
    },
    Column {
        title: "ALERTS",
        order: "most alerts first",
        reversed: "fewest alerts first",
    },
    Column {
        title: "LAST HEARD",
        order: "longest silent first",
        reversed: "most recent first",
    },
];

/// The ZONE column of the sites table grouped by zone (`z`).
const ZONE_WIDTH: u16 = 14;

/// The columns of the alerts pane (columns of [`alerts::COLUMNS`]).
const ALERT_COLUMNS: [usize; 4] = [alerts::SEV, alerts::AGE, alerts::SITE, alerts::ALERT];

/// Below this width the alerts pane leaves out the site column (the
/// alert names its node, or its site when it is the site's).
const ALERTS_SITE_MIN_WIDTH: u16 = 100;

/// Compares two sites by a column of [`SITE_COLUMNS`], ties by id.
fn compare_sites(column: usize, a: &SiteFacts, b: &SiteFacts) -> std::cmp::Ordering {
    use std::cmp::Reverse;
    let by = match column {
        0 => site_attention(b).cmp(&site_attention(a)),
        2 => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        3 => {
            // The share of nodes up, as a fraction compared without
            // division; a site without nodes last.
            let share = |s: &SiteFacts| (s.nodes_total == 0, s.nodes_up, s.nodes_total.max(1));
            let (ea, ua, ta) = share(a);
            let (eb, ub, tb) = share(b);
            ea.cmp(&eb).then((ua * tb).cmp(&(ub * ta)))
        }
        4 => Reverse((a.alerts[2], a.alerts[1], a.alerts[0])).cmp(&Reverse((
            b.alerts[2],
            b.alerts[1],
            b.alerts[0],
        ))),
        5 => a.last_heard_ms.cmp(&b.last_heard_ms),
        _ => std::cmp::Ordering::Equal,
    };
    by.then_with(|| a.id.cmp(&b.id))
}

/// Indices into `snap.sites` that pass the table's filter, in its order
/// (worst state first unless the operator sorted by another column);
/// `by_zone`: in groups by zone (A to Z, sites without one last), each
/// group in that order.
pub fn site_rows(snap: &Snapshot, list: &ListState, by_zone: bool) -> Vec<usize> {
    let mut rows: Vec<usize> = snap
        .sites
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            table::matches(
                &list.filter,
                &[
                    &s.id,
                    &s.name,
                    s.zone.as_deref().unwrap_or(""),
                    crate::cells::state_label(s.state),
                    if s.all_down() { "down" } else { "" },
                ],
            )
        })
        .map(|(i, _)| i)
        .collect();
    table::sort(&mut rows, list.order(0), |c, &a, &b| {
        compare_sites(c, &snap.sites[a], &snap.sites[b])
    });
    if by_zone {
        // Stable: each zone keeps the order above.
        rows.sort_by(|&a, &b| zone_order(&snap.sites[a]).cmp(&zone_order(&snap.sites[b])));
    }
    rows
}

/// Zones A to Z, sites without a zone last.
fn zone_order(s: &SiteFacts) -> (bool, &str) {
    (s.zone.is_none(), s.zone.as_deref().unwrap_or(""))
}

/// How much a site asks for attention: as its state, a site with no node
/// up as err (whatever a silence left of its alerts).
fn site_attention(s: &SiteFacts) -> u8 {
    attention(s.shown_state())
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

impl Overview {
    fn focused_state(&mut self) -> &mut ListState {
        match self.focus {
            Pane::Sites => &mut self.sites,
            Pane::Alerts => &mut self.alerts,
        }
    }

    fn site_ids<'a>(&self, snap: &'a Snapshot) -> Vec<&'a str> {
        site_rows(snap, &self.sites, self.by_zone)
            .into_iter()
            .map(|i| snap.sites[i].id.as_str())
            .collect()
    }

    /// Indices into the snapshot's alerts: the open (not silenced) ones
    /// that pass the filter, in the pane's order, the selected one held
    /// in place while the pane has the focus.
    fn alert_rows(&self, ctx: &Ctx) -> Vec<usize> {
        let mut rows: Vec<usize> = ctx
            .snap
            .alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.is_hidden(ctx.now_ms))
            .filter(|(_, a)| {
                table::matches(
                    &self.alerts.filter,
                    &[
                        &a.id,
                        &a.site,
                        a.node.as_deref().unwrap_or(""),
                        &a.message,
                        a.severity.as_str(),
                    ],
                )
            })
            .map(|(i, _)| i)
            .collect();
        let order = self.alerts.order(0);
        table::sort(&mut rows, order, |c, &a, &b| {
            alerts::compare(ctx, ALERT_COLUMNS[c], a, b)
        });
        if self.focus == Pane::Alerts {
            table::hold(&self.alerts, &mut rows, |&i| ctx.snap.alerts[i].id.as_str());
        }
        rows
    }

    fn alert_ids<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a str> {
        self.alert_rows(ctx)
            .into_iter()
            .map(|i| ctx.snap.alerts[i].id.as_str())
            .collect()
    }

    fn site_selected<'a>(&self, snap: &'a Snapshot) -> Option<&'a SiteFacts> {
        let key = self.sites.key.as_deref()?;
        snap.site(key)
    }
}

impl Component for Overview {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let moved = match self.focus {
            Pane::Sites => {
                let ids = self.site_ids(ctx.snap);
                self.sites.step(action, &ids)
            }
            Pane::Alerts => {
                let ids = self.alert_ids(ctx);
                self.alerts.step(action, &ids)
            }
        };
        if moved {
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
                self.alerts.hold_here();
                Handled::Consumed
            }
            Action::Sort | Action::ReverseSort => {
                let reverse = action == Action::ReverseSort;
                let said = match self.focus {
                    Pane::Sites => {
                        let s = if reverse {
                            self.sites.reverse_sort(0)
                        } else {
                            self.sites.next_sort(0, SITE_COLUMNS.len())
                        };
                        table::sorted_by(&SITE_COLUMNS, s)
                    }
                    Pane::Alerts => {
                        let s = if reverse {
                            self.alerts.reverse_sort(0)
                        } else {
                            self.alerts.next_sort(0, ALERT_COLUMNS.len())
                        };
                        let columns = ALERT_COLUMNS.map(|c| alerts::COLUMNS[c]);
                        table::sorted_by(&columns, s)
                    }
                };
                Handled::Then(Effect::Message(said))
            }
            Action::Open => match self.focus {
                Pane::Sites => {
                    let ids = self.site_ids(ctx.snap);
                    match self.sites.index(ids.len()) {
                        Some(i) => Handled::Then(Effect::Open(Route::Site(ids[i].to_string()))),
                        None => Handled::Consumed,
                    }
                }
                Pane::Alerts => {
                    let ids = self.alert_ids(ctx);
                    let id = self.alerts.index(ids.len()).map(|i| ids[i].to_string());
                    Handled::Then(Effect::Open(Route::Alerts(id)))
                }
            },
            Action::EditConfig => Handled::Then(Effect::Open(Route::Config(LayerRef::Fleet))),
            Action::GroupByZone => {
                self.by_zone = !self.by_zone;
                self.sites.held = None;
                Handled::Then(Effect::Message(if self.by_zone {
                    "sites grouped by zone (z: ungroup)".into()
                } else {
                    "sites no longer grouped by zone".into()
                }))
            }
            Action::Mark | Action::ClearMarks | Action::RunAction | Action::StartRollout
                if self.focus == Pane::Alerts =>
            {
                Handled::Then(Effect::Message(
                    "marks and bulk actions are on the sites table (tab to it); alerts are marked in the alerts view (2)".into(),
                ))
            }
            Action::Mark => {
                let ids = self.site_ids(ctx.snap);
                bulk::mark(&mut self.sites, &ids, "site")
            }
            Action::ClearMarks => bulk::clear(&mut self.sites),
            Action::Back if !self.sites.marks.is_empty() => bulk::clear(&mut self.sites),
            Action::RunAction => {
                let ids = self.site_ids(ctx.snap);
                let targets: Vec<LayerRef> = bulk::chosen(&self.sites, &ids)
                    .iter()
                    .filter_map(|id| SiteId::parse(id).ok())
                    .map(LayerRef::Site)
                    .collect();
                if targets.is_empty() {
                    return Handled::Then(Effect::Message("no site to run an action on".into()));
                }
                Handled::Then(Effect::Prompt(Prompt::RunAction { targets }))
            }
            Action::StartRollout => {
                let sites: Vec<SiteId> = self
                    .sites
                    .marks
                    .iter()
                    .filter_map(|id| SiteId::parse(id).ok())
                    .collect();
                Handled::Then(Effect::Form(Form::rollout(sites)))
            }
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, _ctx: &Ctx) -> Vec<Action> {
        let mut c = vec![
            Action::Down,
            Action::Up,
            Action::Open,
            Action::NextPane,
            Action::Sort,
        ];
        if self.focus == Pane::Sites {
            c.push(Action::Mark);
            if !self.sites.marks.is_empty() {
                c.push(Action::ClearMarks);
            }
            c.extend([Action::RunAction, Action::StartRollout]);
        }
        c.extend([
            Action::GoAlerts,
            Action::GoHistory,
            Action::GoPeers,
            Action::EditConfig,
        ]);
        if self.focus == Pane::Sites {
            c.push(Action::GroupByZone);
        }
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let [bar, body] =
            Layout::vertical([Constraint::Length(4), Constraint::Fill(1)]).areas(area);
        draw_health_bar(frame, bar, ctx);
        let [top, alerts] =
            Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(body);
        if area.width >= MAP_MIN_WIDTH {
            let [sites, map] =
                Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                    .areas(top);
            self.draw_sites(frame, sites, ctx);
            let selected = self.site_selected(ctx.snap).map(|s| s.id.as_str());
            draw_map(frame, map, ctx, selected);
        } else {
            self.draw_sites(frame, top, ctx);
        }
        self.draw_alerts(frame, alerts, ctx);
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
    fn select_row(&mut self, pane: usize, row: usize, ctx: &Ctx) {
        if pane == 0 {
            let ids = self.site_ids(ctx.snap);
            self.sites.select(row, &ids);
        } else {
            let ids = self.alert_ids(ctx);
            self.alerts.select(row, &ids);
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
    fn follow(&mut self, ctx: &Ctx) -> Option<String> {
        let sites = self.site_ids(ctx.snap);
        let site_gone = self.sites.follow(&sites);
        let alerts = self.alert_ids(ctx);
        let alert_gone = self.alerts.follow(&alerts);
        // Said for the table the operator is on; the other one's selection
        // moves to its nearest row quietly.
        match self.focus {
            Pane::Sites => {
                site_gone.map(|id| format!("site {id} left the list; selected the nearest row"))
            }
            Pane::Alerts => alert_gone.and_then(|id| alerts::gone(ctx, &id)),
        }
    }
    fn notes(&self) -> Vec<String> {
        vec![
            format!(
                "the map shows from {MAP_MIN_WIDTH} columns; narrower, the sites table takes its room"
            ),
            "z groups the sites by zone: ZONE gives each zone's nodes up, and qN its quorum (red below it); a site with no node up shows ▼ down".into(),
        ]
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

pub fn site_row(theme: &Theme, now_ms: i64, s: &SiteFacts) -> Vec<Line<'static>> {
    vec![
        Line::from(site_badge(theme, s)),
        Line::from(Span::styled(s.id.clone(), theme.state(s.shown_state()))),
        Line::from(s.name.clone()),
        Line::from(node_count(
            theme,
            s.nodes_up,
            s.nodes_total,
            s.last_heard_ms.is_none(),
        )),
        alert_counts(theme, s.alerts),
        Line::from(heard(theme, now_ms, s.last_heard_ms, s.heartbeat_ms)),
    ]
}

impl Overview {
    fn draw_sites(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let rows = site_rows(ctx.snap, &self.sites, self.by_zone);
        let theme = ctx.theme;
        let is_marked = |i: usize| self.sites.is_marked(&ctx.snap.sites[rows[i]].id);
        let widths = [
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(11),
        ];
        // Grouped: a ZONE column first, the zone's nodes up (against its
        // quorum when it has one) on the first row of each group; where
        // that leaves the names too little room, they give it up (the id
        // stays).
        let mut shown: Vec<usize> = (0..SITE_COLUMNS.len()).collect();
        if self.by_zone {
            let fixed: u16 = 2 + 2 + ZONE_WIDTH + 1 + 9 + 12 + 6 + 8 + 11 + 5;
            if area.width.saturating_sub(fixed) < 10 {
                shown.retain(|&c| c != 2);
            }
        }
        let mut header: Vec<&str> = shown.iter().map(|&c| SITE_COLUMNS[c].title).collect();
        let mut widths: Vec<Constraint> = shown.iter().map(|&c| widths[c]).collect();
        let mut title = format!("sites · {}", ctx.snap.sites.len());
        let order = self.sites.order(0);
        let mut sorted = shown
            .iter()
            .position(|&c| c == order.column)
            .map(|column| Sort { column, ..order });
        let zones: HashMap<String, zones::ZoneFacts> = if self.by_zone {
            header.insert(0, "ZONE");
            widths.insert(0, Constraint::Length(ZONE_WIDTH));
            title.push_str(" · by zone");
            if let Some(s) = &mut sorted {
                s.column += 1;
            }
            zones::zones(ctx.snap)
                .into_iter()
                .map(|z| (z.name.clone(), z))
                .collect()
        } else {
            HashMap::new()
        };
        let spec = Spec {
            title,
            header,
            widths,
            len: rows.len(),
            state: &self.sites,
            focused: self.focus == Pane::Sites,
            hit: Some((ctx.hits, 0)),
            empty: if ctx.snap.sites.is_empty() {
                "no sites yet: fleetdeck site add ID --name …".into()
            } else {
                format!("no site matches /{}", self.sites.filter)
            },
            sorted,
            marked: Some(&is_marked),
        };
        table::render(frame, area, spec, theme, |i| {
            let s = &ctx.snap.sites[rows[i]];
            let mut all = site_row(theme, ctx.now_ms, s).into_iter();
            let mut cells: Vec<Line> = Vec::with_capacity(shown.len() + 1);
            let mut next = 0;
            for &c in &shown {
                // The cells come in column order: skip those not shown.
                let cell = all.nth(c - next).unwrap_or_default();
                next = c + 1;
                cells.push(cell);
            }
            if self.by_zone {
                let first = i == 0 || ctx.snap.sites[rows[i - 1]].zone != s.zone;
                let name = s.zone.as_deref().unwrap_or(zones::NO_ZONE);
                cells.insert(0, zone_cell(theme, zones.get(name), name, first));
            }
            cells
        });
    }

    fn draw_alerts(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let rows = self.alert_rows(ctx);
        let theme = ctx.theme;
        let hidden = ctx.snap.summary.hidden;
        let mut title = format!("alerts · {} open", rows.len());
        if hidden > 0 {
            title.push_str(&format!(", {hidden} silenced"));
        }
        let with_site = area.width >= ALERTS_SITE_MIN_WIDTH;
        let shown: Vec<usize> = ALERT_COLUMNS
            .into_iter()
            .filter(|&c| with_site || c != alerts::SITE)
            .collect();
        let order = self.alerts.order(0);
        let sorted = shown
            .iter()
            .position(|&c| c == ALERT_COLUMNS[order.column])
            .map(|column| Sort { column, ..order });
        let spec = Spec {
            title,
            header: shown.iter().map(|&c| alerts::COLUMNS[c].title).collect(),
            widths: shown.iter().map(|&c| alerts::width(c, false)).collect(),
            len: rows.len(),
            state: &self.alerts,
            focused: self.focus == Pane::Alerts,
            hit: Some((ctx.hits, 1)),
            empty: "no open alerts".into(),
            sorted,
            marked: None,
        };
        table::render(frame, area, spec, theme, |i| {
            let a = &ctx.snap.alerts[rows[i]];
            let mark = if a.acked_by.is_some() { "✓ " } else { "" };
            shown
                .iter()
                .map(|&c| match c {
                    alerts::SEV => Line::from(severity_span(theme, a.severity)),
                    alerts::AGE => Line::from(alerts::age(ctx, a)),
                    alerts::SITE => Line::from(a.site.clone()),
                    _ => Line::from(Span::styled(
                        format!("{mark}{}", cause::headline(ctx.snap, ctx.now_ms, a)),
                        alert_style(theme, ctx.now_ms, a),
                    )),
                })
                .collect()
        });
    }
}

/// The ZONE cell of a grouped sites table: on a group's first row the
/// zone (red while below its quorum) and its nodes up, "5/5" or against
/// its quorum, "1/2 q2"; on the others the zone, dim.
fn zone_cell(
    theme: &Theme,
    zone: Option<&zones::ZoneFacts>,
    name: &str,
    first: bool,
) -> Line<'static> {
    let Some(z) = zone.filter(|_| first) else {
        return Line::from(Span::styled(name.to_string(), theme.dim()));
    };
    let style = if z.below {
        Style::new()
            .fg(theme.health.err)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    let never_heard = z.sites.iter().all(|s| s.last_heard_ms.is_none());
    let mut spans = vec![
        Span::styled(format!("{name} "), style),
        node_count(theme, z.up, z.nodes, never_heard),
    ];
    if let Some(q) = z.quorum {
        spans.push(Span::styled(
            format!(" q{q}"),
            if z.below {
                Style::new().fg(theme.health.err)
            } else {
                theme.dim()
            },
        ));
    }
    Line::from(spans)
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
    // A count of none is not news: dim, never in an alarm colour.
    let count = |n: usize, what: &str, style: Style| {
        Span::styled(
            format!("{n} {what}"),
            if n == 0 { theme.dim() } else { style },
        )
    };
    let mut counts = vec![
        Span::raw(" "),
        count(s.alerts_hard, "hard", theme.severity(Severity::Hard)),
        Span::styled(" · ", theme.dim()),
        count(s.alerts_medium, "medium", theme.severity(Severity::Medium)),
        Span::styled(" · ", theme.dim()),
        count(s.alerts_soft, "soft", theme.severity(Severity::Soft)),
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
            if n == 0 { theme.dim() } else { theme.state(st) },
        ));
        legend.push(Span::raw("  "));
    }
    let legend = text::fit_line(Line::from(legend), usize::from(inner.width));
    frame.render_widget(Paragraph::new(vec![Line::from(bar), legend]), inner);
}

/// The smallest span of the map, in degrees (one site alone).
const MIN_SPAN_DEG: f64 = 1.0;

/// The room left around the pins, as a share of their spread on each side.
const MARGIN: f64 = 0.15;

/// Longitude and latitude bounds for a map `cols`×`rows` cells that hold
/// every pin with a margin, as tight as the fleet's bounding box allows: a
/// country's sites fill the map, a world-wide fleet gets the world. The
/// bounds keep the land's shape (a cell is about twice as tall as wide, a
/// degree of longitude shrinks with the latitude), so one dimension is
/// filled and the other gets more room.
pub fn map_bounds(points: &[(f64, f64)], cols: u16, rows: u16) -> ([f64; 2], [f64; 2]) {
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
    let mut lon_span = ((hi_lon - lo_lon) * (1.0 + 2.0 * MARGIN)).max(MIN_SPAN_DEG);
    let mut lat_span = ((hi_lat - lo_lat) * (1.0 + 2.0 * MARGIN)).max(MIN_SPAN_DEG);
    let squeeze = ((lo_lat + hi_lat) / 2.0).to_radians().cos().max(0.2);
    let (cols, rows) = (f64::from(cols.max(1)), f64::from(rows.max(1)));
    // Degrees of latitude per row against twice the (shrunk) degrees of
    // longitude per column: widen whichever is too narrow.
    if lat_span / rows < 2.0 * lon_span * squeeze / cols {
        lat_span = 2.0 * lon_span * squeeze * rows / cols;
    } else {
        lon_span = lat_span * cols / (2.0 * squeeze * rows);
    }
    let place = |lo: f64, hi: f64, span: f64, limit: f64| {
        let span = span.min(2.0 * limit);
        let mid = (lo + hi) / 2.0;
        let (mut a, mut b) = (mid - span / 2.0, mid + span / 2.0);
        if a < -limit {
            b += -limit - a;
            a = -limit;
        }
        if b > limit {
            a -= b - limit;
            b = limit;
        }
        [a.max(-limit), b.min(limit)]
    };
    (
        place(lo_lon, hi_lon, lon_span, 180.0),
        place(lo_lat, hi_lat, lat_span, 90.0),
    )
}

/// One pin on the map: the sites in its cell (worst first), the worst
/// state among them, and its label when there is room for one.
#[derive(Clone, Debug, PartialEq)]
pub struct Pin {
    pub x: u16,
    pub y: u16,
    pub sites: Vec<String>,
    pub state: SiteState,
    pub selected: bool,
    /// Where the label starts and what it says.
    pub label: Option<(u16, String)>,
}

impl Pin {
    /// "●", or how many sites share the cell ("+" beyond nine).
    pub fn glyph(&self) -> String {
        match self.sites.len() {
            0 | 1 => "●".into(),
            n @ 2..=9 => n.to_string(),
            _ => "+".into(),
        }
    }
}

/// The cell of a point inside `area` for `bounds` (as the canvas places
/// its labels, rounded).
fn cell(bounds: &([f64; 2], [f64; 2]), area: Rect, lat: f64, lon: f64) -> Option<(u16, u16)> {
    let ([x0, x1], [y0, y1]) = *bounds;
    if lon < x0 || lon > x1 || lat < y0 || lat > y1 || area.is_empty() {
        return None;
    }
    let x = ((lon - x0) * f64::from(area.width - 1) / (x1 - x0)).round() as u16;
    let y = ((y1 - lat) * f64::from(area.height - 1) / (y1 - y0)).round() as u16;
    Some((area.x + x, area.y + y))
}

/// The pins of located `sites` in `area` for `bounds`: sites sharing a cell
/// make one pin with their count; labels (site ids) go right of their pin,
/// else left of it, where they overlap no pin or other label, the selected
/// site's first, then the worst states'.
pub fn place_pins(
    sites: &[&SiteFacts],
    bounds: &([f64; 2], [f64; 2]),
    area: Rect,
    selected: Option<&str>,
) -> Vec<Pin> {
    let mut pins: Vec<Pin> = Vec::new();
    let mut at: HashMap<(u16, u16), usize> = HashMap::new();
    let mut located: Vec<&&SiteFacts> = sites.iter().filter(|s| s.location.is_some()).collect();
    located.sort_by(|a, b| {
        site_attention(b)
            .cmp(&site_attention(a))
            .then(a.id.cmp(&b.id))
    });
    for s in located {
        let Some((lat, lon)) = s.location else {
            continue;
        };
        let Some((x, y)) = cell(bounds, area, lat, lon) else {
            continue;
        };
        let is_selected = selected == Some(s.id.as_str());
        match at.get(&(x, y)) {
            Some(&i) => {
                pins[i].sites.push(s.id.clone());
                pins[i].selected |= is_selected;
            }
            None => {
                at.insert((x, y), pins.len());
                pins.push(Pin {
                    x,
                    y,
                    sites: vec![s.id.clone()],
                    state: s.shown_state(),
                    selected: is_selected,
                    label: None,
                });
            }
        }
    }
    // Labels, most wanted first, where their cells are free (pins and
    // labels placed so far take theirs).
    let mut order: Vec<usize> = (0..pins.len()).collect();
    order.sort_by_key(|&i| {
        (
            !pins[i].selected,
            std::cmp::Reverse(attention(pins[i].state)),
        )
    });
    let width = usize::from(area.width);
    let mut taken = vec![false; width * usize::from(area.height)];
    let index = |x: u16, y: u16| usize::from(y - area.y) * width + usize::from(x - area.x);
    for p in &pins {
        taken[index(p.x, p.y)] = true;
    }
    // Cells `a..b` of row `y`, inside the map and free.
    let free = |taken: &[bool], y: u16, a: u16, b: u16| {
        a >= area.x && b <= area.x + area.width && (a..b).all(|x| !taken[index(x, y)])
    };
    for i in order {
        let p = &pins[i];
        let text = match p.sites.len() {
            1 => p.sites[0].clone(),
            n => format!("{} +{}", p.sites[0], n - 1),
        };
        let w = text.chars().count() as u16;
        // A free cell between a label and its pin, and after it.
        let right = (p.x + 2, p.x + 2 + w);
        let spot = if free(&taken, p.y, p.x + 1, right.1 + 1) {
            Some(right)
        } else if p.x >= area.x + w + 2 && free(&taken, p.y, p.x - w - 2, p.x) {
            Some((p.x - w - 1, p.x - 1))
        } else {
            None
        };
        if let Some((a, b)) = spot {
            for x in a..b {
                taken[index(x, p.y)] = true;
            }
            pins[i].label = Some((a, text));
        }
    }
    pins
}

fn draw_map(frame: &mut Frame, area: Rect, ctx: &Ctx, selected: Option<&str>) {
    let theme = ctx.theme;
    let located: Vec<&SiteFacts> = ctx
        .snap
        .sites
        .iter()
        .filter(|s| s.location.is_some())
        .collect();
    let unplaced = ctx.snap.sites.len() - located.len();
    let inner = pane::inner(area);
    let points: Vec<(f64, f64)> = located.iter().filter_map(|s| s.location).collect();
    let bounds = map_bounds(&points, inner.width, inner.height);
    let pins = place_pins(&located, &bounds, inner, selected);
    let mut title = format!("map · {}", plural(located.len(), "site", "sites"));
    if pins.len() < located.len() {
        title.push_str(&format!(" in {}", plural(pins.len(), "pin", "pins")));
    }
    let mut block = pane::block(theme, title, false);
    if unplaced > 0 {
        block = block.title_bottom(
            Line::from(Span::styled(
                format!(" {unplaced} without a location "),
                theme.dim(),
            ))
            .right_aligned(),
        );
    }
    let (x, y) = bounds;
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
        });
    frame.render_widget(canvas, area);
    let buf = frame.buffer_mut();
    for p in &pins {
        let mut style = theme.state(p.state).add_modifier(Modifier::BOLD);
        if p.selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        buf.set_string(p.x, p.y, p.glyph(), style);
        if let Some((lx, text)) = &p.label {
            let label = if p.selected {
                theme
                    .state(p.state)
                    .add_modifier(Modifier::BOLD | Modifier::REVERSED)
            } else {
                theme.state(p.state)
            };
            // The cell between the pin and its label is cleared of map.
            let gap = if *lx > p.x { p.x + 1 } else { p.x - 1 };
            buf.set_string(gap, p.y, " ", Style::new());
            buf.set_string(*lx, p.y, text, label);
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
    fn map_bounds_hold_every_pin_and_stay_on_the_globe() {
        let (x, y) = map_bounds(&[(52.0, 4.0), (53.0, 6.0)], 48, 18);
        assert!(x[0] < 4.0 && x[1] > 6.0, "{x:?}");
        assert!(y[0] < 52.0 && y[1] > 53.0, "{y:?}");
        assert!(x[1] - x[0] < 20.0, "a region, not the world: {x:?}");
        let (x, y) = map_bounds(&[(89.0, 179.0), (-89.0, -179.0)], 48, 18);
        assert_eq!(x, [-180.0, 180.0]);
        assert_eq!(y, [-90.0, 90.0]);
    }
}

//! Every alert of the fleet: filter by severity, show or hide silenced ones,
//! sort by any column, acknowledge (`a`) and silence (`s`, for a typed
//! duration), the selected alert shown whole below the table. And what the
//! other alert tables share: the columns and their orders, the AGE cell,
//! and the short alerts pane of the site and node views, whose Enter opens
//! an alert here.
//!
//! The selection stays on its alert (by id) as alerts come and go, and the
//! selected row stays where it is on screen until the operator moves it, so
//! `a`, `s` and Enter act on the alert the operator read.

use std::cmp::Ordering;

use fleetdeck_store::alerts::{Alert, Severity};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::bulk;
use crate::cause;
use crate::cells::{alert_state, alert_state_short, alert_style, severity_span};
use crate::component::{Component, Ctx, Effect, Handled, Prompt, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::source::Intent;
use crate::table::{self, Column, ListState, Sort, Spec};
use crate::text;

/// The columns of alert tables (indices into [`COLUMNS`]).
pub const SEV: usize = 0;
pub const AGE: usize = 1;
pub const SITE: usize = 2;
pub const ALERT: usize = 3;
pub const STATE: usize = 4;

/// Every column an alert table may show, in the order they are drawn (the
/// alert, node and cause first, before its state); the first, most severe
/// first, is the store's order.
pub const COLUMNS: [Column; 5] = [
    Column {
        title: "SEV",
        order: "most severe first",
        reversed: "least severe first",
    },
    Column {
        title: "AGE",
        order: "newest first",
        reversed: "oldest first",
    },
    Column {
        title: "SITE",
        order: "A to Z",
        reversed: "Z to A",
    },
    Column {
        title: "ALERT",
        order: "A to Z",
        reversed: "Z to A",
    },
    Column {
        title: "STATE",
        order: "unhandled first",
        reversed: "silenced first",
    },
];

/// The width of a column (`wide`: the long form of STATE).
pub fn width(column: usize, wide: bool) -> Constraint {
    match column {
        SEV => Constraint::Length(6),
        AGE => Constraint::Length(5),
        SITE => Constraint::Length(11),
        STATE if wide => Constraint::Length(20),
        STATE => Constraint::Length(12),
        _ => Constraint::Fill(1),
    }
}

/// 0 open, 1 acked, 2 silenced.
fn handled(now_ms: i64, a: &Alert) -> u8 {
    if a.is_hidden(now_ms) {
        2
    } else if a.acked_by.is_some() {
        1
    } else {
        0
    }
}

/// Compares two alerts (indices into the snapshot's alerts, which come in
/// the store's order: most severe first, then site, then id) by a column
/// of [`COLUMNS`], ties in the store's order.
pub fn compare(ctx: &Ctx, column: usize, a: usize, b: usize) -> Ordering {
    let (x, y) = (&ctx.snap.alerts[a], &ctx.snap.alerts[b]);
    let by = match column {
        AGE => {
            // Those open since before the console started (their start
            // unknown) are the oldest.
            let age = |x: &Alert| {
                ctx.seen
                    .age(ctx.now_ms, x)
                    .map_or((true, i64::MAX), |g| (g.at_least, g.ms))
            };
            age(x).cmp(&age(y))
        }
        SITE => x.site.cmp(&y.site),
        STATE => handled(ctx.now_ms, x).cmp(&handled(ctx.now_ms, y)),
        ALERT => {
            let h = |x: &Alert| cause::headline(ctx.snap, ctx.now_ms, x).to_lowercase();
            h(x).cmp(&h(y))
        }
        _ => Ordering::Equal,
    };
    by.then(a.cmp(&b))
}

/// The AGE cell: how long this console has seen the alert open ("12s";
/// "≥3m" for one already open when the console started, its start
/// unknown).
pub fn age(ctx: &Ctx, a: &Alert) -> String {
    match ctx.seen.age(ctx.now_ms, a) {
        Some(g) if g.at_least => format!("≥{}", text::duration(g.ms)),
        Some(g) => text::duration(g.ms),
        None => "-".into(),
    }
}

/// What the status bar says when the selected alert left its table: when
/// it cleared (resolved, or folded into its site's offline alert). One
/// silenced, or filtered out, left because someone asked for it: nothing to
/// say.
pub fn gone(ctx: &Ctx, id: &str) -> Option<String> {
    ctx.snap
        .alert(id)
        .is_none()
        .then(|| format!("alert {id} cleared; selected the nearest row"))
}

#[derive(Debug)]
pub struct AlertsView {
    list: ListState,
    /// Only this severity, or all.
    severity: Option<Severity>,
    show_silenced: bool,
    /// Opened on an alert (Enter elsewhere) that has not been placed yet.
    opening: bool,
}

impl AlertsView {
    pub fn new(select: Option<String>) -> AlertsView {
        AlertsView {
            opening: select.is_some(),
            list: ListState {
                key: select,
                ..ListState::default()
            },
            severity: None,
            show_silenced: false,
        }
    }

    /// Indices into the snapshot's alerts, as listed: filtered, in the
    /// table's order, the selected one held where it is.
    fn rows(&self, ctx: &Ctx) -> Vec<usize> {
        let mut rows: Vec<usize> = ctx
            .snap
            .alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| self.show_silenced || !a.is_hidden(ctx.now_ms))
            .filter(|(_, a)| self.severity.is_none_or(|s| a.severity == s))
            .filter(|(_, a)| {
                table::matches(
                    &self.list.filter,
                    &[
                        &a.id,
                        &a.site,
                        a.node.as_deref().unwrap_or(""),
                        &a.message,
                        a.kind.as_str(),
                        a.severity.as_str(),
                    ],
                )
            })
            .map(|(i, _)| i)
            .collect();
        table::sort(&mut rows, self.list.order(SEV), |c, &a, &b| {
            compare(ctx, c, a, b)
        });
        table::hold(&self.list, &mut rows, |&i| ctx.snap.alerts[i].id.as_str());
        rows
    }

    fn ids<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a str> {
        self.rows(ctx)
            .into_iter()
            .map(|i| ctx.snap.alerts[i].id.as_str())
            .collect()
    }

    fn severity_label(&self) -> &'static str {
        self.severity.map_or("all", Severity::as_str)
    }
}

impl Component for AlertsView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let ids = self.ids(ctx);
        if self.list.step(action, &ids) {
            return Handled::Consumed;
        }
        let current = self
            .list
            .index(ids.len())
            .and_then(|i| ctx.snap.alert(ids[i]));
        match action {
            Action::CycleSeverity => {
                self.severity = match self.severity {
                    None => Some(Severity::Hard),
                    Some(Severity::Hard) => Some(Severity::Medium),
                    Some(Severity::Medium) => Some(Severity::Soft),
                    Some(Severity::Soft) => None,
                };
                self.list.restart();
                Handled::Then(Effect::Message(format!(
                    "showing {} alerts",
                    self.severity_label()
                )))
            }
            Action::ToggleSilenced => {
                self.show_silenced = !self.show_silenced;
                Handled::Then(Effect::Message(if self.show_silenced {
                    "showing silenced alerts too".into()
                } else {
                    "hiding silenced alerts".into()
                }))
            }
            Action::Sort | Action::ReverseSort => {
                let s = if action == Action::Sort {
                    self.list.next_sort(SEV, COLUMNS.len())
                } else {
                    self.list.reverse_sort(SEV)
                };
                Handled::Then(Effect::Message(table::sorted_by(&COLUMNS, s)))
            }
            Action::Mark => bulk::mark(&mut self.list, &ids, "alert"),
            Action::ClearMarks => bulk::clear(&mut self.list),
            Action::Back if !self.list.marks.is_empty() => bulk::clear(&mut self.list),
            // Every marked alert (those still open), else the selected one.
            Action::Ack | Action::Silence if !self.list.marks.is_empty() => {
                let marked: Vec<String> = self
                    .list
                    .marks
                    .iter()
                    .filter(|id| ctx.snap.alert(id).is_some())
                    .cloned()
                    .collect();
                self.list.clear_marks();
                if marked.is_empty() {
                    return Handled::Then(Effect::Message(
                        "the marked alerts are no longer open".into(),
                    ));
                }
                if action == Action::Ack {
                    Handled::Then(Effect::ApplyAll(
                        marked
                            .into_iter()
                            .map(|alert_id| Intent::Ack { alert_id })
                            .collect(),
                    ))
                } else {
                    Handled::Then(Effect::Prompt(Prompt::Silence { alert_ids: marked }))
                }
            }
            Action::Ack => match current {
                Some(a) => Handled::Then(Effect::Apply(Intent::Ack {
                    alert_id: a.id.clone(),
                })),
                None => Handled::Then(Effect::Message("no alert selected".into())),
            },
            Action::Silence => match current {
                Some(a) => Handled::Then(Effect::Prompt(Prompt::Silence {
                    alert_ids: vec![a.id.clone()],
                })),
                None => Handled::Then(Effect::Message("no alert selected".into())),
            },
            Action::Open => match current {
                Some(a) => Handled::Then(Effect::Open(match &a.node {
                    Some(n) if ctx.snap.node(n).is_some() => Route::Node(n.clone()),
                    _ => Route::Site(a.site.clone()),
                })),
                None => Handled::Consumed,
            },
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, ctx: &Ctx) -> Vec<Action> {
        let mut c = vec![Action::Down, Action::Up];
        if !ctx.read_only {
            c.extend([Action::Ack, Action::Silence]);
        }
        c.push(Action::Mark);
        if !self.list.marks.is_empty() {
            c.push(Action::ClearMarks);
        }
        c.extend([
            Action::CycleSeverity,
            Action::ToggleSilenced,
            Action::Sort,
            Action::Open,
        ]);
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let rows = self.rows(ctx);
        let selected = self
            .list
            .index(rows.len())
            .map(|i| &ctx.snap.alerts[rows[i]]);
        let detail = selected
            .map(|a| detail(ctx, a))
            .unwrap_or_else(|| vec![Line::from(Span::styled("nothing selected", theme.dim()))]);
        // The detail box is as tall as the selected alert needs, wrapped,
        // up to a third of the view.
        let inner_width = area.width.saturating_sub(2);
        let needed: u16 = detail
            .iter()
            .map(|l| text::wrapped_rows(&l.to_string(), inner_width + 2))
            .sum();
        let detail_height = (needed + 2).clamp(3, (area.height / 3).max(3));
        let [list, detail_area] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(detail_height)]).areas(area);
        let hidden = ctx.snap.summary.hidden;
        let mut title = format!(
            "alerts · {} · severity {}",
            rows.len(),
            self.severity_label()
        );
        if hidden > 0 {
            title.push_str(&format!(
                " · {hidden} silenced {}",
                if self.show_silenced {
                    "shown"
                } else {
                    "hidden"
                }
            ));
        }
        // Narrow terminals leave out the site (the alert names its node, or
        // the site when it is the site's); a state no listed alert has is
        // not given a column.
        let wide = area.width >= 100;
        let any_state = rows
            .iter()
            .any(|&i| !alert_state(ctx.now_ms, &ctx.snap.alerts[i]).is_empty());
        let shown: Vec<usize> = (0..COLUMNS.len())
            .filter(|&c| (c != SITE || wide) && (c != STATE || any_state))
            .collect();
        let order = self.list.order(SEV);
        let sorted = shown
            .iter()
            .position(|&c| c == order.column)
            .map(|column| Sort { column, ..order });
        let is_marked = |i: usize| self.list.is_marked(&ctx.snap.alerts[rows[i]].id);
        let spec = Spec {
            title,
            header: shown.iter().map(|&c| COLUMNS[c].title).collect(),
            widths: shown.iter().map(|&c| width(c, wide)).collect(),
            len: rows.len(),
            state: &self.list,
            focused: true,
            hit: Some((ctx.hits, 0)),
            empty: if ctx.snap.alerts.is_empty() {
                "no alerts: the fleet is quiet".into()
            } else if !self.list.filter.is_empty() {
                format!("no alert matches /{}", self.list.filter)
            } else if let Some(s) = self.severity {
                format!("no {} alert (f: the next severity)", s.as_str())
            } else {
                // Every alert is silenced and hidden.
                format!("no open alert: {hidden} silenced (h shows them)")
            },
            sorted,
            marked: Some(&is_marked),
        };
        table::render(frame, list, spec, theme, |i| {
            let a = &ctx.snap.alerts[rows[i]];
            let style = alert_style(theme, ctx.now_ms, a);
            shown
                .iter()
                .map(|&c| match c {
                    SEV => Line::from(severity_span(theme, a.severity)),
                    AGE => Line::from(age(ctx, a)),
                    SITE => Line::from(a.site.clone()),
                    STATE => Line::from(Span::styled(
                        if wide {
                            alert_state(ctx.now_ms, a)
                        } else {
                            alert_state_short(ctx.now_ms, a)
                        },
                        theme.dim(),
                    )),
                    _ => Line::from(Span::styled(
                        cause::headline(ctx.snap, ctx.now_ms, a),
                        style,
                    )),
                })
                .collect()
        });
        frame.render_widget(
            Paragraph::new(detail)
                .wrap(Wrap { trim: true })
                .block(pane::block(theme, "selected", false)),
            detail_area,
        );
    }
}

/// The selected alert whole: what it is, the store's message, and how it
/// stands (age, occurrence, ack, silence).
fn detail(ctx: &Ctx, a: &Alert) -> Vec<Line<'static>> {
    let (theme, now) = (ctx.theme, ctx.now_ms);
    let dim = theme.dim();
    let mut what = vec![
        severity_span(theme, a.severity),
        Span::raw(" "),
        Span::styled(a.id.clone(), theme.key()),
        Span::styled(format!(" · {} · site ", a.kind), dim),
        Span::raw(a.site.clone()),
    ];
    if let Some(n) = &a.node {
        what.push(Span::styled(" · node ", dim));
        what.push(Span::raw(n.clone()));
    }
    let mut stands = vec![
        Span::styled("open ", dim),
        Span::raw(age(ctx, a)),
        Span::styled(
            if ctx.as_of.is_some() {
                " at this moment (as its rule dates it)"
            } else {
                " (as this console saw it)"
            },
            dim,
        ),
    ];
    if let Some(s) = a.since_ms {
        stands.push(Span::styled(" · since ", dim));
        stands.push(Span::raw(format!("{} UTC", text::utc(s))));
    }
    if let Some(u) = a.silenced_until_ms.filter(|&u| u > now) {
        stands.push(Span::styled(" · ", dim));
        stands.push(Span::styled(
            format!(
                "silenced until {} ({} left), also if it fires again",
                text::clock(now, u),
                text::duration(u - now)
            ),
            dim,
        ));
    }
    if let Some(by) = &a.acked_by {
        stands.push(Span::styled(" · ", dim));
        stands.push(Span::styled(
            format!("acked by {by}, until it resolves"),
            dim,
        ));
    }
    vec![
        Line::from(what),
        Line::from(a.message.clone()),
        Line::from(stands),
    ]
}

impl View for AlertsView {
    fn route(&self) -> Route {
        Route::Alerts(None)
    }
    fn scope(&self) -> Scope {
        Scope::Alerts
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.list)
    }
    fn select_row(&mut self, pane: usize, row: usize, ctx: &Ctx) {
        if pane == 0 {
            let ids = self.ids(ctx);
            self.list.select(row, &ids);
        }
    }
    fn notes(&self) -> Vec<String> {
        vec![
            "AGE: how long this console has seen the alert open (≥: open when it started). The selected alert keeps its row until you move.".into(),
        ]
    }
    fn follow(&mut self, ctx: &Ctx) -> Option<String> {
        if std::mem::take(&mut self.opening)
            && let Some(a) = self.list.key.as_deref().and_then(|k| ctx.snap.alert(k))
            && a.is_hidden(ctx.now_ms)
        {
            // Opened on a silenced alert (from a site's pane): show it.
            self.show_silenced = true;
        }
        let ids = self.ids(ctx);
        self.list.follow(&ids).and_then(|id| gone(ctx, &id))
    }
}

/// The rows of an alerts pane of the site or node view: the snapshot's
/// alerts that `pick` keeps and pass the pane's filter, in the store's
/// order, the selected one held where it is while the pane has the focus.
pub fn pane_rows<'a>(
    ctx: &Ctx<'a>,
    list: &ListState,
    focused: bool,
    pick: impl Fn(&Alert) -> bool,
) -> Vec<&'a Alert> {
    let mut rows: Vec<&Alert> = ctx
        .snap
        .alerts
        .iter()
        .filter(|a| pick(a))
        .filter(|a| table::matches(&list.filter, &[&a.id, &a.message, a.severity.as_str()]))
        .collect();
    if focused {
        table::hold(list, &mut rows, |a| a.id.as_str());
    }
    rows
}

/// The alerts pane of the site and node views: severity, the alert (node
/// and cause) and its ack/silence state when any has one.
pub fn draw_pane(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    alerts: &[&Alert],
    list: &ListState,
    // The pane's index in its view and whether it has the focus.
    (pane, focused): (usize, bool),
) {
    let (theme, now_ms) = (ctx.theme, ctx.now_ms);
    let any_state = alerts
        .iter()
        .any(|a| !alert_state_short(now_ms, a).is_empty());
    let mut header = vec!["SEV", "ALERT"];
    let mut widths = vec![Constraint::Length(6), Constraint::Fill(1)];
    if any_state {
        header.push("STATE");
        widths.push(Constraint::Length(12));
    }
    let spec = Spec {
        title: format!("alerts · {}", alerts.len()),
        header,
        widths,
        len: alerts.len(),
        state: list,
        focused,
        empty: "no alerts".into(),
        hit: Some((ctx.hits, pane)),
        sorted: None,
        marked: None,
    };
    table::render(frame, area, spec, theme, |i| {
        let a = alerts[i];
        let mut cells = vec![
            Line::from(severity_span(theme, a.severity)),
            Line::from(Span::styled(
                cause::headline(ctx.snap, now_ms, a),
                alert_style(theme, now_ms, a),
            )),
        ];
        if any_state {
            cells.push(Line::from(Span::styled(
                alert_state_short(now_ms, a),
                theme.dim(),
            )));
        }
        cells
    });
}

/// The ids of a pane's rows.
pub fn ids<'a>(alerts: &[&'a Alert]) -> Vec<&'a str> {
    alerts.iter().map(|a| a.id.as_str()).collect()
}

/// Enter in such a pane: the alerts view, on the selected alert.
pub fn open_selected(alerts: &[&Alert], list: &ListState) -> Handled {
    let id = list.index(alerts.len()).map(|i| alerts[i].id.clone());
    Handled::Then(Effect::Open(Route::Alerts(id)))
}

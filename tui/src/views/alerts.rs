//! Every alert of the fleet: filter by severity, show or hide silenced ones,
//! acknowledge (`a`) and silence (`s`, for a typed duration). And the short
//! alerts pane of the site and node views, whose Enter opens an alert here.

use fleetdeck_store::alerts::{Alert, Severity};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

use crate::cells::{alert_state, alert_state_short, alert_style, severity_span};
use crate::component::{Component, Ctx, Effect, Handled, Prompt, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::source::Intent;
use crate::table::{self, ListState, Spec};
use crate::text;

#[derive(Debug)]
pub struct AlertsView {
    list: ListState,
    /// Only this severity, or all.
    severity: Option<Severity>,
    show_silenced: bool,
    /// An alert to select once the list is known (from Enter elsewhere).
    select: Option<String>,
}

impl AlertsView {
    pub fn new(select: Option<String>) -> AlertsView {
        AlertsView {
            list: ListState::default(),
            severity: None,
            show_silenced: false,
            select,
        }
    }

    pub fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a Alert> {
        ctx.snap
            .alerts
            .iter()
            .filter(|a| self.show_silenced || !a.is_hidden(ctx.now_ms))
            .filter(|a| self.severity.is_none_or(|s| a.severity == s))
            .filter(|a| {
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
            .collect()
    }

    /// The selection: the pending `select` id if it is listed, else the
    /// cursor.
    fn selected(&self, rows: &[&Alert]) -> Option<usize> {
        if let Some(id) = &self.select
            && let Some(i) = rows.iter().position(|a| &a.id == id)
        {
            return Some(i);
        }
        self.list.index(rows.len())
    }

    fn severity_label(&self) -> &'static str {
        self.severity.map_or("all", Severity::as_str)
    }
}

impl Component for AlertsView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let rows = self.rows(ctx);
        if let Some(i) = self.selected(&rows) {
            self.list.selected = i;
        }
        self.select = None;
        if self.list.motion(action, rows.len()) {
            return Handled::Consumed;
        }
        let current = self.list.index(rows.len()).map(|i| rows[i]);
        match action {
            Action::CycleSeverity => {
                self.severity = match self.severity {
                    None => Some(Severity::Hard),
                    Some(Severity::Hard) => Some(Severity::Medium),
                    Some(Severity::Medium) => Some(Severity::Soft),
                    Some(Severity::Soft) => None,
                };
                self.list.selected = 0;
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
            Action::Ack => match current {
                Some(a) => Handled::Then(Effect::Apply(Intent::Ack {
                    alert_id: a.id.clone(),
                })),
                None => Handled::Then(Effect::Message("no alert selected".into())),
            },
            Action::Silence => match current {
                Some(a) => Handled::Then(Effect::Prompt(Prompt::Silence {
                    alert_id: a.id.clone(),
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
        c.extend([Action::CycleSeverity, Action::ToggleSilenced, Action::Open]);
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let rows = self.rows(ctx);
        let mut state = self.list.clone();
        if let Some(i) = self.selected(&rows) {
            state.selected = i;
        }
        let [list, detail] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(4)]).areas(area);
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
        // Narrow terminals drop the site column (the alert id names the
        // node or site) and give the message the room.
        let wide = area.width >= 100;
        let (header, widths) = if wide {
            (
                vec!["SEV", "ALERT", "SITE", "SINCE", "STATE", "MESSAGE"],
                vec![
                    Constraint::Length(6),
                    Constraint::Length(24),
                    Constraint::Length(11),
                    Constraint::Length(8),
                    Constraint::Length(20),
                    Constraint::Fill(1),
                ],
            )
        } else {
            (
                vec!["SEV", "ALERT", "SINCE", "STATE", "MESSAGE"],
                vec![
                    Constraint::Length(6),
                    Constraint::Length(24),
                    Constraint::Length(5),
                    Constraint::Length(14),
                    Constraint::Fill(1),
                ],
            )
        };
        let spec = Spec {
            title,
            header,
            widths,
            len: rows.len(),
            state: &state,
            focused: true,
            hit: Some((ctx.hits, 0)),
            empty: if ctx.snap.alerts.is_empty() {
                "no alerts: the fleet is quiet".into()
            } else {
                "no alert matches the filter".into()
            },
        };
        table::render(frame, list, spec, theme, |i| {
            let a = rows[i];
            let style = alert_style(theme, ctx.now_ms, a);
            let mut cells = vec![
                Cell::from(severity_span(theme, a.severity)),
                Cell::from(Span::styled(a.id.clone(), style)),
            ];
            if wide {
                cells.push(Cell::from(a.site.clone()));
            }
            cells.extend([
                Cell::from(
                    a.since_ms
                        .map_or_else(|| "-".into(), |s| text::duration(ctx.now_ms - s)),
                ),
                Cell::from(Span::styled(
                    if wide {
                        alert_state(ctx.now_ms, a)
                    } else {
                        alert_state_short(ctx.now_ms, a)
                    },
                    theme.dim(),
                )),
                Cell::from(Span::styled(a.message.clone(), style)),
            ]);
            Row::new(cells)
        });
        let text = match state.index(rows.len()).map(|i| rows[i]) {
            Some(a) => {
                let mut l = vec![
                    severity_span(theme, a.severity),
                    Span::raw(format!(" {} · ", a.kind)),
                    Span::raw(a.message.clone()),
                ];
                let st = alert_state(ctx.now_ms, a);
                if !st.is_empty() {
                    l.push(Span::styled(format!(" · {st}"), theme.dim()));
                }
                Line::from(l)
            }
            None => Line::from(Span::styled("nothing selected", theme.dim())),
        };
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(pane::block(theme, "selected", false)),
            detail,
        );
    }
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
    fn list_mut(&mut self, pane: usize) -> Option<&mut ListState> {
        // A click decides the selection from now on.
        self.select = None;
        (pane == 0).then_some(&mut self.list)
    }
}

/// The alerts pane of the site and node views: severity, `label` (the
/// alert id or its message) and its ack/silence state.
pub fn draw_pane(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    alerts: &[&Alert],
    list: &ListState,
    // The pane's index in its view and whether it has the focus.
    (pane, focused): (usize, bool),
    label: fn(&Alert) -> String,
) {
    let (theme, now_ms) = (ctx.theme, ctx.now_ms);
    let spec = Spec {
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
    table::render(frame, area, spec, theme, |i| {
        let a = alerts[i];
        Row::new(vec![
            Cell::from(severity_span(theme, a.severity)),
            Cell::from(Span::styled(label(a), alert_style(theme, now_ms, a))),
            Cell::from(Span::styled(alert_state_short(now_ms, a), theme.dim())),
        ])
    });
}

/// Enter in such a pane: the alerts view, on the selected alert.
pub fn open_selected(alerts: &[&Alert], list: &ListState) -> Handled {
    let id = list.index(alerts.len()).map(|i| alerts[i].id.clone());
    Handled::Then(Effect::Open(Route::Alerts(id)))
}

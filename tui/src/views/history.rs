//! The change log: id, time, author, receipts (where each change stands on
//! the fleet's nodes), message; Enter shows the nodes that do not run the
//! selected change yet; `r` reverts it after a confirm dialog.

use fleetdeck_store::document::HistoryEntry;
use fleetdeck_store::receipts::Delivery;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::component::{Component, Ctx, Effect, Handled, Need, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::source::{HistoryRow, Intent};
use crate::table::{self, ListState, Spec};
use crate::text;

#[derive(Debug, Default)]
pub struct HistoryView {
    list: ListState,
    /// Enter: the selected change's pending nodes are listed below.
    detail: bool,
}

fn author(e: &HistoryEntry) -> String {
    e.author_name
        .clone()
        .unwrap_or_else(|| e.author.chars().take(8).collect())
}

impl HistoryView {
    fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a HistoryRow> {
        ctx.history
            .unwrap_or_default()
            .iter()
            .filter(|r| {
                let e = &r.entry;
                table::matches(
                    &self.list.filter,
                    &[&e.id, &author(e), e.message.as_deref().unwrap_or("")],
                )
            })
            .collect()
    }
}

impl Component for HistoryView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let rows = self.rows(ctx);
        if self.list.motion(action, rows.len()) {
            return Handled::Consumed;
        }
        match action {
            Action::Open => {
                self.detail = !self.detail;
                Handled::Consumed
            }
            Action::Revert => match self.list.index(rows.len()).map(|i| &rows[i].entry) {
                Some(e) => Handled::Then(Effect::Confirm {
                    question: format!(
                        "Revert change {} “{}” by {}? Its inverse is written as a new change; keys edited since are left alone.",
                        text::short(&e.id),
                        e.message.as_deref().unwrap_or("(no message)"),
                        author(e)
                    ),
                    intent: Intent::Revert {
                        change_id: e.id.clone(),
                        message: None,
                    },
                }),
                None => Handled::Then(Effect::Message("no change selected".into())),
            },
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, ctx: &Ctx) -> Vec<Action> {
        let mut c = vec![Action::Down, Action::Up, Action::Open];
        if !ctx.read_only {
            c.push(Action::Revert);
        }
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let rows = self.rows(ctx);
        let selected = self.list.index(rows.len()).map(|i| rows[i]);
        let detail_height = if self.detail {
            let pending = selected.map_or(0, |r| r.pending.len());
            u16::try_from(pending.clamp(1, 12) + 4).unwrap_or(16)
        } else {
            3
        };
        let [list, detail] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(detail_height)]).areas(area);
        let spec = Spec {
            title: format!("history · {} changes", ctx.history.map_or(0, <[_]>::len)),
            header: vec!["CHANGE", "TIME (UTC)", "AUTHOR", "APPLIED", "MESSAGE"],
            widths: vec![
                Constraint::Length(12),
                Constraint::Length(16),
                Constraint::Length(14),
                Constraint::Length(16),
                Constraint::Fill(1),
            ],
            len: rows.len(),
            state: &self.list,
            focused: true,
            hit: Some((ctx.hits, 0)),
            sorted: None,
            empty: match ctx.history {
                None => "loading history…".into(),
                Some(_) => "no change matches the filter".into(),
            },
        };
        table::render(frame, list, spec, theme, |i| {
            let r = rows[i];
            let e = &r.entry;
            vec![
                Line::from(Span::styled(text::short(&e.id).to_string(), theme.key())),
                Line::from(text::utc(e.time_ms)),
                Line::from(author(e)),
                receipts_cell(r, theme),
                Line::from(e.message.clone().unwrap_or_default()),
            ]
        });
        let mut lines = match selected {
            Some(r) => {
                let e = &r.entry;
                vec![Line::from(vec![
                    Span::raw(e.id.clone()),
                    Span::styled(
                        format!(
                            " · seq {} · {} ops · {} · by {}",
                            e.seq,
                            e.ops,
                            text::ago(ctx.now_ms, e.time_ms),
                            e.author.chars().take(16).collect::<String>()
                        ),
                        theme.dim(),
                    ),
                ])]
            }
            None => vec![Line::from(Span::styled("nothing selected", theme.dim()))],
        };
        if let (true, Some(r)) = (self.detail, selected) {
            lines.push(Line::from(Span::raw(match &r.receipts {
                Some(s) => s.line(),
                None => "no node in the fleet".into(),
            })));
            if r.pending.is_empty() && r.receipts.is_some() {
                lines.push(Line::from(Span::styled("every node runs it", theme.ok())));
            }
            for p in &r.pending {
                let heard = p
                    .last_heard_ms
                    .map_or("never heard".to_string(), |h| text::ago(ctx.now_ms, h));
                let mut why = match (p.state, &p.error) {
                    (Delivery::Failed, Some(e)) => e.clone(),
                    (Delivery::NotYet, _) if p.offline => "offline".into(),
                    (Delivery::Unknown, _) => "ahead of this replica".into(),
                    (Delivery::Delivered, _) => "holds it, not running it yet".into(),
                    _ => String::new(),
                };
                why = why.replace(['\n', '\r'], " ");
                lines.push(Line::from(vec![
                    Span::styled(
                        format!("{:<10}", p.state.as_str()),
                        state_style(p.state, theme),
                    ),
                    Span::raw(format!("{} ({}) · {heard}", p.node, p.site)),
                    Span::styled(
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(" · {why}")
                        },
                        theme.dim(),
                    ),
                ]));
            }
        }
        let title = if self.detail {
            "selected · receipts (enter hides)"
        } else {
            "selected (enter: receipts)"
        };
        frame.render_widget(
            Paragraph::new(lines).block(pane::block(theme, title, false)),
            detail,
        );
    }
}

fn state_style(d: Delivery, theme: &crate::theme::Theme) -> ratatui::style::Style {
    match d {
        Delivery::Applied => theme.ok(),
        Delivery::Failed => theme.error(),
        Delivery::Delivered | Delivery::Unknown => {
            theme.severity(fleetdeck_store::alerts::Severity::Medium)
        }
        Delivery::NotYet => theme.dim(),
    }
}

/// `47/50 · 1 failed`: nodes that run the change out of all, and failures.
fn receipts_cell<'a>(r: &HistoryRow, theme: &crate::theme::Theme) -> Line<'a> {
    let Some(s) = &r.receipts else {
        return Line::from(Span::styled("-", theme.dim()));
    };
    let mut spans = vec![Span::styled(
        format!("{}/{}", s.applied, s.nodes),
        if s.applied == s.nodes {
            theme.ok()
        } else {
            theme.dim()
        },
    )];
    if s.failed > 0 {
        spans.push(Span::styled(
            format!(" · {} failed", s.failed),
            theme.error(),
        ));
    }
    Line::from(spans)
}

impl View for HistoryView {
    fn route(&self) -> Route {
        Route::History
    }
    fn scope(&self) -> Scope {
        Scope::History
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.list)
    }
    fn needs(&self) -> Option<Need> {
        Some(Need::History)
    }
}

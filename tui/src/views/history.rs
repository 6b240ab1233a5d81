//! The change log: id, time, author, message; `r` reverts the selected
//! change after a confirm dialog.

use fleetdeck_store::document::HistoryEntry;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};

use crate::component::{Component, Ctx, Effect, Handled, Need, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::source::Intent;
use crate::table::{self, ListState, Spec};
use crate::text;

#[derive(Debug, Default)]
pub struct HistoryView {
    list: ListState,
}

fn author(e: &HistoryEntry) -> String {
    e.author_name
        .clone()
        .unwrap_or_else(|| e.author.chars().take(8).collect())
}

impl HistoryView {
    fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a HistoryEntry> {
        ctx.history
            .unwrap_or_default()
            .iter()
            .filter(|e| {
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
            Action::Revert => match self.list.index(rows.len()).map(|i| rows[i]) {
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
        let mut c = vec![Action::Down, Action::Up];
        if !ctx.read_only {
            c.push(Action::Revert);
        }
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let [list, detail] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(3)]).areas(area);
        let rows = self.rows(ctx);
        let spec = Spec {
            title: format!("history · {} changes", ctx.history.map_or(0, <[_]>::len)),
            header: vec!["CHANGE", "TIME (UTC)", "AUTHOR", "MESSAGE"],
            widths: vec![
                Constraint::Length(12),
                Constraint::Length(16),
                Constraint::Length(14),
                Constraint::Fill(1),
            ],
            len: rows.len(),
            state: &self.list,
            focused: true,
            hit: Some((ctx.hits, 0)),
            empty: match ctx.history {
                None => "loading history…".into(),
                Some(_) => "no change matches the filter".into(),
            },
        };
        table::render(frame, list, spec, theme, |i| {
            let e = rows[i];
            Row::new(vec![
                Cell::from(Span::styled(text::short(&e.id).to_string(), theme.key())),
                Cell::from(text::utc(e.time_ms)),
                Cell::from(author(e)),
                Cell::from(e.message.clone().unwrap_or_default()),
            ])
        });
        let line = match self.list.index(rows.len()).map(|i| rows[i]) {
            Some(e) => Line::from(vec![
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
            ]),
            None => Line::from(Span::styled("nothing selected", theme.dim())),
        };
        frame.render_widget(
            Paragraph::new(line).block(pane::block(theme, "selected", false)),
            detail,
        );
    }
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

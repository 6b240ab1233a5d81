//! Commands sent to nodes: each with its target and how many reported, and
//! per node of the selected one its result (exit code, last output line).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::component::{Component, Ctx, Handled, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane::{self, cycle};
use crate::source::CommandFacts;
use crate::table::{self, ListState, Spec};
use crate::text;

const COMMANDS: usize = 0;
const RESULTS: usize = 1;

#[derive(Debug, Default)]
pub struct CommandsView {
    lists: [ListState; 2],
    focus: usize,
}

impl CommandsView {
    fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a CommandFacts> {
        ctx.snap
            .commands
            .iter()
            .filter(|c| {
                table::matches(
                    &self.lists[COMMANDS].filter,
                    &[&c.id, &c.record.action, &c.record.target, &c.record.by],
                )
            })
            .collect()
    }

    fn selected<'a>(&self, ctx: &Ctx<'a>) -> Option<&'a CommandFacts> {
        let rows = self.rows(ctx);
        self.lists[COMMANDS].index(rows.len()).map(|i| rows[i])
    }

    fn results<'a>(
        &self,
        c: &'a CommandFacts,
    ) -> Vec<&'a (String, Option<fleetdeck_store::document::CommandResult>)> {
        c.nodes
            .iter()
            .filter(|(n, r)| {
                let state = match r {
                    None => "pending",
                    Some(r) if r.ok => "ok",
                    Some(_) => "failed",
                };
                table::matches(
                    &self.lists[RESULTS].filter,
                    &[n, state, r.as_ref().map_or("", |r| r.output.as_str())],
                )
            })
            .collect()
    }
}

impl Component for CommandsView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let len = match self.focus {
            COMMANDS => self.rows(ctx).len(),
            _ => self.selected(ctx).map_or(0, |c| self.results(c).len()),
        };
        let before = self.lists[COMMANDS].selected;
        if self.lists[self.focus].motion(action, len) {
            if self.focus == COMMANDS && before != self.lists[COMMANDS].selected {
                self.lists[RESULTS] = ListState::default();
            }
            return Handled::Consumed;
        }
        match action {
            Action::NextPane | Action::PrevPane => {
                self.focus = cycle(self.focus, 2, action == Action::NextPane);
                Handled::Consumed
            }
            Action::Open if self.focus == COMMANDS => {
                self.focus = RESULTS;
                Handled::Consumed
            }
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, _ctx: &Ctx) -> Vec<Action> {
        vec![Action::Down, Action::Up, Action::NextPane]
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let [top, bottom, detail] = Layout::vertical([
            Constraint::Percentage(40),
            Constraint::Fill(1),
            Constraint::Length(4),
        ])
        .areas(area);
        let rows = self.rows(ctx);
        let spec = Spec {
            title: format!("commands · {}", ctx.snap.commands.len()),
            header: vec![
                "COMMAND", "ACTION", "TARGET", "BY", "WHEN", "REPORTED", "FAILED",
            ],
            widths: vec![
                Constraint::Length(13),
                Constraint::Length(16),
                Constraint::Fill(1),
                Constraint::Length(12),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(6),
            ],
            len: rows.len(),
            state: &self.lists[COMMANDS],
            focused: self.focus == COMMANDS,
            empty: if ctx.snap.commands.is_empty() {
                "no commands: fleetdeck command run ACTION".into()
            } else {
                "no command matches the filter".into()
            },
            hit: Some((ctx.hits, COMMANDS)),
            sorted: None,
        };
        table::render(frame, top, spec, theme, |i| {
            let c = rows[i];
            let failed = c.failed();
            vec![
                Line::from(Span::styled(c.id.clone(), theme.key())),
                Line::from(c.record.action.clone()),
                Line::from(c.record.target.clone()),
                Line::from(c.record.by.clone()),
                Line::from(text::ago(ctx.now_ms, c.record.at_ms)),
                Line::from(format!("{}/{}", c.reported(), c.nodes.len())),
                Line::from(if failed > 0 {
                    Span::styled(failed.to_string(), Style::new().fg(theme.health.err))
                } else {
                    Span::raw("0")
                }),
            ]
        });
        let selected = self.selected(ctx);
        let results = selected.map(|c| self.results(c)).unwrap_or_default();
        let spec = Spec {
            title: selected.map_or_else(
                || "results".to_string(),
                |c| format!("results of {} · {}", c.id, c.record.action),
            ),
            header: vec!["NODE", "STATE", "EXIT", "WHEN", "OUTPUT"],
            widths: vec![
                Constraint::Length(16),
                Constraint::Length(8),
                Constraint::Length(5),
                Constraint::Length(9),
                Constraint::Fill(1),
            ],
            len: results.len(),
            state: &self.lists[RESULTS],
            focused: self.focus == RESULTS,
            empty: "no node is targeted".into(),
            hit: Some((ctx.hits, RESULTS)),
            sorted: None,
        };
        table::render(frame, bottom, spec, theme, |i| {
            let (node, r) = results[i];
            let (state, style, exit, when, out) = match r {
                None => (
                    "pending",
                    theme.dim(),
                    "-".to_string(),
                    String::new(),
                    String::new(),
                ),
                Some(r) => (
                    if r.ok { "ok" } else { "failed" },
                    if r.ok {
                        theme.ok()
                    } else {
                        Style::new().fg(theme.health.err)
                    },
                    r.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
                    text::ago(ctx.now_ms, r.at_ms),
                    r.output.lines().last().unwrap_or("").to_string(),
                ),
            };
            vec![
                Line::from(node.clone()),
                Line::from(Span::styled(state, style)),
                Line::from(exit),
                Line::from(when),
                Line::from(out),
            ]
        });
        let out = selected
            .and_then(|_| self.lists[RESULTS].index(results.len()).map(|i| results[i]))
            .and_then(|(n, r)| r.as_ref().map(|r| format!("{n}: {}", r.output)))
            .unwrap_or_default();
        frame.render_widget(
            Paragraph::new(out)
                .wrap(Wrap { trim: true })
                .block(pane::block(theme, "output", false)),
            detail,
        );
    }
}

impl View for CommandsView {
    fn route(&self) -> Route {
        Route::Commands
    }
    fn scope(&self) -> Scope {
        Scope::Commands
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.lists[self.focus])
    }
    fn list_mut(&mut self, pane: usize) -> Option<&mut ListState> {
        self.lists.get_mut(pane)
    }
    fn focus(&mut self, pane: usize) {
        if pane < 2 {
            self.focus = pane;
        }
    }
    fn focused(&self) -> usize {
        self.focus
    }
}

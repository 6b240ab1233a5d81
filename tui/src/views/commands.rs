//! Commands sent to nodes: each with its target and how many reported, and
//! per node of the selected one its result (exit code, last output line).
//! Opened on a batch (the commands a bulk action just sent, one per marked
//! site or node), it lists only those, and every node of all of them as
//! their results arrive.

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
    /// Only these commands (a batch sent from marked rows), when given.
    batch: Option<Vec<String>>,
}

impl CommandsView {
    pub fn new(batch: Option<Vec<String>>) -> CommandsView {
        CommandsView {
            // A batch opens on its nodes' results.
            focus: if batch.is_some() { RESULTS } else { COMMANDS },
            batch,
            ..CommandsView::default()
        }
    }

    fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a CommandFacts> {
        ctx.snap
            .commands
            .iter()
            .filter(|c| self.batch.as_ref().is_none_or(|b| b.contains(&c.id)))
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

    /// The results listed: every node of the batch's commands, else those
    /// of the selected command; each with its command.
    fn results<'a>(&self, ctx: &Ctx<'a>) -> Vec<(&'a CommandFacts, &'a NodeResult)> {
        let commands = match &self.batch {
            Some(_) => self.rows(ctx),
            None => self.selected(ctx).into_iter().collect(),
        };
        commands
            .into_iter()
            .flat_map(|c| c.nodes.iter().map(move |n| (c, n)))
            .filter(|(_, (n, r))| {
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

type NodeResult = (String, Option<fleetdeck_store::document::CommandResult>);

impl Component for CommandsView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let len = match self.focus {
            COMMANDS => self.rows(ctx).len(),
            _ => self.results(ctx).len(),
        };
        let before = self.lists[COMMANDS].selected;
        if self.lists[self.focus].motion(action, len) {
            if self.focus == COMMANDS
                && before != self.lists[COMMANDS].selected
                && self.batch.is_none()
            {
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
            title: match &self.batch {
                Some(b) => format!("commands just sent · {} of {}", rows.len(), b.len()),
                None => format!("commands · {}", ctx.snap.commands.len()),
            },
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
            empty: match &self.batch {
                Some(b) if self.lists[COMMANDS].filter.is_empty() => {
                    format!("sending {} commands…", b.len())
                }
                _ if ctx.snap.commands.is_empty() => {
                    "no commands: fleetdeck command run ACTION".into()
                }
                _ => "no command matches the filter".into(),
            },
            hit: Some((ctx.hits, COMMANDS)),
            sorted: None,
            marked: None,
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
        let results = self.results(ctx);
        let title = match (&self.batch, selected) {
            (Some(batch), _) => {
                let all: Vec<&NodeResult> = self.rows(ctx).iter().flat_map(|c| &c.nodes).collect();
                let reported = all.iter().filter(|(_, r)| r.is_some()).count();
                let failed = all
                    .iter()
                    .filter(|(_, r)| r.as_ref().is_some_and(|r| !r.ok))
                    .count();
                format!(
                    "results of {} commands · {reported}/{} reported · {failed} failed",
                    batch.len(),
                    all.len()
                )
            }
            (None, Some(c)) => format!("results of {} · {}", c.id, c.record.action),
            (None, None) => "results".to_string(),
        };
        let wide = self.batch.is_some();
        let mut header = vec!["NODE"];
        let mut widths = vec![Constraint::Length(16)];
        if wide {
            header.push("TARGET");
            widths.push(Constraint::Length(18));
        }
        header.extend(["STATE", "EXIT", "WHEN", "OUTPUT"]);
        widths.extend([
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Fill(1),
        ]);
        let spec = Spec {
            title,
            header,
            widths,
            len: results.len(),
            state: &self.lists[RESULTS],
            focused: self.focus == RESULTS,
            empty: match &self.batch {
                Some(b) if self.rows(ctx).is_empty() => {
                    format!("sending {} commands…", b.len())
                }
                _ => "no node is targeted".into(),
            },
            hit: Some((ctx.hits, RESULTS)),
            sorted: None,
            marked: None,
        };
        table::render(frame, bottom, spec, theme, |i| {
            let (c, (node, r)) = results[i];
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
            let mut cells = vec![Line::from(node.clone())];
            if wide {
                cells.push(Line::from(c.record.target.clone()));
            }
            cells.extend([
                Line::from(Span::styled(state, style)),
                Line::from(exit),
                Line::from(when),
                Line::from(out),
            ]);
            cells
        });
        let out = self.lists[RESULTS]
            .index(results.len())
            .map(|i| results[i].1)
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
        Route::Commands(self.batch.clone())
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

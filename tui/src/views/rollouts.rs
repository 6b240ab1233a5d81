//! Staged rollouts: each with its phase and waves (nodes, applied, healthy,
//! failed); halt and resume at once, abort after a confirm.

use fleetdeck_store::rollout::Phase;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::component::{Component, Ctx, Effect, Handled, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::source::{Intent, RolloutAction, RolloutFacts};
use crate::table::{self, ListState, Spec};
use crate::text;
use crate::theme::Theme;

#[derive(Debug, Default)]
pub struct RolloutsView {
    list: ListState,
}

pub fn phase_span(theme: &Theme, p: Phase) -> Span<'static> {
    let (word, style) = match p {
        Phase::Running => ("running", theme.ok()),
        Phase::Paused => ("paused", Style::new().fg(theme.health.warn)),
        Phase::Halted => ("halted", Style::new().fg(theme.health.err)),
        Phase::Aborted => ("aborted", theme.dim()),
        Phase::Done => ("done", theme.dim()),
    };
    Span::styled(word, style)
}

/// "set a=1, b=2".
fn sets(r: &RolloutFacts) -> String {
    r.rollout
        .spec
        .set
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bar of `width` cells, `done` of `total` filled.
pub fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        (done * width).div_ceil(total).min(width)
    };
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

impl RolloutsView {
    /// Newest first, filtered.
    fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a RolloutFacts> {
        ctx.snap
            .rollouts
            .iter()
            .rev()
            .filter(|r| {
                table::matches(
                    &self.list.filter,
                    &[
                        &r.rollout.id,
                        &sets(r),
                        &r.rollout.spec.by,
                        &format!("{:?}", r.phase).to_lowercase(),
                    ],
                )
            })
            .collect()
    }
}

impl Component for RolloutsView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let rows = self.rows(ctx);
        if self.list.motion(action, rows.len()) {
            return Handled::Consumed;
        }
        let selected = self.list.index(rows.len()).map(|i| rows[i]);
        let act = |r: &RolloutFacts, a: RolloutAction| Intent::Rollout {
            id: r.rollout.id.clone(),
            action: a,
        };
        match (action, selected) {
            (Action::Pause | Action::Resume | Action::Abort, None) => {
                Handled::Then(Effect::Message("no rollout selected".into()))
            }
            (Action::Pause, Some(r)) => match r.phase {
                Phase::Running | Phase::Paused => {
                    Handled::Then(Effect::Apply(act(r, RolloutAction::Pause)))
                }
                p => Handled::Then(Effect::Message(format!(
                    "rollout {} is {p:?}: nothing to pause",
                    r.rollout.id
                ))),
            },
            (Action::Resume, Some(r)) => match r.phase {
                Phase::Halted | Phase::Paused => {
                    Handled::Then(Effect::Apply(act(r, RolloutAction::Resume)))
                }
                p => Handled::Then(Effect::Message(format!(
                    "rollout {} is {p:?}: only a halted or paused rollout resumes",
                    r.rollout.id
                ))),
            },
            (Action::Abort, Some(r)) if r.phase == Phase::Aborted => Handled::Then(
                Effect::Message(format!("rollout {} is aborted already", r.rollout.id)),
            ),
            (Action::Abort, Some(r)) => Handled::Then(Effect::Confirm {
                question: format!(
                    "Abort rollout {} ({})? Its settings come off every node it reached; this cannot be resumed.",
                    r.rollout.id,
                    sets(r)
                ),
                intents: vec![act(r, RolloutAction::Abort)],
                then: None,
            }),
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, ctx: &Ctx) -> Vec<Action> {
        let mut c = vec![Action::Down, Action::Up];
        if !ctx.read_only {
            c.extend([Action::Pause, Action::Resume, Action::Abort]);
        }
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let rows = self.rows(ctx);
        let selected = self.list.index(rows.len()).map(|i| rows[i]);
        let waves_height = selected.map_or(3, |r| r.waves.len() as u16 + 3);
        let [list, waves, detail] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length(waves_height),
            Constraint::Length(4),
        ])
        .areas(area);
        let spec = Spec {
            title: format!("rollouts · {}", ctx.snap.rollouts.len()),
            header: vec![
                "ROLLOUT", "PHASE", "WAVES", "NODES", "APPLIED", "FAILED", "STARTED", "BY", "SETS",
            ],
            widths: vec![
                Constraint::Length(16),
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Length(6),
                Constraint::Length(8),
                Constraint::Length(7),
                Constraint::Length(9),
                Constraint::Length(12),
                Constraint::Fill(1),
            ],
            len: rows.len(),
            state: &self.list,
            focused: true,
            empty: if ctx.snap.rollouts.is_empty() {
                "no rollouts: fleetdeck rollout start --set KEY=VALUE".into()
            } else {
                "no rollout matches the filter".into()
            },
            hit: Some((ctx.hits, 0)),
            sorted: None,
            marked: None,
        };
        table::render(frame, list, spec, theme, |i| {
            let r = rows[i];
            let open = r.waves.iter().filter(|w| w.open).count();
            let nodes: usize = r.waves.iter().map(|w| w.nodes.len()).sum();
            let applied: usize = r.waves.iter().map(|w| w.applied).sum();
            let failed: usize = r.waves.iter().map(|w| w.failed).sum();
            vec![
                Line::from(Span::styled(r.rollout.id.clone(), theme.key())),
                Line::from(phase_span(theme, r.phase)),
                Line::from(format!("{open}/{}", r.waves.len())),
                Line::from(nodes.to_string()),
                Line::from(applied.to_string()),
                Line::from(if failed > 0 {
                    Span::styled(failed.to_string(), Style::new().fg(theme.health.err))
                } else {
                    Span::raw("0")
                }),
                Line::from(text::ago(ctx.now_ms, r.rollout.spec.at_ms)),
                Line::from(r.rollout.spec.by.clone()),
                Line::from(sets(r)),
            ]
        });
        let wave_rows: Vec<Line> = match selected {
            None => vec![Line::from(Span::styled("no rollout selected", theme.dim()))],
            Some(r) => {
                let mut l = vec![Line::from(Span::styled(
                    format!(
                        "{:<5} {:>6} {:<6} {:>5} {:>7} {:>7} {:>6}  PROGRESS",
                        "WAVE", "UP TO", "OPEN", "NODES", "APPLIED", "HEALTHY", "FAILED"
                    ),
                    theme.header(),
                ))];
                for (i, w) in r.waves.iter().enumerate() {
                    let open = if w.open { "open" } else { "closed" };
                    l.push(Line::from(vec![
                        Span::raw(format!(
                            "{:<5} {:>5}% {:<6} {:>5} {:>7} {:>7} ",
                            i + 1,
                            w.percent,
                            open,
                            w.nodes.len(),
                            w.applied,
                            w.healthy
                        )),
                        Span::styled(
                            format!("{:>6}", w.failed),
                            if w.failed > 0 {
                                Style::new().fg(theme.health.err)
                            } else {
                                Style::new()
                            },
                        ),
                        Span::raw("  "),
                        Span::styled(
                            bar(w.healthy, w.nodes.len(), 20),
                            if w.open { theme.ok() } else { theme.dim() },
                        ),
                    ]));
                }
                l
            }
        };
        let title = selected.map_or_else(
            || "waves".to_string(),
            |r| format!("waves of {}", r.rollout.id),
        );
        frame.render_widget(
            Paragraph::new(wave_rows).block(pane::block(theme, title, false)),
            waves,
        );
        let line = match selected {
            Some(r) => {
                let l = vec![
                    phase_span(theme, r.phase),
                    Span::raw(format!(" · sets {}", sets(r))),
                    Span::styled(
                        format!(
                            " · soak {} · tolerates {} failed · sites {}",
                            text::duration(r.rollout.spec.soak_ms),
                            r.rollout.spec.max_fail,
                            if r.rollout.spec.sites.is_empty() {
                                "all".to_string()
                            } else {
                                r.rollout.spec.sites.join(", ")
                            }
                        ),
                        theme.dim(),
                    ),
                ];
                let mut lines = vec![Line::from(l)];
                if r.phase == Phase::Halted
                    && let Some((at, why)) = &r.rollout.events.halted
                {
                    lines.insert(
                        0,
                        Line::from(Span::styled(
                            format!("halted {}: {why}", text::ago(ctx.now_ms, *at)),
                            Style::new().fg(theme.health.err),
                        )),
                    );
                }
                lines
            }
            None => vec![Line::from(Span::styled("nothing selected", theme.dim()))],
        };
        frame.render_widget(
            Paragraph::new(line)
                .wrap(Wrap { trim: true })
                .block(pane::block(theme, "selected", false)),
            detail,
        );
    }
}

impl View for RolloutsView {
    fn route(&self) -> Route {
        Route::Rollouts
    }
    fn scope(&self) -> Scope {
        Scope::Rollouts
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.list)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_progress_bar_fills_in_proportion() {
        assert_eq!(super::bar(0, 4, 4), "░░░░");
        assert_eq!(super::bar(2, 4, 4), "██░░");
        assert_eq!(super::bar(4, 4, 4), "████");
        assert_eq!(super::bar(1, 0, 3), "░░░");
    }
}

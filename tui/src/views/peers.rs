//! Peers and sync: every other replica, connected or not, its last sync,
//! what it lacks, its last error.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

use crate::component::{Component, Ctx, Handled, Route, View};
use crate::keymap::{Action, Scope};
use crate::source::{Peer, SyncStatus};
use crate::table::{self, ListState, Spec};
use crate::text;
use crate::views::pane;

#[derive(Debug, Default)]
pub struct PeersView {
    list: ListState,
}

impl PeersView {
    fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a Peer> {
        ctx.snap
            .peers
            .iter()
            .filter(|p| {
                table::matches(
                    &self.list.filter,
                    &[
                        &p.name,
                        &p.key,
                        p.addr.as_deref().unwrap_or(""),
                        p.last_error.as_deref().unwrap_or(""),
                    ],
                )
            })
            .collect()
    }
}

impl Component for PeersView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let len = self.rows(ctx).len();
        if self.list.motion(action, len) {
            Handled::Consumed
        } else {
            Handled::Ignored
        }
    }

    fn commands(&self, _ctx: &Ctx) -> Vec<Action> {
        vec![Action::Down, Action::Up]
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let [head, list, detail] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Fill(1),
            Constraint::Length(4),
        ])
        .areas(area);
        let connected = ctx.snap.peers.iter().filter(|p| p.connected).count();
        let sync = match &ctx.snap.sync {
            s @ (SyncStatus::On { .. } | SyncStatus::Elsewhere { .. }) => {
                Span::styled(s.to_string(), theme.ok())
            }
            s @ SyncStatus::Off { .. } => Span::styled(s.to_string(), theme.stale()),
        };
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(ctx.snap.me.clone(), theme.title()),
                Span::raw("  "),
                sync,
                Span::styled(
                    format!(
                        "  · {connected} of {} peers connected",
                        ctx.snap.peers.len()
                    ),
                    theme.dim(),
                ),
            ])),
            head,
        );
        let rows = self.rows(ctx);
        let spec = Spec {
            title: format!("peers · {}", ctx.snap.peers.len()),
            header: vec![
                "PEER",
                "KEY",
                "STATE",
                "ADDRESS",
                "LAST SYNC",
                "LACKS",
                "LAST ERROR",
            ],
            widths: vec![
                Constraint::Length(14),
                Constraint::Length(8),
                Constraint::Length(11),
                Constraint::Length(21),
                Constraint::Length(10),
                Constraint::Length(5),
                Constraint::Fill(1),
            ],
            len: rows.len(),
            state: &self.list,
            focused: true,
            empty: "no other member in the fleet yet: fleetdeck invite".into(),
        };
        table::render(frame, list, spec, theme, |i| {
            let p = rows[i];
            let state = if p.connected {
                Span::styled("● connected", theme.ok())
            } else {
                Span::styled("○ offline", theme.dim())
            };
            Row::new(vec![
                Cell::from(p.name.clone()),
                Cell::from(Span::styled(
                    p.key.chars().take(8).collect::<String>(),
                    theme.dim(),
                )),
                Cell::from(state),
                Cell::from(p.addr.clone().unwrap_or_else(|| "-".into())),
                Cell::from(
                    p.last_sync_ms
                        .map_or_else(|| "never".into(), |t| text::ago(ctx.now_ms, t)),
                ),
                Cell::from(p.lacks.map_or_else(|| "?".into(), |n| n.to_string())),
                Cell::from(Span::styled(
                    p.last_error.clone().unwrap_or_default(),
                    theme.error(),
                )),
            ])
        });
        let lines = match self.list.index(rows.len()).map(|i| rows[i]) {
            Some(p) => {
                let mut l = vec![Line::from(vec![
                    Span::raw(format!("{} ", p.name)),
                    Span::styled(p.key.clone(), theme.dim()),
                ])];
                if let Some(e) = &p.last_error {
                    l.push(Line::from(Span::styled(e.clone(), theme.error())));
                }
                l
            }
            None => vec![Line::from(Span::styled("nothing selected", theme.dim()))],
        };
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(pane(theme, "selected", false)),
            detail,
        );
    }
}

impl View for PeersView {
    fn route(&self) -> Route {
        Route::Peers
    }
    fn scope(&self) -> Scope {
        Scope::Peers
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.list)
    }
}

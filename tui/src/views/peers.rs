//! Peers and sync: every other replica, connected or not, its last sync,
//! what it lacks, its last error.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::component::{Component, Ctx, Handled, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::source::{Peer, SyncStatus};
use crate::table::{self, ListState, Spec};
use crate::text;
use fleetdeck_store::peer::PathKind;

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
        let conflicts = &ctx.snap.conflicts;
        let conflicts_height = if conflicts.is_empty() {
            3
        } else {
            (conflicts.len() as u16 + 3).min(area.height / 3)
        };
        let [head, list, detail, conflicts_area] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Fill(1),
            Constraint::Length(4),
            Constraint::Length(conflicts_height),
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
                "PATH",
                "RTT",
                "ADDRESS",
                "LAST SYNC",
                "LACKS",
                "LAST ERROR",
            ],
            widths: vec![
                Constraint::Length(14),
                Constraint::Length(8),
                Constraint::Length(11),
                Constraint::Length(6),
                Constraint::Length(7),
                Constraint::Length(21),
                Constraint::Length(10),
                Constraint::Length(5),
                Constraint::Fill(1),
            ],
            len: rows.len(),
            state: &self.list,
            focused: true,
            hit: Some((ctx.hits, 0)),
            sorted: None,
            marked: None,
            empty: "no other member in the fleet yet: fleetdeck invite".into(),
        };
        table::render(frame, list, spec, theme, |i| {
            let p = rows[i];
            let state = if p.connected {
                Span::styled("● connected", theme.ok())
            } else {
                Span::styled("○ offline", theme.dim())
            };
            vec![
                Line::from(p.name.clone()),
                Line::from(Span::styled(
                    p.key.chars().take(8).collect::<String>(),
                    theme.dim(),
                )),
                Line::from(state),
                // Direct, or through the fleet's relay (dim: slower, and
                // only while no direct path works).
                Line::from(match p.path {
                    Some(PathKind::Direct) => Span::raw("direct"),
                    Some(PathKind::Relay) => Span::styled("relay", theme.dim()),
                    None => Span::styled("-", theme.dim()),
                }),
                Line::from(p.rtt_ms.map_or_else(|| "-".into(), |ms| format!("{ms} ms"))),
                Line::from(p.addr.clone().unwrap_or_else(|| "-".into())),
                Line::from(
                    p.last_sync_ms
                        .map_or_else(|| "never".into(), |t| text::ago(ctx.now_ms, t)),
                ),
                Line::from(p.lacks.map_or_else(|| "?".into(), |n| n.to_string())),
                Line::from(Span::styled(
                    p.last_error.clone().unwrap_or_default(),
                    theme.error(),
                )),
            ]
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
                .block(pane::block(theme, "selected", false)),
            detail,
        );
        let spec = Spec {
            title: format!("conflicts · {}", conflicts.len()),
            header: vec!["SCOPE", "KEY", "VALUES (★ wins)"],
            widths: vec![
                Constraint::Length(16),
                Constraint::Length(24),
                Constraint::Fill(1),
            ],
            len: conflicts.len(),
            state: &ListState::default(),
            focused: false,
            empty: "no conflicts: every key has one value".into(),
            hit: None,
            sorted: None,
            marked: None,
        };
        table::render(frame, conflicts_area, spec, theme, |i| {
            let c = &conflicts[i];
            let mut values: Vec<Span> = Vec::new();
            // The winner first, then the values it won over.
            let mut sorted: Vec<_> = c.values.iter().collect();
            sorted.sort_by_key(|v| !v.winner);
            for (k, v) in sorted.into_iter().enumerate() {
                if k > 0 {
                    values.push(Span::styled(" · ", theme.dim()));
                }
                let who = author_name(ctx, &v.author);
                if v.winner {
                    values.push(Span::styled(format!("★ {} ({who})", v.value), theme.ok()));
                } else {
                    values.push(Span::styled(format!("{} ({who})", v.value), theme.dim()));
                }
            }
            vec![
                Line::from(c.scope.clone()),
                Line::from(c.key.clone()),
                Line::from(values),
            ]
        });
    }
}

/// A member's name for an author key (or its first 8 digits).
fn author_name(ctx: &Ctx, author: &str) -> String {
    fleetdeck_store::MemberKey::parse(author)
        .ok()
        .and_then(|k| ctx.snap.fleet.member_name(&k).map(str::to_string))
        .unwrap_or_else(|| author.chars().take(8).collect())
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

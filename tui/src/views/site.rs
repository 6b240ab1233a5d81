//! One site: its nodes (status, role, CPU/mem/disk, last heard, last apply),
//! its config overrides and its alerts.

use fleetdeck_store::SiteId;
use fleetdeck_store::document::LayerRef;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

use crate::cells::{self, badge, heard, node_badge};
use crate::component::{Component, Ctx, Effect, Handled, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane::{self, cycle};
use crate::source::{NodeFacts, Snapshot};
use crate::table::{self, ListState, Spec};
use crate::text;
use crate::theme::Theme;
use crate::views::alerts;

const PANES: usize = 3;
const NODES: usize = 0;
const OVERRIDES: usize = 1;
const ALERTS: usize = 2;

#[derive(Debug)]
pub struct SiteView {
    id: String,
    lists: [ListState; PANES],
    focus: usize,
}

impl SiteView {
    pub fn new(id: &str) -> SiteView {
        SiteView {
            id: id.to_string(),
            lists: Default::default(),
            focus: NODES,
        }
    }

    fn node_rows<'a>(&self, snap: &'a Snapshot) -> Vec<&'a NodeFacts> {
        let f = &self.lists[NODES].filter;
        snap.nodes_of(&self.id)
            .filter(|n| {
                table::matches(
                    f,
                    &[
                        &n.id,
                        n.role.as_deref().unwrap_or(""),
                        cells::state_label(n.state),
                    ],
                )
            })
            .collect()
    }

    fn override_rows(&self, snap: &Snapshot) -> Vec<(String, String)> {
        let f = &self.lists[OVERRIDES].filter;
        SiteId::parse(&self.id)
            .ok()
            .and_then(|id| snap.fleet.sites.get(&id))
            .map(|s| {
                s.overrides
                    .iter()
                    .map(|(k, v)| (k.to_key(), v.to_string()))
                    .filter(|(k, v)| table::matches(f, &[k, v]))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn alert_rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a fleetdeck_store::alerts::Alert> {
        let f = &self.lists[ALERTS].filter;
        ctx.snap
            .alerts
            .iter()
            .filter(|a| a.site == self.id)
            .filter(|a| table::matches(f, &[&a.id, &a.message, a.severity.as_str()]))
            .collect()
    }

    fn len(&self, pane: usize, ctx: &Ctx) -> usize {
        match pane {
            NODES => self.node_rows(ctx.snap).len(),
            OVERRIDES => self.override_rows(ctx.snap).len(),
            _ => self.alert_rows(ctx).len(),
        }
    }
}

impl Component for SiteView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let len = self.len(self.focus, ctx);
        if self.lists[self.focus].motion(action, len) {
            return Handled::Consumed;
        }
        match action {
            Action::NextPane | Action::PrevPane => {
                self.focus = cycle(self.focus, PANES, action == Action::NextPane);
                Handled::Consumed
            }
            Action::Open if self.focus == NODES => {
                let rows = self.node_rows(ctx.snap);
                match self.lists[NODES].index(rows.len()) {
                    Some(i) => Handled::Then(Effect::Open(Route::Node(rows[i].id.clone()))),
                    None => Handled::Consumed,
                }
            }
            Action::Open if self.focus == ALERTS => {
                alerts::open_selected(&self.alert_rows(ctx), &self.lists[ALERTS])
            }
            Action::Open | Action::EditConfig => match SiteId::parse(&self.id) {
                Ok(id) => Handled::Then(Effect::Open(Route::Config(LayerRef::Site(id)))),
                Err(e) => Handled::Then(Effect::Message(e.to_string())),
            },
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, _ctx: &Ctx) -> Vec<Action> {
        let mut c = vec![Action::Down, Action::Up];
        c.push(Action::Open);
        c.push(Action::NextPane);
        c.push(Action::EditConfig);
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let Some(site) = ctx.snap.site(&self.id) else {
            pane::gone(frame, area, theme, &format!("site {}", self.id));
            return;
        };
        // The nodes table is as tall as its rows (borders and header: 3),
        // up to 60% of the view; overrides and alerts take the rest.
        let rows = self.node_rows(ctx.snap);
        let cap = (u32::from(area.height) * 60 / 100) as u16;
        let nodes_height = (rows.len() as u16 + 3).clamp(5, cap.max(5));
        let [head, nodes, bottom] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(nodes_height),
            Constraint::Fill(1),
        ])
        .areas(area);
        let mut line = vec![
            Span::styled(site.id.clone(), theme.title()),
            Span::raw("  "),
            Span::raw(site.name.clone()),
            Span::raw("  "),
            badge(theme, site.state),
            Span::raw(format!(
                "  {}/{} nodes up  ",
                site.nodes_up, site.nodes_total
            )),
            Span::styled("heard ", theme.dim()),
            heard(theme, ctx.now_ms, site.last_heard_ms, site.heartbeat_ms),
        ];
        if let Some(z) = &site.zone {
            line.push(Span::styled(format!("  zone {z}"), theme.dim()));
        }
        if let Some((lat, lon)) = site.location {
            line.push(Span::styled(format!("  {lat:.2}, {lon:.2}"), theme.dim()));
        }
        frame.render_widget(
            Paragraph::new(Line::from(line)).wrap(Wrap { trim: true }),
            head,
        );

        let spec = Spec {
            title: format!("nodes · {}", site.nodes_total),
            header: vec![
                "STATUS",
                "NODE",
                "ROLE",
                "CPU",
                "MEM",
                "DISK",
                "LAST HEARD",
                "LAST APPLY",
            ],
            widths: vec![
                Constraint::Length(9),
                Constraint::Length(14),
                Constraint::Length(9),
                Constraint::Length(4),
                Constraint::Length(4),
                Constraint::Length(4),
                Constraint::Length(11),
                Constraint::Fill(1),
            ],
            len: rows.len(),
            state: &self.lists[NODES],
            focused: self.focus == NODES,
            hit: Some((ctx.hits, NODES)),
            empty: if site.nodes_total == 0 {
                "no nodes: fleetdeck node add ID --site …".into()
            } else {
                format!("no node matches /{}", self.lists[NODES].filter)
            },
        };
        table::render(frame, nodes, spec, theme, |i| {
            node_row(theme, ctx.now_ms, rows[i])
        });

        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
        let overrides = self.override_rows(ctx.snap);
        let spec = Spec {
            title: format!("overrides · {}", overrides.len()),
            header: vec!["KEY", "VALUE"],
            widths: vec![Constraint::Percentage(50), Constraint::Percentage(50)],
            len: overrides.len(),
            state: &self.lists[OVERRIDES],
            focused: self.focus == OVERRIDES,
            hit: Some((ctx.hits, OVERRIDES)),
            empty: "none: the fleet defaults apply".into(),
        };
        table::render(frame, left, spec, theme, |i| {
            let (k, v) = &overrides[i];
            Row::new(vec![Cell::from(k.clone()), Cell::from(v.clone())])
        });

        let alerts = self.alert_rows(ctx);
        alerts::draw_pane(
            frame,
            right,
            ctx,
            &alerts,
            &self.lists[ALERTS],
            (ALERTS, self.focus == ALERTS),
            |a| a.message.clone(),
        );
    }
}

impl View for SiteView {
    fn route(&self) -> Route {
        Route::Site(self.id.clone())
    }
    fn scope(&self) -> Scope {
        Scope::Site
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.lists[self.focus])
    }
    fn list_mut(&mut self, pane: usize) -> Option<&mut ListState> {
        self.lists.get_mut(pane)
    }
    fn focus(&mut self, pane: usize) {
        if pane < PANES {
            self.focus = pane;
        }
    }
    fn focused(&self) -> usize {
        self.focus
    }
}

/// A metric cell: the percentage, amber from 85 %, red from 95 %.
pub fn metric(theme: &Theme, v: Option<f64>) -> Span<'static> {
    let style = match v {
        Some(v) if v >= 95.0 => Style::new().fg(theme.health.err),
        Some(v) if v >= 85.0 => Style::new().fg(theme.health.warn),
        _ => Style::new(),
    };
    Span::styled(text::pct(v), style)
}

/// "ok r42 3m ago", "failed r43 10m ago".
pub fn apply_cell(theme: &Theme, now_ms: i64, n: &NodeFacts) -> Span<'static> {
    match &n.applied {
        None => Span::styled("-", theme.dim()),
        Some((rev, result, at)) => {
            let (word, style) = cells::apply_result(theme, *result);
            Span::styled(
                format!("{word} {} {}", text::fit(rev, 10), text::ago(now_ms, *at)),
                style,
            )
        }
    }
}

fn node_row(theme: &Theme, now_ms: i64, n: &NodeFacts) -> Row<'static> {
    Row::new(vec![
        Cell::from(node_badge(theme, n.state, n.down)),
        Cell::from(Span::styled(n.id.clone(), theme.state(n.state))),
        Cell::from(n.role.clone().unwrap_or_else(|| "-".into())),
        Cell::from(metric(theme, n.cpu)),
        Cell::from(metric(theme, n.mem)),
        Cell::from(metric(theme, n.disk)),
        Cell::from(heard(theme, now_ms, n.last_heard_ms, n.heartbeat_ms)),
        Cell::from(apply_cell(theme, now_ms, n)),
    ])
}

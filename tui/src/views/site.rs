//! One site: its nodes (status, role, CPU/mem/disk, last heard, last apply,
//! sortable by any of them), its config overrides and its alerts.

use fleetdeck_store::document::LayerRef;
use fleetdeck_store::{NodeId, SiteId};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::bulk;
use crate::cells::{self, heard, node_badge, node_count, site_badge};
use crate::component::{Component, Ctx, Effect, Handled, Prompt, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane::{self, cycle};
use crate::source::{NodeFacts, Snapshot};
use crate::table::{self, Column, ListState, Spec};
use crate::text;
use crate::theme::Theme;
use crate::views::alerts;

const PANES: usize = 3;
const NODES: usize = 0;
const OVERRIDES: usize = 1;
const ALERTS: usize = 2;

/// The columns of the nodes table, in the order they are drawn; its own
/// order is by node id.
pub const NODE_COLUMNS: [Column; 8] = [
    Column {
        title: "STATUS",
        order: "worst first",
        reversed: "best first",
    },
    Column {
        title: "NODE",
        order: "A to Z",
        reversed: "Z to A",
    },
    Column {
        title: "ROLE",
        order: "A to Z",
        reversed: "Z to A",
    },
    Column {
        title: "CPU",
        order: "highest first",
        reversed: "lowest first",
    },
    Column {
        title: "MEM",
        order: "highest first",
        reversed: "lowest first",
    },
    Column {
        title: "DISK",
        order: "fullest first",
        reversed: "emptiest first",
    },
    Column {
        title: "LAST HEARD",
        order: "longest silent first",
        reversed: "most recent first",
    },
    Column {
        title: "LAST APPLY",
        order: "failures first",
        reversed: "successes first",
    },
];

/// The nodes table's own order: by node id.
const NODE_ORDER: usize = 1;

/// Compares two nodes by a column of [`NODE_COLUMNS`], ties by id.
fn compare_nodes(column: usize, a: &NodeFacts, b: &NodeFacts) -> std::cmp::Ordering {
    use fleetdeck_store::alerts::SiteState;
    use fleetdeck_store::health::ApplyResult;
    use std::cmp::Reverse;
    let rank = |n: &NodeFacts| {
        let st = match n.state {
            SiteState::Err => 0,
            SiteState::Warn => 1,
            SiteState::Unknown => 2,
            SiteState::Green => 3,
        };
        (!n.down, st)
    };
    // Highest first, nothing last.
    let level = |v: Option<f64>| Reverse(v.map(|v| (v * 10.0).round() as i64));
    let apply = |n: &NodeFacts| match &n.applied {
        Some((_, ApplyResult::Failed, _)) => 0,
        Some((_, ApplyResult::RolledBack, _)) => 1,
        Some((_, ApplyResult::Ok, _)) => 2,
        None => 3,
    };
    let by = match column {
        0 => rank(a).cmp(&rank(b)),
        2 => a.role.cmp(&b.role),
        3 => level(a.cpu).cmp(&level(b.cpu)),
        4 => level(a.mem).cmp(&level(b.mem)),
        5 => level(a.disk).cmp(&level(b.disk)),
        6 => a.last_heard_ms.cmp(&b.last_heard_ms),
        7 => apply(a).cmp(&apply(b)),
        _ => std::cmp::Ordering::Equal,
    };
    by.then_with(|| a.id.cmp(&b.id))
}

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
        let list = &self.lists[NODES];
        let mut rows: Vec<&NodeFacts> = snap
            .nodes_of(&self.id)
            .filter(|n| {
                table::matches(
                    &list.filter,
                    &[
                        &n.id,
                        n.role.as_deref().unwrap_or(""),
                        cells::state_label(n.state),
                    ],
                )
            })
            .collect();
        table::sort(&mut rows, list.order(NODE_ORDER), |c, a, b| {
            compare_nodes(c, a, b)
        });
        rows
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
        alerts::pane_rows(ctx, &self.lists[ALERTS], self.focus == ALERTS, |a| {
            a.site == self.id
        })
    }

    /// The ids of a pane's rows, as drawn (overrides by key).
    fn ids(&self, pane: usize, ctx: &Ctx) -> Vec<String> {
        match pane {
            NODES => self
                .node_rows(ctx.snap)
                .iter()
                .map(|n| n.id.clone())
                .collect(),
            OVERRIDES => self
                .override_rows(ctx.snap)
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
            _ => alerts::ids(&self.alert_rows(ctx))
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }
}

impl Component for SiteView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let ids = self.ids(self.focus, ctx);
        if self.lists[self.focus].step(action, &ids) {
            return Handled::Consumed;
        }
        match action {
            Action::NextPane | Action::PrevPane => {
                self.focus = cycle(self.focus, PANES, action == Action::NextPane);
                self.lists[ALERTS].hold_here();
                Handled::Consumed
            }
            Action::Sort | Action::ReverseSort if self.focus == NODES => {
                let list = &mut self.lists[NODES];
                let s = if action == Action::Sort {
                    list.next_sort(NODE_ORDER, NODE_COLUMNS.len())
                } else {
                    list.reverse_sort(NODE_ORDER)
                };
                Handled::Then(Effect::Message(table::sorted_by(&NODE_COLUMNS, s)))
            }
            Action::Sort | Action::ReverseSort => Handled::Then(Effect::Message(
                "only the nodes table sorts here (tab to it)".into(),
            )),
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
            Action::Mark | Action::ClearMarks | Action::RunAction if self.focus != NODES => {
                Handled::Then(Effect::Message(
                    "marks and actions are on the nodes table (tab to it)".into(),
                ))
            }
            Action::Mark => {
                let ids = self.ids(NODES, ctx);
                bulk::mark(&mut self.lists[NODES], &ids, "node")
            }
            Action::ClearMarks => bulk::clear(&mut self.lists[NODES]),
            Action::Back if !self.lists[NODES].marks.is_empty() => {
                bulk::clear(&mut self.lists[NODES])
            }
            Action::RunAction => {
                let ids = self.ids(NODES, ctx);
                let targets: Vec<LayerRef> = bulk::chosen(&self.lists[NODES], &ids)
                    .iter()
                    .filter_map(|id| NodeId::parse(id).ok())
                    .map(LayerRef::Node)
                    .collect();
                if targets.is_empty() {
                    return Handled::Then(Effect::Message("no node to run an action on".into()));
                }
                Handled::Then(Effect::Prompt(Prompt::RunAction { targets }))
            }
            Action::EventsHere => match SiteId::parse(&self.id) {
                Ok(id) => Handled::Then(Effect::Open(Route::Events(LayerRef::Site(id)))),
                Err(e) => Handled::Then(Effect::Message(e.to_string())),
            },
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
        if self.focus == NODES {
            c.push(Action::Sort);
            c.push(Action::Mark);
            if !self.lists[NODES].marks.is_empty() {
                c.push(Action::ClearMarks);
            }
            c.push(Action::RunAction);
        }
        c.push(Action::EditConfig);
        c.push(Action::EventsHere);
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let Some(site) = ctx.snap.site(&self.id) else {
            pane::gone(frame, area, theme, &format!("site {}", self.id));
            return;
        };
        // The header's fields, each on one line whole.
        let mut fields = vec![
            vec![Span::styled(site.id.clone(), theme.title())],
            vec![Span::raw(site.name.clone())],
            vec![site_badge(theme, site)],
            vec![
                node_count(
                    theme,
                    site.nodes_up,
                    site.nodes_total,
                    site.last_heard_ms.is_none(),
                ),
                Span::raw(" nodes up"),
            ],
            vec![
                Span::styled("heard ", theme.dim()),
                heard(theme, ctx.now_ms, site.last_heard_ms, site.heartbeat_ms),
            ],
        ];
        if let Some(z) = &site.zone {
            fields.push(vec![Span::styled(format!("zone {z}"), theme.dim())]);
        }
        if let Some((lat, lon)) = site.location {
            fields.push(vec![Span::styled(
                format!("{lat:.2}, {lon:.2}"),
                theme.dim(),
            )]);
        }
        let head_lines = text::flow(fields, usize::from(area.width));
        // The nodes table is as tall as its rows (borders and header: 3),
        // up to 60% of the view; overrides and alerts take the rest.
        let rows = self.node_rows(ctx.snap);
        let cap = (u32::from(area.height) * 60 / 100) as u16;
        let nodes_height = (rows.len() as u16 + 3).clamp(5, cap.max(5));
        let [head, nodes, bottom] = Layout::vertical([
            Constraint::Length((head_lines.len() as u16).clamp(1, 3) + 1),
            Constraint::Length(nodes_height),
            Constraint::Fill(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(head_lines), head);

        let is_marked = |i: usize| self.lists[NODES].is_marked(&rows[i].id);
        let spec = Spec {
            title: format!("nodes · {}", site.nodes_total),
            header: NODE_COLUMNS.iter().map(|c| c.title).collect(),
            widths: vec![
                Constraint::Length(9),
                Constraint::Length(14),
                Constraint::Length(9),
                Constraint::Length(4),
                Constraint::Length(4),
                Constraint::Length(5),
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
            sorted: Some(self.lists[NODES].order(NODE_ORDER)),
            marked: Some(&is_marked),
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
            sorted: None,
            marked: None,
        };
        table::render(frame, left, spec, theme, |i| {
            let (k, v) = &overrides[i];
            vec![Line::from(k.clone()), Line::from(v.clone())]
        });

        let alerts = self.alert_rows(ctx);
        alerts::draw_pane(
            frame,
            right,
            ctx,
            &alerts,
            &self.lists[ALERTS],
            (ALERTS, self.focus == ALERTS),
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
    fn select_row(&mut self, pane: usize, row: usize, ctx: &Ctx) {
        if pane < PANES {
            let ids = self.ids(pane, ctx);
            self.lists[pane].select(row, &ids);
        }
    }
    fn focus(&mut self, pane: usize) {
        if pane < PANES {
            self.focus = pane;
        }
    }
    fn focused(&self) -> usize {
        self.focus
    }
    fn follow(&mut self, ctx: &Ctx) -> Option<String> {
        let mut said = None;
        for pane in [NODES, OVERRIDES, ALERTS] {
            let ids = self.ids(pane, ctx);
            let gone = self.lists[pane].follow(&ids);
            if pane == self.focus {
                said = gone.and_then(|id| match pane {
                    NODES => Some(format!("node {id} left the list; selected the nearest row")),
                    OVERRIDES => Some(format!("override {id} is gone; selected the nearest row")),
                    _ => alerts::gone(ctx, &id),
                });
            }
        }
        said
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

/// "ok 3m ago 4b660dc1", "failed 10m ago 9e1a2b3c": the result and its
/// age first, so a narrow column cuts the revision (its first 8 hex
/// digits, as short hashes are written) rather than them.
pub fn apply_cell(theme: &Theme, now_ms: i64, n: &NodeFacts) -> Span<'static> {
    match &n.applied {
        None => Span::styled("-", theme.dim()),
        Some((rev, result, at)) => {
            let (word, style) = cells::apply_result(theme, *result);
            let rev: String = rev.chars().take(8).collect();
            Span::styled(format!("{word} {} {rev}", text::ago(now_ms, *at)), style)
        }
    }
}

fn node_row(theme: &Theme, now_ms: i64, n: &NodeFacts) -> Vec<Line<'static>> {
    vec![
        Line::from(node_badge(theme, n.state, n.down)),
        Line::from(Span::styled(n.id.clone(), theme.state(n.state))),
        Line::from(n.role.clone().unwrap_or_else(|| "-".into())),
        Line::from(metric(theme, n.cpu)),
        Line::from(metric(theme, n.mem)),
        Line::from(metric(theme, n.disk)),
        Line::from(heard(theme, now_ms, n.last_heard_ms, n.heartbeat_ms)),
        Line::from(apply_cell(theme, now_ms, n)),
    ]
}

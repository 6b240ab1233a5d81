//! One node: sparklines of CPU, memory and disk (per minute, then every
//! register the console saw arrive, so their "now" is the latest health),
//! the effective config as leaves with their provenance, and the facts of
//! its latest health register.

use fleetdeck_store::NodeId;
use fleetdeck_store::alerts::{Alert, Thresholds};
use fleetdeck_store::config::Source as Layer;
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::health::{Sample, StoredRegister};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline, Wrap};

use crate::cells::{self, heard, node_badge};
use crate::component::{Component, Ctx, Effect, Handled, Need, Prompt, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane::{self, cycle};
use crate::table::{self, ListState, Spec};
use crate::text;
use crate::theme::Theme;
use crate::views::alerts;

const CONFIG: usize = 0;
const ALERTS: usize = 1;

#[derive(Debug)]
pub struct NodeView {
    id: String,
    lists: [ListState; 2],
    focus: usize,
}

/// One leaf of the effective config: key, value, which layer set it.
struct Leaf {
    key: String,
    value: String,
    from: Layer,
}

impl NodeView {
    pub fn new(id: &str) -> NodeView {
        NodeView {
            id: id.to_string(),
            lists: Default::default(),
            focus: CONFIG,
        }
    }

    fn leaves(&self, ctx: &Ctx) -> Vec<Leaf> {
        let f = &self.lists[CONFIG].filter;
        let Ok(id) = NodeId::parse(&self.id) else {
            return Vec::new();
        };
        let Ok(eff) = ctx.snap.fleet.effective_node(&id) else {
            return Vec::new();
        };
        eff.leaves()
            .map(|(p, v, s)| Leaf {
                key: p.to_key(),
                value: v.to_string(),
                from: s,
            })
            .filter(|l| table::matches(f, &[&l.key, &l.value, &layer_word(l.from)]))
            .collect()
    }

    fn alert_rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a Alert> {
        let site = ctx.snap.node(&self.id).map(|n| n.site.as_str());
        alerts::pane_rows(ctx, &self.lists[ALERTS], self.focus == ALERTS, |a| {
            a.node.as_deref() == Some(self.id.as_str())
                || (a.node.is_none() && Some(a.site.as_str()) == site)
        })
    }

    /// The ids of a pane's rows, as drawn (config leaves by key).
    fn ids(&self, pane: usize, ctx: &Ctx) -> Vec<String> {
        match pane {
            CONFIG => self.leaves(ctx).into_iter().map(|l| l.key).collect(),
            _ => alerts::ids(&self.alert_rows(ctx))
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The name of a layer as the store spells it ("fleet", "site", "node",
/// "rollout", …): named without a `match`, so a layer the store adds later
/// shows under its own name.
fn layer_word(l: Layer) -> String {
    serde_json::to_value(l)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{l:?}").to_lowercase())
}

/// "fleet", "site BL-WH-N", "node whn-nvr", or the layer's own name, with
/// its colour.
fn provenance(theme: &Theme, l: Layer, site: &str, node: &str) -> (String, Color) {
    if l == Layer::Fleet {
        ("fleet".into(), theme.ui.fleet)
    } else if l == Layer::Site {
        (format!("site {site}"), theme.ui.site)
    } else if l == Layer::Node {
        (format!("node {node}"), theme.ui.node)
    } else {
        (layer_word(l), theme.ui.accent)
    }
}

impl Component for NodeView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let ids = self.ids(self.focus, ctx);
        if self.lists[self.focus].step(action, &ids) {
            return Handled::Consumed;
        }
        match action {
            Action::NextPane | Action::PrevPane => {
                self.focus = cycle(self.focus, 2, action == Action::NextPane);
                self.lists[ALERTS].hold_here();
                Handled::Consumed
            }
            Action::Open if self.focus == ALERTS => {
                alerts::open_selected(&self.alert_rows(ctx), &self.lists[ALERTS])
            }
            Action::OpenTunnel => match NodeId::parse(&self.id) {
                Ok(node) => Handled::Then(Effect::Prompt(Prompt::Tunnel { node })),
                Err(e) => Handled::Then(Effect::Message(e.to_string())),
            },
            Action::EventsHere => match NodeId::parse(&self.id) {
                Ok(id) => Handled::Then(Effect::Open(Route::Events(LayerRef::Node(id)))),
                Err(e) => Handled::Then(Effect::Message(e.to_string())),
            },
            Action::Open | Action::EditConfig => match NodeId::parse(&self.id) {
                Ok(id) => Handled::Then(Effect::Open(Route::Config(LayerRef::Node(id)))),
                Err(e) => Handled::Then(Effect::Message(e.to_string())),
            },
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, _ctx: &Ctx) -> Vec<Action> {
        let mut c = vec![Action::Down, Action::Up, Action::Open];
        c.push(Action::NextPane);
        c.push(Action::EditConfig);
        c.push(Action::EventsHere);
        c.push(Action::OpenTunnel);
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let Some(node) = ctx.snap.node(&self.id) else {
            pane::gone(frame, area, theme, &format!("node {}", self.id));
            return;
        };
        let reg = ctx.snap.health.get(&self.id);
        let mut fields = vec![
            vec![Span::styled(node.id.clone(), theme.title())],
            vec![node_badge(theme, node.state, node.down)],
            vec![
                Span::styled("site ", theme.dim()),
                Span::styled(node.site.clone(), Style::new().fg(theme.ui.site)),
            ],
            vec![
                Span::styled("role ", theme.dim()),
                Span::raw(node.role.clone().unwrap_or_else(|| "-".into())),
            ],
            vec![
                Span::styled("heard ", theme.dim()),
                heard(theme, ctx.now_ms, node.last_heard_ms, node.heartbeat_ms),
            ],
            vec![Span::styled(
                format!("every {}", text::duration(node.heartbeat_ms)),
                theme.dim(),
            )],
        ];
        if let Some(r) = reg {
            fields.push(vec![Span::styled(
                format!("seq {}", r.reg.seq),
                theme.dim(),
            )]);
        }
        // The tunnels this console opened through the node.
        for t in ctx.snap.tunnels.iter().filter(|t| t.node == self.id) {
            fields.push(vec![
                Span::styled("tunnel ", theme.dim()),
                Span::styled(t.local.to_string(), Style::new().fg(theme.ui.accent)),
                Span::styled(format!(" → {}", t.target), theme.dim()),
            ]);
        }
        let head_lines = text::flow(fields, usize::from(area.width));
        let [head, sparks, body] = Layout::vertical([
            Constraint::Length((head_lines.len() as u16).clamp(1, 3) + 1),
            Constraint::Length(5),
            Constraint::Fill(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(head_lines), head);

        let series = ctx.series.points(&self.id);
        let [cpu, mem, disk] = Layout::horizontal([
            Constraint::Ratio(1, 3),
            Constraint::Ratio(1, 3),
            Constraint::Ratio(1, 3),
        ])
        .areas(sparks);
        spark(
            frame,
            cpu,
            theme,
            "cpu",
            &series,
            |s| s.cpu,
            theme.ui.accent,
        );
        spark(frame, mem, theme, "mem", &series, |s| s.mem, theme.ui.node);
        spark(
            frame,
            disk,
            theme,
            "disk",
            &series,
            |s| s.disk,
            theme.health.warn,
        );

        let [left, right] =
            Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
                .areas(body);
        let leaves = self.leaves(ctx);
        let site = node.site.clone();
        let spec = Spec {
            title: format!("effective config · {} leaves", leaves.len()),
            header: vec!["KEY", "VALUE", "FROM"],
            widths: vec![
                Constraint::Fill(3),
                Constraint::Fill(2),
                Constraint::Length(14),
            ],
            len: leaves.len(),
            state: &self.lists[CONFIG],
            focused: self.focus == CONFIG,
            hit: Some((ctx.hits, CONFIG)),
            empty: "no config".into(),
            sorted: None,
            marked: None,
        };
        table::render(frame, left, spec, theme, |i| {
            let l = &leaves[i];
            let (from, color) = provenance(theme, l.from, &site, &self.id);
            vec![
                Line::from(l.key.clone()),
                Line::from(l.value.clone()),
                Line::from(Span::styled(from, Style::new().fg(color))),
            ]
        });

        let alerts = self.alert_rows(ctx);
        let alert_height = (alerts.len() as u16 + 3).clamp(4, 8);
        let [facts_area, alerts_area] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(alert_height)]).areas(right);
        let thresholds = NodeId::parse(&self.id)
            .ok()
            .and_then(|id| ctx.snap.fleet.effective_node(&id).ok())
            .map(|e| Thresholds::from_lookup(|k| e.get_str(k)))
            .unwrap_or_default();
        let facts = match reg {
            Some(r) => facts(
                theme,
                ctx.now_ms,
                r,
                &thresholds,
                usize::from(facts_area.width.saturating_sub(2)),
            ),
            None => vec![Line::from(Span::styled(
                "this node never reported: no health register",
                theme.dim(),
            ))],
        };
        frame.render_widget(
            Paragraph::new(facts)
                .wrap(Wrap { trim: true })
                .block(pane::block(theme, "latest health", false)),
            facts_area,
        );
        alerts::draw_pane(
            frame,
            alerts_area,
            ctx,
            &alerts,
            &self.lists[ALERTS],
            (ALERTS, self.focus == ALERTS),
        );
    }
}

impl View for NodeView {
    fn route(&self) -> Route {
        Route::Node(self.id.clone())
    }
    fn scope(&self) -> Scope {
        Scope::Node
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.lists[self.focus])
    }
    fn needs(&self) -> Vec<Need> {
        vec![Need::Series(self.id.clone())]
    }
    fn list_mut(&mut self, pane: usize) -> Option<&mut ListState> {
        self.lists.get_mut(pane)
    }
    fn select_row(&mut self, pane: usize, row: usize, ctx: &Ctx) {
        if pane < self.lists.len() {
            let ids = self.ids(pane, ctx);
            self.lists[pane].select(row, &ids);
        }
    }
    fn focus(&mut self, pane: usize) {
        if pane < self.lists.len() {
            self.focus = pane;
        }
    }
    fn focused(&self) -> usize {
        self.focus
    }
    fn follow(&mut self, ctx: &Ctx) -> Option<String> {
        let mut said = None;
        for pane in [CONFIG, ALERTS] {
            let ids = self.ids(pane, ctx);
            let gone = self.lists[pane].follow(&ids);
            if pane == self.focus {
                said = gone.and_then(|id| match pane {
                    CONFIG => Some(format!("config key {id} is gone; selected the nearest row")),
                    _ => alerts::gone(ctx, &id),
                });
            }
        }
        said
    }
    fn notes(&self) -> Vec<String> {
        vec![format!(
            "sparklines: the store's per-minute samples, then the last {} reports this console saw arrive; their \"now\" is the latest health",
            crate::series::RING
        )]
    }
}

fn spark(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    name: &str,
    series: &[Sample],
    value: impl Fn(&Sample) -> f64,
    color: Color,
) {
    let width = area.width.saturating_sub(2) as usize;
    let shown = &series[series.len().saturating_sub(width)..];
    let title = match (shown.last(), shown.iter().map(&value).reduce(f64::max)) {
        (Some(last), Some(max)) => format!("{name} {:.0}% · max {max:.0}%", value(last)),
        _ => format!("{name} · no samples yet"),
    };
    let mut block = pane::block(
        theme,
        text::fit(&title, usize::from(area.width.saturating_sub(4))),
        false,
    );
    if let (Some(first), Some(last)) = (shown.first(), shown.last())
        && shown.len() > 1
    {
        block = block.title_bottom(
            Line::from(Span::styled(
                format!(" {} ", text::duration(last.bucket_ms - first.bucket_ms)),
                theme.dim(),
            ))
            .right_aligned(),
        );
    }
    let data: Vec<u64> = shown
        .iter()
        .map(|s| value(s).clamp(0.0, 100.0).round() as u64)
        .collect();
    frame.render_widget(
        Sparkline::default()
            .block(block)
            .data(&data)
            .max(100)
            .style(Style::new().fg(color)),
        area,
    );
}

fn over(theme: &Theme, v: f64, limit: f64) -> Style {
    if v >= limit {
        Style::new().fg(theme.health.err)
    } else {
        Style::new()
    }
}

/// The latest register as lines: metrics, disks, certificates, backup and
/// the last apply, `width` cells wide: each value stays whole with its
/// label (a narrow pane starts the next line between two of them, never
/// inside one).
fn facts(
    theme: &Theme,
    now_ms: i64,
    r: &StoredRegister,
    t: &Thresholds,
    width: usize,
) -> Vec<Line<'static>> {
    let reg = &r.reg;
    let m = &reg.metrics;
    let dim = theme.dim();
    let mut out = text::flow(
        vec![
            vec![
                Span::styled("reported ", dim),
                Span::raw(format!("{} UTC", text::utc(reg.time_ms))),
            ],
            vec![Span::raw(format!("({})", text::ago(now_ms, reg.time_ms)))],
        ],
        width,
    );
    let mut metrics = vec![
        vec![
            Span::styled("cpu ", dim),
            Span::raw(text::pct(Some(m.cpu_pct))),
        ],
        vec![
            Span::styled("mem ", dim),
            Span::styled(
                text::pct(Some(m.mem_pct)),
                over(theme, m.mem_pct, t.mem_pct),
            ),
        ],
        vec![
            Span::styled("load ", dim),
            Span::raw(format!("{:.2}", m.load1)),
        ],
        vec![
            Span::styled("up ", dim),
            Span::raw(text::duration(
                i64::try_from(m.uptime_s).unwrap_or(i64::MAX / 1000) * 1000,
            )),
        ],
    ];
    if let Some(c) = m.temp_c {
        metrics.push(vec![Span::raw(format!("{c:.0}°C"))]);
    }
    out.extend(text::flow(metrics, width));
    for d in &m.disks {
        out.push(Line::from(vec![
            Span::styled("disk ", dim),
            Span::raw(format!("{} ", d.mount)),
            Span::styled(
                text::pct(Some(d.used_pct)),
                over(theme, d.used_pct, t.disk_pct),
            ),
        ]));
    }
    for c in &reg.tls {
        let left = c.not_after_ms - now_ms;
        let style = if left < i64::try_from(t.tls_days).unwrap_or(0) * 86_400_000 {
            Style::new().fg(theme.health.warn)
        } else {
            Style::new()
        };
        let when = if left <= 0 {
            format!("expired {} ago", text::duration(-left))
        } else {
            format!("expires in {}", text::duration(left))
        };
        out.push(Line::from(vec![
            Span::styled("tls ", dim),
            Span::raw(format!("{} ", c.name)),
            Span::styled(when, style),
        ]));
    }
    if let Some(b) = &reg.backup {
        let ok = b.databases.iter().filter(|d| d.ok).count();
        let failed: Vec<String> = b
            .databases
            .iter()
            .filter(|d| !d.ok)
            .map(|d| match &d.error {
                Some(e) => format!("{}: {e}", d.name),
                None => d.name.clone(),
            })
            .collect();
        let mut spans = vec![
            Span::styled("backup ", dim),
            Span::raw(format!(
                "{} · {ok}/{} ok",
                text::ago(now_ms, b.last_run_ms),
                b.databases.len()
            )),
        ];
        if !failed.is_empty() {
            spans.push(Span::styled(
                format!(" · failed {}", failed.join(", ")),
                Style::new().fg(theme.health.warn),
            ));
        }
        out.push(Line::from(spans));
    }
    if let Some(a) = &reg.applied {
        let (word, style) = cells::apply_result(theme, a.result);
        out.extend(text::flow(
            vec![
                vec![Span::styled("applied ", dim), Span::raw(a.revision.clone())],
                vec![
                    Span::styled(word, style),
                    Span::raw(format!(" {}", text::ago(now_ms, a.at_ms))),
                ],
                vec![Span::raw(format!("in {}ms", a.duration_ms))],
            ],
            width,
        ));
        // Why, in words: wrapped as prose.
        if let Some(e) = &a.error {
            out.push(Line::from(Span::styled(
                e.clone(),
                Style::new().fg(theme.health.err),
            )));
        }
    }
    out
}

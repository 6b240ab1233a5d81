//! The fleet's events, newest first, as `fleetdeck events` lists them:
//! nodes down and up, applies and rollbacks, alerts fired and resolved, and
//! every change by what it did — each with its time, age, kind, where (the
//! node, else the site), who or what caused it, and what. The fleet's, or
//! one site's or node's (`v` in its view). `f` narrows to a group of kinds,
//! `h` shows the changes that only record a replica's address, `/` filters;
//! Enter opens a change in history, a node's event on its node.

use fleetdeck_store::document::LayerRef;
use fleetdeck_store::events::FleetEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::component::{Component, Ctx, Effect, Handled, Need, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::table::{self, ListState, Spec};
use crate::text;
use crate::theme::Theme;

/// How far back the view looks (before now, or before the moment of
/// as-of mode), as `fleetdeck events` does by default.
pub const SPAN_MS: i64 = 24 * 60 * 60 * 1000;

/// The groups of kinds `f` steps through: a name and its kinds (none: all).
pub const GROUPS: &[(&str, &[&str])] = &[
    ("all", &[]),
    ("presence", &["down", "up", "safe_mode", "resumed"]),
    ("applies", &["applied", "rolled_back", "failed"]),
    ("alerts", &["alert_fired", "alert_resolved", "ack"]),
    ("config", &["config"]),
    ("rollouts", &["rollout"]),
    ("commands", &["command", "command_result"]),
    (
        "changes",
        &[
            "config",
            "fleet",
            "rollout",
            "command",
            "command_result",
            "member",
            "ack",
            "freeze",
            "address",
            "genesis",
            "change",
        ],
    ),
];

#[derive(Debug)]
pub struct EventsView {
    scope: LayerRef,
    list: ListState,
    /// Index into [`GROUPS`].
    group: usize,
    /// Show the changes that only record a replica's address.
    addresses: bool,
}

/// "alert fired" for `alert_fired`.
pub fn kind_word(kind: &str) -> String {
    kind.replace('_', " ")
}

/// The KIND cell: the kind's words, shorter in a narrow table.
fn kind_cell(kind: &str, wide: bool) -> String {
    match kind {
        "command_result" if !wide => "cmd result".into(),
        "alert_resolved" if !wide => "resolved".into(),
        _ => kind_word(kind),
    }
}

/// Where an event happened: its node, else its site, else the fleet.
pub fn place(e: &FleetEvent) -> &str {
    e.node.as_deref().or(e.site.as_deref()).unwrap_or("fleet")
}

/// An event's kind in the colour of what it means: trouble red or amber,
/// recovery green, a change plain.
pub fn kind_style(theme: &Theme, kind: &str) -> Style {
    match kind {
        "down" | "failed" | "alert_fired" | "safe_mode" => Style::new().fg(theme.health.err),
        "rolled_back" => Style::new().fg(theme.health.warn),
        "up" | "applied" | "alert_resolved" | "resumed" => theme.ok(),
        _ => Style::new(),
    }
}

/// What happened, one line: the text, or the kind of a change that has
/// no message.
fn what(e: &FleetEvent) -> String {
    let t = e.text.replace(['\n', '\r'], " ");
    if t.is_empty() { kind_word(e.kind) } else { t }
}

/// An event's id for the selection (events have none of their own).
fn id_of(e: &FleetEvent) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        e.at_ms,
        e.kind,
        place(e),
        e.change.as_deref().unwrap_or(""),
        e.alert.as_deref().unwrap_or("")
    )
}

impl EventsView {
    pub fn new(scope: LayerRef) -> EventsView {
        EventsView {
            scope,
            list: ListState::default(),
            group: 0,
            addresses: false,
        }
    }

    /// The events fetched for this view's scope, or why there are none.
    fn fetched<'a>(&self, ctx: &Ctx<'a>) -> Option<&'a Result<Vec<FleetEvent>, String>> {
        ctx.events
            .filter(|e| e.scope == self.scope)
            .map(|e| &e.rows)
    }

    fn keeps(&self, e: &FleetEvent) -> bool {
        let kinds = GROUPS[self.group].1;
        (self.addresses || e.kind != "address" || kinds.contains(&"address"))
            && (kinds.is_empty() || kinds.contains(&e.kind))
    }

    fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a FleetEvent> {
        let Some(Ok(events)) = self.fetched(ctx) else {
            return Vec::new();
        };
        events
            .iter()
            .filter(|e| self.keeps(e))
            .filter(|e| {
                table::matches(
                    &self.list.filter,
                    &[
                        &kind_word(e.kind),
                        place(e),
                        e.site.as_deref().unwrap_or(""),
                        &e.by,
                        &e.text,
                        e.change.as_deref().unwrap_or(""),
                        e.alert.as_deref().unwrap_or(""),
                    ],
                )
            })
            .collect()
    }

    fn ids(&self, ctx: &Ctx) -> Vec<String> {
        self.rows(ctx).into_iter().map(id_of).collect()
    }

    /// How many address-only changes are folded.
    fn folded(&self, ctx: &Ctx) -> usize {
        match (self.addresses, self.fetched(ctx)) {
            (false, Some(Ok(events))) => events.iter().filter(|e| e.kind == "address").count(),
            _ => 0,
        }
    }

    fn scope_label(&self) -> String {
        match &self.scope {
            LayerRef::Fleet => "events".into(),
            LayerRef::Site(s) => format!("events of site {s}"),
            LayerRef::Node(n) => format!("events of node {n}"),
        }
    }
}

impl Component for EventsView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let ids = self.ids(ctx);
        if self.list.step(action, &ids) {
            return Handled::Consumed;
        }
        match action {
            Action::CycleKind => {
                self.group = (self.group + 1) % GROUPS.len();
                self.list.restart();
                let (name, kinds) = GROUPS[self.group];
                Handled::Then(Effect::Message(if kinds.is_empty() {
                    "showing every kind of event".into()
                } else {
                    format!("showing {name}: {}", kinds.join(", "))
                }))
            }
            Action::ToggleAddresses => {
                self.addresses = !self.addresses;
                Handled::Then(Effect::Message(if self.addresses {
                    "showing changes that only record a replica's address".into()
                } else {
                    "folding changes that only record a replica's address".into()
                }))
            }
            Action::Open => {
                let rows = self.rows(ctx);
                let Some(e) = self.list.index(rows.len()).map(|i| rows[i]) else {
                    return Handled::Consumed;
                };
                match (&e.change, &e.node, &e.site) {
                    (Some(c), _, _) => Handled::Then(Effect::Open(Route::History(Some(c.clone())))),
                    (None, Some(n), _) if ctx.snap.node(n).is_some() => {
                        Handled::Then(Effect::Open(Route::Node(n.clone())))
                    }
                    (None, _, Some(s)) if ctx.snap.site(s).is_some() => {
                        Handled::Then(Effect::Open(Route::Site(s.clone())))
                    }
                    _ => Handled::Then(Effect::Message(format!(
                        "{} is not in the fleet now",
                        place(e)
                    ))),
                }
            }
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, _ctx: &Ctx) -> Vec<Action> {
        vec![
            Action::Down,
            Action::Up,
            Action::Open,
            Action::CycleKind,
            Action::ToggleAddresses,
        ]
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let rows = self.rows(ctx);
        let selected = self.list.index(rows.len()).map(|i| rows[i]);
        let detail = selected.map_or_else(
            || vec![Line::from(Span::styled("nothing selected", theme.dim()))],
            |e| detail(ctx, e),
        );
        // As tall as the selected event needs, wrapped, up to a third.
        let needed: u16 = detail
            .iter()
            .map(|l| text::wrapped_rows(&l.to_string(), area.width))
            .sum();
        let detail_height = (needed + 2).clamp(3, (area.height / 3).max(3));
        let [list, detail_area] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(detail_height)]).areas(area);
        let mut title = format!(
            "{} · last {} · {}",
            self.scope_label(),
            text::duration(SPAN_MS),
            rows.len()
        );
        if self.group > 0 {
            title.push_str(&format!(" · {}", GROUPS[self.group].0));
        }
        let folded = self.folded(ctx);
        if folded > 0 {
            title.push_str(&format!(" · {folded} address changes folded"));
        }
        let wide = area.width >= 100;
        let mut header = Vec::new();
        let mut widths = Vec::new();
        if wide {
            header.push("TIME (UTC)");
            widths.push(Constraint::Length(19));
        }
        header.extend(["AGE", "KIND", "WHERE", "BY", "WHAT"]);
        widths.extend([
            Constraint::Length(5),
            Constraint::Length(if wide { 14 } else { 12 }),
            Constraint::Length(if wide { 14 } else { 12 }),
            Constraint::Length(if wide { 12 } else { 10 }),
            Constraint::Fill(1),
        ]);
        let spec = Spec {
            title,
            header,
            widths,
            len: rows.len(),
            state: &self.list,
            focused: true,
            hit: Some((ctx.hits, 0)),
            sorted: None,
            marked: None,
            empty: match self.fetched(ctx) {
                None => "loading events…".into(),
                Some(Err(e)) => e.clone(),
                Some(Ok(all)) if all.is_empty() => format!(
                    "no events in the last {} (this replica records what it hears while it runs)",
                    text::duration(SPAN_MS)
                ),
                Some(Ok(_)) => "no event matches the filter".into(),
            },
        };
        table::render(frame, list, spec, theme, |i| {
            let e = rows[i];
            let mut cells = Vec::new();
            if wide {
                cells.push(Line::from(text::utc_seconds(e.at_ms)));
            }
            cells.extend([
                Line::from(text::duration(ctx.now_ms.saturating_sub(e.at_ms))),
                Line::from(Span::styled(
                    kind_cell(e.kind, wide),
                    kind_style(theme, e.kind),
                )),
                Line::from(place(e).to_string()),
                Line::from(Span::styled(e.by.clone(), theme.dim())),
                Line::from(what(e)),
            ]);
            cells
        });
        frame.render_widget(
            Paragraph::new(detail)
                .wrap(Wrap { trim: true })
                .block(pane::block(theme, "selected", false)),
            detail_area,
        );
    }
}

/// The selected event whole: when, what, where, by whom, and the change
/// or alert it is.
fn detail(ctx: &Ctx, e: &FleetEvent) -> Vec<Line<'static>> {
    let theme = ctx.theme;
    let dim = theme.dim();
    let mut head = vec![
        Span::styled(kind_word(e.kind), kind_style(theme, e.kind)),
        Span::styled(" · ", dim),
        Span::raw(place(e).to_string()),
    ];
    if let (Some(s), Some(_)) = (&e.site, &e.node) {
        head.push(Span::styled(format!(" (site {s})"), dim));
    }
    head.push(Span::styled(
        format!(
            " · {} UTC · {} · by {}",
            text::utc_seconds(e.at_ms),
            text::ago(ctx.now_ms, e.at_ms),
            e.by
        ),
        dim,
    ));
    let mut out = vec![Line::from(head), Line::from(what(e))];
    if let Some(c) = &e.change {
        out.push(Line::from(vec![
            Span::styled("change ", dim),
            Span::styled(text::short(c).to_string(), theme.key()),
            Span::styled(" (enter opens it in history)", dim),
        ]));
    } else if let Some(a) = &e.alert {
        out.push(Line::from(vec![
            Span::styled("alert ", dim),
            Span::styled(a.clone(), theme.key()),
        ]));
    }
    out
}

impl View for EventsView {
    fn route(&self) -> Route {
        Route::Events(self.scope.clone())
    }
    fn scope(&self) -> Scope {
        Scope::Events
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.list)
    }
    fn needs(&self) -> Vec<Need> {
        vec![Need::Events {
            scope: self.scope.clone(),
            span_ms: SPAN_MS,
        }]
    }
    fn select_row(&mut self, pane: usize, row: usize, ctx: &Ctx) {
        if pane == 0 {
            let ids = self.ids(ctx);
            self.list.select(row, &ids);
        }
    }
    fn follow(&mut self, ctx: &Ctx) -> Option<String> {
        // Nothing to place the selection on before the events arrive.
        self.fetched(ctx)?;
        let ids = self.ids(ctx);
        // An event does not go away: one that left the window is simply
        // older than it; nothing to say.
        self.list.follow(&ids);
        None
    }
    fn notes(&self) -> Vec<String> {
        vec![
            "Events: what this replica heard of the nodes (down, up, applies, alerts) and every change by what it did. f steps through groups of kinds; h shows changes that only record an address.".into(),
        ]
    }
}

//! The change log: id, time, author, receipts (where each change stands on
//! the fleet's nodes), message; Enter shows the nodes that do not run the
//! selected change yet; `r` reverts it after a confirm dialog.

use fleetdeck_store::document::HistoryEntry;
use fleetdeck_store::events::ChangeKind;
use fleetdeck_store::receipts::Delivery;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::cells;
use crate::component::{Component, Ctx, Effect, Handled, Need, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::source::{HistoryRow, Intent};
use crate::table::{self, ListState, Spec};
use crate::text;

/// Edits listed under the selected change before "… N more".
const EDITS_SHOWN: usize = 8;

#[derive(Debug, Default)]
pub struct HistoryView {
    list: ListState,
    /// Enter: the selected change's pending nodes are listed below.
    detail: bool,
    /// Show the changes that only record a replica's address.
    addresses: bool,
    /// Opened on a change (from the events view) not placed yet.
    opening: bool,
}

fn author(e: &HistoryEntry) -> String {
    e.author_name
        .clone()
        .unwrap_or_else(|| e.author.chars().take(8).collect())
}

/// "command result" for `command_result`.
fn kind_word(k: ChangeKind) -> String {
    k.as_str().replace('_', " ")
}

/// The KIND cell: the kind's words, shorter in a narrow table.
fn kind_cell(k: ChangeKind, wide: bool) -> String {
    match k {
        ChangeKind::CommandResult if !wide => "cmd result".into(),
        _ => kind_word(k),
    }
}

impl HistoryView {
    pub fn new(select: Option<String>) -> HistoryView {
        HistoryView {
            opening: select.is_some(),
            list: ListState {
                key: select,
                ..ListState::default()
            },
            ..HistoryView::default()
        }
    }

    fn rows<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a HistoryRow> {
        ctx.history
            .unwrap_or_default()
            .iter()
            .filter(|r| self.addresses || r.kind != ChangeKind::Address)
            .filter(|r| {
                let e = &r.entry;
                table::matches(
                    &self.list.filter,
                    &[
                        &e.id,
                        &author(e),
                        e.message.as_deref().unwrap_or(""),
                        &kind_word(r.kind),
                    ],
                )
            })
            .collect()
    }

    fn ids<'a>(&self, ctx: &Ctx<'a>) -> Vec<&'a str> {
        self.rows(ctx)
            .into_iter()
            .map(|r| r.entry.id.as_str())
            .collect()
    }

    fn selected<'a>(&self, ctx: &Ctx<'a>) -> Option<&'a HistoryRow> {
        let rows = self.rows(ctx);
        self.list.index(rows.len()).map(|i| rows[i])
    }

    /// How many changes that only record an address are folded.
    fn folded(&self, ctx: &Ctx) -> usize {
        if self.addresses {
            return 0;
        }
        ctx.history
            .unwrap_or_default()
            .iter()
            .filter(|r| r.kind == ChangeKind::Address)
            .count()
    }
}

/// What a change edited, a line per key (the first [`EDITS_SHOWN`]), or
/// what is known of that yet.
fn edit_lines(ctx: &Ctx, r: &HistoryRow, limit: usize) -> Vec<String> {
    match ctx.edits.get(&r.entry.id) {
        None => vec!["config edits: loading…".into()],
        Some(Err(e)) => vec![format!("config edits: {e}")],
        Some(Ok(edits)) if edits.is_empty() => vec![format!(
            "no config key edited ({} change)",
            kind_word(r.kind)
        )],
        Some(Ok(edits)) => {
            let mut out: Vec<String> = edits.iter().take(limit).map(cells::edit_text).collect();
            if edits.len() > limit {
                out.push(format!("… {} more", edits.len() - limit));
            }
            out
        }
    }
}

impl Component for HistoryView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let ids = self.ids(ctx);
        if self.list.step(action, &ids) {
            return Handled::Consumed;
        }
        match action {
            Action::Open => {
                self.detail = !self.detail;
                Handled::Consumed
            }
            Action::ToggleAddresses => {
                self.addresses = !self.addresses;
                Handled::Then(Effect::Message(if self.addresses {
                    "showing changes that only record a replica's address".into()
                } else {
                    "folding changes that only record a replica's address".into()
                }))
            }
            Action::Revert => match self.selected(ctx) {
                Some(r) => {
                    let e = &r.entry;
                    let mut question = format!(
                        "Revert change {} “{}” by {}?",
                        text::short(&e.id),
                        e.message.as_deref().unwrap_or("(no message)"),
                        author(e)
                    );
                    // What it did, so the operator sees what comes off.
                    match ctx.edits.get(&e.id) {
                        Some(Ok(edits)) if !edits.is_empty() => {
                            question.push_str("\nIt edited:");
                            for l in edit_lines(ctx, r, EDITS_SHOWN) {
                                question.push_str(&format!("\n  {l}"));
                            }
                        }
                        Some(Ok(_)) => question.push_str(&format!(
                            "\nIt edited no config key ({} change).",
                            kind_word(r.kind)
                        )),
                        _ => question.push_str("\n(its edits are not loaded yet)"),
                    }
                    question.push_str(
                        "\nIts inverse is written as a new change; keys edited since are left alone.",
                    );
                    Handled::Then(Effect::Confirm {
                        question,
                        intents: vec![Intent::Revert {
                            change_id: e.id.clone(),
                            message: None,
                        }],
                        then: None,
                    })
                }
                None => Handled::Then(Effect::Message("no change selected".into())),
            },
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, ctx: &Ctx) -> Vec<Action> {
        let mut c = vec![Action::Down, Action::Up, Action::Open];
        if !ctx.read_only {
            c.push(Action::Revert);
        }
        c.push(Action::ToggleAddresses);
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let rows = self.rows(ctx);
        let selected = self.list.index(rows.len()).map(|i| rows[i]);
        let edits = selected.map(|r| edit_lines(ctx, r, EDITS_SHOWN));
        let detail_height = if self.detail {
            let pending = selected.map_or(0, |r| r.pending.len());
            u16::try_from(pending.clamp(1, 12) + 4).unwrap_or(16)
        } else {
            let lines = edits.as_ref().map_or(1, Vec::len);
            u16::try_from(lines + 3).unwrap_or(12)
        }
        .min(area.height / 2)
        .max(3);
        let [list, detail] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(detail_height)]).areas(area);
        let total = ctx.history.map_or(0, <[_]>::len);
        let folded = self.folded(ctx);
        let mut title = format!("history · {total} changes");
        if folded > 0 {
            title.push_str(&format!(" · {folded} address changes folded"));
        }
        // Narrow: the age in place of the date.
        let wide = area.width >= 100;
        let mut header = vec!["CHANGE", if wide { "TIME (UTC)" } else { "AGE" }];
        header.extend(["AUTHOR", "KIND", "APPLIED", "MESSAGE"]);
        let spec = Spec {
            title,
            header,
            widths: vec![
                Constraint::Length(12),
                Constraint::Length(if wide { 16 } else { 5 }),
                Constraint::Length(if wide { 14 } else { 10 }),
                Constraint::Length(if wide { 14 } else { 10 }),
                Constraint::Length(if wide { 16 } else { 11 }),
                Constraint::Fill(1),
            ],
            len: rows.len(),
            state: &self.list,
            focused: true,
            hit: Some((ctx.hits, 0)),
            sorted: None,
            marked: None,
            empty: match ctx.history {
                None => "loading history…".into(),
                Some(_) => "no change matches the filter".into(),
            },
        };
        table::render(frame, list, spec, theme, |i| {
            let r = rows[i];
            let e = &r.entry;
            // A change after the moment shown (as-of mode) had not been made.
            let later = ctx.as_of.is_some_and(|at| e.time_ms > at);
            let style = if later {
                theme.dim()
            } else {
                ratatui::style::Style::new()
            };
            vec![
                Line::from(Span::styled(text::short(&e.id).to_string(), theme.key())),
                Line::from(Span::styled(
                    if wide {
                        text::utc(e.time_ms)
                    } else {
                        text::duration(ctx.now_ms.saturating_sub(e.time_ms))
                    },
                    style,
                )),
                Line::from(Span::styled(author(e), style)),
                Line::from(Span::styled(kind_cell(r.kind, wide), style)),
                receipts_cell(r, theme),
                Line::from(Span::styled(e.message.clone().unwrap_or_default(), style)),
            ]
        });
        let mut lines = match selected {
            Some(r) => {
                let e = &r.entry;
                vec![Line::from(vec![
                    Span::styled(text::short(&e.id).to_string(), theme.key()),
                    Span::styled(
                        format!(
                            " · {} · {} · seq {} · {} ops · {} · by {}",
                            kind_word(r.kind),
                            text::utc(e.time_ms),
                            e.seq,
                            e.ops,
                            text::ago(ctx.now_ms, e.time_ms),
                            author(e)
                        ),
                        theme.dim(),
                    ),
                ])]
            }
            None => vec![Line::from(Span::styled("nothing selected", theme.dim()))],
        };
        if let (false, Some(edits)) = (self.detail, &edits) {
            lines.extend(edits.iter().map(|l| Line::from(l.clone())));
        }
        if let (true, Some(r)) = (self.detail, selected) {
            lines.push(Line::from(Span::raw(match &r.receipts {
                Some(s) => s.line(),
                None => "no node in the fleet".into(),
            })));
            if r.pending.is_empty() && r.receipts.is_some() {
                lines.push(Line::from(Span::styled("every node runs it", theme.ok())));
            }
            for p in &r.pending {
                let heard = p
                    .last_heard_ms
                    .map_or("never heard".to_string(), |h| text::ago(ctx.now_ms, h));
                let mut why = match (p.state, &p.error) {
                    (Delivery::Failed, Some(e)) => e.clone(),
                    (Delivery::NotYet, _) if p.offline => "offline".into(),
                    (Delivery::Unknown, _) => "ahead of this replica".into(),
                    (Delivery::Delivered, _) => "holds it, not running it yet".into(),
                    _ => String::new(),
                };
                why = why.replace(['\n', '\r'], " ");
                lines.push(Line::from(vec![
                    Span::styled(
                        format!("{:<10}", p.state.as_str()),
                        state_style(p.state, theme),
                    ),
                    Span::raw(format!("{} ({}) · {heard}", p.node, p.site)),
                    Span::styled(
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(" · {why}")
                        },
                        theme.dim(),
                    ),
                ]));
            }
        }
        let title = if self.detail {
            "selected · receipts (enter: edits)"
        } else {
            "selected · edits (enter: receipts)"
        };
        frame.render_widget(
            Paragraph::new(lines).block(pane::block(theme, title, false)),
            detail,
        );
    }
}

fn state_style(d: Delivery, theme: &crate::theme::Theme) -> ratatui::style::Style {
    match d {
        Delivery::Applied => theme.ok(),
        Delivery::Failed => theme.error(),
        Delivery::Delivered | Delivery::Unknown => {
            theme.severity(fleetdeck_store::alerts::Severity::Medium)
        }
        Delivery::NotYet => theme.dim(),
    }
}

/// `47/50 · 1 failed`: nodes that run the change out of all, and failures.
fn receipts_cell<'a>(r: &HistoryRow, theme: &crate::theme::Theme) -> Line<'a> {
    let Some(s) = &r.receipts else {
        return Line::from(Span::styled("-", theme.dim()));
    };
    let mut spans = vec![Span::styled(
        format!("{}/{}", s.applied, s.nodes),
        if s.applied == s.nodes {
            theme.ok()
        } else {
            theme.dim()
        },
    )];
    if s.failed > 0 {
        spans.push(Span::styled(
            format!(" · {} failed", s.failed),
            theme.error(),
        ));
    }
    Line::from(spans)
}

impl View for HistoryView {
    fn route(&self) -> Route {
        Route::History(None)
    }
    fn scope(&self) -> Scope {
        Scope::History
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.list)
    }
    fn needs(&self) -> Vec<Need> {
        let mut needs = vec![Need::History];
        if let Some(id) = &self.list.key {
            needs.push(Need::Edits(id.clone()));
        }
        needs
    }
    fn select_row(&mut self, pane: usize, row: usize, ctx: &Ctx) {
        if pane == 0 {
            let ids = self.ids(ctx);
            self.list.select(row, &ids);
        }
    }
    fn follow(&mut self, ctx: &Ctx) -> Option<String> {
        // Opened on a change that only records an address: show those.
        if self.opening
            && let Some(h) = ctx.history
        {
            self.opening = false;
            let key = self.list.key.as_deref();
            if h.iter()
                .any(|r| Some(r.entry.id.as_str()) == key && r.kind == ChangeKind::Address)
            {
                self.addresses = true;
            }
        }
        // Nothing to place the selection on before the history arrives.
        ctx.history?;
        let ids = self.ids(ctx);
        self.list.follow(&ids).map(|id| {
            format!(
                "change {} is not listed; selected the nearest row",
                text::short(&id)
            )
        })
    }
    fn notes(&self) -> Vec<String> {
        vec![
            "KIND: what the change did, read from the parts of the document it wrote. Changes that only record a replica's address are folded (h shows them).".into(),
        ]
    }
}

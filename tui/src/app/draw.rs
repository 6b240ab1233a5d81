//! Drawing the app: the title bar with the breadcrumb, the top view, the
//! hint bar, the status bar and the overlays (help, palette, dialogs). A
//! pure function of the app's state and the frame.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{App, Input, Overlay};
use crate::component::Prompt;
use crate::keymap::{Action, Scope};
use crate::palette;
use crate::past::Past;
use crate::source::SyncStatus;
use crate::text;
use crate::theme::Theme;
use crate::views;

impl App {
    pub fn draw(&self, frame: &mut Frame) {
        let area = frame.area();
        let theme = &self.options.theme;
        self.hits.clear();
        frame.render_widget(Block::new().style(theme.base()), area);
        let [title, body, hints, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        self.draw_title(frame, title);
        let body = match &self.past {
            Some(p) => {
                let [banner, rest] =
                    Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(body);
                self.draw_banner(frame, banner, p);
                rest
            }
            None => body,
        };
        let ctx = self.ctx();
        self.top().draw(frame, body, &ctx);
        self.draw_hints(frame, hints);
        self.draw_status(frame, status);
        match &self.overlay {
            None => {}
            Some(Overlay::Help) => self.draw_help(frame, body),
            Some(Overlay::Confirm { question, .. }) => self.draw_confirm(frame, body, question),
            Some(Overlay::Palette(input)) => self.draw_palette(frame, body, input),
            Some(Overlay::Form(form)) => self.draw_form(frame, body, form),
            Some(Overlay::Filter(input)) => self.draw_filter(frame, hints, input),
            Some(Overlay::Prompt(Prompt::Silence { alert_ids }, input)) => draw_input_line(
                frame,
                hints,
                theme,
                &match alert_ids.as_slice() {
                    [one] => format!("silence {one} for: "),
                    many => format!("silence {} alerts for: ", many.len()),
                },
                &input.text,
                "e.g. 30m, 2h, 1d",
            ),
            Some(Overlay::Prompt(Prompt::RunAction { targets }, input)) => {
                let known = crate::bulk::actions(self.shown(), targets);
                draw_input_line(
                    frame,
                    hints,
                    theme,
                    &format!("run on {}: ", crate::bulk::targets_label(targets)),
                    &input.text,
                    &if known.is_empty() {
                        "no targeted node has an action in its config".to_string()
                    } else {
                        format!(
                            "an action (tab completes): {}",
                            known.into_iter().collect::<Vec<_>>().join(", ")
                        )
                    },
                )
            }
            Some(Overlay::Prompt(Prompt::Tunnel { node }, input)) => {
                let known = crate::app::tunnel_targets(self.shown(), node);
                draw_input_line(
                    frame,
                    hints,
                    theme,
                    &format!("tunnel through {node} to: "),
                    &input.text,
                    &if known.is_empty() {
                        "its tunnel.allow lists nothing (an admin sets it)".to_string()
                    } else {
                        format!(
                            "a port on the node or IP:PORT (tab completes): {}",
                            known
                                .iter()
                                .map(|t| t.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                )
            }
            Some(Overlay::Prompt(Prompt::ConfigKey { layer }, input)) => draw_input_line(
                frame,
                hints,
                theme,
                &format!("new key in {}: ", crate::source::layer_label(layer)),
                &input.text,
                "a dotted path, e.g. retention.days",
            ),
            Some(Overlay::Prompt(Prompt::CommitMessage { .. }, input)) => draw_input_line(
                frame,
                hints,
                theme,
                "commit message: ",
                &input.text,
                "why this change",
            ),
            Some(Overlay::Prompt(Prompt::ConfigValue { layer, key, .. }, input)) => {
                self.draw_value_editor(frame, body, layer, key, &input.text)
            }
        }
    }

    fn draw_title(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.options.theme;
        let fleet = if self.snap.fleet.name.is_empty() {
            "(no fleet)".to_string()
        } else {
            self.snap.fleet.name.clone()
        };
        let me = if self.snap.me.is_empty() {
            String::new()
        } else {
            format!("{} ", self.snap.me)
        };
        let mut spans = vec![
            Span::styled(" fleetdeck ", theme.title().add_modifier(Modifier::BOLD)),
            Span::styled("· ", theme.dim()),
            Span::raw(fleet),
            Span::styled(" │ ", theme.dim()),
        ];
        let frozen = self.shown().fleet.is_frozen();
        // The breadcrumb gets what the name of this replica (right) and
        // FROZEN leave, two cells apart; the crumbs nearest the overview
        // give way first ("… › BL-WH-N › whn-nvr"), then the last is cut.
        let used = spans.iter().map(|s| s.width()).sum::<usize>();
        let room = usize::from(area.width)
            .saturating_sub(used + me.chars().count() + if frozen { 8 } else { 0 } + 2);
        let crumbs: Vec<String> = self.breadcrumb().iter().map(|r| r.label()).collect();
        let width_from = |k: usize| -> usize {
            let shown: usize = crumbs[k..].iter().map(|c| c.chars().count()).sum::<usize>()
                + 3 * (crumbs.len() - k - 1);
            if k > 0 { shown + 4 } else { shown }
        };
        let first = (0..crumbs.len())
            .find(|&k| width_from(k) <= room)
            .unwrap_or(crumbs.len().saturating_sub(1));
        let mut x = area.x + used as u16;
        let mut places = vec![(0, 0); first];
        if first > 0 {
            spans.push(Span::styled("… › ", theme.dim()));
            x += 4;
        }
        let mut left = room.saturating_sub(if first > 0 { 4 } else { 0 });
        for (i, label) in crumbs.iter().enumerate().skip(first) {
            if i > first {
                spans.push(Span::styled(" › ", theme.dim()));
                x += 3;
                left = left.saturating_sub(3);
            }
            let label = text::fit(label, left);
            let w = label.chars().count() as u16;
            left = left.saturating_sub(usize::from(w));
            places.push((x, x + w));
            x += w;
            let style = if i + 1 == crumbs.len() {
                theme.title()
            } else {
                Style::new()
            };
            spans.push(Span::styled(label, style));
        }
        *self.crumbs.borrow_mut() = places;
        if frozen {
            spans.push(Span::styled("  FROZEN", theme.error()));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
        if !me.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::from(Span::styled(
                    text::fit(&me, usize::from(area.width)),
                    theme.dim(),
                )))
                .right_aligned(),
                area,
            );
        }
    }

    /// As-of mode's banner: the moment shown, that it is read-only, the
    /// keys that step and return, and the event stepped to.
    fn draw_banner(&self, frame: &mut Frame, area: Rect, past: &Past) {
        let theme = &self.options.theme;
        let km = &self.options.keymap;
        let scope = self.top().scope();
        let warn = Style::new().fg(theme.health.warn);
        let wide = area.width >= 100;
        let (earlier, later, back) = (
            km.key_label(scope, Action::EarlierEvent),
            km.key_label(scope, Action::LaterEvent),
            km.key_label(scope, Action::Back),
        );
        let keys = if wide {
            format!(
                " {} ago — read-only · {earlier}/{later} previous/next event · {back} back to now",
                text::duration(self.now_ms.saturating_sub(past.at_ms()))
            )
        } else {
            format!("— read-only · {earlier}/{later} event · {back} now")
        };
        let mut spans = vec![
            Span::styled(
                format!(" AS OF {} UTC ", text::utc_seconds(past.at_ms())),
                warn.add_modifier(Modifier::BOLD | Modifier::REVERSED),
            ),
            Span::styled(keys, warn),
        ];
        if let Some(e) = &past.event {
            let place = e.node.as_deref().or(e.site.as_deref()).unwrap_or("fleet");
            spans.push(Span::styled(
                format!(
                    " · {} {place}: {}",
                    e.kind.replace('_', " "),
                    e.text.replace(['\n', '\r'], " ")
                ),
                theme.dim(),
            ));
        }
        frame.render_widget(
            Paragraph::new(text::fit_line(Line::from(spans), usize::from(area.width))),
            area,
        );
    }

    /// The filter being typed, with how many rows it matches; a reopened
    /// filter shows selected (typing replaces it).
    fn draw_filter(&self, frame: &mut Frame, area: Rect, input: &Input) {
        let theme = &self.options.theme;
        let pane = self.top().focused();
        let count = self.hits.len_of(pane).unwrap_or(0);
        let text_style = if input.replace {
            theme.selected()
        } else {
            Style::new()
        };
        let mut spans = vec![
            Span::styled(" /", theme.key()),
            Span::styled(input.text.clone(), text_style),
            Span::styled("█", theme.dim()),
        ];
        if input.text.is_empty() {
            spans.push(Span::styled(" filter", theme.dim()));
        } else {
            spans.push(Span::styled(
                format!("  {}", crate::table::match_count(count)),
                theme.dim(),
            ));
        }
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(text::fit_line(Line::from(spans), usize::from(area.width))),
            area,
        );
    }

    fn draw_hints(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.options.theme;
        let hints = self.hints();
        let width = |(k, l): &(String, String)| k.chars().count() + l.chars().count() + 3;
        // What does not fit is left out, but the way to the help stays.
        let help = hints
            .iter()
            .find(|(_, l)| l == Action::Help.label())
            .cloned();
        let reserve = help.as_ref().map_or(0, width);
        let mut room = (area.width as usize).saturating_sub(1);
        let mut shown = Vec::new();
        for h in &hints {
            let is_help = Some(h) == help.as_ref();
            let w = width(h);
            if w + if is_help { 0 } else { reserve } <= room {
                room -= w;
                if is_help {
                    room += reserve;
                }
                shown.push(h.clone());
            }
        }
        if let Some(h) = help
            && !shown.contains(&h)
            && width(&h) <= room + reserve
        {
            shown.push(h);
        }
        let mut spans = vec![Span::raw(" ")];
        for (key, label) in shown {
            spans.push(Span::styled(key, theme.key()));
            spans.push(Span::styled(format!(" {label}  "), theme.dim()));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
    }

    fn draw_status(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.options.theme;
        let base = theme.status();
        let sep = Span::styled(" │ ", base);
        let mut left: Vec<Span> = vec![Span::styled(" ", base)];
        if self.options.read_only {
            left.push(Span::styled(
                " READ-ONLY ",
                base.fg(theme.ui.error)
                    .add_modifier(Modifier::BOLD | Modifier::REVERSED),
            ));
            left.push(sep.clone());
        } else if self.snap.writes_nothing().is_some() {
            let role = self
                .snap
                .my_role()
                .map_or("NOT A MEMBER".to_string(), |r| r.as_str().to_uppercase());
            left.push(Span::styled(
                format!(" {role}: READS ONLY "),
                base.fg(theme.ui.error)
                    .add_modifier(Modifier::BOLD | Modifier::REVERSED),
            ));
            left.push(sep.clone());
        }
        match &self.snap.sync {
            SyncStatus::Off { reason } => left.push(Span::styled(
                format!("not syncing ({reason})"),
                base.fg(theme.ui.stale),
            )),
            SyncStatus::On { .. } | SyncStatus::Elsewhere { .. } => {
                let connected = self.snap.peers.iter().filter(|p| p.connected).count();
                let style = if connected == 0 {
                    base.fg(theme.ui.stale)
                } else {
                    base
                };
                let via = match &self.snap.sync {
                    SyncStatus::Elsewhere { by } => format!(" via {by}"),
                    _ => String::new(),
                };
                let text = if self.snap.peers.is_empty() {
                    format!("no other member yet{via}")
                } else {
                    let online = if connected > 0 { "online" } else { "offline" };
                    format!(
                        "{online} · peers {connected}/{}{via}",
                        self.snap.peers.len()
                    )
                };
                left.push(Span::styled(text, style));
                if let Some(n) = self.snap.unsynced.filter(|n| *n > 0) {
                    left.push(sep.clone());
                    left.push(Span::styled(
                        format!("best-synced peer lacks {n}"),
                        base.fg(theme.ui.stale),
                    ));
                }
            }
        }
        left.push(sep.clone());
        match self.snap.freshest_ms() {
            Some(t) => {
                let age = self.now_ms - t;
                let beat = self
                    .snap
                    .nodes
                    .values()
                    .map(|n| n.heartbeat_ms)
                    .min()
                    .unwrap_or(10_000);
                let style = if age > beat {
                    base.fg(theme.ui.stale)
                } else {
                    base
                };
                left.push(Span::styled(
                    format!("freshest data {}", text::ago(self.now_ms, t)),
                    style,
                ));
            }
            None => left.push(Span::styled("no health data yet", base.fg(theme.ui.stale))),
        }
        let snapshot_age = self.now_ms - self.snap_received_ms;
        if snapshot_age > super::SNAPSHOT_OLD_MS {
            left.push(sep.clone());
            left.push(Span::styled(
                format!("snapshot {} old", text::duration(snapshot_age)),
                base.fg(theme.ui.stale),
            ));
        }
        if self.applying > 0 {
            left.push(sep.clone());
            left.push(Span::styled("applying…", base));
        }
        let trouble = self.trouble.as_ref().or(self.snap.trouble.as_ref());
        let message = self.message.as_ref().filter(|m| m.visible(self.now_ms));
        let right = match (trouble, message) {
            (Some(t), _) => Span::styled(format!("{t} "), base.fg(theme.ui.error)),
            (None, Some(m)) if m.error => {
                Span::styled(format!("{} ", m.text), base.fg(theme.ui.error))
            }
            (None, Some(m)) => Span::styled(format!("{} ", m.text), base),
            (None, None) => Span::styled("", base),
        };
        let left = Line::from(left);
        let room = area.width.saturating_sub(left.width() as u16 + 1);
        frame.render_widget(Paragraph::new(left).style(base), area);
        if room > 0 {
            let right_text = text::fit(&right.content, room as usize);
            frame.render_widget(
                Paragraph::new(Line::from(Span::styled(right_text, right.style))).right_aligned(),
                Rect {
                    x: area.x + area.width - room,
                    width: room,
                    ..area
                },
            );
        }
    }

    fn draw_help(&self, frame: &mut Frame, area: Rect) {
        let theme = &self.options.theme;
        let km = &self.options.keymap;
        let scope = self.top().scope();
        let commands = self.commands();
        let mut lines: Vec<Line> = Vec::new();
        let section = |title: String, actions: Vec<Action>, lines: &mut Vec<Line>| {
            if !lines.is_empty() {
                lines.push(Line::default());
            }
            lines.push(Line::from(Span::styled(title, theme.header())));
            for a in actions {
                let keys: Vec<String> = km
                    .keys_for(scope, a)
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                // Actions not possible now (read-only, nothing selected) are dim.
                let valid = commands.contains(&a) || !a.writes();
                lines.push(Line::from(vec![
                    Span::styled(format!("  {:<13}", keys.join(" ")), theme.key()),
                    Span::styled(
                        a.label().to_string(),
                        if valid { Style::new() } else { theme.dim() },
                    ),
                ]));
            }
        };
        let own: Vec<Action> = dedup(
            km.bindings()
                .iter()
                .filter(|b| b.scope == scope)
                .map(|b| b.action),
        );
        if !own.is_empty() {
            section(format!("in {}", scope.label()), own, &mut lines);
        }
        let global: Vec<Action> = dedup(
            km.bindings()
                .iter()
                .filter(|b| b.scope == Scope::Global)
                .map(|b| b.action),
        );
        section("everywhere".into(), global, &mut lines);
        let commands_line: Vec<String> = palette::COMMANDS
            .iter()
            .filter(|(name, _, _)| *name != "quit")
            .map(|(name, arg, _)| match arg {
                Some(a) => format!("{name} {a}"),
                None => name.to_string(),
            })
            .collect();
        let footer = Line::from(vec![
            Span::styled(": ", theme.key()),
            Span::styled(commands_line.join(" · "), theme.dim()),
        ]);
        // What the view says beyond its keys, then the commands: wrapped
        // under the keys.
        let mut notes = self.top().notes();
        let footer_text: String = footer.spans.iter().map(|s| s.content.as_ref()).collect();
        let footer_rows = |notes: &[String], width: u16| {
            notes
                .iter()
                .map(|n| text::wrapped_rows(n, width))
                .sum::<u16>()
                + text::wrapped_rows(&footer_text, width)
        };
        // One column when it fits, two when the terminal is short.
        let wide = area.width.min(80);
        let narrow = wide.min(56);
        let room = area.height.saturating_sub(3 + footer_rows(&notes, narrow)) as usize;
        let columns = if lines.len() > room && wide >= 60 {
            2
        } else {
            1
        };
        let width = if columns == 1 { narrow } else { wide };
        let per_column = lines.len().div_ceil(columns);
        // The keys first: where they and the view's notes do not both fit,
        // the notes give way.
        if per_column as u16 + 3 + footer_rows(&notes, width) > area.height {
            notes.clear();
        }
        let footer_rows = footer_rows(&notes, width);
        let height = (per_column as u16 + 3 + footer_rows).min(area.height);
        let popup = centered(area, width, height);
        frame.render_widget(Clear, popup);
        let block = crate::pane::block(theme, "keys", true).style(theme.base());
        let inner = block.inner(popup);
        frame.render_widget(block, popup);
        let [body, foot] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(footer_rows + 1)])
                .areas(inner);
        let cols =
            Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(body);
        for (i, chunk) in lines.chunks(per_column.max(1)).enumerate() {
            if let Some(area) = cols.get(i) {
                frame.render_widget(Paragraph::new(chunk.to_vec()), *area);
            }
        }
        let mut foot_lines = vec![Line::default()];
        foot_lines.extend(
            notes
                .into_iter()
                .map(|n| Line::from(Span::styled(n, theme.dim()))),
        );
        foot_lines.push(footer);
        frame.render_widget(Paragraph::new(foot_lines).wrap(Wrap { trim: true }), foot);
    }

    fn draw_confirm(&self, frame: &mut Frame, area: Rect, question: &str) {
        let theme = &self.options.theme;
        let km = &self.options.keymap;
        // As tall as the question needs (a revert lists what it undoes).
        // Wider only for long lines on a wide screen.
        let longest = question
            .lines()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        let width = if longest > 58 && area.width >= 100 {
            80
        } else {
            60
        }
        .min(area.width);
        let rows: u16 = question.lines().map(|l| text::wrapped_rows(l, width)).sum();
        let popup = centered(area, width, (rows + 4).max(7).min(area.height));
        frame.render_widget(Clear, popup);
        let keys = Line::from(vec![
            Span::styled(km.key_label(Scope::Confirm, Action::Confirm), theme.key()),
            Span::raw(" yes   "),
            Span::styled(km.key_label(Scope::Confirm, Action::Cancel), theme.key()),
            Span::raw(" no"),
        ]);
        let mut lines: Vec<Line> = question
            .lines()
            .map(|l| Line::from(l.to_string()))
            .collect();
        lines.push(Line::default());
        lines.push(keys);
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: false }).block(
                Block::new()
                    .borders(Borders::ALL)
                    .border_style(Style::new().fg(theme.ui.error))
                    .title(Span::styled(" confirm ", theme.error()))
                    .style(theme.base()),
            ),
            popup,
        );
    }

    /// A form: each field on its line, the focused one with the cursor and
    /// what it takes below.
    fn draw_form(&self, frame: &mut Frame, area: Rect, form: &crate::form::Form) {
        let theme = &self.options.theme;
        let width = 76.min(area.width);
        let label_w = form.fields.iter().map(|f| f.label.len()).max().unwrap_or(0);
        let mut lines: Vec<Line> = Vec::new();
        for (i, f) in form.fields.iter().enumerate() {
            let focused = i == form.focus;
            let mut spans = vec![
                Span::styled(
                    format!("{:>label_w$}  ", f.label),
                    if focused { theme.key() } else { theme.dim() },
                ),
                Span::raw(f.text.clone()),
            ];
            if focused {
                spans.push(Span::styled("█", theme.dim()));
            }
            lines.push(text::fit_line(
                Line::from(spans),
                usize::from(width.saturating_sub(2)),
            ));
        }
        lines.push(Line::default());
        if let Some(f) = form.fields.get(form.focus) {
            lines.push(Line::from(Span::styled(f.hint, theme.dim())));
        }
        let height = (lines.len() as u16 + 2).min(area.height);
        let popup = centered(area, width, height);
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(crate::pane::block(theme, form.title(), true).style(theme.base())),
            popup,
        );
    }

    fn draw_palette(&self, frame: &mut Frame, area: Rect, input: &Input) {
        let theme = &self.options.theme;
        let all = palette::candidates(&input.text, self.shown(), &self.options.user_themes);
        let shown = all.len().min(8);
        let height = (shown as u16 + 3).min(area.height);
        let width = 60.min(area.width);
        let popup = Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + 1,
            width,
            height,
        };
        frame.render_widget(Clear, popup);
        let mut lines = vec![Line::from(vec![
            Span::styled(":", theme.key()),
            Span::raw(input.text.clone()),
            Span::styled("█", theme.dim()),
        ])];
        for c in all.iter().take(shown) {
            let name = c.split(' ').next().unwrap_or("");
            let about = palette::COMMANDS
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or("", |(_, _, a)| a);
            let arg_form = c.contains(' ') && !c.ends_with(' ');
            lines.push(Line::from(vec![
                Span::styled(format!("  {c:<28}"), theme.key()),
                Span::styled(if arg_form { "" } else { about }, theme.dim()),
            ]));
        }
        if all.len() > shown {
            lines.push(Line::from(Span::styled(
                format!("  … {} more", all.len() - shown),
                theme.dim(),
            )));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .block(crate::pane::block(theme, "command", true).style(theme.base())),
            popup,
        );
    }
}

impl App {
    /// The value being typed for a config key, with the schema's verdict on
    /// it below, redrawn on every key.
    fn draw_value_editor(
        &self,
        frame: &mut Frame,
        area: Rect,
        layer: &fleetdeck_store::document::LayerRef,
        key: &fleetdeck_store::config::ConfigPath,
        text: &str,
    ) {
        let theme = &self.options.theme;
        let height = 4.min(area.height);
        let popup = Rect {
            y: area.y + area.height - height,
            height,
            ..area
        };
        let verdict = match views::config::check_value(layer, key, text) {
            Ok(ok) => Line::from(vec![
                Span::styled("✓ ", theme.ok()),
                Span::styled(ok, theme.dim()),
            ]),
            Err(e) => Line::from(vec![
                Span::styled("✗ ", theme.error()),
                Span::styled(e, theme.error()),
            ]),
        };
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(vec![
                    Span::styled(format!("{key} = "), theme.key()),
                    Span::raw(text.to_string()),
                    Span::styled("█", theme.dim()),
                ]),
                verdict,
            ])
            .wrap(Wrap { trim: true })
            .block(
                crate::pane::block(
                    theme,
                    format!("edit in {}", crate::source::layer_label(layer)),
                    true,
                )
                .style(theme.base()),
            ),
            popup,
        );
    }
}

fn dedup(actions: impl Iterator<Item = Action>) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    for a in actions {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    Rect {
        x: area.x + area.width.saturating_sub(width) / 2,
        y: area.y + area.height.saturating_sub(height) / 2,
        width,
        height,
    }
}

fn draw_input_line(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    prompt: &str,
    text: &str,
    placeholder: &str,
) {
    let mut spans = vec![
        Span::styled(format!(" {prompt}"), theme.key()),
        Span::raw(text.to_string()),
        Span::styled("█", theme.dim()),
    ];
    if text.is_empty() {
        spans.push(Span::styled(format!(" {placeholder}"), theme.dim()));
    }
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

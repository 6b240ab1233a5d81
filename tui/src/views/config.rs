//! The config editor: one layer (the fleet defaults, a site's or a node's
//! overrides) as a tree, beside what the layers below give and the schema's
//! defaults. Edits are staged (validated as they are typed), reviewed as a
//! diff of the effective config with the nodes and sites it touches, and
//! committed as one change with a message.

use std::sync::Arc;

use fleetdeck_store::config::{self, ConfigPath, Layer, parse_cli_value};
use fleetdeck_store::diff::{DiffEntry, diff_states};
use fleetdeck_store::document::{FleetState, LayerRef};
use fleetdeck_store::schema::{self, Kind};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use serde_json::Value;

use crate::component::{Component, Ctx, Effect, Handled, Prompt, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane;
use crate::source::{ConfigEdit, Intent, layer_label};
use crate::table::{self, ListState, Spec};
use crate::text;

/// The diff shown before a commit.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    pub entries: Vec<DiffEntry>,
    pub nodes: usize,
    pub sites: usize,
}

#[derive(Debug)]
pub struct ConfigView {
    layer: LayerRef,
    list: ListState,
    /// One edit per key, in the order they were made.
    staged: Vec<ConfigEdit>,
    review: Option<Review>,
    /// Esc was pressed once with edits staged.
    leaving: bool,
}

/// One line of the tree: a section (a prefix of some keys) or a key.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeRow {
    pub path: ConfigPath,
    pub section: bool,
    /// What this layer sets.
    pub here: Option<Value>,
    /// What the layers below give (value, from where) or the schema default.
    pub below: Option<(Value, &'static str)>,
    pub staged: Option<ConfigEdit>,
}

impl TreeRow {
    fn depth(&self) -> usize {
        self.path.segments().len() - 1
    }
    fn name(&self) -> &str {
        self.path.segments().last().map_or("", String::as_str)
    }
}

/// The value as the editor shows it: JSON, strings without quotes when
/// plain.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() && parse_cli_value(s) == *v => s.clone(),
        other => other.to_string(),
    }
}

/// What typing `text` as the value of `key` in `layer` would mean: a
/// sentence saying it is valid (with the key's help), or why not.
pub fn check_value(layer: &LayerRef, key: &ConfigPath, text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err(
            "type a value: 30, true, text, [\"a\"], {\"k\": 1}, or null to remove an inherited key"
                .into(),
        );
    }
    let value = parse_cli_value(text.trim());
    let leaves = config::flatten(key, &value).map_err(|e| e.to_string())?;
    for (p, v) in &leaves {
        schema::validate_leaf(p, v, layer.source()).map_err(|e| e.to_string())?;
    }
    if value.is_null() {
        return Ok(format!("null: removes the inherited {key} here"));
    }
    Ok(match schema::spec(&key.to_key()) {
        Some(spec) => format!("{}: {}", kind_text(spec.kind), spec.help),
        None => format!("{} (a key the schema leaves free)", value_kind(&value)),
    })
}

/// A schema default as the value it stands for: 48, not 48.0.
fn default_value(d: f64) -> Value {
    if d.fract() == 0.0 && d.abs() < 9e15 {
        Value::from(d as i64)
    } else {
        Value::from(d)
    }
}

fn kind_text(k: Kind) -> String {
    match k {
        Kind::Int { min, max, unit } => format!("whole number of {unit}, {min}–{max}"),
        Kind::Number { min, max, unit } => format!("{unit}, {min}–{max}"),
        Kind::OneOf(words) => format!("one of {}", words.join(", ")),
        Kind::FleetUrl => "a URL, fleet defaults only".to_string(),
        Kind::FleetCert => "a PEM certificate, fleet defaults only".to_string(),
        Kind::FleetMembers => "a list of member names, fleet defaults only".to_string(),
        Kind::Targets => "a list of IPv4:PORT targets".to_string(),
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "number",
        Value::String(_) => "text",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// The layer `layer` names in `st`, if it exists.
fn layer_of<'a>(st: &'a FleetState, layer: &LayerRef) -> Option<&'a Layer> {
    st.layer(layer).ok()
}

/// The layers below `layer`, top down, with their names.
fn below_layers<'a>(st: &'a FleetState, layer: &LayerRef) -> Vec<(&'a Layer, &'static str)> {
    match layer {
        LayerRef::Fleet => Vec::new(),
        LayerRef::Site(_) => vec![(&st.fleet, "fleet")],
        LayerRef::Node(n) => {
            let site = st
                .nodes
                .get(n)
                .and_then(|node| st.sites.get(&node.site))
                .map(|s| (&s.overrides, "site"));
            site.into_iter().chain([(&st.fleet, "fleet")]).collect()
        }
    }
}

/// Lays one staged edit on a flat layer, as the store would write it.
fn stage_into(layer: &mut Layer, edit: &ConfigEdit) {
    let key = edit.key();
    let doomed: Vec<ConfigPath> = layer
        .keys()
        .filter(|p| p.starts_with(key))
        .cloned()
        .collect();
    for p in doomed {
        layer.remove(&p);
    }
    if let ConfigEdit::Set(path, value) = edit {
        let segs = path.segments();
        for n in 1..segs.len() {
            layer.remove(&segs[..n]);
        }
        if let Ok(leaves) = config::flatten(path, value) {
            for (p, v) in leaves {
                layer.insert(p, Arc::new(v));
            }
        }
    }
}

/// The fleet with `edits` made to `layer`.
pub fn with_edits(st: &FleetState, layer: &LayerRef, edits: &[ConfigEdit]) -> FleetState {
    let mut after = st.clone();
    let target = match layer {
        LayerRef::Fleet => Some(&mut after.fleet),
        LayerRef::Site(s) => after.sites.get_mut(s).map(|s| &mut s.overrides),
        LayerRef::Node(n) => after.nodes.get_mut(n).map(|n| &mut n.overrides),
    };
    if let Some(l) = target {
        for e in edits {
            stage_into(l, e);
        }
    }
    after
}

/// The review of `edits`: the effective config's diff and what it touches.
pub fn review(st: &FleetState, layer: &LayerRef, edits: &[ConfigEdit]) -> Review {
    let after = with_edits(st, layer, edits);
    let d = diff_states(st, &after);
    Review {
        entries: d.config,
        nodes: d.nodes_touched,
        sites: d.sites_touched,
    }
}

impl ConfigView {
    pub fn new(layer: LayerRef) -> ConfigView {
        ConfigView {
            layer,
            list: ListState::default(),
            staged: Vec::new(),
            review: None,
            leaving: false,
        }
    }

    pub fn staged(&self) -> &[ConfigEdit] {
        &self.staged
    }

    /// The tree: every key this layer sets, every key the layers below set,
    /// every key of the schema and every staged key, with their sections.
    pub fn rows(&self, st: &FleetState) -> Vec<TreeRow> {
        let here = layer_of(st, &self.layer);
        let below = below_layers(st, &self.layer);
        let mut keys: Vec<ConfigPath> = Vec::new();
        if let Some(l) = here {
            keys.extend(l.keys().cloned());
        }
        for (l, _) in &below {
            keys.extend(l.keys().cloned());
        }
        // Fleet-wide settings are offered only where they can be set.
        let fleet = matches!(self.layer, LayerRef::Fleet);
        keys.extend(
            schema::KEYS
                .iter()
                .filter(|s| {
                    fleet
                        || !matches!(
                            s.kind,
                            Kind::FleetUrl | Kind::FleetCert | Kind::FleetMembers
                        )
                })
                .filter_map(|s| ConfigPath::parse(s.key).ok()),
        );
        keys.extend(self.staged.iter().map(|e| e.key().clone()));
        keys.sort();
        keys.dedup();
        // A key that is a section elsewhere (a parent of another key) is
        // shown as the section.
        let mut rows: Vec<TreeRow> = Vec::new();
        let mut sections: Vec<ConfigPath> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let segs = key.segments();
            for n in 1..segs.len() {
                let Ok(prefix) = ConfigPath::from_segments(segs[..n].to_vec()) else {
                    continue;
                };
                if !sections.contains(&prefix) {
                    sections.push(prefix.clone());
                    rows.push(TreeRow {
                        path: prefix,
                        section: true,
                        here: None,
                        below: None,
                        staged: None,
                    });
                }
            }
            let is_parent = keys.get(i + 1).is_some_and(|next| next.starts_with(key));
            if is_parent || sections.contains(key) {
                continue;
            }
            let staged = self.staged.iter().find(|e| e.key() == key).cloned();
            let here_v = here.and_then(|l| l.get(key)).map(|v| v.as_ref().clone());
            let below_v = below
                .iter()
                .find_map(|(l, name)| l.get(key).map(|v| (v.as_ref().clone(), *name)))
                .or_else(|| {
                    schema::spec(&key.to_key())
                        .and_then(|s| s.default)
                        .map(|d| (default_value(d), "default"))
                });
            rows.push(TreeRow {
                path: key.clone(),
                section: false,
                here: here_v,
                below: below_v,
                staged,
            });
        }
        if self.list.filter.is_empty() {
            return rows;
        }
        let leaf_match = |r: &TreeRow| {
            let here = r.here.as_ref().map(show).unwrap_or_default();
            let below = r.below.as_ref().map(|(v, _)| show(v)).unwrap_or_default();
            table::matches(&self.list.filter, &[&r.path.to_key(), &here, &below])
        };
        let matching: Vec<ConfigPath> = rows
            .iter()
            .filter(|r| !r.section && leaf_match(r))
            .map(|r| r.path.clone())
            .collect();
        rows.into_iter()
            .filter(|r| {
                if r.section {
                    matching.iter().any(|m| m.starts_with(&r.path))
                } else {
                    matching.contains(&r.path)
                }
            })
            .collect()
    }

    fn selected(&self, ctx: &Ctx) -> Option<TreeRow> {
        let rows = self.rows(&ctx.snap.fleet);
        self.list.index(rows.len()).map(|i| rows[i].clone())
    }

    fn stage(&mut self, edit: ConfigEdit) {
        self.staged.retain(|e| e.key() != edit.key());
        self.staged.push(edit);
    }

    fn suggested_message(&self) -> String {
        let what: Vec<String> = self.staged.iter().map(ConfigEdit::describe).collect();
        format!("{} in {}", what.join(", "), layer_label(&self.layer))
    }
}

impl Component for ConfigView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let leaving = std::mem::take(&mut self.leaving);
        if self.review.is_some() {
            // The review waits for its commit message, then for the source
            // to write it: editing waits too, leaving and quitting do not.
            return match action {
                Action::Back | Action::Quit | Action::Help | Action::Palette => Handled::Ignored,
                _ => Handled::Consumed,
            };
        }
        let len = self.rows(&ctx.snap.fleet).len();
        if self.list.motion(action, len) {
            return Handled::Consumed;
        }
        if layer_of(&ctx.snap.fleet, &self.layer).is_none() && action != Action::Back {
            return Handled::Then(Effect::Message(format!(
                "{} is not in the fleet (removed?)",
                layer_label(&self.layer)
            )));
        }
        match action {
            Action::Back if !self.staged.is_empty() && !leaving => {
                self.leaving = true;
                Handled::Then(Effect::Message(format!(
                    "{} staged edit{} not committed: esc again drops {}, c reviews and commits",
                    self.staged.len(),
                    if self.staged.len() == 1 { "" } else { "s" },
                    if self.staged.len() == 1 { "it" } else { "them" },
                )))
            }
            Action::Edit | Action::Open => match self.selected(ctx) {
                Some(r) if r.section => Handled::Then(Effect::Message(format!(
                    "{} is a section: edit one of its keys, or a adds a key",
                    r.path
                ))),
                Some(r) => {
                    let current = match &r.staged {
                        Some(ConfigEdit::Set(_, v)) => show(v),
                        Some(ConfigEdit::Unset(_)) => String::new(),
                        None => r
                            .here
                            .as_ref()
                            .or(r.below.as_ref().map(|(v, _)| v))
                            .map(show)
                            .unwrap_or_default(),
                    };
                    Handled::Then(Effect::Prompt(Prompt::ConfigValue {
                        layer: self.layer.clone(),
                        key: r.path,
                        current,
                    }))
                }
                None => Handled::Then(Effect::Message("no key selected".into())),
            },
            Action::AddKey => Handled::Then(Effect::Prompt(Prompt::ConfigKey {
                layer: self.layer.clone(),
            })),
            Action::Unset => match self.selected(ctx) {
                Some(r) if r.here.is_some() || r.section => {
                    let set_below = layer_of(&ctx.snap.fleet, &self.layer)
                        .is_some_and(|l| l.keys().any(|k| k.starts_with(&r.path)));
                    if !set_below {
                        return Handled::Then(Effect::Message(format!(
                            "{} sets nothing under {}",
                            layer_label(&self.layer),
                            r.path
                        )));
                    }
                    let key = r.path.clone();
                    self.stage(ConfigEdit::Unset(key.clone()));
                    Handled::Then(Effect::Message(format!(
                        "staged: unset {key} (c reviews and commits)"
                    )))
                }
                Some(r) => Handled::Then(Effect::Message(match self.layer {
                    LayerRef::Fleet => format!("{} is not set in the fleet defaults", r.path),
                    _ => format!(
                        "{} is not set here but inherited: e then null removes it here",
                        r.path
                    ),
                })),
                None => Handled::Then(Effect::Message("no key selected".into())),
            },
            Action::Discard => match self.selected(ctx) {
                Some(r) if self.staged.iter().any(|e| e.key() == &r.path) => {
                    self.staged.retain(|e| e.key() != &r.path);
                    Handled::Then(Effect::Message(format!("dropped the edit of {}", r.path)))
                }
                _ => Handled::Then(Effect::Message("no staged edit on this key".into())),
            },
            Action::Commit if self.staged.is_empty() => Handled::Then(Effect::Message(
                "nothing staged: e edits the selected key".into(),
            )),
            Action::Commit => {
                self.review = Some(review(&ctx.snap.fleet, &self.layer, &self.staged));
                Handled::Then(Effect::Prompt(Prompt::CommitMessage {
                    suggested: self.suggested_message(),
                }))
            }
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, ctx: &Ctx) -> Vec<Action> {
        let mut c = vec![Action::Down, Action::Up];
        if !ctx.read_only {
            c.extend([Action::Edit, Action::AddKey, Action::Unset]);
            if !self.staged.is_empty() {
                c.extend([Action::Commit, Action::Discard]);
            }
        }
        c
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let [head, body, detail] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Fill(1),
            Constraint::Length(4),
        ])
        .areas(area);
        let st = &ctx.snap.fleet;
        let Some(layer) = layer_of(st, &self.layer) else {
            pane::gone(frame, area, theme, &layer_label(&self.layer));
            return;
        };
        let reach = match &self.layer {
            LayerRef::Fleet => format!("{} nodes in {} sites", st.nodes.len(), st.sites.len()),
            LayerRef::Site(s) => format!("{} nodes", st.nodes_of(s).count()),
            LayerRef::Node(_) => "this node".into(),
        };
        let mut line = vec![
            Span::styled(format!("editing {}", self.layer.describe()), theme.title()),
            Span::styled(
                format!(
                    "  · {} set here · reaches {reach}",
                    match layer.len() {
                        1 => "1 key".to_string(),
                        n => format!("{n} keys"),
                    }
                ),
                theme.dim(),
            ),
        ];
        if !self.staged.is_empty() {
            line.push(Span::styled(
                format!("  · {} staged", self.staged.len()),
                theme.key().add_modifier(Modifier::BOLD),
            ));
        }
        frame.render_widget(
            Paragraph::new(Line::from(line)).wrap(Wrap { trim: true }),
            head,
        );
        if let Some(r) = &self.review {
            self.draw_review(frame, body, ctx, r);
        } else {
            self.draw_tree(frame, body, ctx);
        }
        let lines = match self.selected(ctx) {
            Some(r) if !r.section => {
                let help = schema::spec(&r.path.to_key()).map_or_else(
                    || "a key the schema leaves free".to_string(),
                    |s| format!("{} ({})", s.help, kind_text(s.kind)),
                );
                vec![
                    Line::from(vec![
                        Span::styled(r.path.to_key(), theme.key()),
                        Span::styled(format!("  {help}"), theme.dim()),
                    ]),
                    Line::from(Span::styled(
                        match (&r.here, &r.below) {
                            (Some(_), Some((v, from))) => {
                                format!("overrides {} from {from}", show(v))
                            }
                            (Some(_), None) => "set only here".to_string(),
                            (None, Some((v, from))) => format!("inherits {} from {from}", show(v)),
                            (None, None) => "not set anywhere".to_string(),
                        },
                        theme.dim(),
                    )),
                ]
            }
            Some(r) => vec![Line::from(Span::styled(
                format!("section {}", r.path),
                theme.dim(),
            ))],
            None => vec![Line::from(Span::styled("nothing selected", theme.dim()))],
        };
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(pane::block(theme, "selected", false)),
            detail,
        );
    }
}

impl ConfigView {
    fn draw_tree(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let rows = self.rows(&ctx.snap.fleet);
        let spec = Spec {
            title: format!("config · {}", layer_label(&self.layer)),
            header: vec!["KEY", "HERE", "BELOW", "FROM"],
            widths: vec![
                Constraint::Percentage(40),
                Constraint::Percentage(28),
                Constraint::Percentage(22),
                Constraint::Length(8),
            ],
            len: rows.len(),
            state: &self.list,
            focused: true,
            empty: format!("no key matches /{}", self.list.filter),
            hit: Some((ctx.hits, 0)),
            sorted: None,
            marked: None,
        };
        table::render(frame, area, spec, theme, |i| {
            let r = &rows[i];
            let indent = "  ".repeat(r.depth());
            if r.section {
                return vec![Line::from(Span::styled(
                    format!("{indent}▾ {}", r.name()),
                    theme.header(),
                ))];
            }
            let here = match &r.staged {
                Some(ConfigEdit::Set(_, v)) => Span::styled(
                    format!("● {}", show(v)),
                    theme.key().add_modifier(Modifier::BOLD),
                ),
                Some(ConfigEdit::Unset(_)) => {
                    Span::styled("● unset", theme.key().add_modifier(Modifier::BOLD))
                }
                None => match &r.here {
                    Some(Value::Null) => Span::styled("null (removed)", theme.stale()),
                    Some(v) => Span::raw(show(v)),
                    None => Span::styled("·", theme.dim()),
                },
            };
            let overridden = r.here.is_some() || matches!(r.staged, Some(ConfigEdit::Set(..)));
            let below_style = if overridden {
                theme.dim().add_modifier(Modifier::CROSSED_OUT)
            } else {
                theme.dim()
            };
            let (below, from) = match &r.below {
                Some((v, from)) => (show(v), *from),
                None => (String::new(), ""),
            };
            vec![
                Line::from(format!("{indent}  {}", r.name())),
                Line::from(here),
                Line::from(Span::styled(below, below_style)),
                Line::from(Span::styled(from, theme.dim())),
            ]
        });
    }

    fn draw_review(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, r: &Review) {
        let theme = ctx.theme;
        let mut lines = vec![Line::from(vec![
            Span::styled("review  ", theme.title()),
            Span::raw(format!(
                "{} edit{} to {} · the effective config changes on ",
                self.staged.len(),
                if self.staged.len() == 1 { "" } else { "s" },
                layer_label(&self.layer),
            )),
            Span::styled(
                format!(
                    "{} node{} in {} site{}",
                    r.nodes,
                    if r.nodes == 1 { "" } else { "s" },
                    r.sites,
                    if r.sites == 1 { "" } else { "s" }
                ),
                theme.key().add_modifier(Modifier::BOLD),
            ),
        ])];
        for e in &self.staged {
            lines.push(Line::from(vec![
                Span::styled("  ● ", theme.key()),
                Span::raw(e.describe()),
            ]));
        }
        lines.push(Line::default());
        if r.entries.is_empty() {
            lines.push(Line::from(Span::styled(
                "no node's effective config changes (the edits restate what it already is)",
                theme.stale(),
            )));
        }
        let show_opt = |v: &Option<Value>| v.as_ref().map_or_else(|| "(unset)".into(), show);
        for e in &r.entries {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<22} ", text::fit(&e.scope, 22)), theme.dim()),
                Span::raw(format!("{:<24} ", e.key)),
                Span::styled(format!("- {}", show_opt(&e.before)), theme.error()),
                Span::raw("  "),
                Span::styled(format!("+ {}", show_opt(&e.after)), theme.ok()),
            ]));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(pane::block(theme, "diff of the effective config", true)),
            area,
        );
    }
}

impl View for ConfigView {
    fn route(&self) -> Route {
        Route::Config(self.layer.clone())
    }
    fn scope(&self) -> Scope {
        Scope::Config
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.list)
    }

    fn submit(&mut self, prompt: &Prompt, text: &str, ctx: &Ctx) -> Result<Handled, String> {
        match prompt {
            Prompt::ConfigKey { layer } => {
                let key = ConfigPath::parse(text.trim()).map_err(|e| e.to_string())?;
                let current = layer_of(&ctx.snap.fleet, layer)
                    .and_then(|l| l.get(&key))
                    .map(|v| show(v))
                    .unwrap_or_default();
                Ok(Handled::Then(Effect::Prompt(Prompt::ConfigValue {
                    layer: layer.clone(),
                    key,
                    current,
                })))
            }
            Prompt::ConfigValue { layer, key, .. } => {
                check_value(layer, key, text)?;
                let value = parse_cli_value(text.trim());
                let edit = ConfigEdit::Set(key.clone(), value);
                let what = edit.describe();
                self.stage(edit);
                // Keep the edited key selected.
                let rows = self.rows(&ctx.snap.fleet);
                if let Some(i) = rows.iter().position(|r| &r.path == key) {
                    self.list.selected = i;
                }
                Ok(Handled::Then(Effect::Message(format!(
                    "staged: {what} (c reviews and commits, u drops it)"
                ))))
            }
            Prompt::CommitMessage { .. } => {
                let message = text.trim();
                if message.is_empty() {
                    return Err("a commit message is needed: say why".into());
                }
                Ok(Handled::Then(Effect::Apply(Intent::Config {
                    layer: self.layer.clone(),
                    edits: self.staged.clone(),
                    message: Some(message.to_string()),
                })))
            }
            Prompt::Silence { .. } | Prompt::RunAction { .. } | Prompt::Tunnel { .. } => {
                Ok(Handled::Ignored)
            }
        }
    }

    fn prompt_cancelled(&mut self, prompt: &Prompt) {
        if matches!(prompt, Prompt::CommitMessage { .. }) {
            self.review = None;
        }
    }

    fn applied(&mut self, intent: &Intent, ok: bool) {
        if let Intent::Config { layer, edits, .. } = intent
            && *layer == self.layer
        {
            self.review = None;
            if ok {
                self.staged.retain(|e| !edits.contains(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ConfigPath {
        ConfigPath::parse(s).unwrap()
    }

    #[test]
    fn values_are_checked_against_the_schema_as_typed() {
        let site = LayerRef::Site(fleetdeck_store::SiteId::parse("BL-LAB-1").unwrap());
        let k = key("alerts.disk_pct");
        assert!(check_value(&site, &k, "90").unwrap().contains("percent"));
        let e = check_value(&site, &k, "900").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        assert!(check_value(&site, &k, "").is_err());
        assert!(check_value(&site, &k, "null").unwrap().contains("removes"));
        let e = check_value(&LayerRef::Fleet, &k, "null").unwrap_err();
        assert!(e.contains("only means something in a site or node"), "{e}");
        assert!(check_value(&LayerRef::Fleet, &key("alerts.dsk_pct"), "1").is_err());
        assert!(check_value(&LayerRef::Fleet, &key("app.name"), "cam").is_ok());
    }

    #[test]
    fn a_staged_set_replaces_what_the_layer_had_below_the_key() {
        let mut l = Layer::new();
        l.insert(key("files.a"), Arc::new(serde_json::json!(1)));
        l.insert(key("files.b"), Arc::new(serde_json::json!(2)));
        l.insert(key("retention"), Arc::new(serde_json::json!(3)));
        stage_into(
            &mut l,
            &ConfigEdit::Set(key("files"), serde_json::json!({"c": 4})),
        );
        stage_into(
            &mut l,
            &ConfigEdit::Set(key("retention.days"), serde_json::json!(7)),
        );
        let keys: Vec<String> = l.keys().map(|k| k.to_key()).collect();
        assert_eq!(keys, ["files.c", "retention.days"]);
        stage_into(&mut l, &ConfigEdit::Unset(key("files")));
        assert_eq!(l.len(), 1);
    }
}

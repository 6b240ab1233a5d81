//! Themes are data: `themes/*.toml`, embedded in the binary.
//!
//! `dark` is the default and complete; every other theme — built in or a
//! user's file — is a patch merged over a base (dark unless the file says
//! `base = "light"`), key by key, the way a site override lies over the fleet
//! defaults. A misspelt key or a colour that does not parse is refused with
//! one sentence naming it.

use std::path::Path;

use fleetdeck_store::alerts::{Severity, SiteState};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The built-in themes: name and TOML.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("16-color", include_str!("../../themes/16-color.toml")),
];

pub const DEFAULT: &str = "dark";

#[derive(Clone, Debug, PartialEq)]
pub struct HealthColors {
    pub green: Color,
    pub warn: Color,
    pub err: Color,
    pub unknown: Color,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeverityColors {
    pub soft: Color,
    pub medium: Color,
    pub hard: Color,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UiColors {
    pub fg: Color,
    pub bg: Color,
    pub dim: Color,
    pub accent: Color,
    pub border: Color,
    pub border_focus: Color,
    pub header: Color,
    pub selected_bg: Color,
    pub key: Color,
    pub status_fg: Color,
    pub status_bg: Color,
    pub error: Color,
    pub ok: Color,
    pub stale: Color,
    pub map: Color,
    pub fleet: Color,
    pub site: Color,
    pub node: Color,
    pub bold: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Theme {
    pub name: String,
    pub health: HealthColors,
    pub severity: SeverityColors,
    pub ui: UiColors,
}

// The file format: every value text, checked when converted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    base: Option<String>,
    health: HealthFile,
    severity: SeverityFile,
    ui: UiFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthFile {
    green: String,
    warn: String,
    err: String,
    unknown: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeverityFile {
    soft: String,
    medium: String,
    hard: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UiFile {
    fg: String,
    bg: String,
    dim: String,
    accent: String,
    border: String,
    border_focus: String,
    header: String,
    selected_bg: String,
    key: String,
    status_fg: String,
    status_bg: String,
    error: String,
    ok: String,
    stale: String,
    map: String,
    fleet: String,
    site: String,
    node: String,
    bold: bool,
}

fn color(origin: &str, field: &str, s: &str) -> Result<Color, String> {
    s.parse::<Color>().map_err(|_| {
        format!(
            "theme {origin}: {field} = '{s}' is not a colour: expected a name (red, light-blue, dark-gray, reset), #rrggbb or 0-255"
        )
    })
}

/// Lays `patch` over `base`: tables merge key by key, anything else
/// replaces.
fn merge(base: &mut toml::Table, patch: toml::Table) {
    for (k, v) in patch {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(p)) => merge(b, p),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn parse_table(origin: &str, text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>()
        .map_err(|e| format!("theme {origin} is not valid TOML: {}", e.message()))
}

fn built_in(name: &str) -> Option<&'static str> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

impl Default for Theme {
    fn default() -> Self {
        // The embedded default is checked by a test.
        Theme::named(DEFAULT).unwrap_or_else(|_| Theme::fallback())
    }
}

impl Theme {
    /// The names of the built-in themes.
    pub fn names() -> Vec<&'static str> {
        BUILT_IN.iter().map(|(n, _)| *n).collect()
    }

    /// A built-in theme by name.
    pub fn named(name: &str) -> Result<Theme, String> {
        let text = built_in(name).ok_or_else(|| {
            format!(
                "no theme named '{name}': the built-in themes are {}",
                Theme::names().join(", ")
            )
        })?;
        Theme::from_patch(name, text)
    }

    /// A theme from TOML text: a patch over its `base` (dark by default).
    /// `origin` names it in errors (a theme name or a file path).
    pub fn from_patch(origin: &str, text: &str) -> Result<Theme, String> {
        let patch = parse_table(origin, text)?;
        let base_name = match patch.get("base") {
            None => DEFAULT.to_string(),
            Some(toml::Value::String(s)) => s.clone(),
            Some(_) => return Err(format!("theme {origin}: base must be a theme name")),
        };
        let mut merged = if base_name == DEFAULT || origin == DEFAULT {
            parse_table(DEFAULT, built_in(DEFAULT).unwrap_or_default())?
        } else {
            let text = built_in(&base_name).ok_or_else(|| {
                format!(
                    "theme {origin}: base '{base_name}' is not a built-in theme ({})",
                    Theme::names().join(", ")
                )
            })?;
            let mut t = parse_table(DEFAULT, built_in(DEFAULT).unwrap_or_default())?;
            merge(&mut t, parse_table(&base_name, text)?);
            t
        };
        merge(&mut merged, patch);
        let file: File = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| format!("theme {origin}: {}", e.message()))?;
        Theme::from_file(origin, file)
    }

    /// A user's theme file: every section and field is checked against the
    /// default theme first, so a mistake is named with its line.
    pub fn from_user_patch(origin: &str, text: &str) -> Result<Theme, String> {
        use toml::de::DeValue;
        let patch = crate::settings::parse(origin, text)?;
        let full = parse_table(DEFAULT, built_in(DEFAULT).unwrap_or_default())?;
        let line = |span: std::ops::Range<usize>| crate::settings::line_of(text, span.start);
        for (k, v) in &patch {
            let key = k.get_ref().as_ref();
            match (full.get(key), v.get_ref()) {
                (_, DeValue::String(_)) if key == "base" || key == "name" => {}
                (Some(toml::Value::Table(known)), DeValue::Table(fields)) => {
                    for (f, fv) in fields {
                        let field = format!("{key}.{}", f.get_ref());
                        match (known.get(f.get_ref().as_ref()), fv.get_ref()) {
                            (Some(toml::Value::String(_)), DeValue::String(s)) => {
                                if color(origin, &field, s).is_err() {
                                    return Err(format!(
                                        "{origin}:{}: {field} = '{s}' is not a colour: expected a name (red, light-blue, dark-gray, reset), #rrggbb or 0-255",
                                        line(fv.span())
                                    ));
                                }
                            }
                            (Some(toml::Value::Boolean(_)), DeValue::Boolean(_)) => {}
                            (Some(_), _) => {
                                return Err(format!(
                                    "{origin}:{}: {field} has the wrong type: expected {}",
                                    line(fv.span()),
                                    if field == "ui.bold" {
                                        "true or false"
                                    } else {
                                        "a colour in quotes"
                                    }
                                ));
                            }
                            (None, _) => {
                                return Err(format!(
                                    "{origin}:{}: {field} is not a theme field: {key} holds {}",
                                    line(f.span()),
                                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                                ));
                            }
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "{origin}:{}: {key} is not a theme section: expected base, name, [health], [severity] or [ui]",
                        line(k.span())
                    ));
                }
            }
        }
        Theme::from_patch(origin, text)
    }

    /// `--theme NAME_OR_FILE`: a built-in name, else a TOML file.
    pub fn load(name_or_path: &str) -> Result<Theme, String> {
        if built_in(name_or_path).is_some() {
            return Theme::named(name_or_path);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(format!(
                "no theme named '{name_or_path}' and no such file: the built-in themes are {}",
                Theme::names().join(", ")
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("theme file {} could not be read: {e}", path.display()))?;
        Theme::from_patch(&path.display().to_string(), &text)
    }

    fn from_file(origin: &str, f: File) -> Result<Theme, String> {
        let c = |field: &str, s: &str| color(origin, field, s);
        Ok(Theme {
            name: f.name,
            health: HealthColors {
                green: c("health.green", &f.health.green)?,
                warn: c("health.warn", &f.health.warn)?,
                err: c("health.err", &f.health.err)?,
                unknown: c("health.unknown", &f.health.unknown)?,
            },
            severity: SeverityColors {
                soft: c("severity.soft", &f.severity.soft)?,
                medium: c("severity.medium", &f.severity.medium)?,
                hard: c("severity.hard", &f.severity.hard)?,
            },
            ui: UiColors {
                fg: c("ui.fg", &f.ui.fg)?,
                bg: c("ui.bg", &f.ui.bg)?,
                dim: c("ui.dim", &f.ui.dim)?,
                accent: c("ui.accent", &f.ui.accent)?,
                border: c("ui.border", &f.ui.border)?,
                border_focus: c("ui.border_focus", &f.ui.border_focus)?,
                header: c("ui.header", &f.ui.header)?,
                selected_bg: c("ui.selected_bg", &f.ui.selected_bg)?,
                key: c("ui.key", &f.ui.key)?,
                status_fg: c("ui.status_fg", &f.ui.status_fg)?,
                status_bg: c("ui.status_bg", &f.ui.status_bg)?,
                error: c("ui.error", &f.ui.error)?,
                ok: c("ui.ok", &f.ui.ok)?,
                stale: c("ui.stale", &f.ui.stale)?,
                map: c("ui.map", &f.ui.map)?,
                fleet: c("ui.fleet", &f.ui.fleet)?,
                site: c("ui.site", &f.ui.site)?,
                node: c("ui.node", &f.ui.node)?,
                bold: f.ui.bold,
            },
        })
    }

    /// Used only if the embedded default failed to parse (a test guards it).
    fn fallback() -> Theme {
        Theme {
            name: "fallback".into(),
            health: HealthColors {
                green: Color::Green,
                warn: Color::Yellow,
                err: Color::Red,
                unknown: Color::Gray,
            },
            severity: SeverityColors {
                soft: Color::Yellow,
                medium: Color::Yellow,
                hard: Color::Red,
            },
            ui: UiColors {
                fg: Color::Reset,
                bg: Color::Reset,
                dim: Color::Gray,
                accent: Color::Cyan,
                border: Color::Gray,
                border_focus: Color::Cyan,
                header: Color::White,
                selected_bg: Color::Blue,
                key: Color::Cyan,
                status_fg: Color::Black,
                status_bg: Color::Gray,
                error: Color::Red,
                ok: Color::Green,
                stale: Color::Yellow,
                map: Color::DarkGray,
                fleet: Color::Gray,
                site: Color::Cyan,
                node: Color::Magenta,
                bold: false,
            },
        }
    }

    // ---- styles the views use ----------------------------------------------

    pub fn state_color(&self, s: SiteState) -> Color {
        match s {
            SiteState::Green => self.health.green,
            SiteState::Warn => self.health.warn,
            SiteState::Err => self.health.err,
            SiteState::Unknown => self.health.unknown,
        }
    }

    pub fn severity_color(&self, s: Severity) -> Color {
        match s {
            Severity::Soft => self.severity.soft,
            Severity::Medium => self.severity.medium,
            Severity::Hard => self.severity.hard,
        }
    }

    fn strong(&self, s: Style) -> Style {
        if self.ui.bold {
            s.add_modifier(Modifier::BOLD)
        } else {
            s
        }
    }

    pub fn base(&self) -> Style {
        Style::new().fg(self.ui.fg).bg(self.ui.bg)
    }
    pub fn dim(&self) -> Style {
        Style::new().fg(self.ui.dim)
    }
    pub fn title(&self) -> Style {
        self.strong(Style::new().fg(self.ui.accent))
    }
    pub fn header(&self) -> Style {
        Style::new().fg(self.ui.header).add_modifier(Modifier::BOLD)
    }
    pub fn border(&self, focused: bool) -> Style {
        Style::new().fg(if focused {
            self.ui.border_focus
        } else {
            self.ui.border
        })
    }
    /// The selected row of the focused table: a background only, so the
    /// row keeps the colours that say its health.
    pub fn selected(&self) -> Style {
        Style::new()
            .bg(self.ui.selected_bg)
            .add_modifier(Modifier::BOLD)
    }
    /// The selected row of a table without the focus.
    pub fn selected_unfocused(&self) -> Style {
        Style::new().add_modifier(Modifier::UNDERLINED)
    }
    pub fn key(&self) -> Style {
        self.strong(Style::new().fg(self.ui.key))
    }
    pub fn status(&self) -> Style {
        Style::new().fg(self.ui.status_fg).bg(self.ui.status_bg)
    }
    pub fn error(&self) -> Style {
        self.strong(Style::new().fg(self.ui.error))
    }
    pub fn ok(&self) -> Style {
        Style::new().fg(self.ui.ok)
    }
    pub fn stale(&self) -> Style {
        Style::new().fg(self.ui.stale)
    }
    pub fn state(&self, s: SiteState) -> Style {
        Style::new().fg(self.state_color(s))
    }
    pub fn severity(&self, s: Severity) -> Style {
        Style::new().fg(self.severity_color(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_loads() {
        for name in Theme::names() {
            let t = Theme::named(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.name, name);
        }
        assert_eq!(Theme::default().name, "dark");
    }

    #[test]
    fn a_user_theme_is_a_patch_over_its_base() {
        let t = Theme::from_patch(
            "mine.toml",
            "name = \"mine\"\nbase = \"light\"\n[health]\nerr = \"#ff00ff\"\n",
        )
        .unwrap();
        let light = Theme::named("light").unwrap();
        assert_eq!(t.health.err, Color::Rgb(255, 0, 255));
        assert_eq!(t.health.green, light.health.green);
        assert_eq!(t.ui.bg, light.ui.bg);
        let over_dark = Theme::from_patch("x", "name = \"x\"\n[ui]\nbold = true\n").unwrap();
        assert!(over_dark.ui.bold);
        assert_eq!(over_dark.health, Theme::default().health);
    }

    #[test]
    fn a_user_theme_names_the_line_of_its_mistake() {
        let t =
            Theme::from_user_patch("mine.toml", "name = \"mine\"\n[ui]\naccent = \"#ff8800\"\n")
                .unwrap();
        assert_eq!(t.ui.accent, Color::Rgb(0xff, 0x88, 0x00));
        assert_eq!(t.health, Theme::default().health);
        let e = Theme::from_user_patch("mine.toml", "[ui]\n\naccent = \"orang\"\n").unwrap_err();
        assert!(
            e.starts_with("mine.toml:3: ui.accent = 'orang' is not a colour"),
            "{e}"
        );
        let e = Theme::from_user_patch("mine.toml", "[ui]\naccnt = \"red\"\n").unwrap_err();
        assert!(
            e.starts_with("mine.toml:2: ui.accnt is not a theme field"),
            "{e}"
        );
        let e = Theme::from_user_patch("mine.toml", "[colours]\na = 1\n").unwrap_err();
        assert!(
            e.starts_with("mine.toml:1: colours is not a theme section"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_theme_is_refused_with_the_field_named() {
        let e = Theme::from_patch("t", "name = \"t\"\n[health]\nerr = \"blurple\"\n").unwrap_err();
        assert!(e.contains("health.err") && e.contains("blurple"), "{e}");
        let e = Theme::from_patch("t", "name = \"t\"\n[ui]\nbordr = \"red\"\n").unwrap_err();
        assert!(e.contains("bordr"), "{e}");
        let e = Theme::load("no-such-theme").unwrap_err();
        assert!(e.contains("dark, light, high-contrast, 16-color"), "{e}");
    }
}

//! The operator's own console settings, from the config dir
//! (`$XDG_CONFIG_HOME/fleetdeck`, else `~/.config/fleetdeck`):
//!
//! - `console.toml`: `theme = "light"`, `mouse = false`, and a `[keys.SCOPE]`
//!   table per keymap scope, `action = "key"` or `action = ["key", …]`,
//!   which makes those the action's keys in that scope;
//! - `themes/NAME.toml`: user themes, each a patch over the default theme
//!   (or over its `base`), chosen by `--theme NAME` or `:theme NAME`.
//!
//! A file that is not right is refused with one sentence naming the file,
//! the line and the field: the console does not start on half a keymap.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::keymap::{Action, Key, Keymap, Scope};
use crate::theme::Theme;

/// The settings file's name in the config dir.
pub const FILE: &str = "console.toml";

/// What `console.toml` says (the defaults when there is none).
#[derive(Clone, Debug)]
pub struct Settings {
    pub keymap: Keymap,
    /// A theme name (built in or a user theme) or a file.
    pub theme: Option<String>,
    pub mouse: bool,
    /// The config dir the settings came from, where user themes live.
    pub dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keymap: Keymap::default(),
            theme: None,
            mouse: true,
            dir: None,
        }
    }
}

/// `$XDG_CONFIG_HOME/fleetdeck`, else `$HOME/.config/fleetdeck`.
pub fn config_dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_CONFIG_HOME")
        .map(|d| d.join("fleetdeck"))
        .or_else(|| from("HOME").map(|h| h.join(".config").join("fleetdeck")))
}

/// The line (from 1) of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses TOML text, or says where it is broken.
pub fn parse<'a>(origin: &str, text: &'a str) -> Result<DeTable<'a>, String> {
    DeTable::parse(text)
        .map(|t| t.into_inner())
        .map_err(|e| match e.span() {
            Some(span) => format!(
                "{origin}:{}: not valid TOML: {}",
                line_of(text, span.start),
                e.message().trim_end()
            ),
            None => format!("{origin}: not valid TOML: {}", e.message().trim_end()),
        })
}

fn keys_of(
    origin: &str,
    text: &str,
    field: &str,
    v: &toml::Spanned<DeValue>,
) -> Result<Vec<Key>, String> {
    let at = |span: std::ops::Range<usize>| format!("{origin}:{}", line_of(text, span.start));
    let one = |v: &toml::Spanned<DeValue>| match v.get_ref() {
        DeValue::String(s) => Key::parse(s).map_err(|e| format!("{}: {field}: {e}", at(v.span()))),
        _ => Err(format!(
            "{}: {field} must be a key (\"j\", \"ctrl-d\", \"enter\") or a list of keys",
            at(v.span())
        )),
    };
    match v.get_ref() {
        DeValue::Array(items) => items.iter().map(one).collect(),
        _ => one(v).map(|k| vec![k]),
    }
}

impl Settings {
    /// Reads `console.toml` in `dir` (the defaults when it does not exist).
    pub fn load(dir: Option<&Path>) -> Result<Settings, String> {
        let Some(dir) = dir else {
            return Ok(Settings::default());
        };
        let path = dir.join(FILE);
        let mut s = match std::fs::read_to_string(&path) {
            Ok(text) => Settings::parse(&path.display().to_string(), &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(e) => return Err(format!("{} could not be read: {e}", path.display())),
        };
        s.dir = Some(dir.to_path_buf());
        Ok(s)
    }

    /// Parses the text of a `console.toml`; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Settings, String> {
        let table = parse(origin, text)?;
        let mut s = Settings::default();
        let at = |span: std::ops::Range<usize>| format!("{origin}:{}", line_of(text, span.start));
        for (k, v) in &table {
            match (k.get_ref().as_ref(), v.get_ref()) {
                ("theme", DeValue::String(t)) => s.theme = Some(t.to_string()),
                ("theme", _) => {
                    return Err(format!("{}: theme must be a theme name", at(v.span())));
                }
                ("mouse", DeValue::Boolean(b)) => s.mouse = *b,
                ("mouse", _) => {
                    return Err(format!("{}: mouse must be true or false", at(v.span())));
                }
                ("keys", DeValue::Table(scopes)) => {
                    for (scope_name, actions) in scopes {
                        let Some(scope) = Scope::from_name(scope_name.get_ref()) else {
                            return Err(format!(
                                "{}: keys.{} is not a keymap scope: expected one of {}",
                                at(scope_name.span()),
                                scope_name.get_ref(),
                                Scope::ALL
                                    .iter()
                                    .map(|s| s.name())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        };
                        let DeValue::Table(actions) = actions.get_ref() else {
                            return Err(format!(
                                "{}: keys.{} must be a table of action = \"key\"",
                                at(actions.span()),
                                scope.name()
                            ));
                        };
                        for (action_name, keys) in actions {
                            let field = format!("keys.{}.{}", scope.name(), action_name.get_ref());
                            let Some(action) = Action::from_name(action_name.get_ref()) else {
                                return Err(format!(
                                    "{}: {field} is not an action: expected one of {}",
                                    at(action_name.span()),
                                    Action::ALL
                                        .iter()
                                        .map(|a| a.name())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ));
                            };
                            let keys = keys_of(origin, text, &field, keys)?;
                            s.keymap.rebind(scope, action, &keys);
                        }
                    }
                }
                ("keys", _) => {
                    return Err(format!(
                        "{}: keys must be a table: [keys.global], [keys.alerts], …",
                        at(v.span())
                    ));
                }
                (other, _) => {
                    return Err(format!(
                        "{}: {other} is not a console setting: expected theme, mouse or [keys.SCOPE]",
                        at(k.span())
                    ));
                }
            }
        }
        Ok(s)
    }

    /// The names of the user's themes (`themes/NAME.toml` in the config
    /// dir), sorted; none when the dir cannot be read.
    pub fn user_themes(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir.join("themes")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".toml").map(str::to_string)
            })
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        names
    }

    /// The theme to start with: `choice` (the command line) or the file's,
    /// a user theme of that name first, then a built-in one, then a file.
    pub fn theme(&self, choice: Option<&str>) -> Result<Theme, String> {
        match choice.or(self.theme.as_deref()) {
            None => Ok(Theme::default()),
            Some(name) => resolve_theme(name, self.dir.as_deref()),
        }
    }
}

/// A theme by name: `DIR/themes/NAME.toml` when it exists (a patch over the
/// default), else a built-in theme, else a TOML file at that path.
pub fn resolve_theme(name: &str, dir: Option<&Path>) -> Result<Theme, String> {
    if let Some(dir) = dir
        && !name.contains(['/', '\\'])
    {
        let path = dir.join("themes").join(format!("{name}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => return Theme::from_user_patch(&path.display().to_string(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{} could not be read: {e}", path.display())),
        }
    }
    Theme::load(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_rebound_per_scope() {
        let s = Settings::parse(
            "console.toml",
            "theme = \"light\"\n[keys.global]\ndown = [\"n\", \"down\"]\n[keys.alerts]\nack = \"A\"\n",
        )
        .unwrap();
        let km = &s.keymap;
        assert_eq!(
            km.lookup(Scope::Overview, Key::parse("n").unwrap()),
            Some(Action::Down)
        );
        assert_eq!(km.lookup(Scope::Overview, Key::parse("j").unwrap()), None);
        assert_eq!(
            km.lookup(Scope::Alerts, Key::parse("A").unwrap()),
            Some(Action::Ack)
        );
        assert_eq!(km.lookup(Scope::Alerts, Key::parse("a").unwrap()), None);
        assert_eq!(s.theme.as_deref(), Some("light"));
        assert!(s.mouse);
    }

    #[test]
    fn user_themes_are_found_and_win_over_built_in_names() {
        let tmp = std::env::temp_dir().join(format!("fleetdeck-settings-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("themes")).unwrap();
        std::fs::write(tmp.join("themes/dusk.toml"), "[ui]\naccent = \"#ff8800\"\n").unwrap();
        std::fs::write(tmp.join(FILE), "theme = \"dusk\"\n").unwrap();
        let s = Settings::load(Some(&tmp)).unwrap();
        assert_eq!(s.user_themes(), ["dusk"]);
        let t = s.theme(None).unwrap();
        assert_eq!(t.ui.accent, ratatui::style::Color::Rgb(0xff, 0x88, 0x00));
        assert_eq!(
            t.health,
            Theme::default().health,
            "a patch over the default"
        );
        assert_eq!(
            s.theme(Some("light")).unwrap(),
            Theme::named("light").unwrap()
        );
        let e = s.theme(Some("nope")).unwrap_err();
        assert!(e.contains("no theme named 'nope'"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_bad_file_names_the_file_line_and_field() {
        let e =
            Settings::parse("c.toml", "mouse = true\n\n[keys.global]\nqiut = \"x\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:4: keys.global.qiut is not an action"),
            "{e}"
        );
        let e = Settings::parse("c.toml", "[keys.global]\nquit = \"hyper-x\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:2: keys.global.quit: key 'hyper-x' is not valid"),
            "{e}"
        );
        let e = Settings::parse("c.toml", "[keys.sites]\nopen = \"o\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:1: keys.sites is not a keymap scope"),
            "{e}"
        );
        let e = Settings::parse("c.toml", "theme = \n").unwrap_err();
        assert!(e.starts_with("c.toml:1: not valid TOML"), "{e}");
        let e = Settings::parse("c.toml", "colour = \"red\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:1: colour is not a console setting"),
            "{e}"
        );
    }
}

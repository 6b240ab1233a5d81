//! Keys to actions, as data.
//!
//! Every binding is a row of one table: a scope (everywhere, one view, a
//! dialog, a text input), a key, an action. The default table is text
//! (`"ctrl-c"`, `"G"`, `"pagedown"`), so a user keymap file can rebind keys
//! later without code. The hint bar and the `?` help read the same table.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Everything a key can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Back,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    NextPane,
    PrevPane,
    Filter,
    Palette,
    Help,
    GoOverview,
    GoAlerts,
    GoHistory,
    GoPeers,
    CycleSeverity,
    ToggleSilenced,
    /// Sort the focused table by its next column; the other way round.
    Sort,
    ReverseSort,
    Ack,
    Silence,
    Revert,
    /// Open the config editor on the layer of this view.
    EditConfig,
    GoRollouts,
    GoCommands,
    /// The config editor.
    Edit,
    AddKey,
    Unset,
    Discard,
    Commit,
    /// The rollouts view.
    Pause,
    Resume,
    Abort,
    /// As-of mode: the fleet at the event before (after) the moment shown
    /// (from now, the last event).
    EarlierEvent,
    LaterEvent,
    /// The fleet's events; those of this site or node.
    GoEvents,
    GoZones,
    EventsHere,
    /// The events view: the next group of kinds.
    CycleKind,
    /// Show or fold the changes that only record a replica's address.
    ToggleAddresses,
    /// Mark the selected row (sites, nodes, alerts) for a bulk action;
    /// drop every mark.
    Mark,
    ClearMarks,
    /// Run an allowlisted action on the marked (or selected) sites or nodes.
    RunAction,
    /// Start a staged rollout (on the marked sites, else the fleet).
    StartRollout,
    /// The overview's sites table in groups by zone, or not.
    GroupByZone,
    /// Open a tunnel to one of this node's allowed targets.
    OpenTunnel,
    /// Dialogs and text inputs.
    Confirm,
    Cancel,
    Submit,
    Complete,
    DeleteChar,
}

impl Action {
    /// What the hint bar and the help say.
    pub fn label(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Back => "back",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::Open => "open",
            Action::NextPane => "next pane",
            Action::PrevPane => "previous pane",
            Action::Filter => "filter",
            Action::Palette => "command",
            Action::Help => "help",
            Action::GoOverview => "overview",
            Action::GoAlerts => "alerts",
            Action::GoHistory => "history",
            Action::GoPeers => "peers",
            Action::CycleSeverity => "severity",
            Action::ToggleSilenced => "silenced",
            Action::Sort => "sort",
            Action::ReverseSort => "reverse sort",
            Action::Ack => "ack",
            Action::Silence => "silence",
            Action::Revert => "revert",
            Action::EditConfig => "config",
            Action::GoRollouts => "rollouts",
            Action::GoCommands => "commands",
            Action::Edit => "edit",
            Action::AddKey => "add key",
            Action::Unset => "unset",
            Action::Discard => "undo edit",
            Action::Commit => "review & commit",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
            Action::EarlierEvent => "earlier event",
            Action::LaterEvent => "later event",
            Action::GoEvents => "events",
            Action::GoZones => "zones",
            Action::EventsHere => "its events",
            Action::CycleKind => "kinds",
            Action::ToggleAddresses => "addresses",
            Action::Mark => "mark",
            Action::ClearMarks => "clear marks",
            Action::RunAction => "run action",
            Action::StartRollout => "start rollout",
            Action::GroupByZone => "group by zone",
            Action::OpenTunnel => "tunnel",
            Action::Confirm => "yes",
            Action::Cancel => "cancel",
            Action::Submit => "run",
            Action::Complete => "complete",
            Action::DeleteChar => "delete",
        }
    }

    /// Actions that write to the fleet: refused in read-only mode.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::Ack
                | Action::Silence
                | Action::Revert
                | Action::Edit
                | Action::AddKey
                | Action::Unset
                | Action::Commit
                | Action::Pause
                | Action::Resume
                | Action::Abort
                | Action::RunAction
                | Action::StartRollout
        )
    }

    /// Every action, for the keymap file's names.
    pub const ALL: &[Action] = &[
        Action::Quit,
        Action::Back,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Open,
        Action::NextPane,
        Action::PrevPane,
        Action::Filter,
        Action::Palette,
        Action::Help,
        Action::GoOverview,
        Action::GoAlerts,
        Action::GoHistory,
        Action::GoPeers,
        Action::CycleSeverity,
        Action::ToggleSilenced,
        Action::Sort,
        Action::ReverseSort,
        Action::Ack,
        Action::Silence,
        Action::Revert,
        Action::EditConfig,
        Action::GoRollouts,
        Action::GoCommands,
        Action::Edit,
        Action::AddKey,
        Action::Unset,
        Action::Discard,
        Action::Commit,
        Action::Pause,
        Action::Resume,
        Action::Abort,
        Action::EarlierEvent,
        Action::LaterEvent,
        Action::GoEvents,
        Action::GoZones,
        Action::EventsHere,
        Action::CycleKind,
        Action::ToggleAddresses,
        Action::Mark,
        Action::ClearMarks,
        Action::RunAction,
        Action::StartRollout,
        Action::GroupByZone,
        Action::OpenTunnel,
        Action::Confirm,
        Action::Cancel,
        Action::Submit,
        Action::Complete,
        Action::DeleteChar,
    ];

    /// The action's name in the keymap file (`[keys.alerts] ack = "a"`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Back => "back",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::Open => "open",
            Action::NextPane => "next_pane",
            Action::PrevPane => "prev_pane",
            Action::Filter => "filter",
            Action::Palette => "palette",
            Action::Help => "help",
            Action::GoOverview => "go_overview",
            Action::GoAlerts => "go_alerts",
            Action::GoHistory => "go_history",
            Action::GoPeers => "go_peers",
            Action::CycleSeverity => "cycle_severity",
            Action::ToggleSilenced => "toggle_silenced",
            Action::Sort => "sort",
            Action::ReverseSort => "reverse_sort",
            Action::Ack => "ack",
            Action::Silence => "silence",
            Action::Revert => "revert",
            Action::EditConfig => "edit_config",
            Action::GoRollouts => "go_rollouts",
            Action::GoCommands => "go_commands",
            Action::Edit => "edit",
            Action::AddKey => "add_key",
            Action::Unset => "unset",
            Action::Discard => "discard",
            Action::Commit => "commit",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
            Action::EarlierEvent => "earlier_event",
            Action::LaterEvent => "later_event",
            Action::GoEvents => "go_events",
            Action::GoZones => "go_zones",
            Action::EventsHere => "events_here",
            Action::CycleKind => "cycle_kind",
            Action::ToggleAddresses => "toggle_addresses",
            Action::Mark => "mark",
            Action::ClearMarks => "clear_marks",
            Action::RunAction => "run_action",
            Action::StartRollout => "start_rollout",
            Action::GroupByZone => "group_by_zone",
            Action::OpenTunnel => "open_tunnel",
            Action::Confirm => "confirm",
            Action::Cancel => "cancel",
            Action::Submit => "submit",
            Action::Complete => "complete",
            Action::DeleteChar => "delete_char",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Movement keys: listed once in the hint bar as "j/k move".
    pub fn is_motion(self) -> bool {
        matches!(
            self,
            Action::Up
                | Action::Down
                | Action::PageUp
                | Action::PageDown
                | Action::Top
                | Action::Bottom
        )
    }
}

/// Which views a binding applies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every view (a view's own binding of the same key wins).
    Global,
    Overview,
    Site,
    Node,
    Alerts,
    History,
    Peers,
    Config,
    Rollouts,
    Commands,
    Events,
    Zones,
    /// A yes/no dialog.
    Confirm,
    /// A text input (command palette, filter, prompt): keys not bound here
    /// are typed.
    Input,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Scope::Global => "everywhere",
            Scope::Overview => "overview",
            Scope::Site => "site",
            Scope::Node => "node",
            Scope::Alerts => "alerts",
            Scope::History => "history",
            Scope::Peers => "peers",
            Scope::Config => "config editor",
            Scope::Rollouts => "rollouts",
            Scope::Commands => "commands",
            Scope::Events => "events",
            Scope::Zones => "zones",
            Scope::Confirm => "dialog",
            Scope::Input => "input",
        }
    }

    pub const ALL: &[Scope] = &[
        Scope::Global,
        Scope::Overview,
        Scope::Site,
        Scope::Node,
        Scope::Alerts,
        Scope::History,
        Scope::Peers,
        Scope::Config,
        Scope::Rollouts,
        Scope::Commands,
        Scope::Events,
        Scope::Zones,
        Scope::Confirm,
        Scope::Input,
    ];

    /// The scope's table name in the keymap file (`[keys.global]`).
    pub fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Overview => "overview",
            Scope::Site => "site",
            Scope::Node => "node",
            Scope::Alerts => "alerts",
            Scope::History => "history",
            Scope::Peers => "peers",
            Scope::Config => "config",
            Scope::Rollouts => "rollouts",
            Scope::Commands => "commands",
            Scope::Events => "events",
            Scope::Zones => "zones",
            Scope::Confirm => "confirm",
            Scope::Input => "input",
        }
    }

    pub fn from_name(name: &str) -> Option<Scope> {
        Scope::ALL.iter().copied().find(|s| s.name() == name)
    }
}

/// A key with its modifiers. Characters carry their case (`G`, not
/// shift-g).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Key {
        let mods = match code {
            // Shift is in the character itself.
            KeyCode::Char(_) | KeyCode::BackTab => mods - KeyModifiers::SHIFT,
            _ => mods,
        };
        Key {
            code,
            mods: mods & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT),
        }
    }

    pub fn from_event(e: &KeyEvent) -> Key {
        Key::new(e.code, e.modifiers)
    }

    /// Parses `j`, `G`, `?`, `ctrl-c`, `alt-x`, `enter`, `esc`, `tab`,
    /// `backtab`, `up`, `pagedown`, `f5`, `space`.
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                mods |= KeyModifiers::ALT;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("shift-") {
                mods |= KeyModifiers::SHIFT;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "backspace" => KeyCode::Backspace,
            "delete" => KeyCode::Delete,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "space" => KeyCode::Char(' '),
            f if f.len() > 1 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyCode::F(f[1..].parse().unwrap_or(1))
            }
            c if c.chars().count() == 1 => KeyCode::Char(c.chars().next().unwrap_or(' ')),
            _ => {
                return Err(format!(
                    "key '{s}' is not valid: expected a character or a name such as enter, esc, tab, up, pagedown, f5, with optional ctrl-/alt- before it"
                ));
            }
        };
        Ok(Key::new(code, mods))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// One row of the keymap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub scope: Scope,
    pub key: Key,
    pub action: Action,
}

/// The default bindings: scope, key, action.
const DEFAULT: &[(Scope, &str, Action)] = &[
    (Scope::Global, "q", Action::Quit),
    (Scope::Global, "ctrl-c", Action::Quit),
    (Scope::Global, "esc", Action::Back),
    (Scope::Global, "j", Action::Down),
    (Scope::Global, "down", Action::Down),
    (Scope::Global, "k", Action::Up),
    (Scope::Global, "up", Action::Up),
    (Scope::Global, "pagedown", Action::PageDown),
    (Scope::Global, "ctrl-d", Action::PageDown),
    (Scope::Global, "pageup", Action::PageUp),
    (Scope::Global, "ctrl-u", Action::PageUp),
    (Scope::Global, "g", Action::Top),
    (Scope::Global, "home", Action::Top),
    (Scope::Global, "G", Action::Bottom),
    (Scope::Global, "end", Action::Bottom),
    (Scope::Global, "enter", Action::Open),
    (Scope::Global, "tab", Action::NextPane),
    (Scope::Global, "backtab", Action::PrevPane),
    (Scope::Global, "/", Action::Filter),
    (Scope::Global, ":", Action::Palette),
    (Scope::Global, "?", Action::Help),
    (Scope::Global, "1", Action::GoOverview),
    (Scope::Global, "2", Action::GoAlerts),
    (Scope::Global, "3", Action::GoHistory),
    (Scope::Global, "4", Action::GoPeers),
    (Scope::Global, "5", Action::GoRollouts),
    (Scope::Global, "6", Action::GoCommands),
    (Scope::Global, "e", Action::EditConfig),
    (Scope::Global, "7", Action::GoEvents),
    (Scope::Global, "8", Action::GoZones),
    (Scope::Global, "o", Action::Sort),
    (Scope::Global, "O", Action::ReverseSort),
    (Scope::Global, "left", Action::EarlierEvent),
    (Scope::Global, "[", Action::EarlierEvent),
    (Scope::Global, "right", Action::LaterEvent),
    (Scope::Global, "]", Action::LaterEvent),
    (Scope::Global, "space", Action::Mark),
    (Scope::Global, "u", Action::ClearMarks),
    (Scope::Overview, "x", Action::RunAction),
    (Scope::Overview, "N", Action::StartRollout),
    (Scope::Overview, "z", Action::GroupByZone),
    (Scope::Site, "x", Action::RunAction),
    (Scope::Site, "v", Action::EventsHere),
    (Scope::Node, "v", Action::EventsHere),
    (Scope::Node, "t", Action::OpenTunnel),
    (Scope::Rollouts, "N", Action::StartRollout),
    (Scope::Events, "f", Action::CycleKind),
    (Scope::Events, "h", Action::ToggleAddresses),
    (Scope::History, "h", Action::ToggleAddresses),
    (Scope::Config, "enter", Action::Edit),
    (Scope::Config, "e", Action::Edit),
    (Scope::Config, "a", Action::AddKey),
    (Scope::Config, "d", Action::Unset),
    (Scope::Config, "u", Action::Discard),
    (Scope::Config, "c", Action::Commit),
    (Scope::Rollouts, "p", Action::Pause),
    (Scope::Rollouts, "R", Action::Resume),
    (Scope::Rollouts, "A", Action::Abort),
    (Scope::Alerts, "a", Action::Ack),
    (Scope::Alerts, "s", Action::Silence),
    (Scope::Alerts, "f", Action::CycleSeverity),
    (Scope::Alerts, "h", Action::ToggleSilenced),
    (Scope::History, "r", Action::Revert),
    (Scope::Confirm, "y", Action::Confirm),
    (Scope::Confirm, "enter", Action::Confirm),
    (Scope::Confirm, "n", Action::Cancel),
    (Scope::Confirm, "esc", Action::Cancel),
    (Scope::Input, "enter", Action::Submit),
    (Scope::Input, "esc", Action::Cancel),
    (Scope::Input, "tab", Action::Complete),
    (Scope::Input, "backspace", Action::DeleteChar),
];

/// The table of bindings.
#[derive(Clone, Debug)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Default for Keymap {
    fn default() -> Self {
        let bindings = DEFAULT
            .iter()
            .map(|&(scope, key, action)| Binding {
                scope,
                // The table above is checked by a test.
                key: Key::parse(key).unwrap_or(Key::new(KeyCode::Null, KeyModifiers::NONE)),
                action,
            })
            .collect();
        Keymap { bindings }
    }
}

impl Keymap {
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Makes `keys` the only keys of `action` in `scope` (what those keys
    /// did there before is replaced).
    pub fn rebind(&mut self, scope: Scope, action: Action, keys: &[Key]) {
        self.bindings
            .retain(|b| !(b.scope == scope && (b.action == action || keys.contains(&b.key))));
        for &key in keys {
            self.bindings.push(Binding { scope, key, action });
        }
    }

    /// Binds `key` to `action` in `scope`, replacing what the key did there.
    pub fn bind(&mut self, scope: Scope, key: Key, action: Action) {
        self.bindings
            .retain(|b| !(b.scope == scope && b.key == key));
        self.bindings.push(Binding { scope, key, action });
    }

    /// The action of `key` in `scope`, falling back to the global table for
    /// view scopes (dialogs and inputs have only their own keys).
    pub fn lookup(&self, scope: Scope, key: Key) -> Option<Action> {
        let own = self
            .bindings
            .iter()
            .find(|b| b.scope == scope && b.key == key)
            .map(|b| b.action);
        match scope {
            Scope::Confirm | Scope::Input | Scope::Global => own,
            _ => own.or_else(|| self.lookup(Scope::Global, key)),
        }
    }

    /// The keys that trigger `action` in `scope` (its own first, then the
    /// global ones not shadowed there).
    pub fn keys_for(&self, scope: Scope, action: Action) -> Vec<Key> {
        let mut out: Vec<Key> = self
            .bindings
            .iter()
            .filter(|b| b.scope == scope && b.action == action)
            .map(|b| b.key)
            .collect();
        if !matches!(scope, Scope::Confirm | Scope::Input | Scope::Global) {
            for b in self
                .bindings
                .iter()
                .filter(|b| b.scope == Scope::Global && b.action == action)
            {
                if self.lookup(scope, b.key) == Some(action) && !out.contains(&b.key) {
                    out.push(b.key);
                }
            }
        }
        out
    }

    /// The first key for `action` in `scope`, as text ("?" when unbound).
    pub fn key_label(&self, scope: Scope, action: Action) -> String {
        self.keys_for(scope, action)
            .first()
            .map_or_else(|| "?".to_string(), |k| k.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_binding_parses() {
        for (_, key, _) in DEFAULT {
            assert!(Key::parse(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn a_view_binding_wins_over_the_global_one_and_others_fall_through() {
        let mut km = Keymap::default();
        let a = Key::parse("a").unwrap();
        assert_eq!(km.lookup(Scope::Alerts, a), Some(Action::Ack));
        assert_eq!(km.lookup(Scope::Overview, a), None);
        let j = Key::parse("j").unwrap();
        assert_eq!(km.lookup(Scope::Alerts, j), Some(Action::Down));
        km.bind(Scope::Alerts, j, Action::Ack);
        assert_eq!(km.lookup(Scope::Alerts, j), Some(Action::Ack));
        assert_eq!(km.lookup(Scope::History, j), Some(Action::Down));
    }

    #[test]
    fn shifted_characters_match_their_event() {
        let ev = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&ev), Key::parse("G").unwrap());
        let ev = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(Key::from_event(&ev), Key::parse("ctrl-c").unwrap());
        assert!(Key::parse("hyper-x").is_err());
    }
}

//! The small trait every view implements: handle an action and say whether
//! it was consumed (and what should follow), list the actions valid now (the
//! hint bar and the `?` help are built from that list and the keymap, never
//! written twice), and draw — purely, from the state and a [`Ctx`].

use std::cell::RefCell;
use std::collections::HashMap;

use fleetdeck_store::diff::LayerEdit;
use fleetdeck_store::events::FleetEvent;

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::LayerRef;
use ratatui::Frame;
use ratatui::layout::Rect;

use crate::keymap::{Action, Scope};
use crate::seen::Seen;
use crate::series::Series;
use crate::source::{Intent, Snapshot};
use crate::table::ListState;
use crate::theme::Theme;

/// Where a view is in the fleet: one entry of the breadcrumb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Overview,
    Site(String),
    Node(String),
    /// The alerts, with one selected if given.
    Alerts(Option<String>),
    /// The change log, with one change selected if given.
    History(Option<String>),
    Peers,
    /// The config editor on one layer (fleet defaults, a site's or a node's
    /// overrides).
    Config(LayerRef),
    Rollouts,
    /// The commands, only those given when some are (a batch sent from
    /// marked rows).
    Commands(Option<Vec<String>>),
    /// The fleet's events (the fleet's, or one site's or node's).
    Events(LayerRef),
    /// Zones and their quorum.
    Zones,
}

impl Route {
    /// The breadcrumb label.
    pub fn label(&self) -> String {
        match self {
            Route::Overview => "fleet".into(),
            Route::Site(s) => s.clone(),
            Route::Node(n) => n.clone(),
            Route::Alerts(_) => "alerts".into(),
            Route::History(_) => "history".into(),
            Route::Peers => "peers".into(),
            Route::Config(l) => format!("config {}", crate::source::layer_label(l)),
            Route::Rollouts => "rollouts".into(),
            Route::Commands(None) => "commands".into(),
            Route::Commands(Some(ids)) if ids.len() == 1 => "command".into(),
            Route::Commands(Some(ids)) => format!("{} commands", ids.len()),
            Route::Events(LayerRef::Fleet) => "events".into(),
            Route::Events(LayerRef::Site(s)) => format!("events {s}"),
            Route::Events(LayerRef::Node(n)) => format!("events {n}"),
            Route::Zones => "zones".into(),
        }
    }

    /// Same view, whatever is selected in it.
    pub fn same_view(&self, other: &Route) -> bool {
        match (self, other) {
            (Route::Alerts(_), Route::Alerts(_))
            | (Route::History(_), Route::History(_))
            | (Route::Commands(_), Route::Commands(_))
            | (Route::Events(_), Route::Events(_)) => true,
            _ => self == other,
        }
    }
}

/// What drawing and handling read: the snapshot, the time, the theme, what
/// was fetched for the views (history, sparklines) and when each alert was
/// first seen.
pub struct Ctx<'a> {
    /// The fleet now, or at the past moment of as-of mode.
    pub snap: &'a Snapshot,
    /// The time ages count to: now, or the past moment's.
    pub now_ms: i64,
    /// In as-of mode, the past moment shown (every write is refused).
    pub as_of: Option<i64>,
    pub theme: &'a Theme,
    /// Writes are refused (`--read-only`, or as-of mode).
    pub read_only: bool,
    pub history: Option<&'a [crate::source::HistoryRow]>,
    /// The events fetched last, with the query they answer.
    pub events: Option<&'a Events>,
    /// What changes edited, by change id (fetched for the history view).
    pub edits: &'a HashMap<String, Result<Vec<LayerEdit>, String>>,
    pub series: &'a Series,
    pub seen: &'a Seen,
    /// Where tables were drawn, for mouse clicks (filled while drawing).
    pub hits: &'a Hits,
}

/// One table as drawn: the screen rows of its body, the pane it is in and
/// the row index of its first visible row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub rows: Rect,
    pub pane: usize,
    pub first: usize,
    pub len: usize,
}

/// The tables of the last frame. Drawing records where it put them (the
/// only thing drawing writes); a click reads them.
#[derive(Debug, Default)]
pub struct Hits(RefCell<Vec<Hit>>);

impl Hits {
    pub fn clear(&self) {
        self.0.borrow_mut().clear();
    }
    pub fn push(&self, hit: Hit) {
        self.0.borrow_mut().push(hit);
    }
    /// The table row under a screen cell: (pane, row index).
    pub fn at(&self, x: u16, y: u16) -> Option<(usize, usize)> {
        self.0.borrow().iter().find_map(|h| {
            let inside = x >= h.rows.x
                && x < h.rows.x + h.rows.width
                && y >= h.rows.y
                && y < h.rows.y + h.rows.height;
            let row = h.first + usize::from(y.saturating_sub(h.rows.y));
            (inside && row < h.len).then_some((h.pane, row))
        })
    }
    /// How many rows the table of a pane has (none drawn with rows: None).
    pub fn len_of(&self, pane: usize) -> Option<usize> {
        self.0
            .borrow()
            .iter()
            .find(|h| h.pane == pane)
            .map(|h| h.len)
    }
    /// The pane of the table whose box holds a screen cell (for the scroll
    /// wheel: anywhere over a table, rows or not).
    pub fn pane_at(&self, x: u16, y: u16) -> Option<usize> {
        self.0.borrow().iter().find_map(|h| {
            let inside = x >= h.rows.x
                && x < h.rows.x + h.rows.width
                && y + 1 >= h.rows.y
                && y < h.rows.y + h.rows.height + 1;
            inside.then_some(h.pane)
        })
    }
}

/// A question that needs typed text before it becomes an intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// How long to silence alerts for (one, or every marked one).
    Silence { alert_ids: Vec<String> },
    /// Which allowlisted action to run on sites or nodes.
    RunAction { targets: Vec<LayerRef> },
    /// Which of a node's `tunnel.allow` targets to open a tunnel to.
    Tunnel { node: fleetdeck_store::NodeId },
    /// A key to add to a config layer.
    ConfigKey { layer: LayerRef },
    /// A value for a config key (validated as it is typed).
    ConfigValue {
        layer: LayerRef,
        key: ConfigPath,
        current: String,
    },
    /// The message of a config commit.
    CommitMessage { suggested: String },
}

impl Prompt {
    /// The text the input starts with.
    pub fn initial(&self) -> String {
        match self {
            Prompt::Silence { .. } => "1h".into(),
            Prompt::RunAction { .. } | Prompt::Tunnel { .. } => String::new(),
            Prompt::ConfigKey { .. } => String::new(),
            Prompt::ConfigValue { current, .. } => current.clone(),
            Prompt::CommitMessage { suggested } => suggested.clone(),
        }
    }
}

/// What follows an action a view consumed.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Open(Route),
    Apply(Intent),
    /// Several intents at once (an ack of every marked alert): each is
    /// sent, and the status bar says how many went through.
    ApplyAll(Vec<Intent>),
    /// Destructive intents: asked first; once sent, `then` opens (the
    /// commands view on commands just sent).
    Confirm {
        question: String,
        intents: Vec<Intent>,
        then: Option<Route>,
    },
    Prompt(Prompt),
    /// A small form (the rollout form).
    Form(crate::form::Form),
    Message(String),
}

/// The answer of [`Component::handle`].
#[derive(Clone, Debug, PartialEq)]
pub enum Handled {
    /// Not for this component: the app handles it (back, quit, palette, …).
    Ignored,
    Consumed,
    Then(Effect),
}

pub trait Component {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled;
    /// The actions valid now, most useful first.
    fn commands(&self, ctx: &Ctx) -> Vec<Action>;
    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx);
}

/// What a view needs fetched beyond the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    History,
    Series(String),
    /// The fleet's events (of a site or node) over the last `span_ms`
    /// before now, or before the moment of as-of mode.
    Events {
        scope: LayerRef,
        span_ms: i64,
    },
    /// What a change edited (kept once fetched: a change never changes).
    Edits(String),
}

/// Events as fetched: for which scope, over which window, and the rows
/// (newest first) or why there are none.
#[derive(Clone, Debug)]
pub struct Events {
    pub scope: LayerRef,
    pub from_ms: i64,
    pub to_ms: i64,
    pub rows: Result<Vec<FleetEvent>, String>,
}

/// A full-screen view: a component with a place in the breadcrumb.
pub trait View: Component + Send {
    fn route(&self) -> Route;
    /// The keymap scope of this view.
    fn scope(&self) -> Scope;
    /// The table `/` filters (the focused one).
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        None
    }
    /// What this view draws beyond the snapshot (fetched when it opens;
    /// edits also when the selection moves to a change not fetched yet).
    fn needs(&self) -> Vec<Need> {
        Vec::new()
    }
    /// The text typed into a prompt this view asked for: what follows, or
    /// why the text is refused (the prompt then stays open).
    fn submit(&mut self, _prompt: &Prompt, _text: &str, _ctx: &Ctx) -> Result<Handled, String> {
        Ok(Handled::Ignored)
    }
    /// The operator closed a prompt this view asked for without answering.
    fn prompt_cancelled(&mut self, _prompt: &Prompt) {}
    /// The source's answer to an intent (sent from any view).
    fn applied(&mut self, _intent: &Intent, _ok: bool) {}
    /// The selection of a pane's table (mouse clicks and the wheel).
    fn list_mut(&mut self, pane: usize) -> Option<&mut ListState> {
        if pane == 0 { self.filter_mut() } else { None }
    }
    /// A click on row `row` of a pane's table, as drawn.
    fn select_row(&mut self, pane: usize, row: usize, _ctx: &Ctx) {
        if let Some(l) = self.list_mut(pane) {
            l.selected = row;
        }
    }
    /// After the data or the view changed (a snapshot, the clock, an
    /// action): puts each table's selection back on the row it was on (by
    /// its id), and says so when that row is gone (the selection is then on
    /// the nearest row).
    fn follow(&mut self, _ctx: &Ctx) -> Option<String> {
        None
    }
    /// What the `?` help says of this view beyond its keys.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Moves the focus to a pane.
    fn focus(&mut self, _pane: usize) {}
    /// The focused pane.
    fn focused(&self) -> usize {
        0
    }
}

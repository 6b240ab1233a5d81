//! The small trait every view implements: handle an action and say whether
//! it was consumed (and what should follow), list the actions valid now (the
//! hint bar and the `?` help are built from that list and the keymap, never
//! written twice), and draw — purely, from the state and a [`Ctx`].

use std::collections::HashMap;

use fleetdeck_store::document::HistoryEntry;
use fleetdeck_store::health::Sample;
use ratatui::Frame;
use ratatui::layout::Rect;

use crate::keymap::{Action, Scope};
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
    History,
    Peers,
}

impl Route {
    /// The breadcrumb label.
    pub fn label(&self) -> String {
        match self {
            Route::Overview => "fleet".into(),
            Route::Site(s) => s.clone(),
            Route::Node(n) => n.clone(),
            Route::Alerts(_) => "alerts".into(),
            Route::History => "history".into(),
            Route::Peers => "peers".into(),
        }
    }

    /// Same view, whatever is selected in it.
    pub fn same_view(&self, other: &Route) -> bool {
        match (self, other) {
            (Route::Alerts(_), Route::Alerts(_)) => true,
            _ => self == other,
        }
    }
}

/// What drawing and handling read: the snapshot, the time, the theme and
/// what was fetched for the views (history, sparklines).
pub struct Ctx<'a> {
    pub snap: &'a Snapshot,
    pub now_ms: i64,
    pub theme: &'a Theme,
    pub read_only: bool,
    pub history: Option<&'a [HistoryEntry]>,
    pub series: &'a HashMap<String, Vec<Sample>>,
}

/// A question that needs typed text before it becomes an intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// How long to silence an alert for.
    Silence { alert_id: String },
}

/// What follows an action a view consumed.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Open(Route),
    Apply(Intent),
    /// A destructive intent: asked first.
    Confirm {
        question: String,
        intent: Intent,
    },
    Prompt(Prompt),
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
    fn needs(&self) -> Option<Need> {
        None
    }
}

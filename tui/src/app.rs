//! The console's state and its update: keys become actions (through the
//! keymap), actions update the views or open dialogs, intents and fetches
//! become [`Request`]s for the source, and the source's [`Response`]s come
//! back in. Nothing here does I/O or reads the clock: the loop in
//! [`crate::run()`] (or a test) moves requests and responses and passes the
//! time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crossterm::event::{Event, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind};
use fleetdeck_store::at::At;
use fleetdeck_store::diff::LayerEdit;
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::events::{Filter as EventFilter, FleetEvent};
use fleetdeck_store::health::Sample;

mod draw;

use crate::bulk;
pub use crate::component::Route;
use crate::component::{Ctx, Effect, Events, Handled, Hits, Need, Prompt, View};
use crate::form::Form;
use crate::keymap::{Action, Key, Keymap, Scope};
use crate::palette::{self, Command};
use crate::past::{self, Past};
use crate::seen::Seen;
use crate::series::Series;
use crate::source::{HistoryRow, Intent, Snapshot, Source};
use crate::text;
use crate::theme::Theme;
use crate::views;

/// How old a snapshot may grow while nothing changes before the tick asks
/// for a new one (the time-dependent alerts move on with it).
pub const REFRESH_MS: i64 = 5_000;

/// A snapshot this old means the source is not answering: the status bar
/// says so.
pub const SNAPSHOT_OLD_MS: i64 = 2 * REFRESH_MS;

/// How often the history view takes receipts again while heartbeats
/// arrive (each take walks the newest changes against every node).
pub const RECEIPTS_EVERY_MS: i64 = 3_000;

/// How the console starts.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Refuse every intent before it reaches the source.
    pub read_only: bool,
    pub theme: Theme,
    pub keymap: Keymap,
    /// Take mouse events (clicks, the wheel) from the terminal.
    pub mouse: bool,
    /// The config dir, whose `themes/` `:theme` looks in first.
    pub themes_dir: Option<std::path::PathBuf>,
    /// The names of the user's themes there (for completion).
    pub user_themes: Vec<String>,
}

/// What the app asks of the source.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Snapshot,
    Series(String),
    History,
    Apply(Intent),
    /// The fleet at a past moment (`:at TIME`).
    Moment(At),
    /// The fleet at the nearest event before `from_ms` (after it when
    /// `later`, up to `now_ms`).
    Step {
        from_ms: i64,
        later: bool,
        now_ms: i64,
    },
    /// The events of a scope (fleet, site, node) in `[from_ms, to_ms]`.
    Events {
        scope: LayerRef,
        from_ms: i64,
        to_ms: i64,
    },
    /// What a change edited.
    Edits(String),
    /// A tunnel through a node to one of its allowed targets.
    Tunnel {
        node: fleetdeck_store::NodeId,
        target: std::net::SocketAddrV4,
    },
}

/// What the source answered.
#[derive(Clone, Debug)]
pub enum Response {
    Snapshot(Box<Snapshot>),
    Series(String, Vec<Sample>),
    History(Vec<HistoryRow>),
    Applied(Intent, Result<String, String>),
    /// A past moment (asked with `:at`, or a step to `event`), or why not.
    Moment {
        event: Option<FleetEvent>,
        result: Result<Box<Snapshot>, String>,
    },
    Events(Box<Events>),
    Edits(String, Result<Vec<LayerEdit>, String>),
    /// A tunnel opened (where to connect), or why not.
    Tunnel {
        node: fleetdeck_store::NodeId,
        target: std::net::SocketAddrV4,
        result: Result<std::net::SocketAddr, String>,
    },
    /// The source failed (a panic, a dead thread): one sentence.
    Trouble(String),
}

/// Answers one request from `source`: what the console's source thread
/// and [`App::pump`] both do.
pub fn answer(source: &mut dyn Source, request: Request) -> Response {
    match request {
        Request::Snapshot => Response::Snapshot(Box::new(source.snapshot())),
        Request::Series(n) => {
            let s = source.series(&n);
            Response::Series(n, s)
        }
        Request::History => Response::History(source.history()),
        Request::Apply(i) => {
            let result = source.apply(i.clone());
            Response::Applied(i, result)
        }
        Request::Moment(at) => Response::Moment {
            event: None,
            result: source.moment_at(&at).map(Box::new),
        },
        Request::Step {
            from_ms,
            later,
            now_ms,
        } => {
            let (event, result) = past::step(source, from_ms, later, now_ms);
            Response::Moment {
                event,
                result: result.map(Box::new),
            }
        }
        Request::Events {
            scope,
            from_ms,
            to_ms,
        } => {
            let filter = EventFilter {
                site: match &scope {
                    LayerRef::Site(s) => Some(s.to_string()),
                    _ => None,
                },
                node: match &scope {
                    LayerRef::Node(n) => Some(n.to_string()),
                    _ => None,
                },
                kinds: Vec::new(),
                // Folded or shown by the views themselves.
                addresses: true,
            };
            let rows = source.events(from_ms, to_ms, &filter);
            Response::Events(Box::new(Events {
                scope,
                from_ms,
                to_ms,
                rows,
            }))
        }
        Request::Edits(change) => {
            let edits = source.change_edits(&change);
            Response::Edits(change, edits)
        }
        Request::Tunnel { node, target } => {
            let result = source.open_tunnel(&node, target);
            Response::Tunnel {
                node,
                target,
                result,
            }
        }
    }
}

/// The targets a node's effective `tunnel.allow` lists, as `snap` holds
/// it (none when unset or not readable).
pub fn tunnel_targets(
    snap: &Snapshot,
    node: &fleetdeck_store::NodeId,
) -> Vec<std::net::SocketAddrV4> {
    snap.fleet
        .effective_node(node)
        .ok()
        .and_then(|e| fleetdeck_store::overlay::tunnel_targets(&e).ok())
        .unwrap_or_default()
}

/// A tunnel target as typed: a port (on the node itself) or `IP:PORT`.
fn parse_tunnel_target(text: &str) -> Result<std::net::SocketAddrV4, String> {
    let t = text.trim();
    if let Ok(port) = t.parse::<u16>()
        && port != 0
    {
        return Ok(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::LOCALHOST,
            port,
        ));
    }
    t.parse()
        .map_err(|_| format!("'{t}' is not a port or IPv4:PORT"))
}

/// A line of text being typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub text: String,
    /// The text is selected (a filter reopened): typing replaces it,
    /// backspace edits it.
    pub replace: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Overlay {
    Help,
    Palette(Input),
    /// Typing a filter for the top view's focused table (applied live).
    Filter(Input),
    Prompt(Prompt, Input),
    Form(Form),
    Confirm {
        question: String,
        intents: Vec<Intent>,
        then: Option<Route>,
    },
}

/// Intents sent together (a bulk action), counted as they come back.
#[derive(Clone, Debug, Default)]
struct Batch {
    total: usize,
    sent: usize,
    done: usize,
    /// What each failure said.
    failed: Vec<String>,
}

/// The last thing said to the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
    /// When it was said: the status bar shows it for a while (10 s, errors
    /// 30 s).
    pub at_ms: i64,
}

impl Message {
    pub fn visible(&self, now_ms: i64) -> bool {
        now_ms - self.at_ms < if self.error { 30_000 } else { 10_000 }
    }
}

pub struct App {
    options: Options,
    snap: Arc<Snapshot>,
    /// When the app last received a snapshot (its own clock).
    snap_received_ms: i64,
    /// When history (with its receipts) was last asked for.
    history_asked_ms: i64,
    now_ms: i64,
    stack: Vec<Box<dyn View>>,
    overlay: Option<Overlay>,
    message: Option<Message>,
    /// Trouble reported by the source machinery itself (not in a snapshot).
    trouble: Option<String>,
    history: Option<Vec<HistoryRow>>,
    /// The events fetched last (for the events view).
    events: Option<Events>,
    /// When events were last asked for.
    events_asked_ms: i64,
    /// What changes edited, by change id, and those asked for.
    edits: HashMap<String, Result<Vec<LayerEdit>, String>>,
    edits_asked: HashSet<String>,
    /// As-of mode: the past moment every view shows.
    past: Option<Past>,
    /// A moment asked for and not yet answered.
    past_pending: bool,
    /// Sparkline data: what the console saw arrive, and per minute.
    series: Series,
    /// When each alert was first seen open (its AGE).
    seen: Seen,
    outbox: Vec<Request>,
    /// Requests sent and not yet answered, to ask for a snapshot at most
    /// once at a time.
    snapshot_pending: bool,
    applying: usize,
    /// Several intents sent at once, counted as they come back.
    batch: Option<Batch>,
    quit: bool,
    dirty: bool,
    /// Where the last frame put its tables and breadcrumb, for the mouse.
    hits: Hits,
    crumbs: std::cell::RefCell<Vec<(u16, u16)>>,
}

impl App {
    pub fn new(snapshot: Snapshot, now_ms: i64, options: Options) -> App {
        let mut series = Series::default();
        series.observe(&snapshot.health);
        let mut seen = Seen::default();
        seen.update(&snapshot);
        let mut app = App {
            options,
            snap: Arc::new(snapshot),
            snap_received_ms: now_ms,
            history_asked_ms: 0,
            now_ms,
            stack: vec![views::open(&Route::Overview)],
            overlay: None,
            message: None,
            trouble: None,
            history: None,
            events: None,
            events_asked_ms: 0,
            edits: HashMap::new(),
            edits_asked: HashSet::new(),
            past: None,
            past_pending: false,
            series,
            seen,
            outbox: Vec::new(),
            snapshot_pending: false,
            applying: 0,
            batch: None,
            quit: false,
            dirty: true,
            hits: Hits::default(),
            crumbs: Default::default(),
        };
        app.settle();
        app
    }

    // ---- reading ----------------------------------------------------------

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Whether something changed since the last draw.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    pub fn route(&self) -> Route {
        self.top().route()
    }

    /// The breadcrumb, from the overview to the current view.
    pub fn breadcrumb(&self) -> Vec<Route> {
        self.stack.iter().map(|v| v.route()).collect()
    }

    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    pub fn theme(&self) -> &Theme {
        &self.options.theme
    }

    pub fn read_only(&self) -> bool {
        self.options.read_only
    }

    /// Whether a dialog, an input or the help is open.
    pub fn has_overlay(&self) -> bool {
        self.overlay.is_some()
    }

    fn top(&self) -> &dyn View {
        // The stack always holds the overview at the bottom.
        self.stack
            .last()
            .map(|v| v.as_ref())
            .expect("the overview is always at the bottom of the stack")
    }

    fn scope(&self) -> Scope {
        match &self.overlay {
            Some(Overlay::Confirm { .. }) => Scope::Confirm,
            Some(
                Overlay::Palette(_) | Overlay::Filter(_) | Overlay::Prompt(..) | Overlay::Form(_),
            ) => Scope::Input,
            _ => self.top().scope(),
        }
    }

    // ---- the loop's side --------------------------------------------------

    /// Requests for the source, in order; the loop sends them.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.outbox)
    }

    /// Marks the frame drawn.
    pub fn drawn(&mut self) {
        self.dirty = false;
    }

    /// The once-a-second tick: ages on screen move; a snapshot older than
    /// [`REFRESH_MS`] is renewed (alerts depend on the time too). A change in
    /// the source brings a new snapshot at once without waiting for this.
    pub fn tick(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        self.dirty = true;
        // A silence that ends brings its alert back into the tables.
        self.settle();
        if now_ms - self.snap_received_ms >= REFRESH_MS {
            self.request_snapshot();
        }
    }

    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    pub fn request_snapshot(&mut self) {
        if !self.snapshot_pending {
            self.snapshot_pending = true;
            self.outbox.push(Request::Snapshot);
        }
    }

    /// A terminal event.
    pub fn on_event(&mut self, ev: &Event) {
        match ev {
            Event::Key(k) if k.kind != KeyEventKind::Release => self.on_key(*k),
            Event::Resize(..) | Event::FocusGained => self.dirty = true,
            Event::Mouse(m) => self.on_mouse(m.kind, m.column, m.row),
            _ => {}
        }
    }

    /// A mouse event at a screen cell: a click selects a table row (a click
    /// on the selected row opens it) or a breadcrumb; the wheel scrolls the
    /// table under the pointer.
    pub fn on_mouse(&mut self, kind: MouseEventKind, x: u16, y: u16) {
        match kind {
            MouseEventKind::Down(MouseButton::Left) => {
                self.dirty = true;
                if matches!(self.overlay, Some(Overlay::Help)) {
                    self.overlay = None;
                    return;
                }
                if self.overlay.is_some() {
                    return;
                }
                if y == 0 {
                    let hit = self
                        .crumbs
                        .borrow()
                        .iter()
                        .position(|&(a, b)| x >= a && x < b);
                    if let Some(i) = hit
                        && i + 1 < self.stack.len()
                    {
                        self.stack.truncate(i + 1);
                        self.fetch_needs();
                    }
                    return;
                }
                let Some((pane, row)) = self.hits.at(x, y) else {
                    return;
                };
                let Some(view) = self.stack.last_mut() else {
                    return;
                };
                let was_focused = view.focused() == pane;
                let Some(selected) = view.list_mut(pane).map(|l| l.selected) else {
                    return;
                };
                if was_focused && selected == row {
                    self.act(Action::Open);
                } else {
                    self.message = None;
                    self.with_top(|v, ctx| {
                        v.select_row(pane, row, ctx);
                        v.focus(pane);
                    });
                    self.settle();
                }
            }
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                if self.overlay.is_some() {
                    return;
                }
                if let Some(pane) = self.hits.pane_at(x, y)
                    && let Some(view) = self.stack.last_mut()
                {
                    view.focus(pane);
                }
                self.act(if kind == MouseEventKind::ScrollDown {
                    Action::Down
                } else {
                    Action::Up
                });
            }
            _ => {}
        }
    }

    /// An answer from the source.
    pub fn on_response(&mut self, r: Response) {
        self.dirty = true;
        match r {
            Response::Snapshot(s) => {
                self.snapshot_pending = false;
                let doc_changed = !Arc::ptr_eq(&s.fleet, &self.snap.fleet);
                let health_changed = !Arc::ptr_eq(&s.health, &self.snap.health);
                if health_changed {
                    self.series.observe(&s.health);
                }
                self.seen.update(&s);
                self.snap = Arc::new(*s);
                self.snap_received_ms = self.now_ms;
                self.trouble = None;
                self.settle();
                let needs = self.top().needs();
                // Receipts move with heartbeats: while the history view is
                // up, take them again at most every few seconds.
                let receipts_due = health_changed
                    && needs.contains(&Need::History)
                    && self.now_ms.saturating_sub(self.history_asked_ms) >= RECEIPTS_EVERY_MS;
                if (doc_changed && self.history.is_some()) || receipts_due {
                    self.fetch(Need::History);
                }
                for need in needs {
                    match need {
                        Need::Series(n) if health_changed => self.fetch(Need::Series(n)),
                        // New events come with changes and heartbeats; a
                        // past moment's do not change.
                        Need::Events { .. }
                            if (doc_changed || health_changed)
                                && self.past.is_none()
                                && self.now_ms.saturating_sub(self.events_asked_ms)
                                    >= RECEIPTS_EVERY_MS =>
                        {
                            self.fetch(need)
                        }
                        _ => {}
                    }
                }
            }
            Response::Series(node, samples) => {
                self.series.set_minutes(&node, samples);
            }
            Response::History(h) => {
                self.history = Some(h);
                self.settle();
            }
            Response::Applied(intent, result) => {
                self.applying = self.applying.saturating_sub(1);
                for v in &mut self.stack {
                    v.applied(&intent, result.is_ok());
                }
                let said = match &result {
                    Ok(m) => Ok(self.applied_words(&intent, m.clone())),
                    Err(e) => Err(format!("{} failed: {e}", intent.describe())),
                };
                match self.batch.as_mut() {
                    Some(b) => {
                        b.done += 1;
                        if let Err(e) = &said {
                            b.failed.push(e.clone());
                        }
                        if b.done >= b.sent {
                            let b = self.batch.take().unwrap_or_default();
                            let ok = b.done - b.failed.len();
                            let line = format!("{ok} of {} done ({})", b.total, intent.name());
                            match b.failed.first() {
                                Some(first) => self.complain(format!("{line}; {first}")),
                                None => self.say(line),
                            }
                        }
                    }
                    None => match said {
                        Ok(m) => self.say(m),
                        Err(e) => self.complain(e),
                    },
                }
                self.request_snapshot();
                if matches!(intent, Intent::Revert { .. }) || self.history.is_some() {
                    self.fetch(Need::History);
                }
            }
            Response::Moment { event, result } => {
                self.past_pending = false;
                match result {
                    Ok(snap) => {
                        let past = Past::new(*snap, event);
                        let said = match &past.event {
                            Some(e) => format!(
                                "as of {} UTC: {} {} — {}",
                                text::utc_seconds(past.at_ms()),
                                e.kind.replace('_', " "),
                                e.node.as_deref().or(e.site.as_deref()).unwrap_or("fleet"),
                                e.text
                            ),
                            None => format!(
                                "as of {} UTC: the fleet as this replica saw it then",
                                text::utc_seconds(past.at_ms())
                            ),
                        };
                        self.past = Some(past);
                        self.refetch_events();
                        self.settle();
                        self.say(said);
                    }
                    Err(e) => self.complain(e),
                }
            }
            Response::Events(e) => {
                self.events = Some(*e);
                self.settle();
            }
            Response::Edits(change, edits) => {
                self.edits_asked.remove(&change);
                self.edits.insert(change, edits);
            }
            Response::Tunnel {
                node,
                target,
                result,
            } => {
                match result {
                    Ok(local) => self.say(format!(
                        "tunnel open: connect to {local} to reach {target} through {node}"
                    )),
                    Err(e) => self.complain(format!("no tunnel to {target} through {node}: {e}")),
                }
                // The snapshot lists it.
                self.outbox.push(Request::Snapshot);
            }
            Response::Trouble(t) => {
                self.snapshot_pending = false;
                self.trouble = Some(t);
            }
        }
    }

    fn fetch(&mut self, need: Need) {
        let r = match need {
            Need::History => {
                self.history_asked_ms = self.now_ms;
                Request::History
            }
            Need::Series(n) => Request::Series(n),
            Need::Events { scope, span_ms } => {
                self.events_asked_ms = self.now_ms;
                let to_ms = self.past.as_ref().map_or(self.now_ms, Past::at_ms);
                Request::Events {
                    scope,
                    from_ms: to_ms.saturating_sub(span_ms),
                    to_ms,
                }
            }
            Need::Edits(change) => {
                if self.edits.contains_key(&change) || !self.edits_asked.insert(change.clone()) {
                    return;
                }
                Request::Edits(change)
            }
        };
        if !self.outbox.contains(&r) {
            self.outbox.push(r);
        }
    }

    /// The top view's events again (the moment shown moved).
    fn refetch_events(&mut self) {
        for need in self.top().needs() {
            if matches!(need, Need::Events { .. }) {
                self.fetch(need);
            }
        }
    }

    /// Serves every pending request from `source` at once, in this thread:
    /// for tests and simple drivers (the console's loop uses a thread).
    pub fn pump(&mut self, source: &mut dyn Source) {
        for _ in 0..8 {
            let reqs = self.take_requests();
            if reqs.is_empty() {
                return;
            }
            for r in reqs {
                let resp = answer(source, r);
                self.on_response(resp);
            }
        }
    }

    /// What the status bar says of an intent carried out: the source's
    /// words, and for an ack or a silence how long it holds.
    fn applied_words(&self, intent: &Intent, said: String) -> String {
        match intent {
            Intent::Silence { alert_id, for_ms } => format!(
                "silenced {alert_id} until {} for this alert, also if it fires again",
                text::clock(self.now_ms, self.now_ms.saturating_add(*for_ms))
            ),
            Intent::Ack { alert_id } => {
                format!("acked {alert_id}; the ack holds until the alert resolves")
            }
            _ => said,
        }
    }

    /// Puts the top view's selections back on their rows (by id) after the
    /// data, the time or the view changed, and says so when a selected row
    /// is gone.
    fn settle(&mut self) {
        if let Some(Some(said)) = self.with_top(|v, ctx| v.follow(ctx)) {
            self.say(said);
        }
        // What the selection shows and was not fetched yet (a change's
        // edits: each fetched once).
        for need in self.top().needs() {
            if let Need::Edits(_) = need {
                self.fetch(need);
            }
        }
    }

    // ---- update -----------------------------------------------------------

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
            at_ms: self.now_ms,
        });
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
            at_ms: self.now_ms,
        });
    }

    pub fn on_key(&mut self, ev: KeyEvent) {
        self.dirty = true;
        let key = Key::from_event(&ev);
        // Ctrl-C quits from anywhere, dialogs included, whatever the keymap
        // file says (a keymap cannot lock the operator in); so does any
        // other ctrl-key bound to quit.
        let ctrl_c = key.code == crossterm::event::KeyCode::Char('c')
            && key.mods.contains(KeyModifiers::CONTROL);
        if ctrl_c
            || (self.options.keymap.lookup(Scope::Global, key) == Some(Action::Quit)
                && key.mods.contains(KeyModifiers::CONTROL))
        {
            self.quit = true;
            return;
        }
        match self.overlay.take() {
            None => self.on_view_key(key),
            Some(Overlay::Help) => {
                // Any key closes the help; it does nothing else.
            }
            Some(Overlay::Confirm {
                question,
                intents,
                then,
            }) => match self.options.keymap.lookup(Scope::Confirm, key) {
                Some(Action::Confirm) => {
                    self.apply_all(intents);
                    if let Some(route) = then {
                        self.open(route);
                    }
                }
                Some(Action::Cancel) => self.say(match intents.as_slice() {
                    [one] => format!("{} cancelled", one.describe()),
                    many => format!("{} actions cancelled", many.len()),
                }),
                _ => {
                    self.overlay = Some(Overlay::Confirm {
                        question,
                        intents,
                        then,
                    })
                }
            },
            Some(Overlay::Palette(input)) => self.on_palette_key(key, input),
            Some(Overlay::Filter(input)) => self.on_filter_key(key, input),
            Some(Overlay::Prompt(p, input)) => self.on_prompt_key(key, p, input),
            Some(Overlay::Form(form)) => self.on_form_key(key, form),
        }
    }

    /// A key in a form: Tab to the next field, Enter checks it all and asks
    /// to confirm (or names the wrong field and stays), Esc drops it.
    fn on_form_key(&mut self, key: Key, mut form: Form) {
        match self.options.keymap.lookup(Scope::Input, key) {
            Some(Action::Cancel) => self.say("cancelled"),
            Some(Action::Complete) => {
                form.next();
                self.overlay = Some(Overlay::Form(form));
            }
            Some(Action::DeleteChar) => {
                if let Some(t) = form.focused_mut() {
                    t.pop();
                }
                self.overlay = Some(Overlay::Form(form));
            }
            Some(Action::Submit) => match form.submit() {
                Ok((question, intent)) => self.effect(Effect::Confirm {
                    question,
                    intents: vec![intent],
                    then: Some(Route::Rollouts),
                }),
                Err((field, e)) => {
                    form.focus = field;
                    self.complain(e);
                    self.overlay = Some(Overlay::Form(form));
                }
            },
            _ => {
                if let Some(t) = form.focused_mut() {
                    let mut input = Input {
                        text: std::mem::take(t),
                        replace: false,
                    };
                    type_into(&mut input, key);
                    *t = input.text;
                }
                self.overlay = Some(Overlay::Form(form));
            }
        }
    }

    /// What the views read when they draw or handle an action.
    fn ctx(&self) -> Ctx<'_> {
        let past = self.past.as_ref();
        Ctx {
            snap: past.map_or(&self.snap, |p| &p.snap),
            now_ms: past.map_or(self.now_ms, Past::at_ms),
            as_of: past.map(Past::at_ms),
            theme: &self.options.theme,
            read_only: self.options.read_only || past.is_some(),
            history: self.history.as_deref(),
            events: self.events.as_ref(),
            edits: &self.edits,
            series: past.map_or(&self.series, |p| &p.series),
            seen: past.map_or(&self.seen, |p| &p.seen),
            hits: &self.hits,
        }
    }

    /// The fleet the views show: now, or the past moment of as-of mode.
    fn shown(&self) -> &Snapshot {
        self.past.as_ref().map_or(&self.snap, |p| &p.snap)
    }

    /// Runs `f` on the top view, which may change, with the views' context.
    /// The stack is set aside meanwhile: the context borrows the rest of the
    /// app, and no view reads the stack.
    fn with_top<R>(&mut self, f: impl FnOnce(&mut dyn View, &Ctx) -> R) -> Option<R> {
        let mut stack = std::mem::take(&mut self.stack);
        let out = stack.last_mut().map(|v| f(v.as_mut(), &self.ctx()));
        self.stack = stack;
        out
    }

    fn on_view_key(&mut self, key: Key) {
        let scope = self.top().scope();
        let Some(action) = self.options.keymap.lookup(scope, key) else {
            return;
        };
        self.act(action);
    }

    /// Runs an action as if its key was pressed (for drivers and tests).
    pub fn act(&mut self, action: Action) {
        self.dirty = true;
        // What was said before is done with once the next action runs (a
        // refused one says why instead).
        self.message = None;
        if action.writes() && self.options.read_only {
            self.complain(format!(
                "read-only: {} is not possible (the console was started with --read-only)",
                action.label()
            ));
            return;
        }
        if action.writes() && self.past.is_some() {
            self.complain(as_of_refusal(action.label()));
            return;
        }
        if action.writes()
            && let Some(why) = self.snap.writes_nothing()
        {
            self.complain(format!("{} is not possible: {why}", action.label()));
            return;
        }
        let handled = self
            .with_top(|v, ctx| v.handle(action, ctx))
            .unwrap_or(Handled::Ignored);
        match handled {
            Handled::Consumed => {}
            Handled::Then(effect) => self.effect(effect),
            Handled::Ignored => self.app_action(action),
        }
        self.settle();
    }

    fn app_action(&mut self, action: Action) {
        match action {
            Action::Quit => self.quit = true,
            Action::Back if self.past.is_some() => self.back_to_now(),
            Action::EarlierEvent | Action::LaterEvent => self.step(action == Action::LaterEvent),
            Action::GoEvents => self.jump(Route::Events(LayerRef::Fleet)),
            Action::GoZones => self.jump(Route::Zones),
            Action::Back => {
                if self.stack.len() > 1 {
                    self.stack.pop();
                    self.fetch_needs();
                    self.settle();
                } else {
                    self.say("this is the overview; q quits");
                }
            }
            Action::Help => self.overlay = Some(Overlay::Help),
            Action::Palette => self.overlay = Some(Overlay::Palette(Input::default())),
            Action::Filter => {
                let current = self
                    .stack
                    .last_mut()
                    .and_then(|v| v.filter_mut())
                    .map(|l| l.filter.clone());
                match current {
                    // Reopened on a filter: its text, selected (typing
                    // replaces it, backspace edits it).
                    Some(text) => {
                        let replace = !text.is_empty();
                        self.overlay = Some(Overlay::Filter(Input { text, replace }))
                    }
                    None => self.say("nothing to filter here"),
                }
            }
            Action::Sort | Action::ReverseSort => self.say("nothing to sort here"),
            Action::GoOverview => self.jump(Route::Overview),
            Action::GoAlerts => self.jump(Route::Alerts(None)),
            Action::GoHistory => self.jump(Route::History(None)),
            Action::GoPeers => self.jump(Route::Peers),
            Action::GoRollouts => self.jump(Route::Rollouts),
            Action::GoCommands => self.jump(Route::Commands(None)),
            Action::EditConfig => self.open(Route::Config(LayerRef::Fleet)),
            _ => {}
        }
    }

    fn effect(&mut self, e: Effect) {
        match e {
            Effect::Open(route) => self.open(route),
            Effect::Apply(intent) => self.apply(intent),
            Effect::ApplyAll(intents) => self.apply_all(intents),
            Effect::Confirm {
                question,
                intents,
                then,
            } => {
                let what = intents.first().map(Intent::describe).unwrap_or_default();
                if self.options.read_only {
                    self.complain(format!(
                        "read-only: {what} is not possible (the console was started with --read-only)"
                    ));
                } else if self.past.is_some() {
                    self.complain(as_of_refusal(&what));
                } else {
                    self.overlay = Some(Overlay::Confirm {
                        question,
                        intents,
                        then,
                    });
                }
            }
            Effect::Prompt(p) => {
                let text = p.initial();
                self.overlay = Some(Overlay::Prompt(
                    p,
                    Input {
                        text,
                        replace: false,
                    },
                ));
            }
            Effect::Form(form) => {
                if self.options.read_only {
                    self.complain(
                        "read-only: rollout start is not possible (the console was started with --read-only)",
                    );
                } else {
                    self.overlay = Some(Overlay::Form(form));
                }
            }
            Effect::Message(m) => self.say(m),
        }
    }

    /// Opens a view: back to it if it is already in the breadcrumb, the
    /// overview alone for the overview, else on top.
    pub fn open(&mut self, route: Route) {
        self.message = None;
        if let Some(i) = self.stack.iter().position(|v| v.route().same_view(&route)) {
            self.stack.truncate(i + 1);
            if route != self.top().route() {
                // Same view, different selection (alerts): a fresh one.
                self.stack.pop();
                self.stack.push(views::open(&route));
            }
        } else {
            self.stack.push(views::open(&route));
        }
        self.fetch_needs();
        self.settle();
    }

    /// Goes to a view from anywhere (number keys, the palette): the
    /// breadcrumb becomes the view's own path from the overview (a node's
    /// goes through its site).
    pub fn jump(&mut self, route: Route) {
        self.message = None;
        self.stack.truncate(1);
        // The views the route's own path goes through: a node's site; a
        // site's or a node's config goes through the site (and the node).
        let node = match &route {
            Route::Node(n) => Some(n.clone()),
            Route::Config(LayerRef::Node(n)) => Some(n.to_string()),
            _ => None,
        };
        let site = match &route {
            Route::Config(LayerRef::Site(s)) => Some(s.to_string()),
            _ => node
                .as_deref()
                .and_then(|n| self.shown().node(n))
                .map(|n| n.site.clone()),
        };
        if let Some(site) = site {
            self.stack.push(views::open(&Route::Site(site)));
        }
        if let (Some(n), Route::Config(_)) = (&node, &route) {
            self.stack.push(views::open(&Route::Node(n.clone())));
        }
        if route != Route::Overview {
            self.stack.push(views::open(&route));
        }
        self.fetch_needs();
        self.settle();
    }

    fn fetch_needs(&mut self) {
        for need in self.top().needs() {
            self.fetch(need);
        }
    }

    /// Sends several intents (an ack of every marked alert, a command per
    /// marked site); the status bar then says how many went through.
    pub fn apply_all(&mut self, intents: Vec<Intent>) {
        if intents.len() > 1 {
            self.batch = Some(Batch {
                total: intents.len(),
                ..Batch::default()
            });
        }
        for intent in intents {
            self.apply(intent);
        }
        if let Some(b) = &self.batch
            && b.sent == 0
        {
            // Refused before any went out: the refusal stands alone.
            self.batch = None;
        }
    }

    /// The prompt's action on its targets: the commands, asked first, and
    /// the commands view on them once sent. Refused when no targeted node
    /// may run it.
    fn run_action(&mut self, targets: &[LayerRef], text: &str) -> Result<(), String> {
        let action = text.trim();
        let known = bulk::actions(self.shown(), targets);
        if action.is_empty() || !known.contains(action) {
            let list = if known.is_empty() {
                "none has an action in its config (actions.NAME = {cmd, timeout_s})".to_string()
            } else {
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(format!(
                "'{action}' is not an action of {}: {list}",
                bulk::targets_label(targets)
            ));
        }
        let me = self.snap.me.clone();
        let (intents, ids) = bulk::commands(&me, action, targets, self.now_ms);
        let nodes: usize = targets
            .iter()
            .map(|t| bulk::nodes_of(self.shown(), t).len())
            .sum();
        let names: Vec<String> = targets
            .iter()
            .map(|t| match t {
                LayerRef::Site(s) => s.to_string(),
                LayerRef::Node(n) => n.to_string(),
                LayerRef::Fleet => "the fleet".into(),
            })
            .collect();
        self.message = None;
        self.effect(Effect::Confirm {
            question: format!(
                "Run {action} on {} ({}: {nodes} nodes)?\nEach node runs its actions.{action} and reports its result; the commands view shows them as they arrive.",
                bulk::targets_label(targets),
                crate::text::fit(&names.join(", "), 120),
            ),
            intents,
            then: Some(Route::Commands(Some(ids))),
        });
        Ok(())
    }

    /// Sends an intent to the source, unless read-only (or as of a past
    /// moment).
    pub fn apply(&mut self, intent: Intent) {
        if self.options.read_only {
            self.complain(format!(
                "read-only: {} was not sent (the console was started with --read-only)",
                intent.describe()
            ));
            return;
        }
        if self.past.is_some() {
            self.complain(as_of_refusal(&intent.describe()));
            return;
        }
        // The fleet's rules, judged here first: what every replica would
        // refuse is not attempted.
        if let Some(key) = &self.snap.me_key
            && let Err(e) = fleetdeck_store::ops::check(&self.snap.fleet, key, &intent)
        {
            self.complain(format!("{} not sent: {e}", intent.describe()));
            return;
        }
        self.applying += 1;
        if let Some(b) = &mut self.batch {
            b.sent += 1;
        }
        self.say(format!("{}…", intent.describe()));
        self.outbox.push(Request::Apply(intent));
    }

    fn on_palette_key(&mut self, key: Key, mut input: Input) {
        match self.options.keymap.lookup(Scope::Input, key) {
            Some(Action::Cancel) => {}
            Some(Action::Submit) => match palette::parse(&input.text, self.shown()) {
                Ok(cmd) => self.run_command(cmd),
                Err(e) => {
                    self.complain(e);
                    self.overlay = Some(Overlay::Palette(input));
                }
            },
            Some(Action::Complete) => {
                input.text =
                    palette::complete(&input.text, self.shown(), &self.options.user_themes);
                self.overlay = Some(Overlay::Palette(input));
            }
            Some(Action::DeleteChar) => {
                if input.text.pop().is_none() {
                    // Backspace on nothing closes the palette, as in vim.
                    return;
                }
                self.overlay = Some(Overlay::Palette(input));
            }
            _ => {
                type_into(&mut input, key);
                self.overlay = Some(Overlay::Palette(input));
            }
        }
    }

    fn run_command(&mut self, cmd: Command) {
        match cmd {
            Command::Open(r) => self.jump(r),
            Command::At(text) => self.go_to_moment(&text),
            Command::Now => match self.past {
                Some(_) => self.back_to_now(),
                None => self.say("this is now already"),
            },
            Command::Quit => self.quit = true,
            Command::Help => self.overlay = Some(Overlay::Help),
            Command::Theme(name) => {
                match crate::settings::resolve_theme(&name, self.options.themes_dir.as_deref()) {
                    Ok(t) => {
                        self.options.theme = t;
                        self.say(format!("theme {name}"));
                    }
                    Err(e) => self.complain(e),
                }
            }
        }
    }

    // ---- as-of mode --------------------------------------------------------

    /// The past moment shown, in as-of mode.
    pub fn as_of(&self) -> Option<i64> {
        self.past.as_ref().map(Past::at_ms)
    }

    /// `:at TIME`: asks for the moment (the store's rules of `--at`).
    pub fn go_to_moment(&mut self, text: &str) {
        match At::parse(text, self.now_ms) {
            Ok(at) => {
                self.past_pending = true;
                self.say(format!("looking at the fleet as of {at}…"));
                self.outbox.push(Request::Moment(at));
            }
            Err(e) => self.complain(format!(":at {e}")),
        }
    }

    /// ←/→: the moment of the event before (after) the one shown; from
    /// now, back to the last event.
    fn step(&mut self, later: bool) {
        let from_ms = match &self.past {
            Some(p) => p.cursor_ms,
            None if later => {
                self.say("this is now: there is no later event (← or [ steps back)");
                return;
            }
            None => self.now_ms,
        };
        if self.past_pending {
            return;
        }
        self.past_pending = true;
        self.outbox.push(Request::Step {
            from_ms,
            later,
            now_ms: self.now_ms,
        });
    }

    /// Leaves as-of mode: every view shows the fleet now again.
    fn back_to_now(&mut self) {
        self.past = None;
        self.past_pending = false;
        self.refetch_events();
        self.settle();
        self.say("back to now");
    }

    fn set_filter(&mut self, text: &str) {
        if let Some(l) = self.stack.last_mut().and_then(|v| v.filter_mut()) {
            l.set_filter(text);
        }
        self.settle();
    }

    fn on_filter_key(&mut self, key: Key, mut input: Input) {
        match self.options.keymap.lookup(Scope::Input, key) {
            Some(Action::Cancel) => self.set_filter(""),
            Some(Action::Submit) => {}
            Some(Action::DeleteChar) => {
                input.replace = false;
                input.text.pop();
                self.set_filter(&input.text);
                self.overlay = Some(Overlay::Filter(input));
            }
            Some(Action::Complete) => {
                // Tab keeps the reopened text, to type after it.
                input.replace = false;
                self.overlay = Some(Overlay::Filter(input));
            }
            _ => {
                type_into(&mut input, key);
                self.set_filter(&input.text);
                self.overlay = Some(Overlay::Filter(input));
            }
        }
    }

    fn on_prompt_key(&mut self, key: Key, prompt: Prompt, mut input: Input) {
        match self.options.keymap.lookup(Scope::Input, key) {
            Some(Action::Cancel) => {
                if let Some(v) = self.stack.last_mut() {
                    v.prompt_cancelled(&prompt);
                }
                self.say("cancelled");
            }
            Some(Action::Submit) => match &prompt {
                Prompt::Silence { alert_ids } => match text::parse_duration(&input.text) {
                    Ok(for_ms) => self.apply_all(
                        alert_ids
                            .iter()
                            .map(|id| Intent::Silence {
                                alert_id: id.clone(),
                                for_ms,
                            })
                            .collect(),
                    ),
                    Err(e) => {
                        self.complain(e);
                        self.overlay = Some(Overlay::Prompt(prompt, input));
                    }
                },
                Prompt::RunAction { targets } => match self.run_action(targets, &input.text) {
                    Ok(()) => {}
                    Err(e) => {
                        self.complain(e);
                        self.overlay = Some(Overlay::Prompt(prompt, input));
                    }
                },
                Prompt::Tunnel { node } => match parse_tunnel_target(&input.text) {
                    Ok(target) => {
                        self.say(format!("opening a tunnel to {target} through {node}…"));
                        self.outbox.push(Request::Tunnel {
                            node: node.clone(),
                            target,
                        });
                    }
                    Err(e) => {
                        self.complain(e);
                        self.overlay = Some(Overlay::Prompt(prompt, input));
                    }
                },
                _ => self.submit_to_view(prompt, input),
            },
            Some(Action::Complete) => {
                if let Prompt::RunAction { targets } = &prompt {
                    let known = bulk::actions(self.shown(), targets);
                    input.text = palette::common_prefix(
                        known.iter().filter(|a| a.starts_with(input.text.trim())),
                    )
                    .unwrap_or(input.text);
                }
                if let Prompt::Tunnel { node } = &prompt {
                    let known: Vec<String> = tunnel_targets(self.shown(), node)
                        .iter()
                        .map(|t| t.to_string())
                        .collect();
                    input.text = palette::common_prefix(
                        known.iter().filter(|a| a.starts_with(input.text.trim())),
                    )
                    .unwrap_or(input.text);
                }
                self.overlay = Some(Overlay::Prompt(prompt, input));
            }
            Some(Action::DeleteChar) => {
                input.text.pop();
                self.overlay = Some(Overlay::Prompt(prompt, input));
            }
            _ => {
                type_into(&mut input, key);
                self.overlay = Some(Overlay::Prompt(prompt, input));
            }
        }
    }

    /// Hands a prompt's text to the view that asked for it.
    fn submit_to_view(&mut self, prompt: Prompt, input: Input) {
        let result = self
            .with_top(|v, ctx| v.submit(&prompt, &input.text, ctx))
            .unwrap_or(Ok(Handled::Ignored));
        match result {
            Ok(Handled::Then(effect)) => self.effect(effect),
            Ok(_) => {}
            Err(e) => {
                self.complain(e);
                self.overlay = Some(Overlay::Prompt(prompt, input));
            }
        }
    }

    // ---- draw -------------------------------------------------------------

    /// The hint bar's entries: (keys, label), built from the commands valid
    /// now and the keymap.
    pub fn hints(&self) -> Vec<(String, String)> {
        let km = &self.options.keymap;
        let scope = self.scope();
        let label = |a: Action| (km.key_label(scope, a), a.label().to_string());
        match &self.overlay {
            Some(Overlay::Help) => vec![("any key".into(), "close".into())],
            Some(Overlay::Confirm { .. }) => vec![label(Action::Confirm), label(Action::Cancel)],
            Some(Overlay::Palette(_)) => vec![
                label(Action::Submit),
                label(Action::Complete),
                label(Action::Cancel),
            ],
            Some(Overlay::Filter(input)) if input.replace => vec![
                ("type".into(), "replace".into()),
                (km.key_label(scope, Action::DeleteChar), "edit".into()),
                (km.key_label(scope, Action::Submit), "keep".into()),
                (km.key_label(scope, Action::Cancel), "clear".into()),
            ],
            Some(Overlay::Filter(_)) => vec![
                (km.key_label(scope, Action::Submit), "keep".into()),
                (km.key_label(scope, Action::Cancel), "clear".into()),
            ],
            Some(Overlay::Prompt(..)) => vec![label(Action::Submit), label(Action::Cancel)],
            Some(Overlay::Form(_)) => vec![
                (km.key_label(scope, Action::Complete), "next field".into()),
                (km.key_label(scope, Action::Submit), "review".into()),
                label(Action::Cancel),
            ],
            None => {
                let mut out = Vec::new();
                let commands = self.commands();
                if commands.contains(&Action::Down) && commands.contains(&Action::Up) {
                    out.push((
                        format!(
                            "{}/{}",
                            km.key_label(scope, Action::Down),
                            km.key_label(scope, Action::Up)
                        ),
                        "move".to_string(),
                    ));
                }
                let as_of = self.past.is_some();
                for a in commands.into_iter().filter(|a| !a.is_motion()) {
                    match a {
                        // As of a past moment: one entry for the steps, and
                        // Esc is the way back to now.
                        Action::EarlierEvent => out.push((
                            format!(
                                "{}/{}",
                                km.key_label(scope, Action::EarlierEvent),
                                km.key_label(scope, Action::LaterEvent)
                            ),
                            "event".into(),
                        )),
                        Action::LaterEvent => {}
                        Action::Back if as_of => {
                            out.push((km.key_label(scope, Action::Back), "now".into()))
                        }
                        _ => out.push(label(a)),
                    }
                }
                out
            }
        }
    }

    /// Every action valid now: the top view's, then the app's.
    pub fn commands(&self) -> Vec<Action> {
        let ctx = self.ctx();
        let mut c = self.top().commands(&ctx);
        // A replica whose role writes nothing (a viewer's, a node's), or a
        // past moment, is not offered what it may not do.
        if self.options.read_only || self.snap.writes_nothing().is_some() || self.past.is_some() {
            c.retain(|a| !a.writes());
        }
        if self.past.is_some() {
            c.insert(0, Action::EarlierEvent);
            c.insert(1, Action::LaterEvent);
        }
        c.push(Action::Filter);
        c.push(Action::Palette);
        c.push(Action::Help);
        if self.stack.len() > 1 || self.past.is_some() {
            c.push(Action::Back);
        }
        c.push(Action::Quit);
        c
    }
}

/// Why a write is refused in as-of mode (the banner says which moment).
fn as_of_refusal(what: &str) -> String {
    format!("{what}: read-only as of a past moment (esc: now)")
}

/// Types a key into an input; into a selected text, it replaces it.
fn type_into(input: &mut Input, key: Key) {
    if let crossterm::event::KeyCode::Char(c) = key.code
        && !key
            .mods
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
    {
        if std::mem::take(&mut input.replace) {
            input.text.clear();
        }
        if input.text.chars().count() < 200 {
            input.text.push(c);
        }
    }
}

//! `fleetdeck-tui`: the operator console, a ratatui terminal UI.
//!
//! The console reads a [`Snapshot`] of the fleet and sends [`Intent`]s, both
//! through the [`Source`] trait; the binary implements it over a real replica
//! (and a sync engine), tests over the `fixture::FixtureSource` (behind the
//! `fixture` feature: test support, not shipped). Keys become
//! [`Action`]s through a [`Keymap`] (data), actions update the [`App`], and
//! drawing is a pure function of the app's state and the frame.
//!
//! The operator's own settings (keymap, mouse, user themes) come from the
//! config dir through [`settings`], read once before the console starts.
//!
//! `tui` never touches SQLite or sockets, never reads the clock while drawing
//! (the loop passes `now_ms`), and never blocks its input loop on the source:
//! the source runs on its own thread and trouble there is shown in the status
//! bar, never a hang or an exit.

pub mod app;
pub mod bulk;
pub mod cause;
pub mod cells;
pub mod component;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod form;
pub mod keymap;
pub mod palette;
pub mod pane;
pub mod past;
pub mod run;
pub mod seen;
pub mod series;
pub mod settings;
pub mod source;
pub mod table;
pub mod text;
pub mod theme;
pub mod views;

pub use app::{App, Options, Request, Response, Route};
pub use keymap::{Action, Key, Keymap, Scope};
pub use run::run;
pub use source::{
    HistoryRow, Intent, NodeFacts, OpenTunnel, Peer, SiteFacts, Snapshot, Source, SyncStatus,
};
pub use theme::Theme;

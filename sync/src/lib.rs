//! `fleetdeck-sync`: replicas syncing peer to peer over iroh (QUIC, TLS 1.3).
//!
//! One ALPN, one session per peer, one enum of wire messages with bounded
//! frames ([`wire`]). Sessions run the automerge sync protocol for the fleet
//! document and a digest exchange for health registers. Every document
//! change from elsewhere, network or bundle, enters through [`verify`].
//! Only members (or a joiner holding a valid invite) get a session.
//!
//! `sync` is a transport: it never draws anything, never touches SQLite
//! except through the store's `Replica`, and decides nothing about the
//! fleet (rollouts, alerts, applying config are the node's and the
//! console's).
//!
//! The engine ([`engine`]) ties together binding the endpoint ([`bind`]),
//! the peer book ([`peers`]), dial policy (`dial`), LAN discovery
//! ([`mdns`]), accepting sessions (`accept`) and the status file
//! ([`status`]); a [`session`] sees the engine only through its narrow
//! `Host` handle, and never imports it.

use std::sync::{Mutex, MutexGuard};

mod accept;
pub mod bind;
pub mod bundle;
mod dial;
pub mod engine;
pub mod error;
pub mod faults;
pub mod join;
pub mod mdns;
pub mod peers;
pub mod session;
pub mod status;
pub mod token;
pub mod traffic;
pub mod tunnel;
pub mod verify;
pub mod wire;

pub use bind::{bind_endpoint, bind_endpoint_with, format_endpoint_addr, parse_endpoint_addr};
pub use engine::{Engine, EngineConfig, SyncError, WeakEngine};
pub use faults::Faults;
pub use peers::PeerStatus;
pub use status::StatusFile;
pub use token::{InviteToken, RelayPass, TokenRelay};
pub use traffic::{Stats, Wire};

/// Takes a lock even if a thread panicked holding it: the maps behind the
/// engine's locks stay usable (at worst an entry is a little stale).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! `fleetdeck-store`: the replica every node daemon and operator laptop holds.
//!
//! It owns the fleet document (automerge: config layers, sites, nodes,
//! members, alert acks, the freeze flag), the effective-config reconcile with
//! provenance, the health and command results registers kept outside the
//! document's history, the alert rules, and their durable storage in SQLite.
//!
//! `store` does no networking and draws nothing: `sync` moves its changes
//! between replicas, `node` applies them, `tui` shows them.

pub mod alerts;
pub mod at;
pub mod config;
mod db;
pub mod declare;
pub use db::Quarantined;
pub mod diff;
pub mod document;
pub mod error;
pub mod events;
pub mod health;
pub mod health_log;
pub mod identity;
pub mod ids;
pub mod moment;
pub mod ops;
pub mod overlay;
pub mod peer;
pub mod receipts;
pub mod replica;
pub mod results;
pub mod rights;
pub mod rollout;
pub mod schema;
pub mod sign;

pub use error::{Result, StoreError};
pub use ids::{MemberKey, NodeId, Role, SiteId};
pub use replica::{Replica, now_ms};

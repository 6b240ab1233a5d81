//! `fleetdeck-node`: the daemon on every site device. It holds a replica,
//! reports heartbeats, applies its node's effective config atomically with a
//! health check and rollback, watches for hand edits, honours the fleet's
//! freeze, and stops applying (safe mode) after repeated failures — and keeps
//! running its last good release forever when cut off.
//!
//! It never draws anything; it reads the replica and talks to peers through
//! `sync`.

pub mod apply;
pub mod command;
pub mod commands;
pub mod daemon;
pub mod fleet_metrics;
pub mod heartbeat;
pub mod metrics;
pub mod mqtt;
pub mod paging;
pub mod render;
pub mod rollouts;
pub mod view;

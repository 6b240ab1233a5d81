//! `fleetdeck-sync`: replicas syncing peer to peer over iroh (QUIC, TLS 1.3).
//!
//! One ALPN, one session per peer, one enum of wire messages with bounded
//! frames ([`wire`]). Sessions run the automerge sync protocol for the fleet
//! document and a digest exchange for health registers. Every document
//! change from elsewhere, network or bundle, enters through [`verify`].
//! Only members (or a joiner holding a valid invite) get a session.
//!
//! `sync` never draws anything and never touches SQLite except through the
//! store's `Replica`.

pub mod bundle;
pub mod engine;
pub mod faults;
pub mod join;
pub mod session;
pub mod token;
pub mod verify;
pub mod wire;

pub use engine::{
    Engine, EngineConfig, PeerStatus, StatusFile, SyncError, Wire, format_endpoint_addr,
    parse_endpoint_addr,
};
pub use faults::Faults;
pub use token::InviteToken;

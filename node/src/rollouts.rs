//! Moves rollouts forward (opens the next wave once the open ones have
//! soaked healthy, marks a rollout halted past its failure limit) on admin
//! and operator replicas: the hubs and laptops, which hold every node's
//! heartbeat. Any of them may decide; the decisions merge (store::rollout).
//! A node replica holds only its own heartbeat; its daemon still halts a
//! rollout on what it sees itself (`daemon`).
//!
//! Whatever holds fleet health beside a sync engine starts this: `serve`,
//! the console, the scenario runner's hubs and laptops.

use std::time::Duration;

use fleetdeck_store::{Role, now_ms};
use fleetdeck_sync::Engine;
use tokio::task::JoinHandle;

/// How often rollouts are looked at: what lets soak times pass.
const EVERY: Duration = Duration::from_secs(1);

/// Advances `engine`'s rollouts every second, at once the first time, for
/// as long as the engine runs: the task ends by itself once the engine is
/// shut down or dropped (it does not keep the engine alive). Does nothing
/// on a replica whose member does not manage the fleet.
pub fn spawn(engine: &Engine) -> JoinHandle<()> {
    let engine = engine.downgrade();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let Some(steps) = engine.with_replica(|r| {
                let role = r.state().members.get(r.key()).map(|m| m.role);
                role.is_some_and(Role::manages_fleet)
                    .then(|| r.advance_rollouts(now_ms()))
            }) else {
                return;
            };
            match steps {
                Some(Ok(steps)) if !steps.is_empty() => engine.changed(),
                Some(Ok(_)) | None => {}
                Some(Err(e)) => tracing::warn!("rollouts: {e}"),
            }
        }
    })
}

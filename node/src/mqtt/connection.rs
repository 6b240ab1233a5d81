//! The broker connection: drives rumqttc's event loop in its own task,
//! reconnects after a loss with exponential backoff and jitter, and tells
//! the publisher whether the broker is there and when a new session began
//! (each ConnAck), so it can publish everything retained again.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use rumqttc::{ConnectionError, Event, EventLoop, Outgoing, Packet};
use tokio::sync::watch;

/// Whether the broker is reachable, and which session this is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// Counts ConnAcks: a new value means a new session.
    pub session: u64,
}

/// Waits between reconnects: `min`, doubled each failure up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `failures + 1`: the backoff step with up to
    /// half of it taken off at random, so a fleet of bridges that lost one
    /// broker do not all come back in the same instant.
    pub fn wait(&self, failures: u32) -> Duration {
        let step = self
            .min
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
            .min(self.max);
        let jitter = random_fraction() * 0.5;
        step.mul_f64(1.0 - jitter)
    }
}

/// A number in [0, 1) from the standard library's per-process random keys
/// (no cryptographic strength needed to spread reconnects).
fn random_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Polls the event loop until the bridge disconnects (or its client is
/// gone), publishing the link state on `link`.
pub async fn drive(
    mut events: EventLoop,
    link: watch::Sender<Link>,
    backoff: Backoff,
    broker: String,
) {
    let mut failures: u32 = 0;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if failures > 0 {
                    tracing::info!(
                        "MQTT broker {broker} reached again after {failures} failed attempt(s)"
                    );
                } else {
                    tracing::info!("MQTT bridge connected to {broker}");
                }
                failures = 0;
                link.send_modify(|l| {
                    l.up = true;
                    l.session += 1;
                });
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                link.send_modify(|l| l.up = false);
                return;
            }
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                link.send_if_modified(|l| std::mem::replace(&mut l.up, false));
                failures = failures.saturating_add(1);
                let wait = backoff.wait(failures);
                // The first failure, then fewer and fewer (1, 2, 4, 8, …).
                if failures.is_power_of_two() {
                    tracing::warn!(
                        "MQTT broker {broker} unreachable ({e}); retrying in {:.1} s (attempt {failures}); fleet health waits, sync goes on",
                        wait.as_secs_f64()
                    );
                } else {
                    tracing::debug!("MQTT broker {broker}: {e}; retrying in {wait:?}");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute_with_jitter_below_the_step() {
        let b = Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        for (failures, step) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)] {
            for _ in 0..20 {
                let w = b.wait(failures);
                let step = Duration::from_secs(step);
                assert!(w <= step && w >= step / 2, "{failures}: {w:?} vs {step:?}");
            }
        }
    }
}

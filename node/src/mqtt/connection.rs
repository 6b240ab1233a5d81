//! The broker connection: drives rumqttc's event loop in its own task,
//! reconnects after a loss with exponential backoff and jitter, and tells
//! the publisher whether the broker is there and when a new session began
//! (each ConnAck), so it can publish everything retained again.
//!
//! A ConnAck alone does not end the backoff: a broker that accepts the
//! connection and then drops it (a message it will not take, a flaky
//! proxy) would otherwise get a reconnect, and everything published again,
//! every `min`. The backoff starts over only after a connection stayed up
//! for [`STABLE`].

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use rumqttc::{ConnectionError, Event, EventLoop, Outgoing, Packet};
use tokio::sync::watch;

/// How long a connection must last for its loss to count as a first
/// failure again (the backoff back to `min`).
pub const STABLE: Duration = Duration::from_secs(30);

/// The failures counted once a connection is lost: one more than before,
/// or the first when that connection lasted `STABLE` (`up_for`: how long
/// it was up, `None` when it never came up).
pub fn failures_after_loss(failures: u32, up_for: Option<Duration>) -> u32 {
    if up_for.is_some_and(|d| d >= STABLE) {
        1
    } else {
        failures.saturating_add(1)
    }
}

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
    // Failures since the last connection that lasted (the backoff), and
    // failed attempts since the last ConnAck (for the log).
    let mut failures: u32 = 0;
    let mut attempts: u32 = 0;
    let mut up_since: Option<Instant> = None;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if attempts > 0 {
                    tracing::info!(
                        "MQTT broker {broker} reached again after {attempts} failed attempt(s)"
                    );
                } else {
                    tracing::info!("MQTT bridge connected to {broker}");
                }
                attempts = 0;
                up_since = Some(Instant::now());
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
                let up_for = up_since.take().map(|t| t.elapsed());
                failures = failures_after_loss(failures, up_for);
                attempts = attempts.saturating_add(1);
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
    fn only_a_connection_that_lasted_starts_the_backoff_over() {
        assert_eq!(failures_after_loss(0, None), 1);
        assert_eq!(failures_after_loss(3, None), 4);
        assert_eq!(failures_after_loss(3, Some(Duration::from_secs(1))), 4);
        assert_eq!(failures_after_loss(3, Some(STABLE)), 1);
        assert_eq!(failures_after_loss(u32::MAX, None), u32::MAX);
    }

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

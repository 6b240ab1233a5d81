//! Simulated host metrics: a baseline per node, seeded noise, and incidents
//! the timeline sets (a disk filling, a CPU spike, memory running out).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use fleetdeck_node::daemon::MetricSource;
use fleetdeck_store::health::{DiskUsage, Metrics};

use crate::spec::MetricsSpec;

/// A small deterministic generator (splitmix64): the same seed gives the
/// same noise.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn signed_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// What the timeline has done to a node's metrics; shared between the runner
/// and the node's metric source (which survives restarts).
#[derive(Clone, Debug, Default)]
pub struct Incidents {
    pub disk_pct: Option<f64>,
    pub cpu_pct: Option<f64>,
    pub mem_pct: Option<f64>,
}

pub type SharedIncidents = Arc<Mutex<Incidents>>;

pub struct SimMetrics {
    base: MetricsSpec,
    rng: Rng,
    incidents: SharedIncidents,
    started: Instant,
}

impl SimMetrics {
    pub fn new(base: MetricsSpec, seed: u64, incidents: SharedIncidents) -> SimMetrics {
        SimMetrics {
            base,
            rng: Rng::new(seed),
            incidents,
            started: Instant::now(),
        }
    }

    fn noisy(&mut self, v: f64) -> f64 {
        (v + self.rng.signed_unit() * self.base.noise).clamp(0.0, 100.0)
    }
}

impl MetricSource for SimMetrics {
    fn sample(&mut self) -> Metrics {
        let inc = self
            .incidents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let cpu = inc.cpu_pct.unwrap_or(self.base.cpu);
        let cpu = self.noisy(cpu);
        let mem = match inc.mem_pct {
            Some(m) => m,
            None => self.noisy(self.base.mem),
        };
        // A filled disk does not jitter around its level.
        let disk = match inc.disk_pct {
            Some(d) => d,
            None => self.noisy(self.base.disk),
        };
        let temp = self.base.temp.map(|t| t + self.rng.signed_unit());
        Metrics {
            cpu_pct: cpu,
            mem_pct: mem,
            disks: vec![DiskUsage {
                mount: "/".into(),
                used_pct: disk,
            }],
            load1: cpu / 25.0,
            uptime_s: self.started.elapsed().as_secs(),
            temp_c: temp,
        }
    }
}

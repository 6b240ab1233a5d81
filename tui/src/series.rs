//! A node's sparkline data: every register the console saw arrive, kept in
//! a ring of [`RING`] samples per node, and beyond the ring's oldest sample
//! the store's per-minute samples (fetched when the node view opens). The
//! newest point is the node's latest register, so a sparkline's "now" and
//! the node's latest health are the same numbers.

use std::collections::{HashMap, VecDeque};

use fleetdeck_store::health::{SAMPLE_BUCKET_MS, Sample, StoredRegister};

/// Samples kept per node from what the console saw arrive.
pub const RING: usize = 120;

#[derive(Debug, Default)]
pub struct Series {
    recent: HashMap<String, VecDeque<Sample>>,
    minutes: HashMap<String, Vec<Sample>>,
}

/// A register's metrics as a sample at the node's time of the report (the
/// store's per-minute samples are bucketed by the same clock).
fn sample(r: &StoredRegister) -> Sample {
    let m = &r.reg.metrics;
    Sample {
        bucket_ms: r.reg.time_ms,
        cpu: m.cpu_pct,
        mem: m.mem_pct,
        disk: m.disks.iter().map(|d| d.used_pct).fold(0.0, f64::max),
    }
}

impl Series {
    /// Takes in the registers of a new snapshot: each node whose register
    /// changed gets a sample.
    pub fn observe(&mut self, health: &HashMap<String, StoredRegister>) {
        for (node, r) in health {
            let ring = self.recent.entry(node.clone()).or_default();
            if ring.back().is_some_and(|s| s.bucket_ms == r.reg.time_ms) {
                continue;
            }
            if ring.len() == RING {
                ring.pop_front();
            }
            ring.push_back(sample(r));
        }
        self.recent.retain(|node, _| health.contains_key(node));
    }

    /// The store's per-minute samples of a node (oldest first).
    pub fn set_minutes(&mut self, node: &str, samples: Vec<Sample>) {
        self.minutes.insert(node.to_string(), samples);
    }

    /// A node's points, oldest first: the per-minute samples older than the
    /// ring, then the ring.
    pub fn points(&self, node: &str) -> Vec<Sample> {
        let ring = self.recent.get(node);
        let first = ring.and_then(|r| r.front()).map(|s| s.bucket_ms);
        let mut out: Vec<Sample> = self
            .minutes
            .get(node)
            .into_iter()
            .flatten()
            .filter(|m| first.is_none_or(|f| m.bucket_ms + SAMPLE_BUCKET_MS <= f))
            .copied()
            .collect();
        out.extend(ring.into_iter().flatten().copied());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_store::health::{DiskUsage, HealthRegister, Metrics};

    fn reg(time_ms: i64, cpu: f64) -> StoredRegister {
        StoredRegister {
            reg: HealthRegister {
                node: "n1".into(),
                time_ms,
                metrics: Metrics {
                    cpu_pct: cpu,
                    disks: vec![
                        DiskUsage {
                            mount: "/".into(),
                            used_pct: 40.0,
                        },
                        DiskUsage {
                            mount: "/data".into(),
                            used_pct: 91.0,
                        },
                    ],
                    ..Metrics::default()
                },
                ..HealthRegister::default()
            },
            received_ms: time_ms,
            ver: 1,
        }
    }

    #[test]
    fn the_newest_point_is_the_latest_register_and_minutes_come_before_the_ring() {
        let mut s = Series::default();
        let minute = |m: i64, cpu: f64| Sample {
            bucket_ms: m * SAMPLE_BUCKET_MS,
            cpu,
            mem: 0.0,
            disk: 0.0,
        };
        s.set_minutes("n1", (0..10).map(|m| minute(m, 10.0)).collect());
        for (t, cpu) in [(9 * 60_000 + 5_000, 20.0), (9 * 60_000 + 15_000, 35.0)] {
            s.observe(&HashMap::from([("n1".to_string(), reg(t, cpu))]));
        }
        // The same register again adds nothing.
        s.observe(&HashMap::from([(
            "n1".to_string(),
            reg(9 * 60_000 + 15_000, 35.0),
        )]));
        let points = s.points("n1");
        // Minutes 0..=8 (minute 9 holds the ring's samples), then the ring.
        assert_eq!(points.len(), 9 + 2);
        let last = points.last().unwrap();
        assert_eq!((last.cpu, last.disk), (35.0, 91.0));
        assert_eq!(points[8].bucket_ms, 8 * SAMPLE_BUCKET_MS);
    }

    #[test]
    fn the_ring_keeps_the_newest_samples() {
        let mut s = Series::default();
        for t in 0..(RING as i64 + 30) {
            s.observe(&HashMap::from([("n1".to_string(), reg(t * 1_000, 1.0))]));
        }
        let points = s.points("n1");
        assert_eq!(points.len(), RING);
        assert_eq!(points[0].bucket_ms, 30_000);
        // A node gone from the fleet is forgotten.
        s.observe(&HashMap::new());
        assert!(s.points("n1").is_empty());
    }
}

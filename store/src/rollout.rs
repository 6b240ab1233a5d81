//! Staged rollouts (canaries), decided without a coordinator.
//!
//! A rollout sets some keys (`set`) on the nodes of some sites, in waves of
//! cumulative percentages (`5, 25, 100`). A node's wave follows from a hash
//! of (rollout id, node id), so every replica computes the same waves. The
//! first wave is open from the start; wave k+1 opens when every node of the
//! open waves has applied the rollout and stayed healthy for the soak time.
//! Any replica that sees more than `max_fail` failed nodes in the open waves
//! halts the rollout.
//!
//! What happened is kept as events in the document (wave k opened at, halted
//! at, resumed at, paused at, aborted at), never as a state field that an
//! older view could overwrite: a rollout is halted while its latest halt is
//! newer than its latest resume, so "halted" survives a merge with any
//! replica that had not seen it yet. Since the events are in the document,
//! every replica derives the same effective config for every node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConfigPath, Layer};
use crate::document::FleetState;
use crate::health::{ApplyResult, StoredRegister};
use crate::ids::NodeId;

/// What an operator started (immutable once written).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    /// key → value, as `config set` would take them.
    pub set: BTreeMap<String, Value>,
    /// Sites it covers; empty means the whole fleet.
    pub sites: Vec<String>,
    /// Cumulative percentages, ending at 100.
    pub waves: Vec<u8>,
    pub soak_ms: i64,
    pub max_fail: u64,
    pub by: String,
    pub at_ms: i64,
}

/// Events, each the time it happened (unix ms).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RolloutEvents {
    /// wave index → when it opened (wave 0 opens at the start).
    pub opened: BTreeMap<usize, i64>,
    pub halted: Option<(i64, String)>,
    pub paused: Option<i64>,
    pub resumed: Option<i64>,
    pub aborted: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rollout {
    pub id: String,
    pub spec: RolloutSpec,
    pub events: RolloutEvents,
    /// The spec's keys as a config layer (overlaid on targeted nodes).
    #[serde(skip)]
    pub layer: Layer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Running,
    Paused,
    Halted,
    Aborted,
    Done,
}

/// A write a replica makes after looking at a rollout.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    OpenWave { rollout: String, wave: usize },
    Halt { rollout: String, reason: String },
}

/// One wave as `rollout status` shows it (failures: since the last resume).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WaveStatus {
    pub percent: u8,
    pub open: bool,
    pub nodes: Vec<String>,
    pub applied: usize,
    pub healthy: usize,
    pub failed: usize,
}

/// FNV-1a: stable across platforms and versions, which a wave assignment
/// (and a node's heartbeat phase) must be.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Rollout {
    pub fn new(id: String, spec: RolloutSpec) -> Rollout {
        let layer = spec
            .set
            .iter()
            .filter_map(|(k, v)| Some((ConfigPath::parse(k).ok()?, std::sync::Arc::new(v.clone()))))
            .collect();
        Rollout {
            id,
            spec,
            events: RolloutEvents::default(),
            layer,
        }
    }

    fn after_resume(&self, t: i64) -> bool {
        self.events.resumed.is_none_or(|r| t > r)
    }

    pub fn phase(
        &self,
        st: &FleetState,
        health: &std::collections::HashMap<String, StoredRegister>,
    ) -> Phase {
        if self.events.aborted.is_some() {
            return Phase::Aborted;
        }
        if self
            .events
            .halted
            .as_ref()
            .is_some_and(|(t, _)| self.after_resume(*t))
        {
            return Phase::Halted;
        }
        if self.events.paused.is_some_and(|t| self.after_resume(t)) {
            return Phase::Paused;
        }
        let waves = self.wave_status(st, health);
        if waves.iter().all(|w| w.open && w.applied == w.nodes.len()) {
            return Phase::Done;
        }
        Phase::Running
    }

    /// The wave `node` belongs to, if the rollout covers its site.
    pub fn wave_of(&self, node: &NodeId, site: &str) -> Option<usize> {
        if !self.spec.sites.is_empty() && !self.spec.sites.iter().any(|s| s == site) {
            return None;
        }
        let bucket = (fnv(&format!("{}/{node}", self.id)) % 100) as u8;
        self.spec
            .waves
            .iter()
            .position(|p| bucket < *p)
            .or(Some(self.spec.waves.len().saturating_sub(1)))
    }

    pub fn wave_open(&self, wave: usize) -> bool {
        wave == 0 || self.events.opened.contains_key(&wave)
    }

    /// Whether `node`'s effective config includes this rollout now.
    pub fn applies_to(&self, node: &NodeId, site: &str) -> bool {
        self.events.aborted.is_none() && self.wave_of(node, site).is_some_and(|w| self.wave_open(w))
    }

    pub fn wave_status(
        &self,
        st: &FleetState,
        health: &std::collections::HashMap<String, StoredRegister>,
    ) -> Vec<WaveStatus> {
        let mut waves: Vec<WaveStatus> = self
            .spec
            .waves
            .iter()
            .enumerate()
            .map(|(i, p)| WaveStatus {
                percent: *p,
                open: self.wave_open(i),
                ..Default::default()
            })
            .collect();
        let all = st.effective_all();
        for node in st.nodes.values() {
            let Some(w) = self.wave_of(&node.id, node.site.as_str()) else {
                continue;
            };
            let Some(ws) = waves.get_mut(w) else { continue };
            ws.nodes.push(node.id.to_string());
            if !ws.open {
                continue;
            }
            let desired = all.get(&node.id).map(|e| e.revision());
            let applied = health
                .get(node.id.as_str())
                .and_then(|h| h.reg.applied.as_ref());
            if let (Some(a), Some(d)) = (applied, &desired)
                && &a.revision == d
            {
                match a.result {
                    ApplyResult::Ok => {
                        ws.applied += 1;
                        ws.healthy += 1;
                    }
                    // A resume forgets earlier failures: only applies tried
                    // after it count (a replica still holding a report from
                    // before the resume must not halt the rollout again).
                    ApplyResult::RolledBack | ApplyResult::Failed if self.after_resume(a.at_ms) => {
                        ws.failed += 1
                    }
                    ApplyResult::RolledBack | ApplyResult::Failed => {}
                }
            }
        }
        waves
    }

    /// What this replica should write, seeing what it sees at `now_ms`.
    pub fn progress(
        &self,
        st: &FleetState,
        health: &std::collections::HashMap<String, StoredRegister>,
        now_ms: i64,
    ) -> Option<Step> {
        if self.phase(st, health) != Phase::Running {
            return None;
        }
        let waves = self.wave_status(st, health);
        let failed: usize = waves.iter().filter(|w| w.open).map(|w| w.failed).sum();
        if failed as u64 > self.spec.max_fail {
            return Some(Step::Halt {
                rollout: self.id.clone(),
                reason: format!(
                    "{failed} node(s) failed to apply it (more than --max-fail {})",
                    self.spec.max_fail
                ),
            });
        }
        let next = waves.iter().position(|w| !w.open)?;
        // Every node of the open waves applied it, is still heard from, and
        // has been on it for the soak time.
        let open_since = (0..next)
            .map(|w| {
                self.events
                    .opened
                    .get(&w)
                    .copied()
                    .unwrap_or(self.spec.at_ms)
            })
            .max()?;
        let soaked = waves[..next].iter().flat_map(|w| w.nodes.iter()).all(|n| {
            health.get(n.as_str()).is_some_and(|h| {
                let a = h.reg.applied.as_ref();
                let fresh = now_ms - h.received_ms < 60_000;
                a.is_some_and(|a| {
                    a.result == ApplyResult::Ok
                        && now_ms - a.at_ms.max(open_since) >= self.spec.soak_ms
                }) && fresh
            })
        });
        let all_applied = waves[..next].iter().all(|w| w.applied == w.nodes.len());
        (soaked && all_applied).then(|| Step::OpenWave {
            rollout: self.id.clone(),
            wave: next,
        })
    }
}

/// Parses `--waves 5,25,100`.
pub fn parse_waves(s: &str) -> Result<Vec<u8>, String> {
    let waves: Vec<u8> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u8>()
                .map_err(|_| format!("wave '{p}' is not a whole percentage"))
        })
        .collect::<Result<_, _>>()?;
    let increasing = waves.windows(2).all(|w| w[0] < w[1]);
    if waves.is_empty()
        || !increasing
        || waves.first().is_some_and(|p| *p == 0)
        || waves.last() != Some(&100)
    {
        return Err(format!(
            "waves '{s}' are not valid: expected increasing percentages from 1 ending at 100, e.g. 5,25,100"
        ));
    }
    Ok(waves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_parsed_and_checked() {
        assert_eq!(parse_waves("5,25,100").unwrap(), vec![5, 25, 100]);
        assert!(parse_waves("25,5,100").is_err());
        assert!(parse_waves("5,25").is_err());
        assert!(parse_waves("0,100").is_err());
        assert!(parse_waves("x").is_err());
    }

    #[test]
    fn every_replica_puts_a_node_in_the_same_wave_and_the_sizes_follow_the_percentages() {
        let spec = RolloutSpec {
            set: BTreeMap::new(),
            sites: vec![],
            waves: vec![5, 25, 100],
            soak_ms: 0,
            max_fail: 0,
            by: "ops".into(),
            at_ms: 0,
        };
        let r = Rollout::new("r1".into(), spec.clone());
        let again = Rollout::new("r1".into(), spec);
        let mut counts = [0usize; 3];
        for i in 0..2000 {
            let n = NodeId::parse(&format!("node-{i}")).unwrap();
            let w = r.wave_of(&n, "S1").unwrap();
            assert_eq!(again.wave_of(&n, "S1"), Some(w));
            counts[w] += 1;
        }
        // ~5 %, ~20 %, ~75 % of 2000.
        assert!((60..=140).contains(&counts[0]), "{counts:?}");
        assert!((320..=480).contains(&counts[1]), "{counts:?}");
        assert!((1380..=1620).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn halted_stays_halted_until_resumed_after_it() {
        let spec = RolloutSpec {
            set: BTreeMap::new(),
            sites: vec!["S1".into()],
            waves: vec![100],
            soak_ms: 0,
            max_fail: 0,
            by: "ops".into(),
            at_ms: 0,
        };
        let mut r = Rollout::new("r".into(), spec);
        let st = FleetState::default();
        let h = std::collections::HashMap::new();
        r.events.halted = Some((10, "x".into()));
        assert_eq!(r.phase(&st, &h), Phase::Halted);
        r.events.resumed = Some(5); // a resume older than the halt
        assert_eq!(r.phase(&st, &h), Phase::Halted);
        r.events.resumed = Some(20);
        assert_ne!(r.phase(&st, &h), Phase::Halted);
        assert!(
            r.wave_of(&NodeId::parse("n").unwrap(), "S2").is_none(),
            "other sites are not covered"
        );
    }
}

//! Staged rollouts (canaries), decided without a coordinator.
//!
//! A rollout sets some keys (`set`) on the nodes of some sites, in waves of
//! cumulative percentages (`5, 25, 100`). The nodes it covers are ranked by a
//! hash of (rollout id, node id) and the ranked list is cut at the rounded
//! cumulative counts ([`wave_counts`]), so every replica that knows the same
//! nodes computes the same waves, the first wave always holds a node, no wave
//! is empty when there are at least as many nodes as waves, and no wave is
//! more than one node above its share. The first wave is open from the
//! start; wave k+1 opens when every node of the open waves has applied the
//! rollout and stayed healthy for the soak time. Any replica that sees more
//! than `max_fail` failed nodes in the open waves halts the rollout.
//!
//! A node added while a rollout runs joins the ranking, which can move a
//! node at the edge of a wave into the next one (at most one per edge); once
//! every wave is open nothing moves.
//!
//! What happened is kept as events in the document (wave k opened at, halted
//! at, resumed at, paused at, aborted at, done at), never as a state field
//! that an older view could overwrite: a rollout is halted while its latest
//! halt is newer than its latest resume, so "halted" survives a merge with
//! any replica that had not seen it yet. Done is recorded the same way, as
//! the opening of the wave after the last one, the first time a replica sees
//! every wave open and every node on it; from then on it stays done, whatever
//! later rollouts, config edits or new nodes do (only an operator's abort
//! still takes its settings off). Since the events are in the document, every
//! replica derives the same effective config for every node.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConfigPath, Layer};
use crate::document::FleetState;
use crate::health::{ApplyResult, StoredRegister};
use crate::ids::NodeId;
use crate::receipts::Delivery;

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

impl RolloutSpec {
    /// Whether the rollout covers the nodes of `site`.
    pub fn covers(&self, site: &str) -> bool {
        self.sites.is_empty() || self.sites.iter().any(|s| s == site)
    }
}

/// Events, each the time it happened (unix ms).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RolloutEvents {
    /// wave index → when it opened (wave 0 opens at the start). The index
    /// one past the last wave is when the rollout was seen done
    /// ([`Rollout::done_at`]).
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
    /// Open wave `wave`; `wave` equal to the number of waves records that
    /// the rollout is done (every wave open, every node on it).
    OpenWave {
        rollout: String,
        wave: usize,
    },
    Halt {
        rollout: String,
        reason: String,
    },
}

/// Each node's receipt of its wave's change (`receipts::landed`).
pub type Landed = HashMap<String, Delivery>;

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
        self.phase_with(st, health, None)
    }

    /// [`Rollout::phase`], judging nodes in `landed` by their receipts.
    pub fn phase_with(
        &self,
        st: &FleetState,
        health: &std::collections::HashMap<String, StoredRegister>,
        landed: Option<&Landed>,
    ) -> Phase {
        if self.events.aborted.is_some() {
            return Phase::Aborted;
        }
        // Done is for good: a later rollout's failures, a config edit or a
        // new node that has not applied it yet change nothing.
        if self.done_at().is_some() {
            return Phase::Done;
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
        let waves = self.wave_status_with(st, health, landed);
        if waves.iter().all(|w| w.open && w.applied == w.nodes.len()) {
            return Phase::Done;
        }
        Phase::Running
    }

    /// The wave of every node the rollout covers in `st`: the covered nodes
    /// ranked by the hash of (rollout id, node id), ties by node id, and the
    /// ranked list cut at the cumulative counts of [`wave_counts`].
    pub fn assignment(&self, st: &FleetState) -> HashMap<NodeId, usize> {
        let mut ranked: Vec<(u64, &NodeId)> = st
            .nodes
            .values()
            .filter(|n| self.spec.covers(n.site.as_str()))
            .map(|n| (self.rank_hash(&n.id), &n.id))
            .collect();
        ranked.sort_unstable();
        let counts = wave_counts(ranked.len(), &self.spec.waves);
        let waves = counts
            .iter()
            .enumerate()
            .flat_map(|(w, n)| std::iter::repeat_n(w, *n));
        ranked
            .into_iter()
            .zip(waves)
            .map(|((_, id), w)| (id.clone(), w))
            .collect()
    }

    fn rank_hash(&self, node: &NodeId) -> u64 {
        fnv(&format!("{}/{node}", self.id))
    }

    /// The wave `node` belongs to, if the rollout covers it in `st`.
    pub fn wave_of(&self, st: &FleetState, node: &NodeId) -> Option<usize> {
        let site = &st.nodes.get(node)?.site;
        if !self.spec.covers(site.as_str()) {
            return None;
        }
        // Its rank among the covered nodes, without sorting them all.
        let key = (self.rank_hash(node), node);
        let rank = st
            .nodes
            .values()
            .filter(|n| self.spec.covers(n.site.as_str()))
            .filter(|n| (self.rank_hash(&n.id), &n.id) < key)
            .count();
        let mut end = 0;
        for (w, n) in wave_counts(self.covered(st), &self.spec.waves)
            .iter()
            .enumerate()
        {
            end += n;
            if rank < end {
                return Some(w);
            }
        }
        None
    }

    fn covered(&self, st: &FleetState) -> usize {
        st.nodes
            .values()
            .filter(|n| self.spec.covers(n.site.as_str()))
            .count()
    }

    pub fn wave_open(&self, wave: usize) -> bool {
        wave == 0 || self.events.opened.contains_key(&wave) || self.done_at().is_some()
    }

    /// When a replica first saw every wave open and every node on it.
    pub fn done_at(&self) -> Option<i64> {
        self.events.opened.get(&self.spec.waves.len()).copied()
    }

    /// Whether every wave is open (so every covered node has it, and no
    /// ranking is needed to tell which).
    fn all_open(&self) -> bool {
        (0..self.spec.waves.len()).all(|w| self.wave_open(w))
    }

    /// Whether `node`'s effective config includes this rollout now.
    pub fn applies_to(&self, st: &FleetState, node: &NodeId) -> bool {
        if self.events.aborted.is_some() {
            return false;
        }
        if self.all_open() {
            return st
                .nodes
                .get(node)
                .is_some_and(|n| self.spec.covers(n.site.as_str()));
        }
        self.wave_of(st, node).is_some_and(|w| self.wave_open(w))
    }

    /// The nodes whose effective config includes this rollout now (what
    /// [`Rollout::applies_to`] says of each, worked out once).
    pub fn reaches(&self, st: &FleetState) -> HashSet<NodeId> {
        if self.events.aborted.is_some() {
            return HashSet::new();
        }
        if self.all_open() {
            return st
                .nodes
                .values()
                .filter(|n| self.spec.covers(n.site.as_str()))
                .map(|n| n.id.clone())
                .collect();
        }
        self.assignment(st)
            .into_iter()
            .filter(|(_, w)| self.wave_open(*w))
            .map(|(n, _)| n)
            .collect()
    }

    pub fn wave_status(
        &self,
        st: &FleetState,
        health: &std::collections::HashMap<String, StoredRegister>,
    ) -> Vec<WaveStatus> {
        self.wave_status_with(st, health, None)
    }

    /// Each wave's nodes and how many applied it, healthy, or failed. A
    /// node in `landed` (its receipt of its wave's change: see
    /// `receipts::landed`) counts as applied when its live release includes
    /// that change and as failed when its last apply failed on it; any
    /// other node by the revision it reports: applied when it runs the
    /// revision it should, failed when its apply of that revision failed.
    pub fn wave_status_with(
        &self,
        st: &FleetState,
        health: &std::collections::HashMap<String, StoredRegister>,
        landed: Option<&Landed>,
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
        let assignment = self.assignment(st);
        for node in st.nodes.values() {
            let Some(&w) = assignment.get(&node.id) else {
                continue;
            };
            let Some(ws) = waves.get_mut(w) else { continue };
            ws.nodes.push(node.id.to_string());
            if !ws.open {
                continue;
            }
            let applied = health
                .get(node.id.as_str())
                .and_then(|h| h.reg.applied.as_ref());
            if let Some(receipt) = landed.and_then(|l| l.get(node.id.as_str())) {
                match receipt {
                    Delivery::Applied => {
                        ws.applied += 1;
                        ws.healthy += 1;
                    }
                    Delivery::Failed if applied.is_some_and(|a| self.after_resume(a.at_ms)) => {
                        ws.failed += 1
                    }
                    _ => {}
                }
                continue;
            }
            let desired = all.get(&node.id).map(|e| e.revision());
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
        self.progress_with(st, health, None, now_ms)
    }

    /// [`Rollout::progress`], judging nodes in `landed` by their receipts
    /// ([`Rollout::wave_status_with`]).
    pub fn progress_with(
        &self,
        st: &FleetState,
        health: &std::collections::HashMap<String, StoredRegister>,
        landed: Option<&Landed>,
        now_ms: i64,
    ) -> Option<Step> {
        match self.phase_with(st, health, landed) {
            // Seen done now: record it, so that it stays done.
            Phase::Done if self.done_at().is_none() => {
                return Some(Step::OpenWave {
                    rollout: self.id.clone(),
                    wave: self.spec.waves.len(),
                });
            }
            Phase::Running => {}
            _ => return None,
        }
        let waves = self.wave_status_with(st, health, landed);
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

/// How many nodes each wave of `waves` (cumulative percentages) holds when
/// the rollout covers `nodes` nodes. The cumulative counts are the shares
/// rounded half up, then moved by as little as needed so that the first wave
/// holds a node (if there is one), no wave is empty when there are at least
/// as many nodes as waves, and the last wave ends with every node. No wave is
/// more than one node above its share. A spec read from the document is not
/// trusted to be well formed: percentages above 100 count as 100, a
/// decrease as no change, and no waves as one wave of 100.
pub fn wave_counts(nodes: usize, waves: &[u8]) -> Vec<usize> {
    let n = nodes;
    let w = waves.len().max(1);
    let mut counts = Vec::with_capacity(w);
    let mut prev = 0; // cumulative count of the waves before
    for k in 0..w {
        let share = if k == w - 1 {
            n
        } else {
            let p = waves.get(k).map_or(100, |p| u128::from((*p).min(100)));
            usize::try_from((n as u128 * p + 50) / 100).unwrap_or(n)
        };
        let cum = if n >= w {
            // Room for one node in each wave before and after this one.
            share.max(prev + 1).min(n - (w - 1 - k))
        } else {
            let least = if k == 0 { n.min(1) } else { prev };
            share.max(least).min(n)
        };
        counts.push(cum - prev);
        prev = cum;
    }
    counts
}

/// The node count of each wave a rollout of `spec` has over the fleet as
/// `st` holds it now (what `rollout start` prints).
pub fn wave_sizes(spec: &RolloutSpec, st: &FleetState) -> Vec<usize> {
    let covered = st
        .nodes
        .values()
        .filter(|n| spec.covers(n.site.as_str()))
        .count();
    wave_counts(covered, &spec.waves)
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

    fn spec(waves: &[u8], sites: &[&str]) -> RolloutSpec {
        RolloutSpec {
            set: BTreeMap::from([("frigate.version".to_string(), Value::from("0.14"))]),
            sites: sites.iter().map(|s| s.to_string()).collect(),
            waves: waves.to_vec(),
            soak_ms: 0,
            max_fail: 0,
            by: "ops".into(),
            at_ms: 0,
        }
    }

    fn add_node(st: &mut FleetState, id: &str, site: &str) {
        let id = NodeId::parse(id).unwrap();
        st.nodes.insert(
            id.clone(),
            crate::document::Node {
                id,
                site: crate::SiteId::parse(site).unwrap(),
                record: crate::document::NodeRecord {
                    site: site.into(),
                    role: None,
                },
                overrides: Default::default(),
                key: None,
                resume_ms: None,
            },
        );
    }

    fn fleet(nodes: usize) -> FleetState {
        let mut st = FleetState::default();
        for i in 0..nodes {
            add_node(&mut st, &format!("n{i}"), "S1");
        }
        st
    }

    /// Nodes per wave, counted from the assignment itself.
    fn counted(r: &Rollout, st: &FleetState) -> Vec<usize> {
        let mut counts = vec![0; r.spec.waves.len()];
        for w in r.assignment(st).values() {
            counts[*w] += 1;
        }
        counts
    }

    #[test]
    fn small_fleets_get_a_canary_and_no_wave_above_its_share() {
        let cases: &[(&[u8], usize, &[usize])] = &[
            (&[5, 25, 100], 1, &[1, 0, 0]),
            (&[5, 25, 100], 2, &[1, 0, 1]),
            (&[5, 25, 100], 3, &[1, 1, 1]),
            (&[5, 25, 100], 4, &[1, 1, 2]),
            (&[5, 25, 100], 10, &[1, 2, 7]),
            (&[5, 25, 100], 100, &[5, 20, 75]),
            (&[50, 100], 1, &[1, 0]),
            (&[50, 100], 2, &[1, 1]),
            (&[50, 100], 3, &[2, 1]),
            (&[50, 100], 4, &[2, 2]),
            (&[50, 100], 10, &[5, 5]),
            (&[50, 100], 100, &[50, 50]),
        ];
        for (waves, nodes, want) in cases {
            let sp = spec(waves, &[]);
            let st = fleet(*nodes);
            assert_eq!(
                wave_counts(*nodes, waves),
                *want,
                "{nodes} nodes, {waves:?}"
            );
            assert_eq!(wave_sizes(&sp, &st), *want, "{nodes} nodes, {waves:?}");
            for id in ["r1", "r2", "abcd"] {
                let r = Rollout::new(id.into(), sp.clone());
                assert_eq!(
                    counted(&r, &st),
                    *want,
                    "rollout {id}, {nodes} nodes, {waves:?}"
                );
            }
        }
    }

    #[test]
    fn every_replica_puts_a_node_in_the_same_wave() {
        let sp = spec(&[5, 25, 100], &[]);
        let st = fleet(200);
        // The same nodes, learnt in another order, on another replica.
        let mut other = FleetState::default();
        for i in (0..200).rev() {
            add_node(&mut other, &format!("n{i}"), "S1");
        }
        let r = Rollout::new("r1".into(), sp.clone());
        let again = Rollout::new("r1".into(), sp.clone());
        let a = r.assignment(&st);
        assert_eq!(a, again.assignment(&other));
        for (n, w) in &a {
            assert_eq!(r.wave_of(&st, n), Some(*w), "wave_of agrees for {n}");
        }
        assert_eq!(counted(&r, &st), [10, 40, 150]);
        // Another rollout draws another canary.
        let b = Rollout::new("r2".into(), sp).assignment(&st);
        assert_ne!(
            a.iter()
                .filter(|(_, w)| **w == 0)
                .map(|(n, _)| n)
                .collect::<std::collections::BTreeSet<_>>(),
            b.iter().filter(|(_, w)| **w == 0).map(|(n, _)| n).collect(),
        );
    }

    #[test]
    fn only_the_open_waves_get_the_settings_and_every_view_agrees() {
        let mut st = fleet(30);
        let mut r = Rollout::new("r1".into(), spec(&[10, 50, 100], &[]));
        st.rollouts.push(r.clone());
        let check = |st: &FleetState, r: &Rollout, open: usize| {
            let a = r.assignment(st);
            let reached = r.reaches(st);
            let all = st.effective_all();
            for (n, w) in &a {
                let want = *w < open;
                assert_eq!(r.applies_to(st, n), want, "{n} in wave {w}");
                assert_eq!(reached.contains(n), want, "{n} in wave {w}");
                let eff = st.effective_node(n).unwrap();
                assert_eq!(eff.revision(), all[n].revision(), "{n}");
                assert_eq!(
                    eff.to_tree().pointer("/frigate/version").is_some(),
                    want,
                    "{n} in wave {w}"
                );
            }
        };
        check(&st, &r, 1);
        r.events.opened.insert(1, 5);
        st.rollouts[0] = r.clone();
        check(&st, &r, 2);
        r.events.opened.insert(2, 6);
        st.rollouts[0] = r.clone();
        check(&st, &r, 3);
    }

    #[test]
    fn only_the_covered_sites_count() {
        let mut st = fleet(3);
        for i in 0..20 {
            add_node(&mut st, &format!("m{i}"), "S2");
        }
        let sp = spec(&[5, 25, 100], &["S1"]);
        assert_eq!(wave_sizes(&sp, &st), [1, 1, 1]);
        let r = Rollout::new("r".into(), sp);
        assert_eq!(r.assignment(&st).len(), 3);
        assert_eq!(r.wave_of(&st, &NodeId::parse("m1").unwrap()), None);
        assert_eq!(
            r.wave_of(&st, &NodeId::parse("zz").unwrap()),
            None,
            "unknown node"
        );
        assert!(r.wave_of(&st, &NodeId::parse("n1").unwrap()).is_some());
    }

    #[test]
    fn malformed_waves_from_another_replica_do_not_panic() {
        for waves in [
            &[][..],
            &[0],
            &[200, 100],
            &[50, 20],
            &[10, 20],
            &[100, 100, 100],
        ] {
            for n in [0, 1, 2, 5, 40] {
                let c = wave_counts(n, waves);
                assert_eq!(c.iter().sum::<usize>(), n, "{waves:?} {n}");
                assert!(n == 0 || c[0] >= 1, "{waves:?} {n}: {c:?}");
            }
        }
    }

    proptest::proptest! {
        /// Every wave non-empty when there are as many nodes as waves, the
        /// cumulative counts never go down, the last wave covers every node,
        /// and no wave is more than one node above its share.
        #[test]
        fn wave_counts_cover_every_node_and_follow_the_shares(
            nodes in 0usize..400,
            raw in proptest::collection::btree_set(1u8..100, 0..6),
        ) {
            let mut waves: Vec<u8> = raw.into_iter().collect();
            waves.push(100);
            let counts = wave_counts(nodes, &waves);
            proptest::prop_assert_eq!(counts.len(), waves.len());
            proptest::prop_assert_eq!(counts.iter().sum::<usize>(), nodes, "the last wave covers all");
            if nodes > 0 {
                proptest::prop_assert!(counts[0] >= 1, "a canary: {:?}", counts);
            }
            if nodes >= waves.len() {
                proptest::prop_assert!(counts.iter().all(|c| *c >= 1), "no empty wave: {:?}", counts);
            }
            let mut cum = 0usize;
            let mut prev_pct = 0u8;
            for (c, p) in counts.iter().zip(&waves) {
                let before = cum;
                cum += c;
                proptest::prop_assert!(cum >= before, "monotone");
                let share = nodes as f64 * f64::from(p - prev_pct) / 100.0;
                proptest::prop_assert!(
                    (*c as f64) <= share + 1.0,
                    "{} nodes in a wave of share {share}: {:?} for {:?}", c, counts, waves
                );
                prev_pct = *p;
            }
        }
    }

    /// A node that applied the config `st` wants for it, with `result`.
    fn report(
        st: &FleetState,
        node: &str,
        result: ApplyResult,
        at_ms: i64,
    ) -> (String, StoredRegister) {
        let revision = st
            .effective_node(&NodeId::parse(node).unwrap())
            .unwrap()
            .revision();
        let reg = crate::health::HealthRegister {
            node: node.into(),
            seq: 1,
            time_ms: at_ms,
            applied: Some(crate::health::ApplyReport {
                revision,
                result,
                error: None,
                duration_ms: 1,
                at_ms,
                from: Vec::new(),
            }),
            ..Default::default()
        };
        (
            node.into(),
            StoredRegister {
                reg,
                received_ms: at_ms,
                ver: 1,
            },
        )
    }

    #[test]
    fn a_done_rollout_stays_done_whatever_comes_after() {
        let mut st = fleet(4);
        st.sites.insert(
            crate::SiteId::parse("S1").unwrap(),
            crate::document::Site {
                id: crate::SiteId::parse("S1").unwrap(),
                record: crate::document::SiteRecord {
                    name: "S1".into(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
                overrides: Default::default(),
            },
        );
        let mut first = Rollout::new("first".into(), spec(&[50, 100], &[]));
        first.events.opened.insert(1, 10);
        st.rollouts.push(first.clone());
        let now = 1_000;
        let health: HashMap<String, StoredRegister> = (0..4)
            .map(|i| report(&st, &format!("n{i}"), ApplyResult::Ok, 100))
            .collect();
        assert_eq!(first.phase(&st, &health), Phase::Done);
        // The replica that sees it done records it.
        let step = first.progress(&st, &health, now);
        assert_eq!(
            step,
            Some(Step::OpenWave {
                rollout: "first".into(),
                wave: 2
            }),
            "done is recorded as the wave after the last"
        );
        first.events.opened.insert(2, now);
        st.rollouts[0] = first.clone();
        assert_eq!(first.done_at(), Some(now));
        assert_eq!(first.progress(&st, &health, now), None, "recorded once");

        // A later rollout on the same nodes fails on every one of them.
        let mut later = spec(&[100], &[]);
        later.set = BTreeMap::from([("retention.days".to_string(), Value::from(9))]);
        later.at_ms = 500;
        st.rollouts.push(Rollout::new("later".into(), later));
        let health: HashMap<String, StoredRegister> = (0..4)
            .map(|i| report(&st, &format!("n{i}"), ApplyResult::Failed, 600))
            .collect();
        assert_eq!(st.rollouts[1].phase(&st, &health), Phase::Running);
        assert!(matches!(
            st.rollouts[1].progress(&st, &health, now),
            Some(Step::Halt { .. })
        ));
        assert_eq!(first.phase(&st, &health), Phase::Done);
        assert_eq!(first.progress(&st, &health, now), None, "nothing to halt");
        // Without the record, the same view would have halted it: what
        // the record is for.
        let mut unrecorded = first.clone();
        unrecorded.events.opened.remove(&2);
        assert!(matches!(
            unrecorded.progress(&st, &health, now),
            Some(Step::Halt { .. })
        ));

        // Nodes added afterwards, that have applied nothing yet.
        add_node(&mut st, "n4", "S1");
        add_node(&mut st, "n5", "S1");
        assert_eq!(first.phase(&st, &health), Phase::Done);
        assert_eq!(first.progress(&st, &health, now), None);
        assert!(
            first.applies_to(&st, &NodeId::parse("n5").unwrap()),
            "a new node gets a done rollout's settings"
        );

        // A halt written concurrently by a replica that had not seen it done
        // does not undo it; an operator's abort still takes it off.
        first.events.halted = Some((now + 1, "late".into()));
        assert_eq!(first.phase(&st, &health), Phase::Done);
        first.events.aborted = Some(now + 2);
        assert_eq!(first.phase(&st, &health), Phase::Aborted);
        assert!(!first.applies_to(&st, &NodeId::parse("n5").unwrap()));
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
        let mut other = FleetState::default();
        add_node(&mut other, "n", "S2");
        assert!(
            r.wave_of(&other, &NodeId::parse("n").unwrap()).is_none(),
            "other sites are not covered"
        );
    }
}

//! Fault injection for the transport: partitions between named replicas,
//! delay and random connection drops. Tests and the scenario runner hold a
//! [`Faults`] and change it while replicas run; sessions consult it on every
//! frame and on every connect, and a live session wakes when a partition is
//! set ([`Faults::subscribe_cuts`]), so there are no test-only branches
//! elsewhere and no session polls for faults that are never set.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetdeck_store::MemberKey;
use tokio::sync::watch;

#[derive(Default)]
struct State {
    /// Replicas cut off from everyone.
    isolated: BTreeSet<MemberKey>,
    /// Pairs that cannot reach each other (stored ordered).
    cut: BTreeSet<(MemberKey, MemberKey)>,
    delay: Duration,
    /// Probability (per million) that a frame kills its connection.
    drop_ppm: u32,
    rng: u64,
}

/// Shared, cheap to clone; the default lets everything through.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    /// Ticks whenever cuts or isolations change.
    cuts: Arc<watch::Sender<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Arc::default(),
            cuts: Arc::new(watch::channel(0).0),
        }
    }
}

fn pair(a: &MemberKey, b: &MemberKey) -> (MemberKey, MemberKey) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

/// Every link between the two groups (a replica is never cut from itself),
/// for [`Faults::set_cuts`].
pub fn links_between<'a>(
    a: &'a [MemberKey],
    b: &'a [MemberKey],
) -> impl Iterator<Item = (MemberKey, MemberKey)> + 'a {
    a.iter()
        .flat_map(move |x| b.iter().filter(move |y| *y != x).map(move |y| pair(x, y)))
}

impl Faults {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// [`Faults::with`] for a change of cuts or isolations: live sessions
    /// are told, to end those now cut.
    fn cut_with(&self, f: impl FnOnce(&mut State)) {
        self.with(f);
        self.cuts.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Ticks whenever cuts or isolations change.
    pub(crate) fn subscribe_cuts(&self) -> watch::Receiver<u64> {
        self.cuts.subscribe()
    }

    /// Cuts every link between the two groups.
    pub fn partition(&self, a: &[MemberKey], b: &[MemberKey]) {
        self.cut_with(|s| s.cut.extend(links_between(a, b)));
    }

    /// Replaces every partition and isolation with exactly these cuts, in
    /// one step: a link cut before and after is never open in between.
    pub fn set_cuts(&self, cuts: impl IntoIterator<Item = (MemberKey, MemberKey)>) {
        let cut = cuts.into_iter().map(|(a, b)| pair(&a, &b)).collect();
        self.cut_with(|s| {
            s.cut = cut;
            s.isolated.clear();
        });
    }

    /// Restores the link between two replicas (other cuts stay).
    pub fn reconnect(&self, a: &MemberKey, b: &MemberKey) {
        self.cut_with(|s| {
            s.cut.remove(&pair(a, b));
        });
    }

    /// Cuts a replica off from everyone (a site losing its WAN, a dead hub).
    pub fn isolate(&self, k: &MemberKey) {
        self.cut_with(|s| {
            s.isolated.insert(k.clone());
        });
    }

    /// Heals every partition and isolation.
    pub fn heal(&self) {
        self.cut_with(|s| {
            s.cut.clear();
            s.isolated.clear();
        });
    }

    pub fn set_delay(&self, d: Duration) {
        self.with(|s| s.delay = d);
    }

    /// Each frame kills its connection with this probability (0.0 to 1.0).
    pub fn set_drop_rate(&self, p: f64, seed: u64) {
        self.with(|s| {
            s.drop_ppm = (p.clamp(0.0, 1.0) * 1_000_000.0) as u32;
            s.rng = seed | 1;
        });
    }

    pub fn blocked(&self, a: &MemberKey, b: &MemberKey) -> bool {
        self.with(|s| {
            s.isolated.contains(a) || s.isolated.contains(b) || s.cut.contains(&pair(a, b))
        })
    }

    pub(crate) fn delay(&self) -> Duration {
        self.with(|s| s.delay)
    }

    pub(crate) fn should_drop(&self) -> bool {
        self.with(|s| {
            if s.drop_ppm == 0 {
                return false;
            }
            s.rng ^= s.rng << 13;
            s.rng ^= s.rng >> 7;
            s.rng ^= s.rng << 17;
            (s.rng % 1_000_000) < s.drop_ppm as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(b: u8) -> MemberKey {
        MemberKey::from_bytes(&[b; 32])
    }

    #[test]
    fn partitions_are_symmetric_and_heal() {
        let f = Faults::default();
        f.partition(&[k(1), k(2)], &[k(3)]);
        assert!(f.blocked(&k(3), &k(1)) && f.blocked(&k(2), &k(3)));
        assert!(!f.blocked(&k(1), &k(2)));
        f.isolate(&k(1));
        assert!(f.blocked(&k(1), &k(2)));
        f.heal();
        assert!(!f.blocked(&k(1), &k(3)) && !f.blocked(&k(1), &k(2)));
    }
}

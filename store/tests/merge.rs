//! Properties of merging and reconcile. proptest prints the failing case and
//! its seed; rerun with PROPTEST_CASES / the persisted regression file.

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::ActorId;
use fleetdeck_store::config::{self, ConfigPath, Layer};
use fleetdeck_store::document::{FleetDoc, LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::identity::Identity;
use fleetdeck_store::{NodeId, SiteId};
use proptest::prelude::*;
use serde_json::{Value, json};

const KEYS: &[&str] = &[
    "retention.days",
    "frigate.version",
    "dns.allow",
    "net.vlan",
    "net",
];
const SITES: &[&str] = &["BL-LAB-1", "BL-LAB-2"];

#[derive(Clone, Debug)]
enum Op {
    /// Replica `r` sets KEYS[k] in layer `l` (0 fleet, 1.. site) to `v`.
    Set { r: usize, l: usize, k: usize, v: u8 },
    /// Replica `r` unsets KEYS[k] in layer `l`.
    Unset { r: usize, l: usize, k: usize },
    /// Replica `to` receives everything replica `from` has.
    Sync { from: usize, to: usize },
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..n, 0..=SITES.len(), 0..KEYS.len(), any::<u8>()).prop_map(|(r, l, k, v)| Op::Set { r, l, k, v }),
        1 => (0..n, 0..=SITES.len(), 0..KEYS.len()).prop_map(|(r, l, k)| Op::Unset { r, l, k }),
        2 => (0..n, 0..n).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn layer(l: usize) -> LayerRef {
    match l {
        0 => LayerRef::Fleet,
        i => LayerRef::Site(SiteId::parse(SITES[i - 1]).unwrap()),
    }
}

fn value(v: u8) -> Value {
    match v % 3 {
        0 => json!(v),
        1 => json!(format!("v{v}")),
        _ => json!([v, v]),
    }
}

fn genesis() -> FleetDoc {
    let id = Identity::generate();
    let mut d = FleetDoc::genesis(id.new_actor(), "f", "fleet", id.key(), "ops", 1).unwrap();
    for s in SITES {
        let rec = SiteRecord {
            name: s.to_string(),
            lat: None,
            lon: None,
            zone: None,
        };
        d.add_site(&SiteId::parse(s).unwrap(), &rec).unwrap();
        let n = NodeId::parse(&format!("{s}-n")).unwrap();
        d.add_node(
            &n,
            &NodeRecord {
                site: s.to_string(),
                role: None,
            },
        )
        .unwrap();
    }
    d.commit("sites", 2);
    d
}

fn replica_of(base: &mut FleetDoc) -> FleetDoc {
    let mut am = base.automerge_mut().fork();
    am.set_actor(ActorId::random());
    FleetDoc::from_automerge(am).unwrap()
}

fn sync(from: &mut FleetDoc, to: &mut FleetDoc) {
    let have = to.heads();
    let changes = from.automerge_mut().get_changes(&have);
    to.automerge_mut().apply_changes(changes).unwrap();
}

fn effective_all(d: &FleetDoc) -> BTreeMap<String, Value> {
    let st = d.state().unwrap();
    st.effective_all()
        .into_iter()
        .map(|(n, e)| (n.to_string(), e.to_tree()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any interleaving of edits and partial syncs, then a full exchange:
    /// every replica has the same heads and the same effective config, and
    /// a key that only one replica ever wrote keeps that replica's last value.
    #[test]
    fn concurrent_edits_converge_in_any_order_and_nothing_is_lost(
        n in 2usize..5,
        ops in prop::collection::vec(op(4), 1..40),
    ) {
        let mut base = genesis();
        let mut reps: Vec<FleetDoc> = (0..n).map(|_| replica_of(&mut base)).collect();
        // (layer, key) → (writers, last value written by the last writer)
        let mut writes: BTreeMap<(usize, usize), (Vec<usize>, Option<Value>)> = BTreeMap::new();
        let mut t = 10;
        for op in ops {
            t += 1;
            match op {
                Op::Set { r, l, k, v } if r < n => {
                    let path = ConfigPath::parse(KEYS[k]).unwrap();
                    if reps[r].set_config(&layer(l), &path, &value(v)).is_ok() {
                        reps[r].commit("set", t);
                        let e = writes.entry((l, k)).or_default();
                        e.0.push(r);
                        e.1 = Some(value(v));
                    } else {
                        reps[r].rollback();
                    }
                }
                Op::Unset { r, l, k } if r < n => {
                    let path = ConfigPath::parse(KEYS[k]).unwrap();
                    if reps[r].unset_config(&layer(l), &path).is_ok() {
                        reps[r].commit("unset", t);
                        let e = writes.entry((l, k)).or_default();
                        e.0.push(r);
                        e.1 = None;
                    } else {
                        reps[r].rollback();
                    }
                }
                Op::Sync { from, to } if from < n && to < n && from != to => {
                    let (a, b) = if from < to {
                        let (x, y) = reps.split_at_mut(to);
                        (&mut x[from], &mut y[0])
                    } else {
                        let (x, y) = reps.split_at_mut(from);
                        (&mut y[0], &mut x[to])
                    };
                    sync(a, b);
                }
                _ => {}
            }
        }
        // Full exchange: everyone sends to replica 0, then 0 to everyone.
        for i in 1..n {
            let (x, y) = reps.split_at_mut(i);
            sync(&mut y[0], &mut x[0]);
        }
        for i in 1..n {
            let (x, y) = reps.split_at_mut(i);
            sync(&mut x[0], &mut y[0]);
        }
        let heads0 = reps[0].heads();
        let eff0 = effective_all(&reps[0]);
        for r in reps.iter_mut().skip(1) {
            prop_assert_eq!(r.heads(), heads0.clone());
            prop_assert_eq!(effective_all(r), eff0.clone());
        }
        // Keys written by a single replica, where no other key in the same
        // layer shadows them (`net` vs `net.vlan`), hold its last write.
        let st = reps[0].state().unwrap();
        for ((l, k), (writers, last)) in &writes {
            let single = writers.iter().all(|w| *w == writers[0]);
            let related = writes.keys().any(|(l2, k2)| l2 == l && k2 != k
                && (KEYS[*k2].starts_with(KEYS[*k]) || KEYS[*k].starts_with(KEYS[*k2])));
            if single && !related {
                let layer_map = st.layer(&layer(*l)).unwrap();
                let got = layer_map.get(&ConfigPath::parse(KEYS[*k]).unwrap()).map(|v| (**v).clone());
                prop_assert_eq!(&got, last, "key {} in layer {}", KEYS[*k], l);
            }
        }
        prop_assert!(reps[0].conflicts().is_ok());
    }

    /// A single leaf looked up through the layers is what the full merge says.
    #[test]
    fn reconcile_lookup_agrees_with_the_full_merge(
        layers in prop::collection::vec(
            prop::collection::btree_map(0..KEYS.len(), prop_oneof![Just(None), any::<u8>().prop_map(Some)], 0..5),
            3,
        ),
    ) {
        let built: Vec<Layer> = layers
            .iter()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let val = v.map_or(Value::Null, value);
                        (ConfigPath::parse(KEYS[*k]).unwrap(), Arc::new(val))
                    })
                    .collect()
            })
            .collect();
        let eff = config::effective(&built[0], Some(&built[1]), Some(&built[2]));
        let again = config::effective(&built[0], Some(&built[1]), Some(&built[2]));
        prop_assert_eq!(&eff, &again, "reconcile is deterministic");
        for key in KEYS.iter().chain(["net.vlan.id", "other"].iter()) {
            let p = ConfigPath::parse(key).unwrap();
            let got = config::lookup(&[Some(&built[2]), Some(&built[1]), Some(&built[0])], p.segments());
            let want = eff.get(&p);
            // A lookup of a map-valued key has no leaf; the merge agrees.
            prop_assert_eq!(got, want, "key {}", key);
        }
    }
}

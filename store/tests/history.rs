//! `history` lists the changes of a fleet in the same order on every replica
//! that holds them, whatever order they arrived in.

use automerge::ActorId;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{FleetDoc, LayerRef};
use fleetdeck_store::identity::Identity;
use serde_json::json;

fn replica_of(base: &mut FleetDoc) -> FleetDoc {
    let mut am = base.automerge_mut().fork();
    am.set_actor(ActorId::random());
    FleetDoc::from_automerge(am).unwrap()
}

/// Writes `key = v` as one change made at `t_ms`.
fn edit(d: &mut FleetDoc, key: &str, v: i64, t_ms: i64) {
    let p = ConfigPath::parse(key).unwrap();
    d.set_config(&LayerRef::Fleet, &p, &json!(v)).unwrap();
    d.commit(&format!("set {key} to {v}"), t_ms).unwrap();
}

fn listed(d: &mut FleetDoc) -> Vec<String> {
    d.history().into_iter().map(|e| e.id).collect()
}

#[test]
fn converged_replicas_list_equal_time_changes_in_the_same_order() {
    let id = Identity::generate();
    let mut base = FleetDoc::genesis(id.new_actor(), "f", "fleet", id.key(), "ops", 1).unwrap();
    // Three writers, each with a chain of changes, all at the same moment.
    let mut writers: Vec<FleetDoc> = (0..3).map(|_| replica_of(&mut base)).collect();
    let mut made = Vec::new();
    for (w, d) in writers.iter_mut().enumerate() {
        let before = d.heads();
        for k in 0..3 {
            edit(d, "retention.days", (w * 10 + k + 1) as i64, 1_000);
        }
        made.push(d.automerge_mut().get_changes(&before));
    }
    // Replica x hears the writers in order 0, 1, 2; replica y in 2, 1, 0,
    // and z gets every change one at a time, newest writer first, with each
    // writer's chain in order.
    let mut x = replica_of(&mut base);
    for changes in &made {
        x.automerge_mut().apply_changes(changes.clone()).unwrap();
    }
    let mut y = replica_of(&mut base);
    for changes in made.iter().rev() {
        y.automerge_mut().apply_changes(changes.clone()).unwrap();
    }
    let mut z = replica_of(&mut base);
    for changes in made.iter().rev() {
        for c in changes {
            z.automerge_mut().apply_changes(vec![c.clone()]).unwrap();
        }
    }
    assert_eq!(x.heads(), y.heads(), "the replicas converged");
    assert_eq!(x.heads(), z.heads(), "the replicas converged");
    let lx = listed(&mut x);
    assert_eq!(lx.len(), 1 + 9, "genesis and nine edits");
    assert_eq!(lx, listed(&mut y), "same order on x and y");
    assert_eq!(lx, listed(&mut z), "same order on x and z");
    // Each writer's own changes are listed in the order it made them (a
    // change after its dependency).
    let hist = x.history();
    let pos = |h: &automerge::ChangeHash| lx.iter().position(|i| *i == h.to_string()).unwrap();
    for changes in &made {
        let at: Vec<usize> = changes.iter().map(|c| pos(&c.hash())).collect();
        assert!(at.windows(2).all(|p| p[0] < p[1]), "causal order: {at:?}");
    }
    assert_eq!(hist[0].time_ms, 1, "genesis first");
}

#[test]
fn a_later_change_is_listed_after_an_earlier_concurrent_one() {
    let id = Identity::generate();
    let mut base = FleetDoc::genesis(id.new_actor(), "f", "fleet", id.key(), "ops", 1).unwrap();
    let mut a = replica_of(&mut base);
    let mut b = replica_of(&mut base);
    edit(&mut a, "retention.days", 1, 2_000);
    edit(&mut b, "retention.days", 2, 1_000);
    let (ha, hb) = (a.heads(), b.heads());
    let from_a = a.automerge_mut().get_changes(&base.heads());
    let from_b = b.automerge_mut().get_changes(&base.heads());
    a.automerge_mut().apply_changes(from_b).unwrap();
    b.automerge_mut().apply_changes(from_a).unwrap();
    let la = listed(&mut a);
    assert_eq!(la, listed(&mut b));
    assert_eq!(
        la[1],
        hb[0].to_string(),
        "the earlier of two concurrent changes first"
    );
    assert_eq!(la[2], ha[0].to_string());
}

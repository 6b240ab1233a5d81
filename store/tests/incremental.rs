//! The replica keeps its typed state up to date by re-reading only the parts
//! of the document an edit or a merge touched. Property: after any sequence
//! of edits on two replicas and merges between them, each replica's state is
//! exactly what reading the whole document gives. proptest prints the
//! failing case; rerun with PROPTEST_CASES.

use std::collections::BTreeMap;

use fleetdeck_store::alerts::Ack;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{CommandRecord, FreezeRecord, LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::identity::Identity;
use fleetdeck_store::rollout::RolloutSpec;
use fleetdeck_store::{NodeId, Replica, Role, SiteId};
use proptest::prelude::*;
use serde_json::json;

const SITES: &[&str] = &["S1", "S2", "S3"];
const NODES: &[&str] = &["n1", "n2", "n3", "n4"];
const KEYS: &[&str] = &["retention.days", "frigate.version", "net.vlan", "dns.allow"];

#[derive(Clone, Debug)]
enum Op {
    /// Replica `r` adds site `s` (refused if it exists: nothing changes).
    AddSite {
        r: usize,
        s: usize,
    },
    /// Replica `r` removes site `s` and its nodes.
    RmSite {
        r: usize,
        s: usize,
    },
    AddNode {
        r: usize,
        n: usize,
        s: usize,
    },
    RmNode {
        r: usize,
        n: usize,
    },
    /// Sets KEYS[k] at layer `l`: 0 fleet, 1..=3 a site, 4..=7 a node.
    Set {
        r: usize,
        l: usize,
        k: usize,
        v: u8,
    },
    Unset {
        r: usize,
        l: usize,
        k: usize,
    },
    Member {
        r: usize,
        v: u8,
    },
    Ack {
        r: usize,
        v: u8,
    },
    Freeze {
        r: usize,
        on: bool,
    },
    Rollout {
        r: usize,
        v: u8,
    },
    Command {
        r: usize,
        v: u8,
    },
    /// Replica `to` receives everything replica `from` has.
    Sync {
        from: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..2usize;
    prop_oneof![
        2 => (r.clone(), 0..SITES.len()).prop_map(|(r, s)| Op::AddSite { r, s }),
        1 => (r.clone(), 0..SITES.len()).prop_map(|(r, s)| Op::RmSite { r, s }),
        2 => (r.clone(), 0..NODES.len(), 0..SITES.len()).prop_map(|(r, n, s)| Op::AddNode { r, n, s }),
        1 => (r.clone(), 0..NODES.len()).prop_map(|(r, n)| Op::RmNode { r, n }),
        4 => (r.clone(), 0..8usize, 0..KEYS.len(), any::<u8>()).prop_map(|(r, l, k, v)| Op::Set { r, l, k, v }),
        1 => (r.clone(), 0..8usize, 0..KEYS.len()).prop_map(|(r, l, k)| Op::Unset { r, l, k }),
        1 => (r.clone(), any::<u8>()).prop_map(|(r, v)| Op::Member { r, v }),
        1 => (r.clone(), any::<u8>()).prop_map(|(r, v)| Op::Ack { r, v }),
        1 => (r.clone(), any::<bool>()).prop_map(|(r, on)| Op::Freeze { r, on }),
        1 => (r.clone(), any::<u8>()).prop_map(|(r, v)| Op::Rollout { r, v }),
        1 => (r.clone(), any::<u8>()).prop_map(|(r, v)| Op::Command { r, v }),
        3 => (0..2usize, 0..2usize).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn layer(l: usize) -> LayerRef {
    match l {
        0 => LayerRef::Fleet,
        1..=3 => LayerRef::Site(SiteId::parse(SITES[l - 1]).expect("site id")),
        _ => LayerRef::Node(NodeId::parse(NODES[l - 4]).expect("node id")),
    }
}

fn edit(replicas: &mut [Replica], op: &Op) {
    let site = |s: usize| SiteId::parse(SITES[s]).expect("site id");
    let node = |n: usize| NodeId::parse(NODES[n]).expect("node id");
    // Edits may be refused (a node of a missing site, a key set twice to the
    // same value): what matters is that the state follows the document.
    let _ = match op {
        Op::AddSite { r, s } => replicas[*r].change("add site", |d, _| {
            let rec = SiteRecord {
                name: SITES[*s].to_string(),
                lat: Some(1.0),
                lon: Some(2.0),
                zone: Some("z".into()),
            };
            d.add_site(&site(*s), &rec)
        }),
        Op::RmSite { r, s } => {
            replicas[*r].change("rm site", |d, _| d.remove_site(&site(*s), true))
        }
        Op::AddNode { r, n, s } => replicas[*r].change("add node", |d, _| {
            let rec = NodeRecord {
                site: SITES[*s].to_string(),
                role: Some("edge".into()),
            };
            d.add_node(&node(*n), &rec)
        }),
        Op::RmNode { r, n } => replicas[*r].change("rm node", |d, _| d.remove_node(&node(*n))),
        Op::Set { r, l, k, v } => replicas[*r].change("set", |d, _| {
            let path = ConfigPath::parse(KEYS[*k])?;
            let value = if KEYS[*k] == "dns.allow" {
                json!([format!("h{v}.example")])
            } else if KEYS[*k] == "frigate.version" {
                json!(format!("0.{v}"))
            } else {
                json!(*v)
            };
            d.set_config(&layer(*l), &path, &value)
        }),
        Op::Unset { r, l, k } => replicas[*r].change("unset", |d, _| {
            d.unset_config(&layer(*l), &ConfigPath::parse(KEYS[*k])?)
        }),
        Op::Member { r, v } => replicas[*r].change("member", |d, _| {
            let key = Identity::generate().key().clone();
            d.put_member(&key, &format!("m{v}"), Role::Node, i64::from(*v))
        }),
        Op::Ack { r, v } => replicas[*r].change("ack", |d, _| {
            let ack = Ack {
                by: "ops".into(),
                at_ms: i64::from(*v),
                until_ms: None,
                since_ms: Some(1),
            };
            d.put_ack(&format!("a{}", v % 4), &ack)
        }),
        Op::Freeze { r, on } => replicas[*r].change("freeze", |d, _| {
            d.set_freeze(&FreezeRecord {
                frozen: *on,
                by: "ops".into(),
                at_ms: 5,
                message: String::new(),
            })
        }),
        Op::Rollout { r, v } => replicas[*r].change("rollout", |d, _| {
            let id = format!("ro{}", v % 3);
            let spec = RolloutSpec {
                set: BTreeMap::from([("retention.days".to_string(), json!(*v))]),
                sites: Vec::new(),
                waves: vec![50, 100],
                soak_ms: 1000,
                max_fail: 1,
                by: "ops".into(),
                at_ms: i64::from(*v),
            };
            if d.add_rollout(&id, &spec).is_err() {
                d.rollout_event(&id, "halt", i64::from(*v), Some("test"))?;
            }
            Ok(())
        }),
        Op::Command { r, v } => replicas[*r].change("command", |d, _| {
            let rec = CommandRecord {
                action: "restart".into(),
                target: "all".into(),
                by: "ops".into(),
                at_ms: i64::from(*v),
            };
            d.add_command(&format!("c{v}"), &rec)
        }),
        Op::Sync { from, to } => {
            if from != to {
                let heads = replicas[*to].heads();
                let changes = replicas[*from].changes_after(&heads);
                replicas[*to]
                    .apply_changes(changes)
                    .expect("changes of a replica of the same fleet apply");
            }
            return;
        }
    }
    .map(|_| ());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn incremental_state_matches_a_full_read(ops in prop::collection::vec(op(), 1..60)) {
        let dirs = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
        let a = Replica::init(dirs[0].path(), "ops", "fleet").expect("init");
        let genesis = {
            let mut a = a;
            let changes = a.changes_after(&[]);
            drop(a);
            changes
        };
        let b = Replica::init_from_changes(dirs[1].path(), genesis).expect("second replica");
        let a = Replica::open(dirs[0].path()).expect("reopen");
        let mut replicas = [a, b];
        for (i, op) in ops.iter().enumerate() {
            edit(&mut replicas, op);
            for (r, replica) in replicas.iter_mut().enumerate() {
                let full = replica.doc_mut().state().expect("full read");
                prop_assert_eq!(
                    replica.state().as_ref(),
                    &full,
                    "replica {} after op {} ({:?})",
                    r,
                    i,
                    op
                );
            }
        }
    }
}

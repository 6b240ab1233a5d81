//! Admission benchmark (issue 11): what it costs a replica to admit one
//! change that arrived from elsewhere, in a 100-member fleet and in a
//! 10,000-node fleet: the signature check, the rights check (the author's
//! role and every op judged against the document at the change's
//! dependencies) and taking the change in and storing it, shown apart; with,
//! in the same run, the check the gate made before (is the author a member)
//! and automerge applying the change alone as the baseline.
//!
//! Run: `cargo bench -p fleetdeck-store --bench admit`
//! (`FLEETDECK_BENCH_QUICK=1` for a smoke run: 20 nodes, few rounds; its
//! figures are not the measured setup).

use std::hint::black_box;
use std::time::{Duration, Instant};

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::ops::{self, ConfigEdit, Op};
use fleetdeck_store::replica::{SignedChange, load_or_create_identity};
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms, rights, sign};
use serde_json::json;

fn quick() -> bool {
    std::env::var("FLEETDECK_BENCH_QUICK").is_ok_and(|v| v == "1")
}

struct Fleet {
    _tmp: tempfile::TempDir,
    /// The receiving replica (admin).
    hub: Replica,
    /// The operator whose changes arrive.
    operator: Replica,
    label: String,
}

/// An admin's fleet with `members` members (an operator among them) and
/// `nodes` nodes over `sites` sites; the operator's replica holds it too.
fn fleet(members: usize, sites: usize, nodes: usize) -> Fleet {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut hub = Replica::init(&tmp.path().join("hub"), "hub", "bench").expect("init");
    let now = now_ms();
    let op_key = load_or_create_identity(&tmp.path().join("op"))
        .expect("identity")
        .key()
        .clone();
    ops::apply(
        &mut hub,
        Op::MemberAdd {
            key: op_key,
            name: "ops-laptop".into(),
            role: Role::Operator,
        },
        now,
    )
    .expect("operator");
    for i in 0..members.saturating_sub(2) {
        let key = MemberKey::from_bytes(&[(i % 251) as u8 + 1; 32]);
        let key = MemberKey::parse(&format!("{}{:08x}", &key.as_str()[..56], i)).expect("key");
        let role = if i % 2 == 0 { Role::Viewer } else { Role::Node };
        ops::apply(
            &mut hub,
            Op::MemberAdd {
                key,
                name: format!("member-{i}"),
                role,
            },
            now,
        )
        .expect("member");
    }
    let site_ids: Vec<SiteId> = (0..sites)
        .map(|s| SiteId::parse(&format!("S-{s:04}")).expect("site id"))
        .collect();
    ops::apply(
        &mut hub,
        Op::SiteAdd {
            sites: site_ids
                .iter()
                .map(|id| {
                    let rec = SiteRecord {
                        name: id.to_string(),
                        lat: None,
                        lon: None,
                        zone: None,
                    };
                    (id.clone(), rec)
                })
                .collect(),
        },
        now,
    )
    .expect("sites");
    for chunk in (0..nodes).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|n| {
                let rec = NodeRecord {
                    site: site_ids[n % sites].to_string(),
                    role: Some("edge".into()),
                };
                (NodeId::parse(&format!("n{n}")).expect("node id"), rec)
            })
            .collect();
        ops::apply(&mut hub, Op::NodeAdd { nodes: batch }, now).expect("nodes");
    }
    let operator = Replica::init_from_changes(&tmp.path().join("op"), hub.changes_after(&[]))
        .expect("operator replica");
    Fleet {
        _tmp: tmp,
        hub,
        operator,
        label: format!("{members} members, {nodes} nodes"),
    }
}

/// The operator's next change: one key of a site's overrides.
fn next_change(f: &mut Fleet, k: usize) -> SignedChange {
    let before = f.operator.heads();
    let op = Op::Config {
        layer: LayerRef::Site(SiteId::parse("S-0000").expect("site")),
        edits: vec![ConfigEdit::Set(
            ConfigPath::parse("bench.value").expect("path"),
            json!(k),
        )],
        message: None,
    };
    ops::apply(&mut f.operator, op, now_ms()).expect("edit");
    f.operator.changes_after(&before).remove(0)
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn row(what: &str, v: Vec<Duration>) {
    println!(
        "  {what:<44} p50 {:>9.1} µs   p99 {:>9.1} µs",
        pct(v.clone(), 0.5),
        pct(v, 0.99)
    );
}

fn measure(mut f: Fleet, rounds: usize) {
    println!("{} ({rounds} changes):", f.label);
    let (mut sig, mut judge, mut take, mut member, mut bare) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The baseline document: automerge applying the same changes, no check.
    let mut baseline = f.hub.doc_mut().automerge().clone();
    for k in 0..rounds {
        let c = next_change(&mut f, k);
        let t = Instant::now();
        black_box(sign::verify(&c.change, c.sig.as_ref())).expect("signed");
        sig.push(t.elapsed());
        let t = Instant::now();
        let doc: &automerge::AutoCommit = f.hub.doc_mut().automerge_mut();
        black_box(rights::judge(doc, &c.change)).expect("within rights");
        judge.push(t.elapsed());
        // What the gate checked before: the author is a member.
        let t = Instant::now();
        let author = sign::author_key(c.change.actor_id()).expect("key");
        black_box(f.hub.state().members.contains_key(&author));
        member.push(t.elapsed());
        let t = Instant::now();
        baseline
            .apply_changes([c.change.clone()])
            .expect("baseline apply");
        bare.push(t.elapsed());
        let t = Instant::now();
        f.hub.take_in(c).expect("take in");
        f.hub.settle().expect("settle");
        take.push(t.elapsed());
    }
    row("signature check", sig);
    row("rights check (role + every op at its deps)", judge);
    row("take in + store (SQLite, fsync)", take);
    row("baseline: membership check (before)", member);
    row("baseline: automerge apply alone", bare);
}

fn main() {
    let (rounds, nodes) = if quick() { (20, 20) } else { (300, 10_000) };
    if quick() {
        println!("quick run: figures are not the measured setup");
    }
    measure(fleet(100, 10, 10), rounds);
    measure(fleet(3, 1000.min(nodes), nodes), rounds);
}

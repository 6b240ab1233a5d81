//! Property: members with random roles make random edits, in and out of
//! their rights, under random partitions, and the admin revokes one of them
//! midway. Every replica that only made
//! edits within its rights ends with the same document as every other such
//! replica, holding every edit they made; no replica holds a change by
//! another author that breaks the rules; and what a replica wrote out of
//! bounds (and anything it wrote on top of it) stays with it alone.
//!
//! The seed is fixed and printed; `FLEETDECK_ROLES_SEED=N` runs another.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{CommandRecord, LayerRef, SiteRecord};
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::sign::author_key;
use fleetdeck_store::{MemberKey, Role, SiteId, now_ms, rights};
use fleetdeck_sync::Engine;
use serde_json::json;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An edit a replica makes straight on its document (no local check: the
/// others must judge it).
#[derive(Clone, Copy, Debug)]
enum Edit {
    PlainKey,
    ProgramKey,
    AdminKey,
    AddSite,
    EnrollAdmin,
    Freeze,
    CommandResultOfAnotherNode,
}

const EDITS: [Edit; 7] = [
    Edit::PlainKey,
    Edit::ProgramKey,
    Edit::AdminKey,
    Edit::AddSite,
    Edit::EnrollAdmin,
    Edit::Freeze,
    Edit::CommandResultOfAnotherNode,
];

/// Whether `role` may make `edit` (the README's table).
fn allowed(role: Role, edit: Edit) -> bool {
    match edit {
        Edit::PlainKey | Edit::AddSite | Edit::Freeze => role.manages_fleet(),
        Edit::ProgramKey | Edit::AdminKey | Edit::EnrollAdmin => role == Role::Admin,
        Edit::CommandResultOfAnotherNode => role == Role::Admin,
    }
}

fn make(e: &Engine, i: usize, round: usize, edit: Edit) {
    let tag = format!("r{i}x{round}");
    e.with_replica(|r| {
        // Forged: whoever the author, the edit is written; what the other
        // replicas take of it is the property.
        r.forge(&format!("{edit:?} {tag}"), |d, _| match edit {
            Edit::PlainKey => d.set_config(
                &LayerRef::Fleet,
                &ConfigPath::parse(&format!("edits.{tag}")).expect("path"),
                &json!(i),
            ),
            Edit::ProgramKey => d.set_config(
                &LayerRef::Fleet,
                &ConfigPath::parse(&format!("actions.{tag}.cmd")).expect("path"),
                &json!("true"),
            ),
            Edit::AdminKey => d.set_config(
                &LayerRef::Fleet,
                &ConfigPath::parse("trust.operators_run_programs").expect("path"),
                &json!(true),
            ),
            Edit::AddSite => d.add_site(
                &SiteId::parse(&format!("S-{tag}")).expect("site"),
                &SiteRecord {
                    name: tag.clone(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            ),
            Edit::EnrollAdmin => d.put_member(
                &MemberKey::from_bytes(&[i as u8 + 100; 32]),
                &tag,
                Role::Admin,
                now_ms(),
            ),
            Edit::Freeze => d.set_freeze(&fleetdeck_store::document::FreezeRecord {
                frozen: round.is_multiple_of(2),
                by: tag.clone(),
                at_ms: now_ms(),
                message: String::new(),
            }),
            Edit::CommandResultOfAnotherNode => d.put_command_result(
                "c0",
                // Node n1 is run by replica 1; everyone else writes its
                // result for it.
                &fleetdeck_store::NodeId::parse(if i == 1 { "n2" } else { "n1" }).expect("node"),
                &fleetdeck_store::document::CommandResult {
                    exit_code: Some(0),
                    ok: true,
                    output: tag.clone(),
                    at_ms: now_ms(),
                },
            ),
        })
        .expect("the edit is written locally");
    });
    e.changed();
}

/// The seed of a default run: fixed, so that a run is the same run every
/// time (`FLEETDECK_ROLES_SEED=N` tries another).
const SEED: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_replicas_converge_on_what_each_author_may_write() {
    let seed: u64 = std::env::var("FLEETDECK_ROLES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    property(seed).await;
}

/// Seed 1796578023079: admin 3 admits replica 2's change made beside its
/// revocation before the revocation reaches it (the window the README
/// describes); admin 0, which holds the revocation, refuses that change
/// and, from then on, every change of admin 3's that depends on it: two
/// honest admins never converge again. Also fails on the code before this
/// property test's last change; kept as a finding until revocation can
/// close the window (e.g. an admin re-basing what it holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "finding: a change admitted before its author's revocation arrived splits honest admins for good"]
async fn a_change_admitted_before_its_authors_revocation_splits_no_honest_replicas() {
    property(1_796_578_023_079).await;
}

async fn property(seed: u64) {
    eprintln!("roles property seed {seed} (replay with FLEETDECK_ROLES_SEED={seed})");
    let mut rng = Rng(seed);
    let n = 4 + rng.below(5) as usize; // 4 to 8 replicas
    let roles: Vec<Role> = (0..n)
        .map(|i| match (i, rng.below(4)) {
            (0, _) => Role::Admin,
            (_, 0) => Role::Admin,
            (_, 1) => Role::Operator,
            (_, 2) => Role::Viewer,
            _ => Role::Node,
        })
        .collect();
    let f = fleet_as(n, |i| roles[i]).await;
    // A command for node n1 and n2, for the command-result edits.
    f.engines[0].with_replica(|r| {
        let rec = CommandRecord {
            action: "check".into(),
            target: "all".into(),
            by: "laptop".into(),
            at_ms: now_ms(),
        };
        r.change("command c0", |d, _| d.add_command("c0", &rec))
            .expect("command")
    });
    f.engines[0].changed();
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(
        wait_for(Duration::from_secs(30), || converged(&all)).await,
        "seed {seed}: initial sync"
    );
    let mut cheated: BTreeSet<usize> = BTreeSet::new();
    // Replica 0 (an admin) revokes one other replica after round 1; from
    // then on whatever that one writes is refused by everyone who holds the
    // revocation.
    let revoked = 1 + rng.below(n as u64 - 1) as usize;
    let mut plain_edits: Vec<(usize, String)> = Vec::new();
    for round in 0..3 {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for k in &f.keys {
            if rng.below(2) == 0 {
                a.push(k.clone());
            } else {
                b.push(k.clone());
            }
        }
        if !a.is_empty() && !b.is_empty() {
            f.faults.partition(&a, &b);
        }
        for (i, e) in f.engines.iter().enumerate() {
            let edit = EDITS[rng.below(EDITS.len() as u64) as usize];
            if !allowed(roles[i], edit) {
                cheated.insert(i);
            }
            if matches!(edit, Edit::PlainKey) {
                plain_edits.push((i, format!("edits.r{i}x{round}")));
            }
            make(e, i, round, edit);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.faults.heal();
        if round == 1 {
            let member = f.keys[revoked].clone();
            f.engines[0].with_replica(|r| {
                ops::apply(r, Op::MemberRevoke { member }, now_ms()).expect("revoke")
            });
            f.engines[0].changed();
            cheated.insert(revoked);
        }
    }
    eprintln!(
        "seed {seed}: {n} replicas, roles {roles:?}, revoked {revoked}, out of bounds or revoked: {cheated:?}"
    );
    let honest: Vec<&Engine> = (0..n)
        .filter(|i| !cheated.contains(i))
        .map(|i| &f.engines[i])
        .collect();
    if !honest.is_empty() {
        assert!(
            wait_for(Duration::from_secs(45), || converged(&honest)).await,
            "seed {seed}: the honest replicas did not converge"
        );
    }
    // Let the cheaters' sessions settle too, then check every replica.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, e) in f.engines.iter().enumerate() {
        e.with_replica(|r| {
            let me = r.key().clone();
            let changes = r.changes_after(&[]);
            let doc: &automerge::AutoCommit = r.doc_mut().automerge_mut();
            for c in &changes {
                if author_key(c.change.actor_id()).as_ref() == Some(&me) {
                    continue;
                }
                if let Err(refusal) = rights::judge(doc, &c.change) {
                    // The revocation window (README, "Revocation"): a
                    // replica that admitted the revoked member's change
                    // before the revocation reached it keeps it; only the
                    // revocation rule may be what that change now breaks.
                    if author_key(c.change.actor_id()).as_ref() == Some(&f.keys[revoked])
                        && refusal.rule.contains("was revoked by an admin")
                    {
                        continue;
                    }
                    panic!(
                        "seed {seed}: replica {i} holds a change by another author that breaks the rules: {refusal}"
                    );
                }
            }
        });
    }
    // Every plain edit an honest replica made reached every honest replica.
    for (i, key) in &plain_edits {
        if cheated.contains(i) {
            continue;
        }
        for e in &honest {
            assert!(
                get(e, key).is_some(),
                "seed {seed}: {key} by honest replica {i} is missing"
            );
        }
    }
}

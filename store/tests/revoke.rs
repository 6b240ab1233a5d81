//! Membership and revocation: the operations (`member role`, `member
//! revoke`, resolving NAME|KEY), the judge's revocation rule on every
//! replica whatever the order changes arrive in, and invites that die once
//! used.

use std::path::Path;

use automerge::ChangeHash;
use fleetdeck_store::document::{FleetDoc, SiteRecord};
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::replica::{SignedChange, load_or_create_identity};
use fleetdeck_store::rights;
use fleetdeck_store::{MemberKey, Replica, Role, SiteId, StoreError, now_ms};

fn site(id: &str) -> Op {
    Op::SiteAdd {
        sites: vec![(
            SiteId::parse(id).unwrap(),
            SiteRecord {
                name: id.into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )],
    }
}

/// An admin's replica, and one replica per `(dir, name, role)` enrolled by
/// it, each holding the admin's document.
fn fleet(admin_dir: &Path, others: &[(&Path, &str, Role)]) -> (Replica, Vec<Replica>) {
    let mut admin = Replica::init(admin_dir, "ops", "blocao").unwrap();
    for (dir, name, role) in others {
        let key = load_or_create_identity(dir).unwrap().key().clone();
        ops::apply(
            &mut admin,
            Op::MemberAdd {
                key,
                name: name.to_string(),
                role: *role,
            },
            now_ms(),
        )
        .unwrap();
    }
    let changes = admin.changes_after(&[]);
    let reps = others
        .iter()
        .map(|(dir, _, _)| Replica::init_from_changes(dir, changes.clone()).unwrap())
        .collect();
    (admin, reps)
}

/// The changes `r` made since `before`.
fn since(r: &mut Replica, before: &[ChangeHash]) -> Vec<SignedChange> {
    r.changes_after(before)
}

/// Takes `changes` into `to` the way sync does: each judged against what
/// `to` holds, the refused ones (and what depends on them) left out.
/// Returns the refusals' rules.
fn admit(to: &mut Replica, changes: Vec<SignedChange>) -> Vec<String> {
    let mut refused = Vec::new();
    for c in changes {
        if to.holds(&c.change.hash()) {
            continue;
        }
        match rights::judge(to.doc_mut().automerge(), &c.change) {
            Ok(()) => to.take_in(c).unwrap(),
            Err(r) => refused.push(r.rule),
        }
    }
    to.settle().unwrap();
    refused
}

fn denied(r: fleetdeck_store::Result<ops::Done>) -> String {
    match r {
        Err(StoreError::Denied(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_revoked_members_later_change_is_refused_at_every_replica_whatever_the_order() {
    let t = tempfile::tempdir().unwrap();
    let d = |n: &str| t.path().join(n);
    let (mut admin, mut reps) = fleet(
        &d("admin"),
        &[
            (&d("rogue"), "rogue", Role::Operator),
            (&d("h1"), "h1", Role::Operator),
            (&d("h2"), "h2", Role::Viewer),
        ],
    );
    let mut h2 = reps.pop().unwrap();
    let mut h1 = reps.pop().unwrap();
    let mut rogue = reps.pop().unwrap();
    let base = admin.heads();

    // Before the revocation: the admin holds it, so it stands everywhere.
    ops::apply(&mut rogue, site("BL-EARLY"), now_ms()).unwrap();
    let early = since(&mut rogue, &base);
    assert!(admit(&mut admin, early.clone()).is_empty());

    let before_revoke = admin.heads();
    let rogue_key = rogue.key().clone();
    let done = ops::apply(
        &mut admin,
        Op::MemberRevoke {
            member: rogue_key.clone(),
        },
        now_ms(),
    )
    .unwrap();
    assert!(done.summary.contains("rotate secrets"), "{}", done.summary);
    let revocation = since(&mut admin, &before_revoke);
    assert!(admin.state().revoked.contains_key(&rogue_key));
    assert!(!admin.state().members.contains_key(&rogue_key));

    // The rogue never hears of it and keeps writing on its stale base,
    // going around the operations API.
    let mark = rogue.heads();
    raw(&mut rogue, "raw: after revocation", |doc: &mut FleetDoc| {
        doc.add_site(
            &SiteId::parse("BL-LATE").unwrap(),
            &SiteRecord {
                name: "late".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )
    })
    .unwrap();
    let late = since(&mut rogue, &mark);
    assert_eq!(late.len(), 1);

    // h1: the revocation first, then the rogue's changes.
    let mut first = early.clone();
    first.extend(revocation.clone());
    assert!(admit(&mut h1, first).is_empty());
    let refusals = admit(&mut h1, late.clone());
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].contains("revoked"), "{}", refusals[0]);

    // h2: everything at once, the revocation listed after the rogue's
    // change depends on nothing but causal order (see sync's gate test for
    // a batch listed the other way round).
    let mut all = early.clone();
    all.extend(revocation.clone());
    all.extend(late.clone());
    let refusals = admit(&mut h2, all);
    assert_eq!(refusals.len(), 1, "{refusals:?}");

    // The admin refuses it too; the change before the revocation stands on
    // every replica; the honest replicas hold the same document.
    assert_eq!(admit(&mut admin, late.clone()).len(), 1);
    let early_site = SiteId::parse("BL-EARLY").unwrap();
    let late_site = SiteId::parse("BL-LATE").unwrap();
    for r in [&admin, &h1, &h2] {
        assert!(r.state().sites.contains_key(&early_site));
        assert!(!r.state().sites.contains_key(&late_site));
    }
    assert_eq!(admin.heads_digest(), h1.heads_digest());
    assert_eq!(admin.heads_digest(), h2.heads_digest());

    // A change made on top of the revocation (the rogue got it somehow) is
    // refused too: the revocation is in its dependencies.
    let mut got = revocation.clone();
    got.retain(|c| !rogue.holds(&c.change.hash()));
    for c in got {
        rogue.take_in(c).unwrap();
    }
    rogue.settle().unwrap();
    let mark = rogue.heads();
    raw(&mut rogue, "raw: on top", |doc: &mut FleetDoc| {
        doc.add_site(
            &SiteId::parse("BL-TOP").unwrap(),
            &SiteRecord {
                name: "top".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )
    })
    .unwrap();
    let top = since(&mut rogue, &mark);
    // Its base includes the refused late change, which the admin lacks: the
    // admin never takes it; judged where it can be (h1 after the late
    // change was refused, it waits forever).
    let r = rights::judge(rogue.doc_mut().automerge(), &top[0].change);
    assert!(r.is_err_and(|e| e.rule.contains("revoked")));
}

#[test]
fn the_last_admin_can_be_neither_revoked_nor_demoted() {
    let t = tempfile::tempdir().unwrap();
    let (mut admin, _) = fleet(
        &t.path().join("a"),
        &[(&t.path().join("b"), "bob", Role::Operator)],
    );
    let me = admin.key().clone();
    let why = denied(ops::apply(
        &mut admin,
        Op::MemberRevoke { member: me.clone() },
        now_ms(),
    ));
    assert!(why.contains("last admin"), "{why}");
    let why = denied(ops::apply(
        &mut admin,
        Op::MemberRole {
            member: me.clone(),
            role: Role::Operator,
        },
        now_ms(),
    ));
    assert!(why.contains("last admin"), "{why}");

    // With a second admin, either may go.
    let bob = ops::resolve_member(admin.state(), "bob").unwrap();
    let done = ops::apply(
        &mut admin,
        Op::MemberRole {
            member: bob.clone(),
            role: Role::Admin,
        },
        now_ms(),
    )
    .unwrap();
    assert!(
        done.summary.contains("bob is an admin now"),
        "{}",
        done.summary
    );
    ops::apply(
        &mut admin,
        Op::MemberRevoke {
            member: bob.clone(),
        },
        now_ms(),
    )
    .unwrap();
    // Revoked stays revoked: no role change, no second revocation, no
    // re-enrollment.
    let err = ops::apply(
        &mut admin,
        Op::MemberRole {
            member: bob.clone(),
            role: Role::Operator,
        },
        now_ms(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    let err = ops::apply(
        &mut admin,
        Op::MemberAdd {
            key: bob.clone(),
            name: "bob".into(),
            role: Role::Viewer,
        },
        now_ms(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    // History still names bob.
    assert_eq!(admin.state().member_name(&bob), Some("bob"));
}

#[test]
fn a_non_admin_changes_no_member() {
    let t = tempfile::tempdir().unwrap();
    let (admin, mut reps) = fleet(
        &t.path().join("a"),
        &[(&t.path().join("o"), "op", Role::Operator)],
    );
    let mut op = reps.pop().unwrap();
    let why = denied(ops::apply(
        &mut op,
        Op::MemberRevoke {
            member: admin.key().clone(),
        },
        now_ms(),
    ));
    assert!(why.contains("only admins"), "{why}");
}

#[test]
fn two_admins_revoking_each_other_are_both_revoked_on_every_replica() {
    let t = tempfile::tempdir().unwrap();
    let d = |n: &str| t.path().join(n);
    let (mut a, mut reps) = fleet(
        &d("a"),
        &[
            (&d("b"), "b", Role::Admin),
            (&d("c"), "c", Role::Admin),
            (&d("v"), "v", Role::Viewer),
        ],
    );
    let mut v = reps.pop().unwrap();
    let _c = reps.pop().unwrap();
    let mut b = reps.pop().unwrap();
    let base = a.heads();
    let (ka, kb) = (a.key().clone(), b.key().clone());
    ops::apply(&mut a, Op::MemberRevoke { member: kb.clone() }, now_ms()).unwrap();
    ops::apply(&mut b, Op::MemberRevoke { member: ka.clone() }, now_ms()).unwrap();
    let from_a = since(&mut a, &base);
    let from_b = since(&mut b, &base);
    // Both stand (each was made by an admin as of its dependencies), in
    // either order.
    let mut ab = from_a.clone();
    ab.extend(from_b.clone());
    assert!(admit(&mut v, ab).is_empty());
    assert!(admit(&mut a, from_b).is_empty());
    assert!(admit(&mut b, from_a).is_empty());
    for r in [&a, &b, &v] {
        assert!(r.state().revoked.contains_key(&ka));
        assert!(r.state().revoked.contains_key(&kb));
        assert_eq!(r.state().members.len(), 2, "c and v remain");
    }
}

#[test]
fn members_are_named_by_name_key_or_unique_key_prefix() {
    let t = tempfile::tempdir().unwrap();
    let (admin, reps) = fleet(
        &t.path().join("a"),
        &[(&t.path().join("b"), "bob", Role::Operator)],
    );
    let bob = reps[0].key().clone();
    let st = admin.state();
    assert_eq!(ops::resolve_member(st, "bob").unwrap(), bob);
    assert_eq!(ops::resolve_member(st, bob.as_str()).unwrap(), bob);
    assert_eq!(ops::resolve_member(st, &bob.as_str()[..10]).unwrap(), bob);
    let err = ops::resolve_member(st, "carol").unwrap_err().to_string();
    assert!(err.contains("no member 'carol'"), "{err}");
    // "" and a prefix every key shares are refused.
    assert!(ops::resolve_member(st, "").is_err());
    let shared: String = {
        let a = admin.key().as_str();
        let b = bob.as_str();
        a.chars()
            .zip(b.chars())
            .take_while(|(x, y)| x == y)
            .map(|(x, _)| x)
            .collect()
    };
    if !shared.is_empty() {
        let err = ops::resolve_member(st, &shared).unwrap_err().to_string();
        assert!(err.contains("names 2 members"), "{err}");
    }
}

#[test]
fn a_used_invite_is_dead_for_every_key_the_one_that_used_it_included() {
    let t = tempfile::tempdir().unwrap();
    let (mut admin, _) = fleet(&t.path().join("a"), &[]);
    let secret = ops::invite(&mut admin, Role::Operator, 60_000).unwrap();
    let key: MemberKey = load_or_create_identity(&t.path().join("j"))
        .unwrap()
        .key()
        .clone();
    assert_eq!(
        admin.redeem_invite(&secret, &key, "joiner").unwrap(),
        Role::Operator
    );
    let err = admin.redeem_invite(&secret, &key, "joiner").unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    let other = load_or_create_identity(&t.path().join("k")).unwrap();
    assert!(admin.redeem_invite(&secret, other.key(), "k").is_err());

    // A revoked key is not enrolled again, even with a fresh invite.
    ops::apply(
        &mut admin,
        Op::MemberRevoke {
            member: key.clone(),
        },
        now_ms(),
    )
    .unwrap();
    let fresh = ops::invite(&mut admin, Role::Viewer, 60_000).unwrap();
    let err = admin.redeem_invite(&fresh, &key, "joiner").unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}

/// Writes `edit` into `r` as a device running changed software would: with
/// its replica's actor, signed with its key and stored, never judged (its
/// own replica would not write a change every peer refuses).
fn raw(
    r: &mut Replica,
    message: &str,
    edit: impl FnOnce(&mut FleetDoc) -> fleetdeck_store::Result<()>,
) -> fleetdeck_store::Result<()> {
    let am = r.doc_mut().automerge_mut();
    let actor = am.get_actor().clone();
    let mut doc = FleetDoc::from_automerge(am.fork().with_actor(actor))?;
    edit(&mut doc)?;
    let hash = doc
        .commit(message, now_ms())
        .expect("the edit changed something");
    let change = doc
        .automerge_mut()
        .get_change_by_hash(&hash)
        .expect("the change just made");
    let sig = r.identity().sign_change(&hash);
    r.apply_changes(vec![SignedChange {
        change,
        sig: Some(sig),
    }])
}

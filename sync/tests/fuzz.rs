//! Fuzzing the ways into a replica from elsewhere: wire frames
//! (`wire::read_msg`), sync messages and changes through `verify::receive`
//! on a real replica (garbage, and real changes and signatures mutated),
//! bundles (`bundle::import` of mutated files) and invite tokens
//! (`InviteToken::decode`). Property: no panic, a clear error, the bad input
//! refused alone, and the replica still opens and works afterwards.
//!
//! Short by default; `FLEETDECK_FUZZ_CASES=5000 cargo test -p
//! fleetdeck-sync --test fuzz` runs longer. Every run prints its seed;
//! `FLEETDECK_FUZZ_SEED=<seed>` replays it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use automerge::sync::{Message, State};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::ops::{self, ConfigEdit, Op};
use fleetdeck_store::replica::SignedChange;
use fleetdeck_store::{Replica, now_ms};
use fleetdeck_sync::bundle;
use fleetdeck_sync::token::{InviteToken, TokenError};
use fleetdeck_sync::verify::{self, Gate, WireChange};
use fleetdeck_sync::wire::{self, Hello, Msg, PROTOCOL_VERSION};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::json;

fn cases(default: u32) -> u32 {
    std::env::var("FLEETDECK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let s = std::env::var("FLEETDECK_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| now_ms() as u64);
        eprintln!("fuzz seed {s} (replay with FLEETDECK_FUZZ_SEED={s})");
        s
    })
}

fn cfg(default_cases: u32) -> Config {
    Config {
        cases: cases(default_cases),
        rng_seed: RngSeed::Fixed(seed()),
        failure_persistence: None,
        ..Config::default()
    }
}

fn set(r: &mut Replica, key: &str, v: serde_json::Value) {
    let op = Op::Config {
        layer: LayerRef::Fleet,
        edits: vec![ConfigEdit::Set(ConfigPath::parse(key).unwrap(), v)],
        message: None,
    };
    ops::apply(r, op, now_ms()).unwrap();
}

/// An admin replica with edits a second replica ("b") lacks; the changes it
/// has that b lacks (with signatures), a bundle of everything, and b's dir.
struct Template {
    _tmp: tempfile::TempDir,
    b: PathBuf,
    fresh: Vec<SignedChange>,
    bundle: Vec<u8>,
    sync_msg: Vec<u8>,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = Replica::init(&tmp.path().join("a"), "ops", "fuzz").unwrap();
        set(&mut a, "retention.days", json!(7));
        let b = tmp.path().join("b");
        let b_key = fleetdeck_store::replica::load_or_create_identity(&b)
            .unwrap()
            .key()
            .clone();
        ops::apply(
            &mut a,
            Op::MemberAdd {
                key: b_key,
                name: "b".into(),
                role: fleetdeck_store::Role::Operator,
            },
            now_ms(),
        )
        .unwrap();
        let mut rb = Replica::init_from_changes(&b, a.changes_after(&[])).unwrap();
        let before = a.heads();
        for i in 0..3 {
            set(&mut a, &format!("k.v{i}"), json!(i));
        }
        let fresh = a.changes_after(&before);
        let file = tmp.path().join("all.fdb");
        bundle::export(&mut a, &file).unwrap();
        let bundle = std::fs::read(&file).unwrap();
        let mut st = State::new();
        let sync_msg = verify::outgoing(&mut rb, &mut st).unwrap().0.encode();
        Template {
            _tmp: tmp,
            b,
            fresh,
            bundle,
            sync_msg,
        }
    })
}

fn copy_b(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(&template().b).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The replica still opens, every change it holds verifies, it takes an
/// edit, and it opens again clean.
fn still_works(dir: &Path) -> Result<(), TestCaseError> {
    let mut r = Replica::open(dir).map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
    for c in r.changes_after(&[]) {
        prop_assert!(c.verify().is_ok(), "an unverified change is held");
    }
    set(&mut r, "after.fuzz", json!(true));
    drop(r);
    let r = Replica::open(dir).map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
    prop_assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Splice(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Splice(i, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let n = bytes.len().max(1);
        match m {
            Mutation::Flip(i, x) => {
                if !bytes.is_empty() {
                    bytes[i % n] ^= x;
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % n),
            Mutation::Insert(i, b) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Splice(i, b) => {
                let at = i % n;
                let end = (at + b.len()).min(bytes.len());
                if at <= end {
                    bytes.splice(at..end, b.iter().copied());
                }
            }
        }
    }
    bytes
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn real_frames() -> Vec<u8> {
    let msgs = [
        Msg::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            fleet_id: "f00d".into(),
            name: "n".into(),
            token: Some("s".into()),
        }),
        Msg::Doc {
            sync: template().sync_msg.clone(),
            changes: template()
                .fresh
                .iter()
                .map(|c| {
                    (
                        c.change.raw_bytes().to_vec(),
                        c.sig.map_or_else(Vec::new, |s| s.to_vec()),
                    )
                })
                .collect(),
        },
        Msg::HealthDigest(vec![("n1".into(), 7)]),
        Msg::Probe([3; 16]),
        Msg::Refuse("no".into()),
    ];
    msgs.iter().flat_map(|m| wire::encode(m).unwrap()).collect()
}

/// Reads frames until the first error; each is a value or an error, never
/// a panic, and never more than the bytes given.
fn read_all(bytes: &[u8]) -> Result<usize, TestCaseError> {
    let rt = runtime();
    let mut r = bytes;
    let mut frames = 0;
    loop {
        let before = r.len();
        let res = catch_unwind(AssertUnwindSafe(|| rt.block_on(wire::read_msg(&mut r))));
        match res {
            Err(_) => return Err(TestCaseError::fail("read_msg panicked")),
            Ok(Ok((_, n))) => {
                prop_assert!(n <= before && n >= 4);
                frames += 1;
            }
            Ok(Err(e)) => {
                prop_assert!(!e.to_string().is_empty());
                return Ok(frames);
            }
        }
    }
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn wire_frames_of_random_bytes_are_errors_not_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        read_all(&bytes)?;
    }

    #[test]
    fn wire_frames_mutated_from_real_ones_are_errors_not_panics(
        ms in prop::collection::vec(mutation(), 1..4),
    ) {
        read_all(&mutate(real_frames(), &ms))?;
    }

    #[test]
    fn invite_tokens_of_any_text_decode_or_say_why(s in "\\PC{0,200}") {
        let r = catch_unwind(|| InviteToken::decode(&s));
        prop_assert!(r.is_ok(), "decode panicked");
        if let Ok(Err(e)) = r {
            prop_assert!(!e.to_string().is_empty());
        }
        let r = catch_unwind(|| InviteToken::decode(&format!("fdinv1.{s}")));
        prop_assert!(r.is_ok(), "decode panicked");
    }

    #[test]
    fn invite_tokens_mutated_from_a_real_one_decode_or_say_why(
        ms in prop::collection::vec(mutation(), 1..4),
        raw in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let t = InviteToken {
            fleet_id: "f00d".into(),
            fleet_name: "blocao".into(),
            inviter: [7; 32],
            addrs: vec!["127.0.0.1:7447".parse().unwrap()],
            secret: "00ff".into(),
            role: "operator".into(),
            expires_ms: 2_000,
            relay: None,
        };
        let s = t.encode();
        let m = String::from_utf8_lossy(&mutate(s.into_bytes(), &ms)).to_string();
        let r = catch_unwind(|| InviteToken::decode(&m));
        prop_assert!(r.is_ok(), "decode panicked on {m}");
        // A body that is valid base64 of random bytes.
        let b = format!("fdinv1.{}", data_encoding::BASE64URL_NOPAD.encode(&raw));
        match catch_unwind(|| InviteToken::decode(&b)) {
            Err(_) => prop_assert!(false, "decode panicked on {b}"),
            Ok(Ok(tok)) => prop_assert!(!tok.addrs.is_empty()),
            Ok(Err(e)) => prop_assert!(matches!(e, TokenError::Damaged | TokenError::NoAddress), "{e}"),
        }
    }
}

proptest! {
    #![proptest_config(cfg(48))]

    /// Changes and sync messages through the gate of a real replica:
    /// garbage, real changes mutated, real signatures mutated or moved.
    /// Nothing that does not verify is taken; the real, untouched changes
    /// beside them still are; the replica works afterwards.
    #[test]
    fn changes_and_sync_messages_through_the_gate(
        garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..3),
        change_muts in prop::collection::vec(prop::collection::vec(mutation(), 1..3), 0..3),
        sig_muts in prop::collection::vec((0usize..64, 1u8..=255), 0..3),
        swap_sigs in any::<bool>(),
        msg_muts in prop::collection::vec(mutation(), 0..3),
        keep_good in any::<bool>(),
    ) {
        let t = template();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        copy_b(&dir);
        let mut r = Replica::open(&dir).unwrap();
        let fresh = &t.fresh;
        let mut changes: Vec<WireChange> = Vec::new();
        // The real changes first: a badly signed copy of a change ahead of
        // its good copy in one batch hides the good one for that batch
        // (see `a_good_copy_after_a_badly_signed_copy_in_one_batch_is_taken`).
        if keep_good {
            for c in fresh {
                changes.push((c.change.raw_bytes().to_vec(), c.sig.unwrap().to_vec()));
            }
        }
        for g in &garbage {
            changes.push((g.clone(), vec![0; 64]));
        }
        for (i, ms) in change_muts.iter().enumerate() {
            let c = &fresh[i % fresh.len()];
            changes.push((mutate(c.change.raw_bytes().to_vec(), ms), c.sig.unwrap().to_vec()));
        }
        for (i, (at, x)) in sig_muts.iter().enumerate() {
            let c = &fresh[i % fresh.len()];
            let mut s = c.sig.unwrap().to_vec();
            s[*at] ^= x;
            changes.push((c.change.raw_bytes().to_vec(), s));
        }
        if swap_sigs && fresh.len() > 1 {
            changes.push((fresh[1].change.raw_bytes().to_vec(), fresh[0].sig.unwrap().to_vec()));
        }
        let msg_bytes = mutate(t.sync_msg.clone(), &msg_muts);
        let msg = match catch_unwind(|| Message::decode(&msg_bytes)) {
            Err(_) => return Err(TestCaseError::fail("Message::decode panicked")),
            Ok(Ok(m)) => m,
            // What the session does with an undecodable message: ends the
            // session, applies nothing. The changes still go to the gate
            // here, beside a real message.
            Ok(Err(_)) => Message::decode(&t.sync_msg).unwrap(),
        };
        let mut state = State::new();
        let mut gate = Gate::default();
        let res = catch_unwind(AssertUnwindSafe(|| {
            verify::receive(&mut r, &mut state, &mut gate, msg, changes.clone())
        }));
        let res = match res {
            Err(_) => return Err(TestCaseError::fail("verify::receive panicked")),
            Ok(r) => r,
        };
        match res {
            Ok(adm) => {
                for f in &adm.refused {
                    prop_assert!(!f.reason.is_empty());
                }
                if keep_good {
                    for c in fresh {
                        prop_assert!(r.holds(&c.change.hash()), "a good change beside bad ones was not taken: {:?}", adm.refused);
                    }
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        for c in r.changes_after(&[]) {
            prop_assert!(c.verify().is_ok(), "an unverified change was taken");
        }
        drop(r);
        still_works(&dir)?;
    }

    /// A bundle file mutated anywhere: refused with a sentence, or imported
    /// with only verified changes; the replica works afterwards.
    #[test]
    fn mutated_bundles_are_refused_or_imported_only_verified(
        ms in prop::collection::vec(mutation(), 1..4),
    ) {
        let t = template();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        copy_b(&dir);
        let file = tmp.path().join("m.fdb");
        std::fs::write(&file, mutate(t.bundle.clone(), &ms)).unwrap();
        let mut r = Replica::open(&dir).unwrap();
        let res = catch_unwind(AssertUnwindSafe(|| bundle::import(&mut r, &file)));
        match res {
            Err(_) => return Err(TestCaseError::fail("bundle::import panicked")),
            Ok(Ok(i)) => {
                prop_assert_eq!(i.refused.len(), i.changes_refused);
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                prop_assert!(!msg.is_empty());
            }
        }
        drop(r);
        still_works(&dir)?;
    }
}

/// One batch (a sync message, a bundle) holding a change twice: first with
/// a damaged signature, then with its real one.
#[test]

fn a_good_copy_after_a_badly_signed_copy_in_one_batch_is_taken() {
    let t = template();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    copy_b(&dir);
    let mut r = Replica::open(&dir).unwrap();
    let c = &t.fresh[0];
    let mut bad = c.sig.unwrap().to_vec();
    bad[0] ^= 1;
    let changes = vec![
        (c.change.raw_bytes().to_vec(), bad),
        (c.change.raw_bytes().to_vec(), c.sig.unwrap().to_vec()),
    ];
    let adm = verify::receive(
        &mut r,
        &mut State::new(),
        &mut Gate::default(),
        Message::decode(&t.sync_msg).unwrap(),
        changes,
    )
    .unwrap();
    println!("{adm:?}");
    assert!(r.holds(&c.change.hash()), "the good copy was skipped");
}

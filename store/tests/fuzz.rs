//! Fuzzing the ways into a replica that do not cross the network: stored
//! rows (a damaged `changes` or `signatures` row, then `Replica::open`) and
//! config values (`config::parse_cli_value` and `ops::apply` of
//! `Op::Config`). Property: no panic, a clear error, the bad input refused
//! alone, and the replica still opens and works afterwards.
//!
//! Short by default; `FLEETDECK_FUZZ_CASES=5000 cargo test -p
//! fleetdeck-store --test fuzz` runs longer. Every run prints its seed;
//! `FLEETDECK_FUZZ_SEED=<seed>` replays it.

use std::path::Path;
use std::sync::OnceLock;

use fleetdeck_store::config::{self, ConfigPath};
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::identity::Identity;
use fleetdeck_store::ops::{self, ConfigEdit, Op};
use fleetdeck_store::{Replica, Role, StoreError, now_ms};
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

/// A replica with a few changes by two authors, made once and copied for
/// each case.
fn template() -> &'static Path {
    static T: OnceLock<tempfile::TempDir> = OnceLock::new();
    T.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("admin");
        let mut r = Replica::init(&a, "ops", "fuzz").unwrap();
        let op_dir = tmp.path().join("op");
        let op_key = fleetdeck_store::replica::load_or_create_identity(&op_dir)
            .unwrap()
            .key()
            .clone();
        ops::apply(
            &mut r,
            Op::MemberAdd {
                key: op_key,
                name: "op".into(),
                role: Role::Operator,
            },
            now_ms(),
        )
        .unwrap();
        for i in 0..4 {
            set(&mut r, &format!("k.v{i}"), json!(i));
        }
        let mut o = Replica::init_from_changes(&op_dir, r.changes_after(&[])).unwrap();
        set(&mut o, "by.operator", json!("yes"));
        drop(o);
        drop(r);
        tmp
    })
    .path()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[derive(Clone, Debug)]
enum Damage {
    FlipBits(Vec<(usize, u8)>),
    Truncate(usize),
    Replace(Vec<u8>),
    Append(Vec<u8>),
    HashColumn(Vec<u8>),
    SigFlip(usize, u8),
    SigReplace(Vec<u8>),
    SigDelete,
    /// The signature of another row.
    SigSwap,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        prop::collection::vec((any::<usize>(), 1u8..=255), 1..4).prop_map(Damage::FlipBits),
        any::<usize>().prop_map(Damage::Truncate),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Damage::Replace),
        prop::collection::vec(any::<u8>(), 1..50).prop_map(Damage::Append),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Damage::HashColumn),
        (0usize..64, 1u8..=255).prop_map(|(i, x)| Damage::SigFlip(i, x)),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Damage::SigReplace),
        Just(Damage::SigDelete),
        Just(Damage::SigSwap),
    ]
}

/// Applies `d` to the `pick`-th change row of the admin replica's
/// database; returns the row's id and whether it is the genesis row.
fn apply_damage(db: &Path, pick: usize, d: &Damage) -> (i64, bool) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = conn
        .prepare("SELECT id, hash, data FROM changes ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let i = pick % rows.len();
    let (id, hash, mut data) = rows[i].clone();
    let put_data = |data: &[u8]| {
        conn.execute(
            "UPDATE changes SET data = ?1 WHERE id = ?2",
            rusqlite::params![data, id],
        )
        .unwrap();
    };
    let sig: Option<Vec<u8>> = conn
        .query_row("SELECT sig FROM signatures WHERE hash = ?1", [&hash], |r| {
            r.get(0)
        })
        .ok();
    let put_sig = |s: &[u8]| {
        conn.execute(
            "INSERT OR REPLACE INTO signatures (hash, sig) VALUES (?1, ?2)",
            rusqlite::params![&hash, s],
        )
        .unwrap();
    };
    match d {
        Damage::FlipBits(flips) => {
            for (at, x) in flips {
                let n = data.len();
                data[at % n] ^= x;
            }
            put_data(&data);
        }
        Damage::Truncate(at) => {
            data.truncate(at % data.len());
            put_data(&data);
        }
        Damage::Replace(b) => put_data(b),
        Damage::Append(b) => {
            data.extend_from_slice(b);
            put_data(&data);
        }
        Damage::HashColumn(h) => {
            // The hash column is UNIQUE: a collision with another row is a
            // write SQLite refuses, not damage.
            let _ = conn.execute(
                "UPDATE changes SET hash = ?1 WHERE id = ?2",
                rusqlite::params![h, id],
            );
        }
        Damage::SigFlip(at, x) => {
            let mut s = sig.clone().unwrap_or_else(|| vec![0; 64]);
            let n = s.len().max(1);
            if !s.is_empty() {
                s[at % n] ^= x;
            }
            put_sig(&s);
        }
        Damage::SigReplace(s) => put_sig(s),
        Damage::SigDelete => {
            conn.execute("DELETE FROM signatures WHERE hash = ?1", [&hash])
                .unwrap();
        }
        Damage::SigSwap => {
            let other = &rows[(i + 1) % rows.len()].1;
            let s: Vec<u8> = conn
                .query_row("SELECT sig FROM signatures WHERE hash = ?1", [other], |r| {
                    r.get(0)
                })
                .unwrap();
            put_sig(&s);
        }
    }
    (id, i == 0)
}

proptest! {
    #![proptest_config(cfg(48))]

    /// A damaged stored row is quarantined (or, for the genesis row, the
    /// replica says it cannot be read), never a panic, never accepted; the
    /// replica opens, takes an edit, and opens again clean.
    #[test]
    fn a_damaged_stored_row_is_refused_alone(pick in any::<usize>(), d in damage()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        copy_dir(&template().join("admin"), &dir);
        let (_, genesis) = apply_damage(&dir.join("replica.db"), pick, &d);
        let opened = std::panic::catch_unwind(|| Replica::open(&dir));
        let opened = match opened {
            Ok(r) => r,
            Err(_) => panic!("Replica::open panicked on a damaged row ({d:?})"),
        };
        let mut r = match opened {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(genesis, "a damaged non-genesis row made the replica unreadable: {msg} ({d:?})");
                prop_assert!(matches!(e, StoreError::Corrupt { .. }), "{msg}");
                prop_assert!(!msg.is_empty());
                return Ok(());
            }
        };
        let q = r.quarantined().unwrap();
        // Every change still held verifies; what did not went aside.
        for c in r.changes_after(&[]) {
            prop_assert!(c.verify().is_ok(), "an unverified change was accepted ({d:?})");
        }
        prop_assert!(q.len() <= 1, "more than the damaged row was quarantined: {q:?} ({d:?})");
        // It still works, and opens again with nothing new set aside.
        set(&mut r, "after.damage", json!(true));
        drop(r);
        let mut r = Replica::open(&dir).unwrap();
        prop_assert!(r.state().fleet.contains_key(&ConfigPath::parse("after.damage").unwrap()));
        prop_assert_eq!(r.quarantined().unwrap().len(), q.len());
        for c in r.changes_after(&[]) {
            prop_assert!(c.verify().is_ok());
        }
    }

    /// Any text as a CLI value, at any key: `ops::apply` writes it or says
    /// why not in a sentence, never panics; the replica still opens.
    #[test]
    fn any_config_value_is_written_or_refused_with_a_sentence(
        key in prop_oneof![
            Just("apply.check".to_string()),
            Just("actions.restart".to_string()),
            Just("heartbeat.interval_s".to_string()),
            Just("alerts.disk_pct".to_string()),
            Just("retention.days".to_string()),
            Just("trust.operators_run_programs".to_string()),
            Just("sync.relay_url".to_string()),
            "[a-z]{1,8}(\\.[a-z_]{1,8}){0,3}",
            "\\PC{0,40}",
        ],
        value in prop_oneof![
            "\\PC{0,60}",
            Just("{\"a\":{\"b\":[1,2,{\"c\":null}]}}".to_string()),
            Just("1e309".to_string()),
            Just("-0".to_string()),
            Just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]".to_string()),
            "[0-9\\-\\.e]{1,20}",
            "\\{\"[a-z.]{1,10}\":\\PC{0,10}\\}",
        ],
    ) {
        let (admin, viewer) = config_replicas();
        let v = config::parse_cli_value(&value);
        let Ok(path) = ConfigPath::parse(&key) else {
            return Ok(());
        };
        let op = Op::Config {
            layer: LayerRef::Fleet,
            edits: vec![ConfigEdit::Set(path.clone(), v.clone())],
            message: None,
        };
        let mut a = admin.lock().unwrap();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ops::apply(&mut *a, op.clone(), now_ms())
        }));
        let res = match res {
            Ok(r) => r,
            Err(_) => panic!("ops::apply panicked on {key} = {value:?}"),
        };
        if let Err(e) = &res {
            let msg = e.to_string();
            prop_assert!(!msg.trim().is_empty() && !msg.contains("panicked"), "{msg}");
        }
        // The state still reads, and the value is what was written.
        let st = a.state().clone();
        prop_assert!(st.effective_all().len() == st.nodes.len());
        // A viewer may write no config at all.
        let mut vr = viewer.lock().unwrap();
        let e = ops::apply(&mut *vr, op, now_ms());
        prop_assert!(matches!(e, Err(StoreError::Denied(_))), "a viewer wrote config: {e:?}");
    }
}

fn config_replicas() -> (
    &'static std::sync::Mutex<Replica>,
    &'static std::sync::Mutex<Replica>,
) {
    static R: OnceLock<(
        tempfile::TempDir,
        std::sync::Mutex<Replica>,
        std::sync::Mutex<Replica>,
    )> = OnceLock::new();
    let (_, a, v) = R.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = Replica::init(&tmp.path().join("a"), "ops", "cfg").unwrap();
        let vid = Identity::generate();
        let vdir = tmp.path().join("v");
        std::fs::create_dir_all(&vdir).unwrap();
        vid.save_new(&vdir.join("identity.key")).unwrap();
        ops::apply(
            &mut a,
            Op::MemberAdd {
                key: vid.key().clone(),
                name: "viewer".into(),
                role: Role::Viewer,
            },
            now_ms(),
        )
        .unwrap();
        let v = Replica::init_from_changes(&vdir, a.changes_after(&[])).unwrap();
        (tmp, std::sync::Mutex::new(a), std::sync::Mutex::new(v))
    });
    (a, v)
}

/// After the run, the config replica reopens clean from disk.
#[test]
fn the_config_fuzz_replica_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = Replica::init(&tmp.path().join("a"), "ops", "cfg").unwrap();
    for s in ["", "\u{0}", "{", "[1,", "\"x", "1e999999", "null"] {
        let v = config::parse_cli_value(s);
        let _ = ops::apply(
            &mut r,
            Op::Config {
                layer: LayerRef::Fleet,
                edits: vec![ConfigEdit::Set(ConfigPath::parse("a.b").unwrap(), v)],
                message: None,
            },
            now_ms(),
        );
    }
    drop(r);
    let r = Replica::open(&tmp.path().join("a")).unwrap();
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
}

//! A replica opened while another process writes to the same data dir (a
//! `serve` starting while the CLI edits) reads every change whole. Opening
//! once read the signatures before the changes: a change committed between
//! the two reads came without its signature, was judged unsigned and moved
//! to the quarantine, and the edit was lost (tests/nat.rs found it: a
//! laptop's first edit, made as its `serve` started, reached no site).
//!
//! Two threads with a connection each stand for the two processes; the
//! race needs a commit to land between two reads, so the opener opens
//! over and over while the writer writes. Bounded in count and time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fleetdeck_store::Replica;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::LayerRef;
use serde_json::json;

const WRITES: u64 = 300;
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_replica_opened_while_another_writes_quarantines_nothing_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Replica::init(tmp.path(), "laptop", "race").unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let dir = tmp.path().to_path_buf();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut r = Replica::open(&dir).expect("the writer opens");
            let started = Instant::now();
            let mut wrote = 0;
            for i in 0..WRITES {
                if started.elapsed() > LIMIT {
                    break;
                }
                let key = ConfigPath::parse(&format!("probe.k{i}")).unwrap();
                r.change(&format!("set probe.k{i}"), |d, _| {
                    d.set_config(&LayerRef::Fleet, &key, &json!(i))
                })
                .expect("the writer's change");
                wrote += 1;
            }
            done.store(true, Ordering::SeqCst);
            wrote
        })
    };
    let started = Instant::now();
    let mut opens = 0;
    while !done.load(Ordering::SeqCst) && started.elapsed() < LIMIT {
        let r = Replica::open(tmp.path()).expect("the replica opens beside the writer");
        assert!(
            r.warnings().is_empty(),
            "open {opens} beside a writer: {:?}",
            r.warnings()
        );
        opens += 1;
    }
    let wrote = writer.join().expect("the writer finishes");
    let r = Replica::open(tmp.path()).unwrap();
    assert!(r.quarantined().unwrap().is_empty());
    let held = (0..wrote)
        .filter(|i| {
            r.state()
                .fleet
                .contains_key(&ConfigPath::parse(&format!("probe.k{i}")).unwrap())
        })
        .count() as u64;
    assert_eq!(held, wrote, "every change written is held");
    println!("{opens} opens beside {wrote} writes: nothing quarantined or lost");
}

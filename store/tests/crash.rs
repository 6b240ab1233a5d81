//! kill -9 at any moment loses nothing that was reported as saved.
//!
//! The writer is this test binary run again as a child (the ignored test
//! `crash_child_writer`), printing `saved ROUND I` after each change returns.
//! The parent kills it at a random moment, reopens the replica and checks
//! every reported change is there. Compaction runs every few changes, so
//! kills also land inside compactions.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::replica::OpenOptions;
use fleetdeck_store::{NodeId, Replica, SiteId};
use serde_json::json;

const CHILD_ENV: &str = "FLEETDECK_CRASH_CHILD_DIR";
const ROUND_ENV: &str = "FLEETDECK_CRASH_CHILD_ROUND";
const ROUNDS: u64 = 30;
/// The child stops by itself after this many writes, whatever happens.
const MAX_WRITES: u64 = 5_000;

fn opts() -> OpenOptions {
    OpenOptions {
        compact_every: 7,
        ..Default::default()
    }
}

/// xorshift64*: enough randomness for kill timing, replayable from a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
#[ignore = "run by killed_writers_lose_nothing_they_reported_saved as its child"]
fn crash_child_writer() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_ENV), std::env::var(ROUND_ENV)) else {
        return;
    };
    let mut r = Replica::open_with(std::path::Path::new(&dir), opts()).unwrap();
    let node = LayerRef::Node(NodeId::parse("cam-1").unwrap());
    for i in 0..MAX_WRITES {
        let path = ConfigPath::parse(&format!("crash.r{round}.k{i}")).unwrap();
        // Alternate layers so both flat maps see writes.
        let layer = if i % 2 == 0 {
            LayerRef::Fleet
        } else {
            node.clone()
        };
        r.change(&format!("write {round} {i}"), |d, _| {
            d.set_config(&layer, &path, &json!(i))
        })
        .unwrap();
        println!("saved {round} {i}");
    }
}

#[test]
fn killed_writers_lose_nothing_they_reported_saved() {
    let seed = std::env::var("FLEETDECK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (replay with FLEETDECK_CRASH_SEED={seed})");
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let mut r = Replica::init(dir, "ops", "crash").unwrap();
        let site = SiteId::parse("S1").unwrap();
        r.change("site", |d, _| {
            d.add_site(
                &site,
                &fleetdeck_store::document::SiteRecord {
                    name: "s".into(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )
        })
        .unwrap();
        r.change("node", |d, _| {
            d.add_node(
                &NodeId::parse("cam-1").unwrap(),
                &fleetdeck_store::document::NodeRecord {
                    site: "S1".into(),
                    role: None,
                },
            )
        })
        .unwrap();
    }

    let exe = std::env::current_exe().unwrap();
    let mut saved: Vec<(u64, u64)> = Vec::new();
    let mut killed_mid_run = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir)
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    let mut it = l.strip_prefix("saved ")?.split(' ');
                    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
                })
                .collect::<Vec<(u64, u64)>>()
        });
        let delay = Duration::from_millis(30 + rng.next() % 400);
        let start = Instant::now();
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        saved.extend(reader.join().unwrap());

        // Every round reopens what the killed writer left.
        let r = Replica::open_with(dir, opts()).unwrap_or_else(|e| {
            panic!("round {round} (seed {seed}): replica does not open after kill: {e}")
        });
        let st = r.state();
        let cam = st.effective_node(&NodeId::parse("cam-1").unwrap()).unwrap();
        for (rd, i) in saved.iter().filter(|(rd, _)| *rd == round) {
            let key = format!("crash.r{rd}.k{i}");
            assert_eq!(
                cam.get_str(&key),
                Some(&json!(i)),
                "round {round} (seed {seed}): {key} was reported saved but is gone"
            );
        }
    }
    eprintln!(
        "{} writes reported saved over {ROUNDS} rounds, {killed_mid_run} kills mid-run",
        saved.len()
    );
    assert!(
        killed_mid_run >= ROUNDS / 2,
        "most kills should land mid-run ({killed_mid_run})"
    );
    assert!(
        saved.len() as u64 > ROUNDS,
        "the writer made progress ({} writes)",
        saved.len()
    );

    // Finally everything from every round is there, and history is whole.
    let mut r = Replica::open(dir).unwrap();
    let cam = r
        .state()
        .effective_node(&NodeId::parse("cam-1").unwrap())
        .unwrap();
    for (rd, i) in &saved {
        assert_eq!(
            cam.get_str(&format!("crash.r{rd}.k{i}")),
            Some(&json!(i)),
            "seed {seed}"
        );
    }
    assert!(r.history().len() >= saved.len() + 3);
}

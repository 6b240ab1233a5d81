//! Every built-in scenario, played headless with its checks at the speed
//! its file names for tests: real daemons over loopback sync, with the
//! faults, rollouts and edits of its timeline. One test per scenario, so a
//! failure names the fleet; each prints its timeline and report.
//!
//! The fleets of 20 daemons or more take one at a time (a file lock, so it
//! holds across `cargo test` threads and `cargo nextest` processes alike):
//! two of them beside each other on 2 cores starve every heartbeat, and the
//! checks would measure the machine, not the fleet.

use std::sync::atomic::AtomicBool;

use fleetdeck_scenarios::{Report, RunOptions, Runner};

/// Held while a large fleet plays; released when dropped (or when the
/// process dies).
struct Heavy(std::fs::File);

fn one_large_fleet_at_a_time() -> Heavy {
    let path = std::env::temp_dir().join("fleetdeck-scenarios-large-fleet.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
    Heavy(file)
}

impl Drop for Heavy {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

async fn play(name: &str, speed: f64) -> Report {
    let scenario = fleetdeck_scenarios::load(name).expect("the built-in scenario parses");
    let opts = RunOptions {
        check: true,
        seed: 7,
        speed: Some(speed),
        ..RunOptions::default()
    };
    let mut runner = Runner::build(scenario, &opts)
        .await
        .expect("the fleet starts");
    let stop = AtomicBool::new(false);
    let report = runner
        .run(&opts, &stop, &mut |l| println!("{l}"))
        .await
        .expect("the run completes");
    runner.shutdown().await;
    print!("{}", report.render());
    assert!(report.passed(), "seed 7:\n{}", report.render());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocao_a_warehouse_cut_off_for_five_minutes_comes_back_with_every_edit() {
    let r = play("blocao", 10.0).await;
    assert_eq!(r.checks.len(), 19);
    assert_eq!(r.summary.green, 4, "every site is green at the end");
    assert!(r.alerts_seen.iter().any(|a| a == "site-offline:BL-WH-S"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildfire_a_detector_down_for_three_minutes_catches_up() {
    let r = play("wildfire", 10.0).await;
    // Each zone is below its quorum until both its detectors have reported
    // at the start; east again while one of its detectors is down.
    for a in ["node-down:edge-east-01", "zone-quorum:east"] {
        assert!(r.alerts_seen.iter().any(|s| s == a), "{:?}", r.alerts_seen);
    }
    assert!(
        r.alerts_seen
            .iter()
            .all(|a| a == "node-down:edge-east-01" || a.starts_with("zone-quorum:")),
        "{:?}",
        r.alerts_seen
    );
    assert_eq!(r.summary.green, 4, "every site is green at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_cloud_twenty_cameras_and_a_server_recover_from_each_fault() {
    let _turn = one_large_fleet_at_a_time();
    let r = play("private-cloud", 10.0).await;
    assert_eq!(r.applies.len(), 21);
    assert!(r.alerts_open.is_empty(), "{:?}", r.alerts_open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn letsbe_tenant_thresholds_fire_and_clear_and_the_canary_reaches_every_tenant() {
    let _turn = one_large_fleet_at_a_time();
    let r = play("letsbe", 60.0).await;
    for a in [
        "disk:vps-cobalt",
        "mem:vps-gale",
        "backup:vps-lumen",
        "backup:vps-maple",
    ] {
        assert!(
            r.alerts_seen.iter().any(|s| s.starts_with(a)),
            "{a}: {:?}",
            r.alerts_seen
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_offline_the_operators_edits_reach_every_site_without_the_hub() {
    let r = play("hub-offline", 10.0).await;
    assert_eq!(r.checks.len(), 7);
    assert!(
        r.checks.iter().any(|c| c.what.starts_with("receipts of")),
        "the receipts check ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_heal_edits_made_on_both_sides_of_a_cut_meet_after_it_heals() {
    let r = play("partition-heal", 10.0).await;
    assert!(r.alerts_seen.iter().any(|a| a == "site-offline:PH-B"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_rollback_every_node_rolls_back_and_applies_the_fix() {
    let r = play("bad-config-rollback", 10.0).await;
    // The fleet-wide mistake is fixed; the one node with a broken check of
    // its own still says so.
    let open: Vec<&str> = r.alerts_open.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(open, ["apply:bc-cam-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_laptop_carries_every_edit_between_sites_that_never_meet() {
    let r = play("field-laptop", 10.0).await;
    assert_eq!(r.checks.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrica_a_bad_canary_halts_rolls_back_and_a_frozen_fleet_applies_nothing() {
    let _turn = one_large_fleet_at_a_time();
    let r = play("metrica", 60.0).await;
    assert_eq!(r.applies.len(), 50);
    assert!(r.alerts_seen.iter().any(|a| a.starts_with("apply:")));
}

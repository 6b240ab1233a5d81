//! The default scenario, played headless with its checks: real daemons over
//! loopback sync, a crash, a full disk, a bad config rolled back, a site cut
//! off and healed. Takes about as long as its timeline (100 s).

use std::sync::atomic::AtomicBool;

use fleetdeck_scenarios::{RunOptions, Runner};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_blocao_scenario_plays_headless_and_every_check_holds() {
    let scenario = fleetdeck_scenarios::load("blocao").expect("the built-in scenario parses");
    assert_eq!(scenario.sites.len(), 4);
    assert!(!scenario.checks.is_empty());
    let opts = RunOptions {
        check: true,
        seed: 7,
        ..RunOptions::default()
    };
    let mut runner = Runner::build(scenario, &opts)
        .await
        .expect("the fleet starts");
    let ops_dir = runner.ops_dir();
    assert!(
        ops_dir
            .join(fleetdeck_scenarios::runner::STATUS_FILE)
            .exists()
            || ops_dir.join("identity.key").exists()
    );
    let stop = AtomicBool::new(false);
    let mut lines = Vec::new();
    let report = runner
        .run(&opts, &stop, &mut |l| {
            println!("{l}");
            lines.push(l)
        })
        .await
        .expect("the run completes");
    runner.shutdown().await;
    print!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.checks.len(), 12);
    assert_eq!(report.summary.green, 4, "every site is green at the end");
    assert!(lines.iter().any(|l| l.contains("rolled_back")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_stops_when_asked_and_reports_what_it_saw() {
    let scenario = fleetdeck_scenarios::load("blocao").unwrap();
    let opts = RunOptions {
        repeat: true,
        stop_after: Some(std::time::Duration::from_secs(8)),
        ..RunOptions::default()
    };
    let mut runner = Runner::build(scenario, &opts).await.unwrap();
    let stop = AtomicBool::new(false);
    let report = runner.run(&opts, &stop, &mut |_| {}).await.unwrap();
    runner.shutdown().await;
    assert!(report.elapsed_s < 20.0);
    assert!(report.checks.is_empty(), "no checks without --check");
    assert_eq!(report.applies.len(), 9);
    assert!(
        report
            .applies
            .iter()
            .all(|(_, a)| a.as_ref().is_some_and(|(_, r)| r == "ok")),
        "every node applied its config within 8 s: {:?}",
        report.applies
    );
}

const TINY: &str = r#"
name = "tiny"
fleet = "t"
duration_s = 4

[config]
heartbeat.interval_s = 1

[[site]]
id = "S1"
name = "Site 1"

[[node]]
id = "n1"
site = "S1"

[[check]]
at_s = 1
within_s = 2
kind = "alert_fired"
alert = "node-down:n1"

[[check]]
kind = "applied"
node = "n1"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_does_not_hold_fails_the_run_and_names_the_check() {
    let scenario = fleetdeck_scenarios::Scenario::parse(TINY, "tiny").unwrap();
    let opts = RunOptions {
        check: true,
        ..RunOptions::default()
    };
    let mut runner = Runner::build(scenario, &opts).await.unwrap();
    let stop = AtomicBool::new(false);
    let report = runner.run(&opts, &stop, &mut |_| {}).await.unwrap();
    runner.shutdown().await;
    assert!(!report.passed());
    assert!(report.checks[1].result.is_ok(), "{}", report.render());
    let err = report.into_result().unwrap_err().to_string();
    assert!(err.contains("1 of 2 checks failed"), "{err}");
    assert!(err.contains("alert node-down:n1 fired"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_timeline_rotates_over_the_nodes_of_an_event() {
    let text = r#"
name = "rot"
fleet = "t"
duration_s = 3

[[site]]
id = "S1"
name = "Site 1"

[[node]]
id = "n1"
site = "S1"

[[node]]
id = "n2"
site = "S1"

[[event]]
at_s = 1
action = "disk_fill"
nodes = ["n1", "n2"]
pct = 95
"#;
    let scenario = fleetdeck_scenarios::Scenario::parse(text, "rot").unwrap();
    let opts = RunOptions {
        repeat: true,
        stop_after: Some(std::time::Duration::from_millis(5500)),
        ..RunOptions::default()
    };
    let mut runner = Runner::build(scenario, &opts).await.unwrap();
    let stop = AtomicBool::new(false);
    let mut lines = Vec::new();
    runner
        .run(&opts, &stop, &mut |l| lines.push(l))
        .await
        .unwrap();
    runner.shutdown().await;
    let fills: Vec<&String> = lines.iter().filter(|l| l.contains("fills to")).collect();
    assert_eq!(fills.len(), 2, "{lines:#?}");
    assert!(
        fills[0].contains("node n1") && fills[1].contains("node n2"),
        "{fills:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("pass 2")));
}

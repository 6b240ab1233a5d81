//! The runner itself: stopping a run, a failing check, a repeating
//! timeline, time acceleration. (Every built-in scenario is played with its
//! checks in `built_in.rs`.)

use std::sync::atomic::AtomicBool;

use fleetdeck_scenarios::{RunOptions, Runner};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accelerated_run_scales_the_heartbeat_and_the_timeline() {
    // Heartbeat 10 s and node down after 3 missed: at speed 10 the crash is
    // noticed within 3 s of real time, as 30 s of scenario time.
    let text = r#"
name = "fast"
fleet = "t"
duration_s = 60

[config]
heartbeat.interval_s = 10
alerts.missed_beats = 3

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
at_s = 10
action = "crash"
node = "n1"

[[check]]
at_s = 10
within_s = 40
kind = "alert_fired"
alert = "node-down:n1"

[[check]]
at_s = 10
within_s = 40
kind = "runs"
node = "n2"
key = "heartbeat.interval_s"
value = 1
"#;
    let scenario = fleetdeck_scenarios::Scenario::parse(text, "fast").unwrap();
    assert!(
        scenario
            .check_speed(20.0)
            .unwrap_err()
            .contains("1, 2, 5, 10"),
        "a 10 s heartbeat cannot go faster than 10"
    );
    let opts = RunOptions {
        check: true,
        speed: Some(10.0),
        ..RunOptions::default()
    };
    let mut runner = Runner::build(scenario, &opts).await.unwrap();
    let stop = AtomicBool::new(false);
    let report = runner
        .run(&opts, &stop, &mut |l| println!("{l}"))
        .await
        .unwrap();
    runner.shutdown().await;
    assert!(report.passed(), "{}", report.render());
    assert!(
        report.elapsed_s < 30.0,
        "60 s of timeline at speed 10: {}",
        report.elapsed_s
    );
    let fired_at = report.checks[0].result.clone().unwrap();
    assert!(
        (29.0..70.0).contains(&fired_at),
        "down 30 s after its last heartbeat (at most one interval before the crash at 10 s), \
         in scenario time: {fired_at}"
    );
    let json = report.to_json();
    assert_eq!(json["passed"], true);
    assert_eq!(json["speed"], 10.0);
    assert_eq!(json["checks"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_check_fails_when_the_alert_fires_inside_its_window() {
    let text = r#"
name = "early"
fleet = "t"
duration_s = 10

[config]
heartbeat.interval_s = 1

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
action = "crash"
node = "n1"

[[check]]
at_s = 1
within_s = 8
kind = "alert_quiet"
alert = "node-down:n1"
"#;
    let scenario = fleetdeck_scenarios::Scenario::parse(text, "early").unwrap();
    let opts = RunOptions {
        check: true,
        ..RunOptions::default()
    };
    let mut runner = Runner::build(scenario, &opts).await.unwrap();
    let stop = AtomicBool::new(false);
    let report = runner
        .run(&opts, &stop, &mut |l| println!("{l}"))
        .await
        .unwrap();
    runner.shutdown().await;
    let why = report.checks[0].result.clone().unwrap_err();
    assert!(why.starts_with("node-down:n1 fired at"), "{why}");
}

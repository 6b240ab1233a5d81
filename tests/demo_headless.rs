//! `fleetdeck demo --headless` and `fleetdeck scenario run`, as CI and an
//! operator run them: the real binary, real daemons over 127.0.0.1.

use std::process::{Command, Output};

fn fleetdeck(args: &[&str], data: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(args)
        .env("FLEETDECK_DATA", data)
        .env_remove("RUST_LOG")
        .output()
        .expect("the fleetdeck binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_demo_starts_headless_plays_its_timeline_and_prints_a_summary() {
    let data = tempfile::tempdir().unwrap();
    let out = fleetdeck(&["demo", "--headless", "--for", "10s"], data.path());
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    // The default scenario, at its own speed (5): 10 s of real time is the
    // first 50 s of the Blocao timeline, which cuts a warehouse off at 20 s.
    assert!(
        stdout.contains("scenario blocao: 4 sites, 9 nodes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("site BL-WH-S is cut off"),
        "an event of the timeline was played:\n{stdout}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("scenario blocao:") && l.contains("events played"))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    assert!(summary.contains("(speed 5)"), "{summary}");
    assert!(stdout.contains("sites: "), "{stdout}");
    // Every node applied its config and the operator heard of it.
    let applies: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("applies (as the operator sees them)"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(applies.len(), 9, "{stdout}");
    assert!(applies.iter().all(|l| l.ends_with(" ok")), "{applies:#?}");

    // FLEETDECK_DATA was honoured: the replicas are kept there to inspect,
    // and a second demo does not reuse or touch them.
    assert!(stdout.contains("the demo's replicas are kept"), "{stdout}");
    let ops = data.path().join("ops");
    let status = fleetdeck(&["--json", "status"], &ops);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["sites"].as_array().map(Vec::len), Some(4));
    let again = fleetdeck(&["demo", "--headless", "--for", "1s"], data.path());
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("an earlier demo"),
        "{}",
        text(&again.stderr)
    );
    let real = fleetdeck(&["demo", "--headless", "--for", "1s"], &ops);
    assert_eq!(real.status.code(), Some(1));
    assert!(
        text(&real.stderr).contains("holds a replica"),
        "{}",
        text(&real.stderr)
    );
}

const TINY: &str = r#"
name = "tiny"
fleet = "t"
duration_s = 30
speed = 10

[config]
heartbeat.interval_s = 10

[[site]]
id = "S1"
name = "Site 1"

[[node]]
id = "n1"
site = "S1"

[[event]]
at_s = 5
action = "set"
key = "retention.days"
value = 30

[[check]]
at_s = 5
within_s = 20
kind = "runs"
node = "n1"
key = "retention.days"
value = 30
"#;

#[test]
fn scenario_run_json_prints_a_report_whose_checks_held() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("tiny.toml");
    std::fs::write(&file, TINY).unwrap();
    let path = file.to_str().unwrap();
    let out = fleetdeck(&["--json", "scenario", "run", path, "--check"], data.path());
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is one JSON report ({e}):\n{stdout}"));
    assert_eq!(report["scenario"], "tiny");
    assert_eq!(report["passed"], true);
    assert_eq!(report["speed"], 10.0);
    assert_eq!(report["checks"][0]["ok"], true, "{report}");
    assert_eq!(report["applies"][0]["node"], "n1");
    assert!(
        text(&out.stderr).contains("retention.days = 30"),
        "the timeline goes to stderr with --json"
    );
}

#[test]
fn a_bad_scenario_file_is_refused_with_its_line_and_field() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("bad.toml");
    std::fs::write(
        &file,
        TINY.replace("action = \"set\"", "action = \"explode\""),
    )
    .unwrap();
    let out = fleetdeck(
        &["scenario", "run", file.to_str().unwrap(), "--check"],
        data.path(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 20") && stderr.contains("event[0].action"),
        "{stderr}"
    );
    assert!(stderr.contains("explode"), "{stderr}");
    let out = fleetdeck(&["scenario", "run", "blocao", "--speed", "20"], data.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("heartbeat.interval_s") && stderr.contains("1, 2, 5, 10"),
        "{stderr}"
    );
}

#[test]
fn the_demo_plays_another_scenario_at_another_speed() {
    let data = tempfile::tempdir().unwrap();
    let out = fleetdeck(
        &[
            "demo",
            "--scenario",
            "wildfire",
            "--speed",
            "10",
            "--headless",
            "--for",
            "4s",
        ],
        data.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("scenario wildfire: 4 sites, 7 nodes")
            && stdout.contains("at speed 10 (33s real), repeating"),
        "{stdout}"
    );
    // 4 s at speed 10 reach the crash at 20 s of the timeline.
    assert!(stdout.contains("node edge-east-01 crashed"), "{stdout}");
}

//! Scenario files: the built-ins parse, and a bad file is refused with the
//! line and the field it is about.

use fleetdeck_scenarios::{Scenario, SpecError};

const GOOD: &str = r#"
name = "tiny"
fleet = "t"
duration_s = 10

[[site]]
id = "S1"
name = "Site 1"

[[node]]
id = "n1"
site = "S1"

[[event]]
at_s = 2
action = "crash"
node = "n1"
"#;

fn err(text: &str) -> String {
    match Scenario::parse(text, "test.toml") {
        Ok(_) => panic!("should not parse:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_built_in_scenario_parses() {
    for (name, text) in fleetdeck_scenarios::BUILTIN {
        Scenario::parse(text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(!fleetdeck_scenarios::list().is_empty());
    Scenario::parse(GOOD, "good").unwrap();
}

#[test]
fn an_unknown_action_is_refused_naming_its_line_and_field() {
    let bad = GOOD.replace("action = \"crash\"", "action = \"explode\"");
    let e = err(&bad);
    assert!(e.contains("line 16"), "{e}");
    assert!(e.contains("event[0].action"), "{e}");
    assert!(e.contains("explode"), "{e}");
}

#[test]
fn an_event_on_a_node_that_does_not_exist_names_the_line_and_field() {
    let bad = GOOD.replace("node = \"n1\"\n\"#", "").replace(
        "action = \"crash\"\nnode = \"n1\"",
        "action = \"crash\"\nnode = \"n9\"",
    );
    let e = err(&bad);
    assert!(e.contains("line 17"), "{e}");
    assert!(e.contains("event[0].node"), "{e}");
    assert!(e.contains("no node n9"), "{e}");
}

#[test]
fn a_field_of_the_wrong_type_keeps_tomls_line_and_column() {
    let bad = GOOD.replace("duration_s = 10", "duration_s = \"ten\"");
    let e = err(&bad);
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("duration_s") || e.contains("ten"), "{e}");
}

#[test]
fn a_missing_field_and_an_unknown_field_are_named() {
    let e = err(&GOOD.replace("fleet = \"t\"\n", ""));
    assert!(e.contains("fleet"), "{e}");
    let e = err(&GOOD.replace("name = \"Site 1\"", "name = \"Site 1\"\nlatitude = 3.0"));
    assert!(e.contains("latitude"), "{e}");
    assert!(e.contains("line 9"), "{e}");
}

#[test]
fn a_node_in_an_unknown_site_is_refused() {
    let e = err(&GOOD.replace("site = \"S1\"", "site = \"S2\""));
    assert!(
        e.contains("node[0].site") && e.contains("no site S2"),
        "{e}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    match fleetdeck_scenarios::load("/nonexistent/scenario.toml") {
        Err(SpecError::NotFound(m)) => assert!(m.contains("blocao"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_event_can_rotate_over_nodes_but_not_name_both_forms() {
    let two = GOOD.replace(
        "[[event]]",
        "[[node]]\nid = \"n2\"\nsite = \"S1\"\n\n[[event]]",
    );
    let rot = two.replace("node = \"n1\"\n\"#", "").replace(
        "action = \"crash\"\nnode = \"n1\"",
        "action = \"crash\"\nnodes = [\"n1\", \"n2\"]",
    );
    let s = Scenario::parse(&rot, "rot").unwrap();
    assert_eq!(s.events[0].rotate.len(), 2);
    let both = rot.replace("nodes = [", "node = \"n1\"\nnodes = [");
    assert!(err(&both).contains("event[0].nodes"));
    let unknown = rot.replace("\"n2\"]", "\"n7\"]");
    let e = err(&unknown);
    assert!(
        e.contains("event[0].nodes[1]") && e.contains("no node n7"),
        "{e}"
    );
}

#[test]
fn a_speed_that_breaks_the_heartbeats_whole_seconds_is_refused_naming_the_key() {
    let bad = GOOD.replace(
        "duration_s = 10\n",
        "duration_s = 10\nspeed = 4\n\n[config]\nheartbeat.interval_s = 10\n",
    );
    let e = err(&bad);
    assert!(e.contains("line 5") && e.contains("speed"), "{e}");
    assert!(
        e.contains("heartbeat.interval_s") && e.contains("1, 2, 5, 10"),
        "{e}"
    );
    let e = err(&GOOD.replace("duration_s = 10\n", "duration_s = 10\nspeed = 0\n"));
    assert!(e.contains("expected 0.1 to 100"), "{e}");
}

#[test]
fn a_table_set_by_an_event_has_its_durations_checked_against_the_speed() {
    let table = GOOD.replace("duration_s = 10\n", "duration_s = 10\nspeed = 4\n")
        + "\n[[event]]\nat_s = 3\naction = \"set\"\nkey = \"heartbeat\"\nvalue = { interval_s = 10 }\n";
    let e = err(&table);
    assert!(
        e.contains("heartbeat.interval_s") && e.contains("1, 2, 5, 10"),
        "{e}"
    );
    Scenario::parse(&table.replace("speed = 4", "speed = 5"), "ok").unwrap();
}

#[test]
fn rollout_and_replica_references_are_checked_with_their_line() {
    let rollout = GOOD.replace(
        "action = \"crash\"\nnode = \"n1\"",
        "action = \"rollout_resume\"\nid = \"canary\"",
    );
    let e = err(&rollout);
    assert!(e.contains("line 17") && e.contains("event[0].id"), "{e}");
    assert!(e.contains("no rollout 'canary'"), "{e}");
    let moved = GOOD.replace(
        "action = \"crash\"\nnode = \"n1\"",
        "action = \"move\"\nreplica = \"laptop\"\nto = \"S1\"",
    );
    let e = err(&moved);
    assert!(
        e.contains("event[0].replica") && e.contains("laptop"),
        "{e}"
    );
    let with_laptop = moved.replace(
        "[[site]]",
        "[[replica]]\nname = \"laptop\"\nkind = \"laptop\"\n\n[[site]]",
    );
    let s = Scenario::parse(&with_laptop, "ok").unwrap();
    assert_eq!(s.replicas.len(), 1);
    let e = err(&with_laptop.replace("to = \"S1\"", "to = \"S9\""));
    assert!(
        e.contains("line 22") && e.contains("event[0].to") && e.contains("no site S9"),
        "{e}"
    );
}

#[test]
fn a_check_missing_its_fields_names_them() {
    let runs = format!("{GOOD}\n[[check]]\nkind = \"runs\"\nvalue = 3\n");
    let e = err(&runs);
    assert!(e.contains("line 20") && e.contains("check[0].key"), "{e}");
    let nobody =
        format!("{GOOD}\n[[check]]\nkind = \"runs\"\nnodes = []\nkey = \"a\"\nvalue = 3\n");
    let e = err(&nobody);
    assert!(
        e.contains("check[0].nodes") && e.contains("no node to check"),
        "{e}"
    );
    let quiet = format!("{GOOD}\n[[check]]\nkind = \"louder\"\n");
    assert!(err(&quiet).contains("alert_quiet"));
    let halted = format!("{GOOD}\n[[check]]\nkind = \"rollout_halted\"\nrollout = \"r1\"\n");
    let e = err(&halted);
    assert!(
        e.contains("check[0].rollout") && e.contains("no event starts a rollout 'r1'"),
        "{e}"
    );
    let receipts =
        format!("{GOOD}\n[[check]]\nkind = \"receipts\"\nchange = \"nope\"\nstate = \"applied\"\n");
    let e = err(&receipts);
    assert!(
        e.contains("check[0].change") && e.contains("no set event has the message 'nope'"),
        "{e}"
    );
    let edit = format!(
        "{GOOD}\n[[event]]\nat_s = 3\naction = \"set\"\nkey = \"a\"\nvalue = 1\nmessage = \"m\"\n[[check]]\nkind = \"receipts\"\nchange = \"m\"\nstate = \"gone\"\n"
    );
    let e = err(&edit);
    assert!(
        e.contains("check[0].state") && e.contains("applied, delivered or not_yet"),
        "{e}"
    );
    assert!(Scenario::parse(&edit.replace("\"gone\"", "\"not_yet\""), "t.toml").is_ok());
}

#[test]
fn a_certificate_event_needs_a_node_with_a_simulated_certificate() {
    let cert = GOOD.replace(
        "action = \"crash\"\nnode = \"n1\"",
        "action = \"cert\"\nnode = \"n1\"\ndays = 5",
    );
    let e = err(&cert);
    assert!(
        e.contains("event[0].node") && e.contains("metrics.tls_days"),
        "{e}"
    );
    let with_cert = cert.replace(
        "site = \"S1\"\n\n[[event]]",
        "site = \"S1\"\nmetrics = { tls_days = 60 }\n\n[[event]]",
    );
    Scenario::parse(&with_cert, "ok").unwrap();
}

#[test]
fn a_clock_skew_needs_its_offset() {
    let good = GOOD.replace(
        "action = \"crash\"",
        "action = \"clock_skew\"\nby_s = -7200",
    );
    Scenario::parse(&good, "skew").unwrap();
    let e = err(&GOOD.replace("action = \"crash\"", "action = \"clock_skew\""));
    assert!(e.contains("event[0].by_s"), "{e}");
    assert!(e.contains("clock_skew needs by_s"), "{e}");
}

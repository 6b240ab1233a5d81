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

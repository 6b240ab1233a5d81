//! Every view of the console on the fixture fleet, at 120×40 and 80×24,
//! as insta snapshots of the screen text; colours that carry meaning
//! (health, severity, staleness) are asserted cell by cell.

mod common;

use common::{Console, find, redact_ids};
use fleetdeck_store::alerts::SiteState;
use fleetdeck_tui::Theme;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

/// Snapshots the console at both sizes after pressing `keys` (change ids
/// and keys redacted: see `redact_ids`).
fn both_sizes(name: &str, keys: &str) {
    let mut c = Console::new();
    c.press(keys);
    insta::assert_snapshot!(format!("{name}_120x40"), redact_ids(&c.screen(120, 40)));
    insta::assert_snapshot!(format!("{name}_80x24"), redact_ids(&c.screen(80, 24)));
}

fn fg_at(buf: &Buffer, needle: &str) -> Color {
    let (x, y) = find(buf, needle).unwrap_or_else(|| panic!("'{needle}' is not on screen"));
    buf[(x, y)].fg
}

#[test]
fn overview_shows_sites_health_alerts_and_map() {
    both_sizes("overview", "");
}

#[test]
fn site_view_shows_nodes_overrides_and_alerts() {
    // The overview lists the worst site first: BL-WH-N.
    both_sizes("site", "enter");
}

#[test]
fn node_view_shows_sparklines_config_and_health() {
    // BL-WH-N's nodes: whn-cam-1, whn-nvr, whn-router.
    both_sizes("node", "enter j enter");
}

#[test]
fn alerts_view_lists_every_open_alert() {
    both_sizes("alerts", "2");
}

#[test]
fn alerts_view_with_silenced_alerts_shown() {
    both_sizes("alerts_all", "2 h");
}

#[test]
fn history_view_lists_changes_newest_first() {
    both_sizes("history", "3");
}

#[test]
fn history_enter_lists_the_nodes_that_do_not_run_the_change() {
    both_sizes("history_receipts", "3 enter");
}

#[test]
fn peers_view_lists_peers_and_sync() {
    both_sizes("peers", "4");
}

#[test]
fn help_overlay_lists_the_keys_of_the_view() {
    both_sizes("help_alerts", "2 ?");
}

#[test]
fn palette_overlay_lists_completions() {
    let mut c = Console::new();
    c.press(":");
    c.type_text("site BL-");
    insta::assert_snapshot!("palette_80x24", c.screen(80, 24));
}

#[test]
fn revert_confirm_dialog() {
    both_sizes("revert_confirm", "3 r");
}

#[test]
fn silence_prompt() {
    let mut c = Console::new();
    c.press("2 s");
    insta::assert_snapshot!("silence_prompt_80x24", c.screen(80, 24));
}

#[test]
fn read_only_overview_says_so_in_the_status_bar() {
    let mut c = Console::read_only();
    c.source.set_sync(fleetdeck_tui::SyncStatus::Off {
        reason: "read-only".into(),
    });
    c.app.request_snapshot();
    c.app.pump(&mut c.source);
    let screen = c.screen(80, 24);
    assert!(screen.contains("READ-ONLY"), "{screen}");
    assert!(screen.contains("not syncing (read-only)"), "{screen}");
    insta::assert_snapshot!("overview_read_only_80x24", screen);
}

#[test]
fn site_rows_are_coloured_by_health() {
    for name in Theme::names() {
        let c = Console::themed(name);
        let theme = Theme::named(name).unwrap();
        let buf = c.buffer(120, 40);
        assert_eq!(fg_at(&buf, "BL-WH-N "), theme.health.err, "{name}: err row");
        assert_eq!(fg_at(&buf, "BL-WH-S "), theme.health.err, "{name}: err row");
        assert_eq!(
            fg_at(&buf, "BL-LAB-1 "),
            theme.health.green,
            "{name}: green row"
        );
        assert_eq!(
            fg_at(&buf, "BL-LAB-2 "),
            theme.health.warn,
            "{name}: warn row"
        );
        assert_eq!(
            fg_at(&buf, "BL-FIELD-3 "),
            theme.health.unknown,
            "{name}: unknown row"
        );
        assert_eq!(fg_at(&buf, "● err "), theme.health.err, "{name}: err badge");
        assert_eq!(
            fg_at(&buf, "● green "),
            theme.health.green,
            "{name}: green badge"
        );
    }
}

#[test]
fn the_four_health_colours_are_distinct_in_every_theme() {
    for name in Theme::names() {
        let t = Theme::named(name).unwrap();
        let h = [
            t.health.green,
            t.health.warn,
            t.health.err,
            t.health.unknown,
        ];
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(h[i], h[j], "{name}: health colours {i} and {j}");
            }
        }
    }
}

#[test]
fn the_health_bar_is_drawn_in_state_colours() {
    let c = Console::new();
    let theme = Theme::default();
    let buf = c.buffer(120, 40);
    // Row 2 is the bar: 4 green, 3 warn, 2 err, 1 unknown of 10 sites.
    let colours: Vec<Color> = (1..119).map(|x| buf[(x, 2)].fg).collect();
    let count = |c: Color| colours.iter().filter(|&&x| x == c).count();
    assert_eq!(count(theme.health.green), 47);
    assert_eq!(count(theme.health.warn), 35);
    assert_eq!(count(theme.health.err), 24);
    assert_eq!(count(theme.health.unknown), 12);
    assert_eq!(colours[0], theme.health.green);
    assert_eq!(*colours.last().unwrap(), theme.health.unknown);
}

#[test]
fn map_pins_are_coloured_by_site_state_and_unlocated_sites_have_none() {
    let c = Console::new();
    let theme = Theme::default();
    let buf = c.buffer(120, 40);
    let (map_x, map_y) = find(&buf, "map · ").unwrap();
    let mut pins = Vec::new();
    for y in map_y + 1..map_y + 18 {
        for x in map_x..119 {
            if buf[(x, y)].symbol() == "●" {
                pins.push(buf[(x, y)].fg);
            }
        }
    }
    // Nine located sites; the three in the Netherlands north share cells.
    assert!(pins.len() >= 5 && pins.len() <= 9, "{} pins", pins.len());
    assert!(pins.contains(&theme.health.err));
    assert!(pins.contains(&theme.health.warn));
    assert!(pins.contains(&theme.health.green));
    assert!(
        !pins.contains(&theme.health.unknown),
        "BL-FIELD-3 has no location"
    );
    let screen = c.screen(120, 40);
    assert!(screen.contains("1 without a location"), "{screen}");
}

#[test]
fn stale_data_is_marked_with_its_age() {
    let c = Console::new();
    let theme = Theme::default();
    let buf = c.buffer(120, 40);
    // BL-WH-S has been silent for 9 minutes (heartbeat 10 s).
    assert_eq!(fg_at(&buf, "stale 9m"), theme.ui.stale);
    // BL-HUB-DE was heard 20 s ago but beats every 30 s: not stale.
    let screen = c.screen(120, 40);
    assert!(screen.contains("20s ago"), "{screen}");
}

#[test]
fn alert_severities_are_coloured() {
    let mut c = Console::new();
    c.press("2");
    let theme = Theme::default();
    let buf = c.buffer(120, 40);
    assert_eq!(fg_at(&buf, "hard "), theme.severity.hard);
    assert_eq!(fg_at(&buf, "medium "), theme.severity.medium);
    assert_eq!(fg_at(&buf, "soft "), theme.severity.soft);
}

#[test]
fn the_states_the_fixture_promises_hold() {
    let c = Console::new();
    let snap = c.app.snapshot();
    let state = |id: &str| snap.site(id).unwrap().state;
    assert_eq!(state("BL-WH-N"), SiteState::Err);
    assert_eq!(state("BL-WH-S"), SiteState::Err);
    assert_eq!(state("BL-LAB-2"), SiteState::Warn);
    assert_eq!(
        state("BL-HUB-FI"),
        SiteState::Green,
        "its alert is silenced"
    );
    assert_eq!(state("BL-FIELD-3"), SiteState::Unknown);
    assert_eq!(snap.summary.hidden, 1);
}

#[test]
fn the_selected_row_keeps_its_health_colour() {
    let c = Console::new();
    let theme = Theme::default();
    let buf = c.buffer(120, 40);
    // BL-WH-N is the first row, selected.
    let (x, y) = find(&buf, "BL-WH-N ").unwrap();
    assert_eq!(buf[(x, y)].fg, theme.health.err);
    assert_eq!(buf[(x, y)].bg, theme.ui.selected_bg);
}

#[test]
fn config_editor_shows_the_layer_as_a_tree_beside_what_it_inherits() {
    // BL-WH-N's overrides.
    both_sizes("config_site", "enter e");
}

#[test]
fn config_editor_value_input_shows_the_schema_verdict() {
    both_sizes(
        "config_edit",
        "enter e / d i s k _ p c t enter j e backspace backspace 1 2 0",
    );
}

#[test]
fn config_review_shows_the_effective_diff_and_its_reach() {
    both_sizes(
        "config_review",
        "enter e / d i s k _ p c t enter j e backspace backspace 8 0 enter c",
    );
}

#[test]
fn rollouts_view_shows_phases_and_waves() {
    both_sizes("rollouts", "5");
}

#[test]
fn commands_view_shows_results_per_node() {
    both_sizes("commands", "6 tab");
}

#[test]
fn the_value_verdict_is_red_when_refused_and_green_when_valid() {
    let mut c = Console::new();
    c.press("enter e / d i s k _ p c t enter j e backspace backspace 1 2 0");
    let buf = c.buffer(120, 40);
    assert_eq!(fg_at(&buf, "✗"), c.app.theme().ui.error);
    c.press("backspace backspace");
    let buf = c.buffer(120, 40);
    assert_eq!(fg_at(&buf, "✓"), c.app.theme().ui.ok);
}

//! Every view of the console on the fixture fleet, at 120×40 and 80×24,
//! as insta snapshots of the screen text; colours that carry meaning
//! (health, severity, staleness) are asserted cell by cell.

mod common;

use common::{Console, find, redact_ids};
use fleetdeck_store::alerts::SiteState;
use fleetdeck_tui::SiteFacts;
use fleetdeck_tui::Theme;
use fleetdeck_tui::fixture::T0;
use fleetdeck_tui::views::overview::{map_bounds, place_pins};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};

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
fn history_view_with_address_changes_shown() {
    both_sizes("history_addresses", "3 h");
}

#[test]
fn events_view_lists_the_fleets_events_newest_first() {
    both_sizes("events", "7");
}

#[test]
fn events_view_of_one_site() {
    // BL-WH-N, the worst site: its nodes' events and the changes naming it.
    both_sizes("events_site", "enter v");
}

#[test]
fn as_of_banner_over_the_overview() {
    both_sizes("as_of", ": a t space 2 h enter");
}

#[test]
fn as_of_an_event_over_the_alerts() {
    // ← from now: the last event, lis-cam-1 going down.
    both_sizes("as_of_event", "2 left");
}

#[test]
fn marked_sites_show_in_a_column_and_the_title() {
    both_sizes("sites_marked", "space space");
}

#[test]
fn the_rollout_form_on_marked_sites() {
    both_sizes("rollout_form", "space space N");
}

#[test]
fn overview_grouped_by_zone() {
    both_sizes("overview_by_zone", "z");
}

#[test]
fn a_dark_site_is_down_in_red_even_when_its_offline_alert_is_silenced() {
    let mut c = Console::new();
    let theme = Theme::default();
    // Silence BL-WH-S's offline alert: the store counts the site green.
    c.press("2 j s");
    c.press("enter 1");
    assert!(c.app.snapshot().summary.hidden >= 1);
    let buf = c.buffer(120, 40);
    assert_eq!(fg_at(&buf, "▼ down    BL-WH-S"), theme.health.err);
    assert_eq!(fg_at(&buf, "BL-WH-S  "), theme.health.err);
    // Against a site with one node of two up: amber, its own state.
    assert_eq!(fg_at(&buf, "1/2"), theme.ui.stale);
    assert!(find(&buf, "● warn    BL-SHOP-LIS").is_some());
}

#[test]
fn zones_view_lists_zones_and_their_sites() {
    both_sizes("zones", "8 j");
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
    for y in map_y + 1..map_y + 19 {
        for x in map_x..119 {
            let cell = &buf[(x, y)];
            let glyph = cell.symbol();
            // A count, not a label's "+3".
            let after_text = buf[(x - 1, y)].symbol() == "+";
            if glyph == "●" || (glyph.parse::<u32>().is_ok() && !after_text) {
                pins.push((glyph.to_string(), cell.fg, cell.modifier));
            }
        }
    }
    // Nine located sites; the four in the Netherlands share a cell at this
    // scale: one pin that says 4.
    let screen = c.screen(120, 40);
    assert!(screen.contains("map · 9 sites in 6 pins"), "{screen}");
    assert_eq!(pins.len(), 6, "{pins:?}");
    assert!(pins.iter().any(|(g, _, _)| g == "4"), "{pins:?}");
    let colours: Vec<Color> = pins.iter().map(|p| p.1).collect();
    assert!(colours.contains(&theme.health.err));
    assert!(colours.contains(&theme.health.warn));
    assert!(colours.contains(&theme.health.green));
    assert!(
        !colours.contains(&theme.health.unknown),
        "BL-FIELD-3 has no location"
    );
    assert!(screen.contains("1 without a location"), "{screen}");
    // The selected site (BL-WH-N, in the merged pin) is highlighted, and
    // pins are labelled with site ids where they fit.
    let lit: Vec<_> = pins
        .iter()
        .filter(|p| p.2.contains(Modifier::REVERSED))
        .collect();
    assert_eq!(lit.len(), 1, "{pins:?}");
    assert_eq!(lit[0].0, "4");
    for label in ["BL-WH-N +3", "BL-HUB-FI", "BL-SHOP-SG"] {
        assert!(screen.contains(label), "{label}: {screen}");
    }
}

/// A site as the map needs it: an id, a state, a place.
fn site_at(id: &str, lat: f64, lon: f64) -> SiteFacts {
    SiteFacts {
        id: id.into(),
        name: id.into(),
        zone: None,
        location: Some((lat, lon)),
        state: SiteState::Green,
        nodes_total: 1,
        nodes_up: 1,
        alerts: [0; 3],
        silenced: 0,
        last_heard_ms: None,
        heartbeat_ms: 10_000,
    }
}

#[test]
fn the_map_fits_a_fleet_in_one_country() {
    // The demo's four camera sites in Portugal.
    let sites = [
        site_at("BL-LAB-1", 38.7223, -9.1393),
        site_at("BL-LAB-2", 41.1579, -8.6291),
        site_at("BL-WH-N", 41.5454, -8.4265),
        site_at("BL-WH-S", 37.0194, -7.9322),
    ];
    let refs: Vec<&SiteFacts> = sites.iter().collect();
    let area = Rect::new(0, 0, 48, 18);
    let points: Vec<(f64, f64)> = sites.iter().filter_map(|s| s.location).collect();
    let bounds = map_bounds(&points, area.width, area.height);
    let (lon, lat) = bounds;
    assert!(
        lon[1] - lon[0] < 15.0 && lat[1] - lat[0] < 8.0,
        "Portugal, not the Atlantic: {bounds:?}"
    );
    let pins = place_pins(&refs, &bounds, area, Some("BL-WH-S"));
    assert_eq!(pins.iter().map(|p| p.sites.len()).sum::<usize>(), 4);
    // North to south the pins span most of the map's height.
    let top = pins.iter().map(|p| p.y).min().unwrap();
    let bottom = pins.iter().map(|p| p.y).max().unwrap();
    assert!(
        f64::from(bottom - top) >= 0.6 * f64::from(area.height - 1),
        "{pins:?}"
    );
    assert!(pins.iter().all(|p| p.x < area.width && p.y < area.height));
    // Labelled where they fit, the selected one first.
    let selected = pins.iter().find(|p| p.selected).unwrap();
    assert_eq!(selected.sites, ["BL-WH-S"]);
    assert_eq!(
        selected.label.as_ref().map(|l| l.1.as_str()),
        Some("BL-WH-S")
    );
    assert!(
        pins.iter().filter(|p| p.label.is_some()).count() >= 3,
        "{pins:?}"
    );
}

#[test]
fn sites_that_share_a_cell_make_one_pin_with_their_count() {
    let mut warn = site_at("B", 50.0001, 10.0001);
    warn.state = SiteState::Warn;
    let sites = [site_at("A", 50.0, 10.0), warn, site_at("C", 10.0, 60.0)];
    let refs: Vec<&SiteFacts> = sites.iter().collect();
    let area = Rect::new(0, 0, 40, 16);
    let points: Vec<(f64, f64)> = sites.iter().filter_map(|s| s.location).collect();
    let pins = place_pins(&refs, &map_bounds(&points, 40, 16), area, None);
    assert_eq!(pins.len(), 2, "{pins:?}");
    let merged = pins.iter().find(|p| p.sites.len() == 2).unwrap();
    assert_eq!(merged.glyph(), "2");
    assert_eq!(merged.sites, ["B", "A"], "the worst state first");
    assert_eq!(merged.state, SiteState::Warn);
    assert_eq!(merged.label.as_ref().map(|l| l.1.as_str()), Some("B +1"));
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

// ---- the cause first ------------------------------------------------------------

#[test]
fn alert_rows_lead_with_the_node_and_the_cause() {
    let c = Console::new();
    let snap = c.app.snapshot();
    let headline = |id: &str| {
        let a = snap.alert(id).unwrap_or_else(|| panic!("no alert {id}"));
        fleetdeck_tui::cause::headline(snap, T0, a)
    };
    assert_eq!(
        headline("apply:whn-cam-1"),
        "whn-cam-1: apply failed — health check failed: frigate did not start (rev r43)"
    );
    assert_eq!(
        headline("disk:whn-nvr:/data"),
        "whn-nvr: disk /data 97% full"
    );
    assert_eq!(
        headline("tls:hub-de:hub.blocao.eu"),
        "hub-de: TLS hub.blocao.eu expires in 10d"
    );
    assert_eq!(
        headline("site-offline:BL-WH-S"),
        "BL-WH-S: offline — no node heard for 9m"
    );
    assert_eq!(
        headline("node-down:lis-cam-1"),
        "lis-cam-1: down — not heard for 2m"
    );
    assert_eq!(
        headline("backup:hub-fi"),
        "hub-fi: backup failed — timescale: disk quota exceeded"
    );
}

#[test]
fn a_rolled_back_apply_names_its_cause_before_its_revision() {
    let mut c = Console::new();
    c.source.report("lab1-cam-1", |r| {
        r.applied = Some(fleetdeck_store::health::ApplyReport {
            revision: "4b660dc1833e0c2a".into(),
            result: fleetdeck_store::health::ApplyResult::RolledBack,
            error: Some("unknown detector".into()),
            duration_ms: 900,
            at_ms: T0,
            from: Vec::new(),
        });
    });
    c.refresh();
    c.press("2");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("lab1-cam-1: rolled back — unknown detector (rev 4b66…)"),
        "{screen}"
    );
    // At 80 columns the cause is still on screen, and the detail box has
    // the store's message whole.
    c.press("j j j");
    let screen = c.screen(80, 24);
    assert!(
        screen.contains("lab1-cam-1: rolled back — unknown detector"),
        "{screen}"
    );
    assert!(
        screen.contains("applying revision 4b660dc1833e0c2a on node lab1-cam-1 was rolled"),
        "{screen}"
    );
}

#[test]
fn every_cut_text_ends_with_an_ellipsis() {
    let mut c = Console::new();
    // A name cut in the sites table.
    let screen = c.screen(120, 40);
    assert!(screen.contains("Warehouse North (R… "), "{screen}");
    // An alert cut at 80 columns (the whole of it is in the detail box).
    c.press("2");
    let screen = c.screen(80, 24);
    let row = screen
        .lines()
        .find(|l| l.contains("whn-cam-1: apply failed"))
        .unwrap();
    assert!(row.contains("…"), "{row}");
    // Every table cell that reaches its column's end on this screen is cut
    // with …: no word stops short against a border.
    for line in screen.lines().filter(|l| l.starts_with("\"│")) {
        let inner = line.trim_matches('"').trim_end_matches('│');
        let last = inner.chars().last().unwrap_or(' ');
        assert!(last == ' ' || last == '…', "cut without …: {line}");
    }
    // The breadcrumb gives way before it runs into the replica's name.
    c.press(":");
    c.type_text("node whn-nvr");
    c.press("enter");
    let top = c.screen(50, 20).lines().next().unwrap().to_string();
    assert!(top.contains("… › whn-nvr"), "{top}");
    assert!(top.trim_end_matches('"').ends_with(" ops-laptop "), "{top}");
}

#[test]
fn the_header_does_not_wrap_in_the_middle_of_a_value() {
    let mut c = Console::new();
    c.press("enter");
    let screen = c.screen(80, 24);
    let head: Vec<&str> = screen.lines().skip(1).take(2).collect();
    assert!(head[0].contains("3/3 nodes up"), "{head:?}");
    assert!(head[0].contains("heard 2s ago"), "{head:?}");
    assert!(head[1].contains("53.22, 6.57"), "{head:?}");
}

#[test]
fn zero_counts_are_not_alarms_and_a_site_with_no_node_up_is_red() {
    let mut c = Console::new();
    let theme = Theme::default();
    let buf = c.buffer(120, 40);
    // BL-WH-S: none of 2 up; BL-SHOP-LIS: 1 of 2; BL-FIELD-3: never heard.
    let cell = |buf: &Buffer, site: &str, text: &str| {
        let (_, y) = find(buf, &format!("{site} ")).unwrap();
        let line: String = (0..buf.area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        let x = line.find(text).unwrap();
        buf[(line[..x].chars().count() as u16, y)].fg
    };
    assert_eq!(cell(&buf, "BL-WH-S", "0/2"), theme.health.err);
    assert_eq!(cell(&buf, "BL-SHOP-LIS", "1/2"), theme.ui.stale);
    assert_eq!(cell(&buf, "BL-FIELD-3", "0/1"), theme.ui.dim);
    // The soft alert clears: "0 soft" is dim, not in an alert colour.
    c.source.report("lab2-cam-1", |r| r.metrics.mem_pct = 50.0);
    c.refresh();
    let buf = c.buffer(120, 40);
    assert_eq!(fg_at(&buf, "0 soft"), theme.ui.dim);
    assert_eq!(fg_at(&buf, "2 hard"), theme.severity.hard);
}

#[test]
fn age_is_how_long_the_console_saw_the_alert_open_not_when_its_condition_began() {
    let mut c = Console::new();
    // hub-fi gets a certificate that expires in 4 days: the rule dates the
    // alert from 10 days ago (when 14 days were left), but it fires now.
    c.at(T0 + 10_000);
    c.source.report("hub-fi", |r| {
        r.tls[0].not_after_ms = T0 + 10_000 + 4 * 86_400_000;
    });
    c.refresh();
    c.at(T0 + 15_000);
    c.press("2");
    let screen = c.screen(120, 40);
    let row = screen
        .lines()
        .find(|l| l.contains("hub-fi: TLS"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(row.contains(" 5s "), "{row}");
    assert!(!row.contains("10d"), "{row}");
}

#[test]
fn the_sparklines_now_is_the_latest_health() {
    let mut c = Console::new();
    c.press("enter j enter");
    for (k, cpu) in [(1, 20.0), (2, 35.0), (3, 12.0)] {
        c.at(T0 + k * 10_000);
        c.source.report("whn-nvr", |r| r.metrics.cpu_pct = cpu);
        c.refresh();
    }
    let screen = c.screen(120, 40);
    assert!(screen.contains("cpu 12% · max "), "{screen}");
    assert!(
        screen.contains("cpu 12%  mem 77%"),
        "latest health: {screen}"
    );
    // A graph: a point per column, the time they cover under it.
    let bottom = screen.lines().nth(7).unwrap();
    assert!(bottom.contains("m ┘"), "{bottom}");
}

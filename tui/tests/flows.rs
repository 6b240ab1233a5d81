//! Key-driven flows through the console on the fixture fleet: what an
//! operator does, and what reaches the source.

mod common;

use common::{Console, listed_sites};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use fleetdeck_store::SiteId;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::LayerRef;
use fleetdeck_tui::source::{ConfigEdit, RolloutAction};
use fleetdeck_tui::{Action, Intent, Key, Keymap, Options, Route, Scope, Source};
use serde_json::json;

#[test]
fn filtering_the_sites_table_keeps_only_matching_rows() {
    let mut c = Console::new();
    c.press("/");
    c.type_text("lab");
    let screen = c.screen(120, 40);
    assert_eq!(listed_sites(&screen), ["BL-LAB-2", "BL-LAB-1"], "{screen}");
    assert!(
        screen.contains("/lab"),
        "the filter shows in the title: {screen}"
    );
    // Enter keeps the filter; Enter again opens the first match.
    c.press("enter enter");
    assert_eq!(c.app.route(), Route::Site("BL-LAB-2".into()));
}

#[test]
fn esc_in_the_filter_clears_it() {
    let mut c = Console::new();
    c.press("/");
    c.type_text("zzz");
    assert!(c.screen(120, 40).contains("no site matches /zzz"));
    c.press("esc");
    let screen = c.screen(120, 40);
    assert_eq!(listed_sites(&screen).len(), 10, "{screen}");
    assert!(!c.app.has_overlay());
}

#[test]
fn the_filter_matches_state_and_zone_words() {
    let mut c = Console::new();
    c.press("/");
    c.type_text("north err");
    c.press("enter");
    let screen = c.screen(120, 40);
    // BL-WH-S is err too, but in the south.
    assert_eq!(listed_sites(&screen), ["BL-WH-N"], "{screen}");
}

#[test]
fn enter_on_a_site_opens_its_nodes() {
    let mut c = Console::new();
    c.press("enter");
    assert_eq!(c.app.route(), Route::Site("BL-WH-N".into()));
    let screen = c.screen(120, 40);
    for node in ["whn-router", "whn-nvr", "whn-cam-1"] {
        assert!(screen.contains(node), "{node}: {screen}");
    }
    assert!(
        screen.contains("failed 12m ago r43"),
        "last apply result: {screen}"
    );
    assert!(
        screen.contains("alerts.disk_pct"),
        "the site's override: {screen}"
    );
}

#[test]
fn enter_on_a_node_opens_its_sparklines_and_provenance() {
    let mut c = Console::new();
    c.press("enter j enter");
    assert_eq!(c.app.route(), Route::Node("whn-nvr".into()));
    assert_eq!(
        c.app.breadcrumb(),
        vec![
            Route::Overview,
            Route::Site("BL-WH-N".into()),
            Route::Node("whn-nvr".into())
        ]
    );
    let screen = c.screen(120, 40);
    assert!(screen.contains("cpu 61%"), "sparkline title: {screen}");
    assert!(
        screen.contains("site BL-WH-N"),
        "provenance of the override: {screen}"
    );
    assert!(screen.contains("disk /data 97%"), "health facts: {screen}");
}

#[test]
fn esc_goes_back_along_the_breadcrumb() {
    let mut c = Console::new();
    c.press("enter j enter");
    c.press("esc");
    assert_eq!(c.app.route(), Route::Site("BL-WH-N".into()));
    c.press("esc");
    assert_eq!(c.app.route(), Route::Overview);
    c.press("esc");
    assert_eq!(c.app.route(), Route::Overview);
    assert!(!c.app.should_quit(), "esc never quits");
}

#[test]
fn tab_moves_between_panes_and_enter_on_an_alert_opens_the_alerts_view() {
    let mut c = Console::new();
    c.press("tab j enter");
    assert_eq!(c.app.route(), Route::Alerts(None));
    let screen = c.screen(120, 40);
    // The second open alert is selected there.
    assert!(
        screen.contains("site BL-WH-S is offline"),
        "the selected alert's detail: {screen}"
    );
}

#[test]
fn acking_an_alert_sends_the_intent_and_shows_it_acked() {
    let mut c = Console::new();
    c.press("2");
    assert_eq!(c.app.route(), Route::Alerts(None));
    c.press("a");
    assert_eq!(
        c.intents(),
        vec![Intent::Ack {
            alert_id: "disk:whn-nvr:/data".into()
        }]
    );
    let screen = c.screen(120, 40);
    assert!(screen.contains("acked by ops-laptop"), "{screen}");
    assert!(
        screen.contains("acked disk:whn-nvr:/data"),
        "status message: {screen}"
    );
}

#[test]
fn silencing_asks_for_a_duration_and_hides_the_alert() {
    let mut c = Console::new();
    c.press("2 j s");
    assert!(
        c.screen(80, 24)
            .contains("silence site-offline:BL-WH-S for: 1h")
    );
    c.press("backspace backspace");
    c.type_text("30m");
    c.press("enter");
    assert_eq!(
        c.intents(),
        vec![Intent::Silence {
            alert_id: "site-offline:BL-WH-S".into(),
            for_ms: 30 * 60_000
        }]
    );
    let screen = c.screen(120, 40);
    assert!(
        !screen
            .lines()
            .any(|l| l.contains("│hard   site-offline:BL-WH-S")),
        "hidden now: {screen}"
    );
    c.press("h");
    let screen = c.screen(120, 40);
    assert!(screen.contains("silenced 30m"), "shown with h: {screen}");
}

#[test]
fn a_bad_duration_is_refused_and_the_prompt_stays_open() {
    let mut c = Console::new();
    c.press("2 s backspace backspace");
    c.type_text("soon");
    c.press("enter");
    assert!(c.intents().is_empty());
    assert!(c.app.has_overlay());
    let m = c.app.message().unwrap();
    assert!(
        m.error && m.text.contains("'soon' is not a duration"),
        "{m:?}"
    );
    c.press("esc");
    assert!(!c.app.has_overlay());
    assert!(c.intents().is_empty());
}

#[test]
fn filtering_alerts_by_severity_cycles_hard_medium_soft_all() {
    let mut c = Console::new();
    c.press("2 f");
    let screen = c.screen(120, 40);
    assert!(screen.contains("severity hard"), "{screen}");
    assert!(!screen.contains("medium "), "{screen}");
    c.press("f f");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("severity soft") && screen.contains("mem:lab2-cam-1"),
        "{screen}"
    );
    c.press("f");
    assert!(c.screen(120, 40).contains("severity all"));
}

#[test]
fn revert_asks_first_and_sends_only_after_yes() {
    let mut c = Console::new();
    c.press("3");
    assert_eq!(c.app.route(), Route::History(None));
    let newest = c
        .source
        .history()
        .into_iter()
        .find(|r| r.entry.message.as_deref() == Some("set retention.days = 14 in site BL-LAB-2"))
        .map(|r| r.entry.id)
        .expect("the fixture's BL-LAB-2 retention change");
    c.press("/");
    c.type_text("retention.days = 14");
    c.press("enter r");
    assert!(c.screen(120, 40).contains("confirm"));
    assert!(c.intents().is_empty(), "nothing sent before the answer");
    c.press("n");
    assert!(c.intents().is_empty(), "nothing sent on no");
    c.press("r y");
    assert_eq!(
        c.intents(),
        vec![Intent::Revert {
            change_id: newest.clone(),
            message: None,
        }]
    );
    let short = &newest[..12];
    let screen = c.screen(120, 40);
    assert!(
        screen.contains(&format!("reverted {short}")),
        "status message: {screen}"
    );
    // Clear the filter: the revert is the newest change (and the message,
    // done with, is gone).
    c.press("/ esc");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains(&format!("revert {short}")),
        "new change listed: {screen}"
    );
    assert!(c.app.message().is_none(), "{:?}", c.app.message());
    // The revert really happened: BL-LAB-2 keeps 30 days again.
    c.press("1");
    c.press(":");
    c.type_text("site BL-LAB-2");
    c.press("enter");
    let screen = c.screen(120, 40);
    assert!(!screen.contains("retention.days"), "{screen}");
}

#[test]
fn read_only_refuses_intents_before_the_source() {
    let mut c = Console::read_only();
    c.press("2 a s");
    assert!(c.intents().is_empty());
    let m = c.app.message().unwrap();
    assert!(m.error && m.text.contains("read-only"), "{m:?}");
    c.press("3 r");
    assert!(c.intents().is_empty());
    assert!(!c.app.has_overlay(), "no confirm dialog in read-only mode");
    let hints = c.app.hints();
    assert!(
        !hints.iter().any(|(_, label)| label == "revert"),
        "write actions are not offered: {hints:?}"
    );
}

#[test]
fn the_palette_completes_ids_and_jumps_to_a_node() {
    let mut c = Console::new();
    c.press(":");
    c.type_text("no");
    c.press("tab");
    c.type_text("whn-n");
    c.press("tab");
    assert!(c.screen(80, 24).contains(":node whn-nvr"));
    c.press("enter");
    assert_eq!(
        c.app.breadcrumb(),
        vec![
            Route::Overview,
            Route::Site("BL-WH-N".into()),
            Route::Node("whn-nvr".into())
        ]
    );
}

#[test]
fn the_palette_opens_views_and_switches_theme() {
    let mut c = Console::new();
    for (cmd, route) in [
        ("alerts", Route::Alerts(None)),
        ("history", Route::History(None)),
        ("peers", Route::Peers),
        ("site BL-LAB-1", Route::Site("BL-LAB-1".into())),
    ] {
        c.press(":");
        c.type_text(cmd);
        c.press("enter");
        assert_eq!(c.app.route(), route, ":{cmd}");
        assert_eq!(c.app.breadcrumb().len(), 2, ":{cmd} goes from the overview");
    }
    c.press(":");
    c.type_text("theme high-contrast");
    c.press("enter");
    assert_eq!(c.app.theme().name, "high-contrast");
    c.press(":");
    c.type_text("q");
    c.press("enter");
    assert!(c.app.should_quit());
}

#[test]
fn an_unknown_palette_command_is_named_and_the_palette_stays() {
    let mut c = Console::new();
    c.press(":");
    c.type_text("site NOPE");
    c.press("enter");
    let m = c.app.message().unwrap();
    assert!(m.error && m.text.contains("no site 'NOPE'"), "{m:?}");
    assert!(c.app.has_overlay());
    c.press("esc");
    c.press(":");
    c.type_text("frobnicate");
    c.press("enter");
    assert!(
        c.app
            .message()
            .unwrap()
            .text
            .contains("unknown command ':frobnicate'")
    );
}

#[test]
fn q_quits_and_ctrl_c_quits_even_from_a_dialog() {
    let mut c = Console::new();
    c.press("q");
    assert!(c.app.should_quit());
    let mut c = Console::new();
    c.press("3 r");
    assert!(c.app.has_overlay());
    c.press("ctrl-c");
    assert!(c.app.should_quit());
    assert!(c.intents().is_empty());
}

#[test]
fn hints_and_help_come_from_the_keymap() {
    let mut keymap = Keymap::default();
    keymap.bind(Scope::Alerts, Key::parse("x").unwrap(), Action::Ack);
    keymap.bind(
        Scope::Alerts,
        Key::parse("a").unwrap(),
        Action::CycleSeverity,
    );
    let mut c = Console::with(Options {
        keymap,
        ..Options::default()
    });
    c.press("2");
    let hints = c.app.hints();
    assert!(
        hints.contains(&("x".to_string(), "ack".to_string())),
        "the hint names the new key: {hints:?}"
    );
    c.press("a");
    assert!(c.intents().is_empty(), "a no longer acks");
    assert_eq!(c.app.message().unwrap().text, "showing hard alerts");
    c.press("a a a x");
    assert_eq!(c.intents().len(), 1, "the new key acks");
    c.press("?");
    let screen = c.screen(120, 40);
    assert!(screen.contains("in alerts"), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.contains("x ") && l.contains("ack")),
        "the help lists x for ack: {screen}"
    );
}

#[test]
fn a_failed_intent_is_reported_and_the_console_goes_on() {
    let mut c = Console::new();
    c.source.fail_next("the replica is read-only on disk");
    c.press("2 a");
    let m = c.app.message().unwrap();
    assert!(m.error, "{m:?}");
    assert!(
        m.text
            .contains("ack disk:whn-nvr:/data failed: the replica is read-only on disk"),
        "{m:?}"
    );
    c.press("j a");
    assert!(!c.app.message().unwrap().error);
}

#[test]
fn trouble_in_the_source_shows_in_the_status_bar() {
    let mut c = Console::new();
    c.source
        .set_trouble(Some("could not read the replica: database is locked"));
    c.app
        .tick(fleetdeck_tui::fixture::T0 + fleetdeck_tui::app::REFRESH_MS);
    c.app.pump(&mut c.source);
    let screen = c.screen(120, 40);
    assert!(screen.contains("database is locked"), "{screen}");
    assert!(
        screen.contains("BL-WH-N "),
        "the data stays on screen: {screen}"
    );
}

#[test]
fn data_older_than_its_snapshot_shows_its_age() {
    let mut c = Console::new();
    // No snapshot arrives for 12 s (a stuck source).
    c.app.set_now(fleetdeck_tui::fixture::T0 + 12_000);
    let screen = c.screen(120, 40);
    assert!(screen.contains("snapshot 12s old"), "{screen}");
    assert!(screen.contains("freshest data 13s ago"), "{screen}");
}

#[test]
fn the_app_redraws_only_on_change() {
    let mut c = Console::new();
    c.app.drawn();
    assert!(!c.app.is_dirty());
    c.app.on_event(&Event::Mouse(MouseEvent {
        kind: MouseEventKind::Moved,
        column: 1,
        row: 1,
        modifiers: KeyModifiers::NONE,
    }));
    assert!(!c.app.is_dirty(), "a mouse move changes nothing");
    c.app.on_event(&Event::Resize(100, 30));
    assert!(c.app.is_dirty());
    c.app.drawn();
    c.app.on_event(&Event::Key(KeyEvent::new(
        KeyCode::Char('j'),
        KeyModifiers::NONE,
    )));
    assert!(c.app.is_dirty());
    c.app.drawn();
    c.app.tick(fleetdeck_tui::fixture::T0 + 1_000);
    assert!(c.app.is_dirty(), "the tick ages the last-heard column");
}

#[test]
fn the_tick_asks_for_at_most_one_snapshot_at_a_time() {
    let mut c = Console::new();
    // A fresh snapshot is kept while nothing changes…
    c.app.tick(fleetdeck_tui::fixture::T0 + 1_000);
    assert!(c.app.take_requests().is_empty());
    // …and renewed once it is old, one request at a time.
    c.app
        .tick(fleetdeck_tui::fixture::T0 + fleetdeck_tui::app::REFRESH_MS);
    c.app
        .tick(fleetdeck_tui::fixture::T0 + fleetdeck_tui::app::REFRESH_MS + 1_000);
    let reqs = c.app.take_requests();
    assert_eq!(reqs, vec![fleetdeck_tui::Request::Snapshot]);
}

// ---- the config editor ------------------------------------------------------

impl Console {
    /// Empties the open input.
    fn clear_input(&mut self) {
        for _ in 0..120 {
            self.press("backspace");
        }
    }

    fn fleet(&mut self) -> std::sync::Arc<fleetdeck_store::document::FleetState> {
        self.source.snapshot().fleet
    }
}

fn site_layer(id: &str) -> LayerRef {
    LayerRef::Site(SiteId::parse(id).unwrap())
}

fn key(s: &str) -> ConfigPath {
    ConfigPath::parse(s).unwrap()
}

#[test]
fn a_config_edit_is_validated_reviewed_committed_found_in_history_and_reverted() {
    let mut c = Console::new();
    // Filter the sites, drill down to BL-LAB-1 and open its overrides.
    c.press("/");
    c.type_text("lab-1");
    c.press("enter enter");
    assert_eq!(c.app.route(), Route::Site("BL-LAB-1".into()));
    c.press("e");
    assert_eq!(c.app.route(), Route::Config(site_layer("BL-LAB-1")));
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("editing the overrides of site BL-LAB-1"),
        "{screen}"
    );
    // Find the key, edit it: the schema's verdict shows as it is typed.
    c.press("/");
    c.type_text("disk_pct");
    c.press("enter j e");
    c.clear_input();
    c.type_text("900");
    let screen = c.screen(120, 40);
    assert!(screen.contains("alerts.disk_pct = 900"), "{screen}");
    assert!(
        screen.contains("✗ alerts.disk_pct = 900 is out of range"),
        "{screen}"
    );
    c.press("enter");
    assert!(c.app.has_overlay(), "an invalid value keeps the input open");
    assert!(c.app.message().unwrap().error);
    c.press("backspace");
    let screen = c.screen(120, 40);
    assert!(screen.contains("✓ percent, 1–100"), "{screen}");
    c.press("enter");
    assert!(!c.app.has_overlay());
    assert!(c.screen(120, 40).contains("● 90"), "the staged value shows");
    assert!(
        c.intents().is_empty(),
        "nothing is written before the commit"
    );
    // Review: the diff of the effective config and what it touches.
    c.press("c");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("the effective config changes on 3 nodes in 1 site"),
        "{screen}"
    );
    assert!(screen.contains("alerts.disk_pct"), "{screen}");
    assert!(screen.contains("- 85"), "before: {screen}");
    assert!(screen.contains("+ 90"), "after: {screen}");
    assert!(screen.contains("commit message:"), "{screen}");
    // An empty message is refused; a real one commits.
    c.clear_input();
    c.press("enter");
    assert!(c.app.has_overlay());
    c.type_text("lab 1 disks run fuller by design");
    c.press("enter");
    assert_eq!(
        c.intents(),
        vec![Intent::Config {
            layer: site_layer("BL-LAB-1"),
            edits: vec![ConfigEdit::Set(key("alerts.disk_pct"), json!(90))],
            message: Some("lab 1 disks run fuller by design".into()),
        }]
    );
    let fleet = c.fleet();
    let site = &fleet.sites[&SiteId::parse("BL-LAB-1").unwrap()];
    assert_eq!(
        site.overrides
            .get(&key("alerts.disk_pct"))
            .map(|v| v.as_ref()),
        Some(&json!(90))
    );
    assert!(
        !c.screen(120, 40).contains("● 90"),
        "nothing staged any more"
    );
    // Find it in the history and revert it.
    c.press("3 /");
    c.type_text("fuller by design");
    c.press("enter");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("lab 1 disks run fuller by design"),
        "{screen}"
    );
    c.press("r y");
    assert!(matches!(c.intents().last(), Some(Intent::Revert { .. })));
    let fleet = c.fleet();
    let site = &fleet.sites[&SiteId::parse("BL-LAB-1").unwrap()];
    assert_eq!(site.overrides.get(&key("alerts.disk_pct")), None);
}

#[test]
fn null_removes_an_inherited_key_and_unset_removes_an_override() {
    let mut c = Console::new();
    // frigate.version comes from the fleet; lab1-nvr overrides it.
    c.press(":");
    c.type_text("config lab1-nvr");
    c.press("enter");
    c.press("/");
    c.type_text("frigate.version");
    c.press("enter j d");
    assert!(c.screen(120, 40).contains("● unset"));
    c.press("/");
    c.clear_input();
    c.type_text("retention");
    c.press("enter j e");
    c.clear_input();
    c.type_text("null");
    assert!(
        c.screen(120, 40)
            .contains("✓ null: removes the inherited retention.days here")
    );
    c.press("enter c");
    let screen = c.screen(120, 40);
    assert!(screen.contains("changes on 1 node in 1 site"), "{screen}");
    assert!(screen.contains("(unset)"), "{screen}");
    c.press("enter");
    let node = fleetdeck_store::NodeId::parse("lab1-nvr").unwrap();
    let eff = c.fleet().effective_node(&node).unwrap();
    assert_eq!(
        eff.get(&key("retention.days")),
        None,
        "null hides the default"
    );
    assert_eq!(
        eff.get(&key("frigate.version")),
        Some(&json!("0.14.1")),
        "the fleet's value is back"
    );
}

#[test]
fn null_is_refused_in_the_fleet_defaults_as_it_is_typed() {
    let mut c = Console::new();
    c.press("e");
    assert_eq!(c.app.route(), Route::Config(LayerRef::Fleet));
    c.press("/");
    c.type_text("retention");
    c.press("enter j e");
    c.clear_input();
    c.type_text("null");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("✗ retention.days = null is not valid in the fleet defaults"),
        "{screen}"
    );
    c.press("enter esc");
    assert!(c.intents().is_empty());
}

#[test]
fn leaving_the_editor_with_staged_edits_asks_for_a_second_esc() {
    let mut c = Console::new();
    c.press("e a");
    c.type_text("app.name");
    c.press("enter");
    c.clear_input();
    c.type_text("cams");
    c.press("enter");
    assert!(c.screen(120, 40).contains("● cams"));
    c.press("esc");
    assert_eq!(c.app.route(), Route::Config(LayerRef::Fleet));
    assert!(c.app.message().unwrap().text.contains("esc again drops it"));
    c.press("esc");
    assert_eq!(c.app.route(), Route::Overview);
    assert!(c.intents().is_empty());
}

#[test]
fn read_only_refuses_config_edits() {
    let mut c = Console::read_only();
    c.press("e");
    c.press("e");
    assert!(!c.app.has_overlay());
    assert!(c.app.message().unwrap().text.starts_with("read-only"));
}

// ---- rollouts and commands --------------------------------------------------

#[test]
fn rollouts_show_waves_and_resume_halt_abort_with_a_confirm() {
    let mut c = Console::new();
    c.press("5");
    assert_eq!(c.app.route(), Route::Rollouts);
    let screen = c.screen(120, 40);
    assert!(screen.contains("7f3a19c2"), "{screen}");
    assert!(screen.contains("running"), "{screen}");
    assert!(screen.contains("halted"), "{screen}");
    assert!(
        screen.contains("waves of 7f3a19c2"),
        "newest first: {screen}"
    );
    // The halted one: its reason shows; resume it, then abort it.
    c.press("j");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("halted 2h30m ago: 1 node(s) failed"),
        "{screen}"
    );
    c.press("R");
    assert_eq!(
        c.intents(),
        vec![Intent::Rollout {
            id: "c0de42aa".into(),
            action: RolloutAction::Resume
        }]
    );
    assert!(c.screen(120, 40).contains("running"));
    c.press("A");
    assert!(c.screen(120, 40).contains("Abort rollout c0de42aa"));
    c.press("n");
    assert_eq!(c.intents().len(), 1, "nothing sent on no");
    c.press("A y");
    assert_eq!(
        c.intents().last(),
        Some(&Intent::Rollout {
            id: "c0de42aa".into(),
            action: RolloutAction::Abort
        })
    );
    assert!(c.screen(120, 40).contains("aborted"));
    // Pausing the running one needs no confirm.
    c.press("k p");
    assert_eq!(
        c.intents().last(),
        Some(&Intent::Rollout {
            id: "7f3a19c2".into(),
            action: RolloutAction::Pause
        })
    );
    let screen = c.screen(120, 40);
    assert!(screen.contains("rollout 7f3a19c2 paused"), "{screen}");
    assert!(screen.contains("paused"), "{screen}");
}

#[test]
fn commands_show_results_per_node() {
    let mut c = Console::new();
    c.press("6");
    let screen = c.screen(120, 40);
    assert!(screen.contains("restart-frigate"), "{screen}");
    assert!(screen.contains("2/3"), "reported of targeted: {screen}");
    c.press("tab");
    let screen = c.screen(120, 40);
    for s in ["whn-nvr", "whn-cam-1", "whn-router", "pending", "failed"] {
        assert!(screen.contains(s), "{s}: {screen}");
    }
}

#[test]
fn conflicts_show_in_the_peers_view_with_the_winner_marked() {
    let mut c = Console::new();
    c.press("4");
    let screen = c.screen(120, 40);
    assert!(screen.contains("conflicts · 1"), "{screen}");
    assert!(screen.contains("ntp.server"), "{screen}");
    assert_eq!(screen.matches("★ \"").count(), 1, "one winner: {screen}");
}

// ---- mouse -------------------------------------------------------------------

fn click(c: &mut Console, x: u16, y: u16) {
    c.app.on_event(&Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(crossterm::event::MouseButton::Left),
        column: x,
        row: y,
        modifiers: KeyModifiers::NONE,
    }));
    c.app.pump(&mut c.source);
}

#[test]
fn a_click_selects_a_row_a_second_click_opens_it_and_a_crumb_goes_back() {
    let mut c = Console::new();
    let buf = c.buffer(120, 40);
    let (x, y) = common::find(&buf, "BL-LAB-1").unwrap();
    click(&mut c, x, y);
    assert_eq!(c.app.route(), Route::Overview, "the first click selects");
    let buf = c.buffer(120, 40);
    assert_eq!(buf[(x, y)].bg, c.app.theme().selected().bg.unwrap());
    click(&mut c, x, y);
    assert_eq!(c.app.route(), Route::Site("BL-LAB-1".into()));
    let buf = c.buffer(120, 40);
    let (x, y) = common::find(&buf, "fleet ›").unwrap();
    assert_eq!(y, 0);
    click(&mut c, x, y);
    assert_eq!(c.app.route(), Route::Overview);
}

#[test]
fn the_wheel_scrolls_the_table_under_the_pointer() {
    let mut c = Console::new();
    let sites = listed_sites(&c.screen(120, 40));
    let buf = c.buffer(120, 40);
    let (x, y) = common::find(&buf, &sites[0]).unwrap();
    for _ in 0..3 {
        c.app.on_event(&Event::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: x,
            row: y,
            modifiers: KeyModifiers::NONE,
        }));
    }
    c.press("enter");
    assert_eq!(c.app.route(), Route::Site(sites[3].clone()));
}

// ---- the keymap file ------------------------------------------------------------

#[test]
fn keys_remapped_in_the_settings_file_drive_the_console() {
    let settings = fleetdeck_tui::settings::Settings::parse(
        "console.toml",
        "[keys.global]\ndown = \"n\"\nopen = \"o\"\n",
    )
    .unwrap();
    let mut c = Console::with(Options {
        keymap: settings.keymap,
        ..Options::default()
    });
    c.press("n o");
    assert_eq!(c.app.route(), Route::Site("BL-WH-S".into()));
    c.press("esc j enter");
    assert_eq!(
        c.app.route(),
        Route::Overview,
        "j and enter are unbound now"
    );
    let screen = c.screen(120, 40);
    assert!(screen.contains("n/k move"), "the hints follow: {screen}");
}

#[test]
fn the_status_bar_says_offline_and_what_the_best_peer_lacks() {
    let mut c = Console::new();
    assert!(c.screen(120, 40).contains("online · peers 2/4"));
    let peers: Vec<fleetdeck_tui::Peer> = c
        .source
        .snapshot()
        .peers
        .into_iter()
        .map(|mut p| {
            p.connected = false;
            p.lacks = p.lacks.map(|n| n + 3);
            p
        })
        .collect();
    c.source.set_peers(peers);
    c.app.request_snapshot();
    c.app.pump(&mut c.source);
    let screen = c.screen(120, 40);
    assert!(screen.contains("offline · peers 0/4"), "{screen}");
    assert!(screen.contains("best-synced peer lacks 3"), "{screen}");
    c.source.set_peers(Vec::new());
    c.app.request_snapshot();
    c.app.pump(&mut c.source);
    assert!(c.screen(120, 40).contains("no other member yet"));
}

#[test]
fn ctrl_c_quits_even_when_the_keymap_file_rebinds_quit() {
    let settings =
        fleetdeck_tui::settings::Settings::parse("console.toml", "[keys.global]\nquit = \"x\"\n")
            .unwrap();
    let mut c = Console::with(Options {
        keymap: settings.keymap,
        ..Options::default()
    });
    c.press("q");
    assert!(!c.app.should_quit(), "q is no longer quit");
    c.press("ctrl-c");
    assert!(c.app.should_quit());
}

#[test]
fn a_node_or_viewer_console_writes_nothing_and_says_why() {
    let mut c = Console::as_member("lab2-router");
    let screen = c.screen(120, 40);
    assert!(screen.contains("NODE: READS ONLY"), "{screen}");
    c.press("2 a");
    assert!(c.intents().is_empty(), "nothing sent");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("ack is not possible: this replica is a node"),
        "{screen}"
    );
    assert!(!screen.contains("a ack"), "not offered: {screen}");
}

#[test]
fn an_operator_console_does_not_send_a_key_that_runs_programs() {
    let mut c = Console::as_member("hub-de");
    c.app.apply(Intent::Config {
        layer: fleetdeck_store::document::LayerRef::Fleet,
        edits: vec![ConfigEdit::Set(
            key("apply.check"),
            json!("curl -f localhost"),
        )],
        message: Some("new check".into()),
    });
    c.app.pump(&mut c.source);
    assert!(c.intents().is_empty(), "the console did not send it");
    let screen = c.screen(160, 40);
    assert!(screen.contains("makes nodes run a program"), "{screen}");
    // An ordinary key goes through.
    c.app.apply(Intent::Config {
        layer: fleetdeck_store::document::LayerRef::Fleet,
        edits: vec![ConfigEdit::Set(key("retention.days"), json!(12))],
        message: Some("shorter".into()),
    });
    c.app.pump(&mut c.source);
    assert_eq!(c.intents().len(), 1);
}

#[test]
fn the_history_view_takes_receipts_again_as_heartbeats_arrive() {
    use fleetdeck_tui::fixture::T0;
    use fleetdeck_tui::{Request, Response};
    let mut c = Console::new();
    c.press("3");
    assert_eq!(c.app.route(), Route::History(None));
    assert!(c.app.take_requests().is_empty());
    let heartbeat = |c: &mut Console, at: i64| {
        let mut snap = c.source.snapshot();
        // New registers: what a heartbeat brings.
        snap.health = std::sync::Arc::new((*snap.health).clone());
        c.app.set_now(at);
        c.app.on_response(Response::Snapshot(Box::new(snap)));
        c.app.take_requests().contains(&Request::History)
    };
    assert!(!heartbeat(&mut c, T0 + 1_000), "not again within 3 s");
    assert!(heartbeat(&mut c, T0 + 4_000), "receipts are taken again");
    // Elsewhere, heartbeats do not fetch the history.
    c.press("esc");
    assert!(!heartbeat(&mut c, T0 + 10_000));
}

// ---- acting on the right thing -----------------------------------------------

use common::{row_of, selected_rows};
use fleetdeck_tui::fixture::T0;

/// lab1-nvr's /data fills: a hard alert of BL-LAB-1, listed above every
/// other (hard first, then by site).
fn lab1_disk_fills(c: &mut Console) {
    c.source.report("lab1-nvr", |r| {
        for d in &mut r.metrics.disks {
            if d.mount == "/data" {
                d.used_pct = 99.0;
            }
        }
    });
    c.refresh();
}

#[test]
fn the_selection_stays_on_its_alert_while_new_alerts_arrive_above_it() {
    let mut c = Console::new();
    let theme = c.app.theme().clone();
    c.press("2 j j");
    let buf = c.buffer(120, 40);
    assert_eq!(
        selected_rows(&buf, &theme),
        ["medium 4d    BL-HUB-DE   hub-de: TLS hub.blocao.eu expires in 10d"],
        "the TLS alert is selected"
    );
    let row = row_of(&buf, "hub-de: TLS").unwrap();
    lab1_disk_fills(&mut c);
    let buf = c.buffer(120, 40);
    let screen = c.screen(120, 40);
    assert!(screen.contains("lab1-nvr: disk /data 99% full"), "{screen}");
    let selected = selected_rows(&buf, &theme);
    assert_eq!(selected.len(), 1, "{screen}");
    assert!(selected[0].contains("hub-de: TLS"), "{selected:?}");
    assert_eq!(
        row_of(&buf, "hub-de: TLS"),
        Some(row),
        "the selected alert keeps its row: {screen}"
    );
    assert!(
        screen.contains("tls:hub-de:hub.blocao.eu · tls_expiry"),
        "the detail is the selected alert's: {screen}"
    );
    // Moving on, the selection goes to the row below it on screen.
    c.press("j");
    let selected = selected_rows(&c.buffer(120, 40), &theme);
    assert!(selected[0].contains("BL-WH-S: offline"), "{selected:?}");
}

#[test]
fn an_ack_lands_on_the_alert_that_was_selected() {
    let mut c = Console::new();
    // The overview's alerts pane: the TLS alert, third.
    c.press("tab j j");
    lab1_disk_fills(&mut c);
    c.press("enter");
    assert_eq!(c.app.route(), Route::Alerts(None));
    // More alerts arrive while the alerts view is up.
    c.source.report("whn-router", |r| r.metrics.mem_pct = 97.0);
    c.refresh();
    c.press("a");
    assert_eq!(
        c.intents(),
        vec![Intent::Ack {
            alert_id: "tls:hub-de:hub.blocao.eu".into()
        }]
    );
    let m = c.app.message().unwrap();
    assert_eq!(
        m.text,
        "acked tls:hub-de:hub.blocao.eu; the ack holds until the alert resolves"
    );
}

#[test]
fn a_selected_alert_that_resolves_leaves_the_selection_on_the_nearest_row_and_says_so() {
    let mut c = Console::new();
    let theme = c.app.theme().clone();
    c.press("2 j j j j j");
    let selected = selected_rows(&c.buffer(120, 40), &theme);
    assert!(
        selected[0].contains("whn-cam-1: apply failed"),
        "{selected:?}"
    );
    // whn-cam-1 applies the next revision fine: its alert resolves.
    c.source.report("whn-cam-1", |r| {
        if let Some(a) = r.applied.as_mut() {
            a.result = fleetdeck_store::health::ApplyResult::Ok;
            a.error = None;
            a.revision = "r44".into();
        }
    });
    c.refresh();
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("alert apply:whn-cam-1 cleared; selected the nearest row"),
        "{screen}"
    );
    let selected = selected_rows(&c.buffer(120, 40), &theme);
    assert!(selected[0].contains("lab2-cam-1: memory"), "{selected:?}");
}

#[test]
fn the_overview_keeps_the_selected_site_when_the_sites_sort_again() {
    let mut c = Console::new();
    let theme = c.app.theme().clone();
    c.press("j j j");
    let selected = selected_rows(&c.buffer(120, 40), &theme);
    assert!(selected[0].contains("BL-LAB-2"), "{selected:?}");
    // BL-LAB-1 turns red and sorts to the top, above BL-LAB-2.
    lab1_disk_fills(&mut c);
    let screen = c.screen(120, 40);
    assert_eq!(listed_sites(&screen)[0], "BL-LAB-1", "{screen}");
    let selected = selected_rows(&c.buffer(120, 40), &theme);
    assert!(selected[0].contains("BL-LAB-2"), "{selected:?}");
    c.press("enter");
    assert_eq!(c.app.route(), Route::Site("BL-LAB-2".into()));
}

#[test]
fn esc_returns_to_the_row_you_came_from() {
    let mut c = Console::new();
    let theme = c.app.theme().clone();
    c.press("j j j enter");
    assert_eq!(c.app.route(), Route::Site("BL-LAB-2".into()));
    // While the site is open the overview's order changes.
    lab1_disk_fills(&mut c);
    c.press("esc");
    assert_eq!(c.app.route(), Route::Overview);
    let selected = selected_rows(&c.buffer(120, 40), &theme);
    assert!(selected[0].contains("BL-LAB-2"), "{selected:?}");
}

#[test]
fn a_silence_holds_for_its_duration_when_the_alert_fires_again_and_says_until_when() {
    let mut c = Console::new();
    c.press("2 j s backspace backspace");
    c.type_text("30m");
    c.press("enter");
    assert_eq!(
        c.app.message().unwrap().text,
        "silenced site-offline:BL-WH-S until 15:36 UTC for this alert, also if it fires again"
    );
    // BL-WH-S comes back a minute later (the alert resolves)…
    c.at(T0 + 60_000);
    c.source.report("whs-router", |_| {});
    c.refresh();
    assert!(
        c.app.snapshot().alert("site-offline:BL-WH-S").is_none(),
        "resolved"
    );
    // …and goes offline again: the same alert fires again, a new
    // occurrence, still silenced.
    c.at(T0 + 400_000);
    let a = c
        .app
        .snapshot()
        .alert("site-offline:BL-WH-S")
        .unwrap()
        .clone();
    assert!(a.since_ms > Some(T0), "a new occurrence: {a:?}");
    assert!(a.is_hidden(T0 + 400_000), "{a:?}");
    let screen = c.screen(120, 40);
    assert!(
        !screen.contains("BL-WH-S: offline"),
        "not listed while silenced: {screen}"
    );
    c.press("h");
    let screen = c.screen(120, 40);
    let row = screen
        .lines()
        .find(|l| l.contains("BL-WH-S: offline"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(row.contains("silenced 23m"), "{row}");
}

#[test]
fn a_message_clears_when_the_next_action_succeeds_or_the_view_changes() {
    let mut c = Console::new();
    c.press("2 f");
    assert_eq!(c.app.message().unwrap().text, "showing hard alerts");
    c.press("j");
    assert!(c.app.message().is_none());
    c.press("f");
    assert!(c.app.message().is_some());
    c.press(":");
    c.type_text("peers");
    c.press("enter");
    assert!(c.app.message().is_none(), "the view changed");
}

#[test]
fn palette_jumps_do_not_pile_up_breadcrumbs() {
    let mut c = Console::new();
    for (cmd, path) in [
        (
            "config BL-LAB-1",
            vec![
                Route::Overview,
                Route::Site("BL-LAB-1".into()),
                Route::Config(site_layer("BL-LAB-1")),
            ],
        ),
        (
            "config lab1-nvr",
            vec![
                Route::Overview,
                Route::Site("BL-LAB-1".into()),
                Route::Node("lab1-nvr".into()),
                Route::Config(LayerRef::Node(
                    fleetdeck_store::NodeId::parse("lab1-nvr").unwrap(),
                )),
            ],
        ),
        (
            "config",
            vec![Route::Overview, Route::Config(LayerRef::Fleet)],
        ),
        ("node whn-nvr", {
            vec![
                Route::Overview,
                Route::Site("BL-WH-N".into()),
                Route::Node("whn-nvr".into()),
            ]
        }),
        ("alerts", vec![Route::Overview, Route::Alerts(None)]),
    ] {
        c.press(":");
        c.type_text(cmd);
        c.press("enter");
        assert_eq!(c.app.breadcrumb(), path, ":{cmd}");
    }
}

// ---- sorting and filtering -----------------------------------------------------

#[test]
fn o_cycles_the_sort_column_and_shift_o_reverses_it_keeping_the_selection() {
    let mut c = Console::new();
    let theme = c.app.theme().clone();
    assert!(
        c.screen(120, 40).contains("STATUS▼"),
        "worst first by default"
    );
    c.press("o");
    assert_eq!(c.app.message().unwrap().text, "sorted by SITE, A to Z");
    let screen = c.screen(120, 40);
    assert!(screen.contains("SITE▼"), "{screen}");
    let sites = listed_sites(&screen);
    let mut sorted = sites.clone();
    sorted.sort();
    assert_eq!(sites, sorted, "{screen}");
    // The selection stayed on BL-WH-N, now near the bottom.
    let selected = selected_rows(&c.buffer(120, 40), &theme);
    assert!(selected[0].contains("BL-WH-N"), "{selected:?}");
    c.press("O");
    assert_eq!(c.app.message().unwrap().text, "sorted by SITE, Z to A");
    let screen = c.screen(120, 40);
    assert!(screen.contains("SITE▲"), "{screen}");
    sorted.reverse();
    assert_eq!(listed_sites(&screen), sorted);
    // Round the columns back to the default.
    for column in ["NAME", "NODES", "ALERTS", "LAST HEARD", "STATUS"] {
        c.press("o");
        let m = c.app.message().unwrap().text.clone();
        assert!(m.starts_with(&format!("sorted by {column},")), "{m}");
    }
    let screen = c.screen(120, 40);
    assert!(screen.contains("STATUS▼"), "{screen}");
    assert_eq!(listed_sites(&screen)[..2], ["BL-WH-N", "BL-WH-S"]);
    c.press("enter");
    assert_eq!(c.app.route(), Route::Site("BL-WH-N".into()));
}

#[test]
fn alerts_sort_by_age_newest_first_and_nodes_by_disk() {
    let mut c = Console::new();
    c.press("2 o");
    assert_eq!(c.app.message().unwrap().text, "sorted by AGE, newest first");
    let screen = c.screen(120, 40);
    assert!(screen.contains("AGE▼"), "{screen}");
    let first = screen
        .lines()
        .find(|l| l.contains("│medium") || l.contains("│hard") || l.contains("│soft"))
        .unwrap();
    assert!(
        first.contains("lis-cam-1: down"),
        "1m old, the newest: {first}"
    );
    // A site's nodes, fullest disk first.
    c.press("1 enter o o o o");
    assert_eq!(
        c.app.message().unwrap().text,
        "sorted by DISK, fullest first"
    );
    let screen = c.screen(120, 40);
    let nodes: Vec<&str> = ["whn-nvr", "whn-cam-1", "whn-router"]
        .into_iter()
        .filter(|n| screen.contains(n))
        .collect();
    assert_eq!(nodes.len(), 3);
    let at = |n: &str| screen.find(&format!("{n} ")).unwrap();
    assert!(at("whn-nvr") < at("whn-cam-1") && at("whn-cam-1") < at("whn-router"));
}

#[test]
fn reopening_the_filter_edits_it_rather_than_appending_and_it_counts_its_matches() {
    let mut c = Console::new();
    c.press("/");
    c.type_text("lab");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("/lab · 2 matches"),
        "the title counts: {screen}"
    );
    assert!(
        screen.contains(" /lab█  2 matches"),
        "the input counts: {screen}"
    );
    c.press("enter");
    // Reopened: the old text is selected; typing replaces it.
    c.press("/");
    let hints = c.app.hints();
    assert!(
        hints.contains(&("type".to_string(), "replace".to_string())),
        "{hints:?}"
    );
    c.type_text("north");
    c.press("enter");
    let screen = c.screen(120, 40);
    assert!(screen.contains("/north · 3 matches"), "{screen}");
    assert_eq!(
        listed_sites(&screen),
        ["BL-WH-N", "BL-LAB-2", "BL-LAB-1"],
        "{screen}"
    );
    // Reopened again, backspace edits the text.
    c.press("/ backspace");
    c.type_text("h");
    c.press("enter");
    let screen = c.screen(120, 40);
    assert!(screen.contains("/north · 3 matches"), "{screen}");
    c.press("/ backspace backspace backspace backspace backspace");
    let screen = c.screen(120, 40);
    assert_eq!(listed_sites(&screen).len(), 10, "{screen}");
}

// ---- as-of mode ---------------------------------------------------------

/// Types a palette command and runs it.
fn palette(c: &mut Console, line: &str) {
    c.press(":");
    c.type_text(line);
    c.press("enter");
}

#[test]
fn at_a_past_moment_every_view_shows_the_fleet_then_and_writes_are_refused() {
    let mut c = Console::new();
    // Now: BL-WH-S has been silent for ten minutes.
    assert!(c.screen(120, 40).contains("BL-WH-S: offline"));
    palette(&mut c, "at 2h");
    assert_eq!(
        c.app.as_of(),
        Some(fleetdeck_tui::fixture::T0 - 2 * 3_600_000)
    );
    let screen = c.screen(120, 40);
    assert!(
        screen.contains(" AS OF 2025-06-15 13:06:40 UTC  2h ago — read-only · ←/→ previous/next event · esc back to now"),
        "{screen}"
    );
    // Two hours ago BL-WH-S reported and whn-cam-1 had not failed yet.
    assert!(!screen.contains("BL-WH-S: offline"), "{screen}");
    c.press("2");
    let screen = c.screen(120, 40);
    assert!(screen.contains("AS OF 2025-06-15 13:06:40 UTC"), "{screen}");
    assert!(!screen.contains("BL-WH-S: offline"), "{screen}");
    assert!(!screen.contains("whn-cam-1: apply failed"), "{screen}");
    assert!(
        screen.contains("whn-nvr"),
        "the full disk was full then: {screen}"
    );
    // A write is refused before it reaches the source, and says why.
    c.press("a");
    assert!(c.intents().is_empty());
    let m = c.app.message().unwrap();
    assert!(m.error, "{m:?}");
    assert_eq!(m.text, "ack: read-only as of a past moment (esc: now)");
    assert!(
        !c.app.hints().iter().any(|(_, l)| l == "ack"),
        "writes are not offered: {:?}",
        c.app.hints()
    );
    // Esc returns to now, in the same view.
    c.press("esc");
    assert_eq!(c.app.as_of(), None);
    assert_eq!(c.app.route(), Route::Alerts(None));
    let screen = c.screen(120, 40);
    assert!(!screen.contains("AS OF"), "{screen}");
    assert!(screen.contains("BL-WH-S: offline"), "{screen}");
}

#[test]
fn left_and_right_step_from_event_to_event() {
    let mut c = Console::new();
    // From now, ← goes to the last event: lis-cam-1 went down 100 s ago.
    c.press("left");
    let t0 = fleetdeck_tui::fixture::T0;
    assert_eq!(c.app.as_of(), Some(t0 - 100_000 + 1));
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("esc back to now · down lis-cam-1: down"),
        "{screen}"
    );
    assert_eq!(
        c.app.message().unwrap().text,
        "as of 2025-06-15 15:05:00 UTC: down lis-cam-1 — down: not heard for 30s"
    );
    // [ is ← too: whs-router went down before it.
    c.press("[");
    assert_eq!(c.app.as_of(), Some(t0 - 530_000 + 1));
    assert!(c.screen(120, 40).contains("down whs-router"));
    c.press("left");
    assert!(c.screen(120, 40).contains("down whs-nvr"));
    // → (and ]) come back the same way.
    c.press("right");
    assert_eq!(c.app.as_of(), Some(t0 - 530_000 + 1));
    c.press("]");
    assert_eq!(c.app.as_of(), Some(t0 - 100_000 + 1));
    // Past the last event: it says so and stays.
    c.press("right");
    assert_eq!(c.app.as_of(), Some(t0 - 100_000 + 1));
    let m = c.app.message().unwrap();
    assert!(m.text.starts_with("no later event"), "{m:?}");
    // A change is shown at the change itself: the document as it made it.
    // (whs-router, whs-nvr, whn-cam-1's failure, the command's results,
    // then the command.)
    for _ in 0..5 {
        c.press("left");
    }
    assert_eq!(c.app.as_of(), Some(t0 - 15 * 60_000));
    assert_eq!(
        c.app.message().unwrap().text,
        "as of 2025-06-15 14:51:40 UTC: command fleet — command a1b2c3d4e5f6: restart-frigate on site:BL-WH-N"
    );
    c.press("6");
    let screen = c.screen(120, 40);
    assert!(screen.contains("restart-frigate"), "{screen}");
    assert!(
        screen.contains("0/3"),
        "no node had reported then: {screen}"
    );
}

#[test]
fn at_takes_the_cli_rules_and_says_what_it_cannot_show() {
    let mut c = Console::new();
    palette(&mut c, "at 2999-01-01T00:00:00Z");
    assert_eq!(c.app.as_of(), None);
    assert_eq!(
        c.app.message().unwrap().text,
        ":at 2999-01-01T00:00:00Z: that is in the future"
    );
    palette(&mut c, "at yesterday");
    let m = c.app.message().unwrap();
    assert!(
        m.error && m.text.starts_with("yesterday: not a time (RFC 3339"),
        "{m:?}"
    );
    palette(&mut c, "at 3d");
    let m = c.app.message().unwrap();
    assert!(m.text.starts_with("no data that old"), "{m:?}");
    assert_eq!(c.app.as_of(), None);
    // A change id: the fleet as that change left it (with `^`, just before).
    let id = c
        .source
        .history()
        .into_iter()
        .find(|r| r.entry.message.as_deref() == Some("set retention.days = 14 in site BL-LAB-2"))
        .map(|r| r.entry.id)
        .unwrap();
    palette(&mut c, &format!("at {}", &id[..10]));
    assert_eq!(
        c.app.as_of(),
        Some(fleetdeck_tui::fixture::T0 - 20 * 60_000)
    );
    palette(&mut c, "config BL-LAB-2");
    let screen = c.screen(120, 40);
    assert!(screen.contains("· 2 keys set here"), "{screen}");
    palette(&mut c, &format!("at {}^", &id[..10]));
    assert_eq!(
        c.app.as_of(),
        Some(fleetdeck_tui::fixture::T0 - 20 * 60_000 - 1)
    );
    let screen = c.screen(120, 40);
    assert!(screen.contains("· 1 key set here"), "{screen}");
    palette(&mut c, "at now");
    assert_eq!(c.app.as_of(), None);
}

// ---- events -------------------------------------------------------------

/// The KIND cells of the events table as drawn (its rows between the
/// header and the bottom border), top to bottom.
fn event_kinds(screen: &str) -> Vec<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let Some(head) = lines.iter().position(|l| l.contains("AGE   KIND")) else {
        return Vec::new();
    };
    lines[head + 1..]
        .iter()
        .take_while(|l| !l.contains('└'))
        .filter_map(|l| {
            let l = l.trim_matches('"').trim_start_matches('│');
            // TIME (UTC) is 19 wide, AGE 5: KIND starts at 26.
            let kind: String = l.chars().skip(26).take(14).collect();
            let kind = kind.trim().to_string();
            (!kind.is_empty()).then_some(kind)
        })
        .collect()
}

#[test]
fn seven_lists_the_fleets_events_newest_first_and_f_narrows_the_kinds() {
    let mut c = Console::new();
    c.press("7");
    assert_eq!(c.app.route(), Route::Events(LayerRef::Fleet));
    let screen = c.screen(120, 40);
    assert_eq!(
        event_kinds(&screen)[..6],
        [
            "down",
            "down",
            "down",
            "alert fired",
            "failed",
            "command result"
        ],
        "{screen}"
    );
    assert!(screen.contains("2025-06-15 15:05:00 1m    down           lis-cam-1      lis-cam-1    down: not heard for 30s"), "{screen}");
    // f: presence only, then applies.
    c.press("f");
    assert_eq!(
        c.app.message().unwrap().text,
        "showing presence: down, up, safe_mode, resumed"
    );
    let kinds = event_kinds(&c.screen(120, 40));
    assert_eq!(kinds, ["down", "down", "down"]);
    c.press("f");
    let kinds = event_kinds(&c.screen(120, 40));
    assert!(kinds.contains(&"failed".to_string()), "{kinds:?}");
    assert!(
        kinds.iter().all(|k| k == "failed" || k == "applied"),
        "{kinds:?}"
    );
    // The table filter works on top: the applies of whn-cam-1.
    c.press("/");
    c.type_text("whn-cam-1");
    c.press("enter");
    assert_eq!(event_kinds(&c.screen(120, 40)), ["failed"]);
}

#[test]
fn address_changes_are_folded_in_events_and_history_until_h() {
    let mut c = Console::new();
    c.press("7");
    let screen = c.screen(120, 40);
    assert!(screen.contains("2 address changes folded"), "{screen}");
    assert!(!screen.contains("hub-de listens on"), "{screen}");
    c.press("h");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains(
            "address        fleet          hub-de       hub-de listens on 192.0.2.10:7447, "
        ),
        "{screen}"
    );
    assert!(!screen.contains("folded"), "{screen}");
    c.press("3");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("history · 58 changes · 2 address changes folded"),
        "{screen}"
    );
    assert!(!screen.contains("hub-de listens on"), "{screen}");
    c.press("h");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains(
            "hub-de         address        19/20            hub-de listens on 192.0.2.10:7447  "
        ),
        "{screen}"
    );
}

#[test]
fn v_in_a_site_or_node_opens_its_events_and_enter_opens_a_change_in_history() {
    let mut c = Console::new();
    // BL-WH-N, then its events.
    c.press("enter v");
    assert_eq!(
        c.app.route(),
        Route::Events(LayerRef::Site(SiteId::parse("BL-WH-N").unwrap()))
    );
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("events of site BL-WH-N · last 1d · 5"),
        "{screen}"
    );
    assert!(!screen.contains("lis-cam-1"), "{screen}");
    // The node whn-cam-1's: its failure and the alert it raised.
    c.press("esc enter v");
    assert_eq!(
        c.app.route(),
        Route::Events(LayerRef::Node(
            fleetdeck_store::NodeId::parse("whn-cam-1").unwrap()
        ))
    );
    assert_eq!(event_kinds(&c.screen(120, 40)), ["alert fired", "failed"]);
    // Enter on a node's event opens the node.
    c.press("enter");
    assert_eq!(c.app.route(), Route::Node("whn-cam-1".into()));
    // Enter on a change: history, on that change, with what it edited.
    c.press("7");
    c.press("/");
    c.type_text("retention");
    c.press("enter enter");
    let id = c
        .source
        .history()
        .into_iter()
        .find(|r| r.entry.message.as_deref() == Some("set retention.days = 14 in site BL-LAB-2"))
        .map(|r| r.entry.id)
        .unwrap();
    assert_eq!(c.app.route(), Route::History(None));
    let theme = fleetdeck_tui::Theme::default();
    let selected = common::selected_rows(&c.buffer(120, 40), &theme);
    assert!(selected[0].starts_with(&id[..12]), "{selected:?}");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("site BL-LAB-2  retention.days  set 14"),
        "{screen}"
    );
}

#[test]
fn the_events_view_at_a_past_moment_ends_at_it() {
    let mut c = Console::new();
    c.press("7");
    palette(&mut c, "at 10m");
    let screen = c.screen(120, 40);
    assert!(screen.contains("AS OF 2025-06-15 14:56:40 UTC"), "{screen}");
    // The newest event then: whn-cam-1's failure; the downs came after.
    assert_eq!(
        event_kinds(&screen)[..2],
        ["alert fired", "failed"],
        "{screen}"
    );
    assert!(
        screen.contains("2m    alert fired"),
        "ages count to the moment: {screen}"
    );
    c.press("esc");
    assert_eq!(event_kinds(&c.screen(120, 40))[0], "down");
}

// ---- history: what each change did --------------------------------------

#[test]
fn history_shows_the_edits_of_the_selected_change_and_revert_shows_them_first() {
    let mut c = Console::new();
    c.press("3");
    c.press("/");
    c.type_text("frigate.version");
    c.press("enter");
    // The newest: the node override of lab1-nvr.
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("node lab1-nvr  frigate.version  set \"0.15.0-beta1\""),
        "{screen}"
    );
    c.press("j");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("fleet  frigate.version  \"0.13.2\" → \"0.14.1\""),
        "{screen}"
    );
    c.press("r");
    let screen = c.screen(120, 40);
    assert!(screen.contains("It edited:"), "{screen}");
    assert!(
        screen.contains("  fleet  frigate.version  \"0.13.2\" → \"0.14.1\""),
        "{screen}"
    );
    assert!(
        screen.contains("keys edited since are left alone"),
        "{screen}"
    );
    c.press("y");
    match c.intents().as_slice() {
        [Intent::Revert { change_id, .. }] => {
            assert!(
                c.app.message().unwrap().text.contains("revert"),
                "{:?}",
                c.app.message()
            );
            assert_eq!(change_id.len(), 64);
        }
        other => panic!("one revert expected: {other:?}"),
    }
}

// ---- marks and bulk actions ---------------------------------------------

#[test]
fn space_marks_sites_by_id_and_esc_or_u_drops_the_marks() {
    let mut c = Console::new();
    c.press("space space");
    let screen = c.screen(120, 40);
    assert!(screen.contains("sites · 10 · 2 marked"), "{screen}");
    assert!(screen.contains("│✓ ● err     BL-WH-N "), "{screen}");
    assert!(screen.contains("│✓ ▼ down    BL-WH-S "), "{screen}");
    assert_eq!(
        c.app.message().unwrap().text,
        "marked site BL-WH-S · 2 marked"
    );
    // Marks stay on their sites whatever the order or the filter.
    c.press("O");
    let screen = c.screen(120, 40);
    assert!(screen.contains("│✓ ● err     BL-WH-N "), "{screen}");
    // Esc drops them (and stays on the overview); so does u.
    c.press("esc");
    assert_eq!(c.app.message().unwrap().text, "2 marks cleared");
    assert!(!c.screen(120, 40).contains("marked"));
    c.press("space u");
    assert_eq!(c.app.message().unwrap().text, "1 mark cleared");
}

#[test]
fn marked_alerts_are_acked_and_silenced_together() {
    let mut c = Console::new();
    c.press("2 space space");
    assert!(c.screen(120, 40).contains("· 2 marked"));
    c.press("a");
    assert_eq!(
        c.intents(),
        vec![
            Intent::Ack {
                alert_id: "disk:whn-nvr:/data".into()
            },
            Intent::Ack {
                alert_id: "site-offline:BL-WH-S".into()
            },
        ]
    );
    assert_eq!(c.app.message().unwrap().text, "2 of 2 done (alerts ack)");
    assert!(!c.screen(120, 40).contains("marked"), "sent: the marks go");
    // Silence: one duration for every marked alert.
    c.press("j j space space s");
    assert!(c.screen(80, 24).contains("silence 2 alerts for: 1h"));
    c.press("enter");
    let silenced: Vec<_> = c
        .intents()
        .into_iter()
        .filter(|i| {
            matches!(
                i,
                Intent::Silence {
                    for_ms: 3_600_000,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(silenced.len(), 2, "{silenced:?}");
}

/// The fixture's fleet with an allowlisted action on every node.
fn with_an_action(c: &mut Console) {
    c.source
        .apply(Intent::Config {
            layer: LayerRef::Fleet,
            edits: vec![ConfigEdit::Set(
                ConfigPath::parse("actions.restart-frigate").unwrap(),
                json!({"cmd": "systemctl restart frigate", "timeout_s": 30}),
            )],
            message: None,
        })
        .unwrap();
    c.intents.lock().unwrap().clear();
    c.refresh();
}

#[test]
fn an_action_runs_on_the_marked_sites_and_each_nodes_result_shows_as_it_arrives() {
    let mut c = Console::new();
    with_an_action(&mut c);
    // BL-WH-N (3 nodes), BL-WH-S (2), BL-HUB-DE (1).
    c.press("space space space x");
    assert!(
        c.screen(120, 40).contains("run on 3 sites: "),
        "{}",
        c.screen(120, 40)
    );
    c.type_text("nope");
    c.press("enter");
    assert_eq!(
        c.app.message().unwrap().text,
        "'nope' is not an action of 3 sites: restart-frigate"
    );
    for _ in 0..4 {
        c.press("backspace");
    }
    c.type_text("re");
    c.press("tab");
    assert!(
        c.screen(120, 40)
            .contains("run on 3 sites: restart-frigate")
    );
    c.press("enter");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("Run restart-frigate on 3 sites (BL-HUB-DE, BL-WH-N, BL-WH-S: 6 nodes)?"),
        "{screen}"
    );
    c.press("y");
    let sent = c.intents();
    let ids: Vec<String> = sent
        .iter()
        .map(|i| match i {
            Intent::CommandRun {
                id: Some(id),
                action,
                ..
            } => {
                assert_eq!(action, "restart-frigate");
                id.clone()
            }
            other => panic!("a command expected: {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(c.app.route(), Route::Commands(Some(ids.clone())));
    assert_eq!(c.app.message().unwrap().text, "3 of 3 done (command run)");
    let screen = c.screen(120, 40);
    assert!(screen.contains("commands just sent · 3 of 3"), "{screen}");
    assert!(
        screen.contains("results of 3 commands · 0/6 reported · 0 failed"),
        "{screen}"
    );
    // whn-nvr reports, then whn-cam-1 fails: each shows as it arrives.
    let wh_n = &ids[1];
    c.source
        .command_result(wh_n, "whn-nvr", true, "frigate restarted");
    c.refresh();
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("results of 3 commands · 1/6 reported · 0 failed"),
        "{screen}"
    );
    assert!(
        screen.contains("whn-nvr          site:BL-WH-N       ok"),
        "{screen}"
    );
    c.source.command_result(wh_n, "whn-cam-1", false, "timeout");
    c.refresh();
    let screen = c.screen(120, 40);
    assert!(screen.contains("2/6 reported · 1 failed"), "{screen}");
    assert!(
        screen.contains("whn-cam-1        site:BL-WH-N       failed"),
        "{screen}"
    );
}

#[test]
fn a_rollout_starts_from_a_form_on_the_marked_sites() {
    let mut c = Console::new();
    c.press("/");
    c.type_text("lab");
    c.press("enter space space N");
    let screen = c.screen(120, 40);
    assert!(screen.contains("start a rollout on 2 sites"), "{screen}");
    // Nothing to set: the form says so and stays.
    c.press("enter");
    assert!(
        c.app
            .message()
            .unwrap()
            .text
            .starts_with("set: what the rollout sets is needed")
    );
    c.type_text("retention.days=21");
    c.press("tab backspace backspace backspace backspace backspace backspace backspace backspace backspace");
    c.type_text("50,100");
    c.press("tab backspace backspace backspace");
    c.type_text("2m");
    c.press("enter");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("Start a rollout of retention.days = 21 on BL-LAB-1, BL-LAB-2?"),
        "{screen}"
    );
    assert!(
        screen.contains("Waves 50 → 100 %, each soaking 2m healthy"),
        "{screen}"
    );
    c.press("y");
    match c.intents().as_slice() {
        [Intent::RolloutStart { plan, .. }] => {
            assert_eq!(
                plan.sites,
                [
                    SiteId::parse("BL-LAB-1").unwrap(),
                    SiteId::parse("BL-LAB-2").unwrap()
                ]
            );
            assert_eq!(plan.waves, [50, 100]);
            assert_eq!(plan.soak_ms, 120_000);
            assert_eq!(plan.max_fail, 0);
        }
        other => panic!("one rollout start expected: {other:?}"),
    }
    assert_eq!(c.app.route(), Route::Rollouts);
    assert!(c.screen(120, 40).contains("retention.days=21"));
}

// ---- zones --------------------------------------------------------------

#[test]
fn zones_show_their_nodes_up_against_the_quorum_and_open_their_sites() {
    let mut c = Console::new();
    c.press("8");
    assert_eq!(c.app.route(), Route::Zones);
    let screen = c.screen(120, 40);
    assert!(screen.contains("zones · 6"), "{screen}");
    assert!(screen.contains("no quorum set"), "{screen}");
    // Ten of north's nine nodes must be up: below it, the store's alert.
    c.source
        .apply(Intent::Config {
            layer: LayerRef::Fleet,
            edits: vec![
                ConfigEdit::Set(ConfigPath::parse("zones.north.quorum").unwrap(), json!(10)),
                ConfigEdit::Set(ConfigPath::parse("zones.south.quorum").unwrap(), json!(1)),
            ],
            message: None,
        })
        .unwrap();
    c.refresh();
    let screen = c.screen(120, 40);
    assert!(screen.contains("zones · 6 · 1 below quorum"), "{screen}");
    let north = screen.lines().find(|l| l.contains("│north")).unwrap();
    assert!(
        north.contains("9/9") && north.contains("10 · below"),
        "{north}"
    );
    // South: BL-WH-S is offline, so only lis-router counts.
    let south = screen.lines().find(|l| l.contains("│south")).unwrap();
    assert!(
        south.contains("1/4") && south.contains("1 · met"),
        "{south}"
    );
    assert!(c.app.snapshot().alert("zone-quorum:north").is_some());
    // The zone's sites (apac, field, hub); Enter opens one.
    c.press("j j enter");
    let screen = c.screen(120, 40);
    assert!(screen.contains("sites of hub · 2"), "{screen}");
    c.press("enter");
    assert_eq!(c.app.route(), Route::Site("BL-HUB-DE".into()));
}

// ---- zones in the overview ----------------------------------------------

#[test]
fn z_groups_the_overview_sites_by_zone_and_keeps_the_selection() {
    let mut c = Console::new();
    let before = listed_sites(&c.screen(120, 40));
    // On the second site (worst first: BL-WH-S).
    c.press("j z");
    assert!(
        c.app
            .message()
            .unwrap()
            .text
            .starts_with("sites grouped by zone"),
        "{:?}",
        c.app.message()
    );
    let screen = c.screen(120, 40);
    assert!(screen.contains("sites · 10 · by zone"), "{screen}");
    assert!(screen.contains("│ZONE"), "{screen}");
    let grouped = listed_zone_rows(&screen);
    // Zones A to Z, each zone's sites together, worst first within it.
    let zones: Vec<&str> = grouped.iter().map(|(z, _)| z.as_str()).collect();
    let mut sorted = zones.clone();
    sorted.sort();
    assert_eq!(zones, sorted, "{screen}");
    let south: Vec<&str> = grouped
        .iter()
        .filter(|(z, _)| z == "south")
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(south, ["BL-WH-S", "BL-SHOP-LIS"], "{screen}");
    // The zone's nodes up on its first row only.
    assert!(screen.contains("│south 1/4"), "{screen}");
    // The selection stayed on BL-WH-S.
    c.press("enter");
    assert_eq!(c.app.route(), Route::Site("BL-WH-S".into()));
    // z again: the table's own order.
    c.press("esc z");
    assert_eq!(listed_sites(&c.screen(120, 40)), before);
    assert_eq!(
        c.app.message().unwrap().text,
        "sites no longer grouped by zone"
    );
}

/// (zone, site) of each row of the overview's sites table grouped by zone
/// (the zone is written on every row: in full on a group's first, dim on
/// the others).
fn listed_zone_rows(screen: &str) -> Vec<(String, String)> {
    screen
        .lines()
        .map(|l| l.trim_start_matches('"'))
        // The sites table (beside the map at 120 columns), not the map.
        .filter(|l| l.contains("││"))
        .map(|l| l.split("││").next().unwrap_or(""))
        .filter(|l| l.contains("BL-") && l.starts_with('│') && !l.starts_with("│● "))
        .filter_map(|l| {
            let mut words = l.trim_start_matches('│').split_whitespace();
            let zone = words.next()?.to_string();
            let site = words.find(|w| w.starts_with("BL-"))?.to_string();
            Some((zone, site))
        })
        .collect()
}

#[test]
fn the_zones_view_filters_its_zones() {
    let mut c = Console::new();
    c.press("8 /");
    c.type_text("sou");
    let screen = c.screen(120, 40);
    assert!(screen.contains("zones · 1 /sou · 1 match"), "{screen}");
    assert!(screen.contains("sites of south · 2"), "{screen}");
    assert!(!screen.contains("│north"), "{screen}");
}

#[test]
fn the_alerts_view_says_why_it_is_empty() {
    let mut c = Console::new();
    c.press("2 / z z z");
    assert!(c.screen(120, 40).contains("no alert matches /zzz"));
    c.press("esc f");
    // Some severity with no alert: cycle until the table is empty.
    for _ in 0..3 {
        let screen = c.screen(120, 40);
        if screen.contains("alerts · 0 ·") {
            assert!(screen.contains("alert (f: the next severity)"), "{screen}");
            return;
        }
        c.press("f");
    }
}

#[test]
fn t_in_a_node_view_opens_a_tunnel_to_an_allowed_target_and_the_view_lists_it() {
    let mut c = Console::new();
    let node = fleetdeck_store::NodeId::parse("whn-nvr").unwrap();
    c.source
        .apply(Intent::Config {
            layer: LayerRef::Node(node.clone()),
            edits: vec![ConfigEdit::Set(
                ConfigPath::parse("tunnel.allow").unwrap(),
                json!(["127.0.0.1:5000", "192.168.1.20:554"]),
            )],
            message: None,
        })
        .expect("an admin lists the node's targets");
    c.refresh();
    c.press("enter j enter");
    assert_eq!(c.app.route(), Route::Node("whn-nvr".into()));
    c.press("t");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("tunnel through whn-nvr to:")
            && screen.contains("127.0.0.1:5000, 192.168.1.20:554"),
        "the prompt names the allowed targets: {screen}"
    );
    // Tab completes from them; a port alone is the node's own service.
    c.type_text("19");
    c.press("tab");
    let screen = c.screen(120, 40);
    assert!(screen.contains("to: 192.168.1.20:554"), "{screen}");
    c.press("esc t");
    c.type_text("5000");
    c.press("enter");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("tunnel open: connect to 127.0.0.1:40001 to reach 127.0.0.1:5000"),
        "the status says where to connect: {screen}"
    );
    c.refresh();
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("tunnel 127.0.0.1:40001 → 127.0.0.1:5000"),
        "the node view lists it: {screen}"
    );
    // A target the node does not allow: the source's reason.
    c.press("t");
    c.type_text("22");
    c.press("enter");
    let screen = c.screen(120, 40);
    assert!(
        screen.contains("no tunnel to 127.0.0.1:22 through whn-nvr"),
        "{screen}"
    );
}

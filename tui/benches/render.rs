//! P5: console frame times at 1,000 sites / 10,000 nodes (ratatui
//! `TestBackend`, 120×40) — the overview (also with 50 sites marked and
//! grouped by zone), a site, the events view over 1,000 events — and
//! keystroke → frame (typing a filter, Space marking sites, j in the
//! events view), beside baselines in the same run: a bare ratatui `Table`
//! of the same site rows, all of them and only the visible ones, with no
//! app logic.
//!
//! Run: `cargo bench -p fleetdeck-tui --bench render` (release).

use std::hint::black_box;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::events::FleetEvent;
use fleetdeck_tui::component::Events;
use fleetdeck_tui::fixture::{T0, large_snapshot};
use fleetdeck_tui::{App, Options, Response, Route, Snapshot};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Constraint;
use ratatui::widgets::{Block, Borders, Row, Table};

const SITES: usize = 1_000;
const NODES_PER_SITE: usize = 10;
const FRAMES: usize = 500;
const EVENTS: usize = 1_000;
const MARKED: usize = 50;
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Runs `f` `n` times (after 20 unmeasured runs) and returns the spread
/// in milliseconds.
fn measure(n: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..20 {
        f();
    }
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn row(what: &str, s: &Stats, target: &str) {
    println!(
        "{what:<48} {:>8.3} {:>8.3} {:>8.3}  {target}",
        s.p50, s.p99, s.max
    );
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn terminal() -> Terminal<TestBackend> {
    Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("a test terminal")
}

/// The site rows a bare table shows: the same text the overview's table has.
fn bare_rows(snap: &Snapshot) -> Vec<[String; 6]> {
    snap.sites
        .iter()
        .map(|s| {
            [
                format!("{:?}", s.state),
                s.id.clone(),
                s.name.clone(),
                format!("{}/{}", s.nodes_up, s.nodes_total),
                format!("{}H {}M {}S", s.alerts[2], s.alerts[1], s.alerts[0]),
                s.last_heard_ms
                    .map_or_else(|| "never".into(), |t| format!("{}s", (T0 - t) / 1000)),
            ]
        })
        .collect()
}

fn bare_table(term: &mut Terminal<TestBackend>, rows: &[[String; 6]]) {
    term.draw(|f| {
        let table = Table::new(
            rows.iter().map(|r| Row::new(r.iter().map(String::as_str))),
            [
                Constraint::Length(9),
                Constraint::Length(12),
                Constraint::Fill(1),
                Constraint::Length(6),
                Constraint::Length(9),
                Constraint::Length(11),
            ],
        )
        .block(Block::new().borders(Borders::ALL));
        f.render_widget(table, f.area());
    })
    .expect("a test terminal draws");
}

/// `n` events of the fleet, newest first, a second apart: nodes down and
/// up, applies and rollbacks, alerts fired and resolved, config changes,
/// as the store lists them.
fn events(snap: &Snapshot, n: usize) -> Vec<FleetEvent> {
    const KINDS: [&str; 8] = [
        "down",
        "up",
        "applied",
        "rolled_back",
        "alert_fired",
        "alert_resolved",
        "config",
        "command_result",
    ];
    let nodes: Vec<_> = snap.nodes.values().collect();
    (0..n)
        .map(|i| {
            let node = nodes[i * 7 % nodes.len()];
            let kind = KINDS[i % KINDS.len()];
            let change = (kind == "config").then(|| format!("{i:064x}"));
            FleetEvent {
                at_ms: T0 - i as i64 * 1_000,
                kind,
                site: Some(node.site.clone()),
                node: change.is_none().then(|| node.id.clone()),
                by: if change.is_some() {
                    "ops-laptop".into()
                } else {
                    node.id.clone()
                },
                text: format!(
                    "{kind} on {}: revision 4b660dc1833{i:05} (health check)",
                    node.id
                ),
                alert: kind
                    .starts_with("alert")
                    .then(|| format!("disk:{}:/data", node.id)),
                change,
            }
        })
        .collect()
}

fn main() {
    let t = Instant::now();
    let snap = large_snapshot(SITES, NODES_PER_SITE, T0);
    println!(
        "fleet: {} sites, {} nodes, {} alerts (snapshot built in {:.0} ms)",
        snap.sites.len(),
        snap.nodes.len(),
        snap.alerts.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("terminal: ratatui TestBackend {WIDTH}×{HEIGHT}; {FRAMES} frames per line; ms");
    println!();
    println!(
        "{:<48} {:>8} {:>8} {:>8}  target",
        "what", "p50", "p99", "max"
    );
    let rows = bare_rows(&snap);
    let visible = (HEIGHT - 3) as usize;
    let fleet_events = events(&snap, EVENTS);

    let mut app = App::new(snap, T0, Options::default());
    let mut term = terminal();
    let s = measure(FRAMES, || {
        term.draw(|f| black_box(&app).draw(f))
            .expect("a test terminal draws");
    });
    row(
        "overview frame (sites, health bar, map, alerts)",
        &s,
        "< 2 ms",
    );

    app.jump(Route::Site("BL-0500".into()));
    let s = measure(FRAMES, || {
        term.draw(|f| app.draw(f)).expect("a test terminal draws");
    });
    row(
        "site view frame (10 nodes, overrides, alerts)",
        &s,
        "< 2 ms",
    );

    // Typing a filter: each key goes through the keymap, updates the
    // filter and draws the overview with the matching rows.
    app.jump(Route::Overview);
    app.on_key(key(KeyCode::Char('/')));
    let typed: Vec<KeyCode> = "BL-05"
        .chars()
        .map(KeyCode::Char)
        .chain(std::iter::repeat_n(KeyCode::Backspace, 5))
        .collect();
    let mut i = 0;
    let s = measure(FRAMES, || {
        app.on_key(key(typed[i % typed.len()]));
        i += 1;
        term.draw(|f| app.draw(f)).expect("a test terminal draws");
        app.drawn();
    });
    row("filter keystroke → frame (overview)", &s, "< 16 ms");
    app.on_key(key(KeyCode::Esc));

    // Marks: 50 sites marked (Space marks the selected row and moves
    // down), then the overview's frame with the mark column and count.
    app.jump(Route::Overview);
    for _ in 0..MARKED {
        app.on_key(key(KeyCode::Char(' ')));
    }
    let s = measure(FRAMES, || {
        term.draw(|f| app.draw(f)).expect("a test terminal draws");
    });
    row("overview frame, 50 sites marked", &s, "< 2 ms");

    // Space → frame: each key marks the next site (the 51st onwards).
    let s = measure(FRAMES, || {
        app.on_key(key(KeyCode::Char(' ')));
        term.draw(|f| app.draw(f)).expect("a test terminal draws");
        app.drawn();
    });
    row("mark keystroke (space) → frame (overview)", &s, "< 16 ms");
    app.on_key(key(KeyCode::Char('u')));

    // Grouped by zone (z): the ZONE column and each zone's nodes up.
    app.on_key(key(KeyCode::Char('z')));
    let s = measure(FRAMES, || {
        term.draw(|f| app.draw(f)).expect("a test terminal draws");
    });
    row("overview frame, grouped by zone", &s, "< 2 ms");
    app.on_key(key(KeyCode::Char('z')));

    // The events view over 1,000 events (what the source thread fetched,
    // handed in as its answer).
    app.jump(Route::Events(LayerRef::Fleet));
    app.take_requests();
    app.on_response(Response::Events(Box::new(Events {
        scope: LayerRef::Fleet,
        from_ms: T0 - 86_400_000,
        to_ms: T0,
        rows: Ok(fleet_events),
    })));
    let s = measure(FRAMES, || {
        term.draw(|f| app.draw(f)).expect("a test terminal draws");
    });
    row("events view frame (1,000 events)", &s, "< 2 ms");

    // j → frame in the events view: down the list, back to the top at
    // the end.
    let mut i = 0;
    let s = measure(FRAMES, || {
        let k = if i % EVENTS == EVENTS - 1 {
            KeyCode::Char('g')
        } else {
            KeyCode::Char('j')
        };
        i += 1;
        app.on_key(key(k));
        term.draw(|f| app.draw(f)).expect("a test terminal draws");
        app.drawn();
    });
    row("events keystroke (j) → frame", &s, "< 16 ms");

    let s = measure(FRAMES, || bare_table(&mut term, &rows));
    row("baseline: bare Table, all 1,000 site rows", &s, "");
    let s = measure(FRAMES, || bare_table(&mut term, &rows[..visible]));
    row("baseline: bare Table, the 37 visible rows", &s, "");
}

//! The console end to end, as an operator drives it: a real terminal (tmux),
//! a real replica joined to a peer that serves on 127.0.0.1, keys typed into
//! the config editor, and the peer ends up with the value; and the console
//! on the demo's fleet of real node daemons (`demo --data`): the events
//! view shows a rollback as it happens, and the fleet at a past moment.
//!
//! Skipped (with a message) when tmux is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetdeck"));
    c.env_remove("FLEETDECK_DATA").env_remove("RUST_LOG");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin().arg("--data").arg(dir).args(args).output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(dir, &a)).unwrap()
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &Path) -> Child {
    bin()
        .arg("--data")
        .arg(dir)
        .args([
            "serve",
            "--no-mdns",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A tmux server of the test's own (its own socket), killed with whatever
/// it runs when the test ends; the serving processes too.
struct Session {
    socket: String,
    children: Vec<Child>,
}

impl Session {
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.tmux(&["send-keys", "-t", "console", k]);
            assert!(out.status.success(), "send-keys {k}");
            // One key at a time, as typed: the console draws in between.
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn text(&self, text: &str) {
        for c in text.chars() {
            let out = self.tmux(&["send-keys", "-t", "console", "-l", &c.to_string()]);
            assert!(out.status.success(), "send-keys -l {c}");
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-t", "console", "-p"]).stdout)
            .into_owned()
    }

    /// Waits (bounded) for the screen to show `needle`.
    fn shows(&self, needle: &str) -> String {
        self.shows_within(needle, Duration::from_secs(20))
    }

    /// Waits up to `limit` for the screen to show `needle`.
    fn shows_within(&self, needle: &str, limit: Duration) -> String {
        let mut last = String::new();
        let seen = eventually(limit, || {
            last = self.screen();
            last.contains(needle)
        });
        assert!(
            seen,
            "the console never showed {needle:?}; it shows (its last lines):\n{}",
            last.lines().rev().take(4).collect::<Vec<_>>().join("\n")
        );
        last
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_value_edited_in_the_console_reaches_the_peer() {
    if !have_tmux() {
        println!("skipped: tmux is not installed (the console's end-to-end test needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (hub, laptop): (PathBuf, PathBuf) = (tmp.path().join("hub"), tmp.path().join("laptop"));
    let config_home = tmp.path().join("config");
    std::fs::create_dir_all(&config_home).unwrap();

    // The peer: a fleet with a site and a node, serving on 127.0.0.1.
    ok(&hub, &["init", "--name", "hub", "--fleet", "blocao"]);
    ok(&hub, &["site", "add", "BL-LAB-1", "--name", "Lab 1"]);
    ok(&hub, &["node", "add", "cam-1", "--site", "BL-LAB-1"]);
    let session = Session {
        socket: format!("fleetdeck-test-{}", std::process::id()),
        children: vec![serve(&hub)],
    };
    assert!(
        eventually(Duration::from_secs(20), || {
            json(&hub, &["peers"])["serving"] == true && run(&hub, &["invite"]).status.success()
        }),
        "the hub never served"
    );
    let token = json(&hub, &["invite", "--role", "operator", "--ttl", "10m"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        &laptop,
        &[
            "join",
            &token,
            "--name",
            "ops-laptop",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    // The console in a 120×40 terminal, syncing with the hub through its own
    // endpoint on 127.0.0.1.
    let command = format!(
        "env XDG_CONFIG_HOME={} {} --data {} console --listen 127.0.0.1:0 --no-mdns",
        config_home.display(),
        env!("CARGO_BIN_EXE_fleetdeck"),
        laptop.display()
    );
    let out = session.tmux(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        "120",
        "-y",
        "40",
        &command,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    session.shows("BL-LAB-1");

    // :config BL-LAB-1, find retention.days, type 21, review, commit.
    session.keys(&[":"]);
    session.text("config BL-LAB-1");
    session.keys(&["Enter"]);
    session.shows("editing the overrides of site BL-LAB-1");
    session.keys(&["/"]);
    session.text("retention");
    session.keys(&["Enter", "j", "e"]);
    session.shows("edit in site BL-LAB-1");
    session.text("0");
    session.shows("✗ retention.days = 0 is out of range");
    session.keys(&["BSpace"]);
    session.text("21");
    session.shows("✓ whole number of days");
    session.keys(&["Enter"]);
    session.shows("● 21");
    session.keys(&["c"]);
    session.shows("the effective config changes on 1 node in 1 site");
    for _ in 0.."retention.days = 21 in site BL-LAB-1".len() {
        session.keys(&["BSpace"]);
    }
    session.text("lab 1 keeps three weeks");
    session.keys(&["Enter"]);
    session.shows("set retention.days = 21 in the overrides of site BL-LAB-1");

    // The peer has it (bounded wait), with the console's message.
    let mut last = String::new();
    let arrived = eventually(Duration::from_secs(30), || {
        last = String::from_utf8_lossy(
            &run(
                &hub,
                &["config", "get", "retention.days", "--site", "BL-LAB-1"],
            )
            .stdout,
        )
        .trim()
        .to_string();
        last == "21"
    });
    assert!(arrived, "the peer never got the edit (it has {last:?})");
    let history = ok(&hub, &["history"]);
    assert!(history.contains("lab 1 keeps three weeks"), "{history}");

    session.keys(&["q"]);
    assert!(
        eventually(Duration::from_secs(10), || {
            !session
                .tmux(&["has-session", "-t", "console"])
                .status
                .success()
        }),
        "q quits the console"
    );
}

/// The console on `demo --scenario SCENARIO --data DIR` in a tmux session
/// of its own, `width`×`height`.
fn demo_session(tmp: &Path, scenario: &str, width: u16, height: u16) -> Session {
    let config_home = tmp.join("config");
    std::fs::create_dir_all(&config_home).unwrap();
    let session = Session {
        // A socket name of the scenario's name, not its path.
        socket: format!(
            "fleetdeck-demo-{}-{}",
            std::process::id(),
            Path::new(scenario)
                .file_stem()
                .map_or("demo".into(), |s| s.to_string_lossy())
        ),
        children: Vec::new(),
    };
    let command = format!(
        "env XDG_CONFIG_HOME={} {} demo --scenario {scenario} --data {}",
        config_home.display(),
        env!("CARGO_BIN_EXE_fleetdeck"),
        tmp.join("demo").display()
    );
    let out = session.tmux(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        &width.to_string(),
        "-y",
        &height.to_string(),
        &command,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    session
}

#[test]
fn the_events_view_shows_the_rollback_of_a_bad_config_and_the_fleet_before_it() {
    if !have_tmux() {
        println!("skipped: tmux is not installed (the console's end-to-end test needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let session = demo_session(tmp.path(), "bad-config-rollback", 120, 40);
    session.shows_within("BC-LAB", Duration::from_secs(60));
    // The fleet's events: the unsupported detector is rolled back on every
    // node, each with its health check's failure.
    session.keys(&["7"]);
    session.shows("events · last 1d");
    let screen = session.shows_within("rolled back    bc-", Duration::from_secs(90));
    assert!(
        screen.contains("rolled back — "),
        "the rollback says what: {screen}"
    );
    // Only the rollbacks (f: presence, applies), then one node's timeline.
    session.keys(&["f", "f"]);
    let screen = session.shows("· applies");
    assert!(!screen.contains("alert fired"), "{screen}");
    // The fleet at the moment of the rollback: ← from now steps back
    // event by event; the banner says it is read-only.
    session.keys(&["Escape", "1", "Left"]);
    let screen = session.shows("AS OF ");
    assert!(
        screen.contains("read-only · ←/→ previous/next event · esc back to now"),
        "{screen}"
    );
    session.keys(&[":"]);
    session.text("at 2s");
    session.keys(&["Enter", "2", "a"]);
    session.shows("ack: read-only as of a past moment (esc: now)");
    session.keys(&["Escape"]);
    session.shows("back to now");
    session.keys(&["q"]);
    assert!(
        eventually(Duration::from_secs(15), || {
            !session
                .tmux(&["has-session", "-t", "console"])
                .status
                .success()
        }),
        "q quits the demo's console"
    );
    // The demo's replicas are kept: the CLI sees the same rollbacks.
    let events = ok(
        &tmp.path().join("demo").join("ops"),
        &["events", "--kind", "rolled_back"],
    );
    assert!(events.contains("rolled back"), "{events}");
}

/// Three sites of two nodes each, every node with an allowlisted action.
const THREE_SITES: &str = r#"
name = "three-sites"
description = "Three sites of two nodes each, every node with an allowlisted action"
fleet = "three-sites"
duration_s = 600
speed = 1

[config]
heartbeat.interval_s = 10
alerts.missed_beats = 3
actions.restart-agent = { cmd = "echo agent restarted", timeout_s = 30 }

[[site]]
id = "TS-A"
name = "Site A"

[[site]]
id = "TS-B"
name = "Site B"

[[site]]
id = "TS-C"
name = "Site C"

[[node]]
id = "a-1"
site = "TS-A"

[[node]]
id = "a-2"
site = "TS-A"

[[node]]
id = "b-1"
site = "TS-B"

[[node]]
id = "b-2"
site = "TS-B"

[[node]]
id = "c-1"
site = "TS-C"

[[node]]
id = "c-2"
site = "TS-C"
"#;

#[test]
fn an_action_on_three_marked_sites_reports_each_nodes_result() {
    if !have_tmux() {
        println!("skipped: tmux is not installed (the console's end-to-end test needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("three-sites.toml");
    std::fs::write(&scenario, THREE_SITES).unwrap();
    let session = demo_session(tmp.path(), &scenario.display().to_string(), 120, 40);
    // Every node up before the action goes out.
    session.shows_within("TS-C", Duration::from_secs(60));
    assert!(
        eventually(Duration::from_secs(60), || {
            let s = session.screen();
            ["TS-A", "TS-B", "TS-C"]
                .iter()
                .all(|site| s.lines().any(|l| l.contains(site) && l.contains("2/2")))
        }),
        "the six nodes never all reported: {}",
        session.screen()
    );
    // Sorted by site id (their order stays while their states move), mark
    // the three sites, run restart-agent on them, confirm.
    session.keys(&["o"]);
    session.shows("sorted by SITE, A to Z");
    session.keys(&["g", "Space", "Space", "Space"]);
    session.shows("sites · 3 · 3 marked");
    session.keys(&["x"]);
    session.shows("run on 3 sites:");
    session.text("restart-");
    session.keys(&["Tab"]);
    session.shows("run on 3 sites: restart-agent");
    session.keys(&["Enter"]);
    session.shows("Run restart-agent on 3 sites (TS-A, TS-B, TS-C: 6 nodes)?");
    session.keys(&["y"]);
    // The commands view on the three commands: each node's result as it
    // arrives, until all six are in.
    session.shows("commands just sent");
    let screen = session.shows_within(
        "results of 3 commands · 6/6 reported · 0 failed",
        Duration::from_secs(90),
    );
    for node in ["a-1", "a-2", "b-1", "b-2", "c-1", "c-2"] {
        assert!(
            screen
                .lines()
                .any(|l| l.contains(node) && l.contains(" ok ") && l.contains("agent restarted")),
            "{node} has no result line: {screen}"
        );
    }
    session.keys(&["q"]);
}

/// Two sites of one node; the disk of AA-Z's node fills first, then, while
/// the operator is on that alert, AA-A's (an alert listed above it: the
/// store lists alerts of a severity by site).
const ALERTS_ARRIVE: &str = r#"
name = "alerts-arrive"
description = "A disk fills at site Z, then one at site A, listed above it"
fleet = "alerts-arrive"
duration_s = 600
speed = 1

[config]
heartbeat.interval_s = 2
alerts.missed_beats = 3
alerts.disk_pct = 85

[[site]]
id = "AA-A"
name = "Site A"

[[site]]
id = "AA-Z"
name = "Site Z"

[[node]]
id = "a-1"
site = "AA-A"

[[node]]
id = "z-1"
site = "AA-Z"

[[event]]
at_s = 3
action = "disk_fill"
node = "z-1"
pct = 92.0

[[event]]
at_s = 20
action = "disk_fill"
node = "a-1"
pct = 93.0
"#;

#[test]
fn the_selection_stays_on_its_alert_while_one_arrives_above_and_the_ack_lands_on_it() {
    if !have_tmux() {
        println!("skipped: tmux is not installed (the console's end-to-end test needs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("alerts-arrive.toml");
    std::fs::write(&scenario, ALERTS_ARRIVE).unwrap();
    let session = demo_session(tmp.path(), &scenario.display().to_string(), 120, 40);
    session.shows_within("AA-Z", Duration::from_secs(60));
    // The alerts view on z-1's disk, the only alert yet: the detail below
    // the table names the selected alert.
    session.keys(&["2"]);
    let screen = session.shows_within("z-1: disk", Duration::from_secs(60));
    assert!(!screen.contains("a-1: disk"), "too late to start: {screen}");
    session.keys(&["g"]);
    session.shows("medium disk:z-1:/ · disk · site AA-Z · node z-1");
    // a-1's disk fills: its alert is listed, the selection stays on z-1's.
    let screen = session.shows_within("a-1: disk", Duration::from_secs(60));
    assert!(
        screen.contains("medium disk:z-1:/ · disk · site AA-Z · node z-1"),
        "the selection moved: {screen}"
    );
    // The ack lands on the alert that was selected, and only on it.
    session.keys(&["a"]);
    session.shows("acked disk:z-1:/");
    let screen = session.shows("acked by ops");
    let row = |node: &str| {
        screen
            .lines()
            .find(|l| l.contains(&format!("{node}: disk")))
            .unwrap_or_else(|| panic!("no row of {node}: {screen}"))
            .to_string()
    };
    assert!(row("z-1").contains("acked by"), "{screen}");
    assert!(!row("a-1").contains("acked by"), "{screen}");
    session.keys(&["q"]);
}

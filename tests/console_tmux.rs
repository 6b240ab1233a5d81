//! The console end to end, as an operator drives it: a real terminal (tmux),
//! a real replica joined to a peer that serves on 127.0.0.1, keys typed into
//! the config editor, and the peer ends up with the value.
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
        let mut last = String::new();
        let seen = eventually(Duration::from_secs(20), || {
            last = self.screen();
            last.contains(needle)
        });
        assert!(
            seen,
            "the console never showed {needle:?}; it shows:\n{last}"
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

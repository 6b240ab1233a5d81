//! Two replicas as real processes on 127.0.0.1: init, serve, invite, join,
//! serve, and edits crossing between them; sync --once; bundles.

use std::path::Path;
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

/// Kills the serving processes however the test ends.
struct Servers(Vec<Child>);
impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &Path, port: u16) -> Child {
    bin()
        .arg("--data")
        .arg(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
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
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn effective(dir: &Path, node: &str) -> Value {
    json(dir, &["config", "effective", "--node", node])
}

#[test]
fn init_invite_join_serve_and_edits_cross_between_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("hub"), tmp.path().join("laptop"));
    ok(&a, &["init", "--name", "hub", "--fleet", "blocao"]);
    ok(&a, &["site", "add", "BL-LAB-1", "--name", "Lab 1"]);
    ok(&a, &["node", "add", "cam-1", "--site", "BL-LAB-1"]);
    let mut servers = Servers(vec![serve(&a, free_port())]);
    // serve publishes where it listens; invite needs that.
    assert!(eventually(Duration::from_secs(10), || {
        json(&a, &["peers"])["serving"] == true && run(&a, &["invite"]).status.success()
    }));
    let token = json(&a, &["invite", "--role", "operator", "--ttl", "10m"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let joined = json(
        &b,
        &[
            "join",
            &token,
            "--name",
            "tech-laptop",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(joined["fleet_name"], "blocao");
    assert_eq!(joined["role"], "operator");
    assert_eq!(joined["sites"], 1);

    // The token works once.
    let c = tmp.path().join("thief");
    let out = run(
        &c,
        &["join", &token, "--name", "thief", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already used"));

    servers.0.push(serve(&b, free_port()));
    ok(
        &a,
        &[
            "config",
            "set",
            "retention.days",
            "21",
            "--site",
            "BL-LAB-1",
        ],
    );
    ok(&b, &["config", "set", "frigate.version", "\"0.14\""]);
    let crossed = eventually(Duration::from_secs(15), || {
        effective(&b, "cam-1")["retention"]["days"] == 21
            && effective(&a, "cam-1")["frigate"]["version"] == "0.14"
    });
    assert!(crossed, "each side's edit reached the other");
    // `peers` reads the status the serving process writes every second.
    let laptop = |v: &Value| {
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "tech-laptop")
            .cloned()
    };
    let connected = eventually(Duration::from_secs(5), || {
        laptop(&json(&a, &["peers"])).is_some_and(|p| p["connected"] == true && p["lacks"] == 0)
    });
    assert!(connected, "{}", json(&a, &["peers"]));
    assert_eq!(laptop(&json(&a, &["peers"])).unwrap()["role"], "operator");
}

#[test]
fn sync_once_with_a_named_peer_and_bundles_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("hub"), tmp.path().join("laptop"));
    ok(&a, &["init", "--name", "hub"]);
    ok(&a, &["site", "add", "S1", "--name", "one"]);
    ok(&a, &["node", "add", "n1", "--site", "S1"]);
    let _servers = Servers(vec![serve(&a, free_port())]);
    assert!(eventually(Duration::from_secs(10), || run(&a, &["invite"])
        .status
        .success()));
    let token = json(&a, &["invite"])["token"].as_str().unwrap().to_string();
    json(
        &b,
        &[
            "join",
            &token,
            "--name",
            "laptop",
            "--listen",
            "127.0.0.1:0",
        ],
    );

    // The laptop edits with nothing running, then syncs once with the hub
    // by its member name.
    ok(&b, &["config", "set", "dns.allow", r#"["a.example"]"#]);
    let s = json(&b, &["sync", "--peer", "hub", "--once"]);
    assert_eq!(s["peers"][0]["ok"], true, "{s}");
    assert!(eventually(
        Duration::from_secs(5),
        || effective(&a, "n1")["dns"]["allow"][0] == "a.example"
    ));

    // Sneakernet: the laptop writes a bundle; a third replica imports it.
    ok(&b, &["config", "set", "carried.by", "hand"]);
    let file = tmp.path().join("trip.fdb");
    let e = json(&b, &["bundle", "export", file.to_str().unwrap()]);
    assert!(e["changes"].as_u64().unwrap() > 3);
    let i = json(&a, &["bundle", "import", file.to_str().unwrap()]);
    assert_eq!(i["changes_new"], 1);
    let i = json(&a, &["bundle", "import", file.to_str().unwrap()]);
    assert_eq!(i["changes_new"], 0);
    assert_eq!(effective(&a, "n1")["carried"]["by"], "hand");

    let junk = tmp.path().join("junk.fdb");
    std::fs::write(&junk, "nope").unwrap();
    let out = run(&a, &["bundle", "import", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a fleetdeck bundle"));

    let out = run(&b, &["sync", "--peer", "nobody", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no member named 'nobody'"));
}

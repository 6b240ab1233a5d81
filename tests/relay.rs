//! The fleet's own relay with real processes on 127.0.0.1: `fleetdeck relay
//! --publish` on the hub makes its CA, publishes the relay's URL and CA in
//! the fleet document; an invite made while the hub has published no
//! address carries only the relay, and `join` reaches the hub through it,
//! checking the relay's certificate against the CA the invite names.

use std::fs::File;
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
    bin()
        .arg("--data")
        .arg(dir)
        .args(args)
        .output()
        .expect("fleetdeck runs")
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = run(dir, &a);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A free port for TCP (the relay speaks HTTPS) or UDP (QUIC).
fn free_port(tcp: bool) -> u16 {
    if tcp {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    } else {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }
}

/// A long-running process, its stderr in a file; killed however the test
/// ends.
struct Proc(Child, PathBuf);

impl Proc {
    fn spawn(dir: &Path, args: &[&str], log: PathBuf) -> Proc {
        let err = File::create(&log).expect("a log file");
        let child = bin()
            .arg("--data")
            .arg(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("fleetdeck starts");
        Proc(child, log)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

#[test]
fn a_replica_joins_through_the_fleets_relay_checked_against_the_published_ca() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (hub, laptop) = (tmp.path().join("hub"), tmp.path().join("laptop"));
    assert!(
        run(&hub, &["init", "--name", "hub", "--fleet", "relayed"])
            .status
            .success()
    );

    // A relay with no name to put in its certificate is refused, saying so.
    let out = run(&hub, &["relay", "--publish"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--name"), "{err}");

    let relay_port = free_port(true);
    let url = format!("https://127.0.0.1:{relay_port}");
    let listen = format!("127.0.0.1:{relay_port}");
    let start_relay = |publish: bool, log: &str| {
        let mut args = vec!["relay", "--listen", &listen];
        if publish {
            args.push("--publish");
        }
        Proc::spawn(&hub, &args, tmp.path().join(log))
    };
    let relay = start_relay(true, "relay.log");
    assert!(
        eventually(Duration::from_secs(30), || {
            run(&hub, &["config", "get", "sync.relay_url"])
                .stdout
                .starts_with(url.as_bytes())
        }),
        "the relay publishes its URL: {}",
        relay.log()
    );
    let ca = std::fs::read_to_string(hub.join("relay/ca.pem")).expect("the relay's CA");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let key = hub.join("relay/ca-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("the CA key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the CA key is its owner's only");
    }
    let published = json(&hub, &["config", "get", "sync.relay_ca"]);
    assert_eq!(published["value"].as_str().map(str::trim), Some(ca.trim()));

    // A relay whose certificate another CA signed (its own CA made anew,
    // not published) is not trusted: a join through it fails before the
    // relay ever sees the joiner's pass.
    drop(relay);
    std::fs::rename(hub.join("relay"), tmp.path().join("relay-published")).expect("kept aside");
    let impostor = start_relay(false, "impostor.log");
    let listening = || std::net::TcpStream::connect(&listen).is_ok();
    assert!(
        eventually(Duration::from_secs(20), listening),
        "{}",
        impostor.log()
    );
    let invite = json(&hub, &["invite", "--role", "operator"]);
    let token = invite["token"].as_str().expect("a token").to_string();
    let out = run(
        &laptop,
        &[
            "join",
            &token,
            "--name",
            "laptop",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(
        !out.status.success(),
        "joined through a relay the fleet does not trust"
    );
    assert!(
        !impostor.log().contains("let in a joiner"),
        "{}",
        impostor.log()
    );
    drop(impostor);
    std::fs::remove_dir_all(hub.join("relay")).expect("the impostor's CA");
    std::fs::rename(tmp.path().join("relay-published"), hub.join("relay")).expect("put back");
    let _ = std::fs::remove_dir_all(&laptop);
    let relay = start_relay(false, "relay-2.log");

    assert!(eventually(Duration::from_secs(20), listening));

    // Invited before the hub ever served: it has published no address, so
    // the token names only the relay.
    let invite = json(&hub, &["invite", "--role", "operator"]);
    assert_eq!(invite["addrs"], serde_json::json!([]), "{invite}");
    assert_eq!(invite["relay"], serde_json::json!(url), "{invite}");
    let token = invite["token"].as_str().expect("a token").to_string();

    let hub_port = free_port(false);
    let serve = Proc::spawn(
        &hub,
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{hub_port}"),
            "--no-mdns",
        ],
        tmp.path().join("hub.log"),
    );
    // The hub reaches the relay after it starts; a join before that finds
    // nobody there and is tried again (bounded).
    let mut last = String::new();
    let joined = eventually(Duration::from_secs(60), || {
        let out = run(
            &laptop,
            &[
                "join",
                &token,
                "--name",
                "laptop",
                "--listen",
                "127.0.0.1:0",
            ],
        );
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success()
    });
    assert!(
        joined,
        "join through the relay: {last}\nrelay: {}\nhub: {}",
        relay.log(),
        serve.log()
    );
    // The fleet arrived, with the relay in it.
    let got = json(&laptop, &["config", "get", "sync.relay_url"]);
    assert_eq!(got["value"], serde_json::json!(url));
    let members = json(&hub, &["member", "list"]);
    assert!(
        members.to_string().contains("laptop"),
        "the hub enrolled the laptop: {members}"
    );

    // Once the laptop serves, the hub's `peers` says how the session goes
    // (direct or through the relay) and its round-trip time.
    let _laptop = Proc::spawn(
        &laptop,
        &["serve", "--listen", "127.0.0.1:0", "--no-mdns"],
        tmp.path().join("laptop.log"),
    );
    let mut peers = Value::Null;
    let shown = eventually(Duration::from_secs(30), || {
        peers = json(&hub, &["peers"]);
        peers["peers"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["name"] == "laptop"
                    && p["connected"] == true
                    && (p["path"] == "direct" || p["path"] == "relay")
                    && p["rtt_ms"].is_u64()
            })
        })
    });
    assert!(shown, "the hub's peers: {peers}");
}

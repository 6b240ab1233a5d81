//! `fleetdeck tunnel` with real processes in network namespaces the test
//! makes itself (no packet leaves them): the operators' namespace (the
//! admin's hub, `serve`, and an operator's laptop) and a site's (node n1,
//! `node run`) joined by a veth pair, and a camera on the site's LAN in a
//! third namespace that only the site reaches. The site's web service and
//! the camera's listen where the operators' namespace cannot connect
//! (127.0.0.1 in the site's namespace, the camera's LAN); through
//! `fleetdeck tunnel` the admin fetches a page and 100 MB (hash compared)
//! from the first, 100 MB again while the site's uplink goes down for 3 s
//! in the middle (intact), and a page from the second (`--to`).
//!
//! Refusals, as an operator sees them: a viewer, a port the node's
//! `tunnel.allow` does not list, a revoked operator (refused by the node,
//! which says why).
//!
//! A standard WireGuard client: wireguard-go (a TUN device in the
//! operators' namespace) set from `fleetdeck wg-config` reaches, through one
//! interface, both of n1's targets and the service of a second node, n2 (a
//! second site's namespace), at each node's overlay address over plain
//! WireGuard UDP; once the device is revoked, or with a key no member
//! record names, nothing.
//!
//! Needs root and iproute2 (`ip netns`), as CI has; skipped with a message
//! where they are missing (the WireGuard client's part where wireguard-go
//! or wg is, which CI installs).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

mod netns;
use netns::{Namespaces, Proc, inside, sh};

/// Whether `f` says yes within `limit` (asked every 250 ms).
fn within(limit: Duration, f: impl FnMut() -> bool) -> bool {
    netns::eventually(limit, f).is_some()
}

const BIG: u64 = 100_000_000;

/// `fleetdeck --data DIR ARGS…` in namespace `ns`.
fn fleetdeck(ns: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_fleetdeck")])
        .env_remove("FLEETDECK_DATA")
        .env_remove("RUST_LOG")
        .arg("--data")
        .arg(dir)
        .args(args)
        .output()
        .expect("fleetdeck runs")
}

fn ok(ns: &str, dir: &Path, args: &[&str]) -> String {
    let out = fleetdeck(ns, dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(ns: &str, dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(ns, dir, &a)).unwrap_or(Value::Null)
}

/// The namespaces, deleted (after their processes) however the test ends.
struct Net {
    spaces: Namespaces,
}

impl Net {
    fn add(&mut self, name: &str) -> String {
        let ns = format!("fdt{name}{}", std::process::id());
        self.spaces.add(&ns);
        ns
    }

    /// A veth pair: `a_dev` in `a` (at `a_ip`), `b_dev` in `b` (at `b_ip`),
    /// one /24.
    fn link(&self, a: &str, a_dev: &str, a_ip: &str, b: &str, b_dev: &str, b_ip: &str) {
        inside(
            a,
            "ip",
            &[
                "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b,
            ],
        );
        inside(
            a,
            "ip",
            &["addr", "add", &format!("{a_ip}/24"), "dev", a_dev],
        );
        inside(
            b,
            "ip",
            &["addr", "add", &format!("{b_ip}/24"), "dev", b_dev],
        );
        inside(a, "ip", &["link", "set", a_dev, "up"]);
        inside(b, "ip", &["link", "set", b_dev, "up"]);
    }
}

fn can_run() -> Result<(), String> {
    let probe = format!("fdtprobe{}", std::process::id());
    if !sh("ip", &["netns", "add", &probe]) {
        return Err("cannot make a network namespace (needs root and iproute2)".into());
    }
    let _ = sh("ip", &["netns", "del", &probe]);
    Ok(())
}

fn has_wireguard_go() -> bool {
    sh("sh", &["-c", "command -v wireguard-go && command -v wg"])
        && Path::new("/dev/net/tun").exists()
}

/// A WireGuard interface in a namespace, run by wireguard-go (a TUN device)
/// and set from a `wg-quick` configuration; stopped however the test ends.
struct WireGuardGo {
    child: Child,
}

impl WireGuardGo {
    fn start(ns: &str, dev: &str, config: &str, dir: &Path) -> WireGuardGo {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "wireguard-go", "-f", dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wireguard-go starts");
        let up = within(Duration::from_secs(10), || {
            sh("ip", &["netns", "exec", ns, "ip", "link", "show", dev])
        });
        assert!(up, "wireguard-go makes {dev}");
        // `wg setconf` takes the configuration without wg-quick's Address
        // and MTU (set on the link here).
        let address = config
            .lines()
            .find_map(|l| l.strip_prefix("Address = "))
            .expect("an Address")
            .to_string();
        let plain: String = config
            .lines()
            .filter(|l| !l.starts_with("Address") && !l.starts_with("MTU"))
            .map(|l| format!("{l}\n"))
            .collect();
        let file = dir.join(format!("{dev}.conf"));
        std::fs::write(&file, plain).expect("write the configuration");
        inside(ns, "wg", &["setconf", dev, &file.to_string_lossy()]);
        inside(ns, "ip", &["addr", "add", &address, "dev", dev]);
        inside(ns, "ip", &["link", "set", dev, "mtu", "1420"]);
        inside(ns, "ip", &["link", "set", dev, "up"]);
        // wg-quick routes every peer's AllowedIPs into the interface.
        let allowed: Vec<&str> = config
            .lines()
            .filter_map(|l| l.strip_prefix("AllowedIPs = "))
            .flat_map(|a| a.split(", "))
            .collect();
        assert!(!allowed.is_empty(), "AllowedIPs in {config}");
        for net in allowed {
            inside(ns, "ip", &["route", "add", net, "dev", dev]);
        }
        WireGuardGo { child }
    }
}

impl Drop for WireGuardGo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The byte at `i` of the big download.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// A web server on `at` inside namespace `ns` (a thread that enters it:
/// its sockets live there). `/` answers `page`; `/big` 100 MB of the
/// pattern.
fn web(ns: &str, at: &str, page: &'static str) {
    let path = format!("/var/run/netns/{ns}");
    let at = at.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let f = File::open(&path).expect("the namespace's file");
        // SAFETY: setns on this thread only, with a namespace fd we hold.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns into {path}");
        let l = TcpListener::bind(&at).expect("the web server binds");
        let _ = ready_tx.send(());
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s, page));
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the web server starts");
}

fn serve(s: TcpStream, page: &str) {
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
            break;
        }
    }
    let mut w = s;
    if line.starts_with("GET /big ") {
        let _ = write!(w, "HTTP/1.0 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        while sent < BIG {
            let k = (BIG - sent).min(buf.len() as u64) as usize;
            for (j, b) in buf[..k].iter_mut().enumerate() {
                *b = pattern(sent + j as u64);
            }
            if w.write_all(&buf[..k]).is_err() {
                return;
            }
            sent += k as u64;
        }
    } else {
        let _ = write!(
            w,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{page}",
            page.len()
        );
    }
}

/// Runs `f` on a thread inside namespace `ns` (its sockets live there).
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).expect("the namespace's file");
        // SAFETY: setns on this thread only, with a namespace fd we hold.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns into {path}");
        f()
    })
    .join()
    .expect("the thread in the namespace")
}

/// GET `path` at `at` from inside namespace `ns`: the body, or why not.
fn get(ns: &str, at: SocketAddr, path: &'static str) -> Result<Vec<u8>, String> {
    in_ns(ns, move || fetch(at, path))
}

fn fetch(at: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let mut s =
        TcpStream::connect_timeout(&at, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| e.to_string())?;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer ({} bytes)", all.len()))?;
    Ok(all.split_off(head_end + 4))
}

/// `fleetdeck tunnel ARGS --json` in `ns`, and the local address it prints.
fn tunnel(ns: &str, dir: &Path, args: &[&str], log: PathBuf) -> (Proc, SocketAddr) {
    let mut a = vec!["--json", "tunnel"];
    a.extend_from_slice(args);
    let mut p = Proc::spawn(ns, dir, &a, log, Stdio::piped(), None);
    let out = p.child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    let v: Value = serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("tunnel prints its address: {line:?}; {}", p.log()));
    let at = v["local"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a local address");
    (p, at)
}

#[test]
fn an_admin_reaches_a_service_on_a_node_and_a_device_on_its_lan_and_others_are_refused() {
    if let Err(why) = can_run() {
        println!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = |name: &str| tmp.path().join(name);
    let log = |name: &str| tmp.path().join(format!("{name}.log"));
    let mut net = Net {
        spaces: Namespaces::default(),
    };
    let ops = net.add("O");
    let site = net.add("S");
    let cam = net.add("C");
    let site2 = net.add("T");
    net.link(&ops, "up0", "10.78.0.1", &site, "wan0", "10.78.0.2");
    // A second site, n2's, reaches the hub through the operators' side.
    net.link(&ops, "up1", "10.78.1.1", &site2, "wan0", "10.78.1.2");
    inside(
        &site2,
        "ip",
        &["route", "add", "default", "via", "10.78.1.1"],
    );
    net.link(&site, "lan0", "192.168.50.1", &cam, "eth0", "192.168.50.20");
    // The node's own service, on its loopback; a camera on its LAN.
    web(&site, "127.0.0.1:8080", "hello from n1");
    web(&cam, "192.168.50.20:8554", "camera one");
    web(&site2, "127.0.0.1:8080", "hello from n2");
    // Neither is reachable from the operators' namespace, where the
    // tunnels listen and the requests run.
    for at in [
        "10.78.0.2:8080",
        "10.78.1.2:8080",
        "127.0.0.1:8080",
        "192.168.50.20:8554",
    ] {
        let at: SocketAddr = at.parse().expect("an address");
        let reached = in_ns(&ops, move || {
            TcpStream::connect_timeout(&at, Duration::from_secs(2)).is_ok()
        });
        assert!(!reached, "{at} is reachable without a tunnel");
    }

    let hub = dir("hub");
    ok(&ops, &hub, &["init", "--name", "hub", "--fleet", "tunnels"]);
    ok(&ops, &hub, &["site", "add", "S1", "--name", "one"]);
    ok(&ops, &hub, &["node", "add", "n1", "--site", "S1"]);
    ok(&ops, &hub, &["site", "add", "S2", "--name", "two"]);
    ok(&ops, &hub, &["node", "add", "n2", "--site", "S2"]);
    // Heartbeats every second: the node's tunnel records reach the hub soon.
    ok(&ops, &hub, &["config", "set", "heartbeat.interval_s", "1"]);
    // Plain WireGuard for standard clients, on UDP 51820 (read when the
    // node's daemon starts: set before the device joins).
    for n in ["n1", "n2"] {
        ok(
            &ops,
            &hub,
            &["config", "set", "tunnel.wg_port", "51820", "--node", n],
        );
    }
    let hub_proc = Proc::spawn(
        &ops,
        &hub,
        &["serve", "--listen", "10.78.0.1:7447", "--no-mdns"],
        log("hub"),
        Stdio::null(),
        None,
    );
    let token = |role: &str| {
        let mut t = None;
        within(Duration::from_secs(20), || {
            let out = fleetdeck(&ops, &hub, &["--json", "invite", "--role", role]);
            t = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["token"].as_str().map(str::to_string));
            t.is_some()
        });
        t.unwrap_or_else(|| panic!("an invite: {}", hub_proc.log()))
    };
    let (dev_t, dev2_t, op_t, viewer_t) = (
        token("node"),
        token("node"),
        token("operator"),
        token("viewer"),
    );
    let node = dir("node");
    ok(
        &site,
        &node,
        &["join", &dev_t, "--name", "dev1", "--listen", "10.78.0.2:0"],
    );
    let node2 = dir("node2");
    ok(
        &site2,
        &node2,
        &["join", &dev2_t, "--name", "dev2", "--listen", "10.78.1.2:0"],
    );
    let laptop = dir("laptop");
    ok(
        &ops,
        &laptop,
        &["join", &op_t, "--name", "laptop", "--listen", "10.78.0.1:0"],
    );
    let viewer = dir("viewer");
    ok(
        &ops,
        &viewer,
        &[
            "join",
            &viewer_t,
            "--name",
            "viewer",
            "--listen",
            "10.78.0.1:0",
        ],
    );
    let node_proc = Proc::spawn(
        &site,
        &node,
        &[
            "node",
            "run",
            "--node",
            "n1",
            "--listen",
            "10.78.0.2:7448",
            "--no-mdns",
        ],
        log("node"),
        Stdio::null(),
        None,
    );
    let node2_proc = Proc::spawn(
        &site2,
        &node2,
        &[
            "node",
            "run",
            "--node",
            "n2",
            "--listen",
            "10.78.1.2:7448",
            "--no-mdns",
        ],
        log("node2"),
        Stdio::null(),
        None,
    );
    ok(
        &ops,
        &hub,
        &[
            "config",
            "set",
            "tunnel.allow",
            r#"["127.0.0.1:8080"]"#,
            "--node",
            "n2",
        ],
    );
    ok(
        &ops,
        &hub,
        &[
            "config",
            "set",
            "tunnel.allow",
            r#"["127.0.0.1:8080", "192.168.50.20:8554"]"#,
            "--node",
            "n1",
        ],
    );
    // The node holds its allowlist and the hub's WireGuard key.
    let node_has = |what: &str| {
        let out = fleetdeck(
            &site,
            &node,
            &["--json", "config", "get", "tunnel.allow", "--node", "n1"],
        );
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(what)
    };
    assert!(
        within(Duration::from_secs(30), || node_has("192.168.50.20:8554")),
        "the allowlist reaches the node: {}",
        node_proc.log()
    );

    // The admin: the node's page, 100 MB intact, the camera's page.
    let (t1, at) = tunnel(&ops, &hub, &["n1", "8080"], log("tunnel-1"));
    assert_eq!(
        get(&ops, at, "/").unwrap_or_else(|e| panic!("{e}: {}", node_proc.log())),
        b"hello from n1"
    );
    let mut want = Sha256::new();
    let mut i = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while i < BIG {
        let k = (BIG - i).min(buf.len() as u64) as usize;
        for (j, b) in buf[..k].iter_mut().enumerate() {
            *b = pattern(i + j as u64);
        }
        want.update(&buf[..k]);
        i += k as u64;
    }
    let want = want.finalize();
    let started = Instant::now();
    let body = get(&ops, at, "/big").expect("100 MB through the tunnel");
    let took = started.elapsed();
    assert_eq!(body.len() as u64, BIG);
    assert_eq!(Sha256::digest(&body), want, "the 100 MB arrive intact");
    println!(
        "100 MB through the tunnel in {:.1} s ({:.0} Mbit/s, debug build)",
        took.as_secs_f64(),
        BIG as f64 * 8.0 / took.as_secs_f64() / 1e6
    );
    // The path goes away for 3 s in the middle of a download (the site's
    // uplink down): WireGuard's session and TCP's retransmits carry it
    // through, intact.
    let ops2 = ops.clone();
    let during = std::thread::spawn(move || get(&ops2, at, "/big"));
    std::thread::sleep(Duration::from_millis(1500));
    inside(&site, "ip", &["link", "set", "wan0", "down"]);
    std::thread::sleep(Duration::from_secs(3));
    inside(&site, "ip", &["link", "set", "wan0", "up"]);
    let body = during
        .join()
        .expect("the download's thread")
        .expect("the download survives a 3 s outage");
    assert_eq!(body.len() as u64, BIG);
    assert_eq!(Sha256::digest(&body), want, "intact after the outage");
    let (t2, cam_at) = tunnel(
        &ops,
        &hub,
        &["n1", "--to", "192.168.50.20:8554"],
        log("tunnel-2"),
    );
    assert_eq!(
        get(&ops, cam_at, "/").expect("the camera's page"),
        b"camera one"
    );
    // Closed as an operator closes them (Ctrl-C): the node hears it at once.
    t1.stop();
    t2.stop();
    let node_log = node_proc.log();
    assert!(
        node_log.contains("tunnel connection closed") && node_log.contains("peer=hub"),
        "the node logs who reached what: {node_log}"
    );
    // And reports it: the node's events, as the hub holds them.
    let events = || {
        String::from_utf8_lossy(
            &fleetdeck(&ops, &hub, &["events", "--node", "n1", "--kind", "tunnel"]).stdout,
        )
        .into_owned()
    };
    assert!(
        within(Duration::from_secs(30), || events()
            .contains("tunnel by hub to 192.168.50.20:8554")
            && events().contains("tunnel by hub to 127.0.0.1:8080")),
        "the node's events show its tunnels: {}",
        events()
    );

    // A standard WireGuard client (wireguard-go, `wg`) configured from
    // `fleetdeck wg-config` (no --node: every node that takes plain
    // WireGuard) reaches n1's targets and n2's service through one
    // interface; revoked, nothing.
    if has_wireguard_go() {
        // The hub holds both nodes' WireGuard keys (their daemons publish
        // them when they start).
        let hub_has_keys = || {
            json(&ops, &hub, &["member", "list"])
                .as_array()
                .is_some_and(|ms| {
                    ["dev1", "dev2"]
                        .iter()
                        .all(|d| ms.iter().any(|m| m["name"] == *d && m["wg"].is_string()))
                })
        };
        assert!(
            within(Duration::from_secs(30), hub_has_keys),
            "both nodes' WireGuard keys reach the hub: {}",
            node2_proc.log()
        );
        let cfg = json(&ops, &hub, &["wg-config", "--name", "phone"]);
        let text = cfg["config"].as_str().expect("a configuration").to_string();
        assert!(text.contains("Endpoint = 10.78.0.2:51820"), "{text}");
        assert!(text.contains("Endpoint = 10.78.1.2:51820"), "{text}");
        let overlay = |node: &str| {
            cfg["peers"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["node"] == node))
                .and_then(|p| p["address"].as_str())
                .unwrap_or_else(|| panic!("{node} is a peer: {cfg}"))
                .to_string()
        };
        let (n1_at, n2_at) = (overlay("n1"), overlay("n2"));
        assert_ne!(n1_at, n2_at, "each node has its own overlay address");
        // The hub's member list shows the addresses the configuration uses.
        let listed = json(&ops, &hub, &["member", "list"]);
        assert!(
            listed.as_array().is_some_and(|ms| ms
                .iter()
                .any(|m| m["name"] == "dev1" && m["overlay"] == n1_at.as_str())),
            "{listed}"
        );
        let shown = json(&ops, &hub, &["node", "show", "n2"]);
        assert_eq!(shown["overlay"], n2_at.as_str(), "{shown}");
        let knows = |ns: &str, dir: &Path, revoked: bool| {
            json(ns, dir, &["member", "list"])
                .as_array()
                .is_some_and(|ms| {
                    ms.iter()
                        .any(|m| m["name"] == "phone" && m["revoked"] == revoked)
                })
        };
        let node_knows = |revoked: bool| knows(&site, &node, revoked);
        assert!(
            within(Duration::from_secs(30), || node_knows(false)
                && knows(&site2, &node2, false)),
            "the device's member record reaches both nodes"
        );
        let _wg = WireGuardGo::start(&ops, "wgt0", &text, tmp.path());
        let via_wg = |at: &str| {
            let at: SocketAddr = at.parse().expect("an address");
            get(&ops, at, "/")
        };
        let n1_web = format!("{n1_at}:8080");
        assert_eq!(
            via_wg(&n1_web).unwrap_or_else(|e| panic!("{e}: {}", node_proc.log())),
            b"hello from n1"
        );
        assert_eq!(
            via_wg(&format!("{n2_at}:8080"))
                .unwrap_or_else(|e| panic!("{e}: {}", node2_proc.log())),
            b"hello from n2"
        );
        assert_eq!(
            via_wg("192.168.50.20:8554").expect("the camera over plain WireGuard"),
            b"camera one"
        );
        ok(&ops, &hub, &["member", "revoke", "phone"]);
        assert!(
            within(Duration::from_secs(30), || node_knows(true)),
            "the revocation reaches the node"
        );
        // The node ends the device's session within a second (its data is
        // dropped) and would answer no new handshake.
        std::thread::sleep(Duration::from_secs(2));
        assert!(via_wg(&n1_web).is_err(), "a revoked device reaches nothing");
        assert!(
            node_proc.log().lines().any(|l| l.contains("ended a tunnel")
                && l.contains("revoked")
                && l.contains("peer=phone")),
            "the node says why it ended the device's tunnel: {}",
            node_proc.log()
        );
        // A key no member record names: no answer, and a line on the node.
        let stranger = tmp.path().join("stranger.key");
        let key = Command::new("wg")
            .arg("genkey")
            .output()
            .expect("wg genkey");
        std::fs::write(&stranger, &key.stdout).expect("write the key");
        inside(
            &ops,
            "wg",
            &["set", "wgt0", "private-key", &stranger.to_string_lossy()],
        );
        assert!(via_wg(&n1_web).is_err(), "a stranger reaches nothing");
        assert!(
            within(Duration::from_secs(10), || node_proc
                .log()
                .contains("refused a WireGuard client: WireGuard key")),
            "the node logs the stranger: {}",
            node_proc.log()
        );
    } else {
        println!(
            "the wireguard-go part skipped: wireguard-go or wg is not installed, or there is no /dev/net/tun"
        );
    }

    // A viewer is refused before anything is dialed.
    let out = fleetdeck(&ops, &viewer, &["tunnel", "n1", "8080"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("viewer"), "{err}");
    // A port the node does not allow.
    let out = fleetdeck(&ops, &hub, &["tunnel", "n1", "22"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not in node n1's tunnel.allow"),
        "{err}"
    );

    // An operator's tunnel opens (its first: it publishes its WireGuard
    // key to the node first); once revoked, the node refuses it and says why.
    // The laptop joined before the node's daemon bound itself: it syncs
    // first to know where n1 runs.
    let out = fleetdeck(&ops, &laptop, &["tunnel", "n1", "8080"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("sync first"), "{err}");
    ok(&ops, &laptop, &["sync", "--once"]);
    let (t3, op_at) = tunnel(&ops, &laptop, &["n1", "8080"], log("tunnel-3"));
    assert_eq!(
        get(&ops, op_at, "/").expect("the operator's tunnel"),
        b"hello from n1"
    );
    drop(t3);
    ok(&ops, &hub, &["member", "revoke", "laptop"]);
    let revoked_at_node = || {
        json(&site, &node, &["member", "list"])
            .as_array()
            .is_some_and(|ms| {
                ms.iter()
                    .any(|m| m["name"] == "laptop" && m["revoked"] == true)
            })
    };
    assert!(
        within(Duration::from_secs(30), revoked_at_node),
        "the revocation reaches the node"
    );
    let out = fleetdeck(&ops, &laptop, &["tunnel", "n1", "8080"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refused the tunnel") && err.contains("revoked"),
        "{err}"
    );
    drop(node_proc);
    drop(hub_proc);
}

//! Coming back after a crash, with real processes on 127.0.0.1: a hub
//! (`serve`), an operator's laptop (`serve`) and a device (`node run`).
//! A node daemon or a hub killed with `kill -9` and started again is back
//! in sync within seconds (not after the 60 s idle timeout of the sessions
//! its peers still hold), and its node-down alert clears as soon; SIGTERM
//! (what systemd sends) and Ctrl-C close sessions with a word to the peers,
//! who see the replica leave at once, and the process exits cleanly.
//!
//! Each test prints what it measured.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The target for a restarted replica to be back in sync is under 5 s; the
/// bound leaves room for a loaded 2-core machine, and is still far below
/// the 60 s the dead sessions used to last.
const BACK_WITHIN: Duration = Duration::from_secs(10);
/// How soon a peer must see a replica stopped by SIGTERM or Ctrl-C leave
/// (`peers` reads a status file written every second).
const GONE_WITHIN: Duration = Duration::from_secs(5);

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

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let text = ok(dir, &a);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits (bounded) until `f` holds; how long that took, or `None`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// One long-running `fleetdeck` process, its stderr in a file; killed
/// however the test ends.
struct Proc {
    child: Child,
    log: PathBuf,
}

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
        Proc { child, log }
    }

    /// `kill -9`: no goodbye to anyone, no status file removed.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, sig: &str) {
        let done = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(done.success(), "kill {sig}");
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hub, an operator's laptop and a device running node n1 (site S1,
/// heartbeats every second: down after 3 s of silence), all syncing.
struct Fleet {
    tmp: tempfile::TempDir,
    hub: PathBuf,
    laptop: PathBuf,
    node: PathBuf,
    hub_port: u16,
    node_port: u16,
    hub_proc: Option<Proc>,
    laptop_proc: Option<Proc>,
    node_proc: Option<Proc>,
    starts: u32,
}

impl Fleet {
    fn start() -> Fleet {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let (hub, laptop, node) = (
            tmp.path().join("hub"),
            tmp.path().join("laptop"),
            tmp.path().join("node"),
        );
        ok(&hub, &["init", "--name", "hub", "--fleet", "restart"]);
        ok(&hub, &["site", "add", "S1", "--name", "one"]);
        ok(&hub, &["node", "add", "n1", "--site", "S1"]);
        ok(&hub, &["config", "set", "heartbeat.interval_s", "1"]);
        let mut f = Fleet {
            tmp,
            hub,
            laptop,
            node,
            hub_port: free_port(),
            node_port: free_port(),
            hub_proc: None,
            laptop_proc: None,
            node_proc: None,
            starts: 0,
        };
        f.start_hub();
        let invited = eventually(Duration::from_secs(20), || {
            run(&f.hub, &["invite"]).status.success()
        });
        assert!(invited.is_some(), "the hub publishes its address");
        let token = |role: &str| {
            json(&f.hub, &["invite", "--role", role])["token"]
                .as_str()
                .expect("a token")
                .to_string()
        };
        let (op, dev) = (token("operator"), token("node"));
        let join = |dir: &Path, token: &str, name: &str| {
            json(
                dir,
                &["join", token, "--name", name, "--listen", "127.0.0.1:0"],
            )
        };
        join(&f.laptop, &op, "laptop");
        join(&f.node, &dev, "dev1");
        let laptop_port = free_port().to_string();
        f.laptop_proc = Some(f.spawn(
            &f.laptop.clone(),
            &[
                "serve",
                "--listen",
                &format!("127.0.0.1:{laptop_port}"),
                "--no-mdns",
            ],
            "laptop",
        ));
        f.start_node();
        let up = eventually(Duration::from_secs(30), || {
            f.connected(&f.hub, "laptop")
                && f.connected(&f.hub, "dev1")
                && f.reported_at_hub()
                && !f.down_at_hub()
        });
        assert!(up.is_some(), "the fleet comes up: {}", f.peers(&f.hub));
        f
    }

    fn spawn(&mut self, dir: &Path, args: &[&str], name: &str) -> Proc {
        self.starts += 1;
        let log = self.tmp.path().join(format!("{name}-{}.log", self.starts));
        Proc::spawn(dir, args, log)
    }

    fn start_hub(&mut self) {
        let listen = format!("127.0.0.1:{}", self.hub_port);
        let hub = self.hub.clone();
        self.hub_proc = Some(self.spawn(&hub, &["serve", "--listen", &listen, "--no-mdns"], "hub"));
    }

    fn start_node(&mut self) {
        let listen = format!("127.0.0.1:{}", self.node_port);
        let node = self.node.clone();
        self.node_proc = Some(self.spawn(
            &node,
            &[
                "node",
                "run",
                "--node",
                "n1",
                "--listen",
                &listen,
                "--no-mdns",
            ],
            "node",
        ));
    }

    fn peers(&self, dir: &Path) -> Value {
        json(dir, &["peers"])
    }

    /// Whether `dir`'s serving process has a session with `name`.
    fn connected(&self, dir: &Path, name: &str) -> bool {
        self.connected_since(dir, name, 0)
    }

    /// [`Fleet::connected`], as a status written at `since_ms` or later
    /// says (not one a killed process left behind).
    fn connected_since(&self, dir: &Path, name: &str, since_ms: i64) -> bool {
        let p = self.peers(dir);
        p["status_written_ms"]
            .as_i64()
            .is_some_and(|t| t >= since_ms)
            && p["peers"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == name && p["connected"] == true)
            })
    }

    fn reported_at_hub(&self) -> bool {
        !json(&self.hub, &["node", "show", "n1"])["health"].is_null()
    }

    /// Node n1 is down as the hub sees it (the site-offline alert would
    /// stand for it, after 300 s).
    fn down_at_hub(&self) -> bool {
        json(&self.hub, &["alerts"]).as_array().is_some_and(|a| {
            a.iter().any(|a| {
                a["id"]
                    .as_str()
                    .is_some_and(|id| id == "node-down:n1" || id == "site-offline:S1")
            })
        })
    }

    /// What node n1 runs: its live release's config.
    fn live(&self) -> Value {
        std::fs::read(self.node.join("root/current/config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// Sets `restart.probe` on the laptop: an edit made elsewhere.
    fn edit_on_laptop(&self, v: u32) {
        ok(
            &self.laptop,
            &["config", "set", "restart.probe", &v.to_string()],
        );
    }

    fn applied(&self, v: u32) -> bool {
        self.live()["restart"]["probe"] == v
    }

    fn at_hub(&self, v: u32) -> bool {
        json(&self.hub, &["config", "effective", "--node", "n1"])["restart"]["probe"] == v
    }
}

/// Watches the named conditions side by side from `start` (bounded by
/// `limit`): when each first held, in ms since `start`.
fn watch(
    start: Instant,
    limit: Duration,
    conds: &mut [(&'static str, &mut dyn FnMut() -> bool)],
) -> Vec<(&'static str, Option<u128>)> {
    let mut when: Vec<Option<u128>> = vec![None; conds.len()];
    while start.elapsed() < limit && when.iter().any(Option::is_none) {
        for (i, (_, cond)) in conds.iter_mut().enumerate() {
            if when[i].is_none() && cond() {
                when[i] = Some(start.elapsed().as_millis());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    conds.iter().map(|(n, _)| *n).zip(when).collect()
}

/// Prints what was measured and checks each against [`BACK_WITHIN`].
fn report(what: &str, times: &[(&str, Option<u128>)]) {
    let shown: Vec<String> = times
        .iter()
        .map(|(n, ms)| match ms {
            Some(ms) => format!("{n} after {ms} ms"),
            None => format!("{n}: not within the wait"),
        })
        .collect();
    println!("{what}: {}", shown.join(", "));
    for (n, ms) in times {
        assert!(
            ms.is_some_and(|ms| ms < BACK_WITHIN.as_millis()),
            "{what}: {n} after {ms:?} ms"
        );
    }
}

#[test]
fn a_node_daemon_killed_and_started_again_is_back_within_seconds() {
    let mut f = Fleet::start();
    f.edit_on_laptop(1);
    assert!(
        eventually(Duration::from_secs(20), || f.applied(1)).is_some(),
        "the node applies edits before the crash"
    );

    f.node_proc.as_mut().expect("the node runs").kill9();
    let down = eventually(Duration::from_secs(20), || f.down_at_hub());
    assert!(down.is_some(), "the hub sees the node down");
    // The hub still holds the dead session: nothing told it.
    assert!(f.connected(&f.hub, "dev1"), "{}", f.peers(&f.hub));

    let (started, since) = (Instant::now(), now_ms());
    f.start_node();
    f.edit_on_laptop(2);
    let times = watch(
        started,
        Duration::from_secs(60),
        &mut [
            ("the laptop's edit applied on the node", &mut || {
                f.applied(2)
            }),
            ("node-down cleared at the hub", &mut || !f.down_at_hub()),
            ("the hub connected to the node", &mut || {
                f.connected_since(&f.node, "hub", since)
            }),
        ],
    );
    report("node daemon killed -9 and started again", &times);
}

#[test]
fn a_hub_killed_and_started_again_is_back_within_seconds() {
    let mut f = Fleet::start();
    f.hub_proc.as_mut().expect("the hub runs").kill9();
    // Long enough for the hub's last heartbeat of the node to be past the
    // node-down threshold (3 s) when it starts again.
    std::thread::sleep(Duration::from_secs(4));

    let (started, since) = (Instant::now(), now_ms());
    f.start_hub();
    f.edit_on_laptop(3);
    let times = watch(
        started,
        Duration::from_secs(60),
        &mut [
            ("the laptop's edit at the hub", &mut || f.at_hub(3)),
            ("applied on the node", &mut || f.applied(3)),
            ("node-down cleared at the hub", &mut || {
                f.reported_at_hub() && !f.down_at_hub()
            }),
            // Not through the laptop: the node still held its dead session
            // with the hub, and only the hub's dial (its last run's peers)
            // replaces it before the idle timeout.
            ("the node connected to the hub", &mut || {
                f.connected_since(&f.hub, "dev1", since)
            }),
        ],
    );
    report("hub killed -9 and started again", &times);
}

/// Signals `p` to stop and watches, side by side, for it to exit and for
/// `left` (its peer's view) to hold: how long each took (ms), and how it
/// exited.
fn stop(
    p: &mut Proc,
    sig: &str,
    limit: Duration,
    mut left: impl FnMut() -> bool,
) -> (Option<ExitStatus>, Option<u128>, Option<u128>) {
    let stopped = Instant::now();
    p.signal(sig);
    let (mut status, mut exit_ms, mut gone_ms) = (None, None, None);
    while stopped.elapsed() < limit && (exit_ms.is_none() || gone_ms.is_none()) {
        if exit_ms.is_none()
            && let Ok(Some(s)) = p.child.try_wait()
        {
            status = Some(s);
            exit_ms = Some(stopped.elapsed().as_millis());
        }
        if gone_ms.is_none() && left() {
            gone_ms = Some(stopped.elapsed().as_millis());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (status, exit_ms, gone_ms)
}

#[test]
fn sigterm_and_ctrl_c_close_sessions_so_peers_see_the_replica_leave_at_once() {
    let mut f = Fleet::start();
    let clean = |p: &Proc, status: Option<ExitStatus>, exit_ms: Option<u128>| {
        let err = p.stderr();
        assert!(status.is_some_and(|s| s.success()), "{status:?}: {err}");
        // The close is bounded at 2 s (a dial under way to a peer that is
        // gone waits about 3 s for an answer that never comes).
        assert!(
            exit_ms.is_some_and(|ms| ms < 5_000),
            "exit took {exit_ms:?} ms"
        );
        assert!(
            !err.contains("dropped without calling"),
            "the endpoint was closed, not dropped: {err}"
        );
    };
    let gone_within = GONE_WITHIN.as_millis();

    // SIGTERM on the laptop's serve (what systemd sends).
    let mut laptop = f.laptop_proc.take().expect("the laptop runs");
    let (status, exit_ms, gone) = stop(&mut laptop, "-TERM", Duration::from_secs(30), || {
        !f.connected(&f.hub, "laptop")
    });
    println!("serve, SIGTERM: exited after {exit_ms:?} ms, the hub saw it leave after {gone:?} ms");
    clean(&laptop, status, exit_ms);
    assert!(
        gone.is_some_and(|ms| ms < gone_within),
        "the hub saw the laptop leave after {gone:?} ms"
    );

    // SIGTERM on the node daemon (its dial loop is dialing the laptop,
    // which is gone).
    let mut node = f.node_proc.take().expect("the node runs");
    let (status, exit_ms, gone) = stop(&mut node, "-TERM", Duration::from_secs(30), || {
        !f.connected(&f.hub, "dev1")
    });
    println!(
        "node run, SIGTERM: exited after {exit_ms:?} ms, the hub saw it leave after {gone:?} ms"
    );
    clean(&node, status, exit_ms);
    assert!(
        gone.is_some_and(|ms| ms < gone_within),
        "the hub saw the node leave after {gone:?} ms"
    );

    // Ctrl-C (SIGINT) on the hub, whose peers are all gone now.
    let mut hub = f.hub_proc.take().expect("the hub runs");
    let (status, exit_ms, _) = stop(&mut hub, "-INT", Duration::from_secs(10), || true);
    println!("serve, Ctrl-C: exited after {exit_ms:?} ms");
    clean(&hub, status, exit_ms);
}

//! The MQTT bridge against a real mosquitto (the Debian package), started
//! by each test on a free loopback port with its own config and
//! persistence in a temp dir; a rumqttc subscriber reads what arrives.
//! Without mosquitto the tests say they skipped (and fail under `CI`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck_node::mqtt::{self, MqttConfig};
use fleetdeck_node::view::{FleetView, NodeView, SiteView};
use fleetdeck_store::alerts::{Alert, AlertKind, FleetSummary, Severity, SiteState};
use fleetdeck_store::health::{ApplyReport, ApplyResult, DiskUsage};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- broker

/// mosquitto's binary, or `None` (and a line saying the test skipped);
/// under `CI` a missing mosquitto fails the test.
fn mosquitto_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = on_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto is not installed (apt-get install mosquitto); CI installs it"
        );
        println!("skipped: mosquitto is not installed");
    }
    found
}

/// A mosquitto on 127.0.0.1 with its config, log and persistence in `dir`.
struct Broker {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start(bin: &Path, dir: &Path, extra: &str) -> Broker {
        let port = free_port();
        let mut b = Broker {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nuser root\n{extra}",
                dir.display()
            ),
        )
        .expect("write mosquitto.conf");
        b.restart();
        b
    }

    /// Starts it (again, on the same port) and waits until it listens.
    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("mosquitto.log"))
            .expect("log file");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {} (see {}/mosquitto.log)",
                self.port,
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it the way a service manager does (SIGTERM: it saves its
    /// retained messages) and waits for it to exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM mosquitto");
        let deadline = Instant::now() + WAIT;
        while child.try_wait().expect("wait mosquitto").is_none() {
            assert!(Instant::now() < deadline, "mosquitto did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ------------------------------------------------------------ subscriber

#[derive(Clone, Debug)]
struct Msg {
    topic: String,
    payload: String,
    retained: bool,
}

impl Msg {
    fn json(&self) -> Value {
        serde_json::from_str(&self.payload).unwrap_or(Value::Null)
    }
}

/// A subscriber to `filters` (in that order) on the broker at `port`.
struct Subscriber {
    rx: mpsc::UnboundedReceiver<Msg>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn new(port: u16, filters: &[&str]) -> Subscriber {
        let id = format!("test-sub-{}", free_port());
        let (client, mut events) = AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            let _ = client.subscribe(f.clone(), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Msg {
                            topic: p.topic.clone(),
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            retained: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Subscriber { rx, task }
    }

    /// The first message (from now) that `want` accepts; fails after WAIT
    /// naming `what` and the messages seen meanwhile.
    async fn until(&mut self, what: &str, want: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) if want(&m) => return m,
                Ok(Some(m)) => seen.push(format!("{} {}", m.topic, m.payload)),
                _ => panic!("no {what} within {WAIT:?}; saw:\n{}", seen.join("\n")),
            }
        }
    }

    /// Every message until (and with) the first `want` accepts.
    async fn collect_until(&mut self, what: &str, want: impl Fn(&Msg) -> bool) -> Vec<Msg> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => {
                    let done = want(&m);
                    seen.push(m);
                    if done {
                        return seen;
                    }
                }
                _ => panic!("no {what} within {WAIT:?}; saw {seen:?}"),
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------- fleet

fn node(id: &str, site: &str, heard_ms: i64, cpu: f64) -> NodeView {
    NodeView {
        id: id.into(),
        site: site.into(),
        zone: Some("north".into()),
        role: Some("camera".into()),
        up: true,
        last_heard_ms: Some(heard_ms),
        cpu_pct: Some(cpu),
        mem_pct: Some(40.0),
        load1: Some(0.5),
        uptime_s: Some(3600),
        temp_c: None,
        disks: vec![
            DiskUsage {
                mount: "/".into(),
                used_pct: 30.0,
            },
            DiskUsage {
                mount: "/data".into(),
                used_pct: 71.5,
            },
        ],
        desired_revision: Some("rev-2".into()),
        applied: None,
        in_sync: false,
        checks_failing: 0,
        drift: 0,
        safe_mode: None,
    }
}

fn disk_alert(node: &str, since_ms: i64) -> Alert {
    Alert {
        id: format!("disk:{node}:/data"),
        kind: AlertKind::Disk,
        severity: Severity::Medium,
        site: "BL-LAB-2".into(),
        node: Some(node.into()),
        since_ms: Some(since_ms),
        message: "/data is 93% full".into(),
        acked_by: None,
        silenced_until_ms: None,
    }
}

fn fleet(at_ms: i64, nodes: Vec<NodeView>, alerts: Vec<Alert>) -> Arc<FleetView> {
    Arc::new(FleetView {
        fleet_id: "f-1".into(),
        fleet_name: "blocao".into(),
        at_ms,
        sites: vec![SiteView {
            id: "BL-LAB-2".into(),
            name: "Lab 2".into(),
            zone: Some("north".into()),
            state: SiteState::Green,
        }],
        nodes,
        alerts,
        summary: FleetSummary::default(),
    })
}

/// A bridge to `broker` publishing what `tx` sends, reconnecting fast.
fn bridge(
    url: &str,
    first: Arc<FleetView>,
    tune: impl FnOnce(&mut MqttConfig),
) -> (watch::Sender<Arc<FleetView>>, tokio::task::JoinHandle<()>) {
    let mut cfg = MqttConfig::new(url, format!("test-bridge-{}", free_port())).expect("config");
    cfg.backoff_min = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_millis(500);
    tune(&mut cfg);
    let (tx, rx) = watch::channel(first);
    let task = tokio::spawn(mqtt::run(cfg, rx));
    (tx, task)
}

const STATE: &str = "fleetdeck/BL-LAB-2/cam-1/state";
const ALERT: &str = "fleetdeck/alerts/disk:cam-1:%2Fdata";
const STATUS: &str = "fleetdeck/bridge/status";
const EVENTS: &str = "fleetdeck/events";

fn is(topic: &'static str) -> impl Fn(&Msg) -> bool {
    move |m| m.topic == topic
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_nodes_heartbeat_appears_on_its_state_topic_and_stays_retained() {
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&bin, dir.path(), "");
    let mut sub = Subscriber::new(broker.port, &["fleetdeck/#"]).await;
    let (tx, task) = bridge(
        &broker.url(),
        fleet(1_000, vec![node("cam-1", "BL-LAB-2", 900, 12.0)], vec![]),
        |_| {},
    );
    let online = sub
        .until("bridge online", |m| {
            m.topic == STATUS && m.payload == "online"
        })
        .await;
    assert_eq!(online.payload, "online");
    let first = sub.until("cam-1's state", is(STATE)).await;
    assert_eq!(first.json()["last_heard_ms"], 900);

    tx.send_replace(fleet(
        2_000,
        vec![node("cam-1", "BL-LAB-2", 1_900, 55.5)],
        vec![],
    ));
    let beat = sub
        .until("cam-1's next heartbeat", |m| {
            m.topic == STATE && m.json()["last_heard_ms"] == 1_900
        })
        .await;
    let s = beat.json();
    assert_eq!(s["up"], true);
    assert_eq!(s["cpu_pct"], 55.5);
    assert_eq!(s["disk_max_pct"], 71.5);
    assert_eq!(s["desired_revision"], "rev-2");
    assert_eq!(s["in_sync"], false);
    assert!(
        s["last_heard"]
            .as_str()
            .is_some_and(|t| t.starts_with("1970-01-01T00:00:01")),
        "{s}"
    );

    // A late subscriber gets it at once, retained.
    let mut late = Subscriber::new(broker.port, &[STATE]).await;
    let kept = late.until("the retained state", is(STATE)).await;
    assert!(kept.retained, "state is retained");
    assert_eq!(kept.json()["last_heard_ms"], 1_900);

    // Stopping the bridge says so, retained.
    drop(tx);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("bridge stops")
        .expect("join");
    sub.until("bridge offline", |m| {
        m.topic == STATUS && m.payload == "offline"
    })
    .await;
}

#[tokio::test]
async fn an_unchanged_node_is_not_published_again() {
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&bin, dir.path(), "");
    let mut sub = Subscriber::new(broker.port, &["fleetdeck/BL-LAB-2/#"]).await;
    let cam1 = node("cam-1", "BL-LAB-2", 900, 12.0);
    let (tx, _task) = bridge(
        &broker.url(),
        fleet(
            1_000,
            vec![cam1.clone(), node("cam-2", "BL-LAB-2", 900, 1.0)],
            vec![],
        ),
        |_| {},
    );
    sub.until("cam-1's state", is(STATE)).await;
    sub.until("cam-2's state", is("fleetdeck/BL-LAB-2/cam-2/state"))
        .await;
    // A fresh view where only the clock moved, then one where cam-2 reported.
    tx.send_replace(fleet(
        6_000,
        vec![cam1.clone(), node("cam-2", "BL-LAB-2", 900, 1.0)],
        vec![],
    ));
    tokio::task::yield_now().await;
    tx.send_replace(fleet(
        7_000,
        vec![cam1, node("cam-2", "BL-LAB-2", 6_900, 2.0)],
        vec![],
    ));
    let seen = sub
        .collect_until("cam-2's new state", |m| {
            m.topic.ends_with("cam-2/state") && m.json()["last_heard_ms"] == 6_900
        })
        .await;
    assert!(
        seen.iter().all(|m| m.topic != STATE),
        "cam-1 did not change and was published again: {seen:?}"
    );
}

#[tokio::test]
async fn an_alert_firing_and_resolving_publishes_both_and_clears_its_retained_topic() {
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&bin, dir.path(), "");
    let mut sub = Subscriber::new(broker.port, &["fleetdeck/#"]).await;
    let cam1 = node("cam-1", "BL-LAB-2", 900, 12.0);
    let (tx, _task) = bridge(
        &broker.url(),
        fleet(1_000, vec![cam1.clone()], vec![]),
        |_| {},
    );
    sub.until("cam-1's state", is(STATE)).await;

    tx.send_replace(fleet(
        2_000,
        vec![cam1.clone()],
        vec![disk_alert("cam-1", 1_500)],
    ));
    let fired = sub.until("the fired event", is(EVENTS)).await;
    let e = fired.json();
    assert_eq!(e["event"], "fired");
    assert_eq!(e["id"], "disk:cam-1:/data");
    assert_eq!(e["severity"], "medium");
    assert_eq!(e["node"], "cam-1");
    assert!(!fired.retained, "events are not retained");
    let open = sub.until("the alert's retained topic", is(ALERT)).await;
    assert_eq!(open.json()["message"], "/data is 93% full");

    tx.send_replace(fleet(3_000, vec![cam1.clone()], vec![]));
    let resolved = sub.until("the resolved event", is(EVENTS)).await;
    assert_eq!(resolved.json()["event"], "resolved");
    assert_eq!(resolved.json()["id"], "disk:cam-1:/data");
    let cleared = sub.until("the alert's topic emptied", is(ALERT)).await;
    assert_eq!(cleared.payload, "", "a resolved alert's topic is emptied");

    // Nothing is left retained for it: a new subscriber to the alerts,
    // then to the status, gets the status and no alert before it.
    let mut late = Subscriber::new(broker.port, &["fleetdeck/alerts/#", STATUS]).await;
    let seen = late.collect_until("the retained status", is(STATUS)).await;
    assert_eq!(seen.len(), 1, "only the status is retained: {seen:?}");

    // An apply outcome: an event, and retained on the node's apply topic.
    let mut applied = cam1;
    applied.applied = Some(ApplyReport {
        revision: "rev-2".into(),
        result: ApplyResult::RolledBack,
        error: Some("health check failed: frigate".into()),
        duration_ms: 4_200,
        at_ms: 3_500,
        from: Vec::new(),
    });
    tx.send_replace(fleet(4_000, vec![applied], vec![]));
    let ev = sub.until("the apply event", is(EVENTS)).await;
    assert_eq!(ev.json()["event"], "apply");
    assert_eq!(ev.json()["result"], "rolled_back");
    let kept = sub
        .until("the apply topic", is("fleetdeck/BL-LAB-2/cam-1/apply"))
        .await;
    assert_eq!(kept.json()["error"], "health check failed: frigate");
}

#[tokio::test]
async fn a_broker_restart_loses_nothing_retained_and_the_bridge_publishes_again() {
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start(&bin, dir.path(), "");
    let (tx, _task) = bridge(
        &broker.url(),
        fleet(
            1_000,
            vec![node("cam-1", "BL-LAB-2", 900, 12.0)],
            vec![disk_alert("cam-1", 500)],
        ),
        |_| {},
    );
    {
        let mut sub = Subscriber::new(broker.port, &["fleetdeck/#"]).await;
        sub.until("cam-1's state", is(STATE)).await;
        sub.until("the open alert", is(ALERT)).await;
    }

    // A restart (the broker keeps its retained messages on disk), with a
    // heartbeat and the alert resolved while it was away: once the bridge
    // is back the new state is there and the alert is not left behind.
    broker.stop();
    tx.send_replace(fleet(
        2_000,
        vec![node("cam-1", "BL-LAB-2", 1_900, 20.0)],
        vec![],
    ));
    broker.restart();
    let mut sub = Subscriber::new(broker.port, &["fleetdeck/#"]).await;
    sub.until("the heartbeat sent while the broker was away", |m| {
        m.topic == STATE && m.json()["last_heard_ms"] == 1_900
    })
    .await;
    // The bridge empties a topic before it publishes state, on one
    // connection: by now the broker has taken the emptying too.
    let mut late = Subscriber::new(broker.port, &["fleetdeck/alerts/#", STATUS]).await;
    let seen = late.collect_until("the retained status", is(STATUS)).await;
    assert_eq!(
        seen.len(),
        1,
        "an alert resolved while the broker was away is still retained: {seen:?}"
    );
    assert_eq!(seen[0].payload, "online");

    // A broker that lost everything (its database gone): the bridge
    // publishes all it holds again when it reconnects.
    broker.stop();
    std::fs::remove_file(dir.path().join("mosquitto.db")).expect("remove the broker's database");
    broker.restart();
    let mut sub = Subscriber::new(broker.port, &[STATE, STATUS]).await;
    let again = sub
        .until("the state published again", |m| {
            m.topic == STATE && m.json()["last_heard_ms"] == 1_900
        })
        .await;
    assert_eq!(again.json()["cpu_pct"], 20.0);
    let mut late = Subscriber::new(broker.port, &[STATUS]).await;
    let status = late.until("the bridge status", is(STATUS)).await;
    assert_eq!((status.payload.as_str(), status.retained), ("online", true));
}

#[tokio::test]
async fn a_bridge_started_before_its_broker_publishes_the_latest_view_once_it_is_there() {
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start(&bin, dir.path(), "");
    broker.stop();
    let (tx, _task) = bridge(
        &broker.url(),
        fleet(1_000, vec![node("cam-1", "BL-LAB-2", 900, 12.0)], vec![]),
        |_| {},
    );
    // Views keep coming while there is no broker; none of this waits.
    for i in 1..=50 {
        tx.send_replace(fleet(
            1_000 + i * 1_000,
            vec![node("cam-1", "BL-LAB-2", 900 + i * 1_000, 12.0)],
            vec![disk_alert("cam-1", i)],
        ));
    }
    broker.restart();
    let mut sub = Subscriber::new(broker.port, &["fleetdeck/#"]).await;
    let state = sub.until("cam-1's state", is(STATE)).await;
    assert_eq!(
        state.json()["last_heard_ms"],
        50_900,
        "the latest view, not a stale one"
    );
    let alert = sub.until("the open alert", is(ALERT)).await;
    assert_eq!(alert.json()["since_ms"], 50);
}

#[tokio::test]
async fn home_assistant_discovery_makes_each_node_a_device_and_removes_it_with_the_node() {
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&bin, dir.path(), "");
    let mut sub = Subscriber::new(broker.port, &["homeassistant/#"]).await;
    let (tx, _task) = bridge(
        &broker.url(),
        fleet(
            1_000,
            vec![node("cam-1.lab", "BL-LAB-2", 900, 12.0)],
            vec![],
        ),
        |c| c.homeassistant = true,
    );
    let topic = "homeassistant/binary_sensor/fleetdeck_cam-1_2elab/up/config";
    let up = sub
        .until("the up sensor's discovery", |m| m.topic == topic)
        .await;
    let c = up.json();
    assert_eq!(c["state_topic"], "fleetdeck/BL-LAB-2/cam-1.lab/state");
    assert_eq!(c["device_class"], "connectivity");
    assert_eq!(c["device"]["name"], "cam-1.lab");
    assert_eq!(c["device"]["suggested_area"], "Lab 2");
    assert_eq!(c["availability_topic"], STATUS);
    let cpu = sub
        .until("the CPU sensor's discovery", |m| {
            m.topic == "homeassistant/sensor/fleetdeck_cam-1_2elab/cpu/config"
        })
        .await;
    assert_eq!(cpu.json()["unit_of_measurement"], "%");

    tx.send_replace(fleet(2_000, vec![], vec![]));
    sub.until("the up sensor removed (its config emptied)", |m| {
        m.topic == topic && m.payload.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_bridge_over_tls_trusts_a_private_ca() {
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("server cert");
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write pem");
        p
    };
    let ca_file = write("ca.pem", ca.pem());
    let cert_file = write("server.pem", cert.pem());
    let key_file = write("server.key", key.serialize_pem());
    let tls_port = free_port();
    let broker = Broker::start(
        &bin,
        dir.path(),
        &format!(
            "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
            cert_file.display(),
            key_file.display()
        ),
    );
    let mut sub = Subscriber::new(broker.port, &["fleetdeck/#"]).await;
    let url = format!("mqtts://127.0.0.1:{tls_port}");
    let (_tx, _task) = bridge(
        &url,
        fleet(1_000, vec![node("cam-1", "BL-LAB-2", 900, 12.0)], vec![]),
        |c| c.set_ca_file(&ca_file).expect("the CA file"),
    );
    let state = sub.until("cam-1's state over TLS", is(STATE)).await;
    assert_eq!(state.json()["last_heard_ms"], 900);
}

#[tokio::test]
async fn a_node_reporting_a_huge_field_is_published_cut_and_the_bridge_stays_connected() {
    let Some(bin) = mosquitto_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&bin, dir.path(), "");
    let mut sub = Subscriber::new(broker.port, &["fleetdeck/#"]).await;
    // A safe-mode reason of 300 KB: over the bridge's 256 KiB packet limit.
    let huge = |heard_ms| {
        let mut n = node("cam-1", "BL-LAB-2", heard_ms, 12.0);
        n.safe_mode = Some("x".repeat(300_000));
        n
    };
    let (tx, _task) = bridge(&broker.url(), fleet(1_000, vec![huge(900)], vec![]), |_| {});
    let state = sub.until("cam-1's state, cut to fit", is(STATE)).await;
    let s = state.json();
    assert_eq!(s["truncated"], true, "{s}");
    assert_eq!(s["safe_mode"], Value::Null);
    assert_eq!(s["cpu_pct"], 12.0);
    assert_eq!(s["last_heard_ms"], 900);

    // The next heartbeat goes out on the same connection: no reconnect
    // (which would say `online` again).
    tx.send_replace(fleet(2_000, vec![huge(1_900)], vec![]));
    let seen = sub
        .collect_until("cam-1's next state", |m| {
            m.topic == STATE && m.json()["last_heard_ms"] == 1_900
        })
        .await;
    assert!(
        !seen.iter().any(|m| m.topic == STATUS),
        "the bridge connected again: {seen:?}"
    );
}

#[tokio::test]
async fn a_broker_dropping_every_connection_after_connack_gets_a_growing_backoff() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A broker that accepts each connection (CONNACK) and then closes it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = accepted_tx.send(tokio::time::Instant::now());
            tokio::spawn(async move {
                // CONNECT: one byte of type, the remaining length, the rest.
                let mut len = 0usize;
                let Ok(_) = conn.read_u8().await else { return };
                for shift in [0, 7, 14, 21] {
                    let Ok(b) = conn.read_u8().await else { return };
                    len |= usize::from(b & 0x7f) << shift;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                let mut connect = vec![0; len];
                if conn.read_exact(&mut connect).await.is_err() {
                    return;
                }
                let _ = conn.write_all(&[0x20, 0x02, 0x00, 0x00]).await;
                let _ = conn.shutdown().await;
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(WAIT, conn.read_to_end(&mut rest)).await;
            });
        }
    });
    let (_tx, _task) = bridge(
        &format!("mqtt://127.0.0.1:{port}"),
        fleet(1_000, vec![node("cam-1", "BL-LAB-2", 900, 12.0)], vec![]),
        |c| {
            c.backoff_min = Duration::from_millis(100);
            c.backoff_max = Duration::from_secs(2);
        },
    );
    let mut at = Vec::new();
    while at.len() < 5 {
        let next = tokio::time::timeout(WAIT, accepted.recv()).await;
        at.push(
            next.expect("the bridge connects again")
                .expect("the server runs"),
        );
    }
    server.abort();
    // Waits of 100, 200, 400 and 800 ms, each less up to half (jitter): a
    // ConnAck alone never starts the backoff over at 100 ms.
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[3] >= Duration::from_millis(400),
        "the backoff did not grow: {gaps:?}"
    );
}

//! Paging against receivers on loopback: a small HTTP receiver in the test
//! that records what it is sent (and can refuse or never answer), and a
//! real Alertmanager where the Debian `prometheus-alertmanager` is installed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetdeck_node::paging::{self, PagingConfig, Timing, Url, alertmanager, webhook};
use fleetdeck_node::view::FleetView;
use fleetdeck_store::alerts::{Alert, AlertKind, FleetSummary, Severity};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);
const T0: i64 = 1_700_000_000_000;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: BTreeMap<String, String>,
    raw: Vec<u8>,
    body: Value,
}

/// An HTTP/1.1 receiver on 127.0.0.1: records every request and answers
/// with the next scripted status (200 once the script is used up), or never
/// answers when `silent`.
#[derive(Clone)]
struct Receiver {
    url: Url,
    got: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(silent: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let r = Receiver {
            url: Url::parse(&format!("http://{addr}/")).expect("url"),
            got: Arc::default(),
            script: Arc::default(),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut conn).await else {
                        return;
                    };
                    if silent {
                        // Hold the connection and never answer.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let status = me.script.lock().expect("lock").pop_front().unwrap_or(200);
                    me.got.lock().expect("lock").push(req);
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        r
    }

    fn requests(&self) -> Vec<Request> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (up to `WAIT`) until the requests so far satisfy `ok`.
    async fn wait_for(&self, what: &str, ok: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.requests();
            if ok(&got) {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; got {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads one request: headers, then a body of `content-length` bytes.
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        path,
        headers,
        body: serde_json::from_slice(&body).ok()?,
        raw: body,
    })
}

fn alert(id: &str, kind: AlertKind, node: Option<&str>, since: Option<i64>) -> Alert {
    Alert {
        id: id.into(),
        kind,
        severity: Severity::Hard,
        site: "berlin".into(),
        node: node.map(Into::into),
        since_ms: since,
        message: format!("{id} is bad"),
        acked_by: None,
        silenced_until_ms: None,
    }
}

fn view(at_ms: i64, alerts: Vec<Alert>) -> Arc<FleetView> {
    Arc::new(FleetView {
        fleet_id: "f00d".into(),
        fleet_name: "acme".into(),
        at_ms,
        sites: vec![],
        nodes: vec![],
        alerts,
        summary: FleetSummary::default(),
    })
}

fn timing() -> Timing {
    Timing {
        resend: Duration::from_secs(3600),
        timeout: Duration::from_secs(2),
        backoff_first: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
    }
}

fn start(
    alertmanagers: &[&Receiver],
    webhooks: &[&Receiver],
    timing: Timing,
    first: Arc<FleetView>,
) -> watch::Sender<Arc<FleetView>> {
    let (tx, rx) = watch::channel(first);
    let cfg = PagingConfig {
        alertmanagers: alertmanagers.iter().map(|r| r.url.clone()).collect(),
        webhooks: webhooks.iter().map(|r| r.url.clone()).collect(),
        webhook_secret: None,
        timing,
    };
    paging::start(cfg, rx).expect("paging starts");
    tx
}

/// Every alert of every push, flattened.
fn pushed(reqs: &[Request]) -> Vec<Value> {
    reqs.iter()
        .filter_map(|r| r.body.as_array())
        .flatten()
        .cloned()
        .collect()
}

fn label<'v>(a: &'v Value, name: &str) -> Option<&'v str> {
    a["labels"][name].as_str()
}

fn firing(a: &Value) -> bool {
    a.get("endsAt").is_none()
}

#[tokio::test]
async fn alertmanager_gets_a_firing_alert_with_its_labels_then_ends_at_on_resolve() {
    let am = Receiver::start(false).await;
    let down = alert(
        "node-down:n1",
        AlertKind::NodeDown,
        Some("n1"),
        Some(T0 - 60_000),
    );
    let tx = start(&[&am], &[], timing(), view(T0, vec![down.clone()]));

    let got = am
        .wait_for("a firing alert", |r| !pushed(r).is_empty())
        .await;
    assert_eq!(got[0].path, "/api/v2/alerts");
    let a = &pushed(&got)[0];
    let labels: BTreeMap<String, String> =
        serde_json::from_value(a["labels"].clone()).expect("labels are strings");
    let want: BTreeMap<String, String> = [
        ("alertname", "fleetdeck_node_down"),
        ("fleet", "acme"),
        ("fleet_id", "f00d"),
        ("site", "berlin"),
        ("node", "n1"),
        ("kind", "node_down"),
        ("severity", "hard"),
        ("alert_id", "node-down:n1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, want);
    assert_eq!(a["annotations"]["summary"], "node-down:n1 is bad");
    assert_eq!(
        a["startsAt"], "2023-11-14T22:12:20.000Z",
        "startsAt is since_ms"
    );
    assert!(firing(a));

    tx.send_replace(view(T0 + 5_000, vec![]));
    let got = am
        .wait_for("the resolve", |r| pushed(r).iter().any(|a| !firing(a)))
        .await;
    let ended: Vec<Value> = pushed(&got).into_iter().filter(|a| !firing(a)).collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(label(&ended[0], "alert_id"), Some("node-down:n1"));
    assert_eq!(
        ended[0]["labels"], a["labels"],
        "the resolve names the same alert"
    );
}

#[tokio::test]
async fn a_fleetdeck_silence_resolves_the_alert_there_and_fires_it_again_when_it_ends() {
    let am = Receiver::start(false).await;
    let disk = alert("disk:n1:/", AlertKind::Disk, Some("n1"), None);
    let tx = start(&[&am], &[], timing(), view(T0, vec![disk.clone()]));
    am.wait_for("the firing alert", |r| pushed(r).len() == 1)
        .await;

    let mut silenced = disk.clone();
    silenced.silenced_until_ms = Some(T0 + 3_600_000);
    silenced.acked_by = Some("alice".into());
    tx.send_replace(view(T0 + 5_000, vec![silenced.clone()]));
    let got = am.wait_for("the silence", |r| r.len() == 2).await;
    assert_eq!(
        got[1].body.as_array().map(Vec::len),
        Some(1),
        "a silenced alert is sent once, ended, and not as firing"
    );
    assert!(!firing(&pushed(&got)[1]), "silenced: endsAt is set");

    // The silence is over and the disk still full: it fires again, with the
    // start this replica first saw it at.
    tx.send_replace(view(T0 + 3_700_000, vec![silenced]));
    let got = am
        .wait_for("the end of the silence", |r| r.len() == 3)
        .await;
    let again = &pushed(&got)[2];
    assert!(firing(again));
    assert_eq!(again["startsAt"], pushed(&got)[0]["startsAt"]);
    assert_eq!(again["annotations"]["acked_by"], "alice");
}

#[tokio::test]
async fn an_ack_is_an_annotation_so_the_alert_keeps_its_identity() {
    let am = Receiver::start(false).await;
    let down = alert("node-down:n1", AlertKind::NodeDown, Some("n1"), Some(T0));
    let tx = start(&[&am], &[], timing(), view(T0, vec![down.clone()]));
    am.wait_for("the firing alert", |r| r.len() == 1).await;

    let mut acked = down;
    acked.acked_by = Some("alice".into());
    tx.send_replace(view(T0 + 5_000, vec![acked]));
    let got = am.wait_for("the ack", |r| r.len() == 2).await;
    let second = got[1].body.as_array().expect("an array");
    assert_eq!(second.len(), 1, "nothing resolved: the same alert, acked");
    assert!(firing(&second[0]));
    assert_eq!(second[0]["labels"], pushed(&got)[0]["labels"]);
    assert_eq!(second[0]["annotations"]["acked_by"], "alice");

    // A new message alone is no reason to push (it goes with the next resend).
    let mut reworded = alert("node-down:n1", AlertKind::NodeDown, Some("n1"), Some(T0));
    reworded.acked_by = Some("alice".into());
    reworded.message = "down for 10s".into();
    tx.send_replace(view(T0 + 10_000, vec![reworded]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        am.requests().len(),
        2,
        "a new message alone is not pushed before the resend"
    );
}

#[tokio::test]
async fn firing_alerts_are_sent_again_every_resend_interval() {
    let am = Receiver::start(false).await;
    let down = alert("node-down:n1", AlertKind::NodeDown, Some("n1"), Some(T0));
    let t = Timing {
        resend: Duration::from_millis(200),
        ..timing()
    };
    let _tx = start(&[&am], &[], t, view(T0, vec![down]));
    let got = am.wait_for("three pushes", |r| r.len() >= 3).await;
    assert!(pushed(&got).iter().all(firing));
    assert!(
        pushed(&got)
            .iter()
            .all(|a| a["labels"] == pushed(&got)[0]["labels"])
    );
}

#[tokio::test]
async fn two_hubs_send_one_alert_identically() {
    let am = Receiver::start(false).await;
    let hook = Receiver::start(false).await;
    let disk = alert("disk:n1:/", AlertKind::Disk, Some("n1"), None);
    // Two hubs see the alert at different times (their own clocks).
    let _a = start(&[&am], &[&hook], timing(), view(T0, vec![disk.clone()]));
    let _b = start(&[&am], &[&hook], timing(), view(T0 + 7_000, vec![disk]));
    let got = am.wait_for("both hubs' pushes", |r| r.len() == 2).await;
    let p = pushed(&got);
    assert_eq!(
        p[0]["labels"], p[1]["labels"],
        "Alertmanager keeps one alert"
    );
    let got = hook.wait_for("both hubs' events", |r| r.len() == 2).await;
    assert_eq!(
        got[0].headers["idempotency-key"],
        got[1].headers["idempotency-key"]
    );
    assert_eq!(got[0].headers["idempotency-key"], "f00d:disk:n1:/:-:fired");
}

#[tokio::test]
async fn webhook_gets_fired_updated_resolved_with_stable_idempotency_keys() {
    let hook = Receiver::start(false).await;
    let down = alert("node-down:n1", AlertKind::NodeDown, Some("n1"), Some(T0));
    let tx = start(&[], &[&hook], timing(), view(T0, vec![down.clone()]));
    hook.wait_for("fired", |r| r.len() == 1).await;

    let mut silenced = down.clone();
    silenced.silenced_until_ms = Some(T0 + 60_000);
    tx.send_replace(view(T0 + 1_000, vec![silenced.clone()]));
    hook.wait_for("silenced", |r| r.len() == 2).await;
    tx.send_replace(view(T0 + 61_000, vec![silenced]));
    hook.wait_for("silence over", |r| r.len() == 3).await;
    tx.send_replace(view(T0 + 62_000, vec![]));
    let got = hook.wait_for("resolved", |r| r.len() == 4).await;

    let events: Vec<(&str, &str, bool)> = got
        .iter()
        .map(|r| {
            (
                r.body["event"].as_str().unwrap_or_default(),
                r.headers["idempotency-key"].as_str(),
                r.body["alert"]["silenced"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    let k = "f00d:node-down:n1:1700000000000";
    assert_eq!(
        events,
        vec![
            ("fired", format!("{k}:fired").as_str(), false),
            (
                "updated",
                format!("{k}:updated:hard:ack=-:silence=1700000060000").as_str(),
                true
            ),
            (
                "updated",
                format!("{k}:updated:hard:ack=-:silence=1700000060000-over").as_str(),
                false
            ),
            ("resolved", format!("{k}:resolved").as_str(), false),
        ]
    );
    for r in &got {
        assert_eq!(r.body["dedup_key"], k);
        assert_eq!(
            r.body["idempotency_key"],
            r.headers["idempotency-key"].as_str()
        );
        assert_eq!(r.headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn webhook_body_is_signed_with_the_secret() {
    let hook = Receiver::start(false).await;
    let (_tx, rx) = watch::channel(view(
        T0,
        vec![alert("mem:n1", AlertKind::Memory, Some("n1"), None)],
    ));
    let secret = b"s3cret".to_vec();
    let cfg = PagingConfig {
        webhooks: vec![hook.url.clone()],
        webhook_secret: Some(secret.clone()),
        timing: timing(),
        ..PagingConfig::default()
    };
    paging::start(cfg, rx).expect("paging starts");
    let got = hook.wait_for("one event", |r| r.len() == 1).await;
    assert_eq!(
        got[0].headers["x-fleetdeck-signature"],
        webhook::signature(&secret, &got[0].raw),
        "the signature is over the exact body bytes"
    );
    assert_ne!(
        got[0].headers["x-fleetdeck-signature"],
        webhook::signature(b"another", &got[0].raw)
    );
}

#[test]
fn signature_is_hmac_sha256_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        webhook::signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn a_receiver_answering_500_gets_the_alert_on_a_retry() {
    let am = Receiver::start(false).await;
    let hook = Receiver::start(false).await;
    am.script.lock().expect("lock").extend([500, 503]);
    hook.script.lock().expect("lock").push_back(500);
    let down = alert("node-down:n1", AlertKind::NodeDown, Some("n1"), Some(T0));
    let _tx = start(&[&am], &[&hook], timing(), view(T0, vec![down]));
    let got = am.wait_for("the retries", |r| r.len() == 3).await;
    assert_eq!(got[0].body, got[2].body, "the same push again");
    let got = hook.wait_for("the retry", |r| r.len() == 2).await;
    assert_eq!(
        got[0].headers["idempotency-key"],
        got[1].headers["idempotency-key"]
    );
    // Delivered: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(am.requests().len(), 3);
    assert_eq!(hook.requests().len(), 2);
}

#[tokio::test]
async fn a_dead_alertmanager_holds_up_neither_the_views_nor_the_webhook() {
    let dead = Receiver::start(true).await;
    let hook = Receiver::start(false).await;
    let down = alert("node-down:n1", AlertKind::NodeDown, Some("n1"), Some(T0));
    let tx = start(&[&dead], &[&hook], timing(), view(T0, vec![down]));
    hook.wait_for("fired", |r| r.len() == 1).await;
    // Many views while the Alertmanager hangs: each send returns at once.
    for i in 1..=1000 {
        tx.send_replace(view(T0 + i, vec![]));
    }
    let got = hook.wait_for("resolved", |r| r.len() == 2).await;
    assert_eq!(got[1].body["event"], "resolved");
}

#[test]
fn urls_are_checked_and_alertmanager_paths_completed() {
    for bad in ["ftp://x:21/", "127.0.0.1:9093", "http://", "not a url"] {
        let e = paging::parse_url(bad).expect_err(bad).to_string();
        assert!(e.contains(bad), "{e} names {bad}");
    }
    let base = paging::parse_url("http://127.0.0.1:9093").expect("ok");
    assert_eq!(
        alertmanager::alerts_url(&base).as_str(),
        "http://127.0.0.1:9093/api/v2/alerts"
    );
    let prefixed = paging::parse_url("https://am.example/alertmanager/").expect("ok");
    assert_eq!(
        alertmanager::alerts_url(&prefixed).as_str(),
        "https://am.example/alertmanager/api/v2/alerts"
    );
    let full = paging::parse_url("http://h:9093/api/v2/alerts").expect("ok");
    assert_eq!(alertmanager::alerts_url(&full), full);
}

/// `GET path` from 127.0.0.1:`port` over HTTP/1.0 (no chunked answer):
/// the status and the body.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    conn.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Kills the Alertmanager when the test ends, passed or not.
struct Killed(tokio::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test]
async fn a_real_alertmanager_lists_the_pushed_alert_and_drops_it_once_resolved() {
    const PROGRAM: &str = "prometheus-alertmanager";
    let installed = std::process::Command::new(PROGRAM)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "{PROGRAM} is not installed (CI installs the Debian package prometheus-alertmanager)"
        );
        println!("skipped: {PROGRAM} is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
    )
    .expect("config");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("addr").port()
    };
    let _am = Killed(
        tokio::process::Command::new(PROGRAM)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start alertmanager"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while get(port, "/-/ready").await.map(|r| r.0) != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alertmanager never got ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let listed = |port| async move {
        let (status, body) = get(port, "/api/v2/alerts").await?;
        assert_eq!(status, 200, "{body}");
        let all: Vec<Value> = serde_json::from_str(&body).ok()?;
        Some(
            all.into_iter()
                .filter(|a| a["labels"]["alert_id"] == "node-down:n1")
                .collect::<Vec<Value>>(),
        )
    };
    let base = paging::parse_url(&format!("http://127.0.0.1:{port}")).expect("url");
    let (tx, rx) = watch::channel(view(
        fleetdeck_store::now_ms(),
        vec![alert(
            "node-down:n1",
            AlertKind::NodeDown,
            Some("n1"),
            Some(T0),
        )],
    ));
    let cfg = PagingConfig {
        alertmanagers: vec![base],
        timing: timing(),
        ..PagingConfig::default()
    };
    paging::start(cfg, rx).expect("paging starts");

    let deadline = tokio::time::Instant::now() + WAIT;
    let shown = loop {
        if let Some(found) = listed(port).await.filter(|f| !f.is_empty()) {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the alert never showed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shown.len(), 1);
    let labels = &shown[0]["labels"];
    assert_eq!(labels["alertname"], "fleetdeck_node_down");
    assert_eq!(labels["site"], "berlin");
    assert_eq!(labels["node"], "n1");
    assert_eq!(labels["severity"], "hard");
    assert_eq!(shown[0]["annotations"]["summary"], "node-down:n1 is bad");

    tx.send_replace(view(fleetdeck_store::now_ms(), vec![]));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Alertmanager lists only alerts not yet ended.
        if listed(port).await.is_some_and(|f| f.is_empty()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the alert never resolved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_auth_and_hidden_from_logs() {
    let am = Receiver::start(false).await;
    let mut url = am.url.clone();
    url.set_username("fleet").expect("user");
    url.set_password(Some("pw")).expect("password");
    assert!(
        !paging::shown(&url).contains("pw"),
        "{}",
        paging::shown(&url)
    );
    let (_tx, rx) = watch::channel(view(
        T0,
        vec![alert("mem:n1", AlertKind::Memory, Some("n1"), None)],
    ));
    let cfg = PagingConfig {
        alertmanagers: vec![url],
        timing: timing(),
        ..PagingConfig::default()
    };
    paging::start(cfg, rx).expect("paging starts");
    let got = am.wait_for("one push", |r| r.len() == 1).await;
    assert_eq!(got[0].headers["authorization"], "Basic ZmxlZXQ6cHc=");
}

/// The one alert a push names `alert_id`, firing or ended.
fn named<'p>(push: &'p alertmanager::Push, id: &str) -> &'p alertmanager::PostableAlert {
    push.alerts
        .iter()
        .find(|a| a.labels.get("alert_id").map(String::as_str) == Some(id))
        .unwrap_or_else(|| panic!("{id} not in {push:?}"))
}

#[test]
fn an_alert_dated_after_the_year_9999_or_before_1970_is_pushed_without_a_panic() {
    // Start times come from nodes: a captured one can say anything.
    let now = T0 + 10_000;
    let mut t = alertmanager::Tracker::default();
    let alerts = vec![
        alert("far", AlertKind::NodeDown, Some("n1"), Some(i64::MAX)),
        alert(
            "y10k",
            AlertKind::NodeDown,
            Some("n2"),
            Some(253_402_300_800_000),
        ),
        alert("before", AlertKind::NodeDown, Some("n3"), Some(-1_000)),
    ];
    let push = t.plan(&view(T0, alerts), now, false).expect("a push");
    // Dated in the future: when this replica first saw them (the view).
    assert_eq!(named(&push, "far").starts_at, "2023-11-14T22:13:20.000Z");
    assert_eq!(named(&push, "y10k").starts_at, "2023-11-14T22:13:20.000Z");
    assert_eq!(named(&push, "before").starts_at, "1970-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn an_alertmanager_task_outlives_an_alert_dated_after_the_year_9999() {
    let am = Receiver::start(false).await;
    let wild = alert("wild", AlertKind::NodeDown, Some("n1"), Some(i64::MAX));
    let tx = start(&[&am], &[], timing(), view(T0, vec![wild]));
    am.wait_for("the wild alert", |r| pushed(r).len() == 1)
        .await;
    let down = alert("node-down:n2", AlertKind::NodeDown, Some("n2"), Some(T0));
    tx.send_replace(view(T0 + 1_000, vec![down]));
    let got = am
        .wait_for("the next push", |r| {
            pushed(r)
                .iter()
                .any(|a| label(a, "alert_id") == Some("node-down:n2"))
        })
        .await;
    assert!(
        pushed(&got)
            .iter()
            .all(|a| a["startsAt"].as_str() < Some("9999"))
    );
}

#[test]
fn a_node_clock_ahead_never_makes_an_alert_end_before_it_starts() {
    let now = fleetdeck_store::now_ms();
    let mut t = alertmanager::Tracker::default();
    // The node's clock is an hour ahead.
    let ahead = alert(
        "ahead",
        AlertKind::NodeDown,
        Some("n1"),
        Some(now + 3_600_000),
    );
    let push = t
        .plan(&view(now, vec![ahead.clone()]), now, false)
        .expect("a push");
    let starts = named(&push, "ahead").starts_at.clone();
    assert!(
        starts.as_str() <= push_time(now).as_str(),
        "startsAt {starts} is after now"
    );
    t.delivered(push);

    // Later, past the node's date: still the same occurrence, same start
    // (nothing to push, nothing resolved).
    let later = now + 4_000_000;
    assert!(
        t.plan(&view(later, vec![ahead.clone()]), later, false)
            .is_none()
    );

    // It clears a second later.
    let push = t
        .plan(&view(now + 1_000, vec![]), now + 1_000, false)
        .expect("the resolve");
    let ended = named(&push, "ahead");
    assert_eq!(ended.starts_at, starts);
    let ends = ended.ends_at.clone().expect("endsAt");
    assert!(ends >= starts, "endsAt {ends} before startsAt {starts}");
}

#[test]
fn a_replica_clock_stepping_back_never_makes_an_alert_end_before_it_starts() {
    let mut t = alertmanager::Tracker::default();
    let down = alert("down", AlertKind::NodeDown, Some("n1"), Some(T0));
    let push = t.plan(&view(T0, vec![down]), T0, false).expect("a push");
    t.delivered(push);
    // NTP steps this replica's clock back a minute, then the alert clears.
    let push = t
        .plan(&view(T0 - 60_000, vec![]), T0 - 60_000, false)
        .expect("the resolve");
    let ended = named(&push, "down");
    assert_eq!(ended.ends_at.as_deref(), Some(ended.starts_at.as_str()));
}

/// `ms` as the pushes write it.
fn push_time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).expect("after 1970"));
    humantime::format_rfc3339_millis(at).to_string()
}

#[tokio::test]
async fn a_control_character_in_an_alert_id_is_percent_encoded_and_later_events_still_go_out() {
    let hook = Receiver::start(false).await;
    // Check names and mounts are node-reported: a newline, a space, a `%`
    // and UTF-8 in one.
    let mut odd = alert(
        "check:n1:bad\nname 5%é",
        AlertKind::CheckFailed,
        Some("n1"),
        None,
    );
    odd.acked_by = Some("eve\r\n".into());
    let next = alert("mem:n1", AlertKind::Memory, Some("n1"), None);
    let _tx = start(&[], &[&hook], timing(), view(T0, vec![odd, next]));
    let got = hook.wait_for("both events", |r| r.len() == 2).await;
    assert_eq!(
        got[0].headers["idempotency-key"],
        "f00d:check:n1:bad%0Aname%205%25%C3%A9:-:fired"
    );
    assert_eq!(got[1].headers["idempotency-key"], "f00d:mem:n1:-:fired");
    for r in &got {
        assert_eq!(
            r.body["idempotency_key"],
            r.headers["idempotency-key"].as_str(),
            "the body's key is the header's"
        );
    }
    assert_eq!(got[0].body["alert"]["id"], "check:n1:bad\nname 5%é");
}

#[test]
fn an_ack_by_any_name_makes_a_header_safe_key() {
    let mut a = alert("mem:n1", AlertKind::Memory, Some("n1"), None);
    a.acked_by = Some("Zoë\u{7f}".into());
    let sent = webhook::SentAlert {
        alert: a,
        silenced: false,
    };
    let key = webhook::idempotency_key("f00d", webhook::Event::Updated, &sent);
    assert_eq!(key, "f00d:mem:n1:-:updated:hard:ack=Zo%C3%AB%7F:silence=-");
    assert!(reqwest_safe(&key), "{key}");
}

/// Visible ASCII only: what every HTTP header value may hold.
fn reqwest_safe(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

#[test]
fn urls_in_logs_show_no_path_query_or_credentials_but_alertmanagers_keep_their_path() {
    let slack = paging::parse_url("https://hooks.slack.com/services/T0/B0/XXXXSECRET").expect("ok");
    assert_eq!(paging::shown(&slack), "https://hooks.slack.com/…");
    let token = paging::parse_url("http://u:pw@hook.example:8080/?token=SECRET").expect("ok");
    assert_eq!(paging::shown(&token), "http://hook.example:8080/…");
    let bare = paging::parse_url("http://127.0.0.1:9000").expect("ok");
    assert_eq!(paging::shown(&bare), "http://127.0.0.1:9000/");
    let v6 = paging::parse_url("http://[::1]:9000/x").expect("ok");
    assert_eq!(paging::shown(&v6), "http://[::1]:9000/…");

    let am = paging::parse_url("https://fleet:pw@am.example/alertmanager/?k=SECRET").expect("ok");
    let am = alertmanager::alerts_url(&am);
    assert_eq!(
        paging::shown_with_path(&am),
        "https://am.example/alertmanager/api/v2/alerts?…"
    );
    for shown in [
        paging::shown(&slack),
        paging::shown(&token),
        paging::shown(&am),
        paging::shown_with_path(&am),
    ] {
        assert!(
            !shown.contains("SECRET") && !shown.contains("pw"),
            "{shown}"
        );
    }
}

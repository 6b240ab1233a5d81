//! The whole fleet's Prometheus metrics (`serve --metrics ADDR`): a replica
//! with sites, zones, roles and health is rendered, parsed back with a
//! strict text-format parser and checked value by value; served over
//! loopback and scraped; linted by `promtool` where it is installed; and
//! the Grafana dashboard in `packaging/grafana/` is checked to use only
//! metrics the renderer writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleetdeck_node::fleet_metrics;
use fleetdeck_node::view::{self, FleetView};
use fleetdeck_store::alerts::Ack;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::{ApplyReport, ApplyResult, DiskUsage, HealthRegister, Metrics};
use fleetdeck_store::peer::PeerStatus;
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig};
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Parsed = MetricsExposition<PrometheusType, PrometheusValue>;

fn site(name: &str, zone: Option<&str>) -> SiteRecord {
    SiteRecord {
        name: name.into(),
        lat: None,
        lon: None,
        zone: zone.map(Into::into),
    }
}

fn node(site: &str, role: Option<&str>) -> NodeRecord {
    NodeRecord {
        site: site.into(),
        role: role.map(Into::into),
    }
}

fn beat(node: &str, cpu: f64, disk: f64, applied: Option<(&str, ApplyResult)>) -> HealthRegister {
    let now = now_ms();
    HealthRegister {
        node: node.into(),
        seq: 1,
        time_ms: now,
        metrics: Metrics {
            cpu_pct: cpu,
            mem_pct: 40.0,
            disks: vec![
                DiskUsage {
                    mount: "/".into(),
                    used_pct: disk,
                },
                DiskUsage {
                    mount: "/var/lib/frigate".into(),
                    used_pct: 50.0,
                },
            ],
            load1: 0.5,
            uptime_s: 3600,
            temp_c: Some(51.5),
        },
        applied: applied.map(|(revision, result)| ApplyReport {
            revision: revision.into(),
            result,
            error: None,
            duration_ms: 1200,
            at_ms: now - 60_000,
            from: Vec::new(),
        }),
        ..Default::default()
    }
}

/// A fleet "acme" as an operator's replica holds it:
/// - BL-LAB-1 "Lab \"one\"" in zone north: cam-1 (camera, disk 91 %,
///   in sync, its disk alert silenced) and cam-2 (no role, applied an old
///   revision);
/// - BL-HUB in no zone: hub-1 (hub), never reported;
/// - BL-OLD in zone south: old-1, last heard an hour ago (site offline).
fn fleet(dir: &Path) -> Replica {
    let mut r = Replica::init(dir, "ops", "acme").unwrap();
    r.change("setup", |d, _| {
        let id = |s: &str| SiteId::parse(s).unwrap();
        let nid = |s: &str| NodeId::parse(s).unwrap();
        d.add_site(&id("BL-LAB-1"), &site("Lab \"one\"", Some("north")))?;
        d.add_site(&id("BL-HUB"), &site("Hub", None))?;
        d.add_site(&id("BL-OLD"), &site("Old", Some("south")))?;
        d.add_node(&nid("cam-1"), &node("BL-LAB-1", Some("camera")))?;
        d.add_node(&nid("cam-2"), &node("BL-LAB-1", None))?;
        d.add_node(&nid("hub-1"), &node("BL-HUB", Some("hub")))?;
        d.add_node(&nid("old-1"), &node("BL-OLD", None))?;
        d.set_config(
            &LayerRef::Fleet,
            &ConfigPath::parse("frigate.version").unwrap(),
            &json!("0.13"),
        )
    })
    .unwrap();
    let desired = FleetView::of(&r, now_ms())
        .nodes
        .iter()
        .find(|n| n.id == "cam-1")
        .and_then(|n| n.desired_revision.clone())
        .expect("cam-1 has a desired revision");
    r.record_health(&beat(
        "cam-1",
        25.0,
        91.0,
        Some((&desired, ApplyResult::Ok)),
    ))
    .unwrap();
    r.record_health(&beat(
        "cam-2",
        5.0,
        20.0,
        Some(("0ld", ApplyResult::RolledBack)),
    ))
    .unwrap();
    r.record_health_aged(&beat("old-1", 5.0, 20.0, None), 3_600_000)
        .unwrap();
    r.change("silence", |d, _| {
        d.put_ack(
            "disk:cam-1:/",
            &Ack {
                by: "ops".into(),
                at_ms: now_ms(),
                until_ms: Some(now_ms() + 3_600_000),
                since_ms: None,
            },
        )
    })
    .unwrap();
    r
}

fn peers() -> Vec<PeerStatus> {
    let now = now_ms();
    vec![
        PeerStatus {
            key: "k-laptop".into(),
            name: "laptop".into(),
            connected: true,
            addr: None,
            last_sync_ms: Some(now - 30_000),
            lacks: Some(3),
            last_error: None,
            path: None,
            rtt_ms: None,
        },
        PeerStatus {
            key: "k-cam-9".into(),
            name: "cam-9".into(),
            connected: false,
            addr: None,
            last_sync_ms: None,
            lacks: None,
            last_error: Some("unreachable".into()),
            path: None,
            rtt_ms: None,
        },
    ]
}

fn parse(text: &str) -> Parsed {
    match parse_prometheus(text) {
        Ok(p) => p,
        Err(e) => panic!("not valid Prometheus text format: {e:?}\n{text}"),
    }
}

/// The value of the one sample of `name` whose labels include `labels`.
fn value(p: &Parsed, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = p.families.get(name)?;
    let mut found = family.iter_samples().filter(|s| {
        let set = s.get_labelset().expect("labels");
        labels
            .iter()
            .all(|(k, v)| set.get_label_value(k) == Some(*v))
    });
    let s = found.next()?;
    assert!(
        found.next().is_none(),
        "{name}{labels:?} matches more than one sample"
    );
    match &s.value {
        PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => Some(n.as_f64()),
        PrometheusValue::Counter(c) => Some(c.value.as_f64()),
        other => panic!("{name} is not a plain sample: {other:?}"),
    }
}

fn kind(p: &Parsed, name: &str) -> PrometheusType {
    p.families
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .family_type
        .clone()
}

fn sample_count(p: &Parsed, name: &str) -> usize {
    p.families.get(name).map_or(0, |f| f.iter_samples().count())
}

fn rendered() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let r = fleet(&tmp.path().join("ops"));
    let view = FleetView::of(&r, now_ms());
    let peers = peers();
    (tmp, fleet_metrics::render(&view, Some(&peers), now_ms()))
}

#[test]
fn the_fleet_renders_as_valid_prometheus_text_with_every_node_labelled() {
    let (_tmp, text) = rendered();
    let p = parse(&text);
    let cam1 = [
        ("site", "BL-LAB-1"),
        ("node", "cam-1"),
        ("zone", "north"),
        ("role", "camera"),
    ];
    let cam2 = [("node", "cam-2"), ("zone", "north"), ("role", "")];
    let hub = [
        ("site", "BL-HUB"),
        ("node", "hub-1"),
        ("zone", ""),
        ("role", "hub"),
    ];

    assert_eq!(value(&p, "fleetdeck_fleet_nodes", &[]), Some(4.0));
    assert_eq!(
        value(&p, "fleetdeck_fleet_info", &[("fleet", "acme")]),
        Some(1.0)
    );
    assert_eq!(kind(&p, "fleetdeck_node_up"), PrometheusType::Gauge);
    assert_eq!(
        sample_count(&p, "fleetdeck_node_up"),
        4,
        "one series per node"
    );
    assert_eq!(value(&p, "fleetdeck_node_up", &cam1), Some(1.0));
    assert_eq!(
        value(&p, "fleetdeck_node_up", &hub),
        Some(0.0),
        "never reported"
    );
    assert_eq!(
        value(&p, "fleetdeck_node_up", &[("node", "old-1")]),
        Some(0.0),
        "silent for an hour: its site is offline"
    );
    assert_eq!(value(&p, "fleetdeck_fleet_nodes_up", &[]), Some(2.0));

    assert_eq!(
        value(&p, "fleetdeck_node_cpu_usage_ratio", &cam1),
        Some(0.25)
    );
    assert_eq!(
        value(&p, "fleetdeck_node_memory_usage_ratio", &cam2),
        Some(0.4)
    );
    assert_eq!(
        value(
            &p,
            "fleetdeck_node_disk_usage_ratio",
            &[cam1[1], ("mount", "/")]
        ),
        Some(0.91)
    );
    assert_eq!(
        value(
            &p,
            "fleetdeck_node_disk_usage_ratio",
            &[cam1[1], ("mount", "/var/lib/frigate")]
        ),
        Some(0.5)
    );
    assert_eq!(
        value(&p, "fleetdeck_node_temperature_celsius", &cam1),
        Some(51.5)
    );
    assert_eq!(
        value(&p, "fleetdeck_node_cpu_usage_ratio", &hub),
        None,
        "nothing reported"
    );
    assert_eq!(
        value(&p, "fleetdeck_node_last_heard_age_seconds", &hub),
        None
    );
    let age = value(
        &p,
        "fleetdeck_node_last_heard_age_seconds",
        &[("node", "old-1")],
    )
    .expect("old-1 was heard");
    assert!((3590.0..3700.0).contains(&age), "heard an hour ago: {age}");
    let heard = value(&p, "fleetdeck_node_last_heard_timestamp_seconds", &cam1).unwrap();
    assert!((heard - now_ms() as f64 / 1000.0).abs() < 60.0, "{heard}");

    assert_eq!(value(&p, "fleetdeck_node_config_in_sync", &cam1), Some(1.0));
    assert_eq!(value(&p, "fleetdeck_node_config_in_sync", &cam2), Some(0.0));
    assert_eq!(value(&p, "fleetdeck_node_config_in_sync", &hub), Some(0.0));
    assert_eq!(
        value(
            &p,
            "fleetdeck_node_config_info",
            &[
                cam2[0],
                ("applied_revision", "0ld"),
                ("apply_result", "rolled_back")
            ]
        ),
        Some(1.0)
    );
    let info = p.families.get("fleetdeck_node_config_info").unwrap();
    let cam1_info = info
        .iter_samples()
        .find(|s| s.get_labelset().unwrap().get_label_value("node") == Some("cam-1"))
        .unwrap();
    let set = cam1_info.get_labelset().unwrap();
    assert_eq!(
        set.get_label_value("desired_revision"),
        set.get_label_value("applied_revision"),
        "cam-1 runs what it should"
    );
    assert_ne!(set.get_label_value("desired_revision"), Some(""));
}

#[test]
fn sites_and_alerts_are_counted_by_state_and_severity_silenced_apart() {
    let (_tmp, text) = rendered();
    let p = parse(&text);
    // BL-OLD is offline (hard); cam-2's apply was rolled back (medium);
    // cam-1's disk alert (medium) is silenced.
    assert_eq!(
        value(
            &p,
            "fleetdeck_alerts_open",
            &[("severity", "hard"), ("silenced", "false")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &p,
            "fleetdeck_alerts_open",
            &[("severity", "medium"), ("silenced", "true")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &p,
            "fleetdeck_alerts_open",
            &[("severity", "medium"), ("silenced", "false")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &p,
            "fleetdeck_alerts_open",
            &[("severity", "soft"), ("silenced", "false")]
        ),
        Some(0.0),
        "zero series are there for dashboards"
    );
    assert_eq!(sample_count(&p, "fleetdeck_alerts_open"), 6);
    assert_eq!(
        value(
            &p,
            "fleetdeck_site_alerts_open",
            &[("site", "BL-OLD"), ("zone", "south"), ("severity", "hard")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &p,
            "fleetdeck_site_alerts_open",
            &[("site", "BL-LAB-1"), ("severity", "medium")]
        ),
        Some(1.0),
        "cam-2's apply counts against its site, cam-1's silenced disk does not"
    );

    let state =
        |site: &str, s: &str| value(&p, "fleetdeck_site_state", &[("site", site), ("state", s)]);
    assert_eq!(state("BL-OLD", "err"), Some(1.0));
    assert_eq!(state("BL-OLD", "green"), Some(0.0));
    assert_eq!(state("BL-LAB-1", "warn"), Some(1.0));
    assert_eq!(state("BL-HUB", "unknown"), Some(1.0));
    assert_eq!(
        value(
            &p,
            "fleetdeck_site_state",
            &[("site", "BL-LAB-1"), ("state", "warn")]
        ),
        value(
            &p,
            "fleetdeck_site_state",
            &[("name", "Lab \"one\""), ("state", "warn")]
        ),
        "a quote in a site's name is escaped and reads back"
    );
    assert_eq!(
        value(&p, "fleetdeck_fleet_sites", &[("state", "err")]),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "fleetdeck_fleet_sites", &[("state", "green")]),
        Some(0.0)
    );
    assert_eq!(
        value(&p, "fleetdeck_site_nodes", &[("site", "BL-LAB-1")]),
        Some(2.0)
    );
}

#[test]
fn sync_peers_show_connection_lag_and_last_sync_age() {
    let (_tmp, text) = rendered();
    let p = parse(&text);
    assert_eq!(value(&p, "fleetdeck_sync_peers", &[]), Some(2.0));
    assert_eq!(value(&p, "fleetdeck_sync_peers_connected", &[]), Some(1.0));
    let laptop = [("peer", "k-laptop"), ("name", "laptop")];
    assert_eq!(
        value(&p, "fleetdeck_sync_peer_connected", &laptop),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "fleetdeck_sync_peer_connected", &[("name", "cam-9")]),
        Some(0.0)
    );
    assert_eq!(
        value(&p, "fleetdeck_sync_peer_lag_changes", &laptop),
        Some(3.0)
    );
    assert_eq!(
        value(&p, "fleetdeck_sync_peer_lag_changes", &[("name", "cam-9")]),
        None,
        "unknown lag is left out, not written as 0"
    );
    let age = value(&p, "fleetdeck_sync_peer_last_sync_age_seconds", &laptop).unwrap();
    assert!((29.0..120.0).contains(&age), "{age}");

    // A replica whose engine has stopped writes no sync series.
    let tmp = tempfile::tempdir().unwrap();
    let view = FleetView::of(&fleet(tmp.path()), now_ms());
    let p = parse(&fleet_metrics::render(&view, None, now_ms()));
    assert!(!p.families.keys().any(|k| k.starts_with("fleetdeck_sync_")));
}

#[test]
fn metric_names_follow_prometheus_conventions() {
    let (_tmp, text) = rendered();
    let p = parse(&text);
    for (name, family) in &p.families {
        assert!(name.starts_with("fleetdeck_"), "{name}");
        assert!(
            !name.contains("percent") && !name.contains("_ms"),
            "{name}: ratios and seconds, not percent or milliseconds"
        );
        if family.family_type == PrometheusType::Counter {
            assert!(name.ends_with("_total"), "{name}: a counter ends in _total");
        }
    }
}

#[test]
fn promtool_finds_nothing_to_lint_in_the_fleet_metrics() {
    let Some(promtool) = needed_program("promtool") else {
        return;
    };
    let (_tmp, text) = rendered();
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `name` on the PATH; when it is missing a CI run fails (CI installs it)
/// and any other run says the test is skipped.
fn needed_program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed (CI installs it: see .ci/run)"
        );
        println!("skipped: {name} is not installed");
    }
    found
}

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana/fleetdeck-fleet.json")
}

/// Every `fleetdeck_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("fleetdeck_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Every query string of the dashboard: panel targets' `expr` and the
/// variables' `query` (a string, or an object with a `query`).
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_the_fleet_exposes() {
    let path = dashboard_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut qs = Vec::new();
    queries(&dash, &mut qs);
    let used: BTreeSet<String> = qs.iter().flat_map(|q| metric_names(q)).collect();
    assert!(
        used.len() >= 8,
        "the dashboard queries the fleet metrics: {used:?}"
    );

    let (_tmp, metrics) = rendered();
    let p = parse(&metrics);
    let missing: Vec<&String> = used
        .iter()
        .filter(|m| !p.families.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics nobody writes: {missing:?}"
    );

    // Grafana's own rules for a dashboard to import: a datasource variable
    // of type prometheus that the panels use, and the site/node variables.
    let vars = dash["templating"]["list"].as_array().expect("variables");
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    assert_eq!(
        var("datasource").map(|v| &v["query"]),
        Some(&json!("prometheus"))
    );
    assert!(var("site").is_some() && var("node").is_some());
    assert!(dash["schemaVersion"].as_u64().unwrap_or(0) >= 39);
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64()), "panel ids are unique");
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "panel {} uses the datasource variable",
                panel["title"]
            );
        }
    }
}

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::new("127.0.0.1:0".parse().unwrap());
    c.poll = Duration::from_millis(50);
    c.dial_every = Duration::from_millis(200);
    c
}

async fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: fleetdeck\r\n\r\n")
        .await?;
    let mut resp = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut resp))
        .await
        .map_err(std::io::Error::other)??;
    Ok(resp)
}

async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_serves_the_fleet_over_http_with_its_live_peer_and_stops_with_its_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let laptop_dir = tmp.path().join("laptop");
    let laptop_key = load_or_create_identity(&laptop_dir).unwrap().key().clone();
    let mut hub = fleet(&tmp.path().join("hub"));
    hub.change("enroll laptop", |d, _| {
        d.put_member(&laptop_key, "laptop", Role::Operator, now_ms())
    })
    .unwrap();
    let hub = Engine::start(hub, cfg()).await.unwrap();
    let views = view::watch(&hub, Duration::from_millis(100));
    let addr = fleet_metrics::serve("127.0.0.1:0".parse().unwrap(), &hub, views)
        .await
        .unwrap();

    let resp = scrape(addr).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let p = parse(body);
    assert_eq!(value(&p, "fleetdeck_fleet_nodes", &[]), Some(4.0));
    assert_eq!(
        value(
            &p,
            "fleetdeck_node_up",
            &[("node", "cam-1"), ("zone", "north")]
        ),
        Some(1.0)
    );

    // The laptop joins from a copy of the hub's replica: the next scrapes
    // see it as a connected peer.
    let changes = hub.with_replica(|r| r.changes_after(&[]));
    let laptop = Replica::init_from_changes(&laptop_dir, changes).unwrap();
    let laptop = Engine::start(laptop, cfg()).await.unwrap();
    let connected = eventually(Duration::from_secs(20), async || {
        let Ok(resp) = scrape(addr).await else {
            return false;
        };
        let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        value(
            &parse(body),
            "fleetdeck_sync_peer_connected",
            &[("name", "laptop")],
        ) == Some(1.0)
    })
    .await;
    assert!(connected, "the laptop shows as a connected peer");

    laptop.shutdown().await;
    hub.shutdown().await;
    let stopped = eventually(Duration::from_secs(10), async || {
        scrape(addr).await.is_err()
    })
    .await;
    assert!(
        stopped,
        "the metrics address is let go once the engine stops"
    );
}

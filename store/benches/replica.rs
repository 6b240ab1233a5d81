//! Replica benchmark (issue 2): a generated fleet of 1,000 sites and 10,000
//! nodes, measured for cold load from SQLite, effective config of every
//! node, alert evaluation of every node, and peak RSS; with a plain-JSON
//! baseline measured in the same run.
//!
//! Run: `cargo bench -p fleetdeck-store --bench replica`
//!
//! A plain `fn main` bench binary (no harness). The parent process generates
//! the fleet into a temporary data dir, then runs every measurement in a
//! fresh child process (this same binary, re-executed), so the peak RSS
//! reported is that of a process that only loads and evaluates, not of the
//! generator. Arguments it does not know (cargo passes `--bench`) are
//! ignored.
//!
//! `FLEETDECK_BENCH_SITES=N` scales the fleet down for a quick smoke run
//! (default 1000; nodes are always 10 per site). Targets only mean something
//! at the default. `FLEETDECK_BENCH_KEEP=1` keeps the generated data dir and
//! JSON file (for profiling a measurement child on its own) and prints where.

use std::collections::BTreeMap;
use std::error::Error;
use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleetdeck_store::alerts::AlertKind;
use fleetdeck_store::config::{ConfigPath, Layer, insert_nested};
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::{
    ApplyReport, ApplyResult, BackupStatus, DbBackup, DiskUsage, HealthRegister, Metrics, TlsCert,
};
use fleetdeck_store::{NodeId, Replica, SiteId, now_ms};
use serde_json::{Map, Value, json};

type BoxResult<T> = std::result::Result<T, Box<dyn Error>>;

/// Config leaves to set in one layer.
type Overrides = Vec<(ConfigPath, Value)>;

const CHILD_FLAG: &str = "--fleetdeck-bench-child";
const NODES_PER_SITE: usize = 10;

const LOAD_RUNS: usize = 10;
const EFFECTIVE_RUNS: usize = 15;
const ALERT_RUNS: usize = 31;
const BASELINE_RUNS: usize = 10;

const TARGET_LOAD_MS: f64 = 300.0;
const TARGET_EFFECTIVE_MS: f64 = 100.0;
const TARGET_ALERTS_MS: f64 = 20.0;
const TARGET_RSS_MB: f64 = 150.0;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.iter().position(|a| a == CHILD_FLAG) {
        Some(i) => child(&args[i + 1..]),
        None => parent(),
    };
    if let Err(e) = result {
        eprintln!("replica bench failed: {e}");
        std::process::exit(1);
    }
}

// ---- small helpers -----------------------------------------------------------

/// splitmix64: deterministic, good enough to spread a synthetic fleet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (min, median) of a set of timings.
fn min_median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2])
}

/// A field of /proc/self/status in kB (VmRSS, VmHWM).
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// kB (KiB, as /proc reports) to MB (10^6 bytes), the unit of the target.
fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

fn path(key: &str) -> ConfigPath {
    ConfigPath::parse(key).expect("bench config keys are valid")
}

// ---- the generated fleet ------------------------------------------------------

const CITIES: &[&str] = &[
    "Lyon", "Porto", "Gdansk", "Leeds", "Bilbao", "Graz", "Tampere", "Brno", "Utrecht", "Aarhus",
    "Turin", "Nantes", "Cork", "Malmo", "Ghent", "Split", "Austin", "Tucson", "Osaka", "Perth",
];
const ZONES: &[&str] = &[
    "eu-west",
    "eu-central",
    "eu-north",
    "us-east",
    "us-west",
    "ap-south",
    "ap-east",
    "sa-east",
];
const DNS_EXTRA: &[&str] = &[
    "updates.vendor-a.example",
    "telemetry.vendor-b.example",
    "maps.tiles.example",
    "time.site-local.example",
    "registry.mirror.example",
];

/// The fleet defaults, one change per section as an operator would set them.
fn fleet_sections() -> Vec<(&'static str, Value)> {
    vec![
        (
            "firewall",
            json!({
                "default": "deny",
                "log_dropped": true,
                "rules": [
                    "allow 22/tcp from 10.0.0.0/8",
                    "allow 443/tcp from any",
                    "allow 51820/udp from any",
                    "allow 9100/tcp from 10.0.0.0/8",
                    "allow 1883/tcp from 10.0.0.0/8",
                    "allow 8554/tcp from 10.0.0.0/8",
                    "deny 23/tcp from any"
                ],
            }),
        ),
        (
            "frigate",
            json!({
                "version": "0.14.0",
                "image": "ghcr.io/blakeblackshear/frigate:0.14.0",
                "detectors": {"coral": {"type": "edgetpu", "device": "usb"}},
                "record": {"enabled": true, "retain_days": 10, "mode": "motion"},
                "snapshots": {"enabled": true, "retain_days": 14},
            }),
        ),
        (
            "dns",
            json!({
                "resolvers": ["10.0.0.53", "1.1.1.1", "9.9.9.9"],
                "allowlist": [
                    "ghcr.io", "pkg-containers.githubusercontent.com", "deb.debian.org",
                    "security.debian.org", "ntp.ubuntu.com", "loki.fleet.example",
                    "mqtt.fleet.example", "backup.fleet.example", "acme-v02.api.letsencrypt.org",
                    "r3.o.lencr.org", "objects.fleet.example", "vpn.fleet.example"
                ],
            }),
        ),
        (
            "backup",
            json!({
                "schedule": "0 3 * * *",
                "target": "s3://fleet-backups/nodes",
                "keep": {"daily": 7, "weekly": 4, "monthly": 6},
                "databases": ["frigate", "app", "postgres"],
            }),
        ),
        (
            "ssh",
            json!({
                "password_auth": false,
                "authorized_keys": [
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps1 ops-1",
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps2 ops-2",
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps3 ops-3"
                ],
            }),
        ),
        (
            "updates",
            json!({"channel": "stable", "window": "02:00-04:00", "auto_reboot": false}),
        ),
        (
            "logging",
            json!({"level": "info", "remote": "loki.fleet.example:3100", "max_size_mb": 200}),
        ),
        (
            "wireguard",
            json!({"port": 51820, "keepalive_s": 25, "mtu": 1380}),
        ),
        (
            "mqtt",
            json!({"broker": "mqtt.fleet.example:8883", "topic_prefix": "fleet", "tls": true}),
        ),
        (
            "cameras",
            json!({"default_fps": 5, "resolution": "1280x720", "codec": "h264"}),
        ),
        (
            "tls",
            json!({"acme_email": "ops@fleet.example", "renew_days": 30}),
        ),
        (
            "sysctl",
            json!({"vm.swappiness": 30, "net.ipv4.ip_forward": 1, "fs.inotify.max_user_watches": 524288}),
        ),
        ("node_exporter", json!({"version": "1.8.2", "port": 9100})),
        ("retention", json!({"days": 30})),
    ]
}

/// A site override: (key, value), drawn from the kinds operators set.
fn site_override(kind: u64, site_no: usize, rng: &mut Rng) -> (ConfigPath, Value) {
    match kind {
        0 => (path("retention.days"), json!(*rng.pick(&[7, 14, 60, 90]))),
        1 => (path("alerts.disk_pct"), json!(*rng.pick(&[80, 90]))),
        2 => (path("frigate.version"), json!("0.13.2")),
        3 => (
            path("firewall.rules"),
            json!([
                "allow 22/tcp from 10.0.0.0/8",
                "allow 443/tcp from any",
                "allow 51820/udp from any",
                format!("allow 8554/tcp from 10.{}.0.0/16", site_no % 250),
                format!("allow 554/tcp from 10.{}.4.0/24", site_no % 250)
            ]),
        ),
        4 => (
            path("dns.allowlist"),
            json!([
                "ghcr.io",
                "deb.debian.org",
                "loki.fleet.example",
                "mqtt.fleet.example",
                *rng.pick(DNS_EXTRA),
                *rng.pick(DNS_EXTRA)
            ]),
        ),
        5 => (path("heartbeat.interval_s"), json!(*rng.pick(&[15, 30]))),
        6 => (path("alerts.site_offline_s"), json!(*rng.pick(&[600, 900]))),
        7 => (path("cameras.default_fps"), json!(10)),
        8 => (path("backup.schedule"), json!("30 2 * * *")),
        _ => (
            path("wireguard.endpoint"),
            json!(format!("vpn-s{site_no:04}.fleet.example:51820")),
        ),
    }
}

fn node_override(kind: u64, node: &str, rng: &mut Rng) -> (ConfigPath, Value) {
    match kind {
        0 => (path("alerts.disk_pct"), json!(*rng.pick(&[92, 95]))),
        1 => (path("frigate.detectors.coral.type"), json!("cpu")),
        2 => (path("logging.level"), json!("debug")),
        3 => (
            path("cameras.streams"),
            json!([
                format!("rtsp://{node}-cam1.local/main"),
                format!("rtsp://{node}-cam2.local/main")
            ]),
        ),
        4 => (path("retention.days"), json!(120)),
        _ => (path("sysctl.vm%2Eswappiness"), json!(10)),
    }
}

fn role_of(n: usize) -> &'static str {
    match n {
        0 => "central",
        1..=7 => "camera",
        _ => "edge",
    }
}

struct Generated {
    changes: usize,
    config_time: Duration,
    health_time: Duration,
    /// The instant alerts are evaluated at: every fresh heartbeat is just
    /// before it, every stale one well before it.
    eval_now: i64,
}

fn generate(dir: &Path, sites: usize) -> BoxResult<(Replica, Generated)> {
    let mut rng = Rng(0x5EED_F1EE_7DEC_0002);
    let started = Instant::now();
    let mut r = Replica::init(dir, "bench-admin", "bench fleet")?;
    let mut changes = 1; // genesis

    for (section, value) in fleet_sections() {
        let p = path(section);
        let (_, h) = r.change(&format!("set fleet defaults: {section}"), |doc, _| {
            doc.set_config(&LayerRef::Fleet, &p, &value)
        })?;
        changes += usize::from(h.is_some());
    }

    // One change per site: the site, its ten nodes, its overrides and those
    // of some of its nodes, as `site add` + `node add` + `config set` would
    // be batched by an operator rolling out a site.
    for i in 0..sites {
        let site_no = i + 1;
        let sid = SiteId::parse(&format!("S-{site_no:04}"))?;
        let rec = SiteRecord {
            name: format!("{} {}", CITIES[i % CITIES.len()], i / CITIES.len() + 1),
            lat: Some(round_to(rng.range(-55.0, 70.0), 4)),
            lon: Some(round_to(rng.range(-170.0, 175.0), 4)),
            zone: Some(rng.pick(ZONES).to_string()),
        };
        let n_over = 2 + rng.below(3); // 2..=4, ~3 on average
        let mut kinds: Vec<u64> = Vec::new();
        while kinds.len() < n_over as usize {
            let k = rng.below(10);
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        let site_overrides: Vec<(ConfigPath, Value)> = kinds
            .iter()
            .map(|&k| site_override(k, site_no, &mut rng))
            .collect();
        let mut nodes: Vec<(NodeId, NodeRecord, Overrides)> = Vec::new();
        for n in 0..NODES_PER_SITE {
            let nid = NodeId::parse(&format!("{sid}-N{:02}", n + 1))?;
            let mut over = Vec::new();
            if rng.chance(0.2) {
                let first = rng.below(6);
                over.push(node_override(first, nid.as_str(), &mut rng));
                if rng.chance(0.5) {
                    let second = (first + 1 + rng.below(5)) % 6;
                    over.push(node_override(second, nid.as_str(), &mut rng));
                }
            }
            let rec = NodeRecord {
                site: sid.to_string(),
                role: Some(role_of(n).to_string()),
            };
            nodes.push((nid, rec, over));
        }
        let (_, h) = r.change(
            &format!("add site {sid} with {NODES_PER_SITE} nodes"),
            |doc, _| {
                doc.add_site(&sid, &rec)?;
                let site_layer = LayerRef::Site(sid.clone());
                for (p, v) in &site_overrides {
                    doc.set_config(&site_layer, p, v)?;
                }
                for (nid, nrec, over) in &nodes {
                    doc.add_node(nid, nrec)?;
                    let node_layer = LayerRef::Node(nid.clone());
                    for (p, v) in over {
                        doc.set_config(&node_layer, p, v)?;
                    }
                }
                Ok(())
            },
        )?;
        changes += usize::from(h.is_some());
    }

    // Day-to-day edits after the rollout: version bumps of the fleet
    // defaults and site overrides retuned, so values are overwritten in the
    // history rather than written once.
    let maintenance = sites / 5;
    for k in 0..maintenance {
        let h = if k % 40 == 0 {
            let v = format!("0.14.{}", k / 40 + 1);
            let image = format!("ghcr.io/blakeblackshear/frigate:{v}");
            r.change(&format!("bump frigate to {v}"), |doc, _| {
                doc.set_config(&LayerRef::Fleet, &path("frigate.version"), &json!(v))?;
                doc.set_config(&LayerRef::Fleet, &path("frigate.image"), &json!(image))
            })?
            .1
        } else {
            let sid = SiteId::parse(&format!("S-{:04}", 1 + rng.below(sites as u64)))?;
            let (p, v) = if rng.chance(0.5) {
                (path("retention.days"), json!(*rng.pick(&[14, 21, 45])))
            } else {
                (path("alerts.disk_pct"), json!(*rng.pick(&[82, 88])))
            };
            r.change(&format!("tune {sid} {p}"), |doc, _| {
                doc.set_config(&LayerRef::Site(sid.clone()), &p, &v)
            })?
            .1
        };
        changes += usize::from(h.is_some());
    }
    let config_time = started.elapsed();

    // Health: one register per node. Times are relative to `eval_now`, the
    // instant the alerts are evaluated at, so the result does not depend on
    // how long recording takes.
    let health_started = Instant::now();
    let eval_now = now_ms();
    let state = r.state().clone();
    let offline_sites: Vec<usize> = (0..sites).filter(|i| i % 250 == 99).collect();
    for node in state.nodes.values() {
        let site_no: usize = node.site.as_str()[2..].parse()?;
        let n_idx: usize = node.id.as_str()[node.id.as_str().len() - 2..].parse::<usize>()? - 1;
        let role = role_of(n_idx);
        let id = node.id.as_str();
        let time_ms = if offline_sites.contains(&(site_no - 1)) {
            eval_now - 2 * HOUR_MS - rng.below(10 * MINUTE_MS as u64) as i64
        } else if rng.chance(0.015) {
            eval_now - 2 * MINUTE_MS - rng.below(90 * MINUTE_MS as u64) as i64
        } else {
            eval_now - rng.below(20_000) as i64
        };
        let disk_pct = |rng: &mut Rng| {
            if rng.chance(0.04) {
                round_to(rng.range(85.5, 99.5), 1)
            } else {
                round_to(rng.range(15.0, 80.0), 1)
            }
        };
        let mut disks = vec![DiskUsage {
            mount: "/".into(),
            used_pct: disk_pct(&mut rng),
        }];
        if role != "edge" {
            disks.push(DiskUsage {
                mount: "/var/lib/frigate".into(),
                used_pct: disk_pct(&mut rng),
            });
        }
        let cert_expiry = |rng: &mut Rng| {
            if rng.chance(0.02) {
                eval_now + rng.range(-2.0, 14.0) as i64 * DAY_MS
            } else {
                eval_now + (20 + rng.below(70) as i64) * DAY_MS
            }
        };
        let mut tls = vec![TlsCert {
            name: format!("{}.nodes.fleet.example", id.to_ascii_lowercase()),
            not_after_ms: cert_expiry(&mut rng),
        }];
        let backup = if role == "central" {
            tls.push(TlsCert {
                name: format!("mqtt-s{site_no:04}.fleet.example"),
                not_after_ms: cert_expiry(&mut rng),
            });
            let last_run_ms = if rng.chance(0.01) {
                eval_now - 3 * DAY_MS
            } else {
                eval_now - 3 * HOUR_MS - rng.below(12 * HOUR_MS as u64) as i64
            };
            let databases = ["frigate", "app", "postgres"]
                .iter()
                .map(|name| {
                    let ok = !rng.chance(0.02);
                    DbBackup {
                        name: (*name).into(),
                        ok,
                        error: (!ok).then(|| "pg_dump: connection timed out".to_string()),
                    }
                })
                .collect();
            Some(BackupStatus {
                last_run_ms,
                databases,
            })
        } else {
            None
        };
        let failed_apply = rng.chance(0.01);
        let reg = HealthRegister {
            node: id.to_string(),
            seq: 1_000 + rng.below(50_000),
            time_ms,
            metrics: Metrics {
                cpu_pct: round_to(rng.range(3.0, 75.0), 1),
                mem_pct: if rng.chance(0.02) {
                    round_to(rng.range(90.5, 99.0), 1)
                } else {
                    round_to(rng.range(25.0, 85.0), 1)
                },
                disks,
                load1: round_to(rng.range(0.05, 3.5), 2),
                uptime_s: rng.below(90 * 86_400),
                temp_c: Some(round_to(rng.range(35.0, 78.0), 1)),
            },
            tls,
            backup,
            applied: Some(ApplyReport {
                revision: format!("{:012x}", rng.next() >> 16),
                result: if failed_apply {
                    ApplyResult::Failed
                } else {
                    ApplyResult::Ok
                },
                error: failed_apply.then(|| "systemctl restart frigate: exit status 1".to_string()),
                duration_ms: 800 + rng.below(20_000),
                at_ms: eval_now - rng.below(7 * DAY_MS as u64) as i64,
                from: Vec::new(),
            }),
            ..Default::default()
        };
        // Heard when it was sent: a register is dated by the clock of the
        // replica that hears it, so a stale node is one heard long ago.
        let age = u64::try_from(now_ms().saturating_sub(time_ms)).unwrap_or(0);
        r.record_health_aged(&reg, age)?;
    }
    let health_time = health_started.elapsed();
    Ok((
        r,
        Generated {
            changes,
            config_time,
            health_time,
            eval_now,
        },
    ))
}

// ---- the JSON baseline ------------------------------------------------------------

fn layer_tree(layer: &Layer) -> Value {
    let mut root = Value::Object(Map::new());
    for (p, v) in layer {
        insert_nested(&mut root, p.segments(), v.as_ref().clone());
    }
    root
}

/// The same fleet (sites, nodes, every config layer) as one plain JSON
/// document: what a store with no CRDT and no history would load.
fn baseline_json(r: &Replica) -> Value {
    let st = r.state();
    let mut sites = Map::new();
    for s in st.sites.values() {
        sites.insert(
            s.id.to_string(),
            json!({
                "name": s.record.name,
                "lat": s.record.lat,
                "lon": s.record.lon,
                "zone": s.record.zone,
                "config": layer_tree(&s.overrides),
            }),
        );
    }
    let mut nodes = Map::new();
    for n in st.nodes.values() {
        nodes.insert(
            n.id.to_string(),
            json!({
                "site": n.site.as_str(),
                "role": n.record.role,
                "config": layer_tree(&n.overrides),
            }),
        );
    }
    json!({
        "fleet_id": st.fleet_id,
        "name": st.name,
        "fleet": layer_tree(&st.fleet),
        "sites": sites,
        "nodes": nodes,
    })
}

// ---- the parent: generate, run the children, print the table --------------------------

fn run_child(args: &[&str]) -> BoxResult<BTreeMap<String, String>> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .arg(CHILD_FLAG)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("measurement child {args:?} failed: {}", out.status).into());
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn num(m: &BTreeMap<String, String>, key: &str) -> BoxResult<f64> {
    m.get(key)
        .ok_or_else(|| format!("the measurement child did not report {key}"))?
        .parse::<f64>()
        .map_err(|e| format!("{key}: {e}").into())
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn parent() -> BoxResult<()> {
    let sites: usize = match std::env::var("FLEETDECK_BENCH_SITES") {
        Ok(v) => v
            .parse()
            .map_err(|e| format!("FLEETDECK_BENCH_SITES={v}: {e}"))?,
        Err(_) => 1000,
    };
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("replica");
    println!("fleetdeck-store replica bench");
    println!(
        "generating {sites} sites / {} nodes into {} ...",
        sites * NODES_PER_SITE,
        data.display()
    );
    let (replica, g) = generate(&data, sites)?;
    let st = replica.state().clone();
    let site_overrides: usize = st.sites.values().map(|s| s.overrides.len()).sum();
    let nodes_with_overrides = st
        .nodes
        .values()
        .filter(|n| !n.overrides.is_empty())
        .count();
    let node_overrides: usize = st.nodes.values().map(|n| n.overrides.len()).sum();
    println!(
        "generated in {:.1} s (document: {} changes in {:.1} s; health: {} registers in {:.1} s)",
        (g.config_time + g.health_time).as_secs_f64(),
        g.changes,
        g.config_time.as_secs_f64(),
        replica.health().len(),
        g.health_time.as_secs_f64()
    );
    println!(
        "fleet: {} sites, {} nodes, {} fleet default leaves, {} site override leaves ({:.1}/site), {} nodes with overrides ({} leaves)",
        st.sites.len(),
        st.nodes.len(),
        st.fleet.len(),
        site_overrides,
        site_overrides as f64 / st.sites.len().max(1) as f64,
        nodes_with_overrides,
        node_overrides
    );
    if !st.problems.is_empty() {
        println!("!! the generated document has problems: {:?}", st.problems);
    }

    let json_doc = baseline_json(&replica);
    let json_path = tmp.path().join("fleet.json");
    std::fs::write(&json_path, serde_json::to_vec(&json_doc)?)?;
    drop(json_doc);
    drop(st);
    drop(replica);
    let parent_hwm = proc_status_kb("VmHWM").unwrap_or(0);
    let db_bytes = dir_size(&data);
    let json_bytes = std::fs::metadata(&json_path)?.len();
    println!(
        "on disk: data dir {:.1} MB (replica.db + WAL), baseline JSON {:.1} MB; generator peak RSS {:.0} MB (not a measured figure)",
        db_bytes as f64 / 1e6,
        json_bytes as f64 / 1e6,
        kb_to_mb(parent_hwm)
    );
    println!();

    let data_s = data.to_str().ok_or("temp dir path is not UTF-8")?;
    let json_s = json_path.to_str().ok_or("temp dir path is not UTF-8")?;
    let eval_now = g.eval_now.to_string();
    println!("measuring the replica in a fresh process ...");
    let rep = run_child(&["replica", data_s, &eval_now])?;
    println!("measuring the JSON baseline in a fresh process ...");
    let base = run_child(&["json", json_s])?;
    println!();

    for (k, v) in &rep {
        if let Some(kind) = k.strip_prefix("alerts_kind.") {
            println!("  alerts of kind {kind:<13} {v}");
        }
    }
    println!(
        "  alerts total {} at eval time; {} effective configs ({} distinct) of {:.0} leaves on average",
        rep.get("alerts_total").map_or("?", String::as_str),
        rep.get("effective_nodes").map_or("?", String::as_str),
        rep.get("effective_distinct").map_or("?", String::as_str),
        num(&rep, "effective_avg_leaves").unwrap_or(0.0)
    );
    println!();

    struct Row {
        figure: &'static str,
        measured: String,
        target: String,
        pass: Option<bool>,
    }
    let mut rows: Vec<Row> = Vec::new();
    let timed = |key: &str| -> BoxResult<(f64, f64)> {
        Ok((
            num(&rep, &format!("{key}_min_ms"))?,
            num(&rep, &format!("{key}_median_ms"))?,
        ))
    };
    let (load_min, load_med) = timed("load")?;
    let load_first = num(&rep, "load_first_ms")?;
    rows.push(Row {
        figure: "cold load (Replica::open)",
        measured: format!("{load_min:.1} / {load_med:.1} ms (first {load_first:.1})"),
        target: format!("< {TARGET_LOAD_MS:.0} ms"),
        pass: Some(load_med < TARGET_LOAD_MS),
    });
    let (s_min, s_med) = timed("load_state")?;
    rows.push(Row {
        figure: "  sub-step: FleetDoc::state()",
        measured: format!("{s_min:.1} / {s_med:.1} ms"),
        target: "(one call, on a loaded doc)".into(),
        pass: None,
    });
    let (b_min, b_med) = (
        num(&base, "json_load_min_ms")?,
        num(&base, "json_load_median_ms")?,
    );
    let b_first = num(&base, "json_load_first_ms")?;
    rows.push(Row {
        figure: "  baseline: JSON read + parse",
        measured: format!("{b_min:.1} / {b_med:.1} ms (first {b_first:.1})"),
        target: format!("x{:.1} (replica/baseline)", load_med / b_med),
        pass: None,
    });
    let (e_min, e_med) = timed("effective")?;
    rows.push(Row {
        figure: "effective config, all nodes",
        measured: format!("{e_min:.2} / {e_med:.2} ms"),
        target: format!("< {TARGET_EFFECTIVE_MS:.0} ms"),
        pass: Some(e_med < TARGET_EFFECTIVE_MS),
    });
    let (n_min, n_med) = timed("effective_naive")?;
    rows.push(Row {
        figure: "  context: effective_node x N",
        measured: format!("{n_min:.2} / {n_med:.2} ms"),
        target: "(no per-site sharing)".into(),
        pass: None,
    });
    let (a_min, a_med) = timed("alerts")?;
    rows.push(Row {
        figure: "alerts, all nodes",
        measured: format!("{a_min:.2} / {a_med:.2} ms"),
        target: format!("< {TARGET_ALERTS_MS:.0} ms"),
        pass: Some(a_med < TARGET_ALERTS_MS),
    });
    let (f_min, f_med) = timed("alerts_floor")?;
    rows.push(Row {
        figure: "  context: bare scan of registers",
        measured: format!("{f_min:.3} / {f_med:.3} ms"),
        target: "(fixed thresholds, no text)".into(),
        pass: None,
    });
    let hwm = num(&rep, "vm_hwm_kb")? as u64;
    let rss_load = num(&rep, "vm_rss_after_load_kb")? as u64;
    rows.push(Row {
        figure: "peak RSS (VmHWM)",
        measured: format!(
            "{:.1} MB (VmRSS after load {:.1} MB)",
            kb_to_mb(hwm),
            kb_to_mb(rss_load)
        ),
        target: format!("< {TARGET_RSS_MB:.0} MB"),
        pass: Some(kb_to_mb(hwm) < TARGET_RSS_MB),
    });
    let b_hwm = num(&base, "vm_hwm_kb")? as u64;
    rows.push(Row {
        figure: "  baseline: JSON process VmHWM",
        measured: format!("{:.1} MB", kb_to_mb(b_hwm)),
        target: String::new(),
        pass: None,
    });

    println!(
        "times are min / median over runs (loads: {LOAD_RUNS}, effective: {EFFECTIVE_RUNS}, alerts: {ALERT_RUNS}, baseline: {BASELINE_RUNS}, sub-steps: 5); PASS/MISS on the median; MB = 10^6 bytes"
    );
    let line = "-".repeat(112);
    println!("{line}");
    println!(
        "{:<34} {:<40} {:<28} result",
        "figure", "measured", "target"
    );
    println!("{line}");
    let mut missed = Vec::new();
    for r in &rows {
        let result = match r.pass {
            Some(true) => "PASS",
            Some(false) => {
                missed.push(r.figure);
                "MISS  <<<<<<"
            }
            None => "",
        };
        println!(
            "{:<34} {:<40} {:<28} {}",
            r.figure, r.measured, r.target, result
        );
    }
    println!("{line}");
    if missed.is_empty() {
        println!(
            "all {} targets met",
            rows.iter().filter(|r| r.pass.is_some()).count()
        );
    } else {
        println!(
            "!! {} target(s) MISSED: {}",
            missed.len(),
            missed.join(", ")
        );
    }
    if sites != 1000 {
        println!("!! FLEETDECK_BENCH_SITES={sites}: not the 1,000-site fleet the targets are for");
    }
    if std::env::var_os("FLEETDECK_BENCH_KEEP").is_some() {
        let kept = tmp.keep();
        println!(
            "kept {} (replica: {CHILD_FLAG} replica {} {eval_now}; baseline: {CHILD_FLAG} json {})",
            kept.display(),
            data.display(),
            json_path.display()
        );
    }
    Ok(())
}

// ---- the children: measure in a process that did nothing else ------------------------------

fn child(args: &[String]) -> BoxResult<()> {
    match args {
        [mode, dir, eval_now, ..] if mode == "replica" => {
            measure_replica(Path::new(dir), eval_now.parse()?)
        }
        [mode, file, ..] if mode == "json" => measure_json(Path::new(file)),
        _ => Err(format!("unknown child arguments {args:?}").into()),
    }
}

fn report_timings(key: &str, runs: Vec<Duration>) {
    let (min, median) = min_median(runs);
    println!("{key}_min_ms={}", ms(min));
    println!("{key}_median_ms={}", ms(median));
}

fn measure_replica(dir: &Path, eval_now: i64) -> BoxResult<()> {
    // (a) cold load: a fresh open of the data dir each time, dropped between
    // runs. The first is the first in this process (nothing warmed up in
    // memory); the file itself is in the OS page cache for all of them.
    let mut loads = Vec::with_capacity(LOAD_RUNS);
    let mut rss_after_load = 0;
    for i in 0..LOAD_RUNS {
        let t = Instant::now();
        let r = black_box(Replica::open(dir)?);
        let took = t.elapsed();
        if i == 0 {
            println!("load_first_ms={}", ms(took));
            rss_after_load = proc_status_kb("VmRSS").unwrap_or(0);
            if !r.warnings().is_empty() {
                eprintln!("!! warnings while loading: {:?}", r.warnings());
            }
        }
        loads.push(took);
        drop(r);
    }
    report_timings("load", loads);
    println!("vm_rss_after_load_kb={rss_after_load}");

    let mut r = Replica::open(dir)?;
    let state = r.state().clone();

    // Sub-step of (a): building the typed state from the loaded document,
    // which `open` does after loading (the step that dominated profiles).
    let mut runs = Vec::with_capacity(5);
    for _ in 0..5 {
        let t = Instant::now();
        let st = black_box(r.doc_mut().state()?);
        runs.push(t.elapsed());
        drop(st);
    }
    report_timings("load_state", runs);

    // (b) effective config of every node.
    let mut runs = Vec::with_capacity(EFFECTIVE_RUNS);
    let mut last = None;
    for _ in 0..EFFECTIVE_RUNS {
        let t = Instant::now();
        let all = black_box(state.effective_all());
        runs.push(t.elapsed());
        last = Some(all);
    }
    report_timings("effective", runs);
    let all = last.expect("at least one run");
    let distinct: std::collections::HashSet<*const _> =
        all.values().map(std::sync::Arc::as_ptr).collect();
    println!("effective_nodes={}", all.len());
    println!("effective_distinct={}", distinct.len());
    println!(
        "effective_avg_leaves={}",
        all.values().map(|e| e.len()).sum::<usize>() as f64 / all.len().max(1) as f64
    );
    drop(all);

    // Context: one node at a time, as a caller without effective_all would.
    let mut runs = Vec::with_capacity(5);
    for _ in 0..5 {
        let t = Instant::now();
        let v: Vec<_> = state
            .nodes
            .keys()
            .map(|id| state.effective_node(id))
            .collect::<Result<_, _>>()?;
        black_box(&v);
        runs.push(t.elapsed());
    }
    report_timings("effective_naive", runs);

    // (c) alerts of every node.
    let mut runs = Vec::with_capacity(ALERT_RUNS);
    let mut last = Vec::new();
    for _ in 0..ALERT_RUNS {
        let t = Instant::now();
        let alerts = black_box(r.alerts(black_box(eval_now)));
        runs.push(t.elapsed());
        last = alerts;
    }
    report_timings("alerts", runs);
    println!("alerts_total={}", last.len());
    let mut by_kind: BTreeMap<&'static str, usize> = BTreeMap::new();
    for a in &last {
        *by_kind.entry(a.kind.as_str()).or_default() += 1;
    }
    for kind in [
        AlertKind::NodeDown,
        AlertKind::SiteOffline,
        AlertKind::Disk,
        AlertKind::Memory,
        AlertKind::TlsExpiry,
        AlertKind::BackupFailed,
        AlertKind::BackupStale,
        AlertKind::ApplyFailed,
    ] {
        println!(
            "alerts_kind.{}={}",
            kind.as_str(),
            by_kind.get(kind.as_str()).unwrap_or(&0)
        );
    }
    drop(last);

    // Context: the floor, a bare pass over the same registers with fixed
    // thresholds, no config lookups and no alert text.
    let mut runs = Vec::with_capacity(ALERT_RUNS);
    for _ in 0..ALERT_RUNS {
        let t = Instant::now();
        let mut hits = 0usize;
        for s in black_box(r.health()).values() {
            let heard = s.reg.time_ms.min(s.received_ms);
            if eval_now - heard > 30_000 {
                hits += 1;
                continue;
            }
            hits += s
                .reg
                .metrics
                .disks
                .iter()
                .filter(|d| d.used_pct > 85.0)
                .count();
            hits += usize::from(s.reg.metrics.mem_pct > 90.0);
            hits += s
                .reg
                .tls
                .iter()
                .filter(|c| c.not_after_ms - eval_now < 14 * DAY_MS)
                .count();
        }
        black_box(hits);
        runs.push(t.elapsed());
    }
    report_timings("alerts_floor", runs);

    drop(state);
    drop(r);
    println!("vm_hwm_kb={}", proc_status_kb("VmHWM").unwrap_or(0));
    Ok(())
}

fn measure_json(file: &Path) -> BoxResult<()> {
    let mut runs = Vec::with_capacity(BASELINE_RUNS);
    for i in 0..BASELINE_RUNS {
        let t = Instant::now();
        let bytes = std::fs::read(file)?;
        let v: Value = black_box(serde_json::from_slice(&bytes)?);
        let took = t.elapsed();
        if i == 0 {
            println!("json_load_first_ms={}", ms(took));
            let nodes = v
                .get("nodes")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            println!("json_nodes={nodes}");
        }
        runs.push(took);
        drop(v);
    }
    report_timings("json_load", runs);
    println!("vm_hwm_kb={}", proc_status_kb("VmHWM").unwrap_or(0));
    Ok(())
}

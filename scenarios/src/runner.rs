//! Plays a scenario: an operator replica ("ops", admin) and one real node
//! daemon per node, each with its own replica, data dir and release root,
//! all synced over loopback iroh endpoints that share one [`Faults`]. Metrics
//! are simulated ([`crate::sim`]); everything else (sync, apply, rollback,
//! heartbeats, alerts, rollouts, commands) is the real code. Hubs and
//! laptops are operator replicas with an engine and no daemon; where a
//! laptop is decides whom it can reach.
//!
//! Time: the timeline is scenario time, played `speed` times faster (see
//! [`crate::speed`] for what is scaled and what cannot be).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use fleetdeck_node::daemon::{Daemon, DaemonConfig};
use fleetdeck_store::alerts::{FleetSummary, SiteState};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::ApplyResult;
use fleetdeck_store::ops::{self, CommandTarget, ConfigEdit, Op, RolloutAction, RolloutPlan};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::rollout::Phase;
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::faults::links_between;
use fleetdeck_sync::{Engine, EngineConfig, Faults};
use serde_json::Value;

use crate::sim::{Incidents, SharedIncidents, SimMetrics};
use crate::spec::{
    self, Action, BackupState, CheckKind, Layer, Place, ReplicaKind, Scenario, Target,
};
use crate::speed;

/// Real time every check gets on top of its scaled window, for what does
/// not accelerate: sync over loopback, an apply and its health check, a
/// daemon's start, a reconnect after a partition heals.
pub const LATENCY_ALLOWANCE: Duration = Duration::from_secs(5);

/// How long [`Runner::build`] waits for every replica to hold the fleet's
/// first changes before the timeline starts.
const SETTLE: Duration = Duration::from_secs(20);

/// Where the operator replica's engine writes its peer table: the same file
/// a `fleetdeck serve` writes, so a console opened on the operator's data
/// dir sees a running serve and does not start a second endpoint.
pub const STATUS_FILE: &str = "peers.json";

/// The health check a `bad_config` event sets on a node: it always fails.
pub const BAD_CHECK: &str = "echo 'frigate: config check failed: unknown detector' >&2; exit 1";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Store(#[from] fleetdeck_store::StoreError),
    #[error("{0}")]
    Sync(#[from] fleetdeck_sync::SyncError),
    #[error("node daemon: {0}")]
    Daemon(Box<fleetdeck_node::daemon::DaemonError>),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Speed(String),
    #[error("{0}")]
    Sim(String),
    #[error("scenario {scenario}: {} of {total} checks failed:\n  {}", failed.len(), failed.join("\n  "))]
    ChecksFailed {
        scenario: String,
        total: usize,
        failed: Vec<String>,
    },
}

impl From<fleetdeck_node::daemon::DaemonError> for RunError {
    fn from(e: fleetdeck_node::daemon::DaemonError) -> Self {
        RunError::Daemon(Box::new(e))
    }
}

/// Per node: the last apply the operator heard of (revision, result), and
/// the node's desired revision.
type Applies = BTreeMap<String, (Option<(String, ApplyResult)>, Option<String>)>;

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Seeds the simulated metrics.
    pub seed: u64,
    /// Play the timeline again and again (the demo) instead of once.
    pub repeat: bool,
    /// Stop after this long, wherever the timeline is.
    pub stop_after: Option<Duration>,
    /// Evaluate the scenario's checks (and run until they are decided).
    pub check: bool,
    /// Where the replicas live; a temporary directory (removed at the end)
    /// when `None`.
    pub dir: Option<PathBuf>,
    /// Play this many times faster than real time; `None`: the scenario's
    /// own `speed`.
    pub speed: Option<f64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: 1,
            repeat: false,
            stop_after: None,
            check: false,
            dir: None,
            speed: None,
        }
    }
}

struct NodeRt {
    spec: spec::Node,
    dir: PathBuf,
    root: PathBuf,
    key: MemberKey,
    incidents: SharedIncidents,
    daemon: Option<Daemon>,
    starts: u64,
    /// How far the node's clock is off (ms), kept across restarts.
    skew_ms: i64,
}

/// A hub or a laptop.
struct PeerRt {
    spec: spec::Replica,
    dir: PathBuf,
    key: MemberKey,
    engine: Option<Engine>,
    at: Place,
}

pub struct Runner {
    _tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    scenario: Scenario,
    ops: Engine,
    ops_key: MemberKey,
    faults: Faults,
    nodes: Vec<NodeRt>,
    peers: Vec<PeerRt>,
    seed: u64,
    speed: f64,
    /// Sites cut off right now.
    partitioned: BTreeSet<SiteId>,
    /// Every edit made during the run: (what, change id).
    edits: Vec<(String, ChangeHash)>,
    /// How long the fleet took to hold its first changes everywhere (`None`:
    /// it did not within [`SETTLE`]).
    settled_in: Option<Duration>,
}

/// How one check ended.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    pub what: String,
    /// Seconds into the run when it held, or why it did not.
    pub result: Result<f64, String>,
}

/// What a run did and saw.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: String,
    /// Real seconds the run took.
    pub elapsed_s: f64,
    pub speed: f64,
    /// Scenario seconds played (`elapsed_s * speed`).
    pub scenario_s: f64,
    pub events_played: usize,
    pub checks: Vec<CheckOutcome>,
    /// Every alert id the operator's replica showed during the run.
    pub alerts_seen: Vec<String>,
    /// Open at the end: (id, severity, message).
    pub alerts_open: Vec<(String, String, String)>,
    pub sites: Vec<(String, SiteState)>,
    pub summary: FleetSummary,
    /// Per node, the last apply the operator heard of: (revision, result).
    pub applies: Vec<(String, Option<(String, String)>)>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.result.is_ok())
    }

    /// `Ok` when every check held, else an error listing the failed ones.
    pub fn into_result(self) -> Result<Report, RunError> {
        if self.passed() {
            return Ok(self);
        }
        Err(RunError::ChecksFailed {
            scenario: self.scenario.clone(),
            total: self.checks.len(),
            failed: self
                .checks
                .iter()
                .filter_map(|c| c.result.as_ref().err().map(|e| format!("{}: {e}", c.what)))
                .collect(),
        })
    }

    /// The report as JSON (`scenario run --json`): `scenario`, `passed`,
    /// `elapsed_s`, `speed`, `scenario_s`, `events_played`, `checks`
    /// (`what`, `ok`, `held_at_s` or `error`), `alerts_seen`, `alerts_open`
    /// (`id`, `severity`, `message`), `sites` (`site`, `state`), `summary`,
    /// `applies` (`node`, `revision`, `result`).
    pub fn to_json(&self) -> Value {
        let sm = &self.summary;
        serde_json::json!({
            "scenario": self.scenario,
            "passed": self.passed(),
            "elapsed_s": self.elapsed_s,
            "speed": self.speed,
            "scenario_s": self.scenario_s,
            "events_played": self.events_played,
            "checks": self.checks.iter().map(|c| match &c.result {
                Ok(t) => serde_json::json!({"what": c.what, "ok": true, "held_at_s": t}),
                Err(e) => serde_json::json!({"what": c.what, "ok": false, "error": e}),
            }).collect::<Vec<_>>(),
            "alerts_seen": self.alerts_seen,
            "alerts_open": self.alerts_open.iter().map(|(id, sev, msg)| {
                serde_json::json!({"id": id, "severity": sev, "message": msg})
            }).collect::<Vec<_>>(),
            "sites": self.sites.iter().map(|(site, st)| {
                serde_json::json!({"site": site, "state": site_state(*st)})
            }).collect::<Vec<_>>(),
            "summary": {
                "sites": sm.sites, "green": sm.green, "warn": sm.warn, "err": sm.err,
                "unknown": sm.unknown, "alerts_hard": sm.alerts_hard,
                "alerts_medium": sm.alerts_medium, "alerts_soft": sm.alerts_soft,
            },
            "applies": self.applies.iter().map(|(node, a)| match a {
                Some((rev, res)) => serde_json::json!({"node": node, "revision": rev, "result": res}),
                None => serde_json::json!({"node": node, "revision": null, "result": null}),
            }).collect::<Vec<_>>(),
        })
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let sm = &self.summary;
        let _ = writeln!(
            s,
            "scenario {}: {:.0}s of scenario time in {:.0}s (speed {}), {} events played",
            self.scenario, self.scenario_s, self.elapsed_s, self.speed, self.events_played
        );
        let _ = writeln!(
            s,
            "sites: {} green, {} warn, {} err, {} unknown (of {})",
            sm.green, sm.warn, sm.err, sm.unknown, sm.sites
        );
        for (site, st) in &self.sites {
            let _ = writeln!(s, "  {site:<12} {}", site_state(*st));
        }
        let _ = writeln!(
            s,
            "alerts open: {} hard, {} medium, {} soft",
            sm.alerts_hard, sm.alerts_medium, sm.alerts_soft
        );
        for (id, sev, msg) in &self.alerts_open {
            let _ = writeln!(s, "  {sev:<6} {id}: {msg}");
        }
        let _ = writeln!(s, "alerts seen during the run: {}", self.alerts_seen.len());
        for id in &self.alerts_seen {
            let _ = writeln!(s, "  {id}");
        }
        let _ = writeln!(s, "applies (as the operator sees them):");
        for (node, a) in &self.applies {
            match a {
                Some((rev, res)) => {
                    let _ = writeln!(s, "  {node:<16} {rev} {res}");
                }
                None => {
                    let _ = writeln!(s, "  {node:<16} (none reported)");
                }
            }
        }
        if !self.checks.is_empty() {
            let held = self.checks.iter().filter(|c| c.result.is_ok()).count();
            let _ = writeln!(s, "checks: {held} of {} held", self.checks.len());
            for c in &self.checks {
                match &c.result {
                    Ok(t) => {
                        let _ = writeln!(s, "  ok    {} (held at {t:.0}s)", c.what);
                    }
                    Err(e) => {
                        let _ = writeln!(s, "  FAIL  {}: {e}", c.what);
                    }
                }
            }
        }
        s
    }
}

pub fn site_state(s: SiteState) -> &'static str {
    match s {
        SiteState::Green => "green",
        SiteState::Warn => "warn",
        SiteState::Err => "err",
        SiteState::Unknown => "unknown",
    }
}

fn engine_cfg(faults: &Faults) -> EngineConfig {
    let mut c = EngineConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    c.poll = Duration::from_millis(100);
    c.dial_every = Duration::from_millis(300);
    c.random_peers = 2;
    c.mdns = false;
    c.faults = faults.clone();
    c
}

fn layer_ref(l: &Layer) -> LayerRef {
    match l {
        Layer::Fleet => LayerRef::Fleet,
        Layer::Site(s) => LayerRef::Site(s.clone()),
        Layer::Node(n) => LayerRef::Node(n.clone()),
    }
}

fn layer_name(l: &Layer) -> String {
    match l {
        Layer::Fleet => "fleet".into(),
        Layer::Site(s) => format!("site {s}"),
        Layer::Node(n) => format!("node {n}"),
    }
}

/// `{cycle}` in string values becomes the pass number of the timeline.
fn with_cycle(v: &Value, cycle: u64) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("{cycle}", &cycle.to_string())),
        Value::Array(a) => Value::Array(a.iter().map(|x| with_cycle(x, cycle)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), with_cycle(x, cycle)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn alert_matches(id: &str, pattern: &str) -> bool {
    id == pattern || id.starts_with(pattern)
}

enum CheckState {
    Pending,
    Held(f64),
    Failed(String),
}

/// RFC 3339 (UTC, seconds) of a unix time in ms: what a backup script
/// writes as `last_run`.
fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Writes a self-signed certificate (PEM) expiring in `days`, as a site's
/// renewal script leaves it for the TLS-expiry check.
fn write_cert(path: &Path, days: u32) -> Result<(), RunError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let failed = |e: rcgen::Error| RunError::Sim(format!("could not make a certificate: {e}"));
    let mut params =
        rcgen::CertificateParams::new(vec!["fleetdeck-scenario".to_string()]).map_err(failed)?;
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days.max(1).into());
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    std::fs::write(path, cert.pem())?;
    Ok(())
}

/// Writes a backup status file in the tenants' format.
fn write_backup(path: &Path, state: BackupState, age_h: f64) -> Result<(), RunError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let last = now_ms() - (age_h * 3_600_000.0) as i64;
    let db = |ok: bool| {
        if ok {
            serde_json::json!({"status": "success"})
        } else {
            serde_json::json!({"status": "failed", "error": "connection refused"})
        }
    };
    let v = serde_json::json!({
        "last_run": rfc3339(last),
        "databases": {
            "postgres": db(state == BackupState::Ok),
            "mysql": db(state != BackupState::AllFailed),
        },
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, v.to_string())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A value at a dotted path of a JSON tree.
fn lookup<'v>(tree: &'v Value, key: &ConfigPath) -> Option<&'v Value> {
    key.to_key().split('.').try_fold(tree, |v, seg| v.get(seg))
}

fn sorted_heads(r: &mut Replica) -> Vec<String> {
    let mut h: Vec<String> = r.heads().iter().map(|c| c.to_string()).collect();
    h.sort();
    h
}

/// How many of `edits` the replica lacks (a lookup each, not a copy of
/// every change it holds).
fn lacks(r: &mut Replica, edits: &[(String, ChangeHash)]) -> usize {
    let am = r.doc_mut().automerge_mut();
    edits
        .iter()
        .filter(|(_, h)| am.get_change_by_hash(h).is_none())
        .count()
}

impl Runner {
    /// Builds the fleet: the operator replica with the scenario's sites,
    /// nodes, members and config (durations scaled to the speed); a replica
    /// per node, hub and laptop made from the operator's changes; a running
    /// daemon per node and an engine per hub and laptop. Returns once every
    /// replica holds the same changes (or after a bounded wait).
    pub async fn build(scenario: Scenario, opts: &RunOptions) -> Result<Runner, RunError> {
        let speed = opts.speed.unwrap_or(scenario.speed);
        scenario.check_speed(speed).map_err(RunError::Speed)?;
        let (tmp, dir) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("fleetdeck-scenario-")
                    .tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let faults = Faults::default();
        let mut ops = Replica::init(&dir.join("ops"), "ops", &scenario.fleet)?;
        let ops_key = ops.key().clone();
        let mut nodes = Vec::new();
        for n in &scenario.nodes {
            let ndir = dir.join("nodes").join(n.id.as_str());
            let replica_dir = ndir.join("replica");
            let key = load_or_create_identity(&replica_dir)?.key().clone();
            nodes.push(NodeRt {
                spec: n.clone(),
                dir: replica_dir,
                root: ndir.join("root"),
                key,
                incidents: Arc::new(Mutex::new(Incidents::default())),
                daemon: None,
                starts: 0,
                skew_ms: 0,
            });
        }
        let mut peers = Vec::new();
        for r in &scenario.replicas {
            let pdir = dir.join("replicas").join(&r.name);
            let key = load_or_create_identity(&pdir)?.key().clone();
            peers.push(PeerRt {
                spec: r.clone(),
                dir: pdir,
                key,
                engine: None,
                at: r.at.clone(),
            });
        }
        let scale = |k: &ConfigPath, v: &Value| -> fleetdeck_store::Result<Value> {
            speed::scale_value(k, v, speed).map_err(fleetdeck_store::StoreError::Invalid)
        };
        let sc = &scenario;
        // The fleet as the scenario describes it, written by the operator's
        // (admin) replica through the operations API, as an operator would.
        let mut setup: Vec<Op> = Vec::new();
        let config = |layer: LayerRef,
                      pairs: &mut dyn Iterator<Item = &(ConfigPath, Value)>,
                      message: String|
         -> Result<Option<Op>, RunError> {
            let edits = pairs
                .map(|(k, v)| Ok(ConfigEdit::Set(k.clone(), scale(k, v)?)))
                .collect::<fleetdeck_store::Result<Vec<_>>>()?;
            Ok((!edits.is_empty()).then_some(Op::Config {
                layer,
                edits,
                message: Some(message),
            }))
        };
        setup.extend(config(
            LayerRef::Fleet,
            &mut sc.config.iter(),
            format!("scenario {}: fleet defaults", sc.name),
        )?);
        setup.push(Op::SiteAdd {
            sites: sc
                .sites
                .iter()
                .map(|site| {
                    let rec = SiteRecord {
                        name: site.name.clone(),
                        lat: site.lat,
                        lon: site.lon,
                        zone: site.zone.clone(),
                    };
                    (site.id.clone(), rec)
                })
                .collect(),
        });
        for site in &sc.sites {
            setup.extend(config(
                LayerRef::Site(site.id.clone()),
                &mut site.config.iter(),
                format!("scenario {}: site {}", sc.name, site.id),
            )?);
        }
        // Simulated certificates and backup files, and the node config that
        // points the heartbeat at them.
        let mut files: Vec<(NodeId, ConfigPath, Value)> = Vec::new();
        for n in &nodes {
            let sim = n.root.parent().unwrap_or(&n.root).join("sim");
            if let Some(days) = n.spec.metrics.tls_days {
                let cert = sim.join("web.pem");
                write_cert(&cert, days)?;
                files.push((
                    n.spec.id.clone(),
                    ConfigPath::parse("checks.tls.web")?,
                    Value::String(cert.display().to_string()),
                ));
            }
            if let Some(age) = n.spec.metrics.backup_age_h {
                let status = sim.join("backup-status.json");
                write_backup(&status, BackupState::Ok, age)?;
                files.push((
                    n.spec.id.clone(),
                    ConfigPath::parse("checks.backup_status")?,
                    Value::String(status.display().to_string()),
                ));
            }
        }
        setup.push(Op::NodeAdd {
            nodes: nodes
                .iter()
                .map(|n| {
                    let rec = NodeRecord {
                        site: n.spec.site.to_string(),
                        role: n.spec.role.clone(),
                    };
                    (n.spec.id.clone(), rec)
                })
                .collect(),
        });
        for n in &nodes {
            setup.push(Op::MemberAdd {
                key: n.key.clone(),
                name: n.spec.id.to_string(),
                role: Role::Node,
            });
            let sim: Vec<(ConfigPath, Value)> = files
                .iter()
                .filter(|(node, _, _)| node == &n.spec.id)
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect();
            let mut pairs = n.spec.config.iter().chain(&sim);
            setup.extend(config(
                LayerRef::Node(n.spec.id.clone()),
                &mut pairs,
                format!("scenario {}: node {}", sc.name, n.spec.id),
            )?);
        }
        for p in &peers {
            let role = match p.spec.kind {
                ReplicaKind::Hub => Role::Admin,
                ReplicaKind::Laptop => Role::Operator,
            };
            setup.push(Op::MemberAdd {
                key: p.key.clone(),
                name: p.spec.name.clone(),
                role,
            });
        }
        let now = now_ms();
        for op in setup {
            ops::apply(&mut ops, op, now)?;
        }
        let changes = ops.changes_after(&[]);
        for n in &nodes {
            Replica::init_from_changes(&n.dir, changes.clone())?;
        }
        for p in &peers {
            Replica::init_from_changes(&p.dir, changes.clone())?;
        }
        let mut cfg = engine_cfg(&faults);
        cfg.status_file = Some(dir.join("ops").join(STATUS_FILE));
        let ops = Engine::start(ops, cfg).await?;
        fleetdeck_node::rollouts::spawn(&ops);
        let mut runner = Runner {
            _tmp: tmp,
            dir,
            scenario,
            ops,
            ops_key,
            faults,
            nodes,
            peers,
            seed: opts.seed,
            speed,
            partitioned: BTreeSet::new(),
            edits: Vec::new(),
            settled_in: None,
        };
        runner.apply_faults();
        for i in 0..runner.peers.len() {
            runner.start_peer(i).await?;
        }
        for i in 0..runner.nodes.len() {
            runner.start_node(i).await?;
        }
        // The timeline starts on a fleet that holds its first changes
        // (every member's address among them).
        let t0 = Instant::now();
        while t0.elapsed() < SETTLE {
            let heads = runner.all_heads();
            if heads.iter().all(|(_, h)| h == &heads[0].1) {
                runner.settled_in = Some(t0.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(runner)
    }

    /// The operator replica's data dir (what the console opens).
    pub fn ops_dir(&self) -> PathBuf {
        self.dir.join("ops")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ops(&self) -> &Engine {
        &self.ops
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The speed the run plays at.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    async fn start_node(&mut self, i: usize) -> Result<(), RunError> {
        let ops_addr = self.ops.endpoint_addr();
        let seed = self.seed;
        let faults = self.faults.clone();
        let n = &mut self.nodes[i];
        if n.daemon.is_some() {
            return Ok(());
        }
        let replica = Replica::open(&n.dir)?;
        let metrics = SimMetrics::new(
            n.spec.metrics.clone(),
            seed ^ ((i as u64 + 1) << 32) ^ n.starts,
            n.incidents.clone(),
        );
        let d = Daemon::start(
            replica,
            DaemonConfig {
                root: n.root.clone(),
                node: n.spec.id.clone(),
                sync: engine_cfg(&faults),
            },
            Box::new(metrics),
        )
        .await?;
        d.engine().connect(ops_addr);
        d.set_clock_skew(n.skew_ms);
        n.daemon = Some(d);
        n.starts += 1;
        Ok(())
    }

    async fn start_peer(&mut self, i: usize) -> Result<(), RunError> {
        let ops_addr = self.ops.endpoint_addr();
        let p = &mut self.peers[i];
        if p.engine.is_some() {
            return Ok(());
        }
        let replica = Replica::open(&p.dir)?;
        let e = Engine::start(replica, engine_cfg(&self.faults)).await?;
        fleetdeck_node::rollouts::spawn(&e);
        e.connect(ops_addr);
        p.engine = Some(e);
        Ok(())
    }

    fn index(&self, node: &NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| &n.spec.id == node)
    }

    fn peer(&self, name: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.spec.name == name)
    }

    /// Rebuilds the transport's faults from the model: cut sites (with any
    /// laptop on their LAN) reach nobody outside; a laptop reaches only who
    /// is where it is.
    fn apply_faults(&self) {
        let mut all: Vec<MemberKey> = vec![self.ops_key.clone()];
        all.extend(self.nodes.iter().map(|n| n.key.clone()));
        all.extend(self.peers.iter().map(|p| p.key.clone()));
        let mut cuts = Vec::new();
        let laptops_at = |place: &Place| -> Vec<MemberKey> {
            self.peers
                .iter()
                .filter(|p| p.spec.kind == ReplicaKind::Laptop && &p.at == place)
                .map(|p| p.key.clone())
                .collect()
        };
        let complement = |group: &[MemberKey]| -> Vec<MemberKey> {
            all.iter().filter(|k| !group.contains(k)).cloned().collect()
        };
        for site in &self.partitioned {
            let mut group: Vec<MemberKey> = self
                .nodes
                .iter()
                .filter(|n| &n.spec.site == site)
                .map(|n| n.key.clone())
                .collect();
            group.extend(laptops_at(&Place::Site(site.clone())));
            cuts.extend(links_between(&group, &complement(&group)));
        }
        for p in self
            .peers
            .iter()
            .filter(|p| p.spec.kind == ReplicaKind::Laptop)
        {
            let mut reach: Vec<MemberKey> = match &p.at {
                Place::Site(site) => self
                    .nodes
                    .iter()
                    .filter(|n| &n.spec.site == site)
                    .map(|n| n.key.clone())
                    .collect(),
                Place::Ops => {
                    let mut v = vec![self.ops_key.clone()];
                    v.extend(
                        self.peers
                            .iter()
                            .filter(|h| h.spec.kind == ReplicaKind::Hub)
                            .map(|h| h.key.clone()),
                    );
                    v
                }
                Place::Nowhere => Vec::new(),
            };
            reach.extend(laptops_at(&p.at));
            reach.push(p.key.clone());
            cuts.extend(links_between(
                std::slice::from_ref(&p.key),
                &complement(&reach),
            ));
        }
        // In one step: a link cut before and after (a site still cut off
        // while another heals) never opens for a moment in between.
        self.faults.set_cuts(cuts);
    }

    /// The engine an edit is made on: the operator's, or a hub's or
    /// laptop's (`by`); `None` when that replica is down.
    fn editor(&self, by: Option<&str>) -> Option<&Engine> {
        match by {
            None => Some(&self.ops),
            Some(name) => self.peer(name).and_then(|i| self.peers[i].engine.as_ref()),
        }
    }

    /// Makes an operator action on `by`'s replica, through the operations
    /// API as the CLI and the console do, and remembers the change for
    /// `no_edit_lost`. Returns the author's name.
    fn edit(&mut self, by: Option<&str>, op: Op) -> Result<String, RunError> {
        let author = by.unwrap_or("ops").to_string();
        let what = op.describe();
        let Some(engine) = self.editor(by) else {
            return Err(RunError::Sim(format!(
                "{author} is down: it cannot make the edit '{what}'"
            )));
        };
        let done = engine.with_replica(|r| ops::apply(r, op, now_ms()))?;
        engine.changed();
        if let Some(h) = done.change {
            self.edits.push((format!("{author}: {what}"), h));
        }
        Ok(author)
    }

    fn incidents(&self, n: &NodeId) -> Option<SharedIncidents> {
        self.index(n).map(|i| self.nodes[i].incidents.clone())
    }

    fn incident(&self, n: &NodeId, f: impl FnOnce(&mut Incidents)) {
        if let Some(inc) = self.incidents(n) {
            f(&mut inc.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    fn sim_file(&self, n: &NodeId, name: &str) -> Option<PathBuf> {
        self.index(n).map(|i| {
            self.nodes[i]
                .root
                .parent()
                .unwrap_or(&self.nodes[i].root)
                .join("sim")
                .join(name)
        })
    }

    /// Plays one event; returns the line to log.
    async fn play(
        &mut self,
        action: &Action,
        by: Option<&str>,
        cycle: u64,
    ) -> Result<String, RunError> {
        let by_suffix = |author: &str| {
            if author == "ops" {
                String::new()
            } else {
                format!(" [on {author}]")
            }
        };
        Ok(match action {
            Action::Crash(n) => {
                let Some(i) = self.index(n) else {
                    return Ok(format!("crash {n}: no such node"));
                };
                match self.nodes[i].daemon.take() {
                    Some(d) => {
                        d.shutdown().await;
                        format!("node {n} crashed (daemon stopped)")
                    }
                    None => format!("node {n} is already down"),
                }
            }
            Action::Restart(n) => {
                let Some(i) = self.index(n) else {
                    return Ok(format!("restart {n}: no such node"));
                };
                if self.nodes[i].daemon.is_some() {
                    format!("node {n} is already running")
                } else {
                    self.start_node(i).await?;
                    format!("node {n} restarted on its data dir")
                }
            }
            Action::DiskFill(n, pct) => {
                self.incident(n, |i| i.disk_pct = Some(*pct));
                format!("node {n}: disk / fills to {pct:.0}%")
            }
            Action::DiskClear(n) => {
                self.incident(n, |i| i.disk_pct = None);
                format!("node {n}: disk / cleaned up")
            }
            Action::CpuSpike(n, pct) => {
                self.incident(n, |i| i.cpu_pct = Some(*pct));
                format!("node {n}: CPU spikes to {pct:.0}%")
            }
            Action::CpuClear(n) => {
                self.incident(n, |i| i.cpu_pct = None);
                format!("node {n}: CPU back to normal")
            }
            Action::MemFill(n, pct) => {
                self.incident(n, |i| i.mem_pct = Some(*pct));
                format!("node {n}: memory use climbs to {pct:.0}%")
            }
            Action::MemClear(n) => {
                self.incident(n, |i| i.mem_pct = None);
                format!("node {n}: memory back to normal")
            }
            Action::ClockSkew(n, by) => {
                let Some(i) = self.index(n) else {
                    return Ok(format!("clock_skew {n}: no such node"));
                };
                let ms = (*by * 1000.0).round() as i64;
                let node = &mut self.nodes[i];
                node.skew_ms = ms;
                if let Some(d) = &node.daemon {
                    d.set_clock_skew(ms);
                }
                format!("node {n}: its clock is now {by:+.0} s off")
            }
            Action::Cert(n, days) => {
                if let Some(path) = self.sim_file(n, "web.pem") {
                    write_cert(&path, *days)?;
                }
                format!("node {n}: its certificate now expires in {days} days")
            }
            Action::Backup(n, state, age) => {
                if let Some(path) = self.sim_file(n, "backup-status.json") {
                    write_backup(&path, *state, *age)?;
                }
                let what = match state {
                    BackupState::Ok => "every database backed up",
                    BackupState::Failed => "one database failed",
                    BackupState::AllFailed => "every database failed",
                };
                format!("node {n}: backup report: {what}, last run {age:.0} h ago")
            }
            Action::BadConfig(n) => {
                let path = ConfigPath::parse("apply.check")?;
                let value = Value::String(BAD_CHECK.into());
                let layer = LayerRef::Node(n.clone());
                let author = self.edit(
                    by,
                    Op::Config {
                        layer,
                        edits: vec![ConfigEdit::Set(path, value)],
                        message: Some(format!("ops: new health check on {n} (a bad one)")),
                    },
                )?;
                format!(
                    "operator pushes a bad config to {n} (its apply.check fails){}",
                    by_suffix(&author)
                )
            }
            Action::Partition(site) => {
                self.partitioned.insert(site.clone());
                self.apply_faults();
                let inside = self.nodes.iter().filter(|n| &n.spec.site == site).count();
                format!("site {site} is cut off (WAN down: {inside} nodes partitioned)")
            }
            Action::Heal(None) => {
                self.partitioned.clear();
                self.apply_faults();
                "every partition healed".to_string()
            }
            Action::Heal(Some(site)) => {
                self.partitioned.remove(site);
                self.apply_faults();
                format!("site {site} is back online")
            }
            Action::HubDown(name) => {
                let Some(i) = self.peer(name) else {
                    return Ok(format!("hub_down {name}: no such replica"));
                };
                match self.peers[i].engine.take() {
                    Some(e) => {
                        e.shutdown().await;
                        format!("hub {name} is down")
                    }
                    None => format!("hub {name} is already down"),
                }
            }
            Action::HubUp(name) => {
                let Some(i) = self.peer(name) else {
                    return Ok(format!("hub_up {name}: no such replica"));
                };
                if self.peers[i].engine.is_some() {
                    format!("hub {name} is already up")
                } else {
                    self.start_peer(i).await?;
                    format!("hub {name} is back up on its data dir")
                }
            }
            Action::Move(name, to) => {
                let Some(i) = self.peer(name) else {
                    return Ok(format!("move {name}: no such replica"));
                };
                self.peers[i].at = to.clone();
                self.apply_faults();
                match to {
                    Place::Site(s) => format!("laptop {name} is on site {s}'s LAN"),
                    Place::Ops => format!("laptop {name} is back with the operator"),
                    Place::Nowhere => format!("laptop {name} is in transit (offline)"),
                }
            }
            Action::Set {
                layer,
                key,
                value,
                message,
            } => {
                let value = with_cycle(value, cycle);
                let speed = self.speed;
                let lr = layer_ref(layer);
                let msg = message
                    .as_ref()
                    .map(|m| m.replace("{cycle}", &cycle.to_string()))
                    .unwrap_or_else(|| {
                        format!("ops: set {} on {}", key.to_key(), layer_name(layer))
                    });
                let scaled = speed::scale_value(key, &value, speed).map_err(RunError::Speed)?;
                let author = self.edit(
                    by,
                    Op::Config {
                        layer: lr,
                        edits: vec![ConfigEdit::Set(key.clone(), scaled)],
                        message: Some(msg.clone()),
                    },
                )?;
                format!(
                    "operator: {} = {value} on {} ({msg}){}",
                    key.to_key(),
                    layer_name(layer),
                    by_suffix(&author)
                )
            }
            Action::Unset {
                layer,
                key,
                message,
            } => {
                let lr = layer_ref(layer);
                let msg = message.clone().unwrap_or_else(|| {
                    format!("ops: unset {} on {}", key.to_key(), layer_name(layer))
                });
                let author = self.edit(
                    by,
                    Op::Config {
                        layer: lr,
                        edits: vec![ConfigEdit::Unset(key.clone())],
                        message: Some(msg.clone()),
                    },
                )?;
                format!(
                    "operator: unset {} on {} ({msg}){}",
                    key.to_key(),
                    layer_name(layer),
                    by_suffix(&author)
                )
            }
            Action::Freeze(m) | Action::Unfreeze(m) => {
                let frozen = matches!(action, Action::Freeze(_));
                let what = if frozen { "freeze" } else { "unfreeze" };
                let message = m.clone().unwrap_or_default();
                let msg = if message.is_empty() {
                    what.to_string()
                } else {
                    format!("{what}: {message}")
                };
                let op = if frozen {
                    Op::Freeze { message }
                } else {
                    Op::Unfreeze { message }
                };
                let author = self.edit(by, op)?;
                if frozen {
                    format!(
                        "operator: emergency stop, the fleet is frozen ({msg}){}",
                        by_suffix(&author)
                    )
                } else {
                    format!(
                        "operator: the fleet is unfrozen ({msg}){}",
                        by_suffix(&author)
                    )
                }
            }
            Action::Rollout {
                id,
                set,
                sites,
                waves,
                soak_s,
                max_fail,
            } => {
                let soak = speed::real(*soak_s, self.speed);
                let mut scaled = std::collections::BTreeMap::new();
                for (k, v) in set {
                    let path = ConfigPath::parse(k)?;
                    let v = speed::scale_value(&path, v, self.speed).map_err(RunError::Speed)?;
                    scaled.insert(k.clone(), with_cycle(&v, cycle));
                }
                let id = Self::cycle_id(id, cycle);
                let author = self.edit(
                    by,
                    Op::RolloutStart {
                        id: Some(id.clone()),
                        plan: RolloutPlan {
                            set: scaled.clone(),
                            sites: sites.clone(),
                            waves: waves.clone(),
                            soak_ms: i64::try_from(soak.as_millis()).unwrap_or(i64::MAX),
                            max_fail: *max_fail,
                        },
                    },
                )?;
                format!(
                    "operator: rollout {id} starts ({}), waves {}, soak {soak_s:.0}s{}",
                    scaled
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    waves
                        .iter()
                        .map(|w| format!("{w}%"))
                        .collect::<Vec<_>>()
                        .join("/"),
                    by_suffix(&author)
                )
            }
            Action::RolloutPause(id) | Action::RolloutResume(id) | Action::RolloutAbort(id) => {
                let (what, verb) = match action {
                    Action::RolloutPause(_) => (RolloutAction::Pause, "paused"),
                    Action::RolloutResume(_) => (RolloutAction::Resume, "resumed"),
                    _ => (
                        RolloutAction::Abort,
                        "aborted (its settings come off every node)",
                    ),
                };
                let id = Self::cycle_id(id, cycle);
                let author = self.edit(
                    by,
                    Op::Rollout {
                        id: id.clone(),
                        action: what,
                    },
                )?;
                format!("operator: rollout {id} {verb}{}", by_suffix(&author))
            }
            Action::Command {
                id,
                action: what,
                target,
            } => {
                let id = Self::cycle_id(id, cycle);
                let target = match target {
                    Target::All => CommandTarget::All,
                    Target::Site(s) => CommandTarget::Site(s.clone()),
                    Target::Node(n) => CommandTarget::Node(n.clone()),
                };
                let shown = target.to_string();
                let author = self.edit(
                    by,
                    Op::CommandRun {
                        id: Some(id.clone()),
                        action: what.clone(),
                        target,
                    },
                )?;
                format!(
                    "operator: command {id}: run {what} on {shown}{}",
                    by_suffix(&author)
                )
            }
        })
    }

    /// Every running replica with its heads: (name, reaches the operator,
    /// heads).
    fn all_heads(&self) -> Vec<(String, Vec<String>)> {
        self.replicas(true)
            .into_iter()
            .map(|(name, e)| (name, e.with_replica(sorted_heads)))
            .collect()
    }

    /// Running replicas: (name, engine), the operator first; with
    /// `reachable`, only those the operator can reach now.
    fn replicas(&self, reachable: bool) -> Vec<(String, &Engine)> {
        let mut out = vec![("ops".to_string(), &self.ops)];
        for p in &self.peers {
            if reachable && p.spec.kind == ReplicaKind::Laptop && p.at != Place::Ops {
                continue;
            }
            if let Some(e) = &p.engine {
                out.push((p.spec.name.clone(), e));
            }
        }
        for n in &self.nodes {
            if reachable && self.partitioned.contains(&n.spec.site) {
                continue;
            }
            if let Some(d) = &n.daemon {
                out.push((n.spec.id.to_string(), d.engine()));
            }
        }
        out
    }

    /// (revision, result) of each node's last apply as the operator sees it,
    /// and each node's desired revision.
    fn applies(&self) -> Applies {
        self.ops.with_replica(|r| {
            let st = r.state().clone();
            self.nodes
                .iter()
                .map(|n| {
                    let applied = r
                        .health()
                        .get(n.spec.id.as_str())
                        .and_then(|s| s.reg.applied.as_ref())
                        .map(|a| (a.revision.clone(), a.result));
                    let desired = st.effective_node(&n.spec.id).ok().map(|e| e.revision());
                    (n.spec.id.to_string(), (applied, desired))
                })
                .collect()
        })
    }

    /// The id a rollout or command of the scenario has on pass `cycle` (a
    /// repeating demo starts it again under a new id).
    fn cycle_id(id: &str, cycle: u64) -> String {
        if cycle > 1 {
            format!("{id}-{cycle}")
        } else {
            id.to_string()
        }
    }

    fn check_now(
        &self,
        kind: &CheckKind,
        cycle: u64,
        seen: &BTreeSet<String>,
        open: &BTreeSet<String>,
    ) -> Result<(), String> {
        match kind {
            CheckKind::Converged => {
                let heads = self.all_heads();
                let lagging: Vec<&str> = heads
                    .iter()
                    .filter(|(_, h)| h != &heads[0].1)
                    .map(|(n, _)| n.as_str())
                    .collect();
                if lagging.is_empty() {
                    Ok(())
                } else {
                    Err(format!("not in step with ops: {}", lagging.join(", ")))
                }
            }
            CheckKind::NoEditLost => {
                let mut missing = Vec::new();
                for (name, e) in self.replicas(false) {
                    let lost = e.with_replica(|r| lacks(r, &self.edits));
                    if lost > 0 {
                        missing.push(format!("{name} lacks {lost}"));
                    }
                }
                let down: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| n.daemon.is_none())
                    .map(|n| n.spec.id.to_string())
                    .chain(
                        self.peers
                            .iter()
                            .filter(|p| p.engine.is_none())
                            .map(|p| p.spec.name.clone()),
                    )
                    .collect();
                if !missing.is_empty() {
                    Err(format!(
                        "of {} edits: {}",
                        self.edits.len(),
                        missing.join(", ")
                    ))
                } else if !down.is_empty() {
                    Err(format!("down, so not looked at: {}", down.join(", ")))
                } else {
                    Ok(())
                }
            }
            CheckKind::AlertFired(p) => {
                if seen.iter().any(|id| alert_matches(id, p)) {
                    Ok(())
                } else {
                    Err(format!(
                        "never shown (seen: {})",
                        seen.iter().cloned().collect::<Vec<_>>().join(", ")
                    ))
                }
            }
            // Decided in `run`, which knows when each alert fired.
            CheckKind::AlertQuiet(_) => Ok(()),
            CheckKind::AlertResolved(p) => {
                if !seen.iter().any(|id| alert_matches(id, p)) {
                    Err("never fired".into())
                } else if let Some(id) = open.iter().find(|id| alert_matches(id, p)) {
                    Err(format!("{id} still open"))
                } else {
                    Ok(())
                }
            }
            CheckKind::Applied { node, result } => {
                let applies = self.applies();
                let Some((applied, desired)) = applies.get(node.as_str()) else {
                    return Err("no such node".into());
                };
                match applied {
                    None => Err("no apply reported".into()),
                    Some((rev, res)) if res == result => {
                        if *result == ApplyResult::Ok && desired.as_ref() != Some(rev) {
                            Err(format!(
                                "reported ok for {rev} but desired is {}",
                                desired.as_deref().unwrap_or("?")
                            ))
                        } else {
                            Ok(())
                        }
                    }
                    Some((rev, res)) => {
                        Err(format!("reported {} for {rev}", spec::result_name(*res)))
                    }
                }
            }
            CheckKind::Runs { nodes, key, value } => {
                let mut wrong = Vec::new();
                for id in nodes {
                    let Some(i) = self.index(id) else { continue };
                    let n = &self.nodes[i];
                    if n.daemon.is_none() {
                        wrong.push(format!("{id} is down"));
                        continue;
                    }
                    let path = n
                        .root
                        .join(fleetdeck_node::apply::CURRENT)
                        .join(fleetdeck_node::render::CONFIG_FILE);
                    let live: Option<Value> = std::fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    match live.as_ref().map(|t| lookup(t, key)) {
                        None => wrong.push(format!("{id} has no live release")),
                        Some(Some(v)) if v == value => {}
                        Some(Some(v)) => wrong.push(format!("{id} runs {v}")),
                        Some(None) => wrong.push(format!("{id} runs without it")),
                    }
                }
                if wrong.is_empty() {
                    Ok(())
                } else {
                    Err(wrong.join(", "))
                }
            }
            CheckKind::RolloutHalted { rollout, wave } => {
                let id = Self::cycle_id(rollout, cycle);
                self.ops.with_replica(|r| {
                    let st = r.state().clone();
                    let Some(x) = st.rollouts.iter().find(|x| x.id == id) else {
                        return Err(format!("the operator has no rollout {id}"));
                    };
                    let phase = x.phase(&st, r.health());
                    let open = (0..x.spec.waves.len()).filter(|w| x.wave_open(*w)).count();
                    match (phase, wave) {
                        (Phase::Halted, Some(w)) if open != *w => {
                            Err(format!("halted with {open} wave(s) open, not {w}"))
                        }
                        (Phase::Halted, _) => Ok(()),
                        (other, _) => Err(format!(
                            "{} with {open} wave(s) open",
                            serde_json::to_value(other)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default()
                        )),
                    }
                })
            }
            CheckKind::RolloutDone(rollout) => {
                let id = Self::cycle_id(rollout, cycle);
                self.ops.with_replica(|r| {
                    let st = r.state().clone();
                    let Some(x) = st.rollouts.iter().find(|x| x.id == id) else {
                        return Err(format!("the operator has no rollout {id}"));
                    };
                    match x.phase(&st, r.health()) {
                        Phase::Done => Ok(()),
                        other => {
                            let waves = x.wave_status(&st, r.health());
                            Err(format!(
                                "{:?}: {}",
                                other,
                                waves
                                    .iter()
                                    .map(|w| format!(
                                        "{}% {} {}/{} applied",
                                        w.percent,
                                        if w.open { "open" } else { "closed" },
                                        w.applied,
                                        w.nodes.len()
                                    ))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        }
                    }
                })
            }
            CheckKind::Receipts {
                change,
                nodes,
                state,
            } => {
                use fleetdeck_store::receipts::{Delivery, receipts};
                let message = change.replace("{cycle}", &cycle.to_string());
                self.ops.with_replica(|r| {
                    let Some(hash) = r
                        .history()
                        .into_iter()
                        .find(|e| e.message.as_deref() == Some(message.as_str()))
                        .and_then(|e| e.id.parse().ok())
                    else {
                        return Err(format!("the operator has no change '{message}' yet"));
                    };
                    let all = receipts(r, &[hash], fleetdeck_store::now_ms())
                        .map_err(|e| e.to_string())?
                        .pop()
                        .unwrap_or_default();
                    let ok = |d: Delivery| match state {
                        Delivery::Applied => d == Delivery::Applied,
                        Delivery::Delivered => d.has_it(),
                        other => d == *other,
                    };
                    let wrong: Vec<String> = all
                        .iter()
                        .filter(|x| nodes.iter().any(|n| n.as_str() == x.node))
                        .filter(|x| !ok(x.state))
                        .map(|x| format!("{} {}", x.node, x.state.as_str()))
                        .collect();
                    if wrong.is_empty() {
                        Ok(())
                    } else {
                        Err(wrong.join(", "))
                    }
                })
            }
            CheckKind::CommandDone(cmd) => {
                let id = Self::cycle_id(cmd, cycle);
                self.ops.with_replica(|r| {
                    let st = r.state();
                    let Some(rec) = st.commands.get(&id) else {
                        return Err(format!("the operator has no command {id}"));
                    };
                    // The nodes' results registers (and any result still
                    // in the document), as `command status` reads them.
                    let results = r.command_results(&id);
                    let pending: Vec<String> = st
                        .nodes
                        .values()
                        .filter(|n| rec.targets(&n.id, &n.site))
                        .filter_map(|n| match results.get(n.id.as_str()) {
                            Some(res) if res.ok => None,
                            Some(res) => Some(format!("{} failed: {}", n.id, res.output.trim())),
                            None => Some(format!("{} has not reported", n.id)),
                        })
                        .collect();
                    if pending.is_empty() {
                        Ok(())
                    } else {
                        Err(pending.join(", "))
                    }
                })
            }
        }
    }

    /// Plays the timeline. Every event, alert change and apply outcome is
    /// passed to `log` as one line, stamped with scenario time. Ends when
    /// the timeline is over (and, with `check`, every check is decided),
    /// after `stop_after` (real time), or when `stop` is set; with
    /// `repeat`, the timeline starts over until then.
    pub async fn run(
        &mut self,
        opts: &RunOptions,
        stop: &AtomicBool,
        log: &mut (dyn FnMut(String) + Send),
    ) -> Result<Report, RunError> {
        let start = Instant::now();
        let speed = self.speed;
        let allowance = LATENCY_ALLOWANCE.as_secs_f64() * speed;
        let cycle_len = self.scenario.duration_s;
        let events = self.scenario.events.clone();
        let checks = if opts.check {
            self.scenario.checks.clone()
        } else {
            Vec::new()
        };
        let mut state: Vec<CheckState> = checks.iter().map(|_| CheckState::Pending).collect();
        let mut cycle = 1u64;
        let mut next_event = 0usize;
        let mut played = 0usize;
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut open: BTreeSet<String> = BTreeSet::new();
        // Every time an alert started to show: (id, scenario time).
        let mut fired: Vec<(String, f64)> = Vec::new();
        let mut last_apply: BTreeMap<String, Option<(String, ApplyResult)>> = BTreeMap::new();
        log(format!(
            "scenario {}: {} sites, {} nodes{}, {} events over {:.0}s at speed {speed} ({:.0}s real){}",
            self.scenario.name,
            self.scenario.sites.len(),
            self.scenario.nodes.len(),
            if self.peers.is_empty() {
                String::new()
            } else {
                format!(
                    ", {}",
                    self.peers
                        .iter()
                        .map(|p| format!(
                            "{} {}",
                            match p.spec.kind {
                                ReplicaKind::Hub => "hub",
                                ReplicaKind::Laptop => "laptop",
                            },
                            p.spec.name
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            events.len(),
            cycle_len,
            cycle_len / speed,
            if opts.repeat { ", repeating" } else { "" }
        ));
        log(match self.settled_in {
            Some(d) => format!(
                "every replica held the fleet's first changes after {:.1}s (real)",
                d.as_secs_f64()
            ),
            None => format!(
                "the replicas did not all hold the fleet's first changes within {}s (real); starting anyway",
                SETTLE.as_secs()
            ),
        });
        loop {
            // Scenario time.
            let t = start.elapsed().as_secs_f64() * speed;
            let stamp = |t: f64| format!("[{t:7.1}s]");
            if stop.load(Ordering::Relaxed) || opts.stop_after.is_some_and(|d| start.elapsed() >= d)
            {
                break;
            }
            // Events of this pass that are due.
            let in_cycle = t - (cycle - 1) as f64 * cycle_len;
            while next_event < events.len() && events[next_event].at_s <= in_cycle {
                let ev = &events[next_event];
                let action = match ev.rotate.len() {
                    0 => ev.action.clone(),
                    len => ev.action.on_node(&ev.rotate[(cycle as usize - 1) % len]),
                };
                let by = ev.by.clone();
                let line = match self.play(&action, by.as_deref(), cycle).await {
                    Ok(line) => line,
                    // An edit on a replica that is down is part of the story.
                    Err(RunError::Sim(why)) => format!("not played: {why}"),
                    Err(e) => return Err(e),
                };
                log(format!("{} {line}", stamp(t)));
                next_event += 1;
                played += 1;
            }
            if in_cycle >= cycle_len && opts.repeat {
                cycle += 1;
                next_event = 0;
                log(format!("{} timeline starts over (pass {cycle})", stamp(t)));
            }
            // What the operator sees.
            let now_alerts = self.ops.with_replica(|r| r.alerts(now_ms()));
            let ids: BTreeSet<String> = now_alerts.iter().map(|a| a.id.clone()).collect();
            for a in &now_alerts {
                if !open.contains(&a.id) {
                    fired.push((a.id.clone(), t));
                    log(format!(
                        "{} alert fired    {} ({}): {}",
                        stamp(t),
                        a.id,
                        a.severity,
                        a.message
                    ));
                }
            }
            for id in open.difference(&ids) {
                log(format!("{} alert resolved {id}", stamp(t)));
            }
            seen.extend(ids.iter().cloned());
            open = ids;
            for (node, (applied, _)) in self.applies() {
                let prev = last_apply.get(&node).cloned().flatten();
                if applied != prev {
                    if let Some((rev, res)) = &applied {
                        log(format!(
                            "{} node {node} reports apply {rev}: {}",
                            stamp(t),
                            spec::result_name(*res)
                        ));
                    }
                    last_apply.insert(node, applied);
                }
            }
            // Checks (of the first pass).
            for (c, st) in checks.iter().zip(state.iter_mut()) {
                if !matches!(st, CheckState::Pending) || t < c.at_s {
                    continue;
                }
                if let CheckKind::AlertQuiet(p) = &c.kind {
                    let end = c.at_s + c.within_s;
                    let early = fired
                        .iter()
                        .find(|(id, at)| alert_matches(id, p) && (c.at_s..=end).contains(at));
                    if let Some((id, at)) = early {
                        let why = format!("{id} fired at {at:.0}s");
                        log(format!("{} check FAIL {}: {why}", stamp(t), c.describe()));
                        *st = CheckState::Failed(why);
                    } else if t > end {
                        log(format!("{} check ok   {}", stamp(t), c.describe()));
                        *st = CheckState::Held(t);
                    }
                    continue;
                }
                match self.check_now(&c.kind, 1, &seen, &open) {
                    Ok(()) => {
                        log(format!("{} check ok   {}", stamp(t), c.describe()));
                        *st = CheckState::Held(t);
                    }
                    Err(why) if t > c.at_s + c.within_s + allowance => {
                        log(format!("{} check FAIL {}: {why}", stamp(t), c.describe()));
                        *st = CheckState::Failed(why);
                    }
                    Err(_) => {}
                }
            }
            let decided = state.iter().all(|s| !matches!(s, CheckState::Pending));
            if !opts.repeat && in_cycle >= cycle_len && next_event >= events.len() && decided {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let elapsed_s = start.elapsed().as_secs_f64();
        for st in state.iter_mut() {
            if matches!(st, CheckState::Pending) {
                *st = CheckState::Failed("not decided before the run stopped".into());
            }
        }
        let now = now_ms();
        let (sites, summary, alerts) = self.ops.with_replica(|r| r.status(now));
        Ok(Report {
            scenario: self.scenario.name.clone(),
            elapsed_s,
            speed,
            scenario_s: elapsed_s * speed,
            events_played: played,
            checks: checks
                .iter()
                .zip(state)
                .map(|(c, s)| CheckOutcome {
                    what: format!("{} (from {:.0}s)", c.describe(), c.at_s),
                    result: match s {
                        CheckState::Held(t) => Ok(t),
                        CheckState::Failed(w) => Err(w),
                        CheckState::Pending => Err("not decided".into()),
                    },
                })
                .collect(),
            alerts_seen: seen.into_iter().collect(),
            alerts_open: alerts
                .iter()
                .map(|a| (a.id.clone(), a.severity.to_string(), a.message.clone()))
                .collect(),
            sites,
            summary,
            applies: self
                .applies()
                .into_iter()
                .map(|(n, (a, _))| {
                    (
                        n,
                        a.map(|(rev, res)| (rev, spec::result_name(res).to_string())),
                    )
                })
                .collect(),
        })
    }

    /// Stops every daemon, hub and laptop (all at once: each stop may wait
    /// up to two seconds for peers that are gone) and the operator's engine.
    pub async fn shutdown(mut self) {
        let mut stops = tokio::task::JoinSet::new();
        for n in &mut self.nodes {
            if let Some(d) = n.daemon.take() {
                stops.spawn(d.shutdown());
            }
        }
        for p in &mut self.peers {
            if let Some(e) = p.engine.take() {
                stops.spawn(async move { e.shutdown().await });
            }
        }
        while stops.join_next().await.is_some() {}
        self.ops.shutdown().await;
        let _ = std::fs::remove_file(self.dir.join("ops").join(STATUS_FILE));
    }
}

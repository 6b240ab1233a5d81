//! Plays a scenario: an operator replica ("ops", admin) and one real node
//! daemon per node, each with its own replica, data dir and release root,
//! all synced over loopback iroh endpoints that share one [`Faults`]. Metrics
//! are simulated ([`crate::sim`]); everything else (sync, apply, rollback,
//! heartbeats, alerts) is the real code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetdeck_node::daemon::{Daemon, DaemonConfig};
use fleetdeck_store::alerts::{FleetSummary, SiteState};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::ApplyResult;
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{MemberKey, NodeId, Replica, Role, SiteId, now_ms};
use fleetdeck_sync::{Engine, EngineConfig, Faults};
use serde_json::Value;

use crate::sim::{Incidents, SharedIncidents, SimMetrics};
use crate::spec::{self, Action, CheckKind, Layer, Scenario};

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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: 1,
            repeat: false,
            stop_after: None,
            check: false,
            dir: None,
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
}

pub struct Runner {
    _tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    scenario: Scenario,
    ops: Engine,
    ops_key: MemberKey,
    faults: Faults,
    nodes: Vec<NodeRt>,
    seed: u64,
    /// Sites cut off right now.
    partitioned: BTreeSet<SiteId>,
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
    pub elapsed_s: f64,
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

    pub fn render(&self) -> String {
        let mut s = String::new();
        let sm = &self.summary;
        let _ = writeln!(
            s,
            "scenario {}: {:.0}s, {} events played",
            self.scenario, self.elapsed_s, self.events_played
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
                        let _ = writeln!(s, "  ok    {} (at {t:.1}s)", c.what);
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

impl Runner {
    /// Builds the fleet: the operator replica with the scenario's sites,
    /// nodes, members and config; a replica per node made from the
    /// operator's changes; and a running daemon per node.
    pub async fn build(scenario: Scenario, opts: &RunOptions) -> Result<Runner, RunError> {
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
            });
        }
        let sc = &scenario;
        ops.change(&format!("scenario {}: fleet defaults", sc.name), |d, _| {
            for (k, v) in &sc.config {
                d.set_config(&LayerRef::Fleet, k, v)?;
            }
            Ok(())
        })?;
        for site in &sc.sites {
            ops.change(
                &format!("scenario {}: site {}", sc.name, site.id),
                |d, _| {
                    d.add_site(
                        &site.id,
                        &SiteRecord {
                            name: site.name.clone(),
                            lat: site.lat,
                            lon: site.lon,
                            zone: site.zone.clone(),
                        },
                    )?;
                    for (k, v) in &site.config {
                        d.set_config(&LayerRef::Site(site.id.clone()), k, v)?;
                    }
                    Ok(())
                },
            )?;
        }
        ops.change(&format!("scenario {}: nodes enrolled", sc.name), |d, _| {
            for n in &nodes {
                d.add_node(
                    &n.spec.id,
                    &NodeRecord {
                        site: n.spec.site.to_string(),
                        role: n.spec.role.clone(),
                    },
                )?;
                d.put_member(&n.key, n.spec.id.as_str(), Role::Node, now_ms())?;
                for (k, v) in &n.spec.config {
                    d.set_config(&LayerRef::Node(n.spec.id.clone()), k, v)?;
                }
            }
            Ok(())
        })?;
        let changes = ops.changes_after(&[]);
        for n in &nodes {
            Replica::init_from_changes(&n.dir, changes.clone())?;
        }
        let mut cfg = engine_cfg(&faults);
        cfg.status_file = Some(dir.join("ops").join(STATUS_FILE));
        let ops = Engine::start(ops, cfg).await?;
        let mut runner = Runner {
            _tmp: tmp,
            dir,
            scenario,
            ops,
            ops_key,
            faults,
            nodes,
            seed: opts.seed,
            partitioned: BTreeSet::new(),
        };
        for i in 0..runner.nodes.len() {
            runner.start_node(i).await?;
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
        n.daemon = Some(d);
        n.starts += 1;
        Ok(())
    }

    fn index(&self, node: &NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| &n.spec.id == node)
    }

    fn edit(
        &self,
        message: &str,
        f: impl FnOnce(&mut fleetdeck_store::document::FleetDoc) -> fleetdeck_store::Result<()>,
    ) -> Result<(), RunError> {
        self.ops
            .with_replica(|r| r.change(message, |d, _| f(d)).map(|_| ()))?;
        self.ops.changed();
        Ok(())
    }

    /// Plays one event; returns the line to log.
    async fn play(&mut self, action: &Action, cycle: u64) -> Result<String, RunError> {
        let incidents = |r: &Runner, n: &NodeId| r.index(n).map(|i| r.nodes[i].incidents.clone());
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
                if let Some(inc) = incidents(self, n) {
                    inc.lock().unwrap_or_else(|e| e.into_inner()).disk_pct = Some(*pct);
                }
                format!("node {n}: disk / fills to {pct:.0}%")
            }
            Action::DiskClear(n) => {
                if let Some(inc) = incidents(self, n) {
                    inc.lock().unwrap_or_else(|e| e.into_inner()).disk_pct = None;
                }
                format!("node {n}: disk / cleaned up")
            }
            Action::CpuSpike(n, pct) => {
                if let Some(inc) = incidents(self, n) {
                    inc.lock().unwrap_or_else(|e| e.into_inner()).cpu_pct = Some(*pct);
                }
                format!("node {n}: CPU spikes to {pct:.0}%")
            }
            Action::CpuClear(n) => {
                if let Some(inc) = incidents(self, n) {
                    inc.lock().unwrap_or_else(|e| e.into_inner()).cpu_pct = None;
                }
                format!("node {n}: CPU back to normal")
            }
            Action::BadConfig(n) => {
                let path = ConfigPath::parse("apply.check")?;
                let value = Value::String(BAD_CHECK.into());
                let layer = LayerRef::Node(n.clone());
                self.edit(&format!("ops: new health check on {n} (a bad one)"), |d| {
                    d.set_config(&layer, &path, &value)
                })?;
                format!("operator pushes a bad config to {n} (its apply.check fails)")
            }
            Action::Partition(site) => {
                let inside: Vec<MemberKey> = self
                    .nodes
                    .iter()
                    .filter(|n| &n.spec.site == site)
                    .map(|n| n.key.clone())
                    .collect();
                let mut outside: Vec<MemberKey> = self
                    .nodes
                    .iter()
                    .filter(|n| &n.spec.site != site)
                    .map(|n| n.key.clone())
                    .collect();
                outside.push(self.ops_key.clone());
                self.faults.partition(&inside, &outside);
                self.partitioned.insert(site.clone());
                format!(
                    "site {site} is cut off (WAN down: {} nodes partitioned)",
                    inside.len()
                )
            }
            Action::Heal => {
                self.faults.heal();
                self.partitioned.clear();
                "every partition healed".to_string()
            }
            Action::Set {
                layer,
                key,
                value,
                message,
            } => {
                let value = with_cycle(value, cycle);
                let lr = layer_ref(layer);
                let msg = message
                    .as_ref()
                    .map(|m| m.replace("{cycle}", &cycle.to_string()))
                    .unwrap_or_else(|| {
                        format!("ops: set {} on {}", key.to_key(), layer_name(layer))
                    });
                self.edit(&msg, |d| d.set_config(&lr, key, &value))?;
                format!(
                    "operator: {} = {value} on {} ({msg})",
                    key.to_key(),
                    layer_name(layer)
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
                self.edit(&msg, |d| d.unset_config(&lr, key))?;
                format!(
                    "operator: unset {} on {} ({msg})",
                    key.to_key(),
                    layer_name(layer)
                )
            }
        })
    }

    /// Running replicas the operator can reach, by name, with their heads.
    fn heads(&self) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut h: Vec<String> = self
            .ops
            .with_replica(|r| r.heads())
            .iter()
            .map(|c| c.to_string())
            .collect();
        h.sort();
        out.push(("ops".to_string(), h));
        for n in &self.nodes {
            if self.partitioned.contains(&n.spec.site) {
                continue;
            }
            if let Some(d) = &n.daemon {
                let mut h: Vec<String> = d
                    .engine()
                    .with_replica(|r| r.heads())
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                h.sort();
                out.push((n.spec.id.to_string(), h));
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

    fn check_now(
        &self,
        kind: &CheckKind,
        seen: &BTreeSet<String>,
        open: &BTreeSet<String>,
    ) -> Result<(), String> {
        match kind {
            CheckKind::Converged => {
                let heads = self.heads();
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
        }
    }

    /// Plays the timeline. Every event, alert change and apply outcome is
    /// passed to `log` as one line. Ends when the timeline is over (and,
    /// with `check`, every check is decided), after `stop_after`, or when
    /// `stop` is set; with `repeat`, the timeline starts over until then.
    pub async fn run(
        &mut self,
        opts: &RunOptions,
        stop: &AtomicBool,
        log: &mut (dyn FnMut(String) + Send),
    ) -> Result<Report, RunError> {
        let start = Instant::now();
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
        let mut last_apply: BTreeMap<String, Option<(String, ApplyResult)>> = BTreeMap::new();
        log(format!(
            "scenario {}: {} sites, {} nodes, {} events over {:.0}s{}",
            self.scenario.name,
            self.scenario.sites.len(),
            self.scenario.nodes.len(),
            events.len(),
            cycle_len,
            if opts.repeat { ", repeating" } else { "" }
        ));
        loop {
            let elapsed = start.elapsed().as_secs_f64();
            let stamp = |t: f64| format!("[{t:7.1}s]");
            if stop.load(Ordering::Relaxed)
                || opts.stop_after.is_some_and(|d| elapsed >= d.as_secs_f64())
            {
                break;
            }
            // Events of this pass that are due.
            let in_cycle = elapsed - (cycle - 1) as f64 * cycle_len;
            while next_event < events.len() && events[next_event].at_s <= in_cycle {
                let ev = &events[next_event];
                let action = match ev.rotate.len() {
                    0 => ev.action.clone(),
                    len => ev.action.on_node(&ev.rotate[(cycle as usize - 1) % len]),
                };
                let line = self.play(&action, cycle).await?;
                log(format!("{} {line}", stamp(elapsed)));
                next_event += 1;
                played += 1;
            }
            if in_cycle >= cycle_len && opts.repeat {
                cycle += 1;
                next_event = 0;
                log(format!(
                    "{} timeline starts over (pass {cycle})",
                    stamp(elapsed)
                ));
            }
            // What the operator sees.
            let now_alerts = self.ops.with_replica(|r| r.alerts(now_ms()));
            let ids: BTreeSet<String> = now_alerts.iter().map(|a| a.id.clone()).collect();
            for a in &now_alerts {
                if !open.contains(&a.id) {
                    log(format!(
                        "{} alert fired    {} ({}): {}",
                        stamp(elapsed),
                        a.id,
                        a.severity,
                        a.message
                    ));
                }
            }
            for id in open.difference(&ids) {
                log(format!("{} alert resolved {id}", stamp(elapsed)));
            }
            seen.extend(ids.iter().cloned());
            open = ids;
            for (node, (applied, _)) in self.applies() {
                let prev = last_apply.get(&node).cloned().flatten();
                if applied != prev {
                    if let Some((rev, res)) = &applied {
                        log(format!(
                            "{} node {node} reports apply {rev}: {}",
                            stamp(elapsed),
                            spec::result_name(*res)
                        ));
                    }
                    last_apply.insert(node, applied);
                }
            }
            // Checks.
            for (c, st) in checks.iter().zip(state.iter_mut()) {
                if !matches!(st, CheckState::Pending) || elapsed < c.at_s {
                    continue;
                }
                match self.check_now(&c.kind, &seen, &open) {
                    Ok(()) => {
                        log(format!("{} check ok   {}", stamp(elapsed), c.describe()));
                        *st = CheckState::Held(elapsed);
                    }
                    Err(why) if elapsed > c.at_s + c.within_s => {
                        log(format!(
                            "{} check FAIL {}: {why}",
                            stamp(elapsed),
                            c.describe()
                        ));
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

    /// Stops every daemon and the operator's engine.
    pub async fn shutdown(mut self) {
        for n in &mut self.nodes {
            if let Some(d) = n.daemon.take() {
                d.shutdown().await;
            }
        }
        self.ops.shutdown().await;
        let _ = std::fs::remove_file(self.dir.join("ops").join(STATUS_FILE));
    }
}

//! The daemon loop of one node: keep the replica in sync, report a heartbeat
//! every `heartbeat.interval_s`, apply the node's effective config when it
//! changes, watch the live release for hand edits, honour the fleet's freeze,
//! and stop applying (safe mode) after repeated failures or a crash loop.
//!
//! Everything the daemon must remember across restarts (failure count, safe
//! mode, the last apply outcome) is in `ROOT/daemon.json`; the live release
//! itself is the `current` symlink, so a node cut off from everything keeps
//! running its last good config indefinitely.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetdeck_store::health::{ApplyReport, ApplyResult, HealthRegister, Metrics};
use fleetdeck_store::{NodeId, Replica, now_ms};
use fleetdeck_sync::{Engine, EngineConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::apply::{Applier, Hooks, Outcome};
use crate::command::CmdSpec;
use crate::heartbeat::{Checks, Probe};
use crate::render::{self, Rendered};

/// Failed applies in a row before safe mode (`safe_mode.max_failures`).
pub const DEFAULT_MAX_FAILURES: u64 = 3;
/// Starts within [`CRASH_WINDOW_MS`] that count as a crash loop.
pub const CRASH_LOOP_STARTS: usize = 5;
pub const CRASH_WINDOW_MS: i64 = 10 * 60 * 1000;
const STATE_FILE: &str = "daemon.json";

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Store(#[from] fleetdeck_store::StoreError),
    #[error("{0}")]
    Sync(#[from] fleetdeck_sync::SyncError),
    #[error("{0}")]
    Apply(#[from] crate::apply::ApplyError),
    #[error("{0}")]
    Invalid(String),
}

/// Where the daemon's metrics come from: the host, or a simulation (the
/// scenario runner).
pub trait MetricSource: Send {
    fn sample(&mut self) -> Metrics;
}

impl MetricSource for Probe {
    fn sample(&mut self) -> Metrics {
        self.metrics()
    }
}

pub struct DaemonConfig {
    pub root: PathBuf,
    pub node: NodeId,
    pub sync: EngineConfig,
}

impl DaemonConfig {
    /// The sync engine's config: a node's engine ends tunnels to the node.
    fn engine(&self) -> EngineConfig {
        let mut sync = self.sync.clone();
        sync.tunnel_node = Some(self.node.clone());
        sync
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    consecutive_failures: u64,
    /// (reason, since_ms) while in safe mode.
    safe_mode: Option<(String, i64)>,
    last: Option<ApplyReport>,
    /// A revision that failed: not retried until the config changes.
    failed_revision: Option<String>,
    starts: Vec<i64>,
    /// Applies by outcome since this node was set up: ok, rolled back, failed.
    #[serde(default)]
    applies: [u64; 3],
    /// The replica's heads when the live release was last found to be the
    /// effective config (`HealthRegister::live_at`).
    #[serde(default)]
    live_at: Vec<String>,
}

impl State {
    /// After a good apply (or an operator's resume): failures start over.
    fn clear_failures(&mut self) {
        self.consecutive_failures = 0;
        self.failed_revision = None;
    }

    fn load(root: &Path) -> State {
        std::fs::read(root.join(STATE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, root: &Path) {
        let path = root.join(STATE_FILE);
        let tmp = root.join(format!("{STATE_FILE}.tmp"));
        if let Ok(bytes) = serde_json::to_vec_pretty(self)
            && std::fs::write(&tmp, bytes).is_ok()
        {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}

struct Shared {
    engine: Engine,
    node: NodeId,
    applier: Applier,
    state: Mutex<State>,
    drift: Mutex<Vec<String>>,
    ledger: Mutex<crate::commands::Ledger>,
    /// Wakes the heartbeat to report at once (after an apply).
    beat_now: Notify,
    /// How far this daemon's clock is off (ms): 0 on a device, where the
    /// system clock is the clock; set by scenarios that skew a node's clock.
    skew_ms: AtomicI64,
}

impl Shared {
    /// The node's clock: what it stamps its heartbeats and reports with.
    fn now(&self) -> i64 {
        now_ms().saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }
}

/// A running node daemon.
pub struct Daemon {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How often [`Daemon::start_when_known`] says it is still waiting.
pub const WAIT_NOTICE: Duration = Duration::from_secs(10);

impl Daemon {
    /// Starts the daemon for `cfg.node` on `replica`; an error if the
    /// replica has not heard of the node.
    pub async fn start(
        replica: Replica,
        cfg: DaemonConfig,
        metrics: Box<dyn MetricSource>,
    ) -> Result<Daemon, DaemonError> {
        replica.state().node(&cfg.node)?;
        let engine = Engine::start(replica, cfg.engine()).await?;
        Daemon::start_on(engine, cfg, metrics).await
    }

    /// Starts the daemon for `cfg.node` on `replica`, waiting first, if the
    /// replica has not heard of the node yet, until sync brings it (a device
    /// set up before an operator added its node, or whose replica is still
    /// catching up): the sync engine runs meanwhile, and `waiting` is called
    /// at once and then every [`WAIT_NOTICE`] while it waits. `stop` ends
    /// the wait (Ctrl-C, SIGTERM): then the engine is shut down and the
    /// answer is `None`.
    pub async fn start_when_known(
        replica: Replica,
        cfg: DaemonConfig,
        metrics: Box<dyn MetricSource>,
        stop: impl std::future::Future<Output = ()>,
        mut waiting: impl FnMut(&NodeId),
    ) -> Result<Option<Daemon>, DaemonError> {
        let engine = Engine::start(replica, cfg.engine()).await?;
        let known = |e: &Engine| e.with_replica(|r| r.state().nodes.contains_key(&cfg.node));
        let mut changes = engine.subscribe();
        let mut stop = std::pin::pin!(stop);
        let mut said: Option<tokio::time::Instant> = None;
        while !known(&engine) {
            let now = tokio::time::Instant::now();
            if said.is_none_or(|t| now >= t + WAIT_NOTICE) {
                waiting(&cfg.node);
                said = Some(now);
            }
            let next_notice = said.map_or(now, |t| t + WAIT_NOTICE);
            tokio::select! {
                () = &mut stop => {
                    engine.shutdown().await;
                    return Ok(None);
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The engine is gone; nothing more will arrive.
                        return Err(fleetdeck_store::StoreError::UnknownNode(cfg.node.to_string()).into());
                    }
                }
                () = tokio::time::sleep_until(next_notice) => {}
            }
        }
        Daemon::start_on(engine, cfg, metrics).await.map(Some)
    }

    /// The rest of start-up, once the engine runs and the node is known; on
    /// an error the engine is shut down.
    async fn start_on(
        engine: Engine,
        cfg: DaemonConfig,
        metrics: Box<dyn MetricSource>,
    ) -> Result<Daemon, DaemonError> {
        match Daemon::prepare(&engine, &cfg) {
            Ok((applier, state)) => Ok(Daemon::launch(engine, cfg, applier, state, metrics)),
            Err(e) => {
                engine.shutdown().await;
                Err(e)
            }
        }
    }

    /// Binds the node to this replica, recovers the release directory and
    /// counts this start (crash loops).
    fn prepare(engine: &Engine, cfg: &DaemonConfig) -> Result<(Applier, State), DaemonError> {
        let node = &cfg.node;
        let key = engine.key().clone();
        let bound = engine.with_replica(|r| r.state().node(node).map(|n| n.key.clone()))?;
        if bound.as_ref() != Some(&key) {
            engine.with_replica(|r| {
                r.change(
                    &format!("node {node} runs on replica {}", key.short()),
                    |doc, _| doc.bind_node(node, &key),
                )
            })?;
            engine.changed();
        }
        let applier = Applier::new(&cfg.root)?;
        if let Some(what) = applier.recover()? {
            tracing::warn!("{what}");
        }
        let mut state = State::load(&cfg.root);
        let now = now_ms();
        state.starts.retain(|t| now - t < CRASH_WINDOW_MS);
        state.starts.push(now);
        if state.starts.len() >= CRASH_LOOP_STARTS && state.safe_mode.is_none() {
            state.safe_mode = Some((
                format!(
                    "crash loop: {} starts within 10 minutes",
                    state.starts.len()
                ),
                now,
            ));
        }
        state.save(&cfg.root);
        if let Some((why, _)) = &state.safe_mode {
            tracing::error!(node = %node, "safe mode: {why}; staying on the live release");
        }
        Ok((applier, state))
    }

    fn launch(
        engine: Engine,
        cfg: DaemonConfig,
        applier: Applier,
        state: State,
        metrics: Box<dyn MetricSource>,
    ) -> Daemon {
        let shared = Arc::new(Shared {
            engine,
            node: cfg.node,
            applier,
            state: Mutex::new(state),
            drift: Mutex::new(Vec::new()),
            ledger: Mutex::new(crate::commands::Ledger::load(&cfg.root)),
            beat_now: Notify::new(),
            skew_ms: AtomicI64::new(0),
        });
        let watcher = watch_release(&shared);
        let tasks = vec![
            tokio::spawn(heartbeat_loop(shared.clone(), metrics)),
            tokio::spawn(apply_loop(shared.clone())),
        ];
        Daemon {
            shared,
            tasks,
            _watcher: watcher,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Puts this daemon's clock `ms` off the system clock (negative:
    /// behind), as a device with no real-time clock or a bad NTP source
    /// would be. For scenarios and tests; a device runs with 0.
    pub fn set_clock_skew(&self, ms: i64) {
        self.shared.skew_ms.store(ms, Ordering::Relaxed);
    }

    /// The live revision.
    pub fn current(&self) -> Option<String> {
        self.shared.applier.current()
    }

    pub fn last_outcome(&self) -> Option<ApplyReport> {
        lock(&self.shared.state).last.clone()
    }

    pub fn safe_mode(&self) -> Option<String> {
        lock(&self.shared.state)
            .safe_mode
            .as_ref()
            .map(|(w, _)| w.clone())
    }

    /// Prometheus text exposition of this node's health, applies and sync.
    pub fn metrics_text(&self) -> String {
        let sh = &self.shared;
        let (last, applies, safe) = {
            let st = lock(&sh.state);
            (st.last.clone(), st.applies, st.safe_mode.is_some())
        };
        let (reg, frozen) = sh.engine.with_replica(|r| {
            (
                r.health().get(sh.node.as_str()).map(|s| s.reg.clone()),
                r.state().is_frozen(),
            )
        });
        let node = sh.node.as_str();
        let mut m = crate::metrics::Exposition::default();
        if let Some(reg) = &reg {
            m.gauge(
                "fleetdeck_cpu_percent",
                "CPU use",
                &[("node", node)],
                reg.metrics.cpu_pct,
            );
            m.gauge(
                "fleetdeck_memory_percent",
                "memory use",
                &[("node", node)],
                reg.metrics.mem_pct,
            );
            for d in &reg.metrics.disks {
                m.gauge(
                    "fleetdeck_disk_used_percent",
                    "disk use per mount",
                    &[("node", node), ("mount", &d.mount)],
                    d.used_pct,
                );
            }
            m.gauge(
                "fleetdeck_heartbeat_seq",
                "heartbeats sent",
                &[("node", node)],
                reg.seq as f64,
            );
        }
        for (i, result) in ["ok", "rolled_back", "failed"].iter().enumerate() {
            m.counter(
                "fleetdeck_applies_total",
                "config applies by outcome",
                &[("node", node), ("result", result)],
                applies[i] as f64,
            );
        }
        if let Some(l) = &last {
            m.gauge(
                "fleetdeck_apply_duration_seconds",
                "duration of the last apply",
                &[("node", node)],
                l.duration_ms as f64 / 1000.0,
            );
        }
        m.gauge(
            "fleetdeck_safe_mode",
            "1 while the node is in safe mode",
            &[("node", node)],
            f64::from(u8::from(safe)),
        );
        m.gauge(
            "fleetdeck_fleet_frozen",
            "1 while the fleet is frozen",
            &[],
            f64::from(u8::from(frozen)),
        );
        m.gauge(
            "fleetdeck_sync_peers_connected",
            "sessions with peers",
            &[],
            sh.engine.connected().len() as f64,
        );
        m.counter(
            "fleetdeck_sync_bytes_received_total",
            "sync bytes received",
            &[],
            sh.engine.stats().bytes_in() as f64,
        );
        m.counter(
            "fleetdeck_sync_bytes_sent_total",
            "sync bytes sent",
            &[],
            sh.engine.stats().bytes_out() as f64,
        );
        m.finish()
    }

    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared.engine.shutdown().await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The node's effective config as a JSON tree, the fleet's freeze flag, and
/// when an operator last resumed the node.
/// The node's effective config, whether the fleet is frozen, when it was
/// last resumed, and the replica's heads all of that was read at.
fn desired(shared: &Shared) -> Result<(Value, bool, Option<i64>, Vec<String>), DaemonError> {
    shared.engine.with_replica(|r| {
        let st = r.state().clone();
        let eff = st.effective_node(&shared.node)?;
        let resume = st.node(&shared.node)?.resume_ms;
        Ok((eff.to_tree(), st.is_frozen(), resume, heads_hex(r)))
    })
}

/// The replica's heads as a register reports them.
fn heads_hex(r: &mut fleetdeck_store::Replica) -> Vec<String> {
    r.heads()
        .iter()
        .take(fleetdeck_store::health::MAX_REPORTED_HEADS)
        .map(|h| h.to_string())
        .collect()
}

/// Programs in this node's config whose value was written by someone who
/// may not write it (see `rights::refused_programs`): nothing of them runs.
fn refused_programs(shared: &Shared) -> Vec<String> {
    shared.engine.with_replica(|r| {
        let st = r.state().clone();
        fleetdeck_store::rights::refused_programs(r.doc_mut().automerge_mut(), &st, &shared.node)
    })
}

fn hooks(tree: &Value) -> Result<Hooks, String> {
    let spec = |k: &str| {
        tree.get("apply")
            .and_then(|a| a.get(k))
            .map(|v| CmdSpec::from_value(v).map_err(|e| format!("apply.{k}: {e}")))
            .transpose()
    };
    Ok(Hooks {
        reload: spec("reload")?,
        check: spec("check")?,
    })
}

fn uint(tree: &Value, section: &str, key: &str) -> Option<u64> {
    tree.get(section)
        .and_then(|s| s.get(key))
        .and_then(Value::as_u64)
}

async fn apply_loop(shared: Arc<Shared>) {
    let mut changes = shared.engine.subscribe();
    let mut frozen_logged = false;
    let mut changed = true;
    loop {
        // Applying, drift and commands only look at the replica again when
        // it changed; the one-second tick only lets rollout soak times pass.
        if changed {
            if let Err(e) = apply_once(&shared, &mut frozen_logged).await {
                tracing::warn!(node = %shared.node, "apply: {e}");
            }
            if let Err(e) = start_commands(&shared) {
                tracing::warn!(node = %shared.node, "commands: {e}");
            }
        }
        match shared
            .engine
            .with_replica(|r| r.halt_failing_rollouts(shared.now()))
        {
            Ok(steps) if !steps.is_empty() => shared.engine.changed(),
            Ok(_) => {}
            Err(e) => tracing::warn!(node = %shared.node, "rollouts: {e}"),
        }
        changed = tokio::select! {
            r = changes.changed() => if r.is_err() { return } else { true },
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
        };
        if changed {
            // Coalesce bursts of changes into one apply.
            tokio::time::sleep(Duration::from_millis(20)).await;
            changes.borrow_and_update();
        }
    }
}

async fn apply_once(shared: &Shared, frozen_logged: &mut bool) -> Result<(), DaemonError> {
    let (tree, frozen, resume_ms, heads) = desired(shared)?;
    {
        let mut st = lock(&shared.state);
        if let (Some((why, since)), Some(resume)) = (&st.safe_mode, resume_ms)
            && resume > *since
        {
            tracing::info!(node = %shared.node, "an operator resumed this node; leaving safe mode ({why})");
            st.safe_mode = None;
            st.clear_failures();
            st.starts.clear();
            st.save(shared.applier.root());
            shared.beat_now.notify_one();
        }
        if st.safe_mode.is_some() {
            return Ok(());
        }
    }
    if frozen {
        if !*frozen_logged {
            tracing::info!(node = %shared.node, "the fleet is frozen: not applying");
            *frozen_logged = true;
        }
        return Ok(());
    }
    *frozen_logged = false;
    let rev = render::revision(&tree);
    if shared.applier.current().as_deref() == Some(&rev) {
        check_drift(shared, &tree);
        // The desired config is the release that runs, brought back by a
        // revert, an aborted rollout or an edit undone after a rollback.
        // Say so: otherwise the last failure stays this node's word, and
        // its apply alert never resolves.
        let mut st = lock(&shared.state);
        // Every change up to these heads is applied here, whether or not
        // it changed this node's config.
        if st.live_at != heads {
            st.live_at = heads.clone();
            st.save(shared.applier.root());
        }
        let said = st
            .last
            .as_ref()
            .is_some_and(|l| l.revision == rev && l.result == ApplyResult::Ok);
        if !said {
            st.last = Some(ApplyReport {
                revision: rev.clone(),
                result: ApplyResult::Ok,
                error: None,
                duration_ms: 0,
                at_ms: shared.now(),
                from: heads.clone(),
            });
            st.clear_failures();
            st.save(shared.applier.root());
            drop(st);
            tracing::info!(node = %shared.node, revision = %rev, "the desired config is the live release");
            shared.beat_now.notify_one();
        }
        return Ok(());
    }
    if lock(&shared.state).failed_revision.as_deref() == Some(&rev) {
        return Ok(());
    }
    let refused = refused_programs(shared);
    let (outcome, took) = match (render::render(&tree), hooks(&tree)) {
        _ if !refused.is_empty() => {
            tracing::warn!(node = %shared.node, "not applying: {}", refused.join("; "));
            (
                Outcome::Failed {
                    revision: rev.clone(),
                    error: format!(
                        "refused to run programs from config written without the right: {}",
                        refused.join("; ")
                    ),
                },
                Duration::ZERO,
            )
        }
        (Ok(rendered), Ok(h)) => shared.applier.apply(&rendered, &rev, &h).await?,
        (Err(e), _) => (
            Outcome::Failed {
                revision: rev.clone(),
                error: e.to_string(),
            },
            Duration::ZERO,
        ),
        (_, Err(e)) => (
            Outcome::Failed {
                revision: rev.clone(),
                error: e,
            },
            Duration::ZERO,
        ),
    };
    let (result, error) = match &outcome {
        Outcome::Applied { .. } => (ApplyResult::Ok, None),
        Outcome::RolledBack { error, .. } => (ApplyResult::RolledBack, Some(error.clone())),
        Outcome::Failed { error, .. } => (ApplyResult::Failed, Some(error.clone())),
    };
    match &error {
        None => {
            tracing::info!(node = %shared.node, revision = %rev, ms = took.as_millis() as u64, "applied")
        }
        Some(e) => tracing::warn!(node = %shared.node, revision = %rev, "apply {result:?}: {e}"),
    }
    let max = uint(&tree, "safe_mode", "max_failures")
        .unwrap_or(DEFAULT_MAX_FAILURES)
        .max(1);
    {
        let mut st = lock(&shared.state);
        st.last = Some(ApplyReport {
            revision: rev.clone(),
            result,
            error,
            duration_ms: took.as_millis() as u64,
            at_ms: shared.now(),
            from: heads.clone(),
        });
        if result == ApplyResult::Ok {
            st.live_at = heads.clone();
        }
        st.applies[match result {
            ApplyResult::Ok => 0,
            ApplyResult::RolledBack => 1,
            ApplyResult::Failed => 2,
        }] += 1;
        if result == ApplyResult::Ok {
            st.clear_failures();
        } else {
            st.consecutive_failures += 1;
            st.failed_revision = Some(rev.clone());
            if st.consecutive_failures >= max {
                let why =
                    fleetdeck_store::alerts::safe_mode_after_failures(st.consecutive_failures);
                tracing::error!(node = %shared.node, "safe mode: {why}; staying on the live release");
                st.safe_mode = Some((why, shared.now()));
            }
        }
        st.save(shared.applier.root());
    }
    lock(&shared.drift).clear();
    shared.beat_now.notify_one();
    Ok(())
}

/// Starts every command addressed to this node that it has not started,
/// each in its own task (a long action does not hold up applies). Nothing
/// runs while the fleet is frozen.
fn start_commands(shared: &Arc<Shared>) -> Result<(), DaemonError> {
    let (tree, frozen, _, _) = desired(shared)?;
    if frozen {
        return Ok(());
    }
    let todo: Vec<(String, String, i64)> = {
        let ledger = lock(&shared.ledger);
        shared.engine.with_replica(|r| {
            crate::commands::pending(r.state(), &shared.node, &ledger)
                .into_iter()
                .map(|(id, c)| (id.clone(), c.action.clone(), c.at_ms))
                .collect()
        })
    };
    if todo.is_empty() {
        return Ok(());
    }
    let refused = refused_programs(shared);
    for (id, action, issued) in todo {
        let first = lock(&shared.ledger)
            .start(&id)
            .map_err(|e| DaemonError::Invalid(format!("could not record command {id}: {e}")))?;
        if !first {
            continue;
        }
        let s = shared.clone();
        let tree = tree.clone();
        let refusal: Option<String> = refused
            .iter()
            .find(|r| {
                r.starts_with(&format!("actions.{action}."))
                    || r.starts_with(&format!("actions.{action}:"))
            })
            .cloned();
        tokio::spawn(async move {
            tracing::info!(node = %s.node, command = %id, %action, "running a command");
            let result = match refusal {
                Some(why) => fleetdeck_store::document::CommandResult {
                    exit_code: None,
                    ok: false,
                    output: format!("refused: {why}"),
                    at_ms: fleetdeck_store::now_ms(),
                },
                None => crate::commands::execute(&action, issued, &tree).await,
            };
            // Into the node's own results register, not the document; the
            // change signal sends it to the people replicas connected now.
            let node = s.node.clone();
            let ok = result.ok;
            let stored = s
                .engine
                .with_replica(|r| r.record_command_result(&node, &id, result));
            match stored {
                Ok(()) => {
                    tracing::info!(node = %node, command = %id, %action, ok, "recorded the command's result");
                    s.engine.registers_changed()
                }
                Err(e) => {
                    tracing::warn!(node = %node, command = %id, "could not record the result: {e}")
                }
            }
        });
    }
    Ok(())
}

/// Compares the live release with what the config renders to; heals it
/// unless the config says `drift: report`. In report-only mode the drift
/// reported is what differs now; healed files stay reported until the next
/// apply, so the operator hears that someone edited them.
fn check_drift(shared: &Shared, tree: &Value) {
    let Ok(rendered) = render::render(tree) else {
        return;
    };
    let report_only = tree.get("drift").and_then(Value::as_str) == Some("report");
    let mut d = lock(&shared.drift);
    let before = d.clone();
    if report_only {
        *d = shared.applier.drifted(&rendered);
    } else {
        for f in heal(shared, &rendered) {
            if !d.contains(&f) {
                d.push(f);
            }
        }
    }
    if *d != before {
        tracing::warn!(node = %shared.node, files = ?*d, healed = !report_only, "rendered files were edited by hand");
        shared.beat_now.notify_one();
    }
}

fn heal(shared: &Shared, rendered: &Rendered) -> Vec<String> {
    match shared.applier.heal(rendered) {
        Ok(healed) => healed,
        Err(e) => {
            tracing::warn!(node = %shared.node, "could not heal drift: {e}");
            shared.applier.drifted(rendered)
        }
    }
}

/// Watches the node's root; any file event wakes the apply loop, which
/// checks the live release against its config.
fn watch_release(shared: &Arc<Shared>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let (tx, rx) = watch::channel(0u64);
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| e.kind.is_modify() || e.kind.is_create() || e.kind.is_remove()) {
            tx.send_modify(|v| *v += 1);
        }
    })
    .ok()?;
    w.watch(
        &shared.applier.root().join(crate::apply::RELEASES),
        RecursiveMode::Recursive,
    )
    .ok()?;
    let s = shared.clone();
    tokio::spawn(async move {
        let mut rx = rx;
        while rx.changed().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            rx.borrow_and_update();
            if let Ok((tree, _, _, _)) = desired(&s)
                && s.applier.current().as_deref() == Some(&render::revision(&tree))
            {
                check_drift(&s, &tree);
            }
        }
    });
    Some(w)
}

async fn heartbeat_loop(shared: Arc<Shared>, mut metrics: Box<dyn MetricSource>) {
    let mut seq = shared
        .engine
        .with_replica(|r| r.health().get(shared.node.as_str()).map(|s| s.reg.seq))
        .unwrap_or(0);
    let started = tokio::time::Instant::now();
    loop {
        let tree = desired(&shared).map(|d| d.0).unwrap_or(Value::Null);
        let interval = uint(&tree, "heartbeat", "interval_s")
            .unwrap_or(10)
            .clamp(1, 3600);
        let checks = Checks::from_config(&tree);
        let (results, tls, backup) = checks.run().await;
        // One up from the highest seq this node's replica holds of it: its
        // last beat, or a later one of its own that came back from a hub
        // (its disk was restored from an old backup, say). Every replica
        // believes a seq only so far ahead of the one it holds
        // (`health::plausible_seq`), and one up always is.
        let held = shared
            .engine
            .with_replica(|r| r.health().get(shared.node.as_str()).map(|s| s.reg.seq));
        seq = seq.max(held.unwrap_or(0)) + 1;
        // One lock at a time: guards in a struct literal live to its end.
        let (applied, safe_mode, live_at) = {
            let st = lock(&shared.state);
            (
                st.last.clone(),
                st.safe_mode.as_ref().map(|(w, _)| w.clone()),
                st.live_at.clone(),
            )
        };
        let holds = shared.engine.with_replica(heads_hex);
        let drift = lock(&shared.drift).clone();
        let reg = HealthRegister {
            node: shared.node.to_string(),
            seq,
            time_ms: shared.now(),
            metrics: metrics.sample(),
            tls,
            backup,
            applied,
            checks: results,
            drift,
            safe_mode,
            holds,
            live_at,
            addrs: shared.engine.published_addrs(),
            tunnels: shared.engine.tunnel_records(),
        };
        let stored = shared.engine.with_replica(|r| r.record_health(&reg));
        match stored {
            Ok(_) => shared.engine.registers_changed(),
            Err(e) => tracing::warn!(node = %shared.node, "could not record the heartbeat: {e}"),
        }
        // The first beat goes out at once (the fleet sees the node start);
        // the others keep to this node's own schedule, so the nodes of a
        // site that power up together do not beat in lockstep at the hub,
        // and an extra beat (after an apply) does not move the schedule.
        let wait = until_next_beat(
            started.elapsed(),
            phase(&shared.node, interval),
            Duration::from_secs(interval),
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.beat_now.notified() => {}
        }
    }
}

/// Where in the heartbeat interval this node beats: a fraction of it fixed
/// by the node id (a stable hash), in `(0, interval]`.
fn phase(node: &NodeId, interval_s: u64) -> Duration {
    let ms = interval_s.saturating_mul(1000).max(1);
    Duration::from_millis(1 + fleetdeck_store::rollout::fnv(node.as_str()) % ms)
}

/// How long from `since` (time since the daemon started) to the next beat
/// of the schedule `phase + k × period`: never longer than the period, so a
/// node is never later than its cadence promises.
fn until_next_beat(since: Duration, phase: Duration, period: Duration) -> Duration {
    if since < phase {
        return phase - since;
    }
    let period_ms = period.as_millis().max(1);
    let into = (since - phase).as_millis() % period_ms;
    Duration::from_millis((period_ms - into) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_stay_within_the_interval_and_spread_the_nodes() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..50 {
            let node = NodeId::parse(&format!("cam-{i}")).expect("node id");
            let p = phase(&node, 10);
            assert!(p > Duration::ZERO && p <= Duration::from_secs(10), "{p:?}");
            assert_eq!(p, phase(&node, 10), "the phase is fixed per node");
            seen.insert(p.as_secs());
        }
        // 50 nodes over ten one-second slots: they do not share one slot.
        assert!(seen.len() >= 5, "phases spread over the interval: {seen:?}");
    }

    #[test]
    fn beats_keep_to_the_schedule_after_an_extra_beat() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // Phase 3 s, period 10 s: beats at 3, 13, 23, ... s.
        assert_eq!(until_next_beat(ms(1), s(3), s(10)), ms(2999));
        assert_eq!(until_next_beat(s(3), s(3), s(10)), s(10));
        // An extra beat at 17.5 s (an apply): the next is still at 23 s.
        assert_eq!(until_next_beat(ms(17_500), s(3), s(10)), ms(5500));
        for t in 0..200u64 {
            let w = until_next_beat(ms(t * 137), s(3), s(10));
            assert!(w > Duration::ZERO && w <= s(10), "{w:?} at {t}");
        }
    }
}

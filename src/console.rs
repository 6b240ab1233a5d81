//! `fleetdeck console`: the terminal console over this data dir's replica.
//!
//! The console (the `fleetdeck-tui` crate) reads snapshots and sends intents
//! through its `Source` trait; this file implements it over the real
//! `Replica`. While the console is open it syncs as a peer (a sync engine on
//! the replica), unless the replica is read-only (a read-only replica cannot
//! store what peers send) or a `serve` already runs on the same data dir (it
//! syncs this replica; the console then shows the peers as `serve` sees
//! them, from its status file).

use std::collections::HashMap;
use std::fs::OpenOptions as FileOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use automerge::ChangeHash;
use fleetdeck_store::at::{self, At};
use fleetdeck_store::diff::LayerEdit;
use fleetdeck_store::events::{ChangeKind, Filter, FleetEvent, change_infos};
use fleetdeck_store::health::{Sample, StoredRegister};
use fleetdeck_store::replica::OpenOptions;
use fleetdeck_store::{Replica, now_ms, ops};
use fleetdeck_sync::{Engine, EngineConfig, StatusFile};
use fleetdeck_tui::settings::{self, Settings};
use fleetdeck_tui::{HistoryRow, Intent, Options, Peer, Snapshot, Source, SyncStatus};
use tokio::sync::watch;

use crate::net::STATUS_FILE;

/// How far back the node view's sparklines go.
const SERIES_SPAN_MS: i64 = 2 * 60 * 60 * 1000;

/// A `serve` status file younger than this means `serve` is running.
const SERVE_FRESH_MS: i64 = 5_000;

enum Holder {
    /// The console syncs: the engine owns the replica.
    Engine(Arc<Engine>, watch::Receiver<u64>),
    /// No engine: the console refreshes the replica itself.
    Local(Box<Replica>),
}

/// The console's data source over a replica on disk.
pub struct ReplicaSource {
    dir: PathBuf,
    holder: Holder,
    sync: SyncStatus,
    /// The registers of the last snapshot, reused while unchanged (the
    /// console refetches sparklines only when this changes).
    health: Arc<HashMap<String, StoredRegister>>,
    health_key: (usize, i64),
    /// Trouble met outside a snapshot (sparklines, refresh), reported with
    /// the next one.
    trouble: Option<String>,
    /// What each change did, by change id: read once (a change's parts do
    /// not change), not on every refresh of the history view.
    kinds: HashMap<String, ChangeKind>,
    /// The runtime the engines run on (the source's own thread blocks on
    /// it to open a tunnel); none when the source was made outside one.
    rt: Option<tokio::runtime::Handle>,
    /// The tunnels opened from this console: node, target, tunnel.
    tunnels: Vec<(
        String,
        std::net::SocketAddrV4,
        fleetdeck_sync::tunnel::Tunnel,
    )>,
    /// An engine for tunnels alone, when the console has none (`serve`
    /// syncs this replica): started at the first tunnel.
    tunnel_engine: Option<Arc<Engine>>,
    read_only: bool,
}

/// The status file of a `serve` running on `dir`, if it is fresh.
fn running_serve(dir: &Path, now: i64) -> Option<StatusFile> {
    let status: StatusFile = std::fs::read(dir.join(STATUS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())?;
    (now - status.written_ms < SERVE_FRESH_MS).then_some(status)
}

impl ReplicaSource {
    fn new(dir: &Path, holder: Holder, sync: SyncStatus) -> ReplicaSource {
        ReplicaSource {
            dir: dir.to_path_buf(),
            holder,
            sync,
            health: Arc::new(HashMap::new()),
            health_key: (0, -1),
            trouble: None,
            kinds: HashMap::new(),
            rt: tokio::runtime::Handle::try_current().ok(),
            tunnels: Vec::new(),
            tunnel_engine: None,
            read_only: false,
        }
    }

    fn runtime(&self) -> Result<tokio::runtime::Handle, String> {
        self.rt
            .clone()
            .ok_or_else(|| "this console runs no network runtime: it opens no tunnels".to_string())
    }

    /// The engine tunnels go through: the console's own, or one started
    /// for them (dialing and publishing nothing) beside a running `serve`.
    fn tunnel_engine(&mut self) -> Result<Arc<Engine>, String> {
        if let Holder::Engine(e, _) = &self.holder {
            return Ok(e.clone());
        }
        if self.read_only {
            return Err("a read-only console opens no tunnels".into());
        }
        if let Some(e) = &self.tunnel_engine {
            return Ok(e.clone());
        }
        let rt = self.runtime()?;
        let r = Replica::open(&self.dir).map_err(|e| e.to_string())?;
        let engine = rt
            .block_on(Engine::start(r, crate::cli::tunnel::engine_config()))
            .map_err(|e| format!("could not start an engine for the tunnel: {e}"))?;
        let engine = Arc::new(engine);
        self.tunnel_engine = Some(engine.clone());
        Ok(engine)
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut Replica) -> R) -> R {
        match &mut self.holder {
            Holder::Engine(e, _) => e.with_replica(f),
            Holder::Local(r) => f(r),
        }
    }

    /// After a write: push it to peers at once.
    fn wrote(&self) {
        if let Holder::Engine(e, _) = &self.holder {
            e.changed();
        }
    }

    fn peers(&mut self, now: i64) -> Vec<Peer> {
        match &self.holder {
            Holder::Engine(e, _) => e.peers(),
            Holder::Local(r) => {
                let me = r.key().clone();
                let status = running_serve(&self.dir, now);
                let reported = r.reported_addrs();
                r.state()
                    .members
                    .values()
                    .filter(|m| m.key != me)
                    .map(|m| {
                        let p = status
                            .as_ref()
                            .and_then(|s| s.peers.iter().find(|p| p.key == m.key.as_str()));
                        Peer {
                            key: m.key.to_string(),
                            name: m.name.clone(),
                            connected: p.is_some_and(|p| p.connected),
                            addr: p
                                .and_then(|p| p.addr.clone())
                                .or_else(|| reported.get(&m.key).and_then(|a| a.first()).cloned())
                                .or_else(|| m.addrs.first().cloned()),
                            last_sync_ms: p.and_then(|p| p.last_sync_ms),
                            lacks: p.and_then(|p| p.lacks),
                            last_error: p.and_then(|p| p.last_error.clone()),
                            path: p.and_then(|p| p.path),
                            rtt_ms: p.and_then(|p| p.rtt_ms),
                        }
                    })
                    .collect()
            }
        }
    }
}

impl Source for ReplicaSource {
    fn open_tunnel(
        &mut self,
        node: &fleetdeck_store::NodeId,
        target: std::net::SocketAddrV4,
    ) -> Result<std::net::SocketAddr, String> {
        let ready = self
            .with(|r| crate::cli::tunnel::prepare(r, node, target))
            .map_err(|e| e.to_string())?;
        let engine = self.tunnel_engine()?;
        let rt = self.runtime()?;
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        // The console has no place for the notes; the tunnel's error says
        // what matters.
        let tunnel = rt
            .block_on(crate::cli::tunnel::open_prepared(
                &engine,
                node,
                ready,
                target,
                local,
                |_| {},
            ))
            .map_err(|e| e.to_string())?;
        let local = tunnel.local;
        self.tunnels.push((node.to_string(), target, tunnel));
        Ok(local)
    }

    fn snapshot(&mut self) -> Snapshot {
        let now = now_ms();
        if let Holder::Local(r) = &mut self.holder
            && let Err(e) = r.refresh()
        {
            self.trouble = Some(format!("could not read the replica: {e}"));
        }
        let (fleet, health, alerts, states, summary, me, conflicts) = self.with(|r| {
            let (states, summary, alerts) = r.status(now);
            let health = r.health();
            let key = (
                health.len(),
                health.values().map(|s| s.ver).max().unwrap_or(0),
            );
            let regs = (key, health.clone());
            (
                r.state().clone(),
                regs,
                alerts,
                states,
                summary,
                (ops::member_label(r.state(), r.key()), r.key().clone()),
                r.conflicts(),
            )
        });
        let (me, me_key) = me;
        let (key, regs) = health;
        if key != self.health_key {
            self.health = Arc::new(regs);
            self.health_key = key;
        }
        let mut snap = Snapshot::build(now, fleet, self.health.clone(), alerts, &states, summary);
        snap.me = me;
        snap.me_key = Some(me_key);
        match conflicts {
            Ok(c) => snap.conflicts = c,
            Err(e) => self.trouble = Some(format!("could not list conflicts: {e}")),
        }
        snap.peers = self.peers(now);
        snap.unsynced = snap.peers.iter().filter_map(|p| p.lacks).min();
        self.tunnels.retain(|(_, _, t)| t.is_open());
        snap.tunnels = self
            .tunnels
            .iter()
            .map(|(node, target, t)| fleetdeck_tui::OpenTunnel {
                node: node.clone(),
                target: *target,
                local: t.local,
            })
            .collect();
        snap.sync = self.sync.clone();
        snap.trouble = self.trouble.take();
        snap
    }

    fn series(&mut self, node: &str) -> Vec<Sample> {
        let since = now_ms() - SERIES_SPAN_MS;
        match self.with(|r| r.series(node, since)) {
            Ok(s) => s,
            Err(e) => {
                self.trouble = Some(format!("could not read the samples of {node}: {e}"));
                Vec::new()
            }
        }
    }

    fn history(&mut self) -> Vec<HistoryRow> {
        let mut known = std::mem::take(&mut self.kinds);
        let rows = self.with(|r| {
            let h = r.history();
            let new: Vec<ChangeHash> = h
                .iter()
                .filter(|e| !known.contains_key(&e.id))
                .filter_map(|e| e.id.parse().ok())
                .collect();
            let infos = change_infos(r.doc_mut().automerge_mut(), &new);
            for (hash, info) in new.iter().zip(infos) {
                known.insert(hash.to_string(), info.kind.unwrap_or(ChangeKind::Other));
            }
            let kinds = h
                .iter()
                .map(|e| known.get(&e.id).copied().unwrap_or(ChangeKind::Other))
                .collect();
            let hashes = HistoryRow::hashes(&h);
            let digests =
                fleetdeck_store::receipts::digests(r, &hashes, now_ms(), HistoryRow::PENDING_SHOWN);
            HistoryRow::build(h, digests, kinds)
        });
        self.kinds = known;
        rows
    }

    fn moment_at(&mut self, at: &At) -> Result<Snapshot, String> {
        let (moment, me, me_key) = self.with(|r| {
            let m = at::moment(r, at).map_err(|e| e.to_string());
            (m, ops::member_label(r.state(), r.key()), r.key().clone())
        });
        let mut snap = Snapshot::of_moment(moment?);
        snap.me = me;
        snap.me_key = Some(me_key);
        snap.sync = SyncStatus::Off {
            reason: "a past moment".into(),
        };
        Ok(snap)
    }

    fn events(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
    ) -> Result<Vec<FleetEvent>, String> {
        self.with(|r| r.events(from_ms, to_ms, filter))
            .map_err(|e| format!("could not read the events: {e}"))
    }

    fn change_edits(&mut self, change: &str) -> Result<Vec<LayerEdit>, String> {
        let hash: ChangeHash = change
            .parse()
            .map_err(|_| format!("'{change}' is not a whole change id"))?;
        self.with(|r| r.change_edits(&hash)).map_err(|e| {
            format!(
                "could not read what change {} edited: {e}",
                change.chars().take(12).collect::<String>()
            )
        })
    }

    fn apply(&mut self, intent: Intent) -> Result<String, String> {
        let done = self
            .with(|r| ops::apply(r, intent, now_ms()))
            .map_err(|e| e.to_string())?;
        if done.change.is_some() {
            self.wrote();
        }
        Ok(done.line())
    }

    fn changed(&mut self) -> bool {
        match &mut self.holder {
            Holder::Engine(_, rx) => {
                rx.has_changed().unwrap_or(false) && {
                    rx.borrow_and_update();
                    true
                }
            }
            Holder::Local(r) => match r.refresh() {
                Ok(changed) => changed,
                Err(e) => {
                    self.trouble = Some(format!("could not read the replica: {e}"));
                    true
                }
            },
        }
    }
}

/// Sends the sync engine's log lines to `console.log` in the data dir: on
/// stderr they would scribble over the screen. (Does nothing if the binary
/// already set up logging.)
fn log_to_file(dir: &Path) {
    let Ok(file) = FileOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("console.log"))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fleetdeck_sync=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init();
}

/// The console on the demo's operator replica, which the demo fleet's own
/// engine syncs (and says so on the peers line).
pub fn run_demo(dir: &Path) -> Result<()> {
    run_inner(
        dir,
        false,
        None,
        SocketAddr::from(([0, 0, 0, 0], 0)),
        true,
        "the demo fleet's engine",
    )
}

/// Opens the replica in `dir` and runs the console until the operator quits,
/// with its own sync endpoint bound at `listen` and looking for peers on the
/// LAN when `mdns`. `theme` is a user theme (`themes/NAME.toml` in the
/// config dir), a built-in theme name or a TOML file (a patch over the
/// default theme); the config dir's `console.toml` sets keys, mouse and the
/// default theme. A bad settings or theme file stops the console before it
/// starts.
pub fn run_with(
    dir: &Path,
    read_only: bool,
    theme: Option<&str>,
    listen: SocketAddr,
    mdns: bool,
) -> Result<()> {
    run_inner(dir, read_only, theme, listen, mdns, "the running `serve`")
}

/// `synced_by`: who syncs the replica when a fresh status file says it is
/// synced already.
fn run_inner(
    dir: &Path,
    read_only: bool,
    theme: Option<&str>,
    listen: SocketAddr,
    mdns: bool,
    synced_by: &str,
) -> Result<()> {
    let settings = Settings::load(settings::config_dir().as_deref()).map_err(|e| anyhow!(e))?;
    let theme = settings.theme(theme).map_err(|e| anyhow!(e))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let now = now_ms();
        let (source, engine) = if read_only {
            let r = Replica::open_with(
                dir,
                OpenOptions {
                    read_only: true,
                    ..OpenOptions::default()
                },
            )?;
            let sync = SyncStatus::Off {
                reason: "read-only".into(),
            };
            let mut source = ReplicaSource::new(dir, Holder::Local(Box::new(r)), sync);
            source.read_only = true;
            (source, None)
        } else if running_serve(dir, now).is_some() {
            // `serve` syncs this replica already; a second endpoint with the
            // same key would only fight it for sessions.
            let r = Replica::open(dir)?;
            let sync = SyncStatus::Elsewhere {
                by: synced_by.into(),
            };
            (
                ReplicaSource::new(dir, Holder::Local(Box::new(r)), sync),
                None,
            )
        } else {
            log_to_file(dir);
            let r = Replica::open(dir)?;
            let mut cfg = EngineConfig::new(listen);
            cfg.dial = true;
            cfg.mdns = mdns;
            // The console listens on a port of the moment: writing it into
            // this member's record would replace the stable address a
            // `serve` published (and that invites hand out).
            cfg.publish_addrs = false;
            match Engine::start(r, cfg).await {
                Ok(engine) => {
                    let listening = engine.local_addrs().iter().map(|a| a.to_string()).collect();
                    let engine = Arc::new(engine);
                    fleetdeck_node::rollouts::spawn(&engine);
                    let rx = engine.subscribe();
                    let source = ReplicaSource::new(
                        dir,
                        Holder::Engine(engine.clone(), rx),
                        SyncStatus::On { listening },
                    );
                    (source, Some(engine))
                }
                Err(e) => {
                    // The engine took the replica with it: open it again.
                    let r = Replica::open(dir)?;
                    let sync = SyncStatus::Off {
                        reason: format!("sync could not start: {e}"),
                    };
                    (
                        ReplicaSource::new(dir, Holder::Local(Box::new(r)), sync),
                        None,
                    )
                }
            }
        };
        let options = Options {
            read_only,
            theme,
            keymap: settings.keymap.clone(),
            mouse: settings.mouse,
            themes_dir: settings.dir.clone(),
            user_themes: settings.user_themes(),
        };
        let result = fleetdeck_tui::run(source, options).await;
        if let Some(engine) = engine {
            // Sessions close with a word to the peers rather than a timeout.
            let _ = tokio::time::timeout(Duration::from_secs(2), engine.shutdown()).await;
        }
        result.map_err(anyhow::Error::from)
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;

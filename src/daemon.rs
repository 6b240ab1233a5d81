//! `fleetdeck node run`: the daemon on a site device.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use fleetdeck_node::daemon::{Daemon, DaemonConfig};
use fleetdeck_node::heartbeat::Probe;
use fleetdeck_store::{NodeId, Replica};
use fleetdeck_sync::{EngineConfig, format_endpoint_addr};
use serde_json::json;

use crate::output::Out;

pub struct RunOpts<'a> {
    pub node: Option<&'a str>,
    pub root: PathBuf,
    pub listen: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub mdns: bool,
    pub status_file: PathBuf,
}

pub fn run(replica: Replica, out: &Out, opts: RunOpts<'_>) -> Result<()> {
    let node = match opts.node {
        Some(n) => NodeId::parse(n)?,
        None => {
            let st = replica.state();
            let mine: Vec<&NodeId> = st
                .nodes
                .values()
                .filter(|n| n.key.as_ref() == Some(replica.key()))
                .map(|n| &n.id)
                .collect();
            match mine.as_slice() {
                [one] => (*one).clone(),
                [] => bail!(
                    "this replica runs no node yet: pass --node NODE_ID once (it is remembered)"
                ),
                many => bail!(
                    "this replica is bound to several nodes ({}); pass --node NODE_ID",
                    many.iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut sync = EngineConfig::new(opts.listen);
        sync.mdns = opts.mdns;
        sync.status_file = Some(opts.status_file.clone());
        let cfg = DaemonConfig {
            root: opts.root.clone(),
            node: node.clone(),
            sync,
        };
        // A node this replica has not heard of yet (the device was set up
        // before an operator added it, or its replica is catching up): sync
        // and wait for it, saying so, until it arrives or we are stopped.
        let started = Daemon::start_when_known(
            replica,
            cfg,
            Box::new(Probe::new()),
            wait_for_stop(),
            |node| {
                eprintln!(
                    "node {node} is not in this replica yet; syncing and waiting for it… \
                     (an operator adds it with `fleetdeck node add {node} --site SITE`)"
                )
            },
        )
        .await?;
        let Some(daemon) = started else {
            let _ = std::fs::remove_file(&opts.status_file);
            return Ok(());
        };
        let daemon = Arc::new(daemon);
        let metrics = match opts.metrics {
            Some(addr) => {
                // Weak: the endpoint must not keep the daemon from shutting down.
                let d = Arc::downgrade(&daemon);
                let render = move || d.upgrade().map(|d| d.metrics_text()).unwrap_or_default();
                let bound = fleetdeck_node::metrics::serve(addr, Arc::new(render))
                    .await
                    .map_err(|e| anyhow!("could not serve metrics on {addr}: {e}"))?;
                Some(bound)
            }
            None => None,
        };
        let addr = format_endpoint_addr(&daemon.engine().endpoint_addr());
        out.emit(
            &json!({"node": node, "root": opts.root, "peer_addr": addr, "metrics": metrics, "live": daemon.current()}),
            || {
                let mut s = format!(
                    "node {node}: releases in {}, live {}\npeers reach it as {addr}",
                    opts.root.display(),
                    daemon.current().unwrap_or_else(|| "none yet".into())
                );
                if let Some(m) = metrics {
                    s.push_str(&format!("\nmetrics on http://{m}/metrics"));
                }
                s
            },
        )?;
        wait_for_stop().await;
        match Arc::try_unwrap(daemon) {
            Ok(d) => d.shutdown().await,
            // Something still holds the daemon: its sessions close all the
            // same, so peers see this node leave now.
            Err(d) => d.engine().shutdown().await,
        }
        let _ = std::fs::remove_file(&opts.status_file);
        Ok(())
    })
}

/// Ctrl-C, or SIGTERM from systemd (`node run`, `serve`).
pub(crate) async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

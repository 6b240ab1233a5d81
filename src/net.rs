//! The CLI's peer commands: invite, join, serve, sync, peers, bundle.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use fleetdeck_store::{Replica, Role, now_ms};
use fleetdeck_sync::{
    Engine, EngineConfig, InviteToken, RelayPass, StatusFile, TokenRelay, bundle,
    format_endpoint_addr, join, parse_endpoint_addr,
};
use serde_json::json;

use crate::output::{Out, Table, ago, fmt_time, short};

/// Where a serving process writes its peer table for `peers`.
pub const STATUS_FILE: &str = "peers.json";
/// The port `serve` listens on by default.
pub const DEFAULT_PORT: u16 = 7447;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn invite(
    replica: &mut Replica,
    out: &Out,
    role: Role,
    ttl: Duration,
    addrs: &[SocketAddr],
) -> Result<()> {
    let st = replica.state().clone();
    let me = st
        .members
        .get(replica.key())
        .ok_or_else(|| anyhow!("this replica is not a member of its own fleet"))?;
    let addrs: Vec<SocketAddr> = if addrs.is_empty() {
        me.addrs.iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        addrs.to_vec()
    };
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_ms = now_ms().saturating_add(ttl_ms);
    let relay = fleet_relay(&st)?.map(|(url, ca)| TokenRelay {
        pass: RelayPass::issue(replica.identity(), &st.fleet_id, expires_ms),
        url,
        ca,
    });
    if addrs.is_empty() && relay.is_none() {
        bail!(
            "this replica has published no address yet and the fleet has no relay: run `fleetdeck serve` here first (it records where it listens), or pass --addr IP:PORT"
        );
    }
    let secret = fleetdeck_store::ops::invite(replica, role, ttl_ms)?;
    let inviter = replica.key().to_bytes();
    let token = InviteToken {
        fleet_id: st.fleet_id.clone(),
        fleet_name: st.name.clone(),
        inviter,
        addrs,
        secret,
        role: role.to_string(),
        expires_ms,
        relay,
    };
    let t = token.encode();
    // The token alone on stdout (`TOKEN=$(fleetdeck invite)`), the guidance
    // on stderr.
    out.note(&format!(
            "one-time token for {} {role} replica of fleet {}, valid until {}; on the new machine run:\n  fleetdeck join TOKEN --name NAME\nwhile `fleetdeck serve` runs here",
            if role == Role::Admin || role == Role::Operator { "an" } else { "a" },
            st.name,
            fmt_time(token.expires_ms)
        ));
    out.emit(
        &json!({"token": t, "role": role, "expires_ms": token.expires_ms, "addrs": token.addrs,
            "relay": token.relay.as_ref().map(|r| &r.url)}),
        || t.clone(),
    )
}

/// The fleet's relay for an invite: `sync.relay_url`, with the CA of
/// `sync.relay_ca` when the fleet pins one.
fn fleet_relay(st: &fleetdeck_store::document::FleetState) -> Result<Option<(String, Vec<u8>)>> {
    let get = |key: &str| {
        fleetdeck_store::config::ConfigPath::parse(key)
            .ok()
            .and_then(|p| st.fleet.get(&p))
            .and_then(|v| v.as_str().map(str::to_string))
    };
    let Some(url) = get("sync.relay_url") else {
        return Ok(None);
    };
    let ca = match get("sync.relay_ca") {
        None => Vec::new(),
        Some(pem) => fleetdeck_store::schema::pem_certificates(&pem)
            .map_err(|e| anyhow!("sync.relay_ca in the fleet defaults is not usable: {e}"))?
            .into_iter()
            .next()
            .map(|c| c.to_vec())
            .unwrap_or_default(),
    };
    Ok(Some((url, ca)))
}

pub fn join_cmd(dir: &Path, out: &Out, token: &str, name: &str, listen: SocketAddr) -> Result<()> {
    let token = InviteToken::decode(token)?;
    let rt = runtime()?;
    let r = rt.block_on(join::join(
        dir,
        &token,
        name,
        listen,
        Duration::from_secs(120),
    ))?;
    let st = r.state();
    let role = st
        .members
        .get(r.key())
        .map(|m| m.role.to_string())
        .unwrap_or_default();
    out.emit(
        &json!({"fleet_id": st.fleet_id, "fleet_name": st.name, "member": r.key(), "name": name, "role": role, "sites": st.sites.len(), "nodes": st.nodes.len(), "data_dir": dir}),
        || {
            format!(
                "joined fleet '{}' as {name} ({role}): {} site(s), {} node(s) in {}\nrun `fleetdeck serve` to keep this replica in sync",
                st.name,
                st.sites.len(),
                st.nodes.len(),
                dir.display()
            )
        },
    )
}

/// Resolves `--peer`: `ID@IP:PORT`, or a member's name or key whose
/// addresses this replica knows (its member record; a node's latest
/// heartbeat).
fn resolve_peer(replica: &Replica, peer: &str) -> Result<iroh::EndpointAddr> {
    if peer.contains('@') {
        return Ok(parse_endpoint_addr(peer)?);
    }
    let st = replica.state();
    let m = st
        .members
        .values()
        .find(|m| m.name == peer || m.key.as_str() == peer)
        .ok_or_else(|| {
            anyhow!(
                "no member named '{peer}' (give ENDPOINT_ID@IP:PORT, as `fleetdeck serve` prints)"
            )
        })?;
    let mut addrs = replica.reported_addrs().remove(&m.key).unwrap_or_default();
    addrs.extend(m.addrs.iter().cloned());
    addrs.dedup();
    let addr = format!("{}@{}", m.key, addrs.join(","));
    if addrs.is_empty() {
        bail!("member '{peer}' has published no address; give ENDPOINT_ID@IP:PORT");
    }
    Ok(parse_endpoint_addr(&addr)?)
}

/// Where a member is reached: the addresses it published (its member
/// record; a node's latest heartbeat) and, when the fleet has one, the
/// fleet's relay (the engine adds it).
pub fn member_addr(
    replica: &Replica,
    key: &fleetdeck_store::MemberKey,
) -> Result<iroh::EndpointAddr> {
    let st = replica.state();
    let name = st.member_name(key).unwrap_or(key.short()).to_string();
    let mut addrs = replica.reported_addrs().remove(key).unwrap_or_default();
    if let Some(m) = st.members.get(key) {
        addrs.extend(m.addrs.iter().cloned());
    }
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() && fleet_relay(st)?.is_none() {
        bail!(
            "{name} has published no address and the fleet has no relay: nothing says where to reach it"
        );
    }
    let text = format!("{key}@{}", addrs.join(","));
    let mut a = iroh::EndpointAddr::new(parse_endpoint_addr(&text)?.id);
    for s in addrs.iter().filter_map(|a| a.parse::<SocketAddr>().ok()) {
        a = a.with_ip_addr(s);
    }
    Ok(a)
}

pub struct ServeOpts<'a> {
    pub listen: SocketAddr,
    pub peer: Option<&'a str>,
    pub mdns: bool,
    pub quiet: bool,
    /// Where this replica hands the fleet's health on.
    pub outlets: crate::cli::args::OutletArgs,
}

pub fn serve(dir: &Path, replica: Replica, out: &Out, opts: ServeOpts<'_>) -> Result<()> {
    let ServeOpts {
        listen,
        peer,
        mdns,
        quiet,
        outlets,
    } = opts;
    let target = peer.map(|p| resolve_peer(&replica, p)).transpose()?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut cfg = EngineConfig::new(listen);
        cfg.mdns = mdns;
        cfg.status_file = Some(dir.join(STATUS_FILE));
        let engine = std::sync::Arc::new(Engine::start(replica, cfg).await?);
        fleetdeck_node::rollouts::spawn(&engine);
        let started = match crate::outlets::start(&engine, &outlets).await {
            Ok(s) => s,
            Err(e) => {
                // Close the endpoint before saying why.
                engine.shutdown().await;
                return Err(e);
            }
        };
        let addr = format_endpoint_addr(&engine.endpoint_addr());
        if !quiet {
            out.emit(&json!({"listening": engine.local_addrs(), "peer_addr": addr, "member": engine.key(), "outlets": started}), || {
                let mut text = format!("serving on {}; peers reach this replica as\n  {addr}\n", engine
                    .local_addrs()
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "));
                for s in &started {
                    text.push_str(&format!("{}: {}\n", s.outlet, s.detail));
                }
                text.push_str("Ctrl-C stops");
                text
            })?;
        }
        if let Some(t) = target {
            engine.connect(t);
        }
        // Ctrl-C, or SIGTERM (systemd): sessions close with a word to the
        // peers, who see this replica leave at once.
        crate::daemon::wait_for_stop().await;
        engine.shutdown().await;
        let _ = std::fs::remove_file(dir.join(STATUS_FILE));
        Ok(())
    })
}

pub fn sync_once(replica: Replica, out: &Out, peer: Option<&str>) -> Result<()> {
    let targets: Vec<(String, iroh::EndpointAddr)> = match peer {
        Some(p) => vec![(p.to_string(), resolve_peer(&replica, p)?)],
        None => {
            let st = replica.state();
            st.members
                .values()
                .filter(|m| &m.key != replica.key())
                .filter_map(|m| {
                    resolve_peer(&replica, m.key.as_str())
                        .ok()
                        .map(|a| (m.name.clone(), a))
                })
                .collect()
        }
    };
    if targets.is_empty() {
        bail!(
            "no peer to sync with: no member has published an address; pass --peer ENDPOINT_ID@IP:PORT"
        );
    }
    let rt = runtime()?;
    let results = rt.block_on(async {
        let mut cfg = EngineConfig::new("0.0.0.0:0".parse().expect("valid"));
        cfg.dial = false;
        cfg.publish_addrs = false;
        let engine = Engine::start(replica, cfg).await?;
        fleetdeck_node::rollouts::spawn(&engine);
        let mut results = Vec::new();
        for (name, addr) in targets {
            let r = engine
                .sync_once(addr, Duration::from_millis(300), Duration::from_secs(60))
                .await;
            results.push((name, r.map_err(|e| e.to_string())));
        }
        let (bytes_in, bytes_out) = (engine.stats().bytes_in(), engine.stats().bytes_out());
        engine.shutdown().await;
        anyhow::Ok((results, bytes_in, bytes_out))
    })?;
    let (results, bytes_in, bytes_out) = results;
    let ok = results.iter().filter(|(_, r)| r.is_ok()).count();
    let rows: Vec<_> = results
        .iter()
        .map(|(n, r)| json!({"peer": n, "ok": r.is_ok(), "error": r.as_ref().err()}))
        .collect();
    out.emit(
        &json!({"peers": rows, "bytes_in": bytes_in, "bytes_out": bytes_out}),
        || {
            let mut s = String::new();
            for (n, r) in &results {
                match r {
                    Ok(()) => s.push_str(&format!("synced with {n}\n")),
                    Err(e) => s.push_str(&format!("could not sync with {n}: {e}\n")),
                }
            }
            s.push_str(&format!("{bytes_out} bytes sent, {bytes_in} received"));
            s
        },
    )?;
    if ok == 0 {
        bail!("could not sync with any peer");
    }
    Ok(())
}

pub fn peers(dir: &Path, replica: &Replica, out: &Out) -> Result<()> {
    let status: Option<StatusFile> = std::fs::read(dir.join(STATUS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let now = now_ms();
    let running = status.as_ref().is_some_and(|s| now - s.written_ms < 5_000);
    let st = replica.state();
    let rows: Vec<serde_json::Value> = st
        .members
        .values()
        .filter(|m| &m.key != replica.key())
        .map(|m| {
            let p = status
                .as_ref()
                .and_then(|s| s.peers.iter().find(|p| p.key == m.key.as_str()));
            json!({
                "key": m.key, "name": m.name, "role": m.role,
                "connected": running && p.is_some_and(|p| p.connected),
                "path": p.filter(|_| running).and_then(|p| p.path),
                "rtt_ms": p.filter(|_| running).and_then(|p| p.rtt_ms),
                "addr": p.and_then(|p| p.addr.clone()).or_else(|| m.addrs.first().cloned()),
                "last_sync_ms": p.and_then(|p| p.last_sync_ms),
                "lacks": p.and_then(|p| p.lacks),
                "last_error": p.and_then(|p| p.last_error.clone()),
            })
        })
        .collect();
    let doc = json!({"serving": running, "status_written_ms": status.as_ref().map(|s| s.written_ms), "peers": rows});
    out.emit(&doc, || {
        let mut s = match (&status, running) {
            (_, true) => String::from("serve is running on this data dir\n"),
            (Some(st), false) => format!(
                "serve is not running (last status {})\n",
                ago(now, st.written_ms)
            ),
            (None, false) => String::from(
                "serve is not running on this data dir: peers are listed from the fleet document\n",
            ),
        };
        let mut t = Table::new(&[
            "PEER",
            "KEY",
            "ROLE",
            "STATE",
            "PATH",
            "RTT",
            "ADDRESS",
            "LAST SYNC",
            "LACKS",
            "LAST ERROR",
        ]);
        for r in &rows {
            let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            t.row(vec![
                text("name"),
                short(r["key"].as_str().unwrap_or("")).to_string(),
                text("role"),
                if r["connected"] == true {
                    "connected".into()
                } else {
                    "-".into()
                },
                text("path"),
                r["rtt_ms"]
                    .as_u64()
                    .map_or("-".into(), |ms| format!("{ms} ms")),
                text("addr"),
                r["last_sync_ms"]
                    .as_i64()
                    .map_or("never".into(), |t| ago(now, t)),
                r["lacks"]
                    .as_u64()
                    .map_or("-".into(), |n| format!("{n} change(s)")),
                text("last_error"),
            ]);
        }
        s.push_str(&t.render());
        s
    })
}

pub fn bundle_export(replica: &mut Replica, out: &Out, file: &Path) -> Result<()> {
    let e = bundle::export(replica, file)?;
    out.emit(&e, || {
        format!(
            "wrote {}: {} change(s), {} health register(s), {} command results register(s), {} bytes",
            file.display(),
            e.changes,
            e.health,
            e.results,
            e.bytes
        )
    })
}

pub fn bundle_import(replica: &mut Replica, out: &Out, file: &Path) -> Result<()> {
    let i = bundle::import(replica, file)?;
    out.emit(&i, || {
        let mut s = format!(
            "imported {}: {} new change(s), {} new health register(s), {} new command results register(s)",
            file.display(),
            i.changes_new,
            i.health_new,
            i.results_new
        );
        if i.changes_refused > 0 {
            s.push_str(&format!(
                "; {} change(s) refused (authors not members)",
                i.changes_refused
            ));
        }
        if !i.health_refused.is_empty() {
            s.push_str(&format!(
                "; {} health register(s) refused ({})",
                i.health_refused.len(),
                i.health_refused.join("; ")
            ));
        }
        if !i.results_refused.is_empty() {
            s.push_str(&format!(
                "; {} command results register(s) refused ({})",
                i.results_refused.len(),
                i.results_refused.join("; ")
            ));
        }
        s
    })
}

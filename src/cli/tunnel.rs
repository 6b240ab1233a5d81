//! `fleetdeck tunnel`: a local TCP port that reaches a service on a node (or
//! a device on its LAN) through a WireGuard tunnel the node ends.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use fleetdeck_store::{NodeId, Role, overlay};
use fleetdeck_sync::{Engine, EngineConfig};
use serde_json::json;

use super::args::Cli;
use super::open;
use crate::output::{Out, say};

pub(super) fn tunnel(
    cli: &Cli,
    out: &Out,
    node: &NodeId,
    port: Option<u16>,
    to: Option<SocketAddrV4>,
    local: SocketAddr,
) -> Result<()> {
    let replica = open(cli)?;
    let target = match (port, to) {
        (_, Some(t)) => t,
        (Some(p), None) if p != 0 => SocketAddrV4::new(Ipv4Addr::LOCALHOST, p),
        _ => bail!("give the PORT of a service on {node}, or --to IP:PORT for a device on its LAN"),
    };
    let (addr, first_time) = prepare(&replica, node, target)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut cfg = EngineConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)));
        cfg.dial = false;
        cfg.publish_addrs = false;
        let engine = Engine::start(replica, cfg).await?;
        let r = run(&engine, out, node, target, local, addr, first_time).await;
        engine.shutdown().await;
        r
    })
}

/// What opening a tunnel through `node` to `target` needs from this
/// replica, checked as the node will check it (its role, the node's
/// daemon, the node's allowlist as this replica holds it): where the node
/// is reached, and whether this replica's WireGuard key still has to reach
/// the node (its first tunnel: a sync first). The console uses it too.
pub(crate) fn prepare(
    replica: &fleetdeck_store::Replica,
    node: &NodeId,
    target: SocketAddrV4,
) -> Result<(iroh::EndpointAddr, bool)> {
    let st = replica.state().clone();
    let me = replica.key().clone();
    match st.members.get(&me).map(|m| m.role) {
        Some(Role::Admin | Role::Operator) => {}
        Some(role) => bail!(
            "this replica is a {role}: only operators and admins open tunnels (an admin changes roles with `fleetdeck member role`)"
        ),
        None => bail!("this replica is not a member of its fleet"),
    }
    let n = st.node(node)?;
    let key = n.key.clone().ok_or_else(|| {
        anyhow!("as far as this replica knows, node {node} runs no daemon yet (no replica is bound to it), so nothing ends a tunnel there; if it does, sync first (`fleetdeck sync --once`)")
    })?;
    // What this replica knows of the node's allowlist: the node decides
    // (from its own replica), but a target this one does not list is
    // almost always a typo or a missing `config set`; say so here.
    let allowed = overlay::tunnel_targets(&replica.effective_node(node)?)
        .map_err(|why| anyhow!("node {node}'s {why}"))?;
    if !allowed.contains(&target) {
        let listed = if allowed.is_empty() {
            "it allows nothing".to_string()
        } else {
            let a: Vec<String> = allowed.iter().map(|t| t.to_string()).collect();
            format!("it allows {}", a.join(", "))
        };
        // The whole list with the target added: `config set` replaces it.
        let with: Vec<String> = allowed
            .iter()
            .chain(std::iter::once(&target))
            .map(|t| format!("\"{t}\""))
            .collect();
        bail!(
            "{target} is not in node {node}'s tunnel.allow ({listed}); an admin adds it: fleetdeck config set tunnel.allow '[{}]' --node {node}",
            with.join(", ")
        );
    }
    let addr = crate::net::member_addr(replica, &key)?;
    // A replica whose WireGuard key is not in its member record yet writes
    // it when its engine starts; the node learns it by a sync first.
    let first_time = st.members.get(&me).is_some_and(|m| m.wg.is_none());
    Ok((addr, first_time))
}

async fn run(
    engine: &Engine,
    out: &Out,
    node: &NodeId,
    target: SocketAddrV4,
    local: SocketAddr,
    addr: iroh::EndpointAddr,
    first_time: bool,
) -> Result<()> {
    if first_time {
        out.note(&format!(
            "publishing this replica's WireGuard key to {node} first"
        ));
        if let Err(e) = engine
            .sync_once(
                addr.clone(),
                Duration::from_millis(300),
                Duration::from_secs(30),
            )
            .await
        {
            out.note(&format!("could not sync with {node} first: {e}"));
        }
    }
    let listener = tokio::net::TcpListener::bind(local)
        .await
        .map_err(|e| anyhow!("cannot listen on {local}: {e}"))?;
    let tunnel = engine.open_tunnel(addr, target, listener).await?;
    let at = tunnel.local;
    let shown = if target.ip().is_loopback() {
        format!("port {} on {node}", target.port())
    } else {
        format!("{target} through {node}")
    };
    if out.is_json() {
        say(
            &json!({"local": at.to_string(), "node": node, "target": target.to_string()})
                .to_string(),
        );
    } else {
        say(&format!(
            "tunnel open: connect to {at} to reach {shown} (Ctrl-C closes it)"
        ));
    }
    tokio::select! {
        why = tunnel.ended() => bail!("the tunnel to {node} ended: {why}"),
        _ = crate::daemon::wait_for_stop() => {
            out.note("closing the tunnel");
            Ok(())
        }
    }
}

/// `fleetdeck wg-config --node NODE --name NAME`: enrolls a device that
/// reaches the node's tunnel targets over plain WireGuard, and prints its
/// `wg-quick` configuration (with its private key: shown once, kept
/// nowhere else).
pub(super) fn wg_config(
    cli: &Cli,
    out: &Out,
    node: &NodeId,
    name: &str,
    endpoint: Option<&str>,
) -> Result<()> {
    use fleetdeck_store::identity::Identity;
    use fleetdeck_store::ops::{self, Op};

    let mut replica = open(cli)?;
    let st = replica.state().clone();
    let n = st.node(node)?;
    let node_key = n.key.clone().ok_or_else(|| {
        anyhow!("as far as this replica knows, node {node} runs no daemon yet (no replica is bound to it); if it does, sync first (`fleetdeck sync --once`)")
    })?;
    let node_wg = st
        .members
        .get(&node_key)
        .and_then(|m| m.wg)
        .ok_or_else(|| anyhow!("node {node} has published no WireGuard key yet: its daemon needs a fleetdeck with tunnels, started once since (then sync here)"))?;
    let effective = replica.effective_node(node)?;
    let port = effective
        .get_str("tunnel.wg_port")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| anyhow!("node {node} takes no plain WireGuard: an admin sets the UDP port, e.g. `fleetdeck config set tunnel.wg_port 51820 --node {node}`, and restarts its daemon"))?;
    let allowed =
        overlay::tunnel_targets(&effective).map_err(|why| anyhow!("node {node}'s {why}"))?;
    if allowed.is_empty() {
        bail!(
            "node {node}'s tunnel.allow is empty: the device would reach nothing; an admin lists targets first"
        );
    }
    let endpoint = match endpoint {
        Some(e) => e.to_string(),
        None => {
            let ip = replica
                .reported_addrs()
                .remove(&node_key)
                .unwrap_or_default()
                .into_iter()
                .chain(st.members.get(&node_key).map(|m| m.addrs.clone()).unwrap_or_default())
                .filter_map(|a| a.parse::<SocketAddr>().ok())
                .map(|a| a.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified())
                .ok_or_else(|| anyhow!("no address of node {node} is known here: give the one the device reaches it at, --endpoint HOST:{port}"))?;
            format!("{ip}:{port}")
        }
    };
    let device = Identity::generate();
    let public = fleetdeck_sync::tunnel::wg_public(&device);
    let done = ops::apply(
        &mut replica,
        Op::MemberDevice {
            key: device.key().clone(),
            name: name.to_string(),
            wg: public,
        },
        fleetdeck_store::now_ms(),
    )?;
    // What the device reaches: the node's own services at its address
    // inside the tunnel, the LAN targets at theirs.
    let mut routes = vec![format!("{}/32", fleetdeck_sync::tunnel::NODE_IP)];
    let endpoint_ip = endpoint
        .rsplit_once(':')
        .and_then(|(h, _)| h.parse::<std::net::IpAddr>().ok());
    for t in &allowed {
        let r = format!("{}/32", t.ip());
        if t.ip().is_loopback() || routes.contains(&r) {
            continue;
        }
        // The tunnel's own packets go to the endpoint: routed into the
        // tunnel, it would never come up.
        if endpoint_ip == Some(std::net::IpAddr::V4(*t.ip())) {
            out.note(&format!(
                "{t} is the node's own address, where the device reaches it: left out of AllowedIPs (reach it as {}:{} instead, if tunnel.allow lists 127.0.0.1:{})",
                fleetdeck_sync::tunnel::NODE_IP,
                t.port(),
                t.port()
            ));
            continue;
        }
        routes.push(r);
    }
    let reach: Vec<String> = allowed
        .iter()
        .map(|t| {
            if t.ip().is_loopback() {
                format!("{}:{}", fleetdeck_sync::tunnel::NODE_IP, t.port())
            } else {
                t.to_string()
            }
        })
        .collect();
    let text = format!(
        "# fleetdeck: device {name} for node {node}; revoke with `fleetdeck member revoke {name}`\n\
         # reaches: {}\n\
         [Interface]\n\
         PrivateKey = {}\n\
         Address = {}/32\n\
         MTU = 1420\n\
         \n\
         [Peer]\n\
         PublicKey = {}\n\
         Endpoint = {endpoint}\n\
         AllowedIPs = {}\n\
         PersistentKeepalive = 25\n",
        reach.join(", "),
        overlay::format_wg_key(&fleetdeck_sync::tunnel::wg_private(&device)),
        fleetdeck_sync::tunnel::DIALER_IP,
        overlay::format_wg_key(&node_wg),
        routes.join(", "),
    );
    out.note(&format!(
        "{}\nthe configuration below holds the device's private key: it is shown once and kept nowhere else. The node takes the device once this change reaches it (a `fleetdeck serve` here spreads it).",
        done.line()
    ));
    out.emit(
        &json!({
            "config": text,
            "name": name,
            "member": device.key(),
            "address": fleetdeck_sync::tunnel::DIALER_IP.to_string(),
            "endpoint": endpoint,
            "reaches": reach,
            "change": done.change.map(|h| h.to_string()),
        }),
        || text.trim_end().to_string(),
    )
}

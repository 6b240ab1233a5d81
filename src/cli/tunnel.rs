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

/// One node in a device's configuration.
struct WgPeer {
    node: NodeId,
    wg: [u8; 32],
    /// Where the device sends its datagrams, HOST:PORT.
    endpoint: String,
    /// The node's overlay address (its own services there).
    overlay: Ipv4Addr,
    targets: Vec<SocketAddrV4>,
}

/// One peer's `AllowedIPs`, and the targets the device reaches there.
struct Routes {
    allowed: Vec<String>,
    reaches: Vec<String>,
}

/// What each peer's `AllowedIPs` routes, and what each reaches, in the
/// order of `peers`; plus notes on what was left out. WireGuard routes an
/// address to one peer: a LAN address two nodes list (two sites' cameras
/// at 192.168.1.20, say) goes to neither, and no peer's endpoint is routed
/// into the tunnel (its datagrams would never leave).
fn wg_routes(peers: &[WgPeer]) -> (Vec<Routes>, Vec<String>) {
    let host = |e: &str| {
        e.rsplit_once(':')
            .and_then(|(h, _)| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
    };
    let endpoints: Vec<_> = peers.iter().filter_map(|p| host(&p.endpoint)).collect();
    let listed_by = |ip: Ipv4Addr| {
        peers
            .iter()
            .filter(|p| p.targets.iter().any(|t| *t.ip() == ip))
            .count()
    };
    let mut notes = Vec::new();
    let mut out = Vec::with_capacity(peers.len());
    for p in peers {
        let mut routes = vec![format!("{}/32", p.overlay)];
        let mut reach = Vec::new();
        for t in &p.targets {
            if t.ip().is_loopback() {
                reach.push(SocketAddrV4::new(p.overlay, t.port()).to_string());
                continue;
            }
            if endpoints.contains(&std::net::IpAddr::V4(*t.ip())) {
                notes.push(format!(
                    "{t} (node {}) is where the device reaches a node: left out of AllowedIPs (a service on that node is reached at its overlay address, if its tunnel.allow lists 127.0.0.1:{})",
                    p.node,
                    t.port()
                ));
                continue;
            }
            if listed_by(*t.ip()) > 1 {
                notes.push(format!(
                    "{t} (node {}) is listed by several nodes: WireGuard routes an address to one peer, so it is left out (a configuration for one of those nodes, --node, reaches it)",
                    p.node
                ));
                continue;
            }
            let r = format!("{}/32", t.ip());
            if !routes.contains(&r) {
                routes.push(r);
            }
            reach.push(t.to_string());
        }
        out.push(Routes {
            allowed: routes,
            reaches: reach,
        });
    }
    (out, notes)
}

/// An endpoint as a device's configuration takes it: HOST:PORT, HOST an
/// IPv4 address, a bracketed IPv6 address or a DNS name.
fn parse_endpoint(text: &str) -> Result<String> {
    let bad = || {
        anyhow!(
            "--endpoint {text:?} is not HOST:PORT (an IP address, [IPv6] or a DNS name, and a port from 1 to 65535)"
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ok_host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.parse::<Ipv4Addr>().is_ok()
            || (!host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && !host.starts_with(['-', '.']))
    };
    if port == 0 || !ok_host {
        return Err(bad());
    }
    Ok(text.to_string())
}

/// The endpoints given on the command line: for one node (`HOST:PORT`,
/// only with one `--node`), and per node (`NODE=HOST:PORT`).
struct Endpoints {
    one: Option<String>,
    per_node: Vec<(NodeId, String)>,
}

fn given_endpoints(given: &[String]) -> Result<Endpoints> {
    let mut any = None;
    let mut per = Vec::new();
    for e in given {
        match e.split_once('=') {
            Some((node, at)) => per.push((NodeId::parse(node)?, parse_endpoint(at)?)),
            None if any.is_none() => any = Some(parse_endpoint(e)?),
            None => bail!("--endpoint HOST:PORT given twice: name each node's, NODE=HOST:PORT"),
        }
    }
    Ok(Endpoints {
        one: any,
        per_node: per,
    })
}

/// A node as a peer of a device, or why it cannot be one.
fn wg_peer(
    replica: &fleetdeck_store::Replica,
    overlay_of: &std::collections::BTreeMap<fleetdeck_store::MemberKey, Ipv4Addr>,
    node: &NodeId,
    endpoint: Option<&str>,
) -> Result<WgPeer> {
    let st = replica.state();
    let n = st.node(node)?;
    let node_key = n.key.clone().ok_or_else(|| {
        anyhow!("as far as this replica knows, node {node} runs no daemon yet (no replica is bound to it); if it does, sync first (`fleetdeck sync --once`)")
    })?;
    let wg = st
        .members
        .get(&node_key)
        .and_then(|m| m.wg)
        .ok_or_else(|| anyhow!("node {node} has published no WireGuard key yet: its daemon needs a fleetdeck with tunnels, started once since (then sync here)"))?;
    let overlay = *overlay_of
        .get(&node_key)
        .ok_or_else(|| anyhow!("node {node}'s replica is not a member of this fleet"))?;
    let effective = replica.effective_node(node)?;
    let port = effective
        .get_str("tunnel.wg_port")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| anyhow!("node {node} takes no plain WireGuard: an admin sets the UDP port, e.g. `fleetdeck config set tunnel.wg_port 51820 --node {node}`, and restarts its daemon"))?;
    let targets =
        overlay::tunnel_targets(&effective).map_err(|why| anyhow!("node {node}'s {why}"))?;
    if targets.is_empty() {
        bail!(
            "node {node}'s tunnel.allow is empty: the device would reach nothing there; an admin lists targets first"
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
                .ok_or_else(|| anyhow!("no address of node {node} is known here: give the one the device reaches it at, --endpoint {node}=HOST:{port}"))?;
            format!("{ip}:{port}")
        }
    };
    Ok(WgPeer {
        node: node.clone(),
        wg,
        endpoint,
        overlay,
        targets,
    })
}

/// `fleetdeck wg-config --name NAME [--node NODE]…`: enrolls a device that
/// reaches nodes' tunnel targets over plain WireGuard, and prints its
/// `wg-quick` configuration: one interface at the device's overlay
/// address, each node a peer at its own (with its private key: shown once,
/// kept nowhere else).
pub(super) fn wg_config(
    cli: &Cli,
    out: &Out,
    nodes: &[NodeId],
    name: &str,
    endpoints: &[String],
) -> Result<()> {
    use fleetdeck_store::identity::Identity;
    use fleetdeck_store::ops::{self, Op};

    let mut replica = open(cli)?;
    let Endpoints {
        one: one_endpoint,
        per_node,
    } = given_endpoints(endpoints)?;
    if one_endpoint.is_some() && nodes.len() != 1 {
        bail!(
            "--endpoint HOST:PORT is for one node (--node NODE): for several, name each node's, --endpoint NODE=HOST:PORT"
        );
    }
    for (n, _) in &per_node {
        replica.state().node(n)?;
        if !nodes.is_empty() && !nodes.contains(n) {
            bail!("--endpoint names node {n}, which is not one of the --node given");
        }
    }
    let endpoint_of = |node: &NodeId| {
        per_node
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, e)| e.as_str())
            .or(one_endpoint.as_deref())
    };
    let overlay_of = overlay::addresses(replica.state());
    let mut peers = Vec::new();
    if nodes.is_empty() {
        // Every node that takes plain WireGuard; those that should but
        // cannot yet are named.
        let all: Vec<NodeId> = replica.state().nodes.keys().cloned().collect();
        let mut left_out = 0;
        for node in &all {
            let takes = replica
                .effective_node(node)
                .is_ok_and(|e| e.get_str("tunnel.wg_port").is_some());
            if !takes {
                continue;
            }
            match wg_peer(&replica, &overlay_of, node, endpoint_of(node)) {
                Ok(p) => peers.push(p),
                Err(e) => {
                    left_out += 1;
                    out.note(&format!("left out: {e}"));
                }
            }
        }
        if peers.is_empty() && left_out > 0 {
            bail!("no node could be a peer of the device: each was left out (above)");
        }
        if peers.is_empty() {
            bail!(
                "no node takes plain WireGuard with targets to reach: an admin sets tunnel.wg_port and tunnel.allow for a node first (see `fleetdeck wg-config --help`)"
            );
        }
    } else {
        for node in nodes {
            if peers.iter().any(|p: &WgPeer| &p.node == node) {
                continue;
            }
            peers.push(wg_peer(&replica, &overlay_of, node, endpoint_of(node))?);
        }
    }
    if let Some((n, _)) = per_node
        .iter()
        .find(|(n, _)| !peers.iter().any(|p| &p.node == n))
    {
        bail!("--endpoint names node {n}, which the device does not reach");
    }
    let (routes, notes) = wg_routes(&peers);
    for n in &notes {
        out.note(n);
    }

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
    let address = overlay::address_of(replica.state(), device.key())
        .ok_or_else(|| anyhow!("the device's member record is missing after its enrolment"))?;
    let shown: Vec<String> = peers.iter().map(|p| p.node.to_string()).collect();
    let mut text = format!(
        "# fleetdeck: device {name} for {}; revoke with `fleetdeck member revoke {name}`\n\
         [Interface]\n\
         PrivateKey = {}\n\
         Address = {address}/32\n\
         MTU = 1420\n",
        if peers.len() == 1 {
            format!("node {}", shown[0])
        } else {
            format!("nodes {}", shown.join(", "))
        },
        overlay::format_wg_key(&fleetdeck_sync::tunnel::wg_private(&device)),
    );
    for (p, r) in peers.iter().zip(&routes) {
        text.push_str(&format!(
            "\n# node {}, reaches: {}\n\
             [Peer]\n\
             PublicKey = {}\n\
             Endpoint = {}\n\
             AllowedIPs = {}\n\
             PersistentKeepalive = 25\n",
            p.node,
            r.reaches.join(", "),
            overlay::format_wg_key(&p.wg),
            p.endpoint,
            r.allowed.join(", "),
        ));
    }
    out.note(&format!(
        "{}\nthe configuration below holds the device's private key: it is shown once and kept nowhere else. A node takes the device once this change reaches it (a `fleetdeck serve` here spreads it).",
        done.line()
    ));
    let peers_json: Vec<_> = peers
        .iter()
        .zip(&routes)
        .map(|(p, r)| {
            json!({
                "node": p.node,
                "address": p.overlay.to_string(),
                "endpoint": p.endpoint,
                "reaches": r.reaches,
            })
        })
        .collect();
    out.emit(
        &json!({
            "config": text,
            "name": name,
            "member": device.key(),
            "address": address.to_string(),
            "peers": peers_json,
            "change": done.change.map(|h| h.to_string()),
        }),
        || text.trim_end().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(node: &str, overlay: [u8; 4], endpoint: &str, targets: &[&str]) -> WgPeer {
        WgPeer {
            node: NodeId::parse(node).unwrap(),
            wg: [0; 32],
            endpoint: endpoint.to_string(),
            overlay: Ipv4Addr::from(overlay),
            targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn each_node_is_routed_at_its_overlay_address_and_a_shared_lan_address_at_none() {
        let peers = [
            peer(
                "a1",
                [100, 70, 1, 2],
                "203.0.113.7:51820",
                &["127.0.0.1:5000", "192.168.1.20:554", "192.168.1.30:80"],
            ),
            peer(
                "b1",
                [100, 99, 3, 4],
                "192.168.1.30:51820",
                &["127.0.0.1:5000", "192.168.1.20:554"],
            ),
        ];
        let (routes, notes) = wg_routes(&peers);
        assert_eq!(routes[0].allowed, ["100.70.1.2/32"]);
        assert_eq!(routes[1].allowed, ["100.99.3.4/32"]);
        assert_eq!(routes[0].reaches, ["100.70.1.2:5000"]);
        assert_eq!(routes[1].reaches, ["100.99.3.4:5000"]);
        // Both nodes list the camera at .20; .30 is b1's endpoint.
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes.iter().any(
            |n| n.contains("192.168.1.30:80") && n.contains("where the device reaches a node")
        ));
        assert_eq!(
            notes
                .iter()
                .filter(|n| n.contains("listed by several nodes"))
                .count(),
            2
        );
        // One node alone: its LAN targets are routed.
        let (one, notes) = wg_routes(&peers[..1]);
        assert_eq!(
            one[0].allowed,
            ["100.70.1.2/32", "192.168.1.20/32", "192.168.1.30/32"]
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn endpoints_are_host_and_port_and_nothing_else() {
        for ok in [
            "10.0.0.2:51820",
            "[2001:db8::1]:51820",
            "site-a.example.net:51820",
        ] {
            assert_eq!(parse_endpoint(ok).unwrap(), ok);
        }
        for bad in [
            "10.0.0.2",
            "10.0.0.2:0",
            "10.0.0.2:99999",
            ":51820",
            "a b:1",
            "x\nEndpoint = y:1",
            "2001:db8::1:51820",
            "-x:1",
        ] {
            let e = parse_endpoint(bad).unwrap_err().to_string();
            assert!(e.contains("not HOST:PORT"), "{bad}: {e}");
        }
        let given = given_endpoints(&["a1=10.0.0.2:51820".into(), "10.0.0.3:1".into()]).unwrap();
        assert_eq!(given.one.as_deref(), Some("10.0.0.3:1"));
        assert_eq!(given.per_node[0].0.as_str(), "a1");
        assert!(given_endpoints(&["10.0.0.2:1".into(), "10.0.0.3:1".into()]).is_err());
    }
}

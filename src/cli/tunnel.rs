//! `fleetdeck tunnel`: a local TCP port that reaches a service on a node (or
//! a device on its LAN) through a WireGuard tunnel the node ends.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use fleetdeck_store::document::FleetState;
use fleetdeck_store::{MemberKey, NodeId, Role, overlay};
use fleetdeck_sync::{Engine, EngineConfig};
use serde_json::json;

use super::args::Cli;
use super::open;
use crate::output::{self, Out, say};

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
    let ready = prepare(&replica, node, target)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let engine = Engine::start(replica, engine_config()).await?;
        let r = run(&engine, out, node, target, local, ready).await;
        engine.shutdown().await;
        r
    })
}

/// How an engine started for tunnels alone is set: it dials no peer and
/// publishes no address (the CLI's, or the console's beside a `serve`).
pub(crate) fn engine_config() -> EngineConfig {
    let mut cfg = EngineConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)));
    cfg.dial = false;
    cfg.publish_addrs = false;
    cfg
}

/// Opens the tunnel [`prepare`] checked, listening on `local`: when this
/// replica's WireGuard key has yet to reach the node, a sync with the node
/// first (`note` says so, and why it failed, if it did).
pub(crate) async fn open_prepared(
    engine: &Engine,
    node: &NodeId,
    (addr, first_time): (iroh::EndpointAddr, bool),
    target: SocketAddrV4,
    local: SocketAddr,
    note: impl Fn(&str),
) -> Result<fleetdeck_sync::tunnel::Tunnel> {
    if first_time {
        note(&format!(
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
            note(&format!("could not sync with {node} first: {e}"));
        }
    }
    let listener = tokio::net::TcpListener::bind(local)
        .await
        .map_err(|e| anyhow!("cannot listen on {local}: {e}"))?;
    Ok(engine.open_tunnel(addr, target, listener).await?)
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
    let st = replica.state();
    let me = replica.key();
    match st.members.get(me).map(|m| m.role) {
        Some(Role::Admin | Role::Operator) => {}
        Some(role) => bail!(
            "this replica is a {role}: only operators and admins open tunnels (an admin changes roles with `fleetdeck member role`)"
        ),
        None => bail!("this replica is not a member of its fleet"),
    }
    let key = node_daemon_key(st, node)?;
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
    let first_time = st.members.get(me).is_some_and(|m| m.wg.is_none());
    Ok((addr, first_time))
}

async fn run(
    engine: &Engine,
    out: &Out,
    node: &NodeId,
    target: SocketAddrV4,
    local: SocketAddr,
    ready: (iroh::EndpointAddr, bool),
) -> Result<()> {
    let tunnel = open_prepared(engine, node, ready, target, local, |n| out.note(n)).await?;
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
    /// The key of its daemon (its member record).
    key: MemberKey,
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
                reach.push(fleetdeck_sync::tunnel::inside_target(*t, p.overlay).to_string());
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
            Some((node, at)) => {
                let node = NodeId::parse(node)?;
                if per.iter().any(|(n, _)| *n == node) {
                    bail!("--endpoint {node}=… given twice");
                }
                per.push((node, parse_endpoint(at)?));
            }
            None if any.is_none() => any = Some(parse_endpoint(e)?),
            None => bail!("--endpoint HOST:PORT given twice: name each node's, NODE=HOST:PORT"),
        }
    }
    Ok(Endpoints {
        one: any,
        per_node: per,
    })
}

/// The key of the daemon that runs `node`, checked as the far end of a
/// tunnel: bound, a current member whose role is node, and running that
/// node alone. Operators write bindings and a node may bind any unbound
/// node, so a binding is looked at before a device or a tunnel is pointed
/// at it.
fn node_daemon_key(st: &FleetState, node: &NodeId) -> Result<MemberKey> {
    let key = st.node(node)?.key.clone().ok_or_else(|| {
        anyhow!("as far as this replica knows, node {node} runs no daemon yet (no replica is bound to it), so nothing ends a tunnel there; if it does, sync first (`fleetdeck sync --once`)")
    })?;
    if st.revoked.contains_key(&key) {
        bail!(
            "node {node} is bound to key {}, which an admin revoked: nothing there may end a tunnel until its device joins again under a new key",
            key.short()
        );
    }
    let m = st.members.get(&key).ok_or_else(|| {
        anyhow!(
            "node {node} is bound to key {}, which is not a member of this fleet",
            key.short()
        )
    })?;
    if m.role != Role::Node {
        bail!(
            "node {node} is bound to {} ({}), whose role is {}, not a node device's: check the binding (`fleetdeck node show {node}`)",
            output::clean(&m.name),
            key.short(),
            m.role
        );
    }
    let others: Vec<String> = st
        .nodes_run_by(&key)
        .iter()
        .filter(|n| *n != node)
        .map(|n| n.to_string())
        .collect();
    if !others.is_empty() {
        bail!(
            "node {node}'s key ({}) also runs node {}: a daemon ends tunnels for one node; check the bindings (`fleetdeck node show {node}`)",
            key.short(),
            others.join(", ")
        );
    }
    Ok(key)
}

/// A node as a peer of a device (its overlay address still to be read,
/// once the device is enrolled), or why it cannot be one.
fn wg_peer(
    replica: &fleetdeck_store::Replica,
    node: &NodeId,
    endpoint: Option<&str>,
) -> Result<WgPeer> {
    let st = replica.state();
    let node_key = node_daemon_key(st, node)?;
    let wg = st
        .members
        .get(&node_key)
        .and_then(|m| m.wg)
        .ok_or_else(|| anyhow!("node {node} has published no WireGuard key yet: its daemon needs a fleetdeck with tunnels, started once since (then sync here)"))?;
    let effective = replica.effective_node(node)?;
    let port = overlay::wg_port(&effective)
        .map_err(|why| anyhow!("node {node}'s {why}"))?
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
        key: node_key,
        wg,
        endpoint,
        overlay: Ipv4Addr::UNSPECIFIED,
        targets,
    })
}

/// `name` as one shell word (quoted when it needs to be), for a command
/// shown to copy.
fn shell_word(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+:/".contains(c));
    if plain {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', r"'\''"))
    }
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
    let mut wanted: Vec<NodeId> = Vec::new();
    for n in nodes {
        if !wanted.contains(n) {
            wanted.push(n.clone());
        }
    }
    let Endpoints {
        one: one_endpoint,
        per_node,
    } = given_endpoints(endpoints)?;
    if one_endpoint.is_some() && wanted.len() != 1 {
        bail!(
            "--endpoint HOST:PORT is for one node (--node NODE): for several, name each node's, --endpoint NODE=HOST:PORT"
        );
    }
    for (n, _) in &per_node {
        replica.state().node(n)?;
        if !wanted.is_empty() && !wanted.contains(n) {
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
    // What is said beside the configuration: nodes left out, addresses
    // not routed (in `--json` too).
    let mut notes: Vec<String> = Vec::new();
    let mut left_out = Vec::new();
    let mut peers = Vec::new();
    if wanted.is_empty() {
        // Every node that takes plain WireGuard; those that should but
        // cannot yet are named.
        let all: Vec<NodeId> = replica.state().nodes.keys().cloned().collect();
        for node in &all {
            let takes = replica
                .effective_node(node)
                .is_ok_and(|e| !matches!(overlay::wg_port(&e), Ok(None)));
            if !takes {
                continue;
            }
            match wg_peer(&replica, node, endpoint_of(node)) {
                Ok(p) => peers.push(p),
                Err(e) => {
                    notes.push(format!("left out: {e}"));
                    left_out.push(json!({"node": node, "why": e.to_string()}));
                }
            }
        }
        if peers.is_empty() {
            for n in &notes {
                out.note(n);
            }
            if left_out.is_empty() {
                bail!(
                    "no node takes plain WireGuard with targets to reach: an admin sets tunnel.wg_port and tunnel.allow for a node first (see `fleetdeck wg-config --help`)"
                );
            }
            bail!("no node could be a peer of the device: each was left out (above)");
        }
    } else {
        for node in &wanted {
            peers.push(wg_peer(&replica, node, endpoint_of(node))?);
        }
    }
    if let Some((n, _)) = per_node
        .iter()
        .find(|(n, _)| !peers.iter().any(|p| &p.node == n))
    {
        bail!("--endpoint names node {n}, which the device does not reach");
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
    // Every address read once, with the device among the members.
    let overlay_of = overlay::addresses(replica.state());
    let address = *overlay_of
        .get(device.key())
        .ok_or_else(|| anyhow!("the device's member record is missing after its enrolment"))?;
    for p in &mut peers {
        p.overlay = *overlay_of
            .get(&p.key)
            .ok_or_else(|| anyhow!("node {}'s member record is missing", p.node))?;
    }
    let (routes, route_notes) = wg_routes(&peers);
    notes.extend(route_notes);
    let shown: Vec<String> = peers.iter().map(|p| p.node.to_string()).collect();
    let mut text = format!(
        "# fleetdeck: device {} for {}; revoke with `fleetdeck member revoke {}`\n\
         [Interface]\n\
         PrivateKey = {}\n\
         Address = {address}/32\n\
         MTU = 1420\n",
        output::clean(name),
        if peers.len() == 1 {
            format!("node {}", shown[0])
        } else {
            format!("nodes {}", shown.join(", "))
        },
        output::clean(&shell_word(name)),
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
    for n in &notes {
        out.note(n);
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
            "left_out": left_out,
            "notes": notes,
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
            key: MemberKey::from_bytes(&[overlay[3]; 32]),
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
    fn a_node_bound_to_a_key_that_is_not_its_device_is_no_tunnel_end() {
        use fleetdeck_store::SiteId;
        use fleetdeck_store::document::{FleetDoc, NodeRecord, Revocation, SiteRecord};
        let k = |i: u8| MemberKey::from_bytes(&[i; 32]);
        let (admin, dev, laptop, gone) = (k(1), k(2), k(3), k(4));
        let mut doc = FleetDoc::genesis(
            automerge::ActorId::from(admin.to_bytes().to_vec()),
            "f",
            "f",
            &admin,
            "admin",
            1,
        )
        .unwrap();
        doc.put_member(&dev, "dev", Role::Node, 2).unwrap();
        doc.put_member(&laptop, "laptop", Role::Operator, 3)
            .unwrap();
        doc.put_member(&gone, "gone", Role::Node, 4).unwrap();
        doc.revoke_member(&gone, &Revocation::default()).unwrap();
        let site = SiteId::parse("s1").unwrap();
        doc.add_site(
            &site,
            &SiteRecord {
                name: "one".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )
        .unwrap();
        let node = |doc: &mut FleetDoc, id: &str, key: Option<&MemberKey>| {
            let id = NodeId::parse(id).unwrap();
            doc.add_node(
                &id,
                &NodeRecord {
                    site: "s1".into(),
                    role: None,
                },
            )
            .unwrap();
            if let Some(key) = key {
                doc.bind_node(&id, key).unwrap();
            }
        };
        node(&mut doc, "n1", Some(&dev));
        node(&mut doc, "n2", Some(&laptop));
        node(&mut doc, "n3", Some(&gone));
        node(&mut doc, "n4", None);
        let st = doc.state().unwrap();
        let n = |id: &str| NodeId::parse(id).unwrap();
        assert_eq!(node_daemon_key(&st, &n("n1")).unwrap(), dev);
        for (id, says) in [
            ("n2", "whose role is operator"),
            ("n3", "revoked"),
            ("n4", "runs no daemon yet"),
        ] {
            let e = node_daemon_key(&st, &n(id)).unwrap_err().to_string();
            assert!(e.contains(says), "{id}: {e}");
        }
        // A node device that bound a second node (an unbound one, as a
        // captured device may): neither is a tunnel end any more.
        node(&mut doc, "n5", Some(&dev));
        let st = doc.state().unwrap();
        for id in ["n1", "n5"] {
            let e = node_daemon_key(&st, &n(id)).unwrap_err().to_string();
            assert!(e.contains("also runs node"), "{id}: {e}");
        }
    }

    #[test]
    fn a_name_is_shown_as_one_shell_word() {
        assert_eq!(shell_word("phone-anna"), "phone-anna");
        assert_eq!(shell_word("anna phone"), "'anna phone'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
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

//! Binding the iroh endpoint (LAN and loopback, plus the fleet's relay when
//! it has one), the addresses it can be reached at, and the
//! `ENDPOINT_ID@IP:PORT` form peers' addresses are written in.

use std::net::SocketAddr;
use std::time::Duration;

use fleetdeck_store::MemberKey;
use fleetdeck_store::document::FleetState;
use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::{
    IdleTimeout, NetReportConfig, PortmapperConfig, QuicTransportConfig, presets,
};
use iroh::protocol::Router;
use iroh::tls::CaTlsConfig;
use iroh::{
    Endpoint, EndpointAddr, EndpointId, RelayConfig, RelayMap, RelayMode, RelayUrl, SecretKey,
};

use crate::error::SyncError;
use crate::wire::ALPN;

/// Builds an endpoint for LAN and loopback use: no relays, no discovery
/// services, no port mapping, nothing that talks to the internet.
pub async fn bind_endpoint(
    secret: [u8; 32],
    listen: SocketAddr,
    lookup: &MemoryLookup,
) -> Result<Endpoint, SyncError> {
    bind_endpoint_with(secret, listen, lookup, None, None).await
}

/// [`bind_endpoint`], also reaching peers through `relay` when the fleet
/// has one (`sync.relay_url`): the only server it then talks to.
pub async fn bind_endpoint_with(
    secret: [u8; 32],
    listen: SocketAddr,
    lookup: &MemoryLookup,
    relay: Option<&RelayUrl>,
    relay_tls: Option<CaTlsConfig>,
) -> Result<Endpoint, SyncError> {
    bind_endpoint_through(
        secret,
        listen,
        lookup,
        relay.map(|u| RelayMap::from(relay_config(u))),
        relay_tls,
    )
    .await
}

/// How iroh reaches the fleet's relay: HTTPS at its URL, and QUIC address
/// discovery (what tells a replica behind NAT its public address, for
/// direct paths) on the same port number over UDP, where `fleetdeck
/// relay` serves it.
pub(crate) fn relay_config(url: &RelayUrl) -> RelayConfig {
    let mut c = RelayConfig::from(url.clone());
    c.quic = Some(iroh_relay::RelayQuicConfig::new(
        url.port_or_known_default().unwrap_or(443),
    ));
    c
}

/// [`bind_endpoint_with`] with the relay as iroh takes it (a joiner's carries
/// its invite's pass as the relay's auth token).
pub(crate) async fn bind_endpoint_through(
    secret: [u8; 32],
    listen: SocketAddr,
    lookup: &MemoryLookup,
    relay: Option<RelayMap>,
    relay_tls: Option<CaTlsConfig>,
) -> Result<Endpoint, SyncError> {
    // A session that carries nothing for 25 s sends a ping (what keeps a
    // NAT mapping open, as WireGuard's persistent keep-alive does); one that
    // hears nothing for 60 s is over and its peer is dialed again. Sessions
    // carrying heartbeats (every 10 s) never need the ping.
    let transport = QuicTransportConfig::builder()
        .max_idle_timeout(IdleTimeout::try_from(Duration::from_secs(60)).ok())
        .keep_alive_interval(Duration::from_secs(25))
        .build();
    let bind_err = |detail: String| SyncError::Bind {
        addr: listen,
        detail,
    };
    // With a relay, iroh measures it over HTTPS too (the way to find it
    // where UDP is blocked); never a captive-portal check.
    let mut net_report = NetReportConfig::minimal();
    net_report.https_probes = relay.is_some();
    let relay_mode = match relay {
        Some(map) => RelayMode::Custom(map),
        None => RelayMode::Disabled,
    };
    let mut builder = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&secret))
        .alpns(vec![ALPN.to_vec()])
        .relay_mode(relay_mode);
    if let Some(tls) = relay_tls {
        builder = builder.ca_tls_config(tls);
    }
    builder
        .clear_ip_transports()
        .bind_addr(listen)
        .map_err(|e| bind_err(e.to_string()))?
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(net_report)
        .transport_config(transport)
        .address_lookup(lookup.clone())
        .bind()
        .await
        .map_err(|e| bind_err(e.to_string()))
}

/// How long closing an endpoint is waited for ([`close_endpoint`]).
pub const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// Closes `endpoint` (through `router` when one accepts on it: it shuts its
/// handlers down first) and waits for that at most [`CLOSE_WITHIN`].
///
/// A graceful close sends every open connection's close and waits for the
/// peers to acknowledge it; a peer that is gone never does, and a dial still
/// in its handshake waits about three seconds (iroh's `Endpoint::close`). Past
/// the limit the close goes on in a task of its own, holding the endpoint:
/// it is freed once closed, and if the process exits first it is left to
/// the operating system rather than dropped half closed (iroh reports an
/// endpoint dropped without `close` as an error, and aborts it anyway).
/// Returns whether the close finished in time.
pub(crate) async fn close_endpoint(endpoint: Endpoint, router: Option<Router>) -> bool {
    let kept = std::mem::ManuallyDrop::new(endpoint);
    let closing = tokio::spawn(async move {
        match router {
            Some(router) => {
                if let Err(e) = router.shutdown().await {
                    tracing::debug!("the endpoint's router stopped with an error: {e}");
                }
            }
            None => kept.close().await,
        }
        // Closed: dropping it now is clean.
        drop(std::mem::ManuallyDrop::into_inner(kept));
    });
    match tokio::time::timeout(CLOSE_WITHIN, closing).await {
        Ok(_) => true,
        Err(_) => {
            tracing::info!(
                "closing the endpoint took over {} s (a peer that is gone does not acknowledge); not waiting longer",
                CLOSE_WITHIN.as_secs()
            );
            false
        }
    }
}

/// The fleet's relay, from `sync.relay_url` in the fleet defaults (the
/// schema checks it is a URL; one iroh cannot use is logged and ignored).
pub(crate) fn relay_of(st: &FleetState) -> Option<RelayUrl> {
    let path = fleetdeck_store::config::ConfigPath::parse("sync.relay_url").ok()?;
    let text = st.fleet.get(&path)?.as_str()?.to_string();
    match text.parse::<RelayUrl>() {
        Ok(url) => Some(url),
        Err(e) => {
            tracing::warn!("sync.relay_url '{text}' is not usable, syncing without a relay: {e}");
            None
        }
    }
}

/// How replicas check the fleet's relay's certificate: against exactly the
/// CA the fleet document names (`sync.relay_ca`, published by an admin with
/// `fleetdeck relay --publish`), and nothing else; without one, against the
/// public web roots (a relay with a public certificate). A CA that does not
/// parse is logged and trusted for nothing, so the relay is not reached
/// rather than reached unchecked.
pub(crate) fn relay_tls_of(st: &FleetState) -> CaTlsConfig {
    let Some(path) = fleetdeck_store::config::ConfigPath::parse("sync.relay_ca").ok() else {
        return CaTlsConfig::embedded();
    };
    match st.fleet.get(&path).map(|v| v.as_str()) {
        None => CaTlsConfig::embedded(),
        Some(text) => match fleetdeck_store::schema::pem_certificates(text.unwrap_or("")) {
            Ok(certs) => CaTlsConfig::custom_roots(certs),
            Err(e) => {
                tracing::warn!("sync.relay_ca is not usable, the relay will not be trusted: {e}");
                CaTlsConfig::custom_roots([])
            }
        },
    }
}

/// The relay an invite names, with the CA to check it by and the pass that
/// lets the joiner (not a member yet) use it: what `join` reaches the
/// inviter through when no direct address answers.
pub(crate) fn relay_of_invite(
    relay: &crate::token::TokenRelay,
) -> Result<(RelayUrl, RelayMap, CaTlsConfig), SyncError> {
    let url: RelayUrl = relay.url.parse().map_err(|e| {
        SyncError::Invalid(format!(
            "the invite's relay '{}' is not a relay URL: {e}",
            relay.url
        ))
    })?;
    let map = RelayMap::from(relay_config(&url).with_auth_token(relay.pass.clone()));
    let tls = if relay.ca.is_empty() {
        CaTlsConfig::embedded()
    } else {
        CaTlsConfig::custom_roots([rustls_pki_types::CertificateDer::from(relay.ca.clone())])
    };
    Ok((url, map, tls))
}

/// Addresses other machines can dial: the interface addresses iroh
/// advertises, else the bound sockets; never an unspecified IP.
pub(crate) fn reachable_addrs(endpoint: &Endpoint) -> Vec<SocketAddr> {
    let advertised: Vec<SocketAddr> = endpoint.addr().ip_addrs().copied().collect();
    let mut out: Vec<SocketAddr> = if advertised.is_empty() {
        endpoint.bound_sockets()
    } else {
        advertised
    };
    out.retain(|a| !a.ip().is_unspecified());
    out.sort();
    out.dedup();
    out
}

/// The endpoint a member key names (a member key is an endpoint id).
pub(crate) fn endpoint_id(k: &MemberKey) -> Option<EndpointId> {
    k.as_str().parse().ok()
}

/// The member key of an endpoint.
pub(crate) fn member_key(id: &EndpointId) -> MemberKey {
    MemberKey::from_bytes(id.as_bytes())
}

/// `ENDPOINT_ID@IP:PORT[,IP:PORT…]`: how `serve` prints its address and
/// `sync --peer` takes one.
pub fn format_endpoint_addr(a: &EndpointAddr) -> String {
    let addrs: Vec<String> = a.ip_addrs().map(|s| s.to_string()).collect();
    format!("{}@{}", a.id, addrs.join(","))
}

pub fn parse_endpoint_addr(s: &str) -> Result<EndpointAddr, SyncError> {
    let bad = |why: &str| {
        SyncError::Invalid(format!(
            "peer address '{s}' is not valid: {why} (expected ENDPOINT_ID@IP:PORT, as `fleetdeck serve` prints)"
        ))
    };
    let (id, addrs) = s.split_once('@').ok_or_else(|| bad("no '@'"))?;
    let id: EndpointId = id
        .parse()
        .map_err(|_| bad("the endpoint id is not a 64-hex-digit key"))?;
    let mut a = EndpointAddr::new(id);
    for part in addrs.split(',') {
        let sock: SocketAddr = part.parse().map_err(|_| bad("an address is not IP:PORT"))?;
        a = a.with_ip_addr(sock);
    }
    Ok(a)
}

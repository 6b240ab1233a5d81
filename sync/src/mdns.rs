//! Finding members on the local network by mDNS, and being found: what
//! lets a site's nodes keep in step with each other when the hubs are out
//! of reach.

use std::net::SocketAddr;
use std::sync::Arc;

use iroh::Endpoint;
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use tokio::task::JoinHandle;

use crate::bind::member_key;
use crate::engine::Inner;

/// The mDNS service name fleetdeck replicas advertise under.
pub const MDNS_SERVICE: &str = "fleetdeck";

/// Advertises `endpoint` on the LAN and starts keeping the map of members
/// seen there; `None` where there is no multicast.
pub(crate) fn start(inner: &Arc<Inner>, endpoint: &Endpoint) -> Option<JoinHandle<()>> {
    match MdnsAddressLookup::builder()
        .service_name(MDNS_SERVICE)
        .build(endpoint.id())
    {
        Ok(mdns) => {
            if let Ok(services) = endpoint.address_lookup() {
                services.add(mdns.clone());
            }
            Some(tokio::spawn(mdns_loop(inner.clone(), mdns)))
        }
        // No multicast here (a container, a namespace): sync goes on
        // with the addresses the fleet document knows.
        Err(e) => {
            tracing::warn!("LAN discovery (mDNS) is off: {e}");
            None
        }
    }
}

/// Keeps the map of members seen on the LAN. Endpoints that are not members
/// of this fleet (other fleets, other iroh programs) are ignored.
async fn mdns_loop(inner: Arc<Inner>, mdns: MdnsAddressLookup) {
    use n0_future::StreamExt;
    let mut events = mdns.subscribe().await;
    while let Some(ev) = events.next().await {
        match ev {
            DiscoveryEvent::Discovered { endpoint_info, .. } => {
                let key = member_key(&endpoint_info.endpoint_id);
                let member = inner.lock_replica().state().members.contains_key(&key);
                if !member || key == inner.key {
                    continue;
                }
                let addrs: Vec<SocketAddr> = endpoint_info.data.ip_addrs().copied().collect();
                tracing::info!(peer = %key.short(), ?addrs, "found a member on the LAN");
                inner.dialing.found_on_lan(key.clone(), addrs);
                // Dial it on the next round rather than after a backoff.
                inner.peers.dial_soon(&key);
            }
            DiscoveryEvent::Expired { endpoint_id } => {
                inner.dialing.lost_on_lan(&member_key(&endpoint_id));
            }
            _ => {}
        }
    }
}

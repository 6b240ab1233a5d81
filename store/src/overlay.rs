//! What the fleet document says of tunnels: each member's WireGuard public
//! key (in its member record, written by the member, in WireGuard's own
//! text form) and what a node's tunnels may reach (`tunnel.allow`). Inside
//! a tunnel, addresses are in 100.64.0.0/10 (shared address space, RFC
//! 6598, as Tailscale uses it), so a target may not be there.

use std::net::{Ipv4Addr, SocketAddrV4};

use data_encoding::BASE64;

/// 100.64.0.0/10 (shared address space, RFC 6598), as Tailscale uses it.
const NET: u32 = u32::from_be_bytes([100, 64, 0, 0]);
const HOST_BITS: u32 = 22;

/// A WireGuard key as WireGuard writes it: 32 bytes in standard base64.
pub fn format_wg_key(key: &[u8; 32]) -> String {
    BASE64.encode(key)
}

/// The 32 bytes of a WireGuard key in standard base64, or None.
pub fn parse_wg_key(s: &str) -> Option<[u8; 32]> {
    let bytes = BASE64.decode(s.trim().as_bytes()).ok()?;
    bytes.try_into().ok()
}

/// Targets a node's `tunnel.allow` may list at most.
pub const MAX_TUNNEL_TARGETS: usize = 64;

/// The targets of a `tunnel.allow` value: a list of `IPv4:PORT` strings.
/// `127.0.0.1:PORT` is a service on the node itself; any other address a
/// device the node reaches (its LAN).
pub fn parse_tunnel_allow(v: &serde_json::Value) -> Result<Vec<SocketAddrV4>, String> {
    let Some(items) = v.as_array() else {
        return Err(format!(
            "expected a list of IPv4:PORT targets such as [\"127.0.0.1:5000\", \"192.168.1.20:554\"], not {v}"
        ));
    };
    if items.len() > MAX_TUNNEL_TARGETS {
        return Err(format!(
            "{} targets: at most {MAX_TUNNEL_TARGETS}",
            items.len()
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(text) = item.as_str() else {
            return Err(format!("{item} is not an IPv4:PORT string"));
        };
        let addr: SocketAddrV4 = text
            .parse()
            .map_err(|_| format!("{text:?} is not IPv4:PORT (IPv6 targets are not supported)"))?;
        let ip = addr.ip();
        if addr.port() == 0
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || (ip.is_loopback() && *ip != Ipv4Addr::LOCALHOST)
        {
            return Err(format!(
                "{text:?} is not a target: expected one host (127.0.0.1 or a LAN address) and a port from 1 to 65535"
            ));
        }
        if is_overlay(*ip) {
            return Err(format!(
                "{text:?} is in 100.64.0.0/10, the addresses inside tunnels: name a service on the node as 127.0.0.1:PORT"
            ));
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

/// A node's tunnel targets from its effective config: none when
/// `tunnel.allow` is unset (or null), or why its value is not valid. What
/// the node's tunnel end, the CLI and the console all read.
pub fn tunnel_targets(effective: &crate::config::Effective) -> Result<Vec<SocketAddrV4>, String> {
    match effective.get_str("tunnel.allow") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => parse_tunnel_allow(v).map_err(|why| format!("tunnel.allow is not valid: {why}")),
    }
}

/// Whether `ip` is in the overlay's range.
pub fn is_overlay(ip: Ipv4Addr) -> bool {
    u32::from(ip) >> HOST_BITS == NET >> HOST_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_allow_takes_hosts_and_ports_and_names_what_is_wrong() {
        use serde_json::json;
        let ok = parse_tunnel_allow(&json!(["127.0.0.1:5000", "192.168.1.20:554"])).unwrap();
        assert_eq!(ok.len(), 2);
        for (bad, says) in [
            (json!("127.0.0.1:5000"), "expected a list"),
            (json!([5000]), "not an IPv4:PORT"),
            (json!(["localhost:80"]), "not IPv4:PORT"),
            (json!(["[::1]:80"]), "IPv6"),
            (json!(["0.0.0.0:80"]), "not a target"),
            (json!(["192.168.1.20:0"]), "not a target"),
            (json!(["224.0.0.1:80"]), "not a target"),
            (json!(["127.0.0.2:80"]), "not a target"),
            (json!(["100.64.0.9:80"]), "100.64.0.0/10"),
        ] {
            let e = parse_tunnel_allow(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let many: Vec<String> = (1..=65).map(|p| format!("10.0.0.1:{p}")).collect();
        assert!(
            parse_tunnel_allow(&json!(many))
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn keys_round_trip_as_wireguard_writes_them() {
        let k = [7u8; 32];
        let s = format_wg_key(&k);
        assert_eq!(s.len(), 44);
        assert_eq!(parse_wg_key(&s), Some(k));
        assert_eq!(parse_wg_key("not base64"), None);
        assert_eq!(parse_wg_key(&BASE64.encode(&[1u8; 31])), None);
    }
}

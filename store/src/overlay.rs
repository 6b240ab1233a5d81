//! The fleet's WireGuard overlay, as the document defines it: each
//! member's WireGuard public key (in its member record, written by the
//! member) and its overlay address in 100.64.0.0/10, derived from the key.
//!
//! Addresses are a function of the member set alone, so every replica that
//! holds the same members derives the same ones, and no two members of a
//! fleet share one: members are placed in the order they were enrolled
//! (then by key), each at the address its key hashes to, or the next free
//! one when an earlier member holds that. A member enrolled later never
//! moves an earlier one.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use data_encoding::BASE64;
use sha2::{Digest, Sha256};

use crate::document::FleetState;
use crate::ids::MemberKey;

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

/// The address `wg` hashes to: never the /10's first or last address.
fn preferred(wg: &[u8; 32]) -> u32 {
    let h = Sha256::digest(wg);
    let n = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    // 1 ..= 2^22 - 2
    1 + n % ((1 << HOST_BITS) - 2)
}

fn next(host: u32) -> u32 {
    if host + 1 >= (1 << HOST_BITS) - 1 {
        1
    } else {
        host + 1
    }
}

/// Every member with a WireGuard key, and its overlay address.
pub fn overlay_addrs(st: &FleetState) -> BTreeMap<MemberKey, Ipv4Addr> {
    let mut members: Vec<_> = st
        .members
        .values()
        .filter_map(|m| m.wg.map(|wg| (m.added_ms, m.key.clone(), wg)))
        .collect();
    members.sort();
    let mut taken = HashSet::new();
    let mut out = BTreeMap::new();
    for (_, key, wg) in members {
        let mut host = preferred(&wg);
        while !taken.insert(host) {
            host = next(host);
        }
        out.insert(key, Ipv4Addr::from(NET | host));
    }
    out
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
                "{text:?} is in the overlay's own range (100.64.0.0/10): name the service as 127.0.0.1:PORT"
            ));
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

/// Whether `ip` is in the overlay's range.
pub fn is_overlay(ip: Ipv4Addr) -> bool {
    u32::from(ip) >> HOST_BITS == NET >> HOST_BITS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Member;
    use crate::ids::Role;

    fn member(i: u8, added_ms: i64, wg: [u8; 32]) -> Member {
        Member {
            key: MemberKey::from_bytes(&[i; 32]),
            name: format!("m{i}"),
            role: Role::Operator,
            added_ms,
            addrs: Vec::new(),
            wg: Some(wg),
            revoked: None,
        }
    }

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
            (json!(["100.64.0.9:80"]), "overlay"),
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

    #[test]
    fn two_members_whose_keys_hash_alike_get_distinct_addresses_and_the_earlier_keeps_its_own() {
        let mut st = FleetState::default();
        // The same WireGuard key twice hashes to the same address: the
        // worst collision there is.
        let a = member(1, 100, [9; 32]);
        let b = member(2, 200, [9; 32]);
        st.members.insert(a.key.clone(), a.clone());
        let alone = overlay_addrs(&st)[&a.key];
        st.members.insert(b.key.clone(), b.clone());
        let both = overlay_addrs(&st);
        assert_eq!(both[&a.key], alone, "a later member moved an earlier one");
        assert_ne!(both[&a.key], both[&b.key]);
        assert!(is_overlay(both[&a.key]) && is_overlay(both[&b.key]));
    }

    #[test]
    fn addresses_stay_inside_the_range_and_never_repeat() {
        let mut st = FleetState::default();
        for i in 0..200u8 {
            let m = member(i, i64::from(i), [i; 32]);
            st.members.insert(m.key.clone(), m);
        }
        let addrs = overlay_addrs(&st);
        assert_eq!(addrs.len(), 200);
        let distinct: HashSet<_> = addrs.values().collect();
        assert_eq!(distinct.len(), 200);
        for ip in addrs.values() {
            assert!(is_overlay(*ip), "{ip}");
            assert_ne!(*ip, Ipv4Addr::new(100, 64, 0, 0));
            assert_ne!(*ip, Ipv4Addr::new(100, 127, 255, 255));
        }
    }
}

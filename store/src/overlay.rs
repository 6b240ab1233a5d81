//! What the fleet document says of tunnels: each member's WireGuard public
//! key (in its member record, written by the member, in WireGuard's own
//! text form), each member's overlay address ([`addresses`]) and what a
//! node's tunnels may reach (`tunnel.allow`). Overlay addresses are in
//! 100.64.0.0/10 (shared address space, RFC 6598, as Tailscale uses it),
//! so a target may not be there.
//!
//! # Overlay addresses
//!
//! A member's address is derived from its member key (never from its
//! WireGuard key, which the member writes itself and could grind): a hash
//! of the key picks a host in the range, and when two members' hashes meet,
//! the member enrolled first keeps the address and the later one probes the
//! next hash. Enrolment order is the `added_ms` an admin wrote in the
//! record (the member cannot change it), then the key. Revoked members keep
//! theirs, so a revocation moves nobody. Every replica holding the same
//! member records derives the same addresses; a later record can move an
//! earlier address only if two admins enrolled members at once, on
//! replicas apart, whose hashes meet (about one chance in four million per
//! pair).

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use data_encoding::BASE64;
use sha2::{Digest, Sha256};

use crate::MemberKey;
use crate::document::FleetState;

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

/// The UDP port where a node takes plain WireGuard, from its effective
/// config: none when `tunnel.wg_port` is unset (or null), or why its value
/// is not a port. What the node's daemon and `wg-config` both read.
pub fn wg_port(effective: &crate::config::Effective) -> Result<Option<u16>, String> {
    match effective.get_str("tunnel.wg_port") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .map(Some)
            .ok_or_else(|| {
                format!("tunnel.wg_port is not valid: {v} is not a UDP port from 1 to 65535")
            }),
    }
}

/// Every member's overlay address, revoked members' included (see the
/// module's documentation).
pub fn addresses(state: &FleetState) -> BTreeMap<MemberKey, Ipv4Addr> {
    let mut order: Vec<(i64, &MemberKey)> = state
        .members
        .values()
        .chain(state.revoked.values())
        .map(|m| (m.added_ms, &m.key))
        .collect();
    order.sort();
    let mut taken = HashSet::with_capacity(order.len());
    let mut out = BTreeMap::new();
    for (_, key) in order {
        // 2^22 - 2 hosts: a free one is found long before this ends.
        for probe in 0u32.. {
            if let Some(ip) = candidate(key, probe)
                && taken.insert(ip)
            {
                out.insert(key.clone(), ip);
                break;
            }
        }
    }
    out
}

/// The overlay address of one member, if it is one.
pub fn address_of(state: &FleetState, key: &MemberKey) -> Option<Ipv4Addr> {
    addresses(state).remove(key)
}

/// The `probe`th address a member key hashes to, unless that is the
/// range's first or last host.
fn candidate(key: &MemberKey, probe: u32) -> Option<Ipv4Addr> {
    let mut h = Sha256::new();
    h.update(b"fleetdeck overlay address v1\0");
    h.update(key.as_str().as_bytes());
    h.update(probe.to_be_bytes());
    let d = h.finalize();
    let mask = (1u32 << HOST_BITS) - 1;
    let host = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & mask;
    (host != 0 && host != mask).then(|| Ipv4Addr::from(NET | host))
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

    fn member(key: &MemberKey, added_ms: i64) -> crate::document::Member {
        crate::document::Member {
            key: key.clone(),
            name: key.short().to_string(),
            role: crate::Role::Operator,
            added_ms,
            addrs: Vec::new(),
            wg: None,
            revoked: None,
        }
    }

    fn key(i: u32) -> MemberKey {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_be_bytes());
        MemberKey::from_bytes(&b)
    }

    /// Two member keys whose first hash meets (found by search: 22 bits
    /// meet after a few thousand keys).
    fn colliding() -> (MemberKey, MemberKey) {
        let mut seen = std::collections::HashMap::new();
        for i in 0..100_000 {
            let k = key(i);
            if let Some(ip) = candidate(&k, 0)
                && let Some(other) = seen.insert(ip, k.clone())
            {
                return (other, k);
            }
        }
        panic!("no two of 100,000 keys share an address");
    }

    #[test]
    fn addresses_are_distinct_stable_and_in_range() {
        let mut st = FleetState::default();
        for i in 0..3000 {
            let k = key(i);
            st.members.insert(k.clone(), member(&k, i64::from(i)));
        }
        let a = addresses(&st);
        assert_eq!(a.len(), 3000);
        let distinct: HashSet<_> = a.values().collect();
        assert_eq!(distinct.len(), 3000, "two members share an address");
        assert!(a.values().all(|ip| is_overlay(*ip)));
        let (first, last) = (
            Ipv4Addr::new(100, 64, 0, 0),
            Ipv4Addr::new(100, 127, 255, 255),
        );
        assert!(!a.values().any(|ip| *ip == first || *ip == last));
        // A revocation moves nobody.
        let k = key(7);
        let m = st.members.remove(&k).unwrap();
        st.revoked.insert(k, m);
        assert_eq!(addresses(&st), a);
    }

    #[test]
    fn a_later_member_whose_hash_meets_an_earlier_one_moves_not_the_earlier() {
        let (first, second) = colliding();
        let want = candidate(&first, 0).unwrap();
        for (a_ms, b_ms) in [(1, 2), (2, 1)] {
            let mut st = FleetState::default();
            st.members.insert(first.clone(), member(&first, a_ms));
            let alone = address_of(&st, &first);
            st.members.insert(second.clone(), member(&second, b_ms));
            let both = addresses(&st);
            assert_ne!(both[&first], both[&second]);
            // Whoever an admin enrolled first keeps the address its key
            // hashes to; the later one takes its next.
            let (earlier, later) = if a_ms < b_ms {
                (&first, &second)
            } else {
                (&second, &first)
            };
            assert_eq!(both[earlier], want);
            assert_ne!(both[later], want);
            if a_ms < b_ms {
                // Joining next to it did not move the earlier member.
                assert_eq!(alone, Some(want));
            }
        }
    }

    #[test]
    fn enrolment_order_follows_the_document_not_the_clock() {
        use crate::document::FleetDoc;
        let (admin, earlier, later) = (key(1), key(2), key(3));
        let actor = automerge::ActorId::from(admin.to_bytes().to_vec());
        let mut doc = FleetDoc::genesis(actor, "f", "f", &admin, "admin", 1_000).unwrap();
        doc.put_member(&earlier, "earlier", crate::Role::Operator, 5_000)
            .unwrap();
        // An admin machine whose clock is behind enrolls the next member:
        // it still comes after every member the document holds.
        doc.put_member(&later, "later", crate::Role::Viewer, 2_000)
            .unwrap();
        let st = doc.state().unwrap();
        assert!(st.members[&later].added_ms > st.members[&earlier].added_ms);
        // Enrolled again (a role change), a member keeps its place.
        doc.put_member(&earlier, "earlier", crate::Role::Admin, 9_000)
            .unwrap();
        let again = doc.state().unwrap();
        assert_eq!(again.members[&earlier].added_ms, 5_000);
        assert_eq!(addresses(&again), addresses(&st));
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

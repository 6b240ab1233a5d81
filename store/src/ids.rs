//! Typed identities, parsed and validated once at the edge.

use std::fmt;

use crate::error::{Result, StoreError};

fn valid_id(kind: &str, s: &str) -> Result<()> {
    let ok_len = (1..=64).contains(&s.len());
    let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{kind} id '{s}' is not valid: expected 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit (e.g. BL-LAB-2)"
        )))
    }
}

macro_rules! id_type {
    ($name:ident, $kind:literal) => {
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self> {
                valid_id($kind, s)?;
                Ok(Self(s.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

id_type!(SiteId, "site");
id_type!(NodeId, "node");

/// A replica's identity: the hex of its ed25519 public key (64 characters).
/// The iroh endpoint id of the replica is the same key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberKey(String);

impl MemberKey {
    pub fn parse(s: &str) -> Result<Self> {
        let ok = s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err(StoreError::Invalid(format!(
                "member key '{s}' is not valid: expected 64 hex characters (an ed25519 public key)"
            )));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
    pub fn from_bytes(b: &[u8; 32]) -> Self {
        Self(hex::encode(b))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // Validated as 64 hex digits at construction.
        if let Ok(b) = hex::decode(&self.0) {
            out.copy_from_slice(&b);
        }
        out
    }
    /// The first 8 hex characters, for tables.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Display for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for MemberKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What a member may do. Enforcement of roles on incoming changes is the sync
/// layer's job; the replica records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
    Node,
}

impl Role {
    /// People's replicas (hubs, laptops) hold every node's heartbeat; a node
    /// replica holds its own (`fleetdeck_sync::session`).
    pub fn holds_fleet_health(self) -> bool {
        matches!(self, Role::Admin | Role::Operator | Role::Viewer)
    }

    /// Admins and operators: they change the fleet (invite, edit, advance
    /// rollouts), and their replicas are the hubs and laptops others dial.
    pub fn manages_fleet(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Node => "node",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            "node" => Ok(Role::Node),
            _ => Err(StoreError::Invalid(format!(
                "role '{s}' is not valid: expected admin, operator, viewer or node"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Orders names the way people count: `n2` before `n10`, `cam-9` before
/// `cam-10`. Runs of ASCII digits compare as numbers (of any length), other
/// characters one by one, ASCII letters ignoring case; a digit run sorts
/// where its first digit would. Names equal that way (`n01` and `n1`, `Cam`
/// and `cam`) fall back to plain byte order, so the order is total and
/// `Equal` means the same string.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|c| c.is_ascii_digit()).count()
    }
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        let (dx, dy) = (digits(&x[i..]), digits(&y[j..]));
        let ord = if dx > 0 && dy > 0 {
            let (nx, ny) = (&x[i..i + dx], &y[j..j + dy]);
            // Numbers of any length: without leading zeros, the longer is
            // the larger, and equal lengths compare digit by digit.
            let nx = &nx[nx.iter().take_while(|c| **c == b'0').count()..];
            let ny = &ny[ny.iter().take_while(|c| **c == b'0').count()..];
            i += dx;
            j += dy;
            nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny))
        } else {
            // Compare characters, not bytes, so that a multi-byte character
            // is one unit (UTF-8 byte order is code point order).
            let cx = a[i..].chars().next().unwrap_or_default();
            let cy = b[j..].chars().next().unwrap_or_default();
            i += cx.len_utf8();
            j += cy.len_utf8();
            cx.to_ascii_lowercase().cmp(&cy.to_ascii_lowercase())
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    // One is a prefix of the other (as counted): the shorter first.
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_ids_from_the_seeds_parse_and_bad_ones_are_named() {
        for ok in ["BL-LAB-2", "BL-WH-N", "north_field", "vps.tenant-7"] {
            assert_eq!(SiteId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "-lead", "has space", "a/b", &"x".repeat(65)] {
            let e = SiteId::parse(bad).unwrap_err().to_string();
            assert!(e.contains("site id"), "{e}");
        }
    }

    #[test]
    fn natural_order_counts_numbers_in_names() {
        use std::cmp::Ordering::*;
        assert_eq!(natural_cmp("n2", "n10"), Less);
        assert_eq!(natural_cmp("n10", "n2"), Greater);
        assert_eq!(natural_cmp("n10", "n10"), Equal);
        assert_eq!(natural_cmp("cam-9", "cam-10"), Less);
        assert_eq!(natural_cmp("BL-LAB-2", "BL-LAB-10"), Less);
        assert_eq!(natural_cmp("n", "n1"), Less, "a prefix first");
        assert_eq!(natural_cmp("n1a", "n1b"), Less);
        assert_eq!(
            natural_cmp("n1-b2", "n1-b10"),
            Less,
            "every digit run counts"
        );
        assert_eq!(natural_cmp("a", "B"), Less, "letters ignore case");
        assert_eq!(
            natural_cmp("n1", "n01"),
            Greater,
            "leading zeros: byte order breaks the tie"
        );
        assert_eq!(
            natural_cmp("Cam", "cam"),
            Less,
            "case: byte order breaks the tie"
        );
        assert_eq!(
            natural_cmp("x99999999999999999999999", "x100000000000000000000000"),
            Less,
            "numbers longer than u64"
        );
        assert_eq!(natural_cmp("é2", "é10"), Less);
        let mut names = vec![
            "n10", "n1", "n2", "site-b", "n02", "N3", "site-a10", "site-a9", "",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "", "n1", "n02", "n2", "N3", "n10", "site-a9", "site-a10", "site-b"
            ]
        );
    }

    #[test]
    fn natural_order_is_a_total_order() {
        let words = [
            "", "0", "00", "1", "01", "9", "10", "a", "A", "a0", "a00", "a1", "a01", "a10", "a-1",
            "a_1", "a.1", "ab", "aB", "b", "n2", "n10", "n2x", "n2-3", "n02-10", "é", "z9z",
        ];
        for a in words {
            assert_eq!(natural_cmp(a, a), std::cmp::Ordering::Equal);
            for b in words {
                let ab = natural_cmp(a, b);
                assert_eq!(ab, natural_cmp(b, a).reverse(), "{a} vs {b}");
                assert_eq!(ab == std::cmp::Ordering::Equal, a == b, "{a} vs {b}");
                for c in words {
                    if ab.is_le() && natural_cmp(b, c).is_le() {
                        assert!(natural_cmp(a, c).is_le(), "{a} <= {b} <= {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn member_keys_must_be_hex_public_keys() {
        assert!(MemberKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MemberKey::parse("abc").is_err());
        assert!(MemberKey::parse(&"zz".repeat(32)).is_err());
    }
}

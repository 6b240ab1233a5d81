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
    fn member_keys_must_be_hex_public_keys() {
        assert!(MemberKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MemberKey::parse("abc").is_err());
        assert!(MemberKey::parse(&"zz".repeat(32)).is_err());
    }
}

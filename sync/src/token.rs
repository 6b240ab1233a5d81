//! Invite tokens: what `fleetdeck invite` prints and `fleetdeck join` takes.
//! A token names the fleet, the inviter's endpoint id and addresses, and a
//! one-time secret the inviter checks (the secret is only valid on the
//! replica that issued it, until used or expired).

use std::net::SocketAddr;

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "fdinv1.";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteToken {
    pub fleet_id: String,
    pub fleet_name: String,
    /// The inviter's public key (its iroh endpoint id).
    pub inviter: [u8; 32],
    pub addrs: Vec<SocketAddr>,
    pub secret: String,
    pub role: String,
    pub expires_ms: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("this is not a fleetdeck invite token (it should start with '{PREFIX}')")]
    NotAToken,
    #[error("the invite token is damaged (copy it again, whole)")]
    Damaged,
    #[error("the invite token has expired; ask for a new one")]
    Expired,
    #[error("the invite token names no address to reach the inviter")]
    NoAddress,
}

impl InviteToken {
    pub fn encode(&self) -> String {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        format!("{PREFIX}{}", BASE64URL_NOPAD.encode(&bytes))
    }

    pub fn decode(s: &str) -> Result<Self, TokenError> {
        let body = s.trim().strip_prefix(PREFIX).ok_or(TokenError::NotAToken)?;
        let bytes = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| TokenError::Damaged)?;
        let (tok, rest): (InviteToken, _) =
            postcard::take_from_bytes(&bytes).map_err(|_| TokenError::Damaged)?;
        if !rest.is_empty() {
            return Err(TokenError::Damaged);
        }
        if tok.addrs.is_empty() {
            return Err(TokenError::NoAddress);
        }
        Ok(tok)
    }

    /// Refuses a token that has expired by this machine's clock (the
    /// inviter checks again by its own).
    pub fn check_fresh(&self, now_ms: i64) -> Result<(), TokenError> {
        if self.expires_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> InviteToken {
        InviteToken {
            fleet_id: "f00d".into(),
            fleet_name: "blocao".into(),
            inviter: [7; 32],
            addrs: vec!["127.0.0.1:7447".parse().unwrap()],
            secret: "00ff".into(),
            role: "operator".into(),
            expires_ms: 2_000,
        }
    }

    #[test]
    fn tokens_round_trip_and_damage_is_named() {
        let t = token();
        let s = t.encode();
        assert_eq!(InviteToken::decode(&s).unwrap(), t);
        assert_eq!(InviteToken::decode("hello"), Err(TokenError::NotAToken));
        assert_eq!(
            InviteToken::decode(&s[..s.len() - 5]),
            Err(TokenError::Damaged)
        );
        assert_eq!(
            InviteToken::decode(&format!("{s}AAAA")),
            Err(TokenError::Damaged)
        );
        assert_eq!(t.check_fresh(2_000), Err(TokenError::Expired));
        assert!(t.check_fresh(1_999).is_ok());
    }
}

//! Invite tokens: what `fleetdeck invite` prints and `fleetdeck join` takes.
//! A token names the fleet, the inviter's endpoint id and addresses, the
//! fleet's relay (its URL and the CA its certificate must chain to) when it
//! has one, and a one-time secret the inviter checks (the secret is only
//! valid on the replica that issued it, until used or expired).

use std::net::SocketAddr;

use data_encoding::BASE64URL_NOPAD;
use fleetdeck_store::MemberKey;
use fleetdeck_store::identity::Identity;
use fleetdeck_store::sign::verify_bytes;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "fdinv2.";
/// Tokens from before invites carried the relay: still taken.
const PREFIX_V1: &str = "fdinv1.";

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
    /// The fleet's relay, so a joiner behind NAT reaches the inviter
    /// through it (`sync.relay_url`, `sync.relay_ca`).
    pub relay: Option<TokenRelay>,
}

/// The fleet's relay as an invite carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRelay {
    pub url: String,
    /// The DER certificate of the CA the relay's certificate must chain to;
    /// empty for a relay with a publicly trusted certificate.
    pub ca: Vec<u8>,
    /// Lets the joiner, not a member yet, use the relay until the invite
    /// expires ([`RelayPass`]).
    pub pass: String,
}

/// What a joiner shows the fleet's relay (as its auth token) to be let in
/// before it is a member: the fleet, the inviter, until when, and the
/// inviter's signature of those. The relay lets it in while the inviter is
/// an admin of the fleet and the pass has not expired. Anyone holding the
/// invite holds the pass, as they hold the invite: both end at its expiry.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayPass {
    pub fleet_id: String,
    pub inviter: MemberKey,
    pub expires_ms: i64,
}

/// Keeps a relay pass's signature from passing for any other message.
const PASS_DOMAIN: &[u8] = b"fleetdeck-relay-pass-v1";

impl RelayPass {
    fn body(&self) -> String {
        format!("{}.{}.{}", self.fleet_id, self.inviter, self.expires_ms)
    }

    /// `FLEET.INVITER.EXPIRES.SIGNATURE` (hex), signed by `identity` (the
    /// inviter's).
    pub fn issue(identity: &Identity, fleet_id: &str, expires_ms: i64) -> String {
        let pass = RelayPass {
            fleet_id: fleet_id.to_string(),
            inviter: identity.key().clone(),
            expires_ms,
        };
        let body = pass.body();
        let sig = identity.sign_bytes(PASS_DOMAIN, body.as_bytes());
        format!("{body}.{}", data_encoding::HEXLOWER.encode(&sig))
    }

    /// The pass `text` names, once its signature checks out and it has not
    /// expired at `now_ms`; which fleet and inviter the caller checks.
    pub fn check(text: &str, now_ms: i64) -> Result<RelayPass, String> {
        let mut parts = text.rsplitn(4, '.');
        let (Some(sig), Some(expires), Some(inviter), Some(fleet_id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a relay pass".into());
        };
        let expires_ms: i64 = expires
            .parse()
            .map_err(|_| "its expiry is not a time".to_string())?;
        let inviter =
            MemberKey::parse(inviter).map_err(|_| "its inviter is not a member key".to_string())?;
        let sig = data_encoding::HEXLOWER
            .decode(sig.as_bytes())
            .map_err(|_| "its signature is not hex".to_string())?;
        let pass = RelayPass {
            fleet_id: fleet_id.to_string(),
            inviter,
            expires_ms,
        };
        if !verify_bytes(&pass.inviter, PASS_DOMAIN, pass.body().as_bytes(), &sig) {
            return Err("its signature is not its inviter's".into());
        }
        if expires_ms <= now_ms {
            return Err("it has expired".into());
        }
        Ok(pass)
    }
}

/// A token of the first format (no relay).
#[derive(Deserialize)]
struct InviteTokenV1 {
    fleet_id: String,
    fleet_name: String,
    inviter: [u8; 32],
    addrs: Vec<SocketAddr>,
    secret: String,
    role: String,
    expires_ms: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("this is not a fleetdeck invite token (it should start with '{PREFIX}')")]
    NotAToken,
    #[error("the invite token is damaged (copy it again, whole)")]
    Damaged,
    #[error("the invite token has expired; ask for a new one")]
    Expired,
    #[error("the invite token names no address nor relay to reach the inviter")]
    NoAddress,
}

impl InviteToken {
    pub fn encode(&self) -> String {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        format!("{PREFIX}{}", BASE64URL_NOPAD.encode(&bytes))
    }

    pub fn decode(s: &str) -> Result<Self, TokenError> {
        let s = s.trim();
        let (body, v1) = match (s.strip_prefix(PREFIX), s.strip_prefix(PREFIX_V1)) {
            (Some(b), _) => (b, false),
            (None, Some(b)) => (b, true),
            (None, None) => return Err(TokenError::NotAToken),
        };
        let bytes = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| TokenError::Damaged)?;
        let (tok, rest) = if v1 {
            let (t, rest): (InviteTokenV1, _) =
                postcard::take_from_bytes(&bytes).map_err(|_| TokenError::Damaged)?;
            let t = InviteToken {
                fleet_id: t.fleet_id,
                fleet_name: t.fleet_name,
                inviter: t.inviter,
                addrs: t.addrs,
                secret: t.secret,
                role: t.role,
                expires_ms: t.expires_ms,
                relay: None,
            };
            (t, rest)
        } else {
            postcard::take_from_bytes(&bytes).map_err(|_| TokenError::Damaged)?
        };
        if !rest.is_empty() {
            return Err(TokenError::Damaged);
        }
        if tok.addrs.is_empty() && tok.relay.is_none() {
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
            relay: None,
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

    #[test]
    fn a_token_may_name_only_the_relay_and_first_format_tokens_still_decode() {
        let mut t = token();
        t.addrs.clear();
        assert_eq!(InviteToken::decode(&t.encode()), Err(TokenError::NoAddress));
        t.relay = Some(TokenRelay {
            url: "https://10.0.0.5:3340".into(),
            ca: vec![0x30, 3, 2, 1, 1],
            pass: "f00d.key.2000.sig".into(),
        });
        assert_eq!(InviteToken::decode(&t.encode()).unwrap(), t);

        // A token of the first format: the same fields without the relay.
        let v1 = token();
        let bytes = postcard::to_stdvec(&(
            &v1.fleet_id,
            &v1.fleet_name,
            v1.inviter,
            &v1.addrs,
            &v1.secret,
            &v1.role,
            v1.expires_ms,
        ))
        .unwrap();
        let text = format!("{PREFIX_V1}{}", BASE64URL_NOPAD.encode(&bytes));
        assert_eq!(InviteToken::decode(&text).unwrap(), v1);
    }

    #[test]
    fn a_relay_pass_holds_until_it_expires_and_only_as_its_inviter_signed_it() {
        let admin = Identity::from_secret([9; 32]);
        let pass = RelayPass::issue(&admin, "f00d", 2_000);
        let got = RelayPass::check(&pass, 1_999).unwrap();
        assert_eq!(got.fleet_id, "f00d");
        assert_eq!(&got.inviter, admin.key());
        assert_eq!(
            RelayPass::check(&pass, 2_000).unwrap_err(),
            "it has expired"
        );
        // Another fleet, a later expiry, another inviter: the signature no
        // longer matches.
        let other = Identity::from_secret([8; 32]);
        for forged in [
            pass.replacen("f00d", "beef", 1),
            pass.replace(".2000.", ".9000."),
            pass.replace(&admin.key().to_string(), &other.key().to_string()),
        ] {
            assert_eq!(
                RelayPass::check(&forged, 0).unwrap_err(),
                "its signature is not its inviter's",
                "{forged}"
            );
        }
        for junk in ["", "a.b", "f00d.key.soon.00", "f00d.zz.1.00"] {
            assert!(RelayPass::check(junk, 0).is_err(), "{junk}");
        }
    }
}

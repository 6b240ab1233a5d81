//! Signatures: on document changes, and (with [`verify_bytes`]) on
//! anything else a key signs under a domain, such as health registers
//! (`crate::health::SignedRegister`).
//!
//! automerge records an author's actor id in every change, but anyone can
//! write any actor id. So every change is signed by the ed25519 key its
//! actor id names (the first 32 bytes of a fleetdeck actor id are the
//! author's member key, see `Identity::new_actor`), over a domain-separated
//! digest of the change's hash. The hash covers the change's bytes, so the
//! signature cannot live inside the change: it travels beside it (sync
//! frames, bundles, joins) and is stored beside it.
//!
//! A replica admits a change only with a valid signature by the key its
//! actor id names, whoever relayed it.

use automerge::{ActorId, Change, ChangeHash};
use ed25519_dalek::{Signature, VerifyingKey};

use crate::ids::MemberKey;

/// An ed25519 signature over [`digest`] of a change hash.
pub type Sig = [u8; 64];

/// What is signed, so a change signature can never be mistaken for a
/// signature over anything else the key signs (heartbeats, tokens).
pub const CHANGE_DOMAIN: &[u8] = b"fleetdeck-change-v1";

/// The bytes signed for the change with `hash`.
pub fn digest(hash: &ChangeHash) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHANGE_DOMAIN.len() + 32);
    m.extend_from_slice(CHANGE_DOMAIN);
    m.extend_from_slice(&hash.0);
    m
}

/// Why a change's signature does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("change {change}: its actor id names no member key")]
    NoKey { change: String },
    #[error("change {change} by {author}: no signature came with it")]
    Missing { change: String, author: String },
    #[error("change {change} claims author {author} but is not signed by that key")]
    Bad { change: String, author: String },
}

/// The member key an actor id names: its first 32 bytes.
pub fn author_key(actor: &ActorId) -> Option<MemberKey> {
    let bytes: [u8; 32] = actor.to_bytes().get(..32)?.try_into().ok()?;
    Some(MemberKey::from_bytes(&bytes))
}

/// Checks that `sig` is the signature of `change` by the key its actor id
/// names.
pub fn verify(change: &Change, sig: Option<&Sig>) -> Result<(), SigError> {
    let hash = change.hash();
    let Some(key) = author_key(change.actor_id()) else {
        return Err(SigError::NoKey {
            change: hash.to_string(),
        });
    };
    let Some(sig) = sig else {
        return Err(SigError::Missing {
            change: hash.to_string(),
            author: key.to_string(),
        });
    };
    let bad = || SigError::Bad {
        change: hash.to_string(),
        author: key.to_string(),
    };
    let vk = VerifyingKey::from_bytes(&key.to_bytes()).map_err(|_| bad())?;
    vk.verify_strict(&digest(&hash), &Signature::from_bytes(sig))
        .map_err(|_| bad())
}

/// The message signed under `domain` for `bytes`: the domain, then the
/// bytes (what `Identity::sign_bytes` signs). Every domain is a distinct
/// `fleetdeck-…-v1` prefix, so no message of one kind reads as another.
pub fn domain_message(domain: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + bytes.len());
    m.extend_from_slice(domain);
    m.extend_from_slice(bytes);
    m
}

/// Checks that `sig` is `key`'s signature of `bytes` under `domain` (see
/// `Identity::sign_bytes`): heartbeats and the like. A signature that is
/// not 64 bytes, a key that is not a curve point and a signature by any
/// other key are all `false`.
pub fn verify_bytes(key: &MemberKey, domain: &[u8], bytes: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = <[u8; 64]>::try_from(sig) else {
        return false;
    };
    let Ok(vk) = VerifyingKey::from_bytes(&key.to_bytes()) else {
        return false;
    };
    vk.verify_strict(&domain_message(domain, bytes), &Signature::from_bytes(&sig))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn a_domain_signature_verifies_for_its_key_domain_and_bytes_only() {
        let id = Identity::generate();
        let other = Identity::generate();
        let sig = id.sign_bytes(b"fleetdeck-test-v1", b"hello");
        assert!(verify_bytes(id.key(), b"fleetdeck-test-v1", b"hello", &sig));
        assert!(!verify_bytes(
            other.key(),
            b"fleetdeck-test-v1",
            b"hello",
            &sig
        ));
        assert!(!verify_bytes(
            id.key(),
            b"fleetdeck-else-v1",
            b"hello",
            &sig
        ));
        assert!(!verify_bytes(
            id.key(),
            b"fleetdeck-test-v1",
            b"hellO",
            &sig
        ));
        assert!(!verify_bytes(
            id.key(),
            b"fleetdeck-test-v1",
            b"hello",
            &sig[..63]
        ));
        assert!(!verify_bytes(id.key(), b"fleetdeck-test-v1", b"hello", &[]));
    }
}

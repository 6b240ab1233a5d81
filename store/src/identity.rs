//! This replica's identity: an ed25519 key kept in the data dir (mode 0600).
//! The member key (and, with `sync`, the iroh endpoint id) is its public half.

use std::io::Write;
use std::path::{Path, PathBuf};

use automerge::{ActorId, ChangeHash};
use ed25519_dalek::SigningKey;

use crate::error::{Result, StoreError};
use crate::ids::MemberKey;
use crate::sign::{self, Sig};

pub struct Identity {
    secret: SigningKey,
    key: MemberKey,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not something to limp on from.
    getrandom::fill(&mut b).expect("the operating system's random number generator failed");
    b
}

/// `n` random bytes as hex (fleet ids, token secrets).
pub fn random_hex<const N: usize>() -> String {
    hex::encode(random::<N>())
}

impl Identity {
    pub fn generate() -> Self {
        Self::from_secret(random::<32>())
    }

    pub fn from_secret(bytes: [u8; 32]) -> Self {
        let secret = SigningKey::from_bytes(&bytes);
        let key = MemberKey::from_bytes(secret.verifying_key().as_bytes());
        Identity { secret, key }
    }

    pub fn key(&self) -> &MemberKey {
        &self.key
    }

    /// The 32 secret bytes (the sync layer builds its endpoint key from them).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// The secret half of this replica's WireGuard key (X25519, before
    /// clamping), derived from its identity so it needs no file of its own;
    /// a separate key, not the signing key reused.
    pub fn wg_secret_bytes(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"fleetdeck wireguard static key v1\0");
        h.update(self.secret.to_bytes());
        h.finalize().into()
    }

    /// A fresh automerge actor for this process: the public key followed by
    /// 16 random bytes, so two runs (or a run after a crash) never reuse an
    /// (actor, seq) pair, and the author of a change is readable from it.
    pub fn new_actor(&self) -> ActorId {
        let mut bytes = self.key_bytes().to_vec();
        bytes.extend_from_slice(&random::<16>());
        ActorId::from(bytes)
    }

    /// Signs the change with `hash` as its author (see [`crate::sign`]).
    pub fn sign_change(&self, hash: &ChangeHash) -> Sig {
        use ed25519_dalek::Signer;
        self.secret.sign(&sign::digest(hash)).to_bytes()
    }

    /// Signs `bytes` under `domain` (heartbeats and the like): the domain
    /// keeps a signature over one kind of message from passing for another.
    pub fn sign_bytes(&self, domain: &[u8], bytes: &[u8]) -> Sig {
        use ed25519_dalek::Signer;
        let mut m = Vec::with_capacity(domain.len() + bytes.len());
        m.extend_from_slice(domain);
        m.extend_from_slice(bytes);
        self.secret.sign(&m).to_bytes()
    }

    fn key_bytes(&self) -> [u8; 32] {
        *self.secret.verifying_key().as_bytes()
    }

    /// Writes the key to a new file readable only by its owner.
    pub fn save_new(&self, path: &Path) -> Result<()> {
        let err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(err)?;
        f.write_all(format!("{}\n", hex::encode(self.secret.to_bytes())).as_bytes())
            .map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bad = |detail: String| StoreError::Identity {
            path: PathBuf::from(path),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| bad(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "is readable by other users (mode {:o}); run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                )));
            }
        }
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("is not a 64-hex-digit ed25519 secret key".into()))?;
        Ok(Self::from_secret(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_its_file_and_actors_differ_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let id = Identity::generate();
        id.save_new(&path).unwrap();
        let again = Identity::load(&path).unwrap();
        assert_eq!(id.key(), again.key());
        let (a, b) = (id.new_actor(), again.new_actor());
        assert_ne!(a, b);
        assert_eq!(&a.to_bytes()[..32], &b.to_bytes()[..32]);
        assert!(
            id.save_new(&path).is_err(),
            "an existing key is never overwritten"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        Identity::generate().save_new(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Identity::load(&path).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn garbage_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        Identity::generate().save_new(&path).unwrap();
        std::fs::write(&path, "not a key").unwrap();
        let e = Identity::load(&path).err().unwrap().to_string();
        assert!(
            e.contains("identity key") && e.contains("64-hex-digit"),
            "{e}"
        );
    }
}

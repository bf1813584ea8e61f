//! The server secret and what is derived from it: the key that seals signing keys at rest
//! and the key that hashes client secrets and opaque tokens.

pub mod aead;
pub mod secret_hash;

use std::path::PathBuf;

use aws_lc_rs::hkdf;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;

pub use aead::KeySealer;
pub use secret_hash::{SecretHash, SecretHasher};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no `secret` is configured; PostgreSQL deployments share signing keys across replicas, so every replica needs the same secret: set VALET_SECRET (e.g. to the output of `openssl rand -base64 32`)"
    )]
    MissingForPostgres,
    #[error("secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} holds fewer than 32 characters")]
    ShortFile(PathBuf),
    #[error("the operating system's random source failed")]
    Random,
    #[error("could not derive keys from the secret")]
    Derive,
}

/// Keys derived from the configured `secret`. Cheap to clone: each part is reference counted.
#[derive(Clone)]
pub struct ServerKeys {
    pub sealer: KeySealer,
    pub hasher: SecretHasher,
    /// Keys the CSRF tokens of the login, consent and logout forms.
    pub csrf: SecretHasher,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(..)")
    }
}

impl ServerKeys {
    /// The secret is high-entropy (at least 32 characters, checked in config), so HKDF is the
    /// right KDF: a slow password KDF would only delay every start of every replica.
    pub fn derive(secret: &[u8]) -> Result<Self, SecretError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"valet/v1").extract(secret);
        Ok(Self {
            sealer: KeySealer::new(&expand32(&prk, b"valet/v1 signing-key sealing")?)
                .map_err(|_| SecretError::Derive)?,
            hasher: SecretHasher::new(&expand32(&prk, b"valet/v1 secret hashing")?),
            csrf: SecretHasher::new(&expand32(&prk, b"valet/v1 csrf tokens")?),
        })
    }
}

fn expand32(prk: &hkdf::Prk, info: &[u8]) -> Result<[u8; 32], SecretError> {
    let mut out = [0u8; 32];
    let info = [info];
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| SecretError::Derive)?;
    Ok(out)
}

/// `N` bytes straight from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| SecretError::Random)?;
    Ok(bytes)
}

/// 256 random bits as 43 base64url characters: client secrets, codes, refresh tokens,
/// session ids (RFC 6749 §10.10).
pub fn random_token() -> Result<String, SecretError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_secret() {
        let a = ServerKeys::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let b = ServerKeys::derive(b"0123456789abcdef0123456789abcdeX").unwrap();
        assert_ne!(a.hasher.hash("x"), b.hasher.hash("x"));
    }

    #[test]
    fn random_tokens_are_256_bits_and_distinct() {
        let a = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token().unwrap());
    }
}

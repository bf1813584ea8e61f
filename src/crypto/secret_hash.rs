//! Hashes of server-made secrets: client secrets, authorization codes, refresh tokens and
//! session ids.
//!
//! HMAC-SHA-256, not Argon2: these values are 256 random bits made by the server, so no
//! guessing attack on a leaked hash is feasible and a slow hash would only slow the token
//! endpoint. The key, derived from `secret`, means a copy of the store alone cannot even
//! test a guess. User passwords are different (chosen by people) and use Argon2id.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// A stored hash; compare only with [`SecretHash::matches`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(pub Vec<u8>);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    /// Constant-time equality, so a timing side channel leaks nothing of the stored hash.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// base64url, for the few columns that key by text.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    pub fn from_text(text: &str) -> Option<Self> {
        URL_SAFE_NO_PAD.decode(text).ok().map(SecretHash)
    }
}

#[derive(Clone)]
pub struct SecretHasher {
    key: hmac::Key,
}

impl SecretHasher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    pub fn hash(&self, secret: &str) -> SecretHash {
        SecretHash(hmac::sign(&self.key, secret.as_bytes()).as_ref().to_vec())
    }

    /// Hash the presented value and compare it with the stored hash in constant time.
    pub fn verify(&self, presented: &str, stored: &SecretHash) -> bool {
        self.hash(presented).matches(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_same_secret() {
        let hasher = SecretHasher::new(&[7u8; 32]);
        let stored = hasher.hash("s3cret");
        assert_eq!(stored.0.len(), 32);
        assert!(hasher.verify("s3cret", &stored));
        assert!(!hasher.verify("s3cret ", &stored));
        assert!(!SecretHasher::new(&[8u8; 32]).verify("s3cret", &stored));
    }
}

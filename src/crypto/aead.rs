//! Signing keys at rest: AES-256-GCM under a key derived from `secret`, each ciphertext bound
//! to its key id and algorithm through the associated data, so a sealed key copied onto
//! another row (another kid or alg) fails to open.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("could not encrypt a signing key")]
    Seal,
    #[error(
        "could not decrypt signing key {kid}: the configured `secret` is not the one it was sealed with, or the row was altered"
    )]
    Open { kid: String },
}

#[derive(Clone)]
pub struct KeySealer {
    key: Arc<RandomizedNonceKey>,
}

fn associated_data(kid: &str, alg: &str) -> Vec<u8> {
    format!("valet/v1 signing-key kid={kid} alg={alg}").into_bytes()
}

impl KeySealer {
    pub fn new(key: &[u8; 32]) -> Result<Self, SealError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| SealError::Seal)?;
        Ok(Self { key: Arc::new(key) })
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, kid: &str, alg: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(associated_data(kid, alg)), &mut in_out)
            .map_err(|_| SealError::Seal)?;
        let mut sealed = nonce.as_ref().to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    pub fn open(&self, kid: &str, alg: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let fail = || SealError::Open {
            kid: kid.to_owned(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(associated_data(kid, alg)), &mut in_out)
            .map_err(|_| fail())?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let sealer = KeySealer::new(&[1u8; 32]).unwrap();
        let sealed = sealer.seal("k1", "RS256", b"private").unwrap();
        assert_eq!(sealer.open("k1", "RS256", &sealed).unwrap(), b"private");
        assert!(sealer.open("k2", "RS256", &sealed).is_err(), "bound to kid");
        assert!(sealer.open("k1", "ES256", &sealed).is_err(), "bound to alg");
        assert!(
            KeySealer::new(&[2u8; 32])
                .unwrap()
                .open("k1", "RS256", &sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(sealer.open("k1", "RS256", &tampered).is_err());
    }
}

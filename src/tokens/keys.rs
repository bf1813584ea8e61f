//! Signing keys: generation, sealing at rest, rotation, periodic reload and the published JWKS
//! (RFC 7517; RFC 7518 §3; RFC 7638 thumbprints as key ids).
//!
//! Keys are parsed once into aws-lc-rs key pairs and held: rebuilding a key object for every
//! signature costs about three times as much on RSA. Nothing on a request path reads the store
//! for keys; a background task reloads them every `keys.reload_interval`.
//!
//! A rotation publishes its key before it signs (SPEC §2): `keys rotate` stores a `next` key,
//! which every replica puts in the JWKS at its next reload, and the first reload after its
//! `activates_at` makes it current (one conditional write in the store, whichever replica
//! gets there first). Resource servers that cache the JWKS thus hold the key before the first
//! token signed with it arrives.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::crypto::KeySealer;
use crate::crypto::aead::SealError;
use crate::domain::{SigningAlg, UnixTime};
use crate::store::{KeyStatus, SharedStore, StoreError, StoredKey};

use super::verifier::{self, Verifier};

/// How long verifiers may cache the JWKS (its `Cache-Control: max-age`). A key must be
/// published at least this long, plus a reload, before it signs: see `keys.activation_delay`.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate a {0} key")]
    Generate(&'static str),
    #[error("stored key {kid} is unusable: {reason}")]
    Unusable { kid: String, reason: String },
    #[error("no current signing key in the store")]
    NoCurrentKey,
    #[error("signing failed")]
    Sign,
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key held in memory, ready to sign.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    rng: SystemRandom,
    public_jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {})", self.alg.as_str(), self.kid)
    }
}

impl SigningKey {
    /// Generate a fresh key; returns it with its PKCS#8 encoding, to be sealed and stored.
    pub fn generate(alg: SigningAlg) -> Result<(Self, Vec<u8>), KeyError> {
        let fail = || KeyError::Generate(alg.as_str());
        let pkcs8 = match alg {
            SigningAlg::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| fail())?;
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                    .map_err(|_| fail())?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|p| p.to_pkcs8v1())
                .map_err(|_| fail())?
                .as_ref()
                .to_vec(),
            SigningAlg::EdDSA => Ed25519KeyPair::generate()
                .and_then(|p| p.to_pkcs8())
                .map_err(|_| fail())?
                .as_ref()
                .to_vec(),
        };
        let key = Self::from_pkcs8(alg, &pkcs8).map_err(|_| fail())?;
        Ok((key, pkcs8))
    }

    /// Parse a PKCS#8 private key; the key id is its RFC 7638 thumbprint.
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, String> {
        let pair = match alg {
            SigningAlg::RS256 => Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| e.to_string())?),
            SigningAlg::ES256 => Pair::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| e.to_string())?,
            ),
            SigningAlg::EdDSA => {
                Pair::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(|e| e.to_string())?)
            }
        };
        let members = thumbprint_members(&pair)?;
        let kid = thumbprint(&members);
        let mut public_jwk = members;
        if let Value::Object(map) = &mut public_jwk {
            map.insert("kid".into(), json!(kid));
            map.insert("alg".into(), json!(alg.as_str()));
            map.insert("use".into(), json!("sig"));
        }
        Ok(Self {
            kid,
            alg,
            pair,
            rng: SystemRandom::new(),
            public_jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public half, parsed once for every verification until the next key change.
    pub fn verifier(&self) -> Result<Verifier, KeyError> {
        let public: &[u8] = match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_ref(),
            Pair::Ecdsa(pair) => pair.public_key().as_ref(),
            Pair::Ed25519(pair) => pair.public_key().as_ref(),
        };
        Verifier::new(self.alg, public).map_err(|reason| KeyError::Unusable {
            kid: self.kid.clone(),
            reason,
        })
    }

    /// The public key as a JWK with `kid`, `alg` and `use`; never any private member.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A JWS signature over `message` (for ES256 the fixed-width `r || s` of RFC 7518 §3.4).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Pair::Ecdsa(pair) => Ok(pair
                .sign(&self.rng, message)
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec()),
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The required public members of the JWK, which are also the RFC 7638 thumbprint input.
fn thumbprint_members(pair: &Pair) -> Result<Value, String> {
    Ok(match pair {
        Pair::Rsa(pair) => {
            let public = pair.public_key();
            let (n, e) = (public.modulus(), public.exponent());
            json!({
                "e": b64(e.big_endian_without_leading_zero()),
                "kty": "RSA",
                "n": b64(n.big_endian_without_leading_zero()),
            })
        }
        Pair::Ecdsa(pair) => {
            // Uncompressed SEC1 point: 0x04 || x || y, 32 bytes each for P-256.
            let point = pair.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err("unexpected P-256 public key encoding".into());
            }
            json!({"crv": "P-256", "kty": "EC", "x": b64(&point[1..33]), "y": b64(&point[33..])})
        }
        Pair::Ed25519(pair) => {
            json!({"crv": "Ed25519", "kty": "OKP", "x": b64(pair.public_key().as_ref())})
        }
    })
}

/// RFC 7638: SHA-256 over the required members, lexicographically ordered, no whitespace.
/// serde_json's default map is ordered by key, so `to_string` is already canonical.
fn thumbprint(members: &Value) -> String {
    let canonical = members.to_string();
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// The keys in use at one moment: the current signer and the public keys to publish.
pub struct KeySet {
    current: Arc<SigningKey>,
    current_created_at: UnixTime,
    jwks: bytes::Bytes,
    /// Verification keys of every published key, by kid, built once per key change.
    verifiers: HashMap<String, Verifier>,
    /// (kid, status) of the published keys: a reload that finds the same rebuilds nothing.
    fingerprint: Vec<(String, KeyStatus)>,
}

impl KeySet {
    pub fn current(&self) -> &Arc<SigningKey> {
        &self.current
    }

    /// When the current key was made, for the key-age metric.
    pub fn current_created_at(&self) -> UnixTime {
        self.current_created_at
    }

    /// The serialized JWKS document, built once per key change.
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    /// The claims of a JWT Valet signed: `typ` as given, a published `kid`, the signature with
    /// that key's algorithm only, `iss`, and the `required` claims present. `aud` and `exp`
    /// are the caller's to judge (an expired ID token is still a good logout hint).
    pub fn decode_own<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
        issuer: &str,
        required: &[&str],
    ) -> Option<T> {
        verifier::decode_own(token, |kid| self.verifiers.get(kid), typ, issuer, required)
    }
}

/// The in-memory key ring shared by every request of this process.
pub struct KeyRing {
    store: SharedStore,
    loader: KeyLoader,
    set: RwLock<Arc<KeySet>>,
}

/// Turns stored rows into a [`KeySet`], remembering what it already decrypted and parsed.
struct KeyLoader {
    sealer: KeySealer,
    /// Retired keys stay published this long: the longest life of a token they signed.
    publish_retired_for: Duration,
    parsed: RwLock<HashMap<String, Arc<SigningKey>>>,
}

impl KeyRing {
    /// Load the keys, generating the first one if the store has none.
    pub async fn open(
        store: SharedStore,
        sealer: KeySealer,
        alg: SigningAlg,
        publish_retired_for: Duration,
        now: UnixTime,
    ) -> Result<Self, KeyError> {
        ensure_current_key(&store, &sealer, alg, now).await?;
        store.activate_due_signing_key(now).await?;
        let loader = KeyLoader {
            sealer,
            publish_retired_for,
            parsed: RwLock::new(HashMap::new()),
        };
        let rows = store.signing_keys().await?;
        let set = loader.build(&loader.live(&rows, now))?;
        Ok(Self {
            store,
            loader,
            set: RwLock::new(Arc::new(set)),
        })
    }

    pub fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Activate a due `next` key, then re-read the store; cheap when nothing changed.
    pub async fn reload(&self, now: UnixTime) -> Result<(), KeyError> {
        if self.store.activate_due_signing_key(now).await? {
            tracing::info!("a published next signing key is now current");
        }
        let rows = self.store.signing_keys().await?;
        let live = self.loader.live(&rows, now);
        if self.current().fingerprint == fingerprint(&live) {
            return Ok(());
        }
        let next = Arc::new(self.loader.build(&live)?);
        match self.set.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }
}

fn fingerprint(live: &[&StoredKey]) -> Vec<(String, KeyStatus)> {
    live.iter().map(|r| (r.kid.clone(), r.status)).collect()
}

impl KeyLoader {
    /// The rows whose keys are published now: the current key, a next one, and recently
    /// retired ones.
    fn live<'a>(&self, rows: &'a [StoredKey], now: UnixTime) -> Vec<&'a StoredKey> {
        rows.iter()
            .filter(|r| self.still_published(r, now))
            .collect()
    }

    fn build(&self, live: &[&StoredKey]) -> Result<KeySet, KeyError> {
        let current_row = live
            .iter()
            .find(|r| r.status == KeyStatus::Current)
            .ok_or(KeyError::NoCurrentKey)?;
        let current = self.parse(current_row)?;
        let published = live
            .iter()
            .map(|r| self.parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        let jwks = serde_json::to_vec(&json!({
            "keys": published.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()
        }))
        .map_err(|_| KeyError::Sign)?;
        if let Ok(mut parsed) = self.parsed.write() {
            parsed.retain(|kid, _| live.iter().any(|r| &r.kid == kid));
        }
        let verifiers = published
            .iter()
            .map(|k| Ok((k.kid().to_owned(), k.verifier()?)))
            .collect::<Result<_, KeyError>>()?;
        Ok(KeySet {
            current,
            current_created_at: current_row.created_at,
            jwks: jwks.into(),
            verifiers,
            fingerprint: fingerprint(live),
        })
    }

    fn still_published(&self, row: &StoredKey, now: UnixTime) -> bool {
        match (row.status, row.retired_at) {
            (KeyStatus::Current | KeyStatus::Next, _) => true,
            (KeyStatus::Retired, Some(retired)) => retired.plus(self.publish_retired_for) > now,
            (KeyStatus::Retired, None) => false,
        }
    }

    fn parse(&self, row: &StoredKey) -> Result<Arc<SigningKey>, KeyError> {
        if let Some(key) = self
            .parsed
            .read()
            .ok()
            .and_then(|p| p.get(&row.kid).cloned())
        {
            return Ok(key);
        }
        let key = Arc::new(open_stored_key(&self.sealer, row)?);
        if let Ok(mut parsed) = self.parsed.write() {
            parsed.insert(row.kid.clone(), key.clone());
        }
        Ok(key)
    }
}

/// Decrypt and parse one stored key, checking that it is the key its row says it is.
pub fn open_stored_key(sealer: &KeySealer, row: &StoredKey) -> Result<SigningKey, KeyError> {
    let unusable = |reason: String| KeyError::Unusable {
        kid: row.kid.clone(),
        reason,
    };
    let alg =
        SigningAlg::parse(&row.alg).ok_or_else(|| unusable(format!("unknown alg {}", row.alg)))?;
    let der = sealer.open(&row.kid, &row.alg, &row.sealed_private_key)?;
    let key = SigningKey::from_pkcs8(alg, &der).map_err(unusable)?;
    if key.kid() != row.kid {
        return Err(unusable("its thumbprint does not match its kid".into()));
    }
    Ok(key)
}

/// A new key, sealed for the store.
pub fn new_stored_key(
    sealer: &KeySealer,
    alg: SigningAlg,
    now: UnixTime,
) -> Result<StoredKey, KeyError> {
    let (key, pkcs8) = SigningKey::generate(alg)?;
    Ok(StoredKey {
        kid: key.kid().to_owned(),
        alg: alg.as_str().to_owned(),
        status: KeyStatus::Current,
        sealed_private_key: sealer.seal(key.kid(), alg.as_str(), &pkcs8)?,
        public_jwk: key.public_jwk().to_string(),
        created_at: now,
        retired_at: None,
        activates_at: None,
    })
}

/// Make sure a current key exists. Two replicas starting together may both generate one;
/// the store's one-current-key index lets exactly one insert win, and the other uses it.
pub async fn ensure_current_key(
    store: &SharedStore,
    sealer: &KeySealer,
    alg: SigningAlg,
    now: UnixTime,
) -> Result<(), KeyError> {
    let rows = store.signing_keys().await?;
    if rows.iter().any(|r| r.status == KeyStatus::Current) {
        return Ok(());
    }
    let key = new_stored_key(sealer, alg, now)?;
    match store.insert_first_signing_key(&key).await {
        Ok(()) => {
            tracing::info!(kid = %key.kid, alg = %key.alg, "generated the first signing key");
            Ok(())
        }
        Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `valet keys rotate`: a new key, current at `activates_at` (published as `next` until then)
/// or at once when that is `None` (`--now`, for a compromised key). The key it replaces is
/// retired and stays published while tokens it signed may live.
pub async fn rotate(
    store: &SharedStore,
    sealer: &KeySealer,
    alg: SigningAlg,
    now: UnixTime,
    activates_at: Option<UnixTime>,
) -> Result<StoredKey, KeyError> {
    let mut key = new_stored_key(sealer, alg, now)?;
    if let Some(at) = activates_at.filter(|at| *at > now) {
        key.status = KeyStatus::Next;
        key.activates_at = Some(at);
    }
    store.rotate_signing_key(&key, now).await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_parses_and_signs() {
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let (key, pkcs8) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
            assert_eq!(
                key.kid(),
                again.kid(),
                "{alg:?}: kid is a stable thumbprint"
            );
            let sig = key.sign(b"message").unwrap();
            let expected_len = match alg {
                SigningAlg::RS256 => 256,
                SigningAlg::ES256 => 64,
                SigningAlg::EdDSA => 64,
            };
            assert_eq!(sig.len(), expected_len, "{alg:?}");
            let jwk = key.public_jwk().as_object().unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(!jwk.contains_key(private), "{alg:?} leaks {private}");
            }
            assert_eq!(jwk["kid"], key.kid());
        }
    }

    #[test]
    fn retired_keys_stay_published_for_the_window_only() {
        let loader = KeyLoader {
            sealer: KeySealer::new(&[0u8; 32]).unwrap(),
            publish_retired_for: Duration::from_secs(100),
            parsed: RwLock::new(HashMap::new()),
        };
        let row = |status, retired_at| StoredKey {
            kid: "k".into(),
            alg: "RS256".into(),
            status,
            sealed_private_key: vec![],
            public_jwk: "{}".into(),
            created_at: UnixTime(0),
            retired_at,
            activates_at: None,
        };
        assert!(loader.still_published(&row(KeyStatus::Current, None), UnixTime(1_000_000)));
        assert!(loader.still_published(&row(KeyStatus::Next, None), UnixTime(0)));
        let retired = row(KeyStatus::Retired, Some(UnixTime(1000)));
        assert!(
            loader.still_published(&retired, UnixTime(1099)),
            "a token it signed may be alive"
        );
        assert!(
            !loader.still_published(&retired, UnixTime(1100)),
            "every token it signed has expired"
        );
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // The RSA key of RFC 7638 §3.1 and its published thumbprint.
        let members = json!({
            "e": "AQAB",
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(
            thumbprint(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}

//! The public keys `private_key_jwt` clients sign their assertions with (RFC 7523 §2.2, OpenID
//! Connect Core §9; RFC 7591 `jwks` / `jwks_uri`): checked when registered, an inline JWK Set
//! parsed once per client version, a `jwks_uri` fetched with a short timeout and a size
//! bound, cached, and fetched again for an unknown `kid` at most once per [`REFETCH_EVERY`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::domain::{UnixTime, is_server_endpoint};
use crate::store::Client;

/// The only algorithms an assertion may be signed with: no `none`, no HMAC (a client's
/// public key must never serve as an HMAC secret).
pub const ASSERTION_ALGS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];
pub const ASSERTION_ALG_NAMES: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// How long a fetched JWK Set is used before it is fetched again.
const JWKS_URI_TTL: i64 = 300;
/// An unknown `kid` fetches the set again, but not more often than this per client.
pub const REFETCH_EVERY: i64 = 30;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWK Set document read from a `jwks_uri`.
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// JWK members that only a private or symmetric key has (RFC 7518 §6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// One usable public key of a client.
pub struct ClientKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// The algorithms it may verify (the JWK's `alg` if it names one).
    pub algs: Vec<Algorithm>,
}

/// RSA moduli accepted: at least 2048 bits (RFC 7518 §3.3); at most 8192, since each
/// assertion costs one verification and clients may register themselves.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// The size in bits of a base64url big-endian modulus.
fn modulus_bits(n: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n.trim_end_matches('='))
        .ok()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    Some((bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize)
}

/// Parse and check a JWK Set: at least one key, each an RSA, P-256 or Ed25519 public key whose
/// `alg`, if given, is one of [`ASSERTION_ALGS`], with no private members and not for encryption.
pub fn parse_jwks(text: &str) -> Result<Vec<ClientKey>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the JWK Set is not JSON: {e}"))?;
    let Some(raw_keys) = value.get("keys").and_then(Value::as_array) else {
        return Err("the JWK Set has no \"keys\" array".into());
    };
    if raw_keys.is_empty() {
        return Err("the JWK Set has no keys".into());
    }
    let mut keys = Vec::new();
    for (i, raw) in raw_keys.iter().enumerate() {
        let Some(object) = raw.as_object() else {
            return Err(format!("key {i} is not a JSON object"));
        };
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| object.contains_key(**m)) {
            return Err(format!(
                "key {i} has the private member \"{member}\": register public keys only"
            ));
        }
        let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("key {i}: {e}"))?;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(format!("key {i} is for encryption (\"use\": \"enc\")"));
        }
        let mut algs = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => {
                let bits = modulus_bits(&p.n).ok_or(format!("key {i}: \"n\" is not base64url"))?;
                if !RSA_BITS.contains(&bits) {
                    return Err(format!(
                        "key {i}: an RSA key of {bits} bits; use {} to {} bits (RFC 7518 section 3.3)",
                        RSA_BITS.start(),
                        RSA_BITS.end()
                    ));
                }
                vec![Algorithm::RS256, Algorithm::PS256]
            }
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                vec![Algorithm::ES256]
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            _ => {
                return Err(format!(
                    "key {i}: unsupported key type; use RSA, EC P-256 or OKP Ed25519"
                ));
            }
        };
        if let Some(alg) = jwk.common.key_algorithm {
            let alg = match alg {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                other => {
                    return Err(format!(
                        "key {i}: unsupported alg {other:?}; use one of {}",
                        ASSERTION_ALG_NAMES.join(", ")
                    ));
                }
            };
            if !algs.contains(&alg) {
                return Err(format!("key {i}: alg {alg:?} does not fit its key type"));
            }
            algs = vec![alg];
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("key {i}: {e}"))?;
        keys.push(ClientKey {
            kid: jwk.common.key_id.clone(),
            key,
            algs,
        });
    }
    Ok(keys)
}

/// A `jwks_uri`: absolute https (http only on a loopback host), no fragment.
pub fn check_jwks_uri(text: &str) -> Result<(), String> {
    if url::Url::parse(text).is_err() {
        return Err(format!("`{text}` is not an absolute URI"));
    }
    if !is_server_endpoint(text) {
        return Err(format!(
            "`{text}` must be an https URI without a fragment (http only on a loopback host)"
        ));
    }
    Ok(())
}

/// At most this many clients' keys are held by one process.
pub const MAX_CLIENTS_CACHED: usize = 10_000;

struct Entry {
    /// The inline JWK Set text or the `jwks_uri` the keys came from: a client changed since
    /// has another, and its keys are parsed again.
    source: String,
    keys: Arc<Vec<ClientKey>>,
    fetched_at: UnixTime,
}

/// Every client's parsed keys, by client id; shared by the requests of one process.
pub struct ClientKeyCache {
    http: reqwest::Client,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl Default for ClientKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientKeyCache {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            http,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, client_id: &str) -> Option<Arc<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(client_id)
            .cloned()
    }

    /// Keep `entry` for `client_id`; when [`MAX_CLIENTS_CACHED`] clients are cached already,
    /// the one parsed or fetched longest ago makes room (clients can register themselves, so
    /// the number of clients is not the operator's alone).
    fn remember(&self, client_id: &str, entry: Entry) -> Arc<Vec<ClientKey>> {
        let keys = entry.keys.clone();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_CLIENTS_CACHED && !entries.contains_key(client_id) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.fetched_at.0)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(client_id.to_owned(), Arc::new(entry));
        keys
    }

    /// The keys of `client`; `kid` is the one the assertion names, fetched for if unknown.
    pub async fn keys(
        &self,
        client: &Client,
        kid: Option<&str>,
        now: UnixTime,
    ) -> Result<Arc<Vec<ClientKey>>, String> {
        let cached = self.cached(&client.client_id);
        if let Some(text) = &client.keys.jwks {
            if let Some(entry) = cached.filter(|e| &e.source == text) {
                return Ok(entry.keys.clone());
            }
            let keys = Arc::new(parse_jwks(text)?);
            return Ok(self.remember(
                &client.client_id,
                Entry {
                    source: text.clone(),
                    keys,
                    fetched_at: now,
                },
            ));
        }
        let Some(uri) = &client.keys.jwks_uri else {
            return Err("the client has no keys".into());
        };
        if let Some(entry) = cached.filter(|e| &e.source == uri) {
            let age = now.0 - entry.fetched_at.0;
            let known =
                kid.is_none_or(|kid| entry.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
            if age < JWKS_URI_TTL && (known || age < REFETCH_EVERY) {
                return Ok(entry.keys.clone());
            }
        }
        let keys = Arc::new(self.fetch(uri).await?);
        Ok(self.remember(
            &client.client_id,
            Entry {
                source: uri.clone(),
                keys,
                fetched_at: now,
            },
        ))
    }

    async fn fetch(&self, uri: &str) -> Result<Vec<ClientKey>, String> {
        let mut response = self
            .http
            .get(uri)
            .header("accept", "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| format!("fetching the jwks_uri failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("the jwks_uri answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the jwks_uri failed: {e}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "the jwks_uri document exceeds {MAX_JWKS_BYTES} bytes"
                ));
            }
        }
        let text = String::from_utf8(body).map_err(|_| "the jwks_uri document is not UTF-8")?;
        parse_jwks(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SigningAlg;
    use crate::tokens::SigningKey;

    fn set(keys: &[Value]) -> String {
        serde_json::json!({ "keys": keys }).to_string()
    }

    #[test]
    fn public_keys_of_each_type_parse_with_their_algorithms() {
        let mut jwks = Vec::new();
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let mut jwk = key.public_jwk().clone();
            jwk.as_object_mut().unwrap().remove("alg");
            jwks.push(jwk);
        }
        let keys = parse_jwks(&set(&jwks)).unwrap();
        let algs: Vec<_> = keys.iter().map(|k| k.algs.clone()).collect();
        assert_eq!(
            algs,
            [
                vec![Algorithm::RS256, Algorithm::PS256],
                vec![Algorithm::ES256],
                vec![Algorithm::EdDSA]
            ]
        );
    }

    #[test]
    fn private_symmetric_and_unsupported_keys_are_refused() {
        let (key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
        let public = key.public_jwk().clone();
        let with = |name: &str, value: Value| {
            let mut jwk = public.clone();
            jwk[name] = value;
            set(&[jwk])
        };
        for (text, needle) in [
            (with("d", "AAAA".into()), "private member"),
            (with("alg", "HS256".into()), "alg"),
            (with("alg", "RS256".into()), "does not fit"),
            (with("use", "enc".into()), "encryption"),
            (with("crv", "P-384".into()), "unsupported key type"),
            (
                set(&[serde_json::json!({"kty": "oct", "k": "c2VjcmV0"})]),
                "private member",
            ),
            (
                set(&[serde_json::json!({"kty": "RSA", "e": "AQAB", "n": "w".repeat(171)})]),
                "1024 bits",
            ),
            (
                set(&[serde_json::json!({"kty": "RSA", "e": "AQAB", "n": "w".repeat(1400)})]),
                "8400 bits",
            ),
            (set(&[]), "no keys"),
            ("{}".into(), "no \"keys\""),
            ("[".into(), "not JSON"),
        ] {
            let error = parse_jwks(&text)
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"));
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn jwks_uris_are_https_or_loopback_http() {
        for good in [
            "https://client.example.com/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]/jwks",
        ] {
            assert!(check_jwks_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://client.example.com/jwks",
            "https://client.example.com/jwks#x",
            "ftp://client.example.com/jwks",
            "/jwks.json",
        ] {
            assert!(check_jwks_uri(bad).is_err(), "{bad}");
        }
    }
}

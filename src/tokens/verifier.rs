//! Verification of the JWTs Valet signed itself (access tokens, ID token hints), with each
//! published public key parsed once into an aws-lc-rs key.
//!
//! `jsonwebtoken::decode` rebuilds the backend key from its components on every call and
//! parses the header and the claims twice; for RSA the rebuild alone is a large share of a
//! verification. Introspection and UserInfo verify a token on every request, so this module
//! does the same checks once each: compact form, `typ`, a published `kid`, that key's `alg`
//! only, no `crit` (RFC 7515 §4.1.11: Valet uses no extension), the signature, `iss`, and the
//! claims the caller requires.

use std::borrow::Cow;
use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::domain::SigningAlg;

/// One published key, ready to verify.
pub struct Verifier {
    alg: SigningAlg,
    key: ParsedPublicKey,
}

impl Verifier {
    /// `public_key` as aws-lc-rs gives it for the key pair: PKCS#1 `RSAPublicKey` DER for
    /// RSA, the uncompressed SEC1 point for P-256, the 32 raw bytes for Ed25519.
    pub fn new(alg: SigningAlg, public_key: &[u8]) -> Result<Self, String> {
        let algorithm: &'static dyn VerificationAlgorithm = match alg {
            SigningAlg::RS256 => &RSA_PKCS1_2048_8192_SHA256,
            SigningAlg::ES256 => &ECDSA_P256_SHA256_FIXED,
            SigningAlg::EdDSA => &ED25519,
        };
        let key =
            ParsedPublicKey::new(algorithm, public_key).map_err(|e| format!("public key: {e}"))?;
        Ok(Self { alg, key })
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<IgnoredAny>,
}

/// The claims of `token` if it passes every check of the module comment, else `None`.
/// `verifier_of` finds the key for a `kid`.
pub fn decode_own<'k, T: DeserializeOwned>(
    token: &str,
    verifier_of: impl Fn(&str) -> Option<&'k Verifier>,
    typ: &str,
    issuer: &str,
    required: &[&str],
) -> Option<T> {
    assert!(required.len() <= 64, "one bit per required claim");
    let (signed, signature) = token.rsplit_once('.')?;
    let (header, payload) = signed.split_once('.')?;
    if payload.contains('.') {
        return None;
    }
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.typ.as_deref() != Some(typ) || header.crit.is_some() {
        return None;
    }
    let verifier = verifier_of(header.kid.as_deref()?)?;
    if header.alg != verifier.alg.as_str() {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    verifier
        .key
        .verify_sig(signed.as_bytes(), &signature)
        .ok()?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let checks = IssuerAndRequired { issuer, required };
    if !checks
        .deserialize(&mut serde_json::Deserializer::from_slice(&payload))
        .ok()?
    {
        return None;
    }
    serde_json::from_slice(&payload).ok()
}

/// Whether a claims object's `iss` is `issuer` and every `required` claim is present and not
/// `null`, read in one pass that builds no tree: the claims are then read once more, straight
/// into the caller's type. A later duplicate overrides an earlier one, as in a map. Values
/// neither pass reads are skipped as serde_json skips them (no depth, UTF-8 or number-range
/// check inside them); they sit under a signature already checked, and Valet signs only
/// what serde_json wrote.
struct IssuerAndRequired<'a> {
    issuer: &'a str,
    required: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for IssuerAndRequired<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IssuerAndRequired<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut claims: A) -> Result<bool, A::Error> {
        // Bit i: required[i] (its first occurrence) seen with a value.
        let bit = |name: &str| {
            self.required
                .iter()
                .position(|r| *r == name)
                .map_or(0u64, |i| 1 << i)
        };
        let wanted = self.required.iter().fold(0, |all, r| all | bit(r));
        let mut present = 0u64;
        let mut issuer_matches = false;
        while let Some(name) = claims.next_key_seed(Text)? {
            let has_value = if name == "iss" {
                // Anything but a string fails the whole read, and so the token.
                issuer_matches = claims.next_value_seed(Text)? == self.issuer;
                true
            } else {
                claims.next_value::<Option<IgnoredAny>>()?.is_some()
            };
            let bit = bit(&name);
            present = if has_value {
                present | bit
            } else {
                present & !bit
            };
        }
        Ok(issuer_matches && present == wanted)
    }
}

/// A JSON string, borrowed from the input unless it holds escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::tokens::SigningKey;
    use crate::tokens::signer::sign_jwt;

    const ISS: &str = "https://valet.example";

    fn b64_json(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    /// What jsonwebtoken, the general-purpose library this module replaces on the hot path,
    /// decides for the same token and the same rules: the oracle.
    fn oracle(key: &SigningKey, token: &str, typ: &str, required: &[&str]) -> Option<Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(typ) || header.kid.as_deref() != Some(key.kid()) {
            return None;
        }
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk().clone()).ok()?;
        let alg = match key.alg() {
            SigningAlg::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        };
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_issuer(&[ISS]);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.set_required_spec_claims(required);
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).ok()?;
        jsonwebtoken::decode::<Value>(token, &decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }

    #[test]
    fn accepts_and_refuses_exactly_what_jsonwebtoken_does() {
        let required = ["exp", "iss", "sub"];
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let (other, _) = SigningKey::generate(alg).unwrap();
            let verifier = key.verifier().unwrap();
            let find = |kid: &str| (kid == key.kid()).then_some(&verifier);
            let claims = json!({"iss": ISS, "sub": "u1", "exp": 2_000_000_000, "scope": "a b"});
            let good = sign_jwt(&key, "at+jwt", &claims).unwrap();
            let (signed, signature) = good.rsplit_once('.').unwrap();
            let (header, _) = signed.split_once('.').unwrap();
            let other_alg = if alg == SigningAlg::RS256 {
                "ES256"
            } else {
                "RS256"
            };
            let reheader =
                |h: Value, c: &Value| format!("{}.{}.{signature}", b64_json(&h), b64_json(c));
            let cases: Vec<(&str, String, &str)> = vec![
                ("good", good.clone(), "at+jwt"),
                ("wrong typ", good.clone(), "JWT"),
                (
                    "signed by another key with our kid",
                    {
                        let forged = sign_jwt(&other, "at+jwt", &claims).unwrap();
                        let sig = forged.rsplit_once('.').unwrap().1;
                        format!("{signed}.{sig}")
                    },
                    "at+jwt",
                ),
                (
                    "claims changed",
                    format!(
                        "{header}.{}.{signature}",
                        b64_json(&json!({"iss": ISS, "sub": "admin", "exp": 2_000_000_000}))
                    ),
                    "at+jwt",
                ),
                (
                    "wrong issuer",
                    sign_jwt(
                        &key,
                        "at+jwt",
                        &json!({"iss": "https://evil", "sub": "u", "exp": 1}),
                    )
                    .unwrap(),
                    "at+jwt",
                ),
                (
                    "no sub",
                    sign_jwt(&key, "at+jwt", &json!({"iss": ISS, "exp": 1})).unwrap(),
                    "at+jwt",
                ),
                (
                    "alg swapped",
                    reheader(
                        json!({"alg": other_alg, "kid": key.kid(), "typ": "at+jwt"}),
                        &claims,
                    ),
                    "at+jwt",
                ),
                (
                    "alg none",
                    format!(
                        "{}.{}.",
                        b64_json(&json!({"alg": "none", "kid": key.kid(), "typ": "at+jwt"})),
                        b64_json(&claims)
                    ),
                    "at+jwt",
                ),
                (
                    "unknown kid",
                    reheader(
                        json!({"alg": alg.as_str(), "kid": "nope", "typ": "at+jwt"}),
                        &claims,
                    ),
                    "at+jwt",
                ),
                ("two segments", signed.to_owned(), "at+jwt"),
                ("four segments", format!("{good}.x"), "at+jwt"),
                ("signature not base64url", format!("{signed}.***"), "at+jwt"),
                ("empty", String::new(), "at+jwt"),
            ];
            for (name, token, typ) in cases {
                let ours: Option<Value> = decode_own(&token, find, typ, ISS, &required);
                let theirs = oracle(&key, &token, typ, &required);
                assert_eq!(ours, theirs, "{alg:?} {name}");
                assert_eq!(ours.is_some(), name == "good", "{alg:?} {name}");
            }
        }
    }

    #[test]
    fn reads_the_claims_text_as_json_does() {
        // The issuer and presence checks read the claims' text themselves: escapes, values
        // of every shape, and claims that are not an object must decide as a JSON parser
        // (jsonwebtoken's) does.
        let (key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
        let verifier = key.verifier().unwrap();
        let header = b64_json(&json!({"alg": "ES256", "kid": key.kid(), "typ": "at+jwt"}));
        let signed_raw = |claims: &str| {
            let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
            let signature = URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()).unwrap());
            format!("{signed}.{signature}")
        };
        let required = ["exp", "sub"];
        let cases = [
            (r#"{"iss":"https://valet.example","sub":"u","exp":1}"#, true),
            (
                r#"{"i\u0073s":"https:\/\/valet.example","sub":"u","exp":1}"#,
                true,
            ),
            (
                r#"{"iss":"https://valet.example","sub":"u","exp":null}"#,
                false,
            ),
            (
                r#"{"x":{"iss":"no","y":[1,{"z":null}]},"iss":"https://valet.example","sub":"u","exp":1}"#,
                true,
            ),
            (r#"{"iss":"https://valet.example","sub":"u"}"#, false),
            (
                r#"{"iss":"https://valet.example/","sub":"u","exp":1}"#,
                false,
            ),
            (r#"["https://valet.example"]"#, false),
            (
                r#"{"iss":"https://valet.example","sub":"u","exp":1} x"#,
                false,
            ),
            (r#"{"iss":"https://valet.example","sub":"u","exp":1"#, false),
        ];
        for (claims, good) in cases {
            let token = signed_raw(claims);
            let ours: Option<Value> =
                decode_own(&token, |_| Some(&verifier), "at+jwt", ISS, &required);
            assert_eq!(ours.is_some(), good, "{claims}");
            assert_eq!(ours, oracle(&key, &token, "at+jwt", &required), "{claims}");
        }
        let accepted = |claims: &str| {
            let token = signed_raw(claims);
            decode_own::<Value>(&token, |_| Some(&verifier), "at+jwt", ISS, &required).is_some()
        };
        // A name required twice is required once.
        let token = signed_raw(r#"{"iss":"https://valet.example","sub":"u","exp":1}"#);
        let twice = ["sub", "exp", "sub"];
        let found: Option<Value> = decode_own(&token, |_| Some(&verifier), "at+jwt", ISS, &twice);
        assert!(found.is_some());
        // An `iss` that is missing or not a string fails the token; jsonwebtoken skips an
        // issuer it cannot find or read, so here it is no oracle.
        for claims in [
            r#"{"sub":"u","exp":1}"#,
            r#"{"iss":7,"sub":"u","exp":1}"#,
            r#"{"iss":["https://valet.example"],"sub":"u","exp":1}"#,
            r#"{"iss":null,"sub":"u","exp":1}"#,
        ] {
            assert!(!accepted(claims), "{claims}");
        }
        // A repeated claim: the last one counts, as in a JSON map.
        for (claims, good) in [
            (
                r#"{"iss":"https://evil","iss":"https://valet.example","sub":"u","exp":1}"#,
                true,
            ),
            (
                r#"{"iss":"https://valet.example","iss":"https://evil","sub":"u","exp":1}"#,
                false,
            ),
            (
                r#"{"iss":"https://valet.example","sub":"u","exp":1,"exp":null}"#,
                false,
            ),
            (
                r#"{"iss":"https://valet.example","sub":"u","exp":null,"exp":1}"#,
                true,
            ),
        ] {
            assert_eq!(accepted(claims), good, "{claims}");
        }
    }

    #[test]
    fn refuses_a_critical_header_extension() {
        // RFC 7515 §4.1.11: an extension Valet does not understand must fail the token,
        // even with a good signature over it.
        let (key, _) = SigningKey::generate(SigningAlg::EdDSA).unwrap();
        let verifier = key.verifier().unwrap();
        let header = json!({"alg": "EdDSA", "kid": key.kid(), "typ": "at+jwt", "crit": ["exp"]});
        let signed = format!(
            "{}.{}",
            b64_json(&header),
            b64_json(&json!({"iss": ISS, "sub": "u"}))
        );
        let token = format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()).unwrap())
        );
        let found: Option<Value> = decode_own(&token, |_| Some(&verifier), "at+jwt", ISS, &["sub"]);
        assert_eq!(found, None);
        let plain = sign_jwt(&key, "at+jwt", &json!({"iss": ISS, "sub": "u"})).unwrap();
        let found: Option<Value> = decode_own(&plain, |_| Some(&verifier), "at+jwt", ISS, &["sub"]);
        assert!(found.is_some(), "the same token without crit is good");
    }
}

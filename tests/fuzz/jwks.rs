//! Target `jwks`: the parser of a client's JWK Set (`tokens::client_keys::parse_jwks`), which
//! reads the keys `private_key_jwt` assertions are checked with (inline `jwks` at
//! registration, or a fetched `jwks_uri` document), and `check_jwks_uri`. Every key it accepts
//! is then used to verify a token, so that odd key material cannot panic the verifier either.

use std::rc::Rc;

use jsonwebtoken::{Algorithm, Validation};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{Map, Value, json};
use valet::domain::SigningAlg;
use valet::tokens::SigningKey;
use valet::tokens::client_keys::{ASSERTION_ALGS, check_jwks_uri, parse_jwks};

use crate::{Fuzz, b64, corpus_text, edits, json_value, mutate_text, nasty_string, replay};

const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Real public keys, each with a token it signed.
struct Real {
    jwks: Vec<Value>,
    tokens: Vec<String>,
}

fn real() -> Rc<Real> {
    let mut jwks = Vec::new();
    let mut tokens = Vec::new();
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        let (key, _) = SigningKey::generate(alg).unwrap();
        jwks.push(key.public_jwk().clone());
        let header = json!({"alg": alg.as_str(), "kid": key.kid()});
        let input = format!("{}.{}", b64(header.to_string()), b64(r#"{"sub":"x"}"#));
        tokens.push(format!(
            "{input}.{}",
            b64(key.sign(input.as_bytes()).unwrap())
        ));
    }
    Rc::new(Real { jwks, tokens })
}

fn alg_of(name: &str) -> Option<Algorithm> {
    ASSERTION_ALGS
        .iter()
        .copied()
        .find(|a| format!("{a:?}") == name)
}

/// Whatever `parse_jwks` accepts is a non-empty set of public signature keys of the kinds and
/// algorithms allowed, and each verifies (or refuses) a token without panicking.
fn check(text: &str, tokens: &[String]) -> TestCaseResult {
    let Ok(keys) = parse_jwks(text) else {
        return Ok(());
    };
    let value: Value = serde_json::from_str(text).unwrap();
    let raw = value["keys"].as_array().unwrap();
    prop_assert!(!keys.is_empty());
    prop_assert_eq!(keys.len(), raw.len());
    for (key, raw) in keys.iter().zip(raw) {
        let object = raw.as_object().unwrap();
        prop_assert!(
            PRIVATE.iter().all(|m| !object.contains_key(*m)),
            "private member accepted: {raw}"
        );
        prop_assert_ne!(raw.get("use"), Some(&json!("enc")));
        prop_assert!(!key.algs.is_empty());
        prop_assert!(key.algs.iter().all(|a| ASSERTION_ALGS.contains(a)));
        if let Some(alg) = raw.get("alg").and_then(Value::as_str) {
            prop_assert_eq!(&key.algs, &vec![alg_of(alg).unwrap()]);
        }
        let expected: &[Algorithm] = match raw.get("kty").and_then(Value::as_str) {
            Some("RSA") => &[Algorithm::RS256, Algorithm::PS256],
            Some("EC") => &[Algorithm::ES256],
            Some("OKP") => &[Algorithm::EdDSA],
            other => return Err(TestCaseError::fail(format!("kty {other:?} accepted"))),
        };
        prop_assert!(key.algs.iter().all(|a| expected.contains(a)));
        prop_assert_eq!(key.kid.as_deref(), raw.get("kid").and_then(Value::as_str));
        for alg in &key.algs {
            let mut validation = Validation::new(*alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            for token in tokens {
                let _ = jsonwebtoken::decode::<Value>(token, &key.key, &validation);
            }
        }
    }
    Ok(())
}

fn b64_bytes() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| Value::from(b64(b))),
        prop::sample::select(vec!["", "AQAB", "AA", "=", "!!", "AQAB=="]).prop_map(Value::from),
        json_value(),
    ]
}

/// A JWK with every member a verifier reads set to something plausible.
fn jwk() -> impl Strategy<Value = Value> {
    let kty = prop::sample::select(vec!["RSA", "EC", "OKP", "oct", "rsa", ""]);
    let crv = prop::option::of(prop::sample::select(vec![
        "P-256",
        "P-384",
        "P-521",
        "Ed25519",
        "Ed448",
        "X25519",
        "secp256k1",
    ]));
    let alg = prop::option::of(prop::sample::select(vec![
        "RS256", "PS256", "ES256", "EdDSA", "HS256", "none", "RS512", "ES384", "RSA-OAEP",
    ]));
    let use_ = prop::option::of(prop::sample::select(vec!["sig", "enc", "x"]));
    let private = prop::option::of(prop::sample::select(PRIVATE.to_vec()));
    let members = prop::collection::vec(
        (
            prop::sample::select(vec!["n", "e", "x", "y", "kid", "key_ops", "x5c"]),
            b64_bytes(),
        ),
        0..5,
    );
    (kty, crv, alg, use_, private, members).prop_map(|(kty, crv, alg, use_, private, members)| {
        let mut k = Map::new();
        k.insert("kty".into(), kty.into());
        for (name, value) in members {
            k.insert(name.into(), value);
        }
        if let Some(crv) = crv {
            k.insert("crv".into(), crv.into());
        }
        if let Some(alg) = alg {
            k.insert("alg".into(), alg.into());
        }
        if let Some(use_) = use_ {
            k.insert("use".into(), use_.into());
        }
        if let Some(private) = private {
            k.insert(private.into(), "AQAB".into());
        }
        Value::Object(k)
    })
}

/// One real key with members dropped, replaced or added.
fn altered(real: Rc<Real>) -> impl Strategy<Value = Value> {
    (
        any::<usize>(),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "kty", "crv", "alg", "use", "kid", "n", "e", "x", "y", "d", "k",
                ]),
                prop::option::of(b64_bytes()),
            ),
            1..3,
        ),
    )
        .prop_map(move |(pick, changes)| {
            let mut jwk = real.jwks[pick % real.jwks.len()].clone();
            for (name, value) in changes {
                let map = jwk.as_object_mut().unwrap();
                match value {
                    Some(v) => map.insert(name.into(), v),
                    None => map.remove(name),
                };
            }
            jwk
        })
}

#[test]
fn fuzz() {
    let real = real();
    let (r1, r2, r3, r4, r5) = (
        real.clone(),
        real.clone(),
        real.clone(),
        real.clone(),
        real.clone(),
    );
    Fuzz::new("jwks")
        .prop(
            "real_keys_verify_their_tokens",
            any::<prop::sample::Index>(),
            move |i| {
                // An untouched public key parses and verifies what its private half signed.
                let pick = i.index(r1.jwks.len());
                let keys = parse_jwks(&json!({"keys": [r1.jwks[pick].clone()]}).to_string());
                prop_assert!(keys.is_ok(), "{:?}", keys.err());
                let keys = keys.unwrap();
                let mut validation = Validation::new(keys[0].algs[0]);
                validation.required_spec_claims.clear();
                validation.validate_exp = false;
                let verified =
                    jsonwebtoken::decode::<Value>(&r1.tokens[pick], &keys[0].key, &validation);
                prop_assert!(verified.is_ok(), "{:?}", verified.err());
                check(
                    &json!({"keys": [r1.jwks[pick].clone()]}).to_string(),
                    &r1.tokens,
                )
            },
        )
        .prop("arbitrary_text", nasty_string(200), move |text| {
            check(&text, &r2.tokens)
        })
        .prop(
            "arbitrary_json",
            prop_oneof![
                json_value(),
                json_value().prop_map(|keys| json!({ "keys": keys })),
            ],
            move |value| check(&value.to_string(), &r3.tokens),
        )
        .prop(
            "jwk_shaped",
            prop::collection::vec(prop_oneof![jwk(), altered(real.clone())], 0..4),
            move |keys| check(&json!({ "keys": keys }).to_string(), &r4.tokens),
        )
        .prop(
            "mutated_sets",
            (any::<prop::sample::Index>(), edits()),
            move |(i, edits)| {
                let text = json!({"keys": [r5.jwks[i.index(r5.jwks.len())].clone()]}).to_string();
                check(&mutate_text(&text, &edits), &r5.tokens)
            },
        )
        .prop("jwks_uri", crate::redirect::uri(), |uri| {
            if check_jwks_uri(&uri).is_ok() {
                let url = url::Url::parse(&uri).unwrap();
                prop_assert!(url.fragment().is_none() && !uri.contains('#'));
                let loopback = matches!(url.host_str(), Some("localhost" | "[::1]"))
                    || url.host_str().is_some_and(|h| h.starts_with("127."));
                prop_assert!(url.scheme() == "https" || (url.scheme() == "http" && loopback));
            }
            Ok(())
        })
        .run();
}

#[test]
fn corpus_replays() {
    let real = real();
    replay(corpus_text("jwks"), |text| check(&text, &real.tokens));
}

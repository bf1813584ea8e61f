//! Target `assertion`: `private_key_jwt` client assertions (RFC 7523 §2.2, §3): reading the
//! request (`client_auth::presented`, which reads an unverified `sub`) and checking the
//! assertion (`client_auth::authenticate`, which runs the private `check_assertion` and
//! `verify_assertion` with the client's registered keys and the replay store).
//!
//! The oracle for signed assertions is RFC 7523 §3 as Valet applies it: `iss` = `sub` = the
//! client; `aud` the issuer or one of its endpoints; `exp` within (now − 30 s, now + 330 s];
//! `nbf` and `iat`, when present, numbers not after now + 30 s; a `jti` of 1 to 255 bytes never
//! used before.

use std::cell::Cell;
use std::rc::Rc;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use valet::domain::{GrantType, SigningAlg, UnixTime};
use valet::oauth::client_auth::{AuthMethod, JWT_BEARER_ASSERTION, authenticate, presented};
use valet::oauth::{ErrorCode, Params};
use valet::store::ClientKeys;
use valet::tokens::SigningKey;

use crate::{
    Fixture, Fuzz, ISSUER, b64, client, corpus_text, edits, form_encode, json_value, mutate_text,
    nasty_string, replay,
};

/// Signs with an Ed25519 key registered with its `kid`.
const CLIENT: &str = "pkjwt-client";
/// Has one P-256 key registered without a `kid`.
const OTHER: &str = "pkjwt-other";

struct Setup {
    fx: Fixture,
    key: SigningKey,
    /// Keys of the three kinds that no client registered.
    foreign: Vec<SigningKey>,
    now: UnixTime,
    next_jti: Cell<u64>,
}

impl Setup {
    fn start() -> Rc<Self> {
        let fx = Fixture::start();
        let (key, _) = SigningKey::generate(SigningAlg::EdDSA).unwrap();
        let (other, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
        let mut other_jwk = other.public_jwk().clone();
        other_jwk.as_object_mut().unwrap().remove("kid");
        let grants = [GrantType::ClientCredentials];
        for (id, jwk) in [(CLIENT, key.public_jwk().clone()), (OTHER, other_jwk)] {
            let keys = ClientKeys {
                jwks: Some(json!({ "keys": [jwk] }).to_string()),
                jwks_uri: None,
            };
            let record = client(&fx.core, id, &grants, Some(keys));
            fx.block_on(fx.core.store.insert_client(&record)).unwrap();
        }
        let now = fx.core.clock.now();
        let foreign = [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256]
            .into_iter()
            .map(|alg| SigningKey::generate(alg).unwrap().0)
            .collect();
        Rc::new(Self {
            fx,
            key,
            foreign,
            now,
            next_jti: Cell::new(0),
        })
    }

    fn fresh_jti(&self) -> String {
        let n = self.next_jti.get() + 1;
        self.next_jti.set(n);
        format!("jti-{n}-{}", uuid::Uuid::new_v4())
    }

    /// Present `assertion` (with `client_id` in the body if given) and authenticate it;
    /// whether the client was authenticated.
    fn authenticate(
        &self,
        assertion: &str,
        client_id: Option<&str>,
    ) -> Result<bool, TestCaseError> {
        let mut body = format!(
            "client_assertion_type={}&client_assertion={}",
            form_encode(JWT_BEARER_ASSERTION, 0),
            form_encode(assertion, 0)
        );
        if let Some(id) = client_id {
            body.push_str(&format!("&client_id={}", form_encode(id, 0)));
        }
        let params = Params::parse(body.as_bytes());
        let Ok(params) = params else {
            // Only a NUL in the assertion or client id is refused this early.
            prop_assert!(assertion.contains('\0') || client_id.is_some_and(|c| c.contains('\0')));
            return Ok(false);
        };
        let p = match presented(None, &params) {
            Ok(p) => p,
            Err(e) => {
                prop_assert_eq!(e.code, ErrorCode::InvalidClient);
                crate::check_error(&e)?;
                return Ok(false);
            }
        };
        prop_assert_eq!(p.method, AuthMethod::PrivateKeyJwt);
        prop_assert_eq!(
            p.assertion.as_deref(),
            (!assertion.is_empty()).then_some(assertion)
        );
        match client_id.filter(|c| !c.is_empty()) {
            Some(id) => prop_assert_eq!(&p.client_id, id),
            None => prop_assert_eq!(Some(p.client_id.clone()), unverified_sub(assertion)),
        }
        let result = self.fx.block_on(authenticate(&self.fx.core, &p, self.now));
        match result {
            Ok(client) => {
                prop_assert_eq!(&client.client_id, &p.client_id);
                Ok(true)
            }
            Err(e) => {
                // The one uniform failure (SPEC §7).
                prop_assert_eq!(e.code, ErrorCode::InvalidClient);
                prop_assert_eq!(e.description.as_ref(), "client authentication failed");
                Ok(false)
            }
        }
    }
}

/// The `sub` read before any check, as the model has it.
fn unverified_sub(jwt: &str) -> Option<String> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("sub")?
        .as_str()
        .map(str::to_owned)
}

/// Where an assertion may be addressed.
fn accepted_audiences() -> Vec<String> {
    let mut aud = vec![ISSUER.to_owned(), format!("{ISSUER}/")];
    for path in [
        "/token",
        "/introspect",
        "/revoke",
        "/par",
        "/device_authorization",
    ] {
        aud.push(format!("{ISSUER}{path}"));
    }
    aud
}

/// RFC 7523 §3 as Valet applies it, for claims signed by `CLIENT`'s key.
fn claims_acceptable(claims: &Map<String, Value>, now: i64) -> bool {
    let text = |n: &str| claims.get(n).and_then(Value::as_str);
    let time = |n: &str| {
        claims
            .get(n)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    let accepted = accepted_audiences();
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => accepted.contains(a),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.iter().any(|x| x == a)),
        _ => false,
    };
    let not_future = |n: &str| claims.get(n).is_none() || time(n).is_some_and(|t| t <= now + 30);
    text("iss") == Some(CLIENT)
        && text("sub") == Some(CLIENT)
        && aud_ok
        && time("exp").is_some_and(|exp| exp > now - 30 && exp <= now + 330)
        && not_future("nbf")
        && not_future("iat")
        && text("jti").is_some_and(|j| !j.is_empty() && j.len() <= 255)
}

/// A `jti`: `None` stands for a fresh unique one, filled in when the case runs.
fn claims(now: UnixTime) -> impl Strategy<Value = (Map<String, Value>, bool)> {
    fn member(
        name: &'static str,
        good: impl Strategy<Value = Value> + 'static,
    ) -> impl Strategy<Value = Option<(&'static str, Value)>> {
        prop_oneof![
            10 => good.prop_map(move |v| Some((name, v))),
            1 => Just(None),
            1 => json_value().prop_map(move |v| Some((name, v))),
        ]
    }
    let who = || {
        prop::sample::select(vec![CLIENT, CLIENT, CLIENT, OTHER, "", "PKJWT-CLIENT"])
            .prop_map(Value::from)
    };
    let mut audiences: Vec<Value> = accepted_audiences().into_iter().map(Value::from).collect();
    audiences.extend([
        json!("https://valet.example/userinfo"),
        json!("https://valet.example//token"),
        json!("https://VALET.example"),
        json!(["https://other.example", ISSUER]),
        json!(["https://other.example"]),
        json!([]),
        json!([7, "https://valet.example/token"]),
    ]);
    let t = now.0;
    let time = move |low: i64, high: i64| {
        prop_oneof![
            8 => (low..high).prop_map(move |d| json!(t + d)),
            1 => (low..high).prop_map(move |d| json!(t as f64 + d as f64 + 0.5)),
            1 => (low..high).prop_map(move |d| json!((t + d).to_string())),
        ]
    };
    let jti = prop_oneof![
        12 => Just(None),
        1 => Just(Some(json!(""))),
        1 => Just(Some(json!("j".repeat(256)))),
        1 => Just(Some(json!(17))),
    ];
    (
        member("iss", who()),
        member("sub", who()),
        member("aud", prop::sample::select(audiences)),
        member("exp", time(-60, 400)),
        prop::option::of(time(-10, 60).prop_map(|v| ("nbf", v))),
        prop::option::of(time(-10, 60).prop_map(|v| ("iat", v))),
        jti,
        prop::option::weighted(0.8, Just(())),
    )
        .prop_map(|(iss, sub, aud, exp, nbf, iat, jti, with_jti)| {
            let mut map = Map::new();
            for (name, value) in [iss, sub, aud, exp, nbf, iat].into_iter().flatten() {
                map.insert(name.to_owned(), value);
            }
            let fresh = with_jti.is_some() && jti.is_none();
            if let Some(jti) = jti {
                map.insert("jti".into(), jti);
            }
            (map, fresh)
        })
}

/// The JWS header of an assertion signed with `CLIENT`'s key, with its kid right or not.
fn header(kid: String) -> impl Strategy<Value = (Value, bool)> {
    let kid = prop_oneof![
        6 => Just((Some(kid), true)),
        2 => Just((None, true)),
        1 => Just((Some("another-kid".to_owned()), false)),
    ];
    let alg = prop_oneof![
        8 => Just(("EdDSA", true)),
        1 => prop::sample::select(vec![("ES256", false), ("RS256", false), ("HS256", false), ("none", false)]),
    ];
    let typ = prop::option::of(prop::sample::select(vec![
        "JWT",
        "at+jwt",
        "client-authentication+jwt",
    ]));
    (kid, alg, typ).prop_map(|((kid, kid_ok), (alg, alg_ok), typ)| {
        let mut h = json!({ "alg": alg });
        if let Some(kid) = kid {
            h["kid"] = json!(kid);
        }
        if let Some(typ) = typ {
            h["typ"] = json!(typ);
        }
        (h, kid_ok && alg_ok)
    })
}

fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(signature))
}

#[test]
fn fuzz() {
    let setup = Setup::start();
    let kid = setup.key.kid().to_owned();
    let now = setup.now;
    let (s1, s2, s3, s4) = (setup.clone(), setup.clone(), setup.clone(), setup.clone());
    Fuzz::new("assertion")
        .prop(
            "signed_claims_follow_rfc7523",
            (
                header(kid.clone()),
                claims(now),
                prop::sample::select(vec![None, None, Some(CLIENT), Some(OTHER), Some("nobody")]),
            ),
            move |((header, header_ok), (mut claims, fresh), body_id)| {
                if fresh {
                    claims.insert("jti".into(), json!(s1.fresh_jti()));
                }
                let assertion = sign(&s1.key, &header, &Value::Object(claims.clone()));
                // The client looked up: client_id if sent, else the unverified sub.
                let named = body_id
                    .map(str::to_owned)
                    .or_else(|| claims.get("sub").and_then(Value::as_str).map(str::to_owned));
                let expected = header_ok
                    && named.as_deref() == Some(CLIENT)
                    && claims_acceptable(&claims, s1.now.0);
                let accepted = s1.authenticate(&assertion, body_id)?;
                prop_assert_eq!(accepted, expected, "{} {:?}", header, claims);
                if accepted {
                    // RFC 7523 §3 item 7: the same jti is refused from now on.
                    prop_assert!(!s1.authenticate(&assertion, body_id)?, "replay accepted");
                }
                Ok(())
            },
        )
        .prop(
            "mutated_assertions",
            (claims(now), edits()),
            move |((mut claims, _), edits)| {
                // A good assertion, changed: only the unchanged one may pass.
                let good = json!({"alg": "EdDSA", "kid": s2.key.kid()});
                for (name, value) in [
                    ("iss", json!(CLIENT)),
                    ("sub", json!(CLIENT)),
                    ("aud", json!(ISSUER)),
                    ("exp", json!(s2.now.0 + 60)),
                ] {
                    claims.insert(name.into(), value);
                }
                claims.insert("jti".into(), json!(s2.fresh_jti()));
                claims.remove("nbf");
                claims.remove("iat");
                let original = sign(&s2.key, &good, &Value::Object(claims));
                let assertion = mutate_text(&original, &edits);
                let accepted = s2.authenticate(&assertion, None)?;
                prop_assert_eq!(accepted, assertion == original);
                Ok(())
            },
        )
        .prop(
            "unsigned_and_foreign",
            (
                claims(now),
                any::<usize>(),
                prop::sample::select(vec!["EdDSA", "ES256", "RS256", "PS256", "none", "HS256"]),
                prop::collection::vec(any::<u8>(), 0..80),
                any::<u8>(),
            ),
            move |((mut claims, _), alg, header_alg, noise, how)| {
                claims.insert("jti".into(), json!(s3.fresh_jti()));
                let header = json!({"alg": header_alg, "kid": s3.key.kid()});
                let claims = Value::Object(claims);
                let assertion = match how % 3 {
                    // Signed by a key the client never registered, under its kid.
                    0 => sign(&s3.foreign[alg % s3.foreign.len()], &header, &claims),
                    // No signature, or noise for one.
                    1 => format!("{}.{}.", b64(header.to_string()), b64(claims.to_string())),
                    _ => format!(
                        "{}.{}.{}",
                        b64(header.to_string()),
                        b64(claims.to_string()),
                        b64(&noise)
                    ),
                };
                prop_assert!(!s3.authenticate(&assertion, None)?);
                Ok(())
            },
        )
        .prop(
            "arbitrary_requests",
            (
                prop_oneof![
                    nasty_string(120),
                    (
                        json_value(),
                        json_value(),
                        prop::collection::vec(any::<u8>(), 0..64)
                    )
                        .prop_map(|(h, p, s)| format!(
                            "{}.{}.{}",
                            b64(h.to_string()),
                            b64(p.to_string()),
                            b64(s)
                        )),
                ],
                prop::option::of(prop_oneof![Just(CLIENT.to_owned()), nasty_string(20)]),
            ),
            move |(assertion, client_id)| {
                prop_assert!(!s4.authenticate(&assertion, client_id.as_deref())?);
                Ok(())
            },
        )
        .run();
}

#[test]
fn corpus_replays() {
    // Assertions from elsewhere: never valid for these freshly made keys.
    let setup = Setup::start();
    replay(corpus_text("assertion"), |assertion| {
        prop_assert!(!setup.authenticate(&assertion, None)?);
        prop_assert!(!setup.authenticate(&assertion, Some(CLIENT))?);
        Ok(())
    });
}

/// Found by `signed_claims_follow_rfc7523`: an assertion past its `exp` but within the 30 s
/// skew was accepted, and its `jti` kept only until `exp`, so it could be replayed until the
/// skew ran out.
#[test]
fn replay_within_the_skew_is_refused() {
    let setup = Setup::start();
    for offset in [-29, -10, -1, 0, 1, 60] {
        let claims = json!({
            "iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "exp": setup.now.0 + offset,
            "jti": setup.fresh_jti(),
        });
        let assertion = sign(&setup.key, &json!({"alg": "EdDSA"}), &claims);
        assert!(
            setup.authenticate(&assertion, None).unwrap(),
            "exp now{offset:+}"
        );
        assert!(
            !setup.authenticate(&assertion, None).unwrap(),
            "replay, exp now{offset:+}"
        );
    }
}

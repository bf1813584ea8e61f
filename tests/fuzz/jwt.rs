//! Target `jwt`: access tokens presented at introspection (RFC 7662) and UserInfo (OpenID
//! Connect Core §5.3): `tokens::access::verify` with the key ring, and what is built on it,
//! `introspect::active_access_token`, `introspect::introspect` and `userinfo::userinfo`.
//!
//! The oracle: a token the key ring did not sign, byte for byte, never verifies; one it
//! signed verifies exactly when its `typ`, `iss`, claim types and `exp` are right.

use std::rc::Rc;
use std::sync::Arc;

use aws_lc_rs::hmac;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{Map, Value, json};
use valet::domain::{GrantType, SigningAlg, UnixTime};
use valet::oauth::introspect::{active_access_token, introspect};
use valet::oauth::{ErrorCode, Params};
use valet::oidc::userinfo::userinfo;
use valet::store::Client;
use valet::tokens::SigningKey;
use valet::tokens::access;
use valet::tokens::signer::sign_jwt;

use crate::{
    Fixture, Fuzz, ISSUER, b64, client, corpus_text, edits, json_value, mutate_text, nasty_string,
    replay,
};

const CLIENT: &str = "fuzz-client";

/// The key ring's core, the client tokens are issued to, and tokens the ring signed.
struct Ring {
    fx: Fixture,
    key: Arc<SigningKey>,
    /// Keys of the three kinds that are not in the ring.
    foreign: Vec<SigningKey>,
    now: UnixTime,
    caller: Client,
    /// Good tokens: client credentials with and without `openid`, and one of a user grant.
    originals: Vec<String>,
}

impl Ring {
    fn start() -> Rc<Self> {
        let fx = Fixture::start();
        let core = &fx.core;
        let caller = client(core, CLIENT, &[GrantType::ClientCredentials], None);
        fx.block_on(core.store.insert_client(&caller)).unwrap();
        let key = core.keys.current().current().clone();
        let now = core.clock.now();
        let originals = ["read:things", "openid read:things"]
            .iter()
            .map(|scope| good_claims(now, "jti-1", scope))
            .chain([good_claims(now, "grant.jti", "openid")])
            .map(|claims| sign_jwt(&key, "at+jwt", &claims).unwrap())
            .collect();
        let foreign = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA]
            .into_iter()
            .map(|alg| SigningKey::generate(alg).unwrap().0)
            .collect();
        Rc::new(Self {
            fx,
            key,
            foreign,
            now,
            caller,
            originals,
        })
    }

    /// Verify `token` every way the endpoints do, and check their answers agree with
    /// `expected` (whether `access::verify` accepts it).
    fn check(&self, token: &str, expected_valid: bool) -> TestCaseResult {
        let core = &self.fx.core;
        let verified = access::verify(&core.keys.current(), token, ISSUER, self.now);
        prop_assert_eq!(verified.is_some(), expected_valid, "verify {:?}", token);
        // Active: verified, its client exists, and no (unknown) user grant is named in its jti.
        let expected_active = verified
            .as_ref()
            .is_some_and(|c| c.client_id == CLIENT && !c.jti.contains('.'));
        let active = self.fx.block_on(active_access_token(core, token, self.now));
        prop_assert!(active.is_ok());
        prop_assert_eq!(active.unwrap().is_some(), expected_active);
        match self.fx.block_on(userinfo(core, token, self.now)) {
            Ok(_) => prop_assert!(false, "userinfo answered for a token without a user"),
            Err(e) => {
                let openid = verified
                    .as_ref()
                    .is_some_and(|c| c.scope.split(' ').any(|s| s == "openid"));
                let code = if expected_active && !openid {
                    ErrorCode::InsufficientScope
                } else {
                    ErrorCode::InvalidToken
                };
                prop_assert_eq!(e.code, code);
                crate::check_error(&e)?;
            }
        }
        let body = format!("token={}", crate::form_encode(token, 0));
        let params = Params::parse_allowing_nul(body.as_bytes(), &["token"]).unwrap();
        let answer = self
            .fx
            .block_on(introspect(core, &self.caller, &params, self.now));
        prop_assert!(answer.is_ok() || token.is_empty(), "{:?}", answer);
        if let Ok(answer) = answer {
            prop_assert_eq!(answer.active, expected_active);
        }
        Ok(())
    }
}

fn good_claims(now: UnixTime, jti: &str, scope: &str) -> Value {
    json!({
        "iss": ISSUER, "sub": CLIENT, "aud": crate::API, "exp": now.0 + 600,
        "iat": now.0, "jti": jti, "client_id": CLIENT, "scope": scope,
    })
}

/// The members of an access token, each right, absent, or of another value or type.
fn claims(now: UnixTime) -> impl Strategy<Value = Map<String, Value>> {
    fn member(
        name: &'static str,
        good: impl Strategy<Value = Value> + 'static,
    ) -> impl Strategy<Value = Option<(&'static str, Value)>> {
        prop_oneof![
            8 => good.prop_map(move |v| Some((name, v))),
            1 => Just(None),
            1 => json_value().prop_map(move |v| Some((name, v))),
        ]
    }
    let text = |options: Vec<&'static str>| prop::sample::select(options).prop_map(Value::from);
    let time = move |low: i64, high: i64| (low..high).prop_map(move |d| json!(now.0 + d));
    (
        member(
            "iss",
            text(vec![
                ISSUER,
                "https://valet.example/",
                "https://other.example",
                "",
            ]),
        ),
        member("sub", text(vec![CLIENT, "user-1", ""])),
        member("aud", text(vec![crate::API, "https://other.example"])),
        member("exp", time(-100, 1000)),
        member("iat", time(-100, 100)),
        member("jti", "[a-zA-Z0-9_.-]{1,12}".prop_map(Value::from)),
        member("client_id", text(vec![CLIENT, "someone-else"])),
        member(
            "scope",
            text(vec!["openid", "read:things", "openid read:things", ""]),
        ),
        prop::collection::btree_map("[a-z_]{1,6}", json_value(), 0..3),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, extra)| {
            let mut map: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in [a, b, c, d, e, f, g, h].into_iter().flatten() {
                map.insert(name.to_owned(), value);
            }
            map
        })
}

/// Whether the ring accepts these claims when it signed them with this `typ`.
fn claims_valid(typ: &str, claims: &Map<String, Value>, now: UnixTime) -> bool {
    let text = |n: &str| claims.get(n).is_some_and(Value::is_string);
    let int = |n: &str| claims.get(n).and_then(Value::as_i64);
    typ == "at+jwt"
        && claims.get("iss") == Some(&json!(ISSUER))
        && ["sub", "aud", "jti", "client_id", "scope"]
            .iter()
            .all(|n| text(n))
        && int("iat").is_some()
        && int("exp").is_some_and(|exp| exp > now.0)
}

/// A JOSE header with the fields a verifier looks at set to anything plausible.
fn header(kid: String) -> impl Strategy<Value = Value> {
    let alg = prop::option::of(prop::sample::select(vec![
        "RS256", "ES256", "EdDSA", "PS256", "HS256", "none", "", "rs256", "RS512",
    ]));
    let kid = prop_oneof![
        3 => Just(Some(Value::from(kid))),
        1 => Just(None),
        1 => json_value().prop_map(Some),
    ];
    let typ = prop::option::of(prop::sample::select(vec!["at+jwt", "JWT", "AT+JWT", "jwt"]));
    let extra = prop::option::of(prop::sample::select(vec![
        ("crit", json!(["exp"])),
        ("jku", json!("https://evil.example/jwks")),
        ("jwk", json!({"kty": "oct", "k": "c2VjcmV0"})),
        ("b64", json!(false)),
        ("x5c", json!(["AAAA"])),
    ]));
    (alg, kid, typ, extra).prop_map(|(alg, kid, typ, extra)| {
        let mut h = Map::new();
        if let Some(alg) = alg {
            h.insert("alg".into(), alg.into());
        }
        if let Some(kid) = kid {
            h.insert("kid".into(), kid);
        }
        if let Some(typ) = typ {
            h.insert("typ".into(), typ.into());
        }
        if let Some((name, value)) = extra {
            h.insert(name.into(), value);
        }
        Value::Object(h)
    })
}

/// A segment: base64url of JSON or bytes, or raw text.
#[derive(Debug, Clone)]
enum Segment {
    Json,
    Bytes(Vec<u8>),
    Raw(String),
    /// The signature of one of the ring's own tokens.
    Transplant(usize),
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        4 => Just(Segment::Json),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Segment::Bytes),
        1 => nasty_string(40).prop_map(Segment::Raw),
        2 => any::<usize>().prop_map(Segment::Transplant),
    ]
}

#[test]
fn fuzz() {
    let ring = Ring::start();
    let kid = ring.key.kid().to_owned();
    let now = ring.now;
    let (r1, r2, r3, r4, r5) = (
        ring.clone(),
        ring.clone(),
        ring.clone(),
        ring.clone(),
        ring.clone(),
    );
    Fuzz::new("jwt")
        .prop(
            "signed_by_the_ring",
            (
                prop::sample::select(vec![
                    "at+jwt",
                    "at+jwt",
                    "JWT",
                    "AT+JWT",
                    "application/at+jwt",
                ]),
                claims(now),
            ),
            move |(typ, claims)| {
                let token = sign_jwt(&r1.key, typ, &claims).unwrap();
                r1.check(&token, claims_valid(typ, &claims, r1.now))
            },
        )
        .prop(
            "mutated_ring_tokens",
            (any::<usize>(), edits()),
            move |(pick, edits)| {
                let original = &r2.originals[pick % r2.originals.len()];
                let token = mutate_text(original, &edits);
                r2.check(&token, &token == original)
            },
        )
        .prop(
            "random_segments",
            (
                header(kid.clone()),
                segment(),
                claims(now),
                segment(),
                segment(),
                prop::sample::select(vec![3usize, 3, 3, 2, 4, 1]),
            ),
            move |(header, hseg, claims, pseg, sseg, count)| {
                let encode = |seg: &Segment, json: &Value| match seg {
                    Segment::Json => b64(json.to_string()),
                    Segment::Bytes(bytes) => b64(bytes),
                    Segment::Raw(text) => text.clone(),
                    Segment::Transplant(i) => {
                        let t = &r3.originals[i % r3.originals.len()];
                        t.rsplit('.').next().unwrap().to_owned()
                    }
                };
                let parts = [
                    encode(&hseg, &header),
                    encode(&pseg, &Value::Object(claims)),
                    encode(&sseg, &Value::Null),
                    "x".to_owned(),
                ];
                let token = parts[..count.min(4)].join(".");
                r3.check(&token, r3.originals.contains(&token))
            },
        )
        .prop(
            "forged_with_the_ring_kid",
            (any::<usize>(), claims(now)),
            move |(pick, claims)| {
                // Another key, claiming the ring's kid.
                let foreign = &r4.foreign[pick % r4.foreign.len()];
                let alg = foreign.alg();
                let header = json!({"alg": alg.as_str(), "kid": r4.key.kid(), "typ": "at+jwt"});
                let input = format!(
                    "{}.{}",
                    b64(header.to_string()),
                    b64(Value::Object(claims).to_string())
                );
                let token = format!("{input}.{}", b64(foreign.sign(input.as_bytes()).unwrap()));
                r4.check(&token, false)
            },
        )
        .prop(
            "algorithm_confusion",
            (
                prop::sample::select(vec!["HS256", "HS384", "none", "None", "NONE"]),
                claims(now),
                any::<u8>(),
            ),
            move |(alg, claims, secret_kind)| {
                // HMAC keyed with public material of the ring, or `none` with no signature.
                let header = json!({"alg": alg, "kid": r5.key.kid(), "typ": "at+jwt"});
                let input = format!(
                    "{}.{}",
                    b64(header.to_string()),
                    b64(Value::Object(claims).to_string())
                );
                let public = r5.key.public_jwk();
                let secret = match secret_kind % 3 {
                    0 => public.to_string().into_bytes(),
                    1 => public["n"].as_str().unwrap_or_default().as_bytes().to_vec(),
                    _ => Vec::new(),
                };
                let signature = if alg.starts_with("HS") {
                    b64(hmac::sign(
                        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
                        input.as_bytes(),
                    ))
                } else {
                    String::new()
                };
                r5.check(&format!("{input}.{signature}"), false)
            },
        )
        .run();
}

#[test]
fn corpus_replays() {
    // Tokens from elsewhere (other keys, other servers, none at all): never valid here.
    let ring = Ring::start();
    replay(corpus_text("jwt"), |token| ring.check(&token, false));
}

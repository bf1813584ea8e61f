//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9):
//! keys generated here, registered inline or served from a `jwks_uri`, every §3 rule broken
//! once, replay refused across concurrent requests, and the other endpoints that
//! authenticate clients.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PSS_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use valet::domain::{GrantType, SigningAlg};
use valet::tokens::SigningKey;

use crate::harness::fixtures::{NewClient, concurrent_statuses, ok_json};
use crate::harness::{CONTACTS, TestApp};
use crate::store_tests;

store_tests!(
    each_algorithm_authenticates_client_credentials,
    rfc7523_violations_are_invalid_client,
    replayed_jti_in_parallel_succeeds_once,
    jwks_uri_rotation_is_picked_up_by_a_refetch,
    introspection_and_revocation_accept_assertions,
    secret_and_assertion_do_not_mix,
    discovery_lists_private_key_jwt,
    cli_registers_private_key_jwt_clients_and_refuses_bad_keys,
    assertion_ids_expire_and_the_janitor_purges_them
);

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

enum Signer {
    Valet(SigningKey),
    Pss(RsaKeyPair),
}

/// A client's key pair: the public JWK to register, the private half to sign with.
pub(crate) struct TestKey {
    jwk: Value,
    signer: Signer,
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

impl TestKey {
    pub(crate) fn new(alg: &str) -> Self {
        let valet_alg = match alg {
            "RS256" | "PS256" => SigningAlg::RS256,
            "ES256" => SigningAlg::ES256,
            "EdDSA" => SigningAlg::EdDSA,
            other => panic!("no such test alg {other}"),
        };
        let (key, pkcs8) = SigningKey::generate(valet_alg).expect("generate a key");
        let mut jwk = key.public_jwk().clone();
        if alg == "PS256" {
            jwk["alg"] = json!("PS256");
            jwk["kid"] = json!(format!("pss-{}", key.kid()));
            let pair = RsaKeyPair::from_pkcs8(&pkcs8).expect("RSA key");
            return Self {
                jwk,
                signer: Signer::Pss(pair),
            };
        }
        Self {
            jwk,
            signer: Signer::Valet(key),
        }
    }

    fn kid(&self) -> &str {
        self.jwk["kid"].as_str().unwrap()
    }

    fn alg(&self) -> &str {
        self.jwk["alg"].as_str().unwrap()
    }

    fn header(&self) -> Value {
        json!({"alg": self.alg(), "kid": self.kid(), "typ": "JWT"})
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = match &self.signer {
            Signer::Valet(key) => key.sign(input.as_bytes()).expect("sign"),
            Signer::Pss(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PSS_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut signature,
                )
                .expect("sign PS256");
                signature
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

pub(crate) fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// RFC 7523 §3 claims that are all good: `aud` the token endpoint, a minute to live.
fn claims(app: &TestApp, client_id: &str) -> Value {
    let now = app.clock.now().0;
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": app.url("/token"),
        "exp": now + 60,
        "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn service(name: &str) -> NewClient {
    NewClient::confidential(name, &[GrantType::ClientCredentials], "read:contacts")
}

async fn register(app: &TestApp, keys: &[&TestKey]) -> String {
    app.create_private_key_jwt_client(service("signed").jwks(&jwks(keys)))
        .await
}

async fn with_assertion(
    app: &TestApp,
    path: &str,
    assertion: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    app.post_form(path, None, &form).await
}

async fn client_credentials(app: &TestApp, assertion: &str) -> reqwest::Response {
    with_assertion(
        app,
        "/token",
        assertion,
        &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
    )
    .await
}

async fn assert_invalid_client(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 401, "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{what}: {body}");
    assert_eq!(
        body["error_description"], "client authentication failed",
        "{what}: the uniform answer"
    );
}

async fn each_algorithm_authenticates_client_credentials(app: TestApp) {
    app.create_contacts_api().await;
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let key = TestKey::new(alg);
        let client_id = register(&app, &[&key]).await;
        let assertion = key.sign(&claims(&app, &client_id));
        let body = ok_json(client_credentials(&app, &assertion).await).await;
        assert_eq!(body["token_type"], "Bearer", "{alg}");
        // client_id may be sent too, if it is the same.
        let assertion = key.sign(&claims(&app, &client_id));
        let response = with_assertion(
            &app,
            "/token",
            &assertion,
            &[
                ("grant_type", "client_credentials"),
                ("audience", CONTACTS),
                ("client_id", &client_id),
            ],
        )
        .await;
        ok_json(response).await;
        // aud may be the issuer, alone or in an array.
        let mut c = claims(&app, &client_id);
        c["aud"] = json!([app.url("")]);
        ok_json(client_credentials(&app, &key.sign(&c)).await).await;
    }
}

async fn rfc7523_violations_are_invalid_client(app: TestApp) {
    app.create_contacts_api().await;
    let key = TestKey::new("ES256");
    let other_key = TestKey::new("ES256");
    let client_id = register(&app, &[&key]).await;
    let rsa = TestKey::new("RS256");
    let rsa_client = register(&app, &[&rsa]).await;
    let now = app.clock.now().0;
    let good = claims(&app, &client_id);
    let with = |name: &str, value: Value| {
        let mut c = good.clone();
        c[name] = value;
        c["jti"] = json!(uuid::Uuid::new_v4().to_string());
        c
    };
    let without = |name: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(name);
        c
    };
    let cases: Vec<(&str, String)> = vec![
        ("wrong iss", key.sign(&with("iss", json!("someone-else")))),
        ("wrong sub", key.sign(&with("sub", json!("someone-else")))),
        (
            "wrong aud",
            key.sign(&with("aud", json!("https://elsewhere.example/token"))),
        ),
        ("missing exp", key.sign(&without("exp"))),
        ("expired", key.sign(&with("exp", json!(now - 120)))),
        ("exp too far", key.sign(&with("exp", json!(now + 3600)))),
        (
            "nbf in the future",
            key.sign(&with("nbf", json!(now + 120))),
        ),
        ("missing jti", key.sign(&without("jti"))),
        (
            "wrong key",
            other_key.sign_with_header(&key.header(), &with("iat", json!(now))),
        ),
        ("unknown kid", other_key.sign(&with("iat", json!(now)))),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": key.kid()})),
                b64(&with("iat", json!(now)))
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, assertion) in &cases {
        assert_invalid_client(client_credentials(&app, assertion).await, what).await;
    }
    // HS256 with the public key as the secret (alg confusion), and with any secret.
    let mut c = claims(&app, &rsa_client);
    for secret in [rsa.jwk["n"].as_str().unwrap().as_bytes(), b"some secret"] {
        c["jti"] = json!(uuid::Uuid::new_v4().to_string());
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "kid": rsa.kid()})),
            b64(&c)
        );
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
        let assertion = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_invalid_client(client_credentials(&app, &assertion).await, "HS256").await;
    }
    // A different client_id parameter than the assertion's.
    let assertion = key.sign(&claims(&app, &client_id));
    let response = with_assertion(
        &app,
        "/token",
        &assertion,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &rsa_client),
        ],
    )
    .await;
    assert_invalid_client(response, "client_id param differs").await;
    // A wrong client_assertion_type.
    let response = app
        .post_form(
            "/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:example:other"),
                ("client_assertion", &key.sign(&claims(&app, &client_id))),
            ],
        )
        .await;
    assert_invalid_client(response, "wrong assertion type").await;
    // The good one works once; its replay does not, nor after the janitor ran.
    let assertion = key.sign(&good);
    ok_json(client_credentials(&app, &assertion).await).await;
    assert_invalid_client(client_credentials(&app, &assertion).await, "replayed jti").await;
    valet::janitor::run_once(&app.state.store, &app.state.settings, app.clock.now())
        .await
        .expect("janitor");
    assert_invalid_client(
        client_credentials(&app, &assertion).await,
        "replay after purge",
    )
    .await;
    // Past its exp but within the clock skew: accepted once, and its replay is refused too,
    // also after the janitor ran (found by the fuzz target `assertion`).
    let assertion = key.sign(&with("exp", json!(now - 10)));
    ok_json(client_credentials(&app, &assertion).await).await;
    for what in [
        "replay within the skew",
        "replay within the skew after purge",
    ] {
        assert_invalid_client(client_credentials(&app, &assertion).await, what).await;
        valet::janitor::run_once(&app.state.store, &app.state.settings, app.clock.now())
            .await
            .expect("janitor");
    }
}

async fn replayed_jti_in_parallel_succeeds_once(app: TestApp) {
    app.create_contacts_api().await;
    let key = TestKey::new("EdDSA");
    let client_id = register(&app, &[&key]).await;
    let assertion = key.sign(&claims(&app, &client_id));
    let app = Arc::new(app);
    let statuses = concurrent_statuses(8, || {
        let app = app.clone();
        let assertion = assertion.clone();
        async move { client_credentials(&app, &assertion).await }
    })
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        7,
        "{statuses:?}"
    );
}

/// A JWK Set served over HTTP, which the test can change.
async fn serve_jwks(initial: String) -> (String, Arc<Mutex<String>>) {
    let document = Arc::new(Mutex::new(initial));
    let served = document.clone();
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let served = served.clone();
            async move {
                let text = served.lock().unwrap().clone();
                ([("content-type", "application/json")], text)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/jwks.json"), document)
}

async fn jwks_uri_rotation_is_picked_up_by_a_refetch(app: TestApp) {
    app.create_contacts_api().await;
    let old = TestKey::new("RS256");
    let new = TestKey::new("ES256");
    let (uri, document) = serve_jwks(jwks(&[&old])).await;
    let client_id = app
        .create_private_key_jwt_client(service("fetched").jwks_uri(&uri))
        .await;
    ok_json(client_credentials(&app, &old.sign(&claims(&app, &client_id))).await).await;
    // The client rotates: its new key is published, the old one withdrawn.
    *document.lock().unwrap() = jwks(&[&new]);
    // Within the refetch interval the cached set answers: the new kid is unknown.
    let fresh = new.sign(&claims(&app, &client_id));
    assert_invalid_client(client_credentials(&app, &fresh).await, "refetch throttled").await;
    app.advance(Duration::from_secs(31));
    // An unknown kid fetches the set again, and the new key works.
    ok_json(client_credentials(&app, &new.sign(&claims(&app, &client_id))).await).await;
    // The refetched set replaced the cached one: the withdrawn key fails at once.
    let stale = old.sign(&claims(&app, &client_id));
    assert_invalid_client(client_credentials(&app, &stale).await, "withdrawn key").await;
}

async fn introspection_and_revocation_accept_assertions(app: TestApp) {
    app.create_contacts_api().await;
    let service_creds = app.create_service_client("read:contacts").await;
    let token = app.service_token(&service_creds, CONTACTS).await;
    let key = TestKey::new("ES256");
    let client_id = register(&app, &[&key]).await;
    for aud in [app.url("/introspect"), app.url("")] {
        let mut c = claims(&app, &client_id);
        c["aud"] = json!(aud);
        let response =
            with_assertion(&app, "/introspect", &key.sign(&c), &[("token", &token)]).await;
        let body = ok_json(response).await;
        assert_eq!(body["active"], true, "{body}");
    }
    // Its own token, revoked with an assertion whose aud is the revocation endpoint.
    let assertion = key.sign(&claims(&app, &client_id));
    let own = ok_json(client_credentials(&app, &assertion).await).await;
    let own = own["access_token"].as_str().unwrap().to_owned();
    let mut c = claims(&app, &client_id);
    c["aud"] = json!(app.url("/revoke"));
    let response = with_assertion(&app, "/revoke", &key.sign(&c), &[("token", &own)]).await;
    assert_eq!(response.status(), 200);
    let c = claims(&app, &client_id);
    let response = with_assertion(&app, "/introspect", &key.sign(&c), &[("token", &own)]).await;
    assert_eq!(ok_json(response).await["active"], false);
    // A replayed assertion fails at introspection too.
    let response = with_assertion(&app, "/introspect", &key.sign(&c), &[("token", &own)]).await;
    assert_invalid_client(response, "replay at introspection").await;
}

async fn secret_and_assertion_do_not_mix(app: TestApp) {
    app.create_contacts_api().await;
    let key = TestKey::new("ES256");
    let client_id = register(&app, &[&key]).await;
    let form = [("grant_type", "client_credentials"), ("audience", CONTACTS)];
    // A private_key_jwt client presenting a secret (or nothing) fails.
    let response = app.token(Some((&client_id, "guess")), &form).await;
    assert_eq!(response.status(), 401);
    let mut post = form.to_vec();
    post.extend([
        ("client_id", client_id.as_str()),
        ("client_secret", "guess"),
    ]);
    assert_invalid_client(app.token(None, &post).await, "secret by post").await;
    let mut none = form.to_vec();
    none.push(("client_id", client_id.as_str()));
    assert_invalid_client(app.token(None, &none).await, "no credentials").await;
    // A secret client presenting an assertion signed by some key fails.
    let creds = app.create_service_client("read:contacts").await;
    let mut c = claims(&app, &creds.id);
    c["sub"] = json!(creds.id);
    assert_invalid_client(
        client_credentials(&app, &key.sign(&c)).await,
        "secret client",
    )
    .await;
    // Both at once is a malformed request.
    let response = with_assertion(
        &app,
        "/token",
        &key.sign(&claims(&app, &client_id)),
        &[("grant_type", "client_credentials"), ("client_secret", "x")],
    )
    .await;
    assert_eq!(response.status(), 400);
}

async fn discovery_lists_private_key_jwt(app: TestApp) {
    let doc = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    for list in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert!(
            doc[list]
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt")),
            "{list}: {doc}"
        );
    }
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "PS256", "ES256", "EdDSA"])
    );
}

async fn cli_fails(app: &TestApp, args: &[&str], needle: &str) {
    let out = app.cli(args).await;
    assert_eq!(out.status.code(), Some(1), "valet {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(needle),
        "valet {args:?}: {stderr:?} lacks {needle:?}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout for a failure");
}

async fn cli_registers_private_key_jwt_clients_and_refuses_bad_keys(app: TestApp) {
    app.create_contacts_api().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let key = TestKey::new("ES256");
    let good = write("good.json", &jwks(&[&key]));
    let created = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "signed",
            "--grant-type",
            "client_credentials",
            "--audience",
            CONTACTS,
            "--token-endpoint-auth-method",
            "private_key_jwt",
            "--jwks-file",
            &good,
            "--json",
        ])
        .await;
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(created["jwks"]["keys"][0]["kid"], key.kid(), "{created}");
    assert!(created.get("client_secret").is_none(), "{created}");
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    ok_json(client_credentials(&app, &key.sign(&claims(&app, &client_id))).await).await;

    // Bad input: exit 1, one line, nothing changed.
    let mut private = key.jwk.clone();
    private["d"] = json!("c2VjcmV0");
    let private = write("private.json", &json!({"keys": [private]}).to_string());
    let hmac_key = write(
        "oct.json",
        &json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}).to_string(),
    );
    let mut hs = key.jwk.clone();
    hs["alg"] = json!("HS256");
    let hs = write("hs.json", &json!({"keys": [hs]}).to_string());
    let empty = write("empty.json", r#"{"keys": []}"#);
    let not_json = write("bad.json", "{");
    let before = app
        .cli_json(&["client", "show", &client_id, "--json"])
        .await;
    for (args, needle) in [
        (vec!["--jwks-file", private.as_str()], "private member"),
        (vec!["--jwks-file", hmac_key.as_str()], "private member"),
        (vec!["--jwks-file", hs.as_str()], "alg"),
        (vec!["--jwks-file", empty.as_str()], "no keys"),
        (vec!["--jwks-file", not_json.as_str()], "not JSON"),
        (vec!["--jwks-file", "/nonexistent/jwks.json"], "--jwks-file"),
        (vec!["--jwks-uri", "http://keys.example.com/jwks"], "https"),
        (
            vec![
                "--token-endpoint-auth-method",
                "client_secret_basic",
                "--jwks-file",
                good.as_str(),
            ],
            "private_key_jwt",
        ),
        (
            vec!["--token-endpoint-auth-method", "client_secret_jwt"],
            "not one of",
        ),
    ] {
        let args = [&["client", "update", client_id.as_str()], args.as_slice()].concat();
        cli_fails(&app, &args, needle).await;
    }
    let create_without_keys = [
        "client",
        "create",
        "--name",
        "x",
        "--grant-type",
        "client_credentials",
        "--token-endpoint-auth-method",
        "private_key_jwt",
    ];
    cli_fails(&app, &create_without_keys, "--jwks").await;
    let after = app
        .cli_json(&["client", "show", &client_id, "--json"])
        .await;
    assert_eq!(before, after, "nothing changed");
    assert_eq!(
        app.cli_json(&["client", "list", "--json"])
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A jwks_uri instead, then back to a secret (shown once; the keys are dropped).
    let updated = app
        .cli_json(&[
            "client",
            "update",
            &client_id,
            "--jwks-uri",
            "https://keys.example.com/jwks",
            "--json",
        ])
        .await;
    assert_eq!(updated["jwks_uri"], "https://keys.example.com/jwks");
    assert!(updated.get("jwks").is_none(), "{updated}");
    let updated = app
        .cli_json(&[
            "client",
            "update",
            &client_id,
            "--token-endpoint-auth-method",
            "client_secret_basic",
            "--json",
        ])
        .await;
    assert_eq!(updated["token_endpoint_auth_method"], "client_secret_basic");
    assert!(updated["client_secret"].is_string(), "{updated}");
    assert!(updated.get("jwks_uri").is_none(), "{updated}");
}

async fn assertion_ids_expire_and_the_janitor_purges_them(app: TestApp) {
    let store = &app.state.store;
    let now = app.clock.now();
    let exp = valet::domain::UnixTime(now.0 + 60);
    assert!(
        store
            .use_client_assertion("c1", "j", exp, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_client_assertion("c1", "j", exp, now)
            .await
            .unwrap(),
        "replay"
    );
    assert!(
        store
            .use_client_assertion("c2", "j", exp, now)
            .await
            .unwrap(),
        "jti is per client"
    );
    // Once expired, the id may be used again (its old row taken over in the same write).
    let later = valet::domain::UnixTime(now.0 + 61);
    let exp2 = valet::domain::UnixTime(later.0 + 60);
    assert!(
        store
            .use_client_assertion("c1", "j", exp2, later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_client_assertion("c1", "j", exp2, later)
            .await
            .unwrap()
    );
    // The janitor removes expired rows only.
    let report = valet::janitor::run_once(store, &app.state.settings, later)
        .await
        .unwrap();
    let purged = report
        .iter()
        .find(|(kind, _)| *kind == valet::store::Purge::ClientAssertions)
        .map(|(_, n)| *n);
    assert_eq!(purged, Some(1), "c2's expired row");
    assert!(
        !store
            .use_client_assertion("c1", "j", exp2, later)
            .await
            .unwrap()
    );
}

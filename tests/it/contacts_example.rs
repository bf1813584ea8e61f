//! `examples/contacts_api.rs`, the resource-server example, run in-process against a live
//! Valet: scopes per route, RFC 6750 errors, and a JWKS refetch after `valet keys rotate`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::harness::{CONTACTS, TestApp};
use crate::store_tests;

#[path = "../../examples/contacts_api.rs"]
pub(crate) mod contacts_api;

store_tests!(contacts_api_checks_tokens_and_scopes);

/// The example's router on an ephemeral port, trusting `app`; returns its base URL.
async fn serve_contacts(app: &TestApp, refetch_interval: Duration) -> String {
    let verifier =
        contacts_api::Verifier::new(&app.base, CONTACTS, &app.url("/.well-known/jwks.json"))
            .refetch_interval(refetch_interval);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, contacts_api::router(verifier)).await });
    format!("http://{addr}")
}

async fn access_token(app: &TestApp, (id, secret): &(String, String), audience: &str) -> String {
    let response = app
        .token(
            Some((id, secret)),
            &[("grant_type", "client_credentials"), ("audience", audience)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// `token` with its header replaced (the signature no longer matches, which is the point).
fn with_header(token: &str, header: Value) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// The header and claims of `token` with the signature of `other`.
fn signed_by(token: &str, other: &str) -> String {
    let (message, _) = token.rsplit_once('.').unwrap();
    let (_, signature) = other.rsplit_once('.').unwrap();
    format!("{message}.{signature}")
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn contacts_api_checks_tokens_and_scopes(app: TestApp) {
    app.create_contacts_api().await;
    let reader = app.create_service_client("read:contacts").await;
    let writer = app
        .create_service_client("read:contacts create:contacts delete:contacts")
        .await;
    let read = access_token(&app, &reader, CONTACTS).await;
    let write = access_token(&app, &writer, CONTACTS).await;

    // `eager` refetches the JWKS for every unknown kid; `strict` at most once a minute.
    let eager = serve_contacts(&app, Duration::ZERO).await;
    let strict = serve_contacts(&app, Duration::from_secs(60)).await;
    let http = reqwest::Client::new();
    let contacts = format!("{eager}/contacts");

    // The right scope: 200 with the seeded contacts.
    let response = http.get(&contacts).bearer_auth(&read).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list[0]["name"], "Ada Lovelace");
    assert_eq!(list.as_array().unwrap().len(), 2);

    // A valid token without the route's scope: 403 naming the scope, before the body is read.
    let grace = json!({"name": "Grace Hopper", "email": "grace@example.com"});
    let response = http
        .post(&contacts)
        .bearer_auth(&read)
        .json(&grace)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let www = challenge(&response);
    assert!(
        www.starts_with(r#"Bearer error="insufficient_scope""#),
        "{www}"
    );
    assert!(www.contains(r#"scope="create:contacts""#), "{www}");
    let response = http
        .delete(format!("{contacts}/1"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(challenge(&response).contains(r#"scope="delete:contacts""#));

    // All three scopes: create, then delete (once).
    let response = http
        .post(&contacts)
        .bearer_auth(&write)
        .json(&grace)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["name"], "Grace Hopper");
    let grace_url = format!("{contacts}/{}", created["id"]);
    let list: Value = http
        .get(&contacts)
        .bearer_auth(&write)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    for expected in [204, 404] {
        let response = http
            .delete(&grace_url)
            .bearer_auth(&write)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }

    // No token: 401 with a bare challenge (RFC 6750 §3.1: no error code).
    let response = http.get(&contacts).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let www = challenge(&response);
    assert!(www.starts_with("Bearer"), "{www}");
    assert!(!www.contains("error="), "{www}");
    let response = http
        .get(&contacts)
        .basic_auth("someone", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "only Bearer is accepted");

    // Bad tokens: 401 invalid_token, each for its reason.
    let header = jsonwebtoken::decode_header(&read).unwrap();
    let real_kid = header.kid.clone().unwrap();
    let bad = [
        ("not-a-jwt".to_owned(), "malformed token"),
        (signed_by(&read, &write), "bad signature"),
        (
            with_header(
                &read,
                json!({"alg": "RS256", "typ": "JWT", "kid": real_kid}),
            ),
            "not an access token (typ)",
        ),
        (
            // The RSA public key used as an HMAC secret: refused, the key says RS256.
            with_header(
                &read,
                json!({"alg": "HS256", "typ": "at+jwt", "kid": real_kid}),
            ),
            "algorithm does not match the key",
        ),
        (
            with_header(
                &read,
                json!({"alg": "RS256", "typ": "at+jwt", "kid": "made-up"}),
            ),
            "unknown signing key",
        ),
    ];
    for (token, why) in bad {
        let response = http
            .get(format!("{strict}/contacts"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{why}");
        let www = challenge(&response);
        assert!(www.starts_with(r#"Bearer error="invalid_token""#), "{www}");
        assert!(
            www.contains(&format!(r#"error_description="{why}""#)),
            "{www}"
        );
    }

    // A genuine token for another API.
    app.cli_json(&[
        "api",
        "create",
        "--identifier",
        "https://other.example.com",
        "--name",
        "Other",
        "--scope",
        "read:contacts",
        "--json",
    ])
    .await;
    let other_client = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "other",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read:contacts",
            "--audience",
            "https://other.example.com",
            "--json",
        ])
        .await;
    let other_client = (
        other_client["client_id"].as_str().unwrap().to_owned(),
        other_client["client_secret"].as_str().unwrap().to_owned(),
    );
    let other = access_token(&app, &other_client, "https://other.example.com").await;
    let response = http
        .get(&contacts)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("token is for another API"));

    // Both verifiers have fetched the JWKS by now (for `strict`, just above).
    let rotated = app.cli_json(&["keys", "rotate", "--json"]).await;
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, real_kid);
    // Valet reloads its keys every second in tests; wait until it signs with the new one.
    let mut fresh = access_token(&app, &reader, CONTACTS).await;
    for _ in 0..50 {
        if kid(&fresh) == new_kid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        fresh = access_token(&app, &reader, CONTACTS).await;
    }
    assert_eq!(kid(&fresh), new_kid, "Valet signs with the new key");

    // The unknown kid makes `eager` fetch the JWKS again; `strict` fetched less than a minute
    // ago, so it does not, and refuses the token for now.
    let response = http
        .get(&contacts)
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the new key is fetched");
    let response = http.get(&contacts).bearer_auth(&read).send().await.unwrap();
    assert_eq!(response.status(), 200, "the retired key is still published");
    let response = http
        .get(format!("{strict}/contacts"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("unknown signing key"));
    let response = http
        .get(format!("{strict}/contacts"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "known keys keep working meanwhile");
}

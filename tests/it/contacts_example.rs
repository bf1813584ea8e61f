//! `examples/contacts_api.rs`, the resource-server example, run in-process against a live
//! Valet: scopes per route, RFC 6750 errors, and a JWKS refetch after `valet keys rotate`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use valet::domain::GrantType;

use crate::harness::fixtures::{Creds, NewClient, kid};
use crate::harness::{CONTACTS, TestApp};
use crate::store_tests;

#[path = "../../examples/contacts_api.rs"]
pub(crate) mod contacts_api;

store_tests!(contacts_api_checks_tokens_and_scopes);

/// The example's router on an ephemeral port, trusting `app`, refetching the JWKS at most
/// every `refetch_interval` (the example's default if `None`); returns its base URL.
pub(crate) async fn serve_contacts(app: &TestApp, refetch_interval: Option<Duration>) -> String {
    let mut verifier =
        contacts_api::Verifier::new(&app.base, CONTACTS, &app.url("/.well-known/jwks.json"));
    if let Some(interval) = refetch_interval {
        verifier = verifier.refetch_interval(interval);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, contacts_api::router(verifier)).await });
    format!("http://{addr}")
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
    let read = app.service_token(&reader, CONTACTS).await;
    let write = app.service_token(&writer, CONTACTS).await;

    // `eager` refetches the JWKS for every unknown kid; `strict` at most once a minute.
    let eager = serve_contacts(&app, Some(Duration::ZERO)).await;
    let strict = serve_contacts(&app, Some(Duration::from_secs(60))).await;
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
    let other_api = "https://other.example.com";
    app.create_api(other_api, "Other", "read:contacts").await;
    let other_client: Creds = app
        .create_confidential_client(
            NewClient::confidential("other", &[GrantType::ClientCredentials], "read:contacts")
                .without_audience()
                .audience(other_api),
        )
        .await;
    let other = app.service_token(&other_client, other_api).await;
    let response = http
        .get(&contacts)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("token is for another API"));

    // Both verifiers have fetched the JWKS by now (for `strict`, just above).
    let new_kid = app
        .rotate_signing_key(app.state.settings.tokens.signing_alg)
        .await;
    assert_ne!(new_kid, real_kid);
    app.reload_keys().await;
    let fresh = app.service_token(&reader, CONTACTS).await;
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

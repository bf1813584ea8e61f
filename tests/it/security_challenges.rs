//! Security review finding 17: every `401 invalid_client` carries a `WWW-Authenticate`
//! challenge (RFC 7235 §3.1: "The server generating a 401 response MUST send a
//! WWW-Authenticate header field containing at least one challenge"), whichever way the client
//! authenticated or failed to: `client_secret_post`, a secret missing, none at all; at
//! `/token`, `/introspect` and `/revoke` alike.

use serde_json::Value;

use crate::harness::fixtures::NewClient;
use crate::harness::{CONTACTS, TestApp};
use crate::store_tests;

store_tests!(every_invalid_client_401_carries_a_challenge);

const CALLBACK: &str = "https://app.example.com/callback";

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn every_invalid_client_401_carries_a_challenge(app: TestApp) {
    app.create_contacts_api().await;
    let service = app.create_service_client("read:contacts").await;
    let token = app.service_token(&service, CONTACTS).await;
    let id = service.id.clone();
    let public = app
        .create_web_client(NewClient::web(CALLBACK, "read:contacts").public())
        .await;

    let cc = [("grant_type", "client_credentials"), ("audience", CONTACTS)];
    for path in ["/token", "/introspect", "/revoke"] {
        let body: &[(&str, &str)] = if path == "/token" {
            &cc
        } else {
            &[("token", &token)]
        };
        let with = |extra: &[(&'static str, &str)]| -> Vec<(String, String)> {
            body.iter()
                .chain(extra)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let cases = [
            (
                "client_secret_post with a wrong secret",
                with(&[("client_id", &id), ("client_secret", "wrong")]),
            ),
            (
                "client_secret_post for an unknown client",
                with(&[("client_id", "no-such-client"), ("client_secret", "x")]),
            ),
            (
                "a confidential client without its secret",
                with(&[("client_id", &id)]),
            ),
            (
                "a public client sending a secret",
                with(&[("client_id", &public.client_id), ("client_secret", "x")]),
            ),
            ("no client authentication at all", with(&[])),
        ];
        for (what, form) in cases {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let response = post(&app, path, &form).await;
            if response.status() != 401 {
                // A public client may be refused otherwise at some endpoints (not a 401).
                assert_ne!(what, "client_secret_post with a wrong secret", "{path}");
                continue;
            }
            let challenge = response
                .headers()
                .get("www-authenticate")
                .unwrap_or_else(|| panic!("{path}, {what}: 401 without WWW-Authenticate"))
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                challenge.starts_with("Basic realm="),
                "{path}, {what}: {challenge}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_client", "{path}, {what}: {body}");
        }
    }
}

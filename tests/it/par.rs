//! Pushed authorization requests (RFC 9126), over HTTP on both stores: a push checked as
//! `/authorize` would check it, its errors as JSON (§2.3), the `request_uri` single use and
//! short-lived, and `--require-par` clients held to it (§6).

use std::time::Duration;

use serde_json::Value;
use valet::domain::GrantType;

use crate::harness::TestApp;
use crate::harness::fixtures::{CALLBACK, ClientAuth, NewClient, STATE, ok_json};
use crate::harness::flow::{WebClient, location, redirect_params};
use crate::oidc_provider::{sign_in, stock_params, verified_id_token};
use crate::store_tests;

store_tests!(
    a_pushed_request_runs_at_authorize,
    a_request_uri_is_single_use_short_lived_and_the_clients_own,
    push_errors_come_back_as_json,
    a_client_that_requires_par_must_push,
);

const URN: &str = "urn:ietf:params:oauth:request_uri:";

async fn par_client(app: &TestApp, require_par: bool) -> WebClient {
    let mut client = NewClient::web(CALLBACK, "")
        .without_audience()
        .grants(&[GrantType::AuthorizationCode]);
    if require_par {
        client = client.require_par();
    }
    app.create_web_client(client).await
}

async fn push(app: &TestApp, client: &WebClient, params: &[(&str, &str)]) -> reqwest::Response {
    let secret = client.secret.as_deref().expect("a confidential client");
    app.post_as("/par", ClientAuth::Basic(&client.client_id, secret), params)
        .await
}

/// A push that must succeed: its `request_uri`.
async fn pushed(app: &TestApp, client: &WebClient, params: &[(&str, &str)]) -> String {
    let response = push(app, client, params).await;
    assert_eq!(response.status(), 201, "RFC 9126 §2.2");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 60, "{body}");
    let uri = body["request_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with(URN), "{uri}");
    uri
}

/// The push's parameters as a stock client sends them (client_id comes from Basic).
fn pushed_params(client: &WebClient) -> Vec<(&str, &str)> {
    stock_params(client, &[])
        .into_iter()
        .filter(|(name, _)| *name != "client_id")
        .collect()
}

/// §4: `/authorize` with `client_id` and `request_uri` runs the pushed request through the
/// usual pages; the code redeems, and the ID token carries the pushed nonce.
async fn a_pushed_request_runs_at_authorize(app: TestApp) {
    app.create_alice().await;
    let client = par_client(&app, false).await;
    let request_uri = pushed(&app, &client, &pushed_params(&client)).await;
    // Parameters beside client_id and request_uri are not used (§4): this state is ignored.
    let redirect = sign_in(
        &app,
        &[
            ("client_id", client.client_id.as_str()),
            ("request_uri", request_uri.as_str()),
            ("state", "not-the-pushed-one"),
        ],
    )
    .await;
    assert_eq!(redirect["state"], STATE, "the pushed request's state");
    let body = ok_json(app.redeem(&client, &redirect["code"], None).await).await;
    let claims = verified_id_token(&app, &client, &body).await;
    assert_eq!(claims["nonce"], crate::oidc_provider::NONCE);
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["pushed_authorization_request_endpoint"],
        app.url("/par")
    );
}

/// A used, expired or other client's `request_uri` is a page, never a redirect.
async fn a_request_uri_is_single_use_short_lived_and_the_clients_own(app: TestApp) {
    app.create_alice().await;
    let client = par_client(&app, false).await;
    let other = par_client(&app, false).await;
    let authorize = |client_id: String, request_uri: String| {
        let app = &app;
        async move {
            app.authorize(&[("client_id", &client_id), ("request_uri", &request_uri)])
                .await
        }
    };
    let used = pushed(&app, &client, &pushed_params(&client)).await;
    let first = authorize(client.client_id.clone(), used.clone()).await;
    assert_eq!(first.status(), 303);
    let again = authorize(client.client_id.clone(), used).await;
    assert_eq!(again.status(), 400, "single use");
    assert!(again.headers().get("location").is_none());

    let stolen = pushed(&app, &client, &pushed_params(&client)).await;
    let response = authorize(other.client_id.clone(), stolen.clone()).await;
    assert_eq!(response.status(), 400, "another client's request_uri");
    // Another client's attempt does not spend it.
    assert_eq!(
        authorize(client.client_id.clone(), stolen.clone())
            .await
            .status(),
        303
    );
    // Nor is a pushed request a pending one: its stored name opens no login page.
    let id = stolen.trim_start_matches(URN);
    for name in [format!("par:{id}"), id.to_owned()] {
        let page = app.get(&format!("/login?request={name}")).await;
        assert_eq!(page.status(), 400, "{name}");
    }

    let late = pushed(&app, &client, &pushed_params(&client)).await;
    app.advance(Duration::from_secs(61));
    assert_eq!(
        authorize(client.client_id.clone(), late).await.status(),
        400,
        "expired after 60 s"
    );
    let unknown = format!("{URN}no-such-request");
    assert_eq!(
        authorize(client.client_id.clone(), unknown).await.status(),
        400
    );
}

/// §2.3: what `/authorize` would refuse is refused at push time, as JSON; and the push
/// itself has rules of its own (authentication, no `request_uri`, one client).
async fn push_errors_come_back_as_json(app: TestApp) {
    let client = par_client(&app, false).await;
    let base = pushed_params(&client);
    let with = |name: &'static str, value: &'static str| {
        let mut params: Vec<_> = base.iter().copied().filter(|(n, _)| *n != name).collect();
        params.push((name, value));
        params
    };
    for (params, error) in [
        (
            with("redirect_uri", "https://evil.example.com/cb"),
            "invalid_request",
        ),
        (
            with("response_type", "code code"),
            "unsupported_response_type",
        ),
        (with("scope", "openid offline_access"), "invalid_scope"),
        (
            with("request_uri", "urn:ietf:params:oauth:request_uri:x"),
            "invalid_request",
        ),
        (with("client_id", "someone-else"), "invalid_request"),
        (with("claims", "not json"), "invalid_request"),
    ] {
        let response = push(&app, &client, &params).await;
        assert_eq!(response.status(), 400, "{params:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{params:?}: {body}");
    }
    let response = app
        .post_as("/par", ClientAuth::Basic(&client.client_id, "wrong"), &base)
        .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let response = app.http.get(app.url("/par")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

/// §6: a client registered with `--require-par` is refused at `/authorize` without a pushed
/// request (back at its redirect URI, `invalid_request`), and works with one.
async fn a_client_that_requires_par_must_push(app: TestApp) {
    app.create_alice().await;
    let client = par_client(&app, true).await;
    let response = app.authorize(&stock_params(&client, &[])).await;
    let redirect = redirect_params(&location(&response));
    assert_eq!(redirect["error"], "invalid_request", "{redirect:?}");
    let request_uri = pushed(&app, &client, &pushed_params(&client)).await;
    let redirect = sign_in(
        &app,
        &[
            ("client_id", client.client_id.as_str()),
            ("request_uri", request_uri.as_str()),
        ],
    )
    .await;
    assert!(redirect.contains_key("code"), "{redirect:?}");
    let shown = app
        .cli_json(&["client", "show", &client.client_id, "--json"])
        .await;
    assert_eq!(shown["require_pushed_authorization_requests"], true);
}

//! Every way an authorization request can fail (RFC 6749 §4.1.2.1, §4.2.2.1; SPEC §7, §8):
//! an unknown client or a bad redirect URI is an error page and never a redirect; everything
//! after that goes back to the client with `error`, `state` and `iss`.

use std::collections::HashMap;

use valet::domain::GrantType;

use crate::harness::fixtures::{CALLBACK, NewClient, verify_with_jwks};
use crate::harness::flow::{Pkce, WebClient, location, redirect_params};
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::{backend_tests, store_tests};

store_tests!(
    unknown_client_and_bad_redirect_uri_are_pages_not_redirects,
    later_errors_are_redirected_with_state_and_iss,
    pkce_rules,
    implicit_flow_returns_a_token_in_the_fragment
);
backend_tests!(
    plain_pkce_when_the_config_allows_it,
    discovery_lists_the_authorization_endpoint
);

/// A web client of the Contacts API with read:contacts, changed by `adjust`.
async fn setup(app: &TestApp, adjust: impl FnOnce(NewClient) -> NewClient) -> WebClient {
    app.create_contacts_api().await;
    let client = adjust(NewClient::web(CALLBACK, "read:contacts"));
    app.create_web_client(client).await
}

/// The page for a request that must not be redirected: status 400, no Location, and the
/// words a developer needs.
async fn assert_error_page(app: &TestApp, params: &[(&str, &str)], expect: &[&str]) {
    let response = app.authorize(params).await;
    assert_eq!(response.status(), 400, "{params:?}");
    assert!(
        response.headers().get("location").is_none(),
        "never redirected: {params:?}"
    );
    let html = response.text().await.unwrap();
    for text in expect {
        assert!(
            html.contains(text),
            "page for {params:?} lacks `{text}`:\n{html}"
        );
    }
}

async fn unknown_client_and_bad_redirect_uri_are_pages_not_redirects(app: TestApp) {
    let client = setup(&app, |c| c).await;
    let id = client.client_id.as_str();
    assert_error_page(&app, &[("response_type", "code")], &["client_id"]).await;
    assert_error_page(
        &app,
        &[("client_id", "nobody"), ("redirect_uri", CALLBACK)],
        &["nobody"],
    )
    .await;
    assert_error_page(
        &app,
        &[
            ("client_id", id),
            ("redirect_uri", "https://evil.example/cb"),
            ("response_type", "code"),
        ],
        // Only what was sent: the client's name and registered URIs are not shown to anyone
        // holding its client_id (finding 14; this asserted CALLBACK on the page before).
        &["https://evil.example/cb"],
    )
    .await;
    // Near misses of the registered URI are not registered either.
    for near in [
        "https://app.example.com/callback/",
        "https://app.example.com/callback?x=1",
        "http://app.example.com/callback",
    ] {
        assert_error_page(
            &app,
            &[("client_id", id), ("redirect_uri", near)],
            &["redirect_uri sent"],
        )
        .await;
    }
    // A parameter sent twice cannot be trusted either.
    let response = app
        .get(&format!("/authorize?client_id={id}&client_id={id}"))
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());

    // Several registered and none sent: which one is meant cannot be guessed.
    let two = NewClient::web(CALLBACK, "read:contacts")
        .redirect_uri("https://app.example.com/other")
        .public();
    let two = app.create_web_client(two).await;
    assert_error_page(&app, &[("client_id", &two.client_id)], &["redirect_uri"]).await;
}

async fn redirected_error(app: &TestApp, params: &[(&str, &str)]) -> HashMap<String, String> {
    let response = app.authorize(params).await;
    assert_eq!(
        response.status(),
        303,
        "{params:?}: {}",
        response.text().await.unwrap()
    );
    let location = location(&response);
    assert!(location.starts_with(CALLBACK), "{location}");
    let params = redirect_params(&location);
    assert_eq!(params["iss"], app.base);
    assert!(params.contains_key("error_description"));
    assert!(!params.contains_key("code"));
    params
}

async fn later_errors_are_redirected_with_state_and_iss(app: TestApp) {
    let client = setup(&app, |c| c).await;
    let id = client.client_id.as_str();
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut p: Vec<(&str, &str)> = vec![
            ("client_id", id),
            ("redirect_uri", CALLBACK),
            ("state", "s1"),
            ("audience", CONTACTS),
        ];
        p.extend_from_slice(extra);
        p
    };
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (base(&[]), "invalid_request"),
        (
            base(&[("response_type", "code code")]),
            "unsupported_response_type",
        ),
        (base(&[("response_type", "token")]), "unauthorized_client"),
        (
            base(&[("response_type", "code"), ("scope", "delete:contacts")]),
            "invalid_scope",
        ),
        (
            base(&[("response_type", "code"), ("scope", "bad\"scope")]),
            "invalid_scope",
        ),
        (
            base(&[
                ("response_type", "code"),
                ("response_mode", "carrier-pigeon"),
            ]),
            "invalid_request",
        ),
        (
            base(&[
                ("response_type", "code"),
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ]),
            "invalid_request",
        ),
    ];
    for (params, expected) in cases {
        let got = redirected_error(&app, &params).await;
        assert_eq!(got["error"], expected, "{params:?}");
        assert_eq!(got["state"], "s1", "{params:?}");
    }
    let unknown_api = vec![
        ("client_id", id),
        ("response_type", "code"),
        ("audience", "https://nope.example"),
    ];
    assert_eq!(
        redirected_error(&app, &unknown_api).await["error"],
        "invalid_target"
    );
    let no_state = vec![
        ("client_id", id),
        ("response_type", "code"),
        ("scope", "delete:contacts"),
        ("audience", CONTACTS),
    ];
    assert!(
        !redirected_error(&app, &no_state)
            .await
            .contains_key("state")
    );
}

async fn pkce_rules(app: TestApp) {
    let public = setup(&app, NewClient::public).await;
    let id = public.client_id.as_str();
    let pkce = Pkce::new();
    let mut params = vec![
        ("client_id", id),
        ("response_type", "code"),
        ("audience", CONTACTS),
        ("state", "p"),
    ];
    let error = redirected_error(&app, &params).await;
    assert_eq!(error["error"], "invalid_request");
    assert!(error["error_description"].contains("PKCE"), "{error:?}");

    params.push(("code_challenge", &pkce.verifier));
    let error = redirected_error(&app, &params).await;
    assert_eq!(
        error["error"], "invalid_request",
        "no method means plain, refused by default"
    );
    params.push(("code_challenge_method", "plain"));
    assert_eq!(
        redirected_error(&app, &params).await["error"],
        "invalid_request"
    );

    let ok = vec![
        ("client_id", id),
        ("response_type", "code"),
        ("audience", CONTACTS),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
    ];
    let response = app.authorize(&ok).await;
    assert!(location(&response).starts_with("/login"), "S256 accepted");
}

async fn plain_pkce_when_the_config_allows_it(backend: Backend) {
    let app = harness::spawn_with(backend, |c| c.authorize.allow_plain_pkce = true).await;
    let public = setup(&app, NewClient::public).await;
    app.create_user("pat").await;
    let verifier = Pkce::new().verifier;
    let params = [
        ("client_id", public.client_id.as_str()),
        ("response_type", "code"),
        ("audience", CONTACTS),
        ("code_challenge", &verifier),
        ("code_challenge_method", "plain"),
    ];
    let code = app.sign_in_and_allow(&params, "pat").await["code"].clone();
    let response = app.redeem(&public, &code, Some(&verifier)).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn implicit_flow_returns_a_token_in_the_fragment(app: TestApp) {
    let client = setup(&app, |c| c.public().grants(&[GrantType::Implicit])).await;
    let user_id = app.create_user("quinn").await;
    let params = [
        ("client_id", client.client_id.as_str()),
        ("response_type", "token"),
        ("scope", "read:contacts"),
        ("audience", CONTACTS),
        ("state", "imp"),
    ];
    let fragment = app.sign_in_and_allow(&params, "quinn").await;
    assert_eq!(fragment["token_type"], "Bearer");
    assert_eq!(fragment["expires_in"], "3600");
    assert_eq!(fragment["scope"], "read:contacts");
    assert_eq!(fragment["state"], "imp");
    assert_eq!(fragment["iss"], app.base);
    assert!(!fragment.contains_key("refresh_token") && !fragment.contains_key("code"));
    let (_, claims) = verify_with_jwks(&app, &fragment["access_token"], CONTACTS).await;
    assert_eq!(claims["sub"], user_id.as_str());

    // The token must never travel in a query string.
    let mut query = params.to_vec();
    query.push(("response_mode", "query"));
    let response = app.authorize(&query).await;
    let location = location(&response);
    assert!(
        location.contains('#'),
        "errors for token requests go in the fragment: {location}"
    );
    assert_eq!(redirect_params(&location)["error"], "invalid_request");
    // A client without implicit cannot use it.
    let code_only = app
        .create_web_client(NewClient::web(CALLBACK, "read:contacts").public())
        .await;
    let params = [
        ("client_id", code_only.client_id.as_str()),
        ("response_type", "token"),
        ("audience", CONTACTS),
    ];
    assert_eq!(
        redirected_error(&app, &params).await["error"],
        "unauthorized_client"
    );
}

async fn discovery_lists_the_authorization_endpoint(backend: Backend) {
    let app = harness::spawn(backend).await;
    let doc = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(doc["authorization_endpoint"], app.url("/authorize"));
    assert_eq!(
        doc["response_types_supported"],
        serde_json::json!([
            "code",
            "token",
            "id_token",
            "id_token token",
            "code id_token",
            "code token",
            "code id_token token"
        ])
    );
    assert_eq!(
        doc["response_modes_supported"],
        serde_json::json!(["query", "fragment", "form_post"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&"authorization_code".into()) && grants.contains(&"implicit".into()));
}

//! The device authorization grant (RFC 8628) over HTTP on both stores: the device's endpoint
//! and its polling answers, the `/device` page through the real login and consent forms,
//! single use of the device code under parallel polls, and wrong user codes paid for on the
//! login limiter.

use std::time::Duration;

use serde_json::Value;
use valet::domain::GrantType;

use crate::harness::fixtures::{Creds, NewClient, PASSWORD, verify_with_jwks};
use crate::harness::flow::Form;
use crate::harness::{TestApp, basic_header};
use crate::store_tests;

store_tests!(
    a_device_signs_in_while_the_person_approves_in_a_browser,
    a_denied_device_sign_in_is_access_denied,
    an_expired_device_code_is_expired_token,
    an_approved_device_code_is_spent_by_one_poll,
    wrong_user_codes_cost_attempts_on_the_limiter,
    a_client_without_the_grant_is_refused,
);

pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub(crate) async fn device_client(app: &TestApp) -> Creds {
    let grants = [GrantType::DeviceCode, GrantType::RefreshToken];
    let client = NewClient::confidential("TV", &grants, "").without_audience();
    app.create_confidential_client(client).await
}

/// §3.1–§3.2: the device asks; the answer as JSON.
pub(crate) async fn start(app: &TestApp, client: &Creds, scope: &str) -> Value {
    let response = app
        .post_form(
            "/device_authorization",
            Some((&client.id, &client.secret)),
            &[("scope", scope)],
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// §3.4: one poll of the token endpoint.
pub(crate) async fn poll(app: &TestApp, client: &Creds, device_code: &str) -> (u16, Value) {
    let response = app
        .post_form(
            "/token",
            Some((&client.id, &client.secret)),
            &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The person at `verification_uri_complete`: the code is filled in; then sign in as alice and
/// answer `decision` on the consent page. The final page's text.
async fn approve_in_browser(app: &TestApp, started: &Value, decision: &str) -> String {
    let page = app
        .get(started["verification_uri_complete"].as_str().unwrap())
        .await;
    assert_eq!(page.status(), 200);
    let form = Form::parse(&page.text().await.unwrap());
    assert_eq!(form.get("user_code"), started["user_code"].as_str());
    let response = app.submit(&form).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "alice", PASSWORD).await;
    let consent = app.follow_to_page(response, "/consent").await;
    let response = app.decide(&consent, decision).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn a_device_signs_in_while_the_person_approves_in_a_browser(app: TestApp) {
    let alice = app.create_alice().await;
    let client = device_client(&app).await;
    let started = start(&app, &client, "openid profile offline_access").await;
    let user_code = started["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9, "{user_code}");
    assert!(
        user_code.chars().enumerate().all(|(i, c)| if i == 4 {
            c == '-'
        } else {
            "BCDFGHJKLMNPQRSTVWXZ".contains(c)
        }),
        "{user_code}"
    );
    assert_eq!(started["verification_uri"], app.url("/device"));
    assert_eq!(started["interval"], 5);
    assert_eq!(started["expires_in"], 600);
    let device_code = started["device_code"].as_str().unwrap();

    let (status, body) = poll(&app, &client, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (_, body) = poll(&app, &client, device_code).await;
    assert_eq!(body["error"], "slow_down", "polled again at once");

    let page = approve_in_browser(&app, &started, "allow").await;
    assert!(page.contains("Your device is connected"), "{page}");

    app.advance(Duration::from_secs(11));
    let (status, tokens) = poll(&app, &client, device_code).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let (_, claims) =
        verify_with_jwks(&app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["name"], "Alice Liddell");
    let info = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info.status(), 200);

    let (status, body) = poll(&app, &client, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "spent"
    );
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["device_authorization_endpoint"],
        app.url("/device_authorization")
    );
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == DEVICE_GRANT)
    );
}

async fn a_denied_device_sign_in_is_access_denied(app: TestApp) {
    app.create_alice().await;
    let client = device_client(&app).await;
    let started = start(&app, &client, "openid").await;
    let page = approve_in_browser(&app, &started, "deny").await;
    assert!(page.contains("denied"), "{page}");
    let (status, body) = poll(&app, &client, started["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied"))
    );
}

async fn an_expired_device_code_is_expired_token(app: TestApp) {
    app.create_alice().await;
    let client = device_client(&app).await;
    let started = start(&app, &client, "openid").await;
    app.advance(Duration::from_secs(601));
    let (status, body) = poll(&app, &client, started["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("expired_token"))
    );
    // The page no longer takes its code.
    let page = app
        .get(started["verification_uri_complete"].as_str().unwrap())
        .await;
    let form = Form::parse(&page.text().await.unwrap());
    let response = app.submit(&form).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not valid"));
    // Nor does another client's device code work for this one.
    let other = device_client(&app).await;
    let fresh = start(&app, &client, "openid").await;
    let (_, body) = poll(&app, &other, fresh["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "invalid_grant");
}

/// §3.5 and SPEC §10: an approved device code gives tokens to one poll only, however many
/// arrive together (one conditional write, on either store).
async fn an_approved_device_code_is_spent_by_one_poll(app: TestApp) {
    app.create_alice().await;
    let client = device_client(&app).await;
    let started = start(&app, &client, "openid").await;
    approve_in_browser(&app, &started, "allow").await;
    let device_code = started["device_code"].as_str().unwrap().to_owned();
    let statuses = crate::harness::fixtures::concurrent_statuses(10, || {
        let request = app
            .http
            .post(app.url("/token"))
            .header("authorization", basic_header(&client.id, &client.secret))
            .form(&[
                ("grant_type", DEVICE_GRANT),
                ("device_code", device_code.as_str()),
            ]);
        async move { request.send().await.unwrap() }
    })
    .await;
    crate::harness::fixtures::assert_exactly_one_succeeded(&statuses);
}

/// §5.1: a user code is short, so guesses are paid for: each wrong code is a failure of the
/// address on the login limiter, which then refuses (429) before looking codes up.
async fn wrong_user_codes_cost_attempts_on_the_limiter(app: TestApp) {
    let page = app.get("/device").await;
    let mut form = Form::parse(&page.text().await.unwrap());
    let mut refused = false;
    for i in 0..30 {
        form.set("user_code", &format!("BBBB-{:04}", i));
        let response = app.submit(&form).await;
        match response.status().as_u16() {
            400 => {}
            429 => {
                assert!(response.headers().get("retry-after").is_some());
                refused = true;
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused, "guessing user codes is throttled");
}

async fn a_client_without_the_grant_is_refused(app: TestApp) {
    let client = app
        .create_confidential_client(
            NewClient::confidential("svc", &[GrantType::ClientCredentials], "").without_audience(),
        )
        .await;
    let response = app
        .post_form(
            "/device_authorization",
            Some((&client.id, &client.secret)),
            &[("scope", "openid")],
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
}

//! OpenID Connect's `prompt` and `max_age` at `/authorize` (Core §3.1.2.1, §3.1.2.6): pages
//! forced or forbidden, and the errors a silent request gets instead of a page.

use std::time::Duration;

use crate::harness::TestApp;
use crate::harness::fixtures::{
    CALLBACK, NewClient, PASSWORD, STATE, code_params, verify_with_jwks,
};
use crate::harness::flow::{Form, Pkce, WebClient, location, redirect_params};
use crate::store_tests;

store_tests!(
    prompt_none_answers_instead_of_showing_a_page,
    prompt_login_and_max_age_ask_for_a_fresh_sign_in,
    prompt_consent_asks_again,
    login_hint_fills_in_the_username,
    bad_prompt_and_max_age_values_are_invalid_requests
);

async fn setup(app: &TestApp) -> WebClient {
    app.create_user("alice").await;
    app.create_contacts_api().await;
    app.create_web_client(NewClient::web(CALLBACK, "read:contacts openid"))
        .await
}

/// A code request for openid and read:contacts, with `extra` parameters.
fn params<'a>(
    client: &'a WebClient,
    pkce: &'a Pkce,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params = code_params(client, pkce, "openid read:contacts");
    params.extend_from_slice(extra);
    params
}

/// Where `/authorize` sends the browser: a page path, or the client's redirect.
async fn authorize_to(app: &TestApp, params: &[(&str, &str)]) -> String {
    let response = app.authorize(params).await;
    assert_eq!(response.status(), 303);
    location(&response)
}

fn callback_error(location: &str) -> String {
    assert!(location.starts_with(CALLBACK), "{location}");
    let params = redirect_params(location);
    assert_eq!(params["state"], STATE);
    params.get("error").cloned().unwrap_or_default()
}

async fn prompt_none_answers_instead_of_showing_a_page(app: TestApp) {
    let client = setup(&app).await;
    let pkce = Pkce::new();
    let silent = params(&client, &pkce, &[("prompt", "none")]);

    // Nobody signed in.
    assert_eq!(
        callback_error(&authorize_to(&app, &silent).await),
        "login_required"
    );
    // Signed in, but this client was never allowed.
    let consent = signed_in_without_consent(&app, &client, &pkce).await;
    assert_eq!(
        callback_error(&authorize_to(&app, &silent).await),
        "consent_required"
    );
    // Signed in and allowed: the code comes back with no page in between.
    let allowed = app.decide(&consent, "allow").await;
    assert_eq!(callback_error(&location(&allowed)), "");
    let location = authorize_to(&app, &silent).await;
    assert_eq!(callback_error(&location), "");
    let code = redirect_params(&location)["code"].clone();
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
}

/// Sign alice in through a request she then leaves at the consent page.
async fn signed_in_without_consent(app: &TestApp, client: &WebClient, pkce: &Pkce) -> String {
    let response = app.authorize(&params(client, pkce, &[])).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "alice", PASSWORD).await;
    app.follow_to_page(response, "/consent").await
}

/// Redeem `code`: the `auth_time` of the ID token, when alice last signed in.
async fn auth_time(app: &TestApp, client: &WebClient, pkce: &Pkce, code: &str) -> i64 {
    let body = app.redeemed(client, code, &pkce.verifier).await;
    let id_token = body["id_token"].as_str().unwrap();
    let (_, claims) = verify_with_jwks(app, id_token, &client.client_id).await;
    claims["auth_time"].as_i64().unwrap()
}

async fn prompt_login_and_max_age_ask_for_a_fresh_sign_in(app: TestApp) {
    let client = setup(&app).await;
    let pkce = Pkce::new();
    let first = app
        .sign_in_and_allow(&params(&client, &pkce, &[]), "alice")
        .await;
    let mut last_sign_in = auth_time(&app, &client, &pkce, &first["code"]).await;

    // The session is recent enough for max_age=3600: straight back.
    let young = authorize_to(&app, &params(&client, &pkce, &[("max_age", "3600")])).await;
    assert!(young.starts_with(CALLBACK), "{young}");

    for extra in [("prompt", "login"), ("max_age", "0")] {
        // Clocks count whole seconds: let the last sign-in become the past.
        app.advance(Duration::from_secs(2));
        let to_login = authorize_to(&app, &params(&client, &pkce, &[extra])).await;
        assert!(to_login.starts_with("/login"), "{extra:?}: {to_login}");
        // The login page itself does not wave the old session through.
        let page = app.get(&to_login).await;
        assert_eq!(page.status(), 200, "{extra:?}");
        let login = page.text().await.unwrap();
        assert!(login.contains("name=\"password\""), "{extra:?}");
        let response = app.sign_in(&login, "alice", PASSWORD).await;
        assert_eq!(response.status(), 303);
        let back = location(&response);
        assert!(back.starts_with(CALLBACK), "consent is remembered: {back}");
        let code = redirect_params(&back)["code"].clone();
        let auth_time = auth_time(&app, &client, &pkce, &code).await;
        assert!(auth_time > last_sign_in, "{extra:?}: a new sign-in");
        last_sign_in = auth_time;
    }
    // prompt=none with max_age=0: a silent request cannot sign anyone in.
    app.advance(Duration::from_secs(2));
    let location = authorize_to(
        &app,
        &params(&client, &pkce, &[("prompt", "none"), ("max_age", "0")]),
    )
    .await;
    assert_eq!(callback_error(&location), "login_required");
}

async fn prompt_consent_asks_again(app: TestApp) {
    let client = setup(&app).await;
    let pkce = Pkce::new();
    app.sign_in_and_allow(&params(&client, &pkce, &[]), "alice")
        .await;
    let remembered = authorize_to(&app, &params(&client, &pkce, &[])).await;
    assert!(remembered.starts_with(CALLBACK), "{remembered}");
    let to_consent = authorize_to(&app, &params(&client, &pkce, &[("prompt", "consent")])).await;
    assert!(to_consent.starts_with("/consent"), "{to_consent}");
    let page = app.get(&to_consent).await;
    assert_eq!(page.status(), 200);
    let consent = page.text().await.unwrap();
    assert!(consent.contains("read:contacts"));
    let response = app.decide(&consent, "deny").await;
    assert_eq!(callback_error(&location(&response)), "access_denied");
}

async fn bad_prompt_and_max_age_values_are_invalid_requests(app: TestApp) {
    let client = setup(&app).await;
    let pkce = Pkce::new();
    for extra in [
        ("prompt", "none login"),
        ("prompt", "bogus"),
        ("max_age", "-1"),
        ("max_age", "soon"),
    ] {
        let location = authorize_to(&app, &params(&client, &pkce, &[extra])).await;
        assert_eq!(callback_error(&location), "invalid_request", "{extra:?}");
    }
}

async fn login_hint_fills_in_the_username(app: TestApp) {
    let client = setup(&app).await;
    let pkce = Pkce::new();
    let hinted = |hint| params(&client, &pkce, &[("login_hint", hint)]);
    let to_login = authorize_to(&app, &hinted("alice")).await;
    let page = app.get(&to_login).await.text().await.unwrap();
    assert_eq!(Form::parse(&page).get("username"), Some("alice"));

    // Markup in a hint is text, never markup.
    let evil = r#""><script>alert(1)</script>"#;
    let to_login = authorize_to(&app, &hinted(evil)).await;
    let page = app.get(&to_login).await.text().await.unwrap();
    assert_eq!(Form::parse(&page).get("username"), Some(evil));
    assert!(!page.contains("<script>alert"), "{page}");
}

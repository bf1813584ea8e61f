//! OpenID Provider conformance (issue 12), one test per module of the OpenID Foundation's OP
//! test plans, named after it. Each drives Valet as a stock relying party does: nothing but
//! `client_id`, `redirect_uri`, `response_type`, `scope` (OpenID scopes only), `state` and
//! `nonce`, from a client registered with no scopes and no APIs. Every ID token is checked
//! as the suite checks it (signature against the JWKS, exact `iss`, `aud`, `nonce`, times).

use std::collections::HashMap;

use serde_json::Value;
use valet::domain::GrantType;

use crate::harness::fixtures::{CALLBACK, NewClient, PASSWORD, STATE, ok_json, verify_with_jwks};
use crate::harness::flow::{WebClient, location, redirect_params};
use crate::harness::{CONTACTS, TestApp};
use crate::store_tests;

store_tests!(
    oidcc_server,
    oidcc_prompt_login,
    oidcc_max_age_0_is_prompt_login,
    oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported,
    oidcc_config,
    an_api_scope_without_an_audience_is_still_refused,
    oidcc_hybrid_code_id_token,
    oidcc_hybrid_code_token,
    oidcc_hybrid_code_id_token_token,
    hybrid_types_need_both_grants,
    oidcc_claims_essential,
    a_malformed_claims_parameter_is_invalid_request,
    an_id_token_hint_for_another_user_is_login_required,
    claims_asked_for_by_name_need_consent_as_their_scope,
);

pub(crate) const NONCE: &str = "n-0S6_WzA2Mj";

/// A confidential client as an operator registers a stock app: a name, a redirect URI,
/// nothing else (the CLI's defaults: the code grant, no scopes, no APIs).
pub(crate) async fn stock_client(app: &TestApp) -> WebClient {
    let client = NewClient::web(CALLBACK, "")
        .without_audience()
        .grants(&[GrantType::AuthorizationCode, GrantType::RefreshToken]);
    app.create_web_client(client).await
}

/// What a stock relying party sends for a sign-in, plus `extra`.
pub(crate) fn stock_params<'a>(
    client: &'a WebClient,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", "openid profile email"),
        ("state", STATE),
        ("nonce", NONCE),
    ];
    params.extend_from_slice(extra);
    params
}

/// `/authorize` through the login and consent pages as alice; the redirect's parameters.
pub(crate) async fn sign_in(app: &TestApp, params: &[(&str, &str)]) -> HashMap<String, String> {
    let response = app.authorize(params).await;
    let mut response = if location(&response).starts_with("/login") {
        let login = app.follow_to_page(response, "/login").await;
        app.sign_in(&login, "alice", PASSWORD).await
    } else {
        response
    };
    if location(&response).starts_with("/consent") {
        let consent = app.follow_to_page(response, "/consent").await;
        response = app.decide(&consent, "allow").await;
    }
    let next = location(&response);
    assert!(next.starts_with(CALLBACK), "back to the client, got {next}");
    redirect_params(&next)
}

/// The ID token of a token response, verified as a relying party verifies it.
pub(crate) async fn verified_id_token(app: &TestApp, client: &WebClient, body: &Value) -> Value {
    let id_token = body["id_token"].as_str().expect("an id_token");
    let (_, claims) = verify_with_jwks(app, id_token, &client.client_id).await;
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["aud"], client.client_id.as_str());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(iat < exp, "{claims}");
    assert!(claims["auth_time"].as_i64().unwrap() <= iat, "{claims}");
    claims
}

/// oidcc-server: the plain code flow of a stock client. The access token is for the UserInfo
/// endpoint alone (SPEC §5): it reads the claims there, and an API's client that introspects
/// it learns nothing.
async fn oidcc_server(app: TestApp) {
    let alice = app.create_alice().await;
    app.create_contacts_api().await;
    let client = stock_client(&app).await;
    let redirect = sign_in(&app, &stock_params(&client, &[])).await;
    assert_eq!(redirect["state"], STATE);
    assert_eq!(redirect["iss"], app.base);
    let body = ok_json(app.redeem(&client, &redirect["code"], None).await).await;

    let claims = verified_id_token(&app, &client, &body).await;
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["nonce"], NONCE);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(body["scope"], "email openid profile");

    let access_token = body["access_token"].as_str().unwrap();
    let userinfo = app.url("/userinfo");
    let (_, access) = verify_with_jwks(&app, access_token, &userinfo).await;
    assert_eq!(access["aud"], userinfo.as_str(), "{access}");
    let response = app
        .http
        .get(&userinfo)
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let profile = ok_json(response).await;
    assert_eq!(profile["sub"], alice.as_str());
    assert_eq!(profile["email"], "alice@example.com");
    let contacts = app.create_service_client("read:contacts").await;
    app.assert_inactive(&contacts, access_token, "a UserInfo token, asked by an API")
        .await;
}

/// oidcc-prompt-login: `prompt=login` always shows the login page, even right after a
/// sign-in in the same second, and the new sign-in then completes the request.
async fn oidcc_prompt_login(app: TestApp) {
    app.create_alice().await;
    let client = stock_client(&app).await;
    sign_in(&app, &stock_params(&client, &[])).await;
    let params = stock_params(&client, &[("prompt", "login")]);
    let response = app.authorize(&params).await;
    assert!(
        location(&response).starts_with("/login"),
        "asked to sign in again"
    );
    let redirect = sign_in(&app, &params).await;
    let body = ok_json(app.redeem(&client, &redirect["code"], None).await).await;
    verified_id_token(&app, &client, &body).await;
}

/// `max_age=0` is `prompt=login` (Core §3.1.2.1, errata): no sign-in made before the request,
/// however recent, satisfies it.
async fn oidcc_max_age_0_is_prompt_login(app: TestApp) {
    app.create_alice().await;
    let client = stock_client(&app).await;
    sign_in(&app, &stock_params(&client, &[])).await;
    let params = stock_params(&client, &[("max_age", "0")]);
    let response = app.authorize(&params).await;
    assert!(
        location(&response).starts_with("/login"),
        "max_age=0 asks again"
    );
    let redirect = sign_in(&app, &params).await;
    assert!(redirect.contains_key("code"), "{redirect:?}");
}

/// oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported: request
/// objects are refused with the codes Core §3.1.2.6 names, back at the client with `state`,
/// before any page is shown.
async fn oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    app: TestApp,
) {
    let client = stock_client(&app).await;
    for (name, value, error) in [
        (
            "request",
            "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.",
            "request_not_supported",
        ),
        ("request_uri", "urn:example:x", "request_uri_not_supported"),
    ] {
        let response = app
            .authorize(&stock_params(&client, &[(name, value)]))
            .await;
        assert_eq!(response.status(), 303, "{name}");
        let next = location(&response);
        assert!(next.starts_with(CALLBACK), "{name}: {next}");
        let redirect = redirect_params(&next);
        assert_eq!(redirect["error"], error);
        assert_eq!(redirect["state"], STATE);
    }
}

/// oidcc-config: discovery says what Valet supports, including what it does not (request
/// objects), so that a relying party does not have to guess from defaults.
async fn oidcc_config(app: TestApp) {
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["issuer"], app.base);
    let scopes: Vec<&str> = discovery["scopes_supported"]
        .as_array()
        .expect("scopes_supported")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for scope in [
        "openid",
        "profile",
        "email",
        "address",
        "phone",
        "offline_access",
    ] {
        assert!(scopes.contains(&scope), "{scope} in {scopes:?}");
    }
    assert_eq!(discovery["request_parameter_supported"], false);
    assert_eq!(discovery["request_uri_parameter_supported"], false);
    assert_eq!(discovery["userinfo_endpoint"], app.url("/userinfo"));
    for field in [
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "claims_supported",
    ] {
        assert!(discovery[field].is_array(), "{field}: {discovery}");
    }
}

/// The UserInfo audience is for sign-ins only: an API scope with no API named is refused as
/// before, and naming an API still works for a client allowed it.
async fn an_api_scope_without_an_audience_is_still_refused(app: TestApp) {
    app.create_alice().await;
    app.create_contacts_api().await;
    let client = app
        .create_web_client(NewClient::web(CALLBACK, "read:contacts"))
        .await;
    let params = stock_params(&client, &[]);
    let mut params: Vec<_> = params.into_iter().filter(|(k, _)| *k != "scope").collect();
    params.push(("scope", "openid read:contacts"));
    let response = app.authorize(&params).await;
    let redirect = redirect_params(&location(&response));
    assert_eq!(redirect["error"], "invalid_request", "{redirect:?}");
    params.push(("audience", CONTACTS));
    let redirect = sign_in(&app, &params).await;
    assert!(redirect.contains_key("code"), "{redirect:?}");
}

/// The left half of SHA-256 of `value`, base64url: `at_hash` and `c_hash` for RS256.
fn half_hash(value: &str) -> String {
    use base64::Engine;
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
}

/// A stock client allowed the hybrid response types (both grants, SPEC §9).
async fn hybrid_client(app: &TestApp) -> WebClient {
    let client = NewClient::web(CALLBACK, "")
        .without_audience()
        .grants(&[GrantType::AuthorizationCode, GrantType::Implicit]);
    app.create_web_client(client).await
}

/// A hybrid sign-in (Core §3.3): the code and the tokens `response_type` asks for arrive in
/// the fragment; a front-channel ID token binds the code (`c_hash`) and an access token
/// (`at_hash`); the code then redeems as in the code flow, for the same user.
async fn hybrid(app: &TestApp, response_type: &str) {
    let alice = app.create_alice().await;
    let client = hybrid_client(app).await;
    let params = stock_params(&client, &[]);
    let mut params: Vec<_> = params
        .into_iter()
        .filter(|(k, _)| *k != "response_type")
        .collect();
    params.push(("response_type", response_type));
    let response = app.authorize(&params).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "alice", PASSWORD).await;
    let consent = app.follow_to_page(response, "/consent").await;
    let response = app.decide(&consent, "allow").await;
    let next = location(&response);
    assert!(
        next.starts_with(&format!("{CALLBACK}#")),
        "in the fragment: {next}"
    );
    let front = redirect_params(&next);
    assert_eq!(front["state"], STATE);
    let code = front.get("code").expect("a code").clone();
    let wants = |part: &str| response_type.split(' ').any(|p| p == part);
    assert_eq!(
        front.contains_key("access_token"),
        wants("token"),
        "{front:?}"
    );
    assert_eq!(
        front.contains_key("id_token"),
        wants("id_token"),
        "{front:?}"
    );
    if let Some(id_token) = front.get("id_token") {
        let (_, claims) = verify_with_jwks(app, id_token, &client.client_id).await;
        assert_eq!(claims["iss"], app.base);
        assert_eq!(claims["sub"], alice.as_str());
        assert_eq!(claims["nonce"], NONCE);
        assert_eq!(claims["c_hash"], half_hash(&code), "{claims}");
        match front.get("access_token") {
            Some(token) => assert_eq!(claims["at_hash"], half_hash(token)),
            None => assert!(claims.get("at_hash").is_none(), "{claims}"),
        }
    }
    if let Some(token) = front.get("access_token") {
        assert_eq!(front["token_type"], "Bearer");
        let response = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(token)
            .send()
            .await;
        assert_eq!(ok_json(response.unwrap()).await["sub"], alice.as_str());
    }
    let body = ok_json(app.redeem(&client, &code, None).await).await;
    let claims = verified_id_token(app, &client, &body).await;
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["nonce"], NONCE);
    assert!(
        claims.get("c_hash").is_none(),
        "no code in a token response"
    );
}

/// oidcc-server in the hybrid plan, `code id_token`.
async fn oidcc_hybrid_code_id_token(app: TestApp) {
    hybrid(&app, "code id_token").await;
}

/// oidcc-server in the hybrid plan, `code token`.
async fn oidcc_hybrid_code_token(app: TestApp) {
    hybrid(&app, "code token").await;
}

/// oidcc-server in the hybrid plan, `code id_token token` (sent in another order).
async fn oidcc_hybrid_code_id_token_token(app: TestApp) {
    hybrid(&app, "id_token code token").await;
}

/// A client with only the code grant may not use the hybrid types (`unauthorized_client`),
/// and discovery lists all seven response types.
async fn hybrid_types_need_both_grants(app: TestApp) {
    let client = stock_client(&app).await;
    let params = stock_params(&client, &[]);
    let mut params: Vec<_> = params
        .into_iter()
        .filter(|(k, _)| *k != "response_type")
        .collect();
    params.push(("response_type", "code id_token"));
    let response = app.authorize(&params).await;
    let redirect = redirect_params(&location(&response));
    assert_eq!(redirect["error"], "unauthorized_client", "{redirect:?}");
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    let types = discovery["response_types_supported"].as_array().unwrap();
    for wanted in [
        "code id_token",
        "code token",
        "code id_token token",
        "id_token token",
    ] {
        assert!(types.iter().any(|t| t == wanted), "{wanted} in {types:?}");
    }
}

/// A stock request whose `scope` is replaced by `scope` and which adds `extra`.
fn with_scope<'a>(
    client: &'a WebClient,
    scope: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params: Vec<_> = stock_params(client, extra)
        .into_iter()
        .filter(|(k, _)| *k != "scope")
        .collect();
    params.push(("scope", scope));
    params
}

/// oidcc-claims-essential: the `claims` parameter (Core §5.5) releases the claims it names,
/// each where it asks (ID token or UserInfo), beyond what `scope=openid` alone releases.
async fn oidcc_claims_essential(app: TestApp) {
    let alice = app.create_alice().await;
    let client = stock_client(&app).await;
    let claims =
        r#"{"userinfo":{"name":{"essential":true},"nickname":null},"id_token":{"email":null}}"#;
    let params = with_scope(&client, "openid", &[("claims", claims)]);
    let redirect = sign_in(&app, &params).await;
    let body = ok_json(app.redeem(&client, &redirect["code"], None).await).await;
    let id = verified_id_token(&app, &client, &body).await;
    assert_eq!(id["sub"], alice.as_str());
    assert_eq!(id["email"], "alice@example.com", "{id}");
    assert!(
        id.get("name").is_none(),
        "name was asked of UserInfo only: {id}"
    );

    let response = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let info = ok_json(response).await;
    assert_eq!(info["name"], "Alice Liddell", "{info}");
    assert!(
        info.get("email").is_none(),
        "email was asked of the ID token only: {info}"
    );
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["claims_parameter_supported"], true);
}

/// A `claims` parameter that is not the JSON object §5.5 describes is refused at the client.
async fn a_malformed_claims_parameter_is_invalid_request(app: TestApp) {
    let client = stock_client(&app).await;
    for bad in ["not json", "[1]", r#"{"userinfo":["name"]}"#] {
        let params = with_scope(&client, "openid", &[("claims", bad)]);
        let response = app.authorize(&params).await;
        let redirect = redirect_params(&location(&response));
        assert_eq!(redirect["error"], "invalid_request", "{bad}: {redirect:?}");
        assert_eq!(redirect["state"], STATE);
    }
}

/// Core §3.1.2.1/§3.1.2.6: with `prompt=none`, an `id_token_hint` naming another user than the
/// browser's session is `login_required`; a hint that does not verify is `invalid_request`.
async fn an_id_token_hint_for_another_user_is_login_required(mut app: TestApp) {
    app.create_alice().await;
    app.create_user("bob").await;
    let client = stock_client(&app).await;
    let redirect = sign_in(&app, &stock_params(&client, &[])).await;
    let body = ok_json(app.redeem(&client, &redirect["code"], None).await).await;
    let alices_hint = body["id_token"].as_str().unwrap().to_owned();

    // Another browser, signed in as bob.
    app.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let response = app.authorize(&stock_params(&client, &[])).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "bob", PASSWORD).await;
    let consent = app.follow_to_page(response, "/consent").await;
    app.decide(&consent, "allow").await;

    let silent = stock_params(
        &client,
        &[("prompt", "none"), ("id_token_hint", &alices_hint)],
    );
    let redirect = redirect_params(&location(&app.authorize(&silent).await));
    assert_eq!(redirect["error"], "login_required", "{redirect:?}");
    let mut forged = alices_hint.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let bad = stock_params(&client, &[("prompt", "none"), ("id_token_hint", &forged)]);
    let redirect = redirect_params(&location(&app.authorize(&bad).await));
    assert_eq!(redirect["error"], "invalid_request", "{redirect:?}");
}

/// A claim asked for by name (`claims`, Core §5.5) is consented to as its scope would be: a
/// client the person allowed only `openid` gets `consent_required` under `prompt=none` when
/// it asks for the email by name, and the consent page then names `email`.
async fn claims_asked_for_by_name_need_consent_as_their_scope(app: TestApp) {
    app.create_alice().await;
    let client = stock_client(&app).await;
    sign_in(&app, &with_scope(&client, "openid", &[])).await;
    let claims = r#"{"id_token":{"email":null}}"#;
    let silent = with_scope(&client, "openid", &[("claims", claims), ("prompt", "none")]);
    let redirect = redirect_params(&location(&app.authorize(&silent).await));
    assert_eq!(redirect["error"], "consent_required", "{redirect:?}");
    let asked = with_scope(&client, "openid", &[("claims", claims)]);
    let response = app.authorize(&asked).await;
    let consent = app.follow_to_page(response, "/consent").await;
    assert!(
        consent.contains("email"),
        "the page names the email: {consent}"
    );
}

//! OpenID Provider conformance, continued: the modules of the OpenID Foundation's Basic,
//! Implicit, Form Post and Config OP test plans that `oidc_provider.rs`, `oidc_scopes.rs` and
//! `oidc_logout.rs` do not already cover, one test per module and variant, named after the
//! module (`oidcc-max-age-1` → `oidcc_max_age_1`). A test of the Implicit or Form Post plan
//! adds its variant to the name: `_id_token`, `_id_token_token`, `_form_post`.
//!
//! Each drives Valet as the suite does: a stock client registered with no scopes and no API,
//! a request of `scope=openid profile email` with `state` and `nonce` and no audience, alice
//! on the real login and consent pages, and every ID token checked by
//! [`checked_id_token`], the checks the suite runs on each one.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scraper::{Html, Selector};
use serde_json::{Value, json};
use valet::domain::{GrantType, SigningAlg};

use crate::harness::TestApp;
use crate::harness::fixtures::{
    CALLBACK, NewClient, PASSWORD, STATE, error_400, ok_json, verify_with_jwks,
};
use crate::harness::flow::{Form, Pkce, WebClient, location};
use crate::oidc_provider::{NONCE, stock_client, stock_params};
use crate::store_tests;

// ---------------------------------------------------------------------------------------
// The plans' variants

/// The response types of the Basic and Implicit plans (the hybrid ones are tested elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseType {
    Code,
    IdToken,
    IdTokenToken,
}

impl ResponseType {
    fn as_str(self) -> &'static str {
        match self {
            ResponseType::Code => "code",
            ResponseType::IdToken => "id_token",
            ResponseType::IdTokenToken => "id_token token",
        }
    }
}

/// What a plan runs its modules with: a response type, and whether the answer comes by
/// `response_mode=form_post` (the Form Post plans) or by the default mode.
#[derive(Debug, Clone, Copy)]
struct Variant {
    response_type: ResponseType,
    form_post: bool,
}

/// The Basic plan.
const CODE: Variant = Variant {
    response_type: ResponseType::Code,
    form_post: false,
};
/// The Implicit plan, `response_type=id_token`.
const ID_TOKEN: Variant = Variant {
    response_type: ResponseType::IdToken,
    form_post: false,
};
/// The Implicit plan, `response_type=id_token token`.
const ID_TOKEN_TOKEN: Variant = Variant {
    response_type: ResponseType::IdTokenToken,
    form_post: false,
};
/// The Form Post Basic plan.
const CODE_FORM_POST: Variant = Variant {
    response_type: ResponseType::Code,
    form_post: true,
};
/// The Form Post Implicit plan, `response_type=id_token`.
const ID_TOKEN_FORM_POST: Variant = Variant {
    response_type: ResponseType::IdToken,
    form_post: true,
};
/// The Form Post Implicit plan, `response_type=id_token token`.
const ID_TOKEN_TOKEN_FORM_POST: Variant = Variant {
    response_type: ResponseType::IdTokenToken,
    form_post: true,
};

/// `name: body(VARIANT);` makes the test `name`, on both stores, that runs the module `body`
/// in `VARIANT`.
macro_rules! variant_tests {
    ($($(#[$doc:meta])* $name:ident: $body:ident($variant:expr);)*) => {
        $(
            $(#[$doc])*
            async fn $name(app: TestApp) {
                $body(&app, $variant).await;
            }
        )*
        store_tests!($($name),*);
    };
}

// ---------------------------------------------------------------------------------------
// The tests

store_tests!(
    oidcc_server_client_secret_post,
    oidcc_idtoken_signature,
    oidcc_ensure_request_without_nonce_succeeds_for_code_flow,
    oidcc_ensure_other_scope_order_succeeds,
    oidcc_login_hint,
    oidcc_codereuse,
    oidcc_codereuse_30seconds,
    oidcc_ensure_post_request_succeeds,
    oidcc_refresh_token,
    oidcc_ensure_request_with_valid_pkce_succeeds,
    a_public_client_must_use_pkce,
    oidcc_response_type_missing,
    oidcc_discovery_endpoint_verification,
);

variant_tests! {
    /// oidcc-userinfo-get (Basic plan).
    oidcc_userinfo_get: userinfo_get(CODE);
    /// oidcc-userinfo-post-header (Basic plan).
    oidcc_userinfo_post_header: userinfo_post_header(CODE);
    /// oidcc-userinfo-post-body (Basic plan).
    oidcc_userinfo_post_body: userinfo_post_body(CODE);
    /// oidcc-display-page (Basic plan).
    oidcc_display_page: display_page(CODE);
    /// oidcc-display-popup (Basic plan).
    oidcc_display_popup: display_popup(CODE);
    /// oidcc-prompt-none-not-logged-in (Basic plan).
    oidcc_prompt_none_not_logged_in: prompt_none_not_logged_in(CODE);
    /// oidcc-prompt-none-logged-in (Basic plan).
    oidcc_prompt_none_logged_in: prompt_none_logged_in(CODE);
    /// oidcc-max-age-1 (Basic plan).
    oidcc_max_age_1: max_age_1(CODE);
    /// oidcc-max-age-10000 (Basic plan).
    oidcc_max_age_10000: max_age_10000(CODE);
    /// oidcc-ensure-request-with-unknown-parameter-succeeds (Basic plan).
    oidcc_ensure_request_with_unknown_parameter_succeeds: unknown_parameter(CODE);
    /// oidcc-id-token-hint (Basic plan).
    oidcc_id_token_hint: id_token_hint(CODE);
    /// oidcc-ui-locales (Basic plan).
    oidcc_ui_locales: ui_locales(CODE);
    /// oidcc-claims-locales (Basic plan).
    oidcc_claims_locales: claims_locales(CODE);
    /// oidcc-ensure-request-with-acr-values-succeeds (Basic plan).
    oidcc_ensure_request_with_acr_values_succeeds: acr_values(CODE);
    /// oidcc-ensure-registered-redirect-uri (Basic plan).
    oidcc_ensure_registered_redirect_uri: registered_redirect_uri(CODE);
    /// oidcc-ensure-redirect-uri-in-authorization-request (Basic plan).
    oidcc_ensure_redirect_uri_in_authorization_request: redirect_uri_in_request(CODE);

    /// oidcc-server (Implicit plan, `id_token`).
    oidcc_server_id_token: server(ID_TOKEN);
    /// oidcc-server (Implicit plan, `id_token token`).
    oidcc_server_id_token_token: server(ID_TOKEN_TOKEN);
    /// oidcc-ensure-request-without-nonce-fails (Implicit plan, `id_token`).
    oidcc_ensure_request_without_nonce_fails_id_token: request_without_nonce_fails(ID_TOKEN);
    /// oidcc-ensure-request-without-nonce-fails (Implicit plan, `id_token token`).
    oidcc_ensure_request_without_nonce_fails_id_token_token:
        request_without_nonce_fails(ID_TOKEN_TOKEN);
    /// oidcc-userinfo-get (Implicit plan, `id_token token`).
    oidcc_userinfo_get_id_token_token: userinfo_get(ID_TOKEN_TOKEN);
    /// oidcc-userinfo-post-body (Implicit plan, `id_token token`).
    oidcc_userinfo_post_body_id_token_token: userinfo_post_body(ID_TOKEN_TOKEN);
    /// oidcc-prompt-none-not-logged-in (Implicit plan, `id_token`).
    oidcc_prompt_none_not_logged_in_id_token: prompt_none_not_logged_in(ID_TOKEN);
    /// oidcc-prompt-none-logged-in (Implicit plan, `id_token token`).
    oidcc_prompt_none_logged_in_id_token_token: prompt_none_logged_in(ID_TOKEN_TOKEN);
    /// oidcc-max-age-1 (Implicit plan, `id_token`).
    oidcc_max_age_1_id_token: max_age_1(ID_TOKEN);
    /// oidcc-id-token-hint (Implicit plan, `id_token token`).
    oidcc_id_token_hint_id_token_token: id_token_hint(ID_TOKEN_TOKEN);
    /// oidcc-ensure-registered-redirect-uri (Implicit plan, `id_token`).
    oidcc_ensure_registered_redirect_uri_id_token: registered_redirect_uri(ID_TOKEN);

    /// oidcc-server (Form Post Basic plan).
    oidcc_server_form_post: server(CODE_FORM_POST);
    /// oidcc-server (Form Post Implicit plan, `id_token`).
    oidcc_server_id_token_form_post: server(ID_TOKEN_FORM_POST);
    /// oidcc-server (Form Post Implicit plan, `id_token token`).
    oidcc_server_id_token_token_form_post: server(ID_TOKEN_TOKEN_FORM_POST);
    /// oidcc-prompt-none-not-logged-in (Form Post Basic plan): the error is posted too.
    oidcc_prompt_none_not_logged_in_form_post: prompt_none_not_logged_in(CODE_FORM_POST);
    /// oidcc-prompt-none-logged-in (Form Post Basic plan).
    oidcc_prompt_none_logged_in_form_post: prompt_none_logged_in(CODE_FORM_POST);
    /// oidcc-max-age-1 (Form Post Basic plan).
    oidcc_max_age_1_form_post: max_age_1(CODE_FORM_POST);
    /// oidcc-ensure-request-without-nonce-fails (Form Post Implicit plan, `id_token`).
    oidcc_ensure_request_without_nonce_fails_id_token_form_post:
        request_without_nonce_fails(ID_TOKEN_FORM_POST);
}

// ---------------------------------------------------------------------------------------
// Modules of the Basic plan only (the code flow)

/// oidcc-server-client-secret-post: the code flow with the client authenticating at the token
/// endpoint by `client_secret_post` (RFC 6749 §2.3.1, Core §9), which discovery lists.
async fn oidcc_server_client_secret_post(app: TestApp) {
    let alice = app.create_alice().await;
    let client = stock_client(&app).await;
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    let methods = &discovery["token_endpoint_auth_methods_supported"];
    assert!(
        methods
            .as_array()
            .unwrap()
            .contains(&json!("client_secret_post")),
        "{methods}"
    );
    let params = request(&client, CODE, &[]);
    let answer = answer(
        CODE,
        through_pages(&app, app.authorize(&params).await).await,
    )
    .await;
    assert_success_answer(&app, &answer);
    let secret = client.secret.as_deref().unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", answer["code"].as_str()),
        ("redirect_uri", CALLBACK),
        ("client_id", client.client_id.as_str()),
        ("client_secret", secret),
    ];
    let body = ok_json(app.token(None, &form).await).await;
    let access_token = body["access_token"].as_str().unwrap();
    let id_token = body["id_token"].as_str().expect("an ID token");
    let claims = checked_id_token(&app, &client, id_token, Some(NONCE), Some(access_token)).await;
    assert_eq!(claims["sub"], alice.as_str());
    let info = userinfo(&app, UserInfoRequest::Get, access_token).await;
    assert_eq!(info["sub"], alice.as_str());
}

/// oidcc-idtoken-signature: the ID token's signature verifies with the JWKS key its `kid`
/// names (Core §10.1), by an algorithm discovery lists in
/// `id_token_signing_alg_values_supported` (Discovery §3) — for each algorithm Valet can
/// switch to, after a key rotation.
async fn oidcc_idtoken_signature(app: TestApp) {
    app.create_alice().await;
    let client = stock_client(&app).await;
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    let advertised = discovery["id_token_signing_alg_values_supported"].clone();
    let params = request(&client, CODE, &[]);
    let mut rotated_kid = None;
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        if alg != SigningAlg::RS256 {
            rotated_kid = Some(app.rotate_signing_key(alg).await);
            app.reload_keys().await;
        }
        // The first time through the pages; then the session answers at once.
        let signed = sign_in_as(&app, &client, CODE, &params).await;
        let header = jsonwebtoken::decode_header(&signed.id_token).unwrap();
        let header_alg = format!("{:?}", header.alg);
        assert_eq!(header_alg, alg.as_str());
        assert!(
            advertised.as_array().unwrap().contains(&json!(header_alg)),
            "{header_alg} not in {advertised}"
        );
        let kid = header.kid.expect("a kid in the header");
        if let Some(rotated) = &rotated_kid {
            assert_eq!(&kid, rotated, "signed with the new key");
        }
        let jwks = app.get_json("/.well-known/jwks.json").await;
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["kid"] == kid.as_str())
            .unwrap_or_else(|| panic!("kid {kid} in {jwks}"));
        if let Some(key_alg) = key.get("alg") {
            assert_eq!(key_alg, header_alg.as_str(), "{key}");
        }
        if let Some(key_use) = key.get("use") {
            assert_eq!(key_use, "sig", "{key}");
        }
    }
}

/// oidcc-ensure-request-without-nonce-succeeds-for-code-flow: `nonce` is optional in the code
/// flow (Core §3.1.2.1), and an ID token for a request without one carries none (§2).
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow(app: TestApp) {
    app.create_alice().await;
    let client = stock_client(&app).await;
    let params = without(request(&client, CODE, &[]), "nonce");
    let signed = sign_in_as(&app, &client, CODE, &params).await;
    assert!(signed.claims.get("nonce").is_none(), "{}", signed.claims);
}

/// oidcc-ensure-other-scope-order-succeeds: `scope=email openid` works as `openid email` does
/// (RFC 6749 §3.3: the order does not matter), releasing the email claims (Core §5.4).
async fn oidcc_ensure_other_scope_order_succeeds(app: TestApp) {
    app.create_alice().await;
    let client = stock_client(&app).await;
    let params = request(&client, CODE, &[("scope", "email openid")]);
    let signed = sign_in_as(&app, &client, CODE, &params).await;
    assert_eq!(signed.claims["email"], "alice@example.com");
    let access_token = signed.access_token.as_deref().unwrap();
    let info = userinfo(&app, UserInfoRequest::Get, access_token).await;
    assert_eq!(info["email"], "alice@example.com");
    assert!(info.get("name").is_none(), "no profile asked: {info}");
}

/// oidcc-login-hint: `login_hint` (Core §3.1.2.1) fills in the username on the login page, so
/// that the person types only the password.
async fn oidcc_login_hint(app: TestApp) {
    let alice = app.create_alice().await;
    let client = stock_client(&app).await;
    let params = request(&client, CODE, &[("login_hint", "alice")]);
    let response = app.authorize(&params).await;
    let page = app.follow_to_page(response, "/login").await;
    let mut form = Form::parse(&page);
    assert_eq!(form.get("username"), Some("alice"), "pre-filled");
    form.set("password", PASSWORD);
    let response = through_pages(&app, app.submit(&form).await).await;
    let signed = tokens_of(
        &app,
        &client,
        CODE,
        answer(CODE, response).await,
        Some(NONCE),
    )
    .await;
    assert_eq!(signed.claims["sub"], alice.as_str());
}

/// oidcc-codereuse: a code redeemed twice fails the second time with `invalid_grant` (RFC 6749
/// §4.1.2, §5.2; Core §3.1.3.2), and what the first redemption issued is revoked: the client
/// introspecting its own tokens learns they are inactive, and UserInfo refuses the access
/// token.
async fn oidcc_codereuse(app: TestApp) {
    code_reuse(&app, Duration::ZERO).await;
}

/// oidcc-codereuse-30seconds: as oidcc-codereuse, with the second redemption 30 s after the
/// first (still within the code's lifetime, so it is reuse, not expiry).
async fn oidcc_codereuse_30seconds(app: TestApp) {
    code_reuse(&app, Duration::from_secs(30)).await;
}

async fn code_reuse(app: &TestApp, wait: Duration) {
    app.create_alice().await;
    let client = stock_client(app).await;
    let params = request(&client, CODE, &[]);
    let signed = sign_in_as(app, &client, CODE, &params).await;
    let tokens = signed.tokens.as_ref().unwrap();
    let access_token = signed.access_token.as_deref().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token");
    let creds = client.creds();
    app.assert_active(&creds, access_token, "the access token")
        .await;
    app.assert_active(&creds, refresh_token, "the refresh token")
        .await;

    app.advance(wait);
    let response = app.redeem(&client, &signed.answer["code"], None).await;
    assert_eq!(response.status(), 400);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_rfc6749_description(&body["error_description"]);

    app.assert_inactive(&creds, access_token, "the access token of a reused code")
        .await;
    app.assert_inactive(&creds, refresh_token, "the refresh token of a reused code")
        .await;
    let response = app.userinfo(access_token).await;
    assert_eq!(response.status(), 401, "UserInfo refuses a revoked token");
}

/// oidcc-ensure-post-request-succeeds: the authorization request may be a form POST (Core
/// §3.1.2.1: GET and POST must be supported).
async fn oidcc_ensure_post_request_succeeds(app: TestApp) {
    let alice = app.create_alice().await;
    let client = stock_client(&app).await;
    let params = request(&client, CODE, &[]);
    let response = app
        .http
        .post(app.url("/authorize"))
        .form(&params)
        .send()
        .await
        .unwrap();
    let response = through_pages(&app, response).await;
    let signed = tokens_of(
        &app,
        &client,
        CODE,
        answer(CODE, response).await,
        Some(NONCE),
    )
    .await;
    assert_eq!(signed.claims["sub"], alice.as_str());
}

/// oidcc-refresh-token: refreshing an `openid` grant (with the scope repeated, as the suite
/// does) returns a new ID token (Core §12.2) with the same `iss`, `sub`, `aud` and
/// `auth_time`, a later `iat`, no `nonce` and no `azp` (none was in the first); the new
/// access token works; the rotated refresh token is refused; and a refresh token is bound to
/// its client (RFC 6749 §6, §10.4).
async fn oidcc_refresh_token(app: TestApp) {
    let alice = app.create_alice().await;
    let client = stock_client(&app).await;
    let params = request(&client, CODE, &[]);
    let first = sign_in_as(&app, &client, CODE, &params).await;
    let refresh_token = first.tokens.as_ref().unwrap()["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    // RFC 6749 Appendix A.17: VSCHAR.
    assert!(refresh_token.chars().all(|c| matches!(c, '\x20'..='\x7e')));

    // A second later, so that the new `iat` differs.
    app.advance(Duration::from_secs(1));
    let body = app
        .refreshed(&client, &refresh_token, Some("openid profile email"))
        .await;
    assert_eq!(body["token_type"], "Bearer");
    let access_token = body["access_token"].as_str().unwrap();
    assert_ne!(Some(access_token), first.access_token.as_deref());
    let id_token = body["id_token"].as_str().expect("a new ID token");
    let second = checked_id_token(&app, &client, id_token, None, Some(access_token)).await;
    for claim in ["iss", "sub", "aud", "auth_time"] {
        assert_eq!(second[claim], first.claims[claim], "{claim}");
    }
    assert_eq!(second["sub"], alice.as_str());
    assert!(second["iat"].as_i64() > first.claims["iat"].as_i64());
    assert_eq!(second.get("azp"), first.claims.get("azp"));
    let info = userinfo(&app, UserInfoRequest::Get, access_token).await;
    assert_eq!(info["sub"], alice.as_str());

    // Another client's refresh token is refused.
    let other = stock_client(&app).await;
    let other_params = request(&other, CODE, &[]);
    let theirs = sign_in_as(&app, &other, CODE, &other_params).await;
    let their_refresh = theirs.tokens.as_ref().unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = app.refresh(&client, &their_refresh, None).await;
    assert_eq!(error_400(refused).await, "invalid_grant");

    // The rotated refresh token is spent.
    let new_refresh = body["refresh_token"].as_str().expect("a rotated token");
    assert_ne!(new_refresh, refresh_token);
    let reused = app.refresh(&client, &refresh_token, None).await;
    assert_eq!(error_400(reused).await, "invalid_grant");
}

/// oidcc-ensure-request-with-valid-pkce-succeeds: a confidential client that sends PKCE
/// (RFC 7636, S256) anyway is served, and the verifier is checked at the token endpoint.
async fn oidcc_ensure_request_with_valid_pkce_succeeds(app: TestApp) {
    app.create_alice().await;
    let client = stock_client(&app).await;
    let pkce = Pkce::new();
    let params = request(
        &client,
        CODE,
        &[
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let response = through_pages(&app, app.authorize(&params).await).await;
    let answer = answer(CODE, response).await;
    assert_success_answer(&app, &answer);
    let code = &answer["code"];
    let wrong = Pkce::new();
    let refused = app.redeem(&client, code, Some(&wrong.verifier)).await;
    assert_eq!(error_400(refused).await, "invalid_grant");
    let body = ok_json(app.redeem(&client, code, Some(&pkce.verifier)).await).await;
    let access_token = body["access_token"].as_str().unwrap();
    let id_token = body["id_token"].as_str().expect("an ID token");
    checked_id_token(&app, &client, id_token, Some(NONCE), Some(access_token)).await;
}

/// Not a module of these plans, but of the same kind: a public client of the code flow must
/// use PKCE with S256 (SPEC §7, RFC 9700 §2.1.1), so its request without a challenge goes
/// back with `invalid_request`, and with one it signs in.
async fn a_public_client_must_use_pkce(app: TestApp) {
    app.create_alice().await;
    let public = NewClient::web(CALLBACK, "")
        .without_audience()
        .public()
        .grants(&[GrantType::AuthorizationCode]);
    let client = app.create_web_client(public).await;
    let params = request(&client, CODE, &[]);
    let answer_without = answer(CODE, app.authorize(&params).await).await;
    assert_error_answer(&app, &answer_without, "invalid_request", STATE);

    let pkce = Pkce::new();
    let params = request(
        &client,
        CODE,
        &[
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let answer = answer(
        CODE,
        through_pages(&app, app.authorize(&params).await).await,
    )
    .await;
    assert_success_answer(&app, &answer);
    let body = ok_json(
        app.redeem(&client, &answer["code"], Some(&pkce.verifier))
            .await,
    )
    .await;
    let access_token = body["access_token"].as_str().unwrap();
    let id_token = body["id_token"].as_str().expect("an ID token");
    checked_id_token(&app, &client, id_token, Some(NONCE), Some(access_token)).await;
}

/// oidcc-response-type-missing: a request without `response_type` (RFC 6749 §3.1.1, Core
/// §3.1.2.1: REQUIRED) is refused before any page, back at the client in the query (no
/// response type, so the default mode) with `invalid_request` and `state`.
async fn oidcc_response_type_missing(app: TestApp) {
    let client = stock_client(&app).await;
    let params = without(request(&client, CODE, &[]), "response_type");
    let answer = answer(CODE, app.authorize(&params).await).await;
    assert_error_answer(&app, &answer, "invalid_request", STATE);
}

/// oidcc-discovery-endpoint-verification (the Config plan's module; `oidcc_config` checks
/// the scopes and request-object fields): the document is JSON at the issuer's
/// `/.well-known/openid-configuration` with the values Discovery 1.0 §3 requires — response
/// types `code`, `id_token` and `id_token token` (in any word order, RFC 6749 §3.1.1), the
/// `authorization_code` and `implicit` grants, `public` subjects, RS256 among the signing
/// algorithms and never `none`, every endpoint at the issuer, a JWKS of public signing keys
/// with `kid`s, well-formed scope names, `sub` among the claims. (The suite also wants every
/// endpoint on https; these tests run on loopback http.)
async fn oidcc_discovery_endpoint_verification(app: TestApp) {
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    let issuer = discovery["issuer"].as_str().unwrap();
    assert_eq!(issuer, app.base);
    let issuer_url = url::Url::parse(issuer).unwrap();
    assert!(issuer_url.query().is_none() && issuer_url.fragment().is_none());

    let strings = |field: &str| -> Vec<String> {
        discovery[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} is an array: {discovery}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let word_sets: Vec<Vec<String>> = strings("response_types_supported")
        .iter()
        .map(|t| {
            let mut words: Vec<String> = t.split(' ').map(str::to_owned).collect();
            words.sort();
            words
        })
        .collect();
    for required in [&["code"][..], &["id_token"], &["id_token", "token"]] {
        assert!(
            word_sets.iter().any(|set| set == required),
            "{required:?} in {word_sets:?}"
        );
    }
    let grants = strings("grant_types_supported");
    for grant in ["authorization_code", "implicit", "refresh_token"] {
        assert!(grants.iter().any(|g| g == grant), "{grant} in {grants:?}");
    }
    let subjects = strings("subject_types_supported");
    assert!(subjects.iter().any(|s| s == "public"), "{subjects:?}");
    assert!(subjects.iter().all(|s| s == "public" || s == "pairwise"));
    let algs = strings("id_token_signing_alg_values_supported");
    assert!(algs.iter().any(|a| a == "RS256"), "{algs:?}");
    assert!(!algs.iter().any(|a| a == "none"), "{algs:?}");
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        let url = discovery[endpoint].as_str().expect(endpoint);
        assert!(url.starts_with(issuer), "{endpoint}: {url}");
    }
    let scopes = strings("scopes_supported");
    assert!(scopes.iter().any(|s| s == "openid"), "{scopes:?}");
    for scope in &scopes {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        assert!(
            !scope.is_empty()
                && scope
                    .chars()
                    .all(|c| matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')),
            "{scope:?}"
        );
    }
    let claims = strings("claims_supported");
    assert!(claims.iter().any(|c| c == "sub"), "{claims:?}");
    assert!(discovery["code_challenge_methods_supported"].is_array());
    for flag in [
        "claims_parameter_supported",
        "request_parameter_supported",
        "request_uri_parameter_supported",
    ] {
        if let Some(value) = discovery.get(flag) {
            assert!(value.is_boolean(), "{flag}: {value}");
        }
    }

    let jwks_path = discovery["jwks_uri"]
        .as_str()
        .unwrap()
        .strip_prefix(issuer)
        .unwrap()
        .to_owned();
    let jwks = app.get_json(&jwks_path).await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty());
    for key in keys {
        assert!(key["kid"].is_string(), "{key}");
        assert_ne!(key["kty"], "oct", "no symmetric keys: {key}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{private} in {key}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Modules run in several variants

/// oidcc-server: alice signs in; the answer comes as the variant says (a code in the query,
/// tokens in the fragment, or either in a posted form); the ID token passes every check, has
/// her claims (in the ID token itself when no access token is issued, Core §5.4), and an
/// access token that came with it reads the same `sub` at UserInfo. Implicit answers never
/// carry a refresh token (RFC 6749 §4.2.2).
async fn server(app: &TestApp, variant: Variant) {
    let alice = app.create_alice().await;
    let client = client_for(app, variant).await;
    let params = request(&client, variant, &[]);
    let signed = sign_in_as(app, &client, variant, &params).await;
    assert_eq!(signed.claims["sub"], alice.as_str());
    assert_eq!(signed.claims["email"], "alice@example.com");
    assert_eq!(signed.claims["name"], "Alice Liddell");
    assert!(!signed.answer.contains_key("refresh_token"));
    if let Some(access_token) = &signed.access_token {
        let info = userinfo(app, UserInfoRequest::Get, access_token).await;
        assert_eq!(info["sub"], alice.as_str());
    }
}

/// oidcc-userinfo-get: UserInfo by `GET` with the access token as a Bearer header (Core
/// §5.3.1, RFC 6750 §2.1): JSON with the ID token's `sub` (§5.3.2) and the scopes' claims.
async fn userinfo_get(app: &TestApp, variant: Variant) {
    userinfo_module(app, variant, UserInfoRequest::Get).await;
}

/// oidcc-userinfo-post-header: UserInfo by `POST` with the access token as a Bearer header
/// (Core §5.3.1, RFC 6750 §2.1).
async fn userinfo_post_header(app: &TestApp, variant: Variant) {
    userinfo_module(app, variant, UserInfoRequest::PostHeader).await;
}

/// oidcc-userinfo-post-body: UserInfo by `POST` with the access token in a form body (Core
/// §5.3.1, RFC 6750 §2.2).
async fn userinfo_post_body(app: &TestApp, variant: Variant) {
    userinfo_module(app, variant, UserInfoRequest::PostBody).await;
}

async fn userinfo_module(app: &TestApp, variant: Variant, how: UserInfoRequest) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let params = request(&client, variant, &[]);
    let signed = sign_in_as(app, &client, variant, &params).await;
    let access_token = signed.access_token.as_deref().expect("an access token");
    let info = userinfo(app, how, access_token).await;
    assert_eq!(info["sub"], signed.claims["sub"], "{info}");
    assert_eq!(info["email"], "alice@example.com", "{info}");
    assert_eq!(info["name"], "Alice Liddell", "{info}");
}

/// oidcc-display-page: `display=page` (Core §3.1.2.1) is accepted.
async fn display_page(app: &TestApp, variant: Variant) {
    succeeds_with(app, variant, &[("display", "page")]).await;
}

/// oidcc-display-popup: `display=popup` (Core §3.1.2.1) is accepted.
async fn display_popup(app: &TestApp, variant: Variant) {
    succeeds_with(app, variant, &[("display", "popup")]).await;
}

/// oidcc-ensure-request-with-unknown-parameter-succeeds: a parameter Valet does not know is
/// ignored (RFC 6749 §3.1, Core §3.1.2.1).
async fn unknown_parameter(app: &TestApp, variant: Variant) {
    succeeds_with(app, variant, &[("extra", "foobar")]).await;
}

/// oidcc-ui-locales: `ui_locales` (Core §3.1.2.1, OPTIONAL to honour) does not make the
/// request fail.
async fn ui_locales(app: &TestApp, variant: Variant) {
    succeeds_with(app, variant, &[("ui_locales", "se")]).await;
}

/// oidcc-claims-locales: `claims_locales` (Core §5.2, OPTIONAL to honour) does not make the
/// request fail.
async fn claims_locales(app: &TestApp, variant: Variant) {
    succeeds_with(app, variant, &[("claims_locales", "se")]).await;
}

/// oidcc-ensure-request-with-acr-values-succeeds: `acr_values` (Core §3.1.2.1; §15.1: the
/// minimum support is not failing) does not make the request fail; an `acr` in the ID token,
/// if any, is one of those asked for.
async fn acr_values(app: &TestApp, variant: Variant) {
    let signed = succeeds_with(app, variant, &[("acr_values", "1 2")]).await;
    if let Some(acr) = signed.claims.get("acr") {
        assert!(*acr == "1" || *acr == "2", "{acr}");
    }
}

/// A sign-in with `extra` added to the stock request succeeds as a plain one does.
async fn succeeds_with(app: &TestApp, variant: Variant, extra: &[(&str, &str)]) -> SignedIn {
    let alice = app.create_alice().await;
    let client = client_for(app, variant).await;
    let params = request(&client, variant, extra);
    let signed = sign_in_as(app, &client, variant, &params).await;
    assert_eq!(signed.claims["sub"], alice.as_str());
    signed
}

/// oidcc-prompt-none-not-logged-in: `prompt=none` with no session goes straight back to the
/// client (no page) with `login_required` (Core §3.1.2.6), in the variant's response mode,
/// with the 128-character `state` intact.
async fn prompt_none_not_logged_in(app: &TestApp, variant: Variant) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let state = "s".repeat(64) + &"0123456789abcdef".repeat(4);
    assert_eq!(state.len(), 128);
    let params = request(&client, variant, &[("prompt", "none"), ("state", &state)]);
    let answer = answer(variant, app.authorize(&params).await).await;
    assert_error_answer(app, &answer, "login_required", &state);
}

/// oidcc-prompt-none-logged-in: with a session (and the consent given), `prompt=none` goes
/// straight back with a fresh answer, no page shown (Core §3.1.2.1), for the same `sub` and
/// the same `auth_time`.
async fn prompt_none_logged_in(app: &TestApp, variant: Variant) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let first = sign_in_as(app, &client, variant, &request(&client, variant, &[])).await;
    let params = request(&client, variant, &[("prompt", "none")]);
    let response = app.authorize(&params).await;
    let second = tokens_of(
        app,
        &client,
        variant,
        answer(variant, response).await,
        Some(NONCE),
    )
    .await;
    assert_same_sign_in(&first.claims, &second.claims);
}

/// oidcc-max-age-1: two seconds after a sign-in, `max_age=1` asks for the login page again
/// (Core §3.1.2.1), and the new ID token's `auth_time` (required when `max_age` was sent,
/// §2) is the new, later sign-in's.
async fn max_age_1(app: &TestApp, variant: Variant) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let first = sign_in_as(app, &client, variant, &request(&client, variant, &[])).await;
    app.advance(Duration::from_secs(2));
    let params = request(&client, variant, &[("max_age", "1")]);
    let response = app.authorize(&params).await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login"), "signs in again");
    let response = through_pages(app, response).await;
    let second = tokens_of(
        app,
        &client,
        variant,
        answer(variant, response).await,
        Some(NONCE),
    )
    .await;
    assert_eq!(second.claims["sub"], first.claims["sub"]);
    let (before, after) = (
        first.claims["auth_time"].as_i64().unwrap(),
        second.claims["auth_time"].as_i64().unwrap(),
    );
    assert!(after > before, "a later sign-in: {before} then {after}");
    assert!(app.clock.now().0 - after <= 1, "the sign-in just made");
}

/// oidcc-max-age-10000: after a sign-in made with `max_age=15000`, `max_age=10000` a minute
/// later goes straight back without a login page, and both ID tokens carry the same
/// `auth_time` (Core §2, §3.1.2.1) and `sub`.
async fn max_age_10000(app: &TestApp, variant: Variant) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let params = request(&client, variant, &[("max_age", "15000")]);
    let first = sign_in_as(app, &client, variant, &params).await;
    app.advance(Duration::from_secs(60));
    let params = request(&client, variant, &[("max_age", "10000")]);
    let response = app.authorize(&params).await;
    let second = tokens_of(
        app,
        &client,
        variant,
        answer(variant, response).await,
        Some(NONCE),
    )
    .await;
    assert_same_sign_in(&first.claims, &second.claims);
}

/// oidcc-id-token-hint: an ID token issued earlier, sent back as `id_token_hint` with
/// `prompt=none` (Core §3.1.2.1), gets a fresh answer at once for the same `sub` and
/// `auth_time`.
async fn id_token_hint(app: &TestApp, variant: Variant) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let first = sign_in_as(app, &client, variant, &request(&client, variant, &[])).await;
    let params = request(
        &client,
        variant,
        &[("prompt", "none"), ("id_token_hint", &first.id_token)],
    );
    let response = app.authorize(&params).await;
    let second = tokens_of(
        app,
        &client,
        variant,
        answer(variant, response).await,
        Some(NONCE),
    )
    .await;
    assert_same_sign_in(&first.claims, &second.claims);
}

/// oidcc-ensure-registered-redirect-uri: a `redirect_uri` that is not registered gets an
/// error page and is never redirected to (Core §3.1.2.1, RFC 6749 §3.1.2.4), even for a
/// browser with a session.
async fn registered_redirect_uri(app: &TestApp, variant: Variant) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let unregistered = "https://app.example.com/callback/not-registered";
    let params = request(&client, variant, &[("redirect_uri", unregistered)]);
    for when in ["without a session", "with a session"] {
        let response = app.authorize(&params).await;
        assert_eq!(response.status(), 400, "{when}");
        assert!(response.headers().get("location").is_none(), "{when}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/html"),
            "{when}: {content_type}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains(unregistered), "{when}: {page}");
        if when == "without a session" {
            sign_in_as(app, &client, variant, &request(&client, variant, &[])).await;
        }
    }
}

/// oidcc-ensure-redirect-uri-in-authorization-request: an OpenID request without
/// `redirect_uri` (REQUIRED, Core §3.1.2.1) is an error page, never a redirect, even for a
/// client with one registered URI (which plain OAuth may leave out, RFC 6749 §3.1.2.3), with
/// or without a session.
async fn redirect_uri_in_request(app: &TestApp, variant: Variant) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let params = without(request(&client, variant, &[]), "redirect_uri");
    for when in ["without a session", "with a session"] {
        let response = app.authorize(&params).await;
        assert_eq!(response.status(), 400, "{when}");
        assert!(response.headers().get("location").is_none(), "{when}");
        let page = response.text().await.unwrap();
        assert!(page.contains("3.1.2.1"), "{when}: {page}");
        if when == "without a session" {
            sign_in_as(app, &client, variant, &request(&client, variant, &[])).await;
        }
    }
}

/// oidcc-ensure-request-without-nonce-fails: an implicit request without `nonce` (REQUIRED
/// there, Core §3.2.2.1) goes back with `invalid_request` in the fragment (or the posted
/// form), before any page.
async fn request_without_nonce_fails(app: &TestApp, variant: Variant) {
    app.create_alice().await;
    let client = client_for(app, variant).await;
    let params = without(request(&client, variant, &[]), "nonce");
    let answer = answer(variant, app.authorize(&params).await).await;
    assert_error_answer(app, &answer, "invalid_request", STATE);
}

// ---------------------------------------------------------------------------------------
// The relying party's side

/// The client a plan registers for `variant`: the stock code client, or for the Implicit
/// plan a confidential client allowed the implicit grant and nothing more (no scopes, no API).
async fn client_for(app: &TestApp, variant: Variant) -> WebClient {
    match variant.response_type {
        ResponseType::Code => stock_client(app).await,
        ResponseType::IdToken | ResponseType::IdTokenToken => {
            let client = NewClient::web(CALLBACK, "")
                .without_audience()
                .grants(&[GrantType::Implicit]);
            app.create_web_client(client).await
        }
    }
}

/// The stock request in `variant`, with `extra` added or replacing what is there.
fn request<'a>(
    client: &'a WebClient,
    variant: Variant,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params = stock_params(client, &[]);
    let mut set = |name: &'a str, value: &'a str| match params.iter_mut().find(|(n, _)| *n == name)
    {
        Some(param) => param.1 = value,
        None => params.push((name, value)),
    };
    set("response_type", variant.response_type.as_str());
    if variant.form_post {
        set("response_mode", "form_post");
    }
    for &(name, value) in extra {
        set(name, value);
    }
    params
}

/// `params` without `name`.
fn without<'a>(params: Vec<(&'a str, &'a str)>, name: &str) -> Vec<(&'a str, &'a str)> {
    params.into_iter().filter(|(n, _)| *n != name).collect()
}

/// The person's part after `/authorize` answered `response`: sign in as alice on the login
/// page and allow on the consent page, each only if shown. The answer for the client.
async fn through_pages(app: &TestApp, mut response: reqwest::Response) -> reqwest::Response {
    let to = |response: &reqwest::Response, path: &str| {
        response.status() == 303 && location(response).starts_with(path)
    };
    if to(&response, "/login") {
        let login = app.follow_to_page(response, "/login").await;
        response = app.sign_in(&login, "alice", PASSWORD).await;
    }
    if to(&response, "/consent") {
        let consent = app.follow_to_page(response, "/consent").await;
        response = app.decide(&consent, "allow").await;
    }
    response
}

/// The authorization response as the client receives it, read only where `variant` says it
/// may be: a redirect with the code flow's parameters in the query and nothing in a fragment,
/// one with the implicit flow's in the fragment and nothing in a query (Core §3.2.2.5; the
/// suite rejects a code or an error in the query there), or, with `form_post` (OAuth 2.0 Form
/// Post Response Mode §2), a page whose one form posts them to the redirect URI and submits
/// itself by a script the page's CSP allows.
async fn answer(variant: Variant, response: reqwest::Response) -> HashMap<String, String> {
    if variant.form_post {
        assert_eq!(response.status(), 200, "a form to post");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let html = response.text().await.unwrap();
        let form = Form::parse(&html);
        assert_eq!(form.action, CALLBACK, "{html}");
        let doc = Html::parse_document(&html);
        let script = doc
            .select(&Selector::parse("script").unwrap())
            .next()
            .expect("a script that submits the form");
        assert!(script.text().collect::<String>().contains("submit()"));
        let nonce = script.value().attr("nonce").expect("a script nonce");
        assert!(csp.contains(&format!("'nonce-{nonce}'")), "{csp}");
        let mut fields = HashMap::new();
        for (name, value) in form.fields {
            assert!(fields.insert(name.clone(), value).is_none(), "{name} twice");
        }
        return fields;
    }
    assert_eq!(response.status(), 303, "a redirect to the client");
    let target = location(&response);
    assert!(target.starts_with(CALLBACK), "{target}");
    let url = url::Url::parse(&target).unwrap();
    let (carrier, other) = match variant.response_type {
        ResponseType::Code => (url.query(), url.fragment()),
        ResponseType::IdToken | ResponseType::IdTokenToken => (url.fragment(), url.query()),
    };
    assert!(other.is_none(), "{target}");
    let carrier = carrier.unwrap_or_else(|| panic!("no parameters: {target}"));
    let mut params = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(carrier.as_bytes()).into_owned() {
        assert!(params.insert(name.clone(), value).is_none(), "{name} twice");
    }
    params
}

/// A successful answer: `state` as sent and `iss` (RFC 9207), no error.
fn assert_success_answer(app: &TestApp, answer: &HashMap<String, String>) {
    assert!(!answer.contains_key("error"), "{answer:?}");
    assert_eq!(answer["state"], STATE);
    assert_eq!(answer["iss"], app.base);
}

/// An error answer (RFC 6749 §4.1.2.1, §4.2.2.1; Core §3.1.2.6): `error`, `state` as sent,
/// `iss`, a description of the characters RFC 6749 allows, and nothing issued.
fn assert_error_answer(app: &TestApp, answer: &HashMap<String, String>, error: &str, state: &str) {
    assert_eq!(
        answer.get("error").map(String::as_str),
        Some(error),
        "{answer:?}"
    );
    assert_eq!(answer.get("state").map(String::as_str), Some(state));
    assert_eq!(answer["iss"], app.base);
    if let Some(description) = answer.get("error_description") {
        assert_rfc6749_description(&json!(description));
    }
    for issued in ["code", "id_token", "access_token"] {
        assert!(!answer.contains_key(issued), "{answer:?}");
    }
}

/// RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ).
fn assert_rfc6749_description(description: &Value) {
    let text = description.as_str().expect("an error_description");
    assert!(
        !text.is_empty()
            && text
                .chars()
                .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')),
        "{text:?}"
    );
}

/// What a sign-in gave the client.
struct SignedIn {
    /// The authorization response.
    answer: HashMap<String, String>,
    id_token: String,
    /// The ID token's claims, checked.
    claims: Value,
    access_token: Option<String>,
    /// The token response, in the code flow.
    tokens: Option<Value>,
}

/// Sign alice in with `params` (through the pages if they are shown) and take the tokens.
async fn sign_in_as(
    app: &TestApp,
    client: &WebClient,
    variant: Variant,
    params: &[(&str, &str)],
) -> SignedIn {
    let response = through_pages(app, app.authorize(params).await).await;
    let nonce = params.iter().find(|(n, _)| *n == "nonce").map(|(_, v)| *v);
    tokens_of(app, client, variant, answer(variant, response).await, nonce).await
}

/// The tokens of a successful answer: the code redeemed (HTTP Basic), or the implicit
/// answer's own, exactly those its response type names (Core §3.2.2.5); the ID token checked.
async fn tokens_of(
    app: &TestApp,
    client: &WebClient,
    variant: Variant,
    answer: HashMap<String, String>,
    nonce: Option<&str>,
) -> SignedIn {
    assert_success_answer(app, &answer);
    let has = |name: &str| answer.contains_key(name);
    let (id_token, access_token, tokens) = match variant.response_type {
        ResponseType::Code => {
            assert!(!has("id_token") && !has("access_token"), "{answer:?}");
            let body = ok_json(app.redeem(client, &answer["code"], None).await).await;
            assert_eq!(body["token_type"], "Bearer");
            let id_token = body["id_token"].as_str().expect("an ID token").to_owned();
            let access_token = body["access_token"].as_str().unwrap().to_owned();
            (id_token, Some(access_token), Some(body))
        }
        ResponseType::IdToken => {
            assert!(!has("code") && !has("access_token"), "{answer:?}");
            (answer["id_token"].clone(), None, None)
        }
        ResponseType::IdTokenToken => {
            assert!(!has("code"), "{answer:?}");
            assert_eq!(answer["token_type"], "Bearer");
            let access_token = answer["access_token"].clone();
            (answer["id_token"].clone(), Some(access_token), None)
        }
    };
    let claims = checked_id_token(app, client, &id_token, nonce, access_token.as_deref()).await;
    SignedIn {
        answer,
        id_token,
        claims,
        access_token,
        tokens,
    }
}

/// The checks the suite runs on every ID token (Core §2, §3.1.3.7, §3.2.2.11): the signature
/// by the JWKS key of its `kid`; `iss` exactly the issuer; `aud` the client (or containing
/// it), `azp` the client if present; a `sub`; `exp` after `iat`; `iat` within a minute of the
/// server's clock; `auth_time` present and not after `iat`; `nonce` the one sent, or none if
/// none was; `at_hash` of the access token issued with it (§3.1.3.6, §3.2.2.9), and none
/// without one. Returns the claims.
async fn checked_id_token(
    app: &TestApp,
    client: &WebClient,
    id_token: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
) -> Value {
    let client_id = client.client_id.as_str();
    let (header, claims) = verify_with_jwks(app, id_token, client_id).await;
    assert_eq!(claims["iss"], app.base, "{claims}");
    match &claims["aud"] {
        Value::String(aud) => assert_eq!(aud, client_id, "{claims}"),
        Value::Array(auds) => assert!(auds.contains(&json!(client_id)), "{claims}"),
        other => panic!("aud {other} in {claims}"),
    }
    if let Some(azp) = claims.get("azp") {
        assert_eq!(azp, client_id, "{claims}");
    }
    assert!(
        claims["sub"].as_str().is_some_and(|sub| !sub.is_empty()),
        "{claims}"
    );
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp > iat, "{claims}");
    let now = app.clock.now().0;
    assert!((iat - now).abs() <= 60, "iat {iat}, now {now}");
    let auth_time = claims["auth_time"].as_i64().expect("auth_time");
    assert!(auth_time <= iat, "{claims}");
    match nonce {
        Some(nonce) => assert_eq!(claims["nonce"], nonce, "{claims}"),
        None => assert!(claims.get("nonce").is_none(), "{claims}"),
    }
    match access_token {
        Some(token) => assert_eq!(claims["at_hash"], at_hash(header.alg, token), "{claims}"),
        None => assert!(claims.get("at_hash").is_none(), "{claims}"),
    }
    claims
}

/// Core §3.1.3.6: the left half of the access token's hash, by the hash of the ID token's
/// `alg` (SHA-512 for EdDSA, Ed25519's own hash), base64url.
fn at_hash(alg: jsonwebtoken::Algorithm, access_token: &str) -> String {
    use jsonwebtoken::Algorithm::{ES256, ES384, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512};
    let algorithm = match alg {
        RS256 | ES256 | PS256 => &digest::SHA256,
        RS384 | ES384 | PS384 => &digest::SHA384,
        RS512 | PS512 | EdDSA => &digest::SHA512,
        other => panic!("no at_hash hash for {other:?}"),
    };
    let hash = digest::digest(algorithm, access_token.as_bytes());
    let hash = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&hash[..hash.len() / 2])
}

/// Two ID tokens of one sign-in (Core §2): the same `sub` and the same `auth_time`.
fn assert_same_sign_in(first: &Value, second: &Value) {
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(
        second["auth_time"], first["auth_time"],
        "{first} / {second}"
    );
}

/// How a client presents its access token to UserInfo.
#[derive(Debug, Clone, Copy)]
enum UserInfoRequest {
    Get,
    PostHeader,
    PostBody,
}

/// The UserInfo response for `access_token`: 200 JSON (Core §5.3.2), not to be cached.
async fn userinfo(app: &TestApp, how: UserInfoRequest, access_token: &str) -> Value {
    let url = app.url("/userinfo");
    let request = match how {
        UserInfoRequest::Get => app.http.get(&url).bearer_auth(access_token),
        UserInfoRequest::PostHeader => app.http.post(&url).bearer_auth(access_token),
        UserInfoRequest::PostBody => app.http.post(&url).form(&[("access_token", access_token)]),
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{how:?}: {body}");
    let content_type = content_type.expect("a content type");
    let content_type = content_type.to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{how:?}: {content_type}"
    );
    serde_json::from_str(&body).expect("JSON")
}

//! OpenID Connect ID tokens from the code flow (Core §3.1.3.3, §3.1.3.6, §3.1.3.7): verified
//! the way a relying party does, with the JWKS, `aud` = the client, the `nonce` it sent and
//! `at_hash` binding the access token; never one without `openid`, and never usable as an
//! access token.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use valet::domain::{GrantType, SigningAlg};

use crate::harness::fixtures::{CALLBACK, NewClient, PASSWORD, code_params, kid, verify_with_jwks};
use crate::harness::flow::{Pkce, WebClient, location, redirect_params};
use crate::harness::{CONTACTS, TestApp};
use crate::store_tests;

store_tests!(
    the_code_flow_with_openid_returns_an_id_token,
    no_openid_no_id_token,
    the_implicit_flow_puts_id_tokens_in_the_fragment,
    an_eddsa_key_signs_id_tokens_with_a_sha512_at_hash
);

async fn openid_web_client(app: &TestApp) -> WebClient {
    app.create_contacts_api().await;
    let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
    let client = NewClient::web(CALLBACK, "read:contacts openid profile email").grants(&grants);
    app.create_web_client(client).await
}

/// Sign alice in (or reuse her session) for `scope`, redeem the code: the token response.
async fn code_flow(app: &TestApp, client: &WebClient, scope: &str, nonce: Option<&str>) -> Value {
    let pkce = Pkce::new();
    let mut params = code_params(client, &pkce, scope);
    params.extend(nonce.map(|nonce| ("nonce", nonce)));
    // The first time through the login and consent pages; later the session and the
    // remembered consent send the browser straight back.
    let mut response = app.authorize(&params).await;
    if location(&response).starts_with("/login") {
        let login = app.follow_to_page(response, "/login").await;
        let signed_in = app.sign_in(&login, "alice", PASSWORD).await;
        let consent = app.follow_to_page(signed_in, "/consent").await;
        response = app.decide(&consent, "allow").await;
    }
    let redirect = redirect_params(&location(&response));
    app.redeemed(client, &redirect["code"], &pkce.verifier)
        .await
}

/// The left half of `hash(token)`, base64url: `at_hash` as §3.1.3.6 defines it.
fn expected_at_hash(algorithm: &'static digest::Algorithm, token: &str) -> String {
    let hash = digest::digest(algorithm, token.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..hash.as_ref().len() / 2])
}

async fn the_code_flow_with_openid_returns_an_id_token(app: TestApp) {
    let alice = app.create_alice().await;
    let client = openid_web_client(&app).await;
    let nonce = "n-0S6_WzA2Mj";
    let body = code_flow(
        &app,
        &client,
        "openid profile email read:contacts",
        Some(nonce),
    )
    .await;
    let id_token = body["id_token"].as_str().expect("an id_token");

    let (header, claims) = verify_with_jwks(&app, id_token, &client.client_id).await;
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["aud"], client.client_id.as_str());
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["nonce"], nonce);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600, "tokens.id_token_ttl");
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!(auth_time <= iat && iat - auth_time < 60, "{claims}");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(claims["at_hash"], expected_at_hash(&digest::SHA256, access));
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["preferred_username"], "alice");
    assert!(claims.get("scope").is_none() && claims.get("client_id").is_none());
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    let algs = &discovery["id_token_signing_alg_values_supported"];
    assert_eq!(algs[0], "RS256", "{discovery}");

    // An ID token is not an access token: not for /userinfo, not active at introspection.
    let response = app.userinfo(id_token).await;
    assert_eq!(response.status(), 401);
    let caller = app.create_service_client("read:contacts").await;
    app.assert_inactive(&caller, id_token, "an ID token").await;

    // A second authorization in the same session: auth_time stays when alice signed in.
    app.advance(Duration::from_secs(2));
    let again = code_flow(&app, &client, "openid read:contacts", None).await;
    let (_, later) =
        verify_with_jwks(&app, again["id_token"].as_str().unwrap(), &client.client_id).await;
    assert_eq!(later["auth_time"], auth_time, "no new sign-in happened");
    assert!(later["iat"].as_i64().unwrap() > iat);
    assert!(later.get("nonce").is_none(), "none was sent");
    assert!(later.get("email").is_none(), "email was not asked for");

    // A refresh answers with a new ID token for the same sign-in (Core §12.2): same sub and
    // auth_time, the session's sid, no nonce, at_hash of the new access token.
    let refreshed = app
        .refresh(
            &client.creds(),
            body["refresh_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    let renewed = refreshed["id_token"]
        .as_str()
        .expect("an ID token on refresh");
    let (_, renewed) = verify_with_jwks(&app, renewed, &client.client_id).await;
    assert_eq!(renewed["sub"], alice.as_str());
    assert_eq!(renewed["auth_time"], auth_time);
    assert_eq!(renewed["sid"], claims["sid"], "{renewed}");
    assert!(claims["sid"].is_string(), "{claims}");
    assert!(renewed.get("nonce").is_none(), "{renewed}");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        renewed["at_hash"],
        expected_at_hash(&digest::SHA256, access)
    );
}

async fn no_openid_no_id_token(app: TestApp) {
    app.create_alice().await;
    let client = openid_web_client(&app).await;
    let body = code_flow(&app, &client, "read:contacts", Some("n")).await;
    assert!(body["access_token"].is_string());
    assert!(body.get("id_token").is_none(), "{body}");
}

async fn an_eddsa_key_signs_id_tokens_with_a_sha512_at_hash(app: TestApp) {
    app.create_alice().await;
    let client = openid_web_client(&app).await;
    let new_kid = app.rotate_signing_key(SigningAlg::EdDSA).await;
    app.reload_keys().await;
    let body = code_flow(&app, &client, "openid", Some("n")).await;
    let id_token = body["id_token"].as_str().unwrap();
    assert_eq!(kid(id_token), new_kid, "the EdDSA key signs");
    let (header, claims) = verify_with_jwks(&app, id_token, &client.client_id).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(claims["at_hash"], expected_at_hash(&digest::SHA512, access));
}

async fn the_implicit_flow_puts_id_tokens_in_the_fragment(app: TestApp) {
    let alice = app.create_alice().await;
    app.create_contacts_api().await;
    let client = NewClient::web(CALLBACK, "read:contacts openid email")
        .public()
        .grants(&[GrantType::Implicit]);
    let client = app.create_web_client(client).await;
    let request = |response_type, scope, nonce: Option<&'static str>| {
        let mut params = vec![
            ("client_id", client.client_id.clone()),
            ("response_type", String::from(response_type)),
            ("redirect_uri", CALLBACK.to_owned()),
            ("scope", String::from(scope)),
            ("audience", CONTACTS.to_owned()),
            ("state", "imp".to_owned()),
        ];
        if let Some(nonce) = nonce {
            params.push(("nonce", nonce.to_owned()));
        }
        params
    };

    // Both tokens; the values may come in either order (RFC 6749 §3.1.1).
    let both = request("token id_token", "openid email read:contacts", Some("n-42"));
    let fragment = app.sign_in_and_allow(&borrowed(&both), "alice").await;
    assert_eq!(fragment["state"], "imp");
    let access = fragment["access_token"].clone();
    let (header, claims) = verify_with_jwks(&app, &fragment["id_token"], &client.client_id).await;
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["nonce"], "n-42");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(
        claims["at_hash"],
        expected_at_hash(&digest::SHA256, &access)
    );
    assert!(!fragment.contains_key("refresh_token") && !fragment.contains_key("code"));

    // The ID token alone: no access token, so no at_hash. In the fragment, never a query.
    let only = request("id_token", "openid email read:contacts", Some("n-43"));
    let response = app.authorize(&borrowed(&only)).await;
    let to = location(&response);
    assert!(to.starts_with(&format!("{CALLBACK}#")), "{to}");
    let fragment = redirect_params(&to);
    assert!(!fragment.contains_key("access_token"), "{fragment:?}");
    let (_, claims) = verify_with_jwks(&app, &fragment["id_token"], &client.client_id).await;
    assert_eq!(claims["nonce"], "n-43");
    assert!(claims.get("at_hash").is_none(), "{claims}");

    // Refusals, each in the fragment: no nonce, no openid, a query response mode.
    let mut query = request("id_token", "openid", Some("n"));
    query.push(("response_mode", "query".to_owned()));
    for (params, error) in [
        (request("id_token token", "openid", None), "invalid_request"),
        (
            request("id_token", "read:contacts", Some("n")),
            "invalid_scope",
        ),
        (query, "invalid_request"),
    ] {
        let response = app.authorize(&borrowed(&params)).await;
        let to = location(&response);
        assert!(to.starts_with(&format!("{CALLBACK}#")), "{to}");
        assert_eq!(redirect_params(&to)["error"], error, "{params:?}");
    }
}

fn borrowed<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

//! The standard claims by scope (OpenID Connect Core §5.4), one test per module of the OpenID
//! Foundation's Basic OP plan that checks them, named after it. alice, with every claim Valet
//! stores but two address members, signs in through the real login and consent pages from a
//! stock client (no scopes, no APIs registered, no audience asked); her ID token, verified
//! against the JWKS, and the UserInfo response must each hold exactly the claims of the
//! scopes asked for, no others and never a `null`.

use std::time::Duration;

use serde_json::{Map, Value, json};
use valet::store::{AddressPart, ClaimEdit, User};
use valet::tokens::id_token::ID_TOKEN_CLAIMS;

use crate::harness::TestApp;
use crate::harness::fixtures::ok_json;
use crate::oidc_provider::{sign_in, stock_client, stock_params, verified_id_token};
use crate::store_tests;

store_tests!(
    oidcc_scope_profile,
    oidcc_scope_email,
    oidcc_scope_address,
    oidcc_scope_phone,
    oidcc_scope_all,
    claims_the_user_lacks_are_left_out,
);

/// What `valet user update alice …` would set beyond the fixture's email and name: every
/// claim but the address's `formatted` and `region`.
fn alice_claims() -> Vec<ClaimEdit> {
    let some = |text: &str| Some(text.to_owned());
    vec![
        ClaimEdit::EmailVerified(true),
        ClaimEdit::GivenName(some("Alice")),
        ClaimEdit::FamilyName(some("Liddell")),
        ClaimEdit::Picture(some("https://images.example.com/alice.png")),
        ClaimEdit::Locale(some("en-GB")),
        ClaimEdit::PhoneNumber(some("+44 1865 270000")),
        ClaimEdit::Address(
            AddressPart::StreetAddress,
            some("Christ Church\nSt Aldates"),
        ),
        ClaimEdit::Address(AddressPart::Locality, some("Oxford")),
        ClaimEdit::Address(AddressPart::PostalCode, some("OX1 1DP")),
        ClaimEdit::Address(AddressPart::Country, some("United Kingdom")),
    ]
}

/// The claims each scope releases for alice as [`alice_claims`] leaves her (Core §5.4).
fn released(alice: &User, scope: &str) -> Map<String, Value> {
    let claims = match scope {
        "profile" => json!({
            "name": "Alice Liddell",
            "given_name": "Alice",
            "family_name": "Liddell",
            "preferred_username": "alice",
            "picture": "https://images.example.com/alice.png",
            "locale": "en-GB",
            "updated_at": alice.updated_at.0,
        }),
        "email" => json!({"email": "alice@example.com", "email_verified": true}),
        "address" => json!({"address": {
            "street_address": "Christ Church\nSt Aldates",
            "locality": "Oxford",
            "postal_code": "OX1 1DP",
            "country": "United Kingdom",
        }}),
        "phone" => json!({"phone_number": "+44 1865 270000"}),
        other => panic!("no claims for the scope {other}"),
    };
    claims.as_object().cloned().unwrap()
}

/// alice (with [`alice_claims`]) signs in with `openid` and `scopes`; her ID token and her
/// UserInfo response hold `sub` and the claims of `scopes`, and nothing else about her.
async fn sign_in_with_scopes(app: &TestApp, scopes: &[&str]) {
    let id = app.create_alice().await;
    // A minute later, so that `updated_at` is the time of the change, not of her creation.
    app.advance(Duration::from_secs(60));
    let alice = app.update_claims("alice", &alice_claims()).await;
    assert!(alice.updated_at > alice.created_at);
    let mut expected = Map::from_iter([("sub".to_owned(), json!(id))]);
    for scope in scopes {
        expected.extend(released(&alice, scope));
    }
    let (id_token, userinfo) = claims_after_sign_in(app, scopes).await;
    assert_eq!(Value::Object(id_token), Value::Object(expected.clone()));
    assert_eq!(Value::Object(userinfo), Value::Object(expected.clone()));

    // Discovery names every claim released (Discovery 1.0 §3 `claims_supported`).
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    let supported = discovery["claims_supported"].as_array().unwrap();
    for claim in expected.keys() {
        assert!(supported.contains(&json!(claim)), "{claim}: {supported:?}");
    }
}

/// Sign alice in with `openid` and `scopes` as a stock relying party: the user claims of her
/// ID token (its protocol claims taken out) and the UserInfo response.
async fn claims_after_sign_in(
    app: &TestApp,
    scopes: &[&str],
) -> (Map<String, Value>, Map<String, Value>) {
    let client = stock_client(app).await;
    let scope = [&["openid"][..], scopes].concat().join(" ");
    let mut params: Vec<_> = stock_params(&client, &[])
        .into_iter()
        .filter(|(name, _)| *name != "scope")
        .collect();
    params.push(("scope", &scope));
    let redirect = sign_in(app, &params).await;
    let body = ok_json(app.redeem(&client, &redirect["code"], None).await).await;
    let mut granted: Vec<&str> = body["scope"].as_str().unwrap().split(' ').collect();
    let mut asked: Vec<&str> = scope.split(' ').collect();
    granted.sort_unstable();
    asked.sort_unstable();
    assert_eq!(granted, asked, "{body}");

    let mut id_token = verified_id_token(app, &client, &body)
        .await
        .as_object()
        .cloned()
        .unwrap();
    for claim in ID_TOKEN_CLAIMS {
        id_token.remove(claim);
    }

    let access_token = body["access_token"].as_str().unwrap();
    let response = app.userinfo(access_token).await;
    let userinfo = ok_json(response).await.as_object().cloned().unwrap();
    (id_token, userinfo)
}

/// oidcc-scope-profile: the name claims, `preferred_username`, `picture`, `locale` and
/// `updated_at` (the time of her last change, not of the sign-in).
async fn oidcc_scope_profile(app: TestApp) {
    sign_in_with_scopes(&app, &["profile"]).await;
}

/// oidcc-scope-email: the address and the operator's word that it was verified.
async fn oidcc_scope_email(app: TestApp) {
    sign_in_with_scopes(&app, &["email"]).await;
}

/// oidcc-scope-address: the `address` object, with only the members alice has.
async fn oidcc_scope_address(app: TestApp) {
    sign_in_with_scopes(&app, &["address"]).await;
}

/// oidcc-scope-phone: the phone number (Valet stores no `phone_number_verified`).
async fn oidcc_scope_phone(app: TestApp) {
    sign_in_with_scopes(&app, &["phone"]).await;
}

/// oidcc-scope-all: all four scopes at once release the union of their claims.
async fn oidcc_scope_all(app: TestApp) {
    sign_in_with_scopes(&app, &["profile", "email", "address", "phone"]).await;
}

/// A claim the user has no value for is left out, never `null`: alice as the fixture makes
/// her (an email address and a name, nothing else) asks for every scope.
async fn claims_the_user_lacks_are_left_out(app: TestApp) {
    let id = app.create_alice().await;
    let alice = app.stored_user("alice").await;
    let expected = json!({
        "sub": id,
        "name": "Alice Liddell",
        "preferred_username": "alice",
        "updated_at": alice.updated_at.0,
        "email": "alice@example.com",
    });
    let (id_token, userinfo) =
        claims_after_sign_in(&app, &["profile", "email", "address", "phone"]).await;
    assert_eq!(Value::Object(id_token), expected);
    assert_eq!(Value::Object(userinfo), expected);
}

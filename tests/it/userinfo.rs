//! `/userinfo` (OpenID Connect Core §5.3) over HTTP: the claims each scope releases, the three
//! ways a token may be sent, RFC 6750 §3 errors for everything else, and CORS.

use serde_json::{Value, json};

use valet::domain::GrantType;

use crate::harness::fixtures::{CALLBACK, Creds, NewClient, code_params, str_of};
use crate::harness::flow::Pkce;
use crate::harness::{CONTACTS, TestApp};
use crate::store_tests;

store_tests!(
    userinfo_releases_the_claims_of_the_granted_scopes,
    userinfo_accepts_the_token_in_the_header_or_the_body,
    userinfo_refuses_missing_bad_and_unscoped_tokens,
    userinfo_refuses_revoked_tokens_and_disabled_users,
    userinfo_answers_the_origins_of_the_tokens_client
);

const SPA: &str = "https://spa.example.com";

const OPENID_SCOPES: &str = "read:contacts openid profile email";

/// A confidential client allowed the password grant with the OpenID scopes.
async fn openid_client(app: &TestApp) -> Creds {
    app.create_contacts_api().await;
    let client = NewClient::web(CALLBACK, OPENID_SCOPES)
        .grants(&[GrantType::Password])
        .allowed_origin(SPA);
    app.create_web_client(client).await.creds()
}

/// Alice's access token for `scope`, by the password grant.
async fn token_for(app: &TestApp, client: &Creds, scope: &str) -> String {
    let body = app.password_tokens(client, "alice", Some(scope)).await;
    str_of(&body, "access_token").to_owned()
}

async fn get_with(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The claims of a 200 answer, which must not be cached.
async fn claims(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn userinfo_releases_the_claims_of_the_granted_scopes(app: TestApp) {
    let id = app.create_alice().await;
    let client = openid_client(&app).await;

    // Through the front door: authorization code with PKCE, consent to all three scopes.
    let web = app
        .create_web_client(NewClient::web(CALLBACK, OPENID_SCOPES))
        .await;
    let pkce = Pkce::new();
    let params = code_params(&web, &pkce, "openid profile email read:contacts");
    let code = app.sign_in_and_allow(&params, "alice").await["code"].clone();
    let body = app.redeemed(&web, &code, &pkce.verifier).await;
    let all = claims(get_with(&app, body["access_token"].as_str().unwrap()).await).await;
    assert_eq!(all["sub"], id.as_str(), "the token's sub");
    assert_eq!(all["name"], "Alice Liddell");
    assert_eq!(all["preferred_username"], "alice");
    assert_eq!(all["email"], "alice@example.com");
    assert!(all["updated_at"].as_i64().unwrap() > 1_700_000_000, "{all}");
    assert!(all.get("email_verified").is_none(), "Valet never verifies");

    // Each scope releases its own claims and no others.
    let only_openid = token_for(&app, &client, "openid read:contacts").await;
    assert_eq!(
        claims(get_with(&app, &only_openid).await).await,
        json!({"sub": id})
    );
    let email = token_for(&app, &client, "openid email").await;
    assert_eq!(
        claims(get_with(&app, &email).await).await,
        json!({"sub": id, "email": "alice@example.com"})
    );

    // Discovery points at it.
    let openid = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(openid["userinfo_endpoint"], app.url("/userinfo"));
    assert_eq!(openid["subject_types_supported"], json!(["public"]));
    assert!(
        openid["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("email"))
    );
}

async fn userinfo_accepts_the_token_in_the_header_or_the_body(app: TestApp) {
    app.create_alice().await;
    let client = openid_client(&app).await;
    let token = token_for(&app, &client, "openid profile").await;
    let expected = claims(get_with(&app, &token).await).await;
    assert_eq!(expected["preferred_username"], "alice");

    let by_post_header = app
        .http
        .post(app.url("/userinfo"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        claims(by_post_header).await,
        expected,
        "scheme is case-insensitive"
    );
    let by_body = app
        .post_form("/userinfo", None, &[("access_token", &token)])
        .await;
    assert_eq!(claims(by_body).await, expected, "RFC 6750 §2.2");

    // Both at once is ambiguous (RFC 6750 §2): refused, not guessed.
    let both = app
        .http
        .post(app.url("/userinfo"))
        .bearer_auth(&token)
        .form(&[("access_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    assert!(challenge(&both).contains(r#"error="invalid_request""#));
}

async fn userinfo_refuses_missing_bad_and_unscoped_tokens(app: TestApp) {
    app.create_alice().await;
    let client = openid_client(&app).await;

    // No token: 401 and a challenge without an error code (RFC 6750 §3.1).
    let none = app.get("/userinfo").await;
    assert_eq!(none.status(), 401);
    assert_eq!(challenge(&none), r#"Bearer realm="valet""#);
    // The query is not a place for tokens here (RFC 6750 §2.3 is optional; Valet declines).
    let token = token_for(&app, &client, "openid").await;
    let in_query = app.get(&format!("/userinfo?access_token={token}")).await;
    assert_eq!(in_query.status(), 401);
    let basic = app
        .http
        .get(app.url("/userinfo"))
        .basic_auth(&client.id, Some(&client.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(
        basic.status(),
        401,
        "client credentials are not a bearer token"
    );

    for bad in ["garbage", "a.b.c", &format!("{token}x")] {
        let response = get_with(&app, bad).await;
        assert_eq!(response.status(), 401, "{bad}");
        let challenge = challenge(&response);
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }

    // Valid tokens without `openid`: a user's, and a client's own.
    let unscoped = token_for(&app, &client, "read:contacts").await;
    let service = app.create_service_client("read:contacts").await;
    let service = app.service_token(&service, CONTACTS).await;
    for token in [&unscoped, &service] {
        let response = get_with(&app, token).await;
        assert_eq!(response.status(), 403);
        assert!(challenge(&response).contains(r#"error="insufficient_scope""#));
    }
}

async fn userinfo_refuses_revoked_tokens_and_disabled_users(app: TestApp) {
    app.create_alice().await;
    let client = openid_client(&app).await;
    let revoked = token_for(&app, &client, "openid").await;
    let kept = token_for(&app, &client, "openid").await;
    assert_eq!(get_with(&app, &revoked).await.status(), 200);

    let response = app
        .post_form("/revoke", Some(client.basic()), &[("token", &revoked)])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(get_with(&app, &revoked).await.status(), 401);
    assert_eq!(get_with(&app, &kept).await.status(), 200, "only that token");

    app.set_user_disabled("alice", true).await;
    assert_eq!(get_with(&app, &kept).await.status(), 401);
    app.set_user_disabled("alice", false).await;
    // Disabling revoked the user's grants (security finding 13): enabling her again does
    // not bring tokens issued before back (this asserted 200 before). New ones work.
    assert_eq!(get_with(&app, &kept).await.status(), 401, "enabled again");
    let fresh = token_for(&app, &client, "openid").await;
    assert_eq!(get_with(&app, &fresh).await.status(), 200, "a new token");
}

async fn userinfo_answers_the_origins_of_the_tokens_client(app: TestApp) {
    app.create_alice().await;
    let client = openid_client(&app).await;
    let token = token_for(&app, &client, "openid").await;
    let from = |origin: &'static str| {
        app.http
            .get(app.url("/userinfo"))
            .bearer_auth(&token)
            .header("origin", origin)
            .send()
    };
    let allowed = from(SPA).await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], SPA);
    let foreign = from("https://evil.example").await.unwrap();
    assert_eq!(foreign.status(), 200, "CORS is the browser's business");
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/userinfo"))
        .header("origin", SPA)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-methods"],
        "GET, POST"
    );
}

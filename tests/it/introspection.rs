//! Token introspection (RFC 7662) over HTTP: who may ask, what an active access or refresh
//! token is described as, and every way a token stops being active, which must then answer
//! exactly `{"active": false}` (§2.2). Refresh tokens are introspected by their own client:
//! no one else may see them (§4, SPEC §7; security_tokens.rs holds the rule). The helpers
//! here are shared with `revocation.rs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::flow::{Pkce, WebClient, location, redirect_params};
use crate::harness::{self, Backend, CONTACTS, TestApp, basic_header};
use crate::{backend_tests, store_tests};

store_tests!(
    introspection_needs_a_confidential_client,
    active_user_access_token_carries_its_claims,
    active_client_credentials_token_has_no_username,
    active_refresh_token_describes_its_grant,
    garbage_and_foreign_tokens_are_inactive,
    revoked_access_token_is_inactive,
    rotated_and_revoked_refresh_tokens_are_inactive,
    tokens_of_a_disabled_or_deleted_user_are_inactive,
    tokens_of_a_deleted_client_are_inactive,
    tokens_of_a_replayed_code_are_inactive
);
backend_tests!(expired_tokens_are_inactive);

pub const CALLBACK: &str = "https://app.example.com/callback";

/// A confidential client's credentials.
pub struct Creds {
    pub id: String,
    pub secret: String,
}

impl Creds {
    pub fn basic(&self) -> (&str, &str) {
        (&self.id, &self.secret)
    }
}

/// The Contacts API and a confidential client_credentials client that introspects
/// (a resource server).
pub async fn resource_server(app: &TestApp) -> Creds {
    app.create_contacts_api().await;
    let (id, secret) = app.create_service_client("read:contacts").await;
    Creds { id, secret }
}

/// A confidential client allowed the password and refresh_token grants.
pub async fn password_client(app: &TestApp) -> Creds {
    let client = app
        .create_web_client(
            CALLBACK,
            "read:contacts create:contacts",
            &["--grant-type", "password", "--grant-type", "refresh_token"],
        )
        .await;
    Creds {
        id: client.client_id,
        secret: client.secret.expect("a confidential client has a secret"),
    }
}

/// A public client allowed the code flow and refresh tokens.
pub async fn public_code_client(app: &TestApp) -> WebClient {
    app.create_web_client(
        CALLBACK,
        "read:contacts create:contacts",
        &[
            "--public",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
        ],
    )
    .await
}

/// `POST path` with a form, and HTTP Basic credentials when given.
pub async fn post(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app.http.post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        request = request.header("authorization", basic_header(id, secret));
    }
    request.send().await.expect("POST")
}

/// Introspect `token` as `caller` (Basic); the answer must be 200, `no-store`, JSON.
pub async fn introspect(app: &TestApp, caller: &Creds, token: &str, hint: Option<&str>) -> Value {
    let mut form = vec![("token", token)];
    if let Some(hint) = hint {
        form.push(("token_type_hint", hint));
    }
    let response = post(app, "/introspect", Some(caller.basic()), &form).await;
    assert_eq!(response.status(), 200, "introspection of {token:?}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.expect("introspection JSON")
}

/// Assert that `token` is inactive, with and without either hint, and that the answer says
/// nothing more than that.
pub async fn assert_inactive(app: &TestApp, caller: &Creds, token: &str, what: &str) {
    for hint in [None, Some("access_token"), Some("refresh_token")] {
        assert_eq!(
            introspect(app, caller, token, hint).await,
            json!({"active": false}),
            "{what} (hint {hint:?})"
        );
    }
}

pub async fn assert_active(app: &TestApp, caller: &Creds, token: &str, what: &str) {
    let answer = introspect(app, caller, token, None).await;
    assert_eq!(answer["active"], true, "{what}: {answer}");
}

/// The password grant for `username` (created here) through `client`: the token response.
pub async fn password_tokens(app: &TestApp, client: &Creds, username: &str) -> Value {
    app.create_user(username).await;
    let response = app
        .token(
            Some(client.basic()),
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", harness::flow::PASSWORD),
                ("audience", CONTACTS),
                ("scope", "read:contacts create:contacts"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    assert!(body["refresh_token"].is_string(), "{body}");
    body
}

/// `grant_type=refresh_token` as a confidential client.
pub async fn refresh(app: &TestApp, client: &Creds, refresh_token: &str) -> reqwest::Response {
    app.token(
        Some(client.basic()),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A refresh that must succeed: the new token response.
pub async fn refreshed(app: &TestApp, client: &Creds, refresh_token: &str) -> Value {
    let response = refresh(app, client, refresh_token).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// The error code of a 400 answer.
pub async fn error_400(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().expect("error code").to_owned()
}

/// The `/authorize` parameters of a code request with PKCE for `client`.
pub fn code_params<'a>(client: &'a WebClient, pkce: &'a Pkce) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", &client.client_id),
        ("redirect_uri", &client.redirect_uri),
        ("scope", "read:contacts"),
        ("audience", CONTACTS),
        ("state", "s"),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// Sign `username` (created here) in at `/authorize` for `client` and return a code.
pub async fn fresh_code(app: &TestApp, client: &WebClient, pkce: &Pkce, username: &str) -> String {
    app.create_user(username).await;
    app.sign_in_and_allow(&code_params(client, pkce), username)
        .await["code"]
        .clone()
}

/// A public client's refresh (client_id in the body).
pub async fn public_refresh(
    app: &TestApp,
    client: &WebClient,
    refresh_token: &str,
) -> reqwest::Response {
    app.token(
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &client.client_id),
        ],
    )
    .await
}

fn str_of<'a>(body: &'a Value, key: &str) -> &'a str {
    body[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

async fn introspection_needs_a_confidential_client(app: TestApp) {
    let caller = resource_server(&app).await;
    let token = app.service_token(caller.basic()).await;

    let invalid_client = |response: reqwest::Response, basic: bool, what: &'static str| async move {
        assert_eq!(response.status(), 401, "{what}");
        if basic {
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Basic"), "{what}: {challenge}");
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{what}: {body}");
        assert!(body.get("active").is_none(), "{what}: {body}");
    };
    invalid_client(
        post(&app, "/introspect", None, &[("token", &token)]).await,
        false,
        "no client authentication",
    )
    .await;
    invalid_client(
        post(
            &app,
            "/introspect",
            Some((&caller.id, "wrong-secret")),
            &[("token", &token)],
        )
        .await,
        true,
        "wrong secret with Basic",
    )
    .await;
    invalid_client(
        post(
            &app,
            "/introspect",
            None,
            &[
                ("token", &token),
                ("client_id", &caller.id),
                ("client_secret", "wrong-secret"),
            ],
        )
        .await,
        false,
        "wrong secret in the body",
    )
    .await;
    invalid_client(
        post(
            &app,
            "/introspect",
            None,
            &[("token", &token), ("client_id", &caller.id)],
        )
        .await,
        false,
        "a confidential client's id without its secret",
    )
    .await;
    let public = public_code_client(&app).await;
    invalid_client(
        post(
            &app,
            "/introspect",
            None,
            &[("token", &token), ("client_id", &public.client_id)],
        )
        .await,
        false,
        "a public client",
    )
    .await;

    // client_secret_post works as well as Basic.
    let response = post(
        &app,
        "/introspect",
        None,
        &[
            ("token", &token),
            ("client_id", &caller.id),
            ("client_secret", &caller.secret),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["active"], true);

    let response = post(&app, "/introspect", Some(caller.basic()), &[]).await;
    assert_eq!(
        error_400(response).await,
        "invalid_request",
        "token missing"
    );
}

async fn active_user_access_token_carries_its_claims(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let access = str_of(&tokens, "access_token");
    let (_, claims) = harness::verify_with_jwks(&app, access, CONTACTS).await;
    let user_id = app.cli_json(&["user", "show", "alice", "--json"]).await["id"].clone();

    for hint in [None, Some("access_token"), Some("refresh_token")] {
        let answer = introspect(&app, &caller, access, hint).await;
        assert_eq!(answer["active"], true, "{answer}");
        assert_eq!(answer["token_type"], "Bearer");
        assert_eq!(answer["username"], "alice");
        for claim in [
            "scope",
            "client_id",
            "exp",
            "iat",
            "sub",
            "aud",
            "iss",
            "jti",
        ] {
            assert!(!claims[claim].is_null(), "the token carries {claim}");
            assert_eq!(answer[claim], claims[claim], "{claim} (hint {hint:?})");
        }
        assert_eq!(answer["scope"], "create:contacts read:contacts");
        assert_eq!(answer["client_id"], client.id.as_str());
        assert_eq!(answer["sub"], user_id);
        assert_eq!(answer["aud"], CONTACTS);
        assert_eq!(answer["iss"], app.base);
    }

    // The same through the authorization code flow of a public client.
    let public = public_code_client(&app).await;
    let pkce = Pkce::new();
    let code = fresh_code(&app, &public, &pkce, "bob").await;
    let response = app.redeem(&public, &code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = str_of(&tokens, "access_token");
    let (_, claims) = harness::verify_with_jwks(&app, access, CONTACTS).await;
    let answer = introspect(&app, &caller, access, None).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["username"], "bob");
    for claim in [
        "scope",
        "client_id",
        "exp",
        "iat",
        "sub",
        "aud",
        "iss",
        "jti",
    ] {
        assert_eq!(answer[claim], claims[claim], "{claim}");
    }
    assert_eq!(answer["client_id"], public.client_id.as_str());
    assert_eq!(answer["scope"], "read:contacts");
}

async fn active_client_credentials_token_has_no_username(app: TestApp) {
    let caller = resource_server(&app).await;
    let (id, secret) = app
        .create_service_client("read:contacts create:contacts")
        .await;
    let response = app
        .token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("audience", CONTACTS),
                ("scope", "create:contacts"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = str_of(&tokens, "access_token");
    let (_, claims) = harness::verify_with_jwks(&app, access, CONTACTS).await;

    let answer = introspect(&app, &caller, access, None).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert!(
        answer.get("username").is_none(),
        "no user behind client_credentials: {answer}"
    );
    for claim in [
        "scope",
        "client_id",
        "exp",
        "iat",
        "sub",
        "aud",
        "iss",
        "jti",
    ] {
        assert_eq!(answer[claim], claims[claim], "{claim}");
    }
    assert_eq!(answer["scope"], "create:contacts");
    assert_eq!(answer["client_id"], id.as_str());
    assert_eq!(answer["sub"], id.as_str());

    // A client may introspect its own token too.
    let own = introspect(
        &app,
        &Creds {
            id: id.clone(),
            secret,
        },
        access,
        None,
    )
    .await;
    assert_eq!(own, answer);
}

async fn active_refresh_token_describes_its_grant(app: TestApp) {
    // RFC 7662 §4 (SPEC §7): only the client a refresh token was issued to sees it.
    app.create_contacts_api().await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let user_id = app.cli_json(&["user", "show", "alice", "--json"]).await["id"].clone();
    let refresh_token = str_of(&tokens, "refresh_token");

    for hint in [None, Some("access_token"), Some("refresh_token")] {
        let answer = introspect(&app, &client, refresh_token, hint).await;
        assert_eq!(answer["active"], true, "{answer}");
        assert_eq!(answer["token_type"], "refresh_token");
        assert_eq!(answer["scope"], "create:contacts read:contacts");
        assert_eq!(answer["client_id"], client.id.as_str());
        assert_eq!(answer["username"], "alice");
        assert_eq!(answer["sub"], user_id);
        assert_eq!(answer["aud"], CONTACTS);
        assert_eq!(answer["iss"], app.base);
        if let (Some(exp), Some(iat)) = (answer["exp"].as_i64(), answer["iat"].as_i64()) {
            assert!(exp > iat, "{answer}");
        }
    }

    // Its successor after a refresh is described the same way.
    let next = refreshed(&app, &client, refresh_token).await;
    let answer = introspect(&app, &client, str_of(&next, "refresh_token"), None).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["sub"], user_id);
}

/// An access token with Valet's header fields and plausible claims, signed by a key Valet
/// has never seen.
fn foreign_claims(app: &TestApp, client_id: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({
        "iss": app.base,
        "sub": client_id,
        "aud": CONTACTS,
        "exp": now + 3600,
        "iat": now,
        "jti": "forged-jti-0123456789",
        "client_id": client_id,
        "scope": "read:contacts",
    })
}

async fn garbage_and_foreign_tokens_are_inactive(app: TestApp) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let caller = resource_server(&app).await;
    let real = app.service_token(caller.basic()).await;
    let real_kid = jsonwebtoken::decode_header(&real).unwrap().kid.unwrap();
    let claims = foreign_claims(&app, &caller.id);

    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        assert_inactive(&app, &caller, garbage, &format!("garbage {garbage:?}")).await;
    }

    // HS256 with a secret, under the kid of Valet's real key.
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(real_kid.clone());
    let hs256 = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(b"a secret valet does not know"),
    )
    .unwrap();
    assert_inactive(&app, &caller, &hs256, "HS256 token with a real kid").await;

    // ES256 with a fresh key, under the real kid and under a kid of its own.
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let ec_key = EncodingKey::from_ec_der(pkcs8.as_ref());
    for kid in [real_kid.as_str(), "forged-kid"] {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid.to_owned());
        let es256 = jsonwebtoken::encode(&header, &claims, &ec_key).unwrap();
        assert_inactive(&app, &caller, &es256, &format!("ES256 token, kid {kid}")).await;
    }

    // Valet's own token with its payload swapped: the signature no longer matches.
    let mut parts: Vec<&str> = real.split('.').collect();
    let forged_payload = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).unwrap())
    };
    parts[1] = &forged_payload;
    let tampered = parts.join(".");
    assert_inactive(&app, &caller, &tampered, "tampered payload").await;

    // The real token is still fine.
    assert_active(&app, &caller, &real, "the genuine token").await;
}

async fn expired_tokens_are_inactive(backend: Backend) {
    let app = harness::spawn_with(backend, |config| {
        config.tokens.access_token_ttl = valet::config::ConfigDuration::secs(1);
        config.tokens.refresh_idle_ttl = valet::config::ConfigDuration::secs(4);
    })
    .await;
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let user_tokens = password_tokens(&app, &client, "alice").await;
    let service_access = &app.service_token(caller.basic()).await;
    let user_access = str_of(&user_tokens, "access_token");
    assert_eq!(user_tokens["expires_in"], 1);

    app.advance(Duration::from_secs(2));
    assert_inactive(&app, &caller, user_access, "expired user access token").await;
    assert_inactive(&app, &caller, service_access, "expired service token").await;
    // The refresh token lives on its own clock (idle lifetime 4 s here)...
    let refresh_token = str_of(&user_tokens, "refresh_token");
    assert_active(&app, &client, refresh_token, "the refresh token").await;
    // ...and is inactive once that has passed too.
    app.advance(Duration::from_secs(3));
    assert_inactive(&app, &client, refresh_token, "idle-expired refresh token").await;
}

async fn revoked_access_token_is_inactive(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let access = str_of(&tokens, "access_token");
    assert_active(&app, &caller, access, "before revocation").await;
    let response = post(&app, "/revoke", Some(client.basic()), &[("token", access)]).await;
    assert_eq!(response.status(), 200);
    assert_inactive(&app, &caller, access, "revoked access token").await;
}

async fn rotated_and_revoked_refresh_tokens_are_inactive(app: TestApp) {
    app.create_contacts_api().await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let first = str_of(&tokens, "refresh_token");
    let next = refreshed(&app, &client, first).await;
    let second = str_of(&next, "refresh_token");
    assert_ne!(first, second, "refresh tokens rotate");

    assert_inactive(&app, &client, first, "rotated refresh token").await;
    assert_active(&app, &client, second, "its successor").await;

    let response = post(
        &app,
        "/revoke",
        Some(client.basic()),
        &[("token", second), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_inactive(&app, &client, second, "revoked refresh token").await;
    assert_inactive(&app, &client, first, "rotated refresh token").await;
}

async fn tokens_of_a_disabled_or_deleted_user_are_inactive(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");
    let bob = password_tokens(&app, &client, "bob").await;
    let bob_access = str_of(&bob, "access_token");
    let bob_refresh = str_of(&bob, "refresh_token");
    assert_active(&app, &caller, access, "access token before").await;
    assert_active(&app, &client, refresh_token, "refresh token before").await;

    app.cli_ok(&["user", "disable", "alice"]).await;
    assert_inactive(&app, &caller, access, "access token of a disabled user").await;
    assert_inactive(
        &app,
        &client,
        refresh_token,
        "refresh token of a disabled user",
    )
    .await;
    assert_active(&app, &caller, bob_access, "another user's access token").await;
    assert_active(&app, &client, bob_refresh, "another user's refresh token").await;

    // A deleted user's tokens are inactive too.
    app.cli_ok(&["user", "delete", "bob"]).await;
    assert_inactive(&app, &caller, bob_access, "access token of a deleted user").await;
    assert_inactive(
        &app,
        &client,
        bob_refresh,
        "refresh token of a deleted user",
    )
    .await;
}

async fn tokens_of_a_deleted_client_are_inactive(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");
    let (service_id, service_secret) = app.create_service_client("read:contacts").await;
    let service_access = app.service_token((&service_id, &service_secret)).await;
    for token in [access, service_access.as_str()] {
        assert_active(&app, &caller, token, "before the delete").await;
    }
    assert_active(&app, &client, refresh_token, "before the delete").await;

    for id in [&client.id, &service_id] {
        app.cli_ok(&["client", "delete", id]).await;
    }
    // The client cache lives 1 s in tests.
    app.advance(Duration::from_secs(2));
    assert_inactive(
        &app,
        &caller,
        access,
        "user access token of a deleted client",
    )
    .await;
    // Its client can no longer ask, and to anyone else it is inactive anyway.
    assert_inactive(
        &app,
        &caller,
        refresh_token,
        "refresh token of a deleted client",
    )
    .await;
    assert_inactive(
        &app,
        &caller,
        &service_access,
        "client_credentials token of a deleted client",
    )
    .await;
}

async fn tokens_of_a_replayed_code_are_inactive(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = public_code_client(&app).await;
    let pkce = Pkce::new();
    let code = fresh_code(&app, &client, &pkce, "alice").await;
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");
    assert_active(&app, &caller, access, "access token before the replay").await;
    // A public client cannot introspect, and its refresh tokens are no one else's to see
    // (RFC 7662 §4): they are checked by refreshing below.

    let replay = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(error_400(replay).await, "invalid_grant");
    assert_inactive(&app, &caller, access, "access token of a replayed code").await;
    assert_inactive(
        &app,
        &caller,
        refresh_token,
        "refresh token of a replayed code",
    )
    .await;

    // And the refresh token no longer refreshes.
    let response = public_refresh(&app, &client, refresh_token).await;
    assert_eq!(error_400(response).await, "invalid_grant");

    // A code whose tokens were refreshed before the replay: the refreshed ones go too.
    // (Signed in, consent given: /authorize answers with a code straight away.)
    let response = app.authorize(&code_params(&client, &pkce)).await;
    let code = redirect_params(&location(&response))["code"].clone();
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
    let first: Value = response.json().await.unwrap();
    let response = public_refresh(&app, &client, str_of(&first, "refresh_token")).await;
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    for token in [
        str_of(&first, "access_token"),
        str_of(&second, "access_token"),
    ] {
        assert_active(&app, &caller, token, "before the second replay").await;
    }
    let replay = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(error_400(replay).await, "invalid_grant");
    assert_inactive(
        &app,
        &caller,
        str_of(&first, "access_token"),
        "first access token of a replayed code",
    )
    .await;
    assert_inactive(
        &app,
        &caller,
        str_of(&second, "access_token"),
        "access token refreshed from a replayed code",
    )
    .await;
    let response = public_refresh(&app, &client, str_of(&second, "refresh_token")).await;
    assert_eq!(
        error_400(response).await,
        "invalid_grant",
        "refresh token rotated from a replayed code"
    );
}

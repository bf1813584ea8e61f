//! Token introspection (RFC 7662) over HTTP: who may ask, what an active access or refresh
//! token is described as, and every way a token stops being active, which must then answer
//! exactly `{"active": false}` (§2.2). Refresh tokens are introspected by their own client:
//! no one else may see them (§4, SPEC §7; security_tokens.rs holds the rule).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::fixtures::{
    BadAuth, CodeGrant, code_params, error_400, failed_authentications, str_of, verify_with_jwks,
};
use crate::harness::{self, Backend, CONTACTS, TestApp};
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

/// The claims of an access token that an active answer repeats.
const TOKEN_CLAIMS: [&str; 8] = [
    "scope",
    "client_id",
    "exp",
    "iat",
    "sub",
    "aud",
    "iss",
    "jti",
];

/// An active access token's introspection answer: active, Bearer, and the token's own claims.
fn assert_describes_access_token(answer: &Value, claims: &Value, what: &str) {
    assert_eq!(answer["active"], true, "{what}: {answer}");
    assert_eq!(answer["token_type"], "Bearer", "{what}");
    for claim in TOKEN_CLAIMS {
        assert!(!claims[claim].is_null(), "the token carries {claim}");
        assert_eq!(answer[claim], claims[claim], "{claim} ({what})");
    }
}

async fn introspection_needs_a_confidential_client(app: TestApp) {
    let caller = app.create_resource_server().await;
    let token = app.service_token(&caller, CONTACTS).await;

    let public = app.create_public_code_client().await;
    let mut attempts = failed_authentications(&caller);
    attempts.push(BadAuth {
        basic: None,
        fields: vec![("client_id", &public.client_id)],
        what: "a public client",
    });
    for attempt in &attempts {
        let body = app
            .assert_invalid_client("/introspect", attempt, &[("token", &token)])
            .await;
        assert!(body.get("active").is_none(), "{}: {body}", attempt.what);
    }

    // client_secret_post works as well as Basic.
    let response = app
        .post_form(
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

    let response = app
        .post_form("/introspect", Some(caller.basic()), &[])
        .await;
    assert_eq!(
        error_400(response).await,
        "invalid_request",
        "token missing"
    );
}

async fn active_user_access_token_carries_its_claims(app: TestApp) {
    let (caller, client, tokens) = app.alice_signed_in().await;
    let access = str_of(&tokens, "access_token");
    let (_, claims) = verify_with_jwks(&app, access, CONTACTS).await;
    let user_id = app.user_id("alice").await;

    for hint in [None, Some("access_token"), Some("refresh_token")] {
        let answer = app.introspect(&caller, access, hint).await;
        assert_describes_access_token(&answer, &claims, &format!("hint {hint:?}"));
        assert_eq!(answer["username"], "alice");
        assert_eq!(answer["scope"], "create:contacts read:contacts");
        assert_eq!(answer["client_id"], client.id.as_str());
        assert_eq!(answer["sub"], user_id);
        assert_eq!(answer["aud"], CONTACTS);
        assert_eq!(answer["iss"], app.base);
    }

    // The same through the authorization code flow of a public client.
    let CodeGrant {
        client: public,
        tokens,
        ..
    } = app.public_code_grant("bob").await;
    let access = str_of(&tokens, "access_token");
    let (_, claims) = verify_with_jwks(&app, access, CONTACTS).await;
    let answer = app.introspect(&caller, access, None).await;
    assert_describes_access_token(&answer, &claims, "code flow");
    assert_eq!(answer["username"], "bob");
    assert_eq!(answer["client_id"], public.client_id.as_str());
    assert_eq!(answer["scope"], "read:contacts");
}

async fn active_client_credentials_token_has_no_username(app: TestApp) {
    let caller = app.create_resource_server().await;
    let service = app
        .create_service_client("read:contacts create:contacts")
        .await;
    let tokens = app
        .token_ok(
            Some(service.basic()),
            &[
                ("grant_type", "client_credentials"),
                ("audience", CONTACTS),
                ("scope", "create:contacts"),
            ],
        )
        .await;
    let access = str_of(&tokens, "access_token");
    let (_, claims) = verify_with_jwks(&app, access, CONTACTS).await;

    let answer = app.introspect(&caller, access, None).await;
    assert_describes_access_token(&answer, &claims, "client_credentials");
    assert!(
        answer.get("username").is_none(),
        "no user behind client_credentials: {answer}"
    );
    assert_eq!(answer["scope"], "create:contacts");
    assert_eq!(answer["client_id"], service.id.as_str());
    assert_eq!(answer["sub"], service.id.as_str());

    // A client may introspect its own token too.
    let own = app.introspect(&service, access, None).await;
    assert_eq!(own, answer);
}

async fn active_refresh_token_describes_its_grant(app: TestApp) {
    let (_, client, tokens) = app.alice_signed_in().await;
    let user_id = app.user_id("alice").await;
    let refresh_token = str_of(&tokens, "refresh_token");

    // RFC 7662 §4 (SPEC §7): only the client a refresh token was issued to sees it.
    for hint in [None, Some("access_token"), Some("refresh_token")] {
        let answer = app.introspect(&client, refresh_token, hint).await;
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
    let next = app.refreshed(&client, refresh_token, None).await;
    let answer = app
        .introspect(&client, str_of(&next, "refresh_token"), None)
        .await;
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

    let caller = app.create_resource_server().await;
    let real = app.service_token(&caller, CONTACTS).await;
    let real_kid = jsonwebtoken::decode_header(&real).unwrap().kid.unwrap();
    let claims = foreign_claims(&app, &caller.id);

    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        app.assert_inactive(&caller, garbage, &format!("garbage {garbage:?}"))
            .await;
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
    app.assert_inactive(&caller, &hs256, "HS256 token with a real kid")
        .await;

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
        app.assert_inactive(&caller, &es256, &format!("ES256 token, kid {kid}"))
            .await;
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
    app.assert_inactive(&caller, &tampered, "tampered payload")
        .await;

    // The real token is still fine.
    app.assert_active(&caller, &real, "the genuine token").await;
}

async fn expired_tokens_are_inactive(backend: Backend) {
    let app = harness::spawn_with(backend, |config| {
        config.tokens.access_token_ttl = valet::config::ConfigDuration::secs(1);
        config.tokens.refresh_idle_ttl = valet::config::ConfigDuration::secs(4);
    })
    .await;
    let (caller, client, user_tokens) = app.alice_signed_in().await;
    let service_access = &app.service_token(&caller, CONTACTS).await;
    let user_access = str_of(&user_tokens, "access_token");
    assert_eq!(user_tokens["expires_in"], 1);

    app.advance(Duration::from_secs(2));
    app.assert_inactive(&caller, user_access, "expired user access token")
        .await;
    app.assert_inactive(&caller, service_access, "expired service token")
        .await;
    // The refresh token lives on its own clock (idle lifetime 4 s here)...
    let refresh_token = str_of(&user_tokens, "refresh_token");
    app.assert_active(&client, refresh_token, "the refresh token")
        .await;
    // ...and is inactive once that has passed too.
    app.advance(Duration::from_secs(3));
    app.assert_inactive(&client, refresh_token, "idle-expired refresh token")
        .await;
}

async fn revoked_access_token_is_inactive(app: TestApp) {
    let (caller, client, tokens) = app.alice_signed_in().await;
    let access = str_of(&tokens, "access_token");
    app.assert_active(&caller, access, "before revocation")
        .await;
    let response = app
        .post_form("/revoke", Some(client.basic()), &[("token", access)])
        .await;
    assert_eq!(response.status(), 200);
    app.assert_inactive(&caller, access, "revoked access token")
        .await;
}

async fn rotated_and_revoked_refresh_tokens_are_inactive(app: TestApp) {
    let (_, client, tokens) = app.alice_signed_in().await;
    let first = str_of(&tokens, "refresh_token");
    let next = app.refreshed(&client, first, None).await;
    let second = str_of(&next, "refresh_token");
    assert_ne!(first, second, "refresh tokens rotate");

    app.assert_inactive(&client, first, "rotated refresh token")
        .await;
    app.assert_active(&client, second, "its successor").await;

    let response = app
        .post_form(
            "/revoke",
            Some(client.basic()),
            &[("token", second), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(response.status(), 200);
    app.assert_inactive(&client, second, "revoked refresh token")
        .await;
    app.assert_inactive(&client, first, "rotated refresh token")
        .await;
}

async fn tokens_of_a_disabled_or_deleted_user_are_inactive(app: TestApp) {
    let (caller, client, tokens) = app.alice_signed_in().await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");
    let bob = app.user_tokens(&client, "bob").await;
    let bob_access = str_of(&bob, "access_token");
    let bob_refresh = str_of(&bob, "refresh_token");
    app.assert_active(&caller, access, "access token before")
        .await;
    app.assert_active(&client, refresh_token, "refresh token before")
        .await;

    app.set_user_disabled("alice", true).await;
    app.assert_inactive(&caller, access, "access token of a disabled user")
        .await;
    app.assert_inactive(&client, refresh_token, "refresh token of a disabled user")
        .await;
    app.assert_active(&caller, bob_access, "another user's access token")
        .await;
    app.assert_active(&client, bob_refresh, "another user's refresh token")
        .await;

    // A deleted user's tokens are inactive too.
    app.delete_user("bob").await;
    app.assert_inactive(&caller, bob_access, "access token of a deleted user")
        .await;
    app.assert_inactive(&client, bob_refresh, "refresh token of a deleted user")
        .await;
}

async fn tokens_of_a_deleted_client_are_inactive(app: TestApp) {
    let (caller, client, tokens) = app.alice_signed_in().await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");
    let service = app.create_service_client("read:contacts").await;
    let service_access = app.service_token(&service, CONTACTS).await;
    for token in [access, service_access.as_str()] {
        app.assert_active(&caller, token, "before the delete").await;
    }
    app.assert_active(&client, refresh_token, "before the delete")
        .await;

    for id in [&client.id, &service.id] {
        app.delete_client(id).await;
    }
    // The client cache lives 1 s in tests.
    app.advance(Duration::from_secs(2));
    app.assert_inactive(&caller, access, "user access token of a deleted client")
        .await;
    // Its client can no longer ask, and to anyone else it is inactive anyway.
    app.assert_inactive(&caller, refresh_token, "refresh token of a deleted client")
        .await;
    app.assert_inactive(
        &caller,
        &service_access,
        "client_credentials token of a deleted client",
    )
    .await;
}

async fn tokens_of_a_replayed_code_are_inactive(app: TestApp) {
    let caller = app.create_resource_server().await;
    let CodeGrant {
        client,
        pkce,
        code,
        tokens,
    } = app.public_code_grant("alice").await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");
    app.assert_active(&caller, access, "access token before the replay")
        .await;
    // A public client cannot introspect, and its refresh tokens are no one else's to see
    // (RFC 7662 §4): they are checked by refreshing below.

    let replay = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(error_400(replay).await, "invalid_grant");
    app.assert_inactive(&caller, access, "access token of a replayed code")
        .await;
    app.assert_inactive(&caller, refresh_token, "refresh token of a replayed code")
        .await;

    // And the refresh token no longer refreshes.
    let response = app.refresh(&client, refresh_token, None).await;
    assert_eq!(error_400(response).await, "invalid_grant");

    // A code whose tokens were refreshed before the replay: the refreshed ones go too.
    // (Signed in, consent given: /authorize answers with a code straight away.)
    let params = code_params(&client, &pkce, "read:contacts");
    let code = app.code_without_pages(&params).await;
    let first = app.redeemed(&client, &code, &pkce.verifier).await;
    let response = app
        .refresh(&client, str_of(&first, "refresh_token"), None)
        .await;
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    for token in [
        str_of(&first, "access_token"),
        str_of(&second, "access_token"),
    ] {
        app.assert_active(&caller, token, "before the second replay")
            .await;
    }
    let replay = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(error_400(replay).await, "invalid_grant");
    app.assert_inactive(
        &caller,
        str_of(&first, "access_token"),
        "first access token of a replayed code",
    )
    .await;
    app.assert_inactive(
        &caller,
        str_of(&second, "access_token"),
        "access token refreshed from a replayed code",
    )
    .await;
    let response = app
        .refresh(&client, str_of(&second, "refresh_token"), None)
        .await;
    assert_eq!(
        error_400(response).await,
        "invalid_grant",
        "refresh token rotated from a replayed code"
    );
}

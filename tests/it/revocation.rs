//! Token revocation (RFC 7009) over HTTP: client authentication, refresh-token families, the
//! access-token deny list, the answers that must tell nothing (§2.2), and the refusal of
//! another client's token (§2.1).

use serde_json::{Value, json};

use crate::harness::flow::Pkce;
use crate::harness::{CONTACTS, TestApp};
use crate::introspection::{
    Creds, assert_active, assert_inactive, error_400, fresh_code, introspect, password_client,
    password_tokens, post, public_code_client, public_refresh, refresh, refreshed, resource_server,
};
use crate::store_tests;

store_tests!(
    revocation_needs_client_authentication,
    token_parameter_is_required,
    revoking_the_current_refresh_token_revokes_the_family,
    revoking_an_earlier_refresh_token_revokes_its_successor,
    revoking_an_access_token_denies_it,
    public_client_revokes_its_own_tokens,
    unknown_garbage_and_revoked_tokens_answer_200,
    another_clients_tokens_are_not_revoked,
    a_wrong_token_type_hint_still_revokes
);

/// How the revoking client authenticates.
#[derive(Clone, Copy)]
enum By<'a> {
    Basic(&'a Creds),
    Public(&'a str),
}

async fn revoke(app: &TestApp, by: By<'_>, token: &str, hint: Option<&str>) -> reqwest::Response {
    let mut form = vec![("token", token)];
    if let Some(hint) = hint {
        form.push(("token_type_hint", hint));
    }
    match by {
        By::Basic(creds) => post(app, "/revoke", Some(creds.basic()), &form).await,
        By::Public(client_id) => {
            form.push(("client_id", client_id));
            post(app, "/revoke", None, &form).await
        }
    }
}

/// §2.1: another client's valid token is refused (`invalid_grant`, RFC 6749 §5.2: "issued to
/// another client"), not cacheable either.
async fn assert_revoke_refused(response: reqwest::Response, what: &str) {
    assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
    assert_eq!(error_400(response).await, "invalid_grant", "{what}");
}

/// §2.2: 200, nothing in the body, and not cacheable.
async fn assert_revoke_ok(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 200, "{what}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
    let body = response.bytes().await.unwrap();
    assert!(body.is_empty(), "{what}: body {body:?}");
}

fn access_token_of(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("access_token")
}

fn refresh_token_of(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().expect("refresh_token")
}

async fn revocation_needs_client_authentication(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let access = access_token_of(&tokens);
    let refresh_token = refresh_token_of(&tokens);

    let unauthorized = |response: reqwest::Response, basic: bool, what: &'static str| async move {
        assert_eq!(response.status(), 401, "{what}");
        if basic {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
                .to_str()
                .unwrap();
            assert!(challenge.starts_with("Basic"), "{what}: {challenge}");
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{what}: {body}");
    };
    for token in [access, refresh_token] {
        unauthorized(
            post(&app, "/revoke", None, &[("token", token)]).await,
            false,
            "no client authentication",
        )
        .await;
        unauthorized(
            post(
                &app,
                "/revoke",
                Some((&client.id, "wrong-secret")),
                &[("token", token)],
            )
            .await,
            true,
            "wrong secret with Basic",
        )
        .await;
        unauthorized(
            post(
                &app,
                "/revoke",
                None,
                &[
                    ("token", token),
                    ("client_id", &client.id),
                    ("client_secret", "wrong-secret"),
                ],
            )
            .await,
            false,
            "wrong secret in the body",
        )
        .await;
        unauthorized(
            post(
                &app,
                "/revoke",
                None,
                &[("token", token), ("client_id", &client.id)],
            )
            .await,
            false,
            "a confidential client's id without its secret",
        )
        .await;
        unauthorized(
            post(
                &app,
                "/revoke",
                Some(("no-such-client", "secret")),
                &[("token", token)],
            )
            .await,
            true,
            "an unknown client",
        )
        .await;
    }
    // Nothing was revoked by the refused requests.
    assert_active(&app, &caller, access, "access token").await;
    assert_active(&app, &client, refresh_token, "refresh token").await;

    // client_secret_post is a valid way to authenticate.
    let response = post(
        &app,
        "/revoke",
        None,
        &[
            ("token", access),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ],
    )
    .await;
    assert_revoke_ok(response, "client_secret_post").await;
    assert_inactive(&app, &caller, access, "revoked with client_secret_post").await;
}

async fn token_parameter_is_required(app: TestApp) {
    app.create_contacts_api().await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let refresh_token = refresh_token_of(&tokens);

    let response = post(&app, "/revoke", Some(client.basic()), &[]).await;
    assert_eq!(error_400(response).await, "invalid_request", "no token");
    let response = post(
        &app,
        "/revoke",
        Some(client.basic()),
        &[("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(error_400(response).await, "invalid_request", "only a hint");
    let response = post(
        &app,
        "/revoke",
        Some(client.basic()),
        &[("token", refresh_token), ("token", refresh_token)],
    )
    .await;
    assert_eq!(
        error_400(response).await,
        "invalid_request",
        "token sent twice"
    );
    assert_active(&app, &client, refresh_token, "nothing revoked").await;
}

async fn revoking_the_current_refresh_token_revokes_the_family(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let first = refresh_token_of(&tokens);
    let next = refreshed(&app, &client, first).await;
    let current = refresh_token_of(&next);

    assert_revoke_ok(
        revoke(&app, By::Basic(&client), current, None).await,
        "revoke the current refresh token",
    )
    .await;
    assert_inactive(&app, &client, current, "revoked refresh token").await;
    assert_eq!(
        error_400(refresh(&app, &client, current).await).await,
        "invalid_grant",
        "a revoked refresh token does not refresh"
    );
    assert_eq!(
        error_400(refresh(&app, &client, first).await).await,
        "invalid_grant",
        "nor does its rotated parent"
    );
    // RFC 7009 §2.1: the access tokens of the same grant go with it.
    for access in [&tokens, &next] {
        let token = access["access_token"].as_str().unwrap();
        assert_inactive(&app, &caller, token, "access token of the revoked grant").await;
    }
}

async fn revoking_an_earlier_refresh_token_revokes_its_successor(app: TestApp) {
    app.create_contacts_api().await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let first = refresh_token_of(&tokens);
    let second = refreshed(&app, &client, first).await;
    let second = refresh_token_of(&second);
    let third = refreshed(&app, &client, second).await;
    let current = refresh_token_of(&third);
    assert_active(&app, &client, current, "current refresh token").await;

    // Revoke the first token of the family (rotated twice since), without using it.
    assert_revoke_ok(
        revoke(&app, By::Basic(&client), first, Some("refresh_token")).await,
        "revoke an earlier refresh token",
    )
    .await;
    assert_inactive(&app, &client, current, "the family's current token").await;
    assert_eq!(
        error_400(refresh(&app, &client, current).await).await,
        "invalid_grant",
        "the current token of a revoked family does not refresh"
    );

    // Another family of the same client and user is untouched.
    let response = app
        .token(
            Some(client.basic()),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", crate::harness::flow::PASSWORD),
                ("audience", CONTACTS),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let fresh: Value = response.json().await.unwrap();
    refreshed(&app, &client, refresh_token_of(&fresh)).await;
}

async fn revoking_an_access_token_denies_it(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let access = access_token_of(&tokens);
    let second: Value = app
        .token(
            Some(client.basic()),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", crate::harness::flow::PASSWORD),
                ("audience", CONTACTS),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let other_access = access_token_of(&second);

    assert_revoke_ok(
        revoke(&app, By::Basic(&client), access, Some("access_token")).await,
        "revoke a user access token",
    )
    .await;
    assert_inactive(&app, &caller, access, "revoked user access token").await;
    assert_active(
        &app,
        &caller,
        other_access,
        "another access token of the same client and user",
    )
    .await;

    // A client_credentials token, revoked by its own client.
    let (id, secret) = app.create_service_client("read:contacts").await;
    let service = Creds { id, secret };
    let service_access = &app.service_token(service.basic()).await;
    assert_active(&app, &caller, service_access, "service token before").await;
    assert_revoke_ok(
        revoke(&app, By::Basic(&service), service_access, None).await,
        "revoke a client_credentials token",
    )
    .await;
    assert_inactive(&app, &caller, service_access, "revoked service token").await;
}

async fn public_client_revokes_its_own_tokens(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = public_code_client(&app).await;
    let pkce = Pkce::new();
    let code = fresh_code(&app, &client, &pkce, "alice").await;
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = access_token_of(&tokens);
    let refresh_token = refresh_token_of(&tokens);

    // Rotate once, then revoke the successor by client_id alone.
    let response = public_refresh(&app, &client, refresh_token).await;
    assert_eq!(response.status(), 200);
    let next: Value = response.json().await.unwrap();
    let current = refresh_token_of(&next);

    assert_revoke_ok(
        revoke(&app, By::Public(&client.client_id), current, None).await,
        "a public client revokes its refresh token",
    )
    .await;
    assert_inactive(&app, &caller, current, "revoked by the public client").await;
    assert_eq!(
        error_400(public_refresh(&app, &client, current).await).await,
        "invalid_grant"
    );

    assert_revoke_ok(
        revoke(&app, By::Public(&client.client_id), access, None).await,
        "a public client revokes its access token",
    )
    .await;
    assert_inactive(
        &app,
        &caller,
        access,
        "access token revoked by the public client",
    )
    .await;

    // A public client's id with a secret it does not have is refused.
    let response = post(
        &app,
        "/revoke",
        None,
        &[
            ("token", access_token_of(&next)),
            ("client_id", &client.client_id),
            ("client_secret", "made-up"),
        ],
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

async fn unknown_garbage_and_revoked_tokens_answer_200(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let access = access_token_of(&tokens);
    let refresh_token = refresh_token_of(&tokens);

    let unknown_refresh = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8";
    for (token, hint) in [
        ("garbage", None),
        ("a.b.c", Some("access_token")),
        ("eyJhbGciOiJub25lIn0.e30.", None),
        (unknown_refresh, Some("refresh_token")),
        (unknown_refresh, None),
    ] {
        assert_revoke_ok(
            revoke(&app, By::Basic(&client), token, hint).await,
            &format!("unknown token {token:?}"),
        )
        .await;
    }

    for round in ["first", "second"] {
        assert_revoke_ok(
            revoke(&app, By::Basic(&client), access, None).await,
            &format!("access token, {round} revocation"),
        )
        .await;
        assert_revoke_ok(
            revoke(&app, By::Basic(&client), refresh_token, None).await,
            &format!("refresh token, {round} revocation"),
        )
        .await;
    }
    assert_inactive(&app, &caller, access, "access token revoked twice").await;
    assert_inactive(&app, &client, refresh_token, "refresh token revoked twice").await;

    // A rotated token revoked after its family was revoked: still 200.
    let tokens = app
        .token(
            Some(client.basic()),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", crate::harness::flow::PASSWORD),
                ("audience", CONTACTS),
            ],
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let first = refresh_token_of(&tokens);
    let next = refreshed(&app, &client, first).await;
    assert_revoke_ok(
        revoke(&app, By::Basic(&client), refresh_token_of(&next), None).await,
        "current token",
    )
    .await;
    assert_revoke_ok(
        revoke(&app, By::Basic(&client), first, None).await,
        "rotated token of a revoked family",
    )
    .await;
}

async fn another_clients_tokens_are_not_revoked(app: TestApp) {
    let caller = resource_server(&app).await;
    let owner = password_client(&app).await;
    let tokens = password_tokens(&app, &owner, "alice").await;
    let access = access_token_of(&tokens);
    let refresh_token = refresh_token_of(&tokens);

    let intruder = password_client(&app).await;
    let (service_id, service_secret) = app.create_service_client("read:contacts").await;
    let service = Creds {
        id: service_id,
        secret: service_secret,
    };
    let public = public_code_client(&app).await;
    // The service's own client_credentials token, for the others to try.
    let service_access = &app.service_token(service.basic()).await;
    for by in [
        By::Basic(&intruder),
        By::Basic(&service),
        By::Basic(&caller),
        By::Public(&public.client_id),
    ] {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            for token in [access, refresh_token] {
                assert_revoke_refused(
                    revoke(&app, by, token, hint).await,
                    "another client's token",
                )
                .await;
            }
            if !matches!(by, By::Basic(c) if c.id == service.id) {
                assert_revoke_refused(
                    revoke(&app, by, service_access, hint).await,
                    "another client's client_credentials token",
                )
                .await;
            }
        }
    }
    assert_active(
        &app,
        &caller,
        service_access,
        "client_credentials token of another client",
    )
    .await;
    assert_active(&app, &caller, access, "access token of another client").await;
    assert_active(
        &app,
        &owner,
        refresh_token,
        "refresh token of another client",
    )
    .await;
    let next = refreshed(&app, &owner, refresh_token).await;
    assert_eq!(
        introspect(&app, &owner, refresh_token_of(&next), None).await["active"],
        json!(true)
    );

    // The owner still can.
    let current = refresh_token_of(&next);
    assert_revoke_ok(
        revoke(&app, By::Basic(&owner), current, None).await,
        "owner",
    )
    .await;
    assert_inactive(&app, &owner, current, "revoked by its owner").await;
}

async fn a_wrong_token_type_hint_still_revokes(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    let access = access_token_of(&tokens);
    let refresh_token = refresh_token_of(&tokens);

    assert_revoke_ok(
        revoke(&app, By::Basic(&client), access, Some("refresh_token")).await,
        "access token hinted as a refresh token",
    )
    .await;
    assert_inactive(&app, &caller, access, "access token with the wrong hint").await;

    assert_revoke_ok(
        revoke(
            &app,
            By::Basic(&client),
            refresh_token,
            Some("access_token"),
        )
        .await,
        "refresh token hinted as an access token",
    )
    .await;
    assert_inactive(
        &app,
        &client,
        refresh_token,
        "refresh token with the wrong hint",
    )
    .await;
    assert_eq!(
        error_400(refresh(&app, &client, refresh_token).await).await,
        "invalid_grant"
    );
}

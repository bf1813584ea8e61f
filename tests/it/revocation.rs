//! Token revocation (RFC 7009) over HTTP: client authentication, refresh-token families, the
//! access-token deny list, the answers that must tell nothing (§2.2), and the refusal of
//! another client's token (§2.1).

use serde_json::{Value, json};

use crate::harness::fixtures::{
    BadAuth, ClientAuth, CodeGrant, error_400, failed_authentications, str_of,
};
use crate::harness::{CONTACTS, TestApp};
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

/// `POST /revoke` of `token` as `by`, with `hint` if given.
async fn revoke<'a>(
    app: &TestApp,
    by: impl Into<ClientAuth<'a>>,
    token: &str,
    hint: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("token", token)];
    form.extend(hint.map(|hint| ("token_type_hint", hint)));
    app.post_as("/revoke", by.into(), &form).await
}

/// Revoke `token` as `by`, with `hint` if given; see [`assert_revoke_ok`].
async fn assert_revokes<'a>(
    app: &TestApp,
    by: impl Into<ClientAuth<'a>>,
    token: &str,
    hint: Option<&str>,
    what: &str,
) {
    assert_revoke_ok(revoke(app, by, token, hint).await, what).await;
}

/// §2.1: revoking another client's valid token is refused (`invalid_grant`, RFC 6749 §5.2:
/// "issued to another client"), not cacheable either.
async fn assert_refuses<'a>(
    app: &TestApp,
    by: impl Into<ClientAuth<'a>>,
    token: &str,
    hint: Option<&str>,
    what: &str,
) {
    let response = revoke(app, by, token, hint).await;
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

async fn revocation_needs_client_authentication(app: TestApp) {
    let (caller, client, tokens) = app.alice_signed_in().await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");

    let mut attempts = failed_authentications(&client);
    attempts.push(BadAuth {
        basic: Some(("no-such-client", "secret")),
        fields: vec![],
        what: "an unknown client",
    });
    for token in [access, refresh_token] {
        for attempt in &attempts {
            app.assert_invalid_client("/revoke", attempt, &[("token", token)])
                .await;
        }
    }
    // Nothing was revoked by the refused requests.
    app.assert_active(&caller, access, "access token").await;
    app.assert_active(&client, refresh_token, "refresh token")
        .await;

    // client_secret_post is a valid way to authenticate.
    let response = app
        .post_form(
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
    app.assert_inactive(&caller, access, "revoked with client_secret_post")
        .await;
}

async fn token_parameter_is_required(app: TestApp) {
    let (_, client, tokens) = app.alice_signed_in().await;
    let refresh_token = str_of(&tokens, "refresh_token");

    let response = app.post_form("/revoke", Some(client.basic()), &[]).await;
    assert_eq!(error_400(response).await, "invalid_request", "no token");
    let response = app
        .post_form(
            "/revoke",
            Some(client.basic()),
            &[("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(error_400(response).await, "invalid_request", "only a hint");
    let response = app
        .post_form(
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
    app.assert_active(&client, refresh_token, "nothing revoked")
        .await;
}

async fn revoking_the_current_refresh_token_revokes_the_family(app: TestApp) {
    let (caller, client, tokens) = app.alice_signed_in().await;
    let first = str_of(&tokens, "refresh_token");
    let next = app.refreshed(&client, first, None).await;
    let current = str_of(&next, "refresh_token");

    assert_revokes(
        &app,
        &client,
        current,
        None,
        "revoke the current refresh token",
    )
    .await;
    app.assert_inactive(&client, current, "revoked refresh token")
        .await;
    assert_eq!(
        error_400(app.refresh(&client, current, None).await).await,
        "invalid_grant",
        "a revoked refresh token does not refresh"
    );
    assert_eq!(
        error_400(app.refresh(&client, first, None).await).await,
        "invalid_grant",
        "nor does its rotated parent"
    );
    // RFC 7009 §2.1: the access tokens of the same grant go with it.
    for access in [&tokens, &next] {
        let token = access["access_token"].as_str().unwrap();
        app.assert_inactive(&caller, token, "access token of the revoked grant")
            .await;
    }
}

async fn revoking_an_earlier_refresh_token_revokes_its_successor(app: TestApp) {
    let (_, client, tokens) = app.alice_signed_in().await;
    let first = str_of(&tokens, "refresh_token");
    let second = app.refreshed(&client, first, None).await;
    let second = str_of(&second, "refresh_token");
    let third = app.refreshed(&client, second, None).await;
    let current = str_of(&third, "refresh_token");
    app.assert_active(&client, current, "current refresh token")
        .await;

    // Revoke the first token of the family (rotated twice since), without using it.
    assert_revokes(
        &app,
        &client,
        first,
        Some("refresh_token"),
        "revoke an earlier refresh token",
    )
    .await;
    app.assert_inactive(&client, current, "the family's current token")
        .await;
    assert_eq!(
        error_400(app.refresh(&client, current, None).await).await,
        "invalid_grant",
        "the current token of a revoked family does not refresh"
    );

    // Another family of the same client and user is untouched.
    let fresh = app.password_tokens(&client, "alice", None).await;
    app.refreshed(&client, str_of(&fresh, "refresh_token"), None)
        .await;
}

async fn revoking_an_access_token_denies_it(app: TestApp) {
    let (caller, client, tokens) = app.alice_signed_in().await;
    let access = str_of(&tokens, "access_token");
    let second = app.password_tokens(&client, "alice", None).await;
    let other_access = str_of(&second, "access_token");

    assert_revokes(
        &app,
        &client,
        access,
        Some("access_token"),
        "revoke a user access token",
    )
    .await;
    app.assert_inactive(&caller, access, "revoked user access token")
        .await;
    app.assert_active(
        &caller,
        other_access,
        "another access token of the same client and user",
    )
    .await;

    // A client_credentials token, revoked by its own client.
    let service = app.create_service_client("read:contacts").await;
    let service_access = &app.service_token(&service, CONTACTS).await;
    app.assert_active(&caller, service_access, "service token before")
        .await;
    assert_revokes(
        &app,
        &service,
        service_access,
        None,
        "revoke a client_credentials token",
    )
    .await;
    app.assert_inactive(&caller, service_access, "revoked service token")
        .await;
}

async fn public_client_revokes_its_own_tokens(app: TestApp) {
    let caller = app.create_resource_server().await;
    let CodeGrant { client, tokens, .. } = app.public_code_grant("alice").await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");

    // Rotate once, then revoke the successor by client_id alone.
    let response = app.refresh(&client, refresh_token, None).await;
    assert_eq!(response.status(), 200);
    let next: Value = response.json().await.unwrap();
    let current = str_of(&next, "refresh_token");

    assert_revokes(
        &app,
        ClientAuth::Public(&client.client_id),
        current,
        None,
        "a public client revokes its refresh token",
    )
    .await;
    app.assert_inactive(&caller, current, "revoked by the public client")
        .await;
    assert_eq!(
        error_400(app.refresh(&client, current, None).await).await,
        "invalid_grant"
    );

    assert_revokes(
        &app,
        ClientAuth::Public(&client.client_id),
        access,
        None,
        "a public client revokes its access token",
    )
    .await;
    app.assert_inactive(&caller, access, "access token revoked by the public client")
        .await;

    // A public client's id with a secret it does not have is refused.
    let response = app
        .post_form(
            "/revoke",
            None,
            &[
                ("token", str_of(&next, "access_token")),
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
    let (caller, client, tokens) = app.alice_signed_in().await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");

    let unknown_refresh = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8";
    for (token, hint) in [
        ("garbage", None),
        ("a.b.c", Some("access_token")),
        ("eyJhbGciOiJub25lIn0.e30.", None),
        (unknown_refresh, Some("refresh_token")),
        (unknown_refresh, None),
    ] {
        assert_revokes(
            &app,
            &client,
            token,
            hint,
            &format!("unknown token {token:?}"),
        )
        .await;
    }

    for round in ["first", "second"] {
        assert_revokes(
            &app,
            &client,
            access,
            None,
            &format!("access token, {round} revocation"),
        )
        .await;
        assert_revokes(
            &app,
            &client,
            refresh_token,
            None,
            &format!("refresh token, {round} revocation"),
        )
        .await;
    }
    app.assert_inactive(&caller, access, "access token revoked twice")
        .await;
    app.assert_inactive(&client, refresh_token, "refresh token revoked twice")
        .await;

    // A rotated token revoked after its family was revoked: still 200.
    let tokens = app.password_tokens(&client, "alice", None).await;
    let first = str_of(&tokens, "refresh_token");
    let next = app.refreshed(&client, first, None).await;
    assert_revokes(
        &app,
        &client,
        str_of(&next, "refresh_token"),
        None,
        "current token",
    )
    .await;
    assert_revokes(
        &app,
        &client,
        first,
        None,
        "rotated token of a revoked family",
    )
    .await;
}

async fn another_clients_tokens_are_not_revoked(app: TestApp) {
    let caller = app.create_resource_server().await;
    let owner = app.create_password_client().await;
    let tokens = app.user_tokens(&owner, "alice").await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");

    let intruder = app.create_password_client().await;
    let service = app.create_service_client("read:contacts").await;
    let public = app.create_public_code_client().await;
    // The service's own client_credentials token, for the others to try.
    let service_access = &app.service_token(&service, CONTACTS).await;
    let others = [
        ClientAuth::from(&intruder),
        ClientAuth::from(&service),
        ClientAuth::from(&caller),
        ClientAuth::Public(&public.client_id),
    ];
    for by in others {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            for token in [access, refresh_token] {
                assert_refuses(&app, by, token, hint, "another client's token").await;
            }
            if !matches!(by, ClientAuth::Basic(id, _) if id == service.id) {
                assert_refuses(
                    &app,
                    by,
                    service_access,
                    hint,
                    "another client's client_credentials token",
                )
                .await;
            }
        }
    }
    app.assert_active(
        &caller,
        service_access,
        "client_credentials token of another client",
    )
    .await;
    app.assert_active(&caller, access, "access token of another client")
        .await;
    app.assert_active(&owner, refresh_token, "refresh token of another client")
        .await;
    let next = app.refreshed(&owner, refresh_token, None).await;
    assert_eq!(
        app.introspect(&owner, str_of(&next, "refresh_token"), None)
            .await["active"],
        json!(true)
    );

    // The owner still can.
    let current = str_of(&next, "refresh_token");
    assert_revokes(&app, &owner, current, None, "owner").await;
    app.assert_inactive(&owner, current, "revoked by its owner")
        .await;
}

async fn a_wrong_token_type_hint_still_revokes(app: TestApp) {
    let (caller, client, tokens) = app.alice_signed_in().await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");

    assert_revokes(
        &app,
        &client,
        access,
        Some("refresh_token"),
        "access token hinted as a refresh token",
    )
    .await;
    app.assert_inactive(&caller, access, "access token with the wrong hint")
        .await;

    assert_revokes(
        &app,
        &client,
        refresh_token,
        Some("access_token"),
        "refresh token hinted as an access token",
    )
    .await;
    app.assert_inactive(&client, refresh_token, "refresh token with the wrong hint")
        .await;
    assert_eq!(
        error_400(app.refresh(&client, refresh_token, None).await).await,
        "invalid_grant"
    );
}

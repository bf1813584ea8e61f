//! Refresh tokens (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use valet::domain::GrantType;

use crate::harness::fixtures::{
    Creds, NewClient, assert_error_400, assert_exactly_one_succeeded, concurrent_statuses,
    error_400, str_of, verify_with_jwks,
};
use crate::harness::flow::{Pkce, location, redirect_params};
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::{backend_tests, store_tests};

store_tests!(
    every_use_rotates_and_reuse_revokes_the_family,
    refresh_may_narrow_but_not_widen,
    concurrent_refreshes_exactly_one_succeeds,
    code_flow_issues_refresh_tokens_only_when_allowed,
    disabled_user_or_deleted_client_ends_the_family
);
backend_tests!(
    grace_period_tolerates_a_retry,
    offline_access_can_be_required,
    idle_expiry
);

/// Password grant: (access token, refresh token).
async fn first_tokens(app: &TestApp, client: &Creds) -> (String, String) {
    let body = app.password_tokens(client, "alice", None).await;
    (
        str_of(&body, "access_token").to_owned(),
        str_of(&body, "refresh_token").to_owned(),
    )
}

async fn every_use_rotates_and_reuse_revokes_the_family(app: TestApp) {
    let client = app.password_client_and_alice().await;
    let (_, first) = first_tokens(&app, &client).await;
    let second = app.refreshed(&client, &first, None).await;
    let second_token = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_token, first, "every use rotates");
    verify_with_jwks(&app, second["access_token"].as_str().unwrap(), CONTACTS).await;
    let third = app.refreshed(&client, &second_token, None).await;
    let third_token = third["refresh_token"].as_str().unwrap().to_owned();

    // The first token again: stolen or copied. Refused, and the whole family dies.
    assert_eq!(
        error_400(app.refresh(&client, &first, None).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error_400(app.refresh(&client, &third_token, None).await).await,
        "invalid_grant",
        "family revoked"
    );
    // Another family of the same user is untouched.
    let (_, other) = first_tokens(&app, &client).await;
    app.refreshed(&client, &other, None).await;
    // Another client cannot use this client's token.
    let other_client = app.create_password_client().await;
    let response = app
        .token(
            Some(other_client.basic()),
            &[("grant_type", "refresh_token"), ("refresh_token", &other)],
        )
        .await;
    assert_eq!(error_400(response).await, "invalid_grant");
}

async fn refresh_may_narrow_but_not_widen(app: TestApp) {
    let client = app.password_client_and_alice().await;
    let body = app
        .password_tokens(&client, "alice", Some("read:contacts"))
        .await;
    let token = str_of(&body, "refresh_token");
    assert_eq!(
        error_400(
            app.refresh(&client, token, Some("read:contacts create:contacts"))
                .await
        )
        .await,
        "invalid_scope"
    );
    // The refused widening did not use the token up.
    let narrowed = app.refreshed(&client, token, Some("read:contacts")).await;
    assert_eq!(narrowed["scope"], "read:contacts");
    // Narrowing applies to that access token; the family keeps its scope (RFC 6749 §6).
    let again = app
        .refreshed(&client, str_of(&narrowed, "refresh_token"), None)
        .await;
    assert_eq!(again["scope"], "read:contacts");
}

async fn concurrent_refreshes_exactly_one_succeeds(app: TestApp) {
    let client = Arc::new(app.password_client_and_alice().await);
    let (_, token) = first_tokens(&app, &client).await;
    let app = Arc::new(app);
    let statuses = concurrent_statuses(8, || {
        let (app, client, token) = (app.clone(), client.clone(), token.clone());
        async move { app.refresh(&*client, &token, None).await }
    })
    .await;
    assert_exactly_one_succeeded(&statuses);
}

async fn code_flow_issues_refresh_tokens_only_when_allowed(app: TestApp) {
    app.create_contacts_api().await;
    app.create_user("bob").await;
    let without = NewClient::web("https://app.example.com/cb", "read:contacts").public();
    let with = without
        .clone()
        .grants(&[GrantType::AuthorizationCode, GrantType::RefreshToken]);
    let with = app.create_web_client(with).await;
    let without = app.create_web_client(without).await;
    let pkce = Pkce::new();
    for (client, expect_refresh) in [(&with, true), (&without, false)] {
        let params = [
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("audience", CONTACTS),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ];
        let code = if expect_refresh {
            app.sign_in_and_allow(&params, "bob").await["code"].clone()
        } else {
            let response = app.authorize(&params).await;
            let consent = app.follow_to_page(response, "/consent").await;
            let response = app.decide(&consent, "allow").await;
            redirect_params(&location(&response))["code"].clone()
        };
        let body: Value = app
            .redeem(client, &code, Some(&pkce.verifier))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            body.get("refresh_token").is_some(),
            expect_refresh,
            "{body}"
        );
        if expect_refresh {
            // A public client refreshes with its client_id alone.
            let response = app
                .refresh(client, str_of(&body, "refresh_token"), None)
                .await;
            assert_eq!(response.status(), 200);
        }
    }
}

async fn disabled_user_or_deleted_client_ends_the_family(app: TestApp) {
    let client = app.password_client_and_alice().await;
    let (_, token) = first_tokens(&app, &client).await;
    app.set_user_disabled("alice", true).await;
    assert_eq!(
        error_400(app.refresh(&client, &token, None).await).await,
        "invalid_grant"
    );
    app.set_user_disabled("alice", false).await;
    assert_eq!(
        error_400(app.refresh(&client, &token, None).await).await,
        "invalid_grant",
        "the family stays ended"
    );

    let (_, token) = first_tokens(&app, &client).await;
    app.delete_client(&client.id).await;
    app.advance(Duration::from_secs(2)); // clients.cache_ttl is 1 s in tests
    let response = app.refresh(&client, &token, None).await;
    assert_eq!(
        response.status(),
        401,
        "a deleted client cannot authenticate"
    );
}

async fn grace_period_tolerates_a_retry(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.tokens.refresh_reuse_grace = valet::config::ConfigDuration::secs(30)
    })
    .await;
    let client = app.password_client_and_alice().await;
    let (_, first) = first_tokens(&app, &client).await;
    let lost = app.refreshed(&client, &first, None).await;
    // The response was lost; the client retries with the same token and gets a new one.
    let retried = app.refreshed(&client, &first, None).await;
    let retried_token = retried["refresh_token"].as_str().unwrap();
    assert_ne!(retried_token, lost["refresh_token"].as_str().unwrap());
    // The lost successor is withdrawn (never presented: the response was lost); the retried
    // one works.
    let next = app.refreshed(&client, retried_token, None).await;
    // Once the successor has been used, the old token is reuse even within the grace period.
    assert_eq!(
        error_400(app.refresh(&client, &first, None).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error_400(
            app.refresh(&client, next["refresh_token"].as_str().unwrap(), None)
                .await
        )
        .await,
        "invalid_grant"
    );
    // The withdrawn successor is refused too; presenting it would revoke the family on its
    // own (SPEC §5; security_tokens::a_withdrawn_successor_revokes_the_family).
    assert_eq!(
        error_400(
            app.refresh(&client, lost["refresh_token"].as_str().unwrap(), None)
                .await
        )
        .await,
        "invalid_grant"
    );
}

async fn offline_access_can_be_required(backend: Backend) {
    let app =
        harness::spawn_with(backend, |c| c.tokens.refresh_requires_offline_access = true).await;
    let client = app.password_client_and_alice().await;
    let body = app.password_tokens(&client, "alice", None).await;
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access asked: no refresh token"
    );
}

async fn idle_expiry(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.tokens.refresh_idle_ttl = valet::config::ConfigDuration::secs(1);
    })
    .await;
    let client = app.password_client_and_alice().await;
    let (_, token) = first_tokens(&app, &client).await;
    app.advance(Duration::from_secs(2));
    let response = app.refresh(&client, &token, None).await;
    assert_error_400(response, "invalid_grant", "expired").await;
}

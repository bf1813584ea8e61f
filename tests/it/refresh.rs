//! Refresh tokens (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::flow::{PASSWORD, Pkce, redirect_params};
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::password::{password_client, password_token};
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

struct Setup {
    client: (String, String),
}

impl Setup {
    fn auth(&self) -> (&str, &str) {
        (&self.client.0, &self.client.1)
    }
}

async fn setup(app: &TestApp) -> Setup {
    app.create_contacts_api().await;
    let client = password_client(app).await;
    app.create_user("alice").await;
    Setup { client }
}

/// Password grant: (access token, refresh token).
async fn first_tokens(app: &TestApp, setup: &Setup) -> (String, String) {
    let body: Value = password_token(app, setup.auth(), "alice", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(
    app: &TestApp,
    setup: &Setup,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    app.token(Some(setup.auth()), &form).await
}

async fn refreshed(app: &TestApp, setup: &Setup, token: &str, scope: Option<&str>) -> Value {
    let response = refresh(app, setup, token, scope).await;
    assert_eq!(response.status(), 200, "refresh with a live token");
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn error(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 400);
    response.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn every_use_rotates_and_reuse_revokes_the_family(app: TestApp) {
    let setup = setup(&app).await;
    let (_, first) = first_tokens(&app, &setup).await;
    let second = refreshed(&app, &setup, &first, None).await;
    let second_token = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_token, first, "every use rotates");
    harness::verify_with_jwks(&app, second["access_token"].as_str().unwrap(), CONTACTS).await;
    let third = refreshed(&app, &setup, &second_token, None).await;
    let third_token = third["refresh_token"].as_str().unwrap().to_owned();

    // The first token again: stolen or copied. Refused, and the whole family dies.
    assert_eq!(
        error(refresh(&app, &setup, &first, None).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error(refresh(&app, &setup, &third_token, None).await).await,
        "invalid_grant",
        "family revoked"
    );
    // Another family of the same user is untouched.
    let (_, other) = first_tokens(&app, &setup).await;
    refreshed(&app, &setup, &other, None).await;
    // Another client cannot use this client's token.
    let (svc, svc_secret) = password_client(&app).await;
    let response = app
        .token(
            Some((&svc, &svc_secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", &other)],
        )
        .await;
    assert_eq!(error(response).await, "invalid_grant");
}

async fn refresh_may_narrow_but_not_widen(app: TestApp) {
    let setup = setup(&app).await;
    let body: Value = app
        .token(
            Some(setup.auth()),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("audience", CONTACTS),
                ("scope", "read:contacts"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let token = body["refresh_token"].as_str().unwrap();
    assert_eq!(
        error(refresh(&app, &setup, token, Some("read:contacts create:contacts")).await).await,
        "invalid_scope"
    );
    // The refused widening did not use the token up.
    let narrowed = refreshed(&app, &setup, token, Some("read:contacts")).await;
    assert_eq!(narrowed["scope"], "read:contacts");
    // Narrowing applies to that access token; the family keeps its scope (RFC 6749 §6).
    let app_setup = Setup {
        client: setup.client.clone(),
    };
    let again = refreshed(
        &app,
        &app_setup,
        narrowed["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(again["scope"], "read:contacts");
}

async fn concurrent_refreshes_exactly_one_succeeds(app: TestApp) {
    let setup = Arc::new(setup(&app).await);
    let (_, token) = first_tokens(&app, &setup).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, setup, token) = (app.clone(), setup.clone(), token.clone());
            tokio::spawn(async move { refresh(&app, &setup, &token, None).await.status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        7,
        "{statuses:?}"
    );
}

async fn code_flow_issues_refresh_tokens_only_when_allowed(app: TestApp) {
    app.create_contacts_api().await;
    app.create_user("bob").await;
    let callback = "https://app.example.com/cb";
    let with = app
        .create_web_client(
            callback,
            "read:contacts",
            &[
                "--public",
                "--grant-type",
                "authorization_code",
                "--grant-type",
                "refresh_token",
            ],
        )
        .await;
    let without = app
        .create_web_client(callback, "read:contacts", &["--public"])
        .await;
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
            redirect_params(response.headers()["location"].to_str().unwrap())["code"].clone()
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
                .token(
                    None,
                    &[
                        ("grant_type", "refresh_token"),
                        ("client_id", &client.client_id),
                        ("refresh_token", body["refresh_token"].as_str().unwrap()),
                    ],
                )
                .await;
            assert_eq!(response.status(), 200);
        }
    }
}

async fn disabled_user_or_deleted_client_ends_the_family(app: TestApp) {
    let setup = setup(&app).await;
    let (_, token) = first_tokens(&app, &setup).await;
    assert!(
        app.cli(&["user", "disable", "alice"])
            .await
            .status
            .success()
    );
    assert_eq!(
        error(refresh(&app, &setup, &token, None).await).await,
        "invalid_grant"
    );
    assert!(app.cli(&["user", "enable", "alice"]).await.status.success());
    assert_eq!(
        error(refresh(&app, &setup, &token, None).await).await,
        "invalid_grant",
        "the family stays ended"
    );

    let (_, token) = first_tokens(&app, &setup).await;
    assert!(
        app.cli(&["client", "delete", &setup.client.0])
            .await
            .status
            .success()
    );
    app.advance(Duration::from_secs(2)); // clients.cache_ttl is 1 s in tests
    let response = refresh(&app, &setup, &token, None).await;
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
    let setup = setup(&app).await;
    let (_, first) = first_tokens(&app, &setup).await;
    let lost = refreshed(&app, &setup, &first, None).await;
    // The response was lost; the client retries with the same token and gets a new one.
    let retried = refreshed(&app, &setup, &first, None).await;
    let retried_token = retried["refresh_token"].as_str().unwrap();
    assert_ne!(retried_token, lost["refresh_token"].as_str().unwrap());
    // The lost successor is withdrawn (never presented: the response was lost); the retried
    // one works.
    let next = refreshed(&app, &setup, retried_token, None).await;
    // Once the successor has been used, the old token is reuse even within the grace period.
    assert_eq!(
        error(refresh(&app, &setup, &first, None).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error(refresh(&app, &setup, next["refresh_token"].as_str().unwrap(), None).await).await,
        "invalid_grant"
    );
    // The withdrawn successor is refused too; presenting it would revoke the family on its
    // own (SPEC §5; security_tokens::a_withdrawn_successor_revokes_the_family).
    assert_eq!(
        error(refresh(&app, &setup, lost["refresh_token"].as_str().unwrap(), None).await).await,
        "invalid_grant"
    );
}

async fn offline_access_can_be_required(backend: Backend) {
    let app =
        harness::spawn_with(backend, |c| c.tokens.refresh_requires_offline_access = true).await;
    let setup = setup(&app).await;
    let body: Value = password_token(&app, setup.auth(), "alice", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
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
    let setup = setup(&app).await;
    let (_, token) = first_tokens(&app, &setup).await;
    app.advance(Duration::from_secs(2));
    let response = refresh(&app, &setup, &token, None).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

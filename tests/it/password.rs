//! The resource owner password grant (RFC 6749 §4.3): success, every refusal, the shared
//! login limiter, equal cost for unknown users, and a password flood that must not starve
//! other requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::fixtures::{
    CALLBACK, NewClient, PASSWORD, assert_error_400, code_params, error_400, verify_with_jwks,
};
use crate::harness::flow::Pkce;
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::{backend_tests, store_tests};

store_tests!(
    password_grant_success_and_refusals,
    an_outdated_password_hash_is_upgraded_at_sign_in
);
backend_tests!(
    limiter_refuses_after_failures,
    unknown_user_costs_as_much_as_a_wrong_password,
    password_flood_does_not_starve_client_credentials
);

async fn password_grant_success_and_refusals(app: TestApp) {
    let client = app.password_client_and_alice().await;
    let user_id = app.user_id("alice").await;

    let response = app.password_grant(&client, "alice", PASSWORD, None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "create:contacts read:contacts");
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 43),
        "allowed refresh_token: gets one"
    );
    let (_, claims) =
        verify_with_jwks(&app, body["access_token"].as_str().unwrap(), CONTACTS).await;
    assert_eq!(claims["sub"], user_id.as_str(), "sub is the user's id");

    assert_eq!(
        error_400(app.password_grant(&client, "alice", "wrong", None).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error_400(app.password_grant(&client, "nobody", "wrong", None).await).await,
        "invalid_grant"
    );
    let wrong = app
        .password_grant(&client, "alice", "wrong", None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let unknown = app
        .password_grant(&client, "nobody", "wrong", None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        wrong, unknown,
        "an unknown user and a wrong password read the same"
    );

    app.set_user_disabled("alice", true).await;
    assert_eq!(
        error_400(app.password_grant(&client, "alice", PASSWORD, None).await).await,
        "invalid_grant"
    );
    app.set_user_disabled("alice", false).await;

    // A confidential client not allowed the grant, and a public client: unauthorized_client.
    let service = app.create_service_client("read:contacts").await;
    assert_eq!(
        error_400(app.password_grant(&service, "alice", PASSWORD, None).await).await,
        "unauthorized_client"
    );
    let spa = NewClient::web("https://a.example/cb", "")
        .public()
        .without_audience();
    let public = app.create_web_client(spa).await;
    let response = app
        .token(
            None,
            &[
                ("grant_type", "password"),
                ("client_id", &public.client_id),
                ("username", "alice"),
                ("password", PASSWORD),
                ("audience", CONTACTS),
            ],
        )
        .await;
    assert_eq!(error_400(response).await, "unauthorized_client");
    // Missing fields are invalid_request.
    let response = app
        .token(
            Some(client.basic()),
            &[("grant_type", "password"), ("username", "alice")],
        )
        .await;
    assert_eq!(error_400(response).await, "invalid_request");
}

async fn limiter_refuses_after_failures(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.login.user_free_failures = 2;
        c.login.user_max_lockout = valet::config::ConfigDuration::secs(60);
    })
    .await;
    let client = app.password_client_and_alice().await;
    for _ in 0..3 {
        assert_eq!(
            app.password_grant(&client, "alice", "guess", None)
                .await
                .status(),
            400
        );
    }
    // The third failure locked the username: the right password is refused, with a reason.
    let response = app.password_grant(&client, "alice", PASSWORD, None).await;
    assert_error_400(response, "invalid_grant", "too many").await;
    app.advance(Duration::from_secs(2));
    assert_eq!(
        app.password_grant(&client, "alice", PASSWORD, None)
            .await
            .status(),
        200,
        "the lock is short"
    );
}

/// Fixtures hash passwords with cheap Argon2 parameters; a check costs what the parameters
/// recorded in the hash say. Where the cost is the subject, alice's hash is made with the
/// server's own parameters instead.
async fn hash_alices_password_as_the_server_does(app: &TestApp) {
    let params = &app.state.settings.password_hash;
    let hash = valet::login::password::hash(params, PASSWORD.into())
        .await
        .unwrap();
    let store = &app.state.store;
    let now = app.clock.now();
    assert!(store.set_user_password("alice", &hash, now).await.unwrap());
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Benchmark-style, not a tight timed test: with the real (OWASP) Argon2 parameters the
/// hash dominates, so the medians of an unknown user and a wrong password agree within a
/// wide margin, while a shortcut for unknown users would be many times faster.
async fn unknown_user_costs_as_much_as_a_wrong_password(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.password_hash = valet::config::PasswordHashConfig::default();
        c.login.user_free_failures = 1000;
        c.login.address_free_failures = 1000;
    })
    .await;
    let client = app.password_client_and_alice().await;
    // The user's hash must be made with the same parameters as the server's dummy hash.
    hash_alices_password_as_the_server_does(&app).await;
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for round in 0..9 {
        for (username, samples) in [
            ("alice", &mut wrong),
            (format!("nobody{round}").as_str(), &mut unknown),
        ] {
            let started = Instant::now();
            assert_eq!(
                app.password_grant(&client, username, "not the password", None)
                    .await
                    .status(),
                400
            );
            samples.push(started.elapsed());
        }
    }
    let (wrong, unknown) = (median(wrong), median(unknown));
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
}

async fn password_flood_does_not_starve_client_credentials(backend: Backend) {
    let app = Arc::new(
        harness::spawn_with(backend, |c| {
            c.password_hash = valet::config::PasswordHashConfig {
                max_concurrent: 1,
                ..Default::default()
            };
            c.login.user_free_failures = 100_000;
            c.login.address_free_failures = 100_000;
        })
        .await,
    );
    let client = app.password_client_and_alice().await;
    // Real Argon2 checks: with the fixtures' cheap hash the flood could drain before the
    // client_credentials requests below are done, and there would be nothing to starve them.
    hash_alices_password_as_the_server_does(&app).await;
    let service = app.create_service_client("read:contacts").await;

    let flood: Vec<_> = (0..40)
        .map(|_| {
            let (app, client) = (app.clone(), client.clone());
            tokio::spawn(async move {
                app.password_grant(&client, "alice", "wrong", None)
                    .await
                    .status()
            })
        })
        .collect();
    // While 40 Argon2 checks queue behind one permit, client credentials keep being served.
    for _ in 0..10 {
        let started = Instant::now();
        let response = app.client_credentials(&service, CONTACTS).await;
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "client_credentials waited {:?}",
            started.elapsed()
        );
    }
    let unfinished = flood.iter().filter(|t| !t.is_finished()).count();
    assert!(
        unfinished > 0,
        "the flood should still be running while the other requests were served"
    );
    for task in flood {
        assert_eq!(task.await.unwrap(), 400);
    }
}

/// A hash made with other Argon2 parameters than the server's (an operator raised them) is
/// replaced at the next successful sign-in, through either door; a failed one changes nothing.
async fn an_outdated_password_hash_is_upgraded_at_sign_in(app: TestApp) {
    app.create_contacts_api().await;
    let client = app.create_password_client().await;
    let old_params = valet::config::PasswordHashSettings {
        memory_kib: 512,
        ..app.state.settings.password_hash
    };
    let store = &app.state.store;
    let stored = |username| app.stored_user(username);
    for username in ["alice", "bob"] {
        app.create_user(username).await;
        let old = valet::login::password::hash_blocking(&old_params, PASSWORD).unwrap();
        let now = valet::clock::Clock::system().now();
        assert!(store.set_user_password(username, &old, now).await.unwrap());
    }
    let before = stored("alice").await;
    assert!(before.password_hash.starts_with("$argon2id$v=19$m=512,"));

    let wrong = app.password_grant(&client, "alice", "not it", None).await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(stored("alice").await.password_hash, before.password_hash);

    let right = app.password_grant(&client, "alice", PASSWORD, None).await;
    assert_eq!(right.status(), 200);
    let after = stored("alice").await;
    assert!(
        after
            .password_hash
            .starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{}",
        after.password_hash
    );
    assert_eq!(
        after.updated_at, before.updated_at,
        "the user did not change"
    );
    let again = app.password_grant(&client, "alice", PASSWORD, None).await;
    assert_eq!(again.status(), 200, "the new hash verifies");
    assert_eq!(stored("alice").await.password_hash, after.password_hash);
    // An upgrade computed from a hash that changed meanwhile (`user set-password`) is dropped.
    let stale = store
        .upgrade_password_hash(&after.id, &before.password_hash, "$argon2id$stale")
        .await
        .unwrap();
    assert!(!stale);
    assert_eq!(stored("alice").await.password_hash, after.password_hash);

    // The login page goes through the same check.
    let web = app
        .create_web_client(NewClient::web(CALLBACK, "read:contacts"))
        .await;
    let pkce = Pkce::new();
    let params = code_params(&web, &pkce, "read:contacts");
    let redirect = app.sign_in_and_allow(&params, "bob").await;
    assert!(redirect.contains_key("code"), "{redirect:?}");
    assert!(stored("bob").await.password_hash.contains("$m=1024,"));
}

//! The resource owner password grant (RFC 6749 §4.3): success, every refusal, the shared
//! login limiter, equal cost for unknown users, and a password flood that must not starve
//! other requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::flow::PASSWORD;
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

/// A confidential client allowed `password` (and `refresh_token`): (id, secret).
pub async fn password_client(app: &TestApp) -> (String, String) {
    let client = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "first-party app",
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "read:contacts create:contacts",
            "--audience",
            CONTACTS,
            "--json",
        ])
        .await;
    (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    )
}

pub async fn password_token(
    app: &TestApp,
    client: (&str, &str),
    username: &str,
    password: &str,
) -> reqwest::Response {
    app.token(
        Some(client),
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("audience", CONTACTS),
        ],
    )
    .await
}

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

async fn password_grant_success_and_refusals(app: TestApp) {
    app.create_contacts_api().await;
    let (id, secret) = password_client(&app).await;
    let user_id = app.create_user("alice").await;

    let response = password_token(&app, (&id, &secret), "alice", PASSWORD).await;
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
        harness::verify_with_jwks(&app, body["access_token"].as_str().unwrap(), CONTACTS).await;
    assert_eq!(claims["sub"], user_id.as_str(), "sub is the user's id");

    assert_eq!(
        error_of(password_token(&app, (&id, &secret), "alice", "wrong").await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(
        error_of(password_token(&app, (&id, &secret), "nobody", "wrong").await).await,
        (400, "invalid_grant".into())
    );
    let wrong = password_token(&app, (&id, &secret), "alice", "wrong")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let unknown = password_token(&app, (&id, &secret), "nobody", "wrong")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        wrong, unknown,
        "an unknown user and a wrong password read the same"
    );

    assert!(
        app.cli(&["user", "disable", "alice"])
            .await
            .status
            .success()
    );
    assert_eq!(
        error_of(password_token(&app, (&id, &secret), "alice", PASSWORD).await).await,
        (400, "invalid_grant".into())
    );
    assert!(app.cli(&["user", "enable", "alice"]).await.status.success());

    // A confidential client not allowed the grant, and a public client: unauthorized_client.
    let (service, service_secret) = app.create_service_client("read:contacts").await;
    assert_eq!(
        error_of(password_token(&app, (&service, &service_secret), "alice", PASSWORD).await).await,
        (400, "unauthorized_client".into())
    );
    let public = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "spa",
            "--public",
            "--redirect-uri",
            "https://a.example/cb",
            "--json",
        ])
        .await;
    let response = app
        .token(
            None,
            &[
                ("grant_type", "password"),
                ("client_id", public["client_id"].as_str().unwrap()),
                ("username", "alice"),
                ("password", PASSWORD),
                ("audience", CONTACTS),
            ],
        )
        .await;
    assert_eq!(
        error_of(response).await,
        (400, "unauthorized_client".into())
    );
    // Missing fields are invalid_request.
    let response = app
        .token(
            Some((&id, &secret)),
            &[("grant_type", "password"), ("username", "alice")],
        )
        .await;
    assert_eq!(error_of(response).await, (400, "invalid_request".into()));
}

async fn limiter_refuses_after_failures(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.login.user_free_failures = 2;
        c.login.user_max_lockout = valet::config::ConfigDuration::secs(60);
    })
    .await;
    app.create_contacts_api().await;
    let (id, secret) = password_client(&app).await;
    app.create_user("alice").await;
    for _ in 0..3 {
        assert_eq!(
            password_token(&app, (&id, &secret), "alice", "guess")
                .await
                .status(),
            400
        );
    }
    // The third failure locked the username: the right password is refused, with a reason.
    let response = password_token(&app, (&id, &secret), "alice", PASSWORD).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("too many"),
        "{body}"
    );
    app.advance(Duration::from_secs(2));
    assert_eq!(
        password_token(&app, (&id, &secret), "alice", PASSWORD)
            .await
            .status(),
        200,
        "the lock is short"
    );
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
    app.create_contacts_api().await;
    let (id, secret) = password_client(&app).await;
    // The user's hash must be made with the same parameters as the server's dummy hash (the
    // harness's CLI uses cheap ones).
    let mut create = app.cli_command(&[
        "user",
        "create",
        "--username",
        "alice",
        "--password",
        PASSWORD,
    ]);
    create
        .env("VALET_PASSWORD_HASH__MEMORY_KIB", "19456")
        .env("VALET_PASSWORD_HASH__ITERATIONS", "2");
    let out = tokio::task::spawn_blocking(move || create.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for round in 0..9 {
        for (username, samples) in [
            ("alice", &mut wrong),
            (format!("nobody{round}").as_str(), &mut unknown),
        ] {
            let started = Instant::now();
            assert_eq!(
                password_token(&app, (&id, &secret), username, "not the password")
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
    app.create_contacts_api().await;
    let (id, secret) = password_client(&app).await;
    app.create_user("alice").await;
    let (service, service_secret) = app.create_service_client("read:contacts").await;

    let flood: Vec<_> = (0..40)
        .map(|_| {
            let (app, id, secret) = (app.clone(), id.clone(), secret.clone());
            tokio::spawn(async move {
                password_token(&app, (&id, &secret), "alice", "wrong")
                    .await
                    .status()
            })
        })
        .collect();
    // While 40 Argon2 checks queue behind one permit, client credentials keep being served.
    for _ in 0..10 {
        let started = Instant::now();
        let response = app
            .token(
                Some((&service, &service_secret)),
                &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
            )
            .await;
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
    let client = password_client(&app).await;
    let old_params = valet::config::PasswordHashSettings {
        memory_kib: 512,
        ..app.state.settings.password_hash
    };
    let store = &app.state.store;
    let stored = |username: &'static str| async move {
        store.user_by_username(username).await.unwrap().unwrap()
    };
    for username in ["alice", "bob"] {
        app.create_user(username).await;
        let old = valet::login::password::hash_blocking(&old_params, PASSWORD).unwrap();
        let now = valet::clock::Clock::system().now();
        assert!(store.set_user_password(username, &old, now).await.unwrap());
    }
    let before = stored("alice").await;
    assert!(before.password_hash.starts_with("$argon2id$v=19$m=512,"));

    let wrong = password_token(&app, (&client.0, &client.1), "alice", "not it").await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(stored("alice").await.password_hash, before.password_hash);

    let right = password_token(&app, (&client.0, &client.1), "alice", PASSWORD).await;
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
    let again = password_token(&app, (&client.0, &client.1), "alice", PASSWORD).await;
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
        .create_web_client(crate::introspection::CALLBACK, "read:contacts", &[])
        .await;
    let pkce = crate::harness::flow::Pkce::new();
    let params = crate::introspection::code_params(&web, &pkce);
    let redirect = app.sign_in_and_allow(&params, "bob").await;
    assert!(redirect.contains_key("code"), "{redirect:?}");
    assert!(stored("bob").await.password_hash.contains("$m=1024,"));
}

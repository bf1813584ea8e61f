//! Faults (issue 14): the database stopped under a running server (a throwaway PostgreSQL
//! cluster of the test's own), SQLite under concurrent writers, and a server killed with
//! SIGKILL under load and started again on the same store.
//!
//! Outage timings are wall-clock behaviour of real processes (a database that stops and
//! starts), so these tests measure real time, with margins far above scheduling noise.

use std::time::{Duration, Instant};

use serde_json::Value;
use valet::domain::GrantType;

use crate::backend_tests;
use crate::harness::cluster::Cluster;
use crate::harness::fixtures::{
    NewClient, PASSWORD, create_confidential_client, create_contacts_api, create_user, ok_json,
};
use crate::harness::process::Serve;
use crate::harness::{self, Backend, CONTACTS, TestApp, basic_header, core_over, postgres};

backend_tests!(a_killed_server_restarts_with_its_tokens_and_keys);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_and_heals() {
    database_outage().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_under_concurrent_writers_never_says_locked() {
    concurrent_sqlite_writers().await;
}

/// Poll `check` every 20 ms until it holds; how long that took (panics after `limit`).
async fn time_until(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn status_of(app: &TestApp, path: &str) -> u16 {
    app.get(path).await.status().as_u16()
}

/// PostgreSQL stopped with `-m immediate` under a running server:
/// - within 1 s `/readyz` says 503, and then every store-backed request fails in well under
///   1 s: OAuth endpoints `503 temporarily_unavailable` with `Retry-After`, pages a 503 page;
/// - a cached client keeps getting client_credentials tokens;
/// - within 2 s of the database accepting connections again everything works, no restart;
/// - the refresh token refused during the outage was not spent: it works once afterwards.
async fn database_outage() {
    let cluster = Cluster::start();
    let app = harness::spawn_with(Backend::Sqlite, |c| c.database_url = cluster.url()).await;
    let (caller, client, tokens) = app.alice_signed_in().await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let service_token = app.service_token(&caller, CONTACTS).await;
    assert_eq!(status_of(&app, "/readyz").await, 200);

    cluster.kill();
    let detected = time_until(Duration::from_secs(5), "/readyz turns 503", async || {
        status_of(&app, "/readyz").await == 503
    })
    .await;
    assert!(
        detected < Duration::from_secs(1),
        "detected after {detected:?}"
    );
    // /readyz can fail on a dead pooled connection before the prober has opened the breaker;
    // what follows is about the outage once the breaker knows.
    let mut breaker = app.state.store.outages().expect("PostgreSQL has a breaker");
    let opened = time_until(Duration::from_secs(5), "the breaker opens", async || {
        *breaker.borrow_and_update()
    })
    .await;
    assert!(opened < Duration::from_secs(1), "opened after {opened:?}");

    let started = Instant::now();
    let introspection = app
        .post_form(
            "/introspect",
            Some(caller.basic()),
            &[("token", &service_token)],
        )
        .await;
    assert_eq!(introspection.status(), 503);
    assert_eq!(introspection.headers()["retry-after"], "1");
    let body: Value = introspection.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let refused = app.refresh(&client, &refresh_token, None).await;
    assert_eq!(refused.status(), 503);
    let page = app.get(&format!("/login?request={}", "a".repeat(43))).await;
    assert_eq!(page.status(), 503, "the login page says so");
    assert_eq!(page.headers()["retry-after"], "1");
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Temporarily unavailable")
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "three store-backed requests took {:?}",
        started.elapsed()
    );

    // The service client was looked up before the outage: it keeps working.
    app.advance(Duration::from_secs(30)); // far past clients.cache_ttl
    let issued = app.client_credentials(&caller, CONTACTS).await;
    let status = issued.status();
    let body = issued.text().await.unwrap();
    assert_eq!(
        status, 200,
        "cached client_credentials keeps issuing: {body}"
    );

    cluster.resume();
    let healed = time_until(Duration::from_secs(10), "/readyz turns 200", async || {
        status_of(&app, "/readyz").await == 200
    })
    .await;
    assert!(healed < Duration::from_secs(2), "healed after {healed:?}");
    let renewed = ok_json(app.refresh(&client, &refresh_token, None).await).await;
    assert!(renewed["refresh_token"].is_string());
    let again = app.refresh(&client, &refresh_token, None).await;
    assert_eq!(again.status(), 400, "spent exactly once, after the outage");
    let answer = app.introspect(&caller, &service_token, None).await;
    assert_eq!(answer["active"], true);
}

/// 48 writes at once on SQLite (refresh-token rotations, each a transaction; the pool has 4
/// connections and one writer at a time): every one succeeds, none is `database is locked`.
async fn concurrent_sqlite_writers() {
    let app = harness::spawn(Backend::Sqlite).await;
    let (_, client, _) = app.alice_signed_in().await;
    let mut refresh_tokens = Vec::new();
    for _ in 0..48 {
        let tokens = app
            .password_tokens(&client, "alice", Some("read:contacts"))
            .await;
        refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }
    let authorization = basic_header(&client.id, &client.secret);
    let tasks: Vec<_> = refresh_tokens
        .iter()
        .map(|token| {
            let request = app
                .http
                .post(app.url("/token"))
                .header("authorization", &authorization)
                .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
                .send();
            tokio::spawn(async move {
                let response = request.await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("locked"), "{body}");
    }
}

/// `kill -9` of a server in the middle of a burst of writes; started again on the same store:
/// migrations are fine, the signing keys are the same, and every refresh token it answered
/// with before the kill still works (once).
async fn a_killed_server_restarts_with_its_tokens_and_keys(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let guard = match backend {
        Backend::Sqlite => postgres::DatabaseGuard::none(format!(
            "sqlite://{}",
            dir.path().join("valet.db").display()
        )),
        Backend::Postgres => postgres::fresh_database().await,
    };
    let serve = || Serve::over(&guard.url);
    let mut server = serve().start();
    server.wait_ready().await;
    let core = core_over(&guard.url).await;
    let grants = [GrantType::Password, GrantType::RefreshToken];
    let client = create_confidential_client(
        &core,
        NewClient::confidential("crash-test", &grants, "read:contacts"),
    )
    .await;
    create_contacts_api(&core).await;
    create_user(&core, "alice").await;
    create_user(&core, "bob").await;
    let http = reqwest::Client::new();
    let authorization = basic_header(&client.id, &client.secret);
    let token = |base: &str, form: &[(&str, &str)]| {
        http.post(format!("{base}/token"))
            .header("authorization", &authorization)
            .form(form)
            .send()
    };
    let jwks = |base: String| {
        let request = http.get(format!("{base}/.well-known/jwks.json")).send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let password = |username| {
        [
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
            ("scope", "read:contacts"),
            ("audience", CONTACTS),
        ]
    };
    let jwks_before = jwks(server.base.clone()).await;
    let before: Value = token(&server.base, &password("alice"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut answered = vec![before["refresh_token"].as_str().unwrap().to_owned()];
    // A burst of password grants; the kill lands while some are in flight.
    let burst: Vec<_> = (0..24)
        .map(|_| {
            let request = token(&server.base, &password("alice"));
            tokio::spawn(async move {
                let response = request.await.ok().filter(|r| r.status() == 200)?;
                let body: Value = response.json().await.ok()?;
                body["refresh_token"].as_str().map(str::to_owned)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.kill9();
    for task in burst {
        answered.extend(task.await.unwrap());
    }
    let mut server = serve().start();
    server.wait_ready().await;
    assert_eq!(
        jwks_before,
        jwks(server.base.clone()).await,
        "the same keys after the crash"
    );
    for refresh_token in &answered {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ];
        let rotated = token(&server.base, &form).await.unwrap();
        assert_eq!(
            rotated.status(),
            200,
            "a refresh token answered before the kill works"
        );
    }
    // Grants killed between the limiter's reservation and the password check count as
    // failures for alice until the window forgets them (login/limiter.rs); bob is untouched.
    let fresh = token(&server.base, &password("bob")).await.unwrap();
    let status = fresh.status();
    assert_eq!(
        status,
        200,
        "the restarted server issues tokens: {}",
        fresh.text().await.unwrap()
    );
    drop(server);
    drop(guard);
}

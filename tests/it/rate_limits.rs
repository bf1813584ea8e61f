//! Flood limits (issue 14): a token bucket per client address on the endpoints anyone can
//! reach, one per authenticated client at `/token`; `429` with `Retry-After`, the OAuth error
//! JSON or the page; other addresses and clients unaffected; loopback exempt by default.
//! The limits are in memory, the same on either store, so these run on SQLite.

use serde_json::Value;

use crate::harness::fixtures::{CALLBACK, ClientAuth};
use crate::harness::{self, Backend, CONTACTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_address_has_its_own_bucket() {
    let app = harness::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit.per_address = 1; // bursts of 2
        c.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let token = |address: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/token"))
                .header("x-forwarded-for", address)
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(token("203.0.113.7").await.status(), 401);
    assert_eq!(token("203.0.113.7").await.status(), 401);
    let limited = token("203.0.113.7").await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Another address is not held back by the first one's flood.
    assert_eq!(token("198.51.100.9").await.status(), 401);
    // The pages of a limited address say so in HTML.
    let page = app
        .http
        .get(app.url(&format!("/authorize?client_id=x&redirect_uri={CALLBACK}")))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert!(page.headers().contains_key("retry-after"));
    assert!(page.text().await.unwrap().contains("Too many requests"));
    // Endpoints outside the list are not limited per address.
    let jwks = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    // Loopback is exempt by default.
    for _ in 0..6 {
        let local = app
            .post_form("/token", None, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(local.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_authenticated_client_has_its_own_bucket() {
    let app = harness::spawn_with(Backend::Sqlite, |c| c.rate_limit.per_client = 1).await;
    let noisy = app.create_resource_server().await;
    let quiet = app.create_service_client("read:contacts").await;
    // Failed authentications with the noisy client's id do not spend its allowance.
    for _ in 0..5 {
        let forged = app
            .post_as(
                "/token",
                ClientAuth::Basic(&noisy.id, "not-the-secret"),
                &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
            )
            .await;
        assert_eq!(forged.status(), 401);
    }
    assert_eq!(app.client_credentials(&noisy, CONTACTS).await.status(), 200);
    assert_eq!(app.client_credentials(&noisy, CONTACTS).await.status(), 200);
    let limited = app.client_credentials(&noisy, CONTACTS).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(app.client_credentials(&quiet, CONTACTS).await.status(), 200);
}

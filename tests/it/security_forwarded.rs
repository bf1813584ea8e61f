//! Security review finding 5: behind a proxy that appends the real peer to `X-Forwarded-For`
//! (nginx's `$proxy_add_x_forwarded_for`), a client's own `Forwarded: for=…` header, or
//! entries it put in front of the proxy's in `X-Forwarded-For`, must not change the address
//! the login limiter counts. Only the one configured header (`http.client_ip_header`) is
//! read, from the right. This test plays the proxy on 127.0.0.1 (a trusted proxy) itself;
//! `tests/it/replicas.rs` does the same through the documented nginx.

use std::time::Duration;

use crate::backend_tests;
use crate::harness::fixtures::{NewClient, PASSWORD};
use crate::harness::flow::Form;
use crate::harness::{self, Backend, TestApp};

backend_tests!(
    a_forged_forwarded_header_does_not_change_the_counted_address,
    the_configured_header_is_the_only_one_read
);

const CALLBACK: &str = "https://app.example.com/callback";
/// The address the proxy saw and appended: the real client.
const REAL: &str = "203.0.113.1";

/// The login page of a fresh request by a public client; alice exists.
async fn login_page(app: &TestApp) -> String {
    app.create_contacts_api().await;
    let client = app
        .create_web_client(NewClient::web(CALLBACK, "read:contacts").public())
        .await;
    app.create_user("alice").await;
    app.login_page(&client).await
}

/// Two failed sign-ins, each with headers `forged(i)` naming other addresses, lock [`REAL`]
/// (one free failure per address): the forgeries were not what was counted.
async fn failures_lock_the_real_address(
    app: &TestApp,
    page: &str,
    forged: impl Fn(u8) -> Vec<(&'static str, String)>,
) {
    // The first lock lasts until the next whole second of the server's clock: start at the
    // top of a second, so that it cannot run out between the second failure and the check.
    let into_second = u64::try_from(app.clock.now_ms() % 1000).unwrap_or(0);
    app.advance(Duration::from_millis(1000 - into_second));
    for i in 1..=2 {
        assert_eq!(
            sign_in(app, page, "bob", "wrong", &forged(i)).await,
            400,
            "attempt {i}"
        );
    }
    assert_eq!(
        sign_in(app, page, "alice", PASSWORD, &forged(3)).await,
        429,
        "both failures counted against {REAL}, whatever the client forged: it is locked"
    );
}

/// One sign-in as it reaches Valet from the proxy: `headers` as the proxy passed them on.
async fn sign_in(
    app: &TestApp,
    page: &str,
    username: &str,
    password: &str,
    headers: &[(&str, String)],
) -> u16 {
    let mut form = Form::parse(page);
    form.set("username", username).set("password", password);
    let mut request = app.http.post(app.url(&form.action)).form(&form.fields);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn a_forged_forwarded_header_does_not_change_the_counted_address(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.login.address_free_failures = 1;
        c.login.user_free_failures = 100;
        c.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let page = login_page(&app).await;
    // Each attempt forges a fresh address twice: in its own `Forwarded` header (which the
    // proxy passes through untouched) and in front of the proxy's `X-Forwarded-For` entry.
    let forged = |i: u8| {
        vec![
            ("forwarded", format!("for=198.51.100.{i}")),
            ("x-forwarded-for", format!("192.0.2.{i}, {REAL}")),
        ]
    };
    failures_lock_the_real_address(&app, &page, forged).await;
    // Another real client behind the same proxy is not.
    assert_eq!(
        sign_in(
            &app,
            &page,
            "alice",
            PASSWORD,
            &[("x-forwarded-for", "198.51.100.200".to_owned())]
        )
        .await,
        303
    );
}

async fn the_configured_header_is_the_only_one_read(backend: Backend) {
    // A proxy that writes RFC 7239 `Forwarded` instead: now X-Forwarded-For is the client's.
    let app = harness::spawn_with(backend, |c| {
        c.login.address_free_failures = 1;
        c.login.user_free_failures = 100;
        c.http.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.http.client_ip_header = "Forwarded".into();
    })
    .await;
    let page = login_page(&app).await;
    let forged = |i: u8| {
        vec![
            ("x-forwarded-for", format!("198.51.100.{i}")),
            ("forwarded", format!("for=192.0.2.{i}, for={REAL}")),
        ]
    };
    failures_lock_the_real_address(&app, &page, forged).await;
}

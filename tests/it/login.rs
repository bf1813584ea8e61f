//! The login page: CSRF, failures that reveal nothing, the limiter, disabled users, and
//! pending requests that can be continued only while they live.

use reqwest::cookie::CookieStore as _;
use scraper::{Html, Selector};

use crate::harness::fixtures::{CALLBACK, NewClient, PASSWORD};
use crate::harness::flow::{Form, Pkce, WebClient, location};
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::{backend_tests, store_tests};

store_tests!(
    failed_login_reveals_nothing_and_keeps_the_username,
    csrf_token_missing_or_wrong_is_refused,
    consent_form_without_its_csrf_token_is_refused,
    a_planted_session_cookie_is_replaced_at_sign_in,
    disabled_user_cannot_sign_in,
    unknown_or_finished_request_is_an_error_page
);
backend_tests!(
    limiter_locks_a_username_then_lets_the_user_back,
    limiter_counts_per_address,
    forwarded_addresses_count_only_behind_trusted_proxies
);

async fn client(app: &TestApp) -> WebClient {
    app.create_contacts_api().await;
    app.create_web_client(NewClient::web(CALLBACK, "read:contacts").public())
        .await
}

fn alert(html: &str) -> String {
    let doc = Html::parse_document(html);
    doc.select(&Selector::parse("[role=alert]").unwrap())
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .next()
        .unwrap_or_default()
}

async fn failed_login_reveals_nothing_and_keeps_the_username(app: TestApp) {
    let client = client(&app).await;
    app.create_user("alice").await;
    let page = app.login_page(&client).await;

    let wrong_password = app.sign_in(&page, "alice", "wrong password").await;
    let unknown_user = app.sign_in(&page, "mallory", "wrong password").await;
    assert_eq!(wrong_password.status(), unknown_user.status());
    assert_eq!(wrong_password.status(), 400);
    assert!(
        wrong_password
            .headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("valet_session"))
    );
    let (a, b) = (
        wrong_password.text().await.unwrap(),
        unknown_user.text().await.unwrap(),
    );
    assert_eq!(
        alert(&a),
        alert(&b),
        "same words whether or not the user exists"
    );
    assert!(alert(&a).contains("incorrect"), "{}", alert(&a));
    let form = Form::parse(&a);
    assert_eq!(form.get("username"), Some("alice"), "the username is kept");
    assert_eq!(form.get("password"), Some(""), "the password is not");

    // The re-rendered form works: sign in with it.
    let response = app.sign_in(&a, "alice", PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/consent"));
}

async fn csrf_token_missing_or_wrong_is_refused(app: TestApp) {
    let client = client(&app).await;
    app.create_user("alice").await;
    let page = app.login_page(&client).await;
    let mut form = Form::parse(&page);
    form.set("username", "alice").set("password", PASSWORD);

    let mut missing = form.clone();
    missing.remove("csrf");
    let mut wrong = form.clone();
    wrong.set("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for forged in [missing, wrong] {
        let response = app.submit(&forged).await;
        assert_eq!(response.status(), 403);
        assert!(
            response.headers().get("set-cookie").is_none(),
            "no session from a forged form"
        );
    }
    // A browser without the CSRF cookie (another site posting the form) is refused too.
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = stranger
        .post(app.url("/login"))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    assert_eq!(
        app.submit(&form).await.status(),
        303,
        "the genuine form still works"
    );
}

/// The consent form is CSRF-protected like the login form: a forged "allow" (no token, a
/// wrong one, or from a browser without the CSRF cookie) grants nothing and leaves the
/// request pending; the genuine form still finishes it.
async fn consent_form_without_its_csrf_token_is_refused(app: TestApp) {
    let client = client(&app).await;
    app.create_user("alice").await;
    let page = app.login_page(&client).await;
    let response = app.sign_in(&page, "alice", PASSWORD).await;
    let consent = app.follow_to_page(response, "/consent").await;
    let mut form = Form::parse(&consent);
    form.set("decision", "allow");

    let mut missing = form.clone();
    missing.remove("csrf");
    let mut wrong = form.clone();
    wrong.set("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for forged in [missing, wrong] {
        let response = app.submit(&forged).await;
        assert_eq!(response.status(), 403);
        assert!(response.headers().get("location").is_none(), "no redirect");
    }
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = stranger
        .post(app.url("/consent"))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let response = app.submit(&form).await;
    assert_eq!(response.status(), 303, "the genuine form still works");
    assert!(
        location(&response).starts_with(CALLBACK),
        "{}",
        location(&response)
    );
}

/// Session fixation (RFC 6819 §4.4.1.8 style): a session id the attacker planted in the
/// browser before sign-in is never the one the sign-in makes live.
async fn a_planted_session_cookie_is_replaced_at_sign_in(app: TestApp) {
    let client = client(&app).await;
    app.create_user("alice").await;
    let planted = "planted-session-id-planted-session-id-12345";
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let base: reqwest::Url = app.base.parse().unwrap();
    jar.add_cookie_str(&format!("valet_session={planted}; Path=/"), &base);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let pkce = Pkce::new();
    let params = [
        ("client_id", client.client_id.as_str()),
        ("response_type", "code"),
        ("audience", CONTACTS),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let response = browser
        .get(app.url("/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "the planted id is no session");
    let page = browser
        .get(app.url(&location(&response)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = Form::parse(&page);
    form.set("username", "alice").set("password", PASSWORD);
    let response = browser
        .post(app.url(&form.action))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);

    let cookies = jar.cookies(&base).expect("cookies after sign-in");
    let cookies = cookies.to_str().unwrap();
    let session = cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("valet_session="))
        .expect("a session cookie");
    assert_ne!(session, planted, "the sign-in made the planted id live");
    assert!(session.len() >= 43, "a fresh 256-bit id: {session}");
}

async fn disabled_user_cannot_sign_in(app: TestApp) {
    let client = client(&app).await;
    app.create_user("alice").await;
    app.set_user_disabled("alice", true).await;
    let page = app.login_page(&client).await;
    let response = app.sign_in(&page, "alice", PASSWORD).await;
    assert_eq!(response.status(), 403);
    assert!(alert(&response.text().await.unwrap()).contains("disabled"));
    let response = app.sign_in(&page, "alice", "wrong").await;
    assert_eq!(
        response.status(),
        400,
        "a wrong password says nothing about the account"
    );

    // A session made before the user was disabled no longer counts.
    app.set_user_disabled("alice", false).await;
    let response = app.sign_in(&page, "alice", PASSWORD).await;
    assert_eq!(response.status(), 303);
    app.set_user_disabled("alice", true).await;
    let page = app.login_page(&client).await;
    assert!(page.contains("name=\"password\""), "back to the login page");
}

async fn unknown_or_finished_request_is_an_error_page(app: TestApp) {
    for path in [
        "/login?request=nonsense",
        "/login",
        "/consent?request=nonsense",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        assert!(
            response.text().await.unwrap().contains("start again"),
            "{path}"
        );
    }
}

async fn limiter_locks_a_username_then_lets_the_user_back(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.login.user_free_failures = 0;
        c.login.user_max_lockout = valet::config::ConfigDuration::secs(60);
    })
    .await;
    let client = client(&app).await;
    app.create_user("alice").await;
    let page = app.login_page(&client).await;
    assert_eq!(app.sign_in(&page, "alice", "guess 1").await.status(), 400);
    // Locked for a second now: even the right password is refused, without being checked.
    let refused = app.sign_in(&page, "ALICE", PASSWORD).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let html = refused.text().await.unwrap();
    assert!(alert(&html).contains("Too many"), "{}", alert(&html));
    assert_eq!(Form::parse(&html).get("username"), Some("ALICE"));

    app.advance(std::time::Duration::from_secs(retry + 1));
    let response = app.sign_in(&page, "alice", PASSWORD).await;
    assert_eq!(
        response.status(),
        303,
        "the lock is short: the real user gets back in"
    );
}

async fn limiter_counts_per_address(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.login.address_free_failures = 1;
        c.login.user_free_failures = 100;
    })
    .await;
    let client = client(&app).await;
    app.create_user("alice").await;
    let page = app.login_page(&client).await;
    assert_eq!(app.sign_in(&page, "bob", "x").await.status(), 400);
    assert_eq!(app.sign_in(&page, "carol", "x").await.status(), 400);
    // Two failures from this address, for other users: the address is locked for everyone.
    assert_eq!(app.sign_in(&page, "alice", PASSWORD).await.status(), 429);
}

async fn sign_in_from(
    app: &TestApp,
    page: &str,
    username: &str,
    password: &str,
    forwarded_for: &str,
) -> u16 {
    let mut form = Form::parse(page);
    form.set("username", username).set("password", password);
    app.http
        .post(app.url(&form.action))
        .header("x-forwarded-for", forwarded_for)
        .form(&form.fields)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn forwarded_addresses_count_only_behind_trusted_proxies(backend: Backend) {
    for trusted in [true, false] {
        let app = harness::spawn_with(backend, |c| {
            c.login.address_free_failures = 1;
            c.login.user_free_failures = 100;
            if trusted {
                c.http.trusted_proxies = vec!["127.0.0.1/32".into()];
            }
        })
        .await;
        let client = client(&app).await;
        app.create_user("alice").await;
        let page = app.login_page(&client).await;
        assert_eq!(
            sign_in_from(&app, &page, "bob", "x", "203.0.113.1").await,
            400
        );
        assert_eq!(
            sign_in_from(&app, &page, "bob", "x", "203.0.113.1").await,
            400
        );
        assert_eq!(
            sign_in_from(&app, &page, "alice", PASSWORD, "203.0.113.1").await,
            429,
            "that address is locked"
        );
        let other_address = sign_in_from(&app, &page, "alice", PASSWORD, "198.51.100.2").await;
        if trusted {
            assert_eq!(
                other_address, 303,
                "behind a trusted proxy, each client address counts alone"
            );
        } else {
            assert_eq!(
                other_address, 429,
                "from an untrusted peer the header is ignored: the peer is locked"
            );
        }
    }
}

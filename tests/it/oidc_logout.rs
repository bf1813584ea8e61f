//! OpenID Connect logout (issue 12), tests named after the modules of the OpenID Foundation's
//! RP-Initiated Logout and Back-Channel Logout OP test plans. Back-channel logout tokens are
//! caught by a receiver in the test and verified independently, against the JWKS.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;
use valet::domain::GrantType;

use crate::harness::TestApp;
use crate::harness::fixtures::{CALLBACK, NewClient, PASSWORD, STATE, ok_json, verify_with_jwks};
use crate::harness::flow::{Form as PageForm, WebClient, location, redirect_params};
use crate::store_tests;

store_tests!(
    oidcc_rp_initiated_logout,
    oidcc_rp_initiated_logout_bad_post_logout_redirect_uri,
    oidcc_rp_initiated_logout_bad_id_token_hint,
    oidcc_rp_initiated_logout_no_id_token_hint,
    oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri,
    oidcc_rp_initiated_logout_no_post_logout_redirect_uri,
    oidcc_backchannel_rp_initiated_logout,
    backchannel_logout_when_the_user_is_disabled_deleted_or_changes_password,
    backchannel_logout_is_retried_until_the_client_answers,
    a_code_redeemed_after_its_session_ended_gets_no_id_token,
);

const LOGGED_OUT: &str = "https://app.example.com/logged-out";
const LOGGED_OUT_WITH_QUERY: &str = "https://app.example.com/bye?from=valet";

/// A stock client (no scopes, no API) that registered where to go after logout and, if
/// given, where logout tokens go.
async fn logout_client(app: &TestApp, backchannel: Option<&str>) -> WebClient {
    let mut client = NewClient::web(CALLBACK, "")
        .without_audience()
        .grants(&[GrantType::AuthorizationCode])
        .post_logout_redirect_uri(LOGGED_OUT)
        .post_logout_redirect_uri(LOGGED_OUT_WITH_QUERY);
    if let Some(uri) = backchannel {
        client = client.backchannel_logout_uri(uri);
    }
    app.create_web_client(client).await
}

/// Sign `username` in through the pages (or the live session) and redeem the code: the ID
/// token's text and claims.
async fn id_token_for(app: &TestApp, client: &WebClient, username: &str) -> (String, Value) {
    let params = [
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", "openid"),
        ("state", STATE),
    ];
    let mut response = app.authorize(&params).await;
    if location(&response).starts_with("/login") {
        let login = app.follow_to_page(response, "/login").await;
        response = app.sign_in(&login, username, PASSWORD).await;
    }
    if location(&response).starts_with("/consent") {
        let consent = app.follow_to_page(response, "/consent").await;
        response = app.decide(&consent, "allow").await;
    }
    let code = redirect_params(&location(&response))["code"].clone();
    let body = ok_json(app.redeem(client, &code, None).await).await;
    let token = body["id_token"].as_str().expect("an ID token").to_owned();
    let (_, claims) = verify_with_jwks(app, &token, &client.client_id).await;
    (token, claims)
}

/// Whether the browser still has a live session: `/authorize` skips the login page.
async fn signed_in(app: &TestApp, client: &WebClient) -> bool {
    let response = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid"),
        ])
        .await;
    !location(&response).starts_with("/login")
}

async fn logout(app: &TestApp, params: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .get(app.url("/logout"))
        .query(params)
        .send()
        .await
        .unwrap()
}

/// oidcc-rp-initiated-logout: with a hint naming the session, the session ends at once and
/// the browser goes back to the registered URI with `state`.
async fn oidcc_rp_initiated_logout(app: TestApp) {
    app.create_alice().await;
    let client = logout_client(&app, None).await;
    let (id_token, claims) = id_token_for(&app, &client, "alice").await;
    assert!(claims["sid"].is_string(), "ID tokens carry sid: {claims}");
    assert!(signed_in(&app, &client).await);

    let response = logout(
        &app,
        &[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", LOGGED_OUT),
            ("state", "s-42"),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{LOGGED_OUT}?state=s-42"));
    assert!(!signed_in(&app, &client).await, "the session ended");
}

/// oidcc-rp-initiated-logout-bad-post-logout-redirect-uri: an unregistered URI is refused on
/// a page, never redirected to, and nobody is signed out.
async fn oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(app: TestApp) {
    app.create_alice().await;
    let client = logout_client(&app, None).await;
    let (id_token, _) = id_token_for(&app, &client, "alice").await;
    for uri in [
        "https://evil.example.com/",
        "https://app.example.com/logged-out/",
        CALLBACK,
    ] {
        let response = logout(
            &app,
            &[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", uri),
            ],
        )
        .await;
        assert_eq!(response.status(), 400, "{uri}");
        assert!(response.headers().get("location").is_none());
    }
    assert!(signed_in(&app, &client).await, "still signed in");
}

/// oidcc-rp-initiated-logout-bad-id-token-hint: a hint whose signature does not verify is
/// refused.
async fn oidcc_rp_initiated_logout_bad_id_token_hint(app: TestApp) {
    app.create_alice().await;
    let client = logout_client(&app, None).await;
    let (id_token, _) = id_token_for(&app, &client, "alice").await;
    let mut forged = id_token.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let response = logout(
        &app,
        &[
            ("id_token_hint", &forged),
            ("post_logout_redirect_uri", LOGGED_OUT),
        ],
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(signed_in(&app, &client).await);
}

/// oidcc-rp-initiated-logout-no-id-token-hint: without a hint the person is asked; the
/// confirmation form carries the request, and confirming signs out and goes back with
/// `state`.
async fn oidcc_rp_initiated_logout_no_id_token_hint(app: TestApp) {
    app.create_alice().await;
    let client = logout_client(&app, None).await;
    id_token_for(&app, &client, "alice").await;
    let response = logout(
        &app,
        &[
            ("client_id", &client.client_id),
            ("post_logout_redirect_uri", LOGGED_OUT),
            ("state", "s-7"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200, "a confirmation page");
    let page = response.text().await.unwrap();
    assert!(signed_in(&app, &client).await, "asking signs nobody out");
    let form = PageForm::parse(&page);
    let response = app.submit(&form).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{LOGGED_OUT}?state=s-7"));
    assert!(!signed_in(&app, &client).await);
}

/// oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri: a registered URI with a
/// query keeps it, and `state` is added to it.
async fn oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(app: TestApp) {
    app.create_alice().await;
    let client = logout_client(&app, None).await;
    let (id_token, _) = id_token_for(&app, &client, "alice").await;
    let response = logout(
        &app,
        &[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", LOGGED_OUT_WITH_QUERY),
            ("state", "s 1"),
        ],
    )
    .await;
    let target = url::Url::parse(&location(&response)).unwrap();
    let query: HashMap<_, _> = target.query_pairs().into_owned().collect();
    assert_eq!(query["from"], "valet");
    assert_eq!(query["state"], "s 1");
}

/// oidcc-rp-initiated-logout-no-post-logout-redirect-uri: signed out, then the signed-out
/// page; and a hint from another session of the same user asks first.
async fn oidcc_rp_initiated_logout_no_post_logout_redirect_uri(mut app: TestApp) {
    app.create_alice().await;
    let client = logout_client(&app, None).await;
    let (earlier_hint, _) = id_token_for(&app, &client, "alice").await;
    // Another browser, another session of alice.
    app.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let (hint, _) = id_token_for(&app, &client, "alice").await;
    let response = logout(&app, &[("id_token_hint", &earlier_hint)]).await;
    assert_eq!(response.status(), 200);
    assert!(
        signed_in(&app, &client).await,
        "another session's hint asks first"
    );
    let response = logout(&app, &[("id_token_hint", &hint)]).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("signed out"));
    assert!(!signed_in(&app, &client).await);
}

/// A client's back-channel logout endpoint, in the test: it answers `503` to the first
/// `failures` posts, then `200`, and hands every logout token it gets to the test.
struct Receiver {
    uri: String,
    tokens: mpsc::UnboundedReceiver<String>,
    posts: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct ReceiverState {
    tokens: mpsc::UnboundedSender<String>,
    posts: Arc<AtomicUsize>,
    failures: usize,
}

async fn receive(
    State(state): State<ReceiverState>,
    Form(form): Form<HashMap<String, String>>,
) -> StatusCode {
    let post = state.posts.fetch_add(1, Ordering::SeqCst);
    if post < state.failures {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let _ = state
        .tokens
        .send(form.get("logout_token").cloned().unwrap_or_default());
    StatusCode::OK
}

async fn receiver(failures: usize) -> Receiver {
    let (sender, tokens) = mpsc::unbounded_channel();
    let posts = Arc::new(AtomicUsize::new(0));
    let state = ReceiverState {
        tokens: sender,
        posts: posts.clone(),
        failures,
    };
    let router = axum::Router::new()
        .route("/backchannel", axum::routing::post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/backchannel", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver { uri, tokens, posts }
}

impl Receiver {
    /// The next logout token, within 10 s (the server delivers every second).
    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.tokens.recv())
            .await
            .expect("a logout token within 10 s")
            .expect("the receiver is running")
    }
}

/// A logout token checked as Back-Channel Logout 1.0 §2.6 has a client check it.
async fn verified_logout_token(app: &TestApp, client: &WebClient, token: &str) -> Value {
    let (header, claims) = verify_with_jwks(app, token, &client.client_id).await;
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    assert_eq!(claims["iss"], app.base);
    assert!(claims["jti"].is_string(), "{claims}");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(
        claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(),
        "{claims}"
    );
    claims
}

/// oidcc-backchannel-rp-initiated-logout: logging out at Valet posts the client a logout
/// token naming the session its ID token named.
async fn oidcc_backchannel_rp_initiated_logout(app: TestApp) {
    let alice = app.create_alice().await;
    let mut receiver = receiver(0).await;
    let client = logout_client(&app, Some(&receiver.uri)).await;
    let other = logout_client(&app, None).await;
    let (id_token, id_claims) = id_token_for(&app, &client, "alice").await;
    id_token_for(&app, &other, "alice").await;

    let response = logout(
        &app,
        &[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", LOGGED_OUT),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    let token = receiver.next().await;
    let claims = verified_logout_token(&app, &client, &token).await;
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["sid"], id_claims["sid"]);
    // Delivered once: the delivery leaves the queue when the client answered, so nothing
    // more can arrive once it is gone.
    let later = app.clock.now().plus(Duration::from_secs(3600));
    let mut queued = app
        .state
        .store
        .due_logout_deliveries(later, 10)
        .await
        .unwrap();
    for _ in 0..50 {
        if queued.is_empty() {
            break;
        }
        // The deliverer deletes the row just after the client's answer.
        tokio::time::sleep(Duration::from_millis(20)).await;
        queued = app
            .state
            .store
            .due_logout_deliveries(later, 10)
            .await
            .unwrap();
    }
    assert!(queued.is_empty(), "{queued:?}");
    assert_eq!(receiver.posts.load(Ordering::SeqCst), 1);
}

/// A session ends however it ends: `user set-password`, `user disable` and `user delete`
/// each send the logout token too (SPEC §9).
async fn backchannel_logout_when_the_user_is_disabled_deleted_or_changes_password(
    mut app: TestApp,
) {
    let mut receiver = receiver(0).await;
    let client = logout_client(&app, Some(&receiver.uri)).await;
    let commands: [(&str, &[&str]); 3] = [
        (
            "carol",
            &[
                "user",
                "set-password",
                "carol",
                "--password",
                "a new passphrase",
            ],
        ),
        ("dave", &["user", "disable", "dave"]),
        ("erin", &["user", "delete", "erin"]),
    ];
    for (username, command) in commands {
        app.http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        let id = app.create_user(username).await;
        let (_, id_claims) = id_token_for(&app, &client, username).await;
        app.cli_ok(command).await;
        let token = receiver.next().await;
        let claims = verified_logout_token(&app, &client, &token).await;
        assert_eq!(claims["sub"], id.as_str(), "{command:?}");
        assert_eq!(claims["sid"], id_claims["sid"], "{command:?}");
    }
}

/// A client that fails is tried again later (on the server's clock), and the token waits in
/// the store meanwhile, where any replica (or a restarted one) finds it.
async fn backchannel_logout_is_retried_until_the_client_answers(app: TestApp) {
    app.create_alice().await;
    let mut receiver = receiver(1).await;
    let client = logout_client(&app, Some(&receiver.uri)).await;
    let (id_token, _) = id_token_for(&app, &client, "alice").await;
    logout(&app, &[("id_token_hint", &id_token)]).await;

    // The first post fails; the delivery stays queued with its attempt counted.
    for _ in 0..100 {
        if receiver.posts.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.posts.load(Ordering::SeqCst), 1, "one failed post");
    let later = app.clock.now().plus(Duration::from_secs(3600));
    let queued = app
        .state
        .store
        .due_logout_deliveries(later, 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "kept in the store");
    assert_eq!(queued[0].attempts, 1);

    // Five seconds on, it is due again and delivered.
    app.advance(Duration::from_secs(6));
    let token = receiver.next().await;
    verified_logout_token(&app, &client, &token).await;
    assert_eq!(receiver.posts.load(Ordering::SeqCst), 2);
}

/// A code whose session ends before the client redeems it would give an ID token naming a
/// session whose logout token was already sent (to nobody): the redemption is refused.
async fn a_code_redeemed_after_its_session_ended_gets_no_id_token(app: TestApp) {
    app.create_alice().await;
    let receiver = receiver(0).await;
    let client = logout_client(&app, Some(&receiver.uri)).await;
    id_token_for(&app, &client, "alice").await;
    // A second code in the same session, not yet redeemed.
    let response = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid"),
        ])
        .await;
    let code = redirect_params(&location(&response))["code"].clone();
    let response = logout(&app, &[("client_id", &client.client_id)]).await;
    let form = PageForm::parse(&response.text().await.unwrap());
    app.submit(&form).await;
    let response = app.redeem(&client, &code, None).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

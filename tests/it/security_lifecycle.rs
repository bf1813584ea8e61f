//! Security review (issue 11), findings 11–14, 19 and part of 20: what deleting a client or
//! changing a user ends, client and user ids kept apart, what a failed client authentication
//! and the authorize error page reveal, grant rows of codes nobody redeems, how long retired
//! keys stay published, and `__Host-` cookies on an https issuer.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use valet::config::ConfigDuration;
use valet::domain::{GrantId, ScopeSet, UnixTime};
use valet::store::{Client, StoreError, User};

use crate::harness::fixtures::PASSWORD;
use crate::harness::flow::{Form, Pkce, WebClient, location};
use crate::harness::{self, Backend, CONTACTS, TestApp, basic_header};
use crate::{backend_tests, store_tests};

store_tests!(
    deleting_a_client_forgets_its_consents_and_tokens,
    a_client_id_may_not_be_a_user_id,
    password_change_disable_and_delete_end_sessions_and_refresh_tokens,
    failed_client_authentication_looks_the_same_for_every_id,
    the_redirect_mismatch_page_shows_only_what_was_sent,
    unredeemed_codes_leave_no_grant_rows,
    signing_in_again_ends_the_browsers_earlier_session,
);
backend_tests!(
    retired_keys_stay_published_while_id_tokens_live,
    cookies_carry_the_host_prefix_on_an_https_issuer,
);

const CALLBACK: &str = "https://app.example.com/callback";
const OTHER_CALLBACK: &str = "https://other.example.com/callback";

/// A public code-flow client of the Contacts API that also gets refresh tokens, made with the
/// CLI because these tests are about what `valet client create --client-id` and `client
/// delete` do to an id.
async fn code_client(app: &TestApp, client_id: &str, redirect_uri: &str) -> WebClient {
    let created = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "Contacts SPA",
            "--public",
            "--client-id",
            client_id,
            "--grant-type",
            "authorization_code,refresh_token",
            "--redirect-uri",
            redirect_uri,
            "--scope",
            "read:contacts",
            "--audience",
            CONTACTS,
            "--json",
        ])
        .await;
    WebClient {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        secret: None,
        redirect_uri: redirect_uri.to_owned(),
    }
}

fn code_params<'a>(client: &'a WebClient, pkce: &'a Pkce) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("audience", CONTACTS),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
}

/// Redeem a code; returns (access token, refresh token).
async fn redeem(app: &TestApp, client: &WebClient, code: &str, pkce: &Pkce) -> (String, String) {
    let response = app.redeem(client, code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    )
}

async fn refresh(app: &TestApp, client_id: &str, token: &str) -> reqwest::Response {
    app.token(
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", token),
        ],
    )
    .await
}

async fn assert_refresh_refused(app: &TestApp, client_id: &str, token: &str, why: &str) {
    let response = refresh(app, client_id, token).await;
    assert_eq!(response.status(), 400, "{why}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
}

/// A fresh browser: its own cookie jar.
fn new_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Finding 11: a client deleted and registered again under the same id starts from nothing.
async fn deleting_a_client_forgets_its_consents_and_tokens(app: TestApp) {
    app.create_contacts_api().await;
    app.create_user("alice").await;
    let client = code_client(&app, "reborn", CALLBACK).await;
    let pkce = Pkce::new();
    let code = app
        .sign_in_and_allow(&code_params(&client, &pkce), "alice")
        .await["code"]
        .clone();
    let (_, refresh_token) = redeem(&app, &client, &code, &pkce).await;
    // The consent is remembered: the same request goes straight back with a code.
    let response = app.authorize(&code_params(&client, &pkce)).await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with(CALLBACK));

    app.cli_ok(&["client", "delete", "reborn"]).await;
    let reborn = code_client(&app, "reborn", OTHER_CALLBACK).await;
    app.advance(Duration::from_secs(2)); // past the client cache

    let response = app.authorize(&code_params(&reborn, &pkce)).await;
    assert_eq!(response.status(), 303);
    let next = location(&response);
    assert!(
        next.starts_with("/consent"),
        "the new client's first request must ask for consent, not redirect to {next}"
    );
    assert_refresh_refused(
        &app,
        "reborn",
        &refresh_token,
        "a refresh token of the deleted client",
    )
    .await;
}

/// Finding 12: a client-credentials token's `sub` is the client id, so a client id must never
/// be a user's id (RFC 9068 §2.2, RFC 9700 §4.15).
async fn a_client_id_may_not_be_a_user_id(app: TestApp) {
    app.create_contacts_api().await;
    let user_id = app.create_user("alice").await;
    let out = app
        .cli(&[
            "client",
            "create",
            "--name",
            "impostor",
            "--client-id",
            &user_id,
            "--grant-type",
            "client_credentials",
            "--scope",
            "read:contacts",
            "--audience",
            CONTACTS,
        ])
        .await;
    assert!(
        !out.status.success(),
        "a client with a user's id was created"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("user"), "{stderr}");

    // The store holds the line too, both ways, whoever calls it.
    let store = &app.state.store;
    let now = UnixTime(1_700_000_000);
    let client = Client {
        client_id: user_id.clone(),
        client_name: "impostor".into(),
        secret_hash: None,
        grant_types: vec![valet::domain::GrantType::AuthorizationCode],
        redirect_uris: vec![CALLBACK.into()],
        scope: ScopeSet::default(),
        audiences: vec![],
        allowed_origins: vec![],
        first_party: false,
        logout: Default::default(),
        require_par: false,
        keys: Default::default(),
        registration: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    };
    assert!(matches!(
        store.insert_client(&client).await,
        Err(StoreError::Conflict)
    ));
    let service_id = app.create_service_client("read:contacts").await.id;
    let user = User {
        id: service_id,
        username: "mallory".into(),
        email: None,
        name: None,
        profile: Default::default(),
        password_hash: "x".into(),
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    assert!(matches!(
        store.insert_user(&user).await,
        Err(StoreError::Conflict)
    ));
    assert!(store.user_by_username("mallory").await.unwrap().is_none());
}

/// Finding 13: `user set-password`, `user disable` (even once enabled again) and `user
/// delete` end the user's browser sessions and refresh-token families.
async fn password_change_disable_and_delete_end_sessions_and_refresh_tokens(mut app: TestApp) {
    app.create_contacts_api().await;
    let client = code_client(&app, "web", CALLBACK).await;
    let actions: [(&str, &[&[&str]]); 3] = [
        (
            "carol",
            &[&[
                "user",
                "set-password",
                "carol",
                "--password",
                "a new passphrase",
            ]],
        ),
        (
            "dave",
            &[&["user", "disable", "dave"], &["user", "enable", "dave"]],
        ),
        ("erin", &[&["user", "delete", "erin"]]),
    ];
    for (username, commands) in actions {
        app.http = new_browser();
        app.create_user(username).await;
        let pkce = Pkce::new();
        let code = app
            .sign_in_and_allow(&code_params(&client, &pkce), username)
            .await["code"]
            .clone();
        let (_, refresh_token) = redeem(&app, &client, &code, &pkce).await;
        // Signed in: the next request needs no login page.
        let response = app.authorize(&code_params(&client, &pkce)).await;
        assert!(location(&response).starts_with(CALLBACK), "{username}");
        // A code issued and not yet redeemed when the change happens.
        let pending_code =
            crate::harness::flow::redirect_params(&location(&response))["code"].clone();

        for command in commands {
            app.cli_ok(command).await;
        }

        let response = app.authorize(&code_params(&client, &pkce)).await;
        assert_eq!(response.status(), 303);
        let next = location(&response);
        assert!(
            next.starts_with("/login"),
            "{username} after {commands:?}: the session must have ended, got {next}"
        );
        assert_refresh_refused(&app, "web", &refresh_token, username).await;
        let response = app
            .redeem(&client, &pending_code, Some(&pkce.verifier))
            .await;
        assert_eq!(
            response.status(),
            400,
            "{username}: a code from before the change"
        );
    }
}

/// Finding 14: unknown, public and confidential ids with a bad secret (or none) get the same
/// answer, so `/token` does not tell which ids exist or what kind they are.
async fn failed_client_authentication_looks_the_same_for_every_id(app: TestApp) {
    app.create_contacts_api().await;
    let confidential = app.create_service_client("read:contacts").await.id;
    let public = code_client(&app, "spa", CALLBACK).await.client_id;
    let form = |id: &'static str, secret: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("audience", CONTACTS),
            ("client_id", id),
        ];
        if let Some(secret) = secret {
            form.push(("client_secret", secret));
        }
        form
    };
    let answer = |response: reqwest::Response| async move {
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap();
        (status, challenge, body)
    };
    let ids: Vec<&'static str> = vec![
        "no-such-client",
        Box::leak(public.into_boxed_str()),
        Box::leak(confidential.into_boxed_str()),
    ];

    // client_secret_post with a wrong secret.
    let mut answers = Vec::new();
    for id in &ids {
        answers.push(answer(app.token(None, &form(id, Some("wrong-secret"))).await).await);
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(answers[0].2["error"], "invalid_client");
    for (id, a) in ids.iter().zip(&answers) {
        assert_eq!(a, &answers[0], "client_secret_post for {id}");
    }

    // client_secret_basic with a wrong secret.
    let mut answers = Vec::new();
    for id in &ids {
        let response = app
            .http
            .post(app.url("/token"))
            .header("authorization", basic_header(id, "wrong-secret"))
            .form(&[("grant_type", "client_credentials"), ("audience", CONTACTS)])
            .send()
            .await
            .unwrap();
        answers.push(answer(response).await);
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert!(answers[0].1.is_some(), "Basic gets a challenge");
    for (id, a) in ids.iter().zip(&answers) {
        assert_eq!(a, &answers[0], "client_secret_basic for {id}");
    }

    // No secret at all: an unknown id and a confidential one look alike.
    let unknown = answer(app.token(None, &form(ids[0], None)).await).await;
    let confidential = answer(app.token(None, &form(ids[2], None)).await).await;
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown, confidential, "no secret");

    // Introspection, which no public client may call, answers a public id as an unknown one.
    let mut answers = Vec::new();
    for id in &ids {
        let response = app
            .http
            .post(app.url("/introspect"))
            .form(&[("token", "whatever"), ("client_id", id)])
            .send()
            .await
            .unwrap();
        answers.push(answer(response).await);
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    for (id, a) in ids.iter().zip(&answers) {
        assert_eq!(a, &answers[0], "introspection with client_id {id}");
    }
}

/// Finding 14: anyone can send a client_id, so the page for a bad redirect URI shows only
/// what the request sent, never the client's name or its registered redirect URIs.
async fn the_redirect_mismatch_page_shows_only_what_was_sent(app: TestApp) {
    app.create_contacts_api().await;
    let client = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "Acme Payroll Admin",
            "--public",
            "--redirect-uri",
            CALLBACK,
            "--redirect-uri",
            OTHER_CALLBACK,
            "--scope",
            "read:contacts",
            "--audience",
            CONTACTS,
            "--json",
        ])
        .await;
    let id = client["client_id"].as_str().unwrap();
    for (params, sent) in [
        (
            vec![
                ("client_id", id),
                ("response_type", "code"),
                ("redirect_uri", "https://evil.example/cb"),
            ],
            "https://evil.example/cb",
        ),
        (vec![("client_id", id), ("response_type", "code")], "(none)"),
    ] {
        let response = app.authorize(&params).await;
        assert_eq!(response.status(), 400);
        let html = response.text().await.unwrap();
        assert!(html.contains(sent), "the page shows what was sent:\n{html}");
        for secret in ["Acme Payroll Admin", CALLBACK, OTHER_CALLBACK] {
            assert!(
                !html.contains(secret),
                "the page discloses `{secret}`:\n{html}"
            );
        }
    }
}

/// The grant id an access token carries in its `jti` (`<grant id>.<random>`).
fn grant_of(access_token: &str) -> GrantId {
    let payload = access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let jti = claims["jti"].as_str().unwrap();
    GrantId::from_stored(jti.split('.').next().unwrap().to_owned())
}

/// Finding 19: a code nobody redeems leaves its grant row only as long as the code could
/// matter; a redeemed code's grant lives as long as its refresh family.
async fn unredeemed_codes_leave_no_grant_rows(app: TestApp) {
    app.create_contacts_api().await;
    app.create_user("alice").await;
    let client = code_client(&app, "web", CALLBACK).await;
    let pkce = Pkce::new();
    let params = code_params(&client, &pkce);
    let code = app.sign_in_and_allow(&params, "alice").await["code"].clone();
    let (access_token, refresh_token) = redeem(&app, &client, &code, &pkce).await;
    let kept = grant_of(&access_token);
    // Three codes that are never redeemed.
    for _ in 0..3 {
        let response = app.authorize(&params).await;
        assert!(location(&response).starts_with(CALLBACK));
    }

    // Two days later (codes, their replay memory and their access tokens are long gone, the
    // refresh family's 90 days are not), the janitor runs.
    let later = UnixTime(app.clock.now().0 + 2 * 86_400);
    let report = valet::janitor::run_once(&app.state.store, &app.state.settings, later)
        .await
        .unwrap();
    let grants = report
        .iter()
        .find(|(kind, _)| *kind == valet::store::Purge::Grants)
        .map(|(_, n)| *n);
    assert_eq!(
        grants,
        Some(3),
        "the unredeemed codes' grants go: {report:?}"
    );
    assert_eq!(
        app.state.store.grant_revoked(&kept).await.unwrap(),
        Some(false),
        "the redeemed code's grant stays with its refresh family"
    );
    assert_eq!(refresh(&app, "web", &refresh_token).await.status(), 200);
}

/// Finding 20: an ID token may outlive every access token signed with the same key; the
/// retired key stays in the JWKS until the longest of them has expired.
async fn retired_keys_stay_published_while_id_tokens_live(backend: Backend) {
    let app = harness::spawn_with(backend, |config| {
        config.tokens.access_token_ttl = ConfigDuration::secs(60);
        config.tokens.id_token_ttl = ConfigDuration::secs(600);
    })
    .await;
    let reload = || async {
        app.state.keys.reload(app.clock.now()).await.unwrap();
    };
    let old = app.published_kids().await;
    assert_eq!(old.len(), 1);
    app.cli_ok(&["keys", "rotate", "--now"]).await;
    reload().await;
    assert_eq!(app.published_kids().await.len(), 2);

    // Past the access-token lifetime, within the ID-token lifetime: still published.
    app.advance(Duration::from_secs(120));
    reload().await;
    assert!(
        app.published_kids().await.contains(&old[0]),
        "an ID token signed before the rotation is still alive"
    );
    // Past both (and the reload interval): gone.
    app.advance(Duration::from_secs(600));
    reload().await;
    assert!(!app.published_kids().await.contains(&old[0]));
}

/// `Set-Cookie` values of a response.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `name=value` of the cookie `name`, with its attributes, from a response.
fn cookie_named(response: &reqwest::Response, name: &str) -> (String, String) {
    let all = set_cookies(response);
    let cookie = all
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {all:?}"));
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches(&format!("{name}="))
        .to_owned();
    (value, cookie.clone())
}

fn assert_host_cookie(attributes: &str) {
    for required in ["Secure", "Path=/", "HttpOnly"] {
        assert!(attributes.contains(required), "{attributes}");
    }
    assert!(!attributes.contains("Domain"), "{attributes}");
}

/// Finding 20: on an https issuer the CSRF and session cookies are `__Host-` cookies, and
/// they are read back under those names.
async fn cookies_carry_the_host_prefix_on_an_https_issuer(backend: Backend) {
    let app = harness::spawn_with(backend, |config| {
        config.issuer = "https://login.example.com".into();
    })
    .await;
    app.create_contacts_api().await;
    app.create_user("alice").await;
    let client = code_client(&app, "web", CALLBACK).await;
    let pkce = Pkce::new();
    let params = code_params(&client, &pkce);
    // A browser that keeps no cookies: this test reads and sends them itself.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let path = |location: String| {
        location
            .strip_prefix("https://login.example.com")
            .map(str::to_owned)
            .unwrap_or(location)
    };

    let response = http
        .get(app.url("/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap();
    let login_path = path(location(&response));
    assert!(login_path.starts_with("/login"), "{login_path}");
    let page = http.get(app.url(&login_path)).send().await.unwrap();
    let (csrf, attributes) = cookie_named(&page, "__Host-valet_csrf");
    assert_host_cookie(&attributes);
    let mut form = Form::parse(&page.text().await.unwrap());
    form.set("username", "alice").set("password", PASSWORD);
    let response = http
        .post(app.url(&form.action))
        .header("cookie", format!("__Host-valet_csrf={csrf}"))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        303,
        "the __Host- CSRF cookie is read back"
    );
    let (session, attributes) = cookie_named(&response, "__Host-valet_session");
    assert_host_cookie(&attributes);
    assert!(
        set_cookies(&response)
            .iter()
            .all(|c| !c.starts_with("valet_session=")),
        "no plain-named session cookie on https"
    );

    // The prefixed session cookie signs the browser in: no login page the next time.
    let response = http
        .get(app.url("/authorize"))
        .query(&params)
        .header("cookie", format!("__Host-valet_session={session}"))
        .send()
        .await
        .unwrap();
    let next = path(location(&response));
    assert!(next.starts_with("/consent"), "{next}");
    // The plain name means nothing on https.
    let response = http
        .get(app.url("/authorize"))
        .query(&params)
        .header("cookie", format!("valet_session={session}"))
        .send()
        .await
        .unwrap();
    assert!(path(location(&response)).starts_with("/login"));
}

/// A browser holds one session: signing in again (here as someone else, after
/// `prompt=login`) ends the session its cookie named, so the earlier cookie signs nobody in.
async fn signing_in_again_ends_the_browsers_earlier_session(mut app: TestApp) {
    app.create_contacts_api().await;
    app.create_user("alice").await;
    app.create_user("bob").await;
    let client = code_client(&app, "web", CALLBACK).await;
    app.http = new_browser();
    let pkce = Pkce::new();
    let mut params = code_params(&client, &pkce);

    let alices = session_of_sign_in(&app, &params, "alice").await;
    params.push(("prompt", "login"));
    let bobs = session_of_sign_in(&app, &params, "bob").await;
    params.pop();

    let cookieless = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let next_with = |session: String| {
        let request = cookieless
            .get(app.url("/authorize"))
            .query(&params)
            .header("cookie", format!("valet_session={session}"));
        async move { location(&request.send().await.unwrap()) }
    };
    assert!(
        next_with(alices).await.starts_with("/login"),
        "alice's session ended when bob signed in in the same browser"
    );
    assert!(
        next_with(bobs).await.starts_with("/consent"),
        "bob's session is live"
    );
}

/// `/authorize` → login as `username`; the session cookie the login set.
async fn session_of_sign_in(app: &TestApp, params: &[(&str, &str)], username: &str) -> String {
    let response = app.authorize(params).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, username, PASSWORD).await;
    assert_eq!(response.status(), 303, "{username} signed in");
    cookie_named(&response, "valet_session").0
}

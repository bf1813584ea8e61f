//! The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636) through the real login and
//! consent pages, and the token endpoint's `authorization_code` grant.

use std::sync::Arc;

use serde_json::Value;

use crate::harness::fixtures::{
    CALLBACK, NewClient, PASSWORD, STATE, assert_error_400, assert_exactly_one_succeeded,
    code_params, concurrent_statuses, error_400, verify_with_jwks,
};
use crate::harness::flow::{Form, Pkce, WebClient, buttons, location, redirect_params};
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::{backend_tests, store_tests};

store_tests!(
    code_flow_with_pkce_for_a_public_client,
    confidential_client_without_pkce,
    session_and_consent_are_reused_and_widening_asks_again,
    first_party_client_skips_consent,
    deny_returns_access_denied,
    logout_ends_the_session,
    code_replay_is_refused_and_revokes_the_grant,
    parallel_redemptions_give_exactly_one_token,
    token_endpoint_checks_verifier_client_and_redirect_uri,
    pages_carry_security_headers,
    form_post_response_mode,
    oauth2_crate_drives_code_with_pkce
);
backend_tests!(expired_code_is_refused);

async fn public_client(app: &TestApp) -> WebClient {
    app.create_contacts_api().await;
    let scope = "read:contacts create:contacts openid";
    app.create_web_client(NewClient::web(CALLBACK, scope).public())
        .await
}

async fn code_flow_with_pkce_for_a_public_client(app: TestApp) {
    let client = public_client(&app).await;
    let user_id = app.create_user("alice").await;
    let pkce = Pkce::new();

    let response = app
        .authorize(&code_params(&client, &pkce, "read:contacts openid"))
        .await;
    let login = app.follow_to_page(response, "/login?request=").await;
    let form = Form::parse(&login);
    assert_eq!(form.action, "/login");
    assert!(form.get("csrf").is_some_and(|c| !c.is_empty()));
    assert!(form.get("request").is_some_and(|r| r.len() >= 43));
    assert!(
        login.contains("Contacts Web"),
        "the login page names the client"
    );

    let response = app.sign_in(&login, "alice", PASSWORD).await;
    let set_cookie: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = set_cookie
        .iter()
        .find(|c| c.starts_with("valet_session="))
        .expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(
        !session.contains("Secure"),
        "http issuer: no Secure attribute ({session})"
    );

    let consent = app.follow_to_page(response, "/consent?request=").await;
    assert!(consent.contains("read:contacts") && consent.contains("openid"));
    assert!(
        consent.contains("Contacts"),
        "the API a scope belongs to is named"
    );
    assert_eq!(
        buttons(&consent),
        [
            ("decision".to_owned(), "allow".to_owned()),
            ("decision".to_owned(), "deny".to_owned())
        ]
    );

    let response = app.decide(&consent, "allow").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = location(&response);
    assert!(location.starts_with(&format!("{CALLBACK}?")), "{location}");
    let params = redirect_params(&location);
    assert_eq!(params["state"], STATE);
    assert_eq!(params["iss"], app.base);
    let code = &params["code"];
    assert!(code.len() >= 43, "256-bit code");

    let response = app.redeem(&client, code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid read:contacts");
    assert!(body.get("refresh_token").is_none());
    let (_, claims) =
        verify_with_jwks(&app, body["access_token"].as_str().unwrap(), CONTACTS).await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["scope"], "openid read:contacts");
}

async fn confidential_client_without_pkce(app: TestApp) {
    app.create_contacts_api().await;
    let client = app
        .create_web_client(NewClient::web(CALLBACK, "read:contacts"))
        .await;
    assert!(client.secret.is_some());
    app.create_user("bob").await;
    let params = app
        .sign_in_and_allow(
            &[
                ("response_type", "code"),
                ("client_id", &client.client_id),
                ("audience", CONTACTS),
            ],
            "bob",
        )
        .await;
    // No redirect_uri at /authorize (one is registered): none needed at /token either.
    let response = app
        .token(
            Some(client.creds().basic()),
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
            ],
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn session_and_consent_are_reused_and_widening_asks_again(app: TestApp) {
    let client = public_client(&app).await;
    app.create_user("carol").await;
    let pkce = Pkce::new();
    let both = "read:contacts create:contacts";
    let first = app
        .sign_in_and_allow(&code_params(&client, &pkce, both), "carol")
        .await;
    assert!(first.contains_key("code"));

    // Same scope again: live session and remembered consent, straight back to the client.
    let response = app.authorize(&code_params(&client, &pkce, both)).await;
    assert_eq!(response.status(), 303);
    let params = redirect_params(&location(&response));
    assert!(params.contains_key("code"), "{params:?}");
    assert_ne!(params["code"], first["code"]);

    // Fewer scopes than consented: no page either.
    let response = app
        .authorize(&code_params(&client, &pkce, "read:contacts"))
        .await;
    assert!(location(&response).starts_with(CALLBACK));

    // More scopes: the consent page again, listing the new one.
    let response = app
        .authorize(&code_params(&client, &pkce, "read:contacts openid"))
        .await;
    let consent = app.follow_to_page(response, "/consent?request=").await;
    assert!(consent.contains("openid"));
    let response = app.decide(&consent, "allow").await;
    assert!(redirect_params(&location(&response)).contains_key("code"));
    let response = app
        .authorize(&code_params(
            &client,
            &pkce,
            "create:contacts openid read:contacts",
        ))
        .await;
    assert!(
        location(&response).starts_with(CALLBACK),
        "the union of both consents is remembered"
    );
}

async fn first_party_client_skips_consent(app: TestApp) {
    app.create_contacts_api().await;
    let client = app
        .create_web_client(
            NewClient::web(CALLBACK, "read:contacts")
                .public()
                .first_party(),
        )
        .await;
    app.create_user("dave").await;
    let pkce = Pkce::new();
    let response = app
        .authorize(&code_params(&client, &pkce, "read:contacts"))
        .await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "dave", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let location = location(&response);
    assert!(
        location.starts_with(CALLBACK),
        "no consent page for a first-party client: {location}"
    );
    assert!(redirect_params(&location).contains_key("code"));
}

async fn deny_returns_access_denied(app: TestApp) {
    let client = public_client(&app).await;
    app.create_user("erin").await;
    let pkce = Pkce::new();
    let response = app
        .authorize(&code_params(&client, &pkce, "read:contacts"))
        .await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "erin", PASSWORD).await;
    let consent = app.follow_to_page(response, "/consent").await;
    let response = app.decide(&consent, "deny").await;
    let params = redirect_params(&location(&response));
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], STATE);
    assert_eq!(params["iss"], app.base);
    assert!(!params.contains_key("code"));
    // The request is finished: its consent page cannot be used again.
    let again = app.decide(&consent, "allow").await;
    assert_eq!(again.status(), 400);
    assert!(again.headers().get("location").is_none());
}

async fn logout_ends_the_session(app: TestApp) {
    let client = public_client(&app).await;
    app.create_user("frank").await;
    let pkce = Pkce::new();
    app.sign_in_and_allow(&code_params(&client, &pkce, "read:contacts"), "frank")
        .await;

    let page = app.get("/logout").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("frank"));
    let form = Form::parse(&html);
    assert_eq!(form.action, "/logout");

    let mut forged = form.clone();
    forged.set("csrf", "forged");
    assert_eq!(app.submit(&forged).await.status(), 403);
    let response = app
        .authorize(&code_params(&client, &pkce, "read:contacts"))
        .await;
    assert!(
        location(&response).starts_with(CALLBACK),
        "still signed in after a forged logout"
    );

    let response = app.submit(&form).await;
    assert_eq!(response.status(), 200);
    let cleared = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cleared.starts_with("valet_session=") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let response = app
        .authorize(&code_params(&client, &pkce, "read:contacts"))
        .await;
    assert!(
        location(&response).starts_with("/login"),
        "signed out: the login page again"
    );
}

async fn code_replay_is_refused_and_revokes_the_grant(app: TestApp) {
    let client = public_client(&app).await;
    let pkce = Pkce::new();
    let code = app.fresh_code(&client, &pkce, "gina").await;
    assert_eq!(
        app.redeem(&client, &code, Some(&pkce.verifier))
            .await
            .status(),
        200
    );
    let replay = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    let hash = app.state.server_keys.hasher.hash(&code);
    let redeemed = app
        .state
        .store
        .redeem_code(
            &hash,
            &client.client_id,
            valet::clock::Clock::system().now(),
            None,
        )
        .await
        .unwrap();
    let valet::store::Redeemed::Replayed { grant_id } = redeemed else {
        panic!("{redeemed:?}")
    };
    assert_eq!(
        app.state.store.grant_revoked(&grant_id).await.unwrap(),
        Some(true),
        "the replay revoked the grant"
    );
}

async fn parallel_redemptions_give_exactly_one_token(app: TestApp) {
    let client = public_client(&app).await;
    let pkce = Pkce::new();
    let code = app.fresh_code(&client, &pkce, "hana").await;
    let app = Arc::new(app);
    let client = Arc::new(client);
    let statuses = concurrent_statuses(50, || {
        let (app, client, code) = (app.clone(), client.clone(), code.clone());
        let verifier = pkce.verifier.clone();
        async move { app.redeem(&client, &code, Some(&verifier)).await }
    })
    .await;
    assert_exactly_one_succeeded(&statuses);
}

async fn token_endpoint_checks_verifier_client_and_redirect_uri(app: TestApp) {
    let client = public_client(&app).await;
    let other = app
        .create_web_client(NewClient::web(CALLBACK, "read:contacts").public())
        .await;
    let pkce = Pkce::new();
    let params = code_params(&client, &pkce, "read:contacts");

    let code = app.fresh_code(&client, &pkce, "ivan").await;
    let wrong = Pkce::new();
    assert_eq!(
        error_400(app.redeem(&client, &code, Some(&wrong.verifier)).await).await,
        "invalid_grant"
    );

    let code = app.code_without_pages(&params).await;
    assert_eq!(
        error_400(app.redeem(&client, &code, None).await).await,
        "invalid_grant",
        "verifier missing"
    );

    let code = app.code_without_pages(&params).await;
    assert_eq!(
        error_400(app.redeem(&other, &code, Some(&pkce.verifier)).await).await,
        "invalid_grant",
        "another client's code"
    );
    // Client B's attempt left the code untouched for A.
    assert_eq!(
        app.redeem(&client, &code, Some(&pkce.verifier))
            .await
            .status(),
        200
    );

    let code = app.code_without_pages(&params).await;
    let elsewhere = WebClient {
        redirect_uri: "https://app.example.com/other".into(),
        ..client.clone()
    };
    assert_eq!(
        error_400(app.redeem(&elsewhere, &code, Some(&pkce.verifier)).await).await,
        "invalid_grant",
        "redirect_uri mismatch"
    );

    assert_eq!(
        error_400(
            app.redeem(&client, "no-such-code", Some(&pkce.verifier))
                .await
        )
        .await,
        "invalid_grant"
    );
}

async fn expired_code_is_refused(backend: Backend) {
    let app = harness::spawn_with(backend, |config| {
        config.tokens.code_ttl = valet::config::ConfigDuration::secs(1)
    })
    .await;
    let client = public_client(&app).await;
    let pkce = Pkce::new();
    let code = app.fresh_code(&client, &pkce, "judy").await;
    app.advance(std::time::Duration::from_secs(2));
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_error_400(response, "invalid_grant", "expired").await;
}

async fn pages_carry_security_headers(app: TestApp) {
    let client = public_client(&app).await;
    let pkce = Pkce::new();
    let response = app
        .authorize(&code_params(&client, &pkce, "read:contacts"))
        .await;
    let login = app.get(&location(&response)).await;
    let unknown = app
        .authorize(&[("client_id", "nobody"), ("response_type", "code")])
        .await;
    let logout = app.get("/logout").await;
    for page in [login, unknown, logout] {
        let h = page.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    }
}

async fn form_post_response_mode(app: TestApp) {
    let client = public_client(&app).await;
    app.create_user("kate").await;
    let pkce = Pkce::new();
    let mut params = code_params(&client, &pkce, "read:contacts");
    params.push(("response_mode", "form_post"));
    let response = app.authorize(&params).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "kate", PASSWORD).await;
    let consent = app.follow_to_page(response, "/consent").await;
    let response = app.decide(&consent, "allow").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let form = Form::parse(&html);
    assert_eq!(form.action, CALLBACK);
    assert_eq!(form.get("state"), Some("xyz-state"));
    assert_eq!(form.get("iss"), Some(app.base.as_str()));
    let code = form.get("code").unwrap();
    assert_eq!(
        app.redeem(&client, code, Some(&pkce.verifier))
            .await
            .status(),
        200
    );
}

/// A real OAuth client library (the `oauth2` crate) drives code + PKCE against Valet: it
/// builds the authorization URL, and exchanges the code over our HTTP client.
async fn oauth2_crate_drives_code_with_pkce(app: TestApp) {
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
        TokenResponse, TokenUrl,
    };
    let client = public_client(&app).await;
    app.create_user("leo").await;
    let oauth = oauth2::basic::BasicClient::new(ClientId::new(client.client_id.clone()))
        .set_auth_uri(AuthUrl::new(app.url("/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf) = oauth
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read:contacts".into()))
        .add_extra_param("audience", CONTACTS)
        .set_pkce_challenge(challenge)
        .url();

    let response = app.get(auth_url.as_str()).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "leo", PASSWORD).await;
    let consent = app.follow_to_page(response, "/consent").await;
    let params = redirect_params(&location(&app.decide(&consent, "allow").await));
    assert_eq!(&params["state"], csrf.secret());

    let http = app.http.clone();
    let send = move |request: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            Ok::<_, reqwest::Error>(builder.body(response.bytes().await?.to_vec()).unwrap())
        }
    };
    let token = oauth
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&send)
        .await
        .expect("the oauth2 crate accepts Valet's token response");
    let scopes: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["read:contacts"]);
    verify_with_jwks(&app, token.access_token().secret(), CONTACTS).await;
}

//! Security review, issue 11: attacks on the token endpoints and on the authorization
//! request, over HTTP on both stores. Each test names the finding it reproduces.

use std::time::Duration;

use serde_json::Value;

use valet::domain::GrantType;

use crate::harness::fixtures::{
    CALLBACK, Creds, NewClient, PASSWORD, STATE, code_params, error_400, str_of, verify_with_jwks,
};
use crate::harness::flow::{Pkce, WebClient, location, redirect_params};
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::{backend_tests, store_tests};

store_tests!(
    a_wrong_verifier_or_redirect_uri_leaves_the_code_usable,
    a_failed_replay_does_not_revoke_the_grant,
    refresh_outside_the_grants_resource_is_invalid_target,
    introspection_shows_a_caller_only_its_own_tokens_and_its_audiences,
    a_nul_in_an_introspected_token_is_inactive,
    revoking_another_clients_token_is_refused,
    authorize_parameters_over_2_kib_are_refused_before_anything_is_stored,
    max_age_is_satisfied_by_the_sign_in_for_this_request
);
backend_tests!(a_withdrawn_successor_revokes_the_family);

const BILLING: &str = "https://billing.example.com";

/// The Billing API and a client_credentials client for it only (the billing service).
async fn billing_service(app: &TestApp) -> Creds {
    app.create_api(BILLING, "Billing", "read:invoices").await;
    let billing =
        NewClient::confidential("billing", &[GrantType::ClientCredentials], "read:invoices")
            .without_audience()
            .audience(BILLING);
    app.create_confidential_client(billing).await
}

/// As `valet client update CLIENT --audience ...`: the client may ask for these APIs, and no
/// others. The server's client cache still knows the old ones for `clients.cache_ttl`.
async fn set_client_audiences(app: &TestApp, client_id: &str, audiences: &[&str]) {
    let store = &app.state.store;
    let mut client = store.client(client_id).await.expect("read the client");
    let client = client.as_mut().expect("the client exists");
    client.audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
    client.updated_at = app.clock.now();
    assert!(
        store
            .update_client(client)
            .await
            .expect("update the client")
    );
}

/// Finding 9: a redemption with a wrong `code_verifier` or `redirect_uri` fails without
/// consuming the code, so the client's own redemption still works.
async fn a_wrong_verifier_or_redirect_uri_leaves_the_code_usable(app: TestApp) {
    let caller = app.create_resource_server().await;
    let client = app.create_public_code_client().await;
    let pkce = Pkce::new();
    let code = app.fresh_code(&client, &pkce, "alice").await;

    let wrong = Pkce::new();
    let response = app.redeem(&client, &code, Some(&wrong.verifier)).await;
    assert_eq!(error_400(response).await, "invalid_grant", "wrong verifier");
    let response = app.redeem(&client, &code, None).await;
    assert_eq!(error_400(response).await, "invalid_grant", "no verifier");
    let elsewhere = WebClient {
        client_id: client.client_id.clone(),
        secret: None,
        redirect_uri: "https://app.example.com/other".into(),
    };
    let response = app.redeem(&elsewhere, &code, Some(&pkce.verifier)).await;
    assert_eq!(
        error_400(response).await,
        "invalid_grant",
        "wrong redirect_uri"
    );

    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let tokens: Value = response.json().await.unwrap();
    app.assert_active(&caller, str_of(&tokens, "access_token"), "the tokens")
        .await;
}

/// Finding 9, the other order: once the code is redeemed, someone holding only the
/// intercepted code (not the verifier) cannot revoke what it produced.
async fn a_failed_replay_does_not_revoke_the_grant(app: TestApp) {
    let caller = app.create_resource_server().await;
    let client = app.create_public_code_client().await;
    let pkce = Pkce::new();
    let code = app.fresh_code(&client, &pkce, "alice").await;
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = str_of(&tokens, "access_token");

    let wrong = Pkce::new();
    let response = app.redeem(&client, &code, Some(&wrong.verifier)).await;
    assert_eq!(error_400(response).await, "invalid_grant");
    app.assert_active(&caller, access, "after a replay without the verifier")
        .await;

    // A replay with the verifier is a real replay: RFC 6749 §4.1.2 still revokes.
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(error_400(response).await, "invalid_grant");
    app.assert_inactive(&caller, access, "after a real replay")
        .await;
}

/// Finding 8 (RFC 9700 §4.14.2, SPEC §5): with a reuse grace, a thief who replays the
/// rotated token within the grace gets a successor and the client's is withdrawn; when the
/// client presents its withdrawn successor, the whole family is revoked, the thief's too.
async fn a_withdrawn_successor_revokes_the_family(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.tokens.refresh_reuse_grace = valet::config::ConfigDuration::secs(30);
    })
    .await;
    let caller = app.create_resource_server().await;
    let client = app.create_password_client().await;
    let rt0 = app.user_tokens(&client, "alice").await;
    let rt0 = str_of(&rt0, "refresh_token");
    let app_side = app.refreshed(&client, rt0, None).await;
    let rt1 = str_of(&app_side, "refresh_token");

    app.advance(Duration::from_secs(5));
    let thief = app.refreshed(&client, rt0, None).await;
    let rt1_thief = str_of(&thief, "refresh_token");
    assert_ne!(rt1, rt1_thief);

    let response = app.refresh(&client, rt1, None).await;
    assert_eq!(
        error_400(response).await,
        "invalid_grant",
        "withdrawn successor"
    );
    let response = app.refresh(&client, rt1_thief, None).await;
    assert_eq!(
        error_400(response).await,
        "invalid_grant",
        "the thief's successor dies with the family"
    );
    app.assert_inactive(&client, rt1_thief, "the thief's refresh token")
        .await;
    app.assert_inactive(
        &caller,
        str_of(&thief, "access_token"),
        "the thief's access token",
    )
    .await;
}

/// Finding 16 (RFC 8707 §2.2): a refresh naming a resource outside its grant is
/// `invalid_target`, even one the client may otherwise use; the grant's own resource is fine.
async fn refresh_outside_the_grants_resource_is_invalid_target(app: TestApp) {
    app.create_contacts_api().await;
    let client = app.create_password_client().await;
    let tokens = app.user_tokens(&client, "alice").await;
    billing_service(&app).await;
    // The client may use Billing too, but this grant is for Contacts.
    set_client_audiences(&app, &client.id, &[CONTACTS, BILLING]).await;
    // The client cache lives 1 s in tests.
    app.advance(Duration::from_secs(2));
    let refresh_token = str_of(&tokens, "refresh_token");
    for (name, value) in [
        ("resource", BILLING),
        ("audience", BILLING),
        ("resource", "https://unknown.example.com"),
    ] {
        let response = app
            .token(
                Some(client.basic()),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                    (name, value),
                ],
            )
            .await;
        assert_eq!(
            error_400(response).await,
            "invalid_target",
            "{name}={value}"
        );
    }
    // Still usable, naming its own resource.
    let response = app
        .token(
            Some(client.basic()),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("resource", CONTACTS),
            ],
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let next: Value = response.json().await.unwrap();
    verify_with_jwks(&app, str_of(&next, "access_token"), CONTACTS).await;
}

/// Finding 7 (RFC 7662 §4): a caller sees tokens issued to itself and access tokens whose
/// `aud` is one of its audiences; everything else is `{"active": false}`.
async fn introspection_shows_a_caller_only_its_own_tokens_and_its_audiences(app: TestApp) {
    let contacts_rs = app.create_resource_server().await;
    let billing = billing_service(&app).await;
    let app_client = app.create_password_client().await;
    let alice = app.user_tokens(&app_client, "alice").await;
    let access = str_of(&alice, "access_token");
    let refresh_token = str_of(&alice, "refresh_token");
    let contacts_service = app.service_token(&contacts_rs, CONTACTS).await;

    // The billing service: not its audience, not its tokens.
    app.assert_inactive(&billing, access, "alice's contacts token to billing")
        .await;
    app.assert_inactive(&billing, refresh_token, "another client's refresh token")
        .await;
    app.assert_inactive(
        &billing,
        &contacts_service,
        "another client's service token",
    )
    .await;

    // The Contacts API's resource server sees access tokens for its audience, but never
    // another client's refresh token.
    let answer = app.introspect(&contacts_rs, access, None).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["username"], "alice");
    app.assert_inactive(
        &contacts_rs,
        refresh_token,
        "another client's refresh token to a resource server",
    )
    .await;

    // The client the tokens were issued to sees both.
    app.assert_active(&app_client, access, "own access token")
        .await;
    let answer = app.introspect(&app_client, refresh_token, None).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "refresh_token");

    // Billing sees its own tokens, and the Contacts resource server does not see them.
    let response = app
        .token(
            Some(billing.basic()),
            &[("grant_type", "client_credentials"), ("audience", BILLING)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let own: Value = response.json().await.unwrap();
    let own = str_of(&own, "access_token");
    app.assert_active(&billing, own, "billing's own token")
        .await;
    app.assert_inactive(&contacts_rs, own, "a billing token to contacts")
        .await;
}

/// Finding 20 (NUL): RFC 7662 §2.2 — a token that is not active, however malformed, is
/// `{"active": false}`, not a 400.
async fn a_nul_in_an_introspected_token_is_inactive(app: TestApp) {
    let caller = app.create_resource_server().await;
    let real = app.service_token(&caller, CONTACTS).await;
    for token in ["\0", "abc\0def", &format!("{real}\0")] {
        app.assert_inactive(&caller, token, &format!("{token:?}"))
            .await;
    }
    // A NUL anywhere else is still a malformed request.
    let response = app
        .post_form(
            "/introspect",
            Some(caller.basic()),
            &[("token", &real), ("token_type_hint", "access\0token")],
        )
        .await;
    assert_eq!(error_400(response).await, "invalid_request");
    app.assert_active(&caller, &real, "the genuine token").await;
}

/// Finding 15 (RFC 7009 §2.1): another client's valid token is refused with
/// `invalid_grant` (RFC 6749 §5.2: "issued to another client") and stays active; unknown
/// tokens still answer 200 (§2.2).
async fn revoking_another_clients_token_is_refused(app: TestApp) {
    let caller = app.create_resource_server().await;
    let owner = app.create_password_client().await;
    let other = app.create_password_client().await;
    let tokens = app.user_tokens(&owner, "alice").await;
    let access = str_of(&tokens, "access_token");
    let refresh_token = str_of(&tokens, "refresh_token");

    for (token, hint) in [
        (access, None),
        (access, Some("refresh_token")),
        (refresh_token, None),
        (refresh_token, Some("access_token")),
    ] {
        let mut form = vec![("token", token)];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        let response = app.post_form("/revoke", Some(other.basic()), &form).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(error_400(response).await, "invalid_grant", "hint {hint:?}");
    }
    app.assert_active(&caller, access, "the owner's access token")
        .await;
    app.assert_active(&owner, refresh_token, "the owner's refresh token")
        .await;

    let response = app
        .post_form("/revoke", Some(other.basic()), &[("token", "garbage")])
        .await;
    assert_eq!(response.status(), 200, "an invalid token");

    // The owner revokes; after that the dead token is an invalid token to anyone (200).
    let response = app
        .post_form("/revoke", Some(owner.basic()), &[("token", refresh_token)])
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .post_form("/revoke", Some(other.basic()), &[("token", refresh_token)])
        .await;
    assert_eq!(response.status(), 200, "a revoked token of another client");
}

/// Finding 4: every authorization parameter is capped at 2 KiB (SPEC §7); a longer one is
/// refused at the redirect URI before the request is kept pending (no `/login?request=`),
/// and an oversized `state` is not echoed.
async fn authorize_parameters_over_2_kib_are_refused_before_anything_is_stored(app: TestApp) {
    app.create_contacts_api().await;
    let client = app.create_public_code_client().await;
    let pkce = Pkce::new();
    let at_limit = "s".repeat(2048);
    let over = "s".repeat(2049);

    // At the limit: kept pending, on to the login page.
    for name in ["state", "nonce", "login_hint"] {
        let mut params = code_params(&client, &pkce, "read:contacts");
        params.retain(|(n, _)| *n != name);
        params.push((name, &at_limit));
        let response = app.authorize(&params).await;
        assert_eq!(response.status(), 303, "{name} at 2048 bytes");
        assert!(
            location(&response).starts_with("/login?request="),
            "{name} at 2048 bytes: {}",
            location(&response)
        );
    }

    // One byte more, in any parameter: refused at the client, nothing kept.
    for name in ["state", "nonce", "login_hint", "claims", "ui_locales"] {
        let mut params = code_params(&client, &pkce, "read:contacts");
        params.retain(|(n, _)| *n != name);
        params.push((name, &over));
        let response = app.authorize(&params).await;
        assert_eq!(response.status(), 303, "{name} at 2049 bytes");
        let to = location(&response);
        assert!(
            to.starts_with(CALLBACK),
            "{name}: refused at the client: {to}"
        );
        let answer = redirect_params(&to);
        assert_eq!(answer["error"], "invalid_request", "{name}: {answer:?}");
        assert!(
            answer["error_description"].contains(name),
            "{name}: {answer:?}"
        );
        if name == "state" {
            assert!(!answer.contains_key("state"), "oversized state echoed");
        } else {
            assert_eq!(answer["state"], STATE);
        }
    }

    // POST /authorize is held to the same limit.
    let mut params = code_params(&client, &pkce, "read:contacts");
    params.push(("nonce", &over));
    let response = app
        .http
        .post(app.url("/authorize"))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        redirect_params(&location(&response))["error"],
        "invalid_request"
    );
}

/// Finding 10 (OpenID Connect Core §3.1.2.1 `max_age`): a sign-in made for this request
/// satisfies `max_age` however long consent takes; a session older than `max_age` when the
/// request arrives still means signing in again.
async fn max_age_is_satisfied_by_the_sign_in_for_this_request(app: TestApp) {
    app.create_contacts_api().await;
    app.create_user("alice").await;
    let client = app.create_public_code_client().await;
    let pkce = Pkce::new();
    let mut params = code_params(&client, &pkce, "read:contacts");
    params.push(("max_age", "1"));

    let response = app.authorize(&params).await;
    let login = app.follow_to_page(response, "/login").await;
    let response = app.sign_in(&login, "alice", PASSWORD).await;
    let consent = app.follow_to_page(response, "/consent").await;
    app.advance(Duration::from_secs(3));
    let response = app.decide(&consent, "allow").await;
    assert_eq!(response.status(), 303);
    let to = location(&response);
    assert!(
        to.starts_with(CALLBACK),
        "consent 3 s after a fresh sign-in: {to}"
    );
    assert!(redirect_params(&to).contains_key("code"), "{to}");

    // Consent given, session 3 s old now: a new request with max_age=1 signs in again...
    app.advance(Duration::from_secs(3));
    let response = app.authorize(&params).await;
    assert_eq!(response.status(), 303);
    assert!(
        location(&response).starts_with("/login?request="),
        "an old session: {}",
        location(&response)
    );
    // ...while without max_age the session is enough.
    let plain = code_params(&client, &pkce, "read:contacts");
    let response = app.authorize(&plain).await;
    assert_eq!(response.status(), 303);
    let to = location(&response);
    assert!(to.starts_with(CALLBACK), "{to}");
    assert!(redirect_params(&to).contains_key("code"), "{to}");
}

//! Security review, issue 11: attacks on the token endpoints and on the authorization
//! request, over HTTP on both stores. Each test names the finding it reproduces.

use std::time::Duration;

use serde_json::Value;

use crate::harness::flow::{Pkce, WebClient};
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::introspection::{
    Creds, assert_active, assert_inactive, error_400, fresh_code, password_client, password_tokens,
    public_code_client, refresh, refreshed, resource_server,
};
use crate::{backend_tests, store_tests};

store_tests!(
    a_wrong_verifier_or_redirect_uri_leaves_the_code_usable,
    a_failed_replay_does_not_revoke_the_grant,
    refresh_outside_the_grants_resource_is_invalid_target
);
backend_tests!(a_withdrawn_successor_revokes_the_family);

const BILLING: &str = "https://billing.example.com";

fn str_of<'a>(body: &'a Value, key: &str) -> &'a str {
    body[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

/// The Billing API and a client_credentials client for it only (the billing service).
async fn billing_service(app: &TestApp) -> Creds {
    app.cli_ok(&[
        "api",
        "create",
        "--identifier",
        BILLING,
        "--name",
        "Billing",
        "--scope",
        "read:invoices",
    ])
    .await;
    let client = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "billing",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read:invoices",
            "--audience",
            BILLING,
            "--json",
        ])
        .await;
    Creds {
        id: str_of(&client, "client_id").to_owned(),
        secret: str_of(&client, "client_secret").to_owned(),
    }
}

/// Finding 9: a redemption with a wrong `code_verifier` or `redirect_uri` fails without
/// consuming the code, so the client's own redemption still works.
async fn a_wrong_verifier_or_redirect_uri_leaves_the_code_usable(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = public_code_client(&app).await;
    let pkce = Pkce::new();
    let code = fresh_code(&app, &client, &pkce, "alice").await;

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
    assert_active(&app, &caller, str_of(&tokens, "access_token"), "the tokens").await;
}

/// Finding 9, the other order: once the code is redeemed, someone holding only the
/// intercepted code (not the verifier) cannot revoke what it produced.
async fn a_failed_replay_does_not_revoke_the_grant(app: TestApp) {
    let caller = resource_server(&app).await;
    let client = public_code_client(&app).await;
    let pkce = Pkce::new();
    let code = fresh_code(&app, &client, &pkce, "alice").await;
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = str_of(&tokens, "access_token");

    let wrong = Pkce::new();
    let response = app.redeem(&client, &code, Some(&wrong.verifier)).await;
    assert_eq!(error_400(response).await, "invalid_grant");
    assert_active(&app, &caller, access, "after a replay without the verifier").await;

    // A replay with the verifier is a real replay: RFC 6749 §4.1.2 still revokes.
    let response = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    assert_eq!(error_400(response).await, "invalid_grant");
    assert_inactive(&app, &caller, access, "after a real replay").await;
}

/// Finding 8 (RFC 9700 §4.14.2, SPEC §5): with a reuse grace, a thief who replays the
/// rotated token within the grace gets a successor and the client's is withdrawn; when the
/// client presents its withdrawn successor, the whole family is revoked, the thief's too.
async fn a_withdrawn_successor_revokes_the_family(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.tokens.refresh_reuse_grace = valet::config::ConfigDuration::secs(30);
    })
    .await;
    let caller = resource_server(&app).await;
    let client = password_client(&app).await;
    let rt0 = password_tokens(&app, &client, "alice").await;
    let rt0 = str_of(&rt0, "refresh_token");
    let app_side = refreshed(&app, &client, rt0).await;
    let rt1 = str_of(&app_side, "refresh_token");

    app.advance(Duration::from_secs(5));
    let thief = refreshed(&app, &client, rt0).await;
    let rt1_thief = str_of(&thief, "refresh_token");
    assert_ne!(rt1, rt1_thief);

    let response = refresh(&app, &client, rt1).await;
    assert_eq!(
        error_400(response).await,
        "invalid_grant",
        "withdrawn successor"
    );
    let response = refresh(&app, &client, rt1_thief).await;
    assert_eq!(
        error_400(response).await,
        "invalid_grant",
        "the thief's successor dies with the family"
    );
    assert_inactive(&app, &client, rt1_thief, "the thief's refresh token").await;
    assert_inactive(
        &app,
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
    let client = password_client(&app).await;
    let tokens = password_tokens(&app, &client, "alice").await;
    billing_service(&app).await;
    // The client may use Billing too, but this grant is for Contacts.
    app.cli_ok(&[
        "client",
        "update",
        &client.id,
        "--audience",
        CONTACTS,
        "--audience",
        BILLING,
    ])
    .await;
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
    harness::verify_with_jwks(&app, str_of(&next, "access_token"), CONTACTS).await;
}

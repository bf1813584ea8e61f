//! The client_credentials grant end to end, tokens verified against the published JWKS.

use std::collections::HashSet;

use serde_json::Value;

use crate::harness::fixtures::verify_with_jwks;
use crate::harness::{self, Backend, CONTACTS, TestApp};
use crate::{backend_tests, store_tests};

store_tests!(
    basic_auth_token_verifies_against_jwks,
    post_auth_and_resource_parameter,
    requested_scope_is_narrowed_and_ids_are_unique,
    client_id_with_reserved_characters_works_with_basic,
    deleted_client_and_rotated_secret_stop_working
);
backend_tests!(default_audience_applies, es256_and_eddsa_tokens_verify);

async fn basic_auth_token_verifies_against_jwks(app: TestApp) {
    app.create_contacts_api().await;
    let service = app
        .create_service_client("read:contacts create:contacts")
        .await;
    let response = app.client_credentials(&service, CONTACTS).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["scope"], "create:contacts read:contacts",
        "no scope asked: all permitted"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "never a refresh token for client_credentials"
    );

    let token = body["access_token"].as_str().unwrap();
    let (header, claims) = verify_with_jwks(&app, token, CONTACTS).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["sub"], service.id.as_str());
    assert_eq!(claims["client_id"], service.id.as_str());
    assert_eq!(claims["aud"], CONTACTS);
    assert_eq!(claims["scope"], "create:contacts read:contacts");
    let (exp, iat) = (
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, body["expires_in"].as_i64().unwrap());
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
}

async fn post_auth_and_resource_parameter(app: TestApp) {
    app.create_contacts_api().await;
    let service = app.create_service_client("read:contacts").await;
    let body = app
        .token_ok(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &service.id),
                ("client_secret", &service.secret),
                ("resource", CONTACTS),
            ],
        )
        .await;
    let (_, claims) =
        verify_with_jwks(&app, body["access_token"].as_str().unwrap(), CONTACTS).await;
    assert_eq!(claims["scope"], "read:contacts");
}

async fn requested_scope_is_narrowed_and_ids_are_unique(app: TestApp) {
    app.create_contacts_api().await;
    let service = app
        .create_service_client("read:contacts create:contacts")
        .await;
    let mut jtis = HashSet::new();
    for _ in 0..5 {
        let body = app
            .token_ok(
                Some(service.basic()),
                &[
                    ("grant_type", "client_credentials"),
                    ("audience", CONTACTS),
                    ("scope", "read:contacts"),
                ],
            )
            .await;
        assert_eq!(body["scope"], "read:contacts");
        let (_, claims) =
            verify_with_jwks(&app, body["access_token"].as_str().unwrap(), CONTACTS).await;
        assert_eq!(claims["scope"], "read:contacts");
        assert!(
            jtis.insert(claims["jti"].as_str().unwrap().to_owned()),
            "jti repeated"
        );
    }
}

async fn client_id_with_reserved_characters_works_with_basic(app: TestApp) {
    app.create_contacts_api().await;
    let client = app
        .cli_json(&[
            "client",
            "create",
            "--name",
            "billing",
            "--client-id",
            "billing.svc:eu+1",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read:contacts",
            "--audience",
            CONTACTS,
            "--json",
        ])
        .await;
    assert_eq!(client["client_id"], "billing.svc:eu+1");
    let secret = client["client_secret"].as_str().unwrap();
    let response = app
        .token(
            Some(("billing.svc:eu+1", secret)),
            &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn deleted_client_and_rotated_secret_stop_working(app: TestApp) {
    app.create_contacts_api().await;
    let service = app.create_service_client("read:contacts").await;
    let form = [("grant_type", "client_credentials"), ("audience", CONTACTS)];
    let status = |response: reqwest::Response| response.status();
    assert_eq!(
        status(app.client_credentials(&service, CONTACTS).await),
        200
    );

    let new_secret = app.rotate_client_secret(&service.id).await;
    assert_ne!(new_secret, service.secret);
    // The cache lifetime in tests is 1 s: within a little more, the old secret must fail.
    app.advance(std::time::Duration::from_secs(2));
    assert_eq!(
        status(app.client_credentials(&service, CONTACTS).await),
        401
    );
    let rotated = Some((service.id.as_str(), new_secret.as_str()));
    assert_eq!(app.token(rotated, &form).await.status(), 200);

    app.delete_client(&service.id).await;
    app.advance(std::time::Duration::from_secs(2));
    assert_eq!(app.token(rotated, &form).await.status(), 401);
}

async fn default_audience_applies(backend: Backend) {
    let app = harness::spawn_with(backend, |c| c.default_audience = Some(CONTACTS.into())).await;
    app.create_contacts_api().await;
    let service = app.create_service_client("read:contacts").await;
    let form = [("grant_type", "client_credentials")];
    let body = app.token_ok(Some(service.basic()), &form).await;
    let (_, claims) =
        verify_with_jwks(&app, body["access_token"].as_str().unwrap(), CONTACTS).await;
    assert_eq!(claims["aud"], CONTACTS);
}

async fn es256_and_eddsa_tokens_verify(backend: Backend) {
    for (alg, kty) in [
        (valet::domain::SigningAlg::ES256, "EC"),
        (valet::domain::SigningAlg::EdDSA, "OKP"),
    ] {
        let app = harness::spawn_with(backend, |c| c.tokens.signing_alg = alg).await;
        app.create_contacts_api().await;
        let service = app.create_service_client("read:contacts").await;
        let token = app.service_token(&service, CONTACTS).await;
        let (header, claims) = verify_with_jwks(&app, &token, CONTACTS).await;
        assert_eq!(format!("{:?}", header.alg), alg.as_str());
        assert_eq!(claims["sub"], service.id.as_str());
        let jwks = app.get_json("/.well-known/jwks.json").await;
        assert_eq!(jwks["keys"][0]["kty"], kty);
    }
}

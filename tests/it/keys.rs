//! Key rotation: old tokens keep verifying through the JWKS, new tokens use the new key.

use std::time::Duration;

use crate::harness::fixtures::{kid, verify_with_jwks};
use crate::harness::{self, CONTACTS, TestApp};
use crate::store_tests;

store_tests!(
    rotation_keeps_old_tokens_verifiable,
    rotation_publishes_the_next_key_before_it_signs,
    keys_are_sealed_at_rest
);

/// SPEC §2: `keys rotate` publishes a `next` key at once and signs with it only from
/// `activates_at` (now + `keys.activation_delay`), so a verifier that cached the JWKS in
/// between already holds it; meanwhile tokens are signed with the old key.
async fn rotation_publishes_the_next_key_before_it_signs(app: TestApp) {
    app.create_contacts_api().await;
    let service = app.create_service_client("read:contacts").await;
    let old_kid = kid(&app.service_token(&service, CONTACTS).await);

    let rotated = app.cli_json(&["keys", "rotate", "--json"]).await;
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_eq!(rotated["status"], "next");
    let activates_at = rotated["activates_at"].as_str().expect("activates_at");
    assert!(activates_at.ends_with('Z'), "{activates_at}");
    app.state.keys.reload(app.clock.now()).await.unwrap();

    // Published before use: a verifier that fetches the JWKS now has both keys...
    let jwks = app.published_kids().await;
    assert!(
        jwks.contains(&old_kid) && jwks.contains(&new_kid),
        "{jwks:?}"
    );
    // ...and the tokens it sees are still signed with the old one.
    let token = app.service_token(&service, CONTACTS).await;
    assert_eq!(kid(&token), old_kid, "the next key does not sign yet");
    let listed = app.cli_json(&["keys", "list", "--json"]).await;
    let statuses: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [(old_kid.as_str(), "current"), (new_kid.as_str(), "next")]
    );

    // At activates_at (the default delay, 5 minutes) the next reload makes it current.
    app.advance(Duration::from_secs(301));
    app.state.keys.reload(app.clock.now()).await.unwrap();
    let token = app.service_token(&service, CONTACTS).await;
    assert_eq!(kid(&token), new_kid, "the new key signs from activates_at");
    verify_with_jwks(&app, &token, CONTACTS).await;
    assert!(
        app.published_kids().await.contains(&old_kid),
        "the old key stays published"
    );
    let listed = app.cli_json(&["keys", "list", "--json"]).await;
    assert_eq!(listed[0]["kid"], new_kid.as_str());
    assert_eq!(listed[0]["status"], "current");
    assert_eq!(listed[1]["status"], "retired");
}

/// `keys rotate --now` (a compromised key): the new key signs at once.
async fn rotation_keeps_old_tokens_verifiable(app: TestApp) {
    app.create_contacts_api().await;
    let service = app.create_service_client("read:contacts").await;
    let before = app.service_token(&service, CONTACTS).await;
    let old_kid = kid(&before);

    let rotated = app
        .cli_json(&["keys", "rotate", "--now", "--alg", "ES256", "--json"])
        .await;
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(rotated["alg"], "ES256");
    assert_eq!(rotated["status"], "current");

    // The server reloads keys every second in tests; wait for the new kid to be used.
    let mut after = app.service_token(&service, CONTACTS).await;
    for _ in 0..40 {
        if kid(&after) == new_kid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = app.service_token(&service, CONTACTS).await;
    }
    assert_eq!(kid(&after), new_kid, "new tokens use the new key");
    let (header, _) = verify_with_jwks(&app, &after, CONTACTS).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    // The token signed before the rotation still verifies through the published JWKS.
    verify_with_jwks(&app, &before, CONTACTS).await;

    let listed = app.cli_json(&["keys", "list", "--json"]).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["kid"], new_kid.as_str());
    assert_eq!(listed[0]["status"], "current");
    assert_eq!(listed[1]["kid"], old_kid.as_str());
    assert_eq!(listed[1]["status"], "retired");
    assert!(listed[1]["created_at"].as_str().unwrap().ends_with('Z'));
}

async fn keys_are_sealed_at_rest(app: TestApp) {
    let rows = app.state.store.signing_keys().await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    // PKCS#8 DER starts with a SEQUENCE (0x30); the sealed form starts with a random nonce
    // and does not contain the DER at all.
    let (key, pkcs8) =
        valet::tokens::SigningKey::generate(valet::domain::SigningAlg::RS256).unwrap();
    drop(key);
    assert!(row.sealed_private_key.len() > 12 + 16);
    assert!(!row.public_jwk.contains("\"d\""));
    let wrong =
        valet::crypto::ServerKeys::derive(b"another-secret-another-secret-0123456789").unwrap();
    assert!(
        wrong
            .sealer
            .open(&row.kid, &row.alg, &row.sealed_private_key)
            .is_err()
    );
    let right = valet::crypto::ServerKeys::derive(harness::TEST_SECRET.as_bytes()).unwrap();
    let opened = right
        .sealer
        .open(&row.kid, &row.alg, &row.sealed_private_key)
        .unwrap();
    assert_eq!(opened[0], pkcs8[0]);
    assert!(
        !row.sealed_private_key
            .windows(opened.len())
            .any(|w| w == opened.as_slice())
    );
}

//! The janitor deletes what expired and nothing else; `valet janitor --once` runs it by hand,
//! and two runs at once (two replicas) do not get in each other's way.

use valet::crypto::SecretHash;
use valet::domain::{GrantId, ScopeSet, UnixTime};
use valet::store::{PendingRequest, RefreshToken, Session};

use crate::harness::TestApp;
use crate::harness::fixtures::code_record;
use crate::store_tests;

store_tests!(janitor_deletes_only_what_expired);

fn hash(n: u8) -> SecretHash {
    SecretHash(vec![n; 32])
}

async fn seed(app: &TestApp, n: u8, expires_at: UnixTime, now: UnixTime) {
    let store = &app.state.store;
    let id = GrantId::from_stored(format!("g{n}"));
    store
        .insert_grant(&id, "c", "u", now, expires_at)
        .await
        .unwrap();
    store
        .insert_pending(&PendingRequest {
            id_hash: hash(n),
            client_id: "c".into(),
            request: "{}".into(),
            created_at: now,
            expires_at,
        })
        .await
        .unwrap();
    store
        .insert_session(&Session {
            id_hash: hash(n),
            user_id: "u".into(),
            auth_time: now,
            created_at: now,
            expires_at,
        })
        .await
        .unwrap();
    store
        .insert_first_refresh(&RefreshToken {
            token_hash: hash(n),
            family_id: id.to_string(),
            parent_hash: None,
            grant_id: id.clone(),
            client_id: "c".into(),
            user_id: "u".into(),
            scope: ScopeSet::default(),
            audience: "a".into(),
            code_hash: None,
            session_hash: None,
            auth_time: None,
            issued_at: now,
            expires_at,
            family_expires_at: expires_at,
            rotated_at: None,
            revoked_at: None,
            grant_revoked: false,
        })
        .await
        .unwrap();
    store
        .revoke_access_token(id.as_str(), "c", now, expires_at)
        .await
        .unwrap();
    store
        .insert_code(&code_record(hash(n), &id, "c", "u", now, expires_at))
        .await
        .unwrap();
}

async fn janitor_deletes_only_what_expired(app: TestApp) {
    let now = valet::clock::Clock::system().now();
    // 1: expired long ago (two days); 2: alive for an hour.
    seed(&app, 1, UnixTime(now.0 - 2 * 86_400), now).await;
    seed(&app, 2, UnixTime(now.0 + 3600), now).await;

    let (a, b) = tokio::join!(
        app.cli(&["janitor", "--once"]),
        app.cli(&["janitor", "--once"])
    );
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    assert!(report.contains("refresh_tokens"), "{report}");

    let store = &app.state.store;
    let far_past = UnixTime(0);
    assert!(store.pending(&hash(1), far_past).await.unwrap().is_none());
    assert!(store.pending(&hash(2), far_past).await.unwrap().is_some());
    assert!(store.session(&hash(1), far_past).await.unwrap().is_none());
    assert!(store.session(&hash(2), far_past).await.unwrap().is_some());
    assert!(store.refresh_token(&hash(1)).await.unwrap().is_none());
    assert!(store.refresh_token(&hash(2)).await.unwrap().is_some());
    assert!(!store.access_token_revoked("g1").await.unwrap());
    assert!(store.access_token_revoked("g2").await.unwrap());
    assert_eq!(
        store
            .grant_revoked(&GrantId::from_stored("g1".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .grant_revoked(&GrantId::from_stored("g2".into()))
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        store.redeem_code(&hash(1), "c", now, None).await.unwrap(),
        valet::store::Redeemed::Unknown
    );
    assert!(matches!(
        store.redeem_code(&hash(2), "c", now, None).await.unwrap(),
        valet::store::Redeemed::Issued(_)
    ));

    let out = app.cli(&["janitor"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "without --once it explains itself"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--once"));
}

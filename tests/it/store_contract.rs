//! The two stores agree: same schema from both migration sets, concurrent migrations and
//! concurrent first-key generation are safe, the joined reads of the hot paths agree with
//! the single reads they replace, and a family's first token extends its grant.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{Connection, Row};
use valet::crypto::SecretHash;
use valet::domain::{GrantId, ScopeSet, UnixTime};
use valet::store::{AuthorizationCode, Purge, Redeemed, RefreshToken};

use crate::grant_logic::test_core;
use crate::harness::fixtures::{code_record, create_alice};
use crate::harness::{self, Backend, CONTACTS, TEST_SECRET, clean_command};
use crate::{backend_tests, harness::postgres};

backend_tests!(
    two_processes_migrate_one_database_at_once,
    joined_reads_agree_with_single_reads_and_lose_no_token_of_a_missing_user,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migrations_give_the_same_tables_and_columns() {
    let pg = harness::spawn(Backend::Postgres).await;
    let lite = harness::spawn(Backend::Sqlite).await;

    let mut conn = sqlx::PgConnection::connect(&pg.database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT table_name, column_name FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let pg_columns: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();

    let mut conn = sqlx::SqliteConnection::connect(&lite.database_url)
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND m.name NOT LIKE 'sqlite%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let lite_columns: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();

    assert!(
        pg_columns.len() > 50,
        "the schema is all there: {}",
        pg_columns.len()
    );
    assert_eq!(pg_columns, lite_columns);
}

async fn two_processes_migrate_one_database_at_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let guard = match backend {
        Backend::Postgres => postgres::fresh_database().await,
        Backend::Sqlite => {
            postgres::DatabaseGuard::none(format!("sqlite://{}", dir.path().join("m.db").display()))
        }
    };
    let spawn = || {
        clean_command()
            .current_dir(dir.path())
            .env("VALET_DATABASE_URL", &guard.url)
            .env("VALET_SECRET", TEST_SECRET)
            .arg("migrate")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Both then see a complete schema, and concurrent first starts agree on one key.
    let settings = {
        let mut c = harness::test_config();
        c.database_url = guard.url.clone();
        c.validate().unwrap()
    };
    let store = valet::store::connect(&settings).await.unwrap();
    let keys = valet::crypto::ServerKeys::derive(TEST_SECRET.as_bytes()).unwrap();
    let now = valet::clock::Clock::system().now();
    let alg = valet::domain::SigningAlg::ES256;
    let (x, y) = tokio::join!(
        valet::tokens::keys::ensure_current_key(&store, &keys.sealer, alg, now),
        valet::tokens::keys::ensure_current_key(&store, &keys.sealer, alg, now),
    );
    x.unwrap();
    y.unwrap();
    let current: Vec<_> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.status == valet::store::KeyStatus::Current)
        .collect();
    assert_eq!(current.len(), 1);
    drop(store);
}

/// The one-round-trip reads of the hot paths (a refresh token, a grant or a code with its
/// user) give what the single reads give; a user that is gone reads as `None`, not as a
/// missing token, grant or code, so that the grant layer still sees the token and refuses it
/// for its user, as before (end to end for a disabled user:
/// `refresh::disabled_user_or_deleted_client_ends_the_family`). The first token of a family
/// extends its grant, never shortening it.
async fn joined_reads_agree_with_single_reads_and_lose_no_token_of_a_missing_user(
    backend: Backend,
) {
    let core = test_core(backend).await;
    let store = &core.store;
    let now = core.clock.now();
    let later = now.plus(Duration::from_secs(3600));
    let code_expires_at = now.plus(Duration::from_secs(60));
    let alice_id = create_alice(&core).await;
    let alice = store.user_by_id(&alice_id).await.unwrap().expect("alice");
    let mut tokens = Vec::new();
    for (grant, user_id) in [
        ("grant-alice", alice_id.as_str()),
        ("grant-gone", "no-such-user"),
    ] {
        let grant_id = GrantId::from_stored(grant.into());
        // Until its code is redeemed a grant lives as long as the code.
        store
            .insert_grant(&grant_id, "client-a", user_id, now, code_expires_at)
            .await
            .unwrap();
        store
            .set_grant_userinfo_claims(&grant_id, &["email".into()])
            .await
            .unwrap();
        let token = RefreshToken {
            token_hash: SecretHash(format!("hash-of-{grant}").into_bytes()),
            family_id: format!("family-of-{grant}"),
            parent_hash: None,
            grant_id: grant_id.clone(),
            client_id: "client-a".into(),
            user_id: user_id.into(),
            scope: ScopeSet::parse("openid read:contacts").unwrap(),
            audience: CONTACTS.into(),
            code_hash: None,
            session_hash: None,
            auth_time: Some(now),
            issued_at: now,
            expires_at: later,
            family_expires_at: later,
            rotated_at: None,
            revoked_at: None,
            grant_revoked: false,
        };
        store.insert_first_refresh(&token).await.unwrap();
        let expected_user = (user_id == alice_id).then(|| alice.clone());

        let (read, user) = store
            .refresh_token_and_user(&token.token_hash)
            .await
            .unwrap()
            .expect("the token reads whether or not its user is there");
        assert_eq!(read, token);
        assert_eq!(user, expected_user, "{grant}: the token's user");

        let (status, user) = store
            .grant_status_and_user(&grant_id, user_id)
            .await
            .unwrap()
            .expect("the grant reads whether or not its user is there");
        assert_eq!(
            Some(&status),
            store.grant_status(&grant_id).await.unwrap().as_ref()
        );
        assert_eq!(status.userinfo_claims, ["email"]);
        assert!(!status.revoked);
        assert_eq!(user, expected_user, "{grant}: the grant's user");

        let code = AuthorizationCode {
            // Unlike the user's, so that the two `created_at` columns cannot be mixed up.
            created_at: UnixTime(now.0 - 7),
            ..code_record(
                SecretHash(format!("code-of-{grant}").into_bytes()),
                &grant_id,
                "client-a",
                user_id,
                now,
                code_expires_at,
            )
        };
        store.insert_code(&code).await.unwrap();
        let read = store.code_and_user(&code.code_hash, "client-a");
        let (read, user) = read.await.unwrap().expect("the code reads");
        assert_eq!(read, code);
        assert_eq!(user, expected_user, "{grant}: the code's user");
        let other_client = store.code_and_user(&code.code_hash, "client-b");
        assert_eq!(other_client.await.unwrap(), None, "only for its own client");
        tokens.push((grant_id, token));
    }

    // The user is the one asked for (the token's `sub`), not whichever the grant names.
    let (_, user) = store
        .grant_status_and_user(&tokens[0].0, "no-such-user")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user, None, "the user read is by the id given");

    let never = SecretHash(b"never-issued".to_vec());
    assert_eq!(store.refresh_token_and_user(&never).await.unwrap(), None);
    let unknown_grant = GrantId::from_stored("no-such-grant".into());
    let read = store.grant_status_and_user(&unknown_grant, &alice_id);
    assert_eq!(read.await.unwrap(), None);

    // A disabled user reads as disabled (the grant layer refuses it), and the revocation
    // that comes with disabling shows in both reads.
    assert!(store.set_user_disabled("alice", true, now).await.unwrap());
    let (grant_id, token) = &tokens[0];
    let (read, user) = store
        .refresh_token_and_user(&token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(read.grant_revoked && read.revoked_at.is_some());
    assert!(user.expect("alice is still there").disabled);
    let (status, user) = store
        .grant_status_and_user(grant_id, &alice_id)
        .await
        .unwrap()
        .unwrap();
    assert!(status.revoked);
    assert!(user.expect("alice is still there").disabled);
    // Disabling also deleted alice's unredeemed code: a code read with an active user
    // cannot be consumed once the user is disabled (the code grant relies on it).
    let alice_code = SecretHash(b"code-of-grant-alice".to_vec());
    let read = store.code_and_user(&alice_code, "client-a");
    assert_eq!(read.await.unwrap(), None);
    let redeemed = store
        .redeem_code(&alice_code, "client-a", now, None)
        .await
        .unwrap();
    assert_eq!(redeemed, Redeemed::Unknown);

    // The first token of a family made each grant live as long as the family.
    let purged = store.purge(
        Purge::Grants,
        code_expires_at.plus(Duration::from_secs(1)),
        100,
    );
    assert_eq!(purged.await.unwrap(), 0, "both grants outlive their codes");
    // ... and never shorter: a grant that already lives longer keeps its expiry.
    let long = GrantId::from_stored("grant-long".into());
    let long_expires_at = later.plus(Duration::from_secs(7200));
    store
        .insert_grant(&long, "client-a", &alice_id, now, long_expires_at)
        .await
        .unwrap();
    let first = RefreshToken {
        token_hash: SecretHash(b"hash-of-grant-long".to_vec()),
        family_id: "family-of-grant-long".into(),
        grant_id: long.clone(),
        ..tokens[0].1.clone()
    };
    store.insert_first_refresh(&first).await.unwrap();
    let purged = store.purge(Purge::Grants, later.plus(Duration::from_secs(1)), 100);
    assert_eq!(
        purged.await.unwrap(),
        2,
        "the two families' grants, not the longer one"
    );
}

mod codes {
    use std::time::Duration;

    use valet::crypto::SecretHash;
    use valet::domain::{GrantId, ScopeSet, UnixTime};
    use valet::store::{AuthorizationCode, Purge, Redeemed, RefreshToken};

    use crate::harness::TestApp;
    use crate::harness::fixtures::code_record;
    use crate::store_tests;

    store_tests!(
        redemption_outcomes,
        fifty_parallel_redemptions_have_one_winner
    );

    /// A code expiring at `expires_at` under a grant made at `now` that ends an hour later.
    async fn new_code(
        app: &TestApp,
        code: &str,
        grant: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> SecretHash {
        let grant = &GrantId::from_stored(grant.into());
        app.state
            .store
            .insert_grant(
                grant,
                "client-a",
                "user-1",
                now,
                now.plus(std::time::Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        let hash = app.state.server_keys.hasher.hash(code);
        app.state
            .store
            .insert_code(&AuthorizationCode {
                redirect_uri: Some("https://app.example.com/cb".into()),
                code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
                code_challenge_method: Some("S256".into()),
                scope: ScopeSet::parse("openid read:contacts").unwrap(),
                audience: Some("https://contacts.example.com".into()),
                ..code_record(hash.clone(), grant, "client-a", "user-1", now, expires_at)
            })
            .await
            .unwrap();
        hash
    }

    /// The first token of a family under `grant`, which outlives the grant as made by
    /// [`new_code`] by an hour.
    fn first_token(name: &str, grant: &str, now: UnixTime) -> RefreshToken {
        RefreshToken {
            token_hash: SecretHash(name.as_bytes().to_vec()),
            family_id: format!("family-{name}"),
            parent_hash: None,
            grant_id: GrantId::from_stored(grant.into()),
            client_id: "client-a".into(),
            user_id: "user-1".into(),
            scope: ScopeSet::parse("openid read:contacts").unwrap(),
            audience: "https://contacts.example.com".into(),
            code_hash: Some(SecretHash(format!("code-of-{name}").into_bytes())),
            session_hash: None,
            auth_time: Some(now),
            issued_at: now,
            expires_at: now.plus(Duration::from_secs(1800)),
            family_expires_at: now.plus(Duration::from_secs(7200)),
            rotated_at: None,
            revoked_at: None,
            grant_revoked: false,
        }
    }

    async fn redemption_outcomes(app: TestApp) {
        let store = &app.state.store;
        let now = valet::clock::Clock::system().now();
        let later = now.plus(std::time::Duration::from_secs(60));
        let hash = new_code(&app, "code-1", "grant-1", now, later).await;
        // Every attempt brings a first refresh token, as the code grant does; only a
        // redemption that consumes the code stores it.
        let refused = first_token("refused", "grant-1", now);
        let issued = first_token("issued", "grant-1", now);
        let replayed = first_token("replayed", "grant-1", now);
        let of_unknown = first_token("of-unknown", "grant-1", now);
        let of_expired = first_token("of-expired", "grant-2", now);

        assert_eq!(
            store
                .redeem_code(&hash, "client-b", now, Some(&refused))
                .await
                .unwrap(),
            Redeemed::WrongClient
        );
        match store
            .redeem_code(&hash, "client-a", now, Some(&issued))
            .await
            .unwrap()
        {
            Redeemed::Issued(code) => {
                assert_eq!(code.grant_id.as_str(), "grant-1");
                assert_eq!(code.user_id, "user-1");
                assert_eq!(
                    code.redirect_uri.as_deref(),
                    Some("https://app.example.com/cb")
                );
                assert_eq!(code.scope.to_string(), "openid read:contacts");
                assert_eq!(code.code_challenge_method.as_deref(), Some("S256"));
            }
            other => panic!("expected Issued, got {other:?}"),
        }
        assert_eq!(
            store
                .redeem_code(&hash, "client-a", now, Some(&replayed))
                .await
                .unwrap(),
            Redeemed::Replayed {
                grant_id: GrantId::from_stored("grant-1".into())
            }
        );
        let unknown = app.state.server_keys.hasher.hash("never-issued");
        assert_eq!(
            store
                .redeem_code(&unknown, "client-a", now, Some(&of_unknown))
                .await
                .unwrap(),
            Redeemed::Unknown
        );

        let expired = new_code(&app, "code-2", "grant-2", now, now).await;
        assert_eq!(
            store
                .redeem_code(&expired, "client-a", now, Some(&of_expired))
                .await
                .unwrap(),
            Redeemed::Expired
        );

        let stored = store.refresh_token(&issued.token_hash).await.unwrap();
        assert_eq!(
            stored.as_ref(),
            Some(&issued),
            "the winner's token, as given"
        );
        for lost in [&refused, &replayed, &of_unknown, &of_expired] {
            let stored = store.refresh_token(&lost.token_hash).await.unwrap();
            assert_eq!(stored, None, "{} was stored", lost.family_id);
        }
        // The winner's grant now lives as long as its family; the expired code's grant,
        // whose redemption stored nothing, still ends an hour after it was made.
        let purged = store.purge(Purge::Grants, now.plus(Duration::from_secs(3601)), 100);
        assert_eq!(
            purged.await.unwrap(),
            1,
            "only grant-2 ends within the hour"
        );

        assert_eq!(
            store
                .grant_revoked(&GrantId::from_stored("grant-1".into()))
                .await
                .unwrap(),
            Some(false)
        );
        store
            .revoke_grant(&GrantId::from_stored("grant-1".into()), now)
            .await
            .unwrap();
        assert_eq!(
            store
                .grant_revoked(&GrantId::from_stored("grant-1".into()))
                .await
                .unwrap(),
            Some(true)
        );
        assert_eq!(
            store
                .grant_revoked(&GrantId::from_stored("no-such-grant".into()))
                .await
                .unwrap(),
            None
        );
    }

    async fn fifty_parallel_redemptions_have_one_winner(app: TestApp) {
        let now = valet::clock::Clock::system().now();
        let hash = new_code(
            &app,
            "contested",
            "grant-x",
            now,
            now.plus(std::time::Duration::from_secs(60)),
        )
        .await;
        let attempts: Vec<_> = (0..50)
            .map(|i| {
                let store = app.state.store.clone();
                let hash = hash.clone();
                let token = first_token(&format!("attempt-{i}"), "grant-x", now);
                tokio::spawn(async move {
                    let outcome = store.redeem_code(&hash, "client-a", now, Some(&token));
                    (outcome.await, token)
                })
            })
            .collect();
        let mut issued = 0;
        for attempt in attempts {
            let (outcome, token) = attempt.await.unwrap();
            let outcome = outcome.unwrap();
            match &outcome {
                Redeemed::Issued(_) => issued += 1,
                Redeemed::Replayed { grant_id } => assert_eq!(grant_id.as_str(), "grant-x"),
                other => panic!("unexpected {other:?}"),
            }
            let stored = app.state.store.refresh_token(&token.token_hash).await;
            assert_eq!(
                stored.unwrap().is_some(),
                matches!(outcome, Redeemed::Issued(_)),
                "a token is stored if and only if its redemption won"
            );
        }
        assert_eq!(issued, 1, "exactly one redemption wins");
        // ... and the winner's token made the grant live as long as its family.
        let purged = app
            .state
            .store
            .purge(Purge::Grants, now.plus(Duration::from_secs(3601)), 100);
        assert_eq!(purged.await.unwrap(), 0, "grant-x ends with its family");
    }
}

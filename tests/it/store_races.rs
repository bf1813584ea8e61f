//! The store's race-sensitive methods under real concurrency, on both engines: many tasks
//! released at once against one row, and what must hold whichever order they land in
//! (ARCHITECTURE §3.2: a state change that must happen once is one conditional write).
//! `store_contract.rs` already covers parallel redemptions by one client, concurrent
//! migrations and concurrent first keys.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use valet::crypto::SecretHash;
use valet::domain::{GrantId, ScopeSet, UnixTime};
use valet::store::{
    AddressPart, AuthorizationCode, ClaimEdit, Client, ClientLogout, Consent, KeyStatus,
    PendingRequest, Redeemed, RefreshToken, Session, SessionClient, StoreError, User,
};

use crate::backend_tests;
use crate::grant_logic::{TestCore, test_core, test_core_with};
use crate::harness::{Backend, CONTACTS};

/// How many tasks contend for one row.
const TASKS: usize = 30;
const CLIENT: &str = "client-a";
const USER: &str = "user-1";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Run `task(0..n)` as `n` tasks released together by a barrier; their results in order.
async fn race<T, Fut>(n: usize, task: impl Fn(usize) -> Fut) -> Vec<T>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let start = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (start, work) = (start.clone(), task(i));
            tokio::spawn(async move {
                start.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("task finished"));
    }
    results
}

/// A hash that stands for a fresh random secret.
fn fresh_hash() -> SecretHash {
    SecretHash(uuid::Uuid::new_v4().as_bytes().to_vec())
}

fn hour_after(now: UnixTime) -> UnixTime {
    now.plus(Duration::from_secs(3600))
}

async fn insert_grant(core: &TestCore, grant_id: &str) {
    insert_grant_of(core, grant_id, USER).await;
}

async fn insert_grant_of(core: &TestCore, grant_id: &str, user_id: &str) {
    let now = core.clock.now();
    core.store
        .insert_grant(
            &GrantId::from_stored(grant_id.into()),
            CLIENT,
            user_id,
            now,
            hour_after(now),
        )
        .await
        .unwrap();
}

/// A live code of `CLIENT` under a new grant `grant_id`.
async fn insert_code(core: &TestCore, grant_id: &str) -> SecretHash {
    insert_code_of(core, grant_id, USER).await
}

/// [`insert_code`] for the user `user_id`.
async fn insert_code_of(core: &TestCore, grant_id: &str, user_id: &str) -> SecretHash {
    insert_grant_of(core, grant_id, user_id).await;
    let now = core.clock.now();
    let code_hash = fresh_hash();
    core.store
        .insert_code(&AuthorizationCode {
            code_hash: code_hash.clone(),
            grant_id: GrantId::from_stored(grant_id.into()),
            client_id: CLIENT.into(),
            user_id: user_id.into(),
            session_hash: None,
            redirect_uri: Some("https://app.example.com/cb".into()),
            code_challenge: None,
            code_challenge_method: None,
            scope: ScopeSet::parse("read:contacts").unwrap(),
            audience: Some(CONTACTS.into()),
            nonce: None,
            auth_time: now,
            created_at: now,
            expires_at: hour_after(now),
            claims: Default::default(),
        })
        .await
        .unwrap();
    code_hash
}

/// The first token of a new family under `grant_id` (not yet stored).
fn first_refresh(grant_id: &str, now: UnixTime) -> RefreshToken {
    RefreshToken {
        token_hash: fresh_hash(),
        family_id: format!("family-of-{grant_id}"),
        parent_hash: None,
        grant_id: GrantId::from_stored(grant_id.into()),
        client_id: CLIENT.into(),
        user_id: USER.into(),
        scope: ScopeSet::parse("read:contacts").unwrap(),
        audience: CONTACTS.into(),
        code_hash: None,
        session_hash: None,
        auth_time: None,
        issued_at: now,
        expires_at: hour_after(now),
        family_expires_at: hour_after(now),
        rotated_at: None,
        revoked_at: None,
        grant_revoked: false,
    }
}

/// A would-be successor of `parent`, as rotation mints one.
fn successor(parent: &RefreshToken, now: UnixTime) -> RefreshToken {
    RefreshToken {
        token_hash: fresh_hash(),
        parent_hash: Some(parent.token_hash.clone()),
        issued_at: now,
        ..parent.clone()
    }
}

/// A stored first token under a new grant.
async fn insert_family(core: &TestCore, grant_id: &str) -> RefreshToken {
    insert_grant(core, grant_id).await;
    let first = first_refresh(grant_id, core.clock.now());
    core.store.insert_first_refresh(&first).await.unwrap();
    first
}

/// A refresh token that must be dead: it reads as revoked (what the grant layer checks first)
/// and the store refuses to rotate it (its own check, for a read that came before the
/// revocation).
async fn assert_dead(core: &TestCore, token: &RefreshToken, what: &str) {
    if let Some(stored) = core.store.refresh_token(&token.token_hash).await.unwrap() {
        let revoked = stored.revoked_at.is_some() || stored.grant_revoked;
        assert!(revoked, "{what} reads as live");
    }
    let now = core.clock.now();
    let next = successor(token, now);
    let rotated = core.store.rotate_refresh(&token.token_hash, &next, now);
    assert!(!rotated.await.unwrap(), "the store rotated {what}");
}

async fn insert_user(core: &TestCore, username: &str, password_hash: &str) -> User {
    let now = core.clock.now();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.into(),
        email: None,
        name: None,
        profile: Default::default(),
        password_hash: password_hash.into(),
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    core.store.insert_user(&user).await.unwrap();
    user
}

fn count(results: &[bool]) -> usize {
    results.iter().filter(|won| **won).count()
}

// ---------------------------------------------------------------------------------------------
// Codes and grants

backend_tests!(
    a_wrong_client_never_wins_a_contested_code,
    disabling_a_user_while_its_codes_are_redeemed_fails_nothing_and_leaves_no_live_token,
    revoking_grants_while_their_codes_are_redeemed_leaves_no_usable_refresh_token,
    revoking_grants_while_their_tokens_rotate_leaves_no_usable_refresh_token,
    a_redemption_whose_token_cannot_be_stored_keeps_nothing,
);

/// A redemption whose first refresh token the store refuses (its hash taken: only a bug could
/// do this) is an error that keeps nothing: the code is not consumed and redeems afterwards
/// (on SQLite its three statements are one transaction, and a transaction left open on a
/// pooled connection would make every later write fail after the busy timeout).
async fn a_redemption_whose_token_cannot_be_stored_keeps_nothing(backend: Backend) {
    let core = test_core(backend).await;
    let code = insert_code(&core, "grant-1").await;
    let taken = insert_family(&core, "grant-2").await;
    let now = core.clock.now();
    let clashing = RefreshToken {
        token_hash: taken.token_hash.clone(),
        ..first_refresh("grant-1", now)
    };

    for _ in 0..3 {
        let refused = core
            .store
            .redeem_code(&code, CLIENT, now, Some(&clashing))
            .await;
        // The clash each time, not a replay: the code was not consumed.
        assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    }
    let token = first_refresh("grant-1", now);
    let redeemed = core.store.redeem_code(&code, CLIENT, now, Some(&token));
    assert!(matches!(redeemed.await.unwrap(), Redeemed::Issued(_)));
    let stored = core.store.refresh_token(&token.token_hash).await.unwrap();
    assert_eq!(stored.map(|t| t.grant_id), Some(token.grant_id.clone()));
}

async fn a_wrong_client_never_wins_a_contested_code(backend: Backend) {
    let core = test_core(backend).await;
    let code = insert_code(&core, "grant-1").await;
    let now = core.clock.now();
    // Each attempt brings its own first refresh token, as the code grant does: only the
    // winner's may be stored.
    let redeem = |client: &'static str| {
        let (store, code) = (core.store.clone(), code.clone());
        let token = first_refresh("grant-1", now);
        async move {
            let outcome = store.redeem_code(&code, client, now, Some(&token));
            (client, outcome.await.unwrap(), token)
        }
    };

    // Another client alone, many times at once: the code stays untouched.
    let outcomes = race(TASKS, |_| redeem("client-b")).await;
    for (_, outcome, token) in &outcomes {
        assert_eq!(*outcome, Redeemed::WrongClient);
        let stored = core.store.refresh_token(&token.token_hash).await.unwrap();
        assert_eq!(stored, None, "a refused redemption stores no token");
    }

    // Then both clients at once: the code's own client gets it, once.
    let outcomes = race(TASKS, |i| {
        redeem(if i % 2 == 0 { CLIENT } else { "client-b" })
    })
    .await;
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, outcome, _)| matches!(outcome, Redeemed::Issued(_)))
        .map(|(client, _, _)| *client)
        .collect();
    assert_eq!(
        winners,
        [CLIENT],
        "exactly one redemption, by the code's client"
    );
    for (client, outcome, token) in &outcomes {
        let stored = core.store.refresh_token(&token.token_hash).await.unwrap();
        assert_eq!(
            stored.is_some(),
            matches!(outcome, Redeemed::Issued(_)),
            "{client}'s token is stored if and only if its redemption won"
        );
        match outcome {
            Redeemed::Issued(_) => {}
            Redeemed::WrongClient => assert_eq!(*client, "client-b"),
            Redeemed::Replayed { grant_id } => assert_eq!(grant_id.as_str(), "grant-1"),
            other => panic!("{client} got {other:?}"),
        }
    }
}

/// A redemption writes its code and then its grant (on PostgreSQL, locking them in that
/// order); disabling the user deletes its unredeemed codes and revokes its grants. Taken in
/// the other order, the two could wait on each other until PostgreSQL aborted one as a
/// deadlock. Whichever lands first, nothing fails, and no token issued stays live.
async fn disabling_a_user_while_its_codes_are_redeemed_fails_nothing_and_leaves_no_live_token(
    backend: Backend,
) {
    let core = test_core(backend).await;
    let dora = insert_user(&core, "dora", "hash-checked").await;
    let mut codes = Vec::new();
    for g in 0..TASKS - 1 {
        codes.push(insert_code_of(&core, &format!("grant-{g}"), &dora.id).await);
    }
    let now = core.clock.now();
    // Each family outlives its grant, as a code's does: the redemption extends (and so
    // writes) the grant.
    let tokens: Vec<RefreshToken> = (0..codes.len())
        .map(|g| RefreshToken {
            user_id: dora.id.clone(),
            family_expires_at: hour_after(hour_after(now)),
            ..first_refresh(&format!("grant-{g}"), now)
        })
        .collect();

    // The last task disables dora; every other one redeems a code of hers.
    let outcomes = race(TASKS, |i| {
        let store = core.store.clone();
        let redemption = codes.get(i).cloned().zip(tokens.get(i).cloned());
        async move {
            match redemption {
                Some((code, token)) => {
                    Some(store.redeem_code(&code, CLIENT, now, Some(&token)).await)
                }
                None => {
                    let disabled = store.set_user_disabled("dora", true, now).await;
                    assert!(disabled.expect("disabling dora failed"), "dora exists");
                    None
                }
            }
        }
    })
    .await;

    for (outcome, token) in outcomes.into_iter().flatten().zip(&tokens) {
        match outcome.expect("a redemption failed") {
            Redeemed::Issued(_) => assert_dead(&core, token, "a token issued to dora").await,
            Redeemed::Unknown => {
                let stored = core.store.refresh_token(&token.token_hash).await.unwrap();
                assert_eq!(
                    stored, None,
                    "a redemption of a deleted code stored a token"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The lock order behind the race above, made to happen (PostgreSQL: SQLite has one writer).
/// A third connection holds the grant's row, so that the disabling queues on it first and
/// the redemption second. Had the disabling revoked grants before deleting codes, it would
/// take the grant next and wait for the code the redemption had locked, while the
/// redemption waited for the grant: a deadlock, which PostgreSQL ends by failing one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_locks_codes_before_grants_as_a_redemption_does() {
    use sqlx::{Connection, PgConnection};

    let core = test_core(Backend::Postgres).await;
    let dora = insert_user(&core, "dora", "hash-checked").await;
    let code = insert_code_of(&core, "grant-d", &dora.id).await;
    let now = core.clock.now();
    let token = RefreshToken {
        user_id: dora.id.clone(),
        family_expires_at: hour_after(hour_after(now)),
        ..first_refresh("grant-d", now)
    };
    let token_hash = token.token_hash.clone();
    let url = &core.settings.database_url;
    let mut holder = PgConnection::connect(url).await.unwrap();
    let mut watcher = PgConnection::connect(url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM grants WHERE grant_id = 'grant-d' FOR UPDATE")
        .execute(&mut *held)
        .await
        .unwrap();

    let store = core.store.clone();
    let disabling = tokio::spawn(async move { store.set_user_disabled("dora", true, now).await });
    wait_for_lock_waiters(&mut watcher, 1).await;
    let store = core.store.clone();
    let redeeming =
        tokio::spawn(async move { store.redeem_code(&code, CLIENT, now, Some(&token)).await });
    wait_for_lock_waiters(&mut watcher, 2).await;
    held.commit().await.unwrap();

    let disabled = disabling.await.unwrap().expect("the disabling failed");
    assert!(disabled, "dora exists");
    let redeemed = redeeming.await.unwrap().expect("the redemption failed");
    assert_eq!(
        redeemed,
        Redeemed::Unknown,
        "the disabling deleted the code"
    );
    let stored = core.store.refresh_token(&token_hash).await.unwrap();
    assert_eq!(
        stored, None,
        "a redemption of a deleted code stored a token"
    );
}

/// Until `n` sessions of this database wait for a lock (a real server's state: polled).
async fn wait_for_lock_waiters(watcher: &mut sqlx::PgConnection, n: i64) {
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *watcher)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited for a lock");
}

/// A code replay revokes the grant while the first redemption may still be storing its
/// refresh token: whichever lands first, that token must be dead once the revocation is done.
async fn revoking_grants_while_their_codes_are_redeemed_leaves_no_usable_refresh_token(
    backend: Backend,
) {
    let core = test_core(backend).await;
    let grants: Vec<String> = (0..TASKS / 2).map(|g| format!("grant-{g}")).collect();
    let mut codes = Vec::new();
    for grant in &grants {
        codes.push(insert_code(&core, grant).await);
    }
    let now = core.clock.now();
    let issued: Vec<RefreshToken> = grants.iter().map(|g| first_refresh(g, now)).collect();

    let redeemed = race(TASKS, |i| {
        let store = core.store.clone();
        let (grant, code, token) = (
            grants[i / 2].clone(),
            codes[i / 2].clone(),
            issued[i / 2].clone(),
        );
        async move {
            if i % 2 == 1 {
                store
                    .revoke_grant(&GrantId::from_stored(grant.clone()), now)
                    .await
                    .unwrap();
                return None;
            }
            let outcome = store.redeem_code(&code, CLIENT, now, Some(&token));
            Some(outcome.await.unwrap())
        }
    })
    .await;

    for outcome in redeemed.into_iter().flatten() {
        assert!(matches!(outcome, Redeemed::Issued(_)), "{outcome:?}");
    }
    for (grant, token) in grants.iter().zip(&issued) {
        assert_eq!(
            core.store
                .grant_revoked(&GrantId::from_stored(grant.clone()))
                .await
                .unwrap(),
            Some(true)
        );
        assert_dead(&core, token, &format!("{grant}'s refresh token")).await;
    }
}

/// RFC 7009 revocation or reuse detection racing a rotation of the same family.
async fn revoking_grants_while_their_tokens_rotate_leaves_no_usable_refresh_token(
    backend: Backend,
) {
    let core = test_core(backend).await;
    let mut firsts = Vec::new();
    for g in 0..TASKS / 2 {
        firsts.push(insert_family(&core, &format!("grant-{g}")).await);
    }
    let now = core.clock.now();
    let successors: Vec<RefreshToken> = firsts.iter().map(|f| successor(f, now)).collect();

    race(TASKS, |i| {
        let store = core.store.clone();
        let (first, next) = (firsts[i / 2].clone(), successors[i / 2].clone());
        async move {
            if i % 2 == 1 {
                store.revoke_grant(&first.grant_id, now).await.unwrap();
            } else {
                store
                    .rotate_refresh(&first.token_hash, &next, now)
                    .await
                    .unwrap();
            }
        }
    })
    .await;

    for (first, next) in firsts.iter().zip(&successors) {
        let grant = &first.grant_id;
        assert_dead(&core, first, &format!("{grant}'s first token")).await;
        assert_dead(&core, next, &format!("{grant}'s successor")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Refresh rotation

backend_tests!(
    parallel_rotations_of_one_refresh_token_have_one_winner,
    parallel_replacements_of_a_successor_leave_one_usable_successor,
    a_rotation_whose_successor_cannot_be_stored_changes_nothing,
);

async fn parallel_rotations_of_one_refresh_token_have_one_winner(backend: Backend) {
    let core = test_core(backend).await;
    let first = insert_family(&core, "grant-1").await;
    let now = core.clock.now();
    let successors: Vec<RefreshToken> = (0..TASKS).map(|_| successor(&first, now)).collect();

    let rotated = race(TASKS, |i| {
        let (store, presented, next) = (
            core.store.clone(),
            first.token_hash.clone(),
            successors[i].clone(),
        );
        async move { store.rotate_refresh(&presented, &next, now).await.unwrap() }
    })
    .await;

    assert_eq!(count(&rotated), 1, "exactly one rotation wins");
    for (won, next) in rotated.iter().zip(&successors) {
        let stored = core.store.refresh_token(&next.token_hash).await.unwrap();
        assert_eq!(
            stored.is_some(),
            *won,
            "only the winner's successor is stored"
        );
    }
    let first = core
        .store
        .refresh_token(&first.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.rotated_at, Some(now));
}

/// A rotation or a withdrawal whose successor the store refuses (its hash taken: only a bug
/// could do this) is an error that writes nothing: the presented token stays live, the
/// successor it had stays usable, and the store takes the next writes at once (on SQLite a
/// transaction left open on a pooled connection would hold the write lock, and every later
/// write would fail after the busy timeout).
async fn a_rotation_whose_successor_cannot_be_stored_changes_nothing(backend: Backend) {
    let core = test_core(backend).await;
    let first = insert_family(&core, "grant-1").await;
    let other = insert_family(&core, "grant-2").await;
    let now = core.clock.now();
    let clashing = RefreshToken {
        token_hash: other.token_hash.clone(),
        ..successor(&first, now)
    };

    for _ in 0..3 {
        let refused = core.store.rotate_refresh(&first.token_hash, &clashing, now);
        let refused = refused.await;
        assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
        let read = core.store.refresh_token(&first.token_hash).await.unwrap();
        assert_eq!(read.unwrap().rotated_at, None, "the token stays live");
    }
    let next = successor(&first, now);
    let rotated = core.store.rotate_refresh(&first.token_hash, &next, now);
    assert!(rotated.await.unwrap(), "the same token then rotates");

    for _ in 0..3 {
        let refused = core
            .store
            .replace_successor(&first.token_hash, &clashing, now);
        let refused = refused.await;
        assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
        let read = core.store.refresh_token(&next.token_hash).await.unwrap();
        assert_eq!(read.unwrap().revoked_at, None, "the successor stays usable");
    }
    // Writes outside the turn (this one is a single statement) find no lock held either.
    insert_family(&core, "grant-3").await;
    let replacement = successor(&first, now);
    let replaced = core
        .store
        .replace_successor(&first.token_hash, &replacement, now);
    assert!(replaced.await.unwrap(), "the successor is then replaced");
}

/// An in-memory SQLite store lives as long as its one connection: a failed write is rolled
/// back on that connection, which must not be closed (closing it emptied the database, and
/// every later request failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_store_keeps_its_data_after_a_failed_write() {
    let core = test_core_with(Backend::Sqlite, |c| {
        c.database_url = "sqlite::memory:".into();
    })
    .await;
    let first = insert_family(&core, "grant-1").await;
    let other = insert_family(&core, "grant-2").await;
    let now = core.clock.now();
    let clashing = RefreshToken {
        token_hash: other.token_hash.clone(),
        ..successor(&first, now)
    };

    let refused = core.store.rotate_refresh(&first.token_hash, &clashing, now);
    let refused = refused.await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    let read = core.store.refresh_token(&first.token_hash).await.unwrap();
    assert_eq!(
        read.unwrap().rotated_at,
        None,
        "the token is there, and live"
    );
    let next = successor(&first, now);
    let rotated = core.store.rotate_refresh(&first.token_hash, &next, now);
    assert!(rotated.await.unwrap(), "and then rotates");
}

/// A rotation whose request gives up while it waits for a pooled connection writes nothing,
/// then or later: on SQLite the connection is taken before the text's own task starts. The
/// pool has one connection, held by another rotation that waits behind a write lock taken
/// from outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_abandoned_while_waiting_for_a_connection_writes_nothing() {
    use sqlx::{Connection, SqliteConnection};

    let core = test_core_with(Backend::Sqlite, |c| {
        c.database.max_connections = Some(1);
    })
    .await;
    let held = insert_family(&core, "grant-1").await;
    let abandoned = insert_family(&core, "grant-2").await;
    let now = core.clock.now();
    let mut outside = SqliteConnection::connect(&core.settings.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut outside)
        .await
        .unwrap();

    let (store, presented, next) = (
        core.store.clone(),
        held.token_hash.clone(),
        successor(&held, now),
    );
    let first = tokio::spawn(async move { store.rotate_refresh(&presented, &next, now).await });
    for waited in 0.. {
        // The one connection is open and taken: the first rotation waits on the lock.
        if core.store.pool_stats() == (1, 0) {
            break;
        }
        assert!(
            waited < 5_000,
            "the first rotation never took the connection"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let next = successor(&abandoned, now);
    let waiting = core.store.rotate_refresh(&abandoned.token_hash, &next, now);
    let gave_up = tokio::time::timeout(Duration::from_millis(200), waiting).await;
    assert!(gave_up.is_err(), "it was still waiting for the connection");

    sqlx::query("COMMIT").execute(&mut outside).await.unwrap();
    assert!(
        first.await.unwrap().unwrap(),
        "the first rotation goes through"
    );
    // The pool hands its connection out in order: a write still queued for it would have
    // run before this read.
    let read = core
        .store
        .refresh_token(&abandoned.token_hash)
        .await
        .unwrap();
    assert_eq!(
        read.unwrap().rotated_at,
        None,
        "the abandoned rotation wrote nothing"
    );
    let stored = core.store.refresh_token(&next.token_hash).await.unwrap();
    assert_eq!(stored, None, "nor stored its successor");
}

/// A write that waits out SQLite's busy timeout behind another process's lock (the CLI's,
/// say) is "unavailable", which clients get as 503 with `Retry-After`, not an internal error;
/// and it wrote nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_waits_out_the_busy_timeout_is_unavailable() {
    use sqlx::{Connection, SqliteConnection};

    let core = test_core(Backend::Sqlite).await;
    let first = insert_family(&core, "grant-1").await;
    let now = core.clock.now();
    let mut outside = SqliteConnection::connect(&core.settings.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut outside)
        .await
        .unwrap();

    let next = successor(&first, now);
    let waited = core
        .store
        .rotate_refresh(&first.token_hash, &next, now)
        .await;
    assert!(
        matches!(waited, Err(StoreError::Unavailable(_))),
        "{waited:?}"
    );

    sqlx::query("ROLLBACK").execute(&mut outside).await.unwrap();
    let read = core.store.refresh_token(&first.token_hash).await.unwrap();
    assert_eq!(read.unwrap().rotated_at, None, "nothing was written");
    let rotated = core.store.rotate_refresh(&first.token_hash, &next, now);
    assert!(
        rotated.await.unwrap(),
        "and the same write then goes through"
    );
}

/// Within the reuse grace period a retry replaces the unused successor; retries at once must
/// still leave exactly one successor that works.
async fn parallel_replacements_of_a_successor_leave_one_usable_successor(backend: Backend) {
    let core = test_core(backend).await;
    let first = insert_family(&core, "grant-1").await;
    let now = core.clock.now();
    let original = successor(&first, now);
    assert!(
        core.store
            .rotate_refresh(&first.token_hash, &original, now)
            .await
            .unwrap()
    );
    let replacements: Vec<RefreshToken> = (0..TASKS).map(|_| successor(&first, now)).collect();

    let replaced = race(TASKS, |i| {
        let (store, presented, next) = (
            core.store.clone(),
            first.token_hash.clone(),
            replacements[i].clone(),
        );
        async move {
            store
                .replace_successor(&presented, &next, now)
                .await
                .unwrap()
        }
    })
    .await;

    assert!(count(&replaced) >= 1, "some retry replaced the successor");
    let mut live = 0;
    for candidate in std::iter::once(&original).chain(&replacements) {
        let stored = core
            .store
            .refresh_token(&candidate.token_hash)
            .await
            .unwrap();
        live += usize::from(stored.is_some_and(|t| t.revoked_at.is_none()));
    }
    assert_eq!(live, 1, "exactly one successor is left live");
    for (won, candidate) in replaced.iter().zip(&replacements) {
        let stored = core
            .store
            .refresh_token(&candidate.token_hash)
            .await
            .unwrap();
        assert_eq!(stored.is_some(), *won, "a retry that lost writes nothing");
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization requests and sessions

backend_tests!(
    parallel_takes_of_one_pending_request_have_one_winner,
    parallel_ends_of_one_session_have_one_winner,
    a_logout_delivery_is_claimed_by_one_replica_at_a_time,
);

async fn parallel_takes_of_one_pending_request_have_one_winner(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    let id_hash = fresh_hash();
    core.store
        .insert_pending(&PendingRequest {
            id_hash: id_hash.clone(),
            client_id: CLIENT.into(),
            request: "{}".into(),
            created_at: now,
            expires_at: hour_after(now),
        })
        .await
        .unwrap();

    let taken = race(TASKS, |_| {
        let (store, id_hash) = (core.store.clone(), id_hash.clone());
        async move { store.take_pending(&id_hash, now).await.unwrap().is_some() }
    })
    .await;

    assert_eq!(count(&taken), 1, "exactly one take gets the request");
    assert_eq!(core.store.pending(&id_hash, now).await.unwrap(), None);
}

async fn parallel_ends_of_one_session_have_one_winner(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    let id_hash = fresh_hash();
    core.store
        .insert_session(&Session {
            id_hash: id_hash.clone(),
            user_id: USER.into(),
            auth_time: now,
            created_at: now,
            expires_at: hour_after(now),
        })
        .await
        .unwrap();

    let ended = race(TASKS, |_| {
        let (store, id_hash) = (core.store.clone(), id_hash.clone());
        async move { store.end_session(&id_hash, now).await.unwrap() }
    })
    .await;

    assert_eq!(count(&ended), 1, "exactly one logout ends the session");
    assert_eq!(core.store.session(&id_hash, now).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Passwords and the login limiter

backend_tests!(
    a_hash_upgrade_after_a_set_password_changes_nothing,
    hash_upgrades_racing_a_set_password_never_undo_it,
    parallel_inserts_of_one_username_have_one_winner,
    parallel_claim_updates_all_land,
);

async fn a_hash_upgrade_after_a_set_password_changes_nothing(backend: Backend) {
    let core = test_core(backend).await;
    let user = insert_user(&core, "alice", "hash-checked").await;
    let now = core.clock.now();
    assert!(
        core.store
            .set_user_password("alice", "hash-set", now)
            .await
            .unwrap()
    );

    let upgraded = core
        .store
        .upgrade_password_hash(&user.id, "hash-checked", "hash-upgraded")
        .await
        .unwrap();

    assert!(!upgraded);
    let stored = core.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(stored.password_hash, "hash-set");
}

/// Sign-ins that verified the old hash race `valet user set-password`: at most one upgrade
/// lands, and only before the new password; the new password is what stays.
async fn hash_upgrades_racing_a_set_password_never_undo_it(backend: Backend) {
    let core = test_core(backend).await;
    const USERS: usize = 5;
    let mut users = Vec::new();
    for u in 0..USERS {
        users.push(insert_user(&core, &format!("user{u}"), "hash-checked").await);
    }
    let now = core.clock.now();

    // For each user, one set-password (task 0 of its group) and upgrades (the rest).
    let group = TASKS / USERS;
    let results = race(TASKS, |i| {
        let (store, user) = (core.store.clone(), users[i / group].clone());
        async move {
            if i % group == 0 {
                let set = store.set_user_password(&user.username, "hash-set", now);
                assert!(set.await.unwrap());
                None
            } else {
                let upgraded = format!("hash-upgraded-{i}");
                let upgrade = store.upgrade_password_hash(&user.id, "hash-checked", &upgraded);
                Some(upgrade.await.unwrap())
            }
        }
    })
    .await;

    for (u, user) in users.iter().enumerate() {
        let outcomes: Vec<bool> = results[u * group..(u + 1) * group]
            .iter()
            .flatten()
            .copied()
            .collect();
        assert!(
            count(&outcomes) <= 1,
            "{}: one upgrade at most",
            user.username
        );
        let stored = core.store.user_by_id(&user.id).await.unwrap().unwrap();
        assert_eq!(stored.password_hash, "hash-set", "{}", user.username);
    }
}

async fn parallel_inserts_of_one_username_have_one_winner(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();

    let inserted = race(TASKS, |i| {
        let store = core.store.clone();
        let user = User {
            id: format!("id-{i}"),
            username: "alice".into(),
            email: None,
            name: None,
            profile: Default::default(),
            password_hash: "hash".into(),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        async move { store.insert_user(&user).await }
    })
    .await;

    let mut winners = 0;
    for outcome in inserted {
        match outcome {
            Ok(()) => winners += 1,
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("expected Conflict, got {other}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(core.store.users().await.unwrap().len(), 1);
}

/// `valet user update`s of different claims at once, with a set-password among them: each
/// holds the row from its read to its write, so every claim lands and the password stays.
/// Applying them all again changes nothing, not even `updated_at`.
async fn parallel_claim_updates_all_land(backend: Backend) {
    let core = test_core(backend).await;
    insert_user(&core, "alice", "hash-old").await;
    let value = |i: usize| Some(format!("value {i}"));
    let edit = |i: usize| match i {
        0 => ClaimEdit::Name(value(i)),
        1 => ClaimEdit::GivenName(value(i)),
        2 => ClaimEdit::FamilyName(value(i)),
        3 => ClaimEdit::Picture(value(i)),
        4 => ClaimEdit::Locale(value(i)),
        5 => ClaimEdit::PhoneNumber(value(i)),
        6 => ClaimEdit::Address(AddressPart::Formatted, value(i)),
        7 => ClaimEdit::Address(AddressPart::StreetAddress, value(i)),
        8 => ClaimEdit::Address(AddressPart::Locality, value(i)),
        9 => ClaimEdit::Address(AddressPart::Region, value(i)),
        10 => ClaimEdit::Address(AddressPart::PostalCode, value(i)),
        11 => ClaimEdit::Address(AddressPart::Country, value(i)),
        _ => ClaimEdit::EmailVerified(true),
    };
    const EDITS: usize = 13;
    let now = core.clock.now().plus(Duration::from_secs(60));

    race(EDITS + 1, |i| {
        let store = core.store.clone();
        let edit = edit(i);
        async move {
            if i == EDITS {
                assert!(
                    store
                        .set_user_password("alice", "hash-new", now)
                        .await
                        .unwrap()
                );
            } else {
                let updated = store.update_user_claims("alice", &[edit], now).await;
                assert!(updated.unwrap().is_some());
            }
        }
    })
    .await;

    let all: Vec<ClaimEdit> = (0..EDITS).map(edit).collect();
    let stored = core.store.user_by_username("alice").await.unwrap().unwrap();
    let mut expected = User {
        name: None,
        profile: Default::default(),
        ..stored.clone()
    };
    ClaimEdit::apply_all(&all, &mut expected);
    assert_eq!(stored, expected, "every claim landed");
    assert_eq!(stored.password_hash, "hash-new");
    assert_eq!(stored.updated_at, now);

    let later = now.plus(Duration::from_secs(60));
    let again = core.store.update_user_claims("alice", &all, later).await;
    assert_eq!(again.unwrap(), Some(stored.clone()), "nothing to change");
    let missing = core.store.update_user_claims("ghost", &all, later).await;
    assert_eq!(missing.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Upserts, deny list and signing keys

backend_tests!(
    parallel_consent_saves_never_conflict,
    parallel_revocations_of_one_access_token_never_conflict,
    checks_in_flight_share_queries_and_each_sees_the_deny_list,
    parallel_key_rotations_leave_one_current_key,
    parallel_activations_promote_the_next_key_once,
);

async fn parallel_consent_saves_never_conflict(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    let scopes: Vec<String> = (0..TASKS)
        .map(|i| format!("read:contacts scope:{i}"))
        .collect();

    race(TASKS, |i| {
        let store = core.store.clone();
        let consent = Consent {
            user_id: USER.into(),
            client_id: CLIENT.into(),
            audience: CONTACTS.into(),
            scope: ScopeSet::parse(&scopes[i]).unwrap(),
        };
        async move { store.save_consent(&consent, now).await.unwrap() }
    })
    .await;

    let saved = core
        .store
        .consent(USER, CLIENT, CONTACTS)
        .await
        .unwrap()
        .expect("a consent");
    assert!(
        scopes.iter().any(|s| ScopeSet::parse(s).unwrap() == saved),
        "the consent is one of those saved: {saved}"
    );
}

async fn parallel_revocations_of_one_access_token_never_conflict(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();

    race(TASKS, |_| {
        let store = core.store.clone();
        async move {
            store
                .revoke_access_token("grant-1.jti", CLIENT, now, hour_after(now))
                .await
                .unwrap()
        }
    })
    .await;

    assert!(
        core.store
            .access_token_revoked("grant-1.jti")
            .await
            .unwrap()
    );
}

/// The deny-list checks of many requests at once (introspection, UserInfo) ride shared
/// queries of up to 32 ids: each still gets its own token's answer, and a revocation made
/// after one check is seen by the next.
async fn checks_in_flight_share_queries_and_each_sees_the_deny_list(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    let jtis: Vec<String> = (0..100).map(|i| format!("grant-{i}.jti")).collect();
    for jti in jtis.iter().step_by(2) {
        core.store
            .revoke_access_token(jti, CLIENT, now, hour_after(now))
            .await
            .unwrap();
    }

    let number = |jti: &str| jti[6..].split('.').next().unwrap().parse::<u32>().unwrap();
    // One call across several padded chunks of 32.
    let all: Vec<&str> = jtis.iter().map(String::as_str).collect();
    let mut revoked = core.store.revoked_access_tokens(&all).await.unwrap();
    revoked.sort_by_key(|jti| number(jti));
    let expected: Vec<String> = jtis.iter().step_by(2).cloned().collect();
    assert_eq!(revoked, expected);
    assert!(
        core.store
            .revoked_access_tokens(&[])
            .await
            .unwrap()
            .is_empty()
    );
    // A lone id, alone or as the last of 33 (32 + 1), is a statement of its own.
    for ids in [&all[..1], &all[1..2], &all[1..34], &all[2..35]] {
        let mut found = core.store.revoked_access_tokens(ids).await.unwrap();
        found.sort();
        let mut wanted: Vec<String> = ids
            .iter()
            .filter(|jti| number(jti) % 2 == 0)
            .map(|jti| jti.to_string())
            .collect();
        wanted.sort();
        assert_eq!(found, wanted, "{} ids from {}", ids.len(), ids[0]);
    }

    let answers = race(jtis.len(), |i| {
        let (checks, jti) = (core.revocations.clone(), jtis[i].clone());
        async move { (i, checks.revoked(&jti).await.unwrap()) }
    })
    .await;
    for (i, revoked) in answers {
        assert_eq!(revoked, i % 2 == 0, "{}", jtis[i]);
    }

    assert!(!core.revocations.revoked("grant-1.jti").await.unwrap());
    core.store
        .revoke_access_token("grant-1.jti", CLIENT, now, hour_after(now))
        .await
        .unwrap();
    assert!(core.revocations.revoked("grant-1.jti").await.unwrap());
}

/// Two `valet keys rotate` at once: each either rotates or gets `Conflict`; one key is current.
async fn parallel_key_rotations_leave_one_current_key(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    let alg = core.settings.tokens.signing_alg;
    let keys: Vec<_> = (0..TASKS)
        .map(|_| valet::tokens::keys::new_stored_key(&core.server_keys.sealer, alg, now).unwrap())
        .collect();

    let rotations = race(TASKS, |i| {
        let (store, key) = (core.store.clone(), keys[i].clone());
        async move { store.rotate_signing_key(&key, now).await }
    })
    .await;

    let mut rotated = 0;
    for outcome in rotations {
        match outcome {
            Ok(()) => rotated += 1,
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("expected Conflict, got {other}"),
        }
    }
    assert!(rotated >= 1);
    let current = core
        .store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.status == KeyStatus::Current)
        .count();
    assert_eq!(current, 1);
}

/// Every replica's key reload tries to promote a due `next` key: of many at once, exactly one
/// does, and exactly one key is current afterwards (the promoted one).
async fn parallel_activations_promote_the_next_key_once(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    let alg = core.settings.tokens.signing_alg;
    let mut next = valet::tokens::keys::new_stored_key(&core.server_keys.sealer, alg, now).unwrap();
    next.status = KeyStatus::Next;
    next.activates_at = Some(now);
    core.store.rotate_signing_key(&next, now).await.unwrap();

    let activations = race(TASKS, |_| {
        let store = core.store.clone();
        async move { store.activate_due_signing_key(now).await.unwrap() }
    })
    .await;

    assert_eq!(
        activations.iter().filter(|a| **a).count(),
        1,
        "{activations:?}"
    );
    let keys = core.store.signing_keys().await.unwrap();
    let current: Vec<_> = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Current)
        .map(|k| k.kid.as_str())
        .collect();
    assert_eq!(current, [next.kid.as_str()]);
}

/// Back-channel logout across replicas: ending a session queues one delivery per client in the
/// same transaction, and of every replica's delivery pass claiming it at once exactly one
/// gets it (the lease keeps the others off until it expires); ending it again queues nothing
/// more.
async fn a_logout_delivery_is_claimed_by_one_replica_at_a_time(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    core.store
        .insert_client(&Client {
            client_id: CLIENT.into(),
            client_name: "A".into(),
            secret_hash: None,
            grant_types: vec![],
            redirect_uris: vec![],
            scope: ScopeSet::default(),
            audiences: vec![],
            allowed_origins: vec![],
            first_party: false,
            logout: ClientLogout {
                post_logout_redirect_uris: vec![],
                backchannel_logout_uri: Some("http://127.0.0.1:9/logout".into()),
            },
            require_par: false,
            keys: Default::default(),
            registration: None,
            revision: 0,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let session = fresh_hash();
    core.store
        .insert_session(&Session {
            id_hash: session.clone(),
            user_id: USER.into(),
            auth_time: now,
            created_at: now,
            expires_at: hour_after(now),
        })
        .await
        .unwrap();
    core.store
        .insert_session_client(&SessionClient {
            session_hash: session.clone(),
            client_id: CLIENT.into(),
            sid: "sid-1".into(),
            user_id: USER.into(),
            expires_at: hour_after(now),
        })
        .await
        .unwrap();
    assert!(core.store.end_session(&session, now).await.unwrap());
    let queued = core.store.due_logout_deliveries(now, 10).await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let id = queued[0].id.clone();

    let lease = now.plus(Duration::from_secs(60));
    let claims = race(TASKS, |_| {
        let (store, id) = (core.store.clone(), id.clone());
        async move { store.claim_logout_delivery(&id, now, lease).await.unwrap() }
    })
    .await;
    assert_eq!(count(&claims), 1, "one replica delivers");
    assert!(
        core.store
            .due_logout_deliveries(now, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let after_lease = core.store.due_logout_deliveries(lease, 10).await.unwrap();
    assert_eq!(after_lease.len(), 1, "a dead replica's claim lapses");
    assert_eq!(after_lease[0].attempts, 1);
    core.store.end_session(&session, now).await.unwrap();
    assert_eq!(
        core.store
            .due_logout_deliveries(lease, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

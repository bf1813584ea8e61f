//! Security review, issue 11, findings 1, 2 and 6 (SPEC §7): the failed-login limits hold
//! under concurrency (an attempt is reserved before Argon2 runs, in one conditional write per
//! key that every replica sees), Argon2 memory is a pool bounded by `max_concurrent`, and the
//! password grant never counts the app server's address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use valet::domain::UnixTime;
use valet::store::LimiterKey;

use crate::backend_tests;
use crate::grant_logic::test_core;
use crate::harness::fixtures::{Creds, NewClient, PASSWORD};
use crate::harness::flow::Form;
use crate::harness::{self, Backend, CONTACTS, TestApp};

backend_tests!(
    a_password_grant_burst_gets_no_more_checks_than_sequential_guesses,
    a_login_page_burst_gets_no_more_checks_than_sequential_guesses,
    parallel_reservations_of_one_key_admit_only_the_free_attempts_and_one_more,
    a_reservation_is_all_or_nothing_across_the_user_and_the_address,
    a_crashed_requests_reservation_expires_with_the_window,
    each_reservation_past_the_free_ones_doubles_the_lock_up_to_the_maximum,
    a_password_grant_burst_from_an_app_does_not_lock_its_users_out,
    the_password_grant_counts_an_end_user_address_a_trusted_proxy_supplies,
);

/// How many wrong guesses for one username may reach Argon2 in `elapsed` when made one
/// after another: the free failures left, the one that sets the first lock (1 s), and then
/// one per lock as the locks double (1 s, 2 s, 4 s, …) within the time the burst took.
fn sequential_budget(free_left: u32, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64().ceil() as u64;
    // Locks end at 1, 1+2, 1+2+4, … seconds after the first: one more guess after each.
    let mut extra = 0;
    let mut ends = 1;
    while ends <= secs {
        extra += 1;
        ends += 1 << extra;
    }
    u64::from(free_left) + 1 + extra
}

/// Run `count` requests made by `make(i)`, at most `parallel` at a time; their statuses.
async fn burst<F, Fut>(count: usize, parallel: usize, make: F) -> Vec<u16>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = u16> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(parallel));
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let gate = gate.clone();
            let request = make(i);
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                request.await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

/// A server whose Argon2 costs more than a store round trip, as with real parameters, so
/// that a check-then-act limiter would let a burst through by a wide margin.
async fn costly_argon2_app(backend: Backend) -> Arc<TestApp> {
    Arc::new(
        harness::spawn_with(backend, |c| {
            c.password_hash.memory_kib = 8192;
            c.password_hash.iterations = 2;
            c.password_hash.max_concurrent = 8;
        })
        .await,
    )
}

/// Finding 1, password grant: two sequential failures, then 40 parallel requests (39 wrong,
/// the last right, 8 at a time). Before the fix all 40 reached Argon2 (and the right one got
/// tokens); now the burst gets what sequential guesses would get.
async fn a_password_grant_burst_gets_no_more_checks_than_sequential_guesses(backend: Backend) {
    let app = costly_argon2_app(backend).await;
    app.create_contacts_api().await;
    let client = app.create_password_client().await;
    create_alice(&app).await;
    let free = app.state.settings.login.user_free_failures;
    for _ in 0..2 {
        let response = app.password_grant(&client, "alice", "guess", None).await;
        assert_eq!(response.status(), 400);
    }
    let before = app.state.passwords.evaluations();
    let started = Instant::now();
    let statuses = burst(40, 8, |i| {
        let (app, client) = (app.clone(), client.clone());
        async move {
            let password = if i == 39 { PASSWORD } else { "guess" };
            app.password_grant(&client, "alice", password, None)
                .await
                .status()
                .as_u16()
        }
    })
    .await;
    let checked = app.state.passwords.evaluations() - before;
    let budget = sequential_budget(free - 2, started.elapsed());
    assert!(
        checked <= budget,
        "{checked} Argon2 checks in a burst of 40, sequential guesses get {budget} \
         in {:?}; statuses {statuses:?}",
        started.elapsed()
    );
    assert!(statuses.iter().all(|s| *s == 400 || *s == 200));
}

/// Finding 1, login page: the same with 15 parallel POSTs to /login.
async fn a_login_page_burst_gets_no_more_checks_than_sequential_guesses(backend: Backend) {
    let app = costly_argon2_app(backend).await;
    app.create_contacts_api().await;
    let page = login_page(&app).await;
    create_alice(&app).await;
    let free = app.state.settings.login.user_free_failures;
    for _ in 0..2 {
        assert_eq!(app.sign_in(&page, "alice", "guess").await.status(), 400);
    }
    let before = app.state.passwords.evaluations();
    let started = Instant::now();
    let page = Arc::new(page);
    let statuses = burst(15, 8, |_| {
        let (app, page) = (app.clone(), page.clone());
        async move { app.sign_in(&page, "alice", "guess").await.status().as_u16() }
    })
    .await;
    let checked = app.state.passwords.evaluations() - before;
    let budget = sequential_budget(free - 2, started.elapsed());
    assert!(
        checked <= budget,
        "{checked} Argon2 checks in a burst of 15 POSTs, sequential guesses get {budget}; \
         statuses {statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// Alice, with a hash made with the server's parameters (the harness's CLI uses cheaper ones).
async fn create_alice(app: &TestApp) {
    app.create_user("alice").await;
    let hash =
        valet::login::password::hash_blocking(&app.state.settings.password_hash, PASSWORD).unwrap();
    let now = app.state.clock.now();
    assert!(
        app.state
            .store
            .set_user_password("alice", &hash, now)
            .await
            .unwrap()
    );
}

/// A login page of a fresh authorization request (the contacts API exists).
async fn login_page(app: &TestApp) -> String {
    let client = app
        .create_web_client(NewClient::web("https://app.example.com/cb", "read:contacts").public())
        .await;
    app.login_page(&client).await
}

fn user_key(free: u32) -> LimiterKey {
    LimiterKey {
        key: "user:alice".into(),
        free_failures: free,
        max_lockout_secs: 60,
    }
}

fn address_key(free: u32) -> LimiterKey {
    LimiterKey {
        key: "addr:203.0.113.7".into(),
        free_failures: free,
        max_lockout_secs: 900,
    }
}

/// The store's conditional write, the part that holds across replicas: 40 parallel
/// reservations of one key at one instant admit exactly the free ones and the one that sets
/// the lock; the rest are refused with the lock's end.
async fn parallel_reservations_of_one_key_admit_only_the_free_attempts_and_one_more(
    backend: Backend,
) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    let window_start = UnixTime(now.0 - 900);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = core.store.clone();
            tokio::spawn(async move {
                store
                    .reserve_login(&[user_key(5)], now, window_start)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(until) => assert_eq!(until, UnixTime(now.0 + 1), "the first lock is 1 s"),
        }
    }
    assert_eq!(admitted, 6, "5 free attempts and the one that locks");
    // Locked through the second `until`, so a 1 s lock lasts at least 1 s whenever in the
    // second it starts.
    assert!(
        core.store
            .reserve_login(&[user_key(5)], UnixTime(now.0 + 1), window_start)
            .await
            .unwrap()
            .is_err()
    );
    // The lock ends on the clock; the next attempt doubles it.
    let later = UnixTime(now.0 + 2);
    assert_eq!(
        core.store
            .reserve_login(&[user_key(5)], later, window_start)
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        core.store
            .reserve_login(&[user_key(5)], later, window_start)
            .await
            .unwrap(),
        Err(UnixTime(later.0 + 2))
    );
}

/// A reservation refused by a locked address counts nothing against the username, and one
/// given back (a right password) does not count.
async fn a_reservation_is_all_or_nothing_across_the_user_and_the_address(backend: Backend) {
    let core = test_core(backend).await;
    let now = core.clock.now();
    let window_start = UnixTime(now.0 - 900);
    let store = &core.store;
    // Lock the address (no free failures).
    assert_eq!(
        store
            .reserve_login(&[address_key(0)], now, window_start)
            .await
            .unwrap(),
        Ok(())
    );
    for _ in 0..10 {
        assert!(
            store
                .reserve_login(&[user_key(1), address_key(0)], now, window_start)
                .await
                .unwrap()
                .is_err()
        );
    }
    // The username was never counted: its free attempt and the locking one are still there.
    for _ in 0..2 {
        assert_eq!(
            store
                .reserve_login(&[user_key(1)], now, window_start)
                .await
                .unwrap(),
            Ok(())
        );
        store.release_login("user:alice").await.unwrap();
    }
    // Given back each time: still not locked.
    assert_eq!(
        store
            .reserve_login(&[user_key(1)], now, window_start)
            .await
            .unwrap(),
        Ok(())
    );
}

/// A request that dies between reserving and answering (no success, no failure recorded)
/// leaves a counted failure and a lock, both of which end on the clock, not never.
async fn a_crashed_requests_reservation_expires_with_the_window(backend: Backend) {
    let core = test_core(backend).await;
    let window = core.settings.login.failure_window;
    let reserve = |now: UnixTime| {
        let store = core.store.clone();
        async move {
            store
                .reserve_login(
                    &[user_key(0)],
                    now,
                    UnixTime(now.0 - window.as_secs() as i64),
                )
                .await
                .unwrap()
        }
    };
    let now = core.clock.now();
    assert_eq!(reserve(now).await, Ok(()), "reserved, and the request dies");
    assert!(reserve(now).await.is_err(), "locked by the reservation");
    core.clock.advance(window + Duration::from_secs(1));
    let later = core.clock.now();
    assert_eq!(reserve(later).await, Ok(()), "the window forgot it");
    // A fresh window: this is its first failure again (locked for 1 s, not 2 s).
    assert_eq!(reserve(later).await, Err(UnixTime(later.0 + 1)));
}

/// Finding 6: a burst of failed password grants from one app server (here recorded by the
/// trusted proxy as 192.0.2.10) used to lock that address, which every user of the app
/// shares: the right password was refused ("retry in 894 seconds"). Now the app's address is
/// not counted, so the burst locks nobody but the guessed usernames, and the user signs in
/// through the app and through the browser from her own address.
async fn a_password_grant_burst_from_an_app_does_not_lock_its_users_out(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.http.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.login.address_free_failures = 5;
    })
    .await;
    app.create_contacts_api().await;
    let Creds { id, secret } = app.create_password_client().await;
    app.create_user("alice").await;
    let from_app = |username: &str, password: &str| {
        let request = app
            .http
            .post(app.url("/token"))
            .header("x-forwarded-for", "192.0.2.10")
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("audience", CONTACTS),
            ]);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Many users mistype through the app (or someone sprays guesses through it).
    for i in 0..12 {
        assert_eq!(from_app(&format!("user{i}"), "wrong").await, 400);
    }
    assert_eq!(
        from_app("alice", PASSWORD).await,
        200,
        "the app's address is not locked"
    );
    let page = login_page(&app).await;
    let mut form = Form::parse(&page);
    form.set("username", "alice").set("password", PASSWORD);
    let browser = app
        .http
        .post(app.url(&form.action))
        .header("x-forwarded-for", "198.51.100.2")
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 303, "the browser login is not locked");
}

/// Where the app server is a trusted proxy that forwards its end user's address (behind the
/// proxy in front of Valet), that address is counted: a guesser's address is locked, other
/// users of the app are not.
async fn the_password_grant_counts_an_end_user_address_a_trusted_proxy_supplies(backend: Backend) {
    let app = harness::spawn_with(backend, |c| {
        c.http.trusted_proxies = vec!["127.0.0.1/32".into(), "10.0.0.9/32".into()];
        c.login.address_free_failures = 2;
        c.login.user_free_failures = 100;
    })
    .await;
    app.create_contacts_api().await;
    let Creds { id, secret } = app.create_password_client().await;
    app.create_user("alice").await;
    app.create_user("bob").await;
    let via_app = |end_user: &str, username: &str, password: &str| {
        let request = app
            .http
            .post(app.url("/token"))
            .header("x-forwarded-for", format!("{end_user}, 10.0.0.9"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("audience", CONTACTS),
            ]);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for username in ["carol", "dave", "erin"] {
        assert_eq!(via_app("203.0.113.66", username, "guess").await, 400);
    }
    assert_eq!(
        via_app("203.0.113.66", "bob", PASSWORD).await,
        400,
        "the guesser's address is locked"
    );
    assert_eq!(
        via_app("198.51.100.7", "alice", PASSWORD).await,
        200,
        "another end user of the same app is not"
    );
}

/// The lock ladder that `RESERVE_LOGIN` computes in SQL, on both engines: none for the free
/// attempts, then 1 s doubling up to the key's maximum (60 s here), never overflowing.
async fn each_reservation_past_the_free_ones_doubles_the_lock_up_to_the_maximum(backend: Backend) {
    let core = test_core(backend).await;
    let start = core.clock.now();
    let window_start = UnixTime(start.0 - 86_400);
    let mut now = start;
    let mut locks = Vec::new();
    let mut admitted = 0;
    for _ in 0..40 {
        match core
            .store
            .reserve_login(&[user_key(3)], now, window_start)
            .await
            .unwrap()
        {
            Ok(()) => admitted += 1,
            // Locked: the refusal counts nothing; the lock ends on the clock.
            Err(until) => {
                locks.push(until.0 - now.0);
                now = UnixTime(until.0 + 1);
            }
        }
    }
    // 3 free and the one that sets the first lock, then one more as each lock ends.
    assert_eq!(admitted, 4 + locks.len(), "{locks:?}");
    assert_eq!(&locks[..8], [1, 2, 4, 8, 16, 32, 60, 60]);
    assert!(locks.iter().skip(6).all(|l| *l == 60), "{locks:?}");
}

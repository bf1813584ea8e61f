//! The two stores agree: same schema from both migration sets, concurrent migrations and
//! concurrent first-key generation are safe.

use std::collections::BTreeSet;

use sqlx::{Connection, Row};

use crate::harness::{self, Backend, TEST_SECRET, clean_command};
use crate::{backend_tests, harness::postgres};

backend_tests!(two_processes_migrate_one_database_at_once);

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
    let now = valet::domain::UnixTime::now();
    let alg = valet::config::SigningAlg::ES256;
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

//! The embedded SQLite store: the default, so `valet serve` needs nothing else installed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreError;
use super::records::*;
use super::shared::{EngineDb, impl_store};
use super::sql;
use crate::config::DatabaseConfig;
use crate::domain::UnixTime;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    pool: SqlitePool,
}

impl EngineDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

impl SqliteStore {
    pub async fn connect(url: &str, config: &DatabaseConfig) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            // WAL lets readers proceed while one writer writes; NORMAL sync is durable across
            // process crashes and keeps commits fast.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Each connection to `:memory:` would be a separate, empty database.
        let max = if in_memory { 1 } else { config.max_connections };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(config.acquire_timeout.0)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// `BEGIN IMMEDIATE` takes the write lock at once: a deferred transaction that reads first
    /// can fail to upgrade with SQLITE_BUSY when another writer got in between.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl_store!(SqliteStore);

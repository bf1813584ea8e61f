//! The PostgreSQL store: production, several replicas on one database.

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::StoreError;
use super::records::*;
use super::shared::{EngineDb, impl_store};
use super::sql;
use crate::config::DatabaseSettings;
use crate::crypto::SecretHash;
use crate::domain::{GrantId, ScopeSet, UnixTime};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl EngineDb for PgStore {
    type Db = sqlx::Postgres;
}

impl PgStore {
    pub async fn connect(url: &str, config: &DatabaseSettings) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// sqlx's PostgreSQL migrator holds `pg_advisory_lock` for the whole run, so replicas that
    /// start together apply each migration exactly once.
    async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Read committed: a conditional UPDATE waits for a concurrent one and re-checks its
    /// WHERE clause, which is what the single-write state changes rely on.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }
}

impl_store!(PgStore);

//! The PostgreSQL store: production, several replicas on one database.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreError;
use super::breaker::{Breaker, Prober};
use super::records::*;
use super::shared::{EngineDb, WriteTx, impl_store};
use super::sql;
use crate::config::DatabaseSettings;
use crate::crypto::SecretHash;
use crate::domain::{GrantId, ScopeSet, UnixTime};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    breaker: Arc<Breaker>,
    _prober: Prober,
}

/// A pooled connection idle for this long is pinged before it is handed out.
const PING_IF_IDLE: Duration = Duration::from_secs(1);

impl EngineDb for PgStore {
    type Db = sqlx::Postgres;
    const DATA_MODIFYING_WITH: bool = true;
}

impl PgStore {
    pub async fn connect(url: &str, config: &DatabaseSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            // sqlx's default pings every connection it hands out: one more round trip per
            // statement. A connection in steady use is known alive; one that sat idle for
            // PING_IF_IDLE (every one through an outage longer than that) is pinged, and
            // replaced if it died with the database.
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE {
                        connection.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await?;
        let breaker = Arc::new(Breaker::default());
        let prober = Prober::spawn(options, breaker.clone());
        Ok(Self {
            pool,
            breaker,
            _prober: prober,
        })
    }

    /// Follows the breaker (see [`Store::outages`](super::Store::outages)).
    fn outage_watch(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        Some(self.breaker.watch())
    }

    /// The pool, unless the breaker says the database is down (then fail at once).
    fn pool(&self) -> Result<&PgPool, StoreError> {
        self.breaker.check()?;
        Ok(&self.pool)
    }

    /// sqlx's PostgreSQL migrator holds `pg_advisory_lock` for the whole run, so replicas that
    /// start together apply each migration exactly once.
    async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Read committed: a conditional UPDATE waits for a concurrent one and re-checks its
    /// WHERE clause, which is what the single-write state changes rely on.
    async fn begin_write(&self) -> Result<WriteTx<sqlx::Postgres>, StoreError> {
        Ok(WriteTx::new(self.pool()?.begin().await?, None))
    }

    /// One statement, a data-modifying `WITH`: one round trip, atomic.
    async fn insert_if(
        &self,
        statements: sql::SuccessorIf,
        presented: &SecretHash,
        successor: &RefreshToken,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(statements.with_insert)
            .bind(presented.0.as_slice())
            .bind(now.0);
        let done = bind_refresh(query, successor).execute(self.pool()?).await?;
        Ok(done.rows_affected() == 1)
    }

    /// The code consumed and the family's first token stored in one statement; the consumed
    /// code's row, if it was.
    async fn consume_code_with_first_refresh(
        &self,
        code_hash: &SecretHash,
        client_id: &str,
        now: UnixTime,
        first_refresh: &RefreshToken,
    ) -> Result<Option<CodeRow>, StoreError> {
        // All rows, as on SQLite; this statement returns at most one.
        let rows = bind_refresh(
            sqlx::query(sql::CONSUME_CODE_WITH_FIRST_REFRESH),
            first_refresh,
        )
        .bind(code_hash.0.as_slice())
        .bind(client_id)
        .bind(now.0)
        .fetch_all(self.pool()?)
        .await?;
        rows.first()
            .map(<CodeRow as sqlx::FromRow<_>>::from_row)
            .transpose()
            .map_err(StoreError::from)
    }
}

impl_store!(PgStore);

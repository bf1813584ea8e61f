//! The embedded SQLite store: the default, so `valet serve` needs nothing else installed.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::StoreError;
use super::records::*;
use super::shared::{EngineDb, WriteTx, impl_store};
use super::sql;
use crate::config::DatabaseSettings;
use crate::crypto::SecretHash;
use crate::domain::{GrantId, ScopeSet, UnixTime};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle SQLite connection stays open; the pool checks every this often, so an
/// idle connection closes 3–6 s after its last use.
const SQLITE_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// sqlx's default: a connection is replaced after this long, busy or not.
const SQLITE_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

pub struct SqliteStore {
    pool: SqlitePool,
    /// `<database>.lock`, or `None` in memory: serializes creation and migration across
    /// processes (a server and a CLI started together on a fresh file).
    lock_path: Option<PathBuf>,
    /// One writer of this process at a time, in arrival order (see `begin_write`).
    write_turn: Arc<Semaphore>,
}

impl EngineDb for SqliteStore {
    type Db = sqlx::Sqlite;
    const DATA_MODIFYING_WITH: bool = false;
}

impl SqliteStore {
    pub async fn connect(url: &str, config: &DatabaseSettings) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            // WAL lets readers proceed while one writer writes; NORMAL sync is durable across
            // process crashes and keeps commits fast.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let lock_path = (!in_memory).then(|| {
            let mut name = options.get_filename().as_os_str().to_owned();
            name.push(".lock");
            PathBuf::from(name)
        });
        // Each connection to `:memory:` would be a separate, empty database.
        let max = if in_memory { 1 } else { config.max_connections };
        let _guard = ProcessLock::acquire(lock_path.as_deref()).await?;
        if !in_memory {
            create_private(options.get_filename()).map_err(|e| {
                StoreError::Unavailable(format!("cannot create the SQLite database: {e}"))
            })?;
        }
        // A SQLite connection is an open file, a worker thread and a page cache: cheap to
        // reopen, costly to keep. A burst opens up to `max`; closing them soon after gives
        // that memory back (issue 11's flood benchmark), where sqlx's default would keep it
        // for 10 minutes. An in-memory database lives only as long as its one connection, so
        // that one is never closed.
        let (idle_timeout, max_lifetime) = if in_memory {
            (None, None)
        } else {
            (Some(SQLITE_IDLE_TIMEOUT), Some(SQLITE_MAX_LIFETIME))
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            // sqlx's default pings each connection it hands out: a round trip through the
            // connection's worker thread (two thread switches) before every statement, for
            // a file that cannot have gone away the way a server can.
            .test_before_acquire(false)
            .idle_timeout(idle_timeout)
            .max_lifetime(max_lifetime)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            lock_path,
            write_turn: Arc::new(Semaphore::new(1)),
        })
    }

    /// A local file has no breaker (see `store::breaker`).
    fn outage_watch(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }

    /// The pool: a local file has no breaker (see `store::breaker`).
    fn pool(&self) -> Result<&SqlitePool, StoreError> {
        Ok(&self.pool)
    }

    /// sqlx's SQLite migrator takes no lock of its own; the process lock plays the part of
    /// PostgreSQL's advisory lock.
    async fn run_migrations(&self) -> Result<(), StoreError> {
        let _guard = ProcessLock::acquire(self.lock_path.as_deref()).await?;
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// `BEGIN IMMEDIATE` takes the write lock at once: a deferred transaction that reads first
    /// can fail to upgrade with SQLITE_BUSY when another writer got in between. Writers of
    /// this process first take their turn in order ([`SqliteStore::write_turn`]): SQLite makes
    /// a writer that finds the lock taken sleep and retry (1, 2, 5, … 100 ms), so without the
    /// turn, concurrent refreshes queued in those sleeps (issue 15: 771 refreshes/s, p50 81
    /// ms). Another process (the CLI) still meets the busy timeout. Single write statements
    /// and the one-call transactions of [`in_one_transaction`](Self::in_one_transaction) do
    /// not take the turn: they hold the lock briefly and can meet the busy handler, but a turn
    /// held by a task waits for that task's next poll too, which on runtime threads busy
    /// signing RSA cost code exchange half its rate (issue 15, BENCHMARKS.md profile 11).
    async fn begin_write(&self) -> Result<WriteTx<sqlx::Sqlite>, StoreError> {
        let turn = self
            .write_turn
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx::new(tx, Some(turn)))
    }

    /// The conditional write and the successor's insert, as one transaction in one text
    /// ([`in_one_transaction`](Self::in_one_transaction)).
    async fn insert_if(
        &self,
        statements: sql::SuccessorIf,
        presented: &SecretHash,
        successor: &RefreshToken,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let data = (presented.clone(), now, successor.clone());
        let inserted = self
            .in_one_transaction(statements.one_transaction_text, data, |query, data| {
                let (presented, now, successor) = data;
                bind_refresh(query.bind(presented.0.as_slice()).bind(now.0), successor)
            })
            .await?;
        Ok(!inserted.is_empty())
    }

    /// The code consumed and the family's first token stored, as one transaction in one text
    /// ([`in_one_transaction`](Self::in_one_transaction)); the consumed code's row, if it was.
    async fn consume_code_with_first_refresh(
        &self,
        code_hash: &SecretHash,
        client_id: &str,
        now: UnixTime,
        first_refresh: &RefreshToken,
    ) -> Result<Option<CodeRow>, StoreError> {
        let data = (
            first_refresh.clone(),
            code_hash.clone(),
            client_id.to_owned(),
            now,
        );
        let rows = self
            .in_one_transaction(
                sql::CONSUME_CODE_WITH_FIRST_REFRESH_IN_ONE_TRANSACTION,
                data,
                |query, data| {
                    let (token, code_hash, client_id, now) = data;
                    bind_refresh(query, token)
                        .bind(code_hash.0.as_slice())
                        .bind(client_id.as_str())
                        .bind(now.0)
                },
            )
            .await?;
        rows.first()
            .map(<CodeRow as sqlx::FromRow<_>>::from_row)
            .transpose()
            .map_err(StoreError::from)
    }

    /// Run `text`, a transaction of its own (`BEGIN IMMEDIATE` … `COMMIT`), with `data`
    /// bound by `bind`; the rows it returns. One call to the connection's thread, where a
    /// [`begin_write`](Self::begin_write) transaction makes one per statement and two more,
    /// holding the write lock for all of them (a refresh rotation's four calls, each waiting
    /// for its task's next poll, made refresh on SQLite wait in line for the lock). It takes
    /// no turn: the lock is held for one call, and a turn is given back only when its task
    /// is polled again, which under load cost more than the busy handler's rare waits
    /// (BENCHMARKS.md profile 13).
    ///
    /// The connection is taken here, where a request that gives up while waiting for one
    /// writes nothing. The text then runs as a task of its own: a request dropped halfway
    /// cannot hand the connection back to the pool inside the transaction, and the write
    /// completes or fails as one, as a statement sent to PostgreSQL does. A text that fails
    /// is rolled back on its connection (SQLite stops at the first failing statement, so the
    /// transaction may still be open); the connection is closed only if that fails too,
    /// since closing the one connection of an in-memory database would empty it.
    async fn in_one_transaction<T: Send + 'static>(
        &self,
        text: &'static str,
        data: T,
        bind: for<'q> fn(EngineQuery<'q>, &'q T) -> EngineQuery<'q>,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let write = tokio::spawn(
            async move {
                let rows = bind(sqlx::query(text), &data).fetch_all(&mut *conn).await;
                if rows.is_err() {
                    roll_back(&mut conn).await;
                }
                rows
            }
            .in_current_span(),
        );
        Ok(write
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))??)
    }
}

/// End whatever transaction a failed text left open on `conn`. Nothing open (the failure
/// came before `BEGIN` took effect, or SQLite rolled back itself) is fine; a rollback that
/// fails otherwise leaves the connection unusable, and it is closed instead of going back to
/// the pool.
async fn roll_back(conn: &mut PoolConnection<sqlx::Sqlite>) {
    match sqlx::query("ROLLBACK").execute(&mut **conn).await {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => {}
        Err(e) => {
            tracing::warn!(error = %e, "rolling back a failed SQLite write failed; closing its connection");
            conn.close_on_drop();
        }
    }
}

/// Create the database file, if missing, readable by its owner only: it holds password hashes
/// and email addresses. SQLite creates the `-wal` and `-shm` files with the database file's
/// mode, so they are 0600 too. An existing file keeps the mode it has.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// An exclusive OS file lock, released when dropped (the file is closed).
struct ProcessLock(#[allow(dead_code)] Option<std::fs::File>);

impl ProcessLock {
    async fn acquire(path: Option<&Path>) -> Result<Self, StoreError> {
        let Some(path) = path.map(Path::to_path_buf) else {
            return Ok(Self(None));
        };
        let locked = tokio::task::spawn_blocking(move || {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).truncate(false).write(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
        .map_err(|e| StoreError::Unavailable(format!("cannot lock the SQLite database: {e}")))?;
        Ok(Self(Some(locked)))
    }
}

impl_store!(SqliteStore);

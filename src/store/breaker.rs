//! A circuit breaker in front of the PostgreSQL pool, so that a database outage is answered in
//! milliseconds instead of each request waiting out the pool's acquire timeout.
//!
//! A prober keeps one connection of its own (outside the pool, so a busy pool never looks
//! like a dead database) and runs `SELECT 1` on it every [`PROBE_INTERVAL`], each with
//! [`PROBE_TIMEOUT`]. A failed or slow probe opens the breaker: every store call then fails at
//! once with [`StoreError::Unavailable`] (OAuth endpoints answer `503 temporarily_unavailable`
//! with `Retry-After`, pages a friendly 503, `/readyz` 503). The prober keeps reconnecting; the
//! first probe that succeeds closes it again. The pool pings a connection that sat idle
//! before handing it out (`store::postgres`), so connections that died with the database in
//! an outage are replaced, not used.
//!
//! SQLite is a file in the process's own hands; it has no breaker.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::watch;

use super::StoreError;

/// How often the database is probed, up or down.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// A probe (connect, or `SELECT 1`) slower than this counts as a failure.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Open (`true`) while the database is known to be down. A watch channel rather than a flag,
/// so requests already waiting on the pool can be cut short the moment it opens (see
/// `http::middleware::fail_fast_on_outage`).
#[derive(Debug)]
pub struct Breaker {
    open: watch::Sender<bool>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            open: watch::Sender::new(false),
        }
    }
}

impl Breaker {
    /// `Err(Unavailable)` while the database is known to be down.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.is_open() {
            return Err(StoreError::Unavailable(
                "the database is not answering (circuit open)".into(),
            ));
        }
        Ok(())
    }

    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Follows the breaker: `true` while open.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.open.subscribe()
    }

    fn set_open(&self, open: bool) {
        if self.open.send_replace(open) != open {
            if open {
                tracing::warn!("database unreachable: store calls fail fast until it answers");
            } else {
                tracing::info!("database reachable again");
            }
        }
    }
}

/// The probe task; aborted when dropped (with the store), so it never outlives its pool.
pub struct Prober(tokio::task::JoinHandle<()>);

impl Drop for Prober {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Prober {
    pub fn spawn(options: PgConnectOptions, breaker: Arc<Breaker>) -> Self {
        Self(tokio::spawn(probe_forever(options, breaker)))
    }
}

async fn probe_forever(options: PgConnectOptions, breaker: Arc<Breaker>) {
    let options = options.disable_statement_logging();
    let mut connection: Option<PgConnection> = None;
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let healthy = tokio::time::timeout(PROBE_TIMEOUT, probe(&options, &mut connection))
            .await
            .unwrap_or(false);
        if !healthy {
            // A connection that failed or hung is not trusted again.
            connection = None;
        }
        breaker.set_open(!healthy);
    }
}

/// One probe on the prober's own connection, opened if needed.
async fn probe(options: &PgConnectOptions, connection: &mut Option<PgConnection>) -> bool {
    if connection.is_none() {
        match PgConnection::connect_with(options).await {
            Ok(c) => *connection = Some(c),
            Err(_) => return false,
        }
    }
    match connection.as_mut() {
        Some(c) => c.ping().await.is_ok(),
        None => false,
    }
}

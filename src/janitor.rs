//! Deletes rows that can matter no more, in small batches, on every replica (the deletes are
//! idempotent, so replicas running at once only race to delete the same rows).
//!
//! Each kind is kept as long as something may still ask about it: a used code for an hour
//! after it expired (a late replay still revokes its grant), a refresh token until its whole
//! family expires (reuse detection needs the spent ones), a grant until the last access token
//! it produced has expired (introspection checks it).

use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::UnixTime;
use crate::store::{Purge, SharedStore, StoreError};

/// How long a used or expired code is remembered for replay detection.
const CODE_MEMORY: Duration = Duration::from_secs(3600);

/// What one run deleted, per kind.
pub type Report = Vec<(Purge, u64)>;

pub async fn run_once(
    store: &SharedStore,
    settings: &Settings,
    now: UnixTime,
) -> Result<Report, StoreError> {
    let batch = settings.janitor.batch_size;
    let mut report = Vec::new();
    for purge in Purge::ALL {
        let cutoff = cutoff(purge, settings, now);
        let mut deleted = 0;
        loop {
            let n = store.purge(purge, cutoff, batch).await?;
            deleted += n;
            if n < u64::from(batch) {
                break;
            }
            // Let requests in between batches.
            tokio::task::yield_now().await;
        }
        report.push((purge, deleted));
    }
    Ok(report)
}

fn cutoff(purge: Purge, settings: &Settings, now: UnixTime) -> UnixTime {
    let before = |d: Duration| {
        UnixTime(
            now.0
                .saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    };
    match purge {
        Purge::AuthorizationCodes => before(CODE_MEMORY),
        Purge::Grants => before(settings.tokens.access_token_ttl),
        Purge::LoginFailures => before(settings.login.failure_window),
        Purge::PendingRequests
        | Purge::Sessions
        | Purge::SessionClients
        | Purge::RefreshTokens
        | Purge::RevokedAccessTokens
        | Purge::ClientAssertions
        | Purge::RegistrationTokens => now,
    }
}

/// Every `janitor.interval`, for as long as the server runs.
pub async fn run_periodically(store: SharedStore, settings: Settings, clock: Clock) {
    let period = settings.janitor.interval;
    if period.is_zero() {
        return;
    }
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match run_once(&store, &settings, clock.now()).await {
            Ok(report) => {
                let total: u64 = report.iter().map(|(_, n)| n).sum();
                if total > 0 {
                    tracing::info!(deleted = total, "janitor removed expired rows");
                }
            }
            Err(e) => tracing::warn!(error = %e, "janitor run failed; trying again next time"),
        }
    }
}

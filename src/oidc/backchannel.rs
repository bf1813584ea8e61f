//! Back-Channel Logout 1.0 delivery: post each queued logout token to its client.
//!
//! Tokens are queued in the store by the transaction that ends a session (logout, a new
//! sign-in in the same browser, `user disable|delete|set-password`), so a restart loses none.
//! Every replica runs [`run`]; a delivery is claimed with one conditional write before it is
//! sent, so exactly one replica sends each attempt. A client that does not answer 2xx is
//! tried again with a doubling delay, up to [`MAX_ATTEMPTS`] times, then given up with a
//! warning.

use std::time::Duration;

use crate::core::Core;
use crate::domain::UnixTime;
use crate::store::{LogoutDelivery, StoreError};
use crate::tokens::logout_token::{self, Logout};

/// Attempts before a delivery is given up: 5 s, 10 s, 20 s, 40 s and 80 s apart.
pub const MAX_ATTEMPTS: i64 = 6;
const FIRST_RETRY_SECS: i64 = 5;
/// How long a claimed delivery is left to its replica before another may try it (a replica
/// that dies mid-post).
const LEASE: Duration = Duration::from_secs(60);
/// Per post: a slow client holds one delivery up, not the queue.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Deliveries taken per pass: at most BATCH × TIMEOUT (50 s) of posting, within a lease.
const BATCH: i64 = 10;

/// The HTTP client logout tokens go out with: no redirects (the registered URI is the only
/// one to reach), a short timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .unwrap_or_default()
}

/// Deliver what is due now; returns how many this replica delivered.
pub async fn deliver_due(core: &Core, http: &reqwest::Client) -> Result<usize, StoreError> {
    let mut delivered = 0;
    let due = core
        .store
        .due_logout_deliveries(core.clock.now(), BATCH)
        .await?;
    for delivery in due {
        // Read at each claim: a pass of slow clients takes up to BATCH × TIMEOUT, which must
        // not run past the leases and retry times it sets.
        let now = core.clock.now();
        if !core
            .store
            .claim_logout_delivery(&delivery.id, now, now.plus(LEASE))
            .await?
        {
            continue;
        }
        let attempt = delivery.attempts + 1;
        match post(core, http, &delivery, now).await {
            Ok(()) => {
                core.store.delete_logout_delivery(&delivery.id).await?;
                delivered += 1;
            }
            Err(reason) if attempt >= MAX_ATTEMPTS => {
                tracing::warn!(client_id = %delivery.client_id, %reason, attempts = attempt,
                    "back-channel logout given up");
                core.store.delete_logout_delivery(&delivery.id).await?;
            }
            Err(reason) => {
                tracing::info!(client_id = %delivery.client_id, %reason, attempts = attempt,
                    "back-channel logout failed; will retry");
                let delay = FIRST_RETRY_SECS << (attempt - 1).clamp(0, 16);
                core.store
                    .retry_logout_delivery(&delivery.id, UnixTime(now.0 + delay))
                    .await?;
            }
        }
    }
    Ok(delivered)
}

/// §2.5: the token as `logout_token` in a form POST; any 2xx is success.
async fn post(
    core: &Core,
    http: &reqwest::Client,
    delivery: &LogoutDelivery,
    now: UnixTime,
) -> Result<(), String> {
    let keys = core.keys.current();
    let logout = Logout {
        issuer: core.settings.issuer_str(),
        client_id: &delivery.client_id,
        sub: &delivery.user_id,
        sid: &delivery.sid,
    };
    let token = logout_token::issue(keys.current(), &logout, now).map_err(|e| e.to_string())?;
    let response = http
        .post(&delivery.uri)
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the client answered {}", response.status()))
    }
}

/// Every `interval`, for as long as the server runs.
pub async fn run(core: Core, interval: Duration) {
    let http = http_client();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = deliver_due(&core, &http).await {
            tracing::warn!(error = %e, "back-channel logout delivery pass failed");
        }
    }
}

//! Failed-login throttling (SPEC §7), shared by the login page and the password grant.
//!
//! Attempts are counted per username and per end-user address in the store, so every replica
//! sees them. After the free failures, each further failure locks that key for a time that
//! doubles (1 s, 2 s, 4 s, …) up to a maximum. The maximum for a username is short: the lock
//! slows a guesser down without keeping the real user out for long. While a key is locked,
//! attempts are refused without checking the password and without counting.
//!
//! The check and the count are one write: [`LoginLimiter::reserve`] counts the attempt as a
//! failure *before* Argon2 runs (one conditional write per key, in one transaction), so a
//! burst of parallel guesses sees its own in-flight attempts and gets no more password checks
//! than the same guesses made one after another. A right password gives the reservation back
//! ([`LoginLimiter::record_success`]); a wrong one leaves it counted; a request that dies in
//! between leaves a failure that the window forgets, and a lock that ends on the clock.
//!
//! The password grant has no end-user address of its own: the request comes from the app
//! server, whose address every user of that app shares. It counts the username, and an
//! address only where a trusted proxy supplies the end user's (see `http::client_ip`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::LoginSettings;
use crate::domain::{UnixTime, address_unit};
use crate::metrics::Metrics;
use crate::store::{LimiterKey, SharedStore, StoreError};

#[derive(Clone)]
pub struct LoginLimiter {
    store: SharedStore,
    settings: LoginSettings,
    metrics: Arc<Metrics>,
}

/// Whose attempts are counted.
pub struct Attempt<'a> {
    pub username: &'a str,
    /// The end user's address; `None` when it is not known (the password grant from an app
    /// server that does not forward it): then only the username is counted.
    pub address: Option<IpAddr>,
}

impl Attempt<'_> {
    fn user_key(&self) -> String {
        format!("user:{}", self.username.to_lowercase())
    }

    fn address_key(&self) -> Option<String> {
        self.address.map(address_key)
    }
}

/// The limiter key of an address's unit (see [`address_unit`]); the text is stored, so it
/// keeps its form.
fn address_key(address: IpAddr) -> String {
    match address_unit(address) {
        IpAddr::V4(ip) => format!("addr:{ip}"),
        IpAddr::V6(ip) => {
            let s = ip.segments();
            format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: u64,
}

impl LoginLimiter {
    pub fn new(store: SharedStore, settings: LoginSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            settings,
            metrics,
        }
    }

    /// Reserve this attempt before the password is checked: `Err(Locked)` (and nothing
    /// counted) while the username or the address is locked; otherwise the attempt is
    /// counted as a failure until [`Self::record_success`] gives it back.
    pub async fn reserve(
        &self,
        attempt: &Attempt<'_>,
        now: UnixTime,
    ) -> Result<Result<(), Locked>, StoreError> {
        let mut keys = vec![LimiterKey {
            key: attempt.user_key(),
            free_failures: self.settings.user_free_failures,
            max_lockout_secs: secs(self.settings.user_max_lockout),
        }];
        keys.extend(attempt.address.map(|ip| self.address_limit(ip)));
        self.reserve_keys(&keys, now).await
    }

    /// A guess at a short code that is not a password (a device user code, RFC 8628 §5.1):
    /// reserved against the address alone, as a failure until [`Self::release_guess`].
    pub async fn reserve_guess(
        &self,
        address: IpAddr,
        now: UnixTime,
    ) -> Result<Result<(), Locked>, StoreError> {
        self.reserve_keys(&[self.address_limit(address)], now).await
    }

    /// The guessed code was right: its reservation is given back.
    pub async fn release_guess(&self, address: IpAddr) -> Result<(), StoreError> {
        self.store.release_login(&address_key(address)).await
    }

    /// A client registration (RFC 7591) from `address`: `per_window` are allowed per failure
    /// window (the last of them starts a lock), then the address is slowed down like a
    /// password guesser's. Counted and never given back.
    pub async fn reserve_registration(
        &self,
        address: IpAddr,
        per_window: u32,
        now: UnixTime,
    ) -> Result<Result<(), Locked>, StoreError> {
        let key = LimiterKey {
            key: format!("register:{}", address_key(address)),
            free_failures: per_window.saturating_sub(1),
            max_lockout_secs: secs(self.settings.address_max_lockout),
        };
        self.reserve_keys(&[key], now).await
    }

    fn address_limit(&self, address: IpAddr) -> LimiterKey {
        LimiterKey {
            key: address_key(address),
            free_failures: self.settings.address_free_failures,
            max_lockout_secs: secs(self.settings.address_max_lockout),
        }
    }

    /// One conditional write over `keys` (the store's `reserve_login`).
    async fn reserve_keys(
        &self,
        keys: &[LimiterKey],
        now: UnixTime,
    ) -> Result<Result<(), Locked>, StoreError> {
        let window_start = UnixTime(now.0.saturating_sub(secs(self.settings.failure_window)));
        Ok(
            match self.store.reserve_login(keys, now, window_start).await? {
                Ok(()) => Ok(()),
                Err(until) => {
                    self.metrics.limiter_refusals.inc();
                    // Locked through the second `until` (see the store's RESERVE_LOGIN).
                    Err(Locked {
                        retry_after: u64::try_from(until.0 - now.0 + 1).unwrap_or(1).max(1),
                    })
                }
            },
        )
    }

    /// The password was wrong: the reservation stays counted.
    pub fn record_failure(&self) {
        self.metrics.login_failures.inc();
    }

    /// Give the reservation back without counting anything (a right password for a disabled
    /// user: refused, but not a guess).
    pub async fn release(&self, attempt: &Attempt<'_>) -> Result<(), StoreError> {
        self.store.release_login(&attempt.user_key()).await?;
        if let Some(key) = attempt.address_key() {
            self.store.release_login(&key).await?;
        }
        Ok(())
    }

    /// A correct password clears the username's count; the address only gets its
    /// reservation back (its earlier failures stay, or an attacker could reset them by
    /// signing in to an account of their own between guesses).
    pub async fn record_success(&self, attempt: &Attempt<'_>) -> Result<(), StoreError> {
        self.store.clear_login_failures(&attempt.user_key()).await?;
        if let Some(key) = attempt.address_key() {
            self.store.release_login(&key).await?;
        }
        Ok(())
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// The lock after the `failures`-th failure: none within the free ones, then 1 s doubling up
/// to `max`. The store's `RESERVE_LOGIN` computes this ladder in SQL; this is its reference.
#[cfg(test)]
fn lockout(failures: i64, free: u32, max: Duration) -> Option<Duration> {
    let beyond = failures - i64::from(free);
    if beyond <= 0 || max.is_zero() {
        return None;
    }
    let doubling = u32::try_from(beyond - 1).unwrap_or(u32::MAX).min(30);
    Some(Duration::from_secs(1u64 << doubling).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_doubles_after_the_free_failures_up_to_the_maximum() {
        let max = Duration::from_secs(60);
        let locks: Vec<_> = (1..=12)
            .map(|n| lockout(n, 5, max).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            locks,
            [
                None,
                None,
                None,
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60)
            ]
        );
        assert_eq!(lockout(10_000, 5, max), Some(max));
        assert_eq!(lockout(1, 0, max), Some(Duration::from_secs(1)));
    }

    #[test]
    fn addresses_are_counted_per_ipv4_host_and_ipv6_slash_64() {
        let key = |ip: &str| {
            Attempt {
                username: "Alice",
                address: Some(ip.parse().unwrap()),
            }
            .address_key()
            .unwrap()
        };
        assert_eq!(key("203.0.113.9"), "addr:203.0.113.9");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:203.0.113.9"), "addr:203.0.113.9");
        let user = Attempt {
            username: "Alice",
            address: None,
        }
        .user_key();
        assert_eq!(user, "user:alice");
    }
}

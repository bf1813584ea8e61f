//! Flood limits (issue 14): a token bucket per client address on the endpoints anyone can
//! reach (`/token`, `/authorize`, the login, consent and device pages, the device, pushed
//! request and registration endpoints), and one per authenticated client at `/token`, the
//! device authorization and pushed request endpoints. A request over its limit gets `429` with
//! `Retry-After`: the OAuth error JSON, or the page on HTML routes (the per-address check is
//! `http::middleware::limit_per_address`).
//!
//! The per-client bucket is charged only after the client has authenticated, so nobody can
//! spend another client's allowance by sending its id. Addresses are the ones
//! `http::client_ip` trusts (an IPv6 client counts per /64); loopback is exempt unless
//! configured otherwise, since without a trusted proxy every request through a local proxy
//! looks like loopback.
//!
//! Memory: a bucket is forgotten once it is full again (a few seconds after its last
//! request); every [`TRIM_EVERY`] checks idle buckets are dropped, and if more than
//! [`MAX_KEYS`] are active at once every request is refused until they drain.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitSettings;
use crate::domain::address_unit;
use crate::oauth::OAuthError;
use crate::oauth::device::DEVICE_PATH;
use crate::oauth::metadata::{
    AUTHORIZE_PATH, DEVICE_AUTHORIZATION_PATH, PAR_PATH, REGISTRATION_PATH, TOKEN_PATH,
};

/// At most this many buckets per limiter; beyond it every request is refused until idle ones
/// are dropped (a flood from that many addresses at once).
pub const MAX_KEYS: usize = 100_000;
/// How many checks pass between two sweeps of idle buckets.
const TRIM_EVERY: u64 = 4096;

/// Whether `path` is limited per address.
pub fn is_limited(path: &str) -> bool {
    LIMITED.contains(&path) || path.starts_with(REGISTRATION_PATH)
}

/// The routes limited per address (and every path under the registration endpoint).
const LIMITED: [&str; 8] = [
    TOKEN_PATH,
    AUTHORIZE_PATH,
    "/login",
    "/consent",
    DEVICE_PATH,
    DEVICE_AUTHORIZATION_PATH,
    PAR_PATH,
    REGISTRATION_PATH,
];

struct Limiter<K: std::hash::Hash + Eq + Clone> {
    buckets: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
    saturated: AtomicBool,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    /// `per_second` sustained, bursts of twice that; `None` when 0 (off).
    fn new(per_second: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Some(Self {
            buckets: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
            saturated: AtomicBool::new(false),
        })
    }

    /// `Err(seconds to wait)` when `key` is over its limit.
    fn check(&self, key: &K) -> Result<(), u64> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(TRIM_EVERY)
        {
            self.buckets.retain_recent();
            self.buckets.shrink_to_fit();
            self.saturated
                .store(self.buckets.len() > MAX_KEYS, Ordering::Relaxed);
        }
        if self.saturated.load(Ordering::Relaxed) {
            return Err(1);
        }
        self.buckets.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

pub struct RateLimits {
    per_address: Option<Limiter<IpAddr>>,
    per_client: Option<Limiter<String>>,
    exempt_loopback: bool,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            per_address: Limiter::new(settings.per_address),
            per_client: Limiter::new(settings.per_client),
            exempt_loopback: settings.exempt_loopback,
        }
    }

    /// Charge `address`'s bucket: `Err(seconds to wait)` when it is over its limit.
    pub fn check_address(&self, address: IpAddr) -> Result<(), u64> {
        match &self.per_address {
            Some(_) if self.exempt_loopback && address.is_loopback() => Ok(()),
            Some(limiter) => limiter.check(&address_unit(address)),
            None => Ok(()),
        }
    }

    /// Charge an authenticated client's bucket.
    pub fn check_client(&self, client_id: &str) -> Result<(), OAuthError> {
        let Some(limiter) = &self.per_client else {
            return Ok(());
        };
        limiter.check(&client_id.to_owned()).map_err(|seconds| {
            OAuthError::rate_limited(seconds, "this client is sending too many requests")
        })
    }
}

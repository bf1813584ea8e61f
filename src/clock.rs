//! The server's clock. Every expiry, lockout and cache lifetime reads it, so that tests can
//! move time forward instead of sleeping. Production code never advances it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::domain::UnixTime;

/// The system clock plus an offset that only [`Clock::advance`] changes. Clones share the
/// offset, so advancing a test's clock advances the server's.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicU64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// Whole seconds, as in JWT `iat`/`exp` and every store column.
    pub fn now(&self) -> UnixTime {
        UnixTime(self.now_ms() / 1000)
    }

    /// Milliseconds since the epoch, for lifetimes shorter than a few seconds (caches).
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let real = i64::try_from(real).unwrap_or(i64::MAX);
        let offset = i64::try_from(self.offset_ms.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        real.saturating_add(offset)
    }

    /// Move this clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_a_clone_moves_every_clone() {
        let clock = Clock::system();
        let shared = clock.clone();
        let before = clock.now();
        shared.advance(Duration::from_secs(3600));
        let after = clock.now();
        assert!(after.0 - before.0 >= 3600 && after.0 - before.0 <= 3601);
    }
}

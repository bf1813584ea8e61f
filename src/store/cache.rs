//! Short-lived in-memory copies of clients and APIs, so the token endpoint does not ask the
//! store on every request. Entries live `clients.cache_ttl` by the server's [`Clock`]: a
//! deleted client or a rotated secret stops working within that time on every replica.
//!
//! The keys come from requests (`client_id`, `audience`, `resource`), so memory is bounded
//! by weight, not by entry count: each entry weighs its key's length plus a fixed overhead,
//! and an unknown key longer than [`MAX_UNKNOWN_KEY`] bytes is not cached at all.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::clock::Clock;
use crate::store::{Api, Client, SharedStore, StoreError};

#[derive(Clone)]
pub struct Directory {
    store: SharedStore,
    origins: Option<Expiring<(), Arc<Vec<String>>>>,
    clients: Option<Expiring<String, Option<Arc<Client>>>>,
    apis: Option<Expiring<String, Option<Arc<Api>>>>,
}

/// The weight budget of each cache, in bytes of key plus [`ENTRY_OVERHEAD`] per entry:
/// bounds memory if someone sprays random client ids or audiences at the token endpoint.
pub const MAX_WEIGHT: u64 = 4 * 1024 * 1024;
/// What an entry costs beside its key: the value (a shared pointer, or the record of a
/// registered client or API, which only operators create), the timestamp and moka's own.
const ENTRY_OVERHEAD: u32 = 256;
/// An unknown key longer than this is answered from the store every time, never cached.
pub const MAX_UNKNOWN_KEY: usize = 256;

impl Directory {
    /// A zero `ttl` turns caching off.
    pub fn new(store: SharedStore, ttl: Duration, clock: Clock) -> Self {
        Self::with_max_weight(store, ttl, clock, MAX_WEIGHT)
    }

    fn with_max_weight(store: SharedStore, ttl: Duration, clock: Clock, max_weight: u64) -> Self {
        Self {
            store,
            origins: Expiring::new(ttl, max_weight, clock.clone()),
            clients: Expiring::new(ttl, max_weight, clock.clone()),
            apis: Expiring::new(ttl, max_weight, clock),
        }
    }

    /// Unknown ids are cached too (as `None`), for the same short time, unless they are
    /// longer than [`MAX_UNKNOWN_KEY`].
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let load = async { Ok(self.store.client(client_id).await?.map(Arc::new)) };
        match &self.clients {
            Some(cache) => cache.get_or_load_keyed(client_id, load).await,
            None => load.await,
        }
    }

    /// Every origin some client allows, for CORS preflights.
    pub async fn client_origins(&self) -> Result<Arc<Vec<String>>, StoreError> {
        let load = async { Ok(Arc::new(self.store.client_origins().await?)) };
        match &self.origins {
            Some(cache) => cache.get_or_load((), load).await,
            None => load.await,
        }
    }

    pub async fn api(&self, identifier: &str) -> Result<Option<Arc<Api>>, StoreError> {
        let load = async { Ok(self.store.api(identifier).await?.map(Arc::new)) };
        match &self.apis {
            Some(cache) => cache.get_or_load_keyed(identifier, load).await,
            None => load.await,
        }
    }
}

/// How long past its lifetime a cached client or API is still used while the store is
/// unavailable (never while the store answers).
pub const SERVE_STALE_WHILE_DOWN: Duration = Duration::from_secs(15 * 60);

fn stale_limit_ms() -> i64 {
    i64::try_from(SERVE_STALE_WHILE_DOWN.as_millis()).unwrap_or(i64::MAX)
}

/// A bounded moka cache whose entries expire by the server's clock rather than moka's own,
/// so that tests can expire them by advancing time.
#[derive(Clone)]
struct Expiring<K, V> {
    entries: Cache<K, (i64, V)>,
    ttl_ms: i64,
    clock: Clock,
}

/// How much of the weight budget a key takes.
pub trait KeyWeight {
    fn weight(&self) -> u32;
}

impl KeyWeight for () {
    fn weight(&self) -> u32 {
        0
    }
}

impl KeyWeight for String {
    fn weight(&self) -> u32 {
        u32::try_from(self.len()).unwrap_or(u32::MAX)
    }
}

impl<K, V> Expiring<K, V>
where
    K: Hash + Eq + Send + Sync + KeyWeight + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(ttl: Duration, max_weight: u64, clock: Clock) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            // moka's own expiry stays as a backstop that frees memory of idle entries.
            entries: Cache::builder()
                .max_capacity(max_weight)
                .weigher(|key: &K, _| key.weight().saturating_add(ENTRY_OVERHEAD))
                .time_to_live(ttl.max(SERVE_STALE_WHILE_DOWN))
                .build(),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            clock,
        })
    }

    /// The cached value of `key` if it is younger than the lifetime by the server's clock.
    async fn fresh<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (loaded_at, value) = self.entries.get(key).await?;
        (self.clock.now_ms().saturating_sub(loaded_at) < self.ttl_ms).then_some(value)
    }

    /// Concurrent misses for one key share a single load. While the store is unavailable, a
    /// stale entry younger than [`SERVE_STALE_WHILE_DOWN`] is served (and kept) instead of
    /// the error: a known client keeps working through an outage (issue 14).
    async fn get_or_load(
        &self,
        key: K,
        load: impl Future<Output = Result<V, StoreError>>,
    ) -> Result<V, StoreError>
    where
        K: Clone,
    {
        let cached = self.entries.get(&key).await;
        let now = self.clock.now_ms();
        if let Some((loaded_at, value)) = &cached
            && now.saturating_sub(*loaded_at) < self.ttl_ms
        {
            return Ok(value.clone());
        }
        // A stale entry must go, or `try_get_with` would hand it back instead of loading.
        self.entries.invalidate(&key).await;
        let stamped = async { Ok((self.clock.now_ms(), load.await?)) };
        match self.entries.try_get_with(key.clone(), stamped).await {
            Ok((_, value)) => Ok(value),
            Err(error) => match (unshare(error), cached) {
                (StoreError::Unavailable(_), Some((loaded_at, value)))
                    if now.saturating_sub(loaded_at) < stale_limit_ms() =>
                {
                    self.entries.insert(key, (loaded_at, value.clone())).await;
                    Ok(value)
                }
                (error, _) => Err(error),
            },
        }
    }
}

impl<T> Expiring<String, Option<T>>
where
    T: Send + Sync + 'static,
    Option<T>: Clone,
{
    /// [`Expiring::get_or_load`] for a key from a request: a key longer than
    /// [`MAX_UNKNOWN_KEY`] is cached only if the store knows it.
    async fn get_or_load_keyed(
        &self,
        key: &str,
        load: impl Future<Output = Result<Option<T>, StoreError>>,
    ) -> Result<Option<T>, StoreError> {
        if key.len() <= MAX_UNKNOWN_KEY {
            return self.get_or_load(key.to_owned(), load).await;
        }
        if let Some(value) = self.fresh(key).await {
            return Ok(value);
        }
        let loaded_at = self.clock.now_ms();
        let value = load.await?;
        if value.is_some() {
            self.entries
                .insert(key.to_owned(), (loaded_at, value.clone()))
                .await;
        } else {
            self.entries.invalidate(key).await;
        }
        Ok(value)
    }

    #[cfg(test)]
    async fn len(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }

    #[cfg(test)]
    async fn weight(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
    }
}

/// moka shares one error among every caller that waited on the same load.
fn unshare(error: Arc<StoreError>) -> StoreError {
    match error.as_ref() {
        StoreError::Conflict => StoreError::Conflict,
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseSettings;
    use crate::domain::{ScopeSet, UnixTime};
    use crate::store::SqliteStore;

    async fn directory(max_weight: u64) -> Directory {
        let settings = DatabaseSettings {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        };
        let store = SqliteStore::connect("sqlite::memory:", &settings)
            .await
            .unwrap();
        crate::store::Store::migrate(&store).await.unwrap();
        let store: SharedStore = Arc::new(store);
        store
            .insert_api(&Api {
                identifier: format!("https://{}", "long.".repeat(100)),
                name: "Long".into(),
                scopes: ScopeSet::default(),
                created_at: UnixTime(0),
            })
            .await
            .unwrap();
        Directory::with_max_weight(store, Duration::from_secs(60), Clock::system(), max_weight)
    }

    /// Finding 20: `audience` is chosen by whoever sends the request.
    #[tokio::test]
    async fn long_unknown_audiences_are_not_cached() {
        let directory = directory(MAX_WEIGHT).await;
        let apis = directory.apis.as_ref().unwrap();
        for i in 0..50 {
            let audience = format!("https://{}/{i}", "x".repeat(10_000));
            assert!(directory.api(&audience).await.unwrap().is_none());
        }
        assert_eq!(apis.len().await, 0, "no unknown long key is kept");
        // A registered API with a long identifier is cached as usual.
        let known = format!("https://{}", "long.".repeat(100));
        assert!(directory.api(&known).await.unwrap().is_some());
        assert!(directory.api(&known).await.unwrap().is_some());
        assert_eq!(apis.len().await, 1);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_weight() {
        let max_weight = 64 * 1024;
        let directory = directory(max_weight).await;
        let apis = directory.apis.as_ref().unwrap();
        for i in 0..1_000 {
            let audience = format!("https://{}/{i:04}", "y".repeat(240));
            assert!(directory.api(&audience).await.unwrap().is_none());
        }
        let weight = apis.weight().await;
        assert!(weight <= max_weight, "{weight} > {max_weight}");
        // Each key weighs its length: far fewer than 1,000 such entries fit.
        assert!(apis.len().await < 200, "{}", apis.len().await);
    }
}

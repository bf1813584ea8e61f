//! Short-lived in-memory copies of clients and APIs, so the token endpoint does not ask the
//! store on every request. Entries live `clients.cache_ttl` by the server's [`Clock`]: a
//! deleted client or a rotated secret stops working within that time on every replica.

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

/// Bounds memory if someone sprays random client ids at the token endpoint.
const MAX_ENTRIES: u64 = 10_000;

impl Directory {
    /// A zero `ttl` turns caching off.
    pub fn new(store: SharedStore, ttl: Duration, clock: Clock) -> Self {
        Self {
            store,
            origins: Expiring::new(ttl, 1, clock.clone()),
            clients: Expiring::new(ttl, MAX_ENTRIES, clock.clone()),
            apis: Expiring::new(ttl, MAX_ENTRIES, clock),
        }
    }

    /// Unknown ids are cached too (as `None`), for the same short time.
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let load = async { Ok(self.store.client(client_id).await?.map(Arc::new)) };
        match &self.clients {
            Some(cache) => cache.get_or_load(client_id.to_owned(), load).await,
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
            Some(cache) => cache.get_or_load(identifier.to_owned(), load).await,
            None => load.await,
        }
    }
}

/// A bounded moka cache whose entries expire by the server's clock rather than moka's own,
/// so that tests can expire them by advancing time.
#[derive(Clone)]
struct Expiring<K, V> {
    entries: Cache<K, (i64, V)>,
    ttl_ms: i64,
    clock: Clock,
}

impl<K, V> Expiring<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(ttl: Duration, capacity: u64, clock: Clock) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            // moka's own expiry stays as a backstop that frees memory of idle entries.
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            clock,
        })
    }

    /// Concurrent misses for one key share a single load.
    async fn get_or_load(
        &self,
        key: K,
        load: impl Future<Output = Result<V, StoreError>>,
    ) -> Result<V, StoreError> {
        let now = self.clock.now_ms();
        if let Some((loaded_at, value)) = self.entries.get(&key).await {
            if now.saturating_sub(loaded_at) < self.ttl_ms {
                return Ok(value);
            }
            self.entries.invalidate(&key).await;
        }
        let stamped = async { Ok((self.clock.now_ms(), load.await?)) };
        self.entries
            .try_get_with(key, stamped)
            .await
            .map(|(_, value)| value)
            .map_err(unshare)
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

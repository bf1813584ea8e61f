//! Short-lived in-memory copies of clients and APIs, so the token endpoint does not ask the
//! store on every request. Entries live `clients.cache_ttl`: a deleted client or a rotated
//! secret stops working within that time on every replica.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::store::{Api, Client, SharedStore, StoreError};

#[derive(Clone)]
pub struct Directory {
    store: SharedStore,
    origins: Option<Cache<(), Arc<Vec<String>>>>,
    clients: Option<Cache<String, Option<Arc<Client>>>>,
    apis: Option<Cache<String, Option<Arc<Api>>>>,
}

/// Bounds memory if someone sprays random client ids at the token endpoint.
const MAX_ENTRIES: u64 = 10_000;

impl Directory {
    /// A zero `ttl` turns caching off.
    pub fn new(store: SharedStore, ttl: Duration) -> Self {
        Self {
            store,
            origins: (!ttl.is_zero())
                .then(|| Cache::builder().max_capacity(1).time_to_live(ttl).build()),
            clients: short_lived(ttl),
            apis: short_lived(ttl),
        }
    }

    /// Unknown ids are cached too (as `None`), for the same short time.
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let load = async { Ok(self.store.client(client_id).await?.map(Arc::new)) };
        match &self.clients {
            Some(cache) => cache
                .try_get_with(client_id.to_owned(), load)
                .await
                .map_err(unshare),
            None => load.await,
        }
    }

    /// Every origin some client allows, for CORS preflights.
    pub async fn client_origins(&self) -> Result<Arc<Vec<String>>, StoreError> {
        let load = async { Ok(Arc::new(self.store.client_origins().await?)) };
        match &self.origins {
            Some(cache) => cache.try_get_with((), load).await.map_err(unshare),
            None => load.await,
        }
    }

    pub async fn api(&self, identifier: &str) -> Result<Option<Arc<Api>>, StoreError> {
        let load = async { Ok(self.store.api(identifier).await?.map(Arc::new)) };
        match &self.apis {
            Some(cache) => cache
                .try_get_with(identifier.to_owned(), load)
                .await
                .map_err(unshare),
            None => load.await,
        }
    }
}

fn short_lived<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Option<Cache<String, V>> {
    (!ttl.is_zero()).then(|| {
        Cache::builder()
            .max_capacity(MAX_ENTRIES)
            .time_to_live(ttl)
            .build()
    })
}

/// moka shares one error among every caller that waited on the same load.
fn unshare(error: Arc<StoreError>) -> StoreError {
    match error.as_ref() {
        StoreError::Conflict => StoreError::Conflict,
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
    }
}

//! What every request handler shares: settings, store, key ring and client cache.

use std::sync::Arc;

use crate::cache::Directory;
use crate::config::Settings;
use crate::crypto::ServerKeys;
use crate::http::pages::Pages;
use crate::login::csrf::CsrfTokens;
use crate::login::limiter::LoginLimiter;
use crate::login::password::PasswordVerifier;
use crate::oauth::metadata::Metadata;
use crate::store::SharedStore;
use crate::tokens::KeyRing;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub store: SharedStore,
    pub keys: KeyRing,
    pub server_keys: ServerKeys,
    pub directory: Directory,
    pub metadata: Metadata,
    pub pages: Pages,
    pub csrf: CsrfTokens,
    pub limiter: LoginLimiter,
    pub passwords: PasswordVerifier,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Set when shutdown begins: `/readyz` answers 503 from then on.
    pub draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

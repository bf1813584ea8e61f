//! The web layer's state: the protocol [`Core`] plus what only pages and routes need (HTML
//! templates, CSRF tokens, the metadata documents, the draining flag). It dereferences to
//! the `Core`, so a handler passes `&state` wherever protocol code takes `&Core`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::core::Core;
use crate::http::pages::Pages;
use crate::http::rate_limit::RateLimits;
use crate::login::csrf::CsrfTokens;
use crate::oidc::discovery::Metadata;

#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub web: Arc<Web>,
}

pub struct Web {
    pub pages: Pages,
    pub csrf: CsrfTokens,
    pub metadata: Metadata,
    /// Set when shutdown begins: `/readyz` answers 503 from then on.
    pub draining: AtomicBool,
    /// Flood limits per address and per client.
    pub rate_limits: RateLimits,
}

impl std::ops::Deref for AppState {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

//! [`Core`]: what protocol code may use. Settings, store, key ring, the client and API
//! directory, the login limiter, the password verifier, metrics and the clock; nothing of
//! HTTP or HTML (the web layer's own state wraps a `Core`, see `http::state`).

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::ServerKeys;
use crate::login::limiter::LoginLimiter;
use crate::login::password::PasswordVerifier;
use crate::login::sign_in::SignIn;
use crate::metrics::Metrics;
use crate::store::batch::RevocationChecks;
use crate::store::cache::Directory;
use crate::store::{Api, SharedStore};
use crate::tokens::KeyRing;
use crate::tokens::client_keys::ClientKeyCache;

/// Cheap to clone: one reference count.
#[derive(Clone)]
pub struct Core(Arc<Parts>);

pub struct Parts {
    pub settings: Settings,
    pub store: SharedStore,
    pub keys: KeyRing,
    pub server_keys: ServerKeys,
    pub directory: Directory,
    /// The access-token deny list, one store query for the checks in flight.
    pub revocations: RevocationChecks,
    /// The public keys of `private_key_jwt` clients, parsed or fetched once.
    pub client_keys: ClientKeyCache,
    pub limiter: LoginLimiter,
    pub passwords: PasswordVerifier,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// The audience of sign-in-only access tokens (SPEC §5): the UserInfo endpoint URL, an
    /// API with no scopes of its own that every client signing users in may use.
    pub userinfo_api: Arc<Api>,
}

impl Core {
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }

    /// What the login page and the password grant need to check a password.
    pub fn sign_in(&self) -> SignIn<'_> {
        SignIn {
            store: &self.store,
            limiter: &self.limiter,
            passwords: &self.passwords,
        }
    }
}

impl std::ops::Deref for Core {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

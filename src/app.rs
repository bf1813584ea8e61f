//! Building and running the server: store (migrated), secret, key ring, cache, listener;
//! then serve until a shutdown signal, reloading keys in the background.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::Clock;
use crate::config::Settings;
use crate::core::{Core, Parts};
use crate::crypto::SecretError;
use crate::domain::{ScopeSet, UnixTime};
use crate::http::pages::{PageLoadError, Pages};
use crate::http::rate_limit::RateLimits;
use crate::http::router::router;
use crate::http::server::{ConnectionLimits, serve};
use crate::http::state::{AppState, Web};
use crate::janitor;
use crate::login::csrf::CsrfTokens;
use crate::login::limiter::LoginLimiter;
use crate::login::password::PasswordVerifier;
use crate::metrics::Metrics;
use crate::oauth::metadata::USERINFO_PATH;
use crate::oidc::backchannel;
use crate::oidc::discovery::Metadata;
use crate::secret::{self, SecretSource};
use crate::store::batch::RevocationChecks;
use crate::store::cache::Directory;
use crate::store::{self, Api, StoreError};
use crate::tokens::client_keys::ClientKeyCache;
use crate::tokens::keys::JWKS_MAX_AGE;
use crate::tokens::{KeyError, KeyRing};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pages(#[from] PageLoadError),
    #[error("password hashing: {0}")]
    Passwords(String),
}

/// A server that is ready to accept connections.
pub struct App {
    state: AppState,
    listener: TcpListener,
}

impl App {
    /// Bind `listen`, then [`App::build_on`].
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        Self::build_on(settings, listener).await
    }

    /// [`App::build_with`] on the system clock.
    pub async fn build_on(settings: Settings, listener: TcpListener) -> Result<Self, StartError> {
        Self::build_with(settings, listener, Clock::system()).await
    }

    /// Connect and migrate the store, load the secret and keys; serve on `listener`, reading
    /// time from `clock`.
    pub async fn build_with(
        settings: Settings,
        listener: TcpListener,
        clock: Clock,
    ) -> Result<Self, StartError> {
        let core = build_core(settings, clock).await?;
        let web = Web {
            metadata: Metadata::new(&core.settings),
            pages: Pages::load(&core.settings.ui)?,
            csrf: CsrfTokens::new(core.server_keys.csrf.clone()),
            draining: AtomicBool::new(false),
            rate_limits: RateLimits::new(&core.settings.rate_limit),
        };
        let state = AppState {
            core,
            web: Arc::new(web),
        };
        Ok(Self { state, listener })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` completes; then drain: `/readyz` turns 503 for
    /// `http.shutdown_delay`, the listener closes, and in-flight requests get
    /// `http.drain_timeout` to finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let state = self.state.clone();
        let reloader = tokio::spawn(reload_keys(state.clone()));
        let janitor = tokio::spawn(janitor::run_periodically(
            state.store.clone(),
            state.settings.clone(),
            state.clock.clone(),
        ));
        let logouts = tokio::spawn(backchannel::run(
            state.core.clone(),
            BACKCHANNEL_POLL_INTERVAL,
        ));
        self.announce().await;
        let router = router(state.clone());
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let drain_state = state.clone();
        let stop_accepting = async move {
            shutdown.await;
            drain_state.web.draining.store(true, Ordering::SeqCst);
            let http = &drain_state.settings.http;
            tracing::info!(delay = ?http.shutdown_delay, "shutting down: /readyz now answers 503");
            tokio::time::sleep(http.shutdown_delay).await;
            tracing::info!("listener closed; finishing in-flight requests");
            let _ = closed_tx.send(());
        };
        let limits = ConnectionLimits {
            header_read_timeout: state.settings.http.header_read_timeout,
            max_connections: state.settings.http.max_connections,
        };
        let server = serve(self.listener, router, limits, stop_accepting);
        let drain_timeout = state.settings.http.drain_timeout;
        let deadline = async move {
            if closed_rx.await.is_ok() {
                tokio::time::sleep(drain_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = server => {}
            () = deadline => {
                tracing::warn!(timeout = ?drain_timeout, "drain timeout: abandoning requests still in flight");
            }
        }
        reloader.abort();
        janitor.abort();
        logouts.abort();
        // Seen in the benchmark: without this, a SIGTERM after a burst left the process
        // spinning at one core in sqlx's pool maintenance task, never exiting. Bounded, as
        // close waits for connections still held by abandoned requests.
        let _ = tokio::time::timeout(STORE_CLOSE_TIMEOUT, state.store.close()).await;
        Ok(())
    }

    async fn announce(&self) {
        let settings = &self.state.settings;
        let listen = self
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(issuer = %settings.issuer_str(), listen = %listen, "valet is listening");
        if let Ok(0) = self.state.store.count_clients().await {
            tracing::info!(
                "no clients yet; create an API and a client with:\n  \
                 valet api create --identifier https://contacts.example.com --name Contacts --scope \"read:contacts create:contacts delete:contacts\"\n  \
                 valet client create --name my-service --grant-type client_credentials --scope read:contacts --audience https://contacts.example.com"
            );
        }
    }
}

/// Everything protocol code needs, without the web layer: connect and migrate the store, load
/// the secret and the keys. Logic tests build one of these directly.
pub async fn build_core(settings: Settings, clock: Clock) -> Result<Core, StartError> {
    // The secret first: a PostgreSQL deployment without one must stop before it touches
    // the database.
    let (server_keys, source) = secret::load(&settings)?;
    let store = store::connect(&settings).await?;
    store.migrate().await?;
    log_secret_source(&source);
    warn_if_keys_activate_too_soon(&settings);
    let keys = KeyRing::open(
        store.clone(),
        server_keys.sealer.clone(),
        settings.tokens.signing_alg,
        retired_key_lifetime(&settings),
        clock.now(),
    )
    .await?;
    let directory = Directory::new(store.clone(), settings.clients.cache_ttl, clock.clone());
    let metrics = Arc::new(Metrics::default());
    let passwords = PasswordVerifier::new(&settings.password_hash)
        .await
        .map_err(|e| StartError::Passwords(e.to_string()))?;
    let userinfo_api = Arc::new(Api {
        identifier: settings.endpoint(USERINFO_PATH),
        name: "your profile".into(),
        scopes: ScopeSet::default(),
        created_at: UnixTime(0),
    });
    Ok(Core::new(Parts {
        limiter: LoginLimiter::new(store.clone(), settings.login, metrics.clone()),
        userinfo_api,
        metrics,
        passwords,
        settings,
        revocations: RevocationChecks::start(store.clone()),
        store,
        keys,
        server_keys,
        directory,
        client_keys: ClientKeyCache::new(),
        clock,
    }))
}

/// How long shutting down waits for the store's connections to come back.
const STORE_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often each replica looks for logout tokens to deliver: a session's clients hear of
/// its end within about this long.
const BACKCHANNEL_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// SPEC §3: a rotated key must be in every replica's JWKS, and then in every verifier's cached
/// copy, before it signs; a shorter delay is allowed (tests, a single replica) but said.
fn warn_if_keys_activate_too_soon(settings: &Settings) {
    let keys = &settings.keys;
    let needed = keys.reload_interval + JWKS_MAX_AGE;
    if keys.activation_delay < needed {
        tracing::warn!(
            activation_delay = ?keys.activation_delay,
            needed = ?needed,
            "keys.activation_delay is shorter than keys.reload_interval + the JWKS max-age: \
             verifiers may see tokens signed by a rotated key before they have the key"
        );
    }
}

/// A retired key stays in the JWKS while a token it signed may be alive (SPEC §5): replicas
/// may sign with it until their next reload, and such a token lives `access_token_ttl` or,
/// for an ID token, `id_token_ttl`, whichever is longer.
fn retired_key_lifetime(settings: &Settings) -> std::time::Duration {
    let tokens = &settings.tokens;
    tokens.access_token_ttl.max(tokens.id_token_ttl) + settings.keys.reload_interval
}

async fn reload_keys(state: AppState) {
    let mut interval = tokio::time::interval(state.settings.keys.reload_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Err(e) = state.keys.reload(state.clock.now()).await {
            tracing::warn!(error = %e, "could not reload signing keys; keeping the ones in memory");
        }
    }
}

fn log_secret_source(source: &SecretSource) {
    match source {
        SecretSource::Configured => {}
        SecretSource::File(path) => {
            tracing::info!(path = %path.display(), "using the secret from the file beside the database")
        }
        SecretSource::CreatedFile(path) => tracing::warn!(
            path = %path.display(),
            "no `secret` configured: created a random one in a file beside the database; keep it with the database, or set VALET_SECRET"
        ),
        SecretSource::Ephemeral => tracing::warn!(
            "no `secret` configured for an in-memory database: using a random one for this process only"
        ),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called,
/// not when the future is first polled, so a signal that arrives while the server is still
/// starting is not lost (the default action would kill the process with no clean exit).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {},
                        _ = interrupt.recv() => {},
                    }
                }
                _ => std::future::pending::<()>().await,
            }
            tracing::info!("shutdown signal received");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
    }
}

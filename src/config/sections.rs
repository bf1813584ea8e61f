//! The sections of the [`Config`](super::Config) schema, as the TOML file spells them, and
//! their defaults: the only place defaults live.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigDuration;
use crate::domain::SigningAlg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    pub access_token_ttl: ConfigDuration,
    pub id_token_ttl: ConfigDuration,
    pub code_ttl: ConfigDuration,
    pub refresh_idle_ttl: ConfigDuration,
    pub refresh_absolute_ttl: ConfigDuration,
    pub refresh_reuse_grace: ConfigDuration,
    /// Issue refresh tokens only when the request's scope includes `offline_access`.
    pub refresh_requires_offline_access: bool,
    pub signing_alg: SigningAlg,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: ConfigDuration::secs(3600),
            id_token_ttl: ConfigDuration::secs(3600),
            code_ttl: ConfigDuration::secs(60),
            refresh_idle_ttl: ConfigDuration::secs(14 * 86_400),
            refresh_absolute_ttl: ConfigDuration::secs(90 * 86_400),
            refresh_reuse_grace: ConfigDuration::secs(0),
            refresh_requires_offline_access: false,
            signing_alg: SigningAlg::RS256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    pub reload_interval: ConfigDuration,
    pub activation_delay: ConfigDuration,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            reload_interval: ConfigDuration::secs(30),
            activation_delay: ConfigDuration::secs(300),
        }
    }
}

/// Browser origins allowed to call the token and revocation endpoints for every client, on
/// top of each client's own (`valet client create --allowed-origin`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
}

/// The periodic clean-up of expired rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JanitorConfig {
    /// How often each replica runs it; "0s" turns it off (then run `valet janitor --once`).
    pub interval: ConfigDuration,
    /// Rows deleted per statement: small batches keep locks short.
    pub batch_size: u32,
}

impl Default for JanitorConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::secs(300),
            batch_size: 500,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientsConfig {
    pub cache_ttl: ConfigDuration,
}

impl Default for ClientsConfig {
    fn default() -> Self {
        Self {
            cache_ttl: ConfigDuration::secs(5),
        }
    }
}

/// Flood limits (`http::rate_limit`): token buckets refilled at these rates per second, bursts
/// of twice that; 0 turns one off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second from one address to `/token`, `/authorize`, the login, consent and
    /// device pages and the device, pushed request and registration endpoints.
    pub per_address: u32,
    /// Requests per second from one authenticated client to `/token`, the device
    /// authorization and pushed request endpoints.
    pub per_client: u32,
    /// Loopback addresses are not limited per address (without a trusted proxy, everything a
    /// local reverse proxy forwards comes from loopback).
    pub exempt_loopback: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_address: 50,
            per_client: 1000,
            exempt_loopback: true,
        }
    }
}

/// Who may register clients at the registration endpoint (RFC 7591 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// No registration endpoint (the default).
    Closed,
    /// Registration with an initial access token from `valet registration token create`.
    Token,
    /// Anyone may register, within the per-address and total limits.
    Open,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    pub mode: RegistrationMode,
    /// The APIs a registered client may ask tokens for (each an API identifier); none by
    /// default, so a registered client can only sign users in.
    pub audiences: Vec<String>,
    /// At most this many registered clients exist at once.
    pub max_clients: u32,
    /// Registrations one address may make per `login.failure_window` before it is slowed
    /// down like a password guesser.
    pub per_address: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Closed,
            audiences: Vec::new(),
            max_clients: 10_000,
            per_address: 10,
        }
    }
}

/// Argon2id parameters for user passwords; the defaults are OWASP's (m=19 MiB, t=2, p=1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordHashConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// How many hashes may run at once; 0 means one per CPU core. Bounds the memory and CPU
    /// a flood of logins can take from every other request.
    pub max_concurrent: usize,
}

impl Default for PasswordHashConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 0,
        }
    }
}

/// The authorization endpoint (RFC 6749 §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizeConfig {
    /// How long a person has to sign in and consent before the request must start again.
    pub pending_request_ttl: ConfigDuration,
    /// Accept `code_challenge_method=plain` (RFC 7636 §4.2); RFC 9700 §2.1.1 advises against.
    pub allow_plain_pkce: bool,
}

impl Default for AuthorizeConfig {
    fn default() -> Self {
        Self {
            pending_request_ttl: ConfigDuration::secs(600),
            allow_plain_pkce: false,
        }
    }
}

/// Login sessions and the failed-login limiter (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    pub session_ttl: ConfigDuration,
    /// Failures of one username (from any address) before each further one is delayed.
    pub user_free_failures: u32,
    /// Failures from one client address (for any username) before each further one is delayed.
    pub address_free_failures: u32,
    /// Failures older than this are forgotten.
    pub failure_window: ConfigDuration,
    /// The longest a username is refused after failures: short, so that an attacker cannot
    /// keep the real user out.
    pub user_max_lockout: ConfigDuration,
    pub address_max_lockout: ConfigDuration,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            session_ttl: ConfigDuration::secs(86_400),
            user_free_failures: 5,
            address_free_failures: 20,
            failure_window: ConfigDuration::secs(900),
            user_max_lockout: ConfigDuration::secs(60),
            address_max_lockout: ConfigDuration::secs(900),
        }
    }
}

/// The look of the login, consent and error pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    pub product_name: String,
    pub logo_url: Option<String>,
    /// A CSS hex colour such as `#4f46e5`.
    pub accent_color: String,
    /// A directory whose `*.html` files replace the built-in templates of the same name.
    pub templates_dir: Option<PathBuf>,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            product_name: "Valet".into(),
            logo_url: None,
            accent_color: "#4f46e5".into(),
            templates_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes; a larger one is `invalid_request`.
    pub body_limit: usize,
    pub request_timeout: ConfigDuration,
    /// On SIGTERM, how long `/readyz` answers 503 while new connections are still served, so
    /// that a load balancer stops sending traffic before the listener closes.
    pub shutdown_delay: ConfigDuration,
    /// Then how long in-flight requests may take to finish before the process exits anyway.
    pub drain_timeout: ConfigDuration,
    /// Networks (CIDR) of the proxies whose `client_ip_header` is believed; from anyone else
    /// it is ignored.
    pub trusted_proxies: Vec<String>,
    /// The one header the trusted proxies write the client address into: `x-forwarded-for`
    /// (or another comma-separated list of addresses) or `forwarded` (RFC 7239). Every other
    /// forwarding header is ignored, so a client cannot slip its own past the proxy.
    pub client_ip_header: String,
    /// A connection that has not sent a whole request head this long after it opened, or
    /// after its previous response (an idle keep-alive connection), is closed.
    pub header_read_timeout: ConfigDuration,
    /// Connections open at once; more are answered 503 and closed at once.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 16 * 1024,
            request_timeout: ConfigDuration::secs(30),
            shutdown_delay: ConfigDuration::secs(0),
            drain_timeout: ConfigDuration::secs(8),
            trusted_proxies: Vec::new(),
            client_ip_header: "x-forwarded-for".into(),
            header_read_timeout: ConfigDuration::secs(10),
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Unset: 16 on PostgreSQL, 4 on SQLite (see `DatabaseConfig::default_max_connections`).
    pub max_connections: Option<u32>,
    pub acquire_timeout: ConfigDuration,
}

impl DatabaseConfig {
    /// PostgreSQL serves many connections at once; SQLite has one writer at a time, and each
    /// connection is a worker thread with its own page cache, so a few readers suffice and
    /// more only hold memory after a burst (issue 11's flood benchmark: +40 % with 16).
    pub fn default_max_connections(postgres: bool) -> u32 {
        if postgres { 16 } else { 4 }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: ConfigDuration::secs(5),
        }
    }
}

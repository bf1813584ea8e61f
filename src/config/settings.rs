//! [`Settings`]: the configuration once [`Config::validate`](super::Config::validate) has
//! checked it, with typed values (URLs, addresses, networks, origins, plain durations). What
//! the rest of the program reads; the raw [`Config`](super::Config) stays with the CLI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::{LogFormat, RegistrationMode};
use crate::domain::{Origin, SigningAlg};

/// Validated configuration, section by section as in the file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// No query or fragment; see [`Settings::issuer_str`] for the form tokens carry.
    pub issuer: Url,
    pub listen: SocketAddr,
    /// As configured (it may hold a password: [`redact_url`](super::redact_url) before
    /// printing); [`Settings::store`] says which engine it selects.
    pub database_url: String,
    pub store: StoreKind,
    /// At least 32 characters when set.
    pub secret: Option<String>,
    /// Not empty when set.
    pub default_audience: Option<String>,
    pub log_format: LogFormat,
    pub tokens: TokenSettings,
    pub keys: KeySettings,
    pub clients: ClientSettings,
    pub password_hash: PasswordHashSettings,
    pub authorize: AuthorizeSettings,
    pub login: LoginSettings,
    pub ui: UiSettings,
    pub janitor: JanitorSettings,
    pub cors: CorsSettings,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub registration: RegistrationSettings,
    pub rate_limit: RateLimitSettings,
}

impl Settings {
    /// The issuer as it appears in tokens and metadata: no trailing slash (RFC 8414 §3.3
    /// compares it character for character).
    pub fn issuer_str(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// An absolute URL under the issuer for an endpoint path such as `/token`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer_str(), path)
    }

    /// Whether cookies must be `Secure`: the issuer is what browsers see.
    pub fn https(&self) -> bool {
        self.issuer.scheme() == "https"
    }
}

/// Which store a `database_url` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    Postgres,
    /// `None` for an in-memory database.
    Sqlite {
        path: Option<PathBuf>,
    },
}

/// `[tokens]`: every TTL longer than 0s, `code_ttl` at most 10m, `refresh_idle_ttl` no longer
/// than `refresh_absolute_ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSettings {
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    pub code_ttl: Duration,
    pub refresh_idle_ttl: Duration,
    pub refresh_absolute_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    /// Issue refresh tokens only when the request's scope includes `offline_access`.
    pub refresh_requires_offline_access: bool,
    pub signing_alg: SigningAlg,
}

/// `[keys]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySettings {
    /// Longer than 0s.
    pub reload_interval: Duration,
    /// How long a key from `keys rotate` is published before it signs (SPEC §2).
    pub activation_delay: Duration,
}

/// `[rate_limit]`: flood limits per second (0: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub per_address: u32,
    pub per_client: u32,
    pub exempt_loopback: bool,
}

/// `[registration]`: dynamic client registration (RFC 7591, RFC 7592).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationSettings {
    pub mode: RegistrationMode,
    pub audiences: Vec<String>,
    pub max_clients: u32,
    pub per_address: u32,
}

/// `[clients]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    pub cache_ttl: Duration,
}

/// `[password_hash]`: Argon2id parameters for user passwords, accepted by `argon2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashSettings {
    /// At least 8 x `parallelism`.
    pub memory_kib: u32,
    /// At least 1.
    pub iterations: u32,
    /// At least 1.
    pub parallelism: u32,
    /// How many hashes may run at once; 0 means one per CPU core.
    pub max_concurrent: usize,
}

/// `[authorize]`: the authorization endpoint (RFC 6749 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizeSettings {
    /// Longer than 0s.
    pub pending_request_ttl: Duration,
    /// Accept `code_challenge_method=plain` (RFC 7636 §4.2).
    pub allow_plain_pkce: bool,
}

/// `[login]`: login sessions and the failed-login limiter (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginSettings {
    /// Longer than 0s.
    pub session_ttl: Duration,
    pub user_free_failures: u32,
    pub address_free_failures: u32,
    /// Longer than 0s.
    pub failure_window: Duration,
    pub user_max_lockout: Duration,
    pub address_max_lockout: Duration,
}

/// `[ui]`: the look of the login, consent and error pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSettings {
    /// Not blank.
    pub product_name: String,
    /// An http or https URL, as written.
    pub logo_url: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub accent_color: String,
    /// A directory (it existed when the configuration was validated).
    pub templates_dir: Option<PathBuf>,
}

/// `[janitor]`: the periodic clean-up of expired rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JanitorSettings {
    /// 0s turns it off.
    pub interval: Duration,
    /// At least 1.
    pub batch_size: u32,
}

/// `[cors]`: origins allowed for every client, on top of each client's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSettings {
    pub allowed_origins: Vec<Origin>,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub body_limit: usize,
    /// Longer than 0s.
    pub request_timeout: Duration,
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
    /// The proxies in front of Valet and the header they name the client in.
    pub trusted_proxies: TrustedProxies,
    /// Longer than 0s.
    pub header_read_timeout: Duration,
    /// At least 1.
    pub max_connections: usize,
}

/// `http.trusted_proxies` and `http.client_ip_header`: who may name the client's address, and
/// the one header in which they do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustedProxies {
    pub networks: Vec<ipnet::IpNet>,
    pub header: ClientIpHeader,
}

/// Where the trusted proxies write the client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
    /// A comma-separated list of addresses, nearest hop last: `x-forwarded-for` or another
    /// header name (lower case).
    List(String),
}

impl Default for ClientIpHeader {
    fn default() -> Self {
        ClientIpHeader::List("x-forwarded-for".into())
    }
}

/// `[database]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// At least 1.
    pub max_connections: u32,
    /// Longer than 0s.
    pub acquire_timeout: Duration,
}

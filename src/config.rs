//! Configuration (SPEC §3): defaults < TOML file < `DATABASE_URL` < `VALET_*` < flags,
//! then validated once into typed [`Settings`] whose errors name the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::{Origin, SigningAlg};

/// The file read when neither `--config` nor `VALET_CONFIG` names one (it may be absent).
pub const DEFAULT_CONFIG_FILE: &str = "config/valet.toml";

/// Everything an operator can set. Defaults live only in the `Default` impls below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database_url: String,
    pub listen: String,
    pub issuer: String,
    pub secret: Option<String>,
    pub default_audience: Option<String>,
    pub log_format: LogFormat,
    pub tokens: TokensConfig,
    pub keys: KeysConfig,
    pub clients: ClientsConfig,
    pub password_hash: PasswordHashConfig,
    pub authorize: AuthorizeConfig,
    pub login: LoginConfig,
    pub ui: UiConfig,
    pub janitor: JanitorConfig,
    pub cors: CorsConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://valet.db".into(),
            listen: "127.0.0.1:8080".into(),
            issuer: "http://localhost:8080".into(),
            secret: None,
            default_audience: None,
            log_format: LogFormat::Text,
            tokens: TokensConfig::default(),
            keys: KeysConfig::default(),
            clients: ClientsConfig::default(),
            password_hash: PasswordHashConfig::default(),
            authorize: AuthorizeConfig::default(),
            login: LoginConfig::default(),
            ui: UiConfig::default(),
            janitor: JanitorConfig::default(),
            cors: CorsConfig::default(),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
        }
    }
}

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
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            reload_interval: ConfigDuration::secs(30),
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
    /// Networks (CIDR) of the proxies whose `Forwarded` / `X-Forwarded-For` headers are
    /// believed; from anyone else they are ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 16 * 1024,
            request_timeout: ConfigDuration::secs(30),
            shutdown_delay: ConfigDuration::secs(0),
            drain_timeout: ConfigDuration::secs(8),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    pub acquire_timeout: ConfigDuration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: ConfigDuration::secs(5),
        }
    }
}

/// A duration written `"90s"`, `"15m"`, `"1h"`, `"30d"`, or a bare integer of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let amount: u64 = digits.parse().ok()?;
        let scale = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        amount.checked_mul(scale).map(Self::secs)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let secs = self.0.as_secs();
        let text = match secs {
            0 => "0s".to_owned(),
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            s if s % 3600 == 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        };
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Secs(secs) => Ok(Self::secs(secs)),
            Raw::Text(text) => Self::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration: write e.g. \"90s\", \"15m\", \"1h\", \"30d\" or a number of seconds"
                ))
            }),
        }
    }
}

/// Flags given on the command line: the top layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Layer(String),
    #[error("invalid configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl ConfigError {
    fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            message: message.into(),
        }
    }
}

impl Config {
    /// Layer every source. `file` is `--config`; otherwise `VALET_CONFIG`, otherwise the
    /// default file if it exists.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = config_file(file)? {
            figment = figment.merge(Toml::file_exact(&path));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(
                Env::prefixed("VALET_")
                    .ignore(&["config"])
                    .filter(|key| !is_kubernetes_service_variable(key.as_str()))
                    .split("__"),
            )
            .merge(Serialized::defaults(flags));
        figment
            .extract()
            .map_err(|e| ConfigError::Layer(describe_figment_error(e)))
    }

    /// Check every value once; later code relies on [`Settings`] being valid.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let issuer = parse_issuer(&self.issuer)?;
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            ConfigError::invalid(
                "listen",
                format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;
        let store = StoreKind::parse(&self.database_url)?;
        if let Some(secret) = &self.secret
            && secret.len() < 32
        {
            return Err(ConfigError::invalid(
                "secret",
                "must be at least 32 characters of random text (e.g. `openssl rand -base64 32`)",
            ));
        }
        if let Some(aud) = &self.default_audience
            && aud.is_empty()
        {
            return Err(ConfigError::invalid(
                "default_audience",
                "must not be empty",
            ));
        }
        self.validate_durations()?;
        if self.password_hash.memory_kib < 8 * self.password_hash.parallelism.max(1)
            || self.password_hash.iterations == 0
            || self.password_hash.parallelism == 0
        {
            return Err(ConfigError::invalid(
                "password_hash",
                "memory_kib must be at least 8 x parallelism, iterations and parallelism at least 1",
            ));
        }
        self.validate_ui()?;
        if let Some(bad) = self
            .cors
            .allowed_origins
            .iter()
            .find(|o| Origin::parse(o).is_none())
        {
            return Err(ConfigError::invalid(
                "cors.allowed_origins",
                format!("`{bad}` is not an origin like https://app.example.com"),
            ));
        }
        let trusted_proxies = self
            .http
            .trusted_proxies
            .iter()
            .map(|net| parse_network(net))
            .collect::<Result<Vec<_>, _>>()?;
        if self.janitor.batch_size == 0 {
            return Err(ConfigError::invalid(
                "janitor.batch_size",
                "must be at least 1",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        Ok(Settings {
            config: self.clone(),
            issuer,
            listen,
            store,
            trusted_proxies,
        })
    }

    fn validate_durations(&self) -> Result<(), ConfigError> {
        let t = &self.tokens;
        let positive = [
            ("tokens.access_token_ttl", t.access_token_ttl),
            ("tokens.id_token_ttl", t.id_token_ttl),
            ("tokens.code_ttl", t.code_ttl),
            ("tokens.refresh_idle_ttl", t.refresh_idle_ttl),
            ("tokens.refresh_absolute_ttl", t.refresh_absolute_ttl),
            ("keys.reload_interval", self.keys.reload_interval),
            ("http.request_timeout", self.http.request_timeout),
            ("database.acquire_timeout", self.database.acquire_timeout),
            (
                "authorize.pending_request_ttl",
                self.authorize.pending_request_ttl,
            ),
            ("login.session_ttl", self.login.session_ttl),
            ("login.failure_window", self.login.failure_window),
        ];
        for (key, value) in positive {
            if value.0.is_zero() {
                return Err(ConfigError::invalid(key, "must be longer than 0s"));
            }
        }
        if t.code_ttl.0 > Duration::from_secs(600) {
            return Err(ConfigError::invalid(
                "tokens.code_ttl",
                "must be at most 10m (RFC 6749 section 4.1.2)",
            ));
        }
        if t.refresh_idle_ttl.0 > t.refresh_absolute_ttl.0 {
            return Err(ConfigError::invalid(
                "tokens.refresh_idle_ttl",
                "must not be longer than tokens.refresh_absolute_ttl",
            ));
        }
        Ok(())
    }

    fn validate_ui(&self) -> Result<(), ConfigError> {
        let ui = &self.ui;
        if ui.product_name.trim().is_empty() {
            return Err(ConfigError::invalid("ui.product_name", "must not be empty"));
        }
        if let Some(logo) = &ui.logo_url
            && !Url::parse(logo).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
        {
            return Err(ConfigError::invalid(
                "ui.logo_url",
                format!("`{logo}` is not an http or https URL"),
            ));
        }
        if !is_hex_colour(&ui.accent_color) {
            return Err(ConfigError::invalid(
                "ui.accent_color",
                format!("`{}` is not a hex colour like #4f46e5", ui.accent_color),
            ));
        }
        if let Some(dir) = &ui.templates_dir
            && !dir.is_dir()
        {
            return Err(ConfigError::invalid(
                "ui.templates_dir",
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(())
    }

    /// The configuration as TOML with the secret hidden, for `valet config`.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.secret.is_some() {
            shown.secret = Some("(set, hidden)".into());
        }
        shown.database_url = redact_url(&shown.database_url);
        toml_string(&shown)
    }
}

/// `10.0.0.0/8`, `fd00::/8`, or a single address (`192.0.2.7`).
fn parse_network(text: &str) -> Result<ipnet::IpNet, ConfigError> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            ConfigError::invalid(
                "http.trusted_proxies",
                format!("`{text}` is not a network like 10.0.0.0/8 or an address"),
            )
        })
}

/// `#rgb` or `#rrggbb`: the accent colour goes into a stylesheet, so nothing else may pass.
fn is_hex_colour(text: &str) -> bool {
    text.strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Kubernetes gives every pod `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT`, `<SERVICE>_PORT_8080_TCP`
/// and so on for each Service; a Service named `valet` must not stop Valet from starting, while
/// any other unknown `VALET_*` variable (a typo) still does.
fn is_kubernetes_service_variable(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with("service_") || key == "port" || key.starts_with("port_")
}

fn toml_string(config: &Config) -> String {
    // Serializing a plain struct of strings, numbers and tables cannot fail; fall back to Debug.
    toml::to_string_pretty(config).unwrap_or_else(|_| format!("{config:?}"))
}

fn config_file(flag: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(path) = flag {
        return require_file(path.to_path_buf()).map(Some);
    }
    if let Some(path) = std::env::var_os("VALET_CONFIG") {
        return require_file(PathBuf::from(path)).map(Some);
    }
    let default = PathBuf::from(DEFAULT_CONFIG_FILE);
    Ok(default.is_file().then_some(default))
}

fn require_file(path: PathBuf) -> Result<PathBuf, ConfigError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(ConfigError::File {
            path,
            message: "no such file".into(),
        })
    }
}

/// One line per problem naming the key as the file spells it (`tokens.code_ttl`), the
/// problem, and where the value came from (the file or a `VALET_*` variable).
fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let path: Vec<String> = e.path.iter().map(|p| p.to_lowercase()).collect();
            let problem = match &e.kind {
                figment::error::Kind::UnknownField(..) => "unknown key".to_owned(),
                kind => kind.to_string(),
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("key `{}`: {problem}{source}", path.join("."))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn parse_issuer(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text)
        .map_err(|e| ConfigError::invalid("issuer", format!("`{text}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(ConfigError::invalid(
            "issuer",
            "must be an http or https URL",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            "issuer",
            "must not have a query or fragment (RFC 8414 section 2)",
        ));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(ConfigError::invalid("issuer", "must have a host"));
    }
    Ok(url)
}

/// Hide the password of a database URL before it is printed or logged.
pub fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("hidden"));
            url.to_string()
        }
        _ => text.to_owned(),
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

impl StoreKind {
    fn parse(url: &str) -> Result<Self, ConfigError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Url::parse(url).map_err(|e| {
                ConfigError::invalid("database_url", format!("bad PostgreSQL URL: {e}"))
            })?;
            return Ok(StoreKind::Postgres);
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.trim_start_matches("//");
            let path = rest.split('?').next().unwrap_or("");
            if path.is_empty() {
                return Err(ConfigError::invalid(
                    "database_url",
                    "sqlite URL names no file, e.g. sqlite://valet.db",
                ));
            }
            if path == ":memory:" || url.contains("mode=memory") {
                return Ok(StoreKind::Sqlite { path: None });
            }
            return Ok(StoreKind::Sqlite {
                path: Some(PathBuf::from(path)),
            });
        }
        Err(ConfigError::invalid(
            "database_url",
            format!(
                "`{}` must start with postgres:// or sqlite://",
                redact_url(url)
            ),
        ))
    }
}

/// Validated configuration: what the rest of the program reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub issuer: Url,
    pub listen: SocketAddr,
    pub store: StoreKind,
    pub trusted_proxies: Vec<ipnet::IpNet>,
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

    pub fn access_token_ttl(&self) -> Duration {
        self.config.tokens.access_token_ttl.0
    }

    /// Whether cookies must be `Secure`: the issuer is what browsers see.
    pub fn https(&self) -> bool {
        self.issuer.scheme() == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_file_parses_to_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
        let text = std::fs::read_to_string(path).unwrap();
        let parsed: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&text))
            .extract()
            .unwrap();
        assert_eq!(parsed, Config::default());
        // Every key must be written out in the file, not left to the defaults: strip the
        // comment markers from `# key = value` lines and parse the file on its own.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let alone: Config = toml::from_str(&uncommented).unwrap();
        let expected = Config {
            secret: alone.secret.clone(),
            default_audience: alone.default_audience.clone(),
            ui: UiConfig {
                logo_url: alone.ui.logo_url.clone(),
                templates_dir: alone.ui.templates_dir.clone(),
                ..UiConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(alone, expected);
        assert!(alone.secret.is_some() && alone.default_audience.is_some());
        assert!(alone.ui.logo_url.is_some() && alone.ui.templates_dir.is_some());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(ConfigDuration::parse("90s"), Some(ConfigDuration::secs(90)));
        assert_eq!(
            ConfigDuration::parse("15m"),
            Some(ConfigDuration::secs(900))
        );
        assert_eq!(
            ConfigDuration::parse("1h"),
            Some(ConfigDuration::secs(3600))
        );
        assert_eq!(
            ConfigDuration::parse("30d"),
            Some(ConfigDuration::secs(30 * 86_400))
        );
        assert_eq!(ConfigDuration::parse("42"), Some(ConfigDuration::secs(42)));
        assert_eq!(ConfigDuration::parse("1w"), None);
        assert_eq!(ConfigDuration::parse("h"), None);
        assert_eq!(ConfigDuration::parse("-5s"), None);
    }

    #[test]
    fn issuer_with_query_or_fragment_is_refused() {
        for bad in [
            "https://a.example/?x=1",
            "https://a.example/#f",
            "not a url",
            "ftp://a.example",
        ] {
            let config = Config {
                issuer: bad.into(),
                ..Config::default()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("`issuer`"), "{bad}: {err}");
        }
    }

    #[test]
    fn issuer_loses_its_trailing_slash() {
        let config = Config {
            issuer: "https://id.example.com/".into(),
            ..Config::default()
        };
        let settings = config.validate().unwrap();
        assert_eq!(settings.issuer_str(), "https://id.example.com");
        assert_eq!(settings.endpoint("/token"), "https://id.example.com/token");
    }

    #[test]
    fn store_kind_from_url() {
        assert_eq!(
            StoreKind::parse("postgres://u@h/db").unwrap(),
            StoreKind::Postgres
        );
        assert_eq!(
            StoreKind::parse("sqlite://valet.db").unwrap(),
            StoreKind::Sqlite {
                path: Some("valet.db".into())
            }
        );
        assert_eq!(
            StoreKind::parse("sqlite::memory:").unwrap(),
            StoreKind::Sqlite { path: None }
        );
        assert!(StoreKind::parse("mysql://x").is_err());
    }

    #[test]
    fn short_secret_and_long_code_ttl_are_refused() {
        let mut config = Config {
            secret: Some("short".into()),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("`secret`")
        );
        config.secret = None;
        config.tokens.code_ttl = ConfigDuration::secs(601);
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("`tokens.code_ttl`")
        );
    }

    #[test]
    fn database_password_is_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h/db"),
            "postgres://u:hidden@h/db"
        );
        assert_eq!(redact_url("sqlite://valet.db"), "sqlite://valet.db");
    }
}

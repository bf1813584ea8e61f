//! Configuration (SPEC §3): defaults < TOML file < `DATABASE_URL` < `VALET_*` < flags,
//! then validated once into typed [`Settings`] whose errors name the offending key.
//!
//! `Config` (this file and `sections.rs`) is the schema as written, with its defaults and
//! layering; `duration.rs` parses durations; `validate.rs` turns a `Config` into `Settings`
//! (`settings.rs`), which is all the rest of the program reads.

mod duration;
mod sections;
mod settings;
mod validate;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

pub use duration::ConfigDuration;
pub use sections::{
    AuthorizeConfig, ClientsConfig, CorsConfig, DatabaseConfig, HttpConfig, JanitorConfig,
    KeysConfig, LogFormat, LoginConfig, PasswordHashConfig, RateLimitConfig, RegistrationConfig,
    RegistrationMode, TokensConfig, UiConfig,
};
pub use settings::{
    AuthorizeSettings, ClientIpHeader, ClientSettings, CorsSettings, DatabaseSettings,
    HttpSettings, JanitorSettings, KeySettings, LoginSettings, PasswordHashSettings,
    RateLimitSettings, RegistrationSettings, Settings, StoreKind, TokenSettings, TrustedProxies,
    UiSettings,
};

/// The file read when neither `--config` nor `VALET_CONFIG` names one (it may be absent).
pub const DEFAULT_CONFIG_FILE: &str = "config/valet.toml";

/// Everything an operator can set, as the TOML file spells it. Defaults live only in this
/// `Default` impl and those of the sections (`sections.rs`).
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
    pub registration: RegistrationConfig,
    pub rate_limit: RateLimitConfig,
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
            registration: RegistrationConfig::default(),
            rate_limit: RateLimitConfig::default(),
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
            database: DatabaseConfig {
                max_connections: alone.database.max_connections,
                ..DatabaseConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(alone, expected);
        assert!(alone.secret.is_some() && alone.default_audience.is_some());
        assert!(alone.ui.logo_url.is_some() && alone.ui.templates_dir.is_some());
        assert!(alone.database.max_connections.is_some());
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

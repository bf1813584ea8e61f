//! [`Config::validate`]: every value checked once, each error naming the key as the file
//! spells it, into typed [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::{
    AuthorizeSettings, ClientIpHeader, ClientSettings, Config, ConfigError, CorsSettings,
    DatabaseConfig, DatabaseSettings, HttpSettings, JanitorSettings, KeySettings, LoginConfig,
    LoginSettings, PasswordHashConfig, PasswordHashSettings, RateLimitSettings,
    RegistrationSettings, Settings, StoreKind, TokenSettings, TokensConfig, TrustedProxies,
    UiConfig, UiSettings, redact_url,
};
use crate::domain::Origin;

impl Config {
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
        let pool_size = self.database.max_connections.unwrap_or_else(|| {
            DatabaseConfig::default_max_connections(matches!(store, StoreKind::Postgres))
        });
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
        let allowed_origins = self
            .cors
            .allowed_origins
            .iter()
            .map(|o| {
                Origin::parse(o).ok_or_else(|| {
                    ConfigError::invalid(
                        "cors.allowed_origins",
                        format!("`{o}` is not an origin like https://app.example.com"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_proxies = self
            .http
            .trusted_proxies
            .iter()
            .map(|net| parse_network(net))
            .collect::<Result<Vec<_>, _>>()?;
        let client_ip_header = parse_client_ip_header(&self.http.client_ip_header)?;
        if self.http.max_connections == 0 {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be at least 1",
            ));
        }
        if self.janitor.batch_size == 0 {
            return Err(ConfigError::invalid(
                "janitor.batch_size",
                "must be at least 1",
            ));
        }
        if self.registration.per_address == 0 {
            return Err(ConfigError::invalid(
                "registration.per_address",
                "must be at least 1",
            ));
        }
        if self.database.max_connections == Some(0) {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        Ok(Settings {
            issuer,
            listen,
            database_url: self.database_url.clone(),
            store,
            secret: self.secret.clone(),
            default_audience: self.default_audience.clone(),
            log_format: self.log_format,
            tokens: self.tokens.settings(),
            keys: KeySettings {
                reload_interval: self.keys.reload_interval.0,
                activation_delay: self.keys.activation_delay.0,
            },
            rate_limit: RateLimitSettings {
                per_address: self.rate_limit.per_address,
                per_client: self.rate_limit.per_client,
                exempt_loopback: self.rate_limit.exempt_loopback,
            },
            registration: RegistrationSettings {
                mode: self.registration.mode,
                audiences: self.registration.audiences.clone(),
                max_clients: self.registration.max_clients,
                per_address: self.registration.per_address,
            },
            clients: ClientSettings {
                cache_ttl: self.clients.cache_ttl.0,
            },
            password_hash: self.password_hash.settings(),
            authorize: AuthorizeSettings {
                pending_request_ttl: self.authorize.pending_request_ttl.0,
                allow_plain_pkce: self.authorize.allow_plain_pkce,
            },
            login: self.login.settings(),
            ui: self.ui.settings(),
            janitor: JanitorSettings {
                interval: self.janitor.interval.0,
                batch_size: self.janitor.batch_size,
            },
            cors: CorsSettings { allowed_origins },
            http: HttpSettings {
                body_limit: self.http.body_limit,
                request_timeout: self.http.request_timeout.0,
                shutdown_delay: self.http.shutdown_delay.0,
                drain_timeout: self.http.drain_timeout.0,
                trusted_proxies: TrustedProxies {
                    networks: trusted_proxies,
                    header: client_ip_header,
                },
                header_read_timeout: self.http.header_read_timeout.0,
                max_connections: self.http.max_connections,
            },
            database: DatabaseSettings {
                max_connections: pool_size,
                acquire_timeout: self.database.acquire_timeout.0,
            },
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
            ("http.header_read_timeout", self.http.header_read_timeout),
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
}

impl TokensConfig {
    fn settings(&self) -> TokenSettings {
        TokenSettings {
            access_token_ttl: self.access_token_ttl.0,
            id_token_ttl: self.id_token_ttl.0,
            code_ttl: self.code_ttl.0,
            refresh_idle_ttl: self.refresh_idle_ttl.0,
            refresh_absolute_ttl: self.refresh_absolute_ttl.0,
            refresh_reuse_grace: self.refresh_reuse_grace.0,
            refresh_requires_offline_access: self.refresh_requires_offline_access,
            signing_alg: self.signing_alg,
        }
    }
}

impl PasswordHashConfig {
    fn settings(&self) -> PasswordHashSettings {
        PasswordHashSettings {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
            max_concurrent: self.max_concurrent,
        }
    }
}

impl LoginConfig {
    fn settings(&self) -> LoginSettings {
        LoginSettings {
            session_ttl: self.session_ttl.0,
            user_free_failures: self.user_free_failures,
            address_free_failures: self.address_free_failures,
            failure_window: self.failure_window.0,
            user_max_lockout: self.user_max_lockout.0,
            address_max_lockout: self.address_max_lockout.0,
        }
    }
}

impl UiConfig {
    fn settings(&self) -> UiSettings {
        UiSettings {
            product_name: self.product_name.clone(),
            logo_url: self.logo_url.clone(),
            accent_color: self.accent_color.clone(),
            templates_dir: self.templates_dir.clone(),
        }
    }
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

/// `x-forwarded-for`, `forwarded`, or another header name (an RFC 9110 token), any case.
fn parse_client_ip_header(text: &str) -> Result<ClientIpHeader, ConfigError> {
    let name = text.trim().to_ascii_lowercase();
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(ConfigError::invalid(
            "http.client_ip_header",
            format!("`{text}` is not a header name like x-forwarded-for or forwarded"),
        ));
    }
    Ok(if name == "forwarded" {
        ClientIpHeader::Forwarded
    } else {
        ClientIpHeader::List(name)
    })
}

/// `#rgb` or `#rrggbb`: the accent colour goes into a stylesheet, so nothing else may pass.
fn is_hex_colour(text: &str) -> bool {
    text.strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDuration;
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
}

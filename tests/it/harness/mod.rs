//! The integration harness: the real server on `127.0.0.1:0` over a fresh SQLite file or a
//! fresh PostgreSQL database, a real HTTP client, and the real `valet` binary for the CLI.

pub mod flow;
pub mod postgres;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use valet::app::App;
use valet::clock::Clock;
use valet::config::{Config, ConfigDuration};
use valet::http::state::AppState;

/// The secret every test server and CLI call shares (at least 32 characters).
pub const TEST_SECRET: &str = "integration-test-secret-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server and everything needed to talk to it and to its store.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    /// The server's clock: [`TestApp::advance`] moves it instead of sleeping.
    pub clock: Clock,
    pub database_url: String,
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    // Dropped last: the database outlives the server that uses it.
    _db: postgres::DatabaseGuard,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Test defaults: fast key reloads and client cache, and cheap Argon2 parameters.
pub fn test_config() -> Config {
    let mut config = Config {
        secret: Some(TEST_SECRET.into()),
        ..Config::default()
    };
    config.keys.reload_interval = ConfigDuration::secs(1);
    config.clients.cache_ttl = ConfigDuration::secs(1);
    config.password_hash.memory_kib = 1024;
    config.password_hash.iterations = 1;
    config
}

pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

/// Start the server with `test_config()` changed by `adjust`.
pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = match backend {
        Backend::Sqlite => postgres::DatabaseGuard::none(format!(
            "sqlite://{}",
            dir.path().join("valet.db").display()
        )),
        Backend::Postgres => postgres::fresh_database().await,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = test_config();
    config.database_url = db.url.clone();
    config.listen = addr.to_string();
    config.issuer = format!("http://{addr}");
    adjust(&mut config);
    let settings = config.validate().expect("valid test config");
    let clock = Clock::system();
    let app = App::build_with(settings, listener, clock.clone())
        .await
        .expect("app starts");
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = app
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .expect("http client"),
        state,
        clock,
        database_url: db.url.clone(),
        dir,
        shutdown: Some(tx),
        _db: db,
    }
}

/// The `valet` binary that `cargo test` built.
pub fn valet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_valet"))
}

/// A `valet` command with no inherited `VALET_*` or `DATABASE_URL` surprises.
pub fn clean_command() -> Command {
    let mut cmd = Command::new(valet_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("VALET_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Run a `valet` CLI command to the end; it must succeed. Returns its stdout as JSON (`Null`
/// when it printed none) and its stderr.
pub fn run_cli(cmd: &mut Command) -> (Value, String) {
    let out = cmd.output().expect("valet runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "valet {cmd:?}: {stderr}");
    (
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
        stderr,
    )
}

/// A loopback port nothing listens on now, for a server process to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestApp {
    /// Move the server's clock forward: expiry, lockouts, `max_age` and the client cache
    /// see the time pass at once.
    pub fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A `valet` CLI command against this app's store, run from the app's temp dir.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command();
        cmd.current_dir(self.dir.path())
            .env("VALET_DATABASE_URL", &self.database_url)
            .env("VALET_SECRET", TEST_SECRET)
            .env("VALET_PASSWORD_HASH__MEMORY_KIB", "1024")
            .env("VALET_PASSWORD_HASH__ITERATIONS", "1")
            .args(args);
        cmd
    }

    pub async fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = self.cli_command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("run valet"))
            .await
            .expect("join")
    }

    /// Run a CLI command that must succeed.
    pub async fn cli_ok(&self, args: &[&str]) -> Output {
        let out = self.cli(args).await;
        assert!(
            out.status.success(),
            "valet {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Run a CLI command that must succeed and print JSON.
    pub async fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli_ok(args).await;
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "valet {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub async fn create_contacts_api(&self) -> Value {
        self.cli_json(&[
            "api",
            "create",
            "--identifier",
            CONTACTS,
            "--name",
            "Contacts",
            "--scope",
            "read:contacts create:contacts delete:contacts",
            "--json",
        ])
        .await
    }

    /// A confidential client_credentials client for the Contacts API: (client_id, secret).
    pub async fn create_service_client(&self, scope: &str) -> (String, String) {
        let client = self
            .cli_json(&[
                "client",
                "create",
                "--name",
                "service",
                "--grant-type",
                "client_credentials",
                "--scope",
                scope,
                "--audience",
                CONTACTS,
                "--json",
            ])
            .await;
        (
            client["client_id"].as_str().expect("client_id").to_owned(),
            client["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        )
    }

    /// POST a form to `/token`, optionally with HTTP Basic credentials.
    pub async fn token(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url("/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.header("authorization", basic_header(id, secret));
        }
        request.send().await.expect("token request")
    }

    /// A client_credentials access token for the Contacts API; the request must succeed.
    pub async fn service_token(&self, (id, secret): (&str, &str)) -> String {
        let form = [("grant_type", "client_credentials"), ("audience", CONTACTS)];
        let response = self.token(Some((id, secret)), &form).await;
        assert_eq!(response.status(), 200, "client_credentials for {id}");
        let body: Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}

pub const CONTACTS: &str = "https://contacts.example.com";

/// RFC 6749 §2.3.1: form-urlencode each part, then base64 `id:secret`.
pub fn basic_header(id: &str, secret: &str) -> String {
    use base64::Engine;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let joined = format!("{}:{}", encode(id), encode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(joined)
    )
}

/// Run one async test body against both stores: `store_tests!(name, …)` makes
/// `name::sqlite` and `name::postgres`, so a failure names its store.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::spawn($crate::harness::Backend::Sqlite).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::harness::spawn($crate::harness::Backend::Postgres).await).await
                }
            }
        )*
    };
}

/// Like `store_tests!`, for bodies that take the backend and start their own app(s).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::harness::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Verify a token independently of the signer: fetch the JWKS over HTTP, pick the key by
/// `kid`, and let jsonwebtoken check signature, `iss`, `aud` and `exp`.
pub async fn verify_with_jwks(
    app: &TestApp,
    token: &str,
    audience: &str,
) -> (jsonwebtoken::Header, Value) {
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("token header");
    let kid = header.kid.clone().expect("kid in header");
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("usable JWK");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.base.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("token verifies against the JWKS");
    (header, data.claims)
}

//! The integration harness: the real server on `127.0.0.1:0` over a fresh SQLite file or a
//! fresh PostgreSQL database, a real HTTP client, and the real `valet` binary for the CLI.

pub mod cluster;
pub mod fixtures;
pub mod flow;
pub mod postgres;
pub mod process;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use valet::app::App;
use valet::clock::Clock;
use valet::config::{Config, ConfigDuration};
use valet::core::Core;
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
        http: browser(),
        state,
        clock,
        database_url: db.url.clone(),
        dir,
        shutdown: Some(tx),
        _db: db,
    }
}

/// The protocol [`Core`] over the database at `database_url`, with the harness's settings:
/// how tests that run `valet serve` as a process write their fixtures into its store.
pub async fn core_over(database_url: &str) -> Core {
    let mut config = test_config();
    config.database_url = database_url.to_owned();
    let settings = config.validate().expect("valid test config");
    valet::app::build_core(settings, Clock::system())
        .await
        .expect("open the store")
}

/// An HTTP client that acts as a browser in the flows: it keeps cookies, and it follows no
/// redirects, so that each one can be checked.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("http client")
}

/// The `valet` binary that `cargo test` built.
pub fn valet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_valet"))
}

/// The variables that give a `valet` process the harness's settings: the test secret and
/// the cheap password-hash parameters of [`test_config`].
pub fn test_env() -> [(&'static str, &'static str); 3] {
    [
        ("VALET_SECRET", TEST_SECRET),
        ("VALET_PASSWORD_HASH__MEMORY_KIB", "1024"),
        ("VALET_PASSWORD_HASH__ITERATIONS", "1"),
    ]
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
            .envs(test_env())
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

    /// POST a form to `path`, with HTTP Basic credentials when given.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            request = request.header("authorization", basic_header(id, secret));
        }
        request.send().await.expect("POST")
    }

    /// POST a form to `/token`, with HTTP Basic credentials when given.
    pub async fn token(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.post_form("/token", basic, form).await
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

//! `valet serve` as a process of its own, for the tests that need one: replicas over one
//! database, SIGTERM and draining, the logs of a real run, the startup announcement.
//!
//! Waiting here is waiting for another process (to listen, to log, to exit): bounded polls,
//! never a fixed sleep.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::{clean_command, free_port, test_env};

/// How long a server process may take to become ready, to log a line or to exit.
const PATIENCE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// How to start `valet serve`: `VALET_*` variables, a working directory, a free port.
pub struct Serve {
    port: u16,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Serve {
    /// Over `database_url` with the harness's settings (the test secret, cheap password
    /// hashing, keys reloaded and clients cached for 1 s), its own address as the issuer.
    pub fn over(database_url: &str) -> Self {
        let mut serve = Self::with_defaults()
            .env("VALET_DATABASE_URL", database_url)
            .env("VALET_KEYS__RELOAD_INTERVAL", "1s")
            .env("VALET_CLIENTS__CACHE_TTL", "1s");
        for (key, value) in test_env() {
            serve = serve.env(key, value);
        }
        let base = serve.base();
        serve.issuer(&base)
    }

    /// Nothing but a free listen address: what a user gets from the defaults.
    pub fn with_defaults() -> Self {
        let port = free_port();
        Self {
            port,
            dir: None,
            env: vec![("VALET_LISTEN".into(), format!("127.0.0.1:{port}"))],
            args: Vec::new(),
        }
    }

    /// Set a `VALET_*` variable (the last value given for a key wins).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn issuer(self, issuer: &str) -> Self {
        self.env("VALET_ISSUER", issuer)
    }

    /// A command-line flag (or its value) after `serve`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Run in `dir` (relative paths in the configuration are relative to it).
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    /// The base URL it will listen on.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Start it; its stderr (the logs) goes to a file that [`ServerProcess::logs`] reads.
    pub fn start(self) -> ServerProcess {
        let log_dir = tempfile::tempdir().expect("temp dir for the server's log");
        let log = log_dir.path().join("valet.log");
        let mut cmd = clean_command();
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("serve")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start valet serve");
        ServerProcess {
            child,
            base: self.base(),
            port: self.port,
            log,
            _log_dir: log_dir,
        }
    }
}

/// A running `valet serve`, killed on drop if it is still running.
pub struct ServerProcess {
    child: Child,
    pub base: String,
    pub port: u16,
    log: PathBuf,
    _log_dir: TempDir,
}

impl ServerProcess {
    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything it has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON lines of its logs so far (with `VALET_LOG_FORMAT=json`).
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Wait until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let readyz = self.url("/readyz");
        self.wait_until(&format!("{} to be ready", self.base), async || {
            http.get(&readyz)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    /// Wait until its logs contain `needle`.
    pub async fn wait_for_log(&mut self, needle: &str) {
        let log = self.log.clone();
        self.wait_until(&format!("`{needle}` in the log"), async || {
            std::fs::read_to_string(&log).is_ok_and(|text| text.contains(needle))
        })
        .await;
    }

    /// Poll `done` until it holds; fail if the process exits or [`PATIENCE`] runs out.
    async fn wait_until(&mut self, what: &str, mut done: impl AsyncFnMut() -> bool) {
        let started = Instant::now();
        while !done().await {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "valet serve exited ({status}) while waiting for {what}:\n{}",
                    self.logs()
                );
            }
            assert!(
                started.elapsed() < PATIENCE,
                "waited {PATIENCE:?} for {what}:\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Send SIGTERM, as an orchestrator stopping it does.
    pub fn sigterm(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", self.child.id());
    }

    /// SIGKILL: the process dies mid-request, nothing flushed, no shutdown code run.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Its exit status, if it has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Wait for it to exit, at most `within`.
    pub async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exit_status() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "valet serve did not exit within {within:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

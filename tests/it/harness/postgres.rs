//! A fresh PostgreSQL database per test, dropped afterwards.
//!
//! The server comes from `TEST_DATABASE_URL`; if that is unset, from the local default
//! (`postgres://postgres@127.0.0.1:5432/postgres`) if it answers; otherwise a throwaway
//! cluster is made with `initdb`/`pg_ctl` for this test process. If none of that works, the
//! test fails with a message saying how to point it at a server: never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::OnceCell;

const LOCAL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A test database's URL; dropping the guard drops the database (if it is one we made).
pub struct DatabaseGuard {
    pub url: String,
    drop_target: Option<(String, String)>,
}

impl DatabaseGuard {
    pub fn none(url: String) -> Self {
        Self {
            url,
            drop_target: None,
        }
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        let Some((admin, name)) = self.drop_target.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which must not block on itself: use a thread
        // with its own small runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

static ADMIN_URL: OnceCell<String> = OnceCell::const_new();

/// The URL of a database we may connect to in order to create others.
pub async fn admin_url() -> &'static str {
    ADMIN_URL.get_or_init(find_server).await
}

async fn find_server() -> String {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        if let Err(e) = PgConnection::connect(&url).await {
            panic!("TEST_DATABASE_URL={url} does not answer: {e}");
        }
        return url;
    }
    if PgConnection::connect(LOCAL_DEFAULT).await.is_ok() {
        return LOCAL_DEFAULT.to_owned();
    }
    match tokio::task::spawn_blocking(start_throwaway_cluster).await {
        Ok(Ok(url)) => url,
        Ok(Err(e)) => panic!(
            "no PostgreSQL for the tests: TEST_DATABASE_URL is unset, nothing answers at {LOCAL_DEFAULT}, \
             and a throwaway cluster could not be started ({e}). Set TEST_DATABASE_URL to a server \
             where this user may create databases, e.g. postgres://postgres@127.0.0.1:5432/postgres"
        ),
        Err(e) => panic!("starting a throwaway PostgreSQL cluster panicked: {e}"),
    }
}

/// Create `valet_test_<random>` and return a guard that drops it.
pub async fn fresh_database() -> DatabaseGuard {
    let admin = admin_url().await.to_owned();
    let name = format!("valet_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connect to the admin database");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let mut url = url::Url::parse(&admin).expect("admin URL");
    url.set_path(&format!("/{name}"));
    DatabaseGuard {
        url: url.to_string(),
        drop_target: Some((admin, name)),
    }
}

fn pg_bin(tool: &str) -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no /usr/lib/postgresql ({e}); install postgresql"))?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin").join(tool)))
        .filter(|p| p.exists())
        .collect();
    candidates.sort();
    candidates
        .pop()
        .ok_or_else(|| format!("{tool} not found under /usr/lib/postgresql/*/bin"))
}

/// `initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user.
fn as_cluster_owner(program: &Path) -> Command {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if is_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn start_throwaway_cluster() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("valet-test-pg-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _ = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&dir)
        .status();
    let status = as_cluster_owner(&pg_bin("initdb")?)
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !status.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1",
        dir.display()
    );
    let started = as_cluster_owner(&pg_bin("pg_ctl")?)
        .args(["-D"])
        .arg(&data)
        .args(["-o", &options, "-w", "-l"])
        .arg(dir.join("log"))
        .arg("start")
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !started.status.success() {
        return Err(format!(
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&started.stderr)
        ));
    }
    // Stop the cluster when this test process exits, however it exits.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {pg_ctl} -D {data} -m immediate stop; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = pg_bin("pg_ctl")?.display(),
        data = data.display(),
        dir = dir.display(),
    );
    as_shell_owner(&watchdog)
        .spawn()
        .map_err(|e| format!("watchdog: {e}"))?;
    std::thread::sleep(Duration::from_millis(200));
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

fn as_shell_owner(script: &str) -> Command {
    let mut cmd = as_cluster_owner(Path::new("/bin/sh"));
    cmd.args(["-c", script]);
    cmd
}

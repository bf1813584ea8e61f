//! Configuration precedence (defaults < file < env < flag) and invalid configuration
//! stopping startup with a message naming the key, through the real binary.

use std::time::Duration;

use crate::harness::clean_command;
use crate::harness::process::Serve;

fn effective(
    dir: &std::path::Path,
    file: Option<&str>,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = clean_command();
    cmd.current_dir(dir);
    if let Some(text) = file {
        std::fs::write(dir.join("valet.toml"), text).unwrap();
        cmd.args(["--config", "valet.toml"]);
    }
    cmd.envs(env.iter().copied()).args(args).arg("config");
    cmd.output().unwrap()
}

fn line_of(out: &std::process::Output, key: &str) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} line"))
        .to_owned()
}

#[test]
fn file_then_env_then_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = Some("database_url = \"sqlite://from-file.db\"\nlisten = \"127.0.0.1:9001\"\n");
    let out = effective(dir.path(), None, &[], &[]);
    assert_eq!(
        line_of(&out, "database_url"),
        "database_url = \"sqlite://valet.db\""
    );

    let out = effective(dir.path(), file, &[], &[]);
    assert_eq!(
        line_of(&out, "database_url"),
        "database_url = \"sqlite://from-file.db\""
    );
    assert_eq!(line_of(&out, "listen"), "listen = \"127.0.0.1:9001\"");

    let out = effective(
        dir.path(),
        file,
        &[("DATABASE_URL", "sqlite://plain-env.db")],
        &[],
    );
    assert_eq!(
        line_of(&out, "database_url"),
        "database_url = \"sqlite://plain-env.db\""
    );

    let env = [
        ("DATABASE_URL", "sqlite://plain-env.db"),
        ("VALET_DATABASE_URL", "sqlite://from-env.db"),
    ];
    let out = effective(dir.path(), file, &env, &[]);
    assert_eq!(
        line_of(&out, "database_url"),
        "database_url = \"sqlite://from-env.db\""
    );
    assert_eq!(
        line_of(&out, "listen"),
        "listen = \"127.0.0.1:9001\"",
        "untouched keys keep the file's value"
    );

    let out = effective(
        dir.path(),
        file,
        &env,
        &["--database-url", "sqlite://from-flag.db"],
    );
    assert_eq!(
        line_of(&out, "database_url"),
        "database_url = \"sqlite://from-flag.db\""
    );

    // Nested keys through the environment, with durations as text or bare seconds.
    let nested = [
        ("VALET_TOKENS__ACCESS_TOKEN_TTL", "15m"),
        ("VALET_KEYS__RELOAD_INTERVAL", "45"),
    ];
    let out = effective(dir.path(), None, &nested, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("access_token_ttl = \"15m\""), "{text}");
    assert!(text.contains("reload_interval = \"45s\""), "{text}");
}

#[test]
fn valet_config_variable_selects_the_file_and_is_not_a_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("other.toml"),
        "issuer = \"https://id.example.com\"\n",
    )
    .unwrap();
    let out = effective(dir.path(), None, &[("VALET_CONFIG", "other.toml")], &[]);
    assert_eq!(
        line_of(&out, "issuer"),
        "issuer = \"https://id.example.com\""
    );
}

#[test]
fn kubernetes_service_variables_are_not_keys() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("VALET_SERVICE_HOST", "10.0.0.7"),
        ("VALET_SERVICE_PORT", "8080"),
        ("VALET_PORT", "tcp://10.0.0.7:8080"),
        ("VALET_PORT_8080_TCP_ADDR", "10.0.0.7"),
    ];
    let out = effective(dir.path(), None, &env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_secret_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-very-secret-value-that-is-long-enough-123";
    let out = effective(dir.path(), None, &[("VALET_SECRET", secret)], &[]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
}

/// `VALET_*` variables.
type Env = &'static [(&'static str, &'static str)];

/// `valet serve` with this configuration must stop at once, with exit code 1 and one line
/// naming the problem, having created nothing.
async fn serve_fails(file: Option<&str>, env: &[(&str, &str)], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::with_defaults().in_dir(dir.path());
    if let Some(text) = file {
        std::fs::write(dir.path().join("valet.toml"), text).unwrap();
        serve = serve.arg("--config").arg("valet.toml");
    }
    for (key, value) in env {
        serve = serve.env(key, value);
    }
    // A server that wrongly starts would run forever: give it ten seconds, then fail.
    let mut server = serve.start();
    let status = server.exit_status(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "serve should refuse to start");
    let stderr = server.logs();
    assert!(
        stderr.contains(needle),
        "stderr {stderr:?} lacks {needle:?}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr:?}");
    assert!(!dir.path().join("valet.db").exists(), "nothing was created");
}

#[tokio::test]
async fn invalid_configuration_stops_startup_naming_the_key() {
    let cases: [(Option<&str>, Env, &str); 9] = [
        (Some("bogus_key = 1\n"), &[], "bogus_key"),
        (
            Some("[tokens]\naccess_token_tll = \"1h\"\n"),
            &[],
            "access_token_tll",
        ),
        (None, &[("VALET_BOGUS", "1")], "bogus"),
        (
            None,
            &[("VALET_ISSUER", "https://id.example.com/?tenant=1")],
            "issuer",
        ),
        (None, &[("VALET_DATABASE_URL", "mysql://x")], "database_url"),
        (
            None,
            &[("VALET_TOKENS__CODE_TTL", "11m")],
            "tokens.code_ttl",
        ),
        (
            None,
            &[("VALET_TOKENS__ACCESS_TOKEN_TTL", "soon")],
            "access_token_ttl",
        ),
        (None, &[("VALET_LISTEN", "nowhere")], "listen"),
        (
            None,
            &[("VALET_TOKENS__SIGNING_ALG", "HS256")],
            "signing_alg",
        ),
    ];
    for (file, env, needle) in cases {
        serve_fails(file, env, needle).await;
    }
}

#[tokio::test]
async fn postgres_without_a_secret_refuses_to_start() {
    let db = crate::harness::postgres::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let out = clean_command()
        .current_dir(dir.path())
        .env("VALET_LISTEN", "127.0.0.1:0")
        .args(["--database-url", &db.url, "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("VALET_SECRET"),
        "the message says how to set it: {stderr}"
    );
    // It stopped before touching the database: no migrations were applied.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn help_lists_every_command() {
    let out = clean_command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "migrate", "client", "user", "api", "keys"] {
        assert!(text.contains(command), "--help lacks {command}");
    }
    for sub in [
        ["client", "create"],
        ["user", "create"],
        ["api", "create"],
        ["keys", "rotate"],
    ] {
        let out = clean_command().args(sub).arg("--help").output().unwrap();
        assert!(out.status.success(), "{sub:?} --help");
    }
}

/// `valet serve` as a user runs it: the startup log names the issuer, the address and the
/// command that makes a first client; SIGTERM ends it cleanly with exit 0.
#[tokio::test]
async fn serve_announces_itself_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Serve::with_defaults()
        .issuer("https://id.example.com")
        .in_dir(dir.path())
        .start();
    server.wait_for_log("valet client create --name").await;
    let log = server.logs();
    assert!(log.contains("https://id.example.com"), "{log}");
    assert!(log.contains(&server.addr()), "{log}");
    assert!(
        log.contains("valet.db.secret"),
        "the created secret file is announced: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal"
    );
    let secret = std::fs::read_to_string(dir.path().join("valet.db.secret")).unwrap();
    assert!(
        !log.contains(secret.trim()),
        "the secret itself is never logged"
    );

    server.sigterm();
    let status = server.exit_status(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "serve ignored SIGTERM");
}

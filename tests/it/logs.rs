//! What the logs say: one `audit` event per security-relevant action, and never a secret. A
//! full flow runs against the real binary with JSON logs; then the captured output is searched
//! for every password, secret, code, token, cookie and form token the flow used.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::fixtures::PASSWORD;
use crate::harness::flow::{Form, Pkce, location, redirect_params};
use crate::harness::{CONTACTS, TEST_SECRET, basic_header, clean_command, run_cli};

const CALLBACK: &str = "https://app.example.com/callback";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_logs_audit_events_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("valet.log");
    let env = |cmd: &mut std::process::Command| {
        cmd.current_dir(dir.path())
            .env("VALET_SECRET", TEST_SECRET)
            .env("VALET_LOG_FORMAT", "json")
            .env("VALET_PASSWORD_HASH__MEMORY_KIB", "1024")
            .env("VALET_PASSWORD_HASH__ITERATIONS", "1");
    };
    let mut cli_log = String::new();
    let mut cli = |args: &[&str]| -> Value {
        let mut cmd = clean_command();
        env(&mut cmd);
        let (stdout, stderr) = run_cli(cmd.args(args));
        cli_log.push_str(&stderr);
        stdout
    };
    cli(&[
        "api",
        "create",
        "--identifier",
        CONTACTS,
        "--name",
        "Contacts",
        "--scope",
        "read:contacts",
        "--json",
    ]);
    let web = cli(&[
        "client",
        "create",
        "--name",
        "web",
        "--redirect-uri",
        CALLBACK,
        "--scope",
        "read:contacts",
        "--audience",
        CONTACTS,
        "--grant-type",
        "authorization_code,refresh_token,password",
        "--json",
    ]);
    let (web_id, web_secret) = (
        web["client_id"].as_str().unwrap(),
        web["client_secret"].as_str().unwrap(),
    );
    cli(&[
        "user",
        "create",
        "--username",
        "alice",
        "--password",
        PASSWORD,
        "--json",
    ]);

    let mut cmd = clean_command();
    env(&mut cmd);
    let mut server = cmd
        .env("VALET_LISTEN", format!("127.0.0.1:{port}"))
        .env("VALET_ISSUER", &base)
        .arg("serve")
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let started = Instant::now();
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Everything secret that crosses the wire below is collected here.
    let mut secrets: Vec<String> = vec![PASSWORD.into(), web_secret.into(), TEST_SECRET.into()];
    let pkce = Pkce::new();
    secrets.push(pkce.verifier.clone());
    let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", web_id)
        .append_pair("audience", CONTACTS)
        .append_pair("state", "state-value-for-the-client")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let response = http.get(url.as_str()).send().await.unwrap();
    let login_path = location(&response);
    let login = http
        .get(format!("{base}{login_path}"))
        .send()
        .await
        .unwrap();
    for cookie in login.cookies() {
        secrets.push(cookie.value().to_owned());
    }
    let mut form = Form::parse(&login.text().await.unwrap());
    secrets.push(form.get("csrf").unwrap().to_owned());
    secrets.push(form.get("request").unwrap().to_owned());
    // A failed attempt first: its password must not appear either.
    form.set("username", "alice")
        .set("password", "a-wrong-password-guess");
    secrets.push("a-wrong-password-guess".into());
    assert_eq!(
        http.post(format!("{base}/login"))
            .form(&form.fields)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    form.set("password", PASSWORD);
    let response = http
        .post(format!("{base}/login"))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    for cookie in response.cookies() {
        secrets.push(cookie.value().to_owned());
    }
    let consent = http
        .get(format!("{base}{}", location(&response)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = Form::parse(&consent);
    secrets.push(form.get("csrf").unwrap().to_owned());
    form.set("decision", "allow");
    let response = http
        .post(format!("{base}/consent"))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    let code = redirect_params(&location(&response))["code"].clone();
    secrets.push(code.clone());

    let token = |form: Vec<(&'static str, String)>| {
        http.post(format!("{base}/token"))
            .header("authorization", basic_header(web_id, web_secret))
            .form(&form)
            .send()
    };
    let tokens: Value = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("code_verifier", pkce.verifier.clone()),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(tokens["access_token"].as_str().unwrap().into());
    secrets.push(refresh.clone());
    let refreshed: Value = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    secrets.push(refreshed["access_token"].as_str().unwrap().into());
    secrets.push(refreshed["refresh_token"].as_str().unwrap().into());
    let by_password: Value = token(vec![
        ("grant_type", "password".into()),
        ("username", "alice".into()),
        ("password", PASSWORD.into()),
        ("audience", CONTACTS.into()),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    secrets.push(by_password["access_token"].as_str().unwrap().into());
    let revoked = http
        .post(format!("{base}/revoke"))
        .header("authorization", basic_header(web_id, web_secret))
        .form(&[("token", refreshed["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(server.wait().unwrap().code(), Some(0));
    let log = format!("{}\n{cli_log}", std::fs::read_to_string(&log_path).unwrap());

    for secret in &secrets {
        assert!(secret.len() >= 8, "a weak probe proves nothing: {secret}");
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the logs: {secret}\n{log}"
        );
    }
    let events: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["target"] == "audit")
        .collect();
    let has = |name: &str, field: &str, value: &str| {
        events
            .iter()
            .any(|e| e["event"] == name && (field.is_empty() || e[field] == value))
    };
    assert!(has("client.created", "client_id", web_id), "{events:?}");
    assert!(has("login.failure", "client_id", web_id));
    assert!(has("login.success", "client_id", web_id));
    assert!(has("consent.granted", "client_id", web_id));
    assert!(has("code.issued", "client_id", web_id));
    assert!(has("token.issued", "grant_type", "authorization_code"));
    assert!(has("token.issued", "grant_type", "refresh_token"));
    assert!(has("token.issued", "grant_type", "password"));
    assert!(has("token.revoked", "token_type", "refresh_token"));
}

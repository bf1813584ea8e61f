//! What the logs say: one `audit` event per security-relevant action, and never a secret. A
//! full flow runs against the real binary with JSON logs; then the captured output is searched
//! for every password, secret, code, token, cookie and form token the flow used.

use std::time::Duration;

use serde_json::Value;

use crate::harness::fixtures::{CALLBACK, PASSWORD};
use crate::harness::flow::{Form, Pkce, code_request_url, location, redirect_params};
use crate::harness::process::Serve;
use crate::harness::{
    CONTACTS, TEST_SECRET, basic_header, browser, clean_command, run_cli, test_env,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_logs_audit_events_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("valet.db").display());
    // The CLI's logs are searched too, and its `client.created` event: it provisions here.
    let mut cli_log = String::new();
    let mut cli = |args: &[&str]| -> Value {
        let mut cmd = clean_command();
        cmd.current_dir(dir.path())
            .envs(test_env())
            .env("VALET_DATABASE_URL", &database_url)
            .env("VALET_LOG_FORMAT", "json");
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

    let mut server = Serve::over(&database_url)
        .env("VALET_LOG_FORMAT", "json")
        .start();
    server.wait_ready().await;
    let base = server.base.clone();
    let http = browser();

    // Everything secret that crosses the wire below is collected here.
    let mut secrets: Vec<String> = vec![PASSWORD.into(), web_secret.into(), TEST_SECRET.into()];
    let pkce = Pkce::new();
    secrets.push(pkce.verifier.clone());
    let url = code_request_url(&base, web_id, &pkce, "state-value-for-the-client");
    let response = http.get(url).send().await.unwrap();
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
        400
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

    server.sigterm();
    let status = server.exit_status(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    let log = format!("{}\n{cli_log}", server.logs());

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

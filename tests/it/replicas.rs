//! Two `valet serve` processes over one PostgreSQL database, as behind a load balancer: every
//! piece of state one replica creates, the other continues; single-use things stay single-use
//! across both; key rotation reaches both.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::flow::{Form, PASSWORD, Pkce, location, redirect_params};
use crate::harness::{CONTACTS, TEST_SECRET, basic_header, clean_command, postgres};

const CALLBACK: &str = "https://app.example.com/callback";

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Both replicas present one issuer, as they would behind one load balancer address.
fn start(database_url: &str, port: u16, issuer: &str) -> Replica {
    let child = clean_command()
        .env("VALET_DATABASE_URL", database_url)
        .env("VALET_SECRET", TEST_SECRET)
        .env("VALET_LISTEN", format!("127.0.0.1:{port}"))
        .env("VALET_ISSUER", issuer)
        .env("VALET_KEYS__RELOAD_INTERVAL", "1s")
        .env("VALET_CLIENTS__CACHE_TTL", "1s")
        .env("VALET_PASSWORD_HASH__MEMORY_KIB", "1024")
        .env("VALET_PASSWORD_HASH__ITERATIONS", "1")
        .arg("serve")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(http: &reqwest::Client, replica: &Replica) {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/readyz", replica.base)).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} never became ready",
            replica.base
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn cli(database_url: &str, args: &[&str]) -> Value {
    let out = clean_command()
        .env("VALET_DATABASE_URL", database_url)
        .env("VALET_SECRET", TEST_SECRET)
        .env("VALET_PASSWORD_HASH__MEMORY_KIB", "1024")
        .env("VALET_PASSWORD_HASH__ITERATIONS", "1")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "valet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    auth: (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(format!("{base}/token"))
        .header("authorization", basic_header(auth.0, auth.1))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn introspect(http: &reqwest::Client, base: &str, auth: (&str, &str), token: &str) -> Value {
    http.post(format!("{base}/introspect"))
        .header("authorization", basic_header(auth.0, auth.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Verify `token` against `base`'s JWKS.
async fn verifies_at(http: &reqwest::Client, base: &str, issuer: &str, token: &str) -> bool {
    let jwks: jsonwebtoken::jwk::JwkSet = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let Some(jwk) = jwks.find(header.kid.as_deref().unwrap()) else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[CONTACTS]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_every_flow() {
    let db = postgres::fresh_database().await;
    let (port_a, port_b) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{port_a}");
    // Started together on a fresh database: their migrations and first keys must not collide.
    let a = start(&db.url, port_a, &issuer);
    let b = start(&db.url, port_b, &issuer);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    wait_ready(&browser, &a).await;
    wait_ready(&browser, &b).await;

    cli(
        &db.url,
        &[
            "api",
            "create",
            "--identifier",
            CONTACTS,
            "--name",
            "Contacts",
            "--scope",
            "read:contacts",
            "--json",
        ],
    );
    let web = cli(
        &db.url,
        &[
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
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--json",
        ],
    );
    let web = (
        web["client_id"].as_str().unwrap().to_owned(),
        web["client_secret"].as_str().unwrap().to_owned(),
    );
    let web_auth = (web.0.as_str(), web.1.as_str());
    let rs = cli(
        &db.url,
        &[
            "client",
            "create",
            "--name",
            "rs",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read:contacts",
            "--audience",
            CONTACTS,
            "--json",
        ],
    );
    let rs_auth = (
        rs["client_id"].as_str().unwrap(),
        rs["client_secret"].as_str().unwrap(),
    );
    cli(
        &db.url,
        &[
            "user",
            "create",
            "--username",
            "alice",
            "--password",
            PASSWORD,
            "--json",
        ],
    );

    // A pending request created at A is signed into and consented at B.
    let pkce = Pkce::new();
    let authorize = |base: &str| {
        let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &web.0)
            .append_pair("audience", CONTACTS)
            .append_pair("state", "s")
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    };
    let response = browser.get(authorize(&a.base)).send().await.unwrap();
    let login_path = location(&response);
    assert!(login_path.starts_with("/login"), "{login_path}");
    let login = browser
        .get(format!("{}{login_path}", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = Form::parse(&login);
    form.set("username", "alice").set("password", PASSWORD);
    let response = browser
        .post(format!("{}/login", b.base))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    let consent_path = location(&response);
    assert!(consent_path.starts_with("/consent"), "{consent_path}");
    let consent = browser
        .get(format!("{}{consent_path}", a.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = Form::parse(&consent);
    form.set("decision", "allow");
    let response = browser
        .post(format!("{}/consent", b.base))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    let params = redirect_params(&location(&response));
    assert_eq!(params["iss"], issuer);

    // The session made at B carries on at A: straight back with a code.
    let response = browser.get(authorize(&a.base)).send().await.unwrap();
    let second_code = redirect_params(&location(&response))["code"].clone();

    // A code issued at A is redeemed at B, and only once across both.
    let redeem = |code: String| {
        let verifier = pkce.verifier.clone();
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("code_verifier", verifier),
        ]
    };
    let form: Vec<(&str, String)> = redeem(params["code"].clone());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = token(&browser, &b.base, web_auth, &form).await;
    assert_eq!(first.status(), 200);
    let tokens: Value = first.json().await.unwrap();
    assert_eq!(
        token(&browser, &a.base, web_auth, &form).await.status(),
        400,
        "the replay at A is refused"
    );
    // The replay revoked what B issued for that code, as A's and B's introspection agree.
    for base in [&a.base, &b.base] {
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(
            introspect(&browser, base, rs_auth, access).await,
            serde_json::json!({"active": false})
        );
    }

    // A refresh token rotated at A is reuse when presented again at B.
    let form: Vec<(&str, String)> = redeem(second_code);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tokens: Value = token(&browser, &b.base, web_auth, &form)
        .await
        .json()
        .await
        .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let rotated = token(
        &browser,
        &a.base,
        web_auth,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let reuse = token(
        &browser,
        &b.base,
        web_auth,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(reuse.status(), 400);
    let successor = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(
        introspect(&browser, &a.base, rs_auth, successor).await["active"],
        false,
        "the family died"
    );

    // A token revoked at A is inactive at B.
    let service: Value = token(
        &browser,
        &a.base,
        rs_auth,
        &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
    )
    .await
    .json()
    .await
    .unwrap();
    let access = service["access_token"].as_str().unwrap();
    assert_eq!(
        introspect(&browser, &b.base, rs_auth, access).await["active"],
        true
    );
    let revoked = browser
        .post(format!("{}/revoke", a.base))
        .header("authorization", basic_header(rs_auth.0, rs_auth.1))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        introspect(&browser, &b.base, rs_auth, access).await,
        serde_json::json!({"active": false})
    );

    // `valet keys rotate` reaches both within the reload interval; tokens from either verify
    // against either JWKS.
    let old_kid = jsonwebtoken::decode_header(access).unwrap().kid.unwrap();
    cli(&db.url, &["keys", "rotate", "--json"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut fresh = Vec::new();
    for base in [&a.base, &b.base] {
        let body: Value = token(
            &browser,
            base,
            rs_auth,
            &[("grant_type", "client_credentials"), ("audience", CONTACTS)],
        )
        .await
        .json()
        .await
        .unwrap();
        let jwt = body["access_token"].as_str().unwrap().to_owned();
        assert_ne!(
            jsonwebtoken::decode_header(&jwt).unwrap().kid.unwrap(),
            old_kid,
            "{base} signs with the new key"
        );
        fresh.push(jwt);
    }
    for jwt in fresh.iter().chain([&access.to_owned()]) {
        for base in [&a.base, &b.base] {
            assert!(
                verifies_at(&browser, base, &issuer, jwt).await,
                "a token does not verify at {base}"
            );
        }
    }
    drop((a, b));
}

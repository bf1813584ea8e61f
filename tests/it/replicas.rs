//! Two `valet serve` processes over one PostgreSQL database, as behind a load balancer: every
//! piece of state one replica creates, the other continues; single-use things stay single-use
//! across both, also when both are asked for them at the same moment (an approved device code,
//! a pushed request's `request_uri`, a client assertion's `jti`); key rotation reaches both.
//! Then the same behind a real nginx running the `nginx.conf` of docs/deploy.md: a whole flow
//! through it, forwarded client addresses and request ids, and a replica stopped under it.

use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use valet::domain::{GrantType, SigningAlg};

use crate::device::DEVICE_GRANT;
use crate::harness::fixtures::{
    CALLBACK, Creds, NewClient, PASSWORD, create_confidential_client, create_contacts_api,
    create_private_key_jwt_client, create_service_client, create_user, create_web_client, kid,
    rotate_signing_key, verify_at,
};
use crate::harness::flow::{Form, Pkce, code_request_url, location, redirect_params};
use crate::harness::process::{Serve, ServerProcess};
use crate::harness::{CONTACTS, basic_header, browser, core_over, free_port, postgres};
use crate::private_key_jwt::{JWT_BEARER, TestKey, jwks};

/// Start the replicas named by `serves` together, then wait until each is ready: started
/// together on a fresh database, their migrations and first keys must not collide.
async fn start_replicas<const N: usize>(serves: [Serve; N]) -> [ServerProcess; N] {
    let mut replicas = serves.map(Serve::start);
    for replica in &mut replicas {
        replica.wait_ready().await;
    }
    replicas
}

/// The Contacts API, a confidential web client (code + refresh), a client_credentials
/// client and the user alice, written into the replicas' store.
struct Clients {
    web: Creds,
    rs: Creds,
}

async fn register(database_url: &str) -> Clients {
    let core = core_over(database_url).await;
    create_contacts_api(&core).await;
    let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
    let web = NewClient::web(CALLBACK, "read:contacts").grants(&grants);
    let web = create_web_client(&core, web).await.creds();
    let rs = create_service_client(&core, "read:contacts").await;
    create_user(&core, "alice").await;
    Clients { web, rs }
}

/// The token request that redeems `code` with the PKCE verifier.
fn redemption<'a>(code: &'a str, pkce: &'a Pkce) -> [(&'static str, &'a str); 3] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", &pkce.verifier),
    ]
}

/// The HTML of the page at `url`, which must answer 200.
async fn page(browser: &reqwest::Client, url: &str) -> String {
    let response = browser.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.unwrap()
}

/// POST a page's form to `url`.
async fn submit(browser: &reqwest::Client, url: &str, form: &Form) -> reqwest::Response {
    browser.post(url).form(&form.fields).send().await.unwrap()
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    client: &Creds,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(format!("{base}/token"))
        .header("authorization", basic_header(&client.id, &client.secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// A client_credentials token request for the Contacts API at `base`.
async fn service_token(http: &reqwest::Client, base: &str, client: &Creds) -> reqwest::Response {
    let form = [("grant_type", "client_credentials"), ("audience", CONTACTS)];
    token(http, base, client, &form).await
}

async fn introspect(http: &reqwest::Client, base: &str, caller: &Creds, token: &str) -> Value {
    http.post(format!("{base}/introspect"))
        .header("authorization", basic_header(&caller.id, &caller.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_every_flow() {
    let db = postgres::fresh_database().await;
    // Both present A's address as the issuer, as they would one load balancer's.
    let serve_a = Serve::over(&db.url);
    let issuer = serve_a.base();
    let [a, b] = start_replicas([serve_a, Serve::over(&db.url).issuer(&issuer)]).await;
    let browser = browser();

    let Clients { web, rs } = register(&db.url).await;

    // A pending request created at A is signed into and consented at B.
    let pkce = Pkce::new();
    let authorize = code_request_url(&a.base, &web.id, &pkce, "s");
    let response = browser.get(&authorize).send().await.unwrap();
    let login_path = location(&response);
    assert!(login_path.starts_with("/login"), "{login_path}");
    let mut form = Form::parse(&page(&browser, &b.url(&login_path)).await);
    form.set("username", "alice").set("password", PASSWORD);
    let response = submit(&browser, &b.url("/login"), &form).await;
    let consent_path = location(&response);
    assert!(consent_path.starts_with("/consent"), "{consent_path}");
    let mut form = Form::parse(&page(&browser, &a.url(&consent_path)).await);
    form.set("decision", "allow");
    let response = submit(&browser, &b.url("/consent"), &form).await;
    let params = redirect_params(&location(&response));
    assert_eq!(params["iss"], issuer);

    // The session made at B carries on at A: straight back with a code.
    let response = browser.get(&authorize).send().await.unwrap();
    let second_code = redirect_params(&location(&response))["code"].clone();

    // A code issued at A is redeemed at B, and only once across both.
    let form = redemption(&params["code"], &pkce);
    let first = token(&browser, &b.base, &web, &form).await;
    assert_eq!(first.status(), 200);
    let tokens: Value = first.json().await.unwrap();
    assert_eq!(
        token(&browser, &a.base, &web, &form).await.status(),
        400,
        "the replay at A is refused"
    );
    // The replay revoked what B issued for that code, as A's and B's introspection agree.
    for base in [&a.base, &b.base] {
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(
            introspect(&browser, base, &rs, access).await,
            serde_json::json!({"active": false})
        );
    }

    // A refresh token rotated at A is reuse when presented again at B.
    let form = redemption(&second_code, &pkce);
    let tokens: Value = token(&browser, &b.base, &web, &form)
        .await
        .json()
        .await
        .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let rotated = token(&browser, &a.base, &web, &refresh_form).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let reuse = token(&browser, &b.base, &web, &refresh_form).await;
    assert_eq!(reuse.status(), 400);
    let successor = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(
        // Only its own client may introspect a refresh token (RFC 7662 §4).
        introspect(&browser, &a.base, &web, successor).await["active"],
        false,
        "the family died"
    );

    // A token revoked at A is inactive at B.
    let service: Value = service_token(&browser, &a.base, &rs)
        .await
        .json()
        .await
        .unwrap();
    let access = service["access_token"].as_str().unwrap();
    assert_eq!(
        introspect(&browser, &b.base, &rs, access).await["active"],
        true
    );
    let revoked = browser
        .post(a.url("/revoke"))
        .header("authorization", basic_header(&rs.id, &rs.secret))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        introspect(&browser, &b.base, &rs, access).await,
        serde_json::json!({"active": false})
    );

    // `valet keys rotate` reaches both within the reload interval (1 s), 2.5 s at the most;
    // tokens from either verify against either JWKS.
    let new_kid = rotate_signing_key(&core_over(&db.url).await, SigningAlg::RS256).await;
    let rotated_at = Instant::now();
    let mut fresh = Vec::new();
    for base in [&a.base, &b.base] {
        let jwt = loop {
            let body: Value = service_token(&browser, base, &rs)
                .await
                .json()
                .await
                .unwrap();
            let jwt = body["access_token"].as_str().unwrap().to_owned();
            if kid(&jwt) == new_kid {
                break jwt;
            }
            assert!(
                rotated_at.elapsed() < Duration::from_millis(2500),
                "{base} signs with the new key"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        fresh.push(jwt);
    }
    for jwt in fresh.iter().chain([&access.to_owned()]) {
        for base in [&a.base, &b.base] {
            let verified = verify_at(&browser, base, &issuer, jwt, CONTACTS).await;
            assert!(
                verified.is_ok(),
                "a token does not verify at {base}: {verified:?}"
            );
        }
    }
    drop((a, b));
}

/// How many times each replica is asked for the same single-use thing at once.
const RACERS_EACH: usize = 4;

/// Replicas A and B over a fresh database, both presenting A's address as the issuer (as
/// behind one load balancer), and the fixtures of [`register`].
async fn two_replicas(db: &postgres::DatabaseGuard) -> ([ServerProcess; 2], Clients) {
    let serve_a = Serve::over(&db.url);
    let issuer = serve_a.base();
    let replicas = start_replicas([serve_a, Serve::over(&db.url).issuer(&issuer)]).await;
    let clients = register(&db.url).await;
    (replicas, clients)
}

/// Send [`RACERS_EACH`] copies of one request to each replica, A and B in turn, all at once
/// (each on its own task, none awaited before the last is sent); the answers with the base
/// URL of the replica that gave each.
async fn race<F, R>(replicas: &[ServerProcess; 2], request: F) -> Vec<(String, reqwest::Response)>
where
    F: Fn(&str) -> R,
    R: Future<Output = reqwest::Response> + Send + 'static,
{
    let tasks: Vec<_> = (0..RACERS_EACH)
        .flat_map(|_| replicas.iter())
        .map(|replica| {
            let response = request(&replica.base);
            (replica.base.clone(), tokio::spawn(response))
        })
        .collect();
    let mut answers = Vec::new();
    for (base, task) in tasks {
        answers.push((base, task.await.expect("request task")));
    }
    answers
}

/// Of the raced answers, the one with status `winner` (there must be exactly one), and the
/// error codes of all the others, which must each have status `loser`.
async fn one_winner(
    answers: Vec<(String, reqwest::Response)>,
    winner: u16,
    loser: u16,
) -> ((String, Value), Vec<String>) {
    let mut won = Vec::new();
    let mut lost = Vec::new();
    let mut statuses = Vec::new();
    for (base, response) in answers {
        let status = response.status().as_u16();
        statuses.push((base.clone(), status));
        let body: Value = response.json().await.unwrap_or_default();
        if status == winner {
            won.push((base, body));
        } else {
            assert_eq!(
                status, loser,
                "an answer from {base}: {body} (all: {statuses:?})"
            );
            lost.push(body["error"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(won.len(), 1, "exactly one {winner}: {statuses:?}");
    assert_eq!(lost.len(), 2 * RACERS_EACH - 1);
    (won.pop().unwrap(), lost)
}

/// RFC 8628 §3.5 across replicas: a device code the person approved is polled on both
/// replicas at once; one poll gets the tokens, every other is `invalid_grant`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_device_code_is_spent_once_across_replicas() {
    let db = postgres::fresh_database().await;
    let (replicas, _) = two_replicas(&db).await;
    let [a, b] = &replicas;
    let tv = NewClient::confidential("TV", &[GrantType::DeviceCode], "").without_audience();
    let tv = create_confidential_client(&core_over(&db.url).await, tv).await;
    let browser = browser();

    // The device starts at A; the person enters the code at B, signs in at A, allows at B.
    let started: Value = browser
        .post(a.url("/device_authorization"))
        .header("authorization", basic_header(&tv.id, &tv.secret))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = started["device_code"].as_str().expect("a device code");
    let user_code = started["user_code"].as_str().expect("a user code");
    let form =
        Form::parse(&page(&browser, &b.url(&format!("/device?user_code={user_code}"))).await);
    assert_eq!(form.get("user_code"), Some(user_code));
    let response = submit(&browser, &b.url(&form.action), &form).await;
    let login_path = location(&response);
    assert!(login_path.starts_with("/login"), "{login_path}");
    let mut form = Form::parse(&page(&browser, &a.url(&login_path)).await);
    form.set("username", "alice").set("password", PASSWORD);
    let response = submit(&browser, &a.url(&form.action), &form).await;
    let consent_path = location(&response);
    assert!(consent_path.starts_with("/consent"), "{consent_path}");
    let mut form = Form::parse(&page(&browser, &b.url(&consent_path)).await);
    form.set("decision", "allow");
    let response = submit(&browser, &b.url(&form.action), &form).await;
    assert_eq!(response.status(), 200);
    let done = response.text().await.unwrap();
    assert!(done.contains("Your device is connected"), "{done}");

    // The device's polls, on both replicas at once.
    let answers = race(&replicas, |base| {
        let request = browser
            .post(format!("{base}/token"))
            .header("authorization", basic_header(&tv.id, &tv.secret))
            .form(&[("grant_type", DEVICE_GRANT), ("device_code", device_code)]);
        async move { request.send().await.unwrap() }
    })
    .await;
    let ((_, tokens), errors) = one_winner(answers, 200, 400).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    assert!(tokens["id_token"].is_string(), "{tokens}");
    assert!(
        errors.iter().all(|e| e == "invalid_grant"),
        "every other poll is invalid_grant: {errors:?}"
    );
}

/// RFC 9126 §4 across replicas: one pushed request's `request_uri` taken to `/authorize` on
/// both replicas at once by one browser; one request goes on to the login page, every other
/// is refused with a page (no redirect); the request that went on finishes at the other
/// replica with the pushed `state`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_uri_is_taken_once_across_replicas() {
    let db = postgres::fresh_database().await;
    let (replicas, Clients { web, .. }) = two_replicas(&db).await;
    let [a, b] = &replicas;
    let browser = browser();
    let pkce = Pkce::new();
    let pushed = browser
        .post(b.url("/par"))
        .header("authorization", basic_header(&web.id, &web.secret))
        .form(&[
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "read:contacts"),
            ("audience", CONTACTS),
            ("state", "pushed-state"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 201);
    let pushed: Value = pushed.json().await.unwrap();
    let request_uri = pushed["request_uri"].as_str().expect("a request_uri");

    let answers = race(&replicas, |base| {
        let request = browser
            .get(format!("{base}/authorize"))
            .query(&[("client_id", web.id.as_str()), ("request_uri", request_uri)]);
        async move { request.send().await.unwrap() }
    })
    .await;
    let mut went_on = Vec::new();
    let mut statuses = Vec::new();
    for (base, response) in answers {
        statuses.push(response.status().as_u16());
        match response.status().as_u16() {
            303 => went_on.push((base, location(&response))),
            400 => {
                assert!(response.headers().get("location").is_none());
                let text = response.text().await.unwrap();
                assert!(text.contains("<html"), "a page, not a redirect: {text}");
            }
            other => panic!("{other} from {base} (all: {statuses:?})"),
        }
    }
    assert_eq!(went_on.len(), 1, "exactly one went on: {statuses:?}");
    assert_eq!(statuses.len(), 2 * RACERS_EACH);
    let (winner, login_path) = went_on.pop().unwrap();
    assert!(login_path.starts_with("/login"), "{login_path}");

    // The request that went on is the pushed one: it ends, at the other replica, with the
    // pushed state and a code.
    let other = if winner == a.base { b } else { a };
    let mut form = Form::parse(&page(&browser, &other.url(&login_path)).await);
    form.set("username", "alice").set("password", PASSWORD);
    let response = submit(&browser, &other.url(&form.action), &form).await;
    let consent_path = location(&response);
    assert!(consent_path.starts_with("/consent"), "{consent_path}");
    let mut form = Form::parse(&page(&browser, &other.url(&consent_path)).await);
    form.set("decision", "allow");
    let response = submit(&browser, &other.url(&form.action), &form).await;
    let params = redirect_params(&location(&response));
    assert_eq!(params["state"], "pushed-state", "{params:?}");
    // The pushed request sent redirect_uri, so the redemption must too (RFC 6749 §4.1.3).
    let mut form = redemption(&params["code"], &pkce).to_vec();
    form.push(("redirect_uri", CALLBACK));
    let redeemed = token(&browser, &winner, &web, &form).await;
    let status = redeemed.status();
    let body: Value = redeemed.json().await.unwrap();
    assert_eq!(status, 200, "the code redeems at {winner}: {body}");
}

/// RFC 7523 §3 across replicas: one `private_key_jwt` assertion sent to `/token` on both
/// replicas at once; one request is served, every other is `invalid_client` (its `jti` was
/// used).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_assertion_is_used_once_across_replicas() {
    let db = postgres::fresh_database().await;
    let (replicas, _) = two_replicas(&db).await;
    let [a, _] = &replicas;
    let key = TestKey::new("ES256");
    let signed =
        NewClient::confidential("signed", &[GrantType::ClientCredentials], "read:contacts")
            .jwks(&jwks(&[&key]));
    let client_id = create_private_key_jwt_client(&core_over(&db.url).await, signed).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // `aud` is the issuer both replicas present, A's address.
    let assertion = key.sign(&serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": a.base,
        "exp": now + 60,
        "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(),
    }));
    let browser = browser();
    let answers = race(&replicas, |base| {
        let request = browser.post(format!("{base}/token")).form(&[
            ("grant_type", "client_credentials"),
            ("audience", CONTACTS),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ]);
        async move { request.send().await.unwrap() }
    })
    .await;
    let ((_, body), errors) = one_winner(answers, 200, 401).await;
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(
        errors.iter().all(|e| e == "invalid_client"),
        "every other request is invalid_client: {errors:?}"
    );
}

/// nginx in a throwaway prefix, stopped (with its workers) on drop.
struct Nginx {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops the workers too; SIGKILL would leave them orphaned.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the access log: what nginx answered and which upstreams it tried, in order.
#[derive(Debug)]
struct Access {
    request_id: String,
    status: String,
    upstreams: Vec<(String, String)>,
    method: String,
    uri: String,
}

impl Nginx {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn access_log(&self) -> Vec<Access> {
        // Whole lines only: one may be half written.
        self.file("access.log")
            .split_inclusive('\n')
            .filter_map(|line| line.strip_suffix('\n'))
            .map(|line| {
                let f: Vec<&str> = line.split('|').collect();
                assert_eq!(f.len(), 6, "{line}");
                let list = |s: &str| s.split(", ").map(str::to_owned).collect::<Vec<_>>();
                Access {
                    request_id: f[0].to_owned(),
                    status: f[1].to_owned(),
                    upstreams: list(f[2]).into_iter().zip(list(f[3])).collect(),
                    method: f[4].to_owned(),
                    uri: f[5].to_owned(),
                }
            })
            .collect()
    }

    /// The access log line of a request. nginx writes it after sending the response, so it
    /// may take a moment to appear.
    async fn access(&self, request_id: &str) -> Access {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .access_log()
                .into_iter()
                .find(|a| a.request_id == request_id)
            {
                return line;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "request {request_id} is not in nginx's access log:\n{}",
                self.file("access.log")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// nginx from PATH or Debian's /usr/sbin/nginx. Its absence fails the test: `.ci/run`
/// installs it.
fn nginx_binary() -> PathBuf {
    std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
        .expect(
            "nginx is not installed (apt-get install nginx; .ci/run installs it): this test runs \
             the nginx.conf of docs/deploy.md and is never skipped",
        )
}

/// The `nginx.conf` block of docs/deploy.md, run as written except for what cannot be the
/// same here: the replicas' addresses, a plain-HTTP local listener instead of 443 with TLS.
fn documented_nginx_conf(a: &ServerProcess, b: &ServerProcess, port: u16) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy.md")).unwrap();
    let conf = doc
        .split_once("`nginx.conf`:")
        .and_then(|(_, rest)| rest.split_once("```nginx\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("docs/deploy.md has an `nginx.conf`: heading followed by an ```nginx block")
        .0;
    let mut conf = conf.to_owned();
    for (from, to) in [
        ("server valet-1:8080 ", format!("server {} ", a.addr())),
        ("server valet-2:8080 ", format!("server {} ", b.addr())),
        ("listen 443 ssl;", format!("listen 127.0.0.1:{port};")),
    ] {
        assert_eq!(
            conf.matches(from).count(),
            1,
            "docs/deploy.md's nginx.conf should contain `{from}` once: the test adapts that line"
        );
        conf = conf.replacen(from, &to, 1);
    }
    let lines = conf.lines().count();
    conf = conf
        .lines()
        .filter(|line| !line.trim_start().starts_with("ssl_certificate"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        lines - conf.lines().count(),
        2,
        "the two ssl_certificate lines are the only ones dropped"
    );
    assert!(!conf.contains("ssl"), "no TLS left in:\n{conf}");
    conf
}

async fn start_nginx(
    a: &ServerProcess,
    b: &ServerProcess,
    port: u16,
    http: &reqwest::Client,
) -> Nginx {
    let binary = nginx_binary();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let documented = documented_nginx_conf(a, b, port);
    // The documented file is an http-level include (conf.d/); around it, only what keeps
    // nginx inside the temp dir, and an access log naming every upstream tried.
    let conf = format!(
        "user root;
worker_processes 1;
pid {d}/nginx.pid;
lock_file {d}/nginx.lock;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$request_id|$status|$upstream_addr|$upstream_status|$request_method|$uri';
    access_log {d}/access.log upstreams;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

{documented}
}}
"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let output = File::create(dir.path().join("output.log")).unwrap();
    let child = Command::new(&binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .args(["-g", "daemon off;"])
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let mut nginx = Nginx {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let started = Instant::now();
    loop {
        if let Some(status) = nginx.child.try_wait().unwrap() {
            panic!(
                "nginx exited ({status}):\n{}{}",
                nginx.file("output.log"),
                nginx.file("error.log")
            );
        }
        if let Ok(r) = http.get(nginx.url("/healthz")).send().await
            && r.status() == 200
        {
            return nginx;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx never answered:\n{}",
            nginx.file("error.log")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `X-Request-Id` of a response.
fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("X-Request-Id in the response")
        .to_str()
        .unwrap()
        .to_owned()
}

/// `valet_http_requests_total` of one replica, asked directly, without the probes and scrapes
/// the test itself sends there.
async fn proxied_requests(http: &reqwest::Client, replica: &ServerProcess) -> u64 {
    let text = http
        .get(format!("{}/metrics", replica.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("valet_http_requests_total{"))
        .filter(|l| !l.contains("route=\"/readyz\"") && !l.contains("route=\"/metrics\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

async fn limiter_keys(database_url: &str) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    sqlx::query_scalar("SELECT limiter_key FROM login_failures ORDER BY limiter_key")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// The production topology of docs/deploy.md, run for real: both replicas behind nginx with
/// its documented `upstream` and `location` blocks, and the client talking to nginx only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_the_documented_nginx() {
    // No nginx fails the test here, before anything is started.
    nginx_binary();
    let db = postgres::fresh_database().await;
    let nginx_port = free_port();
    let direct = reqwest::Client::builder().no_proxy().build().unwrap();
    // The public URL is nginx's.
    let issuer = format!("http://127.0.0.1:{nginx_port}");
    let replica = || {
        Serve::over(&db.url)
            .issuer(&issuer)
            .env("VALET_HTTP__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)
            .env("VALET_HTTP__SHUTDOWN_DELAY", "2s")
            .env("VALET_LOG_FORMAT", "json")
    };
    let [mut a, b] = start_replicas([replica(), replica()]).await;
    let Clients { web, rs } = register(&db.url).await;
    // The browser connects from 127.0.0.2 and nginx to the replicas from 127.0.0.1 (the
    // trusted proxy), so the client address the replicas see is visibly the forwarded one.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .no_proxy()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let nginx = start_nginx(&a, &b, nginx_port, &browser).await;

    // Authorization code + PKCE with the login and consent forms: cookies and CSRF tokens work
    // through the proxy whichever replica serves each step.
    let pkce = Pkce::new();
    let authorize = code_request_url(&nginx.base, &web.id, &pkce, "s");
    let response = browser.get(&authorize).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let login_path = location(&response);
    assert!(login_path.starts_with("/login"), "{login_path}");
    let mut form = Form::parse(&page(&browser, &nginx.url(&login_path)).await);

    // A wrong password, with a forged X-Forwarded-For and a forged `Forwarded` (security
    // review finding 5): the limiter counts the address nginx saw (127.0.0.2), neither
    // nginx's own nor a forged one.
    form.set("username", "alice")
        .set("password", "not the password");
    let response = browser
        .post(nginx.url(&form.action))
        .header("x-forwarded-for", "203.0.113.7")
        .header("forwarded", "for=198.51.100.9")
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        limiter_keys(&db.url).await,
        ["addr:127.0.0.2", "user:alice"]
    );
    let mut form = Form::parse(&response.text().await.unwrap());
    form.set("username", "alice").set("password", PASSWORD);
    let response = submit(&browser, &nginx.url(&form.action), &form).await;
    assert_eq!(response.status(), 303);
    let consent_path = location(&response);
    assert!(consent_path.starts_with("/consent"), "{consent_path}");
    let mut form = Form::parse(&page(&browser, &nginx.url(&consent_path)).await);
    form.set("decision", "allow");
    let response = submit(&browser, &nginx.url(&form.action), &form).await;
    assert_eq!(response.status(), 303);
    let params = redirect_params(&location(&response));
    assert_eq!(params["iss"], issuer);
    assert_eq!(params["state"], "s");

    // The code redeemed, the refresh token rotated, a service token: all through nginx.
    let form = redemption(&params["code"], &pkce);
    let response = token(&browser, &nginx.base, &web, &form).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let response = token(
        &browser,
        &nginx.base,
        &web,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let refreshed: Value = response.json().await.unwrap();
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
    let service = || service_token(&browser, &nginx.base, &rs);
    let response = service().await;
    assert_eq!(response.status(), 200);
    let service_token: Value = response.json().await.unwrap();
    for (access, client_id) in [
        (&refreshed["access_token"], web.id.as_str()),
        (&service_token["access_token"], rs.id.as_str()),
    ] {
        let introspection = introspect(&browser, &nginx.base, &rs, access.as_str().unwrap()).await;
        assert_eq!(introspection["active"], true, "{introspection}");
        assert_eq!(introspection["client_id"], client_id);
        assert_eq!(introspection["iss"], issuer);
    }

    // nginx's request id replaces the client's, reaches the replica (its log line has it, with
    // the forwarded client address) and comes back in the response.
    let response = browser
        .get(nginx.url("/.well-known/openid-configuration"))
        .header("x-request-id", "chosen-by-the-client")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    assert!(
        id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "not nginx's $request_id: {id}"
    );
    let discovery: Value = response.json().await.unwrap();
    assert_eq!(discovery["issuer"], issuer);
    assert_eq!(nginx.access(&id).await.status, "200");
    let logged: Vec<Value> = [a.log_lines(), b.log_lines()]
        .concat()
        .into_iter()
        .filter(|line| line["span"]["request_id"] == id.as_str())
        .collect();
    assert!(!logged.is_empty(), "no replica logged request {id}");
    for line in &logged {
        assert_eq!(line["span"]["client"], "127.0.0.2", "{line}");
    }

    // The documented `location = /metrics` keeps metrics off the public side.
    let response = browser.get(nginx.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 403);

    // Round robin: both replicas served the client.
    for replica in [&a, &b] {
        assert!(
            proxied_requests(&direct, replica).await > 0,
            "{} served nothing through nginx",
            replica.base
        );
    }
    let served: std::collections::HashSet<String> = nginx
        .access_log()
        .into_iter()
        .filter_map(|line| line.upstreams.last().map(|u| u.0.clone()))
        .collect();
    assert!(
        served.contains(&a.addr()) && served.contains(&b.addr()),
        "{served:?}"
    );

    // Failover. A is told to stop: for `shutdown_delay` its /readyz answers 503 while it
    // still serves everything else.
    a.sigterm();
    let signalled = Instant::now();
    while direct.get(a.url("/readyz")).send().await.unwrap().status() != 503 {
        assert!(
            signalled.elapsed() < Duration::from_secs(1),
            "A never drained"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Open-source nginx does not poll /readyz, but a 503 from A on /readyz is retried on B
    // (`proxy_next_upstream … http_503`): through nginx, /readyz stays 200. Two in a row, so
    // round robin sends one of them to A.
    let mut during_delay = Vec::new();
    for _ in 0..2 {
        let response = browser.get(nginx.url("/readyz")).send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "/readyz through nginx while A drains: its 503 must be retried on B"
        );
        during_delay.push(request_id(&response));
    }
    for _ in 0..2 {
        let response = service().await;
        assert_eq!(response.status(), 200);
        let response = browser
            .get(nginx.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(
        signalled.elapsed() < Duration::from_millis(1500),
        "the requests meant for A's shutdown delay (2 s) took until {:?}",
        signalled.elapsed()
    );
    let mut retried = Vec::new();
    for id in &during_delay {
        retried.push(nginx.access(id).await);
    }
    assert!(
        retried
            .iter()
            .any(|line| line.upstreams
                == [(a.addr(), "503".to_owned()), (b.addr(), "200".to_owned())]),
        "no /readyz went to A and was retried on B: {retried:?}"
    );

    // Then A closes its listener, finishes (nothing is in flight) and exits 0.
    let within = Duration::from_secs(10).saturating_sub(signalled.elapsed());
    let exited = a.exit_status(within).await;
    assert_eq!(exited.code(), Some(0), "A after SIGTERM");

    // Now A refuses connections: nginx retries every request on B, POSTs included, since none
    // was sent to A. A is not yet out of rotation (one failure of max_fails=2), so one of the
    // first two token requests tries A first.
    let mut after_exit = Vec::new();
    for _ in 0..3 {
        let response = service().await;
        assert_eq!(response.status(), 200);
        after_exit.push(request_id(&response));
    }
    for path in ["/readyz", "/.well-known/openid-configuration", "/healthz"] {
        let response = browser.get(nginx.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        after_exit.push(request_id(&response));
    }
    let mut lines = Vec::new();
    for id in &after_exit {
        lines.push(nginx.access(id).await);
    }
    let after_exit = lines;
    for line in &after_exit {
        assert_eq!(line.status, "200", "{line:?}");
        assert_eq!(
            line.upstreams.last().unwrap(),
            &(b.addr(), "200".to_owned()),
            "{line:?}"
        );
    }
    assert!(
        after_exit[..2].iter().any(|line| line.method == "POST"
            && line.uri == "/token"
            && line.upstreams == [(a.addr(), "502".to_owned()), (b.addr(), "200".to_owned())]),
        "no token request tried the stopped A and was retried on B: {after_exit:?}"
    );
    drop(nginx);
    drop((a, b));
}

/// Behind the documented nginx, replica A is killed with SIGKILL in the middle of a burst of
/// token requests: whatever answer reached the client was committed, so every refresh token
/// handed out before the kill still works (on B), and nginx keeps serving from B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_load_behind_nginx_loses_no_committed_grant() {
    nginx_binary();
    let db = postgres::fresh_database().await;
    let nginx_port = free_port();
    let issuer = format!("http://127.0.0.1:{nginx_port}");
    let replica = || {
        Serve::over(&db.url)
            .issuer(&issuer)
            .env("VALET_HTTP__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)
    };
    let [mut a, b] = start_replicas([replica(), replica()]).await;
    let direct = reqwest::Client::builder().no_proxy().build().unwrap();
    let nginx = start_nginx(&a, &b, nginx_port, &direct).await;
    let core = core_over(&db.url).await;
    create_contacts_api(&core).await;
    let client = create_confidential_client(
        &core,
        NewClient::confidential(
            "burst",
            &[GrantType::Password, GrantType::RefreshToken],
            "read:contacts",
        ),
    )
    .await;
    for i in 0..24 {
        create_user(&core, &format!("user{i}")).await;
    }
    let authorization = basic_header(&client.id, &client.secret);
    let grant = |username: String| {
        direct
            .post(nginx.url("/token"))
            .header("authorization", &authorization)
            .form(&[
                ("grant_type", "password".to_owned()),
                ("username", username),
                ("password", PASSWORD.to_owned()),
                ("scope", "read:contacts".to_owned()),
                ("audience", CONTACTS.to_owned()),
            ])
            .send()
    };
    let burst: Vec<_> = (0..24)
        .map(|i| {
            let request = grant(format!("user{i}"));
            tokio::spawn(async move {
                let response = request.await.ok()?;
                if response.status() != 200 {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                body["refresh_token"].as_str().map(str::to_owned)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.kill9();
    let mut handed_out = Vec::new();
    for task in burst {
        handed_out.extend(task.await.unwrap());
    }
    assert!(
        !handed_out.is_empty(),
        "some grants were answered before the kill"
    );
    for token in &handed_out {
        let refreshed = direct
            .post(nginx.url("/token"))
            .header("authorization", &authorization)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            refreshed.status(),
            200,
            "a refresh token handed out before A died works on B"
        );
    }
    let after = grant("user0".into()).await.unwrap();
    assert!(
        [200, 400].contains(&after.status().as_u16()),
        "nginx answers from B: {}",
        after.status()
    );
    drop(nginx);
    drop((a, b));
}

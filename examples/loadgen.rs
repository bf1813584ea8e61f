//! The load generator of `bench/run.sh` for the scenarios whose every request needs a fresh
//! credential, which a fixed-request tool such as oha cannot send: code exchange (each code
//! is single-use), refresh with rotation (each refresh token is single-use) and the mixed run.
//! Credentials come from the real flows: one sign-in through the login page, then
//! `/authorize` with that session for each code, as a signed-in user's browser does.
//!
//! Scenarios (`LOADGEN_SCENARIO`):
//! - `code`: mint `LOADGEN_CODES` (10,000) codes first, then redeem them with PKCE at
//!   `LOADGEN_CONCURRENCY`; the first tenth is the warm-up. The codes must outlive the
//!   minting: bench/run.sh gives its server `tokens.code_ttl` = 10 min.
//! - `refresh`: each connection redeems one code for a refresh token, then refreshes in a
//!   chain, each answer's new refresh token the next request's, for `LOADGEN_SECONDS` after
//!   `LOADGEN_WARMUP` seconds.
//! - `password`: the password grant flat out, connection `i` signing in as user
//!   `{username}-{i % LOADGEN_USERS}` (many people signing in, as the login limiter counts
//!   attempts per user), for `LOADGEN_SECONDS` after `LOADGEN_WARMUP` seconds.
//! - `mixed`: client_credentials 30 %, introspection 25 %, userinfo 15 %, refresh 15 %,
//!   a code flow with a signed-in session 10 % (authorize + exchange), JWKS 5 %.
//!
//! The code scenario and the mix ask for `openid profile offline_access read:contacts` (a
//! sign-in: each redemption signs an ID token and an access token); the refresh scenario for
//! `offline_access read:contacts` (an API client: one signature per refresh). `LOADGEN_SCOPE`
//! overrides it.
//!
//! Other environment: `LOADGEN_BASE` (Valet's URL), `LOADGEN_SETUP` (a JSON file: `web`
//! {client_id, client_secret, redirect_uri}, `service` {client_id, client_secret},
//! `audience`, `username`, `password`, and for `password` `app` {client_id, client_secret}). Every answer is checked; prints one JSON object:
//! requests, seconds, rps, p50/p99/p99.9 in ms, errors (with the first few), and per
//! operation for the mixed run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};

mod common;
use common::{CodeRequest, authorize, basic, browser, client_credentials, env, expect_json};

struct Setup {
    base: String,
    web: (String, String),
    redirect_uri: String,
    service: (String, String),
    /// A client allowed the password grant, if the setup has one.
    app: Option<(String, String)>,
    users: usize,
    audience: String,
    user: (String, String),
    /// What each code asks for: with `openid` a redemption signs an ID token beside the
    /// access token (and so does each refresh).
    scope: String,
    /// The signed-in browser every code is minted with.
    browser: reqwest::Client,
    /// Keep-alive connections for the measured requests.
    http: reqwest::Client,
}

/// Latencies (µs) per operation and errors, merged from every task at the end.
#[derive(Default)]
struct Tally {
    latencies: HashMap<&'static str, Vec<u32>>,
    errors: u64,
    first_errors: Vec<String>,
}

impl Tally {
    fn record(&mut self, op: &'static str, started: Instant, outcome: &Result<(), String>) {
        let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        self.latencies.entry(op).or_default().push(micros);
        if let Err(e) = outcome {
            self.errors += 1;
            if self.first_errors.len() < 5 {
                self.first_errors.push(format!("{op}: {e}"));
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        for (op, mut l) in other.latencies {
            self.latencies.entry(op).or_default().append(&mut l);
        }
        self.errors += other.errors;
        for e in other.first_errors {
            if self.first_errors.len() < 5 {
                self.first_errors.push(e);
            }
        }
    }
}

type Outcome = Result<(), String>;

#[tokio::main]
async fn main() {
    let file = env("LOADGEN_SETUP", "loadgen.json");
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("LOADGEN_SETUP"))
        .expect("LOADGEN_SETUP is JSON");
    let s = |v: &Value| v.as_str().expect("a string in LOADGEN_SETUP").to_owned();
    let concurrency: usize = env("LOADGEN_CONCURRENCY", "64").parse().unwrap();
    let scenario = env("LOADGEN_SCENARIO", "code");
    // An API client refreshes for API access only; the sign-in and the mix are OpenID
    // Connect (UserInfo needs `openid`).
    let default_scope = match scenario.as_str() {
        "refresh" => "offline_access read:contacts",
        _ => "openid profile offline_access read:contacts",
    };
    let setup = Arc::new(Setup {
        base: env("LOADGEN_BASE", "http://127.0.0.1:8080"),
        web: (s(&raw["web"]["client_id"]), s(&raw["web"]["client_secret"])),
        redirect_uri: s(&raw["web"]["redirect_uri"]),
        service: (
            s(&raw["service"]["client_id"]),
            s(&raw["service"]["client_secret"]),
        ),
        app: raw
            .get("app")
            .map(|app| (s(&app["client_id"]), s(&app["client_secret"]))),
        users: env("LOADGEN_USERS", "64").parse().unwrap(),
        audience: s(&raw["audience"]),
        user: (s(&raw["username"]), s(&raw["password"])),
        scope: env("LOADGEN_SCOPE", default_scope),
        browser: browser(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(concurrency)
            .build()
            .unwrap(),
    });
    if scenario != "password" {
        // Sign in once; every later /authorize rides on this session.
        mint_code(&setup).await.expect("the first sign-in");
    }

    let seconds: f64 = env("LOADGEN_SECONDS", "20").parse().unwrap();
    let warmup: f64 = env("LOADGEN_WARMUP", "3").parse().unwrap();
    let (tally, measured) = match scenario.as_str() {
        "code" => {
            let count: usize = env("LOADGEN_CODES", "10000").parse().unwrap();
            code_exchange(&setup, concurrency, count).await
        }
        "refresh" | "mixed" | "password" => {
            timed(&setup, concurrency, warmup, seconds, &scenario).await
        }
        other => panic!("unknown LOADGEN_SCENARIO {other}"),
    };
    println!("{}", report(&scenario, tally, measured));
}

fn report(scenario: &str, tally: Tally, seconds: f64) -> Value {
    let mut all: Vec<u32> = Vec::new();
    let mut per_op = serde_json::Map::new();
    for (op, mut l) in tally.latencies {
        l.sort_unstable();
        per_op.insert(op.to_owned(), percentiles(&l, seconds));
        all.extend(l);
    }
    all.sort_unstable();
    let mut out = percentiles(&all, seconds);
    out["scenario"] = json!(scenario);
    out["seconds"] = json!(seconds);
    out["errors"] = json!(tally.errors);
    out["first_errors"] = json!(tally.first_errors);
    out["per_operation"] = Value::Object(per_op);
    out
}

fn percentiles(sorted: &[u32], seconds: f64) -> Value {
    let at = |q: f64| {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        f64::from(sorted[i]) / 1000.0
    };
    json!({
        "requests": sorted.len(),
        "rps": sorted.len() as f64 / seconds,
        "p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999),
    })
}

fn code_request(s: &Setup) -> CodeRequest<'_> {
    CodeRequest {
        client_id: &s.web.0,
        redirect_uri: &s.redirect_uri,
        scope: &s.scope,
        audience: &s.audience,
    }
}

/// A fresh code and its PKCE verifier, minted with the signed-in browser.
async fn mint_code(s: &Setup) -> Result<(String, String), String> {
    let user = (s.user.0.as_str(), s.user.1.as_str());
    let (answer, verifier) = authorize(&s.base, &s.browser, &code_request(s), user).await?;
    let code = answer
        .get("code")
        .ok_or_else(|| format!("no code in {answer:?}"))?;
    Ok((code.clone(), verifier))
}

async fn redeem(s: &Setup, code: &str, verifier: &str) -> Result<Value, String> {
    let response = s
        .http
        .post(format!("{}/token", s.base))
        .header("authorization", basic(&s.web.0, &s.web.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", s.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let tokens = expect_json(response, 200).await?;
    let openid = s.scope.split(' ').any(|scope| scope == "openid");
    let expected: &[&str] = if openid {
        &["access_token", "id_token", "refresh_token"]
    } else {
        &["access_token", "refresh_token"]
    };
    for member in expected {
        tokens[member]
            .as_str()
            .ok_or_else(|| format!("no {member} in {tokens}"))?;
    }
    Ok(tokens)
}

/// Mint `count` codes (8 at a time), then redeem them with `concurrency` connections.
async fn code_exchange(setup: &Arc<Setup>, concurrency: usize, count: usize) -> (Tally, f64) {
    let minted = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let started = Instant::now();
    let minters: Vec<_> = (0..8)
        .map(|_| {
            let (setup, minted) = (setup.clone(), minted.clone());
            tokio::spawn(async move {
                while minted.lock().unwrap().len() < count {
                    let code = mint_code(&setup).await.expect("minting a code");
                    minted.lock().unwrap().push(code);
                }
            })
        })
        .collect();
    for m in minters {
        m.await.unwrap();
    }
    let mut codes = std::mem::take(&mut *minted.lock().unwrap());
    eprintln!(
        "[loadgen] minted {} codes in {:.1} s",
        codes.len(),
        started.elapsed().as_secs_f64()
    );
    let measured = codes.split_off(codes.len() / 10);
    let warmup = Arc::new(Mutex::new(codes));
    redeem_all(setup, concurrency, warmup).await;
    let queue = Arc::new(Mutex::new(measured));
    let started = Instant::now();
    let tally = redeem_all(setup, concurrency, queue).await;
    (tally, started.elapsed().as_secs_f64())
}

async fn redeem_all(
    setup: &Arc<Setup>,
    concurrency: usize,
    queue: Arc<Mutex<Vec<(String, String)>>>,
) -> Tally {
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (setup, queue) = (setup.clone(), queue.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let Some((code, verifier)) = queue.lock().unwrap().pop() else {
                        return tally;
                    };
                    let started = Instant::now();
                    let outcome = redeem(&setup, &code, &verifier).await.map(drop);
                    tally.record("code_exchange", started, &outcome);
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await.unwrap());
    }
    tally
}

/// What one connection of a timed run holds between requests.
struct Worker {
    setup: Arc<Setup>,
    refresh_token: String,
    user_access_token: String,
    service_token: Arc<String>,
}

/// `scenario` (refresh, password or the mix) flat out on `concurrency` connections:
/// `warmup` seconds unrecorded, then `seconds` recorded.
async fn timed(
    setup: &Arc<Setup>,
    concurrency: usize,
    warmup: f64,
    seconds: f64,
    scenario: &str,
) -> (Tally, f64) {
    if scenario == "password" {
        let tasks: Vec<_> = (0..concurrency)
            .map(|i| {
                let setup = setup.clone();
                let begin = Instant::now() + Duration::from_secs_f64(warmup);
                let end = begin + Duration::from_secs_f64(seconds);
                tokio::spawn(async move {
                    let user = format!("{}-{}", setup.user.0, i % setup.users);
                    let mut tally = Tally::default();
                    loop {
                        let started = Instant::now();
                        if started >= end {
                            return tally;
                        }
                        let outcome = password_grant(&setup, &user).await;
                        if started >= begin {
                            tally.record("password", started, &outcome);
                        }
                    }
                })
            })
            .collect();
        let mut tally = Tally::default();
        for t in tasks {
            tally.merge(t.await.unwrap());
        }
        return (tally, seconds);
    }
    let mixed = scenario == "mixed";
    let service_token = Arc::new(service_token(setup).await.expect("a service token"));
    let begin = Instant::now() + Duration::from_secs_f64(warmup);
    let end = begin + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (setup, service_token) = (setup.clone(), service_token.clone());
            tokio::spawn(async move {
                let (code, verifier) = mint_code(&setup).await.expect("minting a code");
                let tokens = redeem(&setup, &code, &verifier)
                    .await
                    .expect("a first code");
                let mut worker = Worker {
                    setup,
                    refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
                    user_access_token: tokens["access_token"].as_str().unwrap().to_owned(),
                    service_token,
                };
                let mut tally = Tally::default();
                loop {
                    let started = Instant::now();
                    if started >= end {
                        return tally;
                    }
                    let pick = if mixed {
                        rand::rng().random_range(0..100)
                    } else {
                        75
                    };
                    let (op, outcome) = match pick {
                        0..30 => ("client_credentials", worker.client_credentials().await),
                        30..55 => ("introspection", worker.introspect().await),
                        55..70 => ("userinfo", worker.userinfo().await),
                        70..85 => ("refresh", worker.refresh().await),
                        85..95 => ("code_flow", worker.code_flow().await),
                        _ => ("jwks", worker.jwks().await),
                    };
                    if started >= begin {
                        tally.record(op, started, &outcome);
                    }
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await.unwrap());
    }
    (tally, seconds)
}

async fn service_token(s: &Setup) -> Result<String, String> {
    let client = (s.service.0.as_str(), s.service.1.as_str());
    client_credentials(&s.http, &s.base, client, &s.audience).await
}

async fn password_grant(s: &Setup, username: &str) -> Outcome {
    let app = s
        .app
        .as_ref()
        .ok_or("no password client in LOADGEN_SETUP")?;
    let response = s
        .http
        .post(format!("{}/token", s.base))
        .header("authorization", basic(&app.0, &app.1))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", s.user.1.as_str()),
            ("scope", "read:contacts"),
            ("audience", s.audience.as_str()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = expect_json(response, 200).await?;
    body["access_token"]
        .as_str()
        .map(drop)
        .ok_or(format!("no access_token: {body}"))
}

impl Worker {
    async fn client_credentials(&self) -> Outcome {
        service_token(&self.setup).await.map(drop)
    }

    async fn introspect(&self) -> Outcome {
        let s = &self.setup;
        let response = s
            .http
            .post(format!("{}/introspect", s.base))
            .header("authorization", basic(&s.service.0, &s.service.1))
            .form(&[("token", self.service_token.as_str())])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body = expect_json(response, 200).await?;
        match body["active"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(format!("not active: {body}")),
        }
    }

    async fn userinfo(&self) -> Outcome {
        let s = &self.setup;
        let response = s
            .http
            .get(format!("{}/userinfo", s.base))
            .bearer_auth(&self.user_access_token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body = expect_json(response, 200).await?;
        body["sub"]
            .as_str()
            .map(drop)
            .ok_or(format!("no sub: {body}"))
    }

    async fn refresh(&mut self) -> Outcome {
        let s = &self.setup;
        let response = s
            .http
            .post(format!("{}/token", s.base))
            .header("authorization", basic(&s.web.0, &s.web.1))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", self.refresh_token.as_str()),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let tokens = expect_json(response, 200).await?;
        let next = tokens["refresh_token"]
            .as_str()
            .ok_or_else(|| format!("no rotated refresh_token in {tokens}"))?;
        if next == self.refresh_token {
            return Err("the refresh token was not rotated".into());
        }
        self.refresh_token = next.to_owned();
        Ok(())
    }

    async fn code_flow(&mut self) -> Outcome {
        let (code, verifier) = mint_code(&self.setup).await?;
        let tokens = redeem(&self.setup, &code, &verifier).await?;
        self.user_access_token = tokens["access_token"].as_str().unwrap().to_owned();
        Ok(())
    }

    async fn jwks(&self) -> Outcome {
        let s = &self.setup;
        let response = s
            .http
            .get(format!("{}/.well-known/jwks.json", s.base))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body = expect_json(response, 200).await?;
        body["keys"]
            .as_array()
            .map(drop)
            .ok_or(format!("no keys: {body}"))
    }
}

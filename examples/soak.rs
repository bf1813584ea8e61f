//! The load generator of `bench/soak.sh` (issue 14): a realistic mix against a running Valet,
//! every answer checked, for a fixed time at a fixed rate (or flat out, to find capacity).
//!
//! Mix per operation: client_credentials 30 %, introspection 20 %, a code flow through the
//! real login and consent pages 15 % (a third of them end with RP-initiated logout),
//! refresh 15 %, userinfo 10 %, revocation 10 %. Prints one JSON object: operations, errors
//! (with the first few), ops/s, and p50/p99 per operation.
//!
//! Environment: SOAK_BASE (Valet's URL), SOAK_SECONDS, SOAK_RATE (operations/s in all; 0 =
//! flat out), SOAK_WORKERS, SOAK_CLIENTS (a JSON file: service, web {client_id,
//! client_secret, redirect_uri, post_logout_redirect_uri}, audience, users, password).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};

mod common;
use common::{CodeRequest, authorize, basic, browser, client_credentials, env, expect_json};

#[derive(Clone)]
struct Setup {
    base: String,
    service: (String, String),
    web: (String, String),
    redirect_uri: String,
    post_logout: String,
    audience: String,
    users: Vec<String>,
    password: String,
}

#[derive(Default)]
struct Pools {
    refresh: VecDeque<String>,
    access: VecDeque<String>,
    service_tokens: VecDeque<String>,
}

#[derive(Default)]
struct Stats {
    latencies: HashMap<&'static str, Vec<f64>>,
    errors: Vec<String>,
    error_count: u64,
}

const POOL: usize = 512;

#[tokio::main]
async fn main() {
    let clients: Value = serde_json::from_str(
        &std::fs::read_to_string(env("SOAK_CLIENTS", "soak-clients.json")).expect("SOAK_CLIENTS"),
    )
    .expect("SOAK_CLIENTS is JSON");
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    let setup = Arc::new(Setup {
        base: env("SOAK_BASE", "http://127.0.0.1:8080"),
        service: (
            s(&clients["service"]["client_id"]),
            s(&clients["service"]["client_secret"]),
        ),
        web: (
            s(&clients["web"]["client_id"]),
            s(&clients["web"]["client_secret"]),
        ),
        redirect_uri: s(&clients["web"]["redirect_uri"]),
        post_logout: s(&clients["web"]["post_logout_redirect_uri"]),
        audience: s(&clients["audience"]),
        users: clients["users"].as_array().unwrap().iter().map(s).collect(),
        password: s(&clients["password"]),
    });
    let seconds: u64 = env("SOAK_SECONDS", "30").parse().unwrap();
    let rate: f64 = env("SOAK_RATE", "0").parse().unwrap();
    let workers: usize = env("SOAK_WORKERS", "16").parse().unwrap();
    let pools = Arc::new(Mutex::new(Pools::default()));
    let stats = Arc::new(Mutex::new(Stats::default()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(workers)
        .build()
        .unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let per_worker = if rate > 0.0 {
        Some(Duration::from_secs_f64(workers as f64 / rate))
    } else {
        None
    };
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (setup, pools, stats, http) =
                (setup.clone(), pools.clone(), stats.clone(), http.clone());
            tokio::spawn(async move {
                let mut next = Instant::now();
                while Instant::now() < deadline {
                    if let Some(gap) = per_worker {
                        tokio::time::sleep_until(next.into()).await;
                        next += gap;
                    }
                    let pick = rand::rng().random_range(0..100);
                    let op_started = Instant::now();
                    let (name, result) = match pick {
                        0..30 => (
                            "client_credentials",
                            service_token(&setup, &http, &pools).await,
                        ),
                        30..50 => ("introspection", introspect(&setup, &http, &pools).await),
                        50..65 => ("code_flow", code_flow(&setup, &http, &pools).await),
                        65..80 => ("refresh", refresh(&setup, &http, &pools).await),
                        80..90 => ("userinfo", userinfo(&setup, &http, &pools).await),
                        _ => ("revocation", revoke(&setup, &http, &pools).await),
                    };
                    let ms = op_started.elapsed().as_secs_f64() * 1000.0;
                    let mut stats = stats.lock().unwrap();
                    stats.latencies.entry(name).or_default().push(ms);
                    if let Err(e) = result {
                        stats.error_count += 1;
                        if stats.errors.len() < 10 {
                            stats.errors.push(format!("{name}: {e}"));
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = stats.lock().unwrap();
    let mut ops = 0usize;
    let mut per_op = serde_json::Map::new();
    for (name, latencies) in &stats.latencies {
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
        ops += sorted.len();
        per_op.insert(
            (*name).to_owned(),
            json!({"count": sorted.len(), "p50_ms": at(0.5), "p99_ms": at(0.99)}),
        );
    }
    println!(
        "{}",
        json!({
            "seconds": elapsed,
            "operations": ops,
            "ops_per_second": ops as f64 / elapsed,
            "errors": stats.error_count,
            "first_errors": stats.errors,
            "per_operation": per_op,
        })
    );
}

type Outcome = Result<(), String>;

fn push(pool: &mut VecDeque<String>, value: String) {
    if pool.len() >= POOL {
        pool.pop_front();
    }
    pool.push_back(value);
}

async fn service_token(s: &Setup, http: &reqwest::Client, pools: &Mutex<Pools>) -> Outcome {
    let client = (s.service.0.as_str(), s.service.1.as_str());
    let token = client_credentials(http, &s.base, client, &s.audience).await?;
    push(&mut pools.lock().unwrap().service_tokens, token);
    Ok(())
}

async fn introspect(s: &Setup, http: &reqwest::Client, pools: &Mutex<Pools>) -> Outcome {
    let token = pools.lock().unwrap().service_tokens.back().cloned();
    let Some(token) = token else {
        return service_token(s, http, pools).await;
    };
    let response = http
        .post(format!("{}/introspect", s.base))
        .header("authorization", basic(&s.service.0, &s.service.1))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = expect_json(response, 200).await?;
    // Tokens expire during a long soak; an answer either way is an answer.
    body["active"].as_bool().ok_or("no active member")?;
    Ok(())
}

/// `/authorize` → login → consent (when asked) → the client's redirect URI; then the code
/// redeemed with PKCE; a third of the time, RP-initiated logout with the ID token.
async fn code_flow(s: &Setup, http: &reqwest::Client, pools: &Mutex<Pools>) -> Outcome {
    let browser = browser();
    let user = {
        let mut rng = rand::rng();
        s.users[rng.random_range(0..s.users.len())].clone()
    };
    let request = CodeRequest {
        client_id: &s.web.0,
        redirect_uri: &s.redirect_uri,
        scope: "openid profile offline_access read:contacts",
        audience: &s.audience,
    };
    let (answer, verifier) = authorize(&s.base, &browser, &request, (&user, &s.password)).await?;
    let code = answer.get("code").ok_or("no code in the answer")?;
    let response = http
        .post(format!("{}/token", s.base))
        .header("authorization", basic(&s.web.0, &s.web.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", s.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let tokens = expect_json(response, 200).await?;
    {
        let mut pools = pools.lock().unwrap();
        if let Some(refresh) = tokens["refresh_token"].as_str() {
            push(&mut pools.refresh, refresh.to_owned());
        }
        if let Some(access) = tokens["access_token"].as_str() {
            push(&mut pools.access, access.to_owned());
        }
    }
    if rand::rng().random_range(0..3) == 0 {
        let id_token = tokens["id_token"].as_str().ok_or("no id_token")?;
        let mut logout = url::Url::parse(&format!("{}/logout", s.base)).unwrap();
        logout
            .query_pairs_mut()
            .append_pair("id_token_hint", id_token)
            .append_pair("post_logout_redirect_uri", &s.post_logout)
            .append_pair("state", "bye");
        let response = browser
            .get(logout)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("");
        if !location.starts_with(&s.post_logout) {
            return Err(format!(
                "logout: status {}, location {location}",
                response.status()
            ));
        }
    }
    Ok(())
}

async fn refresh(s: &Setup, http: &reqwest::Client, pools: &Mutex<Pools>) -> Outcome {
    let token = pools.lock().unwrap().refresh.pop_front();
    let Some(token) = token else {
        return code_flow(s, http, pools).await;
    };
    let response = http
        .post(format!("{}/token", s.base))
        .header("authorization", basic(&s.web.0, &s.web.1))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status == 400 && body.contains("invalid_grant") {
        // Its family expired (short TTLs in the soak) or its session was logged out.
        return Ok(());
    }
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    let tokens: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let mut pools = pools.lock().unwrap();
    if let Some(refresh) = tokens["refresh_token"].as_str() {
        push(&mut pools.refresh, refresh.to_owned());
    }
    if let Some(access) = tokens["access_token"].as_str() {
        push(&mut pools.access, access.to_owned());
    }
    Ok(())
}

async fn userinfo(s: &Setup, http: &reqwest::Client, pools: &Mutex<Pools>) -> Outcome {
    let token = pools.lock().unwrap().access.back().cloned();
    let Some(token) = token else {
        return code_flow(s, http, pools).await;
    };
    let response = http
        .get(format!("{}/userinfo", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200 => Ok(()),
        // The token is for the API, not the UserInfo audience, or it expired: a checked refusal.
        401 | 403 => Ok(()),
        other => Err(format!("userinfo status {other}")),
    }
}

async fn revoke(s: &Setup, http: &reqwest::Client, pools: &Mutex<Pools>) -> Outcome {
    let token = pools.lock().unwrap().refresh.pop_back();
    let Some(token) = token else {
        return code_flow(s, http, pools).await;
    };
    let response = http
        .post(format!("{}/revoke", s.base))
        .header("authorization", basic(&s.web.0, &s.web.1))
        .form(&[
            ("token", token.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200 => Ok(()),
        other => Err(format!("revoke status {other}")),
    }
}

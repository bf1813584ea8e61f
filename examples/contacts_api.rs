//! A resource server that trusts Valet: the Contacts API of the README's tour, in memory.
//!
//! ```sh
//! cargo run --example contacts_api    # with Valet running on http://localhost:8080
//! ```
//!
//! Environment: `VALET_ISSUER` (default `http://localhost:8080`), `CONTACTS_AUDIENCE`
//! (`https://contacts.example.com`), `CONTACTS_LISTEN` (`127.0.0.1:3001`).
//!
//! Every route needs a Valet access token (RFC 9068) for this API with one scope:
//! `GET /contacts` `read:contacts`, `POST /contacts` `create:contacts`,
//! `DELETE /contacts/{id}` `delete:contacts`. Errors follow RFC 6750 §3: 401 with
//! `WWW-Authenticate: Bearer …` for a missing or bad token, 403 `insufficient_scope`.
//!
//! The tokens are checked offline against Valet's JWKS, so Valet is asked only for its keys,
//! never per request. (This crate builds reqwest without TLS: for an `https` issuer, enable
//! one of reqwest's TLS features.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Mutex, RwLock};

/// Checks Valet's access tokens with the keys from its JWKS, fetched when needed.
pub struct Verifier {
    issuer: String,
    audience: String,
    jwks_url: String,
    http: reqwest::Client,
    /// The JWKS as last fetched: each key with the one algorithm it may be used with.
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    /// When the JWKS was last fetched. Held while fetching, so that a burst of requests with
    /// a new `kid` makes one request to Valet, not one each.
    fetched_at: Mutex<Option<Instant>>,
    refetch_interval: Duration,
}

/// The claims this API uses; `iss`, `aud` and `exp` are checked by `jsonwebtoken`.
#[derive(Clone, Debug, Deserialize)]
pub struct AccessToken {
    /// The user, or for `client_credentials` the client itself.
    pub sub: String,
    /// Space-delimited (RFC 6749 §3.3).
    #[serde(default)]
    pub scope: String,
}

impl Verifier {
    pub fn new(issuer: &str, audience: &str, jwks_url: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks_url: jwks_url.to_owned(),
            http: reqwest::Client::new(),
            keys: RwLock::default(),
            fetched_at: Mutex::default(),
            refetch_interval: Duration::from_secs(10),
        }
    }

    /// The least time between two JWKS fetches (10 s by default).
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    pub async fn verify(&self, token: &str) -> Result<AccessToken, Rejection> {
        let header = decode_header(token).map_err(|_| Rejection::Invalid("malformed token"))?;
        // RFC 9068 §4: only `at+jwt`, so an ID token or another JWT signed with the same keys
        // cannot be passed off as an access token.
        let typ = header.typ.unwrap_or_default().to_ascii_lowercase();
        if typ != "at+jwt" && typ != "application/at+jwt" {
            return Err(Rejection::Invalid("not an access token (typ)"));
        }
        let kid = header.kid.ok_or(Rejection::Invalid("no kid"))?;
        let (key, alg) = self.key(&kid).await?;
        // The algorithm comes from the key, never from the token: a token saying `HS256` (the
        // RSA public key as an HMAC secret) or `none` is refused ("algorithm confusion").
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5; // seconds of clock skew tolerated on `exp`
        let data = decode::<AccessToken>(token, &key, &validation).map_err(|e| {
            Rejection::Invalid(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidAudience => "token is for another API",
                ErrorKind::InvalidIssuer => "token from another issuer",
                ErrorKind::InvalidAlgorithm => "algorithm does not match the key",
                ErrorKind::InvalidSignature => "bad signature",
                _ => "malformed token",
            })
        })?;
        Ok(data.claims)
    }

    /// The key named `kid`. An unknown `kid` usually means `valet keys rotate` ran, so fetch
    /// the JWKS again, but at most once per `refetch_interval`: made-up kids must not turn
    /// this API into a flood of requests to Valet.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), Rejection> {
        if let Some(found) = self.keys.read().await.get(kid) {
            return Ok(found.clone());
        }
        let mut fetched_at = self.fetched_at.lock().await;
        // Another request may have fetched the new keys while this one waited for the lock.
        if let Some(found) = self.keys.read().await.get(kid) {
            return Ok(found.clone());
        }
        if fetched_at.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return Err(Rejection::Invalid("unknown signing key"));
        }
        *fetched_at = Some(Instant::now());
        let keys = self.fetch().await.map_err(|e| {
            tracing::warn!("fetching {} failed: {e}", self.jwks_url);
            Rejection::Unavailable
        })?;
        let found = keys.get(kid).cloned();
        // Replace, not merge: keys Valet stopped publishing stop being trusted.
        *self.keys.write().await = keys;
        found.ok_or(Rejection::Invalid("unknown signing key"))
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, reqwest::Error> {
        let jwks: JwkSet = self
            .http
            .get(&self.jwks_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        // Valet gives every key its `kid` and `alg`; a key without them is skipped.
        let keys = jwks.keys.iter().filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let alg = Algorithm::try_from(jwk.common.key_algorithm?).ok()?;
            Some((kid, (DecodingKey::from_jwk(jwk).ok()?, alg)))
        });
        Ok(keys.collect())
    }
}

/// Why a request was refused, answered as RFC 6750 §3 says.
#[derive(Debug)]
pub enum Rejection {
    /// No bearer token at all: a challenge without an error code (§3.1).
    Missing,
    Invalid(&'static str),
    InsufficientScope(&'static str),
    /// The JWKS could not be fetched: Valet's fault or the network's, not the client's.
    Unavailable,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, challenge, body) = match self {
            Rejection::Missing => (
                StatusCode::UNAUTHORIZED,
                r#"Bearer realm="contacts""#.to_owned(),
                json!({"error": "unauthorized"}),
            ),
            Rejection::Invalid(why) => (
                StatusCode::UNAUTHORIZED,
                format!(r#"Bearer error="invalid_token", error_description="{why}""#),
                json!({"error": "invalid_token", "error_description": why}),
            ),
            Rejection::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                format!(r#"Bearer error="insufficient_scope", scope="{scope}""#),
                json!({"error": "insufficient_scope", "scope": scope}),
            ),
            Rejection::Unavailable => {
                let body = json!({"error": "temporarily_unavailable"});
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        };
        (status, [(header::WWW_AUTHENTICATE, challenge)], Json(body)).into_response()
    }
}

/// Middleware for one route: a valid token with `scope`, whose claims the handler can take
/// as `Extension<AccessToken>`. Checked before the handler reads the body.
async fn authorize(
    State((verifier, scope)): State<(Arc<Verifier>, &'static str)>,
    mut request: Request,
    next: Next,
) -> Result<Response, Rejection> {
    let token = bearer(request.headers()).ok_or(Rejection::Missing)?;
    let claims = verifier.verify(token).await?;
    if !claims.scope.split(' ').any(|s| s == scope) {
        return Err(Rejection::InsufficientScope(scope));
    }
    request.extensions_mut().insert(claims);
    Ok(next.run(request).await)
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[derive(Clone, Debug, Serialize)]
struct Contact {
    id: u64,
    name: String,
    email: String,
}

#[derive(Deserialize)]
struct NewContact {
    name: String,
    email: String,
}

#[derive(Default)]
struct Book {
    contacts: Vec<Contact>,
    next_id: u64,
}

impl Book {
    fn add(&mut self, name: String, email: String) -> Contact {
        self.next_id += 1;
        let contact = Contact {
            id: self.next_id,
            name,
            email,
        };
        self.contacts.push(contact.clone());
        contact
    }
}

type Contacts = Arc<Mutex<Book>>;

pub fn router(verifier: Verifier) -> Router {
    let verifier = Arc::new(verifier);
    let needs = |scope: &'static str| from_fn_with_state((verifier.clone(), scope), authorize);
    let mut book = Book::default();
    for (name, email) in [
        ("Ada Lovelace", "ada@example.com"),
        ("Alan Turing", "alan@example.com"),
    ] {
        book.add(name.into(), email.into());
    }
    Router::new()
        .route("/contacts", get(list).route_layer(needs("read:contacts")))
        .route(
            "/contacts",
            post(create).route_layer(needs("create:contacts")),
        )
        .route(
            "/contacts/{id}",
            delete(remove).route_layer(needs("delete:contacts")),
        )
        .with_state(Arc::new(Mutex::new(book)))
}

async fn list(State(contacts): State<Contacts>) -> Json<Vec<Contact>> {
    Json(contacts.lock().await.contacts.clone())
}

async fn create(
    State(contacts): State<Contacts>,
    Extension(token): Extension<AccessToken>,
    Json(new): Json<NewContact>,
) -> (StatusCode, Json<Contact>) {
    let contact = contacts.lock().await.add(new.name, new.email);
    tracing::info!(id = contact.id, by = token.sub, "contact created");
    (StatusCode::CREATED, Json(contact))
}

async fn remove(State(contacts): State<Contacts>, Path(id): Path<u64>) -> StatusCode {
    let mut book = contacts.lock().await;
    let before = book.contacts.len();
    book.contacts.retain(|c| c.id != id);
    if book.contacts.len() < before {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

// The integration test includes this file as a module and runs `router` itself.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let env = |key: &str, default: &str| std::env::var(key).unwrap_or_else(|_| default.into());
    let issuer = env("VALET_ISSUER", "http://localhost:8080");
    let audience = env("CONTACTS_AUDIENCE", "https://contacts.example.com");
    let listen = env("CONTACTS_LISTEN", "127.0.0.1:3001");
    let jwks_url = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!("Contacts API on http://{listen}, for tokens from {issuer} to {audience}");
    axum::serve(
        listener,
        router(Verifier::new(&issuer, &audience, &jwks_url)),
    )
    .await?;
    Ok(())
}

//! CORS for the endpoints a browser app calls directly. Discovery and the JWKS are public
//! documents: any origin may read them. `/token`, `/revoke` and `/userinfo` answer an origin
//! only if the client (the one that authenticated, or the one the access token was issued to)
//! allows it (`--allowed-origin`) or the config allows it for every client; a preflight names
//! no client, so it is answered for any origin some client allows.
//! `/authorize` and the pages get no CORS headers at all: they are navigated to, not fetched.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::state::AppState;
use crate::oauth::metadata::USERINFO_PATH;

/// Put on a response by a handler that knows which client authenticated.
#[derive(Clone)]
pub struct ClientOrigins(pub Arc<Vec<String>>);

/// Public documents: readable from any origin, no credentials.
pub fn public_documents() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET])
}

/// The registration endpoints (RFC 7591, RFC 7592): any origin, since a browser-based client
/// registers before it has an origin on file; bearer tokens, never cookies, so nothing
/// ambient rides along.
pub fn registration() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// The middleware for `/token`, `/revoke` and `/userinfo`.
pub async fn client_endpoints(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(origin) = origin(request.headers()) else {
        return next.run(request).await;
    };
    if request.method() == Method::OPTIONS {
        let methods = if request.uri().path() == USERINFO_PATH {
            "GET, POST"
        } else {
            "POST"
        };
        return preflight(&state, &origin, methods).await;
    }
    let mut response = next.run(request).await;
    let allowed = match response.extensions().get::<ClientOrigins>() {
        Some(ClientOrigins(origins)) => configured(&state, &origin) || origins.contains(&origin),
        // No client authenticated (e.g. invalid_client): let any known origin read the error.
        None => known(&state, &origin).await,
    };
    if allowed {
        allow(response.headers_mut(), &origin);
    }
    response
}

async fn preflight(state: &AppState, origin: &str, methods: &'static str) -> Response {
    if !known(state, origin).await {
        return StatusCode::FORBIDDEN.into_response();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    allow(headers, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

fn configured(state: &AppState, origin: &str) -> bool {
    state
        .settings
        .cors
        .allowed_origins
        .iter()
        .any(|o| o.as_str() == origin)
}

async fn known(state: &AppState, origin: &str) -> bool {
    configured(state, origin)
        || state
            .directory
            .client_origins()
            .await
            .is_ok_and(|origins| origins.iter().any(|o| o == origin))
}

fn allow(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

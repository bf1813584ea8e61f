//! `/.well-known/oauth-authorization-server` (RFC 8414), `/.well-known/openid-configuration`
//! (OpenID Connect Discovery 1.0) and `/.well-known/jwks.json` (RFC 7517): bytes prepared
//! once, served as they are.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::http::state::AppState;
use crate::tokens::keys::JWKS_MAX_AGE;

fn json(body: Bytes, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

pub async fn oauth_metadata(State(state): State<AppState>) -> Response {
    json(state.web.metadata.oauth.clone(), "public, max-age=300")
}

pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    json(state.web.metadata.openid.clone(), "public, max-age=300")
}

/// The header spelled out, tied to the constant the activation delay is checked against.
const JWKS_CACHE_CONTROL: &str = "public, max-age=60";
const _: () = assert!(JWKS_MAX_AGE.as_secs() == 60);

/// Short cache lifetime: a rotated key must reach resource servers quickly.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = json(state.keys.current().jwks(), JWKS_CACHE_CONTROL);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}

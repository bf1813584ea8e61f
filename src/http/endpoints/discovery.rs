//! `/.well-known/oauth-authorization-server` (RFC 8414), `/.well-known/openid-configuration`
//! (OpenID Connect Discovery 1.0) and `/.well-known/jwks.json` (RFC 7517): bytes prepared
//! once, served as they are.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::http::state::AppState;

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

/// Short cache lifetime: a rotated key must reach resource servers quickly.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = json(state.keys.current().jwks(), "public, max-age=60");
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}

//! `/.well-known/oauth-authorization-server` (RFC 8414), `/.well-known/openid-configuration`
//! (OpenID Connect Discovery 1.0) and `/.well-known/jwks.json` (RFC 7517): bytes prepared
//! once, served as they are.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::state::AppState;
use crate::oauth::OAuthError;
use crate::oauth::metadata::{protected_resource_candidates, protected_resource_document};
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

/// `GET /.well-known/oauth-protected-resource[/…]` (RFC 9728 §3): an API's metadata, found as
/// [`protected_resource_candidates`] describes; 404 for a path that names no API.
pub async fn protected_resource(
    State(state): State<AppState>,
    suffix: Option<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let suffix = suffix.map(|Path(s)| s).unwrap_or_default();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    for identifier in protected_resource_candidates(&suffix, host) {
        match state.directory.api(&identifier).await {
            Ok(Some(api)) => {
                let document = protected_resource_document(&state.settings, &api);
                return json(Bytes::from(document.to_string()), "public, max-age=300");
            }
            Ok(None) => {}
            Err(error) => return OAuthError::from(error).into_response(),
        }
    }
    StatusCode::NOT_FOUND.into_response()
}

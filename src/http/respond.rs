//! Rendering of OAuth results: RFC 6749 §5.1 and §5.2 JSON with `Cache-Control: no-store`,
//! `WWW-Authenticate` on every 401 (RFC 7235 §3.1), `Retry-After` when the store is away.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::oauth::issue::TokenResponse;
use crate::oauth::{Challenge, ErrorCode, OAuthError};

fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A JSON answer that no cache may keep (tokens, introspection, device and pushed-request
/// answers carry secrets or single-use values).
pub fn uncached_json(status: StatusCode, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        match self.code {
            ErrorCode::ServerError => tracing::error!(detail = ?self.detail, "request failed"),
            ErrorCode::TemporarilyUnavailable => {
                tracing::warn!(detail = ?self.detail, "store unavailable")
            }
            code => tracing::info!(error = code.as_str(), detail = ?self.detail, "request refused"),
        }
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = json!({"error": self.code.as_str(), "error_description": self.description});
        let mut response = (status, Json(body)).into_response();
        no_store(&mut response);
        let headers = response.headers_mut();
        match self.effective_challenge() {
            Some(Challenge::Basic) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"valet\""),
                );
            }
            Some(Challenge::Bearer) => {
                // The description's character set (see `sanitize`) has no `"` or `\`.
                let value = format!(
                    "Bearer realm=\"valet\", error=\"{}\", error_description=\"{}\"",
                    self.code.as_str(),
                    self.description
                );
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Some(Challenge::BearerWithoutError) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"valet\""),
                );
            }
            None => {}
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        } else if self.code == ErrorCode::TemporarilyUnavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        no_store(&mut response);
        response
    }
}

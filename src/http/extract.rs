//! Typed inputs from requests. A malformed request becomes an `OAuthError`, never a panic.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};

use crate::oauth::{OAuthError, Params};

/// The `application/x-www-form-urlencoded` body of an OAuth request (RFC 6749 §3.2), checked
/// for content type and size (`http.body_limit`, enforced by `DefaultBodyLimit`).
pub fn oauth_form(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Params, OAuthError> {
    if !is_form_urlencoded(headers) {
        return Err(OAuthError::invalid_request(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let body = body.map_err(|rejection| {
        let mut e =
            OAuthError::invalid_request("the request body is too large or could not be read");
        e.detail = Some(rejection.body_text());
        e
    })?;
    Params::parse(&body)
}

fn is_form_urlencoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The `Authorization` header, if it is valid text.
pub fn authorization(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    match headers.get(header::AUTHORIZATION) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| OAuthError::invalid_request("the Authorization header is not valid text")),
    }
}

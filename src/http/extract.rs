//! Typed inputs from requests. A malformed request becomes an `OAuthError`, never a panic.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

use crate::oauth::{ErrorCode, OAuthError, Params};

/// How much of an oversized body is read and thrown away before answering. Closing a socket
/// with unread bytes makes TCP send a reset, which can destroy our `invalid_request` answer
/// before the client reads it; draining a bounded amount lets the answer arrive.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The `application/x-www-form-urlencoded` body of an OAuth request (RFC 6749 §3.2), checked
/// for content type and size (`http.body_limit`).
pub async fn oauth_form(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Params, OAuthError> {
    oauth_form_allowing_nul(headers, body, limit, &[]).await
}

/// As [`oauth_form`], but the values of `nul_ok` may hold a NUL ([`Params::parse_allowing_nul`]).
pub async fn oauth_form_allowing_nul(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    nul_ok: &[&str],
) -> Result<Params, OAuthError> {
    if !is_form_urlencoded(headers) {
        return Err(OAuthError::invalid_request(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    Params::parse_allowing_nul(&read_limited(body, limit).await?, nul_ok)
}

/// A JSON request body (RFC 7591 §3.1), at most `limit` bytes; anything else is
/// `invalid_client_metadata`, the registration endpoint's error for a bad request.
pub async fn json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<serde_json::Value, OAuthError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the request body must be application/json",
        ));
    }
    let bytes = read_limited(body, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            format!("the request body is not JSON: {e}"),
        )
    })
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive);
/// `None` for no header, another scheme, or an empty token.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, OAuthError> {
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let mut error = OAuthError::invalid_request("the request body could not be read");
            error.detail = Some(e.to_string());
            error
        })?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= limit {
                kept.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > limit {
        return Err(OAuthError::invalid_request(format!(
            "the request body is larger than {limit} bytes"
        )));
    }
    Ok(Bytes::from(kept))
}

pub fn is_form_urlencoded(headers: &HeaderMap) -> bool {
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

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_tokens_are_taken_from_the_bearer_scheme_only() {
        assert_eq!(bearer(Some("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer(Some("bearer  abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic YTpi")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }
}

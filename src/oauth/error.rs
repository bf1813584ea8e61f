//! One error type for every OAuth failure: RFC 6749 §5.2 (token endpoint), §4.1.2.1 and
//! §4.2.2.1 (authorization responses), RFC 6750 §3.1 (bearer tokens), RFC 8707 §2.

use std::borrow::Cow;

use crate::login::sign_in::SignInError;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    /// OpenID Connect Core §3.1.2.6, for `prompt=none`.
    LoginRequired,
    ConsentRequired,
    /// RFC 8628 §3.5: the device's polling answers.
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    /// OpenID Connect Core §3.1.2.6: request objects are not supported.
    RequestNotSupported,
    RequestUriNotSupported,
    UnsupportedResponseType,
    ServerError,
    TemporarilyUnavailable,
    InvalidToken,
    InsufficientScope,
    /// RFC 7591 §3.2.2: registration metadata refused.
    InvalidRedirectUri,
    InvalidClientMetadata,
    UnapprovedSoftwareStatement,
    /// Too many requests from one address or client for now (HTTP 429, `Retry-After`); the
    /// body says `temporarily_unavailable`, the nearest RFC 6749 code.
    RateLimited,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::UnapprovedSoftwareStatement => "unapproved_software_statement",
            ErrorCode::RateLimited => "temporarily_unavailable",
        }
    }

    /// The HTTP status for a direct (non-redirect) response.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::RateLimited => 429,
            _ => 400,
        }
    }

    /// The challenge a 401 carries when the code path set none: RFC 7235 §3.1 requires a
    /// `WWW-Authenticate` on every 401. A client that failed to authenticate is told the
    /// scheme the endpoints accept (RFC 6749 §2.3.1); a failed bearer token gets a Bearer
    /// challenge naming the error (RFC 6750 §3).
    pub fn default_challenge(self) -> Option<Challenge> {
        match self {
            ErrorCode::InvalidClient => Some(Challenge::Basic),
            ErrorCode::InvalidToken => Some(Challenge::Bearer),
            _ => None,
        }
    }
}

/// Which `WWW-Authenticate` challenge accompanies a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// The client tried HTTP Basic (RFC 6749 §5.2 requires the header then).
    Basic,
    /// RFC 6750 §3: a bearer token was sent and failed; the challenge names the error.
    Bearer,
    /// RFC 6750 §3.1: no bearer token was sent at all; the challenge carries no error code.
    BearerWithoutError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    /// For the client developer; restricted to the RFC 6749 §5.2 character set.
    pub description: Cow<'static, str>,
    /// For our logs only; never sent.
    pub detail: Option<String>,
    pub challenge: Option<Challenge>,
    /// Seconds for `Retry-After` (with [`ErrorCode::RateLimited`]).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: sanitize(description.into()),
            detail: None,
            challenge: None,
            retry_after: None,
        }
    }

    /// Refused for now: try again after `seconds`.
    pub fn rate_limited(seconds: u64, d: impl Into<Cow<'static, str>>) -> Self {
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::new(ErrorCode::RateLimited, d)
        }
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }

    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }

    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }

    pub fn invalid_target(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, d)
    }

    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }

    pub fn unsupported_grant_type(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnsupportedGrantType, d)
    }

    /// Something on our side failed; the client learns nothing more than that.
    pub fn server_error(detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            ..Self::new(
                ErrorCode::ServerError,
                "the authorization server hit an unexpected error",
            )
        }
    }

    pub fn with_challenge(mut self, challenge: Option<Challenge>) -> Self {
        self.challenge = challenge;
        self
    }

    /// The `WWW-Authenticate` challenge to send: the one set, or else the code's default, so
    /// that no 401 goes out without one (RFC 7235 §3.1).
    pub fn effective_challenge(&self) -> Option<Challenge> {
        self.challenge.or(self.code.default_challenge())
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => Self {
                detail: Some(detail),
                ..Self::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the store is unavailable; retry shortly",
                )
            },
            other => Self::server_error(other.to_string()),
        }
    }
}

/// RFC 6749 §5.2: `error_description` uses `%x20-21 / %x23-5B / %x5D-7E` only.
fn sanitize(text: Cow<'static, str>) -> Cow<'static, str> {
    let allowed = |c: char| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~');
    if text.chars().all(allowed) {
        text
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if allowed(c) { c } else { '?' })
                .collect(),
        )
    }
}

impl From<SignInError> for OAuthError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Store(e) => e.into(),
            SignInError::Password(e) => OAuthError::server_error(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_rfc_6749() {
        assert_eq!(ErrorCode::InvalidClient.status(), 401);
        assert_eq!(ErrorCode::InvalidRequest.status(), 400);
        assert_eq!(ErrorCode::UnsupportedGrantType.status(), 400);
        assert_eq!(ErrorCode::TemporarilyUnavailable.status(), 503);
    }

    #[test]
    fn every_401_has_a_challenge() {
        for code in [ErrorCode::InvalidClient, ErrorCode::InvalidToken] {
            assert_eq!(code.status(), 401);
            assert!(OAuthError::new(code, "x").effective_challenge().is_some());
        }
        assert_eq!(OAuthError::invalid_request("x").effective_challenge(), None);
    }

    #[test]
    fn descriptions_are_restricted_to_the_allowed_charset() {
        let e = OAuthError::invalid_request("bad \"quote\" and \\ and caf\u{e9}");
        assert_eq!(e.description, "bad ?quote? and ? and caf?");
    }

    #[test]
    fn store_outage_is_temporarily_unavailable() {
        let e = OAuthError::from(StoreError::Unavailable("pool timed out".into()));
        assert_eq!(e.code, ErrorCode::TemporarilyUnavailable);
        let e = OAuthError::from(StoreError::Internal("boom".into()));
        assert_eq!(e.code, ErrorCode::ServerError);
        assert!(
            !e.description.contains("boom"),
            "internal detail stays in the logs"
        );
    }
}

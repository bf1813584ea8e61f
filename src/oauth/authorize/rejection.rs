//! How an authorization request fails. Until `client_id` and `redirect_uri` are known good
//! nothing may be sent to the redirect URI, so those failures are an [`AuthorizeRejection`]
//! that the web layer shows as a page (it owns the wording, status and logging); every later
//! failure is an [`AuthorizeError`] that carries the [`RedirectTarget`] it goes back to.

use crate::oauth::OAuthError;
use crate::oauth::redirect::RedirectMismatch;
use crate::oauth::response_mode::{AuthorizationResponse, RedirectTarget};
use crate::store::StoreError;

/// A failure that must not be redirected.
#[derive(Debug)]
pub enum AuthorizeRejection {
    /// The request names no client.
    MissingClientId,
    /// No such client (or a malformed id); `client_id` as sent, for the developer.
    UnknownClient {
        client_id: String,
    },
    /// The redirect URI is absent where it is required, or not registered. Carries only what
    /// the request sent: anyone can send a `client_id`, so the page must not show the
    /// client's name or its registered URIs.
    RedirectMismatch {
        mismatch: RedirectMismatch,
    },
    /// The pending request expired, was finished already, or its client is gone.
    RequestGone,
    Store(StoreError),
    /// Something on our side failed; the detail is for the logs only.
    Internal(String),
}

impl AuthorizeRejection {
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }
}

impl From<StoreError> for AuthorizeRejection {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// A failure reported to the client at its redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeError {
    pub error: OAuthError,
    pub target: RedirectTarget,
}

impl AuthorizeError {
    pub fn into_response(self) -> AuthorizationResponse {
        AuthorizationResponse::error(self.target, &self.error)
    }
}

#[derive(Debug)]
pub enum Rejection {
    Page(AuthorizeRejection),
    Redirect(AuthorizeError),
}

impl From<AuthorizeRejection> for Rejection {
    fn from(error: AuthorizeRejection) -> Self {
        Rejection::Page(error)
    }
}

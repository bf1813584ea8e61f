//! Failures shown to the person as an HTML page instead of being redirected: the wording,
//! status and logging of every [`AuthorizeRejection`], and the web layer's own (an expired
//! form, a failed store).

use crate::domain::printable;
use crate::login::session::SessionError;
use crate::login::sign_in::SignInError;
use crate::oauth::OAuthError;
use crate::oauth::authorize::AuthorizeRejection;
use crate::oauth::redirect::RedirectMismatch;
use crate::oidc::end_session::EndSessionError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    pub status: u16,
    pub title: &'static str,
    /// For the person in front of the browser.
    pub message: String,
    /// For the app's developer: what was sent, what is registered. Never anything secret.
    pub developer_detail: Vec<String>,
}

impl PageError {
    fn new(status: u16, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
            developer_detail: Vec::new(),
        }
    }

    fn detail(mut self, line: impl Into<String>) -> Self {
        self.developer_detail.push(line.into());
        self
    }

    pub fn request_gone() -> Self {
        Self::new(
            400,
            "This sign-in request has ended",
            "It expired or was already completed. Go back to the app and start again.",
        )
    }

    pub fn bad_form() -> Self {
        Self::new(
            403,
            "This form has expired",
            "For your security the form could not be accepted. Go back, reload the page and try again.",
        )
    }

    /// A request this service cannot read at all (e.g. a repeated parameter).
    pub fn malformed(error: &OAuthError) -> Self {
        Self::new(
            400,
            "The app's request is not valid",
            "The app sent a request this service cannot read.",
        )
        .detail(error.description.to_string())
    }

    /// Over the per-address limit (`http::rate_limit`).
    pub fn too_many_requests(seconds: u64) -> Self {
        Self::new(
            429,
            "Too many requests",
            format!(
                "Too many requests came from your network. Wait {seconds} seconds and try again."
            ),
        )
    }

    pub fn from_store(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                Self::new(
                    503,
                    "Temporarily unavailable",
                    "The service is busy. Please try again in a moment.",
                )
            }
            other => Self::internal(other),
        }
    }

    /// Something on our side failed; the person learns only that.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "authorization request failed");
        Self::new(
            500,
            "Something went wrong",
            "The service hit an unexpected error. Please try again later.",
        )
    }
}

/// An app's sign-out request that is refused: shown, never redirected.
impl From<EndSessionError> for PageError {
    fn from(error: EndSessionError) -> Self {
        PageError::new(
            400,
            "The app's sign-out request is not valid",
            "The app that sent you here asked to sign you out in a way this service does not accept. You have not been signed out.",
        )
        .detail(error.to_string())
    }
}

impl From<AuthorizeRejection> for PageError {
    fn from(rejection: AuthorizeRejection) -> Self {
        match rejection {
            AuthorizeRejection::MissingClientId => PageError::new(
                400,
                "The app's request is incomplete",
                "The app did not say who it is.",
            )
            .detail("the client_id parameter is missing"),
            AuthorizeRejection::UnknownClient { client_id } => PageError::new(
                400,
                "Unknown app",
                "The app that sent you here is not registered with this service.",
            )
            .detail(format!("client_id sent: {client_id}")),
            AuthorizeRejection::RedirectMismatch { mismatch } => redirect_mismatch(&mismatch),
            AuthorizeRejection::RequestGone => PageError::request_gone(),
            AuthorizeRejection::Store(error) => PageError::from_store(error),
            AuthorizeRejection::Internal(detail) => PageError::internal(detail),
        }
    }
}

/// Only what the request sent: anyone holding a `client_id` can reach this page, so it names
/// neither the client nor its registered redirect URIs (the developer finds those with
/// `valet client show`).
fn redirect_mismatch(mismatch: &RedirectMismatch) -> PageError {
    let page = PageError::new(
        400,
        "The app's request is not valid",
        "The app asked to send you back to an address it has not registered, so this service will not go there.",
    )
    .detail(mismatch.to_string());
    match mismatch {
        RedirectMismatch::NotRegistered { requested } => {
            page.detail(format!("redirect_uri sent: {}", printable(requested)))
        }
        RedirectMismatch::Required | RedirectMismatch::RequiredForOpenId => {
            page.detail("redirect_uri sent: (none)")
        }
    }
}

impl From<SessionError> for PageError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(e) => PageError::from_store(e),
            SessionError::Random(e) => PageError::internal(e),
        }
    }
}

impl From<SignInError> for PageError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Store(e) => PageError::from_store(e),
            SignInError::Password(e) => PageError::internal(e),
        }
    }
}

//! Finishing a request: a code (RFC 6749 §4.1.2) or tokens (§4.2.2, OpenID Connect Core
//! §3.2.2.5) for a signed-in person who allowed it, or an error such as `access_denied`.

use super::pending::{Pending, take};
use super::rejection::AuthorizeRejection;
use crate::audit;
use crate::core::Core;
use crate::domain::UnixTime;
use crate::oauth::grants::{authorization_code, implicit};
use crate::oauth::response_mode::AuthorizationResponse;
use crate::oauth::{ErrorCode, OAuthError};
use crate::store::{Session, User};

/// Finish the request for a signed-in person who allowed it: a code or a token. The pending
/// request is consumed in one conditional write, so it finishes at most once.
pub async fn approve(
    core: &Core,
    pending: &Pending,
    user: &User,
    session: &Session,
    now: UnixTime,
) -> Result<AuthorizationResponse, AuthorizeRejection> {
    let target = take(core, pending, now).await?;
    let issued = issue(core, pending, user, session, now).await;
    Ok(match issued {
        Ok(params) => {
            let response_type = pending.request.response_type;
            if response_type.issues_access_token() {
                core.metrics
                    .token_issued("implicit", &pending.request.audience);
            }
            let event = if response_type.issues_code() {
                "code.issued"
            } else {
                "token.issued"
            };
            audit::authorization_granted(
                event,
                &pending.request.response_type.grant(),
                &pending.client.client_id,
                &user.id,
                &pending.request.scope,
            );
            AuthorizationResponse { target, params }
        }
        Err(error) => {
            if error.code == ErrorCode::ServerError {
                tracing::error!(detail = ?error.detail, "authorization failed");
            }
            AuthorizationResponse::error(target, &error)
        }
    })
}

/// The response parameters: a code (§4.1.2), tokens (Core §3.2.2.5), or both (the hybrid
/// types, Core §3.3.2.5, whose ID token binds the code with `c_hash`).
async fn issue(
    core: &Core,
    pending: &Pending,
    user: &User,
    session: &Session,
    now: UnixTime,
) -> Result<Vec<(&'static str, String)>, OAuthError> {
    let request = &pending.request;
    let mut params = Vec::new();
    let mut code = None;
    if request.response_type.issues_code() {
        let issued = authorization_code::issue_code(core, request, user, session, now).await?;
        code = Some(issued.clone());
        params.push(("code", issued));
    }
    if request.response_type.in_front_channel() {
        let tokens = implicit::Issue {
            client: &pending.client,
            request,
            user,
            session,
            code: code.as_deref(),
        };
        params.extend(implicit::issue(core, &tokens, now).await?);
    }
    Ok(params)
}

/// The person's answer to a device sign-in (RFC 8628 §3.3): the pending request is taken
/// (once), and the device's record approved for `approved_by` (the user and the session they
/// signed in with) or denied. False when the device code has meanwhile expired or been
/// answered.
pub async fn answer_device(
    core: &Core,
    pending: &Pending,
    approved_by: Option<(&User, &Session)>,
    now: UnixTime,
) -> Result<bool, AuthorizeRejection> {
    let Some(user_code_hash) = pending.request.device.as_deref() else {
        return Err(AuthorizeRejection::RequestGone);
    };
    core.store
        .take_pending(&core.server_keys.hasher.hash(&pending.id), now)
        .await?
        .ok_or(AuthorizeRejection::RequestGone)?;
    let approved_by = approved_by.map(|(user, session)| (user.id.as_str(), session.auth_time));
    Ok(core
        .store
        .decide_device(user_code_hash, approved_by, now)
        .await?)
}

/// The person said no (RFC 6749 §4.1.2.1 `access_denied`).
pub async fn deny(
    core: &Core,
    pending: &Pending,
    now: UnixTime,
) -> Result<AuthorizationResponse, AuthorizeRejection> {
    let error = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
    refuse(core, pending, &error, now).await
}

/// End the request with an error for the client, e.g. `consent_required` for `prompt=none`.
pub async fn refuse(
    core: &Core,
    pending: &Pending,
    error: &OAuthError,
    now: UnixTime,
) -> Result<AuthorizationResponse, AuthorizeRejection> {
    let target = take(core, pending, now).await?;
    Ok(AuthorizationResponse::error(target, error))
}

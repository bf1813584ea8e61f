//! The pending request: a validated authorization request kept in the store under the hash of
//! a random id while the person signs in and consents, so that any replica can continue it.
//! Taking it is one conditional delete: a request finishes at most once.

use std::sync::Arc;

use super::rejection::AuthorizeRejection;
use super::request::AuthorizationRequest;
use super::validate::redirect_rejection;
use crate::core::Core;
use crate::crypto::random_token;
use crate::domain::UnixTime;
use crate::oauth::redirect;
use crate::oauth::response_mode::RedirectTarget;
use crate::store::{Client, PendingRequest, Session};

/// Keep a validated request in the store; the returned id continues it on any replica.
pub async fn create_pending(
    core: &Core,
    request: &AuthorizationRequest,
    now: UnixTime,
) -> Result<String, AuthorizeRejection> {
    let id = random_token().map_err(AuthorizeRejection::internal)?;
    let json = serde_json::to_string(request).map_err(AuthorizeRejection::internal)?;
    core.store
        .insert_pending(&PendingRequest {
            id_hash: core.server_keys.hasher.hash(&id),
            client_id: request.client_id.clone(),
            request: json,
            created_at: now,
            expires_at: now.plus(core.settings.authorize.pending_request_ttl),
        })
        .await?;
    Ok(id)
}

/// A pending request brought back, with its client and where its answer goes.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub client: Arc<Client>,
    pub request: AuthorizationRequest,
}

impl Pending {
    /// Re-matched against the client's registration as it is now, so an answer never goes to
    /// a redirect URI the client has since removed.
    pub fn target(&self) -> Result<RedirectTarget, AuthorizeRejection> {
        let redirect_uri =
            redirect::matched(&self.client.redirect_uris, Some(&self.request.redirect_uri))
                .map_err(redirect_rejection)?;
        Ok(RedirectTarget {
            redirect_uri,
            mode: self.request.response_mode,
            state: self.request.state.clone(),
        })
    }
}

/// Mark `session` as the sign-in made for this request (see
/// [`AuthorizationRequest::accepts_sign_in`]), here and in the store, so the consent step on
/// any replica knows it.
pub async fn record_sign_in(
    core: &Core,
    pending: &mut Pending,
    session: &Session,
    now: UnixTime,
) -> Result<(), AuthorizeRejection> {
    pending.request.signed_in_session = Some(session.id_hash.to_text());
    let json = serde_json::to_string(&pending.request).map_err(AuthorizeRejection::internal)?;
    let id_hash = core.server_keys.hasher.hash(&pending.id);
    if !core.store.update_pending(&id_hash, &json, now).await? {
        return Err(AuthorizeRejection::RequestGone);
    }
    Ok(())
}

/// Parse a pending-request id from a page URL or form and load it.
pub async fn load_pending(
    core: &Core,
    id: Option<&str>,
    now: UnixTime,
) -> Result<Pending, AuthorizeRejection> {
    // Ids are `random_token`s: 43 base64url characters. Anything else (such as the `par:` name
    // a pushed request is stored under) names no pending request.
    let id = id
        .filter(|id| {
            id.len() == 43
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or(AuthorizeRejection::RequestGone)?;
    let stored = core
        .store
        .pending(&core.server_keys.hasher.hash(id), now)
        .await?
        .ok_or(AuthorizeRejection::RequestGone)?;
    restore(core, id, &stored).await
}

async fn restore(
    core: &Core,
    id: &str,
    stored: &PendingRequest,
) -> Result<Pending, AuthorizeRejection> {
    let request: AuthorizationRequest =
        serde_json::from_str(&stored.request).map_err(AuthorizeRejection::internal)?;
    let client = core
        .directory
        .client(&stored.client_id)
        .await?
        .ok_or(AuthorizeRejection::RequestGone)?;
    Ok(Pending {
        id: id.to_owned(),
        client,
        request,
    })
}

pub(super) async fn take(
    core: &Core,
    pending: &Pending,
    now: UnixTime,
) -> Result<RedirectTarget, AuthorizeRejection> {
    let target = pending.target()?;
    core.store
        .take_pending(&core.server_keys.hasher.hash(&pending.id), now)
        .await?
        .ok_or(AuthorizeRejection::RequestGone)?;
    Ok(target)
}

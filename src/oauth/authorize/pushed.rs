//! Pushed authorization requests (RFC 9126): the client posts its authorization request to
//! the pushed authorization request endpoint, authenticated, and gets a `request_uri` that
//! `/authorize` then runs. Every `/authorize` check runs at push time, so errors reach the
//! client as JSON rather than through the browser; the request is kept hashed, for 60 s, and
//! taken by `/authorize` with one conditional delete, so it runs at most once.

use std::sync::Arc;
use std::time::Duration;

use super::rejection::{AuthorizeRejection, Rejection};
use super::request::AuthorizationRequest;
use super::validate::{Arrival, validate_arrived};
use crate::core::Core;
use crate::crypto::{SecretHash, random_token};
use crate::domain::UnixTime;
use crate::oauth::{OAuthError, Params};
use crate::store::{Client, PendingRequest};

/// RFC 9126 §2.2: the URN the `request_uri` is made of.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a pushed request waits for `/authorize` (SPEC §10).
pub const PUSHED_REQUEST_TTL: Duration = Duration::from_secs(60);

/// RFC 9126 §2.2: the answer to a push.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: u64,
}

/// Check and keep a request that `client` (already authenticated) pushed.
pub async fn push(
    core: &Core,
    client: &Client,
    params: Params,
    now: UnixTime,
) -> Result<Pushed, OAuthError> {
    // §2.1: a pushed request cannot itself point at another.
    if params.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "a pushed authorization request may not contain request_uri",
        ));
    }
    if params
        .get("client_id")
        .is_some_and(|sent| sent != client.client_id)
    {
        return Err(OAuthError::invalid_request(
            "client_id is not the client that authenticated",
        ));
    }
    let params = params.with_default("client_id", &client.client_id);
    let (_, request) = validate_arrived(core, &params, Arrival::Pushed)
        .await
        .map_err(|rejection| match rejection {
            Rejection::Redirect(error) => error.error,
            Rejection::Page(page) => as_json_error(page),
        })?;
    let id = random_token().map_err(|e| OAuthError::server_error(e.to_string()))?;
    let json =
        serde_json::to_string(&request).map_err(|e| OAuthError::server_error(e.to_string()))?;
    core.store
        .insert_pending(&PendingRequest {
            id_hash: stored_id(core, &id),
            client_id: client.client_id.clone(),
            request: json,
            created_at: now,
            expires_at: now.plus(PUSHED_REQUEST_TTL),
        })
        .await?;
    Ok(Pushed {
        request_uri: format!("{REQUEST_URI_PREFIX}{id}"),
        expires_in: PUSHED_REQUEST_TTL.as_secs(),
    })
}

/// Whether `/authorize` was given a pushed request to run.
pub fn is_pushed(params: &Params) -> bool {
    params
        .get("request_uri")
        .is_some_and(|uri| uri.starts_with(REQUEST_URI_PREFIX))
}

/// RFC 9126 §4: `/authorize` with `client_id` and a `request_uri` from a push takes that
/// request (once; the other parameters are not used) for that client. Unknown, expired,
/// used or another client's: a page, as there is no checked redirect URI to answer to.
pub async fn pull(
    core: &Core,
    params: &Params,
    now: UnixTime,
) -> Result<(Arc<Client>, AuthorizationRequest), Rejection> {
    let client_id = params
        .get("client_id")
        .ok_or(AuthorizeRejection::MissingClientId)?;
    let id = params
        .get("request_uri")
        .and_then(|uri| uri.strip_prefix(REQUEST_URI_PREFIX))
        .ok_or(AuthorizeRejection::RequestGone)?;
    // Taken only by its own client, so another client's attempt cannot spend it.
    let stored = core
        .store
        .take_pending_of(&stored_id(core, id), client_id, now)
        .await
        .map_err(AuthorizeRejection::from)?
        .ok_or(AuthorizeRejection::RequestGone)?;
    let request: AuthorizationRequest =
        serde_json::from_str(&stored.request).map_err(AuthorizeRejection::internal)?;
    let client = core
        .directory
        .client(client_id)
        .await
        .map_err(AuthorizeRejection::from)?
        .ok_or(AuthorizeRejection::RequestGone)?;
    Ok((client, request))
}

/// Pushed requests share the pending-request table under a hash of their own, so a pushed id
/// is never a pending id; and `load_pending` takes only ids shaped as `random_token` makes
/// them, so `par:…` is never taken for one either.
fn stored_id(core: &Core, id: &str) -> SecretHash {
    core.server_keys.hasher.hash(&format!("par:{id}"))
}

/// §2.3: what `/authorize` would show on a page goes back to the client as JSON.
fn as_json_error(rejection: AuthorizeRejection) -> OAuthError {
    match rejection {
        AuthorizeRejection::MissingClientId | AuthorizeRejection::UnknownClient { .. } => {
            OAuthError::invalid_request("client_id names no client")
        }
        AuthorizeRejection::RedirectMismatch { mismatch } => {
            OAuthError::invalid_request(mismatch.to_string())
        }
        AuthorizeRejection::RequestGone => OAuthError::invalid_request("the request has ended"),
        AuthorizeRejection::Store(error) => error.into(),
        AuthorizeRejection::Internal(detail) => OAuthError::server_error(detail),
    }
}

//! The implicit grant (RFC 6749 §4.2, OpenID Connect Core §3.2): tokens straight in the
//! redirect, never a refresh token (§4.2.2). Only for clients allowed `implicit`.

use crate::core::Core;
use crate::domain::{GrantId, ScopeSet, UnixTime};
use crate::oauth::OAuthError;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::issue::{session_id, sign_access_token, sign_id_token};
use crate::store::{Client, Session, User};
use crate::tokens::access::Bearer;
use crate::tokens::access::IssuedAccessToken;
use crate::tokens::id_token::Authentication;

/// The response parameters (`state` and `iss` are added on delivery): RFC 6749 §4.2.2 for an
/// access token, Core §3.2.2.5 for an ID token.
pub async fn issue(
    core: &Core,
    client: &Client,
    request: &AuthorizationRequest,
    user: &User,
    session: &Session,
    now: UnixTime,
) -> Result<Vec<(&'static str, String)>, OAuthError> {
    let scope = &request.scope;
    let access = if request.response_type.issues_access_token() {
        Some(access_token(core, request, user, scope, now).await?)
    } else {
        None
    };
    let mut params = Vec::new();
    if let Some(issued) = &access {
        params.extend([
            ("access_token", issued.token.clone()),
            ("token_type", "Bearer".to_owned()),
            ("expires_in", issued.expires_in.to_string()),
            ("scope", scope.to_string()),
        ]);
    }
    if request.response_type.issues_id_token() {
        let signed_in = Authentication {
            user: user.clone(),
            scope,
            auth_time: session.auth_time,
            nonce: request.nonce.as_deref(),
            session: session_id(core, Some(&session.id_hash)),
        };
        let bound_to = access.as_ref().map(|issued| issued.token.as_str());
        let id_token = sign_id_token(core, client, bound_to, signed_in, now).await?;
        params.push(("id_token", id_token));
    }
    Ok(params)
}

/// An access token under a grant of its own, so that revoking it works as for the code flow.
async fn access_token(
    core: &Core,
    request: &AuthorizationRequest,
    user: &User,
    scope: &ScopeSet,
    now: UnixTime,
) -> Result<IssuedAccessToken, OAuthError> {
    let ttl = core.settings.tokens.access_token_ttl;
    let grant_id = GrantId::new();
    core.store
        .insert_grant(&grant_id, &request.client_id, &user.id, now, now.plus(ttl))
        .await?;
    sign_access_token(
        core,
        &Bearer {
            subject: &user.id,
            client_id: &request.client_id,
            audience: &request.audience,
            scope,
            grant_id: Some(&grant_id),
        },
        now,
    )
}

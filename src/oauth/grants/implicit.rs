//! The implicit grant (RFC 6749 §4.2, OpenID Connect Core §3.2): tokens straight in the
//! redirect, never a refresh token (§4.2.2). Only for clients allowed `implicit`; the hybrid
//! response types (Core §3.3) put the same tokens beside a code.

use crate::core::Core;
use crate::domain::{GrantId, ScopeSet, UnixTime};
use crate::oauth::OAuthError;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::issue::{session_id, sign_access_token, sign_id_token};
use crate::store::{Client, Session, User};
use crate::tokens::access::Bearer;
use crate::tokens::access::IssuedAccessToken;
use crate::tokens::id_token::{Authentication, Bound};

/// What the front-channel tokens are for.
pub struct Issue<'a> {
    pub client: &'a Client,
    pub request: &'a AuthorizationRequest,
    pub user: &'a User,
    pub session: &'a Session,
    /// The code of a hybrid response, which the ID token binds with `c_hash`.
    pub code: Option<&'a str>,
}

/// The response parameters (`state` and `iss` are added on delivery): RFC 6749 §4.2.2 for an
/// access token, Core §3.2.2.5 for an ID token, §3.3.2.5 beside a code.
pub async fn issue(
    core: &Core,
    tokens: &Issue<'_>,
    now: UnixTime,
) -> Result<Vec<(&'static str, String)>, OAuthError> {
    let Issue {
        client,
        request,
        user,
        session,
        code,
    } = *tokens;
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
            claims: &request.claims.id_token,
        };
        let bound = Bound {
            access_token: access.as_ref().map(|issued| issued.token.as_str()),
            code,
        };
        let id_token = sign_id_token(core, client, bound, signed_in, now).await?;
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
    if !request.claims.userinfo.is_empty() {
        core.store
            .set_grant_userinfo_claims(&grant_id, &request.claims.userinfo)
            .await?;
    }
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

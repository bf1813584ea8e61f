//! The implicit grant (RFC 6749 §4.2, OpenID Connect Core §3.2): tokens straight in the
//! redirect, never a refresh token (§4.2.2). Only for clients allowed `implicit`.

use super::super::OAuthError;
use super::super::authorize::AuthorizationRequest;
use super::super::token::{Bearer, sign_access_token};
use crate::domain::UnixTime;
use crate::oidc::id_token::{self, Authentication};
use crate::state::AppState;
use crate::store::{Session, User};

/// The response parameters (`state` and `iss` are added on delivery): RFC 6749 §4.2.2 for an
/// access token, Core §3.2.2.5 for an ID token.
pub async fn issue(
    state: &AppState,
    request: &AuthorizationRequest,
    user: &User,
    session: &Session,
    now: UnixTime,
) -> Result<Vec<(&'static str, String)>, OAuthError> {
    let scope = request.scope();
    let mut params = Vec::new();
    let mut access_token = None;
    if request.response_type.issues_access_token() {
        let ttl = state.settings.access_token_ttl();
        let grant_id = uuid::Uuid::new_v4().to_string();
        state
            .store
            .insert_grant(&grant_id, &request.client_id, &user.id, now, now.plus(ttl))
            .await?;
        let issued = sign_access_token(
            state,
            &Bearer {
                subject: &user.id,
                client_id: &request.client_id,
                audience: &request.audience,
                scope: &scope,
                grant_id: Some(&grant_id),
            },
            now,
        )?;
        params.extend([
            ("token_type", "Bearer".to_owned()),
            ("expires_in", issued.expires_in.to_string()),
            ("scope", scope.to_string()),
        ]);
        access_token = Some(issued.token);
    }
    if request.response_type.issues_id_token() {
        let signed_in = Authentication {
            user: user.clone(),
            scope: &scope,
            auth_time: session.auth_time,
            nonce: request.nonce.as_deref(),
        };
        let client_id = &request.client_id;
        let id_token = id_token::sign(state, client_id, access_token.as_deref(), signed_in, now)?;
        params.push(("id_token", id_token));
    }
    if let Some(token) = access_token {
        params.insert(0, ("access_token", token));
    }
    Ok(params)
}

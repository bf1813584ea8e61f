//! The implicit grant (RFC 6749 §4.2): an access token straight in the redirect, never a
//! refresh token (§4.2.2). Only for clients allowed `implicit`.

use super::super::OAuthError;
use super::super::authorize::AuthorizationRequest;
use super::super::token::{Bearer, sign_access_token};
use crate::domain::UnixTime;
use crate::state::AppState;
use crate::store::User;

/// The §4.2.2 response parameters (`state` and `iss` are added on delivery).
pub async fn issue_token(
    state: &AppState,
    request: &AuthorizationRequest,
    user: &User,
    now: UnixTime,
) -> Result<Vec<(&'static str, String)>, OAuthError> {
    let scope = request.scope();
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
    Ok(vec![
        ("access_token", issued.token),
        ("token_type", "Bearer".to_owned()),
        ("expires_in", issued.expires_in.to_string()),
        ("scope", scope.to_string()),
    ])
}

//! The UserInfo endpoint's logic (OpenID Connect Core §5.3): the claims about the user that an
//! active access token with the `openid` scope may read, chosen by its other scopes (§5.4).

use std::sync::Arc;

use crate::core::Core;
use crate::domain::UnixTime;
use crate::oauth::introspect::active_access_token;
use crate::oauth::{Challenge, ErrorCode, OAuthError};
use crate::store::Client;
use crate::tokens::id_token::UserInfo;

/// What the endpoint answers: the claims, and the client the token was issued to (its allowed
/// origins decide CORS).
pub struct Answer {
    pub claims: UserInfo,
    pub client: Arc<Client>,
}

/// The claims `access_token` may read. An inactive token (expired, revoked, a disabled user,
/// anything introspection calls inactive) is `invalid_token`; one without `openid`
/// `insufficient_scope` (RFC 6750 §3.1).
pub async fn userinfo(
    core: &Core,
    access_token: &str,
    now: UnixTime,
) -> Result<Answer, OAuthError> {
    let Some(active) = active_access_token(core, access_token, now).await? else {
        return Err(bearer_error(
            ErrorCode::InvalidToken,
            "the access token is invalid, expired or revoked",
        ));
    };
    let scope = active.claims.scope.split(' ');
    if !scope.clone().any(|s| s == "openid") {
        return Err(bearer_error(
            ErrorCode::InsufficientScope,
            "the access token was not granted the openid scope",
        ));
    }
    // `openid` is granted to user grants only, so a user is there; be explicit all the same.
    let Some(user) = active.user else {
        return Err(bearer_error(
            ErrorCode::InvalidToken,
            "the access token was not issued for a user",
        ));
    };
    Ok(Answer {
        claims: UserInfo::released(user, scope, &active.userinfo_claims),
        client: active.client,
    })
}

pub fn bearer_error(code: ErrorCode, description: &'static str) -> OAuthError {
    OAuthError::new(code, description).with_challenge(Some(Challenge::Bearer))
}

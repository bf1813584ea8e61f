//! The UserInfo endpoint's logic (OpenID Connect Core §5.3): the claims about the user that an
//! active access token with the `openid` scope may read, chosen by its other scopes (§5.4).

use std::sync::Arc;

use serde::Serialize;

use crate::domain::UnixTime;
use crate::oauth::introspect::active_access_token;
use crate::oauth::{Challenge, ErrorCode, OAuthError};
use crate::state::AppState;
use crate::store::{Client, User};

/// The claims Valet can state about a user; `None` ones are left out of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// The same `sub` as the access token's (§5.3.2 requires they match).
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// When the user's record last changed, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The claims `supported` lists in the discovery document.
pub const CLAIMS_SUPPORTED: [&str; 5] =
    ["sub", "name", "preferred_username", "updated_at", "email"];

impl UserInfo {
    /// `profile` releases the name claims, `email` the address; `sub` is always there.
    /// (`email_verified` is never claimed: Valet does not verify addresses.)
    pub fn for_scope<'a>(user: User, scope: impl Iterator<Item = &'a str> + Clone) -> Self {
        let has = |wanted: &str| scope.clone().any(|s| s == wanted);
        let (profile, email) = (has("profile"), has("email"));
        Self {
            sub: user.id,
            name: user.name.filter(|_| profile),
            preferred_username: profile.then_some(user.username),
            updated_at: profile.then_some(user.updated_at.0),
            email: user.email.filter(|_| email),
        }
    }
}

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
    state: &AppState,
    access_token: &str,
    now: UnixTime,
) -> Result<Answer, OAuthError> {
    let Some(active) = active_access_token(state, access_token, now).await? else {
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
        claims: UserInfo::for_scope(user, scope),
        client: active.client,
    })
}

pub fn bearer_error(code: ErrorCode, description: &'static str) -> OAuthError {
    OAuthError::new(code, description).with_challenge(Some(Challenge::Bearer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        User {
            id: "u1".into(),
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            name: Some("Alice Liddell".into()),
            password_hash: "$argon2id$…".into(),
            disabled: false,
            created_at: UnixTime(1),
            updated_at: UnixTime(2),
        }
    }

    fn claims(scope: &str) -> serde_json::Value {
        serde_json::to_value(UserInfo::for_scope(alice(), scope.split(' '))).unwrap()
    }

    #[test]
    fn openid_alone_gives_only_the_subject() {
        assert_eq!(claims("openid"), serde_json::json!({"sub": "u1"}));
    }

    #[test]
    fn profile_and_email_release_their_claims() {
        assert_eq!(
            claims("openid profile"),
            serde_json::json!({"sub": "u1", "name": "Alice Liddell",
                "preferred_username": "alice", "updated_at": 2})
        );
        assert_eq!(
            claims("email openid"),
            serde_json::json!({"sub": "u1", "email": "alice@example.com"})
        );
    }

    #[test]
    fn the_password_hash_is_never_a_claim() {
        let text = claims("openid profile email").to_string();
        assert!(!text.contains("argon2"), "{text}");
    }
}

//! Token introspection (RFC 7662): whether a token is active now, and what it carries. An
//! access token is active when its signature, issuer and expiry check out, it is not on the
//! revocation deny list, its grant was not revoked, its client still exists and its user is
//! still enabled; a refresh token when it is the live member of its family under the same
//! conditions. Anything else is `{"active": false}` and nothing more (§2.2).
//!
//! Least privilege (§4, SPEC §7): a caller sees only tokens issued to itself and access tokens
//! whose `aud` is one of its audiences (the resource servers it speaks for). Every other token,
//! active or not, is `{"active": false}` to it, so one client's credentials cannot read who
//! holds another client's tokens. Refresh tokens are never meant for resource servers (RFC
//! 6749 §1.5): only their own client sees them.

use std::sync::Arc;

use serde::Serialize;

use super::{OAuthError, Params};
use crate::core::Core;
use crate::domain::UnixTime;
use crate::store::{Client, User};
use crate::tokens::access::{self, AccessClaims};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub token: Option<ActiveToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveToken {
    pub scope: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    pub token_type: &'static str,
    pub exp: i64,
    pub iat: i64,
    pub sub: String,
    pub aud: String,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            token: None,
        }
    }
}

/// Look at `token` as the hint suggests first, then as the other kind, for `caller` (see the
/// module comment for what it may see).
pub async fn introspect(
    core: &Core,
    caller: &Client,
    params: &Params,
    now: UnixTime,
) -> Result<Introspection, OAuthError> {
    let token = params.require("token")?;
    // No token Valet issues holds a NUL (the form parser lets one through for this answer).
    if token.contains('\0') {
        return Ok(Introspection::inactive());
    }
    let refresh_first = params.get("token_type_hint") == Some("refresh_token");
    let found = if refresh_first {
        match as_refresh(core, caller, token, now).await? {
            Some(active) => Some(active),
            None => as_access(core, caller, token, now).await?,
        }
    } else {
        match as_access(core, caller, token, now).await? {
            Some(active) => Some(active),
            None => as_refresh(core, caller, token, now).await?,
        }
    };
    Ok(
        found.map_or_else(Introspection::inactive, |token| Introspection {
            active: true,
            token: Some(token),
        }),
    )
}

/// An access token that is active now, with its client and, for user grants, its user.
pub struct ActiveAccess {
    pub claims: AccessClaims,
    pub client: Arc<Client>,
    pub user: Option<User>,
    /// Claims its grant's request asked UserInfo for (Core §5.5).
    pub userinfo_claims: Vec<String>,
}

/// `token` if it is an access token active now (see the module comment), else `None`.
pub async fn active_access_token(
    core: &Core,
    token: &str,
    now: UnixTime,
) -> Result<Option<ActiveAccess>, OAuthError> {
    let keys = core.keys.current();
    // Only something shaped like a JWT is worth a signature check.
    if token.split('.').count() != 3 {
        return Ok(None);
    }
    let Some(claims) = access::verify(&keys, token, core.settings.issuer_str(), now) else {
        return Ok(None);
    };
    if core.revocations.revoked(&claims.jti).await? {
        return Ok(None);
    }
    let Some(client) = core.directory.client(&claims.client_id).await? else {
        return Ok(None);
    };
    let (user, userinfo_claims) = match claims.grant_id() {
        Some(grant_id) => {
            let Some((status, user)) = core
                .store
                .grant_status_and_user(&grant_id, &claims.sub)
                .await?
            else {
                return Ok(None);
            };
            match user.filter(|u| !u.disabled) {
                Some(user) if !status.revoked => (Some(user), status.userinfo_claims),
                _ => return Ok(None),
            }
        }
        None => (None, Vec::new()),
    };
    Ok(Some(ActiveAccess {
        claims,
        client,
        user,
        userinfo_claims,
    }))
}

/// Whether `caller` may see an access token of `client_id` for `audience`.
fn may_see_access(caller: &Client, client_id: &str, audience: &str) -> bool {
    caller.client_id == client_id || caller.may_use_audience(audience)
}

async fn as_access(
    core: &Core,
    caller: &Client,
    token: &str,
    now: UnixTime,
) -> Result<Option<ActiveToken>, OAuthError> {
    let active = active_access_token(core, token, now)
        .await?
        .filter(|a| may_see_access(caller, &a.claims.client_id, &a.claims.aud));
    Ok(active.map(|a| describe_access(a.claims, a.user.map(|u| u.username))))
}

fn describe_access(claims: AccessClaims, username: Option<String>) -> ActiveToken {
    ActiveToken {
        scope: claims.scope,
        client_id: claims.client_id,
        username,
        token_type: "Bearer",
        exp: claims.exp,
        iat: claims.iat,
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        jti: Some(claims.jti),
    }
}

async fn as_refresh(
    core: &Core,
    caller: &Client,
    token: &str,
    now: UnixTime,
) -> Result<Option<ActiveToken>, OAuthError> {
    let Some((stored, user)) = core
        .store
        .refresh_token_and_user(&core.server_keys.hasher.hash(token))
        .await?
        .filter(|(stored, _)| stored.client_id == caller.client_id)
    else {
        return Ok(None);
    };
    let live = stored.rotated_at.is_none()
        && stored.revoked_at.is_none()
        && !stored.grant_revoked
        && stored.expires_at > now
        && stored.family_expires_at > now;
    if !live || core.directory.client(&stored.client_id).await?.is_none() {
        return Ok(None);
    }
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    Ok(Some(ActiveToken {
        scope: stored.scope.to_string(),
        client_id: stored.client_id,
        username: Some(user.username),
        token_type: "refresh_token",
        exp: stored.expires_at.0,
        iat: stored.issued_at.0,
        sub: stored.user_id,
        aud: stored.audience,
        iss: core.settings.issuer_str().to_owned(),
        jti: None,
    }))
}

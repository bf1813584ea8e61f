//! The refresh token grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): every use replaces
//! the token with a successor in the same family; presenting a replaced token again means it
//! was stolen or copied, so the whole family is revoked, with the grant and so the access
//! tokens issued under it. Within the reuse grace a retry gets a new successor and the
//! earlier one is withdrawn; presenting a withdrawn successor is reuse too (SPEC §5). Idle and
//! absolute lifetimes bound each token and the family. A refresh may name only the resource
//! of its grant (RFC 8707 §2.2).

use crate::audit;
use crate::core::Core;
use crate::crypto::{SecretHash, random_token};
use crate::domain::{GrantId, GrantType, ScopeSet, UnixTime, printable};
use crate::oauth::issue::{TokenContext, TokenResponse, session_id, sign_access_token};
use crate::oauth::scope::{self, Subject, TargetRequest};
use crate::oauth::{OAuthError, Params};
use crate::store::{Client, RefreshToken};
use crate::tokens::access::Bearer;
use crate::tokens::id_token::Authentication;

/// The scope that asks for a refresh token where `tokens.refresh_requires_offline_access` is on.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Whether a grant with this scope gets a refresh token: never for client_credentials or
/// implicit (their callers never ask), only for clients allowed `refresh_token`.
pub fn should_issue(core: &Core, client: &Client, scope: &ScopeSet) -> bool {
    client.allows_grant(GrantType::RefreshToken)
        && (!core.settings.tokens.refresh_requires_offline_access || scope.contains(OFFLINE_ACCESS))
}

/// Where a family comes from: the code it was redeemed from (for replay revocation), and the
/// sign-in behind it (for the ID tokens of its refreshes).
pub struct Origin<'a> {
    pub code_hash: Option<&'a SecretHash>,
    /// The browser session; `None` for the password grant.
    pub session_hash: Option<&'a SecretHash>,
    pub auth_time: UnixTime,
}

/// The first token of a new family if the client gets refresh tokens (see [`should_issue`]).
/// Refresh tokens belong to user grants only: a `bearer` without a grant id gets none.
pub async fn issue_if_allowed(
    core: &Core,
    client: &Client,
    bearer: &Bearer<'_>,
    origin: Origin<'_>,
    now: UnixTime,
) -> Result<Option<String>, OAuthError> {
    let Some((token, record)) = first_if_allowed(core, client, bearer, origin, now)? else {
        return Ok(None);
    };
    core.store.insert_first_refresh(&record).await?;
    Ok(Some(token))
}

/// [`issue_if_allowed`]'s token and its record, for the caller to store: a code's redemption
/// stores it with the write that consumes the code.
pub fn first_if_allowed(
    core: &Core,
    client: &Client,
    bearer: &Bearer<'_>,
    origin: Origin<'_>,
    now: UnixTime,
) -> Result<Option<(String, RefreshToken)>, OAuthError> {
    match bearer.grant_id {
        Some(grant_id) if should_issue(core, client, bearer.scope) => {
            let family = Family {
                bearer,
                grant_id,
                code_hash: origin.code_hash,
                session_hash: origin.session_hash,
                auth_time: Some(origin.auth_time),
            };
            let family_expires_at = now.plus(core.settings.tokens.refresh_absolute_ttl);
            let family_id = uuid::Uuid::new_v4().to_string();
            mint(core, &family, &family_id, None, family_expires_at, now).map(Some)
        }
        _ => Ok(None),
    }
}

/// The tokens of a user grant made without a browser session (the password and device
/// grants): a grant row that lives as long as a refresh family could, an access token under
/// it, and the family's first refresh token where the client gets one.
pub async fn sessionless_grant(
    cx: &TokenContext<'_>,
    user_id: &str,
    audience: &str,
    scope: &ScopeSet,
    auth_time: UnixTime,
) -> Result<TokenResponse, OAuthError> {
    let core = cx.core;
    let grant_id = GrantId::new();
    core.store
        .insert_grant(
            &grant_id,
            &cx.client.client_id,
            user_id,
            cx.now,
            cx.now.plus(core.settings.tokens.refresh_absolute_ttl),
        )
        .await?;
    let bearer = Bearer {
        subject: user_id,
        client_id: &cx.client.client_id,
        audience,
        scope,
        grant_id: Some(&grant_id),
    };
    let issued = sign_access_token(core, &bearer, cx.now)?;
    let origin = Origin {
        code_hash: None,
        session_hash: None,
        auth_time,
    };
    let refresh = issue_if_allowed(core, cx.client, &bearer, origin, cx.now).await?;
    Ok(TokenResponse::new(issued, scope, refresh))
}

/// What every token of one refresh family shares.
struct Family<'a> {
    bearer: &'a Bearer<'a>,
    grant_id: &'a GrantId,
    code_hash: Option<&'a SecretHash>,
    session_hash: Option<&'a SecretHash>,
    auth_time: Option<UnixTime>,
}

/// A token and its record; the idle expiry never passes the family's absolute one.
fn mint(
    core: &Core,
    family: &Family<'_>,
    family_id: &str,
    parent: Option<&SecretHash>,
    family_expires_at: UnixTime,
    now: UnixTime,
) -> Result<(String, RefreshToken), OAuthError> {
    let token = random_token().map_err(|e| OAuthError::server_error(e.to_string()))?;
    let idle = now.plus(core.settings.tokens.refresh_idle_ttl);
    let record = RefreshToken {
        token_hash: core.server_keys.hasher.hash(&token),
        family_id: family_id.to_owned(),
        parent_hash: parent.cloned(),
        grant_id: family.grant_id.to_owned(),
        client_id: family.bearer.client_id.to_owned(),
        user_id: family.bearer.subject.to_owned(),
        scope: family.bearer.scope.clone(),
        audience: family.bearer.audience.to_owned(),
        code_hash: family.code_hash.cloned(),
        session_hash: family.session_hash.cloned(),
        auth_time: family.auth_time,
        issued_at: now,
        expires_at: idle.min(family_expires_at),
        family_expires_at,
        rotated_at: None,
        revoked_at: None,
        grant_revoked: false,
    };
    Ok((token, record))
}

#[derive(Debug)]
pub struct Request {
    refresh_token: String,
    scope: Option<ScopeSet>,
    target: TargetRequest,
}

pub fn parse(params: &Params) -> Result<Request, OAuthError> {
    Ok(Request {
        refresh_token: params.require("refresh_token")?.to_owned(),
        scope: scope::requested(params)?,
        target: TargetRequest::from_params(params)?,
    })
}

/// RFC 8707 §2.2: a refresh may name the resource (`resource`, or `audience`) the new access
/// token is for, but only one the grant covers; anything else is `invalid_target`. Naming
/// none keeps the grant's.
fn check_target(target: &TargetRequest, current: &RefreshToken) -> Result<(), OAuthError> {
    let Some(named) = target.resolve(None)? else {
        return Ok(());
    };
    if named == current.audience {
        Ok(())
    } else {
        Err(OAuthError::invalid_target(format!(
            "`{}` is not a resource of this grant; a refresh may only name `{}`",
            printable(&named),
            printable(&current.audience)
        )))
    }
}

pub async fn exchange(
    cx: &TokenContext<'_>,
    request: Request,
) -> Result<TokenResponse, OAuthError> {
    let core = cx.core;
    let presented = core.server_keys.hasher.hash(&request.refresh_token);
    let (current, user) = core
        .store
        .refresh_token_and_user(&presented)
        .await?
        .filter(|(t, _)| t.client_id == cx.client.client_id)
        .ok_or_else(|| {
            OAuthError::invalid_grant("the refresh token is not valid for this client")
        })?;
    if current.grant_revoked {
        return Err(OAuthError::invalid_grant(
            "the refresh token has been revoked",
        ));
    }
    if current.revoked_at.is_some() {
        // Revoked while its grant lives on: a successor withdrawn within the reuse grace
        // (SPEC §5). Whoever presents it is the other holder of its parent: the client and a
        // thief both hold the family, so it goes (RFC 9700 §4.14.2).
        core.store.revoke_grant(&current.grant_id, cx.now).await?;
        audit::refresh_reused(&cx.client.client_id, &current.family_id);
        return Err(OAuthError::invalid_grant(
            "this refresh token was withdrawn; every token of its family is revoked",
        ));
    }
    check_target(&request.target, &current)?;
    if current.rotated_at.is_none()
        && (current.expires_at <= cx.now || current.family_expires_at <= cx.now)
    {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    let access_scope = narrowed(cx, &current, request.scope.as_ref()).await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        core.store.revoke_grant(&current.grant_id, cx.now).await?;
        return Err(OAuthError::invalid_grant(
            "the user of this refresh token is no longer active",
        ));
    };
    let family = Family {
        bearer: &Bearer {
            subject: &user.id,
            client_id: &current.client_id,
            audience: &current.audience,
            // RFC 6749 §6: a new refresh token keeps the scope of the one it replaces.
            scope: &current.scope,
            grant_id: Some(&current.grant_id),
        },
        grant_id: &current.grant_id,
        code_hash: current.code_hash.as_ref(),
        session_hash: current.session_hash.as_ref(),
        auth_time: current.auth_time,
    };
    let (token, successor) = mint(
        core,
        &family,
        &current.family_id,
        Some(&presented),
        current.family_expires_at,
        cx.now,
    )?;
    if !rotate(cx, &current, &presented, &successor).await? {
        core.store.revoke_grant(&current.grant_id, cx.now).await?;
        audit::refresh_reused(&cx.client.client_id, &current.family_id);
        return Err(OAuthError::invalid_grant(
            "this refresh token was already used; every token of its family is revoked",
        ));
    }
    let issued = sign_access_token(
        core,
        &Bearer {
            subject: &user.id,
            client_id: &cx.client.client_id,
            audience: &current.audience,
            scope: &access_scope,
            grant_id: Some(&current.grant_id),
        },
        cx.now,
    )?;
    let mut response = TokenResponse::new(issued, &access_scope, Some(token));
    // OpenID Connect Core §12.2: a new ID token for the same sign-in (same `sub`, the
    // original `auth_time`, no `nonce`). Families from before Valet kept the sign-in time
    // have none to state, so they get no ID token.
    if let (true, Some(auth_time)) = (access_scope.contains("openid"), current.auth_time) {
        // A refresh outlives the browser session (offline access): its ID token names the
        // session only while it lasts.
        let live_session = match &current.session_hash {
            Some(hash) if core.store.session(hash, cx.now).await?.is_some() => Some(hash),
            _ => None,
        };
        let signed_in = Authentication {
            user,
            scope: &access_scope,
            auth_time,
            nonce: None,
            session: session_id(core, live_session),
            claims: &[],
        };
        response.add_id_token(cx, signed_in).await?;
    }
    Ok(response)
}

/// Rotate, or within the reuse grace period replace the unused successor of a token that was
/// just rotated (a client retrying after a lost response). False means reuse.
async fn rotate(
    cx: &TokenContext<'_>,
    current: &RefreshToken,
    presented: &SecretHash,
    successor: &RefreshToken,
) -> Result<bool, OAuthError> {
    let store = &cx.core.store;
    if current.rotated_at.is_none() && store.rotate_refresh(presented, successor, cx.now).await? {
        return Ok(true);
    }
    // Rotated before this request, or by a concurrent one: read the row as it is now.
    let grace = cx.core.settings.tokens.refresh_reuse_grace;
    let rotated_at = match current.rotated_at {
        Some(at) => Some(at),
        None => store
            .refresh_token(presented)
            .await?
            .and_then(|t| t.rotated_at),
    };
    let within_grace = rotated_at.is_some_and(|at| !grace.is_zero() && at.plus(grace) > cx.now);
    Ok(within_grace
        && store
            .replace_successor(presented, successor, cx.now)
            .await?)
}

/// RFC 6749 §6: the requested scope, which must not exceed the original grant, and which
/// shrinks further if the client or API has lost a scope since.
async fn narrowed(
    cx: &TokenContext<'_>,
    current: &RefreshToken,
    requested: Option<&ScopeSet>,
) -> Result<ScopeSet, OAuthError> {
    let requested = requested.unwrap_or(&current.scope);
    if let Some(wider) = requested.iter().find(|s| !current.scope.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "scope `{}` was not granted originally; a refresh may only narrow the scope",
            printable(wider)
        )));
    }
    let api = scope::api(cx.core, &current.audience)
        .await?
        .ok_or_else(|| {
            OAuthError::invalid_grant("the API of this refresh token no longer exists")
        })?;
    let permitted = scope::permitted(cx.client, &api, Subject::User);
    Ok(ScopeSet::from_tokens(
        requested.iter().filter(|s| permitted.contains(s)),
    ))
}

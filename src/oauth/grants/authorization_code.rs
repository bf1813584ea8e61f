//! The authorization code grant (RFC 6749 §4.1): issuing a code at `/authorize` (§4.1.2) and
//! exchanging it at `/token` (§4.1.3) with PKCE (RFC 7636 §4.5, §4.6). A code is single-use:
//! a second redemption revokes what the first produced (§4.1.2, §10.5). The PKCE verifier and
//! the redirect URI are checked before the conditional write that consumes the code, so a
//! redemption that fails them neither spends the code nor, for a used code, revokes anything.

use super::refresh_token;
use crate::audit;
use crate::core::Core;
use crate::crypto::random_token;
use crate::domain::{GrantId, UnixTime};
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::issue::{TokenContext, TokenResponse, session_id, sign_access_token};
use crate::oauth::pkce::{self, Method};
use crate::oauth::redirect;
use crate::oauth::{OAuthError, Params};
use crate::store::{AuthorizationCode, Redeemed, Session, User};
use crate::tokens::access::Bearer;
use crate::tokens::id_token::Authentication;

/// Store a fresh code (its hash only) and the grant it belongs to; return the code. Until the code is redeemed the grant lives no longer than the code (the
/// janitor then removes both), so codes nobody redeems do not leave rows for months.
pub async fn issue_code(
    core: &Core,
    request: &AuthorizationRequest,
    user: &User,
    session: &Session,
    now: UnixTime,
) -> Result<String, OAuthError> {
    let tokens = &core.settings.tokens;
    let grant_id = GrantId::new();
    let expires_at = now.plus(tokens.code_ttl);
    core.store
        .insert_grant(&grant_id, &request.client_id, &user.id, now, expires_at)
        .await?;
    let code = random_token().map_err(|e| OAuthError::server_error(e.to_string()))?;
    core.store
        .insert_code(&AuthorizationCode {
            code_hash: core.server_keys.hasher.hash(&code),
            grant_id: grant_id.clone(),
            client_id: request.client_id.clone(),
            user_id: user.id.clone(),
            session_hash: Some(session.id_hash.clone()),
            redirect_uri: request
                .redirect_uri_sent
                .then(|| request.redirect_uri.clone()),
            code_challenge: request.code_challenge.clone(),
            code_challenge_method: request.code_challenge_method.clone(),
            scope: request.scope.clone(),
            audience: Some(request.audience.clone()),
            nonce: request.nonce.clone(),
            auth_time: session.auth_time,
            created_at: now,
            expires_at,
            claims: request.claims.clone(),
        })
        .await?;
    if !request.claims.userinfo.is_empty() {
        core.store
            .set_grant_userinfo_claims(&grant_id, &request.claims.userinfo)
            .await?;
    }
    Ok(code)
}

#[derive(Debug)]
pub struct Exchange {
    code: String,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

pub fn parse(params: &Params) -> Result<Exchange, OAuthError> {
    Ok(Exchange {
        code: params.require("code")?.to_owned(),
        redirect_uri: params.get("redirect_uri").map(str::to_owned),
        code_verifier: params.get("code_verifier").map(str::to_owned),
    })
}

pub async fn exchange(
    cx: &TokenContext<'_>,
    request: Exchange,
) -> Result<TokenResponse, OAuthError> {
    let core = cx.core;
    let code_hash = core.server_keys.hasher.hash(&request.code);
    // What the request proves is checked before the write that consumes the code: a wrong
    // verifier or redirect URI leaves the code usable, so holding an intercepted code (PKCE's
    // threat model) is not enough to spend it or, once spent, to revoke its grant. A code this
    // client was never issued cannot be consumed by it either, so it needs no write.
    let Some((stored, user)) = core
        .store
        .code_and_user(&code_hash, &cx.client.client_id)
        .await?
    else {
        return Err(not_for_this_client());
    };
    check_redirect_uri(cx, &stored, request.redirect_uri.as_deref())?;
    check_verifier(cx, &stored, request.code_verifier.as_deref())?;
    let audience = stored.audience.clone().unwrap_or_default();
    let bearer = Bearer {
        subject: &stored.user_id,
        client_id: &cx.client.client_id,
        audience: &audience,
        scope: &stored.scope,
        grant_id: Some(&stored.grant_id),
    };
    let origin = refresh_token::Origin {
        code_hash: Some(&stored.code_hash),
        session_hash: stored.session_hash.as_ref(),
        auth_time: stored.auth_time,
    };
    // The user as read with the code, before the write: disabling a user, changing its
    // password or deleting it deletes its unredeemed codes in the same transaction, so a
    // code that could still be consumed had an active user then.
    let user = user.filter(|u| u.id == stored.user_id && !u.disabled);
    // The family's first token is stored by the write that consumes the code, so a
    // redemption is one write (and one round trip), and a code that is not consumed stores
    // nothing. With it the grant comes to live as long as the family; access tokens need no
    // more, as the janitor keeps a grant `access_token_ttl` past its expiry.
    let first_refresh = match user {
        Some(_) => refresh_token::first_if_allowed(core, cx.client, &bearer, origin, cx.now)?,
        None => None,
    };
    match core
        .store
        .redeem_code(
            &code_hash,
            &cx.client.client_id,
            cx.now,
            first_refresh.as_ref().map(|(_, record)| record),
        )
        .await?
    {
        // The row consumed is the row read and checked above: it is found by the same hash,
        // and a code never changes but for being consumed. Everything below is built from
        // the checked row.
        Redeemed::Issued(_) => {}
        Redeemed::Replayed { grant_id } => {
            core.store.revoke_grant(&grant_id, cx.now).await?;
            audit::code_replayed(&cx.client.client_id, grant_id.as_str());
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used; everything issued from it is revoked",
            ));
        }
        Redeemed::Unknown | Redeemed::WrongClient => return Err(not_for_this_client()),
        Redeemed::Expired => {
            return Err(OAuthError::invalid_grant(
                "the authorization code has expired",
            ));
        }
    }
    // A code of a user no longer active is consumed all the same, with no token, so that it
    // cannot be tried again (and a replay of it still revokes its grant).
    let user = user.ok_or_else(|| {
        OAuthError::invalid_grant("the user who authorized this code is no longer active")
    })?;
    let issued = sign_access_token(core, &bearer, cx.now)?;
    let refresh_token = first_refresh.map(|(token, _)| token);
    let mut response = TokenResponse::new(issued, &stored.scope, refresh_token);
    if stored.scope.contains("openid") {
        let signed_in = Authentication {
            user,
            scope: &stored.scope,
            auth_time: stored.auth_time,
            nonce: stored.nonce.as_deref(),
            session: session_id(core, stored.session_hash.as_ref()),
            claims: &stored.claims.id_token,
        };
        response.add_id_token(cx, signed_in).await?;
    }
    Ok(response)
}

fn not_for_this_client() -> OAuthError {
    OAuthError::invalid_grant("the authorization code is not valid for this client")
}

/// §4.1.3: identical to the one sent to `/authorize` when one was sent there.
fn check_redirect_uri(
    cx: &TokenContext<'_>,
    code: &AuthorizationCode,
    sent: Option<&str>,
) -> Result<(), OAuthError> {
    let matches = match (code.redirect_uri.as_deref(), sent) {
        (Some(expected), Some(sent)) => expected == sent,
        (Some(_), None) => false,
        (None, Some(sent)) => redirect::matched(&cx.client.redirect_uris, Some(sent)).is_ok(),
        (None, None) => true,
    };
    if matches {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "redirect_uri must be the one sent in the authorization request",
        ))
    }
}

/// RFC 7636 §4.6, and RFC 9700 §2.1.1: a verifier without a challenge is refused too, so that
/// PKCE cannot be stripped from the authorization request.
fn check_verifier(
    cx: &TokenContext<'_>,
    code: &AuthorizationCode,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    match (code.code_challenge.as_deref(), verifier) {
        (Some(challenge), Some(verifier)) => {
            let method = Method::parse(code.code_challenge_method.as_deref())?;
            if pkce::verify(verifier, challenge, method) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ))
            }
        }
        (Some(_), None) => Err(OAuthError::invalid_grant(
            "code_verifier is required: the authorization request used PKCE",
        )),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier was sent but the authorization request had no code_challenge",
        )),
        (None, None) if cx.client.is_public() => {
            Err(OAuthError::invalid_grant("a public client must use PKCE"))
        }
        (None, None) => Ok(()),
    }
}

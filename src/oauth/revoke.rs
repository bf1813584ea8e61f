//! Token revocation (RFC 7009): a client revokes its own refresh token, and with it the whole
//! grant (§2.1: its family and the access tokens issued under it), or an access token (its
//! `jti` goes on a deny list until it would expire anyway).
//! Unknown, malformed and already revoked tokens answer 200 (§2.2: "invalid tokens do not
//! cause an error response"). A valid token issued to another client is refused (§2.1: the
//! server "verifies whether the token was issued to the client making the revocation request.
//! If this validation fails, the request is refused and the client is informed of the error")
//! with `invalid_grant`: §2.2.1 takes its error codes from RFC 6749 §5.2, where `invalid_grant`
//! is the grant or refresh token that "was issued to another client". Nothing is revoked.

use super::{OAuthError, Params};
use crate::audit;
use crate::core::Core;
use crate::domain::UnixTime;
use crate::store::Client;
use crate::tokens::access;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Access,
    Refresh,
}

/// What a token turned out to be for the calling client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Not a valid token of this kind: try the other kind, then answer 200.
    Nothing,
    /// This client's token: revoked now (or already).
    Revoked,
    /// A valid token issued to another client: refused, untouched.
    Foreign,
}

/// Revoke `token` if it is this client's. `token_type_hint` only decides which kind is tried
/// first (§2.1: it is a hint, never trusted).
pub async fn revoke(
    core: &Core,
    client: &Client,
    params: &Params,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let token = params.require("token")?;
    let order = match params.get("token_type_hint") {
        Some("access_token") => [Kind::Access, Kind::Refresh],
        _ => [Kind::Refresh, Kind::Access],
    };
    for kind in order {
        let found = match kind {
            Kind::Refresh => revoke_refresh(core, client, token, now).await?,
            Kind::Access => revoke_access(core, client, token, now).await?,
        };
        match found {
            Found::Nothing => continue,
            Found::Revoked => break,
            Found::Foreign => {
                return Err(OAuthError::invalid_grant(
                    "the token was issued to another client; a client may revoke only its own tokens",
                ));
            }
        }
    }
    Ok(())
}

/// A refresh token of any client; revoked only if it is this client's.
async fn revoke_refresh(
    core: &Core,
    client: &Client,
    token: &str,
    now: UnixTime,
) -> Result<Found, OAuthError> {
    let Some(stored) = core
        .store
        .refresh_token(&core.server_keys.hasher.hash(token))
        .await?
    else {
        return Ok(Found::Nothing);
    };
    if stored.client_id != client.client_id {
        // Already dead, it is an invalid token like any other (§2.2).
        let dead = stored.revoked_at.is_some() || stored.grant_revoked;
        return Ok(if dead { Found::Revoked } else { Found::Foreign });
    }
    core.store.revoke_grant(&stored.grant_id, now).await?;
    audit::refresh_token_revoked(&client.client_id, stored.grant_id.as_str());
    Ok(Found::Revoked)
}

async fn revoke_access(
    core: &Core,
    client: &Client,
    token: &str,
    now: UnixTime,
) -> Result<Found, OAuthError> {
    let keys = core.keys.current();
    let Some(claims) = access::verify(&keys, token, core.settings.issuer_str(), now) else {
        return Ok(Found::Nothing);
    };
    if claims.client_id != client.client_id {
        let dead = core.store.access_token_revoked(&claims.jti).await?;
        return Ok(if dead { Found::Revoked } else { Found::Foreign });
    }
    core.store
        .revoke_access_token(&claims.jti, &client.client_id, now, UnixTime(claims.exp))
        .await?;
    audit::access_token_revoked(&client.client_id, &claims.jti);
    Ok(Found::Revoked)
}

//! Token revocation (RFC 7009): a client revokes its own refresh token, and with it the whole
//! grant (§2.1: its family and the access tokens issued under it), or an access token (its
//! `jti` goes on a deny list until it would expire anyway).
//! Unknown tokens, tokens of other clients and tokens already revoked all answer 200 (§2.2),
//! so the endpoint tells an attacker nothing.

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
        if found {
            break;
        }
    }
    Ok(())
}

/// True if `token` is a refresh token (of any client); revoked only if it is this client's.
async fn revoke_refresh(
    core: &Core,
    client: &Client,
    token: &str,
    now: UnixTime,
) -> Result<bool, OAuthError> {
    let Some(stored) = core
        .store
        .refresh_token(&core.server_keys.hasher.hash(token))
        .await?
    else {
        return Ok(false);
    };
    if stored.client_id == client.client_id {
        core.store.revoke_grant(&stored.grant_id, now).await?;
        audit::refresh_token_revoked(&client.client_id, stored.grant_id.as_str());
    }
    Ok(true)
}

async fn revoke_access(
    core: &Core,
    client: &Client,
    token: &str,
    now: UnixTime,
) -> Result<bool, OAuthError> {
    let keys = core.keys.current();
    let Some(claims) = access::verify(&keys, token, core.settings.issuer_str(), now) else {
        return Ok(false);
    };
    if claims.client_id == client.client_id {
        core.store
            .revoke_access_token(&claims.jti, &client.client_id, now, UnixTime(claims.exp))
            .await?;
        audit::access_token_revoked(&client.client_id, &claims.jti);
    }
    Ok(true)
}

//! Token revocation (RFC 7009): a client revokes its own refresh token, and with it the whole
//! grant (§2.1: its family and the access tokens issued under it), or an access token (its
//! `jti` goes on a deny list until it would expire anyway).
//! Unknown tokens, tokens of other clients and tokens already revoked all answer 200 (§2.2),
//! so the endpoint tells an attacker nothing.

use super::{OAuthError, Params};
use crate::domain::UnixTime;
use crate::state::AppState;
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
    state: &AppState,
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
            Kind::Refresh => revoke_refresh(state, client, token, now).await?,
            Kind::Access => revoke_access(state, client, token, now).await?,
        };
        if found {
            break;
        }
    }
    Ok(())
}

/// True if `token` is a refresh token (of any client); revoked only if it is this client's.
async fn revoke_refresh(
    state: &AppState,
    client: &Client,
    token: &str,
    now: UnixTime,
) -> Result<bool, OAuthError> {
    let Some(stored) = state
        .store
        .refresh_token(&state.server_keys.hasher.hash(token))
        .await?
    else {
        return Ok(false);
    };
    if stored.client_id == client.client_id {
        state.store.revoke_grant(&stored.grant_id, now).await?;
        tracing::info!(target: "audit", event = "token.revoked", token_type = "refresh_token", client_id = %client.client_id, grant_id = %stored.grant_id, "refresh token revoked with its grant");
    }
    Ok(true)
}

async fn revoke_access(
    state: &AppState,
    client: &Client,
    token: &str,
    now: UnixTime,
) -> Result<bool, OAuthError> {
    let keys = state.keys.current();
    let Some(claims) = access::verify(&keys, token, state.settings.issuer_str(), now) else {
        return Ok(false);
    };
    if claims.client_id == client.client_id {
        state
            .store
            .revoke_access_token(
                &claims.jti,
                &client.client_id,
                now,
                crate::domain::UnixTime(claims.exp),
            )
            .await?;
        tracing::info!(target: "audit", event = "token.revoked", token_type = "access_token", client_id = %client.client_id, jti = %claims.jti, "access token revoked");
    }
    Ok(true)
}

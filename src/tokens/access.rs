//! Access tokens: JWTs per RFC 9068 §2 (`typ: at+jwt`; `iss`, `sub`, `aud`, `exp`, `iat`,
//! `jti`, `client_id`, `scope`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::keys::{KeyError, KeySet, SigningKey};
use super::signer::sign_jwt;
use crate::crypto::random_bytes;
use crate::domain::{GrantId, ScopeSet, UnixTime};

/// RFC 9068 §2.1: the media type without its `application/` prefix.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's id for user grants; the client id for `client_credentials`.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
}

/// Whom and what a token is for, as a grant decided it: the one description every grant
/// hands to the access-token issuer and, for user grants, to the refresh-token family.
#[derive(Debug, Clone, Copy)]
pub struct Bearer<'a> {
    /// The user, or the client itself for client_credentials.
    pub subject: &'a str,
    pub client_id: &'a str,
    pub audience: &'a str,
    pub scope: &'a ScopeSet,
    /// The user grant it belongs to; `None` for client_credentials.
    pub grant_id: Option<&'a GrantId>,
}

pub struct IssuedAccessToken {
    pub token: String,
    pub expires_in: u64,
    pub audience: String,
}

/// Build and sign an access token with the current key.
///
/// For user grants `jti` starts with the grant id and a dot: introspection can then tell that
/// the grant was revoked (a replayed code) without storing every token.
pub fn issue(
    key: &SigningKey,
    issuer: &str,
    ttl: std::time::Duration,
    grant: &Bearer<'_>,
    now: UnixTime,
) -> Result<IssuedAccessToken, KeyError> {
    let random = URL_SAFE_NO_PAD.encode(random_bytes::<16>().map_err(|_| KeyError::Sign)?);
    let jti = match grant.grant_id {
        Some(grant_id) => format!("{grant_id}.{random}"),
        None => random,
    };
    let exp = now.plus(ttl);
    let claims = AccessClaims {
        iss: issuer.to_owned(),
        sub: grant.subject.to_owned(),
        aud: grant.audience.to_owned(),
        exp: exp.0,
        iat: now.0,
        jti,
        client_id: grant.client_id.to_owned(),
        scope: grant.scope.to_string(),
    };
    let token = sign_jwt(key, ACCESS_TOKEN_TYP, &claims)?;
    Ok(IssuedAccessToken {
        token,
        expires_in: ttl.as_secs(),
        audience: grant.audience.to_owned(),
    })
}

impl AccessClaims {
    /// The user grant this token was issued under, if any (see [`issue`]).
    pub fn grant_id(&self) -> Option<GrantId> {
        self.jti
            .split_once('.')
            .map(|(grant, _)| GrantId::from_stored(grant.to_owned()))
    }
}

/// Verify one of our own access tokens: `typ`, a published `kid`, the signature with that
/// key's algorithm only, `iss`, and `exp` after `now`. Anything else is `None`.
pub fn verify(keys: &KeySet, token: &str, issuer: &str, now: UnixTime) -> Option<AccessClaims> {
    let claims: AccessClaims = keys.decode_own(
        token,
        ACCESS_TOKEN_TYP,
        issuer,
        &["exp", "iat", "iss", "sub"],
    )?;
    (claims.exp > now.0).then_some(claims)
}

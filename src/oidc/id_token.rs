//! ID tokens (OpenID Connect Core §2): who signed in, when, and for which client, as a JWT
//! signed with the same key as access tokens. The code flow issues one at `/token` when the
//! granted scope has `openid` (§3.1.3.3); the implicit flow in the redirect (§3.2.2.5).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::userinfo::UserInfo;
use crate::config::SigningAlg;
use crate::domain::{ScopeSet, UnixTime};
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::store::User;
use crate::tokens::keys::{KeyError, SigningKey};
use crate::tokens::signer::sign_jwt;

/// The claims an ID token may carry beyond the user's (§2, §3.1.3.6).
pub const ID_TOKEN_CLAIMS: [&str; 7] =
    ["iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash"];

#[derive(Debug, Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    /// The client the token is for: exactly one audience, so no `azp` (§2).
    aud: &'a str,
    exp: i64,
    iat: i64,
    /// When the user last signed in (with a password), not when this token was made.
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_hash: Option<String>,
    /// `sub` and the claims `profile` and `email` release, as `/userinfo` gives them.
    #[serde(flatten)]
    user: UserInfo,
}

/// What the code being redeemed recorded about the sign-in.
pub struct Authentication<'a> {
    pub user: User,
    pub scope: &'a ScopeSet,
    pub auth_time: UnixTime,
    /// The `nonce` of the authorization request, echoed unchanged (§3.1.2.1).
    pub nonce: Option<&'a str>,
}

pub struct IdTokenGrant<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub ttl: std::time::Duration,
    /// The access token issued with it, if any, bound by `at_hash`.
    pub access_token: Option<&'a str>,
}

/// Sign an ID token for `client_id` with the current key and `tokens.id_token_ttl`.
pub fn sign(
    state: &AppState,
    client_id: &str,
    access_token: Option<&str>,
    signed_in: Authentication<'_>,
    now: UnixTime,
) -> Result<String, OAuthError> {
    let keys = state.keys.current();
    let grant = IdTokenGrant {
        issuer: state.settings.issuer_str(),
        client_id,
        ttl: state.settings.config.tokens.id_token_ttl.0,
        access_token,
    };
    issue(keys.current(), &grant, signed_in, now)
        .map_err(|e| OAuthError::server_error(e.to_string()))
}

pub fn issue(
    key: &SigningKey,
    grant: &IdTokenGrant<'_>,
    signed_in: Authentication<'_>,
    now: UnixTime,
) -> Result<String, KeyError> {
    let claims = IdTokenClaims {
        iss: grant.issuer,
        aud: grant.client_id,
        exp: now.plus(grant.ttl).0,
        iat: now.0,
        auth_time: signed_in.auth_time.0,
        nonce: signed_in.nonce,
        at_hash: grant.access_token.map(|token| token_hash(key.alg(), token)),
        user: UserInfo::for_scope(signed_in.user, signed_in.scope.iter()),
    };
    sign_jwt(key, "JWT", &claims)
}

/// `at_hash` (§3.1.3.6): the left half of the hash of the token's ASCII octets, with the hash
/// of the signature algorithm: SHA-256 for RS256 and ES256, SHA-512 for EdDSA (Ed25519 signs
/// with SHA-512), base64url.
fn token_hash(alg: SigningAlg, token: &str) -> String {
    let algorithm = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => &digest::SHA256,
        SigningAlg::EdDSA => &digest::SHA512,
    };
    let hash = digest::digest(algorithm, token.as_bytes());
    let bytes = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // OpenID Connect Core §A.3's example access token and at_hash (RS256).
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(
            token_hash(SigningAlg::RS256, token),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(token_hash(SigningAlg::ES256, token).len(), 22);
        assert_eq!(token_hash(SigningAlg::EdDSA, token).len(), 43);
    }
}

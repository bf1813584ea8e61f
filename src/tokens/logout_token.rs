//! Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4): a JWT that tells a client a
//! session it signed a user in through has ended.

use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::UnixTime;
use crate::tokens::keys::{KeyError, SigningKey};
use crate::tokens::signer::sign_jwt;

/// The one event a logout token carries (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token is consumed at once; two minutes covers clock skew and a slow delivery.
const LIFETIME_SECS: i64 = 120;

#[derive(Serialize)]
struct LogoutClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    sub: &'a str,
    sid: &'a str,
    events: Value,
}

/// Who is signed out of which session, for which client.
pub struct Logout<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub sub: &'a str,
    pub sid: &'a str,
}

/// §2.4: `iss`, `aud`, `iat`, `exp`, `jti`, `sub` and `sid`, the event, and never a `nonce`;
/// `typ` is `logout+jwt` (§2.4, as RFC 8725 §3.11 recommends) so it passes for no other token.
pub fn issue(key: &SigningKey, logout: &Logout<'_>, now: UnixTime) -> Result<String, KeyError> {
    let claims = LogoutClaims {
        iss: logout.issuer,
        aud: logout.client_id,
        iat: now.0,
        exp: now.0 + LIFETIME_SECS,
        jti: uuid::Uuid::new_v4().to_string(),
        sub: logout.sub,
        sid: logout.sid,
        events: json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
    };
    sign_jwt(key, "logout+jwt", &claims)
}

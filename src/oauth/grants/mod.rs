//! One module per grant type; each has a request struct, `parse` and `exchange`, and the
//! front-channel grants also hold their `/authorize` half.

pub mod authorization_code;
pub mod client_credentials;
pub mod implicit;
pub mod password;
pub mod refresh_token;

use crate::core::Core;
use crate::domain::UnixTime;
use crate::oauth::OAuthError;
use crate::tokens::id_token::{Authentication, IdTokenGrant, issue};

/// Sign an ID token for `client_id` with the current key and `tokens.id_token_ttl`.
pub fn sign_id_token(
    core: &Core,
    client_id: &str,
    access_token: Option<&str>,
    signed_in: Authentication<'_>,
    now: UnixTime,
) -> Result<String, OAuthError> {
    let keys = core.keys.current();
    let grant = IdTokenGrant {
        issuer: core.settings.issuer_str(),
        client_id,
        ttl: core.settings.tokens.id_token_ttl,
        access_token,
    };
    issue(keys.current(), &grant, signed_in, now)
        .map_err(|e| OAuthError::server_error(e.to_string()))
}

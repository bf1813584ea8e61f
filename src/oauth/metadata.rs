//! Authorization server metadata (RFC 8414 §2), from what Valet actually supports, and the
//! path of every endpoint it names.

use serde_json::{Value, json};

use super::authorize::ResponseType;
use super::response_mode::ResponseMode;
use super::token::TOKEN_GRANTS;
use crate::config::Settings;
use crate::domain::GrantType;
use crate::tokens::client_keys::ASSERTION_ALG_NAMES;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const TOKEN_PATH: &str = "/token";
pub const AUTHORIZE_PATH: &str = "/authorize";
pub const REVOKE_PATH: &str = "/revoke";
pub const INTROSPECT_PATH: &str = "/introspect";
pub const USERINFO_PATH: &str = "/userinfo";
/// The device authorization endpoint (RFC 8628 §3.1).
pub const DEVICE_AUTHORIZATION_PATH: &str = "/device_authorization";
/// The pushed authorization request endpoint (RFC 9126).
pub const PAR_PATH: &str = "/par";
/// The end-session endpoint (RP-Initiated Logout) is the sign-out page itself.
pub const END_SESSION_PATH: &str = "/logout";

/// RFC 8414 §2; OpenID Connect adds its part in `oidc::discovery`.
pub fn oauth_document(settings: &Settings) -> Value {
    let mut grants: Vec<GrantType> = TOKEN_GRANTS.to_vec();
    grants.push(GrantType::Implicit);
    grants.sort();
    let mut pkce_methods = vec!["S256"];
    if settings.authorize.allow_plain_pkce {
        pkce_methods.push("plain");
    }
    json!({
        "issuer": settings.issuer_str(),
        "authorization_endpoint": settings.endpoint(AUTHORIZE_PATH),
        "token_endpoint": settings.endpoint(TOKEN_PATH),
        "jwks_uri": settings.endpoint(JWKS_PATH),
        "grant_types_supported": grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types_supported": ResponseType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "response_modes_supported": ResponseMode::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "code_challenge_methods_supported": pkce_methods,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALG_NAMES,
        "revocation_endpoint": settings.endpoint(REVOKE_PATH),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALG_NAMES,
        "introspection_endpoint": settings.endpoint(INTROSPECT_PATH),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALG_NAMES,
        "authorization_response_iss_parameter_supported": true,
        "pushed_authorization_request_endpoint": settings.endpoint(PAR_PATH),
        "device_authorization_endpoint": settings.endpoint(DEVICE_AUTHORIZATION_PATH),
        "require_pushed_authorization_requests": false,
    })
}

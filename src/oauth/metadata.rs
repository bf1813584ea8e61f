//! Authorization server metadata (RFC 8414 §2), from what Valet actually supports, and the
//! path of every endpoint it names.

use serde_json::{Value, json};

use super::authorize::ResponseType;
use super::response_mode::ResponseMode;
use super::token::TOKEN_GRANTS;
use crate::config::{RegistrationMode, Settings};
use crate::domain::GrantType;
use crate::store::Api;
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
/// The registration endpoint (RFC 7591 §3); a client's configuration URI (RFC 7592) is this
/// path followed by `/` and its id.
pub const REGISTRATION_PATH: &str = "/register";
/// Where an API's protected-resource metadata (RFC 9728 §3) is served: this path followed by
/// the API identifier without its `https://`.
pub const PROTECTED_RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource";
/// The end-session endpoint (RP-Initiated Logout) is the sign-out page itself.
pub const END_SESSION_PATH: &str = "/logout";

/// RFC 8414 §2; OpenID Connect adds its part in `oidc::discovery`.
pub fn oauth_document(settings: &Settings) -> Value {
    let mut document = endpoints_document(settings);
    if settings.registration.mode != RegistrationMode::Closed
        && let Value::Object(map) = &mut document
    {
        map.insert(
            "registration_endpoint".into(),
            json!(settings.endpoint(REGISTRATION_PATH)),
        );
    }
    document
}

fn endpoints_document(settings: &Settings) -> Value {
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

/// RFC 9728 §2: what a client needs to find Valet from an API (an MCP client reads it after
/// the API's `401` names it in `resource_metadata`, RFC 9728 §5.1).
pub fn protected_resource_document(settings: &Settings, api: &Api) -> Value {
    json!({
        "resource": api.identifier,
        "resource_name": api.name,
        "authorization_servers": [settings.issuer_str()],
        "scopes_supported": api.scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
    })
}

/// The identifiers an RFC 9728 metadata request may be asking about. `suffix` is what follows
/// [`PROTECTED_RESOURCE_PATH`] (without its `/`): either the identifier without `https://`
/// (the URL Valet publishes), or, when a proxy in front of the API forwards the API's own
/// well-known path here, the identifier's path on the `host` the request was sent to.
pub fn protected_resource_candidates(suffix: &str, host: Option<&str>) -> Vec<String> {
    let mut candidates = Vec::with_capacity(2);
    if !suffix.is_empty() {
        candidates.push(format!("https://{suffix}"));
    }
    if let Some(host) = host.filter(|h| !h.is_empty() && !h.contains(['/', '@', '?', '#'])) {
        candidates.push(if suffix.is_empty() {
            format!("https://{host}")
        } else {
            format!("https://{host}/{suffix}")
        });
    }
    candidates
}

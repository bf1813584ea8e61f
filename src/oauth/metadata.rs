//! Authorization server metadata (RFC 8414 §2) and the OpenID Connect Discovery document,
//! built once at startup from what Valet actually supports today.

use bytes::Bytes;
use serde_json::{Value, json};

use super::token::TOKEN_GRANTS;
use crate::config::Settings;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const TOKEN_PATH: &str = "/token";

/// Both documents, serialized once.
#[derive(Clone)]
pub struct Metadata {
    pub oauth: Bytes,
    pub openid: Bytes,
}

impl Metadata {
    pub fn new(settings: &Settings) -> Self {
        let oauth = oauth_document(settings);
        let openid = oauth.clone();
        Self {
            oauth: Bytes::from(oauth.to_string()),
            openid: Bytes::from(openid.to_string()),
        }
    }
}

fn oauth_document(settings: &Settings) -> Value {
    json!({
        "issuer": settings.issuer_str(),
        "token_endpoint": settings.endpoint(TOKEN_PATH),
        "jwks_uri": settings.endpoint(JWKS_PATH),
        "grant_types_supported": TOKEN_GRANTS.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        // No authorization endpoint yet, so no response type is supported (RFC 8414 §2).
        "response_types_supported": [],
    })
}

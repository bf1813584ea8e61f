//! The OpenID Connect Discovery document (Discovery 1.0 §3): the RFC 8414 metadata of
//! `oauth/metadata.rs` plus what OpenID Connect adds.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::oauth::metadata::{END_SESSION_PATH, USERINFO_PATH, oauth_document};
use crate::oauth::scope::OPENID_SCOPES;
use crate::tokens::id_token::{CLAIMS_SUPPORTED, ID_TOKEN_CLAIMS};

/// Both documents, serialized once at startup.
#[derive(Clone)]
pub struct Metadata {
    pub oauth: Bytes,
    pub openid: Bytes,
}

impl Metadata {
    pub fn new(settings: &Settings) -> Self {
        let oauth = oauth_document(settings);
        let openid = openid_document(settings, oauth.clone());
        Self {
            oauth: Bytes::from(oauth.to_string()),
            openid: Bytes::from(openid.to_string()),
        }
    }
}

/// OpenID Connect Discovery 1.0 §3: the OAuth metadata plus what OpenID Connect adds.
fn openid_document(settings: &Settings, mut document: Value) -> Value {
    let added = json!({
        "userinfo_endpoint": settings.endpoint(USERINFO_PATH),
        "subject_types_supported": ["public"],
        // Every algorithm `keys rotate --alg` can switch to; RS256 first (Discovery §3).
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "claims_supported": CLAIMS_SUPPORTED.iter().chain(&ID_TOKEN_CLAIMS).collect::<Vec<_>>(),
        "scopes_supported": OPENID_SCOPES,
        "prompt_values_supported": ["none", "login", "consent"],
        // Their defaults are true and false; request objects are not supported (SPEC §9).
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": true,
        "end_session_endpoint": settings.endpoint(END_SESSION_PATH),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    if let (Some(document), Value::Object(added)) = (document.as_object_mut(), added) {
        document.extend(added);
    }
    document
}

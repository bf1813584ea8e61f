//! JWS compact serialization (RFC 7515 §3.1, §7.1) with a key held in memory.
//!
//! `jsonwebtoken::encode` rebuilds the backend key from DER on every call; signing the
//! compact form here with the already-parsed aws-lc-rs key pair avoids that entirely.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::keys::{KeyError, SigningKey};

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// `BASE64URL(header) . BASE64URL(claims) . BASE64URL(signature)`.
pub fn sign_jwt<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, KeyError> {
    let header = Header {
        alg: key.alg().as_str(),
        kid: key.kid(),
        typ,
    };
    let header = serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?;
    let claims = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let mut jwt = String::with_capacity(64 + (header.len() + claims.len()) * 4 / 3 + 350);
    URL_SAFE_NO_PAD.encode_string(&header, &mut jwt);
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims, &mut jwt);
    let signature = key.sign(jwt.as_bytes())?;
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
    Ok(jwt)
}

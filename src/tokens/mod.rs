//! Tokens Valet issues: signed JWTs (access tokens) and the keys that sign them.

pub mod access;
pub mod client_keys;
pub mod id_token;
pub mod keys;
pub mod logout_token;
pub mod signer;
pub mod verifier;

pub use keys::{KeyError, KeyRing, SigningKey};

//! OAuth 2.0 protocol logic. Nothing here knows about HTTP: handlers in `http` extract typed
//! inputs, call into these modules with `now`, and render what comes back.

pub mod authorize;
pub mod client_auth;
pub mod client_metadata;
pub mod device;
pub mod error;
pub mod grants;
pub mod introspect;
pub mod issue;
pub mod metadata;
pub mod params;
pub mod pkce;
pub mod prompt;
pub mod redirect;
pub mod registration;
pub mod response_mode;
pub mod revoke;
pub mod scope;
pub mod token;

pub use error::{Challenge, ErrorCode, OAuthError};
pub use params::Params;

//! OpenID Connect on top of the OAuth 2.0 core. Like `oauth`, nothing here knows about HTTP.

pub mod discovery;
pub mod userinfo;

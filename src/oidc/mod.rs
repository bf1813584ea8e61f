//! OpenID Connect on top of the OAuth 2.0 core. Like `oauth`, nothing here knows about HTTP.

pub mod backchannel;
pub mod discovery;
pub mod end_session;
pub mod userinfo;

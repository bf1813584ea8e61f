//! One thin handler per endpoint of SPEC §4.

pub mod authorize;
pub mod consent;
pub mod device;
pub mod discovery;
pub mod health;
pub mod introspect;
pub mod login;
pub mod logout;
pub mod metrics;
pub mod par;
pub mod registration;
pub mod revoke;
pub mod token;
pub mod userinfo;

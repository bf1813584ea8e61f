//! One module per grant type; each has a request struct, `parse` and `exchange`, and the
//! front-channel grants also hold their `/authorize` half.

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod implicit;
pub mod password;
pub mod refresh_token;

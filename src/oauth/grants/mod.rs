//! One module per grant type; each has a request struct, `parse` and `exchange`.

pub mod client_credentials;

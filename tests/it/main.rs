//! Integration tests: the real server over real TCP with a real HTTP client, on both stores.

mod harness;

mod authorization_code;
mod authorize_errors;
mod browser;
mod cli;
mod client_credentials;
mod config;
mod discovery;
mod errors;
mod keys;
mod login;
mod readme;
mod store_contract;

//! Integration tests: the real server over real TCP with a real HTTP client, on both stores.

mod harness;

mod cli;
mod client_credentials;
mod config;
mod discovery;
mod errors;
mod keys;
mod readme;
mod store_contract;

//! Integration tests: the real server over real TCP with a real HTTP client, on both stores.

mod harness;

mod authorization_code;
mod authorize_errors;
mod browser;
mod cli;
mod client_credentials;
mod config;
mod contacts_example;
mod cors;
mod discovery;
mod errors;
mod grant_logic;
mod id_token;
mod introspection;
mod janitor;
mod keys;
mod layers;
mod login;
mod logs;
mod metrics;
mod password;
mod prompt;
mod readme;
mod refresh;
mod replicas;
mod revocation;
mod security_challenges;
mod security_forwarded;
mod security_http;
mod security_lifecycle;
mod security_limiter;
mod security_sqlite_files;
// mod security_tokens; (being ported onto harness/fixtures.rs)
mod shutdown;
mod store_contract;
mod store_races;
mod userinfo;

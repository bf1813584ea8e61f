//! Valet: a standalone OAuth 2.0 authorization server with OpenID Connect.
//!
//! Protocol logic (`oauth`, `tokens`) takes typed inputs and `now` and knows nothing of HTTP;
//! `http` only extracts and renders; `store` owns every byte that outlives a request.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod janitor;
pub mod login;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod tokens;

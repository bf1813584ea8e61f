//! HTTP: extract typed inputs, call the protocol modules, render what they return.

pub mod browser;
pub mod client_ip;
pub mod cors;
pub mod endpoints;
pub mod extract;
pub mod middleware;
pub mod page_error;
pub mod pages;
pub mod rate_limit;
pub mod respond;
pub mod router;
pub mod server;
pub mod state;

//! HTTP: extract typed inputs, call the protocol modules, render what they return.

pub mod endpoints;
pub mod extract;
pub mod middleware;
pub mod respond;
pub mod router;

//! What it takes for a person to prove who they are: passwords, server-side sessions, CSRF
//! tokens for the forms, and the failed-login limiter.

pub mod csrf;
pub mod limiter;
pub mod password;
pub mod session;
pub mod sign_in;

//! What it takes for a person to prove who they are: passwords today; sessions, CSRF and
//! the failed-login limiter come with the login page.

pub mod password;

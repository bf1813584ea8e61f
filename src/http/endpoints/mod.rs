//! One thin handler per endpoint of SPEC §4.

pub mod discovery;
pub mod health;
pub mod token;

//! `sqlx::migrate!` embeds migrations/ at compile time, and Cargo cannot see that: without
//! this, a new migration file leaves an incremental build with the old list.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

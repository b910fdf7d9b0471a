//! `sqlx::migrate!` embeds `migrations/` when the crate compiles; a migration added or changed
//! must compile it again.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

//! Integration tests: the real HTTP API against a fresh SQLite database per test.

mod audit;
mod errors;
mod helpers;
mod limits;
mod login;
mod sessions;
mod two_factor;

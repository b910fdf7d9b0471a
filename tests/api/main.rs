//! Integration tests: the real HTTP API against a fresh database per test, each test run once
//! against SQLite and once against PostgreSQL.

#[macro_use]
mod helpers;

mod authenticator;
mod recorded;

mod audit;
mod delivery;
mod errors;
mod factors;
mod geo;
mod housekeeping;
mod jobs;
mod keys;
mod limits;
mod lockdown;
mod lockout;
mod login;
mod migrations;
mod notices;
mod outbox;
mod passkeys;
mod password;
mod password_reset;
mod refusals;
mod risk;
mod security;
mod sessions;
mod step_up;
mod two_factor;
mod two_factor_limits;
mod webhooks;

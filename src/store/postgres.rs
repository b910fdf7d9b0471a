//! The PostgreSQL store, for running several instances side by side.
//!
//! Every counter and state change is a conditional `UPDATE … RETURNING`, an upsert, or runs
//! under a lock: a transaction-scoped advisory lock per username for the failure counters, and
//! the chain's head row for audit appends, which orders the events of every instance into one
//! chain. Nothing is read, changed in Rust and written back unprotected.
//!
//! The queries themselves are shared with SQLite (`sql/`); this module is PostgreSQL's
//! [`Backend`]: the few statements that differ, and the username lock.

use std::str::FromStr;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, Pool, Postgres, Transaction};

use super::backend::{Backend, forward_to_sqlx, query};
use super::sql::SqlStore;
use super::{ConnectOptions, Migrations};
use crate::domain::audit::ChainSeal;
use crate::domain::customer::Username;

/// Explicit row locks, and `SKIP LOCKED` so that instances purging at once take different rows
/// instead of waiting for each other.
impl Backend for Postgres {
    const HEAD_FOR_APPEND: &'static str =
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
    const CUSTOMER_FOR_SEND: &'static str = "SELECT id FROM customers WHERE id = $1 FOR UPDATE";
    const CLAIM_CODES: &'static str = "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 \
         WHERE challenge_id IN (SELECT challenge_id FROM outbox WHERE status = 'PENDING' \
         AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) \
         ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING challenge_id, session_id, customer_id, channel, address, sealed_code, \
         valid_for_minutes, created_at, expires_at, attempts";
    const CHECKPOINT_FOR_PURGE: &'static str =
        "SELECT seq, hash FROM audit_checkpoint WHERE id = 1 FOR UPDATE";
    const PURGE_SESSIONS: &'static str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
         WHERE absolute_expires_at <= $1 OR (state = 'TWO_FACTOR_PENDING' AND expires_at <= $1) \
         LIMIT $2 FOR UPDATE SKIP LOCKED)";
    const PURGE_LOCKOUTS: &'static str = "DELETE FROM lockouts WHERE username IN (SELECT username FROM lockouts \
         WHERE operator_locked = FALSE AND updated_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) \
         LIMIT $2 FOR UPDATE SKIP LOCKED)";
    const NON_ASCII_USERNAMES: &'static str =
        "SELECT id, username FROM customers WHERE username ~ '[^ -~]'";

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    async fn begin_write(pool: &Pool<Self>) -> sqlx::Result<Transaction<'static, Self>> {
        pool.begin().await
    }

    /// A transaction-scoped advisory lock on the username.
    async fn lock_username(conn: &mut PgConnection, username: &Username) -> sqlx::Result<()> {
        query::<Self>("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(username.as_str())
            .execute(conn)
            .await?;
        Ok(())
    }

    forward_to_sqlx!(Postgres);
}

/// Connects, applying or checking migrations. One pool serves reads and writes: PostgreSQL has
/// no single-writer limit.
pub(super) async fn open(
    url: &str,
    options: &ConnectOptions,
    migrations: Migrations,
    seal: ChainSeal,
) -> anyhow::Result<SqlStore<Postgres>> {
    let statement_timeout = options.statement_timeout.as_millis().to_string();
    let url = PgConnectOptions::from_str(url)
        .context("FINHUB_DATABASE_URL is not a valid postgres:// URL")?;
    // Migrations may rightly take longer than any request's statement (an index on a large
    // table): they run on a connection of their own without the statement timeout.
    let migrating = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(url.clone())
        .await
        .context("cannot connect to PostgreSQL")?;
    migrations
        .run(sqlx::migrate!("./migrations/postgres"), &migrating)
        .await?;
    migrating.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(url.options([("statement_timeout", statement_timeout.as_str())]))
        .await
        .context("cannot connect to PostgreSQL")?;
    Ok(SqlStore::new(pool.clone(), pool, seal))
}

//! The PostgreSQL store, for running several instances side by side.
//!
//! Every counter and state change is a conditional `UPDATE … RETURNING`, an upsert, or runs
//! under a lock: a transaction-scoped advisory lock per username for the failure counters, and
//! the chain's head row for audit appends, which orders the events of every instance into one
//! chain. Nothing is read, changed in Rust and written back unprotected.
//!
//! The queries themselves are shared with SQLite (`../shared`); this module gives them their
//! connection types and the few statements that differ.

#[path = "../shared/audit.rs"]
mod audit;
#[path = "../shared/customers.rs"]
mod customers;
#[path = "../shared/sessions.rs"]
mod sessions;
#[path = "../shared/store_impl.rs"]
mod store_impl;
#[path = "../shared/two_factor.rs"]
mod two_factor;

use std::str::FromStr;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{ConnectOptions, StoreResult};
use crate::domain::audit::ChainSeal;
use crate::domain::customer::Username;

type Db = sqlx::Postgres;
type Pool = sqlx::PgPool;
type Conn = sqlx::PgConnection;
type ThisStore = PgStore;

/// The statements that differ from SQLite's: explicit row locks, and `SKIP LOCKED` so that
/// instances purging at once take different rows instead of waiting for each other.
mod sql {
    pub const HEAD_FOR_APPEND: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
    pub const CHECKPOINT_FOR_PURGE: &str =
        "SELECT seq, hash FROM audit_checkpoint WHERE id = 1 FOR UPDATE";
    pub const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
         WHERE absolute_expires_at <= $1 OR (state = 'TWO_FACTOR_PENDING' AND expires_at <= $1) \
         LIMIT $2 FOR UPDATE SKIP LOCKED)";
    pub const PURGE_LOCKOUTS: &str = "DELETE FROM lockouts WHERE username IN (SELECT username FROM lockouts \
         WHERE operator_locked = FALSE AND updated_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) \
         LIMIT $2 FOR UPDATE SKIP LOCKED)";
}

/// A PostgreSQL database shared by any number of instances.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// One pool serves both: PostgreSQL has no single-writer limit.
    writer: Pool,
    reader: Pool,
    seal: ChainSeal,
}

impl PgStore {
    /// Connects and applies pending migrations; concurrent starters wait on the migrator's
    /// advisory lock, so migrations run once.
    pub async fn open(
        url: &str,
        options: &ConnectOptions,
        seal: ChainSeal,
    ) -> anyhow::Result<Self> {
        let statement_timeout = options.statement_timeout.as_millis().to_string();
        let connect = PgConnectOptions::from_str(url)
            .context("FINHUB_DATABASE_URL is not a valid postgres:// URL")?
            .options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .context("cannot connect to PostgreSQL")?;
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        // A binary that predates a migration keeps working against the newer schema (rolling
        // deployments); migrations only ever add.
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .context("applying the PostgreSQL migrations")?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            seal,
        })
    }
}

async fn write_tx(pool: &Pool) -> StoreResult<sqlx::Transaction<'static, Db>> {
    Ok(pool.begin().await?)
}

/// Takes a transaction-scoped advisory lock on the username, so that its failures, guesses and
/// logins from every instance take their turn, whether or not it has a counter row yet.
async fn lock_username(conn: &mut Conn, username: &Username) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(username.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

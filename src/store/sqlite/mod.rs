//! The embedded SQLite store.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly one connection
//! that starts every transaction with `BEGIN IMMEDIATE` (no `SQLITE_BUSY` between our own
//! transactions, and another process writing the same file makes us wait rather than fail), and
//! reads go through a separate pool. WAL mode lets readers proceed during a write, and
//! `synchronous = FULL` makes every commit durable before the response that depends on it.
//!
//! The queries themselves are shared with PostgreSQL (`../shared`); this module gives them
//! their connection types and the few statements that differ.

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

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{ConnectOptions, StoreResult};
use crate::domain::audit::ChainSeal;
use crate::domain::customer::Username;

type Db = sqlx::Sqlite;
type Pool = sqlx::SqlitePool;
type Conn = sqlx::SqliteConnection;
type ThisStore = SqliteStore;

/// The statements that differ from PostgreSQL's: the single writer already orders every write,
/// so nothing is locked explicitly.
mod sql {
    pub const HEAD_FOR_APPEND: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
    pub const CHECKPOINT_FOR_PURGE: &str = "SELECT seq, hash FROM audit_checkpoint WHERE id = 1";
    pub const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
         WHERE absolute_expires_at <= $1 OR (state = 'TWO_FACTOR_PENDING' AND expires_at <= $1) LIMIT $2)";
    pub const PURGE_LOCKOUTS: &str = "DELETE FROM lockouts WHERE username IN (SELECT username FROM lockouts \
         WHERE operator_locked = FALSE AND updated_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) \
         LIMIT $2)";
}

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Pool,
    reader: Pool,
    seal: ChainSeal,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(
        url: &str,
        options: &ConnectOptions,
        seal: ChainSeal,
    ) -> anyhow::Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .with_context(|| "FINHUB_DATABASE_URL is not a valid sqlite:// URL".to_owned())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = connect
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            create_dir(dir)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot open the SQLite database {}",
                    connect.get_filename().display()
                )
            })?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        // A binary that predates a migration keeps working against the newer schema (rolling
        // deployments); migrations only ever add.
        migrator.set_ignore_missing(true);
        migrator
            .run(&writer)
            .await
            .context("applying the SQLite migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await
            .context("opening SQLite readers")?;
        Ok(Self {
            writer,
            reader,
            seal,
        })
    }
}

/// Starts a write transaction that takes SQLite's write lock at once.
async fn write_tx(pool: &Pool) -> StoreResult<sqlx::Transaction<'static, Db>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Nothing to do: the transaction already holds the database's single write lock.
async fn lock_username(_conn: &mut Conn, _username: &Username) -> StoreResult<()> {
    Ok(())
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the database directory {}", dir.display()))
}

//! The embedded SQLite store.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly one connection
//! that starts every transaction with `BEGIN IMMEDIATE` (no `SQLITE_BUSY` between our own
//! transactions, and another process writing the same file makes us wait rather than fail), and
//! reads go through a separate pool. WAL mode lets readers proceed during a write, and
//! `synchronous = FULL` makes every commit durable before the response that depends on it.
//!
//! The queries themselves are shared with PostgreSQL (`sql/`); this module is SQLite's
//! [`Backend`]: the few statements that differ, and how transactions start.

pub mod files;
mod inline_reads;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Pool, Sqlite, SqliteConnection, Transaction};

use self::inline_reads::InlineReads;
use super::backend::{Backend, HeadMove, SELECT_LOCKOUT, forward_to_sqlx, locking_statements};
use super::sql::SqlStore;
use super::{ConnectOptions, Migrations};
use crate::store::Trail;

/// The single writer already orders every write, so nothing is locked explicitly.
impl Backend for Sqlite {
    type TokenReads = Option<InlineReads>;

    /// One writer: a login's transaction waits for the one before it, whose commit syncs the
    /// disk, so the logins that arrive meanwhile share the next commit.
    const GROUP_LOGINS: bool = true;

    /// SQLite's `WITH` cannot change rows.
    const HEAD_MOVE: HeadMove = HeadMove::After;

    const MOVE_LAST_LOGIN: Option<&'static str> = None;

    /// An `UPDATE` that reads first (a claim's subquery) outside `BEGIN IMMEDIATE` could meet
    /// another process's write between its read and its write, a `SQLITE_BUSY` no wait cures.
    const ONE_STATEMENT_WRITES_ALONE: bool = false;

    /// The transaction already holds the database's single write lock.
    const LOCKOUT_UNDER_LOCK: &'static str = SELECT_LOCKOUT;

    /// SQLite compares text byte by byte unless told otherwise.
    const AUDIT_IP_BYTEWISE: &'static str = "ip";
    const NON_ASCII_USERNAMES: &'static str =
        "SELECT id, username FROM customers WHERE username GLOB '*[^ -~]*'";

    /// Anonymous `?`, bound in order. sqlx binds a named `$n` by asking SQLite for each
    /// parameter's name, which SQLite finds by scanning the statement's list of names: a
    /// few-thousand-value import insert spent most of its time there (quadratic in the values).
    fn placeholder(_n: usize) -> String {
        "?".to_owned()
    }

    /// Takes SQLite's write lock at once, so that a transaction never fails half-way with
    /// `SQLITE_BUSY` when it first writes.
    async fn begin_write(pool: &Pool<Self>) -> sqlx::Result<Transaction<'static, Self>> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn begin_write_on(conn: &mut SqliteConnection) -> sqlx::Result<Transaction<'_, Self>> {
        conn.begin_with("BEGIN IMMEDIATE").await
    }

    locking_statements!(read = "", batch = "");
    forward_to_sqlx!(Sqlite);
}

/// Opens (creating if needed) the database at `url`, applying or checking migrations.
pub(super) async fn open(
    url: &str,
    options: &ConnectOptions,
    migrations: Migrations,
    trail: Trail,
) -> anyhow::Result<SqlStore<Sqlite>> {
    let connect = SqliteConnectOptions::from_str(url)
        .with_context(|| "FINHUB_DATABASE_URL is not a valid sqlite:// URL".to_owned())?
        .create_if_missing(migrations == Migrations::Apply)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    if let Some(file) = files::database_file(url)? {
        if migrations == Migrations::Apply {
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                files::create_private_dir(dir)?;
            }
            files::create_private_database(&file)?;
        }
        files::refuse_shared_database(&file)?;
    }
    // The pool's check before handing out a connection is a round trip to its worker thread
    // for a file that cannot go away: a cost on every write transaction, with nothing to find.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout)
        .test_before_acquire(false)
        .connect_with(connect.clone())
        .await
        .with_context(|| {
            format!(
                "cannot open the SQLite database {}",
                connect.get_filename().display()
            )
        })?;
    migrations
        .run(sqlx::migrate!("./migrations/sqlite"), &writer)
        .await?;
    // An in-memory database has no file that other connections could open.
    let file = connect.get_filename();
    let inline = file.is_file().then(|| InlineReads::new(file));
    let reader = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        .test_before_acquire(false)
        .connect_with(connect.read_only(true))
        .await
        .context("opening SQLite readers")?;
    Ok(SqlStore::new(writer, reader, trail, inline))
}

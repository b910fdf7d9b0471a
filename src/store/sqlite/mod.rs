//! The embedded SQLite store.
//!
//! SQLite allows one writer at a time, so writes go through exactly one connection, run on the
//! calling thread (`writer.rs`), that starts every transaction with `BEGIN IMMEDIATE` (no
//! `SQLITE_BUSY` between our own transactions, and another process writing the same file makes
//! us wait rather than fail). Reads run on read-only connections, on the calling thread too
//! (`readers.rs`, `inline_reads.rs`), with a pool of sqlx's for a read that finds the database
//! busy. WAL mode lets readers proceed during a write, and `synchronous = FULL` makes every
//! commit durable before the response that depends on it.
//!
//! The queries themselves are shared with PostgreSQL (`sql/`); this module is SQLite's
//! [`Backend`]: the few statements that differ, and how transactions start.

pub mod files;
mod inline_reads;
mod readers;
mod statements;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use self::inline_reads::InlineReads;
use self::readers::{InlineRead, Readers};
pub(super) use self::statements::InlineError;
use self::writer::{InlineTx, InlineWriter};
use super::backend::{Backend, HeadMove, Query, Record, SELECT_LOCKOUT, locking_statements};
use super::sql::SqlStore;
use super::{ConnectOptions, Migrations};
use crate::store::Trail;

/// The single writer already orders every write, so nothing is locked explicitly.
impl Backend for Sqlite {
    type TokenReads = Arc<InlineReads>;

    /// One writer: a login's transaction waits for the one before it, whose commit syncs the
    /// disk, so the logins that arrive meanwhile share the next commit.
    const GROUP_LOGINS: bool = true;

    /// SQLite's `WITH` cannot change rows.
    const HEAD_MOVE: HeadMove = HeadMove::Separate;

    const MOVE_LAST_LOGIN: Option<&'static str> = None;

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

    type Writer = InlineWriter;
    type Tx<'c> = InlineTx<'c>;

    /// Takes SQLite's write lock at once, so that a transaction never fails half-way with
    /// `SQLITE_BUSY` when it first writes.
    async fn begin_write(writer: &InlineWriter) -> sqlx::Result<InlineTx<'static>> {
        writer.begin().await
    }

    /// In a transaction: an `UPDATE` that reads first (a claim's subquery) outside
    /// `BEGIN IMMEDIATE` could meet another process's write between its read and its write, a
    /// `SQLITE_BUSY` no wait cures. Off the runtime, with its commit: a purge's batch is not
    /// bounded by a request's size.
    async fn execute_alone(writer: &InlineWriter, query: Query<Self>) -> sqlx::Result<u64> {
        writer.alone(move |conn| conn.run_execute(&query)).await
    }

    async fn fetch_all_alone<R: Record>(
        writer: &InlineWriter,
        query: Query<Self>,
    ) -> sqlx::Result<Vec<R>> {
        writer.alone(move |conn| conn.run_fetch_all(&query)).await
    }

    async fn close_writer(writer: &InlineWriter) {
        writer.close().await;
    }

    type Reader = Readers;
    type Read = InlineRead;

    async fn read(readers: &Readers) -> sqlx::Result<InlineRead> {
        Ok(readers.read())
    }

    async fn close_reader(readers: &Readers) {
        readers.close().await;
    }

    locking_statements!(read = "", batch = "");
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
    // The writer and the readers are connections of their own, so they must share a file.
    let Some(file) = files::database_file(url)? else {
        anyhow::bail!(
            "an in-memory SQLite database cannot be shared by the service's connections; \
             name a file (on a tmpfs for a database that need not outlive the process)"
        );
    };
    if migrations == Migrations::Apply {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            files::create_private_dir(dir)?;
        }
        files::create_private_database(&file)?;
    }
    files::refuse_shared_database(&file)?;
    // Migrations run on a connection of their own, closed before the writer opens.
    let migrator = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect.clone())
        .await
        .with_context(|| format!("cannot open the SQLite database {}", file.display()))?;
    let migrated = migrations
        .run(sqlx::migrate!("./migrations/sqlite"), &migrator)
        .await;
    migrator.close().await;
    migrated?;
    let writer = InlineWriter::open(&file, options.acquire_timeout)?;
    // The session lookups and the other reads share one set of read-only connections.
    let inline = Arc::new(InlineReads::new(&file));
    // The pool's check before handing out a connection is a round trip to its worker thread
    // for a file that cannot go away.
    let reader = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        .test_before_acquire(false)
        .connect_with(connect.read_only(true))
        .await
        .context("opening SQLite readers")?;
    let readers = Readers::new(Arc::clone(&inline), reader);
    Ok(SqlStore::new(writer, readers, trail, inline))
}

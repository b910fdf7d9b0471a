//! SQLite's one writer, run on the calling thread.
//!
//! sqlx runs each SQLite statement on a worker thread of its connection and hands the rows
//! back: two context switches and their wake-ups per statement, most of what a flow's small
//! writes cost (see "Full flows: where the statements go" in `docs/performance.md`). Here the
//! writer is a rusqlite connection behind an async lock, and a transaction's statements run
//! where it is awaited: each is a few microseconds of work on pages already in memory, since
//! `BEGIN IMMEDIATE` holds the database's write lock for the whole transaction.
//!
//! What may wait on something else is handed off the runtime instead: a commit, which syncs
//! the write-ahead log to disk (`synchronous = FULL`), and a `BEGIN IMMEDIATE` that finds
//! another process writing the same file, which waits for it as sqlx's writer did. So a
//! transaction costs one hand-off, at its commit, however many statements it makes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags};
use sqlx::Sqlite;
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use super::statements::{self, is_busy, to_sqlx};
use crate::store::backend::{Query, Record, Runs, WriteTx};

/// How long a `BEGIN IMMEDIATE` waits for another process's write to end, as sqlx's
/// connections wait (`busy_timeout`).
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Statements kept prepared: every fixed statement the service writes with fits.
const PREPARED_STATEMENTS: usize = 256;

/// The writer connection, taken in turn; `None` once closed.
#[derive(Debug)]
pub struct InlineWriter {
    conn: Arc<Mutex<Option<InlineConn>>>,
    /// How long a caller waits for the writer before the store counts as unavailable.
    acquire_timeout: Duration,
    /// How long a transaction waits for another process's write to end.
    busy_wait: Duration,
}

/// The writer's connection, and how deep its savepoints are.
pub struct InlineConn {
    conn: Connection,
    savepoints: usize,
}

impl std::fmt::Debug for InlineConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineConn")
            .field("savepoints", &self.savepoints)
            .finish_non_exhaustive()
    }
}

type Held = OwnedMappedMutexGuard<Option<InlineConn>, InlineConn>;

impl InlineWriter {
    /// Opens the database file at `path`, which exists and has its schema. Its settings are
    /// those of every other connection to it (write-ahead log, `synchronous = FULL`, foreign
    /// keys enforced).
    pub fn open(path: &std::path::Path, acquire_timeout: Duration) -> anyhow::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        // Readers run beside the writer, and commits need no other lock, only in WAL mode.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .context("setting up the SQLite writer")?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "the SQLite database {} cannot use a write-ahead log (journal mode {mode}); \
             put it on a local file system",
            path.display()
        );
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .context("setting up the SQLite writer")?;
        // Nothing waits on the runtime's threads: a busy database is waited for off them.
        conn.busy_timeout(Duration::ZERO)
            .context("setting up the SQLite writer")?;
        conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
        Ok(Self {
            conn: Arc::new(Mutex::new(Some(InlineConn {
                conn,
                savepoints: 0,
            }))),
            acquire_timeout,
            busy_wait: BUSY_WAIT,
        })
    }

    /// Takes the writer and starts a transaction that holds the database's write lock.
    pub async fn begin(&self) -> sqlx::Result<InlineTx<'static>> {
        let held = self.take().await?;
        match held.conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => Ok(InlineTx::holding(held)),
            Err(e) if is_busy(&e) => begin_when_free(held, self.busy_wait).await,
            Err(e) => Err(to_sqlx(e)),
        }
    }

    /// Runs `work` in a transaction of its own, wholly off the runtime: a write whose size is
    /// not bounded by one request's (a purge's batch, a courier's claim) or that may wait.
    pub async fn alone<T: Send + 'static>(
        &self,
        work: impl FnOnce(&InlineConn) -> sqlx::Result<T> + Send + 'static,
    ) -> sqlx::Result<T> {
        let held = self.take().await?;
        let wait = self.busy_wait;
        tokio::task::spawn_blocking(move || {
            held.conn.busy_timeout(wait).map_err(to_sqlx)?;
            let done = held
                .conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(to_sqlx)
                .and_then(|()| work(&held))
                .and_then(|done| {
                    held.conn
                        .execute_batch("COMMIT")
                        .map(|()| done)
                        .map_err(to_sqlx)
                });
            if !held.conn.is_autocommit() {
                let _ = held.conn.execute_batch("ROLLBACK");
            }
            held.conn.busy_timeout(Duration::ZERO).map_err(to_sqlx)?;
            done
        })
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?
    }

    /// The writer, once the caller before has let go of it, with no transaction open.
    async fn take(&self) -> sqlx::Result<Held> {
        let held = tokio::time::timeout(self.acquire_timeout, Arc::clone(&self.conn).lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        let mut held: Held =
            OwnedMutexGuard::try_map(held, Option::as_mut).map_err(|_| sqlx::Error::PoolClosed)?;
        // A task that panicked while holding it may have left its transaction open.
        if !held.conn.is_autocommit() {
            held.conn.execute_batch("ROLLBACK").map_err(to_sqlx)?;
        }
        held.savepoints = 0;
        Ok(held)
    }

    /// Closes the connection once the transaction holding it, if any, is over.
    pub async fn close(&self) {
        self.conn.lock().await.take();
    }
}

/// Waits, off the runtime, for another process's write to end, then takes the write lock.
async fn begin_when_free(held: Held, wait: Duration) -> sqlx::Result<InlineTx<'static>> {
    tokio::task::spawn_blocking(move || {
        held.conn.busy_timeout(wait)?;
        let began = held.conn.execute_batch("BEGIN IMMEDIATE");
        held.conn.busy_timeout(Duration::ZERO)?;
        began?;
        // Made here, so that a transaction whose caller has gone meanwhile rolls back as it
        // is dropped, rather than keep the write lock from other processes.
        Ok(InlineTx::holding(held))
    })
    .await
    .map_err(|_| sqlx::Error::WorkerCrashed)?
    .map_err(to_sqlx)
}

/// A transaction on the writer, or a savepoint in one.
#[derive(Debug)]
pub struct InlineTx<'c> {
    /// `None` once committed or rolled back.
    conn: Option<TxConn<'c>>,
}

#[derive(Debug)]
enum TxConn<'c> {
    /// The transaction, holding the writer.
    Top(Held),
    /// A savepoint, at this depth, in the transaction that lends the writer.
    Savepoint(&'c mut InlineConn, usize),
}

impl TxConn<'_> {
    fn conn(&mut self) -> &mut InlineConn {
        match self {
            Self::Top(held) => held,
            Self::Savepoint(conn, _) => conn,
        }
    }
}

impl InlineTx<'static> {
    fn holding(held: Held) -> Self {
        Self {
            conn: Some(TxConn::Top(held)),
        }
    }
}

impl InlineTx<'_> {
    /// The connection, while its transaction is open. SQLite rolls a whole transaction back on
    /// its own after some errors (a full disk, an I/O error): the statements after it would
    /// each commit alone, so they are refused.
    fn conn(&mut self) -> sqlx::Result<&mut InlineConn> {
        let conn = self
            .conn
            .as_mut()
            .map(TxConn::conn)
            .ok_or(sqlx::Error::BeginFailed)?;
        if conn.conn.is_autocommit() {
            return Err(sqlx::Error::Protocol(
                "SQLite ended the transaction after an error".into(),
            ));
        }
        Ok(conn)
    }
}

impl WriteTx<Sqlite> for InlineTx<'_> {
    async fn commit(mut self) -> sqlx::Result<()> {
        match self.conn.take() {
            // The sync to disk is the one step of a transaction that waits on something.
            Some(TxConn::Top(held)) => tokio::task::spawn_blocking(move || {
                let committed = held.conn.execute_batch("COMMIT");
                // SQLite may have kept the transaction open; it goes now.
                if committed.is_err() && !held.conn.is_autocommit() {
                    let _ = held.conn.execute_batch("ROLLBACK");
                }
                committed
            })
            .await
            .map_err(|_| sqlx::Error::WorkerCrashed)?
            .map_err(to_sqlx),
            Some(TxConn::Savepoint(conn, depth)) => {
                conn.savepoints = depth - 1;
                conn.conn
                    .execute_batch(&format!("RELEASE sp{depth}"))
                    .map_err(to_sqlx)
            }
            None => Ok(()),
        }
    }

    async fn rollback(mut self) -> sqlx::Result<()> {
        match self.conn.take() {
            Some(conn) => roll_back(conn),
            None => Ok(()),
        }
    }

    async fn savepoint(&mut self) -> sqlx::Result<InlineTx<'_>> {
        let conn = self.conn()?;
        let depth = conn.savepoints + 1;
        conn.conn
            .execute_batch(&format!("SAVEPOINT sp{depth}"))
            .map_err(to_sqlx)?;
        conn.savepoints = depth;
        Ok(InlineTx {
            conn: Some(TxConn::Savepoint(conn, depth)),
        })
    }
}

/// Undoes what a transaction or savepoint wrote: no sync, so on the calling thread.
fn roll_back(mut conn: TxConn<'_>) -> sqlx::Result<()> {
    let undo = match &mut conn {
        TxConn::Top(held) if !held.conn.is_autocommit() => held.conn.execute_batch("ROLLBACK"),
        TxConn::Top(_) => Ok(()),
        TxConn::Savepoint(conn, depth) => {
            conn.savepoints = *depth - 1;
            conn.conn
                .execute_batch(&format!("ROLLBACK TO sp{depth}; RELEASE sp{depth}"))
        }
    };
    undo.map_err(to_sqlx)
}

impl Drop for InlineTx<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && let Err(e) = roll_back(conn)
        {
            tracing::warn!(error = %e, "rolling back an abandoned SQLite transaction failed");
        }
    }
}

impl Runs<Sqlite> for InlineTx<'_> {
    async fn execute(&mut self, query: Query<Sqlite>) -> sqlx::Result<u64> {
        self.conn()?.run_execute(&query)
    }

    async fn fetch_optional<R: Record>(&mut self, query: Query<Sqlite>) -> sqlx::Result<Option<R>> {
        self.conn()?.run_fetch_optional(&query)
    }

    async fn fetch_all<R: Record>(&mut self, query: Query<Sqlite>) -> sqlx::Result<Vec<R>> {
        self.conn()?.run_fetch_all(&query)
    }
}

impl InlineConn {
    pub(super) fn run_execute(&self, query: &Query<Sqlite>) -> sqlx::Result<u64> {
        statements::execute(&self.conn, query).map_err(to_sqlx)
    }

    pub(super) fn run_fetch_optional<R: Record>(
        &self,
        query: &Query<Sqlite>,
    ) -> sqlx::Result<Option<R>> {
        statements::fetch_optional(&self.conn, query).map_err(to_sqlx)
    }

    pub(super) fn run_fetch_all<R: Record>(&self, query: &Query<Sqlite>) -> sqlx::Result<Vec<R>> {
        statements::fetch_all(&self.conn, query).map_err(to_sqlx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Sqlite;

    use super::InlineWriter;
    use crate::domain::ports::{StoreError, Taken};
    use crate::store::backend::{WriteTx as _, query};
    use crate::store::test_schema::sqlite_file;

    /// A database file with one table, and the writer on it.
    fn writer() -> (tempfile::TempDir, std::path::PathBuf, InlineWriter) {
        let (dir, file) = sqlite_file(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER);",
        );
        let writer = InlineWriter::open(&file, Duration::from_secs(5)).unwrap();
        (dir, file, writer)
    }

    async fn rows(writer: &InlineWriter) -> Vec<(String, i64)> {
        let mut tx = writer.begin().await.unwrap();
        let rows = query::<Sqlite>("SELECT k, v FROM t ORDER BY k")
            .fetch_all(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        rows
    }

    /// `$n` is the `n`th value wherever it stands in the text, as on PostgreSQL.
    #[tokio::test]
    async fn numbered_values_bind_wherever_they_stand() {
        let (_dir, _file, writer) = writer();
        let mut tx = writer.begin().await.unwrap();
        let changed = query::<Sqlite>("INSERT INTO t (v, k) VALUES ($2, $1), ($2 + 1, $1 || 'x')")
            .bind("a")
            .bind(7_i64)
            .execute(&mut tx)
            .await
            .unwrap();
        assert_eq!(changed, 2);
        let read = query::<Sqlite>("SELECT $1 AS unchanged FROM t LIMIT 1")
            .bind(3_i64)
            .execute(&mut tx)
            .await
            .unwrap();
        assert_eq!(read, 0, "a read changes nothing");
        tx.commit().await.unwrap();
        assert_eq!(rows(&writer).await, [("a".into(), 7), ("ax".into(), 8)]);
    }

    /// A request that goes away mid-write (its future dropped with the transaction) leaves no
    /// half of its write behind, and the writer serves the next caller.
    #[tokio::test]
    async fn a_transaction_dropped_unfinished_writes_nothing() {
        let (_dir, _file, writer) = writer();
        let mut tx = writer.begin().await.unwrap();
        query::<Sqlite>("INSERT INTO t (k, v) VALUES ('gone', 1)")
            .execute(&mut tx)
            .await
            .unwrap();
        drop(tx);
        assert!(rows(&writer).await.is_empty());
    }

    /// A savepoint rolled back undoes its own writes and keeps its transaction's.
    #[tokio::test]
    async fn a_savepoint_rolled_back_keeps_the_rest_of_its_transaction() {
        let (_dir, _file, writer) = writer();
        let mut tx = writer.begin().await.unwrap();
        for (k, keep) in [("kept", true), ("undone", false), ("kept too", true)] {
            let mut savepoint = tx.savepoint().await.unwrap();
            query::<Sqlite>("INSERT INTO t (k, v) VALUES ($1, 1)")
                .bind(k)
                .execute(&mut savepoint)
                .await
                .unwrap();
            if keep {
                savepoint.commit().await.unwrap();
            } else {
                savepoint.rollback().await.unwrap();
            }
        }
        tx.commit().await.unwrap();
        assert_eq!(
            rows(&writer).await,
            [("kept".into(), 1), ("kept too".into(), 1)]
        );
    }

    /// Errors are classified as sqlx's SQLite errors are: a taken key is a conflict (a
    /// duplicate username is a 409, not a 500).
    #[tokio::test]
    async fn a_taken_key_is_a_conflict() {
        let (_dir, _file, writer) = writer();
        let mut tx = writer.begin().await.unwrap();
        let insert = || query::<Sqlite>("INSERT INTO t (k, v) VALUES ('k', 1)");
        insert().execute(&mut tx).await.unwrap();
        let taken = insert().execute(&mut tx).await.unwrap_err();
        assert!(
            matches!(StoreError::from(taken), StoreError::Conflict(Taken::Other)),
            "a unique violation"
        );
    }

    /// Another process writing the same file (an operator's command) makes a write wait for
    /// it, off the runtime, rather than fail; and a write that cannot wait long enough is an
    /// outage (503), not a bug.
    #[tokio::test]
    async fn a_write_waits_for_another_process_holding_the_lock() {
        let (_dir, file, writer) = writer();
        let other = rusqlite::Connection::open(&file).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let waiting = tokio::spawn(async move {
            let mut tx = writer.begin().await?;
            query::<Sqlite>("INSERT INTO t (k, v) VALUES ('after', 2)")
                .execute(&mut tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(writer)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the write waits for the lock");
        other
            .execute_batch("INSERT INTO t (k, v) VALUES ('before', 1); COMMIT")
            .unwrap();
        let writer = waiting.await.unwrap().unwrap();
        assert_eq!(
            rows(&writer).await,
            [("after".into(), 2), ("before".into(), 1)]
        );

        let (_dir, file) = sqlite_file("PRAGMA journal_mode = WAL;");
        let mut impatient = InlineWriter::open(&file, Duration::from_secs(5)).unwrap();
        impatient.busy_wait = Duration::from_millis(50);
        let other = rusqlite::Connection::open(&file).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let e = impatient.begin().await.unwrap_err();
        assert!(matches!(StoreError::from(e), StoreError::Unavailable(_)));
    }

    /// A caller that goes away while its write waits for another process's lock (a client
    /// that disconnects, a login answered by another's commit) does not keep the lock once
    /// its wait ends: an operator's command can still write.
    #[tokio::test]
    async fn a_write_given_up_while_waiting_does_not_keep_the_lock() {
        let (_dir, file, writer) = writer();
        let writer = std::sync::Arc::new(writer);
        let other = rusqlite::Connection::open(&file).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let waiting = tokio::spawn({
            let writer = std::sync::Arc::clone(&writer);
            async move { writer.begin().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        waiting.abort();
        other.execute_batch("COMMIT").unwrap();
        // The abandoned wait takes the lock as soon as it is free, on its own thread, and
        // lets go of the writer when it is done.
        for _ in 0..500 {
            if writer.conn.try_lock().is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let operator = rusqlite::Connection::open(&file).unwrap();
        operator
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (k, v) VALUES ('operator', 1); COMMIT")
            .unwrap();
        assert_eq!(rows(&writer).await, [("operator".into(), 1)]);
    }
}

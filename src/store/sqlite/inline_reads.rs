//! Session lookups by access token, read on the calling thread.
//!
//! Every authenticated request reads its session. sqlx runs each SQLite statement on a worker
//! thread of the connection and hands the rows back, and on the hot read that handoff (two
//! context switches and their wake-ups) cost about half the CPU of the whole request. These
//! lookups are single indexed reads of a few microseconds, so they run inline on a handful of
//! read-only connections instead, with the same statements as every other backend.
//!
//! They never wait: SQLite's busy handler is off, and a read that finds the database busy
//! (rare in WAL mode: recovery after a crash) is left to the pooled reader, which may wait
//! without holding up the async runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::anyhow;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};

use super::statements::is_busy;
use crate::domain::ports::{StoreError, StoreResult};
use crate::store::backend::{Record, TokenRead, TokenReads};
use crate::store::token_rows::TokenRecord;

/// Statements kept prepared on each connection: every fixed read the service makes fits.
const PREPARED_STATEMENTS: usize = 128;

/// Read-only connections to one SQLite file, each used by one thread at a time.
pub struct InlineReads {
    path: PathBuf,
    /// Set at shutdown: no connection is opened or kept after it.
    closed: AtomicBool,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for InlineReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReads")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// SQLite's reads by token, inline, on the connections its other reads use too.
impl TokenReads for Arc<InlineReads> {
    async fn read_one<R: Record + TokenRecord>(
        &self,
        read: &'static TokenRead,
        key: &[u8],
    ) -> Option<StoreResult<Option<R>>> {
        self.read_row(read.one, key)
    }

    fn close(&self) {
        self.shut_down();
    }
}

impl InlineReads {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            closed: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The row `sql` selects by one key; `None` inside when there is none, `None` outside when
    /// the database was busy and the caller should read through the pool instead.
    pub fn read_row<R: TokenRecord>(
        &self,
        sql: &str,
        key: &[u8],
    ) -> Option<StoreResult<Option<R>>> {
        let conn = match self.take() {
            Ok(conn) => conn,
            Err(e) => return Some(Err(e)),
        };
        let read = conn.prepare_cached(sql).and_then(|mut statement| {
            statement
                .query_row([key], |row| R::from_columns(row, 0))
                .optional()
        });
        match read {
            Ok(row) => {
                self.put_back(conn);
                Some(Ok(row))
            }
            Err(e) if is_busy(&e) => {
                self.put_back(conn);
                None
            }
            // A connection that failed otherwise is dropped rather than reused.
            Err(e) => Some(Err(StoreError::Other(
                anyhow!(e).context("inline session read"),
            ))),
        }
    }

    pub(super) fn take(&self) -> StoreResult<Connection> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        if let Some(conn) = self.lock_idle().pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("opening an inline reader: {e}")))?;
        // No busy handler: waiting here would block a runtime thread (see the module's notes).
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(|e| StoreError::Other(anyhow!(e)))?;
        conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
        Ok(conn)
    }

    /// At shutdown: closes the idle connections, and opens or keeps none after, so that a read
    /// still under way fails rather than reach a store the service has let go of.
    pub(super) fn shut_down(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock_idle().clear();
    }

    pub(super) fn put_back(&self, conn: Connection) {
        if !self.closed.load(Ordering::Acquire) {
            self.lock_idle().push(conn);
        }
    }

    fn lock_idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        crate::store::lock_list(&self.idle)
    }
}

#[cfg(test)]
mod tests {
    use super::InlineReads;
    use crate::store::test_schema::sqlite_file;

    /// A read that outlives shutdown (a request still being answered while the service stops)
    /// neither gets a fresh connection nor leaves its own open behind.
    #[test]
    fn once_shut_down_no_connection_is_opened_or_kept() {
        let (_dir, file) = sqlite_file("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT);");
        let reads = InlineReads::new(&file);
        let under_way = reads.take().unwrap();
        reads.shut_down();
        assert!(reads.take().is_err(), "no connection opened after shutdown");
        reads.put_back(under_way);
        assert!(reads.lock_idle().is_empty(), "none kept after shutdown");
    }
}

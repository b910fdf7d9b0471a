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
use std::sync::Mutex;

use anyhow::anyhow;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Row};

use crate::domain::ports::{StoreError, StoreResult};
use crate::store::backend::{Record, TokenRead, TokenReads};
use crate::store::rows::{CustomerRow, SessionCustomerRow, SessionRow};

/// Read-only connections to one SQLite file, each used by one thread at a time.
pub struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for InlineReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReads")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A row the inline reader can decode.
pub trait InlineRecord: Sized {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self>;
}

/// SQLite's reads by token: inline on a file database, through the pool on one in memory
/// (which no other connection can open).
impl TokenReads for Option<InlineReads> {
    async fn read_one<R: Record + InlineRecord>(
        &self,
        read: &'static TokenRead,
        key: &[u8],
    ) -> Option<StoreResult<Option<R>>> {
        self.as_ref()
            .and_then(|inline| inline.read_one(read.one, key))
    }

    fn close(&self) {
        if let Some(inline) = self {
            inline.close();
        }
    }
}

impl InlineReads {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The row `sql` selects by one key; `None` inside when there is none, `None` outside when
    /// the database was busy and the caller should read through the pool instead.
    pub fn read_one<R: InlineRecord>(
        &self,
        sql: &str,
        key: &[u8],
    ) -> Option<StoreResult<Option<R>>> {
        let conn = match self.take() {
            Ok(conn) => conn,
            Err(e) => return Some(Err(e)),
        };
        let read = conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.query_row([key], R::from_row).optional());
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

    fn take(&self) -> StoreResult<Connection> {
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
        Ok(conn)
    }

    /// Closes the idle connections: at shutdown, once no request reads any more.
    pub fn close(&self) {
        self.lock_idle().clear();
    }

    fn put_back(&self, conn: Connection) {
        self.lock_idle().push(conn);
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        crate::store::lock_list(&self.idle)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

// Columns are read by position (a lookup by name scans the statement's column names, and showed
// up in the profile), in the order `session_columns!` and `customer_columns!` list them.
const SESSION_COLUMNS: usize = 12;

fn session_at(row: &Row<'_>, i: usize) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(i)?,
        customer_id: row.get(i + 1)?,
        state: row.get(i + 2)?,
        created_at: row.get(i + 3)?,
        expires_at: row.get(i + 4)?,
        absolute_expires_at: row.get(i + 5)?,
        last_seen_at: row.get(i + 6)?,
        login_at: row.get(i + 7)?,
        previous_login_at: row.get(i + 8)?,
        two_factor_verified: row.get(i + 9)?,
        revoked_at: row.get(i + 10)?,
        recent_auth_at: row.get(i + 11)?,
    })
}

fn customer_at(row: &Row<'_>, i: usize) -> rusqlite::Result<CustomerRow> {
    Ok(CustomerRow {
        id: row.get(i)?,
        username: row.get(i + 1)?,
        email: row.get(i + 2)?,
        phone: row.get(i + 3)?,
        first_name: row.get(i + 4)?,
        last_name: row.get(i + 5)?,
        kyc_status: row.get(i + 6)?,
        password_hash: row.get(i + 7)?,
        last_login_at: row.get(i + 8)?,
        factor_id: row.get(i + 9)?,
        factor_method: row.get(i + 10)?,
        factor_address: row.get(i + 11)?,
    })
}

impl InlineRecord for SessionRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        session_at(row, 0)
    }
}

impl InlineRecord for SessionCustomerRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            session: session_at(row, 0)?,
            customer: customer_at(row, SESSION_COLUMNS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::rows::{customer_columns, session_columns};

    /// The positions above follow the column lists; this fails if either changes.
    #[test]
    fn positions_follow_the_column_lists() {
        let names = |columns: &str| -> Vec<String> {
            columns
                .split(',')
                .map(|c| c.split_whitespace().last().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(
            names(session_columns!()),
            [
                "session_id",
                "s.customer_id",
                "s.state",
                "s.created_at",
                "s.expires_at",
                "s.absolute_expires_at",
                "s.last_seen_at",
                "s.login_at",
                "s.previous_login_at",
                "s.two_factor_verified",
                "s.revoked_at",
                "s.recent_auth_at"
            ]
        );
        assert_eq!(names(session_columns!()).len(), super::SESSION_COLUMNS);
        assert_eq!(
            names(customer_columns!()),
            [
                "c.id",
                "c.username",
                "c.email",
                "c.phone",
                "c.first_name",
                "c.last_name",
                "c.kyc_status",
                "c.password_hash",
                "c.last_login_at",
                "factor_id",
                "factor_method",
                "factor_address"
            ]
        );
    }
}

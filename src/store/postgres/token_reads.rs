//! Session lookups by token on connections of their own, outside sqlx's pool.
//!
//! Every authenticated request reads its session. sqlx's pool checks each connection it hands
//! out and takes back with an empty `Sync` to the server: two round trips beside the query's
//! one, each waking PostgreSQL's backend, and in the profile they cost more than the read
//! itself. These reads are single indexed `SELECT`s that change nothing, so they run on a
//! handful of connections kept here instead, with the same statements and settings (TLS and
//! the statement timeout included), prepared once per connection.
//!
//! A connection is checked by using it: a read that fails on one that may have gone stale (the
//! server restarted, a proxy dropped it) is retried once on a new connection, which costs
//! nothing while connections are healthy. A read abandoned halfway (its client left) drops
//! its connection rather than returning one in an unknown state.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection as _, Postgres};
use tokio::sync::Semaphore;

use crate::domain::ports::StoreResult;
use crate::store::backend::{Record, TokenReads};
use crate::store::sqlite::InlineRecord;

/// Connections to PostgreSQL for the per-request reads by token.
pub struct PgTokenReads {
    connect: PgConnectOptions,
    /// One permit per connection that may exist.
    slots: Semaphore,
    idle: Mutex<Vec<PgConnection>>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PgTokenReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTokenReads")
            .field("connections", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl PgTokenReads {
    /// At most `connections` connections made with `connect`, each opened when first needed;
    /// a read waits `acquire_timeout` at most for one to be free.
    pub fn new(connect: PgConnectOptions, connections: u32, acquire_timeout: Duration) -> Self {
        Self {
            connect,
            slots: Semaphore::new(usize::try_from(connections.max(1)).unwrap_or(1)),
            idle: Mutex::new(Vec::new()),
            acquire_timeout,
        }
    }

    async fn read<R: Record>(&self, sql: &'static str, key: &[u8]) -> sqlx::Result<Option<R>> {
        let _slot = tokio::time::timeout(self.acquire_timeout, self.slots.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = self.lock_idle().pop();
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let row = match select(&mut conn, sql, key).await {
            Err(e) if !fresh && is_connection_lost(&e) => {
                drop(conn);
                conn = self.connect().await?;
                select(&mut conn, sql, key).await?
            }
            read => read?,
        };
        self.lock_idle().push(conn);
        Ok(row)
    }

    /// A new connection, given up after the pool's acquire timeout as a pooled one would be
    /// (a server that does not answer must not hold a request for long).
    async fn connect(&self) -> sqlx::Result<PgConnection> {
        tokio::time::timeout(
            self.acquire_timeout,
            PgConnection::connect_with(&self.connect),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<PgConnection>> {
        // The list is valid whatever a panicking holder was doing: push and pop only.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn select<R: Record>(
    conn: &mut PgConnection,
    sql: &'static str,
    key: &[u8],
) -> sqlx::Result<Option<R>> {
    sqlx::query_as::<Postgres, R>(sql)
        .bind(key)
        .fetch_optional(conn)
        .await
}

/// The connection, not the statement, failed: another connection may well succeed.
fn is_connection_lost(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

impl TokenReads for PgTokenReads {
    async fn read_one<R: Record + InlineRecord>(
        &self,
        sql: &'static str,
        key: &[u8],
    ) -> Option<StoreResult<Option<R>>> {
        Some(self.read(sql, key).await.map_err(Into::into))
    }

    fn close(&self) {
        self.slots.close();
        self.lock_idle().clear();
    }
}

//! SQLite's reads, on the calling thread.
//!
//! Every read but the session lookup (`inline_reads.rs`) went through sqlx's pool, whose driver
//! runs each statement on a worker thread of its connection and hands the rows back. They are
//! indexed reads of a few microseconds, so they run here on read-only rusqlite connections, as
//! the session lookup does. A read never waits on a lock on the runtime's threads: one that
//! finds the database busy (rare in WAL mode: a recovery after a crash) is run through sqlx's
//! pool instead, which may wait without holding up the runtime.

use std::sync::Arc;

use rusqlite::Connection;
use sqlx::{Pool, Sqlite};

use super::inline_reads::InlineReads;
use super::statements::{self, is_busy, to_sqlx};
use crate::store::backend::{Query, Record, Runs};

/// Read-only connections run on the calling thread, and the pool for a read they cannot take.
#[derive(Debug)]
pub struct Readers {
    inline: Arc<InlineReads>,
    pool: Pool<Sqlite>,
}

impl Readers {
    pub fn new(inline: Arc<InlineReads>, pool: Pool<Sqlite>) -> Self {
        Self { inline, pool }
    }

    /// A connection for a caller's reads: inline when one can be had, else the pool's.
    pub fn read(&self) -> InlineRead {
        InlineRead {
            conn: self.inline.take().ok(),
            inline: Arc::clone(&self.inline),
            pool: self.pool.clone(),
        }
    }

    pub async fn close(&self) {
        self.inline.shut_down();
        self.pool.close().await;
    }
}

/// One caller's reads; its connection goes back to the idle ones when it is dropped.
pub struct InlineRead {
    /// `None` when none could be opened, or after an error it may not have survived.
    conn: Option<Connection>,
    inline: Arc<InlineReads>,
    pool: Pool<Sqlite>,
}

impl InlineRead {
    /// `run` on the inline connection; `None` when the pool should run the read instead.
    fn inline<T>(
        &mut self,
        run: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<sqlx::Result<T>> {
        let conn = self.conn.as_ref()?;
        match run(conn) {
            Ok(done) => Some(Ok(done)),
            Err(e) if is_busy(&e) => None,
            Err(e) => {
                // A connection that failed otherwise is dropped rather than reused.
                self.conn = None;
                Some(Err(to_sqlx(e)))
            }
        }
    }
}

impl Drop for InlineRead {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.inline.put_back(conn);
        }
    }
}

impl Runs<Sqlite> for InlineRead {
    async fn execute(&mut self, query: Query<Sqlite>) -> sqlx::Result<u64> {
        match self.inline(|conn| statements::execute(conn, &query)) {
            Some(done) => done,
            None => query.execute(&mut self.pool.acquire().await?).await,
        }
    }

    async fn fetch_optional<R: Record>(&mut self, query: Query<Sqlite>) -> sqlx::Result<Option<R>> {
        match self.inline(|conn| statements::fetch_optional(conn, &query)) {
            Some(done) => done,
            None => query.fetch_optional(&mut self.pool.acquire().await?).await,
        }
    }

    async fn fetch_all<R: Record>(&mut self, query: Query<Sqlite>) -> sqlx::Result<Vec<R>> {
        match self.inline(|conn| statements::fetch_all(conn, &query)) {
            Some(done) => done,
            None => query.fetch_all(&mut self.pool.acquire().await?).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;
    use std::time::Duration;

    use sqlx::Sqlite;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::{InlineReads, Readers};
    use crate::store::backend::query;

    /// A read that finds the database busy is not failed (a 503 for nothing) nor waited for
    /// on the runtime's thread: the pool runs it, and it is answered once the database is free.
    #[tokio::test]
    async fn a_read_that_finds_the_database_busy_goes_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.db");
        let owner = rusqlite::Connection::open(&file).unwrap();
        owner
            .execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
                    .unwrap()
                    .read_only(true)
                    .busy_timeout(Duration::from_secs(10)),
            )
            .await
            .unwrap();
        let readers = Readers::new(std::sync::Arc::new(InlineReads::new(&file)), pool);
        let read = || async {
            query::<Sqlite>("SELECT v FROM t")
                .fetch_one::<(i64,)>(&mut readers.read())
                .await
        };
        assert_eq!(
            read().await.unwrap(),
            (7,),
            "inline, while nothing else holds it"
        );

        // A writer holding the database exclusively keeps every reader out: without a
        // write-ahead log (the service's database has one, where only a recovery does that).
        owner
            .execute_batch("BEGIN EXCLUSIVE; UPDATE t SET v = 8;")
            .unwrap();
        let (answer, released) = tokio::join!(read(), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            owner.execute_batch("COMMIT").unwrap();
        });
        let () = released;
        assert_eq!(answer.unwrap(), (8,), "the pool waited for it");
    }
}

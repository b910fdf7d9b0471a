//! Session lookups by token on connections of their own, outside sqlx's pool, the lookups that
//! arrive together read in one statement.
//!
//! Every authenticated request reads its session. sqlx's pool checks each connection it hands
//! out and takes back with an empty `Sync` to the server: two round trips beside the query's
//! one, each waking PostgreSQL's backend, and in the profile they cost more than the read
//! itself. These reads are single indexed `SELECT`s that change nothing, so they run on a
//! handful of connections kept here instead, with the same settings (TLS and the statement
//! timeout included), prepared once per connection.
//!
//! A round trip then still costs a wake-up on both sides per read. So a read queues its hash,
//! and whoever holds a connection takes the hashes waiting (up to [`MAX_BATCH`], oldest first)
//! and reads them in one statement ([`TokenRead::batch`]): one lookup per hash, each row matched
//! back to its hash by position, never by comparing rows. A read waits for its reply or for a
//! connection, whichever comes first; with a connection it runs batches until its own reply is
//! in, then lets the connection go to the next read waiting for one, so a hash queued just as
//! a runner left is never stranded and no runner serves others for long.
//!
//! A connection is checked by using it: a statement that fails on one that may have gone stale
//! (the server restarted, a proxy dropped it) is retried once on a new connection. A batch that
//! fails sends its error to each of its reads; one abandoned halfway (the request running it was
//! dropped) puts its reads back in the queue. A read gives up, with a 503, when no connection
//! is free within the acquire timeout and no runner has taken its hash, or after the acquire
//! timeout twice (a connection, then a new one) and the statement timeout in all.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::anyhow;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{Connection as _, Postgres, Row as _};
use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::{Semaphore, SemaphorePermit, oneshot};

use crate::domain::ports::{StoreError, StoreResult};
use crate::store::backend::{Record, TokenRead, TokenReads};
use crate::store::lock_list;
use crate::store::token_rows::TokenRecord;

/// The most hashes one statement reads.
const MAX_BATCH: usize = 64;

/// Connections to PostgreSQL for the per-request reads by token.
pub struct PgTokenReads {
    connect: PgConnectOptions,
    /// One permit per connection that may exist.
    slots: Semaphore,
    idle: Mutex<Vec<PgConnection>>,
    queue: Mutex<Vec<Queued>>,
    queued: AtomicU64,
    acquire_timeout: Duration,
    /// The longest a read may take, waits included.
    budget: Duration,
}

/// A read waiting for a connection.
struct Queued {
    id: u64,
    batch: &'static str,
    key: Vec<u8>,
    reply: oneshot::Sender<Reply>,
}

/// What a batch found for one hash: its row if any, or the batch's error.
type Reply = Result<Option<PgRow>, Failure>;

/// A batch's error, told to each of its reads as the store would have told it.
#[derive(Debug, Clone)]
enum Failure {
    /// An outage (503).
    Unavailable(String),
    /// A bug or corrupt data (500).
    Other(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        match StoreError::from(e) {
            StoreError::Unavailable(why) => Self::Unavailable(why),
            other => Self::Other(format!("{other:#}")),
        }
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Unavailable(why) => Self::Unavailable(why),
            Failure::Other(what) => Self::Other(anyhow!(what).context("a batch of session reads")),
        }
    }
}

/// How a read ended up.
enum Answer {
    Replied(Reply),
    /// The request running its batch was dropped halfway.
    Abandoned,
}

impl From<Result<Reply, oneshot::error::RecvError>> for Answer {
    fn from(received: Result<Reply, oneshot::error::RecvError>) -> Self {
        received.map_or(Self::Abandoned, Self::Replied)
    }
}

impl std::fmt::Debug for PgTokenReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTokenReads")
            .field("free_connections", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl PgTokenReads {
    /// At most `connections` connections made with `connect`, each opened when first needed;
    /// a read waits `acquire_timeout` at most for one to be free, and as long again for a new
    /// one to open.
    pub fn new(
        connect: PgConnectOptions,
        connections: u32,
        acquire_timeout: Duration,
        statement_timeout: Duration,
    ) -> Self {
        Self {
            // A statement with a parameter is planned afresh for each execution until
            // PostgreSQL trusts a generic plan, and for an array of hashes it may never: the
            // planning (relation sizes read from disk) then cost more than the lookups. The
            // batch's plan is the same whatever the hashes, one index lookup per hash.
            connect: connect.options([("plan_cache_mode", "force_generic_plan")]),
            slots: Semaphore::new(usize::try_from(connections.max(1)).unwrap_or(1)),
            idle: Mutex::new(Vec::new()),
            queue: Mutex::new(Vec::new()),
            queued: AtomicU64::new(0),
            acquire_timeout,
            budget: acquire_timeout * 2 + statement_timeout,
        }
    }

    async fn read<R: TokenRecord>(
        &self,
        read: &'static TokenRead,
        key: &[u8],
    ) -> StoreResult<Option<R>> {
        let deadline = tokio::time::Instant::now() + self.budget;
        loop {
            let answer = tokio::time::timeout_at(deadline, self.queue_and_wait(read, key))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
            match answer {
                Answer::Replied(Ok(row)) => {
                    // After `token_slot`, the statement's own columns.
                    return Ok(row.map(|row| R::from_columns(&row, 1)).transpose()?);
                }
                Answer::Replied(Err(failure)) => return Err(failure.into()),
                // The request running its batch was dropped halfway: queued again.
                Answer::Abandoned => {}
            }
        }
    }

    async fn queue_and_wait(&self, read: &'static TokenRead, key: &[u8]) -> sqlx::Result<Answer> {
        let (reply, mut replied) = oneshot::channel();
        let id = self.queued.fetch_add(1, Ordering::Relaxed);
        lock_list(&self.queue).push(Queued {
            id,
            batch: read.batch,
            key: key.to_vec(),
            reply,
        });
        tokio::select! {
            biased;
            answer = &mut replied => Ok(answer.into()),
            slot = tokio::time::timeout(self.acquire_timeout, self.slots.acquire()) => {
                let Ok(slot) = slot else {
                    // No connection in time: given up unless a runner has taken the hash.
                    if self.unqueue(id) {
                        return Err(sqlx::Error::PoolTimedOut);
                    }
                    return Ok(replied.await.into());
                };
                let slot = slot.map_err(|_| sqlx::Error::PoolClosed)?;
                match self.run_batches(slot, &mut replied).await {
                    Some(answer) => Ok(answer),
                    // Another runner has this read's hash: its reply is on its way.
                    None => Ok(replied.await.into()),
                }
            }
        }
    }

    /// Runs batches of the queued hashes until this read's reply is in (`Some`) or the queue is
    /// empty while another runner has its hash (`None`).
    async fn run_batches(
        &self,
        _slot: SemaphorePermit<'_>,
        mine: &mut oneshot::Receiver<Reply>,
    ) -> Option<Answer> {
        let mut conn = None;
        let answer = loop {
            match mine.try_recv() {
                Ok(reply) => break Some(Answer::Replied(reply)),
                Err(TryRecvError::Closed) => break Some(Answer::Abandoned),
                Err(TryRecvError::Empty) => {}
            }
            let batch = self.take_batch();
            let Some(sql) = batch.first().map(|q| q.batch) else {
                break None;
            };
            let keys: Vec<&[u8]> = batch.iter().map(|q| q.key.as_slice()).collect();
            let found = self
                .run_batch(&mut conn, sql, &keys)
                .await
                .and_then(|rows| by_position(rows, batch.len()));
            match found {
                Ok(rows) => {
                    for (queued, row) in batch.into_iter().zip(rows) {
                        let _ = queued.reply.send(Ok(row));
                    }
                }
                Err(e) => {
                    let failure = Failure::from(e);
                    for queued in batch {
                        let _ = queued.reply.send(Err(failure.clone()));
                    }
                }
            }
        };
        if let Some(conn) = conn {
            self.put_back(conn);
        }
        answer
    }

    /// Runs one batch on `conn`, an idle connection or a new one; `conn` holds the connection
    /// afterwards unless it was lost.
    async fn run_batch(
        &self,
        conn: &mut Option<PgConnection>,
        sql: &'static str,
        keys: &[&[u8]],
    ) -> sqlx::Result<Vec<PgRow>> {
        let reused = match conn.take() {
            Some(conn) => Some(conn),
            None => self.lock_idle().pop(),
        };
        if let Some(mut reused) = reused {
            match select_batch(&mut reused, sql, keys).await {
                Err(e) if is_connection_lost(&e) => {}
                rows => {
                    // A statement that failed on the server (a timeout, say) leaves the
                    // connection usable.
                    *conn = Some(reused);
                    return rows;
                }
            }
        }
        let mut fresh = self.connect().await?;
        let rows = select_batch(&mut fresh, sql, keys).await;
        if !rows.as_ref().is_err_and(is_connection_lost) {
            *conn = Some(fresh);
        }
        rows
    }

    /// Takes a read out of the queue; `false` when a runner has already taken it.
    fn unqueue(&self, id: u64) -> bool {
        let mut queue = lock_list(&self.queue);
        let Some(i) = queue.iter().position(|q| q.id == id) else {
            return false;
        };
        queue.remove(i);
        true
    }

    /// Up to [`MAX_BATCH`] queued reads of the statement queued first, oldest first; reads
    /// whose request has gone are dropped.
    fn take_batch(&self) -> Vec<Queued> {
        let mut queue = lock_list(&self.queue);
        queue.retain(|q| !q.reply.is_closed());
        let Some(sql) = queue.first().map(|q| q.batch) else {
            return Vec::new();
        };
        let mut batch = Vec::new();
        let mut i = 0;
        while i < queue.len() && batch.len() < MAX_BATCH {
            if queue[i].batch == sql {
                batch.push(queue.remove(i));
            } else {
                i += 1;
            }
        }
        batch
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

    /// Keeps a connection for the next batch, unless the reads have been closed (checked under
    /// the lock that `close` empties, so none stays open after it).
    fn put_back(&self, conn: PgConnection) {
        let mut idle = self.lock_idle();
        if !self.slots.is_closed() {
            idle.push(conn);
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<PgConnection>> {
        lock_list(&self.idle)
    }
}

/// The rows of a batch of `n` hashes in the order of their hashes (`token_slot`, 1-based), none
/// where a hash found nothing. A row without a valid position fails the whole batch: it must
/// not be given to anyone, nor leave its owner looking signed out.
fn by_position(rows: Vec<PgRow>, n: usize) -> sqlx::Result<Vec<Option<PgRow>>> {
    let mut found: Vec<Option<PgRow>> = (0..n).map(|_| None).collect();
    for row in rows {
        let slot: i64 = row.try_get(0)?; // `token_slot`, the first column
        let place = usize::try_from(slot)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| found.get_mut(i))
            .filter(|place| place.is_none())
            .ok_or_else(|| sqlx::Error::Decode(format!("a session row for slot {slot}").into()))?;
        *place = Some(row);
    }
    Ok(found)
}

async fn select_batch(
    conn: &mut PgConnection,
    sql: &'static str,
    keys: &[&[u8]],
) -> sqlx::Result<Vec<PgRow>> {
    sqlx::query::<Postgres>(sql)
        .bind(keys)
        .fetch_all(conn)
        .await
}

/// The connection, not the statement, failed: another connection may well succeed.
fn is_connection_lost(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

impl TokenReads for PgTokenReads {
    async fn read_one<R: Record + TokenRecord>(
        &self,
        read: &'static TokenRead,
        key: &[u8],
    ) -> Option<StoreResult<Option<R>>> {
        Some(self.read(read, key).await)
    }

    fn close(&self) {
        self.slots.close();
        self.lock_idle().clear();
    }
}

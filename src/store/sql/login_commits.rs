//! Group commit of logins, where every write takes its turn on one connection (SQLite).
//!
//! A login's transaction writes a few dozen pages (the session and its indexes, the customer,
//! the audit event and the chain's head) and syncs them. When logins arrive faster than one
//! such commit, each waits for the writer anyway; here the first to get the writer takes every
//! login waiting and starts them all in one transaction, each in a savepoint of its own, so
//! that the pages they share are written once and one sync makes them all durable. Nothing is
//! answered before that commit, so no login is told it succeeded before it is on disk.
//!
//! A login that fails (a locked username, a spent proof: nothing written; an error) is rolled
//! back alone and answered as it would be alone. An error may have ended the whole
//! transaction, so the batch is started again without the login that failed.

use std::sync::Mutex;

use sqlx::Connection as _;
use sqlx::pool::PoolConnection;
use tokio::sync::oneshot;

use super::sessions::start_in;
use super::{SqlStore, Tx};
use crate::domain::audit::AuditEvent;
use crate::domain::customers::Username;
use crate::domain::delivery::message::Message;
use crate::domain::ports::{SessionStart, StoreError, StoreResult};
use crate::domain::sessions::NewSession;
use crate::store::Trail;
use crate::store::backend::Backend;

/// Logins per transaction: enough to share a sync among every login a busy instance has
/// waiting, few enough that one transaction stays short.
const MAX_BATCH: usize = 64;

/// What a login stores, owned, so that whichever caller holds the writer can start it.
#[derive(Debug)]
pub(super) struct Login {
    pub session: NewSession,
    pub username: Username,
    pub event: AuditEvent,
    pub notice: Option<Message>,
}

/// A login waiting for the writer, and where its answer goes.
#[derive(Debug)]
struct Waiting {
    id: u64,
    login: Login,
    reply: oneshot::Sender<StoreResult<SessionStart>>,
}

/// The logins waiting for the writer.
#[derive(Debug, Default)]
pub(super) struct LoginQueue {
    waiting: Mutex<(u64, Vec<Waiting>)>,
}

impl LoginQueue {
    fn push(&self, login: Login) -> (u64, oneshot::Receiver<StoreResult<SessionStart>>) {
        let (reply, answer) = oneshot::channel();
        let mut waiting = self.lock();
        waiting.0 += 1;
        let id = waiting.0;
        waiting.1.push(Waiting { id, login, reply });
        (id, answer)
    }

    /// Takes login `id` back, if no writer has taken it yet.
    fn unqueue(&self, id: u64) -> bool {
        let mut waiting = self.lock();
        let before = waiting.1.len();
        waiting.1.retain(|w| w.id != id);
        waiting.1.len() < before
    }

    /// The oldest logins waiting, up to a batch; those whose caller has gone are dropped.
    fn take_batch(&self) -> Vec<Waiting> {
        let mut waiting = self.lock();
        waiting.1.retain(|w| !w.reply.is_closed());
        let n = waiting.1.len().min(MAX_BATCH);
        waiting.1.drain(..n).collect()
    }

    /// The queue stays usable after a panic elsewhere: its state is a plain list.
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Vec<Waiting>)> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<B: Backend> SqlStore<B> {
    /// Starts `login`'s session in the next commit of the logins waiting.
    pub(super) async fn start_session_grouped(&self, login: Login) -> StoreResult<SessionStart> {
        let (id, mut answer) = self.logins.push(login);
        let conn = match self.writer.acquire().await {
            Ok(conn) => conn,
            // Still queued: nothing was written. Else a writer has it, and answers.
            Err(e) if self.logins.unqueue(id) => return Err(e.into()),
            Err(_) => return answer.await.unwrap_or_else(|_| Err(abandoned())),
        };
        // Whoever held the writer before answered every login it took before letting go: an
        // answer not there yet means this login is still queued, and this caller commits it.
        match answer.try_recv() {
            Ok(start) => return start,
            Err(oneshot::error::TryRecvError::Closed) => return Err(abandoned()),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let batch = self.logins.take_batch();
        if let [alone] = batch.as_slice()
            && alone.id == id
        {
            commit(conn, &self.trail, batch).await;
        } else {
            // On a task of its own, so that a caller who goes away (a closed connection drops
            // its request) does not roll back the logins of others.
            let trail = self.trail.clone();
            tokio::spawn(async move { commit(conn, &trail, batch).await });
        }
        answer.await.unwrap_or_else(|_| Err(abandoned()))
    }
}

/// Commits `batch` on the writer and answers each login, then lets the writer go.
async fn commit<B: Backend>(mut conn: PoolConnection<B>, trail: &Trail, mut batch: Vec<Waiting>) {
    while !batch.is_empty() {
        match start_all(&mut conn, trail, &batch).await {
            Ok(starts) => {
                for (waiting, start) in batch.into_iter().zip(starts) {
                    let _ = waiting.reply.send(Ok(start));
                }
                return;
            }
            Err(Failed::One(i, e)) => {
                let _ = batch.remove(i).reply.send(Err(e));
            }
            Err(Failed::All(e)) => {
                // Its transaction may be in any state: the pool opens a new connection.
                conn.close_on_drop();
                let e = StoreError::from(e);
                for waiting in batch {
                    let _ = waiting.reply.send(Err(same(&e)));
                }
                return;
            }
        }
    }
}

/// Why a batch did not commit.
enum Failed {
    /// Login `i` failed; the others may be started again without it.
    One(usize, StoreError),
    /// The transaction itself failed: none was stored.
    All(sqlx::Error),
}

/// Starts every login of `batch` in one transaction, each in a savepoint kept only when its
/// session started (a login alone needs none), and commits. A login that fails is rolled back
/// here rather than on drop, so that a transaction its error already ended shows as a failure
/// of the batch (and its connection is closed).
async fn start_all<B: Backend>(
    conn: &mut PoolConnection<B>,
    trail: &Trail,
    batch: &[Waiting],
) -> Result<Vec<SessionStart>, Failed> {
    let mut tx = B::begin_write_on(conn).await.map_err(Failed::All)?;
    if let [alone] = batch {
        return match start_login(&mut tx, trail, &alone.login).await {
            Ok(start) => {
                keep_if_started(tx, &start).await?;
                Ok(vec![start])
            }
            Err(e) => {
                tx.rollback().await.map_err(Failed::All)?;
                Err(Failed::One(0, e))
            }
        };
    }
    let mut starts = Vec::with_capacity(batch.len());
    for (i, waiting) in batch.iter().enumerate() {
        let mut savepoint = tx.begin().await.map_err(Failed::All)?;
        match start_login(&mut savepoint, trail, &waiting.login).await {
            Ok(start) => {
                keep_if_started(savepoint, &start).await?;
                starts.push(start);
            }
            Err(e) => {
                savepoint.rollback().await.map_err(Failed::All)?;
                tx.rollback().await.map_err(Failed::All)?;
                return Err(Failed::One(i, e));
            }
        }
    }
    tx.commit().await.map_err(Failed::All)?;
    Ok(starts)
}

async fn start_login<B: Backend>(
    scope: &mut Tx<'_, B>,
    trail: &Trail,
    login: &Login,
) -> StoreResult<SessionStart> {
    start_in(
        scope,
        trail,
        &login.session,
        &login.username,
        &login.event,
        login.notice.as_ref(),
    )
    .await
}

/// Keeps what `scope` wrote if the session started; anything else wrote nothing to keep.
async fn keep_if_started<B: Backend>(scope: Tx<'_, B>, start: &SessionStart) -> Result<(), Failed> {
    match start {
        SessionStart::Started { .. } => scope.commit().await,
        _ => scope.rollback().await,
    }
    .map_err(Failed::All)
}

/// One error for each login of a batch that failed as a whole, classified as the first was.
fn same(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        other => StoreError::Other(anyhow::anyhow!("a batch of logins did not commit: {other}")),
    }
}

/// The writer that took this login went away without answering (it panicked).
fn abandoned() -> StoreError {
    StoreError::Unavailable("the login's commit was abandoned".into())
}

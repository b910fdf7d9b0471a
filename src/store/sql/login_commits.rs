//! Group commit of logins, where every write takes its turn on one connection (SQLite).
//!
//! A login's transaction writes a few dozen pages (the session and its indexes, the customer,
//! the audit event and the chain's head) and syncs them. When logins arrive faster than one
//! such commit, each waits for the writer anyway; here the first to get the writer takes every
//! login waiting and starts them all in one transaction, each in a savepoint of its own, so
//! that the pages they share are written once and one sync makes them all durable. Nothing is
//! answered before that commit, so no login is told it succeeded before it is on disk.
//!
//! A login that starts no session (a locked username, a spent proof) or fails is rolled back
//! to its savepoint alone and answered as it would be alone; the others go on. An error that
//! ended the whole transaction (SQLite rolls back on its own after an I/O error or a full
//! disk) fails the batch: each of its logins gets that error, and nothing of it was stored.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::sessions::start_in;
use super::{SqlStore, Tx};
use crate::domain::audit::AuditEvent;
use crate::domain::customers::Username;
use crate::domain::delivery::message::Message;
use crate::domain::ports::{SessionStart, StoreError, StoreResult};
use crate::domain::sessions::NewSession;
use crate::store::backend::Backend;
use crate::store::{Trail, lock_list};

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
    /// The request's span, so that its audit event names the request's trace whichever
    /// caller commits it.
    pub span: tracing::Span,
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
    waiting: Mutex<Vec<Waiting>>,
    queued: AtomicU64,
}

impl LoginQueue {
    fn push(&self, login: Login) -> (u64, oneshot::Receiver<StoreResult<SessionStart>>) {
        let (reply, answer) = oneshot::channel();
        let id = self.queued.fetch_add(1, Ordering::Relaxed);
        lock_list(&self.waiting).push(Waiting { id, login, reply });
        (id, answer)
    }

    /// Takes login `id` back, if no writer has taken it yet.
    fn unqueue(&self, id: u64) -> bool {
        let mut waiting = lock_list(&self.waiting);
        let before = waiting.len();
        waiting.retain(|w| w.id != id);
        waiting.len() < before
    }

    /// Login `own` and the oldest others waiting, up to a batch; those whose caller has gone
    /// are dropped. Empty when `own` is no longer waiting: a writer took it, and answers.
    fn take_batch(&self, own: u64) -> Vec<Waiting> {
        let mut waiting = lock_list(&self.waiting);
        waiting.retain(|w| w.id == own || !w.reply.is_closed());
        let Some(i) = waiting.iter().position(|w| w.id == own) else {
            return Vec::new();
        };
        let mut batch = vec![waiting.remove(i)];
        let n = waiting.len().min(MAX_BATCH.saturating_sub(batch.len()));
        batch.extend(waiting.drain(..n));
        batch
    }
}

impl<B: Backend> SqlStore<B> {
    /// Starts `login`'s session in the next commit of the logins waiting.
    pub(super) async fn start_session_grouped(&self, login: Login) -> StoreResult<SessionStart> {
        let (id, mut answer) = self.logins.push(login);
        // An answer may come while this caller waits for the writer: another caller took this
        // login into its commit. Dropping the wait for the writer then is safe.
        let tx = tokio::select! {
            biased;
            start = &mut answer => return start.unwrap_or_else(|_| Err(abandoned())),
            tx = self.write() => tx,
        };
        let tx = match tx {
            Ok(tx) => tx,
            // Still queued: nothing was written. Else a writer has it, and answers.
            Err(e) if self.logins.unqueue(id) => return Err(e),
            Err(_) => return answer.await.unwrap_or_else(|_| Err(abandoned())),
        };
        // The writer before may have taken this login into its commit, and let go of the
        // writer before answering: the answer is on its way.
        let batch = self.logins.take_batch(id);
        if batch.is_empty() {
            drop(tx);
            return answer.await.unwrap_or_else(|_| Err(abandoned()));
        }
        if batch.len() == 1 {
            commit(tx, &self.trail, batch).await;
        } else {
            // On a task of its own, so that a caller who goes away (a closed connection drops
            // its request) does not roll back the logins of others.
            let trail = self.trail.clone();
            tokio::spawn(async move { commit(tx, &trail, batch).await });
        }
        answer.await.unwrap_or_else(|_| Err(abandoned()))
    }
}

/// Commits `batch` in `tx` and answers each login, then lets the writer go.
async fn commit<B: Backend>(tx: Tx<'static, B>, trail: &Trail, batch: Vec<Waiting>) {
    match start_all(tx, trail, &batch).await {
        Ok(starts) => {
            for (waiting, start) in batch.into_iter().zip(starts) {
                let _ = waiting.reply.send(start);
            }
        }
        Err(e) => {
            for waiting in batch {
                let _ = waiting.reply.send(Err(same(&e)));
            }
        }
    }
}

/// Starts every login of `batch` in `tx`, each in a savepoint kept only when its session
/// started (a login alone needs none), and commits. Each login's own answer, or the error that
/// ended the transaction (which is rolled back as it is dropped).
async fn start_all<B: Backend>(
    mut tx: Tx<'static, B>,
    trail: &Trail,
    batch: &[Waiting],
) -> StoreResult<Vec<StoreResult<SessionStart>>> {
    if let [alone] = batch {
        return match start_login(&mut tx, trail, &alone.login).await {
            Ok(start) => {
                keep_if_started(tx, &start).await?;
                Ok(vec![Ok(start)])
            }
            Err(e) => match tx.rollback().await {
                Ok(()) => Ok(vec![Err(e)]),
                Err(undo) => Err(undone(undo, e)),
            },
        };
    }
    let mut starts = Vec::with_capacity(batch.len());
    for waiting in batch {
        // A batch's logins run on the calling thread (SQLite's writer): other requests on it
        // get their turn between them.
        tokio::task::yield_now().await;
        let mut savepoint = tx.savepoint().await?;
        match start_login(&mut savepoint, trail, &waiting.login).await {
            Ok(start) => {
                keep_if_started(savepoint, &start).await?;
                starts.push(Ok(start));
            }
            // Rolled back here rather than on drop: if the error already ended the whole
            // transaction, this fails, and so does the batch, with the error that ended it.
            Err(e) => match savepoint.rollback().await {
                Ok(()) => starts.push(Err(e)),
                Err(undo) => return Err(undone(undo, e)),
            },
        }
    }
    tx.commit().await?;
    Ok(starts)
}

/// The login under its request's span (the audit event's trace id is read from it).
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
    .instrument(login.span.clone())
    .await
}

/// Keeps what `scope` wrote if the session started; anything else wrote nothing to keep.
async fn keep_if_started<B: Backend>(scope: Tx<'_, B>, start: &SessionStart) -> StoreResult<()> {
    match start {
        SessionStart::Started { .. } => scope.commit().await?,
        _ => scope.rollback().await?,
    }
    Ok(())
}

/// The error a login's statement failed with, when the rollback after it failed too (the
/// error had already ended the transaction): the rollback's is logged, the first stands.
fn undone(undo: sqlx::Error, e: StoreError) -> StoreError {
    tracing::warn!(error = %undo, "rolling back a failed login's writes failed too");
    e
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

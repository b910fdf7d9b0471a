//! Ending sessions: one, all of a customer's or all but one, and those past the customer's limit
//! as a login completes; each in the caller's transaction or with the caller's audit event.

use time::OffsetDateTime;

use super::{SqlStore, Tx, audit};
use crate::clock::to_unix_millis;
use crate::domain::audit::AuditEvent;
use crate::domain::customers::{CustomerId, Username};
use crate::domain::ports::StoreResult;
use crate::domain::sessions::{SessionId, SessionLimit};
use crate::store::backend::{Backend, query};

pub(super) const END_SESSION: &str =
    "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL";
pub(super) const END_CUSTOMER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
     WHERE customer_id = $3 AND revoked_at IS NULL";

/// Ends the live sessions `sql` selects by `key`; returns how many there were.
async fn end_sessions<B: Backend>(
    tx: &mut Tx<'_, B>,
    sql: &'static str,
    key: &str,
    reason: &str,
    at: OffsetDateTime,
) -> StoreResult<u64> {
    Ok(query::<B>(sql)
        .bind(to_unix_millis(at))
        .bind(reason)
        .bind(key)
        .execute(tx)
        .await?)
}

/// Ends every live session of a customer inside the caller's transaction.
pub(super) async fn end_customer_sessions<B: Backend>(
    tx: &mut Tx<'_, B>,
    customer: &CustomerId,
    reason: &str,
    at: OffsetDateTime,
) -> StoreResult<u64> {
    end_sessions(tx, END_CUSTOMER_SESSIONS, customer.as_str(), reason, at).await
}

/// Ends every live session of a customer but `keep`, inside the caller's transaction.
pub(super) async fn end_other_sessions<B: Backend>(
    tx: &mut Tx<'_, B>,
    customer: &CustomerId,
    keep: &SessionId,
    reason: &str,
    at: OffsetDateTime,
) -> StoreResult<u64> {
    Ok(query::<B>(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
         WHERE customer_id = $3 AND id <> $4 AND revoked_at IS NULL",
    )
    .bind(to_unix_millis(at))
    .bind(reason)
    .bind(customer.as_str())
    .bind(keep.as_str())
    .execute(tx)
    .await?)
}

/// Ends the live sessions `sql` selects by `key` and appends `event`, in one transaction; when
/// none was live, nothing changed and nothing is appended (a replayed refresh token must not
/// buy a write under the chain's head lock).
pub(super) async fn end_sessions_audited<B: Backend>(
    store: &SqlStore<B>,
    sql: &'static str,
    key: &str,
    reason: &str,
    event: &AuditEvent,
) -> StoreResult<u64> {
    let mut tx = store.write().await?;
    let ended = end_sessions(&mut tx, sql, key, reason, event.at).await?;
    if ended == 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    audit::append(&mut tx, &store.trail, &[event]).await?;
    tx.commit().await?;
    Ok(ended)
}

/// Ends the customer's live ACTIVE sessions past `limit.max`, keeping `completed` (the login
/// completing in `tx`) and the newest others (by completed login); returns the event of each
/// ended.
pub(super) async fn end_past_limit<B: Backend>(
    tx: &mut Tx<'_, B>,
    completed: &SessionId,
    whose: (&CustomerId, &Username),
    limit: &SessionLimit,
    at: OffsetDateTime,
) -> StoreResult<Vec<AuditEvent>> {
    let (customer, username) = whose;
    let idle_before = limit
        .idle_timeout
        .map_or(i64::MIN, |idle| to_unix_millis(at - idle));
    // The completed login is never among those ended, whatever the clocks of the instances
    // that started the others say.
    let others_kept = i64::from(limit.max.get()) - 1;
    let ended: Vec<(String,)> = query::<B>(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
         WHERE customer_id = $3 AND id <> $6 AND state = 'ACTIVE' AND revoked_at IS NULL \
         AND absolute_expires_at > $1 AND last_seen_at > $4 \
         AND id NOT IN (SELECT id FROM sessions WHERE customer_id = $3 AND id <> $6 \
         AND state = 'ACTIVE' AND revoked_at IS NULL AND absolute_expires_at > $1 \
         AND last_seen_at > $4 ORDER BY login_at DESC, id DESC LIMIT $5) \
         RETURNING id",
    )
    .bind(to_unix_millis(at))
    .bind(SessionLimit::REASON)
    .bind(customer.as_str())
    .bind(idle_before)
    .bind(others_kept)
    .bind(completed.as_str())
    .fetch_all(tx)
    .await?;
    Ok(ended
        .into_iter()
        .map(|(id,)| limit.ended_event(customer, username, &SessionId::from_stored(id), at))
        .collect())
}

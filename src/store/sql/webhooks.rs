//! The webhook outbox: security events queued with the audit events they are (by
//! `audit::append`), claimed under a token by one worker at a time, finished or retried.

use time::{Duration, OffsetDateTime};

use super::{SqlStore, Tx, outbox};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::delivery::message::{ClaimToken, Finish};
use crate::domain::delivery::webhook::Webhook;
use crate::domain::ports::StoreResult;
use crate::store::backend::{Backend, query};
use crate::store::record::record;

record! {
    #[derive(Debug)]
    struct ClaimedWebhook {
        id: String,
        kind: String,
        body: String,
        expires_at: i64,
        attempts: i64,
        claim_token: Option<String>,
    }
}

/// Queues `events` for the webhook, inside the transaction that appends them to the trail.
pub(super) async fn enqueue<B: Backend>(
    tx: &mut Tx<'_, B>,
    events: impl Iterator<Item = &AuditEvent>,
) -> StoreResult<()> {
    for event in events {
        let at = to_unix_millis(event.at);
        query::<B>(
            "INSERT INTO webhook_events (id, kind, body, created_at, expires_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.id.as_str())
        .bind(event.kind.as_str())
        .bind(Webhook::body_of(event))
        .bind(at)
        .bind(to_unix_millis(event.at + Webhook::LIFETIME))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn claim<B: Backend>(
    store: &SqlStore<B>,
    now: OffsetDateTime,
    lease: Duration,
    limit: u32,
    claim: &ClaimToken,
) -> StoreResult<Vec<Webhook>> {
    let rows: Vec<ClaimedWebhook> =
        outbox::claim_due(store, B::CLAIM_WEBHOOKS, now, lease, limit, claim).await?;
    Ok(rows
        .into_iter()
        .map(|row| Webhook {
            id: row.id,
            kind: row.kind,
            body: row.body,
            expires_at: from_unix_millis(row.expires_at),
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            claim: ClaimToken::from_stored(row.claim_token),
        })
        .collect())
}

pub(super) async fn finish<B: Backend>(
    store: &SqlStore<B>,
    webhook: &Webhook,
    delivered: bool,
    error: Option<&str>,
    at: OffsetDateTime,
) -> StoreResult<Finish> {
    let mut tx = store.write().await?;
    let finished = query::<B>(
        "UPDATE webhook_events SET status = $1, claimed_until = NULL, finished_at = $2, \
         last_error = $3 WHERE id = $4 AND claim_token = $5 AND status = 'PENDING'",
    )
    .bind(if delivered { "SENT" } else { "FAILED" })
    .bind(to_unix_millis(at))
    .bind(error.map(outbox::short))
    .bind(webhook.id.as_str())
    .bind(webhook.claim.as_str())
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(if finished == 1 {
        Finish::Recorded
    } else {
        Finish::ClaimLost
    })
}

pub(super) async fn retry<B: Backend>(
    store: &SqlStore<B>,
    webhook: &Webhook,
    next_attempt_at: OffsetDateTime,
    error: &str,
) -> StoreResult<()> {
    let mut tx = store.write().await?;
    query::<B>(
        "UPDATE webhook_events SET next_attempt_at = $1, claimed_until = NULL, last_error = $2 \
         WHERE id = $3 AND claim_token = $4 AND status = 'PENDING'",
    )
    .bind(to_unix_millis(next_attempt_at))
    .bind(outbox::short(error))
    .bind(webhook.id.as_str())
    .bind(webhook.claim.as_str())
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

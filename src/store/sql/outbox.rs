//! The outbox of two-factor codes: claimed by delivery workers, finished or retried.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{SqlStore, Tx, audit};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::customer::CustomerId;
use crate::domain::delivery::{DeliveryEnd, DeliveryState, QueuedCode};
use crate::domain::ports::{OutboxStore, StoreError, StoreResult};
use crate::domain::session::SessionId;
use crate::domain::two_factor::ChallengeId;
use crate::store::backend::{Backend, query};

/// A claimed row: challenge, session, customer, channel, address, sealed code, minutes valid,
/// created, expires, attempts.
type ClaimedRow = (
    String,
    String,
    String,
    String,
    String,
    Option<Vec<u8>>,
    i64,
    i64,
    i64,
    i64,
);

/// Errors are kept short: they are for operators, and never hold the code.
const MAX_ERROR_CHARS: usize = 300;

fn short(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

fn queued(row: ClaimedRow) -> StoreResult<QueuedCode> {
    let (
        challenge,
        session,
        customer,
        channel,
        address,
        sealed,
        minutes,
        created,
        expires,
        attempts,
    ) = row;
    Ok(QueuedCode {
        challenge_id: ChallengeId::from_stored(challenge),
        session_id: SessionId::from_stored(session),
        customer_id: CustomerId::from_stored(customer),
        channel: channel
            .parse()
            .map_err(|_| StoreError::Other(anyhow::anyhow!("outbox: unknown channel {channel}")))?,
        address,
        sealed_code: sealed.unwrap_or_default(),
        valid_for_minutes: minutes,
        created_at: from_unix_millis(created),
        expires_at: from_unix_millis(expires),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

/// Writes a code's message, inside the transaction that opens its challenge.
pub(super) async fn enqueue<B: Backend>(tx: &mut Tx<B>, m: &QueuedCode) -> StoreResult<()> {
    let created = to_unix_millis(m.created_at);
    query::<B>(
        "INSERT INTO outbox (challenge_id, session_id, customer_id, channel, address, sealed_code, \
         valid_for_minutes, created_at, expires_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(m.challenge_id.as_str())
    .bind(m.session_id.as_str())
    .bind(m.customer_id.as_str())
    .bind(m.channel.as_str())
    .bind(m.address.as_str())
    .bind(m.sealed_code.as_slice())
    .bind(m.valid_for_minutes)
    .bind(created)
    .bind(to_unix_millis(m.expires_at))
    .bind(created)
    .execute(tx)
    .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> OutboxStore for SqlStore<B> {
    async fn claim_codes(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<QueuedCode>> {
        let now = to_unix_millis(now);
        let mut tx = self.write().await?;
        let rows: Vec<ClaimedRow> = query::<B>(B::CLAIM_CODES)
            .bind(now.saturating_add(lease.whole_milliseconds() as i64))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut tx)
            .await?;
        tx.commit().await?;
        rows.into_iter().map(queued).collect()
    }

    async fn finish_code(
        &self,
        message: &QueuedCode,
        end: DeliveryEnd,
        error: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let status = match end {
            DeliveryEnd::Sent => "SENT",
            DeliveryEnd::Dropped => "DROPPED",
            DeliveryEnd::Failed => "FAILED",
        };
        let mut tx = self.write().await?;
        query::<B>(
            "UPDATE outbox SET status = $1, sealed_code = NULL, claimed_until = NULL, \
             finished_at = $2, last_error = $3 WHERE challenge_id = $4",
        )
        .bind(status)
        .bind(to_unix_millis(event.at))
        .bind(error.map(short))
        .bind(message.challenge_id.as_str())
        .execute(&mut tx)
        .await?;
        if end == DeliveryEnd::Failed {
            // The customer never got this code: the send is theirs again, unless a newer
            // challenge has replaced this one meanwhile.
            query::<B>(
                "UPDATE sessions SET codes_sent = codes_sent - 1, last_code_sent_at = NULL \
                 WHERE id = $1 AND codes_sent > 0 \
                 AND EXISTS (SELECT 1 FROM challenges WHERE id = $2 AND status = 'OPEN')",
            )
            .bind(message.session_id.as_str())
            .bind(message.challenge_id.as_str())
            .execute(&mut tx)
            .await?;
            query::<B>(
                "UPDATE challenges SET status = 'SUPERSEDED' WHERE id = $1 AND status = 'OPEN'",
            )
            .bind(message.challenge_id.as_str())
            .execute(&mut tx)
            .await?;
        }
        audit::append(&mut tx, &self.seal, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delivery_state(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
    ) -> StoreResult<Option<DeliveryState>> {
        let status: Option<(String,)> =
            query::<B>("SELECT status FROM outbox WHERE challenge_id = $1 AND session_id = $2")
                .bind(challenge.as_str())
                .bind(session.as_str())
                .fetch_optional(&mut *self.read().await?)
                .await?;
        Ok(status.and_then(|(s,)| DeliveryState::from_stored(&s)))
    }

    async fn retry_code(
        &self,
        challenge: &ChallengeId,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        query::<B>(
            "UPDATE outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2 \
             WHERE challenge_id = $3 AND status = 'PENDING'",
        )
        .bind(to_unix_millis(next_attempt_at))
        .bind(short(error))
        .bind(challenge.as_str())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

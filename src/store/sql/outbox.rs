//! The outbox: codes and security notices claimed by delivery workers, finished or retried.
//! Every finish and retry is conditional on the claim that took the message: once a lease has
//! run out and another worker has claimed the message, the first worker's outcome changes
//! nothing (and appends no event).

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{SqlStore, Tx, audit};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::customer::CustomerId;
use crate::domain::delivery::{
    ClaimToken, DeliveryEnd, DeliveryState, Finish, NoticeFacts, QueuedCode, QueuedNotice,
};
use crate::domain::ports::{OutboxStore, StoreError, StoreResult};
use crate::domain::session::SessionId;
use crate::domain::two_factor::ChallengeId;
use crate::store::backend::{Backend, Record, query};

/// A claimed code: challenge, session, customer, channel, address, sealed code, minutes valid,
/// created, expires, attempts, claim token, live, maybe delivered.
type ClaimedCode = (
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
    Option<String>,
    i64,
    i64,
);

/// A claimed notice: id, customer, address, signal, country, device, flags, created, expires,
/// attempts, claim token.
type ClaimedNotice = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    Option<String>,
);

/// Errors are kept short: they are for operators, and never hold the code.
const MAX_ERROR_CHARS: usize = 300;

fn short(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

fn attempts(stored: i64) -> u32 {
    u32::try_from(stored).unwrap_or(u32::MAX)
}

fn queued(row: ClaimedCode) -> StoreResult<QueuedCode> {
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
        tries,
        claim,
        live,
        maybe_delivered,
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
        attempts: attempts(tries),
        claim: ClaimToken::from_stored(claim),
        live: live == 1,
        maybe_delivered: maybe_delivered == 1,
    })
}

fn notice(row: ClaimedNotice) -> QueuedNotice {
    let (id, customer, address, signal, country, device, flags, created, expires, tries, claim) =
        row;
    QueuedNotice {
        id,
        customer_id: CustomerId::from_stored(customer),
        to: address,
        signal,
        facts: NoticeFacts {
            country,
            device,
            flags: flags
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
        },
        created_at: from_unix_millis(created),
        expires_at: from_unix_millis(expires),
        attempts: attempts(tries),
        claim: ClaimToken::from_stored(claim),
    }
}

fn status(end: DeliveryEnd) -> &'static str {
    match end {
        DeliveryEnd::Sent => "SENT",
        DeliveryEnd::Dropped => "DROPPED",
        DeliveryEnd::Undelivered | DeliveryEnd::GaveUp => "FAILED",
    }
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

/// Writes a security notice, inside the transaction of the login it tells of; nothing when its
/// signal was told already or a notice of it still waits.
pub(super) async fn enqueue_notice<B: Backend>(
    tx: &mut Tx<B>,
    n: &QueuedNotice,
) -> StoreResult<()> {
    let created = to_unix_millis(n.created_at);
    query::<B>(
        "INSERT INTO notice_outbox (id, customer_id, address, signal, country, device, flags, \
         created_at, expires_at, next_attempt_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE NOT EXISTS \
         (SELECT 1 FROM risk_notices WHERE customer_id = $2 AND signal = $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(n.id.as_str())
    .bind(n.customer_id.as_str())
    .bind(n.to.as_str())
    .bind(n.signal.as_str())
    .bind(n.facts.country.as_deref())
    .bind(n.facts.device.as_deref())
    .bind(n.facts.flags.join(","))
    .bind(created)
    .bind(to_unix_millis(n.expires_at))
    .bind(created)
    .execute(tx)
    .await?;
    Ok(())
}

impl<B: Backend> SqlStore<B> {
    /// Runs one of the backend's claim statements: up to `limit` due rows, under `claim` until
    /// `now + lease`.
    async fn claim<R: Record>(
        &self,
        sql: &'static str,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<R>> {
        let now = to_unix_millis(now);
        let mut tx = self.write().await?;
        let rows = query::<B>(sql)
            .bind(now.saturating_add(lease.whole_milliseconds() as i64))
            .bind(now)
            .bind(i64::from(limit))
            .bind(claim.as_str())
            .fetch_all(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(rows)
    }
}

#[async_trait]
impl<B: Backend> OutboxStore for SqlStore<B> {
    async fn claim_codes(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<QueuedCode>> {
        let rows: Vec<ClaimedCode> = self.claim(B::CLAIM_CODES, now, lease, limit, claim).await?;
        rows.into_iter().map(queued).collect()
    }

    async fn finish_code(
        &self,
        message: &QueuedCode,
        end: DeliveryEnd,
        error: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<Finish> {
        let mut tx = self.write().await?;
        let finished = query::<B>(
            "UPDATE outbox SET status = $1, sealed_code = NULL, claimed_until = NULL, \
             finished_at = $2, last_error = $3 \
             WHERE challenge_id = $4 AND claim_token = $5 AND status = 'PENDING'",
        )
        .bind(status(end))
        .bind(to_unix_millis(event.at))
        .bind(error.map(short))
        .bind(message.challenge_id.as_str())
        .bind(message.claim.as_str())
        .execute(&mut tx)
        .await?;
        if finished == 0 {
            return Ok(Finish::ClaimLost);
        }
        if end == DeliveryEnd::Undelivered {
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
        Ok(Finish::Recorded)
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
        message: &QueuedCode,
        next_attempt_at: OffsetDateTime,
        error: &str,
        maybe_delivered: bool,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        query::<B>(
            "UPDATE outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2, \
             maybe_delivered = CASE WHEN $5 = 1 THEN 1 ELSE maybe_delivered END \
             WHERE challenge_id = $3 AND claim_token = $4 AND status = 'PENDING'",
        )
        .bind(to_unix_millis(next_attempt_at))
        .bind(short(error))
        .bind(message.challenge_id.as_str())
        .bind(message.claim.as_str())
        .bind(i64::from(maybe_delivered))
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_notices(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<QueuedNotice>> {
        let rows: Vec<ClaimedNotice> = self
            .claim(B::CLAIM_NOTICES, now, lease, limit, claim)
            .await?;
        Ok(rows.into_iter().map(notice).collect())
    }

    async fn finish_notice(
        &self,
        notice: &QueuedNotice,
        end: DeliveryEnd,
        error: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<Finish> {
        let at = to_unix_millis(event.at);
        let mut tx = self.write().await?;
        let finished = query::<B>(
            "UPDATE notice_outbox SET status = $1, claimed_until = NULL, finished_at = $2, \
             last_error = $3 WHERE id = $4 AND claim_token = $5 AND status = 'PENDING'",
        )
        .bind(status(end))
        .bind(at)
        .bind(error.map(short))
        .bind(notice.id.as_str())
        .bind(notice.claim.as_str())
        .execute(&mut tx)
        .await?;
        if finished == 0 {
            return Ok(Finish::ClaimLost);
        }
        if end == DeliveryEnd::Sent {
            // Told: the same signal is not announced again. Marked only now, so a notice that
            // never went out does not silence the next one.
            query::<B>(
                "INSERT INTO risk_notices (customer_id, signal, sent_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(notice.customer_id.as_str())
            .bind(notice.signal.as_str())
            .bind(at)
            .execute(&mut tx)
            .await?;
        }
        audit::append(&mut tx, &self.seal, &[event]).await?;
        tx.commit().await?;
        Ok(Finish::Recorded)
    }

    async fn retry_notice(
        &self,
        notice: &QueuedNotice,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        query::<B>(
            "UPDATE notice_outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2 \
             WHERE id = $3 AND claim_token = $4 AND status = 'PENDING'",
        )
        .bind(to_unix_millis(next_attempt_at))
        .bind(short(error))
        .bind(notice.id.as_str())
        .bind(notice.claim.as_str())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

//! The outbox: messages of every purpose, claimed by delivery workers, finished or retried.
//! Every finish and retry is conditional on the claim that took the message: once a lease has
//! run out and another worker has claimed the message, the first worker's outcome changes
//! nothing (and appends no event).

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{SqlStore, Tx, audit, webhooks};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::ChallengeId;
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::reset::ResetId;
use crate::domain::customers::CustomerId;
use crate::domain::delivery::message::{
    ACCOUNT_NOTICE_PURPOSE, AccountChange, CODE_PURPOSE, ClaimToken, CodeContent, Content,
    DeliveryEnd, DeliveryState, Finish, Message, NOTICE_PURPOSE, NoticeContent, RESET_CODE_PURPOSE,
    ResetCodeContent,
};
use crate::domain::delivery::webhook::Webhook;
use crate::domain::ports::{OutboxStore, StoreError, StoreResult};
use crate::domain::sessions::SessionId;
use crate::store::backend::{Backend, Record, query};
use crate::store::record::record;

record! {
    /// A claimed message, as `Backend::CLAIM_MESSAGES` returns it.
    #[derive(Debug)]
    struct ClaimedRow {
        id: String,
        purpose: String,
        customer_id: String,
        session_id: Option<String>,
        challenge_id: Option<String>,
        reset_id: Option<String>,
        channel: String,
        address: String,
        sealed_code: Option<Vec<u8>>,
        payload: Option<String>,
        dedupe_key: Option<String>,
        valid_for_minutes: i64,
        created_at: i64,
        expires_at: i64,
        attempts: i64,
        claim_token: Option<String>,
        maybe_delivered: i64,
        live: i64,
        lockdown_link: bool,
    }
}

/// Claims the rows `sql` (one of the backend's claim statements) finds due at `now`, under
/// `claim` for `lease`, at most `limit`: one statement, committed alone where the backend
/// allows ([`Backend::fetch_all_alone`]; a courier's every pass makes one).
pub(super) async fn claim_due<B: Backend, R: Record>(
    store: &SqlStore<B>,
    sql: &'static str,
    now: OffsetDateTime,
    lease: Duration,
    limit: u32,
    claim: &ClaimToken,
) -> StoreResult<Vec<R>> {
    let now = to_unix_millis(now);
    let claiming = query::<B>(sql)
        .bind(now.saturating_add(lease.whole_milliseconds() as i64))
        .bind(now)
        .bind(i64::from(limit))
        .bind(claim.as_str());
    Ok(B::fetch_all_alone(&store.writer, claiming).await?)
}

/// Errors are kept short: they are for operators, and never hold the code.
const MAX_ERROR_CHARS: usize = 300;

pub(super) fn short(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

fn corrupt(what: &str, id: &str) -> StoreError {
    StoreError::Other(anyhow::anyhow!("outbox: message {id} has {what}"))
}

impl TryFrom<ClaimedRow> for Message {
    type Error = StoreError;

    fn try_from(row: ClaimedRow) -> StoreResult<Self> {
        let content = match row.purpose.as_str() {
            CODE_PURPOSE => Content::Code(CodeContent {
                challenge_id: ChallengeId::from_stored(
                    row.challenge_id
                        .ok_or_else(|| corrupt("no challenge", &row.id))?,
                ),
                session_id: SessionId::from_stored(
                    row.session_id
                        .ok_or_else(|| corrupt("no session", &row.id))?,
                ),
                sealed_code: row.sealed_code.unwrap_or_default(),
                valid_for_minutes: row.valid_for_minutes,
                factor: row.payload.map(FactorId::from_stored),
            }),
            RESET_CODE_PURPOSE => Content::ResetCode(ResetCodeContent {
                reset_id: ResetId::from_stored(
                    row.reset_id.ok_or_else(|| corrupt("no reset", &row.id))?,
                ),
                sealed_code: row.sealed_code.unwrap_or_default(),
                valid_for_minutes: row.valid_for_minutes,
            }),
            NOTICE_PURPOSE => Content::Notice(NoticeContent {
                signal: row.dedupe_key.unwrap_or_default(),
                facts: row
                    .payload
                    .as_deref()
                    .and_then(|p| serde_json::from_str(p).ok())
                    .ok_or_else(|| corrupt("an unreadable notice", &row.id))?,
            }),
            ACCOUNT_NOTICE_PURPOSE => Content::Account(
                row.payload
                    .as_deref()
                    .and_then(AccountChange::from_stored)
                    .ok_or_else(|| corrupt("an unknown account change", &row.id))?,
            ),
            other => return Err(corrupt(&format!("an unknown purpose {other}"), &row.id)),
        };
        Ok(Message {
            customer_id: CustomerId::from_stored(row.customer_id),
            channel: row
                .channel
                .parse()
                .map_err(|_| corrupt("an unknown channel", &row.id))?,
            address: row.address,
            content,
            created_at: from_unix_millis(row.created_at),
            expires_at: from_unix_millis(row.expires_at),
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            claim: ClaimToken::from_stored(row.claim_token),
            live: row.live == 1,
            maybe_delivered: row.maybe_delivered == 1,
            lockdown_link: row.lockdown_link,
            id: row.id,
        })
    }
}

/// The columns a message's content fills; the rest stay NULL.
#[derive(Default)]
struct Columns<'a> {
    session: Option<&'a str>,
    challenge: Option<&'a str>,
    reset: Option<&'a str>,
    sealed: Option<&'a [u8]>,
    minutes: i64,
    payload: Option<String>,
    dedupe: Option<&'a str>,
}

/// Writes a message, inside the transaction of what it is about. A message with a dedupe key
/// (a notice's signal) is not written when one with that key waits, or its signal was told.
pub(super) async fn enqueue<B: Backend>(tx: &mut Tx<'_, B>, m: &Message) -> StoreResult<()> {
    let created = to_unix_millis(m.created_at);
    let mut row = Columns::default();
    match &m.content {
        Content::Code(c) => {
            row.session = Some(c.session_id.as_str());
            row.challenge = Some(c.challenge_id.as_str());
            row.sealed = Some(c.sealed_code.as_slice());
            row.minutes = c.valid_for_minutes;
            row.payload = c.factor.as_ref().map(|f| f.as_str().to_owned());
        }
        Content::ResetCode(r) => {
            row.reset = Some(r.reset_id.as_str());
            row.sealed = Some(r.sealed_code.as_slice());
            row.minutes = r.valid_for_minutes;
        }
        Content::Notice(n) => {
            row.payload = Some(serde_json::to_string(&n.facts).map_err(anyhow::Error::from)?);
            row.dedupe = Some(n.signal.as_str());
        }
        Content::Account(change) => row.payload = Some(change.to_stored()),
    }
    query::<B>(
        "INSERT INTO messages (id, purpose, customer_id, session_id, challenge_id, channel, \
         address, sealed_code, payload, dedupe_key, valid_for_minutes, created_at, expires_at, \
         next_attempt_at, reset_id, lockdown_link) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 WHERE $10 IS NULL \
         OR NOT EXISTS (SELECT 1 FROM risk_notices WHERE customer_id = $3 AND signal = $10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(m.id.as_str())
    .bind(m.content.purpose())
    .bind(m.customer_id.as_str())
    .bind(row.session)
    .bind(row.challenge)
    .bind(m.channel.as_str())
    .bind(m.address.as_str())
    .bind(row.sealed)
    .bind(row.payload)
    .bind(row.dedupe)
    .bind(row.minutes)
    .bind(created)
    .bind(to_unix_millis(m.expires_at))
    .bind(created)
    .bind(row.reset)
    .bind(m.lockdown_link)
    .execute(tx)
    .await?;
    Ok(())
}

impl<B: Backend> SqlStore<B> {
    /// Releases messages claimed under `claim`, unspent: their attempt is not counted.
    async fn give_back(&self, ids: &[String], claim: &ClaimToken) -> StoreResult<()> {
        let mut tx = self.write().await?;
        for id in ids {
            query::<B>(
                "UPDATE messages SET claimed_until = NULL, claim_token = NULL, \
                 attempts = attempts - 1 WHERE id = $1 AND claim_token = $2",
            )
            .bind(id.as_str())
            .bind(claim.as_str())
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> OutboxStore for SqlStore<B> {
    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<Message>> {
        let rows: Vec<ClaimedRow> =
            claim_due(self, B::CLAIM_MESSAGES, now, lease, limit, claim).await?;
        let mut messages = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in rows {
            let id = row.id.clone();
            match Message::try_from(row) {
                Ok(message) => messages.push(message),
                Err(why) => {
                    tracing::warn!(message.id = %id, error = %why, "claimed a message this version cannot read; released for another instance");
                    unreadable.push(id);
                }
            }
        }
        // A message this version cannot read (a purpose of a newer version, during a rolling
        // upgrade) is given back unspent rather than failing the whole batch, so the codes
        // claimed with it still go out and a newer instance can send it. The claim has
        // committed: if the giving back fails, its lease frees them later, and the readable
        // ones still go out now.
        if !unreadable.is_empty()
            && let Err(e) = self.give_back(&unreadable, claim).await
        {
            tracing::warn!(error = %e, "unreadable messages not given back; their lease will free them");
        }
        Ok(messages)
    }

    async fn finish_message(
        &self,
        message: &Message,
        end: DeliveryEnd,
        error: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<Finish> {
        let at = to_unix_millis(event.at);
        let mut tx = self.write().await?;
        let finished = query::<B>(
            "UPDATE messages SET status = $1, sealed_code = NULL, claimed_until = NULL, \
             finished_at = $2, last_error = $3 \
             WHERE id = $4 AND claim_token = $5 AND status = 'PENDING'",
        )
        .bind(end.as_stored())
        .bind(at)
        .bind(error.map(short))
        .bind(message.id.as_str())
        .bind(message.claim.as_str())
        .execute(&mut tx)
        .await?;
        if finished == 0 {
            return Ok(Finish::ClaimLost);
        }
        match (&message.content, end) {
            (Content::Code(code), DeliveryEnd::Undelivered) => give_back(&mut tx, code).await?,
            (Content::Notice(notice), DeliveryEnd::Sent) => {
                // Told: the same signal is not announced again. Marked only now, so a notice
                // that never went out does not silence the next one.
                query::<B>(
                    "INSERT INTO risk_notices (customer_id, signal, sent_at) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(message.customer_id.as_str())
                .bind(notice.signal.as_str())
                .bind(at)
                .execute(&mut tx)
                .await?;
            }
            _ => {}
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(Finish::Recorded)
    }

    async fn retry_message(
        &self,
        message: &Message,
        next_attempt_at: OffsetDateTime,
        error: &str,
        maybe_delivered: bool,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        query::<B>(
            "UPDATE messages SET next_attempt_at = $1, claimed_until = NULL, last_error = $2, \
             maybe_delivered = CASE WHEN $5 = 1 THEN 1 ELSE maybe_delivered END \
             WHERE id = $3 AND claim_token = $4 AND status = 'PENDING'",
        )
        .bind(to_unix_millis(next_attempt_at))
        .bind(short(error))
        .bind(message.id.as_str())
        .bind(message.claim.as_str())
        .bind(i64::from(maybe_delivered))
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delivery_state(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
    ) -> StoreResult<Option<DeliveryState>> {
        let status: Option<(String,)> =
            query::<B>("SELECT status FROM messages WHERE challenge_id = $1 AND session_id = $2")
                .bind(challenge.as_str())
                .bind(session.as_str())
                .fetch_optional(&mut self.read().await?)
                .await?;
        Ok(status.and_then(|(s,)| DeliveryState::from_stored(&s)))
    }

    async fn backlog(&self) -> StoreResult<(u64, Option<OffsetDateTime>)> {
        let (count, oldest): (i64, Option<i64>) =
            query::<B>("SELECT COUNT(*), MIN(created_at) FROM messages WHERE status = 'PENDING'")
                .fetch_one(&mut self.read().await?)
                .await?;
        Ok((
            u64::try_from(count).unwrap_or_default(),
            oldest.map(from_unix_millis),
        ))
    }

    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<Webhook>> {
        webhooks::claim(self, now, lease, limit, claim).await
    }

    async fn finish_webhook(
        &self,
        webhook: &Webhook,
        delivered: bool,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> StoreResult<Finish> {
        webhooks::finish(self, webhook, delivered, error, at).await
    }

    async fn retry_webhook(
        &self,
        webhook: &Webhook,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        webhooks::retry(self, webhook, next_attempt_at, error).await
    }
}

/// The customer never got this code: the send is theirs again, unless a newer challenge has
/// replaced this one meanwhile.
async fn give_back<B: Backend>(tx: &mut Tx<'_, B>, code: &CodeContent) -> StoreResult<()> {
    query::<B>(
        "UPDATE sessions SET codes_sent = codes_sent - 1, last_code_sent_at = NULL \
         WHERE id = $1 AND codes_sent > 0 \
         AND EXISTS (SELECT 1 FROM challenges WHERE id = $2 AND status = 'OPEN')",
    )
    .bind(code.session_id.as_str())
    .bind(code.challenge_id.as_str())
    .execute(&mut *tx)
    .await?;
    query::<B>("UPDATE challenges SET status = 'SUPERSEDED' WHERE id = $1 AND status = 'OPEN'")
        .bind(code.challenge_id.as_str())
        .execute(tx)
        .await?;
    Ok(())
}

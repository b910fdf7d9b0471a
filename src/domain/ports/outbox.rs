//! The outbox: two-factor codes and security notices on their way to customers (see
//! `crate::domain::delivery`). Codes are written by [`super::TwoFactorStore::open_challenge`] in
//! the challenge's own transaction; notices by [`super::SessionStore::start_session`] in the
//! login's.
//!
//! Every finish and retry names the claim it was made under, and changes nothing once another
//! worker has claimed the message since (its lease ran out): a stale worker's late "failed"
//! never overwrites "sent".

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::delivery::{
    ClaimToken, DeliveryEnd, DeliveryState, Finish, QueuedCode, QueuedNotice,
};
use crate::domain::session::SessionId;
use crate::domain::two_factor::ChallengeId;

#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Claims up to `limit` pending codes due at `now` that no worker holds, under `claim` for
    /// `lease`, and counts the attempt. Safe with several workers at once: a message is claimed
    /// by one. Each says whether its code can still be used ([`QueuedCode::live`]).
    async fn claim_codes(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<QueuedCode>>;
    /// Finishes a message still held under its claim, erasing its code, and appends `event`. A
    /// message no attempt can have delivered ([`DeliveryEnd::Undelivered`]) also gives the send back to its session (and closes its challenge), so the
    /// customer can ask again.
    async fn finish_code(
        &self,
        message: &QueuedCode,
        end: DeliveryEnd,
        error: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<Finish>;
    /// Where the message of `challenge` stands, if it belongs to `session`.
    async fn delivery_state(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
    ) -> StoreResult<Option<DeliveryState>>;
    /// Releases a message still held under its claim for another attempt at `next_attempt_at`;
    /// `maybe_delivered` marks it for good as possibly delivered by this attempt.
    async fn retry_code(
        &self,
        message: &QueuedCode,
        next_attempt_at: OffsetDateTime,
        error: &str,
        maybe_delivered: bool,
    ) -> StoreResult<()>;
    /// As [`OutboxStore::claim_codes`], for security notices.
    async fn claim_notices(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<QueuedNotice>>;
    /// Finishes a notice still held under its claim and appends `event`; a sent one marks its
    /// signal as told, so it is not announced again.
    async fn finish_notice(
        &self,
        notice: &QueuedNotice,
        end: DeliveryEnd,
        error: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<Finish>;
    /// Releases a notice still held under its claim for another attempt at `next_attempt_at`.
    async fn retry_notice(
        &self,
        notice: &QueuedNotice,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()>;
}

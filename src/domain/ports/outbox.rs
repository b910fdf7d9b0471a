//! The outbox of two-factor codes (see `crate::domain::delivery`). Messages are written by
//! [`super::TwoFactorStore::open_challenge`], in the challenge's own transaction.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::delivery::{DeliveryEnd, DeliveryState, QueuedCode};
use crate::domain::session::SessionId;
use crate::domain::two_factor::ChallengeId;

#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Claims up to `limit` pending messages due at `now` that no worker holds, for `lease`, and
    /// counts the attempt. Safe with several workers at once: a message is claimed by one.
    async fn claim_codes(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<QueuedCode>>;
    /// Finishes a message, erasing its code, and appends `event`. A failed one also gives the
    /// send back to its session (and closes its challenge), so the customer can ask again.
    async fn finish_code(
        &self,
        message: &QueuedCode,
        end: DeliveryEnd,
        error: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// Where the message of `challenge` stands, if it belongs to `session`.
    async fn delivery_state(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
    ) -> StoreResult<Option<DeliveryState>>;
    /// Releases a claimed message for another attempt at `next_attempt_at`.
    async fn retry_code(
        &self,
        challenge: &ChallengeId,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()>;
}

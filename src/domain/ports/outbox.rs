//! The outbox: everything the service sends a customer, on its way (see
//! `crate::domain::delivery::message` and `crate::domain::delivery`). A message is written in the
//! transaction of what it is about: a code by [`super::TwoFactorStore::open_challenge`], a notice
//! by [`super::SessionStore::start_session`].
//!
//! Every finish and retry names the claim it was made under, and changes nothing once another
//! worker has claimed the message since (its lease ran out): a stale worker's late "failed"
//! never overwrites "sent".

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::ChallengeId;
use crate::domain::delivery::message::{ClaimToken, DeliveryEnd, DeliveryState, Finish, Message};
use crate::domain::delivery::webhook::Webhook;
use crate::domain::sessions::SessionId;

/// The outbox: messages claimed, finished and retried by delivery workers, safely across several.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Claims up to `limit` pending messages due at `now` that no worker holds, under `claim`
    /// for `lease`, and counts the attempt. Safe with several workers at once: a message is
    /// claimed by one. Each says whether it is still worth sending ([`Message::live`]).
    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<Message>>;
    /// Finishes a message still held under its claim, erasing any code, and appends `event`.
    /// For a code that no attempt can have delivered ([`DeliveryEnd::Undelivered`]) the send is
    /// given back to its session (and its challenge closed), so the customer can ask again; a
    /// notice that was sent marks its signal as told.
    async fn finish_message(
        &self,
        message: &Message,
        end: DeliveryEnd,
        error: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<Finish>;
    /// Releases a message still held under its claim for another attempt at `next_attempt_at`;
    /// `maybe_delivered` marks it for good as possibly delivered by this attempt.
    async fn retry_message(
        &self,
        message: &Message,
        next_attempt_at: OffsetDateTime,
        error: &str,
        maybe_delivered: bool,
    ) -> StoreResult<()>;
    /// Where the code of `challenge` stands, if it belongs to `session`.
    async fn delivery_state(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
    ) -> StoreResult<Option<DeliveryState>>;
    /// How many messages wait to be delivered, and when the oldest of them was queued.
    async fn backlog(&self) -> StoreResult<(u64, Option<OffsetDateTime>)>;
    /// Claims up to `limit` pending webhook events due at `now` that no worker holds, under
    /// `claim` for `lease`, counting the attempt; several workers at once never take one event
    /// twice.
    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        claim: &ClaimToken,
    ) -> StoreResult<Vec<Webhook>>;
    /// Finishes a webhook event still held under its claim: `delivered`, or given up on with
    /// `error`.
    async fn finish_webhook(
        &self,
        webhook: &Webhook,
        delivered: bool,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> StoreResult<Finish>;
    /// Releases a webhook event still held under its claim for another attempt at
    /// `next_attempt_at`.
    async fn retry_webhook(
        &self,
        webhook: &Webhook,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()>;
}

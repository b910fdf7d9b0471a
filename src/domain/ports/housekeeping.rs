//! Removing what has ended, in small batches.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::audit::AuditEvent;

/// Deletes what retention no longer keeps, in bounded batches so that no statement holds locks for
/// long.
#[async_trait]
pub trait HousekeepingStore: Send + Sync + 'static {
    /// Deletes up to `batch` sessions whose absolute lifetime, or pending lifetime, ended before
    /// `cutoff`, with their challenges and retired refresh tokens; returns how many.
    async fn purge_sessions(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` failure counters that hold no lock and last changed before
    /// `cutoff`; returns how many.
    async fn purge_lockouts(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` messages not tied to a challenge (notices) whose delivery ended
    /// before `cutoff` (the audit trail keeps the record); returns how many.
    async fn purge_notices(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` webhook events finished before `cutoff`; returns how many.
    async fn purge_webhooks(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` factors added but not confirmed before they expired (before
    /// `cutoff`); returns how many.
    async fn purge_unconfirmed_factors(
        &self,
        cutoff: OffsetDateTime,
        batch: u32,
    ) -> StoreResult<u64>;
    /// Deletes up to `batch` password resets that expired before `cutoff` (with their
    /// messages); returns how many.
    async fn purge_resets(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` passkey logins' ceremonies that expired unanswered before
    /// `cutoff`; returns how many.
    async fn purge_passkey_logins(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` used lockdown links' ids whose links expired before `cutoff`;
    /// returns how many.
    async fn purge_lockdown_links(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` events older than `cutoff` from the start of the audit chain,
    /// moving the checkpoint to the last one deleted, and appends `event` (with the count and
    /// the checkpoint added) in the same transaction; returns how many were deleted.
    async fn purge_audit(
        &self,
        cutoff: OffsetDateTime,
        batch: u32,
        event: &AuditEvent,
    ) -> StoreResult<u64>;
}

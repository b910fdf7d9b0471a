//! The hash-chained audit trail.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::audit::{AuditEvent, ChainedEvent};

/// Which audit events to read.
#[derive(Debug, Clone, Copy)]
pub struct AuditQuery {
    /// Only events with a greater seq.
    pub after_seq: i64,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// The most events one read returns; a long trail is read in pages.
    pub limit: u32,
}

/// The audit trail: a hash chain, appended in order and read back for export and verification.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends one event on its own, for actions that change nothing else.
    async fn append_event(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Appends several events on their own, in one transaction.
    async fn append_events(&self, events: &[AuditEvent]) -> StoreResult<()>;
    /// Events matching `query`, oldest first, with their chain hashes.
    async fn audit_events(&self, query: AuditQuery) -> StoreResult<Vec<ChainedEvent>>;
    /// The newest `n` events, oldest first.
    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<ChainedEvent>>;
    /// The seq and hash of the last event (0 and the genesis hash when empty).
    async fn audit_head(&self) -> StoreResult<(i64, String)>;
    /// The seq and hash of the last event removed by retention (0 and the genesis hash if none).
    async fn audit_checkpoint(&self) -> StoreResult<(i64, String)>;
}

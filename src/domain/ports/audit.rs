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

/// What an operator's search of the trail narrows it to, each part by an index; all of them
/// must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events about this username (as stored: normalised).
    pub username: Option<String>,
    /// Events of this kind (its stored name).
    pub kind: Option<String>,
    /// At or after this time.
    pub since: Option<OffsetDateTime>,
    /// Before this time.
    pub until: Option<OffsetDateTime>,
    /// Events whose client address, as stored, is this text or starts with it.
    pub address: Option<AddressText>,
}

/// A client address as the trail stores it (its canonical text), matched whole or by the
/// start of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressText {
    /// This address.
    Exact(String),
    /// Every address whose text starts with this, which ends in a separator (`203.0.7.`).
    Prefix(String),
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
    /// Up to `limit` events after `after_seq` that match `filter`, oldest first.
    async fn search_audit(
        &self,
        filter: &AuditFilter,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<ChainedEvent>>;
    /// The newest `n` events, oldest first.
    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<ChainedEvent>>;
    /// The seq and hash of the last event (0 and the genesis hash when empty).
    async fn audit_head(&self) -> StoreResult<(i64, String)>;
    /// The seq and hash of the last event removed by retention (0 and the genesis hash if none).
    async fn audit_checkpoint(&self) -> StoreResult<(i64, String)>;
}

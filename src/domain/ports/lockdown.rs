//! "This wasn't me": a customer's lockdown.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::lockdown::LockdownLink;
use crate::domain::customers::Username;
use crate::domain::delivery::message::Message;

/// Whether a lockdown link did its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockdownDone {
    /// The account is locked down, its sessions ended.
    LockedDown,
    /// The link was used before (on any instance): nothing changed.
    LinkUsed,
}

/// Lockdowns, each in one transaction.
#[async_trait]
pub trait LockdownStore: Send + Sync + 'static {
    /// In one transaction holding the username's counters: records `link` as used (refused,
    /// changing nothing, if it was), locks `username` down until a completed reset or an
    /// operator's unlock, ends every live session of the link's customer, queues `notices`
    /// and appends `event`.
    async fn lock_down(
        &self,
        link: &LockdownLink,
        username: &Username,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<LockdownDone>;
}

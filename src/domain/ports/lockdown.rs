//! "This wasn't me": a customer's lockdown.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::auth::security::Liveness;
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

/// What a lockdown removes beside the sessions: what the customer enrolled (factors, confirmed
/// or not, and recovery codes) at or after the notice's time, or after the start of the oldest
/// session that was live then, whichever is earlier (the session that made the change a notice
/// tells of was live when it was sent, and may have enrolled more before); recorded by `event`
/// when anything went.
#[derive(Debug, Clone, Copy)]
pub struct EnrolledSince<'a> {
    /// When the notice whose link was used was sent (`now`), and which sessions were live then.
    pub notice: Liveness,
    /// The removal's event, appended with how many factors and codes went.
    pub event: &'a AuditEvent,
}

/// Lockdowns, each in one transaction.
#[async_trait]
pub trait LockdownStore: Send + Sync + 'static {
    /// In one transaction holding the username's counters: records `link` as used (refused,
    /// changing nothing, if it was), locks `username` down until a completed reset or an
    /// operator's unlock, ends every live session of the link's customer, removes what they
    /// `enrolled` (the default moving to the oldest factor left, the recovery codes going with
    /// the last factor), queues `notices` and appends `event`.
    async fn lock_down(
        &self,
        link: &LockdownLink,
        username: &Username,
        enrolled: EnrolledSince<'_>,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<LockdownDone>;
}

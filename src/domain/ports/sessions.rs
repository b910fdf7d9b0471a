//! Sessions and their tokens.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::lockout::LockoutRecord;
use crate::domain::customers::{Customer, CustomerId, Username};
use crate::domain::delivery::message::Message;
use crate::domain::sessions::token::TokenHash;
use crate::domain::sessions::{NewSession, Rotation, Session, SessionId};

/// What the store reports when a login tries to start a session.
#[derive(Debug, Clone, Copy)]
pub enum SessionStart {
    /// The session exists; for an ACTIVE one, the login before it.
    Started {
        /// When the customer completed the login before this one; `None` for a pending session or a
        /// first login.
        previous_login_at: Option<OffsetDateTime>,
    },
    /// The account was locked before the session could start.
    Locked(LockoutRecord),
    /// The one-step proof's time step was spent meanwhile (the same code, on any instance):
    /// nothing was stored.
    ProofSpent,
    /// The passkey login's ceremony was answered meanwhile (the same answer twice, on any
    /// instance): nothing was stored.
    CeremonyAnswered,
}

/// Sessions: their start, token lookups, renewal and ending, each one atomic.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Starts a session unless the username is locked at `session.created_at`, checked in the
    /// same transaction that holds the username's counters. An ACTIVE start completes a login:
    /// it resets the failure counters and records the login on the customer. A pending start
    /// does neither: the second factor is still owed. `notice` (an unusual sign-in) is queued
    /// in the same transaction, unless its signal was told already or waits to be.
    async fn start_session(
        &self,
        session: &NewSession,
        username: &Username,
        event: &AuditEvent,
        notice: Option<&Message>,
    ) -> StoreResult<SessionStart>;
    /// The session an access token (by its hash) belongs to, in whatever state; the caller judges
    /// whether it still works.
    async fn session_by_access(&self, hash: &TokenHash) -> StoreResult<Option<Session>>;
    /// The session an access token belongs to, with its customer, in one read.
    async fn session_with_customer_by_access(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<(Session, Customer)>>;
    /// The session a current refresh token (by its hash) belongs to.
    async fn session_by_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>>;
    /// The session a refresh token belonged to before it was rotated away.
    async fn session_by_retired_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>>;
    /// Records activity for the idle timeout.
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> StoreResult<()>;
    /// Swaps an ACTIVE session's tokens if its refresh token is still `rotation.old_refresh`
    /// (a conditional update, so two renewals with one token cannot both win); false when
    /// another request rotated first. The old token is kept as retired, for reuse detection.
    async fn rotate_session(&self, rotation: &Rotation, event: &AuditEvent) -> StoreResult<bool>;
    /// Ends one session and appends `event`; false (and nothing appended) if it had already
    /// ended.
    async fn revoke_session(
        &self,
        id: &SessionId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Ends every session of a customer; returns how many were live. `event` is appended only
    /// if one was.
    async fn revoke_customer_sessions(
        &self,
        customer: &CustomerId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<u64>;
    /// Ends every session of `whose` customer, or of every customer (`None`), that is live at
    /// `at` (not past its absolute lifetime, and ACTIVE or within its pending lifetime), for an
    /// operator; appends the event `audit` makes of how
    /// many ended, in the same transaction, even when none did: an operator's action is always
    /// on the record.
    async fn end_sessions_for_operator(
        &self,
        whose: Option<&CustomerId>,
        reason: &str,
        at: OffsetDateTime,
        audit: &(dyn Fn(u64) -> AuditEvent + Send + Sync),
    ) -> StoreResult<u64>;
}

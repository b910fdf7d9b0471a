//! Support's view of a customer's sessions, and ending them without a lock: one customer's
//! after their call, or every customer's after a suspected leak of tokens. Each ending is on
//! the record with the operator's reason, even when nothing was live.

use super::Username;
use super::accounts::{AccountError, Accounts};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::auth::security::{LiveSession, Liveness};

impl Accounts {
    /// The customer's live sessions, in every state, newest first. Support reading a
    /// customer's sign-ins is itself on the record (`support.viewed`, with `reason` when given),
    /// written before the answer is shown.
    pub async fn sessions_of(
        &self,
        username: &Username,
        reason: Option<&str>,
    ) -> Result<Vec<LiveSession>, AccountError> {
        let customer = self.find(username).await?;
        let now = self.clock.now();
        let live = Liveness::at(now, self.sessions.idle_timeout);
        let sessions = self.store.live_sessions(&customer.id, &live).await?;
        let event = AuditEvent::new(AuditKind::SupportViewed, Outcome::Success, now)
            .username(username)
            .customer(&customer.id)
            .detail("by", "operator")
            .detail("viewed", "sessions")
            .detail("sessions", sessions.len());
        let event = match reason {
            Some(reason) => event.detail("operatorReason", reason),
            None => event,
        };
        self.store.append_event(&event).await?;
        Ok(sessions)
    }

    /// Ends every session of the customer, for `reason`, without locking them: they sign in
    /// again at once. Returns how many ended.
    pub async fn end_sessions(
        &self,
        username: &Username,
        reason: &str,
    ) -> Result<u64, AccountError> {
        let customer = self.find(username).await?;
        let now = self.clock.now();
        let audit = |ended: u64| {
            AuditEvent::new(AuditKind::SessionRevoked, Outcome::Success, now)
                .username(username)
                .customer(&customer.id)
                .reason(ENDED_BY_OPERATOR)
                .detail("by", "operator")
                .detail("operatorReason", reason)
                .detail("sessions", ended)
        };
        Ok(self
            .store
            .end_sessions_for_operator(Some(&customer.id), ENDED_BY_OPERATOR, now, &audit)
            .await?)
    }

    /// Ends every session of every customer, for `reason`; one event records how many ended.
    pub async fn end_every_session(&self, reason: &str) -> Result<u64, AccountError> {
        let now = self.clock.now();
        let audit = |ended: u64| {
            AuditEvent::new(AuditKind::SessionRevoked, Outcome::Success, now)
                .reason(ALL_ENDED_BY_OPERATOR)
                .detail("by", "operator")
                .detail("operatorReason", reason)
                .detail("sessions", ended)
        };
        Ok(self
            .store
            .end_sessions_for_operator(None, ALL_ENDED_BY_OPERATOR, now, &audit)
            .await?)
    }
}

/// Why sessions ended, as their rows and the audit trail say.
const ENDED_BY_OPERATOR: &str = "operator_ended_sessions";
const ALL_ENDED_BY_OPERATOR: &str = "operator_ended_all_sessions";

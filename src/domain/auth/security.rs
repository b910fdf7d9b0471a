//! The customer's own security view. Every call needs an ACTIVE session: a password alone
//! must not show where else the customer is signed in, nor end those sessions.

use super::AuthService;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::client::ClientContext;
use crate::domain::device::{DeviceId, KnownDevice};
use crate::domain::error::AuthError;
use crate::domain::security::{Cursor, EventPage, LiveSession, Liveness, PageSize};
use crate::domain::session::{Session, SessionId, SessionState};

impl AuthService {
    fn require_active(session: &Session) -> Result<(), AuthError> {
        match session.state {
            SessionState::Active => Ok(()),
            SessionState::TwoFactorPending => Err(AuthError::TwoFactorRequired),
        }
    }

    fn liveness(&self) -> Liveness {
        let now = self.clock.now();
        Liveness {
            now,
            idle_before: self.policies.session.idle_timeout.map(|idle| now - idle),
        }
    }

    /// The customer's live sessions, newest first, the caller's among them.
    pub async fn own_sessions(&self, session: &Session) -> Result<Vec<LiveSession>, AuthError> {
        Self::require_active(session)?;
        Ok(self
            .store
            .live_sessions(&session.customer_id, &self.liveness())
            .await?)
    }

    /// Ends one of the customer's live sessions at once; ending the caller's own is a logout.
    /// `NotFound` when it is not a live session of theirs.
    pub async fn end_own_session(
        &self,
        session: &Session,
        target: &SessionId,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        Self::require_active(session)?;
        let live = self.liveness();
        let kind = if *target == session.id {
            AuditKind::Logout
        } else {
            AuditKind::SessionRevoked
        };
        let event = AuditEvent::new(kind, Outcome::Success, live.now)
            .customer(&session.customer_id)
            .session(target)
            .client(client)
            .detail("by", "customer")
            .detail("from_session", session.id.as_str());
        let ended = self
            .store
            .end_own_session(&session.customer_id, target, &live, &event)
            .await?;
        ended.then_some(()).ok_or(AuthError::NotFound)
    }

    /// The customer's devices, last seen first.
    pub async fn own_devices(&self, session: &Session) -> Result<Vec<KnownDevice>, AuthError> {
        Self::require_active(session)?;
        Ok(self
            .store
            .devices(&session.customer_id, &self.liveness())
            .await?)
    }

    /// Forgets a device of the customer's and ends its sessions at once; its next login makes
    /// it new again. `NotFound` when the customer has no such device.
    pub async fn forget_device(
        &self,
        session: &Session,
        device: &DeviceId,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        Self::require_active(session)?;
        let event = AuditEvent::new(
            AuditKind::DeviceForgotten,
            Outcome::Success,
            self.clock.now(),
        )
        .customer(&session.customer_id)
        .session(&session.id)
        .client(client)
        .detail("deviceId", device.as_str());
        let forgotten = self
            .store
            .forget_device(&session.customer_id, device, &event)
            .await?;
        forgotten.then_some(()).ok_or(AuthError::NotFound)
    }

    /// A page of the customer's sign-in history, newest first.
    pub async fn security_events(
        &self,
        session: &Session,
        size: PageSize,
        before: Option<Cursor>,
    ) -> Result<EventPage, AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        // One more than asked tells whether an older page exists.
        let mut events = self
            .store
            .security_events(&customer.id, &customer.username, before, size.get() + 1)
            .await?;
        let more = events.len() > size.get() as usize;
        events.truncate(size.get() as usize);
        let next = more.then(|| events.last().map(Cursor::before)).flatten();
        Ok(EventPage { events, next })
    }
}

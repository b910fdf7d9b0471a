//! The customer's own security view: their live sessions, their devices, and their sign-in
//! history from the audit trail. Every call needs an ACTIVE session: a password alone must not
//! show where else the customer is signed in, nor end those sessions.

use time::OffsetDateTime;

use super::AuthService;
use crate::domain::InvalidValue;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::risk::device::{DeviceId, DeviceRef, KnownDevice};
use crate::domain::sessions::{Session, SessionId, SessionState};

/// Which sessions are live at a moment: not revoked, and none of their ends passed.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// The moment the question is asked.
    pub now: OffsetDateTime,
    /// Sessions last seen at or before this have reached the idle timeout (`None`: no timeout).
    pub idle_before: Option<OffsetDateTime>,
}

impl Liveness {
    /// Which sessions are live at `now` with this idle limit (`None`: none).
    pub fn at(now: OffsetDateTime, idle_timeout: Option<time::Duration>) -> Self {
        Self {
            now,
            idle_before: idle_timeout.map(|idle| now - idle),
        }
    }
}

/// A live session as its customer sees it; `ip`, `country` and `user_agent` are the login's.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// The session, as the customer may name it to end it.
    pub id: SessionId,
    /// Whether it still owes its second factor.
    pub state: SessionState,
    /// When its login began.
    pub created_at: OffsetDateTime,
    /// Its last recorded activity.
    pub last_seen_at: OffsetDateTime,
    /// When its current bffToken stops working.
    pub expires_at: OffsetDateTime,
    /// The login's client address.
    pub ip: Option<String>,
    /// The login's country, where the address could be placed.
    pub country: Option<String>,
    /// The login's user agent.
    pub user_agent: Option<String>,
    /// The device it signed in from, if the client named one.
    pub device: Option<DeviceRef>,
}

/// The kinds of audit event a customer sees in their own history.
pub const HISTORY_KINDS: &[AuditKind] = &[
    AuditKind::LoginSucceeded,
    AuditKind::LoginFailed,
    AuditKind::TwoFactorInitiated,
    AuditKind::TwoFactorVerified,
    AuditKind::TwoFactorFailed,
    AuditKind::StepUpVerified,
    AuditKind::StepUpFailed,
    AuditKind::PasswordChanged,
    AuditKind::PasswordChangeFailed,
    AuditKind::PasswordResetVerified,
    AuditKind::PasswordResetFailed,
    AuditKind::PasswordReset,
    AuditKind::FactorConfirmed,
    AuditKind::FactorRemoved,
    AuditKind::RecoveryCodesCreated,
    AuditKind::SessionRefreshed,
    AuditKind::RefreshReused,
    AuditKind::Logout,
    AuditKind::SessionRevoked,
    AuditKind::DeviceForgotten,
    AuditKind::AccountLocked,
    AuditKind::AccountUnlocked,
    AuditKind::AccountLockdown,
];

/// One event of the customer's sign-in history.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    /// Its position in the audit trail, which pages are cut by.
    pub seq: i64,
    /// The audit event's id.
    pub id: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: AuditKind,
    /// Whether it succeeded.
    pub outcome: Outcome,
    /// Why, as a stable code.
    pub reason: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's country, where it could be placed.
    pub country: Option<String>,
    /// The device, if the client named one.
    pub device: Option<DeviceRef>,
    /// Why the login was judged unusual; empty when it was not.
    pub flags: Vec<String>,
}

/// How many events a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// The page size when the client asks for none.
    pub const DEFAULT: Self = Self(50);

    /// A size from 1 to 100.
    pub fn new(n: i64) -> Result<Self, InvalidValue> {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=100).contains(n))
            .map(Self)
            .ok_or(InvalidValue("must be between 1 and 100"))
    }

    /// The number of events.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Where the next page starts: events strictly older than this one. Opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(i64);

impl Cursor {
    /// A cursor as [`Cursor`]'s `Display` wrote it (`e` and a seq); anything else is refused.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let invalid = InvalidValue("is not a cursor this service returned");
        let seq = s
            .strip_prefix('e')
            .filter(|digits| !digits.is_empty() && digits.len() <= 19)
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<i64>().ok())
            .filter(|seq| *seq > 0)
            .ok_or(invalid)?;
        Ok(Self(seq))
    }

    /// The cursor for the page after the one `event` ends.
    pub fn before(event: &SecurityEvent) -> Self {
        Self(event.seq)
    }

    /// The audit seq the next page starts below.
    pub fn seq(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// A page of history, newest first, and where the next (older) one starts.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<SecurityEvent>,
    /// Where the next page starts; `None` on the last.
    pub next: Option<Cursor>,
}

impl AuthService {
    fn liveness(&self) -> Liveness {
        Liveness::at(self.clock.now(), self.policies.session.idle_timeout)
    }

    /// The customer's live logins, pending or complete, newest first, the caller's among them.
    pub async fn own_sessions(&self, session: &Session) -> Result<Vec<LiveSession>, AuthError> {
        Self::require_active(session)?;
        let mut sessions = self
            .store
            .live_sessions(&session.customer_id, &self.liveness())
            .await?;
        sessions.retain(|s| s.state.is_listed());
        Ok(sessions)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_between_1_and_100() {
        assert!(PageSize::new(0).is_err());
        assert!(PageSize::new(101).is_err());
        assert!(PageSize::new(-5).is_err());
        assert_eq!(PageSize::new(100).map(PageSize::get), Ok(100));
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = Cursor::parse("e42").unwrap();
        assert_eq!(cursor.seq(), 42);
        assert_eq!(cursor.to_string(), "e42");
        for bad in [
            "",
            "e",
            "42",
            "e-1",
            "e0",
            "e1x",
            "e99999999999999999999",
            "é1",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}

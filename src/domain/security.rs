//! The customer's own security view: their live sessions, their devices, and their sign-in
//! history from the audit trail.

use time::OffsetDateTime;

use super::InvalidValue;
use super::audit::{AuditKind, Outcome};
use super::device::DeviceRef;
use super::session::{SessionId, SessionState};

/// Which sessions are live at a moment: not revoked, and none of their ends passed.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub now: OffsetDateTime,
    /// Sessions last seen at or before this have reached the idle timeout (`None`: no timeout).
    pub idle_before: Option<OffsetDateTime>,
}

/// A live session as its customer sees it; `ip`, `country` and `user_agent` are the login's.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: SessionId,
    pub state: SessionState,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub country: Option<String>,
    pub user_agent: Option<String>,
    pub device: Option<DeviceRef>,
}

/// The kinds of audit event a customer sees in their own history.
pub const HISTORY_KINDS: &[AuditKind] = &[
    AuditKind::LoginSucceeded,
    AuditKind::LoginFailed,
    AuditKind::TwoFactorInitiated,
    AuditKind::TwoFactorVerified,
    AuditKind::TwoFactorFailed,
    AuditKind::SessionRefreshed,
    AuditKind::RefreshReused,
    AuditKind::Logout,
    AuditKind::SessionRevoked,
    AuditKind::DeviceForgotten,
    AuditKind::AccountLocked,
    AuditKind::AccountUnlocked,
];

/// One event of the customer's sign-in history.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    /// Its position in the audit trail, which pages are cut by.
    pub seq: i64,
    pub id: String,
    pub at: OffsetDateTime,
    pub kind: AuditKind,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub ip: Option<String>,
    pub country: Option<String>,
    pub device: Option<DeviceRef>,
    /// Why the login was judged unusual; empty when it was not.
    pub flags: Vec<String>,
}

/// How many events a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    pub const DEFAULT: Self = Self(50);

    pub fn new(n: i64) -> Result<Self, InvalidValue> {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=100).contains(n))
            .map(Self)
            .ok_or(InvalidValue("must be between 1 and 100"))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// Where the next page starts: events strictly older than this one. Opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(i64);

impl Cursor {
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

    pub fn before(event: &SecurityEvent) -> Self {
        Self(event.seq)
    }

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
    pub events: Vec<SecurityEvent>,
    pub next: Option<Cursor>,
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

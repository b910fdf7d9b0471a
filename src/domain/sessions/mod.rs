//! Sessions and the rules that end them: lifetimes (pending, active, idle, absolute) are
//! checked here on every call. Renewal rotates the refresh token; the store swaps it only if it
//! is still the presented one
//! ([`SessionStore::rotate_session`](crate::domain::ports::SessionStore::rotate_session), a conditional
//! update), so two renewals with one token cannot both win, and the retired token is kept so
//! that presenting it again is seen as reuse (`domain/auth/renewal.rs`).

pub mod token;

use std::num::NonZeroU32;

use time::{Duration, OffsetDateTime};

use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::challenge::Spend;
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::passkey_login::AnsweredCeremony;

use crate::domain::customers::{CustomerId, Username};
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::token::TokenHash;

crate::domain::opaque_id!(
    /// An opaque session identifier.
    SessionId
);

/// Where a session is in the login flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Password accepted, second factor still owed: may only read the restricted view, run 2FA
    /// and log out.
    TwoFactorPending,
    /// Login complete: the customer's full view and every operation.
    Active,
    /// Password accepted while two-factor is required of everyone, and the customer holds no
    /// factor: may only read the restricted view, add and confirm a factor, and log out.
    EnrolmentRequired,
    /// A forgotten password's reset code was right: may only read the restricted view, prove a
    /// second factor other than the mailbox, set the new password, and log out.
    PasswordReset,
}

impl SessionState {
    /// Every state (the API documents them as an enum).
    pub const ALL: [Self; 4] = [
        Self::TwoFactorPending,
        Self::Active,
        Self::EnrolmentRequired,
        Self::PasswordReset,
    ];

    /// Whether the customer's list of sessions shows it: a login, pending or complete. An
    /// enrolment or a reset in progress is not listed (it can still be ended, by logging out
    /// everywhere or a password change).
    pub fn is_listed(self) -> bool {
        matches!(self, Self::TwoFactorPending | Self::Active)
    }

    /// The stable name stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TwoFactorPending => "TWO_FACTOR_PENDING",
            Self::Active => "ACTIVE",
            Self::EnrolmentRequired => "ENROLMENT_REQUIRED",
            Self::PasswordReset => "PASSWORD_RESET",
        }
    }

    /// The state of a stored name; `None` for anything else.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "TWO_FACTOR_PENDING" => Some(Self::TwoFactorPending),
            "ACTIVE" => Some(Self::Active),
            "ENROLMENT_REQUIRED" => Some(Self::EnrolmentRequired),
            "PASSWORD_RESET" => Some(Self::PasswordReset),
            _ => None,
        }
    }
}

/// A session as stored.
#[derive(Debug, Clone)]
pub struct Session {
    /// Opaque; never a token.
    pub id: SessionId,
    /// Whose session it is.
    pub customer_id: CustomerId,
    /// How far the login has come.
    pub state: SessionState,
    /// When the login began; the absolute lifetime counts from here.
    pub created_at: OffsetDateTime,
    /// When the current bffToken stops working.
    pub expires_at: OffsetDateTime,
    /// No renewal reaches past this.
    pub absolute_expires_at: OffsetDateTime,
    /// The last recorded activity, for the idle timeout (recorded coarsely: see `activity_resolution`).
    pub last_seen_at: OffsetDateTime,
    /// When this session completed login (became ACTIVE).
    pub login_at: Option<OffsetDateTime>,
    /// The customer's login before this one, as it stood when this one completed.
    pub previous_login_at: Option<OffsetDateTime>,
    /// Whether a second factor completed this login.
    pub two_factor_verified: bool,
    /// When the session last proved a second factor (its login's or a step-up), or the
    /// password of a customer without one; recent calls count from here.
    pub recent_auth_at: Option<OffsetDateTime>,
    /// Ended before its time: logout, reuse of a refresh token, an operator lock, a forgotten
    /// device.
    pub revoked: bool,
}

/// A session about to be stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Opaque; never a token.
    pub id: SessionId,
    /// Whose session it is.
    pub customer_id: CustomerId,
    /// Pending when a second factor is owed.
    pub state: SessionState,
    /// SHA-256 of the bffToken; the token itself is never stored.
    pub access_hash: TokenHash,
    /// SHA-256 of the refresh token.
    pub refresh_hash: TokenHash,
    /// When the login began.
    pub created_at: OffsetDateTime,
    /// When the first bffToken stops working.
    pub expires_at: OffsetDateTime,
    /// No renewal reaches past this.
    pub absolute_expires_at: OffsetDateTime,
    /// Set when the login is complete at once: the password of a customer without a second
    /// factor proves as much as they can.
    pub recent_auth_at: Option<OffsetDateTime>,
    /// Where the login came from, recorded with the session (devices, history).
    pub client: ClientContext,
    /// A second factor proved with the password (a one-step login with an app's code): the
    /// session starts ACTIVE only if what the proof uses up is still unspent.
    pub proof: Option<OneStepProof>,
    /// An ACTIVE start ends the customer's oldest sessions past this.
    pub limit: SessionLimit,
}

/// A second factor proved in the login's own request.
#[derive(Debug, Clone)]
pub struct OneStepProof {
    /// The factor that answered.
    pub factor: FactorId,
    /// What the answer uses up (an app's time step), spent in the transaction that starts the
    /// session.
    pub spend: Spend,
    /// The passkey login's ceremony it answered, stored as answered in the same transaction.
    pub ceremony: Option<AnsweredCeremony>,
}

/// New tokens for an existing session. With `old_refresh` set, the swap only happens while that
/// is still the session's refresh token; the replaced refresh token is retired either way, so a
/// later use of it is recognised as reuse.
#[derive(Debug)]
pub struct Rotation {
    /// The session whose tokens change.
    pub session_id: SessionId,
    /// The refresh token presented; `None` when the swap is unconditional (a completed second factor).
    pub old_refresh: Option<TokenHash>,
    /// SHA-256 of the new bffToken.
    pub access_hash: TokenHash,
    /// SHA-256 of the new refresh token.
    pub refresh_hash: TokenHash,
    /// When the new bffToken stops working.
    pub expires_at: OffsetDateTime,
    /// When the rotation happened.
    pub at: OffsetDateTime,
}

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// How long a bffToken of an active session lives.
    pub ttl: Duration,
    /// How long a session awaiting its second factor lives.
    pub pending_ttl: Duration,
    /// No session lives longer, however often it is renewed.
    pub absolute_ttl: Duration,
    /// `None`: no idle limit.
    pub idle_timeout: Option<Duration>,
    /// How long a proved second factor counts as recent.
    pub recent_auth_window: Duration,
    /// ACTIVE sessions a customer may hold (`FINHUB_MAX_SESSIONS`).
    pub max_active: NonZeroU32,
}

/// At most `max` live ACTIVE sessions per customer: a login that completes past it ends the
/// customer's oldest (by completed login), each audited, in the login's transaction. Only a
/// completed login counts: a password alone (a pending session) must not end the customer's
/// sessions, or whoever knew it could sign them out at will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// How many.
    pub max: NonZeroU32,
    /// Sessions idle longer are dead already and neither count nor are ended.
    pub idle_timeout: Option<Duration>,
}

impl SessionLimit {
    /// Why such a session ended, as its row and the audit trail say.
    pub const REASON: &str = "session_limit";

    /// The event of `session` ended at `at` by a login of `customer` past the limit.
    pub fn ended_event(
        &self,
        customer: &CustomerId,
        username: &Username,
        session: &SessionId,
        at: OffsetDateTime,
    ) -> AuditEvent {
        AuditEvent::new(AuditKind::SessionRevoked, Outcome::Success, at)
            .username(username)
            .customer(customer)
            .session(session)
            .reason(Self::REASON)
            .detail("maxSessions", self.max.get())
    }
}

/// Why a stored session no longer works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Logged out or ended by the customer, reuse detection or an operator.
    Revoked,
    /// Past its token's or its absolute lifetime.
    Expired,
    /// Unused for longer than the idle timeout.
    Idle,
}

impl SessionPolicy {
    /// The expiry of a token issued at `now` for a session in `state` created at `created_at`.
    pub fn expiry(
        &self,
        state: SessionState,
        created_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> OffsetDateTime {
        let ttl = match state {
            SessionState::TwoFactorPending
            | SessionState::EnrolmentRequired
            | SessionState::PasswordReset => self.pending_ttl,
            SessionState::Active => self.ttl,
        };
        (now + ttl).min(self.absolute_expiry(created_at))
    }

    /// When a session created at `created_at` ends whatever happens.
    pub fn absolute_expiry(&self, created_at: OffsetDateTime) -> OffsetDateTime {
        created_at + self.absolute_ttl
    }

    /// How stale a session's recorded activity may grow before a call records it again.
    /// Recording every call would make every authenticated read a durable write; recording at
    /// this resolution (a fifteenth of the idle timeout, between 1 and 60 seconds) keeps the idle
    /// timeout exact to within it: a session can end up to this much early, never late.
    pub fn activity_resolution(&self) -> Duration {
        self.idle_timeout.map_or(Duration::minutes(1), |idle| {
            (idle / 15_i32).clamp(Duration::seconds(1), Duration::minutes(1))
        })
    }

    /// Whether a call at `now` should record the session's activity.
    pub fn should_record_activity(&self, s: &Session, now: OffsetDateTime) -> bool {
        now - s.last_seen_at >= self.activity_resolution()
    }

    /// How many ACTIVE sessions a customer keeps.
    pub fn limit(&self) -> SessionLimit {
        SessionLimit {
            max: self.max_active,
            idle_timeout: self.idle_timeout,
        }
    }

    /// Until when the session counts as recently authenticated; `None` if it never proved
    /// anything recent. Past that moment, recent calls need a step-up.
    pub fn recent_until(&self, s: &Session) -> Option<OffsetDateTime> {
        s.recent_auth_at.map(|at| at + self.recent_auth_window)
    }

    /// Whether the session counts as recently authenticated at `now`.
    pub fn is_recent(&self, s: &Session, now: OffsetDateTime) -> bool {
        self.recent_until(s).is_some_and(|until| now < until)
    }

    /// Whether the session can still carry a bearer call at `now`.
    pub fn check_access(&self, s: &Session, now: OffsetDateTime) -> Result<(), Ended> {
        self.check_renewal(s, now)?;
        if now >= s.expires_at {
            return Err(Ended::Expired);
        }
        Ok(())
    }

    /// Whether the session can still be renewed at `now` (an ACTIVE session's bffToken may have
    /// expired; a pending session ends with its lifetime).
    pub fn check_renewal(&self, s: &Session, now: OffsetDateTime) -> Result<(), Ended> {
        if s.revoked {
            return Err(Ended::Revoked);
        }
        let pending_over = s.state != SessionState::Active && now >= s.expires_at;
        if now >= s.absolute_expires_at || pending_over {
            return Err(Ended::Expired);
        }
        if self
            .idle_timeout
            .is_some_and(|idle| now >= s.last_seen_at + idle)
        {
            return Err(Ended::Idle);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

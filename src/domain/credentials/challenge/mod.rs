//! Two-factor challenges: six-digit codes, their lifetime, and the limits on guessing and sending.
//!
//! The rules are decided here; the ones that concurrent requests could race are enforced
//! atomically by the store, in one transaction each:
//! - **guesses**: a challenge takes at most [`TwoFactorPolicy::max_attempts`] guesses, and each
//!   wrong one counts towards the username's lock ([`crate::domain::credentials::lockout`]). Enforced by
//!   [`TwoFactorStore::check_code`](crate::domain::ports::TwoFactorStore::check_code), which uses a
//!   guess with a conditional update (`attempts < max`) while holding the username's counters
//!   and the session (`store/sql/two_factor.rs`, `use_attempt`);
//! - **sends**: at most [`TwoFactorPolicy::max_sends`] codes per session, no sooner than
//!   [`TwoFactorPolicy::resend_interval`] apart. Enforced by
//!   [`TwoFactorStore::open_challenge`](crate::domain::ports::TwoFactorStore::open_challenge), which
//!   counts the send and checks both limits in one conditional update.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::domain::InvalidValue;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::customers::Username;
use crate::domain::sessions::{Rotation, SessionId};

mod code;

pub use code::{CODE_LENGTH, CodeHash, CodeKey, OtpCode, PresentedCode};

/// An answer to a challenge, judged by the domain. The store hands it what it stored for the
/// challenge inside the guess's transaction (where the attempt is used, a failure counted and
/// the session activated) and never decides itself whether an answer is right: a method whose
/// answers are judged otherwise (an authenticator app's code against its secret, say) is
/// another implementation, not another query.
pub trait Answer: fmt::Debug + Send + Sync {
    /// Whether this answers `challenge`.
    fn is_right(&self, challenge: &Challenge) -> bool;
}

crate::domain::opaque_id!(
    /// An opaque challenge identifier.
    ChallengeId
);

impl ChallengeId {
    /// Anything short and printable may be looked up; unknown ids simply match nothing.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            Err(InvalidValue(
                "must be the challengeId returned by 2fa/initiate",
            ))
        } else {
            Ok(Self(raw.to_owned()))
        }
    }
}

/// A challenge about to be stored.
#[derive(Debug)]
pub struct NewChallenge {
    /// Opaque; what the client presents with its guess.
    pub id: ChallengeId,
    /// The pending session this challenge can activate; guesses from any other session match
    /// nothing.
    pub session_id: SessionId,
    /// The session's customer's username: its lock is checked again as the challenge opens.
    pub username: Username,
    /// How the code is delivered (SMS, email), chosen from the customer's settings.
    pub method: TwoFactorMethod,
    /// Where the code goes, masked: what the customer is shown, never the full address.
    pub destination: String,
    /// Never the code itself: only its hash is stored.
    pub code_hash: CodeHash,
    /// When the code was issued; the resend interval counts from here.
    pub created_at: OffsetDateTime,
    /// After this the code is refused as expired, however many guesses remain.
    pub expires_at: OffsetDateTime,
}

/// Where a challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeStatus {
    /// The latest code for its session, still accepting guesses until it expires or runs out of
    /// them.
    Open,
    /// A newer code was sent for the session.
    Superseded,
    /// Answered with the right code; it cannot be used again.
    Verified,
}

impl ChallengeStatus {
    /// The form stored in `challenges.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Superseded => "SUPERSEDED",
            Self::Verified => "VERIFIED",
        }
    }

    /// Reads `challenges.status` back; `None` for a value this version does not know.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "OPEN" => Some(Self::Open),
            "SUPERSEDED" => Some(Self::Superseded),
            "VERIFIED" => Some(Self::Verified),
            _ => None,
        }
    }
}

/// A challenge as stored.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Opaque; what the client names when it guesses.
    pub id: ChallengeId,
    /// The pending session a right answer activates.
    pub session_id: SessionId,
    /// What the code is checked against; the code itself is never stored.
    pub code_hash: CodeHash,
    /// After this, guesses are refused as expired.
    pub expires_at: OffsetDateTime,
    /// Guesses checked so far, including the one being made.
    pub attempts: u32,
    /// Only an `Open` challenge accepts guesses.
    pub status: ChallengeStatus,
}

/// One guess at a code. The store checks it in one transaction with everything it depends on:
/// the username's lock, the challenge's remaining guesses, the comparison, the failure count
/// and, for the right code, the session's activation; so no number of concurrent guesses, over
/// any number of sessions and instances, gets more codes checked than the limits allow.
#[derive(Debug)]
pub struct CodeGuess {
    /// The session the guess comes through; a challenge of any other session is unknown to it.
    pub session_id: SessionId,
    /// The challenge the client names.
    pub challenge_id: ChallengeId,
    /// Whose lock is checked before the guess and whose failures a wrong code counts towards.
    pub username: Username,
    /// The answer, judged against what the store holds for the challenge.
    pub answer: Box<dyn Answer>,
    /// Guesses one challenge allows, from the policy in force when the guess is made.
    pub max_attempts: u32,
    /// The session's new tokens and lifetime, if the code is right.
    pub rotation: Rotation,
}

/// What came of a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuessOutcome {
    /// The right code: the session is ACTIVE with the rotation's tokens.
    Verified,
    /// A wrong code; `attempts` guesses of the challenge are used, including this one. The
    /// failure counted towards the username's lock, and `locked` is set if it caused one.
    Wrong {
        /// Guesses of the challenge used, this one included.
        attempts: u32,
        /// When the lock this failure caused ends, and how many locks in a row it makes.
        locked: Option<(OffsetDateTime, u32)>,
    },
    /// The username is locked; the guess was not checked.
    Locked {
        /// When the lock ends; `None` until an operator unlocks it.
        until: Option<OffsetDateTime>,
    },
    /// Every allowed guess of the challenge has been used.
    Exhausted,
    /// The code's validity has passed.
    Expired,
    /// The challenge was replaced by a newer code or used, or the session moved on.
    Closed,
    /// No challenge with that id for this session.
    Unknown,
    /// The session no longer awaits 2FA: verified meanwhile, or (`revoked`) ended.
    SessionMoved {
        /// The session was ended rather than verified.
        revoked: bool,
    },
}

impl GuessOutcome {
    /// Whether the guess was checked against the code (and so changed something: a guess
    /// used, the session activated). The others are refused on the stored state alone, change
    /// nothing, and are audited in aggregate.
    pub fn was_checked(&self) -> bool {
        matches!(self, Self::Verified | Self::Wrong { .. })
    }

    /// The audit events that record this outcome, built on `context` (who, from where, which
    /// session and challenge).
    pub fn audit_events(&self, context: &AuditEvent) -> Vec<AuditEvent> {
        let failed =
            |reason| context.recast(AuditKind::TwoFactorFailed, Outcome::Failure, Some(reason));
        match *self {
            Self::Verified => {
                vec![context.recast(AuditKind::TwoFactorVerified, Outcome::Success, None)]
            }
            Self::Wrong { attempts, locked } => {
                let failure = failed("invalid_code").detail("attempt", attempts);
                match locked {
                    Some((until, nth)) => {
                        let lock = failure.lock_caused(until, nth);
                        vec![failure, lock]
                    }
                    None => vec![failure],
                }
            }
            Self::Locked { .. } => vec![failed("account_locked")],
            Self::Exhausted => vec![failed("too_many_attempts")],
            Self::Expired | Self::Closed => vec![failed("code_expired")],
            Self::Unknown => vec![failed("unknown_challenge")],
            Self::SessionMoved { .. } => vec![failed("not_pending")],
        }
    }
}

/// Limits on codes.
#[derive(Debug, Clone, Copy)]
pub struct TwoFactorPolicy {
    /// How long a code stays valid after it is sent: short, as a code is a bearer secret in
    /// transit.
    pub code_ttl: Duration,
    /// Guesses one challenge takes before it is exhausted; with six digits this bounds a guesser's
    /// odds.
    pub max_attempts: u32,
    /// Least time between two codes for one session, so a client cannot flood a phone or inbox.
    pub resend_interval: Duration,
    /// Codes one session may be sent in all; each costs money (SMS) and reaches the customer.
    pub max_sends: u32,
    /// Codes one customer may be sent over all their sessions; `None`: no such limit.
    pub customer_sends: Option<SendBudget>,
}

/// At most `count` codes in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBudget {
    /// Codes allowed within one window.
    pub count: u32,
    /// The sliding period the count applies to.
    pub window: Duration,
}

/// What a store reports when asked to open a challenge under the sending limits.
#[derive(Debug, Clone, Copy)]
pub enum SendOutcome {
    /// A new challenge was stored and its code may be sent; earlier ones for the session are
    /// superseded.
    Opened,
    /// The last code for the session was sent less than the resend interval ago.
    TooSoon {
        /// When the next code may be sent.
        retry_at: OffsetDateTime,
    },
    /// The session has been sent its `max_sends` codes; no more go to it.
    LimitReached,
    /// The customer was sent their budget of codes over all sessions; one more may go at
    /// `retry_at`.
    CustomerBudgetSpent {
        /// When the oldest send leaves the window.
        retry_at: OffsetDateTime,
    },
    /// The session no longer awaits 2FA: verified meanwhile, or (`revoked`) ended.
    SessionMoved {
        /// The session was ended rather than verified.
        revoked: bool,
    },
    /// The username is locked (perhaps since the caller looked): no code is sent.
    Locked {
        /// When the lock ends; `None` until an operator unlocks it.
        until: Option<OffsetDateTime>,
    },
}

#[cfg(test)]
mod tests;

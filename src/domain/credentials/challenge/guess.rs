//! One guess at a code (or any answer to a challenge), what a right one completes, and how the
//! store's check of it ends.

use time::OffsetDateTime;

use super::{Answer, ChallengeId, ChallengePurpose};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::lockout::LockoutRecord;
use crate::domain::customers::{CustomerId, Username};
use crate::domain::delivery::message::Message;
use crate::domain::sessions::{Rotation, SessionId, SessionLimit};

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
    /// The session's customer, whose login a right answer records.
    pub customer_id: CustomerId,
    /// The answer, judged against what the store holds for the challenge.
    pub answer: Box<dyn Answer>,
    /// Guesses one challenge allows, from the policy in force when the guess is made.
    pub max_attempts: u32,
    /// What a right answer does.
    pub completion: Completion,
    /// A login it completes ends the customer's oldest sessions past this.
    pub limit: SessionLimit,
    /// Queued in the transaction of a right answer (the notice that a recovery code was used,
    /// or a factor added).
    pub notices: Vec<Message>,
    /// Queued, completed with the lock's end, when a wrong answer locks the username.
    pub lock_notices: Vec<Message>,
    /// Appended with a wrong answer's own events: what the answer showed beyond being wrong
    /// (a passkey whose signature counter went back).
    pub wrong_events: Vec<AuditEvent>,
}

/// What a right answer does to the session.
#[derive(Debug)]
pub enum Completion {
    /// Finishes the login: the session becomes ACTIVE with new tokens and lifetime.
    Login(Rotation),
    /// Makes the ACTIVE session recently authenticated as of `at`.
    StepUp {
        /// When the answer came.
        at: OffsetDateTime,
    },
    /// Confirms the factor being added (the customer's default if they have none), which makes
    /// the session recently authenticated too. Wrong codes do not count towards the lock (the
    /// code went where the caller chose); the last allowed wrong one drops the factor.
    Confirm {
        /// The factor confirmed.
        factor: FactorId,
        /// When the answer came.
        at: OffsetDateTime,
        /// For a session that had to enrol: it becomes ACTIVE with these tokens.
        activation: Option<Rotation>,
    },
    /// Marks the second factor of a password reset's session done; it stays a reset's
    /// session, with these new tokens.
    Reset(Rotation),
}

impl Completion {
    /// The purpose of the challenges this completes.
    pub fn purpose(&self) -> ChallengePurpose {
        match self {
            Self::Login(_) => ChallengePurpose::Login,
            Self::StepUp { .. } => ChallengePurpose::StepUp,
            Self::Confirm {
                activation: Some(_),
                ..
            } => ChallengePurpose::Enrol,
            Self::Confirm { .. } => ChallengePurpose::Confirm,
            Self::Reset(_) => ChallengePurpose::Reset,
        }
    }

    /// When the answer came: the time of everything the right answer records, its notices
    /// included, so a notice's "this wasn't me" link dates from the change it tells of.
    pub fn at(&self) -> OffsetDateTime {
        match self {
            Self::Login(rotation) | Self::Reset(rotation) => rotation.at,
            Self::StepUp { at } | Self::Confirm { at, .. } => *at,
        }
    }
}

/// What the stored state says of a guess before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Refused on the state alone (see [`GuessOutcome::was_checked`]): nothing to check.
    Refused(GuessOutcome),
    /// To be checked; the username's counters as read, for the notices a lock would send.
    Admitted(LockoutRecord),
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

    /// The audit events that record this outcome of a guess at a challenge of `purpose`, built
    /// on `context` (who, from where, which session and challenge).
    pub fn audit_events(&self, context: &AuditEvent, purpose: ChallengePurpose) -> Vec<AuditEvent> {
        let (verified, failed) = match purpose {
            ChallengePurpose::Login | ChallengePurpose::Reset => {
                (AuditKind::TwoFactorVerified, AuditKind::TwoFactorFailed)
            }
            ChallengePurpose::StepUp => (AuditKind::StepUpVerified, AuditKind::StepUpFailed),
            ChallengePurpose::Confirm | ChallengePurpose::Enrol => {
                (AuditKind::FactorConfirmed, AuditKind::FactorConfirmFailed)
            }
        };
        self.audit_events_as(context, verified, failed)
    }

    /// The audit events that record this outcome of a guess, as `verified` or `failed` events
    /// built on `context`.
    pub fn audit_events_as(
        &self,
        context: &AuditEvent,
        verified: AuditKind,
        failed_kind: AuditKind,
    ) -> Vec<AuditEvent> {
        let failed = |reason| context.recast(failed_kind, Outcome::Failure, Some(reason));
        match *self {
            Self::Verified => vec![context.recast(verified, Outcome::Success, None)],
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

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

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::domain::InvalidValue;
use crate::domain::credentials::factor::{FactorId, TwoFactorMethod};
use crate::domain::credentials::passkey::{CeremonyState, RegisteredPasskey};
use crate::domain::customers::{CustomerId, Username};
use crate::domain::sessions::{SessionId, SessionState};

mod answers;
mod code;
mod guess;

pub use answers::{CheckedPassword, PasskeyAnswer, RecoveryAnswer, TotpAnswer};
pub use code::{CODE_LENGTH, CodeHash, CodeKey, OtpCode, PresentedCode};
pub use guess::{Admission, CodeGuess, Completion, GuessOutcome};

/// An answer to a challenge, judged by the domain. The store hands it what it stored for the
/// challenge inside the guess's transaction (where the attempt is used, a failure counted and
/// the session activated) and never decides itself whether an answer is right: a method whose
/// answers are judged otherwise (an authenticator app's code against its secret, say) is
/// another implementation, not another query.
pub trait Answer: fmt::Debug + Send + Sync {
    /// Whether this answers `challenge`.
    fn is_right(&self, challenge: &Challenge) -> bool;

    /// What a right answer uses up, so that it answers once: the store spends it by a
    /// conditional update in the guess's transaction, and an answer whose spend fails (used
    /// meanwhile, on any instance) counts as wrong.
    fn spends(&self) -> Option<Spend> {
        None
    }
}

/// Something an answer may be right only once for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// An authenticator app's time step: the customer's last accepted step must be older.
    TotpStep {
        /// Whose steps.
        customer: CustomerId,
        /// The step the code was for.
        step: i64,
    },
    /// One recovery code, marked used.
    RecoveryCode {
        /// The code's stored id.
        id: String,
    },
    /// A passkey's signature counter: the stored one must be smaller (or both zero,
    /// [`counter_advances`](crate::domain::credentials::passkey::counter_advances)); the
    /// credential is stored with the new counter.
    PasskeyCounter {
        /// The passkey's factor.
        factor: FactorId,
        /// The counter the assertion carried.
        counter: u32,
        /// The credential as it now stands.
        credential: String,
    },
    /// A passkey's credential id: registered once, to one factor, across all customers. The
    /// factor being confirmed takes the credential.
    PasskeyRegistration {
        /// The factor being confirmed.
        factor: FactorId,
        /// The credential it becomes.
        passkey: RegisteredPasskey,
    },
}

impl Spend {
    /// The method whose answer spends it.
    pub fn method(&self) -> ChallengeMethod {
        match self {
            Self::TotpStep { .. } => ChallengeMethod::Totp,
            Self::RecoveryCode { .. } => ChallengeMethod::RecoveryCode,
            Self::PasskeyCounter { .. } | Self::PasskeyRegistration { .. } => {
                ChallengeMethod::Passkey
            }
        }
    }

    /// The factor that answered, where the answer names it (any of a customer's passkeys
    /// answers their challenge).
    pub fn factor(&self) -> Option<&FactorId> {
        match self {
            Self::PasskeyCounter { factor, .. } => Some(factor),
            _ => None,
        }
    }
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

/// How a challenge is answered: a code sent by SMS or e-mail, a code from an authenticator app, a
/// recovery code, or the password (a step-up by a customer without a second factor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChallengeMethod {
    /// A code by text message.
    Sms,
    /// A code by e-mail.
    Email,
    /// A code from an authenticator app.
    Totp,
    /// One of the customer's recovery codes.
    RecoveryCode,
    /// A passkey's assertion.
    Passkey,
    /// The customer's password.
    Password,
}

impl ChallengeMethod {
    /// Every method a step-up may name, in the order documented.
    pub const ALL: [Self; 6] = [
        Self::Sms,
        Self::Email,
        Self::Totp,
        Self::Passkey,
        Self::RecoveryCode,
        Self::Password,
    ];

    /// The stable name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "SMS",
            Self::Email => "EMAIL",
            Self::Totp => "TOTP",
            Self::Passkey => "PASSKEY",
            Self::RecoveryCode => "RECOVERY_CODE",
            Self::Password => "PASSWORD",
        }
    }

    /// The method of a stored name; `None` for one this version does not know.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The factor method whose code answers it; `None` for a recovery code and the password.
    pub fn factor(self) -> Option<TwoFactorMethod> {
        match self {
            Self::Sms => Some(TwoFactorMethod::Sms),
            Self::Email => Some(TwoFactorMethod::Email),
            Self::Totp => Some(TwoFactorMethod::Totp),
            Self::Passkey => Some(TwoFactorMethod::Passkey),
            Self::RecoveryCode | Self::Password => None,
        }
    }

    /// Whether its answer is a six-digit code.
    pub fn takes_six_digits(self) -> bool {
        matches!(self, Self::Sms | Self::Email | Self::Totp)
    }
}

impl From<TwoFactorMethod> for ChallengeMethod {
    fn from(method: TwoFactorMethod) -> Self {
        match method {
            TwoFactorMethod::Sms => Self::Sms,
            TwoFactorMethod::Email => Self::Email,
            TwoFactorMethod::Totp => Self::Totp,
            TwoFactorMethod::Passkey => Self::Passkey,
        }
    }
}

/// What a right answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// Finishes the login of a session awaiting its second factor.
    Login,
    /// Makes an ACTIVE session recently authenticated.
    StepUp,
    /// Confirms a factor being added, by a code it sent or generated.
    Confirm,
    /// Confirms the first factor of a session that must enrol one, which makes it ACTIVE.
    Enrol,
    /// Proves the second factor of a session opened by a password reset (never the mailbox
    /// that received the reset code).
    Reset,
}

impl ChallengePurpose {
    /// The form stored in `challenges.purpose`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "LOGIN",
            Self::StepUp => "STEP_UP",
            Self::Confirm => "CONFIRM",
            Self::Enrol => "ENROL",
            Self::Reset => "RESET",
        }
    }

    /// The session state a challenge of this purpose is opened and answered in.
    pub fn session_state(self) -> SessionState {
        match self {
            Self::Login => SessionState::TwoFactorPending,
            Self::StepUp | Self::Confirm => SessionState::Active,
            Self::Enrol => SessionState::EnrolmentRequired,
            Self::Reset => SessionState::PasswordReset,
        }
    }
}

/// A challenge about to be stored.
#[derive(Debug)]
pub struct NewChallenge {
    /// Opaque; what the client presents with its guess.
    pub id: ChallengeId,
    /// The session this challenge is for; guesses from any other session match nothing.
    pub session_id: SessionId,
    /// The session's customer's username: its lock is checked again as the challenge opens.
    pub username: Username,
    /// What a right answer does.
    pub purpose: ChallengePurpose,
    /// How it is answered (a code by SMS or e-mail, chosen from the customer's factors; the
    /// password).
    pub method: ChallengeMethod,
    /// The factor whose code answers it (an app's secret), or which it confirms.
    pub factor_id: Option<FactorId>,
    /// Where the code goes, masked: what the customer is shown, never the full address; `None`
    /// when nothing is sent.
    pub destination: Option<String>,
    /// Never the code itself: only its hash is stored; `None` when no code is sent.
    pub code_hash: Option<CodeHash>,
    /// A passkey ceremony's state, which its answer is verified against.
    pub ceremony: Option<CeremonyState>,
    /// When the challenge opened; the resend interval counts from here.
    pub created_at: OffsetDateTime,
    /// After this the challenge is refused as expired, however many guesses remain.
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
    /// The session a right answer completes or steps up.
    pub session_id: SessionId,
    /// How it is answered.
    pub method: ChallengeMethod,
    /// The factor whose code answers it, or which it confirms.
    pub factor_id: Option<FactorId>,
    /// What a code is checked against (the code itself is never stored); `None` when no code
    /// was sent.
    pub code_hash: Option<CodeHash>,
    /// A passkey ceremony's state, which its answer is verified against.
    pub ceremony: Option<CeremonyState>,
    /// After this, guesses are refused as expired.
    pub expires_at: OffsetDateTime,
    /// Guesses checked so far, including the one being made.
    pub attempts: u32,
    /// Only an `Open` challenge accepts guesses.
    pub status: ChallengeStatus,
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

/// What a store reports when asked to open a challenge under the sending limits (and, for a
/// factor being added, under the cap on a customer's factors).
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
    /// The customer already holds [`MAX_FACTORS`](crate::domain::credentials::factor::MAX_FACTORS),
    /// counting those awaiting confirmation: no factor is added.
    FactorsFull,
}

#[cfg(test)]
mod tests;

//! The ways a step of the login flow can be refused. The HTTP layer maps each to the contract's
//! error code; nothing here carries a secret.

use time::{Duration, OffsetDateTime};

use crate::domain::InvalidValue;
use crate::domain::credentials::challenge::ChallengeMethod;
use crate::domain::credentials::password::{HashError, Rejection};
use crate::domain::ports::StoreError;

/// Why a step was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong username or password, the same answer for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Locked by repeated failures or an operator.
    #[error("account locked")]
    AccountLocked {
        /// When the lock ends; `None` for an operator's lock, which lasts until lifted.
        until: Option<OffsetDateTime>,
    },
    /// No usable session token.
    #[error("unauthenticated")]
    Unauthenticated,
    /// The session ended (expired, idle, revoked).
    #[error("session expired")]
    SessionExpired,
    /// The session still owes its second factor.
    #[error("two-factor authentication required")]
    TwoFactorRequired,
    /// The customer has no such resource (or it is another customer's, which they may not
    /// learn exists).
    #[error("not found")]
    NotFound,
    /// A second-factor step on a session that does not owe one.
    #[error("session is not awaiting two-factor authentication")]
    TwoFactorNotPending,
    /// A wrong code.
    #[error("invalid two-factor code")]
    InvalidCode {
        /// Guesses left on this challenge.
        attempts_remaining: u32,
    },
    /// The code's time ran out.
    #[error("two-factor code expired")]
    CodeExpired,
    /// The challenge's guesses are used up.
    #[error("too many two-factor attempts")]
    TooManyAttempts {
        /// How long until trying again can succeed.
        retry_after: Duration,
    },
    /// Too many requests from this client or for this username.
    #[error("rate limited")]
    RateLimited {
        /// How long until trying again can succeed.
        retry_after: Duration,
    },
    /// The call changes how the customer signs in, and the session has not proved a second
    /// factor recently enough.
    #[error("recent authentication required")]
    RecentAuthenticationRequired {
        /// What the customer can step up with.
        methods: Vec<ChallengeMethod>,
    },
    /// Two-factor is required and this session must first confirm a factor.
    #[error("two-factor enrolment required")]
    EnrolmentRequired,
    /// A session opened by a password reset may only finish it.
    #[error("password reset in progress")]
    PasswordResetInProgress,
    /// The change needs a factor the customer does not hold (recovery codes without a factor),
    /// or would take away the last one while two-factor is required.
    #[error("factor required")]
    FactorRequired,
    /// A new password breaks the policy.
    #[error("password rejected")]
    PasswordRejected {
        /// Every rule it breaks.
        reasons: Vec<Rejection>,
    },
    /// Input that does not pass its check.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The input's name in the contract.
        field: &'static str,
        /// What is wrong with it, never the value.
        problem: InvalidValue,
    },
    /// Password hashing is at capacity: retry shortly.
    #[error("overloaded")]
    Overloaded,
    /// A dependency is down (database, lock, counter): retry shortly.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A fault in the service; the detail is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => Self::Unavailable(why),
            StoreError::Conflict(what) => {
                Self::Internal(anyhow::anyhow!("unexpected conflict: {what}"))
            }
            StoreError::SessionEnded => Self::Unauthenticated,
            StoreError::Other(e) => Self::Internal(e),
        }
    }
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self::Overloaded,
            HashError::Internal(why) => Self::Internal(anyhow::anyhow!(why)),
        }
    }
}

impl From<getrandom::Error> for AuthError {
    fn from(e: getrandom::Error) -> Self {
        Self::Internal(anyhow::anyhow!("random source: {e}"))
    }
}

impl From<crate::domain::delivery::SealError> for AuthError {
    fn from(e: crate::domain::delivery::SealError) -> Self {
        Self::Internal(anyhow::anyhow!(e))
    }
}

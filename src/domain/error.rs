//! The ways a step of the login flow can be refused. The HTTP layer maps each to the contract's
//! error code; nothing here carries a secret.

use time::{Duration, OffsetDateTime};

use super::InvalidValue;
use super::password::HashError;
use super::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account locked")]
    AccountLocked { until: Option<OffsetDateTime> },
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("session expired")]
    SessionExpired,
    #[error("two-factor authentication required")]
    TwoFactorRequired,
    /// The customer has no such resource (or it is another customer's, which they may not
    /// learn exists).
    #[error("not found")]
    NotFound,
    #[error("session is not awaiting two-factor authentication")]
    TwoFactorNotPending,
    #[error("invalid two-factor code")]
    InvalidCode { attempts_remaining: u32 },
    #[error("two-factor code expired")]
    CodeExpired,
    #[error("too many two-factor attempts")]
    TooManyAttempts { retry_after: Duration },
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error("invalid {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: InvalidValue,
    },
    #[error("overloaded")]
    Overloaded,
    #[error("unavailable: {0}")]
    Unavailable(String),
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

impl From<super::delivery::SealError> for AuthError {
    fn from(e: super::delivery::SealError) -> Self {
        Self::Internal(anyhow::anyhow!(e))
    }
}

//! Answers judged before the guess's transaction, for methods whose answer is not a code the
//! service sent: the password (argon2 takes a hashing thread), an authenticator app's code (its
//! secret is unsealed first) and a recovery code (looked up by its hash). Each is the answer
//! to its own method's challenge and to no other.

use super::{Answer, Challenge, ChallengeMethod, Spend};
use crate::domain::customers::CustomerId;

/// A password, already checked against the customer's hash.
#[derive(Debug, Clone, Copy)]
pub struct CheckedPassword {
    /// Whether it was the customer's password.
    pub right: bool,
}

impl Answer for CheckedPassword {
    fn is_right(&self, challenge: &Challenge) -> bool {
        challenge.method == ChallengeMethod::Password && self.right
    }
}

/// An authenticator app's code, already compared with the app's secret: the time step it
/// matched, if any, which a right answer spends.
#[derive(Debug, Clone)]
pub struct TotpAnswer {
    /// Whose app.
    pub customer: CustomerId,
    /// The step the code matched; `None` for a wrong code.
    pub step: Option<i64>,
}

impl Answer for TotpAnswer {
    fn is_right(&self, challenge: &Challenge) -> bool {
        challenge.method == ChallengeMethod::Totp && self.step.is_some()
    }

    fn spends(&self) -> Option<Spend> {
        self.step.map(|step| Spend::TotpStep {
            customer: self.customer.clone(),
            step,
        })
    }
}

/// A recovery code, already looked up by its hash among the customer's unused ones.
#[derive(Debug, Clone)]
pub struct RecoveryAnswer {
    /// The stored code it matched; `None` for a wrong (or used) code.
    pub id: Option<String>,
}

impl Answer for RecoveryAnswer {
    fn is_right(&self, challenge: &Challenge) -> bool {
        challenge.method == ChallengeMethod::RecoveryCode && self.id.is_some()
    }

    fn spends(&self) -> Option<Spend> {
        self.id.clone().map(|id| Spend::RecoveryCode { id })
    }
}

/// A passkey's answer, already verified against the challenge's ceremony: what a right one
/// spends (the signature counter it carried, or the credential id it registers); `None` for a
/// wrong one.
#[derive(Debug, Clone)]
pub struct PasskeyAnswer {
    /// What the verified answer uses up; `None` when it was not verified.
    pub spend: Option<Spend>,
}

impl Answer for PasskeyAnswer {
    fn is_right(&self, challenge: &Challenge) -> bool {
        challenge.method == ChallengeMethod::Passkey && self.spend.is_some()
    }

    fn spends(&self) -> Option<Spend> {
        self.spend.clone()
    }
}

//! Which factor a challenge asks for, and how: a code sent to a factor the customer holds, an
//! app's code, a passkey ceremony, a recovery code or the password; and the reset's rule that
//! the mailbox that received its code never counts as the second factor too.

use super::AuthService;
use crate::domain::InvalidValue;
use crate::domain::credentials::challenge::ChallengeMethod;
use crate::domain::credentials::factor::{FactorId, FactorKind, TwoFactorMethod};
use crate::domain::credentials::passkey::Ceremony;
use crate::domain::customers::Customer;
use crate::domain::error::AuthError;
use crate::domain::ports::PasskeyCeremonies;

/// How a challenge asks to be answered: by a factor the customer holds (a code sent to it, or
/// an app's code), a recovery code, or the password.
pub(super) enum Asking {
    /// A factor: one that sends gets a fresh code; an app answers with its own. `id` is `None`
    /// only for the profile's mailbox of a customer without a factor whose login was stepped
    /// up.
    Factor {
        /// Which of the customer's factors.
        id: Option<FactorId>,
        /// Its method and where codes go.
        kind: FactorKind,
    },
    /// A passkey ceremony: an assertion by one of the customer's passkeys, or (confirming a
    /// new one) its registration. Nothing is sent; the browser gets the ceremony's options.
    Passkey {
        /// The passkey factor asked for (or being confirmed).
        id: FactorId,
        /// The ceremony's options and state.
        ceremony: Ceremony,
    },
    /// One of the customer's unused recovery codes (nothing is sent).
    RecoveryCode,
    /// The customer's password (nothing is sent).
    Password,
}

impl Asking {
    pub(super) fn method(&self) -> ChallengeMethod {
        match self {
            Self::Factor { kind, .. } => ChallengeMethod::from(kind.method()),
            Self::Passkey { .. } => ChallengeMethod::Passkey,
            Self::RecoveryCode => ChallengeMethod::RecoveryCode,
            Self::Password => ChallengeMethod::Password,
        }
    }
}

impl AuthService {
    /// How a challenge asks for `method` (the default factor when none is named): always by a
    /// factor the customer holds (or their profile's mailbox, for a customer without a factor
    /// whose login was stepped up), so that a stolen password cannot route the code to a
    /// channel the customer never chose; naming any other is refused. `factor` picks one of
    /// several factors of the method (else the default if it has the method, else the oldest).
    pub(super) async fn asking_for(
        &self,
        customer: &Customer,
        method: Option<ChallengeMethod>,
        factor: Option<&FactorId>,
    ) -> Result<Asking, AuthError> {
        let Some(default) = &customer.factor else {
            return match (method, factor) {
                (None | Some(ChallengeMethod::Email), None) => Ok(Asking::Factor {
                    id: None,
                    kind: FactorKind::Email(customer.email.clone()),
                }),
                (_, Some(_)) => Err(not_one_of_theirs()),
                (Some(_), None) => Err(not_held()),
            };
        };
        let method = method.unwrap_or_else(|| ChallengeMethod::from(default.method()));
        let Some(wanted) = method.factor() else {
            if factor.is_some() {
                return Err(not_one_of_theirs());
            }
            return match method {
                ChallengeMethod::RecoveryCode
                    if self.store.recovery_codes_remaining(&customer.id).await? > 0 =>
                {
                    Ok(Asking::RecoveryCode)
                }
                _ => Err(not_held()),
            };
        };
        if factor.is_none() && default.method() == wanted {
            return self
                .asking_by(customer, default.id.clone(), default.kind.clone())
                .await;
        }
        let held = self.store.factors(&customer.id).await?;
        let mut of_method = held.into_iter().filter(|h| h.factor.method() == wanted);
        let chosen = match factor {
            Some(id) => of_method
                .find(|h| &h.factor.id == id)
                .ok_or_else(not_one_of_theirs)?,
            None => of_method.next().ok_or_else(not_held)?,
        };
        self.asking_by(customer, chosen.factor.id, chosen.factor.kind)
            .await
    }

    /// How the customer's factor `id` is asked for: a code (sent, or from an app), or a
    /// passkey ceremony that any of the customer's passkeys may answer.
    pub(super) async fn asking_by(
        &self,
        customer: &Customer,
        id: FactorId,
        kind: FactorKind,
    ) -> Result<Asking, AuthError> {
        if kind != FactorKind::Passkey {
            return Ok(Asking::Factor { id: Some(id), kind });
        }
        let ceremonies = self.passkey_ceremonies()?;
        let passkeys = self.store.passkeys(&customer.id).await?;
        let ceremony = ceremonies.start_authentication(&passkeys)?;
        Ok(Asking::Passkey { id, ceremony })
    }

    /// The passkey ceremonies, when passkeys are on; else `PASSKEY` is refused as a method.
    pub(super) fn passkey_ceremonies(&self) -> Result<&dyn PasskeyCeremonies, AuthError> {
        self.passkeys.as_deref().ok_or(AuthError::Invalid {
            field: "method",
            problem: InvalidValue("passkeys are not available on this service"),
        })
    }

    /// How a reset's second factor is asked for: never by e-mail (the reset code's mailbox
    /// cannot count twice). Without a `method`, the default factor, or when that is EMAIL the
    /// oldest other one, else a recovery code; a customer left with nothing else cannot reset
    /// alone (`FACTOR_REQUIRED`: support resets it).
    pub(super) async fn reset_asking(
        &self,
        customer: &Customer,
        method: Option<ChallengeMethod>,
        factor: Option<&FactorId>,
    ) -> Result<Asking, AuthError> {
        match method {
            Some(ChallengeMethod::Email) => return Err(mailbox_refused()),
            Some(ChallengeMethod::Password) => return Err(not_held()),
            _ => {}
        }
        let Some(default) = &customer.factor else {
            return Err(AuthError::FactorRequired);
        };
        // A factor named alone is asked for by its own method.
        let method = match (method, factor) {
            (None, Some(id)) => Some(
                self.store
                    .factors(&customer.id)
                    .await?
                    .into_iter()
                    .find(|held| &held.factor.id == id)
                    .map(|held| ChallengeMethod::from(held.factor.method()))
                    .ok_or_else(not_one_of_theirs)?,
            ),
            (method, _) => method,
        };
        if method == Some(ChallengeMethod::Email) {
            return Err(mailbox_refused());
        }
        if method.is_some() {
            let asking = self.asking_for(customer, method, factor).await?;
            return match asking {
                Asking::Factor { kind, .. } if kind.method() == TwoFactorMethod::Email => {
                    Err(mailbox_refused())
                }
                asking => Ok(asking),
            };
        }
        if default.method() != TwoFactorMethod::Email {
            return self
                .asking_by(customer, default.id.clone(), default.kind.clone())
                .await;
        }
        let other = self
            .store
            .factors(&customer.id)
            .await?
            .into_iter()
            .find(|held| held.factor.method() != TwoFactorMethod::Email);
        if let Some(held) = other {
            return self
                .asking_by(customer, held.factor.id, held.factor.kind)
                .await;
        }
        if self.store.recovery_codes_remaining(&customer.id).await? > 0 {
            return Ok(Asking::RecoveryCode);
        }
        Err(AuthError::FactorRequired)
    }
}

/// Refuses a method the customer does not hold.
pub(super) fn not_held() -> AuthError {
    AuthError::Invalid {
        field: "method",
        problem: InvalidValue("must be the customer's own two-factor method"),
    }
}

/// Refuses a `factorId` that is not one of the customer's factors of the method.
pub(super) fn not_one_of_theirs() -> AuthError {
    AuthError::Invalid {
        field: "factorId",
        problem: InvalidValue("must be one of the customer's factors of that method"),
    }
}

/// Refuses the mailbox as a reset's second factor.
fn mailbox_refused() -> AuthError {
    AuthError::Invalid {
        field: "method",
        problem: InvalidValue(
            "must not be EMAIL: the mailbox that received the reset code cannot be the second factor",
        ),
    }
}

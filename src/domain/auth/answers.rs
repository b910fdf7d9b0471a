//! Reading an answer the way its challenge asks for it: a code sent by SMS or e-mail (compared
//! with its keyed hash in the store's transaction), an authenticator app's code (compared with
//! the app's unsealed secret here), a recovery code (looked up by its hash here), or the
//! password (checked by argon2 here, on a hashing thread). What needs the stored state to
//! judge (a guess left, the lock, a step or code not yet spent) is the store's check.

use time::OffsetDateTime;

use super::AuthService;
use crate::domain::credentials::challenge::{
    Answer, Challenge, ChallengeMethod, CheckedPassword, OtpCode, RecoveryAnswer, TotpAnswer,
};
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::password::Password;
use crate::domain::credentials::recovery::RecoveryCode;
use crate::domain::customers::Customer;
use crate::domain::delivery::message::{AccountChange, Message};
use crate::domain::error::AuthError;

/// An answer as the client sent it, before its challenge says how to read it.
#[derive(Debug)]
pub enum Presented {
    /// A code: six digits (sent, or from an app) or a recovery code.
    Code(String),
    /// The password (a step-up by a customer without a second factor).
    Password(Password),
}

/// An answer read and judged as far as it can be outside the store's transaction.
pub(super) struct Judged {
    /// What the store's check takes.
    pub(super) answer: Box<dyn Answer>,
    /// The method of the challenge it answers (for the audit trail); `None` for no challenge.
    pub(super) method: Option<ChallengeMethod>,
    /// The error of a wrong answer, from the guesses left.
    pub(super) wrong: fn(u32) -> AuthError,
    /// Queued with a right answer (a recovery code's notice).
    pub(super) notices: Vec<Message>,
}

fn wrong_code(attempts_remaining: u32) -> AuthError {
    AuthError::InvalidCode { attempts_remaining }
}

impl AuthService {
    /// Reads `presented` as `challenge` asks. A malformed answer is refused before any guess is
    /// used (`VALIDATION_ERROR` on `code`); an answer of the wrong kind (a password for a code,
    /// a code for the password) is a wrong answer like any other. No challenge (an unknown id):
    /// an answer that is never right, so that the store's check refuses it as unknown and it is
    /// audited with the other refusals.
    pub(super) async fn read_answer(
        &self,
        customer: &Customer,
        challenge: Option<&Challenge>,
        presented: Presented,
        now: OffsetDateTime,
    ) -> Result<Judged, AuthError> {
        let Some(challenge) = challenge else {
            return Ok(Judged {
                answer: Box::new(CheckedPassword { right: false }),
                method: None,
                wrong: wrong_code,
                notices: Vec::new(),
            });
        };
        let method = challenge.method;
        let judged = |answer: Box<dyn Answer>| Judged {
            answer,
            method: Some(method),
            wrong: wrong_code,
            notices: Vec::new(),
        };
        match (method, presented) {
            (ChallengeMethod::Sms | ChallengeMethod::Email, Presented::Code(raw)) => {
                let code = six_digits(&raw)?;
                Ok(judged(Box::new(
                    self.policies.codes.presented(&code, &challenge.id),
                )))
            }
            (ChallengeMethod::Totp, Presented::Code(raw)) => {
                let code = six_digits(&raw)?;
                let step = match &challenge.factor_id {
                    Some(factor) => self.totp_step(factor, &code, now).await?,
                    None => None,
                };
                Ok(judged(Box::new(TotpAnswer {
                    customer: customer.id.clone(),
                    step,
                })))
            }
            (ChallengeMethod::RecoveryCode, Presented::Code(raw)) => {
                let code = RecoveryCode::parse(&raw).map_err(|e| AuthError::Invalid {
                    field: "code",
                    problem: e,
                })?;
                let hash = self.policies.recovery.hash(&customer.id, &code);
                let id = self.store.unused_recovery_code(&customer.id, &hash).await?;
                let mut notices = Vec::new();
                if id.is_some() {
                    let remaining = self
                        .store
                        .recovery_codes_remaining(&customer.id)
                        .await?
                        .saturating_sub(1);
                    let factors = self.store.factors(&customer.id).await?;
                    notices = Message::account_notices(
                        customer,
                        factors.iter().map(|h| &h.factor),
                        AccountChange::RecoveryCodeUsed { remaining },
                        now,
                    );
                }
                Ok(Judged {
                    notices,
                    ..judged(Box::new(RecoveryAnswer { id }))
                })
            }
            (_, Presented::Password(password)) => {
                // Checked whatever the challenge, so a password sent to a code's challenge takes
                // as long as one sent to the password's; the check's method test refuses it.
                let verification = self
                    .hasher
                    .verify(&password, Some(&customer.password_hash))
                    .await?;
                Ok(Judged {
                    wrong: |_| AuthError::InvalidCredentials,
                    ..judged(Box::new(CheckedPassword {
                        right: verification.matches,
                    }))
                })
            }
            (ChallengeMethod::Password, Presented::Code(raw)) => {
                // A code never answers the password: a wrong answer.
                let code = six_digits(&raw)?;
                Ok(judged(Box::new(
                    self.policies.codes.presented(&code, &challenge.id),
                )))
            }
        }
    }

    /// The time step an app's code matched, judged against the secret of `factor`; `None` (a
    /// wrong code) when the factor is gone, apps are off, or its secret does not open.
    pub(super) async fn totp_step(
        &self,
        factor: &FactorId,
        code: &OtpCode,
        now: OffsetDateTime,
    ) -> Result<Option<i64>, AuthError> {
        let Some(seal) = &self.policies.totp else {
            return Ok(None);
        };
        let Some(sealed) = self.store.totp_secret(factor).await? else {
            return Ok(None);
        };
        match seal.open(&sealed, factor) {
            Ok(secret) => Ok(secret.matching_step(code, now)),
            Err(e) => {
                tracing::error!(factor = factor.as_str(), error = %e, "an authenticator app's secret does not open");
                Ok(None)
            }
        }
    }
}

fn six_digits(raw: &str) -> Result<OtpCode, AuthError> {
    OtpCode::parse(raw).map_err(|e| AuthError::Invalid {
        field: "code",
        problem: e,
    })
}

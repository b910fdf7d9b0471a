//! Reading an answer the way its challenge asks for it: a code sent by SMS or e-mail (compared
//! with its keyed hash in the store's transaction), an authenticator app's code (compared with
//! the app's unsealed secret here), a recovery code (looked up by its hash here), or the
//! password (checked by argon2 here, on a hashing thread). What needs the stored state to
//! judge (a guess left, the lock, a step or code not yet spent) is the store's check.

use time::OffsetDateTime;

use super::AuthService;
use crate::domain::InvalidValue;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::challenge::{
    Answer, Challenge, ChallengeMethod, CheckedPassword, OtpCode, PasskeyAnswer, RecoveryAnswer,
    Spend, TotpAnswer,
};
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::passkey::{self, CeremonyState, PasskeyRejected, StoredPasskey};
use crate::domain::credentials::password::Password;
use crate::domain::credentials::recovery::RecoveryCode;
use crate::domain::credentials::totp::{TotpSeal, TotpSecret};
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
    /// A passkey's answer: the browser's `AuthenticationResponseJSON` (or, confirming a new
    /// passkey, its `RegistrationResponseJSON`).
    Credential(serde_json::Value),
}

/// What came of verifying a passkey's assertion.
pub(super) enum Assertion {
    /// Verified: a right answer, once its counter is spent.
    Verified(Spend),
    /// Not verified: another ceremony or origin, a bad signature, an unknown credential.
    Wrong,
    /// A right signature by this passkey whose counter did not advance (audited by the
    /// caller).
    CounterRegressed(FactorId),
}

/// An answer read and judged as far as it can be outside the store's transaction.
pub(super) struct Judged {
    /// What the store's check takes.
    pub(super) answer: Box<dyn Answer>,
    /// The method of the challenge it answers (for the audit trail); `None` for no challenge.
    pub(super) method: Option<ChallengeMethod>,
    /// The error of a wrong answer, from the guesses left.
    pub(super) wrong: fn(u32) -> AuthError,
    /// What a right answer tells the customer. Its notices are prepared only once the store
    /// admits the guess: reads that only a right answer made would tell it from a wrong one.
    pub(super) tells: Tells,
    /// The passkey whose signature counter went back, for the audit trail.
    pub(super) regressed: Option<FactorId>,
    /// Right against its challenge as read, with nothing to spend. A challenge's code never
    /// changes, so the store's check finds it right too, or refuses it (closed, expired, out
    /// of guesses, locked) without counting a failure: it cannot lock the username.
    pub(super) right_as_read: bool,
}

/// What a right answer tells the customer, once its guess is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tells {
    Nothing,
    /// A recovery code was used (with how many are left, counted then).
    RecoveryCodeUsed,
    /// This change.
    Change(AccountChange),
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
                tells: Tells::Nothing,
                regressed: None,
                right_as_read: false,
            });
        };
        let mut judged = self
            .read_as_asked(customer, challenge, presented, now)
            .await?;
        judged.right_as_read =
            judged.answer.is_right(challenge) && judged.answer.spends().is_none();
        Ok(judged)
    }

    /// Reads `presented` as `challenge` asks (see [`AuthService::read_answer`]).
    async fn read_as_asked(
        &self,
        customer: &Customer,
        challenge: &Challenge,
        presented: Presented,
        now: OffsetDateTime,
    ) -> Result<Judged, AuthError> {
        let method = challenge.method;
        let judged = |answer: Box<dyn Answer>| Judged {
            answer,
            method: Some(method),
            wrong: wrong_code,
            tells: Tells::Nothing,
            regressed: None,
            right_as_read: false,
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
                // Every form at once: a right code takes the same read as a wrong one.
                let hashes = self.policies.recovery.hashes(&customer.id, &code);
                let id = self
                    .store
                    .unused_recovery_code(&customer.id, &hashes)
                    .await?;
                Ok(Judged {
                    tells: match id {
                        Some(_) => Tells::RecoveryCodeUsed,
                        None => Tells::Nothing,
                    },
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
            (ChallengeMethod::Passkey, Presented::Credential(response)) => {
                // A regression is audited only with the wrong answer it makes (`wrong_events`):
                // an assertion replayed to a spent challenge is refused as closed, no alarm.
                let passkeys = self.store.passkeys(&customer.id).await?;
                let state = challenge.ceremony.as_ref();
                let (spend, regressed) = match self.verify_assertion(state, &response, &passkeys)? {
                    Assertion::Verified(spend) => (Some(spend), None),
                    Assertion::Wrong => (None, None),
                    Assertion::CounterRegressed(factor) => (None, Some(factor)),
                };
                Ok(Judged {
                    regressed,
                    ..judged(Box::new(PasskeyAnswer { spend }))
                })
            }
            // A code for a passkey, a credential for a code: a wrong answer.
            (ChallengeMethod::Passkey, Presented::Code(_)) | (_, Presented::Credential(_)) => {
                Ok(judged(Box::new(PasskeyAnswer { spend: None })))
            }
        }
    }

    /// The notices of what a right answer `tells` (read now: only for an admitted guess).
    pub(super) async fn notices_told(
        &self,
        customer: &Customer,
        tells: Tells,
        now: OffsetDateTime,
    ) -> Result<Vec<Message>, AuthError> {
        let change = match tells {
            Tells::Nothing => return Ok(Vec::new()),
            Tells::RecoveryCodeUsed => AccountChange::RecoveryCodeUsed {
                remaining: self
                    .store
                    .recovery_codes_remaining(&customer.id)
                    .await?
                    .saturating_sub(1),
            },
            Tells::Change(change) => change,
        };
        self.notices_of(customer, change, now).await
    }

    /// Verifies a passkey's assertion against a ceremony's `state`, by whichever of
    /// `passkeys` it names. Malformed JSON is refused (`VALIDATION_ERROR` on `credential`)
    /// before any guess is used.
    pub(super) fn verify_assertion(
        &self,
        state: Option<&CeremonyState>,
        response: &serde_json::Value,
        passkeys: &[StoredPasskey],
    ) -> Result<Assertion, AuthError> {
        let (Some(ceremonies), Some(state)) = (self.passkeys.as_deref(), state) else {
            return Ok(Assertion::Wrong);
        };
        let (credential_id, _) = ceremonies
            .credential_named(response)
            .map_err(malformed_credential)?;
        let Some(passkey) = passkeys.iter().find(|p| p.credential_id == credential_id) else {
            return Ok(Assertion::Wrong);
        };
        match ceremonies.finish_authentication(response, state, passkey) {
            Ok(verified) if passkey::counter_advances(passkey.counter, verified.counter) => {
                Ok(Assertion::Verified(Spend::PasskeyCounter {
                    factor: passkey.factor.clone(),
                    counter: verified.counter,
                    credential: verified.credential,
                }))
            }
            Ok(_) | Err(PasskeyRejected::CounterRegressed) => {
                Ok(Assertion::CounterRegressed(passkey.factor.clone()))
            }
            Err(PasskeyRejected::Malformed(e)) => {
                Err(malformed_credential(PasskeyRejected::Malformed(e)))
            }
            Err(PasskeyRejected::Invalid(reason)) => {
                tracing::debug!(%reason, "a passkey assertion was not accepted");
                Ok(Assertion::Wrong)
            }
        }
    }
}

/// The event of a passkey whose signature counter went back (perhaps a cloned
/// authenticator), built on `context` (who, from where).
pub(super) fn counter_regressed(context: &AuditEvent, factor: &FactorId) -> AuditEvent {
    metrics::counter!("finhub_passkey_counter_regressions_total").increment(1);
    context
        .recast(
            AuditKind::PasskeyCounterRegressed,
            Outcome::Failure,
            Some("counter_regressed"),
        )
        .detail("factorId", factor.as_str())
}

impl AuthService {
    /// Reads a new passkey's registration against its confirmation challenge: a right one
    /// registers the credential to the factor (once, whoever would hold it).
    pub(super) fn read_registration(
        &self,
        challenge: &Challenge,
        presented: Presented,
    ) -> Result<Judged, AuthError> {
        let spend = match (presented, self.passkeys.as_deref(), &challenge.ceremony) {
            (Presented::Credential(response), Some(ceremonies), Some(state)) => {
                match ceremonies.finish_registration(&response, state) {
                    Ok(passkey) => challenge
                        .factor_id
                        .clone()
                        .map(|factor| Spend::PasskeyRegistration { factor, passkey }),
                    Err(PasskeyRejected::Malformed(e)) => {
                        return Err(malformed_credential(PasskeyRejected::Malformed(e)));
                    }
                    Err(e) => {
                        tracing::debug!(reason = %e, "a passkey registration was not accepted");
                        None
                    }
                }
            }
            (Presented::Code(raw), _, _) => {
                six_digits(&raw)?;
                None
            }
            _ => None,
        };
        Ok(Judged {
            answer: Box::new(PasskeyAnswer { spend }),
            method: Some(challenge.method),
            wrong: wrong_code,
            tells: Tells::Nothing,
            regressed: None,
            right_as_read: false,
        })
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
        match seal.open_noting_key(&sealed, factor) {
            Ok((secret, under_previous_key)) => {
                if under_previous_key {
                    self.reseal(seal, &secret, factor, &sealed).await;
                }
                Ok(secret.matching_step(code, now))
            }
            Err(e) => {
                tracing::error!(factor = factor.as_str(), error = %e, "an authenticator app's secret does not open");
                Ok(None)
            }
        }
    }
}

impl AuthService {
    /// Seals an app's secret, opened under a previous audit key, again under the current one,
    /// so that the previous key can be retired. A failure only leaves it for the next code.
    async fn reseal(&self, seal: &TotpSeal, secret: &TotpSecret, factor: &FactorId, before: &[u8]) {
        let resealed = match seal.seal(secret, factor) {
            Ok(now) => self.store.reseal_totp_secret(factor, before, &now).await,
            Err(e) => {
                tracing::warn!(factor = factor.as_str(), error = %e, "an authenticator app's secret could not be sealed again");
                return;
            }
        };
        if let Err(e) = resealed {
            tracing::warn!(factor = factor.as_str(), error = %e, "an authenticator app's secret sealed under a previous key was not stored again");
        }
    }
}

pub(super) fn malformed_credential(e: PasskeyRejected) -> AuthError {
    tracing::debug!(reason = %e, "a malformed passkey credential");
    AuthError::Invalid {
        field: "credential",
        problem: InvalidValue("must be the credential a browser's WebAuthn call gives, as JSON"),
    }
}

fn six_digits(raw: &str) -> Result<OtpCode, AuthError> {
    OtpCode::parse(raw).map_err(|e| AuthError::Invalid {
        field: "code",
        problem: e,
    })
}

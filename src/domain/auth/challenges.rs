//! What logins and step-ups share: opening a challenge (sending its code, if it has one) under
//! the sending limits, and checking an answer under the username's lock.

use time::OffsetDateTime;

use super::{AuthService, ChallengeIssued, count_outcome, session_event};
use crate::domain::InvalidValue;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::challenge::{
    Answer, ChallengeId, ChallengeMethod, ChallengePurpose, CodeGuess, Completion, GuessOutcome,
    NewChallenge, OtpCode, SendOutcome,
};
use crate::domain::credentials::factor::{FactorKind, TwoFactorMethod};
use crate::domain::customers::Customer;
use crate::domain::delivery::SealedFor;
use crate::domain::delivery::message::Message;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::Session;

const VERIFY_METRIC: &str = "finhub_2fa_verifications_total";
const SEND_METRIC: &str = "finhub_2fa_codes_sent_total";

/// How a challenge asks to be answered: a code sent to a factor the customer holds, or the
/// password.
pub(super) enum Asking {
    /// A fresh code to this factor.
    Code(FactorKind),
    /// The customer's password (nothing is sent).
    Password,
}

impl AuthService {
    /// Opens a challenge of `purpose` for `session`, replacing any open one: sends its code (if
    /// it has one) within the limits on how often and how many times codes are sent.
    pub(super) async fn open(
        &self,
        session: &Session,
        customer: &Customer,
        purpose: ChallengePurpose,
        asking: Asking,
        client: &ClientContext,
    ) -> Result<ChallengeIssued, AuthError> {
        let now = self.clock.now();
        self.refuse_if_locked(customer, now).await?;
        let policy = self.policies.two_factor;
        let id = ChallengeId::generate();
        let (method, code) = match &asking {
            Asking::Code(factor) => (
                ChallengeMethod::from(factor.method()),
                Some(OtpCode::generate()?),
            ),
            Asking::Password => (ChallengeMethod::Password, None),
        };
        let challenge = NewChallenge {
            code_hash: code
                .as_ref()
                .map(|code| self.policies.codes.hash(code, &id)),
            id,
            session_id: session.id.clone(),
            username: customer.username.clone(),
            purpose,
            method,
            destination: match &asking {
                Asking::Code(factor) => factor.destination(),
                Asking::Password => None,
            },
            created_at: now,
            expires_at: now + policy.code_ttl,
        };
        let kind = match purpose {
            ChallengePurpose::Login => AuditKind::TwoFactorInitiated,
            ChallengePurpose::StepUp => AuditKind::StepUpInitiated,
        };
        let event = session_event(kind, Outcome::Success, now, customer, &session.id, client)
            .detail("method", method.as_str())
            .detail("challengeId", challenge.id.as_str());
        let message = match (&asking, &code) {
            (Asking::Code(factor), Some(code)) => {
                Some(self.code_message(&challenge, factor, customer, code)?)
            }
            _ => None,
        };
        let opened = self
            .store
            .open_challenge(&challenge, &policy, message.as_ref(), &event)
            .await?;
        refuse_unopened(opened, session, now)?;
        if let Some(message) = &message {
            self.courier.queued(message);
        }
        let sent = message.is_some();
        Ok(ChallengeIssued {
            challenge_id: challenge.id,
            method,
            destination: challenge.destination,
            expires_at: challenge.expires_at,
            resend_available_at: sent.then(|| now + policy.resend_interval),
        })
    }

    /// The message carrying `code` to `factor`, sealed for this challenge, channel and address.
    fn code_message(
        &self,
        challenge: &NewChallenge,
        factor: &FactorKind,
        customer: &Customer,
        code: &OtpCode,
    ) -> Result<Message, AuthError> {
        let address = factor.address().ok_or_else(not_held)?;
        let sealed_for = SealedFor {
            challenge: &challenge.id,
            channel: factor.method(),
            address,
        };
        Ok(Message::code(
            challenge,
            factor.method(),
            &customer.id,
            address.to_owned(),
            self.courier.seal().seal(code, &sealed_for)?,
        ))
    }

    /// Checks an answer. The store checks it in one transaction with the username's lock, the
    /// challenge's remaining guesses and the failure count, so concurrent guesses (over any
    /// number of sessions and instances) never get more answers checked than the limits allow;
    /// a right one does what `completion` says. Returns the outcome when it verified, the error
    /// to answer otherwise (`wrong` builds the error of a wrong answer from the guesses left).
    #[expect(clippy::too_many_arguments, reason = "one guess, spelled out")]
    pub(super) async fn check(
        &self,
        session: &Session,
        customer: &Customer,
        challenge_id: &ChallengeId,
        answer: Box<dyn Answer>,
        completion: Completion,
        client: &ClientContext,
        wrong: fn(u32) -> AuthError,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let purpose = completion.purpose();
        let guess = CodeGuess {
            session_id: session.id.clone(),
            challenge_id: challenge_id.clone(),
            username: customer.username.clone(),
            answer,
            max_attempts: self.policies.two_factor.max_attempts,
            completion,
        };
        let failed = match purpose {
            ChallengePurpose::Login => AuditKind::TwoFactorFailed,
            ChallengePurpose::StepUp => AuditKind::StepUpFailed,
        };
        let context: AuditEvent =
            session_event(failed, Outcome::Failure, now, customer, &session.id, client)
                .detail("challengeId", challenge_id.as_str());
        let outcome = self
            .store
            .check_code(&guess, &self.policies.lockout, &context)
            .await?;
        count_outcome(VERIFY_METRIC, outcome_label(outcome));
        if !outcome.was_checked() {
            // Refused on the stored state alone: nothing changed, so nothing was written, and
            // a flood of such guesses is audited in aggregate.
            for event in outcome.audit_events(&context, purpose) {
                self.refusals.count_event(&event);
            }
        }
        match outcome {
            GuessOutcome::Verified => Ok(()),
            GuessOutcome::Wrong { attempts, .. } => Err(wrong(
                self.policies
                    .two_factor
                    .max_attempts
                    .saturating_sub(attempts),
            )),
            other => Err(self.refusal(other)),
        }
    }

    /// The error a guess that did not verify is answered with.
    fn refusal(&self, outcome: GuessOutcome) -> AuthError {
        match outcome {
            GuessOutcome::Wrong { attempts, .. } => AuthError::InvalidCode {
                attempts_remaining: self
                    .policies
                    .two_factor
                    .max_attempts
                    .saturating_sub(attempts),
            },
            GuessOutcome::Locked { until } => AuthError::AccountLocked { until },
            // A new code can be asked for once the resend interval allows.
            GuessOutcome::Exhausted => AuthError::TooManyAttempts {
                retry_after: self.policies.two_factor.resend_interval,
            },
            GuessOutcome::Verified | GuessOutcome::Expired | GuessOutcome::Closed => {
                AuthError::CodeExpired
            }
            GuessOutcome::Unknown => AuthError::Invalid {
                field: "challengeId",
                problem: InvalidValue("is not an open challenge of this session"),
            },
            GuessOutcome::SessionMoved { revoked } => moved(revoked),
        }
    }

    /// The factor a code goes by: always one the customer holds (their default unless they
    /// name another method; their profile's mailbox for a customer without two-factor whose
    /// login was stepped up), so that a stolen password cannot route the code to a channel the
    /// customer never chose; naming any other is refused.
    pub(super) async fn factor_for(
        &self,
        customer: &Customer,
        asked: Option<TwoFactorMethod>,
    ) -> Result<FactorKind, AuthError> {
        let Some(default) = &customer.factor else {
            return match asked {
                None | Some(TwoFactorMethod::Email) => {
                    Ok(FactorKind::Email(customer.email.clone()))
                }
                Some(_) => Err(not_held()),
            };
        };
        match asked {
            None => Ok(default.kind.clone()),
            Some(method) if method == default.method() => Ok(default.kind.clone()),
            Some(method) => self
                .store
                .factors(&customer.id)
                .await?
                .into_iter()
                .find(|f| f.method() == method)
                .map(|f| f.kind)
                .ok_or_else(not_held),
        }
    }

    pub(super) async fn refuse_if_locked(
        &self,
        customer: &Customer,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let record = self.store.lockout(&customer.username).await?;
        match record.lock_at(now) {
            Some(lock) => Err(AuthError::AccountLocked {
                until: lock.until(),
            }),
            None => Ok(()),
        }
    }
}

fn outcome_label(outcome: GuessOutcome) -> &'static str {
    match outcome {
        GuessOutcome::Verified => "success",
        GuessOutcome::Wrong { .. } => "invalid_code",
        GuessOutcome::Locked { .. } => "account_locked",
        GuessOutcome::Exhausted => "too_many_attempts",
        GuessOutcome::Expired | GuessOutcome::Closed => "code_expired",
        GuessOutcome::Unknown => "unknown_challenge",
        GuessOutcome::SessionMoved { .. } => "not_pending",
    }
}

/// A session that stopped awaiting 2FA while the request ran: ended, or verified meanwhile.
pub(super) fn moved(revoked: bool) -> AuthError {
    if revoked {
        AuthError::Unauthenticated
    } else {
        AuthError::TwoFactorNotPending
    }
}

/// Refuses a method the customer does not hold.
pub(super) fn not_held() -> AuthError {
    AuthError::Invalid {
        field: "method",
        problem: InvalidValue("must be the customer's own two-factor method"),
    }
}

/// Why no challenge was opened, as the error the caller gets.
fn refuse_unopened(
    outcome: SendOutcome,
    session: &Session,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    let retry_after = match outcome {
        SendOutcome::Opened => return Ok(()),
        SendOutcome::SessionMoved { revoked } => return Err(moved(revoked)),
        SendOutcome::Locked { until } => {
            count_outcome(SEND_METRIC, "account_locked");
            return Err(AuthError::AccountLocked { until });
        }
        SendOutcome::TooSoon { retry_at } => {
            count_outcome(SEND_METRIC, "too_soon");
            retry_at - now
        }
        SendOutcome::LimitReached => {
            count_outcome(SEND_METRIC, "limit_reached");
            session.expires_at - now
        }
        SendOutcome::CustomerBudgetSpent { retry_at } => {
            count_outcome(SEND_METRIC, "customer_budget_spent");
            retry_at - now
        }
    };
    Err(AuthError::TooManyAttempts { retry_after })
}

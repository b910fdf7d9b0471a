//! What logins and step-ups share: opening a challenge (sending its code, if it has one) under
//! the sending limits, and checking an answer under the username's lock.

use time::OffsetDateTime;

use super::answers::{Judged, counter_regressed};
use super::asking::{Asking, not_held};
use super::{AuthService, ChallengeIssued, count_outcome, session_event};
use crate::domain::InvalidValue;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::challenge::{
    Admission, ChallengeId, ChallengePurpose, CodeGuess, Completion, GuessOutcome, NewChallenge,
    OtpCode, SendOutcome,
};
use crate::domain::credentials::factor::{FACTORS_FULL, FactorKind};
use crate::domain::credentials::passkey::Ceremony;
use crate::domain::customers::Customer;
use crate::domain::delivery::SealedFor;
use crate::domain::delivery::message::Message;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::{Session, SessionState};

const VERIFY_METRIC: &str = "finhub_2fa_verifications_total";
const SEND_METRIC: &str = "finhub_2fa_codes_sent_total";

/// A challenge ready to store, with the message that carries its code, if one is sent.
pub(super) struct Prepared {
    pub(super) challenge: NewChallenge,
    pub(super) message: Option<Message>,
    /// A passkey ceremony's options, for the browser.
    pub(super) public_key: Option<serde_json::Value>,
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
        // A lock refuses the code where the challenge is opened, under the username's lock
        // (`SendOutcome::Locked`): a read here as well would cost every code a statement to
        // spare a locked username a transaction that writes nothing.
        let prepared = self.prepare(session, customer, purpose, asking, now)?;
        let kind = match purpose {
            ChallengePurpose::Login | ChallengePurpose::Reset => AuditKind::TwoFactorInitiated,
            ChallengePurpose::StepUp | ChallengePurpose::Confirm | ChallengePurpose::Enrol => {
                AuditKind::StepUpInitiated
            }
        };
        let event = self.opening_event(kind, session, customer, &prepared.challenge, client);
        let opened = self
            .store
            .open_challenge(
                &prepared.challenge,
                &self.policies.two_factor,
                prepared.message.as_ref(),
                &event,
            )
            .await?;
        self.opened(opened, session, prepared, now)
    }

    /// The audit event of opening `challenge`.
    pub(super) fn opening_event(
        &self,
        kind: AuditKind,
        session: &Session,
        customer: &Customer,
        challenge: &NewChallenge,
        client: &ClientContext,
    ) -> AuditEvent {
        session_event(
            kind,
            Outcome::Success,
            challenge.created_at,
            customer,
            &session.id,
            client,
        )
        .detail("method", challenge.method.as_str())
        .detail("challengeId", challenge.id.as_str())
    }

    /// The challenge `asking` opens, and the message with its fresh code if it sends one.
    pub(super) fn prepare(
        &self,
        session: &Session,
        customer: &Customer,
        purpose: ChallengePurpose,
        asking: Asking,
        now: OffsetDateTime,
    ) -> Result<Prepared, AuthError> {
        let id = ChallengeId::generate();
        let method = asking.method();
        let mut ceremony = None;
        let (factor_id, sends) = match asking {
            Asking::Factor { id, kind } => {
                let sends = kind.address().is_some().then_some(kind);
                (id, sends)
            }
            Asking::Passkey { id, ceremony: c } => {
                ceremony = Some(c);
                (Some(id), None)
            }
            Asking::RecoveryCode | Asking::Password => (None, None),
        };
        let (public_key, ceremony) = match ceremony {
            Some(Ceremony { options, state }) => (Some(options), Some(state)),
            None => (None, None),
        };
        let code = sends.as_ref().map(|_| OtpCode::generate()).transpose()?;
        let challenge = NewChallenge {
            code_hash: code
                .as_ref()
                .map(|code| self.policies.codes.hash(code, &id)),
            ceremony,
            id,
            session_id: session.id.clone(),
            username: customer.username.clone(),
            purpose,
            method,
            factor_id,
            destination: sends.as_ref().and_then(FactorKind::destination),
            created_at: now,
            expires_at: now + self.policies.two_factor.code_ttl,
        };
        let message = match (&sends, &code) {
            (Some(factor), Some(code)) => {
                Some(self.code_message(&challenge, factor, customer, code)?)
            }
            _ => None,
        };
        Ok(Prepared {
            challenge,
            message,
            public_key,
        })
    }

    /// What the client is told of a challenge the store was asked to open.
    pub(super) fn opened(
        &self,
        outcome: SendOutcome,
        session: &Session,
        prepared: Prepared,
        now: OffsetDateTime,
    ) -> Result<ChallengeIssued, AuthError> {
        refuse_unopened(outcome, session, now)?;
        if let Some(message) = &prepared.message {
            self.courier.queued(message);
        }
        let sent = prepared.message.is_some();
        let challenge = prepared.challenge;
        Ok(ChallengeIssued {
            challenge_id: challenge.id,
            method: challenge.method,
            destination: challenge.destination,
            expires_at: challenge.expires_at,
            resend_available_at: sent.then(|| now + self.policies.two_factor.resend_interval),
            public_key: prepared.public_key,
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
            subject: challenge.id.as_str(),
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
    /// a right one does what `completion` says and queues the answer's notices.
    pub(super) async fn check(
        &self,
        session: &Session,
        customer: &Customer,
        challenge_id: &ChallengeId,
        judged: Judged,
        completion: Completion,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let now = completion.at();
        let purpose = completion.purpose();
        // Confirmation codes do not count toward the lock; nor can an answer right as read.
        let may_lock = !judged.right_as_read
            && matches!(
                purpose,
                ChallengePurpose::Login | ChallengePurpose::StepUp | ChallengePurpose::Reset
            );
        let failed = match purpose {
            ChallengePurpose::Login | ChallengePurpose::Reset => AuditKind::TwoFactorFailed,
            ChallengePurpose::StepUp => AuditKind::StepUpFailed,
            ChallengePurpose::Confirm | ChallengePurpose::Enrol => AuditKind::FactorConfirmFailed,
        };
        let context: AuditEvent =
            session_event(failed, Outcome::Failure, now, customer, &session.id, client)
                .detail("challengeId", challenge_id.as_str());
        let context = match judged.method {
            Some(method) => context.detail("method", method.as_str()),
            None => context,
        };
        let mut guess = CodeGuess {
            session_id: session.id.clone(),
            challenge_id: challenge_id.clone(),
            username: customer.username.clone(),
            customer_id: customer.id.clone(),
            answer: judged.answer,
            max_attempts: self.policies.two_factor.max_attempts,
            completion,
            limit: self.policies.session.limit(),
            notices: Vec::new(),
            lock_notices: Vec::new(),
            wrong_events: Vec::new(),
        };
        // Every guess the stored state refuses, right or wrong, takes this same read and no
        // more: neither its time nor its answer tells whether it was right. What only an
        // admitted guess needs is read, or counted, after it.
        let outcome = match self.store.admit_guess(&guess, now).await? {
            Admission::Refused(outcome) => outcome,
            Admission::Admitted(record) => {
                guess.notices = self.notices_told(customer, judged.tells, now).await?;
                // A replayed assertion refused above is no sign of a cloned passkey.
                guess.wrong_events = judged
                    .regressed
                    .iter()
                    .map(|factor| counter_regressed(&context, factor))
                    .collect();
                if may_lock {
                    guess.lock_notices = self.lock_notices(customer, &record, now).await?;
                }
                self.store
                    .check_code(&guess, &self.policies.lockout, &context)
                    .await?
            }
        };
        count_outcome(VERIFY_METRIC, outcome_label(outcome));
        if !outcome.was_checked() {
            // Refused on the stored state alone: nothing changed, so nothing was written, and
            // a flood of such guesses is audited in aggregate.
            for event in outcome.audit_events(&context, purpose) {
                self.refusals.count_event(&event);
            }
        }
        match outcome {
            GuessOutcome::Verified => {
                for notice in &guess.notices {
                    self.courier.queued(notice);
                }
                Ok(())
            }
            GuessOutcome::Wrong {
                attempts,
                locked: Some(_),
            } => {
                for notice in &guess.lock_notices {
                    self.courier.queued(notice);
                }
                Err((judged.wrong)(
                    self.policies
                        .two_factor
                        .max_attempts
                        .saturating_sub(attempts),
                ))
            }
            GuessOutcome::Wrong { attempts, .. } => Err((judged.wrong)(
                self.policies
                    .two_factor
                    .max_attempts
                    .saturating_sub(attempts),
            )),
            other => Err(self.refusal(other)),
        }
    }

    /// The error a guess that did not verify is answered with.
    pub(super) fn refusal(&self, outcome: GuessOutcome) -> AuthError {
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

    /// Refuses a step of a signed-in customer while a lock holds their username.
    pub(super) async fn refuse_if_locked(
        &self,
        customer: &Customer,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let record = self.store.lockout(&customer.username).await?;
        match record.lock_in(SessionState::Active, now) {
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
        SendOutcome::FactorsFull => {
            return Err(AuthError::Invalid {
                field: "method",
                problem: FACTORS_FULL,
            });
        }
    };
    Err(AuthError::TooManyAttempts { retry_after })
}

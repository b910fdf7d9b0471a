//! Two-factor: sending a code to a pending session and checking it.

use super::{AuthService, ChallengeIssued, IssuedSession, count_outcome, session_event};
use crate::domain::InvalidValue;
use crate::domain::audit::{AuditKind, Outcome};
use crate::domain::credentials::challenge::{
    ChallengeId, CodeGuess, GuessOutcome, NewChallenge, OtpCode, SendOutcome,
};
use crate::domain::credentials::factor::FactorKind;
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::customers::Customer;
use crate::domain::delivery::SealedFor;
use crate::domain::delivery::message::{DeliveryState, Message};
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::token::TokenPair;
use crate::domain::sessions::{Rotation, Session, SessionState};

const VERIFY_METRIC: &str = "finhub_2fa_verifications_total";
const SEND_METRIC: &str = "finhub_2fa_codes_sent_total";

impl AuthService {
    /// Sends a fresh code for a pending session, replacing any earlier one, within the limits on
    /// how often and how many times codes are sent.
    pub async fn initiate_two_factor(
        &self,
        session: &Session,
        method: Option<TwoFactorMethod>,
        client: &ClientContext,
    ) -> Result<ChallengeIssued, AuthError> {
        Self::require_pending(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        let now = self.clock.now();
        self.refuse_if_locked(&customer, now).await?;

        let factor = self.factor_for(&customer, method).await?;
        let (method, destination, address) = match (factor.destination(), factor.address()) {
            (Some(destination), Some(address)) => {
                (factor.method(), destination, address.to_owned())
            }
            // Every method so far sends a code; one that does not (an authenticator app) will
            // open its challenge with no message.
            _ => return Err(not_held()),
        };
        let policy = self.policies.two_factor;
        let code = OtpCode::generate()?;
        let challenge_id = ChallengeId::generate();
        let challenge = NewChallenge {
            code_hash: self.policies.codes.hash(&code, &challenge_id),
            id: challenge_id,
            session_id: session.id.clone(),
            username: customer.username.clone(),
            method,
            destination: destination.clone(),
            created_at: now,
            expires_at: now + policy.code_ttl,
        };
        let event = session_event(
            AuditKind::TwoFactorInitiated,
            Outcome::Success,
            now,
            &customer,
            &session.id,
            client,
        )
        .detail("method", method.as_str())
        .detail("challengeId", challenge.id.as_str());
        let sealed_for = SealedFor {
            challenge: &challenge.id,
            channel: method,
            address: &address,
        };
        let message = Message::code(
            &challenge,
            &customer.id,
            address.clone(),
            self.courier.seal().seal(&code, &sealed_for)?,
        );
        let opened = self
            .store
            .open_challenge(&challenge, &policy, Some(&message), &event)
            .await?;
        refuse_unopened(opened, session, now)?;
        self.courier.queued(&message);
        Ok(ChallengeIssued {
            challenge_id: challenge.id,
            method,
            destination,
            expires_at: challenge.expires_at,
            resend_available_at: now + policy.resend_interval,
        })
    }

    /// Where the message of the session's challenge stands: a client waiting for a code can
    /// tell the customer it could not be sent.
    pub async fn delivery_of(
        &self,
        session: &Session,
        challenge_id: &ChallengeId,
    ) -> Result<DeliveryState, AuthError> {
        Self::require_pending(session)?;
        self.store
            .delivery_state(challenge_id, &session.id)
            .await?
            .ok_or(AuthError::NotFound)
    }

    /// Checks a code. The store checks the guess in one transaction with the username's lock,
    /// the challenge's remaining guesses and the failure count, so concurrent guesses (over any
    /// number of sessions and instances) never get more codes checked than the limits allow. The
    /// right code activates the session, rotates its tokens and extends it to the full lifetime.
    pub async fn verify_two_factor(
        &self,
        session: &Session,
        challenge_id: &ChallengeId,
        code: &OtpCode,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        Self::require_pending(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        let now = self.clock.now();
        let tokens = TokenPair::generate()?;
        let expires_at =
            self.policies
                .session
                .expiry(SessionState::Active, session.created_at, now);
        let guess = CodeGuess {
            session_id: session.id.clone(),
            challenge_id: challenge_id.clone(),
            username: customer.username.clone(),
            answer: Box::new(self.policies.codes.presented(code, challenge_id)),
            max_attempts: self.policies.two_factor.max_attempts,
            rotation: Rotation {
                session_id: session.id.clone(),
                old_refresh: None,
                access_hash: tokens.access.hash(),
                refresh_hash: tokens.refresh.hash(),
                expires_at,
                at: now,
            },
        };
        let context = session_event(
            AuditKind::TwoFactorFailed,
            Outcome::Failure,
            now,
            &customer,
            &session.id,
            client,
        )
        .detail("challengeId", challenge_id.as_str());
        let outcome = self
            .store
            .check_code(&guess, &self.policies.lockout, &context)
            .await?;
        count_outcome(VERIFY_METRIC, outcome_label(outcome));
        if !outcome.was_checked() {
            // Refused on the stored state alone: nothing changed, so nothing was written, and
            // a flood of such guesses is audited in aggregate.
            for event in outcome.audit_events(&context) {
                self.refusals.count_event(&event);
            }
        }
        if outcome != GuessOutcome::Verified {
            return Err(self.refusal(outcome));
        }
        Ok(IssuedSession {
            session_id: session.id.clone(),
            tokens,
            issued_at: now,
            expires_at,
            two_factor_required: false,
        })
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
    async fn factor_for(
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

    async fn refuse_if_locked(
        &self,
        customer: &Customer,
        now: time::OffsetDateTime,
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
fn moved(revoked: bool) -> AuthError {
    if revoked {
        AuthError::Unauthenticated
    } else {
        AuthError::TwoFactorNotPending
    }
}

/// Refuses a method the customer does not hold.
fn not_held() -> AuthError {
    AuthError::Invalid {
        field: "method",
        problem: InvalidValue("must be the customer's own two-factor method"),
    }
}

/// Why no challenge was opened, as the error the caller gets.
fn refuse_unopened(
    outcome: SendOutcome,
    session: &Session,
    now: time::OffsetDateTime,
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

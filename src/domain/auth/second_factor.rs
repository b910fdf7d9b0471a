//! Two-factor: sending a code to a pending session and checking it.

use super::{AuthService, ChallengeIssued, IssuedSession, count_outcome};
use crate::domain::InvalidValue;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::client::ClientContext;
use crate::domain::customer::{Customer, TwoFactorMethod};
use crate::domain::error::AuthError;
use crate::domain::session::{Rotation, Session, SessionState};
use crate::domain::token::TokenPair;
use crate::domain::two_factor::{
    AttemptClaim, Challenge, ChallengeId, NewChallenge, OtpCode, SendOutcome,
};
use crate::notify::CodeMessage;

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

        let method = method
            .or(customer.two_factor)
            .unwrap_or(TwoFactorMethod::Email);
        let (Some(destination), Some(address)) =
            (customer.destination(method), customer.address(method))
        else {
            return Err(AuthError::Invalid {
                field: "method",
                problem: InvalidValue("no phone number is on file for SMS"),
            });
        };
        let policy = self.policies.two_factor;
        let code = OtpCode::generate()?;
        let challenge_id = ChallengeId::generate();
        let challenge = NewChallenge {
            code_hash: code.hash(&challenge_id),
            id: challenge_id,
            session_id: session.id.clone(),
            method,
            destination: destination.clone(),
            created_at: now,
            expires_at: now + policy.code_ttl,
        };
        let event = AuditEvent::new(AuditKind::TwoFactorInitiated, Outcome::Success, now)
            .username(&customer.username)
            .customer(&customer.id)
            .session(&session.id)
            .client(client)
            .detail("method", method.as_str())
            .detail("challengeId", challenge.id.as_str());
        match self
            .store
            .open_challenge(&challenge, &policy, &event)
            .await?
        {
            SendOutcome::Opened => {}
            SendOutcome::TooSoon { retry_at } => {
                count_outcome(SEND_METRIC, "too_soon");
                return Err(AuthError::TooManyAttempts {
                    retry_after: retry_at - now,
                });
            }
            SendOutcome::LimitReached => {
                count_outcome(SEND_METRIC, "limit_reached");
                return Err(AuthError::TooManyAttempts {
                    retry_after: session.expires_at - now,
                });
            }
        }
        let message = CodeMessage {
            at: now,
            channel: method,
            to: address.to_owned(),
            customer_id: customer.id.clone(),
            challenge_id: challenge.id.clone(),
            code,
            valid_for_minutes: policy.code_ttl.whole_minutes(),
        };
        self.notifier.send(&message).await.map_err(|e| {
            tracing::error!(error = %e, session.id = %session.id, "two-factor code not delivered");
            AuthError::Unavailable("code delivery failed".into())
        })?;
        count_outcome(SEND_METRIC, "sent");
        Ok(ChallengeIssued {
            challenge_id: challenge.id,
            method,
            destination,
            expires_at: challenge.expires_at,
            resend_available_at: now + policy.resend_interval,
        })
    }

    /// Checks a code. Each guess is reserved in the store before it is compared, so concurrent
    /// guesses never get more than the allowed number checked; a wrong code also counts towards
    /// the account's lockout. The right code activates the session and rotates its tokens.
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
        let max = self.policies.two_factor.max_attempts;
        let event = |outcome| {
            AuditEvent::new(AuditKind::TwoFactorFailed, outcome, now)
                .username(&customer.username)
                .customer(&customer.id)
                .session(&session.id)
                .client(client)
                .detail("challengeId", challenge_id.as_str())
        };
        let challenge = match self
            .store
            .claim_attempt(&session.id, challenge_id, max, now)
            .await?
        {
            AttemptClaim::Claimed(challenge) => challenge,
            AttemptClaim::Exhausted => {
                self.store
                    .append_event(&event(Outcome::Failure).reason("too_many_attempts"))
                    .await?;
                count_outcome(VERIFY_METRIC, "too_many_attempts");
                // A new code can be asked for once the resend interval allows.
                return Err(AuthError::TooManyAttempts {
                    retry_after: self.policies.two_factor.resend_interval,
                });
            }
            AttemptClaim::Expired | AttemptClaim::Closed => {
                self.store
                    .append_event(&event(Outcome::Failure).reason("code_expired"))
                    .await?;
                count_outcome(VERIFY_METRIC, "code_expired");
                return Err(AuthError::CodeExpired);
            }
            AttemptClaim::Unknown => {
                return Err(AuthError::Invalid {
                    field: "challengeId",
                    problem: InvalidValue("is not an open challenge of this session"),
                });
            }
        };
        self.refuse_if_locked(&customer, now).await?;

        if !code.hash(&challenge.id).matches(&challenge.code_hash) {
            let failed = event(Outcome::Failure)
                .reason("invalid_code")
                .detail("attempt", challenge.attempts);
            self.store
                .record_failure(&customer.username, &self.policies.lockout, &failed)
                .await?;
            count_outcome(VERIFY_METRIC, "invalid_code");
            return Err(AuthError::InvalidCode {
                attempts_remaining: max.saturating_sub(challenge.attempts),
            });
        }
        self.complete(session, &customer, &challenge, client).await
    }

    async fn complete(
        &self,
        session: &Session,
        customer: &Customer,
        challenge: &Challenge,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        let now = self.clock.now();
        let tokens = TokenPair::generate()?;
        let expires_at =
            self.policies
                .session
                .expiry(SessionState::Active, session.created_at, now);
        let rotation = Rotation {
            session_id: session.id.clone(),
            old_refresh: None,
            access_hash: tokens.access.hash(),
            refresh_hash: tokens.refresh.hash(),
            expires_at,
            at: now,
        };
        let event = AuditEvent::new(AuditKind::TwoFactorVerified, Outcome::Success, now)
            .username(&customer.username)
            .customer(&customer.id)
            .session(&session.id)
            .client(client)
            .detail("challengeId", challenge.id.as_str());
        let completed = self
            .store
            .complete_two_factor(&challenge.id, &rotation, &event)
            .await?;
        if completed.is_none() {
            // Another request verified (or replaced) this challenge first.
            return Err(AuthError::CodeExpired);
        }
        count_outcome(VERIFY_METRIC, "success");
        Ok(IssuedSession {
            session_id: session.id.clone(),
            tokens,
            issued_at: now,
            expires_at,
            two_factor_required: false,
        })
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

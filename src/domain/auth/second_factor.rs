//! Two-factor at login: sending a code to a pending session and checking it.

use super::challenges::{Asking, not_held};
use super::{AuthService, ChallengeIssued, IssuedSession};
use crate::domain::credentials::challenge::{ChallengeId, ChallengePurpose, Completion, OtpCode};
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::delivery::message::DeliveryState;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::token::TokenPair;
use crate::domain::sessions::{Rotation, Session, SessionState};

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
        let factor = self.factor_for(&customer, method).await?;
        if factor.address().is_none() {
            // Every method so far sends a code; one that does not (an authenticator app) will
            // open its challenge asking for no message.
            return Err(not_held());
        }
        self.open(
            session,
            &customer,
            ChallengePurpose::Login,
            Asking::Code(factor),
            client,
        )
        .await
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

    /// Checks a code; the right one activates the session, rotates its tokens and extends it to
    /// the full lifetime.
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
        let rotation = Rotation {
            session_id: session.id.clone(),
            old_refresh: None,
            access_hash: tokens.access.hash(),
            refresh_hash: tokens.refresh.hash(),
            expires_at,
            at: now,
        };
        let answer = Box::new(self.policies.codes.presented(code, challenge_id));
        self.check(
            session,
            &customer,
            challenge_id,
            answer,
            Completion::Login(rotation),
            client,
            |attempts_remaining| AuthError::InvalidCode { attempts_remaining },
        )
        .await?;
        Ok(IssuedSession {
            session_id: session.id.clone(),
            tokens,
            issued_at: now,
            expires_at,
            two_factor_required: false,
        })
    }
}

//! Two-factor at login: opening a challenge for a pending session (a code sent, or an app's or
//! recovery code asked for) and checking the answer.

use super::answers::Presented;
use super::{AuthService, ChallengeIssued, IssuedSession};
use crate::domain::credentials::challenge::{
    ChallengeId, ChallengeMethod, ChallengePurpose, Completion,
};
use crate::domain::credentials::factor::FactorId;
use crate::domain::customers::Customer;
use crate::domain::delivery::message::DeliveryState;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::token::TokenPair;
use crate::domain::sessions::{Rotation, Session, SessionState};

impl AuthService {
    /// Opens a challenge for a pending session of `customer` by `method` (the default factor
    /// when none is named), replacing any earlier one; a code is sent within the limits on how
    /// often and how many times codes are sent.
    pub async fn initiate_two_factor(
        &self,
        session: &Session,
        customer: &Customer,
        method: Option<ChallengeMethod>,
        factor: Option<&FactorId>,
        client: &ClientContext,
    ) -> Result<ChallengeIssued, AuthError> {
        Self::require_pending(session)?;
        if session.state == SessionState::PasswordReset {
            let asking = self.reset_asking(customer, method, factor).await?;
            return self
                .open(session, customer, ChallengePurpose::Reset, asking, client)
                .await;
        }
        if method == Some(ChallengeMethod::Password) {
            return Err(super::asking::not_held());
        }
        let asking = self.asking_for(customer, method, factor).await?;
        self.open(session, customer, ChallengePurpose::Login, asking, client)
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

    /// Checks an answer; the right one activates the session, rotates its tokens and extends it
    /// to the full lifetime (a password reset's session stays one, its factor done).
    pub async fn verify_two_factor(
        &self,
        session: &Session,
        customer: &Customer,
        challenge_id: &ChallengeId,
        answer: Presented,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        Self::require_pending(session)?;
        let now = self.clock.now();
        let challenge = self.store.challenge(challenge_id, &session.id).await?;
        let judged = self
            .read_answer(customer, challenge.as_ref(), answer, now)
            .await?;
        let (completion, issued) = if session.state == SessionState::PasswordReset {
            let (rotation, issued) =
                self.rotation_into(session, SessionState::PasswordReset, now)?;
            (Completion::Reset(rotation), issued)
        } else {
            let (rotation, issued) = self.activation(session, now)?;
            (Completion::Login(rotation), issued)
        };
        self.check(session, customer, challenge_id, judged, completion, client)
            .await?;
        Ok(issued)
    }

    /// The new tokens, lifetime and rotation that make a session ACTIVE once its second factor
    /// is proved; the tokens are shown only if the store's check makes the rotation.
    pub(super) fn activation(
        &self,
        session: &Session,
        now: time::OffsetDateTime,
    ) -> Result<(Rotation, IssuedSession), AuthError> {
        self.rotation_into(session, SessionState::Active, now)
    }

    /// New tokens for a session whose second factor is proved, with the lifetime of `state`
    /// (ACTIVE, or a password reset's session, which stays one).
    pub(super) fn rotation_into(
        &self,
        session: &Session,
        state: SessionState,
        now: time::OffsetDateTime,
    ) -> Result<(Rotation, IssuedSession), AuthError> {
        let tokens = TokenPair::generate()?;
        let expires_at = self.policies.session.expiry(state, session.created_at, now);
        let rotation = Rotation {
            session_id: session.id.clone(),
            old_refresh: None,
            access_hash: tokens.access.hash(),
            refresh_hash: tokens.refresh.hash(),
            expires_at,
            at: now,
        };
        Ok((
            rotation,
            IssuedSession {
                session_id: session.id.clone(),
                tokens,
                issued_at: now,
                expires_at,
                two_factor_required: false,
                enrolment_required: false,
            },
        ))
    }
}

//! Step-up: an ACTIVE session proves a second factor again (or, for a customer without one,
//! the password) and counts as recently authenticated for `FINHUB_RECENT_AUTH_WINDOW`. Calls
//! that change how a customer signs in ask for that.

use time::OffsetDateTime;

use super::answers::Presented;
use super::asking::{Asking, not_held};
use super::{AuthService, ChallengeIssued};
use crate::domain::credentials::challenge::{
    ChallengeId, ChallengeMethod, ChallengePurpose, Completion,
};
use crate::domain::credentials::factor::FactorId;
use crate::domain::customers::Customer;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::Session;

impl AuthService {
    /// Opens a step-up challenge by `method`: one of the customer's factors (a code is sent,
    /// under the limits of login codes and counted with them), a recovery code, or the
    /// password for a customer without a second factor, and only then.
    pub async fn step_up(
        &self,
        session: &Session,
        method: ChallengeMethod,
        factor: Option<&FactorId>,
        client: &ClientContext,
    ) -> Result<ChallengeIssued, AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        let asking = match (method, &customer.factor) {
            (ChallengeMethod::Password, None) if factor.is_none() => Asking::Password,
            // A code to a customer without a factor, or the password from one who has a factor:
            // neither proves what the customer set up.
            (ChallengeMethod::Password, _) | (_, None) => return Err(not_held()),
            (method, Some(_)) => self.asking_for(&customer, Some(method), factor).await?,
        };
        self.open(session, &customer, ChallengePurpose::StepUp, asking, client)
            .await
    }

    /// Checks a step-up answer; the right one makes the session recently authenticated, until
    /// the moment returned. Wrong answers count towards the username's lock as at login.
    pub async fn verify_step_up(
        &self,
        session: &Session,
        challenge_id: &ChallengeId,
        answer: Presented,
        client: &ClientContext,
    ) -> Result<OffsetDateTime, AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        let at = self.clock.now();
        // A challenge of another purpose is unknown to the store's check, which matches purposes.
        let challenge = self.store.challenge(challenge_id, &session.id).await?;
        let judged = self
            .read_answer(&customer, challenge.as_ref(), answer, at)
            .await?;
        self.check(
            session,
            &customer,
            challenge_id,
            judged,
            Completion::StepUp { at },
            client,
        )
        .await?;
        Ok(at + self.policies.session.recent_auth_window)
    }

    /// Refuses a call that changes how the customer signs in unless the session proved a
    /// second factor recently, when the customer holds one; says how they can step up.
    pub(super) async fn require_recent(
        &self,
        session: &Session,
        customer: &Customer,
    ) -> Result<(), AuthError> {
        if customer.factor.is_none() || self.policies.session.is_recent(session, self.clock.now()) {
            return Ok(());
        }
        let mut methods: Vec<ChallengeMethod> = Vec::new();
        for held in self.store.factors(&customer.id).await? {
            let method = ChallengeMethod::from(held.factor.method());
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        if self.store.recovery_codes_remaining(&customer.id).await? > 0 {
            methods.push(ChallengeMethod::RecoveryCode);
        }
        Err(AuthError::RecentAuthenticationRequired { methods })
    }
}

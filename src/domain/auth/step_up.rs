//! Step-up: an ACTIVE session proves a second factor again (or, for a customer without one,
//! the password) and counts as recently authenticated for `FINHUB_RECENT_AUTH_WINDOW`. Calls
//! that change how a customer signs in ask for that.

use time::OffsetDateTime;

use super::challenges::{Asking, not_held};
use super::{AuthService, ChallengeIssued};
use crate::domain::credentials::challenge::{
    Answer, ChallengeId, ChallengeMethod, ChallengePurpose, CheckedPassword, Completion, OtpCode,
};
use crate::domain::credentials::password::Password;
use crate::domain::customers::Customer;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::Session;

/// An answer to a step-up challenge.
#[derive(Debug)]
pub enum StepUpAnswer {
    /// The code sent by SMS or e-mail.
    Code(OtpCode),
    /// The password (a customer without a second factor).
    Password(Password),
}

impl AuthService {
    /// Opens a step-up challenge by `method`: one of the customer's factors (a code is sent, under
    /// the limits of login codes and counted with them), or the password for a customer
    /// without a second factor, and only then.
    pub async fn step_up(
        &self,
        session: &Session,
        method: ChallengeMethod,
        client: &ClientContext,
    ) -> Result<ChallengeIssued, AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        let asking = match (method.factor(), &customer.factor) {
            (Some(factor), Some(_)) => {
                Asking::Code(self.factor_for(&customer, Some(factor)).await?)
            }
            (None, None) => Asking::Password,
            // A code to a customer without a factor, or the password from one who has a factor:
            // neither proves what the customer set up.
            _ => return Err(not_held()),
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
        answer: StepUpAnswer,
        client: &ClientContext,
    ) -> Result<OffsetDateTime, AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        let (answer, wrong) = self.answer_of(&customer, challenge_id, answer).await?;
        let at = self.clock.now();
        self.check(
            session,
            &customer,
            challenge_id,
            answer,
            Completion::StepUp { at },
            client,
            wrong,
        )
        .await?;
        Ok(at + self.policies.session.recent_auth_window)
    }

    /// The answer as the store's check takes it, and the error a wrong one gets. A password is
    /// checked here, before the transaction (argon2 takes a hashing thread); whether it may
    /// answer the challenge at all is the check's.
    async fn answer_of(
        &self,
        customer: &Customer,
        challenge_id: &ChallengeId,
        answer: StepUpAnswer,
    ) -> Result<(Box<dyn Answer>, fn(u32) -> AuthError), AuthError> {
        Ok(match answer {
            StepUpAnswer::Code(code) => (
                Box::new(self.policies.codes.presented(&code, challenge_id)),
                |attempts_remaining| AuthError::InvalidCode { attempts_remaining },
            ),
            StepUpAnswer::Password(password) => {
                let verification = self
                    .hasher
                    .verify(&password, Some(&customer.password_hash))
                    .await?;
                (
                    Box::new(CheckedPassword {
                        right: verification.matches,
                    }),
                    |_| AuthError::InvalidCredentials,
                )
            }
        })
    }
}

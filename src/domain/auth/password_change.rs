//! A signed-in customer changes their password: as guarded as a login (the current password,
//! counted toward the lock when wrong; a recent second factor when they hold one), held to the
//! password policy, ending every other session, and told at every destination they hold.

use super::{AuthService, session_event};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::password::{ChangeOutcome, Password, PasswordChange, Rejection};
use crate::domain::customers::Customer;
use crate::domain::delivery::message::AccountChange;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::Session;

impl AuthService {
    /// Replaces the customer's password with `new` after checking `current`; every other
    /// session of theirs ends at once, this one stays.
    pub async fn change_password(
        &self,
        session: &Session,
        current: &Password,
        new: &Password,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        let now = self.clock.now();
        self.require_recent(session, &customer).await?;
        // A locked username's password is not checked, here as at login.
        self.refuse_if_locked(&customer, now).await?;
        let event =
            |kind, outcome| session_event(kind, outcome, now, &customer, &session.id, client);
        let verified = self
            .hasher
            .verify(current, Some(&customer.password_hash))
            .await?;
        if !verified.matches {
            let record = self.store.lockout(&customer.username).await?;
            let lock_notices = self.lock_notices(&customer, &record, now).await?;
            let failure = self
                .store
                .record_failure(
                    &customer.username,
                    &self.policies.lockout,
                    &event(AuditKind::PasswordChangeFailed, Outcome::Failure)
                        .reason("invalid_credentials"),
                    &lock_notices,
                )
                .await?;
            return Err(if failure.counted {
                AuthError::InvalidCredentials
            } else {
                AuthError::AccountLocked {
                    until: failure.record.lock_at(now).and_then(|lock| lock.until()),
                }
            });
        }
        // A burst of guesses checked before the first of them locked the username must learn
        // nothing more from a right one than a wrong one gets while locked.
        self.refuse_if_locked(&customer, now).await?;
        self.judge_new_password(
            &customer,
            new,
            event(AuditKind::PasswordChangeFailed, Outcome::Failure),
        )
        .await?;
        let change = PasswordChange {
            customer: customer.id.clone(),
            username: customer.username.clone(),
            keep_session: session.id.clone(),
            old_hash: customer.password_hash.clone(),
            new_hash: self.hasher.hash(new).await?,
            at: now,
        };
        let notices = self
            .notices_of(&customer, AccountChange::PasswordChanged, now)
            .await?;
        let outcome = self
            .store
            .change_password(
                &change,
                &notices,
                &event(AuditKind::PasswordChanged, Outcome::Success)
                    .detail("notices", notices.len()),
            )
            .await?;
        match outcome {
            ChangeOutcome::Changed => {}
            // Another change won meanwhile: `current` is no longer the password.
            ChangeOutcome::HashMoved => return Err(AuthError::InvalidCredentials),
            ChangeOutcome::Locked { until } => return Err(AuthError::AccountLocked { until }),
            ChangeOutcome::SessionEnded => return Err(AuthError::Unauthenticated),
        }
        for notice in &notices {
            self.courier.queued(notice);
        }
        Ok(())
    }

    /// Refuses a new password that breaks a rule, naming every one, and audits the refusal as
    /// `refused` (the change's or the reset's failure).
    pub(super) async fn judge_new_password(
        &self,
        customer: &Customer,
        new: &Password,
        refused: AuditEvent,
    ) -> Result<(), AuthError> {
        let reasons = self.rejections(customer, new).await?;
        if reasons.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        self.store
            .append_event(&refused.reason("password_rejected").detail("reasons", names))
            .await?;
        Err(AuthError::PasswordRejected { reasons })
    }

    /// Every rule `new` breaks: the policy's, and being the current password.
    async fn rejections(
        &self,
        customer: &Customer,
        new: &Password,
    ) -> Result<Vec<Rejection>, AuthError> {
        let context = [
            customer.username.as_str(),
            customer.email.as_str(),
            customer.first_name.as_str(),
            customer.last_name.as_str(),
        ];
        let mut reasons = self.policies.passwords.judge_new(new, &context).await;
        if self
            .hasher
            .verify(new, Some(&customer.password_hash))
            .await?
            .matches
        {
            reasons.push(Rejection::Reused);
        }
        Ok(reasons)
    }
}

//! A forgotten password: a code mailed to the profile's address opens a session that may only
//! set a new password, after a second factor other than that mailbox when the customer holds
//! one (the rules: `domain/credentials/reset.rs`).

use std::sync::Arc;

use time::OffsetDateTime;

use super::{AuthService, IssuedSession, count_outcome, rate_limited};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::challenge::{GuessOutcome, OtpCode};
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::credentials::password::Password;
use crate::domain::credentials::reset::{
    NewReset, PasswordReset, ResetDone, ResetGuess, ResetId, ResetOpened, WRONG_RESET_CODES_PER_DAY,
};
use crate::domain::customers::{Customer, CustomerId, Username};
use crate::domain::delivery::SealedFor;
use crate::domain::delivery::message::{AccountChange, Message};
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::token::TokenPair;
use crate::domain::sessions::{NewSession, Session, SessionId, SessionState};

const RESET_METRIC: &str = "finhub_password_resets_total";

/// What a reset request is answered with, whether or not the username is a customer's.
#[derive(Debug)]
pub struct ResetRequested {
    /// What the client presents with the code.
    pub reset_id: ResetId,
    /// When the code stops working.
    pub expires_at: OffsetDateTime,
}

impl AuthService {
    /// Asks for a reset of `username`'s password. The answer is the same, and as fast, for any
    /// username: the work that depends on whether it is a customer's (reading it, sending the
    /// code) is done after the answer, by a task that shutdown waits for.
    pub async fn request_password_reset(
        &self,
        username: &Username,
        client: &ClientContext,
    ) -> Result<ResetRequested, AuthError> {
        let now = self.clock.now();
        if let Err(wait) = self.limits.check_login(client.ip, username.as_str()).await {
            self.refusals.count("rate_limited", username, client, now);
            count_outcome(RESET_METRIC, "rate_limited");
            return Err(rate_limited(wait));
        }
        // Shedding load must not depend on the username either: a full queue refuses all alike.
        let Ok(slot) = Arc::clone(&self.reset_slots).try_acquire_owned() else {
            count_outcome(RESET_METRIC, "service_overloaded");
            return Err(AuthError::Overloaded);
        };
        let reset_id = ResetId::generate();
        let expires_at = now + self.policies.reset_ttl;
        let service = self.clone();
        let (id, username, client) = (reset_id.clone(), username.clone(), client.clone());
        self.background.spawn(async move {
            if let Err(e) = service.open_reset(id, &username, &client, now).await {
                count_outcome(RESET_METRIC, "error");
                tracing::warn!(error = %e, "a password reset could not be opened");
            }
            drop(slot);
        });
        Ok(ResetRequested {
            reset_id,
            expires_at,
        })
    }

    /// Stores the reset and, for a customer an operator has not locked, queues its code to the
    /// profile's e-mail address within their sending budget.
    async fn open_reset(
        &self,
        id: ResetId,
        username: &Username,
        client: &ClientContext,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let customer = self.store.customer_by_username(username).await?;
        let operator_locked = self.store.lockout(username).await?.operator_locked;
        let mut reset = NewReset {
            id,
            username: username.clone(),
            customer: customer.as_ref().map(|c| c.id.clone()),
            code_hash: None,
            created_at: now,
            expires_at: now + self.policies.reset_ttl,
        };
        let message = match customer.as_ref().filter(|_| !operator_locked) {
            Some(customer) => {
                let code = OtpCode::generate()?;
                reset.code_hash = Some(self.policies.codes.hash_for(&code, reset.id.as_str()));
                let sealed_for = SealedFor {
                    subject: reset.id.as_str(),
                    channel: TwoFactorMethod::Email,
                    address: customer.email.as_str(),
                };
                let sealed = self.courier.seal().seal(&code, &sealed_for)?;
                Some(Message::reset_code(&reset, customer, sealed))
            }
            None => None,
        };
        let event = AuditEvent::new(AuditKind::PasswordResetRequested, Outcome::Success, now)
            .username(username)
            .client(client)
            .detail("resetId", reset.id.as_str());
        let event = match &customer {
            Some(c) => event.customer(&c.id),
            None => event,
        };
        let opened = self
            .store
            .open_reset(
                &reset,
                self.policies.two_factor.customer_sends,
                message.as_ref(),
                &event,
            )
            .await?;
        count_outcome(
            RESET_METRIC,
            match opened {
                ResetOpened::Sent => "sent",
                ResetOpened::BudgetSpent => "customer_budget_spent",
                ResetOpened::Unsent => "not_sent",
            },
        );
        if let (ResetOpened::Sent, Some(message)) = (opened, &message) {
            self.courier.queued(message);
        }
        Ok(())
    }

    /// Waits for the work requests left running after their answer (reset codes being
    /// queued), and takes new work again: for tests, which look at what that work wrote.
    pub async fn settle(&self) {
        self.background.close();
        self.background.wait().await;
        self.background.reopen();
    }

    /// At shutdown, once the listeners have stopped: waits up to `within` for the work requests
    /// left running after their answer. Work given up on is logged; a reset whose code was not
    /// queued is simply asked for again.
    pub async fn finish_background(&self, within: std::time::Duration) {
        self.background.close();
        if tokio::time::timeout(within, self.background.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.background.len(),
                "work left running by requests was given up on at shutdown"
            );
        }
    }

    /// Checks a reset's code; the right one starts a session in state PASSWORD_RESET. Wrong
    /// codes count toward the username's lock; a lock from failures does not stop a reset
    /// (completing one clears it), an operator's does.
    pub async fn verify_password_reset(
        &self,
        id: &ResetId,
        code: &OtpCode,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        let client = &self.prepared(client);
        let now = self.clock.now();
        // Keyed by the reset: its username must not be learnt from how its guesses are limited.
        let key = format!("reset:{id}");
        if let Err(wait) = self.limits.check_login(client.ip, &key).await {
            count_outcome(RESET_METRIC, "rate_limited");
            return Err(rate_limited(wait));
        }
        let Some(stored) = self.store.reset(id).await? else {
            return Err(AuthError::InvalidCode {
                attempts_remaining: 0,
            });
        };
        // The same reads whether or not the reset is a customer's (a reset of no customer reads
        // a customer that is not there), so their time tells nothing either.
        let nobody = CustomerId::from_stored(String::new());
        let customer = self
            .store
            .customer_by_id(stored.customer.as_ref().unwrap_or(&nobody))
            .await?;
        let record = self.store.lockout(&stored.username).await?;
        let lock_notices = match &customer {
            Some(c) => {
                self.notices_of(c, AccountChange::AccountLocked { until: None }, now)
                    .await?
            }
            None => {
                self.store.factors(&nobody).await?;
                Vec::new()
            }
        };
        // Told only when a failure locks, as at login.
        let lock_notices =
            if self.policies.lockout.threshold == 0 || record.lock_on_reset_at(now).is_some() {
                Vec::new()
            } else {
                lock_notices
            };
        let tokens = TokenPair::generate()?;
        let policy = &self.policies.session;
        let session = customer.as_ref().map(|c| NewSession {
            id: SessionId::generate(),
            customer_id: c.id.clone(),
            state: SessionState::PasswordReset,
            access_hash: tokens.access.hash(),
            refresh_hash: tokens.refresh.hash(),
            created_at: now,
            expires_at: policy.expiry(SessionState::PasswordReset, now, now),
            absolute_expires_at: policy.absolute_expiry(now),
            recent_auth_at: None,
            client: client.clone(),
            proof: None,
            limit: policy.limit(),
        });
        let guess = ResetGuess {
            reset: id.clone(),
            username: stored.username.clone(),
            code: self.policies.codes.presented_for(code, id.as_str()),
            max_attempts: self.policies.two_factor.max_attempts,
            max_wrong_per_day: WRONG_RESET_CODES_PER_DAY,
            session,
            lock_notices,
        };
        let context = AuditEvent::new(AuditKind::PasswordResetFailed, Outcome::Failure, now)
            .username(&stored.username)
            .client(client)
            .detail("resetId", id.as_str());
        let context = match (&customer, &guess.session) {
            (Some(c), Some(s)) => context.customer(&c.id).session(&s.id),
            _ => context,
        };
        let outcome = self
            .store
            .check_reset(&guess, &self.policies.lockout, &context)
            .await?;
        if !outcome.was_checked() {
            let events = outcome.audit_events_as(
                &context,
                AuditKind::PasswordResetVerified,
                AuditKind::PasswordResetFailed,
            );
            for event in events {
                self.refusals.count_event(&event);
            }
        }
        match (outcome, customer, guess.session) {
            (GuessOutcome::Verified, Some(customer), Some(session)) => {
                count_outcome(RESET_METRIC, "verified");
                Ok(IssuedSession {
                    session_id: session.id,
                    tokens,
                    issued_at: now,
                    expires_at: session.expires_at,
                    two_factor_required: customer.factor.is_some(),
                    enrolment_required: false,
                })
            }
            (GuessOutcome::Wrong { attempts, locked }, ..) => {
                if locked.is_some() {
                    for notice in &guess.lock_notices {
                        self.courier.queued(notice);
                    }
                }
                Err(AuthError::InvalidCode {
                    attempts_remaining: self
                        .policies
                        .two_factor
                        .max_attempts
                        .saturating_sub(attempts),
                })
            }
            (GuessOutcome::Unknown, ..) => Err(AuthError::InvalidCode {
                attempts_remaining: 0,
            }),
            (other, ..) => Err(self.refusal(other)),
        }
    }

    /// Sets the new password of a reset whose session proved its second factor (when the
    /// customer holds one): every session of the customer ends (this one too), the failure count
    /// and a lock from failures are cleared, and the customer is told at every destination
    /// they hold.
    pub async fn complete_password_reset(
        &self,
        session: &Session,
        new: &Password,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        if session.state != SessionState::PasswordReset {
            return Err(AuthError::NotFound);
        }
        let customer = self.customer_of(&session.customer_id).await?;
        if customer.factor.is_some() && !session.two_factor_verified {
            return Err(AuthError::TwoFactorRequired);
        }
        let now = self.clock.now();
        let event = |kind, outcome| {
            super::session_event(kind, outcome, now, &customer, &session.id, client)
        };
        self.judge_new_password(
            &customer,
            new,
            event(AuditKind::PasswordResetFailed, Outcome::Failure),
        )
        .await?;
        let reset = PasswordReset {
            customer: customer.id.clone(),
            username: customer.username.clone(),
            session: Some(session.id.clone()),
            new_hash: self.hasher.hash(new).await?,
            at: now,
        };
        self.set_reset_password(
            &customer,
            &reset,
            event(AuditKind::PasswordReset, Outcome::Success),
        )
        .await
    }

    /// Sets a reset password, queueing the customer's notices with it.
    pub(crate) async fn set_reset_password(
        &self,
        customer: &Customer,
        reset: &PasswordReset,
        event: AuditEvent,
    ) -> Result<(), AuthError> {
        let notices = self
            .notices_of(customer, AccountChange::PasswordReset, reset.at)
            .await?;
        let event = event.detail("notices", notices.len());
        match self
            .store
            .set_reset_password(reset, &notices, &event)
            .await?
        {
            ResetDone::Reset => {}
            ResetDone::OperatorLocked => return Err(AuthError::AccountLocked { until: None }),
            ResetDone::SessionEnded => return Err(AuthError::Unauthenticated),
        }
        count_outcome(RESET_METRIC, "completed");
        for notice in &notices {
            self.courier.queued(notice);
        }
        Ok(())
    }
}

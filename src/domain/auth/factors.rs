//! A signed-in customer manages their second factors: adds one (unconfirmed until the code it
//! sends, or the app's first code, arrives), renames it, makes it the default, removes it; and
//! makes recovery codes (`recovery_codes.rs`). Each change is as guarded as a login: a recent second factor (but
//! not for the first factor of a customer who has none), audited, and told at every
//! destination the customer held before it.

use time::OffsetDateTime;

use super::answers::{Presented, Tells};
use super::asking::Asking;
use super::{AuthService, ChallengeIssued, IssuedSession, session_event};
use crate::domain::InvalidValue;
use crate::domain::audit::{AuditKind, Outcome};
use crate::domain::credentials::challenge::{
    ChallengeMethod, ChallengePurpose, Completion, GuessOutcome,
};
use crate::domain::credentials::factor::{
    Factor, FactorId, FactorKind, FactorName, FactorUpdate, HeldFactor, PendingFactor, Removal,
};
use crate::domain::credentials::lockout::LockoutRecord;
use crate::domain::credentials::passkey::PasskeyUser;
use crate::domain::credentials::totp::TotpSecret;
use crate::domain::customers::{Customer, Email, Phone};
use crate::domain::delivery::message::{AccountChange, Message};
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::{Session, SessionState};

/// A factor to add.
#[derive(Debug)]
pub enum NewFactor {
    /// An authenticator app.
    App {
        /// What the customer calls it.
        name: Option<FactorName>,
    },
    /// Codes by text message to this phone.
    Sms {
        /// The new phone, which the confirmation code goes to.
        phone: Phone,
        /// What the customer calls it.
        name: Option<FactorName>,
    },
    /// Codes by e-mail to this mailbox.
    Email {
        /// The new mailbox, which the confirmation code goes to.
        email: Email,
        /// What the customer calls it.
        name: Option<FactorName>,
    },
    /// A passkey, registered by the browser's WebAuthn call.
    Passkey {
        /// What the customer calls it.
        name: Option<FactorName>,
    },
}

/// A factor added, awaiting confirmation.
#[derive(Debug)]
pub struct FactorAdded {
    /// The factor's id, for its confirmation.
    pub id: FactorId,
    /// How the confirmation is answered, and what was sent for it.
    pub challenge: ChallengeIssued,
    /// An app's secret and its `otpauth://` URI, shown this once.
    pub app: Option<(TotpSecret, String)>,
}

/// The customer's factors and how many recovery codes they have left.
#[derive(Debug)]
pub struct FactorList {
    /// Confirmed factors, oldest first.
    pub factors: Vec<HeldFactor>,
    /// Unused recovery codes.
    pub recovery_codes_remaining: u32,
}

impl AuthService {
    /// The customer's confirmed factors.
    pub async fn factors_of(&self, session: &Session) -> Result<FactorList, AuthError> {
        Self::require_active(session)?;
        Ok(FactorList {
            factors: self.store.factors(&session.customer_id).await?,
            recovery_codes_remaining: self
                .store
                .recovery_codes_remaining(&session.customer_id)
                .await?,
        })
    }

    /// Adds an unconfirmed factor: an app gets a fresh secret, a phone or mailbox a code (under
    /// the sending limits), so that only a destination the customer controls is ever used.
    pub async fn add_factor(
        &self,
        session: &Session,
        new: NewFactor,
        client: &ClientContext,
    ) -> Result<FactorAdded, AuthError> {
        Self::require_active_or_enrolling(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        self.require_recent(session, &customer).await?;
        let now = self.clock.now();
        self.refuse_if_locked(&customer, now).await?;
        let (kind, name) = match new {
            NewFactor::App { name } => (FactorKind::Totp, name),
            NewFactor::Sms { phone, name } => (FactorKind::Sms(phone), name),
            NewFactor::Email { email, name } => (FactorKind::Email(email), name),
            NewFactor::Passkey { name } => (FactorKind::Passkey, name),
        };
        let factor = Factor::new(kind);
        let (sealed_secret, app) = match &factor.kind {
            FactorKind::Totp => {
                let seal = self.policies.totp.as_ref().ok_or(AuthError::Invalid {
                    field: "method",
                    problem: InvalidValue(
                        "authenticator apps are not available: the service has no audit key",
                    ),
                })?;
                let secret = TotpSecret::generate()?;
                let sealed = seal
                    .seal(&secret, &factor.id)
                    .map_err(anyhow::Error::from)?;
                let uri = secret.otpauth_uri(customer.username.as_str());
                (Some(sealed), Some((secret, uri)))
            }
            _ => (None, None),
        };
        let mut passkey_handle = None;
        let asking = match &factor.kind {
            FactorKind::Passkey => {
                let ceremonies = self.passkey_ceremonies()?;
                let held = self.store.passkeys(&customer.id).await?;
                let user = PasskeyUser::of(&held, customer.username.as_str())
                    .map_err(anyhow::Error::from)?;
                passkey_handle = Some(user.handle.to_vec());
                let exclude: Vec<String> = held.into_iter().map(|p| p.credential_id).collect();
                Asking::Passkey {
                    id: factor.id.clone(),
                    ceremony: ceremonies.start_registration(&user, &exclude)?,
                }
            }
            kind => Asking::Factor {
                id: Some(factor.id.clone()),
                kind: kind.clone(),
            },
        };
        let purpose = match session.state {
            SessionState::EnrolmentRequired => ChallengePurpose::Enrol,
            _ => ChallengePurpose::Confirm,
        };
        let prepared = self.prepare(session, &customer, purpose, asking, now)?;
        let pending = PendingFactor {
            customer: customer.id.clone(),
            name,
            sealed_secret,
            passkey_handle,
            created_at: now,
            expires_at: prepared.challenge.expires_at,
            factor,
        };
        let event = self
            .opening_event(
                AuditKind::FactorPending,
                session,
                &customer,
                &prepared.challenge,
                client,
            )
            .detail("factorId", pending.factor.id.as_str());
        let opened = self
            .store
            .add_pending_factor(
                &pending,
                &prepared.challenge,
                &self.policies.two_factor,
                prepared.message.as_ref(),
                &event,
            )
            .await?;
        let challenge = self.opened(opened, session, prepared, now)?;
        Ok(FactorAdded {
            id: pending.factor.id,
            challenge,
            app,
        })
    }

    /// Confirms an unconfirmed factor with its code (a passkey: its registration): it becomes usable (and the default if it
    /// is the customer's first), the session counts as recently authenticated, and the customer
    /// is told. The last allowed wrong code drops the factor. A session that had to enrol
    /// becomes ACTIVE, with the tokens returned beside the factor.
    pub async fn confirm_factor(
        &self,
        session: &Session,
        factor: &FactorId,
        presented: Presented,
        client: &ClientContext,
    ) -> Result<(HeldFactor, Option<IssuedSession>), AuthError> {
        Self::require_active_or_enrolling(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        let now = self.clock.now();
        let (_, challenge_id) = self
            .store
            .pending_factor(&customer.id, factor, now)
            .await?
            .ok_or(AuthError::NotFound)?;
        // The confirmation belongs to the session that added the factor.
        let challenge = self
            .store
            .challenge(&challenge_id, &session.id)
            .await?
            .ok_or(AuthError::NotFound)?;
        let mut judged = if challenge.method == ChallengeMethod::Passkey {
            self.read_registration(&challenge, presented)?
        } else {
            self.read_answer(&customer, Some(&challenge), presented, now)
                .await?
        };
        judged.tells = Tells::Change(AccountChange::FactorAdded);
        let (activation, issued) = match session.state {
            SessionState::EnrolmentRequired => {
                let (rotation, issued) = self.activation(session, now)?;
                (Some(rotation), Some(issued))
            }
            _ => (None, None),
        };
        let checked = self
            .check(
                session,
                &customer,
                &challenge_id,
                judged,
                Completion::Confirm {
                    factor: factor.clone(),
                    at: now,
                    activation,
                },
                client,
            )
            .await;
        match checked {
            Ok(()) => {}
            // The last allowed wrong code dropped the factor.
            Err(AuthError::InvalidCode {
                attempts_remaining: 0,
            }) => {
                return Err(self.refusal(GuessOutcome::Exhausted));
            }
            Err(AuthError::Invalid {
                field: "challengeId",
                ..
            }) => return Err(AuthError::NotFound),
            Err(e) => return Err(e),
        }
        let confirmed = self
            .store
            .factors(&customer.id)
            .await?
            .into_iter()
            .find(|h| &h.factor.id == factor)
            .ok_or(AuthError::NotFound)?;
        Ok((confirmed, issued))
    }

    /// Renames a factor or makes it the default.
    pub async fn update_factor(
        &self,
        session: &Session,
        factor: &FactorId,
        update: FactorUpdate,
        client: &ClientContext,
    ) -> Result<HeldFactor, AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        self.require_recent(session, &customer).await?;
        let now = self.clock.now();
        let event = session_event(
            AuditKind::FactorUpdated,
            Outcome::Success,
            now,
            &customer,
            &session.id,
            client,
        )
        .detail("factorId", factor.as_str())
        .detail("default", update.make_default)
        .detail("renamed", update.name.is_some());
        self.store
            .update_factor(&customer.id, factor, &update, &event)
            .await?
            .ok_or(AuthError::NotFound)
    }

    /// Removes a factor: the default moves to the oldest remaining one; removing the last
    /// turns two-factor off and drops the recovery codes.
    pub async fn remove_factor(
        &self,
        session: &Session,
        factor: &FactorId,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        self.require_recent(session, &customer).await?;
        let now = self.clock.now();
        let notices = self
            .notices_of(&customer, AccountChange::FactorRemoved, now)
            .await?;
        let event = session_event(
            AuditKind::FactorRemoved,
            Outcome::Success,
            now,
            &customer,
            &session.id,
            client,
        )
        .detail("factorId", factor.as_str())
        .detail("notices", notices.len());
        let removal = self
            .store
            .remove_factor(
                &customer.id,
                factor,
                self.policies.require_two_factor,
                &notices,
                &event,
            )
            .await?;
        match removal {
            Removal::Removed => {}
            Removal::NotHeld => return Err(AuthError::NotFound),
            Removal::LastKept => return Err(AuthError::FactorRequired),
        }
        for notice in &notices {
            self.courier.queued(notice);
        }
        Ok(())
    }

    /// The notices a lock would send the customer, handed with every failure of theirs that
    /// is not refused on a lock already in place (`record`, read before): the store queues them
    /// only with the failure that locks, which a count read before cannot tell among
    /// concurrent ones.
    pub(super) async fn lock_notices(
        &self,
        customer: &Customer,
        record: &LockoutRecord,
        now: OffsetDateTime,
    ) -> Result<Vec<Message>, AuthError> {
        if self.policies.lockout.threshold == 0 || record.lock_at(now).is_some() {
            return Ok(Vec::new());
        }
        self.notices_of(customer, AccountChange::AccountLocked { until: None }, now)
            .await
    }

    /// Notices of `change` to every destination the customer holds now, before it.
    pub(super) async fn notices_of(
        &self,
        customer: &Customer,
        change: AccountChange,
        now: OffsetDateTime,
    ) -> Result<Vec<Message>, AuthError> {
        let factors = self.store.factors(&customer.id).await?;
        Ok(Message::account_notices(
            customer,
            factors.iter().map(|h| &h.factor),
            change,
            now,
        ))
    }
}

//! Operator actions on customers: creating, importing, locking and unlocking, and support's
//! password resets and factor removals (support's session commands are in `support.rs`).

use crate::domain::delivery::message::{AccountChange, Message};
use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::password::{Password, PasswordHasher, PasswordPolicy, Rejection};
use crate::domain::credentials::reset::{PasswordReset, ResetDone};
use crate::domain::customers::{Customer, NewCustomer, Profile, Username};
use crate::domain::ports::{Insertion, Store, StoreError, Taken};
use crate::domain::sessions::SessionPolicy;

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The username names no customer.
    #[error("no customer with username {0}")]
    UnknownCustomer(String),
    /// The username is already in use.
    #[error("a customer with username {0} already exists")]
    UsernameTaken(String),
    /// An import reused a customer id.
    #[error("a customer with customerId {0} already exists")]
    CustomerIdTaken(String),
    /// A field does not pass its check; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The password could not be hashed.
    #[error("password hashing failed")]
    Hash(#[from] crate::domain::credentials::password::HashError),
}

/// Operator actions, each audited like the customer's own.
#[derive(Clone)]
pub struct Accounts {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    /// What makes a session live (its idle timeout), for support's view.
    pub(super) sessions: SessionPolicy,
}

impl Accounts {
    /// Operator actions on `store`, hashing new passwords with `hasher`, holding those an
    /// operator chooses to `policy`, and judging sessions live by `sessions`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        sessions: SessionPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            hasher,
            policy,
            sessions,
        }
    }

    /// Refuses a password an operator chose for `profile` that breaks the password policy,
    /// naming every rule it breaks. (The demo's public password and imported credentials are
    /// not held to it.)
    pub async fn check_new_password(
        &self,
        profile: &Profile,
        password: &Password,
    ) -> Result<(), AccountError> {
        let context = [
            profile.username.as_str(),
            profile.email.as_str(),
            profile.first_name.as_str(),
            profile.last_name.as_str(),
        ];
        let reasons = self.policy.judge_new(password, &context).await;
        if reasons.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        Err(AccountError::Invalid(format!(
            "the password is refused by the password policy: {}",
            names.join(", ")
        )))
    }

    /// The hasher new passwords go through (imports hash in batches with it).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Creates one customer with a password to hash.
    pub async fn create(&self, profile: Profile, password: &Password) -> Result<(), AccountError> {
        let hash = self.hasher.hash(password).await?;
        let customer =
            NewCustomer::new(profile, hash).map_err(|e| AccountError::Invalid(e.to_string()))?;
        let profile = customer.profile();
        match self
            .store
            .insert_customer(&customer, &self.created_event(&customer))
            .await
        {
            Err(StoreError::Conflict(Taken::CustomerId)) => {
                Err(AccountError::CustomerIdTaken(profile.id.to_string()))
            }
            Err(StoreError::Conflict(Taken::Username | Taken::Other)) => {
                Err(AccountError::UsernameTaken(profile.username.to_string()))
            }
            other => Ok(other?),
        }
    }

    /// Inserts a batch whose hashes are ready, skipping customers whose username or customerId
    /// exists; returns what became of each, in order.
    pub async fn import_batch(
        &self,
        batch: Vec<NewCustomer>,
    ) -> Result<Vec<Insertion>, AccountError> {
        let batch: Vec<_> = batch
            .into_iter()
            .map(|c| {
                let event = self.created_event(&c).reason("import");
                (c, event)
            })
            .collect();
        Ok(self.store.insert_customers(&batch).await?)
    }

    /// Whether a customer with this username exists.
    pub async fn exists(&self, username: &Username) -> Result<bool, AccountError> {
        Ok(self.store.customer_by_username(username).await?.is_some())
    }

    /// Locks a customer until an operator unlocks, ending their sessions.
    pub async fn lock(&self, username: &Username) -> Result<(), AccountError> {
        self.set_lock(username, true).await
    }

    /// Lifts any lock and clears the failure counters.
    pub async fn unlock(&self, username: &Username) -> Result<(), AccountError> {
        self.set_lock(username, false).await
    }

    async fn set_lock(&self, username: &Username, locked: bool) -> Result<(), AccountError> {
        let customer = self.find(username).await?;
        let (kind, reason) = if locked {
            (AuditKind::AccountLocked, "operator_lock")
        } else {
            (AuditKind::AccountUnlocked, "operator_unlock")
        };
        let event = AuditEvent::new(kind, Outcome::Success, self.clock.now())
            .username(username)
            .customer(&customer.id)
            .reason(reason);
        self.store
            .set_operator_lock(username, &customer.id, locked, &event)
            .await?;
        Ok(())
    }

    /// Support removes every second factor and recovery code of a customer who lost them (a
    /// lost phone), for `reason`; the customer is told at every destination held before, and
    /// with two-factor required enrols anew at the next login. Returns how many factors went.
    pub async fn remove_factors(
        &self,
        username: &Username,
        reason: &str,
    ) -> Result<u64, AccountError> {
        let customer = self.find(username).await?;
        let now = self.clock.now();
        let held = self.store.factors(&customer.id).await?;
        let notices = Message::account_notices(
            &customer,
            held.iter().map(|h| &h.factor),
            AccountChange::FactorRemoved,
            now,
        );
        let event = AuditEvent::new(AuditKind::FactorRemoved, Outcome::Success, now)
            .username(username)
            .customer(&customer.id)
            .reason("operator_removed_factors")
            .detail("by", "operator")
            .detail("operatorReason", reason)
            .detail("notices", notices.len());
        Ok(self
            .store
            .remove_all_factors(&customer.id, &notices, &event)
            .await?)
    }

    /// Support sets a new password for a customer who cannot reset it alone (their only factor
    /// is the mailbox), for `reason`: held to the password policy, it ends every session of
    /// theirs and clears failure locks; the customer is told at every destination they hold.
    /// An operator's lock stays, and refuses it: it is lifted (`customers unlock`) first.
    pub async fn reset_password(
        &self,
        username: &Username,
        password: &Password,
        reason: &str,
    ) -> Result<(), AccountError> {
        let customer = self.find(username).await?;
        let context = [
            customer.username.as_str(),
            customer.email.as_str(),
            customer.first_name.as_str(),
            customer.last_name.as_str(),
        ];
        let mut reasons = self.policy.judge_new(password, &context).await;
        if self
            .hasher
            .verify(password, Some(&customer.password_hash))
            .await?
            .matches
        {
            reasons.push(Rejection::Reused);
        }
        if !reasons.is_empty() {
            let names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
            return Err(AccountError::Invalid(format!(
                "the password is refused by the password policy: {}",
                names.join(", ")
            )));
        }
        let now = self.clock.now();
        let held = self.store.factors(&customer.id).await?;
        let notices = Message::account_notices(
            &customer,
            held.iter().map(|h| &h.factor),
            AccountChange::PasswordReset,
            now,
        );
        let reset = PasswordReset {
            customer: customer.id.clone(),
            username: customer.username.clone(),
            session: None,
            new_hash: self.hasher.hash(password).await?,
            at: now,
        };
        let event = AuditEvent::new(AuditKind::PasswordReset, Outcome::Success, now)
            .username(username)
            .customer(&customer.id)
            .reason("operator_reset")
            .detail("by", "operator")
            .detail("operatorReason", reason)
            .detail("notices", notices.len());
        match self
            .store
            .set_reset_password(&reset, &notices, &event)
            .await?
        {
            ResetDone::Reset => Ok(()),
            ResetDone::OperatorLocked => Err(AccountError::Invalid(format!(
                "{username} is locked by an operator: lift the lock (customers unlock) first"
            ))),
            ResetDone::SessionEnded => Err(AccountError::Invalid(
                "the reset was refused by the store".to_owned(),
            )),
        }
    }

    pub(super) async fn find(&self, username: &Username) -> Result<Customer, AccountError> {
        self.store
            .customer_by_username(username)
            .await?
            .ok_or_else(|| AccountError::UnknownCustomer(username.to_string()))
    }

    fn created_event(&self, customer: &NewCustomer) -> AuditEvent {
        AuditEvent::new(
            AuditKind::CustomerCreated,
            Outcome::Success,
            self.clock.now(),
        )
        .username(&customer.profile().username)
        .customer(&customer.profile().id)
    }
}

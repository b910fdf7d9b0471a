//! Customers and the failure counters of their usernames.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::lockout::{LockoutPolicy, LockoutRecord};
use crate::domain::credentials::password::{ChangeOutcome, PasswordChange};
use crate::domain::customers::{Customer, CustomerId, NewCustomer, Username};
use crate::domain::delivery::message::Message;
use crate::domain::risk::DeviceStanding;

/// The counters after a failure, and whether that failure was counted (it is not while a lock
/// is already in force).
#[derive(Debug, Clone, Copy)]
pub struct FailureOutcome {
    /// The username's counters after the failure.
    pub record: LockoutRecord,
    /// Whether this failure was counted; not while a lock was already in force.
    pub counted: bool,
}

/// What a password login reads before it hashes: the username's failure counters (all zero if
/// it never failed), the customer who holds it, if any, and the login's device against theirs.
#[derive(Debug)]
pub struct LoginCandidate {
    /// The username's failure counters.
    pub lockout: LockoutRecord,
    /// The customer who holds the username; an error if their row could not be read, which
    /// the login answers only once the counters have not refused it.
    pub customer: StoreResult<Option<Customer>>,
    /// The login's device against the customer's known devices under the current key (as
    /// [`super::SecurityStore::device_standing`] answers); `None` without a customer.
    pub device: Option<DeviceStanding>,
}

/// What became of one customer of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insertion {
    /// Stored, and its creation audited.
    Inserted,
    /// Another customer (with another username) has this customerId.
    CustomerIdExists,
    /// A customer with this username exists: another one, or this one imported before.
    UsernameExists,
}

/// Customers, and the lockout counters kept per normalised username (existing or not).
#[async_trait]
pub trait CustomerStore: Send + Sync + 'static {
    /// Fails with [`super::StoreError::Conflict`] naming the value that is taken.
    async fn insert_customer(&self, customer: &NewCustomer, event: &AuditEvent) -> StoreResult<()>;
    /// Inserts a batch in one transaction, skipping customers whose customerId or username
    /// exists. Each customer comes with the event that records its creation, appended only if
    /// it was inserted. Returns what became of each customer, in order.
    async fn insert_customers(
        &self,
        batch: &[(NewCustomer, AuditEvent)],
    ) -> StoreResult<Vec<Insertion>>;
    /// The customer with this (normalised) username, if any.
    async fn customer_by_username(&self, username: &Username) -> StoreResult<Option<Customer>>;
    /// The username's counters, its customer and the standing of the device whose keyed
    /// fingerprint hash is `device` (if the login named one), in one read.
    async fn login_candidate(
        &self,
        username: &Username,
        device: Option<&str>,
    ) -> StoreResult<LoginCandidate>;
    /// The customer with this id, if any.
    async fn customer_by_id(&self, id: &CustomerId) -> StoreResult<Option<Customer>>;
    /// Replaces the password hash if it is still `old`.
    async fn replace_password_hash(
        &self,
        id: &CustomerId,
        old: &str,
        new: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool>;

    /// Sets the new password, in one transaction holding the username's counters, if the
    /// username is not locked, the session that asked is still ACTIVE and the stored hash is
    /// still the one checked; then ends every other session of the customer, queues `notices`
    /// and appends `event`. Otherwise nothing changes and the outcome says why.
    async fn change_password(
        &self,
        change: &PasswordChange,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<ChangeOutcome>;

    /// The failure counters of a username (all zero if it never failed).
    async fn lockout(&self, username: &Username) -> StoreResult<LockoutRecord>;
    /// Counts one failure at `event.at`, locking per `policy`, in one transaction that holds
    /// the username's counters; failures while locked are recorded but not counted. Appends
    /// `event`, and a lock event when this failure locks; then it also queues `lock_notices`,
    /// each completed with the lock's end ([`Message::locked_until`]).
    async fn record_failure(
        &self,
        username: &Username,
        policy: &LockoutPolicy,
        event: &AuditEvent,
        lock_notices: &[Message],
    ) -> StoreResult<FailureOutcome>;
    /// Sets or clears an operator lock. Unlocking also clears the failure counters; locking ends
    /// every session of `customer`.
    async fn set_operator_lock(
        &self,
        username: &Username,
        customer: &CustomerId,
        locked: bool,
        event: &AuditEvent,
    ) -> StoreResult<()>;
}

//! The interfaces the domain needs from the outside world, declared here so that the rules
//! depend on nothing but themselves. `crate::store` implements the storage ports for SQLite and
//! PostgreSQL; `crate::notify` implements [`Notifier`].
//!
//! Storage is split by aggregate, so that a feature adds a port rather than growing one. Every
//! method that changes state takes the audit event that records the change, and the store
//! writes both in one transaction: either both are stored or neither is.

mod audit;
mod breached;
mod customers;
mod factors;
mod housekeeping;
mod location;
mod lockdown;
mod notifier;
mod outbox;
mod passkeys;
mod rate_limit;
mod resets;
mod security;
mod sessions;
mod two_factor;

use async_trait::async_trait;

pub use audit::{AddressText, AuditFilter, AuditQuery, AuditStore};
pub use breached::{BreachSourceUnavailable, BreachedPasswords};
pub use customers::{CustomerStore, FailureOutcome, Insertion, LoginCandidate};
pub use factors::FactorStore;
pub use housekeeping::HousekeepingStore;
pub use location::Locator;
pub use lockdown::{EnrolledSince, LockdownDone, LockdownStore};
pub use notifier::{Notifier, NotifyError, Outgoing, WebhookSender};
pub use outbox::OutboxStore;
pub use passkeys::{PasskeyCeremonies, PasskeyStore};
pub use rate_limit::{CounterUnavailable, SharedCounter};
pub use resets::ResetStore;
pub use security::SecurityStore;
pub use sessions::{SessionStart, SessionStore};
pub use two_factor::TwoFactorStore;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, is overloaded or refuses writes for now; the caller may
    /// retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique value (such as a username) is taken.
    #[error("{0} already exists")]
    Conflict(Taken),
    /// The session making the change ended (a logout, a lockdown, a revocation) while the
    /// request ran: nothing changed.
    #[error("the acting session ended")]
    SessionEnded,
    /// Anything else: a bug or corrupt data.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Which unique value a write found taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Another customer has this customerId.
    CustomerId,
    /// Another customer has this (normalised) username.
    Username,
    /// A unique value the store did not name (a constraint it did not expect to meet).
    Other,
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CustomerId => "customerId",
            Self::Username => "username",
            Self::Other => "a unique value",
        })
    }
}

/// What every storage port returns.
pub type StoreResult<T> = Result<T, StoreError>;

/// Every storage port, as one database provides them.
#[async_trait]
pub trait Store:
    CustomerStore
    + FactorStore
    + PasskeyStore
    + SessionStore
    + TwoFactorStore
    + ResetStore
    + OutboxStore
    + AuditStore
    + HousekeepingStore
    + SecurityStore
    + LockdownStore
{
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Closes the connections once those in use are given back: at shutdown, after everything
    /// else that writes has stopped, so that the database sees the connections end cleanly
    /// (and SQLite checkpoints its log) instead of finding them cut off.
    async fn close(&self);
}

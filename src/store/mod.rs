//! Persistence behind one trait, so the domain never sees SQL and the backend is chosen once,
//! at start-up, from the database URL.
//!
//! Every method that changes state takes the audit event that records the change and writes both
//! in one transaction: either both are stored or neither is.

// Both backends compile the shared query modules (`shared/`) with their own connection types.
#[expect(
    clippy::duplicate_mod,
    reason = "each backend compiles the shared queries against its own driver"
)]
pub mod postgres;
mod rows;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::audit::{AuditEvent, ChainSeal, ChainedEvent};
use crate::domain::customer::{Customer, CustomerId, NewCustomer, Username};
use crate::domain::lockout::{LockoutPolicy, LockoutRecord};
use crate::domain::session::{NewSession, Rotation, Session, SessionId};
use crate::domain::token::TokenHash;
use crate::domain::two_factor::{
    ChallengeId, CodeGuess, GuessOutcome, NewChallenge, SendOutcome, TwoFactorPolicy,
};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded; the caller may retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique value (such as a username) is taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// Anything else: a bug or corrupt data.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            // PostgreSQL: connection exceptions (08), operator intervention such as a shutdown
            // or a statement timeout (57), insufficient resources (53), serialization failures
            // and deadlocks (40001, 40P01): all worth a retry.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.len() == 5
                        && (c.starts_with("08")
                            || c.starts_with("57")
                            || c.starts_with("53")
                            || c == "40001"
                            || c == "40P01")
                }) =>
            {
                Self::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict("a unique value")
            }
            // SQLite's "database is locked" / "busy": contention, worth a retry.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("5" | "6" | "261" | "517")) =>
            {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Other(anyhow::Error::new(e).context("database")),
        }
    }
}

/// What the store reports when a login tries to start a session.
#[derive(Debug, Clone, Copy)]
pub enum SessionStart {
    /// The session exists; for an ACTIVE one, the login before it.
    Started {
        previous_login_at: Option<OffsetDateTime>,
    },
    /// The account was locked before the session could start.
    Locked(LockoutRecord),
}

/// The counters after a failure, and whether that failure was counted (it is not while a lock
/// is already in force).
#[derive(Debug, Clone, Copy)]
pub struct FailureOutcome {
    pub record: LockoutRecord,
    pub counted: bool,
}

/// When a completed login happened and the one before it.
#[derive(Debug, Clone, Copy)]
pub struct LoginTimes {
    pub login_at: OffsetDateTime,
    pub previous_login_at: Option<OffsetDateTime>,
}

/// Which audit events to read.
#[derive(Debug, Clone, Copy)]
pub struct AuditQuery {
    /// Only events with a greater seq.
    pub after_seq: i64,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    pub limit: u32,
}

/// The state this service keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    async fn insert_customer(&self, customer: &NewCustomer, event: &AuditEvent) -> StoreResult<()>;
    /// Inserts a batch in one transaction, skipping usernames that exist; returns how many were
    /// inserted. Each customer comes with the event that records its creation, appended only if
    /// it was inserted.
    async fn insert_customers(&self, batch: &[(NewCustomer, AuditEvent)]) -> StoreResult<u64>;
    async fn customer_by_username(&self, username: &Username) -> StoreResult<Option<Customer>>;
    async fn customer_by_id(&self, id: &CustomerId) -> StoreResult<Option<Customer>>;
    /// Replaces the password hash if it is still `old`.
    async fn replace_password_hash(
        &self,
        id: &CustomerId,
        old: &str,
        new: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool>;

    /// The failure counters of a username (all zero if it never failed).
    async fn lockout(&self, username: &Username) -> StoreResult<LockoutRecord>;
    /// Counts one failure at `event.at`, locking per `policy`; failures while locked are recorded
    /// but not counted. Appends `event`, and a lock event when this failure locks.
    async fn record_failure(
        &self,
        username: &Username,
        policy: &LockoutPolicy,
        event: &AuditEvent,
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
    async fn append_event(&self, event: &AuditEvent) -> StoreResult<()>;

    /// Starts a session unless the username is locked at `session.created_at`. An ACTIVE start
    /// completes a login: it resets the failure counters and records the login on the customer.
    /// A pending start does neither: the second factor is still owed.
    async fn start_session(
        &self,
        session: &NewSession,
        username: &Username,
        event: &AuditEvent,
    ) -> StoreResult<SessionStart>;
    async fn session_by_access(&self, hash: &TokenHash) -> StoreResult<Option<Session>>;
    async fn session_by_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>>;
    /// The session a refresh token belonged to before it was rotated away.
    async fn session_by_retired_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>>;
    /// Records activity for the idle timeout.
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> StoreResult<()>;
    /// Swaps an ACTIVE session's tokens if its refresh token is still `rotation.old_refresh`;
    /// false when another request rotated first.
    async fn rotate_session(&self, rotation: &Rotation, event: &AuditEvent) -> StoreResult<bool>;
    /// Ends one session; false if it had already ended.
    async fn revoke_session(
        &self,
        id: &SessionId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Ends every session of a customer; returns how many were live.
    async fn revoke_customer_sessions(
        &self,
        customer: &CustomerId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<u64>;

    /// Opens a challenge for a pending session within the sending limits, replacing any open one.
    async fn open_challenge(
        &self,
        challenge: &NewChallenge,
        policy: &TwoFactorPolicy,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome>;
    /// Undoes a send whose delivery failed: closes the challenge and gives the send back to the
    /// session, appending `event`.
    async fn release_send(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// Checks one guess at a code in one transaction (see [`CodeGuess`]): refuses it if the
    /// challenge is unusable or the username locked, otherwise uses one of the challenge's
    /// guesses and compares the code; a wrong code counts towards the lock per `policy`, the
    /// right one activates the session. Appends the outcome's audit events, built on `context`.
    async fn check_code(
        &self,
        guess: &CodeGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome>;

    /// Deletes up to `batch` sessions whose absolute lifetime, or pending lifetime, ended before
    /// `cutoff`, with their challenges and retired refresh tokens; returns how many.
    async fn purge_sessions(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` failure counters that hold no lock and last changed before
    /// `cutoff`; returns how many.
    async fn purge_lockouts(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Deletes up to `batch` events older than `cutoff` from the start of the audit chain,
    /// moving the checkpoint to the last one deleted, and appends `event` (with the count and
    /// the checkpoint added) in the same transaction; returns how many were deleted.
    async fn purge_audit(
        &self,
        cutoff: OffsetDateTime,
        batch: u32,
        event: &AuditEvent,
    ) -> StoreResult<u64>;
    /// The seq and hash of the last event removed by retention (0 and the genesis hash if none).
    async fn audit_checkpoint(&self) -> StoreResult<(i64, String)>;

    async fn audit_events(&self, query: AuditQuery) -> StoreResult<Vec<ChainedEvent>>;
    /// The newest `n` events, oldest first.
    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<ChainedEvent>>;
    /// The seq and hash of the last event (0 and the genesis hash when empty).
    async fn audit_head(&self) -> StoreResult<(i64, String)>;
}

/// Opens the store a database URL names, applying pending migrations. Audit events are sealed
/// into the chain with `seal`.
pub async fn connect(
    url: &str,
    options: &ConnectOptions,
    seal: ChainSeal,
) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::open(url, options, seal).await?,
        ))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::open(url, options, seal).await?))
    } else {
        anyhow::bail!("FINHUB_DATABASE_URL must start with sqlite:// or postgres://")
    }
}

/// Connection settings shared by the backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
    /// PostgreSQL cancels statements running longer than this.
    pub statement_timeout: std::time::Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(5),
        }
    }
}

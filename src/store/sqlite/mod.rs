//! The embedded SQLite store.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly one connection
//! (no `SQLITE_BUSY` between our own transactions) and reads through a separate pool. WAL mode
//! lets readers proceed during a write, and `synchronous = FULL` makes every commit durable
//! before the response that depends on it is sent.

mod audit;
mod customers;
mod sessions;
mod two_factor;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;

use super::{AuditQuery, ConnectOptions, FailureOutcome, SessionStart, Store, StoreResult};
use crate::domain::audit::{AuditEvent, ChainSeal, ChainedEvent};
use crate::domain::customer::{Customer, CustomerId, NewCustomer, Username};
use crate::domain::lockout::{LockoutPolicy, LockoutRecord};
use crate::domain::session::{NewSession, Rotation, Session, SessionId};
use crate::domain::token::TokenHash;
use crate::domain::two_factor::{
    ChallengeId, CodeGuess, GuessOutcome, NewChallenge, SendOutcome, TwoFactorPolicy,
};

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    seal: ChainSeal,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(
        url: &str,
        options: &ConnectOptions,
        seal: ChainSeal,
    ) -> anyhow::Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .with_context(|| "FINHUB_DATABASE_URL is not a valid sqlite:// URL".to_owned())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = connect
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            create_dir(dir)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot open the SQLite database {}",
                    connect.get_filename().display()
                )
            })?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        // A binary that predates a migration keeps working against the newer schema (rolling
        // deployments); migrations only ever add.
        migrator.set_ignore_missing(true);
        migrator
            .run(&writer)
            .await
            .context("applying the SQLite migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await
            .context("opening SQLite readers")?;
        Ok(Self {
            writer,
            reader,
            seal,
        })
    }

    /// Closes both pools, waiting for running queries.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Starts a write transaction that takes SQLite's write lock at once, so that another process
/// writing to the same file makes us wait (busy timeout) instead of failing mid-transaction.
async fn write_tx(pool: &SqlitePool) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the database directory {}", dir.display()))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn insert_customer(&self, customer: &NewCustomer, event: &AuditEvent) -> StoreResult<()> {
        customers::insert(&self.writer, &self.seal, customer, event).await
    }

    async fn insert_customers(&self, batch: &[(NewCustomer, AuditEvent)]) -> StoreResult<u64> {
        customers::insert_batch(&self.writer, &self.seal, batch).await
    }

    async fn customer_by_username(&self, username: &Username) -> StoreResult<Option<Customer>> {
        customers::by_username(&self.reader, username).await
    }

    async fn customer_by_id(&self, id: &CustomerId) -> StoreResult<Option<Customer>> {
        customers::by_id(&self.reader, id).await
    }

    async fn replace_password_hash(
        &self,
        id: &CustomerId,
        old: &str,
        new: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        customers::replace_password_hash(&self.writer, &self.seal, id, old, new, event).await
    }

    async fn lockout(&self, username: &Username) -> StoreResult<LockoutRecord> {
        customers::lockout(&self.reader, username).await
    }

    async fn record_failure(
        &self,
        username: &Username,
        policy: &LockoutPolicy,
        event: &AuditEvent,
    ) -> StoreResult<FailureOutcome> {
        customers::record_failure(&self.writer, &self.seal, username, policy, event).await
    }

    async fn set_operator_lock(
        &self,
        username: &Username,
        customer: &CustomerId,
        locked: bool,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        customers::set_operator_lock(&self.writer, &self.seal, username, customer, locked, event)
            .await
    }

    async fn append_event(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = write_tx(&self.writer).await?;
        audit::append(&mut tx, &self.seal, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn start_session(
        &self,
        session: &NewSession,
        username: &Username,
        event: &AuditEvent,
    ) -> StoreResult<SessionStart> {
        sessions::start(&self.writer, &self.seal, session, username, event).await
    }

    async fn session_by_access(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_access(&self.reader, hash).await
    }

    async fn session_by_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_refresh(&self.reader, hash).await
    }

    async fn session_by_retired_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_retired_refresh(&self.reader, hash).await
    }

    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> StoreResult<()> {
        sessions::touch(&self.writer, id, at).await
    }

    async fn rotate_session(&self, rotation: &Rotation, event: &AuditEvent) -> StoreResult<bool> {
        sessions::rotate(&self.writer, &self.seal, rotation, event).await
    }

    async fn revoke_session(
        &self,
        id: &SessionId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        sessions::revoke(&self.writer, &self.seal, id, reason, event).await
    }

    async fn revoke_customer_sessions(
        &self,
        customer: &CustomerId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        sessions::revoke_all(&self.writer, &self.seal, customer, reason, event).await
    }

    async fn open_challenge(
        &self,
        challenge: &NewChallenge,
        policy: &TwoFactorPolicy,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome> {
        two_factor::open(&self.writer, &self.seal, challenge, policy, event).await
    }

    async fn release_send(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        two_factor::release_send(&self.writer, &self.seal, challenge, session, event).await
    }

    async fn check_code(
        &self,
        guess: &CodeGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome> {
        two_factor::check_code(&self.writer, &self.seal, guess, policy, context).await
    }

    async fn purge_sessions(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        sessions::purge(&self.writer, cutoff, batch).await
    }

    async fn purge_lockouts(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        customers::purge_lockouts(&self.writer, cutoff, batch).await
    }

    async fn purge_audit(
        &self,
        cutoff: OffsetDateTime,
        batch: u32,
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        audit::purge(&self.writer, &self.seal, cutoff, batch, event).await
    }

    async fn audit_checkpoint(&self) -> StoreResult<(i64, String)> {
        audit::checkpoint(&self.reader).await
    }

    async fn audit_events(&self, query: AuditQuery) -> StoreResult<Vec<ChainedEvent>> {
        audit::events(&self.reader, query).await
    }

    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<ChainedEvent>> {
        audit::tail(&self.reader, n).await
    }

    async fn audit_head(&self) -> StoreResult<(i64, String)> {
        audit::head(&self.reader).await
    }
}
